/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Helpers shared by the test programs: temporary files, loop devices, tmpfs
 * and zram made for a test and always undone (at exit and on fatal signals
 * too), aligned buffers, patterns, and waiting for callbacks.
 */
#ifndef AIOBLK_TEST_COMMON_H
#define AIOBLK_TEST_COMMON_H

#include <aioblk/aioblk.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Exit status meson (and the TAP/exitcode protocols) read as "skipped". */
#define TC_SKIP 77

/*
 * cmocka's skip() and cmocka_run_group_tests(), counting skips, so that a
 * program whose every case skipped (not root, no loop devices, ...) exits
 * TC_SKIP and meson reports SKIP instead of OK; a partial skip is printed
 * as "SKIPPED-CASES: N of M" (summed by tests/skipped-cases.sh).
 * <cmocka.h> must come before the use.
 */
void tc_note_skip(void);
int tc_group_result(int failed, size_t ncases);
#define tc_skip()               \
	do {                    \
		tc_note_skip(); \
		skip();         \
	} while (0)
#define tc_run_group(cases, setup, teardown) \
	tc_group_result(cmocka_run_group_tests(cases, setup, teardown), sizeof(cases) / sizeof((cases)[0]))

/* A callback target: status is written, count incremented. */
struct tc_result {
	int status;
	int count;
};
void tc_cb(void *arg, int status);

bool tc_is_root(void);
/* Skip the whole program (exit 77) with a message unless root. */
void tc_require_root(const char *why);

/* A new file of @bytes bytes (sparse) in @dir (NULL: $TMPDIR or /var/tmp, on the root file system). */
int tc_make_file(const char *dir, uint64_t bytes, char *path, size_t len);
/* The directory of a private tmpfs of @size (e.g. "1m"), unmounted at exit. Root only. */
int tc_mount_tmpfs(const char *size, char *dir, size_t len);
/* This process's open descriptors and what each points at (/proc/self/fd); returns how many, at most @max. */
struct tc_fd {
	int fd;
	char target[256];
};
int tc_list_fds(struct tc_fd *fds, int max);

/* mkdtemp(@tmpl), removed at exit if still there. */
int tc_make_dir(char *tmpl);
/* Mount block device @dev (file system @fstype) on a new directory; undone at exit. */
int tc_mount_dev(const char *dev, const char *fstype, char *dir, size_t len);
int tc_umount(const char *dir);
/* Attach @file to a free loop device. Detached at exit. Root only. */
int tc_loop_attach(const char *file, unsigned sector_size, bool direct_io, char *dev, size_t len);
int tc_loop_detach(const char *dev);
/*
 * A private zram device of @size bytes; removed at exit. Root only. Returns its number.
 * tc_zram_remove() retries while the device is busy and returns 0 or -errno; a
 * device that cannot be removed at exit makes the program exit 1.
 */
int tc_zram_add(const char *size, const char *mem_limit, char *dev, size_t len);
int tc_zram_remove(int id);

/* Run a shell command; returns its exit status or -1. */
int tc_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

void *tc_alloc(size_t align, size_t bytes);
/* A 64-bit mixing function (splitmix's finalizer): the data patterns of tc_fill and the soak. */
uint64_t tc_mix64(uint64_t x);
void tc_fill(void *buf, size_t bytes, uint64_t seed);
/* Returns the first mismatching byte offset, or -1 when all match. */
long tc_check(const void *buf, size_t bytes, uint64_t seed);

/* CLOCK_MONOTONIC in milliseconds. */
int64_t tc_now_ms(void);
int64_t tc_now_ns(void);

/*
 * The kind of group the suites run with: every test makes its groups with
 * tc_group_create(), and meson runs the suites twice, the second time with
 * AIOBLK_TEST_GROUP=shared, where each group is a SHARED_CONTEXT group of
 * depth TC_SHARED_DEPTH (or AIOBLK_TEST_GROUP_DEPTH).
 */
#define TC_SHARED_DEPTH 1024u
bool tc_shared_groups(void);
int tc_group_create(uint32_t flags, struct aioblk_group **groupp);
/* statx(STATX_DIOALIGN) of @path: 1 with both alignments, 0 when not reported, or -errno. */
int tc_dio_align(const char *path, uint32_t *mem_align, uint32_t *offset_align);

/* Poll @group until @done() is true or @timeout_ms passes; returns 0 or -ETIMEDOUT. */
int tc_poll_until(struct aioblk_group *group, bool (*done)(void *), void *arg, int timeout_ms);
/* Poll until r->count reaches @count. */
int tc_wait_count(struct aioblk_group *group, struct tc_result *r, int count, int timeout_ms);

/* One synchronous I/O through a channel: submit, then poll until done. Returns the submit error or the status. */
int tc_sync_write(struct aioblk_group *g, struct aioblk_channel *ch, const void *buf, uint64_t off, uint64_t n);
int tc_sync_read(struct aioblk_group *g, struct aioblk_channel *ch, void *buf, uint64_t off, uint64_t n);
int tc_sync_flush(struct aioblk_group *g, struct aioblk_channel *ch);

#endif
