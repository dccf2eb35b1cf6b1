/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * FUA writes and flushes against the real kernel, with io_submit and
 * fdatasync wrapped to watch what the library hands over (and, for the
 * fallback, to refuse IOCB_CMD_FDSYNC the way an old kernel would).
 *
 * - FUA: the write iocb carries RWF_DSYNC in aio_rw_flags; plain writes
 *   carry nothing; data round trips on files and block devices.
 * - Flush, async path: an IOCB_CMD_FDSYNC iocb reaches io_submit, no
 *   fdatasync(2) runs, and the callback comes after the FDSYNC was handed
 *   over, which came after the writes completed.
 * - Flush, fallback: io_submit says EINVAL for the FDSYNC once; that flush
 *   still completes with 0 after fdatasync ran, and every later flush of
 *   the disk (any channel) goes to fdatasync without io_submit.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <libaio.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/uio.h>

#include <cmocka.h>

#include "feat.h"
#include "sys.h"

#define TARGET_BYTES (4u << 20)

/* Every iocb the kernel was handed (or refused by us), in order, with a sequence number. */
struct seen {
	int opcode;
	unsigned rw_flags;
	int fd;
	bool refused;
	int seq;
};
static struct seen seen[1024];
static int nseen;
static _Atomic int
	seq; /* global order of events: submits, fdatasyncs, callbacks (fdatasync runs on a library thread) */
static int fail_fdsync; /* refuse this many FDSYNC iocbs with EINVAL */
static _Atomic int fdatasync_calls;
static _Atomic int fdatasync_seq;
static pthread_t fdatasync_thread;
static _Atomic int fdatasync_fail; /* when non-zero: the next fdatasync returns it */

int __real_aioblk_sys_io_submit(io_context_t ctx, long nr, struct iocb **iocbs);
int __wrap_aioblk_sys_io_submit(io_context_t ctx, long nr, struct iocb **iocbs);
int __real_aioblk_sys_fdatasync(int fd);
int __wrap_aioblk_sys_fdatasync(int fd);

static void
record(const struct iocb *iocb, bool refused)
{
	if (nseen == (int)(sizeof(seen) / sizeof(seen[0])))
		return;
	seen[nseen].opcode = iocb->aio_lio_opcode;
	seen[nseen].rw_flags = (unsigned)iocb->aio_rw_flags;
	seen[nseen].fd = iocb->aio_fildes;
	seen[nseen].refused = refused;
	seen[nseen].seq = ++seq;
	nseen++;
}

int
__wrap_aioblk_sys_io_submit(io_context_t ctx, long nr, struct iocb **iocbs)
{
	long i, take = nr;
	int rc;

	/* The kernel stops at the first iocb it refuses: submit the ones before it. */
	if (fail_fdsync)
		for (i = 0; i < nr; i++)
			if (iocbs[i]->aio_lio_opcode == IO_CMD_FDSYNC) {
				take = i;
				break;
			}
	if (take == 0) {
		fail_fdsync--;
		record(iocbs[0], true);
		return -EINVAL;
	}
	rc = __real_aioblk_sys_io_submit(ctx, take, iocbs);
	for (i = 0; i < rc; i++)
		record(iocbs[i], false);
	return rc;
}

int
__wrap_aioblk_sys_fdatasync(int fd)
{
	int rc = __real_aioblk_sys_fdatasync(fd);

	fdatasync_thread = pthread_self();
	fdatasync_calls++;
	fdatasync_seq = ++seq;
	if (fdatasync_fail) {
		rc = fdatasync_fail;
		fdatasync_fail = 0;
	}
	return rc;
}

static int
reset_wraps(void **state)
{
	(void)state;
	nseen = 0;
	seq = 0;
	fail_fdsync = 0;
	fdatasync_calls = 0;
	fdatasync_seq = 0;
	fdatasync_fail = 0;
	return 0;
}

