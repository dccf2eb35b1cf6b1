/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * io_submit as the kernel really answers it (DESIGN.md §6.1), with the real
 * kernel behind the seam: a partial submit, EAGAIN with nothing else in
 * flight, and a refused iocb in the middle of a batch.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <libaio.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common.h"
#include "fake_sys.h"
#include "fixture.h"

#define BS 4096u
#define NREQ 10

struct ctx {
	struct fx fx;
	char *buf; /* NREQ blocks, block i filled with seed i + 1 */
	char *check;
	struct fx_req reqs[NREQ];
};

static int
setup(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));

	fake_reset();
	assert_non_null(c);
	assert_int_equal(fx_open(&c->fx, 64 * BS, 0, 0, 32), 0);
	c->buf = tc_alloc(BS, NREQ * BS);
	c->check = tc_alloc(BS, NREQ * BS);
	assert_non_null(c->buf);
	assert_non_null(c->check);
	for (unsigned i = 0; i < NREQ; i++)
		tc_fill(c->buf + i * BS, BS, i + 1);
	*state = c;
	return 0;
}

static int
teardown(void **state)
{
	struct ctx *c = *state;

	fake_reset();
	fx_close(&c->fx);
	free(c->buf);
	free(c->check);
	free(c);
	return 0;
}

/* Block i of the buffer goes to block i of the disk (in units of the disk's block size). */
static void
write_all(struct ctx *c)
{
	uint64_t per = BS / c->fx.bs;

	for (unsigned i = 0; i < NREQ; i++)
		assert_int_equal(aioblk_write(c->fx.ch, c->buf + i * BS, i * per, per, fx_cb, &c->reqs[i]), 0);
}

static void
assert_each_once(struct ctx *c, const int *want)
{
	for (unsigned i = 0; i < NREQ; i++) {
		assert_int_equal(c->reqs[i].count, 1);
		assert_int_equal(c->reqs[i].status, want ? want[i] : 0);
	}
	assert_int_equal(aioblk_channel_inflight(c->fx.ch), 0);
}

/* Blocks whose write succeeded hold their pattern; refused ones are still zero. */
static void
assert_disk(struct ctx *c, const int *want)
{
	fx_pread(&c->fx, c->check, NREQ * BS, 0);
	for (unsigned i = 0; i < NREQ; i++) {
		if (!want || want[i] == 0) {
			assert_int_equal(tc_check(c->check + i * BS, BS, i + 1), -1);
		} else {
			for (unsigned j = 0; j < BS; j++)
				assert_int_equal(c->check[i * BS + j], 0);
		}
	}
}

/* The kernel takes 3, then says EAGAIN: the 7 others wait for the next poll. */
static void
partial_submit_rest_later(void **state)
{
	struct ctx *c = *state;
	static const int script[] = { 3, -EAGAIN };

	write_all(c);
	fake_submit_script(script, 2);
	assert_int_equal(aioblk_group_submit(c->fx.group), 3);
	assert_int_equal(fake_calls[FAKE_IO_SUBMIT], 2);
	assert_int_equal(fake_nlog, 3);
	assert_int_equal(aioblk_channel_inflight(c->fx.ch), NREQ);
	for (unsigned i = 0; i < NREQ; i++)
		assert_int_equal(c->reqs[i].count, 0);

	assert_int_equal(fx_drive(&c->fx, c->reqs, NREQ, 10000), 0);
	assert_each_once(c, NULL);
	/* Every iocb went to the kernel once, in order. */
	assert_int_equal(fake_nlog, NREQ);
	for (unsigned i = 0; i < NREQ; i++) {
		assert_int_equal(fake_log[i].offset, (uint64_t)i * BS);
		assert_int_equal(fake_log[i].opcode, IO_CMD_PWRITE);
	}
	assert_disk(c, NULL);
}

/* Partial submits without errors: the library goes on with the rest in the same call. */
static void
partial_submit_continues(void **state)
{
	struct ctx *c = *state;

	write_all(c);
	fake_submit_take(3, 100);
	assert_int_equal(aioblk_group_submit(c->fx.group), NREQ);
	assert_int_equal(fake_calls[FAKE_IO_SUBMIT], 4); /* 3 + 3 + 3 + 1 */
	assert_int_equal(fx_drive(&c->fx, c->reqs, NREQ, 10000), 0);
	assert_each_once(c, NULL);
	assert_disk(c, NULL);
}

/*
 * EAGAIN with nothing in flight: no completion will ever come to trigger a
 * retry, so each later poll must retry by itself: exactly once per poll,
 * never spinning.
 */
