/* SPDX-License-Identifier: BSD-3-Clause */
/* The rules of aioblk_disk_open, one case per rule, on real files. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common.h"

/* Open descriptors of this process: failures must not leak any. */
static int
count_fds(void)
{
	static struct tc_fd fds[1024];
	int n = tc_list_fds(fds, 1024);

	assert_true(n > 0 && n < 1024);
	return n;
}

/* Open @path with @opts, expecting @expected; check nothing leaked. */
static void
expect_open_error(const char *path, const struct aioblk_disk_opts *opts, int expected)
{
	struct aioblk_disk *disk = (struct aioblk_disk *)0x1;
	int before = count_fds();

	assert_int_equal(aioblk_disk_open(path, opts, &disk), expected);
	assert_ptr_equal(disk, (struct aioblk_disk *)0x1); /* untouched on failure */
	assert_int_equal(count_fds(), before);
}

static void
test_null_arguments(void **state)
{
	struct aioblk_disk *disk;
	char path[256];

	(void)state;
	assert_int_equal(tc_make_file(NULL, 1 << 20, path, sizeof(path)), 0);
	assert_int_equal(aioblk_disk_open(NULL, NULL, &disk), -EINVAL);
	assert_int_equal(aioblk_disk_open(path, NULL, NULL), -EINVAL);
	/* The accessors of no disk. */
	assert_null(aioblk_disk_name(NULL));
	assert_null(aioblk_disk_path(NULL));
	assert_int_equal(aioblk_disk_block_size(NULL), 0);
	assert_int_equal(aioblk_disk_num_blocks(NULL), 0);
	assert_int_equal(aioblk_disk_buf_align(NULL), 0);
	assert_int_equal(aioblk_disk_len_align(NULL), 0);
	assert_false(aioblk_disk_is_direct(NULL));
	assert_false(aioblk_disk_is_readonly(NULL));
}

static void
test_bad_flags(void **state)
{
	struct aioblk_disk_opts unknown = { .flags = 1u << 20 };
	struct aioblk_disk_opts both = { .flags = AIOBLK_DISK_REQUIRE_DIRECT | AIOBLK_DISK_BUFFERED };
	char path[256];

	(void)state;
	assert_int_equal(tc_make_file(NULL, 1 << 20, path, sizeof(path)), 0);
	expect_open_error(path, &unknown, -EINVAL);
	expect_open_error(path, &both, -EINVAL);
}

static void
test_bad_block_size(void **state)
{
	static const uint32_t bad[] = { 1, 256, 511, 1000, 3072, 4097 };
	char path[256];
	size_t i;

	(void)state;
	assert_int_equal(tc_make_file(NULL, 1 << 20, path, sizeof(path)), 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct aioblk_disk_opts opts = { .block_size = bad[i] };

		expect_open_error(path, &opts, -EINVAL);
	}
}

static void
test_enoent(void **state)
{
	(void)state;
	expect_open_error("/nonexistent/aioblk/disk", NULL, -ENOENT);
}

