/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Flushes and FUA writes seen where they reach the device: block-layer
 * tracepoints in a trace instance of this test (made and removed by
 * blocklayer.sh, which passes its directory), filtered on one device at a
 * time, with markers written from the test into the same buffer.
 *
 * For each target (a loop device with direct I/O, one without, a private
 * zram, and files on ext4, xfs and btrfs made on a loop device):
 * - after aioblk_write of N blocks completed, aioblk_flush: a flush request
 *   ('F' first in rwbs) is issued to the device and completes before the
 *   flush callback runs;
 * - a FUA write (AIOBLK_WRITE_FUA) reaches the device as a FUA write ('F'
 *   after the 'W') or, where queue/fua is 0, as a write and then a flush;
 * - a flush with no write before it still issues a flush;
 * - on a block device opened buffered, a flush writes the data back and
 *   then flushes the device, before its callback.
 * A device without a volatile cache (queue/write_cache "write through") has
 * nothing to flush: the block layer drops flushes and the FUA bit before they
 * reach it, which is recorded, not failed. A device with a volatile cache
 * that gets no flush fails the test.
 *
 * One AIOBLK-ROW line per target (tests/fs/fsrow.h) records what passed.
 * Only the public API is used.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cmocka.h>

#include "common.h"
#include "fsrow.h"

#define MIB (1024u * 1024u)
#define WRITE_BYTES (64u * 1024u)

static const char *instance;

/* ---- the trace instance ---- */

static int
tr_write(const char *name, const char *value)
{
	char path[512];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", instance, name);
	fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, value, strlen(value));
	close(fd);
	return n == (ssize_t)strlen(value) ? 0 : -EIO;
}

static void
tr_mark(const char *what)
{
	char buf[64];

	snprintf(buf, sizeof(buf), "aioblk-mark %s\n", what);
	assert_int_equal(tr_write("trace_marker", buf), 0);
}

static const char *const traced[] = { "block_rq_issue", "block_rq_complete", "block_bio_queue" };

/* Trace the block events of one device only (the kernel's dev_t: major << 20 | minor). */
static void
tr_device(dev_t dev)
{
	char name[128], filter[64];
	unsigned i;

	snprintf(filter, sizeof(filter), "dev == %u\n", (major(dev) << 20) | minor(dev));
	for (i = 0; i < sizeof(traced) / sizeof(traced[0]); i++) {
		snprintf(name, sizeof(name), "events/block/%s/filter", traced[i]);
		assert_int_equal(tr_write(name, filter), 0);
		snprintf(name, sizeof(name), "events/block/%s/enable", traced[i]);
		assert_int_equal(tr_write(name, "1"), 0);
	}
	assert_int_equal(tr_write("tracing_on", "1"), 0);
}

static void
tr_off(void)
{
	char name[128];
	unsigned i;

	for (i = 0; i < sizeof(traced) / sizeof(traced[0]); i++) {
		snprintf(name, sizeof(name), "events/block/%s/enable", traced[i]);
		tr_write(name, "0");
	}
}

static void
tr_clear(void)
{
	assert_int_equal(tr_write("trace", ""), 0);
}

/* One event of the trace, in the order of its timestamps. */
enum ev_kind { EV_ISSUE, EV_COMPLETE, EV_BIO_QUEUE, EV_MARK };
struct ev {
	enum ev_kind kind;
	char rwbs[16];    /* for a mark: its name */
	unsigned sectors; /* how many the request or bio carries (0: an empty flush) */
};
#define MAX_EVENTS 4096
static struct ev evs[MAX_EVENTS];
static int nevs;