static void
eagain_nothing_in_flight(void **state)
{
	struct ctx *c = *state;
	static const int script[] = { -EAGAIN, -EAGAIN, -EAGAIN };
	struct aioblk_channel_stats st;

	assert_int_equal(aioblk_write(c->fx.ch, c->buf, 0, BS / c->fx.bs, fx_cb, &c->reqs[0]), 0);
	fake_submit_script(script, 3);
	assert_int_equal(aioblk_group_submit(c->fx.group), 0);
	assert_int_equal(fake_calls[FAKE_IO_SUBMIT], 1);
	assert_int_equal(aioblk_group_poll(c->fx.group, 0), 0);
	assert_int_equal(fake_calls[FAKE_IO_SUBMIT], 2);
	assert_int_equal(aioblk_group_poll(c->fx.group, 0), 0);
	assert_int_equal(fake_calls[FAKE_IO_SUBMIT], 3);
	assert_int_equal(c->reqs[0].count, 0);
	/* The fourth try is let through. */
	assert_int_equal(fx_drive(&c->fx, c->reqs, 1, 10000), 0);
	assert_int_equal(fake_calls[FAKE_IO_SUBMIT], 4);
	assert_int_equal(c->reqs[0].count, 1);
	assert_int_equal(c->reqs[0].status, 0);
	assert_int_equal(aioblk_channel_get_stats(c->fx.ch, &st), 0);
	assert_int_equal(st.io_submit_calls, 4);
	assert_int_equal(st.retries, 3);
	fx_pread(&c->fx, c->check, BS, 0);
	assert_int_equal(tc_check(c->check, BS, 1), -1);
}

/* io_submit returning 0 for a non-empty batch is treated like EAGAIN, not as a loss. */
static void
zero_from_submit(void **state)
{
	struct ctx *c = *state;
	static const int script[] = { 0 };

	write_all(c);
	fake_submit_script(script, 1);
	assert_int_equal(aioblk_group_submit(c->fx.group), 0);
	assert_int_equal(fx_drive(&c->fx, c->reqs, NREQ, 10000), 0);
	assert_each_once(c, NULL);
	assert_disk(c, NULL);
}

/*
 * A refused iocb (any errno but EAGAIN) completes alone with that errno;
 * those before it were taken, those after it are submitted after it.
 */
static void
refused_one(struct ctx *c, unsigned at, int err)
{
	int want[NREQ] = { 0 };

	want[at] = err;
	write_all(c);
	fake_refuse_offset((uint64_t)at * BS, err, 1);
	assert_int_equal(aioblk_group_submit(c->fx.group), NREQ - 1);
	assert_int_equal(fx_drive(&c->fx, c->reqs, NREQ, 10000), 0);
	assert_each_once(c, want);
	/* The kernel saw every iocb once; the refused one was never retried. */
	assert_int_equal(fake_nlog, NREQ);
	for (unsigned i = 0; i < NREQ; i++) {
		assert_int_equal(fake_log[i].offset, (uint64_t)i * BS);
		assert_int_equal(fake_log[i].refused, i == at ? -err : 0);
	}
	assert_disk(c, want);
}

static void
refused_einval_middle(void **state)
{
	refused_one(*state, 4, -EINVAL);
}

static void
refused_ebadf_first(void **state)
{
	refused_one(*state, 0, -EBADF);
}

static void
refused_efault_last(void **state)
{
	refused_one(*state, NREQ - 1, -EFAULT);
}

static void
refused_eopnotsupp_middle(void **state)
{
	refused_one(*state, 6, -EOPNOTSUPP);
}

/* Two refusals in one batch, and a partial take before them. */
static void
refused_twice_with_partial(void **state)
{
	struct ctx *c = *state;
	int want[NREQ] = { 0 };
	static const int script[] = { 1 };

	want[2] = -EINVAL;
	want[3] = -EBADF;
	write_all(c);
	fake_submit_script(script, 1);
	fake_refuse_offset(2 * BS, -EINVAL, 1);
	fake_refuse_offset(3 * BS, -EBADF, 1);
	assert_int_equal(aioblk_group_submit(c->fx.group), NREQ - 2);
	assert_int_equal(fx_drive(&c->fx, c->reqs, NREQ, 10000), 0);
	assert_each_once(c, want);
	assert_disk(c, want);
}

/*
 * A flush refused with EINVAL at submit means the kernel cannot do
 * IOCB_CMD_FDSYNC: the flush completes with fdatasync(2) instead, and later
 * flushes skip io_submit.
 */
