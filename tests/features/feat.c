/* SPDX-License-Identifier: BSD-3-Clause */
#define _GNU_SOURCE
#include "feat.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

int
feat_open(struct feat *f, const char *path, const struct aioblk_disk_opts *opts,
	  const struct aioblk_channel_opts *copts, uint32_t group_flags)
{
	int rc;

	memset(f, 0, sizeof(*f));
	snprintf(f->path, sizeof(f->path), "%s", path);
	rc = aioblk_disk_open(path, opts, &f->disk);
	if (rc < 0)
		return rc;
	f->bs = aioblk_disk_block_size(f->disk);
	rc = tc_group_create(group_flags, &f->group);
	if (rc < 0)
		goto fail_disk;
	rc = aioblk_channel_create_ext(f->group, f->disk, copts, &f->ch);
	if (rc < 0)
		goto fail_group;
	return 0;

fail_group:
	aioblk_group_destroy(f->group);
	f->group = NULL;
fail_disk:
	aioblk_disk_close(f->disk);
	f->disk = NULL;
	return rc;
}

void
feat_close(struct feat *f)
{
	if (f->ch) {
		assert_int_equal(aioblk_channel_inflight(f->ch), 0);
		assert_int_equal(aioblk_channel_destroy(f->ch), 0);
	}
	if (f->group)
		assert_int_equal(aioblk_group_destroy(f->group), 0);
	if (f->disk)
		assert_int_equal(aioblk_disk_close(f->disk), 0);
	memset(f, 0, sizeof(*f));
}

int
feat_poll_count(struct aioblk_group *g, struct tc_result *r, int count, unsigned *polls, unsigned *busy)
{
	int64_t deadline = tc_now_ms() + 10000;
	int rc;

	while (r->count < count) {
		if (tc_now_ms() > deadline)
			return -ETIMEDOUT;
		rc = aioblk_group_poll(g, 0);
		assert_true(rc >= 0);
		if (polls)
			(*polls)++;
		if (busy && rc > 0)
			(*busy)++;
	}
	return 0;
}

int
feat_poll_some(struct aioblk_group *g)
{
	int i, rc, ran = 0;

	for (i = 0; i < 20; i++) {
		rc = aioblk_group_poll(g, 0);
		assert_true(rc >= 0);
		ran += rc;
		usleep(1000);
	}
	return ran;
}

const char *
feat_kind_name(enum feat_kind kind)
{
	switch (kind) {
	case FEAT_EXT4_FILE:
		return "ext4 file";
	case FEAT_TMPFS_FILE:
		return "tmpfs file";
	case FEAT_RAMFS_FILE:
		return "ramfs file";
	case FEAT_LOOP_512:
		return "loop 512";
	case FEAT_LOOP_4096:
		return "loop 4096";
	case FEAT_LOOP_RAMFS:
		return "loop over ramfs";
	case FEAT_ZRAM:
		return "zram";
	}
	return "?";
}

bool
feat_kind_is_blockdev(enum feat_kind kind)
{
	return kind == FEAT_LOOP_512 || kind == FEAT_LOOP_4096 || kind == FEAT_LOOP_RAMFS || kind == FEAT_ZRAM;
}

static bool namespace_done;

/*
 * A mount namespace of our own whose mounts do not propagate back: a ramfs
 * mounted in it is gone when the process ends, however it ends.
 */
