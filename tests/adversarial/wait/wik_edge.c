/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * AIOBLK_GROUP_WAIT_IN_KERNEL edges, plain and SHARED_CONTEXT groups:
 * - short transfers: an O_DIRECT file shrunk behind the library; reads
 *   across the new end are continued by the library and fail -EIO, reads
 *   past it fail -EIO, reads inside succeed; wait(-1) returns them all (the
 *   continuation is handed on, not slept over);
 * - an idle wait(-1) in a child process gets SIGUSR1 every 5 ms (handler
 *   without SA_RESTART): it must not return (nothing can complete; -EINTR
 *   is retried inside); the same with wait(30): 0 after 30 ms, not -EINTR;
 * - fork: the parent has reads and write-zeroes in flight (the library's
 *   threads busy); the child opens its own disk, makes its own WIK group
 *   and does 50 reads under wait(-1); the parent's waits get its callbacks.
 * usage: wik_edge
 */
#include "wcommon.h"
#include <sys/wait.h>

static int ncb;
static void
cb(void *arg, int status)
{
	if (arg)
		*(int *)arg = status;
	ncb++;
	wd_progress();
}

static const char *
kind(int shared)
{
	return shared ? "shared" : "plain";
}

static void
test_shrink(int shared, const char *dir)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/wik_edge_shrink.%d", dir, getpid());
	make_file(path, 1 << 20);
	int fd = open(path, O_WRONLY);
	char *junk = xalloc(4096, 1 << 20);
	memset(junk, 0x5c, 1 << 20);
	if (pwrite(fd, junk, 1 << 20, 0) != 1 << 20)
		DIE("pwrite");
	fsync(fd);
	struct aioblk_disk *d;
	if (aioblk_disk_open(path, NULL, &d))
		DIE("open");
	uint32_t bs = aioblk_disk_block_size(d);
	if (ftruncate(fd, 512 * 1024) != 0) /* half of it goes */
		DIE("ftruncate");
	close(fd);
	struct aioblk_group *g = wik_group(shared, 0);
	struct aioblk_channel *c;
	if (aioblk_channel_create(g, d, 16, &c))
		DIE("channel");
	uint64_t half = (512 * 1024) / bs, span = 65536 / bs;
	struct {
		uint64_t off;
		int want;
	} cases[] = { { 0, 0 }, { half - span / 2, -EIO }, { half, -EIO }, { half + span, -EIO }, { half - span, 0 } };
	int st[5];
	ncb = 0;
	for (int rep = 0; rep < 20; rep++) {
		ncb = 0;
		for (int i = 0; i < 5; i++) {
			st[i] = 1;
			if (aioblk_read(c, junk + i * 65536, cases[i].off, span, cb, &st[i]))
				DIE("read");
		}
		while (ncb < 5) {
			wd_what_set("shrink: wait(-1) for short reads");
			int rc = aioblk_group_wait(g, -1);
			CHECK(rc > 0, "shrink wait = %d", rc);
			if (rc < 0)
				break;
		}
		for (int i = 0; i < 5; i++)
			CHECK(st[i] == cases[i].want, "%s shrink: read at %" PRIu64 " (end %" PRIu64 "): %d, want %d",
			      kind(shared), cases[i].off, half, st[i], cases[i].want);
	}
	aioblk_channel_destroy(c);
	aioblk_group_destroy(g);
	aioblk_disk_close(d);
	free(junk);
	unlink(path);
}

static volatile sig_atomic_t nsig;
static void
on_sig(int s)
{
	nsig++;
}

/* Child: idle group, wait(30) then wait(-1) under signals; exits 0 only if wait(-1) returned (a defect). */
static int ready_fd;
static void
child_idle(int shared, const char *path)
{
	struct sigaction sa = { .sa_handler = on_sig };
	sigaction(SIGUSR1, &sa, NULL);
	struct aioblk_disk *d;
	if (aioblk_disk_open(path, NULL, &d))
		_exit(10);
	struct aioblk_group *g = wik_group(shared, 0);
	struct aioblk_channel *c;
	if (aioblk_channel_create(g, d, 4, &c))
		_exit(11);
	/* a read first, so the context has been used */
	ncb = 0;
	char *buf = xalloc(4096, 4096);
	int st = 1;
	aioblk_read(c, buf, 0, 1, cb, &st);
	while (ncb < 1)
		aioblk_group_wait(g, -1);
	if (write(ready_fd, "r", 1) != 1)
		_exit(15);
	for (int i = 0; i < 5; i++) {
		double w0 = now_s();
		int rc = aioblk_group_wait(g, 30);
		double w = now_s() - w0;
		if (rc != 0) {
			fprintf(stderr, "FAIL child %s: idle wait(30) under signals = %d\n", kind(shared), rc);
			_exit(12);
		}
		if (w < 0.030) {
			fprintf(stderr, "FAIL child %s: idle wait(30) under signals returned after %.3f ms\n",
				kind(shared), w * 1e3);
			_exit(13);
		}
	}
	int rc = aioblk_group_wait(g, -1);
	fprintf(stderr, "FAIL child %s: idle wait(-1) returned %d after %d signals\n", kind(shared), rc, (int)nsig);
	_exit(14);
}

