/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * aioblk_write_zeroes and aioblk_unmap on real targets: ext4, tmpfs and
 * ramfs files, loop devices with 512 and 4096-byte sectors, a loop device
 * whose backing file cannot punch holes, and a private zram. A pattern is
 * written first; afterwards the range reads back as zeroes and its
 * neighbours are untouched. aioblk_disk_supports(UNMAP) is checked against
 * what the kernel really does, not against a table.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "feat.h"

#define TARGET_BYTES (4u << 20)
#define REGION (512u << 10)
#define ZERO_OFF (64u << 10)
#define ZERO_LEN (192u << 10) /* more than the library's 64 KiB zero buffer: its write fallback loops */
#define UNMAP_OFF (320u << 10)
#define UNMAP_LEN (128u << 10)

/* What the kernel says to an unmap of the range, asked directly, behind the library. */
static int
kernel_unmap(const char *path, bool blockdev, uint64_t off, uint64_t len)
{
	uint64_t range[2] = { off, len };
	int fd = open(path, O_RDWR | O_CLOEXEC);
	int rc;

	assert_true(fd >= 0);
	if (blockdev)
		rc = ioctl(fd, BLKDISCARD, range);
	else
		rc = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len);
	rc = rc < 0 ? -errno : 0;
	close(fd);
	return rc;
}

/* @got must equal @want except for [off, off + len), which must be zeroes. */
static void
expect_zeroed(const unsigned char *got, const unsigned char *want, size_t size, size_t off, size_t len,
	      const char *what)
{
	size_t i;

	for (i = 0; i < size; i++) {
		bool inside = i >= off && i < off + len;

		if (inside ? got[i] != 0 : got[i] != want[i]) {
			print_error("%s: byte %zu (%s the range [%zu, %zu)) is 0x%02x, expected 0x%02x\n", what, i,
				    inside ? "inside" : "outside", off, off + len, got[i], inside ? 0 : want[i]);
			fail();
		}
	}
}

static void
read_region(struct feat *f, unsigned char *rd)
{
	memset(rd, 0xa5, REGION);
	assert_int_equal(tc_sync_read(f->group, f->ch, rd, 0, REGION / f->bs), 0);
}

static long long
allocated_blocks(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return (long long)st.st_blocks;
}

static uint64_t
byte_size(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return (uint64_t)st.st_size;
}

