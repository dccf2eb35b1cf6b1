/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * aioblk_disk_rescan on real files and a loop device: growth becomes usable
 * after a rescan (not before); after shrinking, new I/O beyond the new end
 * is refused with -EINVAL and requests accepted before complete with what
 * the kernel says; a size that is not a multiple of the block size is
 * refused and the old size kept.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "feat.h"

#define MIB (1u << 20)

static void
roundtrip(struct feat *f, uint64_t block, uint64_t seed)
{
	unsigned char *w = tc_alloc(4096, f->bs), *r = tc_alloc(4096, f->bs);

	tc_fill(w, f->bs, seed);
	memset(r, 0, f->bs);
	assert_int_equal(tc_sync_write(f->group, f->ch, w, block, 1), 0);
	assert_int_equal(tc_sync_read(f->group, f->ch, r, block, 1), 0);
	assert_memory_equal(r, w, f->bs);
	free(w);
	free(r);
}

static void
test_grow(void **state)
{
	struct tc_result r = { 0, 0 };
	struct aioblk_group *g2;
	struct aioblk_channel *ch2;
	char path[256];
	struct feat f;
	uint64_t n0;
	void *buf;

	(void)state;
	assert_int_equal(tc_make_file(NULL, MIB, path, sizeof(path)), 0);
	assert_int_equal(feat_open(&f, path, NULL, NULL, 0), 0);
	assert_int_equal(tc_group_create(0, &g2), 0);
	assert_int_equal(aioblk_channel_create(g2, f.disk, 4, &ch2), 0);
	n0 = aioblk_disk_num_blocks(f.disk);
	assert_int_equal(n0, MIB / f.bs);
	buf = tc_alloc(4096, f.bs);
	memset(buf, 0, f.bs);

	assert_int_equal(truncate(path, 2 * MIB), 0);
	/* Not visible before the rescan. */
	assert_int_equal(aioblk_disk_num_blocks(f.disk), n0);
	assert_int_equal(aioblk_write(f.ch, buf, n0, 1, tc_cb, &r), -EINVAL);
	assert_int_equal(aioblk_disk_rescan(f.disk), 0);
	assert_int_equal(aioblk_disk_num_blocks(f.disk), 2 * n0);
	roundtrip(&f, n0, 1);
	roundtrip(&f, 2 * n0 - 1, 2);
	/* Every channel of the disk sees it. */
	assert_int_equal(aioblk_read(ch2, buf, 2 * n0 - 1, 1, tc_cb, &r), 0);
	assert_int_equal(feat_poll_count(g2, &r, 1, NULL, NULL), 0);
	assert_int_equal(r.status, 0);
	assert_int_equal(aioblk_read(f.ch, buf, 2 * n0, 1, tc_cb, &r), -EINVAL);
	assert_int_equal(feat_poll_some(f.group), 0);
	assert_int_equal(r.count, 1);

	assert_int_equal(aioblk_channel_destroy(ch2), 0);
	assert_int_equal(aioblk_group_destroy(g2), 0);
	feat_close(&f);
	free(buf);
}

static void
test_shrink(void **state)
{
	struct tc_result r = { 0, 0 };
	unsigned char *pat, *rd;
	char path[256];
	struct feat f;
	uint64_t n1;

	(void)state;
	assert_int_equal(tc_make_file(NULL, 2 * MIB, path, sizeof(path)), 0);
	assert_int_equal(feat_open(&f, path, NULL, NULL, 0), 0);
	pat = tc_alloc(4096, 64 << 10);
	rd = tc_alloc(4096, 64 << 10);
	tc_fill(pat, 64 << 10, 77);
	n1 = MIB / f.bs;
	assert_int_equal(tc_sync_write(f.group, f.ch, pat, n1 - (64 << 10) / f.bs, (64 << 10) / f.bs), 0);

	assert_int_equal(truncate(path, MIB), 0);
	assert_int_equal(aioblk_disk_rescan(f.disk), 0);
	assert_int_equal(aioblk_disk_num_blocks(f.disk), n1);
	assert_int_equal(aioblk_read(f.ch, rd, n1, 1, tc_cb, &r), -EINVAL);
	assert_int_equal(aioblk_write(f.ch, pat, n1, 1, tc_cb, &r), -EINVAL);
	assert_int_equal(aioblk_read(f.ch, rd, n1 - 1, 2, tc_cb, &r), -EINVAL);
	assert_int_equal(aioblk_write_zeroes(f.ch, n1, 1, tc_cb, &r), -EINVAL);
	if (aioblk_disk_supports(f.disk, AIOBLK_IO_UNMAP))
		assert_int_equal(aioblk_unmap(f.ch, n1, 1, tc_cb, &r), -EINVAL);
	assert_int_equal(feat_poll_some(f.group), 0);
	assert_int_equal(r.count, 0);
	/* What is left is intact and usable. */
	assert_int_equal(tc_sync_read(f.group, f.ch, rd, n1 - (64 << 10) / f.bs, (64 << 10) / f.bs), 0);
	assert_memory_equal(rd, pat, 64 << 10);
	roundtrip(&f, n1 - 1, 3);
	feat_close(&f);
	free(pat);
	free(rd);
}

