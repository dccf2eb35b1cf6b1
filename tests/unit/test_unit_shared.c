/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * io_submit's partial answers (DESIGN.md §6.1) when one call carries the
 * requests of several disks: a SHARED_CONTEXT group's batch. A partial
 * submit that ends inside one channel's run, EAGAIN, and a refused iocb of
 * one disk in the middle of the others', with the real kernel behind the
 * seam: every request runs once, with its own result, and lands on its own
 * disk.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libaio.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common.h"
#include "fake_sys.h"
#include "fixture.h"

#define BS 4096u
#define NDISK 3
#define NREQ 12 /* request i writes block i of disk i % NDISK: byte offsets are unique across the disks */

struct ctx {
	char path[NDISK][256];
	struct aioblk_disk *disk[NDISK];
	struct aioblk_group *g;
	struct aioblk_channel *ch[NDISK];
	char *buf;
	struct fx_req reqs[NREQ];
};

static int
setup(void **state)
{
	struct aioblk_group_opts opts = { .flags = AIOBLK_GROUP_SHARED_CONTEXT, .queue_depth = 32 };
	struct ctx *c = calloc(1, sizeof(*c));

	fake_reset();
	assert_non_null(c);
	assert_int_equal(aioblk_group_create_ext(&opts, &c->g), 0);
	for (int d = 0; d < NDISK; d++) {
		assert_int_equal(tc_make_file(NULL, NREQ * BS, c->path[d], sizeof(c->path[d])), 0);
		assert_int_equal(aioblk_disk_open(c->path[d], NULL, &c->disk[d]), 0);
		assert_int_equal(aioblk_channel_create(c->g, c->disk[d], 8, &c->ch[d]), 0);
	}
	c->buf = tc_alloc(BS, NREQ * BS);
	assert_non_null(c->buf);
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
	for (int d = 0; d < NDISK; d++) {
		assert_int_equal(aioblk_channel_inflight(c->ch[d]), 0);
		assert_int_equal(aioblk_channel_destroy(c->ch[d]), 0);
		assert_int_equal(aioblk_disk_close(c->disk[d]), 0);
		unlink(c->path[d]);
	}
	assert_int_equal(aioblk_group_destroy(c->g), 0);
	free(c->buf);
	free(c);
	return 0;
}

static void
write_all(struct ctx *c)
{
	for (unsigned i = 0; i < NREQ; i++) {
		struct aioblk_disk *disk = c->disk[i % NDISK];
		uint64_t per = BS / aioblk_disk_block_size(disk);

		assert_int_equal(aioblk_write(c->ch[i % NDISK], c->buf + i * BS, i * per, per, fx_cb, &c->reqs[i]), 0);
	}
}

static void
drive(struct ctx *c)
{
	int64_t deadline = tc_now_ms() + 10000;
	unsigned done;

	do {
		assert_true(aioblk_group_poll(c->g, 0) >= 0);
		done = 0;
		for (unsigned i = 0; i < NREQ; i++)
			done += c->reqs[i].count > 0;
	} while (done < NREQ && tc_now_ms() < deadline);
	assert_int_equal(done, NREQ);
}

/* Each request ran once with @want[i] (NULL: all 0); a written block holds its pattern on its own disk, a refused one zeroes. */
static void
assert_results(struct ctx *c, const int *want)
{
	char *check = tc_alloc(BS, BS);

	assert_non_null(check);
	for (unsigned i = 0; i < NREQ; i++) {
		int fd = open(c->path[i % NDISK], O_RDONLY | O_CLOEXEC);

		assert_int_equal(c->reqs[i].count, 1);
		assert_int_equal(c->reqs[i].status, want ? want[i] : 0);
		assert_true(fd >= 0);
		assert_int_equal(pread(fd, check, BS, (off_t)i * BS), (ssize_t)BS);
		close(fd);
		if (!want || want[i] == 0) {
			assert_int_equal(tc_check(check, BS, i + 1), -1);
		} else {
			for (unsigned j = 0; j < BS; j++)
				assert_int_equal(check[j], 0);
		}
	}
	for (int d = 0; d < NDISK; d++)
		assert_int_equal(aioblk_channel_inflight(c->ch[d]), 0);
	free(check);
}

