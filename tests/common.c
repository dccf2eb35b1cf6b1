/* SPDX-License-Identifier: BSD-3-Clause */
#define _GNU_SOURCE
#include "common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/*
 * Remove zram device @id, retrying for 5 s while something (udev's probe)
 * still holds it. With @close_fds, first close this process's own
 * descriptors of it: at exit after a failed assertion, the test's disk may
 * still be open, and hot_remove refuses a device in use.
 */
static int
zram_hot_remove(int id, bool close_fds)
{
	static struct tc_fd fds[256];
	char dev[64], num[16];
	ssize_t n;
	int fd, i, len, nfds;

	snprintf(dev, sizeof(dev), "/dev/zram%d", id);
	nfds = close_fds ? tc_list_fds(fds, 256) : 0;
	for (i = 0; i < nfds; i++)
		if (strcmp(fds[i].target, dev) == 0)
			close(fds[i].fd);
	len = snprintf(num, sizeof(num), "%d", id);
	for (i = 0; i < 250; i++) {
		fd = open("/sys/class/zram-control/hot_remove", O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		n = write(fd, num, (size_t)len);
		close(fd);
		if (n == len || errno == ENODEV)
			return 0;
		if (errno != EBUSY)
			return -errno;
		usleep(20000);
	}
	return -EBUSY;
}

int
tc_list_fds(struct tc_fd *fds, int max)
{
	char link[300];
	struct dirent *e;
	ssize_t n;
	DIR *d = opendir("/proc/self/fd");
	int count = 0;

	if (!d)
		return 0;
	while (count < max && (e = readdir(d))) {
		if (e->d_name[0] == '.' || atoi(e->d_name) == dirfd(d))
			continue;
		snprintf(link, sizeof(link), "/proc/self/fd/%s", e->d_name);
		n = readlink(link, fds[count].target, sizeof(fds[count].target) - 1);
		if (n < 0)
			continue;
		fds[count].target[n] = '\0';
		fds[count].fd = atoi(e->d_name);
		count++;
	}
	closedir(d);
	return count;
}

/* What to undo at exit, newest first. */
#define MAX_CLEANUPS 64
enum cleanup_kind { CL_FILE, CL_DIR, CL_LOOP, CL_MOUNT, CL_ZRAM };
static struct {
	enum cleanup_kind kind;
	char what[256];
	bool done;
} cleanups[MAX_CLEANUPS];
static int ncleanups;
static bool handlers_installed;
/* Something made for the test could not be undone: a leftover is a failure. */
static bool cleanup_failed;

static void
run_cleanups(void)
{
	char cmd[512];
	int i;

	for (i = ncleanups - 1; i >= 0; i--) {
		if (cleanups[i].done)
			continue;
		cleanups[i].done = true;
		switch (cleanups[i].kind) {
		case CL_FILE:
			unlink(cleanups[i].what);
			break;
		case CL_DIR:
			rmdir(cleanups[i].what);
			break;
		case CL_LOOP:
			snprintf(cmd, sizeof(cmd), "losetup -d %s 2>/dev/null", cleanups[i].what);
			if (system(cmd) != 0) { /* already detached */
			}
			break;
		case CL_MOUNT:
			umount2(cleanups[i].what, MNT_DETACH);
			rmdir(cleanups[i].what);
			break;
		case CL_ZRAM:
			if (zram_hot_remove(atoi(cleanups[i].what), true) < 0) {
				fprintf(stderr, "FAIL: could not remove zram%s: left behind\n", cleanups[i].what);
				cleanup_failed = true;
			}
			break;
		}
	}
}

/* At exit: undo everything, and turn a pass or a skip into a failure when something stays behind. */
static void
at_exit_cleanups(void)
{
	run_cleanups();
	if (cleanup_failed) {
		fflush(NULL);
		_exit(1);
	}
}

static void
on_fatal(int sig)
{
	run_cleanups();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void
add_cleanup(enum cleanup_kind kind, const char *what)
{
	if (!handlers_installed) {
		handlers_installed = true;
		atexit(at_exit_cleanups);
		signal(SIGSEGV, on_fatal);
		signal(SIGABRT, on_fatal);
		signal(SIGBUS, on_fatal);
		signal(SIGTERM, on_fatal);
		signal(SIGINT, on_fatal);
		/* Under nohup, SIGHUP stays ignored. */
		if (signal(SIGHUP, on_fatal) == SIG_IGN)
			signal(SIGHUP, SIG_IGN);
		signal(SIGALRM, on_fatal); /* a test's watchdog alarm */
	}
	if (ncleanups == MAX_CLEANUPS)
		return;
	cleanups[ncleanups].kind = kind;
	snprintf(cleanups[ncleanups].what, sizeof(cleanups[ncleanups].what), "%s", what);
	cleanups[ncleanups].done = false;
	ncleanups++;
}

static void
mark_done(enum cleanup_kind kind, const char *what)
{
	int i;

	for (i = 0; i < ncleanups; i++)
		if (cleanups[i].kind == kind && strcmp(cleanups[i].what, what) == 0)
			cleanups[i].done = true;
}

static size_t nskipped;

void
tc_note_skip(void)
{
	nskipped++;
}

int
tc_group_result(int failed, size_t ncases)
{
	/* Parsed by tests/skipped-cases.sh: skips inside a test meson reports as OK. */
	if (nskipped) {
		printf("SKIPPED-CASES: %zu of %zu\n", nskipped, ncases);
		fflush(stdout);
	}
	if (failed == 0 && ncases > 0 && nskipped == ncases)
		return TC_SKIP;
	return failed;
}

void
tc_cb(void *arg, int status)
{
	struct tc_result *r = arg;

	r->status = status;
	r->count++;
}

bool
tc_is_root(void)
{
	return geteuid() == 0;
}

void
tc_require_root(const char *why)
{
	if (!tc_is_root()) {
		printf("SKIP: needs root (%s)\n", why);
		exit(TC_SKIP);
	}
}

int
tc_sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	rc = system(cmd);
	if (rc == -1 || !WIFEXITED(rc))
		return -1;
	return WEXITSTATUS(rc);
}

int
tc_make_file(const char *dir, uint64_t bytes, char *path, size_t len)
{
	const char *d = dir ? dir : getenv("TMPDIR");
	int fd;

	if (!d)
		d = "/var/tmp";
	snprintf(path, len, "%s/aioblk-test-XXXXXX", d);
	fd = mkstemp(path);
	if (fd < 0)
		return -errno;
	add_cleanup(CL_FILE, path);
	if (ftruncate(fd, (off_t)bytes) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	close(fd);
	return 0;
}

int
tc_make_dir(char *tmpl)
{
	if (!mkdtemp(tmpl))
		return -errno;
	add_cleanup(CL_DIR, tmpl);
	return 0;
}

int
tc_mount_tmpfs(const char *size, char *dir, size_t len)
{
	char opts[64];

	snprintf(dir, len, "/tmp/aioblk-tmpfs-XXXXXX");
	if (!mkdtemp(dir))
		return -errno;
	snprintf(opts, sizeof(opts), "size=%s", size);
	if (mount("tmpfs", dir, "tmpfs", 0, opts) < 0) {
		int err = -errno;

		rmdir(dir);
		return err;
	}
	add_cleanup(CL_MOUNT, dir);
	return 0;
}

int
tc_mount_dev(const char *dev, const char *fstype, char *dir, size_t len)
{
	snprintf(dir, len, "/tmp/aioblk-mnt-XXXXXX");
	if (!mkdtemp(dir))
		return -errno;
	if (mount(dev, dir, fstype, 0, NULL) < 0) {
		int err = -errno;

		rmdir(dir);
		return err;
	}
	add_cleanup(CL_MOUNT, dir);
	return 0;
}

int
tc_umount(const char *dir)
{
	int rc = umount2(dir, MNT_DETACH) < 0 ? -errno : 0;

	rmdir(dir);
	mark_done(CL_MOUNT, dir);
	return rc;
}

int
tc_loop_attach(const char *file, unsigned sector_size, bool direct_io, char *dev, size_t len)
{
	char cmd[512];
	FILE *p;

	snprintf(cmd, sizeof(cmd), "losetup -f --show --sector-size %u --direct-io=%s %s 2>/dev/null", sector_size,
		 direct_io ? "on" : "off", file);
	p = popen(cmd, "r");
	if (!p)
		return -errno;
	if (!fgets(dev, (int)len, p)) {
		pclose(p);
		return -ENODEV;
	}
	pclose(p);
	dev[strcspn(dev, "\n")] = '\0';
	if (strncmp(dev, "/dev/loop", 9) != 0)
		return -ENODEV;
	add_cleanup(CL_LOOP, dev);
	/* udev may still be looking at the new device; wait until it settles. */
	if (tc_sh("udevadm settle >/dev/null 2>&1") != 0) {
	}
	return 0;
}

int
tc_loop_detach(const char *dev)
{
	int rc = tc_sh("losetup -d %s 2>/dev/null", dev);

	mark_done(CL_LOOP, dev);
	return rc == 0 ? 0 : -EIO;
}

int
tc_zram_add(const char *size, const char *mem_limit, char *dev, size_t len)
{
	char id[32];
	FILE *f = fopen("/sys/class/zram-control/hot_add", "r");
	int n;

	if (!f)
		return -errno;
	if (!fgets(id, sizeof(id), f)) {
		fclose(f);
		return -EIO;
	}
	fclose(f);
	n = atoi(id);
	snprintf(id, sizeof(id), "%d", n);
	add_cleanup(CL_ZRAM, id);
	if (mem_limit && tc_sh("echo %s > /sys/block/zram%d/mem_limit", mem_limit, n) != 0)
		return -EIO;
	if (tc_sh("echo %s > /sys/block/zram%d/disksize", size, n) != 0)
		return -EIO;
	snprintf(dev, len, "/dev/zram%d", n);
	return n;
}

int
tc_zram_remove(int id)
{
	char what[32];
	int rc;

	snprintf(what, sizeof(what), "%d", id);
	rc = zram_hot_remove(id, false);
	/* On failure the exit cleanup tries again, and fails the program if it cannot either. */
	if (rc == 0)
		mark_done(CL_ZRAM, what);
	return rc;
}

void *
tc_alloc(size_t align, size_t bytes)
{
	void *p = NULL;

	if (align < sizeof(void *))
		align = sizeof(void *);
	if (posix_memalign(&p, align, bytes ? bytes : 1))
		return NULL;
	return p;
}

uint64_t
tc_mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

void
tc_fill(void *buf, size_t bytes, uint64_t seed)
{
	unsigned char *p = buf;
	size_t i;

	for (i = 0; i < bytes; i++)
		p[i] = (unsigned char)(tc_mix64(seed + i / 8) >> (8 * (i % 8)));
}

long
tc_check(const void *buf, size_t bytes, uint64_t seed)
{
	const unsigned char *p = buf;
	size_t i;

	for (i = 0; i < bytes; i++)
		if (p[i] != (unsigned char)(tc_mix64(seed + i / 8) >> (8 * (i % 8))))
			return (long)i;
	return -1;
}

int64_t
tc_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
tc_poll_until(struct aioblk_group *group, bool (*done)(void *), void *arg, int timeout_ms)
{
	int64_t deadline = tc_now_ms() + timeout_ms;

	while (!done(arg)) {
		if (tc_now_ms() > deadline)
			return -ETIMEDOUT;
		aioblk_group_wait(group, 10);
	}
	return 0;
}

struct count_arg {
	struct tc_result *r;
	int count;
};

static bool
count_reached(void *arg)
{
	struct count_arg *c = arg;

	return c->r->count >= c->count;
}

int
tc_wait_count(struct aioblk_group *group, struct tc_result *r, int count, int timeout_ms)
{
	struct count_arg c = { r, count };

	return tc_poll_until(group, count_reached, &c, timeout_ms);
}

static int
finish_one(struct aioblk_group *g, int rc, struct tc_result *r)
{
	if (rc < 0)
		return rc;
	rc = tc_wait_count(g, r, 1, 10000);
	return rc < 0 ? rc : r->status;
}

int
tc_sync_write(struct aioblk_group *g, struct aioblk_channel *ch, const void *buf, uint64_t off, uint64_t n)
{
	struct tc_result r = { 0, 0 };

	return finish_one(g, aioblk_write(ch, buf, off, n, tc_cb, &r), &r);
}

int
tc_sync_read(struct aioblk_group *g, struct aioblk_channel *ch, void *buf, uint64_t off, uint64_t n)
{
	struct tc_result r = { 0, 0 };

	return finish_one(g, aioblk_read(ch, buf, off, n, tc_cb, &r), &r);
}

int
tc_sync_flush(struct aioblk_group *g, struct aioblk_channel *ch)
{
	struct tc_result r = { 0, 0 };

	return finish_one(g, aioblk_flush(ch, tc_cb, &r), &r);
}

/*
 * What statx(STATX_DIOALIGN) says of @path, asked directly: 1 and the two
 * alignments when the kernel reports them, 0 when it does not, or -errno.
 */
int64_t
tc_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int
tc_dio_align(const char *path, uint32_t *mem_align, uint32_t *offset_align)
{
	struct statx stx;

	memset(&stx, 0, sizeof(stx));
	if (statx(AT_FDCWD, path, 0, STATX_DIOALIGN, &stx) < 0)
		return -errno;
	if (!(stx.stx_mask & STATX_DIOALIGN))
		return 0;
	*mem_align = stx.stx_dio_mem_align;
	*offset_align = stx.stx_dio_offset_align;
	return 1;
}

bool
tc_shared_groups(void)
{
	const char *kind = getenv("AIOBLK_TEST_GROUP");

	return kind && strcmp(kind, "shared") == 0;
}

int
tc_group_create(uint32_t flags, struct aioblk_group **groupp)
{
	struct aioblk_group_opts opts = { .flags = flags };
	const char *depth = getenv("AIOBLK_TEST_GROUP_DEPTH");

	if (!tc_shared_groups())
		return aioblk_group_create(flags, groupp);
	opts.flags |= AIOBLK_GROUP_SHARED_CONTEXT;
	opts.queue_depth = depth ? (unsigned)strtoul(depth, NULL, 0) : TC_SHARED_DEPTH;
	return aioblk_group_create_ext(&opts, groupp);
}
