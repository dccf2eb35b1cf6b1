/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * aioblk_channel_get_stats against what the test did, on an ext4 file with
 * the real kernel. io_submit is wrapped to count the system calls (and to
 * answer EAGAIN once, for the retry counter); polls are made one by one with
 * aioblk_group_poll so the test knows how many it made and how many ran a
 * callback.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <libaio.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "feat.h"
#include "sys.h"

#define MIB (1u << 20)

static int submit_calls; /* io_submit calls made by the library */
static int submit_taken; /* iocbs the kernel took */
static int eagain_once;

int __real_aioblk_sys_io_submit(io_context_t ctx, long nr, struct iocb **iocbs);
int __wrap_aioblk_sys_io_submit(io_context_t ctx, long nr, struct iocb **iocbs);

int
__wrap_aioblk_sys_io_submit(io_context_t ctx, long nr, struct iocb **iocbs)
{
	int rc;

	submit_calls++;
	if (eagain_once) {
		eagain_once = 0;
		return -EAGAIN;
	}
	rc = __real_aioblk_sys_io_submit(ctx, nr, iocbs);
	if (rc > 0)
		submit_taken += rc;
	return rc;
}

static int
reset_wraps(void **state)
{
	(void)state;
	submit_calls = 0;
	submit_taken = 0;
	eagain_once = 0;
	return 0;
}

static struct aioblk_channel_stats
stats(const struct aioblk_channel *ch)
{
	struct aioblk_channel_stats st;

	memset(&st, 0xff, sizeof(st));
	assert_int_equal(aioblk_channel_get_stats(ch, &st), 0);
	return st;
}

static void
print_stats(const char *what, const struct aioblk_channel_stats *st)
{
	print_message("%s: reads %llu writes %llu flushes %llu other %llu bytes r/w %llu/%llu errors %llu "
		      "retries %llu io_submit %llu completions %llu polls %llu busy %llu\n",
		      what, (unsigned long long)st->reads, (unsigned long long)st->writes,
		      (unsigned long long)st->flushes, (unsigned long long)st->other_ops,
		      (unsigned long long)st->bytes_read, (unsigned long long)st->bytes_written,
		      (unsigned long long)st->errors, (unsigned long long)st->retries,
		      (unsigned long long)st->io_submit_calls, (unsigned long long)st->completions,
		      (unsigned long long)st->polls, (unsigned long long)st->busy_polls);
}

/*
 * Requests one at a time (one io_submit each, one kernel event each), every
 * kind of request, one refused call (not counted), one failing read with a
 * short first part (one retry, one error, two events).
 */
