/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A poll that never sleeps in the kernel: on a block device whose queue
 * takes 4 requests (queue/nr_requests), 32 reads at a time from one thread
 * and from two threads all complete and read back right, and io_submit
 * never waits for a free request; with AIOBLK_DISK_NO_QUEUE_LIMIT it does
 * (measured and printed, for comparison). The queue is resized while I/O
 * runs and aioblk_disk_rescan() takes the new size; kernel EAGAINs and
 * partial submits (through the sys.c seam) lose nothing and leak no room.
 * In a shared group's batch, the full device holds back only its own
 * requests: a file disk's go in the same io_submit.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <libaio.h>

#include "feat.h"

#define DISK_BYTES (64u << 20)
#define QD 32
#define SLOW_NS 500000 /* an io_submit this long has slept */

/* io_submit as the library calls it: timed, and with faults when asked. */
static atomic_long submit_calls, slow_calls, max_submit_ns;
static atomic_int fault_every; /* every Nth call returns -EAGAIN, every (N+1)th takes one iocb */
static atomic_long first_nr;   /* iocbs offered by the first call since it was reset to -1 */
static atomic_long max_iocb;   /* the most bytes one offered iocb carried */

static long
iocb_bytes(const struct iocb *io)
{
	const struct iovec *iov = io->u.c.buf;
	long n = 0;

	if (io->aio_lio_opcode != IO_CMD_PREADV && io->aio_lio_opcode != IO_CMD_PWRITEV)
		return (long)io->u.c.nbytes;
	for (unsigned long i = 0; i < io->u.c.nbytes; i++)
		n += (long)iov[i].iov_len;
	return n;
}

int __real_aioblk_sys_io_submit(io_context_t ctx, long nr, struct iocb **iocbs);
int __wrap_aioblk_sys_io_submit(io_context_t ctx, long nr, struct iocb **iocbs);

int
__wrap_aioblk_sys_io_submit(io_context_t ctx, long nr, struct iocb **iocbs)
{
	long call = atomic_fetch_add(&submit_calls, 1) + 1, prev;
	int every = atomic_load(&fault_every);
	int64_t t0, ns;
	int rc;

	prev = -1;
	atomic_compare_exchange_strong(&first_nr, &prev, nr);
	for (long i = 0; i < nr; i++) {
		long b = iocb_bytes(iocbs[i]), m = atomic_load(&max_iocb);

		while (b > m && !atomic_compare_exchange_weak(&max_iocb, &m, b))
			;
	}
	if (every && call % every == 0)
		return -EAGAIN;
	if (every && call % (every + 1) == 0)
		nr = 1;
	t0 = tc_now_ns();
	rc = __real_aioblk_sys_io_submit(ctx, nr, iocbs);
	ns = tc_now_ns() - t0;
	if (ns > SLOW_NS)
		atomic_fetch_add(&slow_calls, 1);
	prev = atomic_load(&max_submit_ns);
	while (ns > prev && !atomic_compare_exchange_weak(&max_submit_ns, &prev, ns))
		;
	return rc;
}

static char dev[64], nr_path[128];
static long long nr_saved = -1;

static void
set_nr_requests(long long n)
{
	assert_int_equal(tc_sh("echo %lld > %s", n, nr_path), 0);
}

/* The queue size is the device's, not the test's: put it back, also after a failure. */
static void
restore_nr_requests(void)
{
	if (nr_saved > 0)
		tc_sh("echo %lld > %s 2>/dev/null", nr_saved, nr_path);
}

static void
make_device(void)
{
	static bool made;

	if (made)
		return;
	feat_make_target_or_skip(FEAT_LOOP_512, DISK_BYTES, dev, sizeof(dev));
	snprintf(nr_path, sizeof(nr_path), "/sys/block/%s/queue/nr_requests", strrchr(dev, '/') + 1);
	nr_saved = feat_sysfs_ll(dev, "queue/nr_requests");
	assert_true(nr_saved > 0);
	atexit(restore_nr_requests);
	made = true;
}

