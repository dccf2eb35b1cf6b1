/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unaligned memory on O_DIRECT disks (an ext4 file and a 4096-byte-sector
 * loop device): refused with -EINVAL on a plain channel; with bounce buffers
 * (aioblk_channel_create_ext) it round trips through readv and writev with
 * odd iovecs, -EAGAIN when every buffer is busy, -EINVAL when larger than a
 * buffer.
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

#define TARGET_BYTES (4u << 20)
#define GUARD 0xee

static void
make_direct(enum feat_kind kind, struct feat *f, const struct aioblk_channel_opts *copts)
{
	char path[256];

	feat_make_target_or_skip(kind, TARGET_BYTES, path, sizeof(path));
	assert_int_equal(feat_open(f, path, NULL, copts, 0), 0);
	if (!aioblk_disk_is_direct(f->disk) || aioblk_disk_buf_align(f->disk) < 2) {
		print_message("SKIP %s: not O_DIRECT with an alignment (align %zu)\n", feat_kind_name(kind),
			      aioblk_disk_buf_align(f->disk));
		feat_close(f);
		tc_skip();
	}
}

/*
 * Cut @len bytes into @n odd pieces inside @mem (which has room for @len
 * plus 16 bytes per piece), starting 1 byte in and leaving a guard gap after
 * each piece. The last piece takes what is left.
 */
static void
odd_iovecs(unsigned char *mem, size_t len, struct iovec *iov, int n)
{
	static const size_t sizes[] = { 3, 1001, 77, 2, 511, 13, 4093, 1 };
	unsigned char *p = mem + 1;
	size_t left = len;
	int i;

	for (i = 0; i < n; i++) {
		size_t sz = i == n - 1 ? left : sizes[i % 8];

		assert_true(sz <= left);
		iov[i].iov_base = p;
		iov[i].iov_len = sz;
		left -= sz;
		p += sz + 1 + (size_t)i % 7;
	}
	assert_int_equal(left, 0);
}

static void
gather(const struct iovec *iov, int n, unsigned char *out)
{
	int i;

	for (i = 0; i < n; i++) {
		memcpy(out, iov[i].iov_base, iov[i].iov_len);
		out += iov[i].iov_len;
	}
}

/* Every byte of @mem (of @size) outside the iovecs is still the guard. */
static void
check_guards(const unsigned char *mem, size_t size, const struct iovec *iov, int n)
{
	size_t i;
	int k;

	for (i = 0; i < size; i++) {
		bool inside = false;

		for (k = 0; k < n; k++)
			if (mem + i >= (const unsigned char *)iov[k].iov_base &&
			    mem + i < (const unsigned char *)iov[k].iov_base + iov[k].iov_len)
				inside = true;
		if (!inside && mem[i] != GUARD) {
			print_error("guard byte %zu overwritten (0x%02x)\n", i, mem[i]);
			fail();
		}
	}
}

static void
check_refused_without(enum feat_kind kind)
{
	struct tc_result r = { 0, 0 };
	struct iovec iov[3];
	unsigned char *mem;
	struct feat f;
	size_t len;

	make_direct(kind, &f, NULL);
	len = 4 * (size_t)f.bs;
	mem = tc_alloc(4096, len + 8192);
	memset(mem, GUARD, len + 8192);
	odd_iovecs(mem, len, iov, 3);
	assert_int_equal(aioblk_write(f.ch, mem + 1, 0, 4, tc_cb, &r), -EINVAL);
	assert_int_equal(aioblk_read(f.ch, mem + 1, 0, 4, tc_cb, &r), -EINVAL);
	assert_int_equal(aioblk_writev(f.ch, iov, 3, 0, 4, tc_cb, &r), -EINVAL);
	assert_int_equal(aioblk_readv(f.ch, iov, 3, 0, 4, tc_cb, &r), -EINVAL);
	assert_int_equal(aioblk_writev_ext(f.ch, iov, 3, 0, 4, AIOBLK_WRITE_FUA, tc_cb, &r), -EINVAL);
	/* Aligned address, unaligned length of a piece: refused too. */
	iov[0] = (struct iovec){ mem, 512 + 1 };
	iov[1] = (struct iovec){ mem + 4096, len - 512 - 1 };
	assert_int_equal(aioblk_writev(f.ch, iov, 2, 0, 4, tc_cb, &r), -EINVAL);
	assert_int_equal(feat_poll_some(f.group), 0);
	assert_int_equal(r.count, 0);
	assert_int_equal(aioblk_channel_inflight(f.ch), 0);
	feat_close(&f);
	free(mem);
}

