/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Real faults from the kernel (recipes of TESTING.md; root, skipped
 * otherwise): ENOSPC on a full tmpfs, EIO from a zram device over its
 * memory limit, a file truncated under queued reads, a loop device detached
 * while I/O is outstanding, fs.aio-max-nr exhausted. After each, every
 * write that was acknowledged before or during the fault is read back.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common.h"

#define CHUNK (64u * 1024u)
#define WAIT_MS 20000

struct io {
	struct tc_result r;
	uint64_t seed;
};

static int
wait_all(struct aioblk_group *g, struct io *ios, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (tc_wait_count(g, &ios[i].r, 1, WAIT_MS) < 0)
			return -ETIMEDOUT;
	return 0;
}

/* Each callback ran exactly once, even after more polls. */
static void
assert_once(struct aioblk_group *g, struct io *ios, unsigned n)
{
	for (unsigned i = 0; i < 5; i++)
		aioblk_group_poll(g, 0);
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(ios[i].r.count, 1);
}

/* Read back every chunk whose write was acknowledged, through the library. */
static void
verify_acked(struct aioblk_group *g, struct aioblk_channel *ch, uint32_t bs, char *buf, struct io *ios, unsigned n,
	     uint64_t first_block)
{
	unsigned per = CHUNK / bs;

	for (unsigned i = 0; i < n; i++) {
		if (ios[i].r.status != 0)
			continue;
		memset(buf, 0, CHUNK);
		assert_int_equal(tc_sync_read(g, ch, buf, first_block + (uint64_t)i * per, per), 0);
		assert_int_equal(tc_check(buf, CHUNK, ios[i].seed), -1);
	}
}

/* Incompressible: zram stores a pattern of mixed 64-bit words well, random bytes not at all. */
static void
fill_random(void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = getrandom((char *)buf + done, len - done, 0);

		assert_true(n > 0);
		done += (size_t)n;
	}
}

/* Write @n chunks at once from @bufs (one CHUNK each), wait for all. */
static void
write_chunks(struct aioblk_group *g, struct aioblk_channel *ch, uint32_t bs, char *bufs, struct io *ios, unsigned n,
	     uint64_t first_block)
{
	unsigned per = CHUNK / bs;

	for (unsigned i = 0; i < n; i++) {
		ios[i].r.count = 0;
		assert_int_equal(aioblk_write(ch, bufs + (size_t)i * CHUNK, first_block + (uint64_t)i * per, per, tc_cb,
					      &ios[i].r),
				 0);
	}
	assert_int_equal(wait_all(g, ios, n), 0);
	assert_once(g, ios, n);
	assert_int_equal(aioblk_channel_inflight(ch), 0);
}

/* --- ENOSPC --------------------------------------------------------------- */

static void
enospc_tmpfs(void **state)
{
	char dir[256], path[512];
	struct aioblk_disk *disk;
	struct aioblk_group *g;
	struct aioblk_channel *ch;
	enum { N = 32 }; /* 2 MiB into a 1 MiB file system */
	struct io ios[N];
	char *bufs = tc_alloc(4096, (size_t)N * CHUNK);
	unsigned ok = 0, nospc = 0;

	(void)state;
	assert_non_null(bufs);
	if (tc_mount_tmpfs("1m", dir, sizeof(dir)) < 0)
		tc_skip();
	assert_int_equal(tc_make_file(dir, 8u << 20, path, sizeof(path)), 0);
	assert_int_equal(aioblk_disk_open(path, NULL, &disk), 0);
	assert_int_equal(tc_group_create(0, &g), 0);
	assert_int_equal(aioblk_channel_create(g, disk, N, &ch), 0);
	for (unsigned i = 0; i < N; i++) {
		ios[i].seed = 5000 + i;
		tc_fill(bufs + (size_t)i * CHUNK, CHUNK, ios[i].seed);
	}
	write_chunks(g, ch, aioblk_disk_block_size(disk), bufs, ios, N, 0);
	for (unsigned i = 0; i < N; i++) {
		if (ios[i].r.status == 0)
			ok++;
		else if (ios[i].r.status == -ENOSPC)
			nospc++;
		else
			fail_msg("write %u: status %d, want 0 or -ENOSPC", i, ios[i].r.status);
	}
	print_message("tmpfs 1m, %s: %u writes of 64 KiB acknowledged, %u -ENOSPC\n",
		      aioblk_disk_is_direct(disk) ? "O_DIRECT" : "buffered", ok, nospc);
	assert_true(nospc > 0);
	assert_true(ok > 0);
	/* A flush after the fault works and the acknowledged data is there. */
	assert_int_equal(tc_sync_flush(g, ch), 0);
	verify_acked(g, ch, aioblk_disk_block_size(disk), bufs, ios, N, 0);
	assert_int_equal(aioblk_channel_destroy(ch), 0);
	assert_int_equal(aioblk_group_destroy(g), 0);
	assert_int_equal(aioblk_disk_close(disk), 0);
	unlink(path);
	tc_umount(dir);
	free(bufs);
}