/* Block b of the device holds the 64-bit b at every 8 bytes. */
static void
fill_device(struct aioblk_group *g, struct aioblk_channel *ch)
{
	uint64_t *buf = tc_alloc(4096, 1u << 20), b, i;
	const uint64_t per = (1u << 20) / 4096;

	assert_non_null(buf);
	for (b = 0; b < DISK_BYTES / 4096; b += per) {
		for (i = 0; i < (1u << 20) / 8; i++)
			buf[i] = b + i / 512;
		assert_int_equal(tc_sync_write(g, ch, buf, b * 8, per * 8), 0);
	}
	free(buf);
}

struct reader {
	struct aioblk_disk *disk;
	uint32_t group_flags;
	int64_t run_ns;
	unsigned long done, bad;
	int errors;
};

struct slot {
	struct reader *r;
	struct aioblk_channel *ch;
	uint64_t block;
	uint64_t *buf;
	uint64_t rng;
	bool busy;
};

static void read_next(struct slot *s);

static void
read_cb(void *arg, int status)
{
	struct slot *s = arg;
	unsigned i;

	s->busy = false;
	if (status) {
		s->r->errors++;
		return;
	}
	for (i = 0; i < 4096 / 8; i++)
		if (s->buf[i] != s->block)
			s->r->bad++;
	s->r->done++;
}

static void
read_next(struct slot *s)
{
	s->rng ^= s->rng << 13;
	s->rng ^= s->rng >> 7;
	s->rng ^= s->rng << 17;
	s->block = s->rng % (DISK_BYTES / 4096);
	if (aioblk_read(s->ch, s->buf, s->block * 8, 8, read_cb, s) == 0)
		s->busy = true;
	else
		s->r->errors++;
}

/* QD reads at a time for run_ns, on a group of its own; then drains. */
static void *
reader_main(void *arg)
{
	struct reader *r = arg;
	struct aioblk_group *g;
	struct aioblk_channel *ch;
	struct slot slots[QD];
	int64_t end, drain;
	unsigned i;

	if (tc_group_create(r->group_flags, &g) || aioblk_channel_create(g, r->disk, QD, &ch)) {
		r->errors++;
		return NULL;
	}
	for (i = 0; i < QD; i++) {
		slots[i] = (struct slot){ .r = r, .ch = ch, .rng = 0x9e3779b97f4a7c15ull * (i + 1) + (uintptr_t)r };
		slots[i].buf = tc_alloc(4096, 4096);
	}
	end = tc_now_ns() + r->run_ns;
	while (tc_now_ns() < end) {
		for (i = 0; i < QD; i++)
			if (!slots[i].busy)
				read_next(&slots[i]);
		if (aioblk_group_wait(g, 1000) < 0)
			r->errors++;
	}
	drain = tc_now_ns() + 10 * 1000000000ll;
	while (aioblk_channel_inflight(ch) && tc_now_ns() < drain)
		if (aioblk_group_wait(g, 1000) < 0)
			r->errors++;
	if (aioblk_channel_inflight(ch))
		r->errors++; /* a lost wake-up: what was held back never went in */
	else if (aioblk_channel_destroy(ch) || aioblk_group_destroy(g))
		r->errors++;
	for (i = 0; i < QD; i++)
		free(slots[i].buf);
	return NULL;
}

static void
run_readers(struct aioblk_disk *disk, unsigned n, uint32_t group_flags, int64_t run_ms, const char *what)
{
	struct reader r[2];
	pthread_t t[2];
	unsigned i;

	atomic_store(&submit_calls, 0);
	atomic_store(&slow_calls, 0);
	atomic_store(&max_submit_ns, 0);
	for (i = 0; i < n; i++) {
		r[i] = (struct reader){ .disk = disk, .group_flags = group_flags, .run_ns = run_ms * 1000000 };
		assert_int_equal(pthread_create(&t[i], NULL, reader_main, &r[i]), 0);
	}
	for (i = 0; i < n; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		print_message("%s, reader %u: %lu reads, %lu bad words, %d errors\n", what, i, r[i].done, r[i].bad,
			      r[i].errors);
		assert_int_equal(r[i].errors, 0);
		assert_int_equal(r[i].bad, 0);
		assert_true(r[i].done > 0);
	}
	print_message("%s: %ld io_submit calls, %ld over %d us, the longest %ld us\n", what, atomic_load(&submit_calls),
		      atomic_load(&slow_calls), SLOW_NS / 1000, atomic_load(&max_submit_ns) / 1000);
}