static void
tr_read(void)
{
	static const struct {
		const char *tag;
		enum ev_kind kind;
	} tags[] = {
		{ ": block_rq_issue: ", EV_ISSUE },
		{ ": block_rq_complete: ", EV_COMPLETE },
		{ ": block_bio_queue: ", EV_BIO_QUEUE },
		{ ": tracing_mark_write: aioblk-mark ", EV_MARK },
	};
	char path[512], line[1024], *p;
	unsigned i;
	FILE *f;

	snprintf(path, sizeof(path), "%s/trace", instance);
	f = fopen(path, "re");
	assert_non_null(f);
	nevs = 0;
	while (fgets(line, sizeof(line), f) && nevs < MAX_EVENTS) {
		for (i = 0; i < sizeof(tags) / sizeof(tags[0]); i++) {
			p = strstr(line, tags[i].tag);
			if (!p)
				continue;
			p += strlen(tags[i].tag);
			evs[nevs].kind = tags[i].kind;
			/* Device events: "MAJ,MIN RWBS ..."; marks: "NAME". */
			if (tags[i].kind != EV_MARK) {
				p = strchr(p, ' ');
				if (!p)
					break;
				p++;
			}
			sscanf(p, "%15s", evs[nevs].rwbs);
			evs[nevs].sectors = 0;
			p = strstr(p, " + ");
			if (tags[i].kind != EV_MARK && p)
				evs[nevs].sectors = (unsigned)strtoul(p + 3, NULL, 10);
			nevs++;
			break;
		}
	}
	fclose(f);
}

static int
find_mark(const char *name)
{
	int i;

	for (i = 0; i < nevs; i++)
		if (evs[i].kind == EV_MARK && strcmp(evs[i].rwbs, name) == 0)
			return i;
	return -1;
}

static bool
is_flush(const char *rwbs)
{
	return rwbs[0] == 'F'; /* a flush request, or a preflush before data */
}

static bool
is_fua_write(const char *rwbs)
{
	const char *w = strchr(rwbs, 'W');

	return w && w[1] == 'F';
}

static bool
is_write(const char *rwbs)
{
	return strchr(rwbs, 'W') != NULL;
}

/* First event of @kind in (from, to) that @pred accepts, or -1. */
static int
find_ev(int from, int to, enum ev_kind kind, bool (*pred)(const char *))
{
	int i;

	for (i = from + 1; i < to; i++)
		if (evs[i].kind == kind && pred(evs[i].rwbs))
			return i;
	return -1;
}

/*
 * The device events between two marks, e.g. "Q:FWS,I:FF,C:FF,C:WS" (Q: bio
 * queued, I: request issued, C: request completed), runs as "Q:WSMx14".
 */
static void
describe(int from, int to, char *out, size_t len)
{
	static const char kinds[] = { 'I', 'C', 'Q' };
	char tok[24], prev[24] = "";
	size_t pos = 0;
	int i, run = 0;

	out[0] = '\0';
	for (i = from + 1; i <= to; i++) {
		tok[0] = '\0';
		if (i < to && evs[i].kind == EV_MARK)
			continue;
		if (i < to)
			snprintf(tok, sizeof(tok), "%c:%s", kinds[evs[i].kind], evs[i].rwbs);
		if (run && strcmp(tok, prev) == 0) {
			run++;
			continue;
		}
		if (run && pos + 32 < len) {
			pos += (size_t)snprintf(out + pos, len - pos, "%s%s", pos ? "," : "", prev);
			if (run > 1)
				pos += (size_t)snprintf(out + pos, len - pos, "x%d", run);
		}
		snprintf(prev, sizeof(prev), "%s", tok);
		run = 1;
	}
	if (!out[0])
		snprintf(out, len, "nothing");
}

/* ---- the targets ---- */

struct target {
	const char *name;
	char dev[64];   /* the traced block device */
	char path[320]; /* what aioblk opens */
	bool volatile_cache, fua, rq_based;
};

static long long
sysfs_ll(const char *dev, const char *attr, char *text, size_t len)
{
	char path[256], buf[64] = "";
	FILE *f;

	snprintf(path, sizeof(path), "/sys/block/%s/%s", strrchr(dev, '/') + 1, attr);
	f = fopen(path, "re");
	if (!f)
		return -1;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
	if (text)
		snprintf(text, len, "%s", buf);
	return atoll(buf);
}

