/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Reaping (DESIGN.md §3, §6.3, §6.6): no system call on a poll that finds
 * nothing; a ring whose header is not the one we know sends the library to
 * io_getevents (real kernel with a corrupted header, and the fake kernel);
 * ring indices that wrap at a size that is not a power of two; EINTR and
 * errors of io_getevents; max_completions with the eventfd.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <libaio.h>
#include <poll.h>
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
#include "internal.h"

#define FILE_BYTES (1024u * 1024u)
#define BS 4096u
#define NBUF 32

struct ctx {
	struct fx fx;
	char *buf; /* NBUF blocks */
	struct fx_req reqs[NBUF];
};

static struct ctx *
make(uint32_t group_flags, unsigned qd)
{
	struct ctx *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	aioblk_set_log_fn(fake_log_fn, NULL);
	assert_int_equal(fx_open(&c->fx, FILE_BYTES, 0, group_flags, qd), 0);
	c->buf = tc_alloc(BS, NBUF * BS);
	assert_non_null(c->buf);
	memset(c->buf, 0x5a, NBUF * BS);
	return c;
}

static int
setup_plain(void **state)
{
	fake_reset();
	*state = make(0, 64);
	return 0;
}

static int
setup_efd(void **state)
{
	fake_reset();
	*state = make(AIOBLK_GROUP_EVENTFD, 64);
	return 0;
}

static int
setup_corrupt(void **state)
{
	fake_reset();
	fake_corrupt_ring(true);
	*state = make(0, 64);
	return 0;
}

static int
setup_fake(void **state)
{
	fake_reset();
	fake_kernel(true, false);
	*state = make(0, 4); /* a ring of 7 slots */
	return 0;
}

static int
setup_fake_efd(void **state)
{
	fake_reset();
	fake_kernel(true, false);
	*state = make(AIOBLK_GROUP_EVENTFD, 16);
	return 0;
}

static int
setup_fake_bad_magic(void **state)
{
	fake_reset();
	fake_kernel(true, true);
	*state = make(0, 16);
	return 0;
}

static int
teardown(void **state)
{
	struct ctx *c = *state;

	fx_close(&c->fx);
	assert_int_equal(fake_pending(), 0);
	aioblk_set_log_fn(NULL, NULL);
	fake_reset();
	free(c->buf);
	free(c);
	return 0;
}

static unsigned
syscalls(void)
{
	return fake_calls[FAKE_IO_SUBMIT] + fake_calls[FAKE_IO_GETEVENTS] + fake_calls[FAKE_EVENTFD_READ] +
	       fake_calls[FAKE_EVENTFD_WRITE] + fake_calls[FAKE_POLL_IN] + fake_calls[FAKE_FDATASYNC] +
	       fake_calls[FAKE_BLKDEV_SIZE] + fake_calls[FAKE_FILE_INFO];
}

/* @n writes of block i (seed i + @seed) to block i, then reads back and checks each. */
static void
roundtrip(struct ctx *c, unsigned n, uint64_t seed)
{
	uint64_t per = BS / c->fx.bs;
	unsigned i;

	assert_true(n <= NBUF);
	for (i = 0; i < n; i++) {
		tc_fill(c->buf + i * BS, BS, seed + i);
		c->reqs[i].count = 0;
		assert_int_equal(aioblk_write(c->fx.ch, c->buf + i * BS, i * per, per, fx_cb, &c->reqs[i]), 0);
	}
	assert_int_equal(fx_drive(&c->fx, c->reqs, n, 10000), 0);
	memset(c->buf, 0, n * BS);
	for (i = 0; i < n; i++) {
		assert_int_equal(c->reqs[i].count, 1);
		assert_int_equal(c->reqs[i].status, 0);
		c->reqs[i].count = 0;
		assert_int_equal(aioblk_read(c->fx.ch, c->buf + i * BS, i * per, per, fx_cb, &c->reqs[i]), 0);
	}
	assert_int_equal(fx_drive(&c->fx, c->reqs, n, 10000), 0);
	for (i = 0; i < n; i++) {
		assert_int_equal(c->reqs[i].count, 1);
		assert_int_equal(c->reqs[i].status, 0);
		assert_int_equal(tc_check(c->buf + i * BS, BS, seed + i), -1);
	}
	assert_int_equal(aioblk_channel_inflight(c->fx.ch), 0);
}