static struct aioblk_disk *
open_dev(uint32_t flags)
{
	struct aioblk_disk_opts opts = { .flags = flags };
	struct aioblk_disk *disk;

	assert_int_equal(aioblk_disk_open(dev, &opts, &disk), 0);
	return disk;
}

/* A fresh device whose queue takes 4 requests, opened with the library's limit (which reads 4). */
static struct aioblk_disk *
open_queue_of_4(void)
{
	struct aioblk_disk *disk;

	make_device();
	set_nr_requests(4);
	disk = open_dev(0);
	assert_int_equal(aioblk_disk_queue_limit(disk), 4);
	return disk;
}

static void
test_limit_detected(void **state)
{
	struct aioblk_disk *disk;
	char path[256];

	(void)state;
	make_device();
	disk = open_dev(0);
	assert_int_equal(aioblk_disk_queue_limit(disk), nr_saved);
	assert_int_equal(aioblk_disk_close(disk), 0);
	disk = open_dev(AIOBLK_DISK_NO_QUEUE_LIMIT);
	assert_int_equal(aioblk_disk_queue_limit(disk), 0);
	assert_int_equal(aioblk_disk_close(disk), 0);
	disk = open_dev(AIOBLK_DISK_BUFFERED);
	assert_int_equal(aioblk_disk_queue_limit(disk), 0);
	assert_int_equal(aioblk_disk_close(disk), 0);
	/* A file has no queue of its own. */
	assert_int_equal(tc_make_file(NULL, 1u << 20, path, sizeof(path)), 0);
	assert_int_equal(aioblk_disk_open(path, NULL, &disk), 0);
	assert_int_equal(aioblk_disk_queue_limit(disk), 0);
	assert_int_equal(aioblk_disk_close(disk), 0);
	assert_int_equal(aioblk_disk_queue_limit(NULL), 0);
}

static void
check_small_queue(unsigned threads, uint32_t group_flags)
{
	struct aioblk_disk *disk;
	struct aioblk_group *g;
	struct aioblk_channel *ch;
	long slow_limited, slow_unlimited, calls_limited, calls_unlimited;

	make_device();
	set_nr_requests(128);
	disk = open_dev(0);
	assert_int_equal(tc_group_create(0, &g), 0);
	assert_int_equal(aioblk_channel_create(g, disk, QD, &ch), 0);
	fill_device(g, ch);
	assert_int_equal(aioblk_channel_destroy(ch), 0);
	assert_int_equal(aioblk_group_destroy(g), 0);
	assert_int_equal(aioblk_disk_close(disk), 0);

	set_nr_requests(4);
	disk = open_dev(AIOBLK_DISK_NO_QUEUE_LIMIT);
	run_readers(disk, threads, group_flags, 1000, "nr_requests 4, no limit");
	slow_unlimited = atomic_load(&slow_calls);
	calls_unlimited = atomic_load(&submit_calls);
	assert_int_equal(aioblk_disk_close(disk), 0);

	disk = open_dev(0);
	assert_int_equal(aioblk_disk_queue_limit(disk), 4);
	run_readers(disk, threads, group_flags, 1000, "nr_requests 4, limit 4");
	slow_limited = atomic_load(&slow_calls);
	calls_limited = atomic_load(&submit_calls);
	assert_int_equal(aioblk_disk_close(disk), 0);
	set_nr_requests(nr_saved);
	/*
	 * With the limit, io_submit never has to wait for a free request. A
	 * call can still be preempted on a loaded machine: allow one in a
	 * hundred, where without the limit nearly every call sleeps here.
	 */
	print_message("io_submit calls over %d us: %ld with the limit, %ld without\n", SLOW_NS / 1000, slow_limited,
		      slow_unlimited);
	/*
	 * On a machine loaded past its cores, preemption alone passes 1% (7%
	 * at load 12 on 2 cores): then the share of slow calls must be below a
	 * fifth of the unlimited run's (84% there).
	 */
	assert_true(calls_limited > 0 && calls_unlimited > 0);
	assert_true(slow_limited <= calls_limited / 100 || (double)slow_limited / (double)calls_limited * 5 <
								   (double)slow_unlimited / (double)calls_unlimited);
}

static void
test_one_thread(void **state)
{
	(void)state;
	check_small_queue(1, 0);
}