static void
describe_device(struct target *t, struct fsrow *row)
{
	char cache[32], path[256];
	struct stat st;

	sysfs_ll(t->dev, "queue/write_cache", cache, sizeof(cache));
	t->volatile_cache = strcmp(cache, "write back") == 0;
	t->fua = sysfs_ll(t->dev, "queue/fua", NULL, 0) == 1;
	snprintf(path, sizeof(path), "/sys/block/%s/mq", strrchr(t->dev, '/') + 1);
	t->rq_based = stat(path, &st) == 0;
	fsrow_set(row, "write_cache", "%s", cache);
	fsrow_set(row, "queue_fua", "%d", t->fua);
	fsrow_set(row, "driver", "%s", t->rq_based ? "request-based" : "bio-based");
}

/* Make target @kind; false when it cannot be had here (the case skips). */
static bool
make_target(struct target *t, const char *kind)
{
	char backing[320], mnt[256];
	const char *fs = NULL;

	memset(t, 0, sizeof(*t));
	t->name = kind;
	if (strcmp(kind, "zram") == 0) {
		if (tc_zram_add("64M", NULL, t->dev, sizeof(t->dev)) < 0)
			return false;
		snprintf(t->path, sizeof(t->path), "%s", t->dev);
		return true;
	}
	if (strncmp(kind, "file-on-", 8) == 0)
		fs = kind + 8;
	if (tc_make_file(NULL, fs ? 512ull * MIB : 64ull * MIB, backing, sizeof(backing)) < 0)
		return false;
	if (tc_loop_attach(backing, 512, strcmp(kind, "loop-dio-off") != 0, t->dev, sizeof(t->dev)) < 0)
		return false;
	if (!fs) {
		snprintf(t->path, sizeof(t->path), "%s", t->dev);
		return true;
	}
	if (tc_sh("command -v mkfs.%s >/dev/null 2>&1 && mkfs.%s -q %s %s >/dev/null 2>&1", fs, fs,
		  strcmp(fs, "ext4") == 0 ? "-F" : "-f", t->dev) != 0)
		return false;
	if (tc_mount_dev(t->dev, fs, mnt, sizeof(mnt)) < 0)
		return false;
	if (tc_make_file(mnt, 8 * MIB, t->path, sizeof(t->path)) < 0)
		return false;
	/* Allocate the file's blocks, so that the writes below are overwrites of data in place. */
	if (tc_sh("dd if=/dev/zero of=%s bs=1M count=8 conv=fsync,notrunc status=none", t->path) != 0)
		return false;
	return true;
}

/* ---- the checks ---- */

/* A callback that first marks the trace, so that what reached the device before it shows. */
static void
mark_cb(void *arg, int status)
{
	tr_mark("callback");
	tc_cb(arg, status);
}

