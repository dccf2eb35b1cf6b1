/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * AIOBLK_DISK_NOWAIT on block devices, against the real kernel, with
 * io_submit wrapped to see every iocb's aio_rw_flags. What this kernel does
 * (checked): a loop device takes RWF_NOWAIT, and a read needing more than
 * BIO_MAX_VECS pages completes with -EAGAIN; a zram refuses RWF_NOWAIT at
 * io_submit with -EOPNOTSUPP (no FMODE_NOWAIT). The library must retry an
 * -EAGAIN once without the flag (never requeue it with the flag), and turn
 * the flag off for the disk on -EOPNOTSUPP (here also faked on a loop
 * device, which would take it).
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
#include <sys/uio.h>

#include <cmocka.h>

#include "feat.h"
#include "sys.h"

#define TARGET_BYTES (16u << 20)

struct seen {
	const struct iocb *iocb;
	int opcode;
	unsigned flags;
	int refused; /* 0, or the error io_submit gave for it */
};
static struct seen seen[4096];
static int nseen;
static int refuse_nowait; /* refuse this many RWF_NOWAIT iocbs with EOPNOTSUPP ourselves */

int __real_aioblk_sys_io_submit(io_context_t ctx, long nr, struct iocb **iocbs);
int __wrap_aioblk_sys_io_submit(io_context_t ctx, long nr, struct iocb **iocbs);

static void
record(const struct iocb *iocb, int refused)
{
	if (nseen == (int)(sizeof(seen) / sizeof(seen[0])))
		return;
	seen[nseen].iocb = iocb;
	seen[nseen].opcode = iocb->aio_lio_opcode;
	seen[nseen].flags = (unsigned)iocb->aio_rw_flags;
	seen[nseen].refused = refused;
	nseen++;
}

int
__wrap_aioblk_sys_io_submit(io_context_t ctx, long nr, struct iocb **iocbs)
{
	long i, take = nr;
	int rc;

	if (refuse_nowait)
		for (i = 0; i < nr; i++)
			if (iocbs[i]->aio_rw_flags & RWF_NOWAIT) {
				take = i;
				break;
			}
	if (take == 0) {
		refuse_nowait--;
		record(iocbs[0], -EOPNOTSUPP);
		return -EOPNOTSUPP;
	}
	rc = __real_aioblk_sys_io_submit(ctx, take, iocbs);
	if (rc < 0 && rc != -EAGAIN)
		record(iocbs[0], rc);
	for (i = 0; i < rc; i++)
		record(iocbs[i], 0);
	return rc;
}

static int
reset_wraps(void **state)
{
	(void)state;
	nseen = 0;
	refuse_nowait = 0;
	return 0;
}

static void
open_kind(enum feat_kind kind, struct feat *f, uint32_t flags, const char *name)
{
	struct aioblk_disk_opts opts = { .flags = flags, .name = name };
	char path[256];

	feat_make_target_or_skip(kind, TARGET_BYTES, path, sizeof(path));
	assert_int_equal(feat_open(f, path, &opts, NULL, 0), 0);
}

/* Write @len bytes of pattern @seed at block 0 (plain writes: never NOWAIT). */
static void
fill(struct feat *f, size_t len, uint64_t seed)
{
	unsigned char *buf = tc_alloc(4096, len);
	int first = nseen, i;

	tc_fill(buf, len, seed);
	assert_int_equal(tc_sync_write(f->group, f->ch, buf, 0, len / f->bs), 0);
	for (i = first; i < nseen; i++)
		assert_int_equal(seen[i].flags & RWF_NOWAIT, 0);
	free(buf);
}

static int
reads_with_nowait(int from)
{
	int i, n = 0;

	for (i = from; i < nseen; i++)
		n += (seen[i].opcode == IO_CMD_PREAD || seen[i].opcode == IO_CMD_PREADV) &&
		     (seen[i].flags & RWF_NOWAIT);
	return n;
}

