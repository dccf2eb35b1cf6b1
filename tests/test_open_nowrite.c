/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Opening, probing and closing a disk change nothing: not a byte, not the
 * size, not the allocation, not mtime or ctime, not the mode bits. A backup
 * tool, rsync or make must see an image that was only opened as untouched,
 * and a process appending to the file while it is opened must lose nothing.
 */
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common.h"

#define FILE_BYTES (1u << 20)
#define OPENS 20
#define RECORD 512
#define RACE_OPENS 3000
#define MAX_RECORDS 200000u /* 100 MB at most */

static void
expect_same_stat(const struct stat *a, const struct stat *b)
{
	assert_int_equal(a->st_size, b->st_size);
	assert_int_equal(a->st_blocks, b->st_blocks);
	assert_int_equal(a->st_mode, b->st_mode);
	assert_int_equal(a->st_mtim.tv_sec, b->st_mtim.tv_sec);
	assert_int_equal(a->st_mtim.tv_nsec, b->st_mtim.tv_nsec);
	assert_int_equal(a->st_ctim.tv_sec, b->st_ctim.tv_sec);
	assert_int_equal(a->st_ctim.tv_nsec, b->st_ctim.tv_nsec);
}

/* The first FILE_BYTES of @path, read behind the library, must be @want. */
static void
expect_content(const char *path, const unsigned char *want)
{
	unsigned char *got = malloc(FILE_BYTES);
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_non_null(got);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, got, FILE_BYTES, 0), FILE_BYTES);
	close(fd);
	assert_memory_equal(want, got, FILE_BYTES);
	free(got);
}

/* Everything a user may touch without doing I/O: open (each way), the accessors, close. */
static void
open_and_look(const char *path, uint32_t flags)
{
	struct aioblk_disk_opts opts = { .flags = flags };
	struct aioblk_disk *disk;
	char json[512];
	int t;

	assert_int_equal(aioblk_disk_open(path, &opts, &disk), 0);
	(void)aioblk_disk_block_size(disk);
	(void)aioblk_disk_num_blocks(disk);
	(void)aioblk_disk_buf_align(disk);
	(void)aioblk_disk_len_align(disk);
	(void)aioblk_disk_is_direct(disk);
	(void)aioblk_disk_is_readonly(disk);
	for (t = AIOBLK_IO_READ; t <= AIOBLK_IO_FUA_WRITE; t++)
		(void)aioblk_disk_supports(disk, (enum aioblk_io_type)t);
	assert_true(aioblk_disk_config_json(disk, json, sizeof(json)) > 0);
	assert_int_equal(aioblk_disk_rescan(disk), 0);
	assert_int_equal(aioblk_disk_close(disk), 0);
}

/* @path has data over part of it and a hole over the rest: both must stay as they are. */
static void
check_untouched(const char *path)
{
	static const uint32_t flags[] = { 0, AIOBLK_DISK_BUFFERED, AIOBLK_DISK_READONLY };
	unsigned char *before = malloc(FILE_BYTES);
	struct stat st0, st1;
	int fd, i;

	assert_non_null(before);
	fd = open(path, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	tc_fill(before, FILE_BYTES / 2, 42);
	/* The second half stays a hole: punching one at the end is what an open must not do. */
	memset(before + FILE_BYTES / 2, 0, FILE_BYTES / 2);
	assert_int_equal(pwrite(fd, before, FILE_BYTES / 2, 0), FILE_BYTES / 2);
	assert_int_equal(ftruncate(fd, FILE_BYTES), 0);
	assert_int_equal(fsync(fd), 0);
	close(fd);
	/* So that a change of mtime or ctime cannot hide inside one clock tick. */
	usleep(20000);
	assert_int_equal(stat(path, &st0), 0);

	for (i = 0; i < OPENS; i++)
		open_and_look(path, flags[i % 3]);

	assert_int_equal(stat(path, &st1), 0);
	expect_same_stat(&st0, &st1);
	expect_content(path, before);
	free(before);
}

static void
test_file_untouched(void **state)
{
	char path[256];

	(void)state;
	assert_int_equal(tc_make_file(NULL, 0, path, sizeof(path)), 0);
	check_untouched(path);
	unlink(path);
}

/* tmpfs: an open must also keep the setuid and setgid bits (a write would strip them). */
static void
test_tmpfs_untouched_setid(void **state)
{
	char dir[256], path[300];

	(void)state;
	tc_require_root("a tmpfs mount");
	assert_int_equal(tc_mount_tmpfs("8m", dir, sizeof(dir)), 0);
	snprintf(path, sizeof(path), "%s/img", dir);
	assert_int_equal(close(open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644)), 0);
	check_untouched(path);
	/* setuid/setgid for someone else: the kernel strips them on a write by another user's file. */
	assert_int_equal(chown(path, 1, 1), 0);
	assert_int_equal(chmod(path, 06755), 0);
	check_untouched(path);
	unlink(path);
	assert_int_equal(tc_umount(dir), 0);
}

