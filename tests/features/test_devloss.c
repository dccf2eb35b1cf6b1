/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Device loss. A private zram with a 1 MiB memory limit gives real EIO on
 * writes of incompressible data; the size the library reads after such an
 * error is faked to 0 through the wrapped aioblk_sys_blkdev_size (the
 * kernel cannot remove a device on demand here). Issue 5: "after an I/O
 * error on a block device whose size now reads 0, outstanding and new I/O
 * fail with -ENODEV", and rescan says -ENODEV.
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
#include "internal.h"

#define CHUNK (256u << 10)

static bool size_zero; /* the device "is gone": its size reads 0 */
static int size_calls;
static bool detected;       /* set by the test once the library has marked the disk lost */
static int submitted_after; /* iocbs the kernel took after that */

int __real_aioblk_sys_blkdev_size(int fd, uint64_t *bytes);
int __wrap_aioblk_sys_blkdev_size(int fd, uint64_t *bytes);
int __real_aioblk_sys_io_submit(io_context_t ctx, long nr, struct iocb **iocbs);
int __wrap_aioblk_sys_io_submit(io_context_t ctx, long nr, struct iocb **iocbs);

int
__wrap_aioblk_sys_blkdev_size(int fd, uint64_t *bytes)
{
	size_calls++;
	if (size_zero) {
		*bytes = 0;
		return 0;
	}
	return __real_aioblk_sys_blkdev_size(fd, bytes);
}

int
__wrap_aioblk_sys_io_submit(io_context_t ctx, long nr, struct iocb **iocbs)
{
	int rc = __real_aioblk_sys_io_submit(ctx, nr, iocbs);

	if (detected && rc > 0)
		submitted_after += rc;
	return rc;
}

struct env {
	struct feat f;
	struct feat_log log;
	unsigned char *rnd; /* incompressible */
	uint64_t next;      /* next unused block for a failing write */
	uint64_t chunk_blocks;
	int zram;
};

static int
setup(void **state)
{
	static struct env e;
	char path[256];
	struct aioblk_disk_opts opts = { .name = "lost-disk" };
	int rc, i;

	size_zero = false;
	size_calls = 0;
	detected = false;
	submitted_after = 0;
	memset(&e, 0, sizeof(e));
	if (!tc_is_root()) {
		print_message("SKIP: needs root (private zram)\n");
		return 0;
	}
	rc = tc_zram_add("64M", "1M", path, sizeof(path));
	if (rc == -ENOENT) {
		print_message("SKIP: no zram on this kernel\n");
		return 0;
	}
	if (rc < 0)
		return -1;
	e.zram = rc;
	aioblk_set_log_fn(feat_log_fn, &e.log);
	if (feat_open(&e.f, path, &opts, NULL, 0) < 0)
		return -1;
	e.chunk_blocks = CHUNK / e.f.bs;
	e.rnd = tc_alloc(4096, CHUNK);
	/* Fill the memory limit: write random chunks until the device says EIO. */
	for (i = 0; i < 64; i++) {
		tc_fill(e.rnd, CHUNK, 1000 + (uint64_t)i);
		rc = tc_sync_write(e.f.group, e.f.ch, e.rnd, (uint64_t)i * e.chunk_blocks, e.chunk_blocks);
		if (rc == -EIO)
			break;
		if (rc != 0)
			return -1;
	}
	if (rc != -EIO) {
		print_error("zram never failed a write (mem_limit not enforced?)\n");
		return -1;
	}
	e.next = (uint64_t)(i + 1) * e.chunk_blocks;
	*state = &e;
	return 0;
}

static int
teardown(void **state)
{
	struct env *e = *state;
	int rc = 0;

	aioblk_set_log_fn(NULL, NULL);
	if (e && e->f.disk) {
		feat_close(&e->f);
		rc = tc_zram_remove(e->zram);
		if (rc < 0)
			print_error("could not remove zram%d: %s\n", e->zram, strerror(-rc));
	}
	if (e)
		free(e->rnd);
	return rc < 0 ? -1 : 0;
}

static struct env *
env_or_skip(void **state)
{
	struct env *e = *state;

	if (!e || !e->f.disk)
		tc_skip();
	return e;
}

/* Events waiting in the channel's ring, read without reaping them. */
static unsigned
ring_pending(const struct aioblk_channel *ch)
{
	const struct aio_ring *ring = ch->kc->ring;
	uint32_t head = ring->head, tail = __atomic_load_n(&ring->tail, __ATOMIC_ACQUIRE);

	return tail >= head ? tail - head : ring->nr - head + tail;
}

