/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Data round trips on real files: O_DIRECT on the root file system (ext4),
 * tmpfs, buffered; one buffer and several iovecs; verified byte by byte,
 * also after closing and reopening. Queue-full and callback chains.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common.h"

#define FILE_BYTES (8u << 20)

struct env {
	char path[256];
	struct aioblk_disk *disk;
	struct aioblk_group *group;
	struct aioblk_channel *ch;
	uint32_t bs;
	size_t align;
};

static void
env_open(struct env *e, const char *dir, uint32_t flags, unsigned qd)
{
	struct aioblk_disk_opts opts = { .flags = flags };

	assert_int_equal(tc_make_file(dir, FILE_BYTES, e->path, sizeof(e->path)), 0);
	assert_int_equal(aioblk_disk_open(e->path, &opts, &e->disk), 0);
	assert_int_equal(tc_group_create(0, &e->group), 0);
	assert_int_equal(aioblk_channel_create(e->group, e->disk, qd, &e->ch), 0);
	e->bs = aioblk_disk_block_size(e->disk);
	e->align = aioblk_disk_buf_align(e->disk) < 4096 ? 4096 : aioblk_disk_buf_align(e->disk);
}

static void
env_reopen(struct env *e, uint32_t flags)
{
	struct aioblk_disk_opts opts = { .flags = flags };

	assert_int_equal(aioblk_channel_destroy(e->ch), 0);
	assert_int_equal(aioblk_disk_close(e->disk), 0);
	assert_int_equal(aioblk_disk_open(e->path, &opts, &e->disk), 0);
	assert_int_equal(aioblk_channel_create(e->group, e->disk, 0, &e->ch), 0);
}

static void
env_close(struct env *e)
{
	assert_int_equal(aioblk_channel_inflight(e->ch), 0);
	assert_int_equal(aioblk_channel_destroy(e->ch), 0);
	assert_int_equal(aioblk_group_destroy(e->group), 0);
	assert_int_equal(aioblk_disk_close(e->disk), 0);
	unlink(e->path);
}

/* Write @n blocks at @off with a pattern, read them back through 3 iovecs, compare. */
static void
roundtrip(struct env *e, uint64_t off, uint64_t n, uint64_t seed)
{
	size_t bytes = (size_t)n * e->bs;
	unsigned char *w = tc_alloc(e->align, bytes);
	unsigned char *r = tc_alloc(e->align, bytes);
	struct iovec iov[3];
	struct tc_result res = { 0, 0 };
	size_t a, b;

	assert_non_null(w);
	assert_non_null(r);
	tc_fill(w, bytes, seed);
	memset(r, 0xee, bytes);
	assert_int_equal(tc_sync_write(e->group, e->ch, w, off, n), 0);
	/* Split the read into unequal block-multiple pieces. */
	a = n >= 3 ? e->bs : 0;
	b = n >= 3 ? 2 * (size_t)e->bs : 0;
	iov[0] = (struct iovec){ r, a };
	iov[1] = (struct iovec){ r + a, b };
	iov[2] = (struct iovec){ r + a + b, bytes - a - b };
	assert_int_equal(aioblk_readv(e->ch, iov, 3, off, n, tc_cb, &res), 0);
	assert_int_equal(tc_wait_count(e->group, &res, 1, 10000), 0);
	assert_int_equal(res.status, 0);
	assert_int_equal(res.count, 1);
	assert_int_equal(tc_check(r, bytes, seed), -1);
	free(w);
	free(r);
}

static void
check_blocks(struct env *e, uint64_t off, uint64_t n, uint64_t seed)
{
	size_t bytes = (size_t)n * e->bs;
	unsigned char *r = tc_alloc(e->align, bytes);

	assert_non_null(r);
	assert_int_equal(tc_sync_read(e->group, e->ch, r, off, n), 0);
	assert_int_equal(tc_check(r, bytes, seed), -1);
	free(r);
}

static void
run_roundtrips(const char *dir, uint32_t flags, bool expect_direct)
{
	struct env e;
	uint64_t last;

	env_open(&e, dir, flags, 0);
	assert_int_equal(aioblk_disk_is_direct(e.disk), expect_direct);
	last = aioblk_disk_num_blocks(e.disk);
	roundtrip(&e, 0, 1, 1);
	roundtrip(&e, 7, 3, 2);
	roundtrip(&e, 100, 64, 3);
	roundtrip(&e, last - 5, 5, 4); /* the very end */
	assert_int_equal(tc_sync_flush(e.group, e.ch), 0);
	env_reopen(&e, flags);
	check_blocks(&e, 0, 1, 1);
	check_blocks(&e, 7, 3, 2);
	check_blocks(&e, 100, 64, 3);
	check_blocks(&e, last - 5, 5, 4);
	env_close(&e);
}