/* --- EIO from zram over its memory limit ---------------------------------- */

static void
eio_zram(void **state)
{
	char dev[64];
	struct aioblk_disk *disk;
	struct aioblk_group *g;
	struct aioblk_channel *ch;
	enum { N = 48 }; /* 3 MiB of random data against a 1 MiB limit */
	struct io ios[N];
	char *bufs = tc_alloc(4096, (size_t)N * CHUNK);
	char *check = tc_alloc(4096, CHUNK);
	unsigned ok = 0, eio = 0, per;
	int id;

	(void)state;
	assert_non_null(bufs);
	id = tc_zram_add("64M", "1M", dev, sizeof(dev));
	if (id < 0)
		tc_skip();
	assert_int_equal(aioblk_disk_open(dev, NULL, &disk), 0);
	assert_true(aioblk_disk_is_direct(disk));
	per = CHUNK / aioblk_disk_block_size(disk);
	assert_int_equal(tc_group_create(AIOBLK_GROUP_EVENTFD, &g), 0);
	assert_int_equal(aioblk_channel_create(g, disk, N, &ch), 0);
	fill_random(bufs, (size_t)N * CHUNK);
	/* Sequentially, so that the ones before the limit are acknowledged. */
	for (unsigned i = 0; i < N; i++) {
		ios[i].r.count = 0;
		ios[i].r.status = tc_sync_write(g, ch, bufs + (size_t)i * CHUNK, (uint64_t)i * per, per);
		ios[i].r.count = 1;
		if (ios[i].r.status == 0)
			ok++;
		else if (ios[i].r.status == -EIO)
			eio++;
		else
			fail_msg("write %u: status %d, want 0 or -EIO", i, ios[i].r.status);
	}
	print_message("zram mem_limit 1M: %u writes of 64 KiB acknowledged, %u -EIO\n", ok, eio);
	assert_true(eio > 0);
	assert_true(ok > 0);
	/* The device is not lost: it still has its size. */
	assert_int_equal(aioblk_disk_rescan(disk), 0);
	for (unsigned i = 0; i < N; i++) {
		if (ios[i].r.status != 0)
			continue;
		memset(check, 0, CHUNK);
		assert_int_equal(tc_sync_read(g, ch, check, (uint64_t)i * per, per), 0);
		assert_memory_equal(check, bufs + (size_t)i * CHUNK, CHUNK);
	}
	assert_int_equal(aioblk_channel_destroy(ch), 0);
	assert_int_equal(aioblk_group_destroy(g), 0);
	assert_int_equal(aioblk_disk_close(disk), 0);
	assert_int_equal(tc_zram_remove(id), 0);
	free(bufs);
	free(check);
}

/* --- a file truncated under queued reads ---------------------------------- */

