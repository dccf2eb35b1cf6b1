/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Completion decoding (DESIGN.md §3): with the fake kernel of fake_sys.c,
 * which really moves exactly res bytes of a real file and posts the event
 * into a ring the library reaps from user space. res < 0 is -errno, 0 is
 * -EIO, a short count is continued for the rest (the continuation iocbs are
 * checked), no progress after a short count is -EIO.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <libaio.h>
#include <linux/fs.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common.h"
#include "fake_sys.h"
#include "fixture.h"
#include "internal.h"

#define FILE_BYTES (1024u * 1024u)
#define LEN 16384u /* one request */
#define OFF 8192u  /* where it goes, bytes */

struct ctx {
	struct fx fx;
	char *buf;
	char *check;
	struct fx_req r;
};

static int
setup_flags(void **state, uint32_t disk_flags, bool blockdev)
{
	struct ctx *c = calloc(1, sizeof(*c));

	fake_reset();
	fake_kernel(true, false);
	fake_blockdev(blockdev, 512);
	assert_non_null(c);
	assert_int_equal(fx_open(&c->fx, FILE_BYTES, disk_flags, 0, 16), 0);
	c->buf = tc_alloc(4096, LEN);
	c->check = tc_alloc(4096, LEN);
	assert_non_null(c->buf);
	assert_non_null(c->check);
	*state = c;
	return 0;
}

/* Buffered, 512-byte blocks: any short count is possible. */
static int
setup_buffered(void **state)
{
	return setup_flags(state, AIOBLK_DISK_BUFFERED, false);
}

static int
teardown(void **state)
{
	struct ctx *c = *state;

	fx_close(&c->fx);
	assert_int_equal(fake_pending(), 0);
	fake_reset();
	free(c->buf);
	free(c->check);
	free(c);
	return 0;
}

static uint64_t
blocks(const struct ctx *c, uint64_t bytes)
{
	return bytes / c->fx.bs;
}

static int
write_one(struct ctx *c, uint64_t seed)
{
	tc_fill(c->buf, LEN, seed);
	c->r.count = 0;
	assert_int_equal(aioblk_write(c->fx.ch, c->buf, blocks(c, OFF), blocks(c, LEN), fx_cb, &c->r), 0);
	assert_int_equal(fx_drive(&c->fx, &c->r, 1, 5000), 0);
	assert_int_equal(c->r.count, 1);
	return c->r.status;
}

static int
read_one(struct ctx *c)
{
	memset(c->buf, 0xee, LEN);
	c->r.count = 0;
	assert_int_equal(aioblk_read(c->fx.ch, c->buf, blocks(c, OFF), blocks(c, LEN), fx_cb, &c->r), 0);
	assert_int_equal(fx_drive(&c->fx, &c->r, 1, 5000), 0);
	assert_int_equal(c->r.count, 1);
	return c->r.status;
}

/* One more poll must not run the callback again. */
static void
assert_no_second_callback(struct ctx *c)
{
	assert_int_equal(aioblk_group_poll(c->fx.group, 0), 0);
	assert_int_equal(c->r.count, 1);
	assert_int_equal(aioblk_channel_inflight(c->fx.ch), 0);
}

static void
negative_res_is_errno(void **state)
{
	struct ctx *c = *state;
	static const int errs[] = { EIO, ENOSPC, EINVAL, EAGAIN, EINTR, EBADF, ENODEV, EOPNOTSUPP, EFAULT, EROFS };
	struct aioblk_channel_stats st;

	for (unsigned i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
		fake_result(OFF, -errs[i], 1, 0);
		assert_int_equal(write_one(c, i), -errs[i]);
		assert_no_second_callback(c);
		fake_result(OFF, -errs[i], 1, 0);
		assert_int_equal(read_one(c), -errs[i]);
		assert_no_second_callback(c);
	}
	assert_int_equal(aioblk_channel_get_stats(c->fx.ch, &st), 0);
	assert_int_equal(st.errors, 2 * sizeof(errs) / sizeof(errs[0]));
	assert_int_equal(st.retries, 0);
	/* A failed write moved nothing; the file is still zero there. */
	fx_pread(&c->fx, c->check, LEN, OFF);
	for (unsigned j = 0; j < LEN; j++)
		assert_int_equal(c->check[j], 0);
}