static void
run_target(const char *kind)
{
	struct fsrow row = { .table = "blocklayer" };
	unsigned char *buf;
	struct aioblk_disk *disk;
	struct aioblk_group *group;
	struct aioblk_channel *ch;
	struct tc_result r = { 0, 0 };
	struct target t;
	struct iovec iov;
	struct stat st;
	char seen[512];
	int issue, m_write, m_start, m_cb, k;
	uint32_t bs;
	bool file_target = strncmp(kind, "file-on-", 8) == 0;

	if (!make_target(&t, kind)) {
		printf("SKIP: %s cannot be made here\n", kind);
		tc_skip();
	}
	fsrow_set(&row, "target", "%s", kind);
	describe_device(&t, &row);
	assert_int_equal(aioblk_disk_open(t.path, NULL, &disk), 0);
	fsrow_set(&row, "aioblk_open", "%s", aioblk_disk_is_direct(disk) ? "O_DIRECT" : "buffered");
	bs = aioblk_disk_block_size(disk);
	assert_int_equal(tc_group_create(0, &group), 0);
	assert_int_equal(aioblk_channel_create(group, disk, 16, &ch), 0);
	buf = tc_alloc(4096, WRITE_BYTES);
	assert_non_null(buf);
	assert_int_equal(stat(t.dev, &st), 0);
	tr_device(st.st_rdev);

	/* 1. N blocks written and completed, then a flush. */
	tr_clear();
	tc_fill(buf, WRITE_BYTES, 1);
	assert_int_equal(tc_sync_write(group, ch, buf, 8, WRITE_BYTES / bs), 0);
	tr_mark("start");
	assert_int_equal(aioblk_flush(ch, mark_cb, &r), 0);
	assert_int_equal(tc_wait_count(group, &r, 1, 10000), 0);
	assert_int_equal(r.status, 0);
	tr_read();
	m_start = find_mark("start");
	m_cb = find_mark("callback");
	assert_true(m_start >= 0 && m_cb > m_start);
	describe(m_start, m_cb, seen, sizeof(seen));
	fsrow_set(&row, "flush_after_write", "%s", seen);
	issue = find_ev(m_start, m_cb, EV_ISSUE, is_flush);
	if (t.volatile_cache) {
		/* Issued, and completed before the callback. */
		assert_true(t.rq_based);
		assert_true(issue > 0);
		assert_true(find_ev(issue, m_cb, EV_COMPLETE, is_flush) > 0);
	} else {
		assert_true(issue < 0); /* nothing to flush: the block layer keeps it away */
	}

	/* 2. A FUA write. */
	tr_clear();
	r.count = 0;
	tc_fill(buf, WRITE_BYTES, 2);
	iov.iov_base = buf;
	iov.iov_len = WRITE_BYTES;
	tr_mark("start");
	assert_int_equal(aioblk_writev_ext(ch, &iov, 1, 8, WRITE_BYTES / bs, AIOBLK_WRITE_FUA, mark_cb, &r), 0);
	assert_int_equal(tc_wait_count(group, &r, 1, 10000), 0);
	assert_int_equal(r.status, 0);
	tr_read();
	m_start = find_mark("start");
	m_cb = find_mark("callback");
	assert_true(m_start >= 0 && m_cb > m_start);
	describe(m_start, m_cb, seen, sizeof(seen));
	fsrow_set(&row, "fua_write", "%s", seen);
	if (t.volatile_cache && t.fua) {
		issue = find_ev(m_start, m_cb, EV_ISSUE, is_fua_write);
		assert_true(issue > 0);
		assert_true(find_ev(issue, m_cb, EV_COMPLETE, is_write) > 0);
	} else if (t.volatile_cache) {
		/* No FUA in the device: the write, then a flush, both done before the callback. */
		issue = find_ev(m_start, m_cb, EV_ISSUE, is_write);
		assert_true(issue > 0);
		issue = find_ev(issue, m_cb, EV_ISSUE, is_flush);
		assert_true(issue > 0);
		assert_true(find_ev(issue, m_cb, EV_COMPLETE, is_flush) > 0);
	} else {
		assert_true(find_ev(m_start, m_cb, t.rq_based ? EV_ISSUE : EV_BIO_QUEUE, is_write) > 0);
	}

	/* 3. A flush with nothing written since the last one. */
	for (k = 0; k < 2; k++) {
		tr_clear();
		r.count = 0;
		tr_mark("start");
		assert_int_equal(aioblk_flush(ch, mark_cb, &r), 0);
		assert_int_equal(tc_wait_count(group, &r, 1, 10000), 0);
		assert_int_equal(r.status, 0);
		tr_read();
		m_start = find_mark("start");
		m_cb = find_mark("callback");
		assert_true(m_start >= 0 && m_cb > m_start);
		describe(m_start, m_cb, seen, sizeof(seen));
		issue = find_ev(m_start, m_cb, EV_ISSUE, is_flush);
		/* A file system may skip a flush when nothing of the file changed; a block device may not. */
		if (issue > 0 || k == 1 || !file_target)
			break;
	}
	fsrow_set(&row, "flush_alone", "%s", seen);
	if (t.volatile_cache && !file_target) {
		assert_true(issue > 0);
		assert_true(find_ev(issue, m_cb, EV_COMPLETE, is_flush) > 0);
	}
	assert_int_equal(aioblk_channel_destroy(ch), 0);
	assert_int_equal(aioblk_disk_close(disk), 0);

	/*
	 * 4. The device opened buffered: the write completes in the page
	 * cache, so the flush must first write the data back, and only then
	 * flush the device, all before its callback.
	 */
	if (!file_target) {
		struct aioblk_disk_opts o = { .flags = AIOBLK_DISK_BUFFERED };
		int last_w;

		assert_int_equal(aioblk_disk_open(t.path, &o, &disk), 0);
		assert_int_equal(aioblk_channel_create(group, disk, 16, &ch), 0);
		bs = aioblk_disk_block_size(disk);
		tr_clear();
		r.count = 0;
		tc_fill(buf, WRITE_BYTES, 4);
		tr_mark("write");
		assert_int_equal(tc_sync_write(group, ch, buf, 256, WRITE_BYTES / bs), 0);
		tr_mark("start");
		assert_int_equal(aioblk_flush(ch, mark_cb, &r), 0);
		assert_int_equal(tc_wait_count(group, &r, 1, 10000), 0);
		assert_int_equal(r.status, 0);
		tr_read();
		m_write = find_mark("write");
		m_start = find_mark("start");
		m_cb = find_mark("callback");
		assert_true(m_write >= 0 && m_start > m_write && m_cb > m_start);
		/* From the write on: the kernel's own writeback may have come first. */
		describe(m_write, m_cb, seen, sizeof(seen));
		fsrow_set(&row, "buffered_write_then_flush", "%s", seen);
		for (last_w = -1, k = m_write + 1; k < m_cb; k++)
			if (evs[k].kind == (t.rq_based ? EV_COMPLETE : EV_BIO_QUEUE) && is_write(evs[k].rwbs) &&
			    evs[k].sectors > 0)
				last_w = k;
		assert_true(last_w > 0); /* the data reached the device before the callback */
		if (t.volatile_cache) {
			/* Flushed after the data was written and after the flush was issued. */
			issue = find_ev(last_w > m_start ? last_w : m_start, m_cb, EV_ISSUE, is_flush);
			assert_true(issue > 0);
			assert_true(find_ev(issue, m_cb, EV_COMPLETE, is_flush) > 0);
		}
		assert_int_equal(aioblk_channel_destroy(ch), 0);
		assert_int_equal(aioblk_disk_close(disk), 0);
	}
	tr_off();
	assert_int_equal(aioblk_group_destroy(group), 0);
	free(buf);
	fsrow_set(&row, "verdict", "%s",
		  t.volatile_cache ? "flush_and_FUA_reach_the_device" : "no_volatile_cache:nothing_to_flush");
	fsrow_print(&row);
}

