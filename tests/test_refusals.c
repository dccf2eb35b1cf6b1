/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The refusal table: every bad request returns its errno, never runs its
 * callback and leaves the channel as it was. Plus argument checks of the
 * group and channel calls.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common.h"

static char path[256];
static struct aioblk_disk *disk, *ro_disk;
static struct aioblk_group *group;
static struct aioblk_channel *ch, *ro_ch;
static unsigned char *buf;
static uint32_t bs;
static uint64_t nblocks;
static int calls;

static void
never_cb(void *arg, int status)
{
	(void)arg;
	(void)status;
	calls++;
}

static int
setup(void **state)
{
	struct aioblk_disk_opts ro = { .flags = AIOBLK_DISK_READONLY };

	(void)state;
	if (tc_make_file(NULL, 1 << 20, path, sizeof(path)))
		return -1;
	if (aioblk_disk_open(path, NULL, &disk) || aioblk_disk_open(path, &ro, &ro_disk))
		return -1;
	if (tc_group_create(0, &group) || aioblk_channel_create(group, disk, 4, &ch) ||
	    aioblk_channel_create(group, ro_disk, 4, &ro_ch))
		return -1;
	bs = aioblk_disk_block_size(disk);
	nblocks = aioblk_disk_num_blocks(disk);
	buf = tc_alloc(4096, 64 * 1024 + 4096);
	return buf && aioblk_disk_is_direct(disk) ? 0 : -1;
}

static int
teardown(void **state)
{
	(void)state;
	aioblk_channel_destroy(ch);
	aioblk_channel_destroy(ro_ch);
	aioblk_group_destroy(group);
	aioblk_disk_close(disk);
	aioblk_disk_close(ro_disk);
	free(buf);
	unlink(path);
	return 0;
}

/* Nothing was accepted: no callback runs even after polling, nothing is in flight. */
static void
assert_nothing_happened(void)
{
	int i;

	for (i = 0; i < 3; i++)
		assert_int_equal(aioblk_group_poll(group, 0), 0);
	assert_int_equal(calls, 0);
	assert_int_equal(aioblk_channel_inflight(ch), 0);
	assert_int_equal(aioblk_channel_inflight(ro_ch), 0);
}

static void
test_read_write_table(void **state)
{
	struct iovec one = { buf, 512 };
	struct iovec two[2] = { { buf, 512 }, { buf + 512, 512 } };
	struct iovec mis_addr = { buf + 1, 512 };
	struct iovec mis_len[2] = { { buf, 100 }, { buf + 4096, 412 } };
	struct iovec null_base = { NULL, 512 };
	struct iovec *iovmax = calloc(IOV_MAX + 1, sizeof(*iovmax));
	int i;

	(void)state;
	assert_non_null(iovmax);
	assert_int_equal(bs, 512);
	for (i = 0; i <= IOV_MAX; i++)
		iovmax[i] = (struct iovec){ buf, 0 };
	iovmax[0].iov_len = 512;

	/* NULL channel, NULL callback, NULL iov */
	assert_int_equal(aioblk_readv(NULL, &one, 1, 0, 1, never_cb, NULL), -EINVAL);
	assert_int_equal(aioblk_readv(ch, &one, 1, 0, 1, NULL, NULL), -EINVAL);
	assert_int_equal(aioblk_writev(ch, &one, 1, 0, 1, NULL, NULL), -EINVAL);
	assert_int_equal(aioblk_readv(ch, NULL, 1, 0, 1, never_cb, NULL), -EINVAL);
	assert_int_equal(aioblk_read(NULL, buf, 0, 1, never_cb, NULL), -EINVAL);
	assert_int_equal(aioblk_write(ch, buf, 0, 1, NULL, NULL), -EINVAL);
	/* iovcnt out of [1, IOV_MAX] */
	assert_int_equal(aioblk_readv(ch, &one, 0, 0, 1, never_cb, NULL), -EINVAL);
	assert_int_equal(aioblk_readv(ch, &one, -1, 0, 1, never_cb, NULL), -EINVAL);
	assert_int_equal(aioblk_readv(ch, iovmax, IOV_MAX + 1, 0, 1, never_cb, NULL), -EINVAL);
	/* zero length, range beyond the end, offset + length overflow */
	assert_int_equal(aioblk_readv(ch, &one, 1, 0, 0, never_cb, NULL), -EINVAL);
	assert_int_equal(aioblk_read(ch, buf, nblocks, 1, never_cb, NULL), -EINVAL);
	assert_int_equal(aioblk_read(ch, buf, nblocks - 1, 2, never_cb, NULL), -EINVAL);
	assert_int_equal(aioblk_read(ch, buf, UINT64_MAX, 2, never_cb, NULL), -EINVAL);
	assert_int_equal(aioblk_read(ch, buf, 1, UINT64_MAX, never_cb, NULL), -EINVAL);
	assert_int_equal(aioblk_read(ch, buf, 0, UINT64_MAX / 256, never_cb, NULL), -EINVAL);
	/* iovec total != length, both ways */
	assert_int_equal(aioblk_readv(ch, &one, 1, 0, 2, never_cb, NULL), -EINVAL);
	assert_int_equal(aioblk_readv(ch, two, 2, 0, 1, never_cb, NULL), -EINVAL);
	/* O_DIRECT alignment: address, and piece length */
	assert_int_equal(aioblk_readv(ch, &mis_addr, 1, 0, 1, never_cb, NULL), -EINVAL);
	assert_int_equal(aioblk_writev(ch, mis_len, 2, 0, 1, never_cb, NULL), -EINVAL);
	/* Half the memory alignment off (whatever this host's file system asks for). */
	if (aioblk_disk_buf_align(disk) >= 2)
		assert_int_equal(aioblk_read(ch, buf + aioblk_disk_buf_align(disk) / 2, 0, 1, never_cb, NULL), -EINVAL);
	/* a NULL buffer with a length */
	assert_int_equal(aioblk_readv(ch, &null_base, 1, 0, 1, never_cb, NULL), -EINVAL);
	/* unknown per-I/O flags */
	assert_int_equal(aioblk_writev_ext(ch, &one, 1, 0, 1, 1u << 7, never_cb, NULL), -EINVAL);
	/* writes on a read-only disk */
	assert_int_equal(aioblk_writev(ro_ch, &one, 1, 0, 1, never_cb, NULL), -EROFS);
	assert_int_equal(aioblk_write(ro_ch, buf, 0, 1, never_cb, NULL), -EROFS);
	assert_int_equal(aioblk_writev_ext(ro_ch, &one, 1, 0, 1, AIOBLK_WRITE_FUA, never_cb, NULL), -EROFS);
	assert_int_equal(aioblk_write_zeroes(ro_ch, 0, 1, never_cb, NULL), -EROFS);
	assert_int_equal(aioblk_unmap(ro_ch, 0, 1, never_cb, NULL), -EROFS);
	/* other calls: NULL arguments, bad ranges */
	assert_int_equal(aioblk_flush(NULL, never_cb, NULL), -EINVAL);
	assert_int_equal(aioblk_flush(ch, NULL, NULL), -EINVAL);
	assert_int_equal(aioblk_reset(NULL, never_cb, NULL), -EINVAL);
	assert_int_equal(aioblk_reset(ch, NULL, NULL), -EINVAL);
	assert_int_equal(aioblk_write_zeroes(ch, nblocks, 1, never_cb, NULL), -EINVAL);
	assert_int_equal(aioblk_write_zeroes(ch, 0, 0, never_cb, NULL), -EINVAL);
	assert_int_equal(aioblk_write_zeroes(ch, 0, 1, NULL, NULL), -EINVAL);
	assert_nothing_happened();

	/* A read on the read-only disk is fine. */
	{
		struct tc_result r = { 0, 0 };

		assert_int_equal(aioblk_read(ro_ch, buf, 0, 1, tc_cb, &r), 0);
		assert_int_equal(tc_wait_count(group, &r, 1, 10000), 0);
		assert_int_equal(r.status, 0);
	}
	free(iovmax);
}