/* 1000 empty polls (and waits with timeout 0, and submits) make no system call. */
static void
assert_empty_polls_silent(struct ctx *c)
{
	unsigned before = syscalls();

	for (int i = 0; i < 1000; i++) {
		assert_int_equal(aioblk_group_poll(c->fx.group, 0), 0);
		assert_int_equal(aioblk_group_wait(c->fx.group, 0), 0);
		assert_int_equal(aioblk_group_submit(c->fx.group), 0);
	}
	assert_int_equal(syscalls(), before);
}

static void
empty_polls_no_syscall(void **state)
{
	struct ctx *c = *state;

	assert_empty_polls_silent(c);
	/* And after I/O has gone through the ring. */
	roundtrip(c, 8, 1);
	assert_empty_polls_silent(c);
	/* A second channel of the same group changes nothing. */
	{
		struct aioblk_channel *ch2;

		assert_int_equal(aioblk_channel_create(c->fx.group, c->fx.disk, 8, &ch2), 0);
		assert_empty_polls_silent(c);
		assert_int_equal(aioblk_channel_destroy(ch2), 0);
	}
}

static void
empty_polls_no_syscall_fallback(void **state)
{
	struct ctx *c = *state;

	assert_null(c->fx.ch->kc->ring);
	assert_empty_polls_silent(c);
	roundtrip(c, 8, 2);
	assert_empty_polls_silent(c);
}

/* Completions through the real kernel's ring, then the header turns bad: io_getevents from then on. */
static void
corrupt_ring_at_setup(void **state)
{
	struct ctx *c = *state;

	assert_null(c->fx.ch->kc->ring);
	assert_true(fake_log_has("unknown AIO ring layout"));
	roundtrip(c, NBUF, 100);
	assert_true(fake_calls[FAKE_IO_GETEVENTS] > 0);
}

static void
corrupt_ring_later(struct ctx *c, void (*corrupt)(struct aio_ring *))
{
	assert_non_null(c->fx.ch->kc->ring);
	roundtrip(c, 4, 200);
	assert_int_equal(fake_calls[FAKE_IO_GETEVENTS], 0);
	corrupt(c->fx.ch->kc->ring);
	roundtrip(c, NBUF, 300);
	assert_null(c->fx.ch->kc->ring);
	assert_true(fake_log_has("AIO ring header not as expected"));
	assert_true(fake_calls[FAKE_IO_GETEVENTS] > 0);
}

static void
bad_magic(struct aio_ring *ring)
{
	ring->magic = 0;
}

static void
bad_incompat(struct aio_ring *ring)
{
	ring->incompat_features = 1;
}

static void
ring_magic_changes(void **state)
{
	corrupt_ring_later(*state, bad_magic);
}

static void
ring_incompat_changes(void **state)
{
	corrupt_ring_later(*state, bad_incompat);
}

/* A head index beyond the ring (fake kernel: it reduces indices like the real one). */
static void
ring_head_out_of_range(void **state)
{
	struct ctx *c = *state;

	assert_non_null(c->fx.ch->kc->ring);
	c->reqs[0].count = 0;
	tc_fill(c->buf, BS, 5);
	assert_int_equal(aioblk_write(c->fx.ch, c->buf, 0, BS / c->fx.bs, fx_cb, &c->reqs[0]), 0);
	assert_int_equal(aioblk_group_submit(c->fx.group), 1);
	c->fx.ch->kc->ring->head += c->fx.ch->kc->ring->nr;
	assert_int_equal(aioblk_group_poll(c->fx.group, 0), 1);
	assert_int_equal(c->reqs[0].count, 1);
	assert_int_equal(c->reqs[0].status, 0);
	assert_null(c->fx.ch->kc->ring);
	assert_int_equal(fake_calls[FAKE_IO_GETEVENTS], 1);
}

