/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A poll returns, even when every callback resubmits and the kernel
 * completes requests inside io_submit.
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
	assert_int_equal(aioblk_group_create(eventfd ? AIOBLK_GROUP_EVENTFD : 0, &g), 0);
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

static void
test_poll_returns_qd128_zram(void **state)
{
	char dev[64];

	if (!tc_is_root()) {
		skip();
		return;
	}
	if (tc_zram_add("16M", NULL, dev, sizeof(dev)) < 0) {
		skip();
		return;
	}
	check_polls(dev, 0, 128, false);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_poll_returns_qd32_buffered),  cmocka_unit_test(test_poll_returns_qd128_buffered),
		cmocka_unit_test(test_poll_returns_qd256_buffered), cmocka_unit_test(test_wait_returns_qd128_buffered),
		cmocka_unit_test(test_poll_returns_qd128_zram),
	};

	return cmocka_run_group_tests(tests, make_cached_file, NULL);
}