static void
test_eacces(void **state)
{
	char path[256];
	pid_t pid;
	int status;

	(void)state;
	assert_int_equal(tc_make_file(NULL, 1 << 20, path, sizeof(path)), 0);
	assert_int_equal(chmod(path, 0600), 0);
	if (geteuid() != 0) {
		assert_int_equal(chmod(path, 0), 0);
		expect_open_error(path, NULL, -EACCES);
		return;
	}
	/* Root ignores file modes: ask as nobody, in a child. */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct aioblk_disk *disk;

		if (setgid(65534) < 0 || setuid(65534) < 0)
			_exit(2);
		_exit(aioblk_disk_open(path, NULL, &disk) == -EACCES ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* Log messages that speak of O_DIRECT (a directory has nothing to say about it). */
static int direct_msgs;

static void
count_direct_msgs(int level, const char *msg, void *arg)
{
	(void)level;
	(void)arg;
	if (strstr(msg, "O_DIRECT"))
		direct_msgs++;
}

/* A directory is refused as one by its type, before anything is opened, under every flag combination. */
static void
test_directory(void **state)
{
	static const uint32_t flags[] = {
		0,
		AIOBLK_DISK_READONLY,
		AIOBLK_DISK_BUFFERED,
		AIOBLK_DISK_REQUIRE_DIRECT,
		AIOBLK_DISK_READONLY | AIOBLK_DISK_BUFFERED,
		AIOBLK_DISK_READONLY | AIOBLK_DISK_REQUIRE_DIRECT,
		AIOBLK_DISK_NOWAIT,
		AIOBLK_DISK_READONLY | AIOBLK_DISK_NOWAIT,
	};
	char dir[] = "/var/tmp/aioblk-dir-XXXXXX";
	struct tc_fd before[64], after[64];
	int nbefore, nafter;
	unsigned i;

	(void)state;
	assert_int_equal(tc_make_dir(dir), 0);
	nbefore = tc_list_fds(before, 64);
	direct_msgs = 0;
	aioblk_set_log_fn(count_direct_msgs, NULL);
	for (i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		struct aioblk_disk_opts opts = { .flags = flags[i] };

		expect_open_error(dir, &opts, -EISDIR);
	}
	aioblk_set_log_fn(NULL, NULL);
	/* Refused by type: no open was tried, so nothing about O_DIRECT was said, and no descriptor is left. */
	assert_int_equal(direct_msgs, 0);
	nafter = tc_list_fds(after, 64);
	assert_int_equal(nafter, nbefore);
	rmdir(dir);
}

static void
test_not_a_disk(void **state)
{
	struct aioblk_disk_opts ro = { .flags = AIOBLK_DISK_READONLY | AIOBLK_DISK_BUFFERED };
	char fifo[] = "/var/tmp/aioblk-fifo-XXXXXX";
	int fd;

	(void)state;
	expect_open_error("/dev/null", &ro, -ENOTBLK);
	fd = mkstemp(fifo);
	assert_true(fd >= 0);
	close(fd);
	unlink(fifo);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	/* Opening a FIFO for reading would wait for a writer: the alarm fails the test instead of hanging it. */
	alarm(10);
	expect_open_error(fifo, &(struct aioblk_disk_opts){ .flags = AIOBLK_DISK_BUFFERED }, -ENOTBLK);
	expect_open_error(fifo, &ro, -ENOTBLK);
	expect_open_error(fifo, &(struct aioblk_disk_opts){ .flags = AIOBLK_DISK_READONLY }, -ENOTBLK);
	alarm(0);
	unlink(fifo);
}

/*
 * Another process keeps putting a FIFO at the path and taking it away (and
 * a regular file now and then) while this one opens the path read-only
 * thousands of times: no open may wait for a FIFO writer, whatever the path
 * named between the library's look at it and its open. Each open fails
 * with -ENOENT or -ENOTBLK (or -EINVAL for the regular file while it is
 * still empty), or opens the regular file.
 */
static void
test_fifo_race(void **state)
{
	char dir[] = "/var/tmp/aioblk-race-XXXXXX", path[64];
	int i, status, rc, fifos = 0, files = 0, unexpected = 0;
	pid_t pid;

	(void)state;
	assert_int_equal(tc_make_dir(dir), 0);
	snprintf(path, sizeof(path), "%s/x", dir);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* Gone with the test, also when its alarm ends it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (i = 0;; i++) {
			if (i % 16 == 15) {
				int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);

				if (fd >= 0) {
					if (ftruncate(fd, 4096) < 0)
						_exit(1);
					close(fd);
				}
			} else if (mkfifo(path, 0600) < 0) {
				_exit(1);
			}
			unlink(path);
		}
	}
	/* A read-only open of a FIFO would wait for a writer: the alarm fails the test instead of hanging it. */
	alarm(30);
	for (i = 0; i < 5000; i++) {
		struct aioblk_disk_opts opts = { .flags = AIOBLK_DISK_READONLY | (i & 1 ? AIOBLK_DISK_BUFFERED : 0) };
		struct aioblk_disk *disk;

		rc = aioblk_disk_open(path, &opts, &disk);
		if (rc == 0) {
			files++;
			if (aioblk_disk_close(disk) != 0)
				unexpected = -EBUSY;
		} else if (rc == -ENOTBLK) {
			fifos++;
		} else if (rc != -ENOENT && rc != -EINVAL) {
			/* -EINVAL: the regular file caught between its creation and its truncate (size 0). */
			unexpected = rc;
		}
	}
	alarm(0);
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(unexpected, 0);
	print_message("5000 opens: %d found a FIFO, %d the file, the rest nothing\n", fifos, files);
	unlink(path);
	rmdir(dir);
}

/* The lease holder: give the lease up when told it is wanted (SIGIO), then leave. */
static int lease_fd = -1;

static void
lease_break(int sig)
{
	(void)sig;
	fcntl(lease_fd, F_SETLEASE, F_UNLCK);
	_exit(0);
}

/*
 * A file another process holds a read lease on (as Samba and NFS servers
 * do): opening it for writing waits until the holder lets go, as open(2)
 * does, rather than failing with EAGAIN (which an O_NONBLOCK open would).
 */