static void
truncated_under_reads(void **state)
{
	char path[256];
	struct aioblk_disk_opts opts = { .flags = AIOBLK_DISK_BUFFERED };
	struct aioblk_disk *disk;
	struct aioblk_group *g;
	struct aioblk_channel *ch;
	enum { N = 16 }; /* 1 MiB */
	struct io ios[N];
	char *bufs = tc_alloc(4096, (size_t)N * CHUNK);
	const uint64_t new_size = 10 * CHUNK + 1000; /* inside chunk 10, not a block multiple */
	unsigned per;

	(void)state;
	assert_int_equal(tc_make_file(NULL, (uint64_t)N * CHUNK, path, sizeof(path)), 0);
	assert_int_equal(aioblk_disk_open(path, &opts, &disk), 0);
	per = CHUNK / aioblk_disk_block_size(disk);
	assert_int_equal(tc_group_create(0, &g), 0);
	assert_int_equal(aioblk_channel_create(g, disk, N, &ch), 0);
	for (unsigned i = 0; i < N; i++) {
		ios[i].seed = 9000 + i;
		tc_fill(bufs + (size_t)i * CHUNK, CHUNK, ios[i].seed);
	}
	write_chunks(g, ch, aioblk_disk_block_size(disk), bufs, ios, N, 0);
	for (unsigned i = 0; i < N; i++)
		assert_int_equal(ios[i].r.status, 0);

	/* Reads accepted (queued), then the file shrinks behind the library's back. */
	memset(bufs, 0, (size_t)N * CHUNK);
	for (unsigned i = 0; i < N; i++) {
		ios[i].r.count = 0;
		assert_int_equal(aioblk_read(ch, bufs + (size_t)i * CHUNK, (uint64_t)i * per, per, tc_cb, &ios[i].r),
				 0);
	}
	assert_int_equal(truncate(path, (off_t)new_size), 0);
	assert_int_equal(wait_all(g, ios, N), 0);
	assert_once(g, ios, N);
	for (unsigned i = 0; i < N; i++) {
		/* Before the new end: whole; across it: short, continued, then nothing: -EIO; past it: -EIO. */
		int want = (uint64_t)(i + 1) * CHUNK <= new_size ? 0 : -EIO;

		assert_int_equal(ios[i].r.status, want);
		if (want == 0)
			assert_int_equal(tc_check(bufs + (size_t)i * CHUNK, CHUNK, ios[i].seed), -1);
	}
	{
		struct aioblk_channel_stats st;

		assert_int_equal(aioblk_channel_get_stats(ch, &st), 0);
		assert_true(st.retries >= 1); /* the read across the end was continued once */
		assert_int_equal(st.errors, N - 10);
	}
	/* The data before the new end, as the file holds it now. */
	{
		char *tail = tc_alloc(4096, CHUNK);
		int fd = open(path, O_RDONLY);

		assert_true(fd >= 0);
		assert_int_equal(pread(fd, tail, CHUNK, 10 * CHUNK), 1000);
		close(fd);
		memset(bufs, 0, CHUNK);
		tc_fill(bufs, CHUNK, 9010);
		assert_memory_equal(tail, bufs, 1000);
		free(tail);
	}
	/* A size that is not a block multiple is refused by rescan; an aligned one is taken. */
	assert_int_equal(aioblk_disk_rescan(disk), -EINVAL);
	assert_int_equal(aioblk_disk_num_blocks(disk), (uint64_t)N * per);
	assert_int_equal(truncate(path, 10 * CHUNK), 0);
	assert_int_equal(aioblk_disk_rescan(disk), 0);
	assert_int_equal(aioblk_disk_num_blocks(disk), (uint64_t)10 * per);
	assert_int_equal(aioblk_read(ch, bufs, 10 * (uint64_t)per, per, tc_cb, &ios[0].r), -EINVAL);
	verify_acked(g, ch, aioblk_disk_block_size(disk), bufs, ios, 10, 0);
	assert_int_equal(aioblk_channel_destroy(ch), 0);
	assert_int_equal(aioblk_group_destroy(g), 0);
	assert_int_equal(aioblk_disk_close(disk), 0);
	unlink(path);
	free(bufs);
}

/* --- a loop device detached while I/O is outstanding ------------------------ */