/* Small reads on a loop device carry RWF_NOWAIT, work, and need no retry. */
static void
test_loop_reads(void **state)
{
	struct aioblk_channel_stats st;
	unsigned char *buf;
	struct feat f;
	int first;

	(void)state;
	open_kind(FEAT_LOOP_4096, &f, AIOBLK_DISK_NOWAIT, NULL);
	fill(&f, 64 << 10, 21);
	buf = tc_alloc(4096, 64 << 10);
	first = nseen;
	assert_int_equal(tc_sync_read(f.group, f.ch, buf, 0, (64 << 10) / f.bs), 0);
	assert_int_equal(tc_check(buf, 64 << 10, 21), -1);
	assert_int_equal(nseen, first + 1);
	assert_int_equal(reads_with_nowait(first), 1);
	/* Flushes never carry it (the kernel says EINVAL to RWF_NOWAIT on FDSYNC). */
	first = nseen;
	assert_int_equal(tc_sync_flush(f.group, f.ch), 0);
	assert_int_equal(seen[first].opcode, IO_CMD_FDSYNC);
	assert_int_equal(seen[first].flags, 0);
	assert_int_equal(aioblk_channel_get_stats(f.ch, &st), 0);
	assert_int_equal(st.retries, 0);
	assert_int_equal(st.errors, 0);
	feat_close(&f);
	free(buf);
}

/*
 * A read of 300 separate pages needs more than BIO_MAX_VECS: with
 * RWF_NOWAIT the kernel completes it with -EAGAIN. The library retries it
 * once, without the flag; the callback runs once, with 0, and the data is
 * right. The disk keeps NOWAIT for later reads.
 */
static void
test_loop_eagain_retried(void **state)
{
	struct aioblk_channel_stats st;
	struct tc_result r = { 0, 0 };
	struct iovec iov[300];
	unsigned char *mem, *small;
	const struct iocb *iocb = NULL;
	struct feat f;
	int first, i, times = 0;

	(void)state;
	open_kind(FEAT_LOOP_4096, &f, AIOBLK_DISK_NOWAIT, NULL);
	fill(&f, 300 * 4096, 22);
	mem = tc_alloc(4096, 600 * 4096);
	memset(mem, 0, 600 * 4096);
	for (i = 0; i < 300; i++)
		iov[i] = (struct iovec){ mem + (size_t)i * 8192, 4096 };
	first = nseen;
	assert_int_equal(aioblk_readv(f.ch, iov, 300, 0, 300 * 4096 / f.bs, tc_cb, &r), 0);
	assert_int_equal(feat_poll_count(f.group, &r, 1, NULL, NULL), 0);
	assert_int_equal(feat_poll_some(f.group), 0);
	assert_int_equal(r.count, 1);
	assert_int_equal(r.status, 0);
	for (i = 0; i < 300; i++)
		assert_int_equal(tc_check(iov[i].iov_base, 4096, 22 + (uint64_t)i * 512), -1);

	/* The kernel saw it twice: with the flag, then (the retry) without; never again with it. */
	for (i = first; i < nseen; i++) {
		if (seen[i].opcode != IO_CMD_PREADV)
			continue;
		if (!iocb)
			iocb = seen[i].iocb;
		assert_ptr_equal(seen[i].iocb, iocb);
		if (times == 0)
			assert_true(seen[i].flags & RWF_NOWAIT);
		else
			assert_int_equal(seen[i].flags & RWF_NOWAIT, 0);
		times++;
	}
	print_message("big NOWAIT read submitted %d times\n", times);
	assert_int_equal(times, 2);
	assert_int_equal(aioblk_channel_get_stats(f.ch, &st), 0);
	assert_int_equal(st.retries, 1);
	assert_int_equal(st.errors, 0);
	assert_int_equal(st.reads, 1);

	/* EAGAIN does not turn the flag off for the disk. */
	small = tc_alloc(4096, 4096);
	first = nseen;
	assert_int_equal(tc_sync_read(f.group, f.ch, small, 0, 4096 / f.bs), 0);
	assert_int_equal(reads_with_nowait(first), 1);
	feat_close(&f);
	free(mem);
	free(small);
}

/*
 * zram refuses RWF_NOWAIT at io_submit (-EOPNOTSUPP). The read is sent
 * again without the flag and works; the disk stops asking; said once with
 * the disk's name.
 */
