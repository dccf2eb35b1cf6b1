/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A poll returns, even when every callback resubmits and the kernel
 * completes requests inside io_submit; and a poll's budget is shared, so
 * that a channel that always has completions cannot starve the other
 * channels of its group or their resets.
 *
 * Some devices complete a request before io_submit returns (zram, buffered
 * reads of cached pages). When callbacks resubmit and a channel's queue
 * fills a batch (AIOBLK_BATCH_MAX) inside the poll, that batch goes to the
 * kernel at once, its completions are in the ring before the reaping loop
 * looks again, and a poll without a limit (max_completions 0, as
 * aioblk_group_wait uses) could reap forever: the caller never gets control
 * back. aioblk-perf hit this at iodepth 128 on /dev/zram0 (fixed in the
 * library by commit 497d739: no batch submit from inside a poll).
 *
 * Here the callbacks stop resubmitting after a large number of completions,
 * so that the test ends either way; a single poll that ran far more
 * callbacks than the queue depth did not return when it should have.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common.h"

#define FILE_BYTES (4u << 20)
/* A callback stops resubmitting after this many completions in one poll. */
#define RUNAWAY 100000u

struct loop {
	struct aioblk_channel *ch;
	char *buf;
	uint32_t bs;
	uint64_t nblocks;
	unsigned qd;
	unsigned ran; /* callbacks run during the current poll */
	unsigned next;
	int errors;
};

static void
on_done(void *arg, int status)
{
	struct loop *l = arg;

	if (status < 0)
		l->errors++;
	if (++l->ran >= RUNAWAY)
		return;
	/* Same buffer for all: the data does not matter, only the traffic. */
	if (aioblk_read(l->ch, l->buf, l->next++ % l->nblocks, 1, on_done, l) < 0)
		l->errors++;
}

/* Run QD-deep resubmitting reads; every single poll must return after a bounded number of callbacks. */
static void
check_polls(const char *path, uint32_t flags, unsigned qd, bool eventfd)
{
	struct aioblk_disk_opts opts = { .flags = flags };
	struct aioblk_disk *disk;
	struct aioblk_group *g;
	struct loop l;
	unsigned i, most = 0;
	int polls, rc;

	memset(&l, 0, sizeof(l));
	assert_int_equal(aioblk_disk_open(path, &opts, &disk), 0);
	l.bs = aioblk_disk_block_size(disk);
	l.nblocks = aioblk_disk_num_blocks(disk);
	l.qd = qd;
	l.buf = tc_alloc(4096, l.bs);
	assert_non_null(l.buf);
	assert_int_equal(tc_group_create(eventfd ? AIOBLK_GROUP_EVENTFD : 0, &g), 0);
	assert_int_equal(aioblk_channel_create(g, disk, qd, &l.ch), 0);

	for (i = 0; i < qd; i++)
		assert_int_equal(aioblk_read(l.ch, l.buf, l.next++ % l.nblocks, 1, on_done, &l), 0);
	for (polls = 0; polls < 200; polls++) {
		l.ran = 0;
		rc = eventfd ? aioblk_group_wait(g, 1000) : aioblk_group_poll(g, 0);
		assert_true(rc >= 0);
		if (l.ran > most)
			most = l.ran;
		if (l.ran >= RUNAWAY)
			break;
	}
	if (most > 4 * qd)
		print_error("%s: one %s ran %u callbacks at queue depth %u (it returns only when callbacks stop "
			    "resubmitting)\n",
			    path, eventfd ? "aioblk_group_wait" : "aioblk_group_poll(0)", most, qd);
	/* Let the rest drain: callbacks no longer resubmit once ran >= RUNAWAY. */
	l.ran = RUNAWAY;
	while (aioblk_channel_inflight(l.ch))
		assert_true(aioblk_group_poll(g, 0) >= 0);
	assert_int_equal(l.errors, 0);
	assert_int_equal(aioblk_channel_destroy(l.ch), 0);
	assert_int_equal(aioblk_group_destroy(g), 0);
	assert_int_equal(aioblk_disk_close(disk), 0);
	free(l.buf);
	assert_true(most <= 4 * qd);
}