static int
count_opcode(int opcode)
{
	int i, n = 0;

	for (i = 0; i < nseen; i++)
		n += seen[i].opcode == opcode;
	return n;
}

static const struct seen *
last_opcode(int opcode)
{
	int i;

	for (i = nseen - 1; i >= 0; i--)
		if (seen[i].opcode == opcode)
			return &seen[i];
	return NULL;
}

/* A callback that records when it ran in the global order. */
struct ordered {
	int status;
	int count;
	int seq;
};

static void
ordered_cb(void *arg, int status)
{
	struct ordered *o = arg;

	o->status = status;
	o->count++;
	o->seq = ++seq;
}

static void
poll_ordered(struct aioblk_group *g, struct ordered *o, int count)
{
	int i;

	for (i = 0; i < 100000 && o->count < count; i++)
		assert_true(aioblk_group_wait(g, 10) >= 0);
	assert_int_equal(o->count, count);
}

static void
check_fua(enum feat_kind kind)
{
	struct ordered o = { 0, 0, 0 };
	struct iovec iov[3];
	unsigned char *buf, *rd;
	const struct seen *s;
	char path[256];
	struct feat f;
	size_t len;

	feat_make_target_or_skip(kind, TARGET_BYTES, path, sizeof(path));
	assert_int_equal(feat_open(&f, path, NULL, NULL, 0), 0);
	assert_true(aioblk_disk_supports(f.disk, AIOBLK_IO_FUA_WRITE));
	len = 16 * (size_t)f.bs;
	buf = tc_alloc(4096, len);
	rd = tc_alloc(4096, len);
	tc_fill(buf, len, 0xf0a + (uint64_t)kind);

	/* Three pieces: IOCB_CMD_PWRITEV. */
	iov[0] = (struct iovec){ buf, 4 * (size_t)f.bs };
	iov[1] = (struct iovec){ buf + 4 * f.bs, 8 * (size_t)f.bs };
	iov[2] = (struct iovec){ buf + 12 * f.bs, 4 * (size_t)f.bs };
	assert_int_equal(aioblk_writev_ext(f.ch, iov, 3, 32, 16, AIOBLK_WRITE_FUA, ordered_cb, &o), 0);
	poll_ordered(f.group, &o, 1);
	assert_int_equal(o.status, 0);
	s = last_opcode(IO_CMD_PWRITEV);
	assert_non_null(s);
	assert_int_equal(s->rw_flags, RWF_DSYNC);

	/* One piece: IOCB_CMD_PWRITE, same flag. */
	assert_int_equal(aioblk_writev_ext(f.ch, iov, 1, 64, 4, AIOBLK_WRITE_FUA, ordered_cb, &o), 0);
	poll_ordered(f.group, &o, 2);
	assert_int_equal(o.status, 0);
	s = last_opcode(IO_CMD_PWRITE);
	assert_non_null(s);
	assert_int_equal(s->rw_flags, RWF_DSYNC);

	/* Without the flag (plain and _ext with 0): nothing in aio_rw_flags. */
	assert_int_equal(aioblk_writev_ext(f.ch, iov, 3, 128, 16, 0, ordered_cb, &o), 0);
	poll_ordered(f.group, &o, 3);
	assert_int_equal(o.status, 0);
	assert_int_equal(last_opcode(IO_CMD_PWRITEV)->rw_flags, 0);
	assert_int_equal(aioblk_write(f.ch, buf, 256, 16, ordered_cb, &o), 0);
	poll_ordered(f.group, &o, 4);
	assert_int_equal(o.status, 0);
	assert_int_equal(last_opcode(IO_CMD_PWRITE)->rw_flags, 0);

	/* The data is there. */
	memset(rd, 0, len);
	assert_int_equal(tc_sync_read(f.group, f.ch, rd, 32, 16), 0);
	assert_memory_equal(rd, buf, len);
	memset(rd, 0, len);
	assert_int_equal(tc_sync_read(f.group, f.ch, rd, 64, 4), 0);
	assert_memory_equal(rd, buf, 4 * (size_t)f.bs);
	/* Reads never carry RWF_DSYNC. */
	assert_int_equal(last_opcode(IO_CMD_PREAD)->rw_flags & RWF_DSYNC, 0);

	/* Unknown flags are refused; the callback never runs. */
	o.count = 0;
	assert_int_equal(aioblk_writev_ext(f.ch, iov, 3, 32, 16, 1u << 1, ordered_cb, &o), -EINVAL);
	assert_int_equal(aioblk_writev_ext(f.ch, iov, 3, 32, 16, ~0u, ordered_cb, &o), -EINVAL);
	assert_int_equal(feat_poll_some(f.group), 0);
	assert_int_equal(o.count, 0);

	feat_close(&f);
	free(buf);
	free(rd);
}