/* A ring of 7 slots (not a power of two) wraps many times; one completion per poll at most. */
static void
fake_ring_wraps(void **state)
{
	struct ctx *c = *state;
	uint64_t per = BS / c->fx.bs;
	unsigned i, round;

	assert_non_null(c->fx.ch->kc->ring);
	assert_int_equal(c->fx.ch->kc->ring->nr, 7);
	for (round = 0; round < 50; round++) {
		for (i = 0; i < 4; i++) {
			tc_fill(c->buf + i * BS, BS, round * 10 + i);
			c->reqs[i].count = 0;
			assert_int_equal(aioblk_write(c->fx.ch, c->buf + i * BS, (round % 8) * 4 * per + i * per, per,
						      fx_cb, &c->reqs[i]),
					 0);
		}
		/* The fifth is beyond the queue depth. */
		assert_int_equal(aioblk_write(c->fx.ch, c->buf, 0, per, fx_cb, &c->reqs[4]), -EAGAIN);
		assert_int_equal(aioblk_group_submit(c->fx.group), 4);
		for (i = 0; i < 4; i++)
			assert_int_equal(aioblk_group_poll(c->fx.group, 1), 1);
		assert_int_equal(aioblk_group_poll(c->fx.group, 1), 0);
		for (i = 0; i < 4; i++) {
			assert_int_equal(c->reqs[i].count, 1);
			assert_int_equal(c->reqs[i].status, 0);
		}
	}
	roundtrip(c, 4, 77);
	assert_int_equal(fake_calls[FAKE_IO_GETEVENTS], 0);
}

/* The fake kernel with a bad magic: everything through io_getevents. */
static void
fake_bad_magic_fallback(void **state)
{
	struct ctx *c = *state;

	assert_null(c->fx.ch->kc->ring);
	roundtrip(c, 16, 400);
	assert_true(fake_calls[FAKE_IO_GETEVENTS] > 0);
}

/* On the fallback path, completions are decoded the same way (real kernel, results rewritten). */
static void
fallback_decoding(void **state)
{
	struct ctx *c = *state;
	uint64_t per = BS / c->fx.bs;
	struct fx_req r[3] = { { 0, 0 }, { 0, 0 }, { 0, 0 } };

	tc_fill(c->buf, 3 * BS, 9);
	fake_result(0, -EIO, 1, 0);
	fake_result(BS, 0, 1, 0);
	fake_result(2 * BS, 1024, 1, 0); /* short: the rest is sent again */
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(aioblk_write(c->fx.ch, c->buf + i * BS, i * per, per, fx_cb, &r[i]), 0);
	assert_int_equal(fx_drive(&c->fx, r, 3, 10000), 0);
	assert_int_equal(r[0].status, -EIO);
	assert_int_equal(r[1].status, -EIO);
	assert_int_equal(r[2].status, 0);
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(r[i].count, 1);
	assert_int_equal(fake_nlog, 4);
	assert_int_equal(fake_log[3].offset, 2 * BS + 1024);
	assert_int_equal(fake_log[3].nbytes, BS - 1024);
}

/* EINTR from io_getevents is retried inside the same poll. */
static void
getevents_eintr(void **state)
{
	struct ctx *c = *state;

	c->reqs[0].count = 0;
	assert_int_equal(aioblk_write(c->fx.ch, c->buf, 0, BS / c->fx.bs, fx_cb, &c->reqs[0]), 0);
	assert_int_equal(aioblk_group_submit(c->fx.group), 1);
	fake_fail(FAKE_IO_GETEVENTS, -EINTR, 3);
	assert_int_equal(aioblk_group_poll(c->fx.group, 0), 1);
	assert_int_equal(fake_calls[FAKE_IO_GETEVENTS], 4);
	assert_int_equal(c->reqs[0].count, 1);
	assert_int_equal(c->reqs[0].status, 0);
}