static void
test_leased_file(void **state)
{
	struct aioblk_disk *disk = NULL;
	char path[256], c;
	int ready[2], status;
	pid_t pid;

	(void)state;
	if (!tc_is_root())
		tc_skip(); /* leases need the file's owner or CAP_LEASE; the files here are made per test */
	assert_int_equal(tc_make_file(NULL, 1 << 20, path, sizeof(path)), 0);
	assert_int_equal(pipe(ready), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		signal(SIGIO, lease_break);
		lease_fd = open(path, O_RDONLY);
		c = lease_fd >= 0 && fcntl(lease_fd, F_SETLEASE, F_RDLCK) == 0 ? 'y' : 'n';
		if (write(ready[1], &c, 1) != 1 || c != 'y')
			_exit(1);
		alarm(60); /* never outlive a failed test */
		pause();
		_exit(2);
	}
	close(ready[1]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	if (c != 'y') {
		waitpid(pid, &status, 0);
		print_message("SKIP: leases are off here (fs.leases-enable)\n");
		tc_skip();
	}
	alarm(30);
	assert_int_equal(aioblk_disk_open(path, NULL, &disk), 0);
	alarm(0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(aioblk_disk_close(disk), 0);
}

static void
test_size_not_multiple(void **state)
{
	struct aioblk_disk_opts bs4k = { .block_size = 4096 };
	char path[256];

	(void)state;
	assert_int_equal(tc_make_file(NULL, 1000, path, sizeof(path)), 0);
	expect_open_error(path, NULL, -EINVAL);
	assert_int_equal(tc_make_file(NULL, 6144, path, sizeof(path)), 0);
	expect_open_error(path, &bs4k, -EINVAL);
	assert_int_equal(tc_make_file(NULL, 0, path, sizeof(path)), 0);
	expect_open_error(path, NULL, -EINVAL);
}

static void
test_direct_file_geometry(void **state)
{
	struct aioblk_disk_opts bs4k = { .block_size = 4096, .name = "data0" };
	struct aioblk_disk *disk;
	char path[256];

	(void)state;
	assert_int_equal(tc_make_file(NULL, 8192, path, sizeof(path)), 0);
	assert_int_equal(aioblk_disk_open(path, NULL, &disk), 0);
	assert_true(aioblk_disk_is_direct(disk));
	assert_false(aioblk_disk_is_readonly(disk));
	/* ext4 on this machine reports 512-byte direct I/O alignment through statx. */
	assert_true(aioblk_disk_block_size(disk) >= 512);
	assert_int_equal(aioblk_disk_num_blocks(disk) * aioblk_disk_block_size(disk), 8192);
	assert_true(aioblk_disk_buf_align(disk) >= 1);
	/* Lengths: the sector size the file system needs, which whole blocks always satisfy. */
	assert_true(aioblk_disk_len_align(disk) >= 512);
	assert_true(aioblk_disk_block_size(disk) % aioblk_disk_len_align(disk) == 0);
	assert_string_equal(aioblk_disk_path(disk), path);
	assert_string_equal(aioblk_disk_name(disk), path);
	assert_int_equal(aioblk_disk_close(disk), 0);

	assert_int_equal(aioblk_disk_open(path, &bs4k, &disk), 0);
	assert_int_equal(aioblk_disk_block_size(disk), 4096);
	assert_true(aioblk_disk_len_align(disk) <= 4096); /* what the file system needs, not the chosen block size */
	assert_int_equal(aioblk_disk_num_blocks(disk), 2);
	assert_string_equal(aioblk_disk_name(disk), "data0");
	assert_int_equal(aioblk_disk_close(disk), 0);
}

static void
test_buffered(void **state)
{
	struct aioblk_disk_opts opts = { .flags = AIOBLK_DISK_BUFFERED };
	struct aioblk_disk *disk;
	char path[256];

	(void)state;
	assert_int_equal(tc_make_file(NULL, 1 << 20, path, sizeof(path)), 0);
	assert_int_equal(aioblk_disk_open(path, &opts, &disk), 0);
	assert_false(aioblk_disk_is_direct(disk));
	assert_int_equal(aioblk_disk_block_size(disk), 512);
	assert_int_equal(aioblk_disk_buf_align(disk), 1);
	assert_int_equal(aioblk_disk_len_align(disk), 1);
	assert_int_equal(aioblk_disk_num_blocks(disk), 2048);
	assert_int_equal(aioblk_disk_close(disk), 0);
}

static void
test_readonly(void **state)
{
	struct aioblk_disk_opts opts = { .flags = AIOBLK_DISK_READONLY };
	struct aioblk_disk *disk;
	char path[256];

	(void)state;
	assert_int_equal(tc_make_file(NULL, 1 << 20, path, sizeof(path)), 0);
	assert_int_equal(aioblk_disk_open(path, &opts, &disk), 0);
	assert_true(aioblk_disk_is_readonly(disk));
	assert_false(aioblk_disk_supports(disk, AIOBLK_IO_WRITE));
	assert_true(aioblk_disk_supports(disk, AIOBLK_IO_READ));
	assert_int_equal(aioblk_disk_close(disk), 0);
}

/* Every descriptor the library opens carries O_CLOEXEC. */
static void
test_cloexec(void **state)
{
	struct aioblk_disk *disk;
	struct aioblk_group *group;
	static struct tc_fd fds[256];
	char path[256], fdinfo[64], line[256];
	int checked = 0, nfds;

	(void)state;
	assert_int_equal(tc_make_file(NULL, 1 << 20, path, sizeof(path)), 0);
	assert_int_equal(aioblk_disk_open(path, NULL, &disk), 0);
	assert_int_equal(tc_group_create(AIOBLK_GROUP_EVENTFD, &group), 0);
	nfds = tc_list_fds(fds, 256);
	for (int i = 0; i < nfds; i++) {
		const char *target = fds[i].target;
		FILE *f;
		unsigned long flags = 0;

		if (strcmp(target, path) != 0 && strcmp(target, "anon_inode:[eventfd]") != 0)
			continue;
		snprintf(fdinfo, sizeof(fdinfo), "/proc/self/fdinfo/%d", fds[i].fd);
		f = fopen(fdinfo, "r");
		assert_non_null(f);
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "flags: %lo", &flags) == 1)
				break;
		fclose(f);
		assert_true(flags & O_CLOEXEC);
		/* The disk's fd is an ordinary blocking one (see test_leased_file). */
		if (strcmp(target, path) == 0)
			assert_false(flags & O_NONBLOCK);
		checked++;
	}
	assert_true(checked >= 2);
	assert_int_equal(aioblk_group_destroy(group), 0);
	assert_int_equal(aioblk_disk_close(disk), 0);
}