static char file_path[256];

static int
make_cached_file(void **state)
{
	char *buf;
	FILE *f;

	assert_int_equal(tc_make_file(NULL, FILE_BYTES, file_path, sizeof(file_path)), 0);
	/* Written through the page cache, so buffered reads are cache hits that complete inside io_submit. */
	buf = calloc(1, FILE_BYTES);
	assert_non_null(buf);
	f = fopen(file_path, "r+");
	assert_non_null(f);
	assert_int_equal(fwrite(buf, 1, FILE_BYTES, f), FILE_BYTES);
	fclose(f);
	free(buf);
	return 0;
}

/* Below one batch nothing is submitted inside the poll: the control case. */
static void
test_poll_returns_qd32_buffered(void **state)
{
	check_polls(file_path, AIOBLK_DISK_BUFFERED, 32, false);
}

static void
test_poll_returns_qd128_buffered(void **state)
{
	check_polls(file_path, AIOBLK_DISK_BUFFERED, 128, false);
}

static void
test_poll_returns_qd256_buffered(void **state)
{
	check_polls(file_path, AIOBLK_DISK_BUFFERED, 256, false);
}

static void
test_wait_returns_qd128_buffered(void **state)
{
	check_polls(file_path, AIOBLK_DISK_BUFFERED, 128, true);
}

/* A callback that issues the next write-zeroes: each poll runs the one that was waiting, and returns. */
struct zero_chain {
	struct aioblk_channel *ch;
	unsigned done, left;
};

static void
zero_chain_cb(void *arg, int status)
{
	struct zero_chain *z = arg;

	assert_int_equal(status, 0);
	z->done++;
	if (z->left-- > 0)
		assert_int_equal(aioblk_write_zeroes(z->ch, z->done % 64, 1, zero_chain_cb, z), 0);
}

static void
check_write_zeroes_chain(uint32_t group_flags)
{
	struct aioblk_disk *disk;
	struct aioblk_group *g;
	struct zero_chain z = { NULL, 0, RUNAWAY };

	assert_int_equal(aioblk_disk_open(file_path, NULL, &disk), 0);
	assert_int_equal(tc_group_create(group_flags, &g), 0);
	assert_int_equal(aioblk_channel_create(g, disk, 4, &z.ch), 0);
	assert_int_equal(aioblk_write_zeroes(z.ch, 0, 1, zero_chain_cb, &z), 0);
	for (unsigned i = 1; i <= 5; i++) {
		/*
		 * Each runs on a worker and comes back to a later poll: a wait
		 * returns the one callback, whose next write-zeroes is not run
		 * in the same poll (in eventfd mode too: the fd's second pass
		 * reaps rings only).
		 */
		assert_int_equal(aioblk_group_wait(g, 10000), 1);
		assert_int_equal(z.done, i);
	}
	z.left = 0;
	assert_int_equal(aioblk_group_wait(g, 10000), 1);
	assert_int_equal(aioblk_channel_inflight(z.ch), 0);
	assert_int_equal(aioblk_channel_destroy(z.ch), 0);
	assert_int_equal(aioblk_group_destroy(g), 0);
	assert_int_equal(aioblk_disk_close(disk), 0);
}

static void
test_poll_returns_write_zeroes_chain(void **state)
{
	(void)state;
	check_write_zeroes_chain(0);
}

static void
test_poll_returns_write_zeroes_chain_eventfd(void **state)
{
	(void)state;
	check_write_zeroes_chain(AIOBLK_GROUP_EVENTFD);
}

/*
 * Channel 1 of a group always has completions (64 resubmitting cached
 * reads); polls have a budget of 8. A read on channel 2, or a reset there,
 * must still complete within a few polls.
 */