static void
test_fua_ext4(void **state)
{
	(void)state;
	check_fua(FEAT_EXT4_FILE);
}

static void
test_fua_tmpfs(void **state)
{
	(void)state;
	check_fua(FEAT_TMPFS_FILE);
}

static void
test_fua_loop_4096(void **state)
{
	(void)state;
	check_fua(FEAT_LOOP_4096);
}

static void
test_fua_zram(void **state)
{
	(void)state;
	check_fua(FEAT_ZRAM);
}

static void
test_fua_readonly(void **state)
{
	struct aioblk_disk_opts opts = { .flags = AIOBLK_DISK_READONLY };
	struct ordered o = { 0, 0, 0 };
	struct iovec iov;
	char path[256];
	struct feat f;
	void *buf;

	(void)state;
	assert_int_equal(tc_make_file(NULL, TARGET_BYTES, path, sizeof(path)), 0);
	assert_int_equal(feat_open(&f, path, &opts, NULL, 0), 0);
	buf = tc_alloc(4096, 4096);
	iov = (struct iovec){ buf, 4096 };
	assert_false(aioblk_disk_supports(f.disk, AIOBLK_IO_FUA_WRITE));
	assert_int_equal(aioblk_writev_ext(f.ch, &iov, 1, 0, 4096 / f.bs, AIOBLK_WRITE_FUA, ordered_cb, &o), -EROFS);
	assert_int_equal(feat_poll_some(f.group), 0);
	assert_int_equal(o.count, 0);
	feat_close(&f);
	free(buf);
}

/*
 * The flush contract on the async path: writes complete, then the flush is
 * issued; the FDSYNC reaches the kernel after that and the callback comes
 * after the FDSYNC; fdatasync(2) never runs.
 */
static void
check_flush_async(enum feat_kind kind)
{
	struct ordered w = { 0, 0, 0 }, fl = { 0, 0, 0 };
	const struct seen *s, *wr;
	int issued, i;
	char path[256];
	struct feat f;
	void *buf;

	feat_make_target_or_skip(kind, TARGET_BYTES, path, sizeof(path));
	assert_int_equal(feat_open(&f, path, NULL, NULL, 0), 0);
	buf = tc_alloc(4096, 64 * 1024);
	tc_fill(buf, 64 * 1024, 7);
	for (i = 0; i < 4; i++)
		assert_int_equal(aioblk_write(f.ch, buf, (uint64_t)i * (16384 / f.bs), 16384 / f.bs, ordered_cb, &w),
				 0);
	poll_ordered(f.group, &w, 4);
	assert_int_equal(w.status, 0);
	wr = last_opcode(IO_CMD_PWRITE);
	assert_non_null(wr);

	issued = ++seq;
	assert_int_equal(aioblk_flush(f.ch, ordered_cb, &fl), 0);
	poll_ordered(f.group, &fl, 1);
	assert_int_equal(fl.status, 0);
	s = last_opcode(IO_CMD_FDSYNC);
	assert_non_null(s);
	assert_false(s->refused);
	assert_int_equal(s->fd, wr->fd);
	/* Never RWF_NOWAIT (or anything else) on FDSYNC: the kernel says EINVAL. */
	assert_int_equal(s->rw_flags, 0);
	assert_true(w.seq < issued);
	assert_true(issued < s->seq);
	assert_true(s->seq < fl.seq);
	assert_int_equal(fdatasync_calls, 0);

	/* And again: the async path stays. */
	assert_int_equal(tc_sync_flush(f.group, f.ch), 0);
	assert_int_equal(count_opcode(IO_CMD_FDSYNC), 2);
	assert_int_equal(fdatasync_calls, 0);

	feat_close(&f);
	free(buf);
}