static void
test_refused_without_ext4(void **state)
{
	(void)state;
	check_refused_without(FEAT_EXT4_FILE);
}

static void
test_refused_without_loop(void **state)
{
	(void)state;
	check_refused_without(FEAT_LOOP_4096);
}

static void
check_roundtrip(enum feat_kind kind)
{
	struct aioblk_channel_opts copts = { .queue_depth = 16, .bounce_buffers = 2, .bounce_buffer_size = 64 << 10 };
	struct tc_result r = { 0, 0 };
	struct iovec wiov[3], riov[7];
	unsigned char *pat, *mem, *rd, *flat;
	struct feat f;
	size_t len, memsz;

	make_direct(kind, &f, &copts);
	len = 16 * (size_t)f.bs;
	memsz = len + 256;
	pat = tc_alloc(4096, len);
	rd = tc_alloc(4096, len);
	flat = malloc(len);
	mem = malloc(memsz);
	tc_fill(pat, len, 0xb0 + (uint64_t)kind);

	/* writev: three odd pieces. */
	memset(mem, GUARD, memsz);
	odd_iovecs(mem, len, wiov, 3);
	{
		const unsigned char *src = pat;
		int i;

		for (i = 0; i < 3; i++) {
			memcpy(wiov[i].iov_base, src, wiov[i].iov_len);
			src += wiov[i].iov_len;
		}
	}
	assert_int_equal(aioblk_writev(f.ch, wiov, 3, 8, 16, tc_cb, &r), 0);
	assert_int_equal(feat_poll_count(f.group, &r, 1, NULL, NULL), 0);
	assert_int_equal(r.status, 0);
	memset(rd, 0, len);
	assert_int_equal(tc_sync_read(f.group, f.ch, rd, 8, 16), 0);
	assert_memory_equal(rd, pat, len);

	/* readv: seven odd pieces (more than fit inline in a request). */
	memset(mem, GUARD, memsz);
	odd_iovecs(mem, len, riov, 7);
	r = (struct tc_result){ 0, 0 };
	assert_int_equal(aioblk_readv(f.ch, riov, 7, 8, 16, tc_cb, &r), 0);
	assert_int_equal(feat_poll_count(f.group, &r, 1, NULL, NULL), 0);
	assert_int_equal(r.status, 0);
	gather(riov, 7, flat);
	assert_memory_equal(flat, pat, len);
	check_guards(mem, memsz, riov, 7);

	/* One unaligned buffer, FUA write and plain read. */
	{
		struct iovec one = { mem + 3, len };

		memcpy(mem + 3, pat, len);
		r = (struct tc_result){ 0, 0 };
		assert_int_equal(aioblk_writev_ext(f.ch, &one, 1, 64, 16, AIOBLK_WRITE_FUA, tc_cb, &r), 0);
		assert_int_equal(feat_poll_count(f.group, &r, 1, NULL, NULL), 0);
		assert_int_equal(r.status, 0);
		memset(mem, GUARD, memsz);
		assert_int_equal(tc_sync_read(f.group, f.ch, mem + 5, 64, 16), 0);
		assert_memory_equal(mem + 5, pat, len);
		assert_int_equal(mem[4], GUARD);
		assert_int_equal(mem[5 + len], GUARD);
	}
	feat_close(&f);
	free(pat);
	free(rd);
	free(flat);
	free(mem);
}

static void
test_roundtrip_ext4(void **state)
{
	(void)state;
	check_roundtrip(FEAT_EXT4_FILE);
}

static void
test_roundtrip_loop(void **state)
{
	(void)state;
	check_roundtrip(FEAT_LOOP_4096);
}