static void
test_counts(void **state)
{
	struct aioblk_channel_stats st;
	struct tc_result r = { 0, 0 };
	unsigned polls = 0, busy = 0;
	unsigned char *buf;
	char path[256];
	struct feat f;
	uint64_t n, bs;
	struct iovec iov;
	int done = 0, events = 0, unmaps = 0;

	(void)state;
	assert_int_equal(tc_make_file(NULL, 4 * MIB, path, sizeof(path)), 0);
	assert_int_equal(feat_open(&f, path, NULL, NULL, 0), 0);
	bs = f.bs;
	n = 8192 / bs;
	buf = tc_alloc(4096, 64 << 10);
	tc_fill(buf, 64 << 10, 31);

	st = stats(f.ch);
	assert_int_equal(st.reads + st.writes + st.flushes + st.other_ops + st.bytes_read + st.bytes_written +
				 st.errors + st.retries + st.io_submit_calls + st.completions + st.polls +
				 st.busy_polls,
			 0);

#define ONE(call)                                                                       \
	do {                                                                            \
		assert_int_equal((call), 0);                                            \
		done++;                                                                 \
		assert_int_equal(feat_poll_count(f.group, &r, done, &polls, &busy), 0); \
		assert_int_equal(r.status, 0);                                          \
	} while (0)

	/* 3 writes, 1 FUA write: 4 writes of 8 KiB. */
	ONE(aioblk_write(f.ch, buf, 0, n, tc_cb, &r));
	ONE(aioblk_write(f.ch, buf, n, n, tc_cb, &r));
	ONE(aioblk_write(f.ch, buf, 2 * n, n, tc_cb, &r));
	iov = (struct iovec){ buf, 8192 };
	ONE(aioblk_writev_ext(f.ch, &iov, 1, 3 * n, n, AIOBLK_WRITE_FUA, tc_cb, &r));
	events += 4;
	/* 2 reads of 8 KiB. */
	ONE(aioblk_read(f.ch, buf, 0, n, tc_cb, &r));
	ONE(aioblk_read(f.ch, buf, n, n, tc_cb, &r));
	events += 2;
	/* 1 flush (async: a kernel event). */
	ONE(aioblk_flush(f.ch, tc_cb, &r));
	events += 1;
	/* Other: write-zeroes, unmap (no kernel events, no io_submit); resets: test_reset_counts. */
	ONE(aioblk_write_zeroes(f.ch, 4 * n, n, tc_cb, &r));
	if (aioblk_disk_supports(f.disk, AIOBLK_IO_UNMAP)) {
		ONE(aioblk_unmap(f.ch, 4 * n, n, tc_cb, &r));
		unmaps = 1;
	}

	/* Refused calls count nothing. */
	assert_int_equal(aioblk_read(f.ch, buf, aioblk_disk_num_blocks(f.disk), 1, tc_cb, &r), -EINVAL);
	assert_int_equal(aioblk_write(f.ch, buf + 1, 0, n, tc_cb, &r), -EINVAL);

	st = stats(f.ch);
	print_stats("after the good requests", &st);
	assert_int_equal(st.writes, 4);
	assert_int_equal(st.reads, 2);
	assert_int_equal(st.flushes, 1);
	assert_int_equal(st.other_ops, 1 + unmaps);
	assert_int_equal(st.bytes_written, 4 * 8192);
	assert_int_equal(st.bytes_read, 2 * 8192);
	assert_int_equal(st.errors, 0);
	assert_int_equal(st.retries, 0);
	assert_int_equal(st.io_submit_calls, submit_calls);
	assert_int_equal(st.io_submit_calls, 7);
	assert_int_equal(st.completions, events);
	assert_int_equal(st.polls, polls);
	assert_int_equal(st.busy_polls, busy);

	/*
	 * A failing read: the file now ends 1 block into an 8 KiB read
	 * (buffered file size, O_DIRECT read): the kernel gives the first
	 * block (short), then nothing. One read, one error, one retry, two
	 * events, no bytes.
	 */
	assert_int_equal(truncate(path, (off_t)(64 * bs + bs)), 0);
	assert_int_equal(aioblk_read(f.ch, buf, 64, n, tc_cb, &r), 0);
	done++;
	assert_int_equal(feat_poll_count(f.group, &r, done, &polls, &busy), 0);
	assert_int_equal(r.status, -EIO);
	st = stats(f.ch);
	print_stats("after the failing read", &st);
	assert_int_equal(st.reads, 3);
	assert_int_equal(st.errors, 1);
	assert_int_equal(st.bytes_read, 2 * 8192);
	assert_int_equal(st.retries, 1);
	assert_int_equal(st.completions, events + 2);
	assert_int_equal(st.io_submit_calls, submit_calls);
	assert_int_equal(st.polls, polls);
	feat_close(&f);
	free(buf);
#undef ONE
}

/* A reset is an "other" op, and the poll that completes it found work. */
static void
test_reset_counts(void **state)
{
	struct aioblk_channel_stats st;
	struct tc_result r = { 0, 0 };
	unsigned polls = 0, busy = 0;
	char path[256];
	struct feat f;

	(void)state;
	assert_int_equal(tc_make_file(NULL, 4 * MIB, path, sizeof(path)), 0);
	assert_int_equal(feat_open(&f, path, NULL, NULL, 0), 0);
	assert_int_equal(aioblk_reset(f.ch, tc_cb, &r), 0);
	assert_int_equal(feat_poll_count(f.group, &r, 1, &polls, &busy), 0);
	assert_int_equal(r.status, 0);
	st = stats(f.ch);
	print_stats("after a reset", &st);
	print_message("reset: %u polls, %u ran a callback\n", polls, busy);
	assert_int_equal(st.other_ops, 1);
	assert_int_equal(st.errors, 0);
	assert_int_equal(st.io_submit_calls, 0);
	assert_int_equal(st.completions, 0);
	assert_int_equal(st.polls, polls);
	assert_int_equal(st.busy_polls, busy);
	feat_close(&f);
}

/* io_submit says EAGAIN once: one retry, one more io_submit call, the request still completes. */
static void
test_submit_eagain(void **state)
{
	struct aioblk_channel_stats st;
	struct tc_result r = { 0, 0 };
	unsigned polls = 0, busy = 0;
	unsigned char *buf;
	char path[256];
	struct feat f;

	(void)state;
	assert_int_equal(tc_make_file(NULL, 4 * MIB, path, sizeof(path)), 0);
	assert_int_equal(feat_open(&f, path, NULL, NULL, 0), 0);
	buf = tc_alloc(4096, 4096);
	memset(buf, 3, 4096);
	eagain_once = 1;
	assert_int_equal(aioblk_write(f.ch, buf, 0, 4096 / f.bs, tc_cb, &r), 0);
	assert_int_equal(feat_poll_count(f.group, &r, 1, &polls, &busy), 0);
	assert_int_equal(r.status, 0);
	st = stats(f.ch);
	print_stats("after a submit EAGAIN", &st);
	assert_int_equal(st.retries, 1);
	assert_int_equal(st.io_submit_calls, 2);
	assert_int_equal(submit_calls, 2);
	assert_int_equal(st.writes, 1);
	assert_int_equal(st.completions, 1);
	assert_int_equal(st.errors, 0);
	assert_int_equal(st.polls, polls);
	assert_int_equal(st.busy_polls, busy);
	feat_close(&f);
	free(buf);
}