static void
test_flush_async_ext4(void **state)
{
	(void)state;
	check_flush_async(FEAT_EXT4_FILE);
}

static void
test_flush_async_tmpfs(void **state)
{
	(void)state;
	check_flush_async(FEAT_TMPFS_FILE);
}

static void
test_flush_async_loop(void **state)
{
	(void)state;
	check_flush_async(FEAT_LOOP_512);
}

static void
test_flush_async_zram(void **state)
{
	(void)state;
	check_flush_async(FEAT_ZRAM);
}

/*
 * The fallback: the first FDSYNC is refused with EINVAL. That flush still
 * completes with 0, after fdatasync ran, which ran after the flush was
 * issued. Later flushes (this channel and another channel of the disk in
 * another group) go straight to fdatasync; writes still go to io_submit.
 */
static void
test_flush_fallback(void **state)
{
	struct ordered w = { 0, 0, 0 }, fl = { 0, 0, 0 }, fl2 = { 0, 0, 0 };
	struct aioblk_disk_opts opts = { .name = "fallback-disk" };
	struct aioblk_group *g2;
	struct aioblk_channel *ch2;
	struct feat_log log = { 0 };
	const struct seen *s;
	int issued, submits, writes;
	char path[256];
	struct feat f;
	void *buf;

	(void)state;
	assert_int_equal(tc_make_file(NULL, TARGET_BYTES, path, sizeof(path)), 0);
	aioblk_set_log_fn(feat_log_fn, &log);
	assert_int_equal(feat_open(&f, path, &opts, NULL, 0), 0);
	buf = tc_alloc(4096, 16384);
	tc_fill(buf, 16384, 9);
	assert_int_equal(aioblk_write(f.ch, buf, 0, 16384 / f.bs, ordered_cb, &w), 0);
	poll_ordered(f.group, &w, 1);
	assert_int_equal(w.status, 0);

	fail_fdsync = 1;
	issued = ++seq;
	assert_int_equal(aioblk_flush(f.ch, ordered_cb, &fl), 0);
	poll_ordered(f.group, &fl, 1);
	assert_int_equal(fl.status, 0);
	assert_int_equal(fail_fdsync, 0);
	s = last_opcode(IO_CMD_FDSYNC);
	assert_non_null(s);
	assert_true(s->refused);
	assert_int_equal(fdatasync_calls, 1);
	assert_true(w.seq < issued);
	assert_true(issued < fdatasync_seq);
	assert_true(fdatasync_seq < fl.seq);
	assert_true(feat_log_find(&log, "fallback-disk", NULL) >= 0);

	/* Later flushes: no io_submit, fdatasync on a library thread (not inside aioblk_flush). */
	submits = nseen;
	issued = ++seq;
	fl = (struct ordered){ 0, 0, 0 };
	assert_int_equal(aioblk_flush(f.ch, ordered_cb, &fl), 0);
	poll_ordered(f.group, &fl, 1);
	assert_false(pthread_equal(fdatasync_thread, pthread_self()));
	assert_int_equal(fl.status, 0);
	assert_int_equal(nseen, submits);
	assert_int_equal(fdatasync_calls, 2);
	assert_true(issued < fdatasync_seq && fdatasync_seq < fl.seq);

	/* The disk remembers, not the channel: another group's channel falls back too. */
	assert_int_equal(tc_group_create(0, &g2), 0);
	assert_int_equal(aioblk_channel_create(g2, f.disk, 8, &ch2), 0);
	assert_int_equal(aioblk_flush(ch2, ordered_cb, &fl2), 0);
	poll_ordered(g2, &fl2, 1);
	assert_int_equal(fl2.status, 0);
	assert_int_equal(nseen, submits);
	assert_int_equal(fdatasync_calls, 3);

	/* Writes still go to the kernel through io_submit. */
	writes = count_opcode(IO_CMD_PWRITE);
	w = (struct ordered){ 0, 0, 0 };
	assert_int_equal(aioblk_write(ch2, buf, 0, 16384 / f.bs, ordered_cb, &w), 0);
	poll_ordered(g2, &w, 1);
	assert_int_equal(w.status, 0);
	assert_int_equal(count_opcode(IO_CMD_PWRITE), writes + 1);
	assert_int_equal(count_opcode(IO_CMD_FDSYNC), 1);

	assert_int_equal(aioblk_channel_destroy(ch2), 0);
	assert_int_equal(aioblk_group_destroy(g2), 0);
	aioblk_set_log_fn(NULL, NULL);
	feat_close(&f);
	free(buf);
}