static void
test_close_busy(void **state)
{
	struct aioblk_disk *disk;
	struct aioblk_group *group;
	struct aioblk_channel *ch;
	char path[256];

	(void)state;
	assert_int_equal(tc_make_file(NULL, 1 << 20, path, sizeof(path)), 0);
	assert_int_equal(aioblk_disk_open(path, NULL, &disk), 0);
	assert_int_equal(tc_group_create(0, &group), 0);
	assert_int_equal(aioblk_channel_create(group, disk, 8, &ch), 0);
	assert_int_equal(aioblk_disk_close(disk), -EBUSY);
	assert_int_equal(aioblk_group_destroy(group), -EBUSY);
	assert_int_equal(aioblk_channel_destroy(ch), 0);
	assert_int_equal(aioblk_group_destroy(group), 0);
	assert_int_equal(aioblk_disk_close(disk), 0);
	assert_int_equal(aioblk_disk_close(NULL), -EINVAL);
}

/* tmpfs takes O_DIRECT on this kernel but reports no alignment: 512 by default. */
static void
test_tmpfs(void **state)
{
	struct aioblk_disk *disk;
	char dir[256], path[256];

	(void)state;
	if (!tc_is_root())
		tc_skip();
	assert_int_equal(tc_mount_tmpfs("16m", dir, sizeof(dir)), 0);
	assert_int_equal(tc_make_file(dir, 1 << 20, path, sizeof(path)), 0);
	assert_int_equal(aioblk_disk_open(path, NULL, &disk), 0);
	assert_int_equal(aioblk_disk_block_size(disk), 512);
	assert_true(aioblk_disk_buf_align(disk) >= 1);
	assert_int_equal(aioblk_disk_close(disk), 0);
	unlink(path);
	tc_umount(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_null_arguments),
		cmocka_unit_test(test_bad_flags),
		cmocka_unit_test(test_bad_block_size),
		cmocka_unit_test(test_enoent),
		cmocka_unit_test(test_eacces),
		cmocka_unit_test(test_directory),
		cmocka_unit_test(test_fifo_race),
		cmocka_unit_test(test_not_a_disk),
		cmocka_unit_test(test_leased_file),
		cmocka_unit_test(test_size_not_multiple),
		cmocka_unit_test(test_direct_file_geometry),
		cmocka_unit_test(test_buffered),
		cmocka_unit_test(test_readonly),
		cmocka_unit_test(test_cloexec),
		cmocka_unit_test(test_close_busy),
		cmocka_unit_test(test_tmpfs),
	};

	return tc_run_group(tests, NULL, NULL);
}