static void
wait_ring(const struct aioblk_channel *ch, unsigned n)
{
	int i;

	assert_non_null(ch->kc->ring);
	for (i = 0; i < 10000 && ring_pending(ch) < n; i++)
		usleep(1000);
	assert_int_equal(ring_pending(ch), n);
}

/* A write of fresh random data: fails with EIO on this zram now. */
static int
failing_write(struct env *e, struct tc_result *r)
{
	uint64_t at = e->next;

	e->next += e->chunk_blocks;
	tc_fill(e->rnd, CHUNK, at);
	return aioblk_write(e->f.ch, e->rnd, at, e->chunk_blocks, tc_cb, r);
}

/* An error with the size still readable is just an error; success never asks the size. */
static void
test_error_alone_is_not_loss(void **state)
{
	struct env *e = env_or_skip(state);
	struct tc_result r = { 0, 0 };
	void *buf = tc_alloc(4096, CHUNK);
	int calls;

	/* The setup's EIO made the library look at the size: it was not 0. */
	assert_true(size_calls > 0);
	assert_int_equal(tc_sync_read(e->f.group, e->f.ch, buf, 0, e->chunk_blocks), 0);
	assert_int_equal(aioblk_disk_rescan(e->f.disk), 0);

	/* With the size reading 0, successful I/O does not look. */
	size_zero = true;
	calls = size_calls;
	assert_int_equal(tc_sync_read(e->f.group, e->f.ch, buf, 0, e->chunk_blocks), 0);
	assert_int_equal(size_calls, calls);
	assert_int_equal(aioblk_read(e->f.ch, buf, 0, 1, tc_cb, &r), 0);
	assert_int_equal(feat_poll_count(e->f.group, &r, 1, NULL, NULL), 0);
	assert_int_equal(r.status, 0);
	free(buf);
}

/* After the error that reveals the loss: every new request is refused with -ENODEV. */
static void
test_new_io_after_loss(void **state)
{
	struct env *e = env_or_skip(state);
	struct tc_result r = { 0, 0 }, never = { 0, 0 };
	struct iovec iov;
	void *buf = tc_alloc(4096, CHUNK);

	size_zero = true;
	assert_int_equal(failing_write(e, &r), 0);
	assert_int_equal(feat_poll_count(e->f.group, &r, 1, NULL, NULL), 0);
	assert_true(r.status == -EIO || r.status == -ENODEV);
	detected = true;

	iov = (struct iovec){ buf, e->f.bs };
	assert_int_equal(aioblk_read(e->f.ch, buf, 0, 1, tc_cb, &never), -ENODEV);
	assert_int_equal(aioblk_write(e->f.ch, buf, 0, 1, tc_cb, &never), -ENODEV);
	assert_int_equal(aioblk_readv(e->f.ch, &iov, 1, 0, 1, tc_cb, &never), -ENODEV);
	assert_int_equal(aioblk_writev_ext(e->f.ch, &iov, 1, 0, 1, AIOBLK_WRITE_FUA, tc_cb, &never), -ENODEV);
	assert_int_equal(aioblk_flush(e->f.ch, tc_cb, &never), -ENODEV);
	assert_int_equal(aioblk_write_zeroes(e->f.ch, 0, 1, tc_cb, &never), -ENODEV);
	if (aioblk_disk_supports(e->f.disk, AIOBLK_IO_UNMAP))
		assert_int_equal(aioblk_unmap(e->f.ch, 0, 1, tc_cb, &never), -ENODEV);
	assert_int_equal(aioblk_disk_rescan(e->f.disk), -ENODEV);
	assert_int_equal(feat_poll_some(e->f.group), 0);
	assert_int_equal(never.count, 0);
	assert_int_equal(submitted_after, 0);
	/* Said once, with the disk's name. */
	assert_true(feat_log_find(&e->log, "lost-disk", "lost") >= 0);
	free(buf);
}

/*
 * Requests queued (accepted, not yet handed to the kernel) when the loss is
 * found must fail with -ENODEV and not be sent to the gone device.
 */