static int
private_mounts(void)
{
	if (namespace_done)
		return 0;
	if (unshare(CLONE_NEWNS) < 0)
		return -errno;
	if (mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return -errno;
	namespace_done = true;
	return 0;
}

static char ramfs_dir[64];

static void
rmdir_ramfs(void)
{
	if (ramfs_dir[0]) {
		umount2(ramfs_dir, MNT_DETACH);
		rmdir(ramfs_dir);
	}
}

int
feat_mount_ramfs(char *dir, size_t len)
{
	int rc;

	if (!tc_is_root())
		return -EPERM;
	if (!ramfs_dir[0]) {
		rc = private_mounts();
		if (rc < 0)
			return rc;
		snprintf(ramfs_dir, sizeof(ramfs_dir), "/tmp/aioblk-ramfs-XXXXXX");
		if (!mkdtemp(ramfs_dir)) {
			ramfs_dir[0] = '\0';
			return -errno;
		}
		if (mount("ramfs", ramfs_dir, "ramfs", 0, NULL) < 0) {
			rc = -errno;
			rmdir(ramfs_dir);
			ramfs_dir[0] = '\0';
			return rc;
		}
		atexit(rmdir_ramfs);
	}
	snprintf(dir, len, "%s", ramfs_dir);
	return 0;
}

int
feat_make_target(enum feat_kind kind, uint64_t bytes, char *path, size_t len)
{
	char dir[256], file[256];
	char size[32];
	int rc;

	if (kind != FEAT_EXT4_FILE && !tc_is_root())
		return -EPERM;
	switch (kind) {
	case FEAT_EXT4_FILE:
		return tc_make_file(NULL, bytes, path, len);
	case FEAT_TMPFS_FILE:
		snprintf(size, sizeof(size), "%llu", (unsigned long long)(bytes * 2 + (1 << 20)));
		rc = tc_mount_tmpfs(size, dir, sizeof(dir));
		if (rc < 0)
			return rc;
		return tc_make_file(dir, bytes, path, len);
	case FEAT_RAMFS_FILE:
		rc = feat_mount_ramfs(dir, sizeof(dir));
		if (rc < 0)
			return rc;
		return tc_make_file(dir, bytes, path, len);
	case FEAT_LOOP_512:
	case FEAT_LOOP_4096:
		rc = tc_make_file(NULL, bytes, file, sizeof(file));
		if (rc < 0)
			return rc;
		return tc_loop_attach(file, kind == FEAT_LOOP_512 ? 512 : 4096, true, path, len);
	case FEAT_LOOP_RAMFS:
		rc = feat_mount_ramfs(dir, sizeof(dir));
		if (rc < 0)
			return rc;
		rc = tc_make_file(dir, bytes, file, sizeof(file));
		if (rc < 0)
			return rc;
		return tc_loop_attach(file, 512, false, path, len);
	case FEAT_ZRAM:
		snprintf(size, sizeof(size), "%llu", (unsigned long long)bytes);
		rc = tc_zram_add(size, NULL, path, len);
		/* No zram module on this kernel: nothing to test on, like without root. */
		if (rc == -ENOENT)
			return -EPERM;
		return rc < 0 ? rc : 0;
	}
	return -EINVAL;
}

long long
feat_sysfs_ll(const char *dev_path, const char *attr)
{
	const char *base = strrchr(dev_path, '/');
	char p[256];
	long long v = -1;
	FILE *f;

	snprintf(p, sizeof(p), "/sys/block/%s/%s", base ? base + 1 : dev_path, attr);
	f = fopen(p, "r");
	if (!f)
		return -1;
	if (fscanf(f, "%lld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

bool
feat_all_zero(const void *buf, size_t n)
{
	const unsigned char *p = buf;
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

void
feat_log_fn(int level, const char *msg, void *arg)
{
	struct feat_log *log = arg;

	if (log->n == FEAT_LOG_MAX)
		return;
	log->level[log->n] = level;
	snprintf(log->msg[log->n], sizeof(log->msg[0]), "%s", msg);
	log->n++;
}

int
feat_log_find(const struct feat_log *log, const char *a, const char *b)
{
	int i;

	for (i = 0; i < log->n; i++)
		if (strstr(log->msg[i], a) && (!b || strstr(log->msg[i], b)))
			return i;
	return -1;
}

void
feat_make_target_or_skip(enum feat_kind kind, uint64_t bytes, char *path, size_t len)
{
	int rc = feat_make_target(kind, bytes, path, len);

	if (rc == -EPERM) {
		print_message("SKIP %s: needs root\n", feat_kind_name(kind));
		tc_skip();
	}
	assert_int_equal(rc, 0);
}