static void
test_zram_eopnotsupp(void **state)
{
	struct aioblk_channel_stats st;
	struct feat_log log = { 0 };
	struct tc_result r = { 0, 0 };
	unsigned char *buf[4];
	struct feat f;
	int first, i, refused = 0;

	(void)state;
	aioblk_set_log_fn(feat_log_fn, &log);
	open_kind(FEAT_ZRAM, &f, AIOBLK_DISK_NOWAIT, "zram-nowait");
	fill(&f, 64 << 10, 23);
	first = nseen;
	/* Four reads queued in one batch: all prepared with the flag. */
	for (i = 0; i < 4; i++) {
		buf[i] = tc_alloc(4096, 16384);
		assert_int_equal(aioblk_read(f.ch, buf[i], (uint64_t)i * (16384 / f.bs), 16384 / f.bs, tc_cb, &r), 0);
	}
	assert_int_equal(feat_poll_count(f.group, &r, 4, NULL, NULL), 0);
	assert_int_equal(r.status, 0);
	for (i = 0; i < 4; i++)
		assert_int_equal(tc_check(buf[i], 16384, 23 + (uint64_t)i * 2048), -1);
	for (i = first; i < nseen; i++)
		refused += seen[i].refused == -EOPNOTSUPP;
	print_message("zram: %d NOWAIT reads refused by the kernel\n", refused);
	assert_true(refused >= 1);
	assert_int_equal(aioblk_channel_get_stats(f.ch, &st), 0);
	assert_int_equal(st.errors, 0);
	assert_int_equal(st.reads, 4);
	assert_true(feat_log_find(&log, "zram-nowait", "NOWAIT") >= 0);

	/* From now on the disk does not ask. */
	first = nseen;
	assert_int_equal(tc_sync_read(f.group, f.ch, buf[0], 0, 16384 / f.bs), 0);
	assert_int_equal(reads_with_nowait(first), 0);
	assert_int_equal(nseen, first + 1);
	aioblk_set_log_fn(NULL, NULL);
	feat_close(&f);
	for (i = 0; i < 4; i++)
		free(buf[i]);
}

/* The same, faked on a loop device (which would take the flag). */
static void
test_faked_eopnotsupp(void **state)
{
	struct tc_result r = { 0, 0 };
	unsigned char *buf;
	struct feat f;
	int first;

	(void)state;
	open_kind(FEAT_LOOP_4096, &f, AIOBLK_DISK_NOWAIT, NULL);
	fill(&f, 64 << 10, 24);
	buf = tc_alloc(4096, 64 << 10);
	refuse_nowait = 1;
	first = nseen;
	assert_int_equal(aioblk_read(f.ch, buf, 0, (64 << 10) / f.bs, tc_cb, &r), 0);
	assert_int_equal(feat_poll_count(f.group, &r, 1, NULL, NULL), 0);
	assert_int_equal(r.status, 0);
	assert_int_equal(tc_check(buf, 64 << 10, 24), -1);
	assert_int_equal(refuse_nowait, 0);
	assert_int_equal(nseen, first + 2);
	assert_int_equal(seen[first].refused, -EOPNOTSUPP);
	assert_int_equal(seen[first + 1].flags & RWF_NOWAIT, 0);
	first = nseen;
	assert_int_equal(tc_sync_read(f.group, f.ch, buf, 0, (64 << 10) / f.bs), 0);
	assert_int_equal(reads_with_nowait(first), 0);
	feat_close(&f);
	free(buf);
}

/* Without the flag, on files, and on buffered block devices: never RWF_NOWAIT. */
static void
check_never(enum feat_kind kind, uint32_t flags)
{
	unsigned char *buf;
	struct feat f;
	int first;

	open_kind(kind, &f, flags, NULL);
	fill(&f, 16384, 25);
	buf = tc_alloc(4096, 16384);
	first = nseen;
	assert_int_equal(tc_sync_read(f.group, f.ch, buf, 0, 16384 / f.bs), 0);
	assert_int_equal(tc_check(buf, 16384, 25), -1);
	assert_int_equal(nseen, first + 1);
	assert_int_equal(reads_with_nowait(first), 0);
	feat_close(&f);
	free(buf);
}

static void
test_never_without_flag(void **state)
{
	(void)state;
	check_never(FEAT_LOOP_4096, 0);
}

static void
test_never_on_files(void **state)
{
	(void)state;
	check_never(FEAT_EXT4_FILE, AIOBLK_DISK_NOWAIT);
}

static void
test_never_buffered(void **state)
{
	(void)state;
	check_never(FEAT_LOOP_4096, AIOBLK_DISK_NOWAIT | AIOBLK_DISK_BUFFERED);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_loop_reads, reset_wraps),
		cmocka_unit_test_setup(test_loop_eagain_retried, reset_wraps),
		cmocka_unit_test_setup(test_zram_eopnotsupp, reset_wraps),
		cmocka_unit_test_setup(test_faked_eopnotsupp, reset_wraps),
		cmocka_unit_test_setup(test_never_without_flag, reset_wraps),
		cmocka_unit_test_setup(test_never_on_files, reset_wraps),
		cmocka_unit_test_setup(test_never_buffered, reset_wraps),
	};

	return tc_run_group(tests, NULL, NULL);
}