static void
test_two_threads_eventfd(void **state)
{
	/* The limit is shared: each thread's completions must wake the other's group. */
	(void)state;
	check_small_queue(2, AIOBLK_GROUP_EVENTFD);
}

/* The queue grows while I/O runs: rescan takes the new size, nothing is lost. */
struct resizer {
	struct aioblk_disk *disk;
	unsigned seen;
};

static void *
resizer_main(void *arg)
{
	struct resizer *z = arg;

	usleep(300000);
	set_nr_requests(16);
	if (aioblk_disk_rescan(z->disk) == 0)
		z->seen = aioblk_disk_queue_limit(z->disk);
	return NULL;
}

static void
test_rescan_resized_queue(void **state)
{
	struct resizer z;
	struct aioblk_disk *disk;
	pthread_t t;

	(void)state;
	disk = open_queue_of_4();
	z = (struct resizer){ .disk = disk };
	assert_int_equal(pthread_create(&t, NULL, resizer_main, &z), 0);
	run_readers(disk, 2, AIOBLK_GROUP_EVENTFD, 800, "nr_requests 4 then 16");
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(z.seen, 16);
	assert_int_equal(aioblk_disk_queue_limit(disk), 16);
	assert_int_equal(aioblk_disk_close(disk), 0);
	set_nr_requests(nr_saved);
}

/* Kernel EAGAINs and partial submits on top of the limit: everything completes, no room leaks. */
static void
test_faults_with_limit(void **state)
{
	struct aioblk_disk *disk;

	(void)state;
	make_device();
	set_nr_requests(4);
	disk = open_dev(0);
	atomic_store(&fault_every, 5);
	run_readers(disk, 2, AIOBLK_GROUP_EVENTFD, 500, "limit 4, EAGAIN and partial submits");
	run_readers(disk, 1, 0, 300, "limit 4, EAGAIN and partial submits, busy");
	atomic_store(&fault_every, 0);
	/* Had room leaked, these would never all go in. */
	run_readers(disk, 2, AIOBLK_GROUP_EVENTFD, 300, "limit 4, after the faults");
	assert_int_equal(aioblk_disk_close(disk), 0);
	set_nr_requests(nr_saved);
}

/* Reads of a file disk that went with one shared batch: counted by their callback. */
static void
count_cb(void *arg, int status)
{
	struct tc_result *r = arg;

	r->count++;
	if (status)
		r->status = status;
}

/*
 * One shared batch over two disks: the device with a 4-request queue holds
 * back its own 28 extra reads only; the file disk's 8, queued after them,
 * go in the same io_submit as the first 4, and everything completes right.
 */
static void
test_shared_batch_holds_back_one_disk(void **state)
{
	struct aioblk_group_opts gopts = { .flags = AIOBLK_GROUP_SHARED_CONTEXT, .queue_depth = QD + 8 };
	struct reader r = { 0 };
	struct slot slots[QD];
	struct tc_result fr = { 0, 0 };
	struct aioblk_channel *ch, *fch;
	struct aioblk_disk *disk, *fdisk;
	struct aioblk_group *g;
	char path[256];
	char *fbuf = tc_alloc(4096, 8 * 4096);
	int64_t deadline;
	unsigned i;

	(void)state;
	disk = open_queue_of_4();
	assert_int_equal(tc_make_file(NULL, 1u << 20, path, sizeof(path)), 0);
	assert_int_equal(aioblk_disk_open(path, NULL, &fdisk), 0);
	assert_int_equal(aioblk_group_create_ext(&gopts, &g), 0);
	assert_int_equal(aioblk_channel_create(g, disk, QD, &ch), 0);
	assert_int_equal(aioblk_channel_create(g, fdisk, 8, &fch), 0);
	fill_device(g, ch);
	for (i = 0; i < QD; i++) {
		slots[i] = (struct slot){ .r = &r, .ch = ch, .rng = 0x9e3779b97f4a7c15ull * (i + 1) };
		slots[i].buf = tc_alloc(4096, 4096);
		read_next(&slots[i]);
	}
	for (i = 0; i < 8; i++)
		assert_int_equal(aioblk_read(fch, fbuf + i * 4096, i * (4096 / aioblk_disk_block_size(fdisk)),
					     4096 / aioblk_disk_block_size(fdisk), count_cb, &fr),
				 0);
	atomic_store(&first_nr, -1);
	assert_int_equal(aioblk_group_submit(g), 4 + 8);
	assert_int_equal(atomic_load(&first_nr), 4 + 8);
	deadline = tc_now_ms() + 20000;
	while ((aioblk_channel_inflight(ch) || aioblk_channel_inflight(fch)) && tc_now_ms() < deadline)
		assert_true(aioblk_group_wait(g, 1000) >= 0);
	assert_int_equal(fr.count, 8);
	assert_int_equal(fr.status, 0);
	assert_int_equal(r.done, QD);
	assert_int_equal(r.bad, 0);
	assert_int_equal(r.errors, 0);
	for (i = 0; i < QD; i++)
		free(slots[i].buf);
	free(fbuf);
	assert_int_equal(aioblk_channel_destroy(ch), 0);
	assert_int_equal(aioblk_channel_destroy(fch), 0);
	assert_int_equal(aioblk_group_destroy(g), 0);
	assert_int_equal(aioblk_disk_close(disk), 0);
	assert_int_equal(aioblk_disk_close(fdisk), 0);
	unlink(path);
	set_nr_requests(nr_saved);
}