static void
check_target(enum feat_kind kind, uint32_t flags)
{
	bool blockdev = feat_kind_is_blockdev(kind);
	struct aioblk_disk_opts opts = { 0 };
	struct feat_log log = { 0 };
	struct tc_result r = { 0, 0 };
	unsigned char *pat, *rd;
	char path[256];
	struct feat f;
	uint64_t nblocks, size_before;
	long long before;
	bool unmap;
	int i;

	feat_make_target_or_skip(kind, TARGET_BYTES, path, sizeof(path));
	aioblk_set_log_fn(feat_log_fn, &log);
	opts.flags = flags;
	assert_int_equal(feat_open(&f, path, &opts, NULL, 0), 0);
	nblocks = aioblk_disk_num_blocks(f.disk);
	assert_int_equal(REGION % f.bs, 0);

	pat = tc_alloc(4096, REGION);
	rd = tc_alloc(4096, REGION);
	assert_non_null(pat);
	assert_non_null(rd);
	tc_fill(pat, REGION, 0x2e0 + (uint64_t)kind);
	assert_int_equal(tc_sync_write(f.group, f.ch, pat, 0, REGION / f.bs), 0);
	read_region(&f, rd);
	assert_memory_equal(rd, pat, REGION);

	/* Write zeroes: always possible on a writable disk (writing zeroes is the last fallback). */
	assert_true(aioblk_disk_supports(f.disk, AIOBLK_IO_WRITE_ZEROES));
	assert_int_equal(aioblk_write_zeroes(f.ch, ZERO_OFF / f.bs, ZERO_LEN / f.bs, tc_cb, &r), 0);
	assert_int_equal(feat_poll_count(f.group, &r, 1, NULL, NULL), 0);
	assert_int_equal(r.count, 1);
	assert_int_equal(r.status, 0);
	read_region(&f, rd);
	expect_zeroed(rd, pat, REGION, ZERO_OFF, ZERO_LEN, "write-zeroes");
	memset(pat + ZERO_OFF, 0, ZERO_LEN);

	/* Unmap: supports() must say what the kernel does. */
	unmap = aioblk_disk_supports(f.disk, AIOBLK_IO_UNMAP);
	if (blockdev) {
		long long max = feat_sysfs_ll(path, "queue/discard_max_bytes");

		print_message("%s: discard_max_bytes %lld, supports(UNMAP) %d\n", feat_kind_name(kind), max, unmap);
		assert_int_equal(unmap, max > 0);
	}
	before = blockdev ? 0 : allocated_blocks(path);
	r = (struct tc_result){ 0, 0 };
	if (unmap) {
		assert_int_equal(aioblk_unmap(f.ch, UNMAP_OFF / f.bs, UNMAP_LEN / f.bs, tc_cb, &r), 0);
		assert_int_equal(feat_poll_count(f.group, &r, 1, NULL, NULL), 0);
		assert_int_equal(r.count, 1);
		assert_int_equal(r.status, 0);
		read_region(&f, rd);
		expect_zeroed(rd, pat, REGION, UNMAP_OFF, UNMAP_LEN, "unmap");
		memset(pat + UNMAP_OFF, 0, UNMAP_LEN);
		/* A file got a hole: fewer blocks are allocated. */
		if (!blockdev)
			assert_true(allocated_blocks(path) < before);
	} else {
		assert_int_equal(aioblk_unmap(f.ch, UNMAP_OFF / f.bs, UNMAP_LEN / f.bs, tc_cb, &r), -EOPNOTSUPP);
		assert_int_equal(feat_poll_some(f.group), 0);
		assert_int_equal(r.count, 0);
		read_region(&f, rd);
		assert_memory_equal(rd, pat, REGION);
		/* The library said no: the kernel must really refuse, asked directly. */
		assert_int_equal(kernel_unmap(path, blockdev, UNMAP_OFF, UNMAP_LEN), -EOPNOTSUPP);
	}

	/* Inside one page (512-byte blocks): the rest of the page is kept. */
	if (f.bs < 4096) {
		r = (struct tc_result){ 0, 0 };
		assert_int_equal(aioblk_write_zeroes(f.ch, (40960 + 512) / f.bs, 1024 / f.bs, tc_cb, &r), 0);
		assert_int_equal(feat_poll_count(f.group, &r, 1, NULL, NULL), 0);
		assert_int_equal(r.status, 0);
		read_region(&f, rd);
		expect_zeroed(rd, pat, REGION, 40960 + 512, 1024, "write-zeroes inside a page");
		memset(pat + 40960 + 512, 0, 1024);
		if (unmap) {
			r = (struct tc_result){ 0, 0 };
			assert_int_equal(aioblk_unmap(f.ch, (49152 + 1024) / f.bs, 1024 / f.bs, tc_cb, &r), 0);
			assert_int_equal(feat_poll_count(f.group, &r, 1, NULL, NULL), 0);
			assert_int_equal(r.status, 0);
			read_region(&f, rd);
			expect_zeroed(rd, pat, REGION, 49152 + 1024, 1024, "unmap inside a page");
		}
	}

	/* The last blocks: done in place, the size does not change. */
	size_before = blockdev ? 0 : byte_size(path);
	r = (struct tc_result){ 0, 0 };
	assert_int_equal(aioblk_write_zeroes(f.ch, nblocks - 2, 2, tc_cb, &r), 0);
	if (unmap)
		assert_int_equal(aioblk_unmap(f.ch, nblocks - 1, 1, tc_cb, &r), 0);
	assert_int_equal(feat_poll_count(f.group, &r, unmap ? 2 : 1, NULL, NULL), 0);
	assert_int_equal(r.status, 0);
	if (!blockdev)
		assert_int_equal(byte_size(path), size_before);
	assert_int_equal(aioblk_disk_num_blocks(f.disk), nblocks);

	/* Ranges are checked like any I/O; refused calls never call back. */
	r = (struct tc_result){ 0, 0 };
	assert_int_equal(aioblk_write_zeroes(f.ch, nblocks - 1, 2, tc_cb, &r), -EINVAL);
	assert_int_equal(aioblk_write_zeroes(f.ch, 0, 0, tc_cb, &r), -EINVAL);
	assert_int_equal(aioblk_write_zeroes(f.ch, UINT64_MAX, 2, tc_cb, &r), -EINVAL);
	assert_int_equal(aioblk_write_zeroes(f.ch, 0, 1, NULL, &r), -EINVAL);
	assert_int_equal(aioblk_write_zeroes(NULL, 0, 1, tc_cb, &r), -EINVAL);
	if (unmap) {
		assert_int_equal(aioblk_unmap(f.ch, nblocks, 1, tc_cb, &r), -EINVAL);
		assert_int_equal(aioblk_unmap(f.ch, 0, 0, tc_cb, &r), -EINVAL);
	}
	assert_int_equal(feat_poll_some(f.group), 0);
	assert_int_equal(r.count, 0);

	for (i = 0; i < log.n; i++)
		print_message("%s: log %d: %s\n", feat_kind_name(kind), log.level[i], log.msg[i]);
	aioblk_set_log_fn(NULL, NULL);
	feat_close(&f);
	free(pat);
	free(rd);
}