static void
test_direct_ext4(void **state)
{
	(void)state;
	run_roundtrips("/var/tmp", AIOBLK_DISK_REQUIRE_DIRECT, true);
}

static void
test_buffered(void **state)
{
	(void)state;
	run_roundtrips("/var/tmp", AIOBLK_DISK_BUFFERED, false);
}

static void
test_tmpfs(void **state)
{
	char dir[256];

	(void)state;
	if (!tc_is_root())
		tc_skip();
	assert_int_equal(tc_mount_tmpfs("32m", dir, sizeof(dir)), 0);
	run_roundtrips(dir, 0, true);
	run_roundtrips(dir, AIOBLK_DISK_BUFFERED, false);
	tc_umount(dir);
}

/* More iovecs than fit inline in a request slot, up to IOV_MAX. */
static void
test_many_iovecs(void **state)
{
	static const int counts[] = { 5, 16, IOV_MAX };
	struct env e;
	size_t i;

	(void)state;
	env_open(&e, NULL, 0, 0);
	for (i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		int n = counts[i], k;
		size_t bytes = (size_t)n * e.bs;
		unsigned char *w = tc_alloc(e.align, bytes), *r = tc_alloc(e.align, bytes);
		struct iovec *wi = calloc((size_t)n, sizeof(*wi)), *ri = calloc((size_t)n, sizeof(*ri));
		struct tc_result res = { 0, 0 };

		assert_non_null(w);
		assert_non_null(r);
		tc_fill(w, bytes, 50 + i);
		memset(r, 0, bytes);
		/* Scatter in reverse order so that a wrong iovec order shows. */
		for (k = 0; k < n; k++) {
			wi[k] = (struct iovec){ w + (size_t)(n - 1 - k) * e.bs, e.bs };
			ri[k] = (struct iovec){ r + (size_t)(n - 1 - k) * e.bs, e.bs };
		}
		assert_int_equal(aioblk_writev(e.ch, wi, n, 10, (uint64_t)n, tc_cb, &res), 0);
		assert_int_equal(tc_wait_count(e.group, &res, 1, 10000), 0);
		assert_int_equal(res.status, 0);
		assert_int_equal(aioblk_readv(e.ch, ri, n, 10, (uint64_t)n, tc_cb, &res), 0);
		assert_int_equal(tc_wait_count(e.group, &res, 2, 10000), 0);
		assert_int_equal(res.status, 0);
		assert_int_equal(tc_check(r, bytes, 50 + i), -1);
		free(wi);
		free(ri);
		free(w);
		free(r);
	}
	env_close(&e);
}

/* A full queue refuses with -EAGAIN, loses nothing, and takes requests again after a poll. */
static void
test_queue_full(void **state)
{
	struct env e;
	unsigned char *buf;
	struct tc_result res[5];
	int i;

	(void)state;
	env_open(&e, NULL, 0, 4);
	buf = tc_alloc(e.align, 5 * (size_t)e.bs);
	assert_non_null(buf);
	memset(res, 0, sizeof(res));
	for (i = 0; i < 4; i++)
		assert_int_equal(aioblk_read(e.ch, buf + (size_t)i * e.bs, (uint64_t)i, 1, tc_cb, &res[i]), 0);
	assert_int_equal(aioblk_channel_inflight(e.ch), 4);
	assert_int_equal(aioblk_read(e.ch, buf + 4 * (size_t)e.bs, 4, 1, tc_cb, &res[4]), -EAGAIN);
	assert_int_equal(aioblk_flush(e.ch, tc_cb, &res[4]), -EAGAIN);
	assert_int_equal(res[4].count, 0);
	/* A reset takes no slot: a full queue is when it is wanted most. */
	assert_int_equal(aioblk_reset(e.ch, tc_cb, &res[4]), 0);
	assert_int_equal(aioblk_channel_inflight(e.ch), 5);
	for (i = 0; i < 4; i++) {
		assert_int_equal(tc_wait_count(e.group, &res[i], 1, 10000), 0);
		assert_int_equal(res[i].status, 0);
	}
	assert_int_equal(tc_wait_count(e.group, &res[4], 1, 10000), 0);
	assert_int_equal(res[4].status, 0);
	assert_int_equal(aioblk_channel_inflight(e.ch), 0);
	memset(&res[4], 0, sizeof(res[4]));
	assert_int_equal(aioblk_read(e.ch, buf + 4 * (size_t)e.bs, 4, 1, tc_cb, &res[4]), 0);
	assert_int_equal(tc_wait_count(e.group, &res[4], 1, 10000), 0);
	assert_int_equal(res[4].count, 1);
	for (i = 0; i < 4; i++)
		assert_int_equal(res[i].count, 1);
	free(buf);
	env_close(&e);
}

