/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The log callback: the library prints nothing by itself (stdout and stderr
 * are captured while it meets a fallback and failing I/O), and with a
 * callback the warnings and errors arrive with the disk's name, at the right
 * level, without a trailing newline. The O_DIRECT refusal and an io_submit
 * refusal are faked through wrapped aioblk_sys_open / aioblk_sys_io_submit;
 * the failing read is real (past the end of a file shrunk behind the
 * library's back).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libaio.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "feat.h"
#include "sys.h"

#define MIB (1u << 20)

static char refuse_direct_path[256]; /* open() of this path with O_DIRECT says EINVAL */
static int refuse_submit;            /* the next io_submit says this */

int __real_aioblk_sys_open(const char *path, int flags);
int __wrap_aioblk_sys_open(const char *path, int flags);
int __real_aioblk_sys_reopen(int pathfd, int flags);
int __wrap_aioblk_sys_reopen(int pathfd, int flags);
int __real_aioblk_sys_io_submit(io_context_t ctx, long nr, struct iocb **iocbs);
int __wrap_aioblk_sys_io_submit(io_context_t ctx, long nr, struct iocb **iocbs);

int
__wrap_aioblk_sys_open(const char *path, int flags)
{
	if ((flags & O_DIRECT) && refuse_direct_path[0] && strcmp(path, refuse_direct_path) == 0)
		return -EINVAL;
	return __real_aioblk_sys_open(path, flags);
}

/* The library opens through a descriptor it holds on the path: refuse O_DIRECT there too. */
int
__wrap_aioblk_sys_reopen(int pathfd, int flags)
{
	char link[64], target[4096];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", pathfd);
	n = readlink(link, target, sizeof(target) - 1);
	if (n > 0 && (flags & O_DIRECT) && refuse_direct_path[0]) {
		target[n] = '\0';
		if (strcmp(target, refuse_direct_path) == 0)
			return -EINVAL;
	}
	return __real_aioblk_sys_reopen(pathfd, flags);
}

int
__wrap_aioblk_sys_io_submit(io_context_t ctx, long nr, struct iocb **iocbs)
{
	int rc = refuse_submit;

	if (rc) {
		refuse_submit = 0;
		return rc;
	}
	return __real_aioblk_sys_io_submit(ctx, nr, iocbs);
}

static int
teardown(void **state)
{
	(void)state;
	aioblk_set_log_fn(NULL, NULL);
	refuse_direct_path[0] = '\0';
	refuse_submit = 0;
	return 0;
}

/*
 * Meet what the library has to say something about: a refused O_DIRECT
 * (fallback), an io_submit refusal, a read that fails, a rescan to a bad
 * size, a flush the kernel will not take asynchronously.
 */
static void
provoke(const char *name)
{
	struct aioblk_disk_opts opts = { .name = name };
	struct tc_result r = { 0, 0 };
	char path[256];
	struct feat f;
	void *buf;

	assert_int_equal(tc_make_file(NULL, 4 * MIB, path, sizeof(path)), 0);
	snprintf(refuse_direct_path, sizeof(refuse_direct_path), "%s", path);
	assert_int_equal(feat_open(&f, path, &opts, NULL, 0), 0);
	assert_false(aioblk_disk_is_direct(f.disk));
	buf = tc_alloc(4096, 8192);
	memset(buf, 1, 8192);

	refuse_submit = -EBADF;
	assert_int_equal(aioblk_write(f.ch, buf, 0, 16, tc_cb, &r), 0);
	assert_int_equal(feat_poll_count(f.group, &r, 1, NULL, NULL), 0);
	assert_int_equal(r.status, -EBADF);

	assert_int_equal(truncate(path, MIB), 0);
	assert_int_equal(aioblk_read(f.ch, buf, 3 * MIB / 512, 16, tc_cb, &r), 0);
	assert_int_equal(feat_poll_count(f.group, &r, 2, NULL, NULL), 0);
	assert_int_equal(r.status, -EIO);

	assert_int_equal(truncate(path, MIB + 100), 0);
	assert_int_equal(aioblk_disk_rescan(f.disk), -EINVAL);

	refuse_submit = -EINVAL; /* the next io_submit carries the flush alone */
	assert_int_equal(aioblk_flush(f.ch, tc_cb, &r), 0);
	assert_int_equal(feat_poll_count(f.group, &r, 3, NULL, NULL), 0);
	assert_int_equal(r.status, 0);
	feat_close(&f);
	free(buf);
}

static void
test_silent_by_default(void **state)
{
	int cap = memfd_create("aioblk-log-capture", MFD_CLOEXEC);
	int out, err;
	struct stat st;

	(void)state;
	assert_true(cap >= 0);
	fflush(stdout);
	fflush(stderr);
	out = dup(1);
	err = dup(2);
	assert_true(out >= 0 && err >= 0);
	assert_true(dup2(cap, 1) == 1);
	assert_true(dup2(cap, 2) == 2);
	provoke("silent-disk");
	fflush(stdout);
	fflush(stderr);
	dup2(out, 1);
	dup2(err, 2);
	close(out);
	close(err);
	assert_int_equal(fstat(cap, &st), 0);
	if (st.st_size) {
		char text[512] = "";

		if (pread(cap, text, sizeof(text) - 1, 0) < 0)
			text[0] = '\0';
		print_error("the library printed %lld bytes: %s\n", (long long)st.st_size, text);
	}
	assert_int_equal(st.st_size, 0);
	close(cap);
}

static void
test_messages_carry_the_name(void **state)
{
	struct feat_log log = { 0 };
	int i, k;

	(void)state;
	aioblk_set_log_fn(feat_log_fn, &log);
	provoke("named-disk-42");
	aioblk_set_log_fn(NULL, NULL);
	for (i = 0; i < log.n; i++)
		print_message("log %d: %s\n", log.level[i], log.msg[i]);
	for (i = 0; i < log.n; i++) {
		size_t len = strlen(log.msg[i]);

		assert_true(len > 0);
		assert_true(log.msg[i][len - 1] != '\n');
		assert_true(log.level[i] == AIOBLK_LOG_ERR || log.level[i] == AIOBLK_LOG_WARNING ||
			    log.level[i] == AIOBLK_LOG_INFO || log.level[i] == AIOBLK_LOG_DEBUG);
		if (log.level[i] <= AIOBLK_LOG_WARNING)
			assert_non_null(strstr(log.msg[i], "named-disk-42"));
	}
	/* The O_DIRECT fallback: a warning. */
	k = feat_log_find(&log, "named-disk-42", "O_DIRECT");
	assert_true(k >= 0);
	assert_int_equal(log.level[k], AIOBLK_LOG_WARNING);
	/* The io_submit refusal: an error naming the errno. */
	k = feat_log_find(&log, "named-disk-42", strerror(EBADF));
	assert_true(k >= 0);
	assert_int_equal(log.level[k], AIOBLK_LOG_ERR);
	/* The failed read: an error. */
	k = feat_log_find(&log, "named-disk-42", strerror(EIO));
	assert_true(k >= 0);
	assert_int_equal(log.level[k], AIOBLK_LOG_ERR);
	/* The rescan refusal: an error. */
	k = feat_log_find(&log, "named-disk-42", "multiple");
	assert_true(k >= 0);
	assert_int_equal(log.level[k], AIOBLK_LOG_ERR);
	/* The flush fallback: a warning. */
	k = feat_log_find(&log, "named-disk-42", "fdatasync");
	assert_true(k >= 0);
	assert_int_equal(log.level[k], AIOBLK_LOG_WARNING);
}

static int calls;
static void *seen_arg;

static void
counting_fn(int level, const char *msg, void *arg)
{
	(void)level;
	(void)msg;
	calls++;
	seen_arg = arg;
}

/* The argument is passed through; NULL silences again. */
static void
test_arg_and_reset(void **state)
{
	int token;

	(void)state;
	calls = 0;
	aioblk_set_log_fn(counting_fn, &token);
	provoke("arg-disk");
	assert_true(calls > 0);
	assert_ptr_equal(seen_arg, &token);
	aioblk_set_log_fn(NULL, &token);
	calls = 0;
	provoke("arg-disk");
	assert_int_equal(calls, 0);
}

/* A file system that refuses O_DIRECT for real (ramfs): REQUIRE_DIRECT is refused, else buffered; both logged. */
static void
test_ramfs_refuses_direct(void **state)
{
	struct aioblk_disk_opts required = { .flags = AIOBLK_DISK_REQUIRE_DIRECT, .name = "ramfs-disk" };
	struct aioblk_disk_opts plain = { .name = "ramfs-disk" };
	struct aioblk_disk *disk = NULL;
	static struct feat_log log;
	char path[256];

	(void)state;
	feat_make_target_or_skip(FEAT_RAMFS_FILE, 4 * MIB, path, sizeof(path));
	memset(&log, 0, sizeof(log));
	aioblk_set_log_fn(feat_log_fn, &log);
	assert_int_equal(aioblk_disk_open(path, &required, &disk), -EINVAL);
	assert_null(disk);
	assert_true(feat_log_find(&log, "ramfs-disk", "O_DIRECT") >= 0);
	memset(&log, 0, sizeof(log));
	assert_int_equal(aioblk_disk_open(path, &plain, &disk), 0);
	assert_false(aioblk_disk_is_direct(disk));
	assert_int_equal(aioblk_disk_buf_align(disk), 1);
	assert_int_equal(aioblk_disk_len_align(disk), 1);
	assert_true(feat_log_find(&log, "ramfs-disk", "buffered") >= 0);
	assert_int_equal(aioblk_disk_close(disk), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_silent_by_default, teardown),
		cmocka_unit_test_teardown(test_messages_carry_the_name, teardown),
		cmocka_unit_test_teardown(test_arg_and_reset, teardown),
		cmocka_unit_test_teardown(test_ramfs_refuses_direct, teardown),
	};

	return tc_run_group(tests, NULL, NULL);
}