static void
loop_detached(void **state)
{
	char file[256], dev[64];
	struct aioblk_disk *disk;
	struct aioblk_group *g;
	struct aioblk_channel *ch;
	enum { N = 32 };
	struct io ios[N];
	char *bufs = tc_alloc(4096, (size_t)N * CHUNK);
	unsigned per;
	int fd;

	(void)state;
	assert_int_equal(tc_make_file(NULL, (uint64_t)N * CHUNK, file, sizeof(file)), 0);
	if (tc_loop_attach(file, 512, true, dev, sizeof(dev)) < 0)
		tc_skip();
	assert_int_equal(aioblk_disk_open(dev, NULL, &disk), 0);
	per = CHUNK / aioblk_disk_block_size(disk);
	assert_int_equal(tc_group_create(AIOBLK_GROUP_EVENTFD, &g), 0);
	assert_int_equal(aioblk_channel_create(g, disk, N, &ch), 0);
	/* First half written and acknowledged before the detach. */
	for (unsigned i = 0; i < N; i++) {
		ios[i].seed = 7000 + i;
		tc_fill(bufs + (size_t)i * CHUNK, CHUNK, ios[i].seed);
	}
	write_chunks(g, ch, aioblk_disk_block_size(disk), bufs, ios, N / 2, 0);
	/* The second half in flight while losetup -d runs. */
	for (unsigned i = N / 2; i < N; i++) {
		ios[i].r.count = 0;
		assert_int_equal(aioblk_write(ch, bufs + (size_t)i * CHUNK, (uint64_t)i * per, per, tc_cb, &ios[i].r),
				 0);
	}
	assert_true(aioblk_group_submit(g) > 0);
	assert_int_equal(tc_loop_detach(dev), 0);
	assert_int_equal(wait_all(g, ios + N / 2, N / 2), 0);
	assert_once(g, ios, N);
	/*
	 * What this kernel does (TESTING.md): a device still open is only
	 * marked for auto-clear; the I/O outstanding at the detach and new I/O
	 * keep working until the last close.
	 */
	for (unsigned i = 0; i < N; i++)
		assert_int_equal(ios[i].r.status, 0);
	assert_int_equal(aioblk_disk_rescan(disk), 0);
	assert_int_equal(aioblk_disk_num_blocks(disk), (uint64_t)N * per);
	verify_acked(g, ch, aioblk_disk_block_size(disk), bufs + 0, ios, N, 0);
	assert_int_equal(tc_sync_flush(g, ch), 0);
	assert_int_equal(aioblk_channel_destroy(ch), 0);
	assert_int_equal(aioblk_group_destroy(g), 0);
	assert_int_equal(aioblk_disk_close(disk), 0);
	/* Last close: the device goes (udev's probe may hold it a moment); the data is in the backing file. */
	if (tc_sh("udevadm settle >/dev/null 2>&1") != 0) {
	}
	for (int i = 0; i < 2000 && tc_sh("losetup %s >/dev/null 2>&1", dev) == 0; i++)
		usleep(10000);
	assert_int_not_equal(tc_sh("losetup %s >/dev/null 2>&1", dev), 0);
	fd = open(file, O_RDONLY);
	assert_true(fd >= 0);
	for (unsigned i = 0; i < N; i++) {
		assert_int_equal(pread(fd, bufs, CHUNK, (off_t)i * CHUNK), CHUNK);
		assert_int_equal(tc_check(bufs, CHUNK, ios[i].seed), -1);
	}
	close(fd);
	unlink(file);
	free(bufs);
}

/* --- fs.aio-max-nr exhausted ---------------------------------------------- */

#define AIO_MAX_NR "/proc/sys/fs/aio-max-nr"
#define AIO_NR "/proc/sys/fs/aio-nr"

static long saved_max_nr = -1;