/*
 * A request larger than the whole queue (4 requests of 64 KiB) goes in
 * pieces an idle queue takes whole, so that io_submit need not sleep for
 * device requests that cannot all be free: a 1 MiB write from one buffer
 * and one from three iovecs (one of them larger than the cap), then reads
 * the same ways; every iocb carries at most 256 KiB, the data is right.
 */
static void
test_request_larger_than_queue(void **state)
{
	char max_path[128];
	long long max_saved;
	struct aioblk_disk *disk;
	struct aioblk_group *g;
	struct aioblk_channel *ch;
	const size_t mib = 1u << 20;
	char *w = tc_alloc(4096, 2 * mib), *r = tc_alloc(4096, 2 * mib);
	struct tc_result wres = { 0, 0 }, rres = { 0, 0 };
	struct iovec wv[3], rv[3];
	uint32_t bs;

	(void)state;
	make_device();
	snprintf(max_path, sizeof(max_path), "/sys/block/%s/queue/max_sectors_kb", strrchr(dev, '/') + 1);
	max_saved = feat_sysfs_ll(dev, "queue/max_sectors_kb");
	assert_true(max_saved > 0);
	assert_int_equal(tc_sh("echo 64 > %s", max_path), 0);
	set_nr_requests(4);
	disk = open_dev(0);
	tc_sh("echo %lld > %s", max_saved, max_path); /* read at open: put back at once */
	assert_int_equal(aioblk_disk_queue_limit(disk), 4);
	bs = aioblk_disk_block_size(disk);
	assert_int_equal(tc_group_create(0, &g), 0);
	assert_int_equal(aioblk_channel_create(g, disk, 8, &ch), 0);
	tc_fill(w, 2 * mib, 91);
	atomic_store(&max_iocb, 0);
	assert_int_equal(tc_sync_write(g, ch, w, 0, mib / bs), 0);
	wv[0] = (struct iovec){ w + mib, 384 * 1024 };
	wv[1] = (struct iovec){ w + mib + 384 * 1024, 512 * 1024 };
	wv[2] = (struct iovec){ w + mib + 896 * 1024, 128 * 1024 };
	assert_int_equal(aioblk_writev(ch, wv, 3, mib / bs, mib / bs, tc_cb, &wres), 0);
	assert_int_equal(tc_wait_count(g, &wres, 1, 20000), 0);
	assert_int_equal(wres.status, 0);
	memset(r, 0, 2 * mib);
	assert_int_equal(tc_sync_read(g, ch, r, 0, mib / bs), 0);
	rv[0] = (struct iovec){ r + mib, 128 * 1024 };
	rv[1] = (struct iovec){ r + mib + 128 * 1024, 640 * 1024 };
	rv[2] = (struct iovec){ r + mib + 768 * 1024, 256 * 1024 };
	assert_int_equal(aioblk_readv(ch, rv, 3, mib / bs, mib / bs, tc_cb, &rres), 0);
	assert_int_equal(tc_wait_count(g, &rres, 1, 20000), 0);
	assert_int_equal(rres.status, 0);
	assert_memory_equal(r, w, 2 * mib);
	print_message("the largest iocb: %ld KiB\n", atomic_load(&max_iocb) / 1024);
	assert_true(atomic_load(&max_iocb) <= 4 * 64 * 1024);
	assert_int_equal(aioblk_channel_destroy(ch), 0);
	assert_int_equal(aioblk_group_destroy(g), 0);
	assert_int_equal(aioblk_disk_close(disk), 0);
	set_nr_requests(nr_saved);
	free(w);
	free(r);
}