/* A batch: many requests, one io_submit; one poll can reap them all. */
static void
test_batch(void **state)
{
	struct aioblk_channel_stats st;
	struct tc_result r = { 0, 0 };
	unsigned polls = 0, busy = 0;
	unsigned char *buf;
	char path[256];
	struct feat f;
	int i;

	(void)state;
	assert_int_equal(tc_make_file(NULL, 4 * MIB, path, sizeof(path)), 0);
	assert_int_equal(feat_open(&f, path, NULL, NULL, 0), 0);
	buf = tc_alloc(4096, 4096);
	memset(buf, 4, 4096);
	for (i = 0; i < 16; i++)
		assert_int_equal(aioblk_write(f.ch, buf, (uint64_t)i * (4096 / f.bs), 4096 / f.bs, tc_cb, &r), 0);
	assert_int_equal(aioblk_group_submit(f.group), 16);
	assert_int_equal(feat_poll_count(f.group, &r, 16, &polls, &busy), 0);
	st = stats(f.ch);
	print_stats("after a batch of 16", &st);
	assert_int_equal(st.io_submit_calls, 1);
	assert_int_equal(st.writes, 16);
	assert_int_equal(st.bytes_written, 16 * 4096);
	assert_int_equal(st.completions, 16);
	assert_int_equal(st.polls, polls);
	assert_int_equal(st.busy_polls, busy);
	feat_close(&f);
	free(buf);
}

/*
 * In eventfd mode too, "polls" counts the polls of the channel: one per
 * aioblk_group_poll, like without the eventfd.
 */
static void
test_polls_eventfd(void **state)
{
	struct aioblk_channel_stats st;
	struct tc_result r = { 0, 0 };
	unsigned polls = 0, busy = 0;
	unsigned char *buf;
	char path[256];
	struct feat f;
	int i;

	(void)state;
	assert_int_equal(tc_make_file(NULL, 4 * MIB, path, sizeof(path)), 0);
	assert_int_equal(feat_open(&f, path, NULL, NULL, AIOBLK_GROUP_EVENTFD), 0);
	buf = tc_alloc(4096, 4096);
	memset(buf, 5, 4096);
	for (i = 0; i < 4; i++) {
		assert_int_equal(aioblk_write(f.ch, buf, (uint64_t)i * (4096 / f.bs), 4096 / f.bs, tc_cb, &r), 0);
		assert_int_equal(feat_poll_count(f.group, &r, i + 1, &polls, &busy), 0);
	}
	st = stats(f.ch);
	print_stats("eventfd group", &st);
	print_message("eventfd group: %u aioblk_group_poll calls, %u ran a callback\n", polls, busy);
	assert_int_equal(st.writes, 4);
	assert_int_equal(st.completions, 4);
	assert_int_equal(st.busy_polls, busy);
	assert_int_equal(st.polls, polls);
	feat_close(&f);
	free(buf);
}

/* Counters are per channel. */
static void
test_per_channel(void **state)
{
	struct aioblk_channel_stats st;
	struct aioblk_channel *ch2;
	struct tc_result r = { 0, 0 };
	unsigned char *buf;
	char path[256];
	struct feat f;

	(void)state;
	assert_int_equal(tc_make_file(NULL, 4 * MIB, path, sizeof(path)), 0);
	assert_int_equal(feat_open(&f, path, NULL, NULL, 0), 0);
	assert_int_equal(aioblk_channel_create(f.group, f.disk, 4, &ch2), 0);
	buf = tc_alloc(4096, 4096);
	memset(buf, 6, 4096);
	assert_int_equal(aioblk_write(f.ch, buf, 0, 4096 / f.bs, tc_cb, &r), 0);
	assert_int_equal(feat_poll_count(f.group, &r, 1, NULL, NULL), 0);
	st = stats(ch2);
	assert_int_equal(st.writes + st.reads + st.io_submit_calls + st.completions + st.bytes_written, 0);
	st = stats(f.ch);
	assert_int_equal(st.writes, 1);
	assert_int_equal(aioblk_channel_get_stats(NULL, &st), -EINVAL);
	assert_int_equal(aioblk_channel_get_stats(f.ch, NULL), -EINVAL);
	assert_int_equal(aioblk_channel_destroy(ch2), 0);
	feat_close(&f);
	free(buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_counts, reset_wraps),
		cmocka_unit_test_setup(test_reset_counts, reset_wraps),
		cmocka_unit_test_setup(test_submit_eagain, reset_wraps),
		cmocka_unit_test_setup(test_batch, reset_wraps),
		cmocka_unit_test_setup(test_polls_eventfd, reset_wraps),
		cmocka_unit_test_setup(test_per_channel, reset_wraps),
	};

	return tc_run_group(tests, NULL, NULL);
}