/* A value no errno has (libaio's res is unsigned): reported as -EIO, not as a garbage int. */
static void
huge_negative_res_is_eio(void **state)
{
	struct ctx *c = *state;

	fake_result(OFF, -5000, 1, 0);
	assert_int_equal(write_one(c, 1), -EIO);
	fake_result(OFF, INT64_MIN, 1, 0);
	assert_int_equal(read_one(c), -EIO);
}

static void
zero_res_is_eio(void **state)
{
	struct ctx *c = *state;

	fake_result(OFF, 0, 1, 0);
	assert_int_equal(write_one(c, 1), -EIO);
	assert_no_second_callback(c);
	fake_result(OFF, 0, 1, 0);
	assert_int_equal(read_one(c), -EIO);
	assert_no_second_callback(c);
	/* Not retried: one iocb each. */
	assert_int_equal(fake_nlog, 2);
}

/* More than was asked for is nonsense from the kernel: -EIO, not success. */
static void
too_long_res_is_eio(void **state)
{
	struct ctx *c = *state;

	fake_result(OFF, LEN + 512, 1, 0);
	assert_int_equal(write_one(c, 1), -EIO);
}

/* A short write is continued from where it stopped, in the same buffer. */
static void
short_write_continued(void **state)
{
	struct ctx *c = *state;
	struct aioblk_channel_stats st;

	fake_result(OFF, 1000, 1, 0);
	assert_int_equal(write_one(c, 7), 0);
	assert_no_second_callback(c);
	assert_int_equal(fake_nlog, 2);
	assert_int_equal(fake_log[0].opcode, IO_CMD_PWRITE);
	assert_int_equal(fake_log[0].offset, OFF);
	assert_int_equal(fake_log[0].nbytes, LEN);
	assert_ptr_equal(fake_log[0].buf, c->buf);
	assert_int_equal(fake_log[1].opcode, IO_CMD_PWRITE);
	assert_int_equal(fake_log[1].offset, OFF + 1000);
	assert_int_equal(fake_log[1].nbytes, LEN - 1000);
	assert_ptr_equal(fake_log[1].buf, c->buf + 1000);
	assert_ptr_equal(fake_log[1].data, fake_log[0].data);
	fx_pread(&c->fx, c->check, LEN, OFF);
	assert_int_equal(tc_check(c->check, LEN, 7), -1);
	assert_int_equal(aioblk_channel_get_stats(c->fx.ch, &st), 0);
	assert_int_equal(st.retries, 1);
	assert_int_equal(st.errors, 0);
	assert_int_equal(st.bytes_written, LEN);
	assert_int_equal(st.writes, 1);
}

/* Several short reads in a row, each making progress, then the rest: success. */
static void
short_reads_continued(void **state)
{
	struct ctx *c = *state;

	assert_int_equal(write_one(c, 9), 0);
	fake_nlog = 0;
	fake_result(OFF, 512, 1, 0);
	fake_result(OFF + 512, 3, 1, 0);
	fake_result(OFF + 515, 4000, 1, 0);
	assert_int_equal(read_one(c), 0);
	assert_int_equal(tc_check(c->buf, LEN, 9), -1);
	assert_int_equal(fake_nlog, 4);
	assert_int_equal(fake_log[3].offset, OFF + 4515);
	assert_int_equal(fake_log[3].nbytes, LEN - 4515);
	assert_ptr_equal(fake_log[3].buf, c->buf + 4515);
}