static void
test_group_channel_arguments(void **state)
{
	struct aioblk_group *g;
	struct aioblk_channel *c;
	struct aioblk_channel_stats st;

	(void)state;
	assert_int_equal(tc_group_create(1u << 5, &g), -EINVAL);
	assert_int_equal(tc_group_create(0, NULL), -EINVAL);
	assert_int_equal(aioblk_group_destroy(NULL), -EINVAL);
	assert_int_equal(aioblk_group_poll(NULL, 0), -EINVAL);
	assert_int_equal(aioblk_group_wait(NULL, 0), -EINVAL);
	assert_int_equal(aioblk_group_submit(NULL), -EINVAL);
	assert_int_equal(aioblk_group_fd(NULL), -EINVAL);
	assert_int_equal(aioblk_group_fd(group), -EINVAL); /* no eventfd */
	assert_int_equal(aioblk_channel_create(NULL, disk, 0, &c), -EINVAL);
	assert_int_equal(aioblk_channel_create(group, NULL, 0, &c), -EINVAL);
	assert_int_equal(aioblk_channel_create(group, disk, 0, NULL), -EINVAL);
	assert_int_equal(aioblk_channel_create(group, disk, 65537, &c), -EINVAL);
	assert_int_equal(aioblk_channel_destroy(NULL), -EINVAL);
	assert_int_equal(aioblk_channel_get_stats(NULL, &st), -EINVAL);
	assert_int_equal(aioblk_channel_get_stats(ch, NULL), -EINVAL);
	assert_int_equal(aioblk_channel_inflight(NULL), 0);
	assert_int_equal(aioblk_group_wait(group, 0), 0);
	assert_int_equal(aioblk_group_wait(group, 50), 0); /* nothing outstanding: at once */
}

/* While a request is outstanding its channel and group refuse to go. */
static void
test_busy(void **state)
{
	struct tc_result r = { 0, 0 };

	(void)state;
	assert_int_equal(aioblk_read(ch, buf, 0, 1, tc_cb, &r), 0);
	assert_int_equal(aioblk_channel_destroy(ch), -EBUSY);
	assert_int_equal(aioblk_group_destroy(group), -EBUSY);
	assert_int_equal(aioblk_disk_close(disk), -EBUSY);
	assert_int_equal(tc_wait_count(group, &r, 1, 10000), 0);
	assert_int_equal(r.status, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read_write_table),
		cmocka_unit_test(test_group_channel_arguments),
		cmocka_unit_test(test_busy),
	};

	return tc_run_group(tests, setup, teardown);
}