/* Refused in the middle of a batch: the write before and the write after still go; all complete. */
static void
test_flush_fallback_mid_batch(void **state)
{
	struct ordered a = { 0, 0, 0 }, fl = { 0, 0, 0 }, b = { 0, 0, 0 };
	unsigned char *buf, *rd;
	char path[256];
	struct feat f;
	uint64_t n;

	(void)state;
	assert_int_equal(tc_make_file(NULL, TARGET_BYTES, path, sizeof(path)), 0);
	assert_int_equal(feat_open(&f, path, NULL, NULL, 0), 0);
	n = 8192 / f.bs;
	buf = tc_alloc(4096, 16384);
	rd = tc_alloc(4096, 16384);
	tc_fill(buf, 16384, 11);
	fail_fdsync = 1;
	assert_int_equal(aioblk_write(f.ch, buf, 0, n, ordered_cb, &a), 0);
	assert_int_equal(aioblk_flush(f.ch, ordered_cb, &fl), 0);
	assert_int_equal(aioblk_write(f.ch, buf + 8192, n, n, ordered_cb, &b), 0);
	poll_ordered(f.group, &a, 1);
	poll_ordered(f.group, &fl, 1);
	poll_ordered(f.group, &b, 1);
	assert_int_equal(a.status, 0);
	assert_int_equal(fl.status, 0);
	assert_int_equal(b.status, 0);
	assert_int_equal(fdatasync_calls, 1);
	assert_int_equal(count_opcode(IO_CMD_PWRITE), 2);
	assert_int_equal(tc_sync_read(f.group, f.ch, rd, 0, 2 * n), 0);
	assert_memory_equal(rd, buf, 16384);
	feat_close(&f);
	free(buf);
	free(rd);
}

/* fdatasync's own error reaches the flush's callback. */
static void
test_flush_fallback_error(void **state)
{
	struct ordered fl = { 0, 0, 0 };
	char path[256];
	struct feat f;

	(void)state;
	assert_int_equal(tc_make_file(NULL, TARGET_BYTES, path, sizeof(path)), 0);
	assert_int_equal(feat_open(&f, path, NULL, NULL, 0), 0);
	fail_fdsync = 1;
	fdatasync_fail = -EIO;
	assert_int_equal(aioblk_flush(f.ch, ordered_cb, &fl), 0);
	poll_ordered(f.group, &fl, 1);
	assert_int_equal(fl.status, -EIO);
	assert_int_equal(fdatasync_calls, 1);
	fl = (struct ordered){ 0, 0, 0 };
	assert_int_equal(aioblk_flush(f.ch, ordered_cb, &fl), 0);
	poll_ordered(f.group, &fl, 1);
	assert_int_equal(fl.status, 0);
	feat_close(&f);
}

