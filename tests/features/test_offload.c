/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Nothing blocks the polling thread. Write-zeroes, unmap and the
 * fdatasync(2) flush fallback run on the library's worker threads; the
 * submitting call returns at once, other I/O of the group goes on while
 * they run, and their callbacks still run once, from a poll of the group,
 * on its own thread.
 *
 * - ext2 (ext4's driver, files without extents) can only zero by writing:
 *   a 768 MiB write-zeroes returns from the call in under 5 ms, a read
 *   issued after it completes first, and the range then reads zeroes.
 * - The fdatasync fallback (the kernel's FDSYNC refused through the sys.c
 *   seam, fdatasync made slow there) does not hold up a poll; a reset
 *   issued after it waits for it.
 * - No zero-length BLKDISCARD or BLKZEROOUT is ever issued (before Linux
 *   6.10 one drops the device's whole page cache).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <poll.h>
#include <unistd.h>

#include <cmocka.h>

#include <libaio.h>

#include "feat.h"

#define MiB (1024u * 1024u)

static atomic_int fail_fdsync;     /* refuse FDSYNC iocbs with EINVAL */
static atomic_int fdatasync_ms;    /* how long a wrapped fdatasync takes */
static atomic_int fdatasync_done;  /* fdatasyncs finished */
static atomic_int zero_len_ranges; /* BLKDISCARD / BLKZEROOUT calls of length 0 */
static atomic_int range_calls;

int __real_aioblk_sys_io_submit(io_context_t ctx, long nr, struct iocb **iocbs);
int __wrap_aioblk_sys_io_submit(io_context_t ctx, long nr, struct iocb **iocbs);
int __real_aioblk_sys_fdatasync(int fd);
int __wrap_aioblk_sys_fdatasync(int fd);
int __real_aioblk_sys_blkdev_range(int fd, unsigned long request, uint64_t offset, uint64_t len);
int __real_aioblk_sys_eventfd_read(int fd, uint64_t *value);
int __wrap_aioblk_sys_eventfd_read(int fd, uint64_t *value);
int __real_aioblk_sys_eventfd_write(int fd, uint64_t value);
int __wrap_aioblk_sys_eventfd_write(int fd, uint64_t value);

/*
 * For the race of a worker finishing inside a poll: the fdatasync waits for
 * go_sync; the poll's read of the eventfd first lets it go and waits until
 * the worker has written the eventfd (posted), so that the read consumes
 * the worker's signal after the poll already took the inbox.
 */
static atomic_int race_armed;
static sem_t go_sync, posted;
int __wrap_aioblk_sys_blkdev_range(int fd, unsigned long request, uint64_t offset, uint64_t len);

int
__wrap_aioblk_sys_io_submit(io_context_t ctx, long nr, struct iocb **iocbs)
{
	long i;

	if (atomic_load(&fail_fdsync)) {
		for (i = 0; i < nr; i++)
			if (iocbs[i]->aio_lio_opcode == IO_CMD_FDSYNC)
				break;
		if (i == 0)
			return -EINVAL;
		nr = i;
	}
	return __real_aioblk_sys_io_submit(ctx, nr, iocbs);
}

int
__wrap_aioblk_sys_fdatasync(int fd)
{
	int ms = atomic_load(&fdatasync_ms);
	int rc = __real_aioblk_sys_fdatasync(fd);

	if (atomic_load(&race_armed))
		sem_wait(&go_sync);
	if (ms)
		usleep((useconds_t)ms * 1000);
	atomic_fetch_add(&fdatasync_done, 1);
	return rc;
}

int
__wrap_aioblk_sys_eventfd_read(int fd, uint64_t *value)
{
	if (atomic_exchange(&race_armed, 0)) {
		sem_post(&go_sync);
		sem_wait(&posted);
	}
	return __real_aioblk_sys_eventfd_read(fd, value);
}

int
__wrap_aioblk_sys_eventfd_write(int fd, uint64_t value)
{
	int rc = __real_aioblk_sys_eventfd_write(fd, value);

	sem_post(&posted);
	return rc;
}

int
__wrap_aioblk_sys_blkdev_range(int fd, unsigned long request, uint64_t offset, uint64_t len)
{
	atomic_fetch_add(&range_calls, 1);
	if (len == 0)
		atomic_fetch_add(&zero_len_ranges, 1);
	return __real_aioblk_sys_blkdev_range(fd, request, offset, len);
}

static int64_t
now_us(void)
{
	return tc_now_ns() / 1000;
}

/* A callback that records the order it ran in and the thread it ran on. */
struct mark {
	int *order;
	int when;
	int status;
	pthread_t thread;
};

static void
mark_cb(void *arg, int status)
{
	struct mark *m = arg;

	m->when = ++*m->order;
	m->status = status;
	m->thread = pthread_self();
}

static void
wait_marked(struct aioblk_group *g, const struct mark *m)
{
	int64_t deadline = now_us() + 30 * 1000000;

	while (!m->when && now_us() < deadline)
		assert_true(aioblk_group_wait(g, 1000) >= 0);
	assert_true(m->when > 0);
}

static void
test_ext2_zeroing_off_thread(void **state)
{
	const uint64_t file_bytes = 800ull * MiB, zero_bytes = 768ull * MiB;
	char dev[64], dir[256], path[320];
	unsigned char *pat, *buf;
	struct mark z = { 0 }, r = { 0 };
	int order = 0, fd;
	int64_t t0, call_us, total_us;
	struct feat f;
	uint64_t zero_off, i;

	(void)state;
	tc_require_root("a private zram device and a mount");
	if (tc_sh("command -v mkfs.ext2 >/dev/null") != 0)
		tc_skip();
	if (tc_zram_add("1G", NULL, dev, sizeof(dev)) < 0)
		tc_skip();
	assert_int_equal(tc_sh("mkfs.ext2 -q -F %s >/dev/null 2>&1", dev), 0);
	assert_int_equal(tc_mount_dev(dev, "ext2", dir, sizeof(dir)), 0);
	snprintf(path, sizeof(path), "%s/img", dir);
	fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)file_bytes), 0);
	/* A pattern in the first MiB, inside the range to zero, and in the last MiB, outside it. */
	pat = tc_alloc(4096, MiB);
	buf = tc_alloc(4096, MiB);
	assert_non_null(pat);
	assert_non_null(buf);
	tc_fill(pat, MiB, 77);
	zero_off = MiB;
	assert_int_equal(pwrite(fd, pat, MiB, (off_t)zero_off), (ssize_t)MiB);
	assert_int_equal(pwrite(fd, pat, MiB, (off_t)(file_bytes - MiB)), (ssize_t)MiB);
	assert_int_equal(fsync(fd), 0);
	close(fd);

	assert_int_equal(feat_open(&f, path, NULL, NULL, AIOBLK_GROUP_EVENTFD), 0);
	z.order = r.order = &order;
	t0 = now_us();
	assert_int_equal(aioblk_write_zeroes(f.ch, zero_off / f.bs, zero_bytes / f.bs, mark_cb, &z), 0);
	call_us = now_us() - t0;
	print_message("768 MiB write-zeroes on ext2: the call took %lld us\n", (long long)call_us);
	/* A read issued after the zeroing completes before it does. */
	assert_int_equal(aioblk_read(f.ch, buf, (file_bytes - MiB) / f.bs, MiB / f.bs, mark_cb, &r), 0);
	wait_marked(f.group, &r);
	assert_int_equal(r.status, 0);
	assert_int_equal(z.when, 0);
	assert_memory_equal(buf, pat, MiB);
	wait_marked(f.group, &z);
	total_us = now_us() - t0;
	print_message("the zeroing finished %lld ms after it was issued\n", (long long)total_us / 1000);
	/* Against the zeroing itself, not a clock: a loaded machine slows both. */
	assert_true(call_us * 20 < total_us);
	assert_int_equal(z.status, 0);
	assert_true(r.when < z.when);
	assert_true(pthread_equal(z.thread, pthread_self()));

	/* The range reads zeroes; the MiB after it keeps its pattern. */
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	for (i = 0; i < zero_bytes; i += MiB) {
		assert_int_equal(pread(fd, buf, MiB, (off_t)(zero_off + i)), (ssize_t)MiB);
		assert_true(feat_all_zero(buf, MiB));
	}
	assert_int_equal(pread(fd, buf, MiB, (off_t)(file_bytes - MiB)), (ssize_t)MiB);
	assert_memory_equal(buf, pat, MiB);
	close(fd);
	feat_close(&f);
	free(pat);
	free(buf);
	assert_int_equal(tc_umount(dir), 0);
}