/* All N busy: -EAGAIN for unaligned memory, aligned memory still goes; freed buffers come back. */
static void
test_eagain_when_busy(void **state)
{
	struct aioblk_channel_opts copts = { .queue_depth = 16, .bounce_buffers = 2, .bounce_buffer_size = 16384 };
	struct tc_result r = { 0, 0 }, refused = { 0, 0 };
	unsigned char *mem, *al;
	struct feat f;
	uint64_t n;
	int round;

	(void)state;
	make_direct(FEAT_EXT4_FILE, &f, &copts);
	n = 4096 / f.bs;
	mem = malloc(4 * 4096 + 16);
	al = tc_alloc(4096, 4096);
	tc_fill(mem, 4 * 4096 + 16, 5);
	tc_fill(al, 4096, 6);
	for (round = 0; round < 3; round++) {
		r = (struct tc_result){ 0, 0 };
		assert_int_equal(aioblk_write(f.ch, mem + 1, 0, n, tc_cb, &r), 0);
		assert_int_equal(aioblk_read(f.ch, mem + 4096 + 3, n, n, tc_cb, &r), 0);
		assert_int_equal(aioblk_write(f.ch, mem + 2 * 4096 + 7, 2 * n, n, tc_cb, &refused), -EAGAIN);
		assert_int_equal(aioblk_read(f.ch, mem + 2 * 4096 + 7, 2 * n, n, tc_cb, &refused), -EAGAIN);
		assert_int_equal(aioblk_write(f.ch, al, 3 * n, n, tc_cb, &r), 0);
		assert_int_equal(aioblk_channel_inflight(f.ch), 3);
		assert_int_equal(feat_poll_count(f.group, &r, 3, NULL, NULL), 0);
		assert_int_equal(r.status, 0);
	}
	assert_int_equal(feat_poll_some(f.group), 0);
	assert_int_equal(refused.count, 0);
	feat_close(&f);
	free(mem);
	free(al);
}

/* Larger than one buffer: -EINVAL. The size is rounded up to the block size. */
static void
test_too_large(void **state)
{
	struct tc_result r = { 0, 0 };
	unsigned char *mem, *al;
	struct feat f;
	uint32_t bs;

	(void)state;
	{
		struct aioblk_channel_opts copts = { .bounce_buffers = 1, .bounce_buffer_size = 8192 };

		make_direct(FEAT_EXT4_FILE, &f, &copts);
	}
	bs = f.bs;
	mem = malloc((256u << 10) + 16);
	al = tc_alloc(4096, 256u << 10);
	memset(mem, 1, (256u << 10) + 16);
	memset(al, 2, 256u << 10);
	assert_int_equal(aioblk_write(f.ch, mem + 1, 0, 8192 / bs, tc_cb, &r), 0);
	assert_int_equal(feat_poll_count(f.group, &r, 1, NULL, NULL), 0);
	assert_int_equal(r.status, 0);
	assert_int_equal(aioblk_write(f.ch, mem + 1, 0, 8192 / bs + 1, tc_cb, &r), -EINVAL);
	assert_int_equal(aioblk_read(f.ch, mem + 1, 0, 8192 / bs + 1, tc_cb, &r), -EINVAL);
	/* Aligned memory does not need a bounce buffer: any size. */
	assert_int_equal(aioblk_write(f.ch, al, 0, (64u << 10) / bs, tc_cb, &r), 0);
	assert_int_equal(feat_poll_count(f.group, &r, 2, NULL, NULL), 0);
	assert_int_equal(r.status, 0);
	feat_close(&f);

	/* bs * 2 + 1 rounds up to three blocks. */
	{
		struct aioblk_channel_opts copts = { .bounce_buffers = 1, .bounce_buffer_size = (size_t)bs * 2 + 1 };

		make_direct(FEAT_EXT4_FILE, &f, &copts);
	}
	r = (struct tc_result){ 0, 0 };
	assert_int_equal(aioblk_write(f.ch, mem + 1, 0, 3, tc_cb, &r), 0);
	assert_int_equal(feat_poll_count(f.group, &r, 1, NULL, NULL), 0);
	assert_int_equal(r.status, 0);
	assert_int_equal(aioblk_write(f.ch, mem + 1, 0, 4, tc_cb, &r), -EINVAL);
	feat_close(&f);

	/* The default size is 128 KiB. */
	{
		struct aioblk_channel_opts copts = { .bounce_buffers = 1 };

		make_direct(FEAT_EXT4_FILE, &f, &copts);
	}
	r = (struct tc_result){ 0, 0 };
	assert_int_equal(aioblk_write(f.ch, mem + 1, 0, (128u << 10) / bs, tc_cb, &r), 0);
	assert_int_equal(feat_poll_count(f.group, &r, 1, NULL, NULL), 0);
	assert_int_equal(r.status, 0);
	assert_int_equal(aioblk_write(f.ch, mem + 1, 0, (128u << 10) / bs + 1, tc_cb, &r), -EINVAL);
	assert_int_equal(feat_poll_some(f.group), 0);
	assert_int_equal(r.count, 1);
	feat_close(&f);
	free(mem);
	free(al);
}