static void
test_loop_direct(void **state)
{
	(void)state;
	run_target("loop-dio-on");
}

static void
test_loop_buffered(void **state)
{
	(void)state;
	run_target("loop-dio-off");
}

static void
test_zram(void **state)
{
	(void)state;
	run_target("zram");
}

static void
test_file_ext4(void **state)
{
	(void)state;
	run_target("file-on-ext4");
}

static void
test_file_xfs(void **state)
{
	(void)state;
	run_target("file-on-xfs");
}

static void
test_file_btrfs(void **state)
{
	(void)state;
	run_target("file-on-btrfs");
}

int
main(int argc, char **argv)
{
	static const struct CMUnitTest cases[] = {
		cmocka_unit_test(test_loop_direct), cmocka_unit_test(test_loop_buffered),
		cmocka_unit_test(test_zram),        cmocka_unit_test(test_file_ext4),
		cmocka_unit_test(test_file_xfs),    cmocka_unit_test(test_file_btrfs),
	};
	if (argc != 2) {
		fprintf(stderr, "usage: %s TRACE-INSTANCE-DIR (run it through blocklayer.sh)\n", argv[0]);
		return 2;
	}
	instance = argv[1];
	tc_require_root("loop devices, zram, tracefs");
	/* One clock for all CPUs, so that the merged buffer is in the order things happened. */
	if (tr_write("trace_clock", "mono") < 0 && tr_write("trace_clock", "global") < 0) {
		fprintf(stderr, "cannot set the instance's trace clock\n");
		return 1;
	}
	return tc_run_group(cases, NULL, NULL);
}