/*
 * The kernel refuses FDSYNC: flushes go to fdatasync(2) on a worker, which
 * takes 300 ms here. Polls return at once meanwhile, a read completes, a
 * reset issued after the flush waits for it, and the channel cannot be
 * destroyed while the flush is pending.
 */
static void
check_sync_flush(uint32_t group_flags)
{
	struct mark fl = { 0 }, rd = { 0 }, rs = { 0 };
	int order = 0, i;
	int64_t t0, slowest = 0;
	struct feat f;
	char path[256];
	void *buf;

	assert_int_equal(tc_make_file(NULL, 4 * MiB, path, sizeof(path)), 0);
	assert_int_equal(feat_open(&f, path, NULL, NULL, group_flags), 0);
	buf = tc_alloc(4096, 4096);
	assert_non_null(buf);
	fl.order = rd.order = rs.order = &order;
	atomic_store(&fail_fdsync, 1);
	atomic_store(&fdatasync_ms, 300);
	atomic_store(&fdatasync_done, 0);

	assert_int_equal(aioblk_flush(f.ch, mark_cb, &fl), 0);
	assert_int_equal(aioblk_reset(f.ch, mark_cb, &rs), 0);
	t0 = now_us();
	/* The first poll hands the flush to the kernel, which refuses it: from then on it is a worker's. */
	for (i = 0; i < 20; i++) {
		int64_t p0 = now_us();

		assert_true(aioblk_group_poll(f.group, 0) >= 0);
		if (now_us() - p0 > slowest)
			slowest = now_us() - p0;
	}
	print_message("slowest of 20 polls while fdatasync runs: %lld us\n", (long long)slowest);
	assert_true(slowest < 100000);
	assert_int_equal(aioblk_channel_destroy(f.ch), -EBUSY);
	assert_int_equal(aioblk_read(f.ch, buf, 0, 4096 / f.bs, mark_cb, &rd), 0);
	wait_marked(f.group, &rd);
	assert_int_equal(rd.status, 0);
	assert_int_equal(fl.when, 0);
	wait_marked(f.group, &fl);
	assert_true(now_us() - t0 >= 250000);
	assert_int_equal(fl.status, 0);
	assert_int_equal(atomic_load(&fdatasync_done), 1);
	wait_marked(f.group, &rs);
	/* The reset came after the flush was accepted: it finished after it. */
	assert_true(fl.when < rs.when);
	assert_true(pthread_equal(fl.thread, pthread_self()));

	/* Every later flush of the disk goes the same way. */
	memset(&fl, 0, sizeof(fl));
	fl.order = &order;
	assert_int_equal(aioblk_flush(f.ch, mark_cb, &fl), 0);
	wait_marked(f.group, &fl);
	assert_int_equal(fl.status, 0);
	assert_int_equal(atomic_load(&fdatasync_done), 2);
	atomic_store(&fail_fdsync, 0);
	atomic_store(&fdatasync_ms, 0);
	feat_close(&f);
	free(buf);
}