/* Another io_getevents error: logged, nothing lost, the next poll reaps. */
static void
getevents_error(void **state)
{
	struct ctx *c = *state;

	c->reqs[0].count = 0;
	assert_int_equal(aioblk_write(c->fx.ch, c->buf, 0, BS / c->fx.bs, fx_cb, &c->reqs[0]), 0);
	assert_int_equal(aioblk_group_submit(c->fx.group), 1);
	fake_fail(FAKE_IO_GETEVENTS, -EFAULT, 2);
	assert_int_equal(aioblk_group_poll(c->fx.group, 0), 0);
	assert_true(fake_log_has("io_getevents failed"));
	assert_int_equal(aioblk_group_poll(c->fx.group, 0), 0);
	assert_int_equal(c->reqs[0].count, 0);
	assert_int_equal(aioblk_channel_inflight(c->fx.ch), 1);
	assert_int_equal(aioblk_group_poll(c->fx.group, 0), 1);
	assert_int_equal(c->reqs[0].count, 1);
	assert_int_equal(c->reqs[0].status, 0);
}

static bool
readable(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	return poll(&pfd, 1, 0) == 1;
}

/*
 * A poll that stops at max_completions leaves the eventfd readable while
 * events remain, and quiet once everything is reaped.
 */
static void
max_completions_keeps_fd_readable(void **state)
{
	struct ctx *c = *state;
	int efd = aioblk_group_fd(c->fx.group);
	uint64_t per = BS / c->fx.bs;
	unsigned i, ran = 0;

	assert_true(efd >= 0);
	for (i = 0; i < 10; i++)
		assert_int_equal(aioblk_write(c->fx.ch, c->buf + i * BS, i * per, per, fx_cb, &c->reqs[i]), 0);
	assert_int_equal(aioblk_group_submit(c->fx.group), 10);
	assert_int_equal(fake_pending(), 10);
	while (ran < 10) {
		assert_true(readable(efd));
		assert_int_equal(aioblk_group_poll(c->fx.group, 3), ran + 3 <= 10 ? 3 : 10 - ran);
		ran += 3;
	}
	for (i = 0; i < 10; i++)
		assert_int_equal(c->reqs[i].count, 1);
	/* Everything reaped: one more poll may clear a stale signal, then the fd is quiet. */
	aioblk_group_poll(c->fx.group, 0);
	assert_false(readable(efd));
	assert_empty_polls_silent(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(empty_polls_no_syscall, setup_plain, teardown),
		cmocka_unit_test_setup_teardown(empty_polls_no_syscall, setup_efd, teardown),
		cmocka_unit_test_setup_teardown(empty_polls_no_syscall_fallback, setup_corrupt, teardown),
		cmocka_unit_test_setup_teardown(corrupt_ring_at_setup, setup_corrupt, teardown),
		cmocka_unit_test_setup_teardown(ring_magic_changes, setup_plain, teardown),
		cmocka_unit_test_setup_teardown(ring_incompat_changes, setup_efd, teardown),
		cmocka_unit_test_setup_teardown(ring_head_out_of_range, setup_fake, teardown),
		cmocka_unit_test_setup_teardown(fake_ring_wraps, setup_fake, teardown),
		cmocka_unit_test_setup_teardown(fake_bad_magic_fallback, setup_fake_bad_magic, teardown),
		cmocka_unit_test_setup_teardown(fallback_decoding, setup_corrupt, teardown),
		cmocka_unit_test_setup_teardown(getevents_eintr, setup_fake_bad_magic, teardown),
		cmocka_unit_test_setup_teardown(getevents_error, setup_fake_bad_magic, teardown),
		cmocka_unit_test_setup_teardown(max_completions_keeps_fd_readable, setup_fake_efd, teardown),
	};

	return tc_run_group(tests, NULL, NULL);
}