/* Callbacks that submit the next request: a chain of writes, then of reads, through poll. */
struct chain {
	struct env *e;
	unsigned char *buf;
	uint64_t next;
	uint64_t total;
	bool reading;
	int error;
	int done;
};

static void
chain_cb(void *arg, int status)
{
	struct chain *c = arg;
	int rc;

	if (status)
		c->error = status;
	if (c->next == c->total) {
		c->done = 1;
		return;
	}
	c->next++;
	if (c->reading)
		rc = aioblk_read(c->e->ch, c->buf + (c->next - 1) * c->e->bs, c->next - 1, 1, chain_cb, c);
	else
		rc = aioblk_write(c->e->ch, c->buf + (c->next - 1) * c->e->bs, c->next - 1, 1, chain_cb, c);
	if (rc)
		c->error = rc;
}

static bool
chain_done(void *arg)
{
	return ((struct chain *)arg)->done;
}

static void
test_callback_chain(void **state)
{
	struct env e;
	struct chain c = { 0 };
	unsigned char *check;
	size_t bytes;

	(void)state;
	env_open(&e, NULL, 0, 2);
	c.e = &e;
	c.total = 200;
	bytes = (size_t)c.total * e.bs;
	c.buf = tc_alloc(e.align, bytes);
	check = tc_alloc(e.align, bytes);
	assert_non_null(c.buf);
	assert_non_null(check);
	tc_fill(c.buf, bytes, 77);
	c.next = 1;
	assert_int_equal(aioblk_write(e.ch, c.buf, 0, 1, chain_cb, &c), 0);
	assert_int_equal(tc_poll_until(e.group, chain_done, &c, 20000), 0);
	assert_int_equal(c.error, 0);

	memset(c.buf, 0, bytes);
	c.reading = true;
	c.done = 0;
	c.next = 1;
	assert_int_equal(aioblk_read(e.ch, c.buf, 0, 1, chain_cb, &c), 0);
	assert_int_equal(tc_poll_until(e.group, chain_done, &c, 20000), 0);
	assert_int_equal(c.error, 0);
	assert_int_equal(tc_check(c.buf, bytes, 77), -1);
	free(check);
	free(c.buf);
	env_close(&e);
}

/* Many requests at once across random places, then verify all. */
static void
test_deep_queue(void **state)
{
	enum { N = 256 };
	struct env e;
	unsigned char *buf;
	struct tc_result res = { 0, 0 };
	uint64_t blocks;
	int i, errors = 0;

	(void)state;
	env_open(&e, NULL, 0, N);
	blocks = aioblk_disk_num_blocks(e.disk);
	buf = tc_alloc(e.align, (size_t)N * e.bs);
	assert_non_null(buf);
	tc_fill(buf, (size_t)N * e.bs, 9);
	/* Block i goes to (i * 37) mod blocks: all different for N < blocks. */
	for (i = 0; i < N; i++)
		assert_int_equal(
			aioblk_write(e.ch, buf + (size_t)i * e.bs, ((uint64_t)i * 37) % blocks, 1, tc_cb, &res), 0);
	assert_int_equal(tc_wait_count(e.group, &res, N, 20000), 0);
	assert_int_equal(res.status, 0);
	memset(buf, 0, (size_t)N * e.bs);
	res.count = 0;
	for (i = 0; i < N; i++)
		assert_int_equal(aioblk_read(e.ch, buf + (size_t)i * e.bs, ((uint64_t)i * 37) % blocks, 1, tc_cb, &res),
				 0);
	assert_int_equal(tc_wait_count(e.group, &res, N, 20000), 0);
	assert_int_equal(res.count, N);
	if (tc_check(buf, (size_t)N * e.bs, 9) != -1)
		errors++;
	assert_int_equal(errors, 0);
	free(buf);
	env_close(&e);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_direct_ext4), cmocka_unit_test(test_buffered),
		cmocka_unit_test(test_tmpfs),       cmocka_unit_test(test_many_iovecs),
		cmocka_unit_test(test_queue_full),  cmocka_unit_test(test_callback_chain),
		cmocka_unit_test(test_deep_queue),
	};

	return tc_run_group(tests, NULL, NULL);
}