static void
test_sync_flush_off_thread_busy_poll(void **state)
{
	(void)state;
	check_sync_flush(0);
}

static void
test_sync_flush_off_thread_eventfd(void **state)
{
	(void)state;
	check_sync_flush(AIOBLK_GROUP_EVENTFD);
}

/* Open, write-zeroes and unmap on block devices: never a range of length 0. */
static void
test_no_zero_length_ranges(void **state)
{
	static const enum feat_kind kinds[] = { FEAT_LOOP_512, FEAT_ZRAM };
	struct mark m = { 0 };
	int order = 0;
	unsigned k;

	(void)state;
	for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		char path[256];
		struct feat f;

		feat_make_target_or_skip(kinds[k], 4 * MiB, path, sizeof(path));
		atomic_store(&range_calls, 0);
		atomic_store(&zero_len_ranges, 0);
		assert_int_equal(feat_open(&f, path, NULL, NULL, 0), 0);
		m = (struct mark){ .order = &order };
		assert_int_equal(aioblk_write_zeroes(f.ch, 0, 1, mark_cb, &m), 0);
		wait_marked(f.group, &m);
		assert_int_equal(m.status, 0);
		if (aioblk_disk_supports(f.disk, AIOBLK_IO_UNMAP)) {
			m = (struct mark){ .order = &order };
			assert_int_equal(aioblk_unmap(f.ch, 1, 1, mark_cb, &m), 0);
			wait_marked(f.group, &m);
			assert_int_equal(m.status, 0);
		}
		feat_close(&f);
		print_message("%s: %d range ioctls, %d of length 0\n", feat_kind_name(kinds[k]),
			      atomic_load(&range_calls), atomic_load(&zero_len_ranges));
		assert_true(atomic_load(&range_calls) >= 1);
		assert_int_equal(atomic_load(&zero_len_ranges), 0);
	}
}

/*
 * A worker finishes a request while a poll runs, after the poll took the
 * group's inbox, and the poll's read of the eventfd consumes the worker's
 * signal. The poll must leave the eventfd readable again: otherwise an
 * event loop sleeps with the request's callback never run (a lost wake-up
 * the stress test once hit after 20 s).
 */