/* One io_submit for all three disks; the kernel takes 5 (ending inside the second round of disks), then EAGAIN. */
static void
partial_then_eagain(void **state)
{
	struct ctx *c = *state;
	static const int script[] = { 5, -EAGAIN };

	write_all(c);
	fake_submit_script(script, 2);
	assert_int_equal(aioblk_group_submit(c->g), 5);
	assert_int_equal(fake_calls[FAKE_IO_SUBMIT], 2);
	assert_int_equal(fake_nlog, 5);
	for (int d = 0; d < NDISK; d++)
		assert_int_equal(aioblk_channel_inflight(c->ch[d]), NREQ / NDISK);
	drive(c);
	assert_results(c, NULL);
	/* Every iocb went to the kernel once, in the order it was queued, whatever its disk. */
	assert_int_equal(fake_nlog, NREQ);
	for (unsigned i = 0; i < NREQ; i++)
		assert_int_equal(fake_log[i].offset, (uint64_t)i * BS);
}

/* Partial takes go on in the same call; each channel counts every call that carried its requests. */
static void
partial_continues(void **state)
{
	struct ctx *c = *state;
	struct aioblk_channel_stats st;

	write_all(c);
	fake_submit_take(4, 100);
	assert_int_equal(aioblk_group_submit(c->g), NREQ);
	assert_int_equal(fake_calls[FAKE_IO_SUBMIT], 3); /* 4 + 4 + 4, each with every disk */
	drive(c);
	assert_results(c, NULL);
	for (int d = 0; d < NDISK; d++) {
		assert_int_equal(aioblk_channel_get_stats(c->ch[d], &st), 0);
		assert_int_equal(st.io_submit_calls, 3);
		assert_int_equal(st.writes, NREQ / NDISK);
		assert_int_equal(st.completions, NREQ / NDISK);
	}
}

/* The kernel refuses one iocb of disk 1 in the middle: that request alone fails; the others, before and after it, of every disk, go on. */
static void
refused_in_the_middle(void **state)
{
	struct ctx *c = *state;
	int want[NREQ] = { 0 };

	want[7] = -EBADF;
	write_all(c);
	fake_refuse_offset(7 * BS, -EBADF, 1);
	assert_int_equal(aioblk_group_submit(c->g), NREQ - 1);
	drive(c);
	assert_results(c, want);
}

/* EAGAIN with nothing in flight: nothing is lost, the next poll hands everything over. */
static void
eagain_first(void **state)
{
	struct ctx *c = *state;
	struct aioblk_channel_stats st;
	uint64_t retries = 0;

	write_all(c);
	fake_fail(FAKE_IO_SUBMIT, -EAGAIN, 2);
	assert_int_equal(aioblk_group_submit(c->g), 0);
	assert_int_equal(aioblk_group_submit(c->g), 0);
	for (unsigned i = 0; i < NREQ; i++)
		assert_int_equal(c->reqs[i].count, 0);
	drive(c);
	assert_results(c, NULL);
	for (int d = 0; d < NDISK; d++) {
		assert_int_equal(aioblk_channel_get_stats(c->ch[d], &st), 0);
		retries += st.retries;
	}
	assert_int_equal(retries, 2);
}

/* A request that is refused, then a partial take that splits the others: each still runs once. */
static void
refused_then_partial(void **state)
{
	struct ctx *c = *state;
	static const int script[] = { 2, 1, 3 };
	int want[NREQ] = { 0 };

	want[4] = -EINVAL;
	want[9] = -EBADF;
	write_all(c);
	fake_refuse_offset(4 * BS, -EINVAL, 1);
	fake_refuse_offset(9 * BS, -EBADF, 1);
	fake_submit_script(script, 3);
	assert_int_equal(aioblk_group_submit(c->g), NREQ - 2);
	drive(c);
	assert_results(c, want);
}

int
main(void)
{
	const struct CMUnitTest cases[] = {
		cmocka_unit_test_setup_teardown(partial_then_eagain, setup, teardown),
		cmocka_unit_test_setup_teardown(partial_continues, setup, teardown),
		cmocka_unit_test_setup_teardown(refused_in_the_middle, setup, teardown),
		cmocka_unit_test_setup_teardown(eagain_first, setup, teardown),
		cmocka_unit_test_setup_teardown(refused_then_partial, setup, teardown),
	};

	return tc_run_group(cases, NULL, NULL);
}
