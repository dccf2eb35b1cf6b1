/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Helpers of the feature tests (issue 5): a disk with its group and
 * channel, a poll loop that counts its polls, the kinds of real targets the
 * capabilities are checked on (ext4, tmpfs and ramfs files, loop devices,
 * private zram), and a log collector.
 */
#ifndef AIOBLK_TEST_FEAT_H
#define AIOBLK_TEST_FEAT_H

#include <aioblk/aioblk.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

struct feat {
	char path[256];
	struct aioblk_disk *disk;
	struct aioblk_group *group;
	struct aioblk_channel *ch;
	uint32_t bs;
};

/* Open @path as a disk with a group and a channel. 0 or the first -errno. */
int feat_open(struct feat *f, const char *path, const struct aioblk_disk_opts *opts,
	      const struct aioblk_channel_opts *copts, uint32_t group_flags);
/* Tear down (asserting each step succeeds); the channel must be idle. */
void feat_close(struct feat *f);

/*
 * Poll (aioblk_group_poll only, so the caller knows how many polls were
 * made) until r->count reaches @count. Adds the polls made to *polls and
 * the polls that ran a callback to *busy when those are not NULL.
 * Returns 0 or -ETIMEDOUT after 10 s.
 */
int feat_poll_count(struct aioblk_group *g, struct tc_result *r, int count, unsigned *polls, unsigned *busy);
/* Poll a few times and return how many callbacks ran (for "the callback never runs"). */
int feat_poll_some(struct aioblk_group *g);

/* Kinds of target. */
enum feat_kind {
	FEAT_EXT4_FILE,  /* /var/tmp, the root file system */
	FEAT_TMPFS_FILE, /* a private tmpfs (root) */
	FEAT_RAMFS_FILE, /* a private ramfs: no O_DIRECT, no fallocate (root) */
	FEAT_LOOP_512,   /* loop device over an ext4 file, 512-byte sectors, direct I/O (root) */
	FEAT_LOOP_4096,  /* same, 4096-byte sectors (root) */
	FEAT_LOOP_RAMFS, /* loop device over a ramfs file: no discard (root) */
	FEAT_ZRAM,       /* a private zram device (root) */
};
const char *feat_kind_name(enum feat_kind kind);
bool feat_kind_is_blockdev(enum feat_kind kind);
/*
 * Make a target of @kind of @bytes and store its path. Returns 0, -EPERM
 * when it cannot be had here (not root, mounts not permitted, no zram
 * module: the caller skips), or -errno.
 * Everything made is undone at exit.
 */
int feat_make_target(enum feat_kind kind, uint64_t bytes, char *path, size_t len);
/* feat_make_target, skipping the test case (tc_skip()) when it needs root; fails it on any other error. */
void feat_make_target_or_skip(enum feat_kind kind, uint64_t bytes, char *path, size_t len);

/* A private ramfs (in a private mount namespace, so it vanishes with the process). */
int feat_mount_ramfs(char *dir, size_t len);

/* /sys/block/<dev>/<attr> as a number; -1 when unreadable. */
long long feat_sysfs_ll(const char *dev_path, const char *attr);

bool feat_all_zero(const void *buf, size_t n);

/* A log collector: every message and its level, in order. */
#define FEAT_LOG_MAX 64
struct feat_log {
	int n;
	int level[FEAT_LOG_MAX];
	char msg[FEAT_LOG_MAX][512];
};
void feat_log_fn(int level, const char *msg, void *arg);
/* Index of the first message containing both @a and @b (b may be NULL), or -1. */
int feat_log_find(const struct feat_log *log, const char *a, const char *b);

#endif