static void
flush_einval_falls_back(void **state)
{
	struct ctx *c = *state;
	struct fx_req f[2] = { { 0, 0 }, { 0, 0 } };

	fake_fail(FAKE_IO_SUBMIT, -EINVAL, 1);
	assert_int_equal(aioblk_flush(c->fx.ch, fx_cb, &f[0]), 0);
	assert_int_equal(fx_drive(&c->fx, f, 1, 10000), 0);
	assert_int_equal(f[0].count, 1);
	assert_int_equal(f[0].status, 0);
	assert_int_equal(fake_calls[FAKE_FDATASYNC], 1);
	assert_int_equal(fake_calls[FAKE_IO_SUBMIT], 1);

	assert_int_equal(aioblk_flush(c->fx.ch, fx_cb, &f[1]), 0);
	assert_int_equal(fx_drive(&c->fx, &f[1], 1, 10000), 0);
	assert_int_equal(f[1].count, 1);
	assert_int_equal(f[1].status, 0);
	assert_int_equal(fake_calls[FAKE_FDATASYNC], 2);
	assert_int_equal(fake_calls[FAKE_IO_SUBMIT], 1);
	assert_int_equal(f[0].count, 1);
}

/* The fdatasync(2) of the fallback fails: the flush reports it. */
static void
flush_fallback_fdatasync_fails(void **state)
{
	struct ctx *c = *state;
	struct fx_req f = { 0, 0 };

	fake_fail(FAKE_IO_SUBMIT, -EINVAL, 1);
	fake_fail(FAKE_FDATASYNC, -EIO, 1);
	assert_int_equal(aioblk_flush(c->fx.ch, fx_cb, &f), 0);
	assert_int_equal(fx_drive(&c->fx, &f, 1, 10000), 0);
	assert_int_equal(f.count, 1);
	assert_int_equal(f.status, -EIO);
}

/* A callback that resubmits while the kernel keeps refusing with EAGAIN does not loop. */
struct chain {
	struct ctx *c;
	int left;
	int ran;
	int last;
};

static void
chain_cb(void *arg, int status)
{
	struct chain *ch = arg;

	ch->ran++;
	ch->last = status;
	if (status == 0 && ch->left-- > 0)
		assert_int_equal(aioblk_write(ch->c->fx.ch, ch->c->buf, 0, BS / ch->c->fx.bs, chain_cb, ch), 0);
}

static void
resubmit_from_callback_under_eagain(void **state)
{
	struct ctx *c = *state;
	struct chain ch = { c, 5, 0, 0 };
	static const int script[] = { 1, -EAGAIN, 1, -EAGAIN, -EAGAIN, 1, -EAGAIN, 1 };
	int rounds = 0;

	fake_submit_script(script, sizeof(script) / sizeof(script[0]));
	assert_int_equal(aioblk_write(c->fx.ch, c->buf, 0, BS / c->fx.bs, chain_cb, &ch), 0);
	/* Bounded: at most 1000 waits of 10 ms. */
	while (ch.ran < 6 && rounds++ < 1000)
		aioblk_group_wait(c->fx.group, 10);
	assert_int_equal(ch.ran, 6);
	assert_int_equal(ch.last, 0);
	assert_int_equal(aioblk_channel_inflight(c->fx.ch), 0);
	/* One successful io_submit per write, one EAGAIN per failed try. */
	assert_int_equal(fake_calls[FAKE_IO_SUBMIT], 6 + 4);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(partial_submit_rest_later, setup, teardown),
		cmocka_unit_test_setup_teardown(partial_submit_continues, setup, teardown),
		cmocka_unit_test_setup_teardown(eagain_nothing_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(zero_from_submit, setup, teardown),
		cmocka_unit_test_setup_teardown(refused_einval_middle, setup, teardown),
		cmocka_unit_test_setup_teardown(refused_ebadf_first, setup, teardown),
		cmocka_unit_test_setup_teardown(refused_efault_last, setup, teardown),
		cmocka_unit_test_setup_teardown(refused_eopnotsupp_middle, setup, teardown),
		cmocka_unit_test_setup_teardown(refused_twice_with_partial, setup, teardown),
		cmocka_unit_test_setup_teardown(flush_einval_falls_back, setup, teardown),
		cmocka_unit_test_setup_teardown(flush_fallback_fdatasync_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(resubmit_from_callback_under_eagain, setup, teardown),
	};

	return tc_run_group(tests, NULL, NULL);
}