/* Accepted before the shrink: they go on and complete once, with the kernel's verdict. */
static void
test_shrink_outstanding(void **state)
{
	struct tc_result beyond = { 0, 0 }, across = { 0, 0 }, inside = { 0, 0 };
	unsigned char *a, *b, *c;
	char path[256];
	struct feat f;
	uint64_t n1;

	(void)state;
	assert_int_equal(tc_make_file(NULL, 2 * MIB, path, sizeof(path)), 0);
	assert_int_equal(feat_open(&f, path, NULL, NULL, 0), 0);
	n1 = MIB / f.bs;
	a = tc_alloc(4096, 8192);
	b = tc_alloc(4096, 8192);
	c = tc_alloc(4096, 8192);
	/* Queued, not yet handed to the kernel (no poll since). */
	assert_int_equal(aioblk_read(f.ch, a, n1 + 16, 8192 / f.bs, tc_cb, &beyond), 0);
	assert_int_equal(aioblk_read(f.ch, b, n1 - 4096 / f.bs, 8192 / f.bs, tc_cb, &across), 0);
	assert_int_equal(aioblk_read(f.ch, c, 0, 8192 / f.bs, tc_cb, &inside), 0);
	assert_int_equal(truncate(path, MIB), 0);
	assert_int_equal(aioblk_disk_rescan(f.disk), 0);
	assert_int_equal(feat_poll_count(f.group, &inside, 1, NULL, NULL), 0);
	assert_int_equal(feat_poll_count(f.group, &beyond, 1, NULL, NULL), 0);
	assert_int_equal(feat_poll_count(f.group, &across, 1, NULL, NULL), 0);
	assert_int_equal(feat_poll_some(f.group), 0);
	assert_int_equal(inside.count, 1);
	assert_int_equal(inside.status, 0);
	assert_int_equal(beyond.count, 1);
	assert_int_equal(beyond.status, -EIO);
	assert_int_equal(across.count, 1);
	assert_int_equal(across.status, -EIO);
	feat_close(&f);
	free(a);
	free(b);
	free(c);
}

static void
test_not_multiple(void **state)
{
	struct aioblk_disk_opts opts = { .block_size = 4096 };
	struct tc_result r = { 0, 0 };
	char path[256];
	struct feat f;
	uint64_t n0;
	void *buf;

	(void)state;
	assert_int_equal(tc_make_file(NULL, MIB, path, sizeof(path)), 0);
	assert_int_equal(feat_open(&f, path, &opts, NULL, 0), 0);
	assert_int_equal(f.bs, 4096);
	n0 = aioblk_disk_num_blocks(f.disk);
	buf = tc_alloc(4096, 4096);

	assert_int_equal(truncate(path, 2 * MIB + 512), 0);
	assert_int_equal(aioblk_disk_rescan(f.disk), -EINVAL);
	assert_int_equal(aioblk_disk_num_blocks(f.disk), n0);
	assert_int_equal(aioblk_read(f.ch, buf, n0, 1, tc_cb, &r), -EINVAL);
	roundtrip(&f, n0 - 1, 4);

	assert_int_equal(truncate(path, MIB - 100), 0);
	assert_int_equal(aioblk_disk_rescan(f.disk), -EINVAL);
	assert_int_equal(aioblk_disk_num_blocks(f.disk), n0);

	/* Back to a multiple: accepted again. */
	assert_int_equal(truncate(path, 2 * MIB), 0);
	assert_int_equal(aioblk_disk_rescan(f.disk), 0);
	assert_int_equal(aioblk_disk_num_blocks(f.disk), 2 * n0);
	roundtrip(&f, 2 * n0 - 1, 5);
	assert_int_equal(aioblk_disk_rescan(NULL), -EINVAL);
	feat_close(&f);
	free(buf);
}

/* A loop device grows when its backing file does and losetup -c says so. */
static void
test_grow_loop(void **state)
{
	char path[256], file[256];
	struct feat f;
	uint64_t n0;
	int rc;

	(void)state;
	if (!tc_is_root())
		tc_skip();
	assert_int_equal(tc_make_file(NULL, 4 * MIB, file, sizeof(file)), 0);
	assert_int_equal(tc_loop_attach(file, 4096, true, path, sizeof(path)), 0);
	assert_int_equal(feat_open(&f, path, NULL, NULL, 0), 0);
	n0 = aioblk_disk_num_blocks(f.disk);
	assert_int_equal(n0, 4 * MIB / f.bs);
	assert_int_equal(truncate(file, 8 * MIB), 0);
	rc = tc_sh("losetup -c %s", path);
	assert_int_equal(rc, 0);
	assert_int_equal(aioblk_disk_rescan(f.disk), 0);
	assert_int_equal(aioblk_disk_num_blocks(f.disk), 2 * n0);
	roundtrip(&f, 2 * n0 - 1, 6);
	feat_close(&f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_grow),
		cmocka_unit_test(test_shrink),
		cmocka_unit_test(test_shrink_outstanding),
		cmocka_unit_test(test_not_multiple),
		cmocka_unit_test(test_grow_loop),
	};

	return tc_run_group(tests, NULL, NULL);
}