static void
test_idle_signals(int shared, const char *path)
{
	int pfd[2];
	if (pipe(pfd))
		DIE("pipe");
	pid_t pid = fork();
	if (pid < 0)
		DIE("fork");
	if (pid == 0) {
		close(pfd[0]);
		ready_fd = pfd[1];
		child_idle(shared, path);
	}
	close(pfd[1]);
	char ch;
	if (read(pfd[0], &ch, 1) != 1) {
		int st;
		waitpid(pid, &st, 0);
		FAIL("%s: child failed before waiting (status %#x)", kind(shared), st);
		close(pfd[0]);
		return;
	}
	close(pfd[0]);
	double end = now_s() + 0.5;
	int st = 0;
	pid_t w = 0;
	while (now_s() < end) {
		kill(pid, SIGUSR1);
		usleep(5000);
		w = waitpid(pid, &st, WNOHANG);
		if (w == pid)
			break;
	}
	if (w == pid) {
		FAIL("%s: child waiting idle under signals ended (exit code %d, signal %d)", kind(shared),
		     WIFEXITED(st) ? WEXITSTATUS(st) : -1, WIFSIGNALED(st) ? WTERMSIG(st) : 0);
		return;
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "%s: child status %d", kind(shared), st);
	printf("%s: idle wait(30) x5 and wait(-1) held 0.5 s of SIGUSR1 every 5 ms\n", kind(shared));
}

static void
test_fork(int shared, const char *path, const char *path2)
{
	struct aioblk_disk *d;
	if (aioblk_disk_open(path, NULL, &d))
		DIE("open");
	struct aioblk_group *g = wik_group(shared, 0);
	struct aioblk_channel *c;
	if (aioblk_channel_create(g, d, 32, &c))
		DIE("channel");
	char *buf = xalloc(4096, 16 * 4096);
	for (int it = 0; it < 10; it++) {
		ncb = 0;
		int n = 0;
		for (int i = 0; i < 16; i++)
			if (aioblk_read(c, buf + i * 4096, (uint64_t)i * 8, 8, cb, NULL) == 0)
				n++;
		for (int i = 0; i < 4; i++)
			if (aioblk_write_zeroes(c, 1024 + (uint64_t)i * 64, 64, cb, NULL) == 0)
				n++;
		aioblk_group_submit(g);
		pid_t pid = fork();
		if (pid < 0)
			DIE("fork");
		if (pid == 0) {
			alarm(5);
			struct aioblk_disk *d2;
			if (aioblk_disk_open(path2, NULL, &d2))
				_exit(20);
			struct aioblk_group *g2 = wik_group(shared, 0);
			struct aioblk_channel *c2;
			if (aioblk_channel_create(g2, d2, 8, &c2))
				_exit(21);
			ncb = 0;
			int err = 0;
			char *cbuf = xalloc(4096, 4096);
			for (int i = 0; i < 50; i++) {
				int want = ncb + 1;
				int st = 1;
				if (aioblk_read(c2, cbuf, (uint64_t)i * 8, 8, cb, &st))
					_exit(22);
				while (ncb < want)
					if (aioblk_group_wait(g2, -1) < 0)
						_exit(23);
				if (st)
					err++;
			}
			aioblk_channel_destroy(c2);
			aioblk_group_destroy(g2);
			aioblk_disk_close(d2);
			_exit(err ? 24 : 0);
		}
		while (ncb < n) {
			wd_what_set("fork: parent's wait(-1) with a child running");
			int rc = aioblk_group_wait(g, -1);
			CHECK(rc > 0, "parent wait = %d", rc);
			if (rc < 0)
				break;
		}
		int st;
		waitpid(pid, &st, 0);
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s fork %d: child status %d (exit %d, signal %d)",
		      kind(shared), it, st, WIFEXITED(st) ? WEXITSTATUS(st) : -1, WIFSIGNALED(st) ? WTERMSIG(st) : 0);
	}
	aioblk_channel_destroy(c);
	aioblk_group_destroy(g);
	aioblk_disk_close(d);
	free(buf);
}

int
main(void)
{
	const char *ext = getenv("WIK_EXT4_DIR") ? getenv("WIK_EXT4_DIR") : "/tmp";
	char p1[256], p2[256];
	snprintf(p1, sizeof(p1), "%s/wik_edge1.%d", ext, getpid());
	snprintf(p2, sizeof(p2), "%s/wik_edge2.%d", tmpdir(), getpid());
	make_file(p1, 4 << 20);
	make_file(p2, 4 << 20);
	wd_start(5);
	wd_armed_set(1);
	for (int shared = 0; shared < 2; shared++) {
		test_shrink(shared, ext);
		test_idle_signals(shared, p2);
		test_fork(shared, p1, p2);
	}
	wd_armed_set(0);
	return adv_exit("wik_edge");
}