static void
check_no_starvation(bool reset)
{
	struct aioblk_disk_opts opts = { .flags = AIOBLK_DISK_BUFFERED };
	struct aioblk_disk *disk;
	struct aioblk_group *g;
	struct aioblk_channel *ch2;
	struct tc_result r = { 0, 0 };
	struct loop l;
	char *buf2;
	int polls;

	memset(&l, 0, sizeof(l));
	assert_int_equal(aioblk_disk_open(file_path, &opts, &disk), 0);
	l.bs = aioblk_disk_block_size(disk);
	l.nblocks = aioblk_disk_num_blocks(disk);
	l.qd = 64;
	l.buf = tc_alloc(4096, l.bs);
	buf2 = tc_alloc(4096, l.bs);
	assert_int_equal(tc_group_create(0, &g), 0);
	assert_int_equal(aioblk_channel_create(g, disk, l.qd, &l.ch), 0);
	assert_int_equal(aioblk_channel_create(g, disk, 8, &ch2), 0);
	for (unsigned i = 0; i < l.qd; i++)
		assert_int_equal(aioblk_read(l.ch, l.buf, l.next++ % l.nblocks, 1, on_done, &l), 0);
	assert_true(aioblk_group_submit(g) >= 0);
	if (reset)
		assert_int_equal(aioblk_reset(ch2, tc_cb, &r), 0);
	else
		assert_int_equal(aioblk_read(ch2, buf2, 1, 1, tc_cb, &r), 0);
	assert_true(aioblk_group_submit(g) >= 0);
	for (polls = 0; polls < 1000 && r.count == 0; polls++)
		assert_in_range(aioblk_group_poll(g, 8), 0, 8);
	if (r.count == 0)
		print_error(
			"the %s on channel 2 did not complete in %d polls of budget 8 (channel 1 ran %u callbacks)\n",
			reset ? "reset" : "read", polls, l.ran);
	assert_int_equal(r.count, 1);
	assert_int_equal(r.status, 0);
	/* Channel 1 kept its share too. */
	assert_true(l.ran > 0);
	l.ran = RUNAWAY;
	while (aioblk_channel_inflight(l.ch))
		assert_true(aioblk_group_poll(g, 0) >= 0);
	assert_int_equal(l.errors, 0);
	assert_int_equal(aioblk_channel_destroy(ch2), 0);
	assert_int_equal(aioblk_channel_destroy(l.ch), 0);
	assert_int_equal(aioblk_group_destroy(g), 0);
	assert_int_equal(aioblk_disk_close(disk), 0);
	free(l.buf);
	free(buf2);
}

static void
test_busy_channel_does_not_starve_read(void **state)
{
	(void)state;
	check_no_starvation(false);
}

static void
test_busy_channel_does_not_starve_reset(void **state)
{
	(void)state;
	check_no_starvation(true);
}

static void
test_poll_returns_qd128_zram(void **state)
{
	char dev[64];

	if (!tc_is_root()) {
		tc_skip();
		return;
	}
	if (tc_zram_add("16M", NULL, dev, sizeof(dev)) < 0) {
		tc_skip();
		return;
	}
	check_polls(dev, 0, 128, false);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_poll_returns_qd32_buffered),
		cmocka_unit_test(test_poll_returns_qd128_buffered),
		cmocka_unit_test(test_poll_returns_qd256_buffered),
		cmocka_unit_test(test_wait_returns_qd128_buffered),
		cmocka_unit_test(test_poll_returns_qd128_zram),
		cmocka_unit_test(test_poll_returns_write_zeroes_chain),
		cmocka_unit_test(test_poll_returns_write_zeroes_chain_eventfd),
		cmocka_unit_test(test_busy_channel_does_not_starve_read),
		cmocka_unit_test(test_busy_channel_does_not_starve_reset),
	};

	return tc_run_group(tests, make_cached_file, NULL);
}