static void
test_ext4_file(void **state)
{
	(void)state;
	check_target(FEAT_EXT4_FILE, 0);
}

/* tmpfs refuses FALLOC_FL_ZERO_RANGE on this kernel: the fallback must still give zeroes. */
static void
test_tmpfs_file(void **state)
{
	(void)state;
	check_target(FEAT_TMPFS_FILE, 0);
}

/* ramfs has neither O_DIRECT nor fallocate: unmap unsupported, zeroes written. */
static void
test_ramfs_file(void **state)
{
	(void)state;
	check_target(FEAT_RAMFS_FILE, 0);
}

static void
test_loop_512(void **state)
{
	(void)state;
	check_target(FEAT_LOOP_512, 0);
}

/* Through the page cache: the kernel's zeroing and discard must keep the cache coherent. */
static void
test_loop_512_buffered(void **state)
{
	(void)state;
	check_target(FEAT_LOOP_512, AIOBLK_DISK_BUFFERED);
}

static void
test_loop_4096(void **state)
{
	(void)state;
	check_target(FEAT_LOOP_4096, 0);
}

/* A loop device over a file that cannot punch holes has no discard. */
static void
test_loop_ramfs(void **state)
{
	(void)state;
	check_target(FEAT_LOOP_RAMFS, 0);
}

static void
test_zram(void **state)
{
	(void)state;
	check_target(FEAT_ZRAM, 0);
}

/* The fallbacks of write-zeroes on tmpfs are taken and said (with the disk's name). */
static void
test_tmpfs_fallback_logged(void **state)
{
	struct aioblk_disk_opts opts = { .name = "tmpfs-zero-disk" };
	struct feat_log log = { 0 };
	struct tc_result r = { 0, 0 };
	char path[256];
	struct feat f;
	int rc;

	(void)state;
	feat_make_target_or_skip(FEAT_TMPFS_FILE, TARGET_BYTES, path, sizeof(path));
	/* The kernel's answer, asked directly: does tmpfs take ZERO_RANGE here? */
	{
		int fd = open(path, O_RDWR | O_CLOEXEC);

		assert_true(fd >= 0);
		rc = fallocate(fd, FALLOC_FL_ZERO_RANGE, 0, 4096) < 0 ? -errno : 0;
		close(fd);
	}
	print_message("tmpfs FALLOC_FL_ZERO_RANGE: %d\n", rc);
	aioblk_set_log_fn(feat_log_fn, &log);
	assert_int_equal(feat_open(&f, path, &opts, NULL, 0), 0);
	assert_int_equal(aioblk_write_zeroes(f.ch, 0, 8, tc_cb, &r), 0);
	assert_int_equal(aioblk_write_zeroes(f.ch, 8, 8, tc_cb, &r), 0);
	assert_int_equal(feat_poll_count(f.group, &r, 2, NULL, NULL), 0);
	assert_int_equal(r.status, 0);
	if (rc == -EOPNOTSUPP)
		assert_true(feat_log_find(&log, "tmpfs-zero-disk", "ZERO_RANGE") >= 0);
	else
		assert_int_equal(feat_log_find(&log, "tmpfs-zero-disk", "ZERO_RANGE"), -1);
	aioblk_set_log_fn(NULL, NULL);
	feat_close(&f);
}

static void
test_readonly(void **state)
{
	struct aioblk_disk_opts opts = { .flags = AIOBLK_DISK_READONLY };
	struct tc_result r = { 0, 0 };
	char path[256];
	struct feat f;

	(void)state;
	assert_int_equal(tc_make_file(NULL, TARGET_BYTES, path, sizeof(path)), 0);
	assert_int_equal(feat_open(&f, path, &opts, NULL, 0), 0);
	assert_false(aioblk_disk_supports(f.disk, AIOBLK_IO_WRITE_ZEROES));
	assert_false(aioblk_disk_supports(f.disk, AIOBLK_IO_UNMAP));
	assert_false(aioblk_disk_supports(f.disk, AIOBLK_IO_WRITE));
	assert_false(aioblk_disk_supports(f.disk, AIOBLK_IO_FUA_WRITE));
	assert_true(aioblk_disk_supports(f.disk, AIOBLK_IO_READ));
	assert_true(aioblk_disk_supports(f.disk, AIOBLK_IO_FLUSH));
	assert_true(aioblk_disk_supports(f.disk, AIOBLK_IO_RESET));
	assert_int_equal(aioblk_write_zeroes(f.ch, 0, 8, tc_cb, &r), -EROFS);
	assert_int_equal(aioblk_unmap(f.ch, 0, 8, tc_cb, &r), -EROFS);
	assert_int_equal(feat_poll_some(f.group), 0);
	assert_int_equal(r.count, 0);
	feat_close(&f);
}