/* Progress, then none: -EIO, and the callback once. */
static void
short_then_zero_is_eio(void **state)
{
	struct ctx *c = *state;

	assert_int_equal(write_one(c, 3), 0);
	fake_nlog = 0;
	fake_result(OFF, 4096, 1, 0);
	fake_result(OFF + 4096, 0, 1, 0);
	assert_int_equal(read_one(c), -EIO);
	assert_no_second_callback(c);
	assert_int_equal(fake_nlog, 2);
	/* The same for a write. */
	fake_nlog = 0;
	fake_result(OFF, 2048, 1, 0);
	fake_result(OFF + 2048, 0, 1, 0);
	assert_int_equal(write_one(c, 4), -EIO);
	assert_no_second_callback(c);
	assert_int_equal(fake_nlog, 2);
}

/* Short, then an errno for the rest: that errno. */
static void
short_then_error(void **state)
{
	struct ctx *c = *state;

	fake_result(OFF, 4096, 1, 0);
	fake_result(OFF + 4096, -ENOSPC, 1, 0);
	assert_int_equal(write_one(c, 5), -ENOSPC);
	assert_no_second_callback(c);
}

/*
 * Several iovecs: a short count in the middle of one finishes that piece
 * alone (PREAD of its rest), then goes on with whole iovecs (PREADV).
 */
static void
short_readv_mid_iovec(void **state)
{
	struct ctx *c = *state;
	struct iovec iov[4];
	char *base = c->buf;

	assert_int_equal(write_one(c, 11), 0);
	memset(c->buf, 0xee, LEN);
	for (int i = 0; i < 4; i++) {
		/* Pieces out of order in memory, to see each one addressed. */
		iov[i].iov_base = base + (3 - i) * 4096;
		iov[i].iov_len = 4096;
	}
	fake_nlog = 0;
	c->r.count = 0;
	fake_result(OFF, 6000, 1, 0);
	assert_int_equal(aioblk_readv(c->fx.ch, iov, 4, blocks(c, OFF), blocks(c, LEN), fx_cb, &c->r), 0);
	assert_int_equal(fx_drive(&c->fx, &c->r, 1, 5000), 0);
	assert_int_equal(c->r.count, 1);
	assert_int_equal(c->r.status, 0);
	assert_int_equal(fake_nlog, 3);
	assert_int_equal(fake_log[0].opcode, IO_CMD_PREADV);
	assert_int_equal(fake_log[0].iovcnt, 4);
	assert_int_equal(fake_log[1].opcode, IO_CMD_PREAD);
	assert_int_equal(fake_log[1].offset, OFF + 6000);
	assert_int_equal(fake_log[1].nbytes, 8192 - 6000);
	assert_ptr_equal(fake_log[1].buf, (char *)iov[1].iov_base + (6000 - 4096));
	assert_int_equal(fake_log[2].opcode, IO_CMD_PREADV);
	assert_int_equal(fake_log[2].offset, OFF + 8192);
	assert_int_equal(fake_log[2].iovcnt, 2);
	assert_int_equal(fake_log[2].nbytes, 8192);
	assert_ptr_equal(fake_log[2].buf, iov[2].iov_base);
	/* Every piece holds its part of the file. */
	for (int i = 0; i < 4; i++) {
		fx_pread(&c->fx, c->check, 4096, OFF + (uint64_t)i * 4096);
		assert_memory_equal(iov[i].iov_base, c->check, 4096);
	}
}

/* A short count that ends exactly at an iovec boundary goes on with whole iovecs. */
static void
short_writev_at_boundary(void **state)
{
	struct ctx *c = *state;
	struct iovec iov[4];

	tc_fill(c->buf, LEN, 21);
	for (int i = 0; i < 4; i++) {
		iov[i].iov_base = c->buf + i * 4096;
		iov[i].iov_len = 4096;
	}
	c->r.count = 0;
	fake_result(OFF, 4096, 1, 0);
	assert_int_equal(aioblk_writev(c->fx.ch, iov, 4, blocks(c, OFF), blocks(c, LEN), fx_cb, &c->r), 0);
	assert_int_equal(fx_drive(&c->fx, &c->r, 1, 5000), 0);
	assert_int_equal(c->r.status, 0);
	assert_int_equal(fake_nlog, 2);
	assert_int_equal(fake_log[1].opcode, IO_CMD_PWRITEV);
	assert_int_equal(fake_log[1].offset, OFF + 4096);
	assert_int_equal(fake_log[1].iovcnt, 3);
	assert_ptr_equal(fake_log[1].buf, c->buf + 4096);
	fx_pread(&c->fx, c->check, LEN, OFF);
	assert_int_equal(tc_check(c->check, LEN, 21), -1);
}