static int
fd_readable(struct aioblk_group *g)
{
	struct pollfd pfd = { .fd = aioblk_group_fd(g), .events = POLLIN };

	assert_true(pfd.fd >= 0);
	return poll(&pfd, 1, 5000);
}

/*
 * An event loop sleeping on the group's eventfd learns of flushes that
 * complete without a kernel event: refused at aioblk_group_submit, refused
 * inside a poll, and later flushes that go straight to fdatasync.
 */
static void
test_flush_fallback_eventfd(void **state)
{
	struct ordered fl = { 0, 0, 0 };
	char path[256];
	struct feat f;

	(void)state;
	assert_int_equal(tc_make_file(NULL, TARGET_BYTES, path, sizeof(path)), 0);
	assert_int_equal(feat_open(&f, path, NULL, NULL, AIOBLK_GROUP_EVENTFD), 0);
	fail_fdsync = 1;
	assert_int_equal(aioblk_flush(f.ch, ordered_cb, &fl), 0);
	assert_int_equal(aioblk_group_submit(f.group), 0);
	assert_int_equal(fail_fdsync, 0);
	assert_int_equal(fd_readable(f.group), 1);
	assert_int_equal(aioblk_group_poll(f.group, 0), 1);
	assert_int_equal(fl.count, 1);
	assert_int_equal(fl.status, 0);
	assert_int_equal(fdatasync_calls, 1);

	/* Straight to fdatasync now: aioblk_flush itself must make the fd readable. */
	assert_int_equal(aioblk_flush(f.ch, ordered_cb, &fl), 0);
	assert_int_equal(fd_readable(f.group), 1);
	assert_int_equal(aioblk_group_poll(f.group, 0), 1);
	assert_int_equal(fl.count, 2);
	assert_int_equal(fdatasync_calls, 2);
	feat_close(&f);

	/* Refused inside a poll (a fresh disk: it has not learnt yet). */
	assert_int_equal(tc_make_file(NULL, TARGET_BYTES, path, sizeof(path)), 0);
	assert_int_equal(feat_open(&f, path, NULL, NULL, AIOBLK_GROUP_EVENTFD), 0);
	fail_fdsync = 1;
	fl = (struct ordered){ 0, 0, 0 };
	assert_int_equal(aioblk_flush(f.ch, ordered_cb, &fl), 0);
	assert_int_equal(aioblk_group_poll(f.group, 0), 0);
	assert_int_equal(fail_fdsync, 0);
	assert_int_equal(fd_readable(f.group), 1);
	assert_int_equal(aioblk_group_poll(f.group, 0), 1);
	assert_int_equal(fl.count, 1);
	assert_int_equal(fl.status, 0);
	feat_close(&f);
}

static void
test_fua_ramfs(void **state)
{
	(void)state;
	check_fua(FEAT_RAMFS_FILE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_fua_ext4, reset_wraps),
		cmocka_unit_test_setup(test_fua_tmpfs, reset_wraps),
		cmocka_unit_test_setup(test_fua_ramfs, reset_wraps),
		cmocka_unit_test_setup(test_fua_loop_4096, reset_wraps),
		cmocka_unit_test_setup(test_fua_zram, reset_wraps),
		cmocka_unit_test_setup(test_fua_readonly, reset_wraps),
		cmocka_unit_test_setup(test_flush_async_ext4, reset_wraps),
		cmocka_unit_test_setup(test_flush_async_tmpfs, reset_wraps),
		cmocka_unit_test_setup(test_flush_async_loop, reset_wraps),
		cmocka_unit_test_setup(test_flush_async_zram, reset_wraps),
		cmocka_unit_test_setup(test_flush_fallback, reset_wraps),
		cmocka_unit_test_setup(test_flush_fallback_mid_batch, reset_wraps),
		cmocka_unit_test_setup(test_flush_fallback_error, reset_wraps),
		cmocka_unit_test_setup(test_flush_fallback_eventfd, reset_wraps),
	};

	return tc_run_group(tests, NULL, NULL);
}