/* A read-only block device too (no probe ran at open). */
static void
test_readonly_loop(void **state)
{
	struct aioblk_disk_opts opts = { .flags = AIOBLK_DISK_READONLY };
	struct tc_result r = { 0, 0 };
	char path[256];
	struct feat f;

	(void)state;
	feat_make_target_or_skip(FEAT_LOOP_4096, TARGET_BYTES, path, sizeof(path));
	assert_int_equal(feat_open(&f, path, &opts, NULL, 0), 0);
	assert_false(aioblk_disk_supports(f.disk, AIOBLK_IO_UNMAP));
	assert_false(aioblk_disk_supports(f.disk, AIOBLK_IO_WRITE_ZEROES));
	assert_int_equal(aioblk_write_zeroes(f.ch, 0, 1, tc_cb, &r), -EROFS);
	assert_int_equal(aioblk_unmap(f.ch, 0, 1, tc_cb, &r), -EROFS);
	assert_int_equal(feat_poll_some(f.group), 0);
	assert_int_equal(r.count, 0);
	feat_close(&f);
}

/*
 * Write-zeroes and unmap complete without a kernel event: an event loop
 * sleeping on the group's eventfd must still be woken for their callbacks.
 */
static void
test_eventfd_wakeup(void **state)
{
	struct tc_result r = { 0, 0 };
	struct pollfd pfd;
	char path[256];
	struct feat f;

	(void)state;
	assert_int_equal(tc_make_file(NULL, TARGET_BYTES, path, sizeof(path)), 0);
	assert_int_equal(feat_open(&f, path, NULL, NULL, AIOBLK_GROUP_EVENTFD), 0);
	pfd = (struct pollfd){ .fd = aioblk_group_fd(f.group), .events = POLLIN };
	assert_true(pfd.fd >= 0);
	assert_int_equal(aioblk_write_zeroes(f.ch, 0, 8, tc_cb, &r), 0);
	assert_int_equal(poll(&pfd, 1, 5000), 1);
	assert_int_equal(aioblk_group_poll(f.group, 0), 1);
	assert_int_equal(r.count, 1);
	assert_int_equal(r.status, 0);
	if (aioblk_disk_supports(f.disk, AIOBLK_IO_UNMAP)) {
		assert_int_equal(aioblk_unmap(f.ch, 0, 8, tc_cb, &r), 0);
		assert_int_equal(poll(&pfd, 1, 5000), 1);
		assert_int_equal(aioblk_group_poll(f.group, 0), 1);
		assert_int_equal(r.count, 2);
		assert_int_equal(r.status, 0);
	}
	feat_close(&f);
}

/* A full channel refuses them like any request (-EAGAIN) and calls nothing back. */
static void
test_queue_full(void **state)
{
	struct aioblk_channel_opts copts = { .queue_depth = 1 };
	struct tc_result w = { 0, 0 }, never = { 0, 0 };
	char path[256];
	struct feat f;
	void *buf;

	(void)state;
	assert_int_equal(tc_make_file(NULL, TARGET_BYTES, path, sizeof(path)), 0);
	assert_int_equal(feat_open(&f, path, NULL, &copts, 0), 0);
	buf = tc_alloc(4096, 4096);
	memset(buf, 1, 4096);
	assert_int_equal(aioblk_write(f.ch, buf, 0, 4096 / f.bs, tc_cb, &w), 0);
	assert_int_equal(aioblk_write_zeroes(f.ch, 8, 8, tc_cb, &never), -EAGAIN);
	if (aioblk_disk_supports(f.disk, AIOBLK_IO_UNMAP))
		assert_int_equal(aioblk_unmap(f.ch, 8, 8, tc_cb, &never), -EAGAIN);
	assert_int_equal(feat_poll_count(f.group, &w, 1, NULL, NULL), 0);
	assert_int_equal(feat_poll_some(f.group), 0);
	assert_int_equal(never.count, 0);
	assert_int_equal(aioblk_write_zeroes(f.ch, 8, 8, tc_cb, &w), 0);
	assert_int_equal(feat_poll_count(f.group, &w, 2, NULL, NULL), 0);
	assert_int_equal(w.status, 0);
	feat_close(&f);
	free(buf);
}