/*
 * A request that the limit holds back (another group has the device's whole
 * queue and does not poll) counts once in retries, however many polls find
 * it held; and a WAIT_IN_KERNEL wait for it, with nothing of its group in
 * the kernel, looks again every 100 us instead of spinning.
 */
static void
test_held_request(void **state)
{
	struct tc_result full = { 0, 0 }, held = { 0, 0 };
	struct aioblk_channel *och, *ch;
	struct aioblk_group *owner, *g;
	struct aioblk_channel_stats st;
	struct aioblk_disk *disk;
	struct timespec c0, c1;
	char *buf = tc_alloc(4096, 5 * 4096);
	int64_t t0, wall_ns, cpu_ns;
	uint32_t bs;
	unsigned i;

	(void)state;
	disk = open_queue_of_4();
	bs = aioblk_disk_block_size(disk);
	assert_int_equal(aioblk_group_create(0, &owner), 0);
	assert_int_equal(aioblk_channel_create(owner, disk, 8, &och), 0);
	for (i = 0; i < 4; i++)
		assert_int_equal(aioblk_read(och, buf + i * 4096, i * (4096 / bs), 4096 / bs, tc_cb, &full), 0);
	assert_int_equal(aioblk_group_submit(owner), 4);

	assert_int_equal(tc_group_create(AIOBLK_GROUP_WAIT_IN_KERNEL, &g), 0);
	assert_int_equal(aioblk_channel_create(g, disk, 8, &ch), 0);
	assert_int_equal(aioblk_read(ch, buf + 4 * 4096, 8 * (4096 / bs), 4096 / bs, tc_cb, &held), 0);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
	t0 = tc_now_ns();
	assert_int_equal(aioblk_group_wait(g, 200), 0);
	wall_ns = tc_now_ns() - t0;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
	cpu_ns = (c1.tv_sec - c0.tv_sec) * 1000000000ll + (c1.tv_nsec - c0.tv_nsec);
	assert_int_equal(aioblk_channel_get_stats(ch, &st), 0);
	print_message("held 200 ms: CPU %.1f ms of %.1f ms, retries %llu, io_submit calls %llu\n", cpu_ns / 1e6,
		      wall_ns / 1e6, (unsigned long long)st.retries, (unsigned long long)st.io_submit_calls);
	assert_int_equal(held.count, 0);
	assert_int_equal(st.io_submit_calls, 0);
	assert_int_equal(st.retries, 1);
	assert_true(cpu_ns < wall_ns / 2);

	/* The owner reaps: the room is back, and the held read goes, once. */
	assert_int_equal(tc_wait_count(owner, &full, 4, 10000), 0);
	assert_int_equal(full.status, 0);
	assert_int_equal(tc_wait_count(g, &held, 1, 10000), 0);
	assert_int_equal(held.status, 0);
	assert_int_equal(aioblk_channel_get_stats(ch, &st), 0);
	assert_int_equal(st.io_submit_calls, 1);
	assert_int_equal(st.retries, 1);
	assert_int_equal(aioblk_channel_destroy(ch), 0);
	assert_int_equal(aioblk_group_destroy(g), 0);
	assert_int_equal(aioblk_channel_destroy(och), 0);
	assert_int_equal(aioblk_group_destroy(owner), 0);
	assert_int_equal(aioblk_disk_close(disk), 0);
	set_nr_requests(nr_saved);
	free(buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_limit_detected),
		cmocka_unit_test(test_one_thread),
		cmocka_unit_test(test_two_threads_eventfd),
		cmocka_unit_test(test_rescan_resized_queue),
		cmocka_unit_test(test_faults_with_limit),
		cmocka_unit_test(test_shared_batch_holds_back_one_disk),
		cmocka_unit_test(test_request_larger_than_queue),
		cmocka_unit_test(test_held_request),
	};

	return tc_run_group(tests, NULL, NULL);
}