static void
test_worker_signal_consumed_by_poll(void **state)
{
	struct mark fl = { 0 }, rd = { 0 };
	struct pollfd pfd;
	int order = 0;
	struct feat f;
	char path[256];
	void *buf;

	(void)state;
	assert_int_equal(sem_init(&go_sync, 0, 0), 0);
	assert_int_equal(sem_init(&posted, 0, 0), 0);
	assert_int_equal(tc_make_file(NULL, 4 * MiB, path, sizeof(path)), 0);
	assert_int_equal(feat_open(&f, path, &(struct aioblk_disk_opts){ .flags = AIOBLK_DISK_BUFFERED }, NULL,
				   AIOBLK_GROUP_EVENTFD),
			 0);
	buf = tc_alloc(4096, 4096);
	assert_non_null(buf);
	fl.order = rd.order = &order;
	/* The flush goes to a worker (the kernel refuses FDSYNC), which waits in fdatasync. */
	atomic_store(&fail_fdsync, 1);
	atomic_store(&race_armed, 1);
	assert_int_equal(aioblk_flush(f.ch, mark_cb, &fl), 0);
	assert_int_equal(aioblk_group_submit(f.group), 0);
	/* A buffered read, done inside io_submit: its event makes the next poll read the eventfd. */
	assert_int_equal(aioblk_read(f.ch, buf, 0, 4096 / f.bs, mark_cb, &rd), 0);
	assert_int_equal(aioblk_group_submit(f.group), 1);
	while (sem_trywait(&posted) == 0)
		; /* the kicks of the refused flush and the submits so far */
	assert_int_equal(aioblk_group_poll(f.group, 0), 1);
	assert_true(rd.when > 0);
	assert_int_equal(atomic_load(&race_armed), 0);
	/* The flush is done and waits in the inbox: the fd must say so. */
	pfd = (struct pollfd){ .fd = aioblk_group_fd(f.group), .events = POLLIN };
	assert_int_equal(poll(&pfd, 1, 0), 1);
	assert_int_equal(aioblk_group_poll(f.group, 0), 1);
	assert_int_equal(fl.status, 0);
	atomic_store(&fail_fdsync, 0);
	feat_close(&f);
	free(buf);
	sem_destroy(&go_sync);
	sem_destroy(&posted);
}

/* Write-zeroes on a fresh disk, group and channel of this process: 0 when it completed with 0. */
static int
zero_once(const char *path)
{
	struct aioblk_disk *disk;
	struct aioblk_group *g;
	struct aioblk_channel *ch;
	struct mark m = { 0 };
	int order = 0, rc;

	m.order = &order;
	if ((rc = aioblk_disk_open(path, NULL, &disk)) < 0)
		return rc;
	if ((rc = tc_group_create(AIOBLK_GROUP_EVENTFD, &g)) < 0)
		return rc;
	if ((rc = aioblk_channel_create(g, disk, 4, &ch)) < 0)
		return rc;
	if ((rc = aioblk_write_zeroes(ch, 0, 8, mark_cb, &m)) < 0)
		return rc;
	while (!m.when)
		if ((rc = aioblk_group_wait(g, 10000)) <= 0)
			return rc < 0 ? rc : -ETIMEDOUT;
	if (aioblk_channel_destroy(ch) || aioblk_group_destroy(g) || aioblk_disk_close(disk))
		return -EBUSY;
	return m.status;
}

/*
 * fork() while the library's threads run: the child has none of them, but
 * what it opens itself still gets its write-zeroes done (by threads of its
 * own), and closing its disks returns. The parent goes on as before.
 */
static void
test_fork_child_offloads(void **state)
{
	char a[256], b[256];
	struct feat f;
	struct mark m = { 0 };
	int order = 0, status;
	pid_t pid;

	(void)state;
	assert_int_equal(tc_make_file(NULL, 4 * MiB, a, sizeof(a)), 0);
	assert_int_equal(tc_make_file(NULL, 4 * MiB, b, sizeof(b)), 0);
	assert_int_equal(feat_open(&f, a, NULL, NULL, 0), 0);
	m.order = &order;
	assert_int_equal(aioblk_write_zeroes(f.ch, 0, 8, mark_cb, &m), 0);
	wait_marked(f.group, &m);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		alarm(30);
		_exit(zero_once(b) == 0 ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	m = (struct mark){ .order = &order };
	assert_int_equal(aioblk_write_zeroes(f.ch, 8, 8, mark_cb, &m), 0);
	wait_marked(f.group, &m);
	assert_int_equal(m.status, 0);
	feat_close(&f);
	assert_int_equal(zero_once(b), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ext2_zeroing_off_thread),
		cmocka_unit_test(test_sync_flush_off_thread_busy_poll),
		cmocka_unit_test(test_sync_flush_off_thread_eventfd),
		cmocka_unit_test(test_no_zero_length_ranges),
		cmocka_unit_test(test_fork_child_offloads),
		cmocka_unit_test(test_worker_signal_consumed_by_poll),
	};

	return tc_run_group(tests, NULL, NULL);
}