/* A flush's res: negative is the errno; anything else is success. */
static void
flush_res(void **state)
{
	struct ctx *c = *state;

	c->r.count = 0;
	fake_result(FAKE_FLUSH, -EIO, 1, 0);
	assert_int_equal(aioblk_flush(c->fx.ch, fx_cb, &c->r), 0);
	assert_int_equal(fx_drive(&c->fx, &c->r, 1, 5000), 0);
	assert_int_equal(c->r.status, -EIO);
	assert_no_second_callback(c);
	/* Not an errno: -EIO, as for reads and writes. */
	c->r.count = 0;
	fake_result(FAKE_FLUSH, -5000, 1, 0);
	assert_int_equal(aioblk_flush(c->fx.ch, fx_cb, &c->r), 0);
	assert_int_equal(fx_drive(&c->fx, &c->r, 1, 5000), 0);
	assert_int_equal(c->r.status, -EIO);
	assert_no_second_callback(c);
	c->r.count = 0;
	assert_int_equal(aioblk_flush(c->fx.ch, fx_cb, &c->r), 0);
	assert_int_equal(fx_drive(&c->fx, &c->r, 1, 5000), 0);
	assert_int_equal(c->r.status, 0);
	assert_int_equal(fake_log[fake_nlog - 1].opcode, IO_CMD_FDSYNC);
}

/*
 * Block-device paths, on a file that fake_sys presents as a block device of
 * 512-byte sectors: RWF_NOWAIT reads and device loss.
 */
static int
setup_nowait(void **state)
{
	return setup_flags(state, AIOBLK_DISK_NOWAIT, true);
}

/* -EAGAIN for a NOWAIT read: retried once without the flag. */
static void
nowait_eagain_retried_once(void **state)
{
	struct ctx *c = *state;

	assert_true(aioblk_disk_is_direct(c->fx.disk));
	assert_int_equal(write_one(c, 13), 0);
	fake_nlog = 0;
	fake_result(OFF, -EAGAIN, 1, FAKE_RES_NOWAIT_ONLY);
	assert_int_equal(read_one(c), 0);
	assert_int_equal(tc_check(c->buf, LEN, 13), -1);
	assert_int_equal(fake_nlog, 2);
	assert_true(fake_log[0].rw_flags & RWF_NOWAIT);
	assert_false(fake_log[1].rw_flags & RWF_NOWAIT);
	/* The next read asks for NOWAIT again: one EAGAIN does not turn it off. */
	assert_int_equal(read_one(c), 0);
	assert_true(fake_log[2].rw_flags & RWF_NOWAIT);
	/* Writes never carry NOWAIT. */
	assert_int_equal(write_one(c, 14), 0);
	assert_false(fake_log[fake_nlog - 1].rw_flags & RWF_NOWAIT);
}

/* -EAGAIN again without the flag: that is the answer, not another retry. */
static void
nowait_eagain_twice_fails(void **state)
{
	struct ctx *c = *state;

	fake_result(OFF, -EAGAIN, 2, 0);
	assert_int_equal(read_one(c), -EAGAIN);
	assert_no_second_callback(c);
	assert_int_equal(fake_nlog, 2);
}

/*
 * io_submit refuses RWF_NOWAIT with @err: EOPNOTSUPP (the file lacks
 * FMODE_NOWAIT) or EINVAL (a kernel before 4.13 takes no aio_rw_flags).
 * The read is resubmitted without, and NOWAIT stays off.
 */