/* The reset's callback: what the writes before it had seen by then. */
struct reset_view {
	struct tc_result *w1, *w2;
	int count, w1_seen, w2_seen;
};

static void
reset_view_cb(void *arg, int status)
{
	struct reset_view *v = arg;

	assert_int_equal(status, 0);
	v->count++;
	v->w1_seen = v->w1->count;
	v->w2_seen = v->w2->count;
}

/*
 * Write-zeroes completes without the kernel (it waits on the done list)
 * while the requests accepted after it are still in the kernel: each of
 * those completes exactly once, when the kernel says so, and a reset
 * behind them waits for them. (A shared list link once let the done list
 * run them early and the kernel run them again; the fuzzer found it.)
 */
static void
test_kernel_requests_behind_done_list(void **state)
{
	struct tc_result z = { 0, 0 }, w1 = { 0, 0 }, w2 = { 0, 0 };
	struct reset_view v = { &w1, &w2, 0, 0, 0 };
	unsigned char *buf, *rd;
	char path[256];
	struct feat f;

	(void)state;
	assert_int_equal(tc_make_file(NULL, TARGET_BYTES, path, sizeof(path)), 0);
	assert_int_equal(feat_open(&f, path, NULL, NULL, 0), 0);
	buf = tc_alloc(4096, 2 * 4096);
	rd = tc_alloc(4096, 2 * 4096);
	tc_fill(buf, 2 * 4096, 7);
	assert_int_equal(aioblk_write_zeroes(f.ch, 0, 4096 / f.bs, tc_cb, &z), 0);
	assert_int_equal(aioblk_write(f.ch, buf, 4096 / f.bs, 4096 / f.bs, tc_cb, &w1), 0);
	assert_int_equal(aioblk_write(f.ch, buf + 4096, 2 * 4096 / f.bs, 4096 / f.bs, tc_cb, &w2), 0);
	assert_int_equal(aioblk_reset(f.ch, reset_view_cb, &v), 0);
	assert_int_equal(feat_poll_count(f.group, &w2, 1, NULL, NULL), 0);
	assert_int_equal(feat_poll_count(f.group, &w1, 1, NULL, NULL), 0);
	assert_int_equal(feat_poll_count(f.group, &z, 1, NULL, NULL), 0);
	for (int i = 0; i < 1000 && v.count == 0; i++)
		assert_true(aioblk_group_poll(f.group, 0) >= 0);
	assert_int_equal(v.count, 1);
	assert_int_equal(v.w1_seen, 1);
	assert_int_equal(v.w2_seen, 1);
	/* Nothing runs twice. */
	assert_int_equal(feat_poll_some(f.group), 0);
	assert_int_equal(z.count, 1);
	assert_int_equal(w1.count, 1);
	assert_int_equal(w2.count, 1);
	assert_int_equal(aioblk_channel_inflight(f.ch), 0);
	assert_int_equal(tc_sync_read(f.group, f.ch, rd, 4096 / f.bs, 2 * 4096 / f.bs), 0);
	assert_memory_equal(rd, buf, 2 * 4096);
	feat_close(&f);
	free(buf);
	free(rd);
}

/* supports() of nothing, and of a type it does not know. */
static void
test_supports_args(void **state)
{
	char path[256];
	struct feat f;

	(void)state;
	assert_false(aioblk_disk_supports(NULL, AIOBLK_IO_READ));
	assert_int_equal(tc_make_file(NULL, TARGET_BYTES, path, sizeof(path)), 0);
	assert_int_equal(feat_open(&f, path, NULL, NULL, 0), 0);
	assert_false(aioblk_disk_supports(f.disk, (enum aioblk_io_type)99));
	assert_false(aioblk_disk_supports(f.disk, (enum aioblk_io_type) - 1));
	feat_close(&f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ext4_file),
		cmocka_unit_test(test_tmpfs_file),
		cmocka_unit_test(test_ramfs_file),
		cmocka_unit_test(test_loop_512),
		cmocka_unit_test(test_loop_512_buffered),
		cmocka_unit_test(test_loop_4096),
		cmocka_unit_test(test_loop_ramfs),
		cmocka_unit_test(test_zram),
		cmocka_unit_test(test_tmpfs_fallback_logged),
		cmocka_unit_test(test_readonly),
		cmocka_unit_test(test_readonly_loop),
		cmocka_unit_test(test_eventfd_wakeup),
		cmocka_unit_test(test_queue_full),
		cmocka_unit_test(test_kernel_requests_behind_done_list),
		cmocka_unit_test(test_supports_args),
	};

	return tc_run_group(tests, NULL, NULL);
}