/* A block device: its content is not changed by opens either (no discard, no zeroing). */
static void
test_loop_untouched(void **state)
{
	char file[256], dev[64];
	unsigned char *before = malloc(FILE_BYTES);
	int fd, i;

	(void)state;
	assert_non_null(before);
	tc_require_root("a loop device");
	assert_int_equal(tc_make_file(NULL, FILE_BYTES, file, sizeof(file)), 0);
	fd = open(file, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	tc_fill(before, FILE_BYTES, 7);
	assert_int_equal(pwrite(fd, before, FILE_BYTES, 0), FILE_BYTES);
	close(fd);
	assert_int_equal(tc_loop_attach(file, 512, true, dev, sizeof(dev)), 0);
	for (i = 0; i < OPENS; i++)
		open_and_look(dev, i & 1 ? AIOBLK_DISK_BUFFERED : 0);
	assert_int_equal(tc_loop_detach(dev), 0);
	expect_content(file, before);
	unlink(file);
	free(before);
}

/*
 * Another process appends 512-byte records, each holding its number, while
 * this one opens and closes the file thousands of times, read-write. Every
 * record must be there afterwards, intact.
 */
static void
test_appender_loses_nothing(void **state)
{
	char path[256];
	unsigned char rec[RECORD];
	pid_t child;
	int status, fd, i, opened = 0;
	struct stat st;
	uint64_t n, r;

	(void)state;
	assert_int_equal(tc_make_file(NULL, 0, path, sizeof(path)), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
		for (r = 0; fd >= 0 && r < MAX_RECORDS; r++) {
			memset(rec, (int)(r & 0xff), sizeof(rec));
			memcpy(rec, &r, sizeof(r));
			if (write(fd, rec, sizeof(rec)) != (ssize_t)sizeof(rec))
				_exit(1);
		}
		_exit(fd >= 0 ? 0 : 1);
	}
	for (i = 0; i < RACE_OPENS; i++) {
		struct aioblk_disk *disk;
		/* Buffered, so that the fd sees the appender's size at once; an empty file is refused. */
		struct aioblk_disk_opts opts = { .flags = AIOBLK_DISK_BUFFERED };

		if (aioblk_disk_open(path, &opts, &disk) == 0) {
			opened++;
			assert_int_equal(aioblk_disk_close(disk), 0);
		}
	}
	kill(child, SIGKILL);
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(!WIFEXITED(status) || WEXITSTATUS(status) == 0);
	print_message("%d opens succeeded while the file grew\n", opened);
	assert_true(opened > RACE_OPENS / 2);

	assert_int_equal(stat(path, &st), 0);
	n = (uint64_t)st.st_size / RECORD;
	assert_true(n > 0);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	for (r = 0; r < n; r++) {
		uint64_t got;

		assert_int_equal(pread(fd, rec, sizeof(rec), (off_t)(r * RECORD)), (ssize_t)sizeof(rec));
		memcpy(&got, rec, sizeof(got));
		if (got != r)
			print_message("record %llu reads as %llu\n", (unsigned long long)r, (unsigned long long)got);
		assert_int_equal(got, r);
		assert_int_equal(rec[RECORD - 1], r & 0xff);
	}
	close(fd);
	unlink(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_file_untouched),
		cmocka_unit_test(test_tmpfs_untouched_setid),
		cmocka_unit_test(test_loop_untouched),
		cmocka_unit_test(test_appender_loses_nothing),
	};

	return tc_run_group(tests, NULL, NULL);
}