static void
check_nowait_refused_at_submit(struct ctx *c, int err)
{
	assert_int_equal(write_one(c, 17), 0);
	fake_nlog = 0;
	fake_refuse_offset(OFF, err, 1);
	/* Outside a poll: the submit that retries it without the flag counts it as taken, once. */
	memset(c->buf, 0xee, LEN);
	c->r.count = 0;
	assert_int_equal(aioblk_read(c->fx.ch, c->buf, blocks(c, OFF), blocks(c, LEN), fx_cb, &c->r), 0);
	assert_int_equal(aioblk_group_submit(c->fx.group), 1);
	assert_int_equal(fx_drive(&c->fx, &c->r, 1, 5000), 0);
	assert_int_equal(c->r.count, 1);
	assert_int_equal(c->r.status, 0);
	assert_int_equal(tc_check(c->buf, LEN, 17), -1);
	assert_int_equal(fake_nlog, 2);
	assert_int_equal(fake_log[0].refused, -err);
	assert_true(fake_log[0].rw_flags & RWF_NOWAIT);
	assert_false(fake_log[1].rw_flags & RWF_NOWAIT);
	assert_int_equal(read_one(c), 0);
	assert_false(fake_log[2].rw_flags & RWF_NOWAIT);
}

static void
nowait_refused_at_submit(void **state)
{
	check_nowait_refused_at_submit(*state, -EOPNOTSUPP);
}

static void
nowait_einval_at_submit(void **state)
{
	check_nowait_refused_at_submit(*state, -EINVAL);
}

/*
 * io_event.res as libaio declares it on a 32-bit build: an unsigned long
 * of 32 bits, which holds the kernel's 64-bit result truncated. Negative
 * errnos and the largest transfer (MAX_RW_COUNT) must decode as the kernel
 * meant them; a 64-bit build takes the value as it is.
 */
static void
res_decoded_at_32_bits(void **state)
{
	(void)state;
	assert_int_equal(event_res_from(0xfffffffbu, 4), -EIO);
	assert_int_equal(event_res_from(0xffffffe4u, 4), -ENOSPC);
	assert_int_equal(event_res_from((uint32_t)-4095, 4), -4095);
	assert_int_equal(event_res_from(0, 4), 0);
	assert_int_equal(event_res_from(4096, 4), 4096);
	assert_int_equal(event_res_from(0x7ffff000u, 4), 0x7ffff000);
	assert_int_equal(event_res_from((uint64_t)-5, 8), -5);
	assert_int_equal(event_res_from(0x100000000ull, 8), 0x100000000ll);
	assert_int_equal(event_res_from(0xfffffffbu, 8), 0xfffffffbll);
}

/*
 * statx says the file cannot do direct I/O (STATX_DIOALIGN with an offset
 * alignment of 0) although open(O_DIRECT) succeeded: it is opened
 * buffered, and REQUIRE_DIRECT refuses it with -EINVAL.
 */
static void
dio_align_zero_means_buffered(void **state)
{
	struct aioblk_disk_opts req = { .flags = AIOBLK_DISK_REQUIRE_DIRECT };
	struct aioblk_disk *disk;
	char path[256];

	(void)state;
	fake_reset();
	assert_int_equal(tc_make_file(NULL, FILE_BYTES, path, sizeof(path)), 0);
	fake_dio_align(true, 0, 0);
	assert_int_equal(aioblk_disk_open(path, NULL, &disk), 0);
	assert_false(aioblk_disk_is_direct(disk));
	assert_int_equal(aioblk_disk_buf_align(disk), 1);
	assert_int_equal(aioblk_disk_block_size(disk), 512);
	assert_int_equal(aioblk_disk_close(disk), 0);
	assert_int_equal(aioblk_disk_open(path, &req, &disk), -EINVAL);
	/* Alignments reported: they are used. */
	fake_dio_align(true, 512, 4096);
	assert_int_equal(aioblk_disk_open(path, NULL, &disk), 0);
	assert_true(aioblk_disk_is_direct(disk));
	assert_int_equal(aioblk_disk_block_size(disk), 4096);
	assert_int_equal(aioblk_disk_buf_align(disk), 512);
	assert_int_equal(aioblk_disk_close(disk), 0);
	fake_reset();
}