static long
read_long(const char *path)
{
	FILE *f = fopen(path, "r");
	long v = -1;

	if (!f)
		return -1;
	if (fscanf(f, "%ld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

static int
write_long(const char *path, long v)
{
	FILE *f = fopen(path, "w");
	int rc;

	if (!f)
		return -errno;
	rc = fprintf(f, "%ld\n", v) > 0 ? 0 : -EIO;
	if (fclose(f) != 0)
		rc = -errno;
	return rc;
}

/* Always put the system-wide limit back: at exit, on fatal signals, after the test. */
static void
restore_max_nr(void)
{
	if (saved_max_nr > 0) {
		if (write_long(AIO_MAX_NR, saved_max_nr) == 0)
			saved_max_nr = -1;
	}
}

/* The handlers this test displaced (common.c's cleanups), run after the limit is back. */
static const int fatal_signals[] = { SIGABRT, SIGSEGV, SIGBUS, SIGTERM, SIGINT, SIGHUP, SIGALRM };
static struct sigaction displaced[sizeof(fatal_signals) / sizeof(fatal_signals[0])];

static void
restore_on_signal(int sig)
{
	restore_max_nr();
	for (size_t i = 0; i < sizeof(fatal_signals) / sizeof(fatal_signals[0]); i++)
		if (fatal_signals[i] == sig)
			sigaction(sig, &displaced[i], NULL);
	raise(sig);
}

static void
guard_max_nr(void)
{
	struct sigaction sa = { .sa_handler = restore_on_signal };

	atexit(restore_max_nr);
	for (size_t i = 0; i < sizeof(fatal_signals) / sizeof(fatal_signals[0]); i++)
		sigaction(fatal_signals[i], &sa, &displaced[i]);
}

/*
 * fs.aio-max-nr is one for the whole machine: two runs of this test at
 * once would save each other's lowered value. They take turns.
 */
static int
lock_max_nr(void)
{
	int fd = open("/run/lock/aioblk-aio-max-nr.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0)
		fd = open("/tmp/aioblk-aio-max-nr.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(flock(fd, LOCK_EX), 0);
	return fd;
}

static char log_seen[512];

static void
log_keep(int level, const char *msg, void *arg)
{
	(void)arg;
	if (level == AIOBLK_LOG_ERR)
		snprintf(log_seen, sizeof(log_seen), "%s", msg);
}

static void
aio_max_nr_exhausted(void **state)
{
	char path[256];
	struct aioblk_disk *disk;
	struct aioblk_group *g, *g2 = NULL;
	struct aioblk_channel *ch, *ch2 = NULL;
	char *buf = tc_alloc(4096, CHUNK);
	int rc = 0, lock_fd;

	(void)state;
	assert_int_equal(tc_make_file(NULL, 4 * CHUNK, path, sizeof(path)), 0);
	assert_int_equal(aioblk_disk_open(path, NULL, &disk), 0);
	assert_int_equal(tc_group_create(0, &g), 0);
	assert_int_equal(aioblk_channel_create(g, disk, 8, &ch), 0);
	tc_fill(buf, CHUNK, 42);
	assert_int_equal(tc_sync_write(g, ch, buf, 0, CHUNK / aioblk_disk_block_size(disk)), 0);

	lock_fd = lock_max_nr();
	saved_max_nr = read_long(AIO_MAX_NR);
	assert_true(saved_max_nr > 0);
	/* Root in a container may see /proc/sys read-only: nothing to test there. */
	rc = write_long(AIO_MAX_NR, saved_max_nr);
	if (rc == -EROFS || rc == -EACCES || rc == -EPERM) {
		print_message("SKIP: %s is not writable here: %s\n", AIO_MAX_NR, strerror(-rc));
		saved_max_nr = -1;
		close(lock_fd);
		tc_skip();
	}
	assert_int_equal(rc, 0);
	guard_max_nr();
	aioblk_set_log_fn(log_keep, NULL);
	/*
	 * Other processes create and free contexts too: the window is kept
	 * short and retried when a context went away between the two reads.
	 */
	for (int tries = 0; tries < 20; tries++) {
		long nr = read_long(AIO_NR);

		if (write_long(AIO_MAX_NR, nr) < 0)
			break;
		/* A shared group's channels make no context: its group does. */
		if (tc_shared_groups())
			rc = tc_group_create(0, &g2);
		else
			rc = aioblk_channel_create(g, disk, 8, &ch2);
		restore_max_nr();
		if (rc != 0)
			break;
		if (g2)
			assert_int_equal(aioblk_group_destroy(g2), 0);
		else
			assert_int_equal(aioblk_channel_destroy(ch2), 0);
		ch2 = NULL;
		g2 = NULL;
	}
	aioblk_set_log_fn(NULL, NULL);
	assert_int_equal(saved_max_nr, -1); /* restored */
	close(lock_fd);
	assert_int_equal(rc, -EAGAIN);
	assert_null(ch2);
	assert_null(g2);
	assert_non_null(strstr(log_seen, "fs.aio-max-nr"));
	/* Nothing half made; the existing channel still works; a new one can be made again. */
	assert_int_equal(aioblk_disk_close(disk), -EBUSY);
	memset(buf, 0, CHUNK);
	assert_int_equal(tc_sync_read(g, ch, buf, 0, CHUNK / aioblk_disk_block_size(disk)), 0);
	assert_int_equal(tc_check(buf, CHUNK, 42), -1);
	assert_int_equal(aioblk_channel_create(g, disk, 8, &ch2), 0);
	assert_int_equal(aioblk_channel_destroy(ch2), 0);
	assert_int_equal(aioblk_channel_destroy(ch), 0);
	assert_int_equal(aioblk_group_destroy(g), 0);
	assert_int_equal(aioblk_disk_close(disk), 0);
	unlink(path);
	free(buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(enospc_tmpfs),          cmocka_unit_test(eio_zram),
		cmocka_unit_test(truncated_under_reads), cmocka_unit_test(loop_detached),
		cmocka_unit_test(aio_max_nr_exhausted),
	};

	tc_require_root("tmpfs, zram, loop devices and sysctl fs.aio-max-nr");
	return tc_run_group(tests, NULL, NULL);
}