static void
test_queued_after_loss(void **state)
{
	struct env *e = env_or_skip(state);
	struct tc_result first = { 0, 0 }, qr = { 0, 0 }, qw = { 0, 0 };
	void *buf = tc_alloc(4096, CHUNK);

	size_zero = true;
	assert_int_equal(failing_write(e, &first), 0);
	assert_int_equal(aioblk_group_submit(e->f.group), 1);
	wait_ring(e->f.ch, 1);
	/* Accepted now, while the failed write waits in the ring. */
	assert_int_equal(aioblk_read(e->f.ch, buf, 0, 1, tc_cb, &qr), 0);
	assert_int_equal(aioblk_write(e->f.ch, buf, 1, 1, tc_cb, &qw), 0);
	detected = true; /* the next poll reaps the error first */
	assert_int_equal(feat_poll_count(e->f.group, &first, 1, NULL, NULL), 0);
	assert_true(first.status == -EIO || first.status == -ENODEV);
	assert_int_equal(feat_poll_count(e->f.group, &qr, 1, NULL, NULL), 0);
	assert_int_equal(feat_poll_count(e->f.group, &qw, 1, NULL, NULL), 0);
	print_message("queued at loss: read %d, write %d; iocbs sent to the kernel after detection: %d\n", qr.status,
		      qw.status, submitted_after);
	assert_int_equal(qr.count, 1);
	assert_int_equal(qw.count, 1);
	assert_int_equal(qr.status, -ENODEV);
	assert_int_equal(qw.status, -ENODEV);
	assert_int_equal(submitted_after, 0);
	free(buf);
}

/*
 * Requests in the kernel when the loss is found: those completing after it
 * fail with -ENODEV (the first error, which revealed it, may keep -EIO).
 */
static void
test_in_kernel_after_loss(void **state)
{
	struct env *e = env_or_skip(state);
	struct tc_result r[4];
	unsigned char *bufs[4];
	int i, enodev = 0, eio = 0;

	size_zero = true;
	for (i = 0; i < 4; i++) {
		r[i] = (struct tc_result){ 0, 0 };
		bufs[i] = tc_alloc(4096, CHUNK);
		tc_fill(bufs[i], CHUNK, e->next + (uint64_t)i);
		assert_int_equal(aioblk_write(e->f.ch, bufs[i], e->next, e->chunk_blocks, tc_cb, &r[i]), 0);
		e->next += e->chunk_blocks;
	}
	assert_int_equal(aioblk_group_submit(e->f.group), 4);
	wait_ring(e->f.ch, 4);
	for (i = 0; i < 4; i++)
		assert_int_equal(feat_poll_count(e->f.group, &r[i], 1, NULL, NULL), 0);
	for (i = 0; i < 4; i++) {
		print_message("in kernel at loss: request %d status %d\n", i, r[i].status);
		assert_int_equal(r[i].count, 1);
		enodev += r[i].status == -ENODEV;
		eio += r[i].status == -EIO;
	}
	assert_int_equal(enodev + eio, 4);
	assert_true(enodev >= 3);
	for (i = 0; i < 4; i++)
		free(bufs[i]);
}

/*
 * After the loss, the size reads non-zero again (a device that came back on
 * the same node). Whatever rescan decides, it must agree with the I/O
 * calls: 0 means the disk is usable again, -ENODEV means it stays lost.
 */
static void
test_rescan_after_loss(void **state)
{
	struct env *e = env_or_skip(state);
	struct tc_result r = { 0, 0 };
	void *buf = tc_alloc(4096, CHUNK);
	int rc, io;

	size_zero = true;
	assert_int_equal(failing_write(e, &r), 0);
	assert_int_equal(feat_poll_count(e->f.group, &r, 1, NULL, NULL), 0);
	assert_int_equal(aioblk_disk_rescan(e->f.disk), -ENODEV);
	size_zero = false;
	rc = aioblk_disk_rescan(e->f.disk);
	r = (struct tc_result){ 0, 0 };
	io = aioblk_read(e->f.ch, buf, 0, 1, tc_cb, &r);
	print_message("size back: rescan %d, new read %d\n", rc, io);
	if (io == 0)
		assert_int_equal(feat_poll_count(e->f.group, &r, 1, NULL, NULL), 0);
	if (rc == 0)
		assert_int_equal(io, 0);
	else
		assert_int_equal(rc, -ENODEV);
	if (rc == -ENODEV)
		assert_int_equal(io, -ENODEV);
	free(buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_error_alone_is_not_loss, setup, teardown),
		cmocka_unit_test_setup_teardown(test_new_io_after_loss, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queued_after_loss, setup, teardown),
		cmocka_unit_test_setup_teardown(test_in_kernel_after_loss, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rescan_after_loss, setup, teardown),
	};

	if (!tc_is_root()) {
		printf("SKIP: needs root (private zram)\n");
		return TC_SKIP;
	}
	return tc_run_group(tests, NULL, NULL);
}