/*
 * After an I/O error, a device whose size reads 0 is lost: that request
 * completes with -ENODEV, requests still queued fail with -ENODEV without
 * reaching the kernel, and new I/O is refused with -ENODEV.
 */
static void
device_lost_after_error(void **state)
{
	struct ctx *c = *state;
	struct fx_req queued = { 0, 0 };
	unsigned submits;

	assert_int_equal(write_one(c, 1), 0);
	fake_blockdev_gone(true);
	fake_result(OFF, -EIO, 1, 0);
	c->r.count = 0;
	assert_int_equal(aioblk_write(c->fx.ch, c->buf, blocks(c, OFF), blocks(c, LEN), fx_cb, &c->r), 0);
	assert_int_equal(aioblk_group_submit(c->fx.group), 1);
	submits = fake_calls[FAKE_IO_SUBMIT];
	assert_int_equal(aioblk_write(c->fx.ch, c->buf, 0, blocks(c, LEN), fx_cb, &queued), 0);
	assert_int_equal(fx_drive(&c->fx, &c->r, 1, 5000), 0);
	assert_int_equal(fx_drive(&c->fx, &queued, 1, 5000), 0);
	assert_int_equal(c->r.status, -ENODEV);
	assert_int_equal(queued.status, -ENODEV);
	assert_int_equal(queued.count, 1);
	assert_int_equal(fake_calls[FAKE_IO_SUBMIT], submits);
	assert_int_equal(aioblk_write(c->fx.ch, c->buf, 0, 1, fx_cb, &c->r), -ENODEV);
	assert_int_equal(aioblk_read(c->fx.ch, c->buf, 0, 1, fx_cb, &c->r), -ENODEV);
	assert_int_equal(aioblk_flush(c->fx.ch, fx_cb, &c->r), -ENODEV);
	assert_int_equal(aioblk_disk_rescan(c->fx.disk), -ENODEV);
	assert_int_equal(c->r.count, 1);
}

/* An error on a device that still has its size: not lost. */
static void
device_error_not_lost(void **state)
{
	struct ctx *c = *state;

	fake_result(OFF, -EIO, 1, 0);
	assert_int_equal(write_one(c, 2), -EIO);
	assert_int_equal(write_one(c, 3), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(negative_res_is_errno, setup_buffered, teardown),
		cmocka_unit_test_setup_teardown(huge_negative_res_is_eio, setup_buffered, teardown),
		cmocka_unit_test_setup_teardown(zero_res_is_eio, setup_buffered, teardown),
		cmocka_unit_test_setup_teardown(too_long_res_is_eio, setup_buffered, teardown),
		cmocka_unit_test_setup_teardown(short_write_continued, setup_buffered, teardown),
		cmocka_unit_test_setup_teardown(short_reads_continued, setup_buffered, teardown),
		cmocka_unit_test_setup_teardown(short_then_zero_is_eio, setup_buffered, teardown),
		cmocka_unit_test_setup_teardown(short_then_error, setup_buffered, teardown),
		cmocka_unit_test_setup_teardown(short_readv_mid_iovec, setup_buffered, teardown),
		cmocka_unit_test_setup_teardown(short_writev_at_boundary, setup_buffered, teardown),
		cmocka_unit_test_setup_teardown(flush_res, setup_buffered, teardown),
		cmocka_unit_test_setup_teardown(nowait_eagain_retried_once, setup_nowait, teardown),
		cmocka_unit_test_setup_teardown(nowait_eagain_twice_fails, setup_nowait, teardown),
		cmocka_unit_test_setup_teardown(nowait_refused_at_submit, setup_nowait, teardown),
		cmocka_unit_test_setup_teardown(nowait_einval_at_submit, setup_nowait, teardown),
		cmocka_unit_test(res_decoded_at_32_bits),
		cmocka_unit_test(dio_align_zero_means_buffered),
		cmocka_unit_test_setup_teardown(device_lost_after_error, setup_nowait, teardown),
		cmocka_unit_test_setup_teardown(device_error_not_lost, setup_nowait, teardown),
	};

	return tc_run_group(tests, NULL, NULL);
}