static void
test_create_ext_limits(void **state)
{
	struct aioblk_channel_opts big = { .bounce_buffers = 1, .bounce_buffer_size = (1u << 30) + 1 };
	struct aioblk_channel_opts deep = { .queue_depth = 65537 };
	struct aioblk_channel *ch = NULL;
	struct feat f;
	char path[256];

	(void)state;
	assert_int_equal(tc_make_file(NULL, TARGET_BYTES, path, sizeof(path)), 0);
	assert_int_equal(feat_open(&f, path, NULL, NULL, 0), 0);
	assert_int_equal(aioblk_channel_create_ext(f.group, f.disk, &big, &ch), -EINVAL);
	assert_null(ch);
	assert_int_equal(aioblk_channel_create_ext(f.group, f.disk, &deep, &ch), -EINVAL);
	assert_null(ch);
	assert_int_equal(aioblk_channel_create_ext(NULL, f.disk, NULL, &ch), -EINVAL);
	assert_int_equal(aioblk_channel_create_ext(f.group, f.disk, NULL, NULL), -EINVAL);
	feat_close(&f);
}

/* A bounced read that fails leaves the caller's memory alone and gives its buffer back. */
static void
test_failed_read_returns_buffer(void **state)
{
	struct aioblk_channel_opts copts = { .bounce_buffers = 1, .bounce_buffer_size = 16384 };
	struct tc_result r = { 0, 0 };
	unsigned char *mem;
	struct feat f;
	uint64_t n;

	(void)state;
	make_direct(FEAT_EXT4_FILE, &f, &copts);
	n = 4096 / f.bs;
	mem = malloc(8192);
	memset(mem, GUARD, 8192);
	/* Shrink behind the library's back: the read past the new end gets nothing. */
	assert_int_equal(truncate(f.path, 1 << 20), 0);
	assert_int_equal(aioblk_read(f.ch, mem + 1, (2u << 20) / f.bs, n, tc_cb, &r), 0);
	assert_int_equal(feat_poll_count(f.group, &r, 1, NULL, NULL), 0);
	assert_true(r.status < 0);
	{
		size_t i;

		for (i = 0; i < 8192; i++)
			assert_int_equal(mem[i], GUARD);
	}
	r = (struct tc_result){ 0, 0 };
	assert_int_equal(aioblk_read(f.ch, mem + 1, 0, n, tc_cb, &r), 0);
	assert_int_equal(feat_poll_count(f.group, &r, 1, NULL, NULL), 0);
	assert_int_equal(r.status, 0);
	feat_close(&f);
	free(mem);
}

/* A buffered disk needs no alignment and no bounce buffers. */
static void
test_buffered_needs_none(void **state)
{
	struct aioblk_disk_opts opts = { .flags = AIOBLK_DISK_BUFFERED };
	unsigned char *mem, *rd;
	char path[256];
	struct feat f;

	(void)state;
	assert_int_equal(tc_make_file(NULL, TARGET_BYTES, path, sizeof(path)), 0);
	assert_int_equal(feat_open(&f, path, &opts, NULL, 0), 0);
	assert_int_equal(aioblk_disk_buf_align(f.disk), 1);
	mem = malloc(8192 + 1);
	rd = malloc(8192 + 3);
	tc_fill(mem + 1, 8192, 3);
	assert_int_equal(tc_sync_write(f.group, f.ch, mem + 1, 0, 8192 / f.bs), 0);
	assert_int_equal(tc_sync_read(f.group, f.ch, rd + 3, 0, 8192 / f.bs), 0);
	assert_memory_equal(rd + 3, mem + 1, 8192);
	feat_close(&f);
	free(mem);
	free(rd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_refused_without_ext4), cmocka_unit_test(test_refused_without_loop),
		cmocka_unit_test(test_roundtrip_ext4),       cmocka_unit_test(test_roundtrip_loop),
		cmocka_unit_test(test_eagain_when_busy),     cmocka_unit_test(test_too_large),
		cmocka_unit_test(test_create_ext_limits),    cmocka_unit_test(test_failed_read_returns_buffer),
		cmocka_unit_test(test_buffered_needs_none),
	};

	return tc_run_group(tests, NULL, NULL);
}
