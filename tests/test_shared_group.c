/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What only a SHARED_CONTEXT group has: one kernel context for many disks.
 * The kernel's fs.aio-nr grows by the group's depth, not by disks x depth;
 * 32 disks in one group each read their own data; the group's depth holds
 * across its channels (-EAGAIN, nothing lost); a reset on one disk
 * finishes while the other 31 stay busy; and two threads, each with its
 * own shared group over the same 32 disks, reset under load and still see
 * every request of the disk, theirs and the other thread's, finished
 * before the reset's callback. (Everything a plain group does, a shared
 * one does too: the other suites run for both kinds.)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common.h"

#define NDISKS 32
#define DISK_BYTES (1u << 20)
#define BLK 4096u

static char paths[NDISKS][256];
static struct aioblk_disk *disks[NDISKS];

/* 32 files, block b of disk d filled with seed d * 1000 + b. */
static int
setup_disks(void **state)
{
	char *buf = tc_alloc(BLK, DISK_BYTES);
	int d, fd;

	(void)state;
	assert_non_null(buf);
	for (d = 0; d < NDISKS; d++) {
		assert_int_equal(tc_make_file(NULL, DISK_BYTES, paths[d], sizeof(paths[d])), 0);
		for (unsigned b = 0; b < DISK_BYTES / BLK; b++)
			tc_fill(buf + (size_t)b * BLK, BLK, (uint64_t)d * 1000 + b);
		fd = open(paths[d], O_WRONLY | O_CLOEXEC);
		assert_true(fd >= 0);
		assert_int_equal(pwrite(fd, buf, DISK_BYTES, 0), (ssize_t)DISK_BYTES);
		assert_int_equal(fsync(fd), 0);
		close(fd);
		assert_int_equal(aioblk_disk_open(paths[d], NULL, &disks[d]), 0);
	}
	free(buf);
	return 0;
}

static int
teardown_disks(void **state)
{
	(void)state;
	for (int d = 0; d < NDISKS; d++) {
		assert_int_equal(aioblk_disk_close(disks[d]), 0);
		unlink(paths[d]);
	}
	return 0;
}

static struct aioblk_group *
shared_group(uint32_t flags, unsigned depth)
{
	struct aioblk_group_opts opts = { .flags = flags | AIOBLK_GROUP_SHARED_CONTEXT, .queue_depth = depth };
	struct aioblk_group *g = NULL;

	assert_int_equal(aioblk_group_create_ext(&opts, &g), 0);
	return g;
}

static long
aio_nr(void)
{
	FILE *f = fopen("/proc/sys/fs/aio-nr", "r");
	long v = -1;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

/*
 * How much fs.aio-nr grows while a group of @shared kind with 8 channels of
 * depth 128 exists (depth 512 when shared), and whether it is back after.
 * Other processes make contexts too: retried until a quiet window.
 */
static long
aio_nr_growth(bool shared, long expect)
{
	struct aioblk_channel *ch[8];
	struct aioblk_group *g;
	long before, during = -1, after, growth = -1;

	for (int tries = 0; tries < 20; tries++) {
		before = aio_nr();
		if (shared)
			g = shared_group(0, 512);
		else
			assert_int_equal(aioblk_group_create(0, &g), 0);
		for (int i = 0; i < 8; i++)
			assert_int_equal(aioblk_channel_create(g, disks[i], 128, &ch[i]), 0);
		during = aio_nr();
		for (int i = 0; i < 8; i++)
			assert_int_equal(aioblk_channel_destroy(ch[i]), 0);
		assert_int_equal(aioblk_group_destroy(g), 0);
		after = aio_nr();
		growth = during - before;
		if (growth == expect && after == before)
			break;
		usleep(10000);
	}
	print_message("fs.aio-nr with 8 disks of depth 128 in a %s group: +%ld\n", shared ? "shared (512)" : "plain",
		      growth);
	return growth;
}

static void
test_aio_nr(void **state)
{
	(void)state;
	if (aio_nr() < 0)
		tc_skip();
	assert_int_equal(aio_nr_growth(true, 512), 512);
	assert_int_equal(aio_nr_growth(false, 8 * 128), 8 * 128);
}

/* One read's record: which disk and block it was, and how often its callback ran. */
struct rd {
	int disk;
	unsigned block;
	char *buf;
	int count;
	int status;
};

static void
rd_cb(void *arg, int status)
{
	struct rd *r = arg;

	r->count++;
	r->status = status;
}

/* 32 disks, 4 reads each, in a group of depth 64: exactly 64 accepted at a time, each disk's own data back. */
static void
test_own_data_and_group_depth(void **state)
{
	struct aioblk_channel *ch[NDISKS];
	struct rd *rds = calloc(NDISKS * 4, sizeof(*rds));
	struct aioblk_group *g = shared_group(AIOBLK_GROUP_EVENTFD, 64);
	char *mem = tc_alloc(BLK, (size_t)NDISKS * 4 * BLK);
	unsigned next = 0, accepted = 0, done = 0, refusals = 0, i;
	int64_t deadline = tc_now_ms() + 20000;
	struct aioblk_channel_stats st;

	(void)state;
	assert_non_null(rds);
	assert_non_null(mem);
	memset(mem, 0, (size_t)NDISKS * 4 * BLK);
	for (int d = 0; d < NDISKS; d++)
		assert_int_equal(aioblk_channel_create(g, disks[d], 4, &ch[d]), 0);
	/* Disk by disk, round after round: request i reads block i / 32 of disk i % 32. */
	for (i = 0; i < NDISKS * 4; i++) {
		rds[i].disk = (int)(i % NDISKS);
		rds[i].block = i / NDISKS;
		rds[i].buf = mem + (size_t)i * BLK;
	}
	while (done < NDISKS * 4 && tc_now_ms() < deadline) {
		while (next < NDISKS * 4) {
			struct rd *r = &rds[next];
			unsigned outstanding = accepted - done;
			int rc = aioblk_read(ch[r->disk], r->buf,
					     r->block * (BLK / aioblk_disk_block_size(disks[r->disk])),
					     BLK / aioblk_disk_block_size(disks[r->disk]), rd_cb, r);

			if (rc == -EAGAIN) {
				/* Only the group's depth refuses: no channel holds more than 4. */
				assert_int_equal(outstanding, 64);
				assert_true(aioblk_channel_inflight(ch[r->disk]) < 4);
				refusals++;
				break;
			}
			assert_int_equal(rc, 0);
			assert_true(outstanding < 64);
			accepted++;
			next++;
		}
		int n = aioblk_group_wait(g, 1000);

		assert_true(n >= 0);
		done += (unsigned)n;
	}
	assert_int_equal(done, NDISKS * 4);
	assert_true(refusals > 0);
	for (i = 0; i < NDISKS * 4; i++) {
		assert_int_equal(rds[i].count, 1);
		assert_int_equal(rds[i].status, 0);
		assert_int_equal(tc_check(rds[i].buf, BLK, (uint64_t)rds[i].disk * 1000 + rds[i].block), -1);
	}
	/* Counters stay per channel. */
	for (int d = 0; d < NDISKS; d++) {
		assert_int_equal(aioblk_channel_get_stats(ch[d], &st), 0);
		assert_int_equal(st.reads, 4);
		assert_int_equal(st.bytes_read, 4 * BLK);
		assert_int_equal(st.completions, 4);
		assert_true(st.io_submit_calls >= 1);
		assert_int_equal(aioblk_channel_destroy(ch[d]), 0);
	}
	assert_int_equal(aioblk_group_destroy(g), 0);
	free(mem);
	free(rds);
}

/* --- a reset on one disk while the others stay busy ----------------------- */

struct busy {
	struct aioblk_channel *ch[NDISKS];
	char *mem;
	bool stop;
	unsigned long reads[NDISKS];
	int reset_count;
	unsigned others_inflight_at_reset; /* channels 1..31 with requests outstanding when the reset finished */
	int disk0_done_before_reset;
};

struct busy_rd {
	struct busy *b;
	int disk;
	int k; /* which of the disk's two reads: its buffer */
};

static void busy_issue(struct busy *b, struct busy_rd *r);

static void
busy_cb(void *arg, int status)
{
	struct busy_rd *r = arg;

	assert_int_equal(status, 0);
	r->b->reads[r->disk]++;
	if (r->disk == 0)
		r->b->disk0_done_before_reset += r->b->reset_count == 0;
	if (!r->b->stop && r->disk != 0)
		busy_issue(r->b, r);
}

static void
busy_issue(struct busy *b, struct busy_rd *r)
{
	uint32_t bs = aioblk_disk_block_size(disks[r->disk]);

	char *buf = b->mem + ((size_t)r->disk * 2 + (size_t)r->k) * BLK;
	uint64_t block = b->reads[r->disk] % (DISK_BYTES / BLK);

	assert_int_equal(aioblk_read(b->ch[r->disk], buf, block * (BLK / bs), BLK / bs, busy_cb, r), 0);
}

static void
reset_cb(void *arg, int status)
{
	struct busy *b = arg;

	assert_int_equal(status, 0);
	b->reset_count++;
	for (int d = 1; d < NDISKS; d++)
		b->others_inflight_at_reset += aioblk_channel_inflight(b->ch[d]) > 0;
}

static void
test_reset_while_others_busy(void **state)
{
	static struct busy_rd rds[NDISKS][2];
	struct busy b = { .stop = false };
	struct aioblk_group *g = shared_group(0, 256);
	int64_t deadline;

	(void)state;
	b.mem = tc_alloc(BLK, (size_t)NDISKS * 2 * BLK);
	assert_non_null(b.mem);
	for (int d = 0; d < NDISKS; d++)
		assert_int_equal(aioblk_channel_create(g, disks[d], 4, &b.ch[d]), 0);
	for (int d = 0; d < NDISKS; d++)
		for (int k = 0; k < 2; k++) {
			rds[d][k] = (struct busy_rd){ &b, d, k };
			busy_issue(&b, &rds[d][k]);
		}
	/* The reset waits for disk 0's two reads only, not for the 62 that keep coming on the others. */
	assert_int_equal(aioblk_reset(b.ch[0], reset_cb, &b), 0);
	deadline = tc_now_ms() + 10000;
	while (b.reset_count == 0 && tc_now_ms() < deadline)
		assert_true(aioblk_group_poll(g, 0) >= 0);
	assert_int_equal(b.reset_count, 1);
	assert_int_equal(b.disk0_done_before_reset, 2);
	assert_int_equal(b.others_inflight_at_reset, NDISKS - 1);
	b.stop = true;
	deadline = tc_now_ms() + 10000;
	for (int d = 0; d < NDISKS; d++)
		while (aioblk_channel_inflight(b.ch[d]) && tc_now_ms() < deadline)
			aioblk_group_poll(g, 0);
	for (int d = 0; d < NDISKS; d++)
		assert_int_equal(aioblk_channel_destroy(b.ch[d]), 0);
	assert_int_equal(aioblk_group_destroy(g), 0);
	free(b.mem);
}

/* --- two threads, two shared groups, the same 32 disks, resets under load - */

#define T_QD 2
#define T_SECONDS 2

/* Accept numbers of one thread on one disk: the lowest still outstanding is published for the other thread. */
struct lane {
	uint64_t next;             /* accept number of the next request */
	uint64_t out[T_QD];        /* outstanding accept numbers, UINT64_MAX: free */
	_Atomic uint64_t lowest;   /* lowest outstanding, or next when none */
	_Atomic uint64_t accepted; /* requests accepted so far (next, published) */
};

static struct lane lanes[2][NDISKS];

struct thr;

struct t_req {
	struct thr *t;
	int disk;
	int slot;
	char *buf;
	uint64_t seq;
};

struct t_reset {
	struct thr *t;
	int disk;
	uint64_t need[2]; /* every request of the disk accepted before the reset, per thread: finished first */
	bool pending;
};

struct thr {
	int id;
	bool eventfd;
	struct aioblk_group *g;
	struct aioblk_channel *ch[NDISKS];
	struct t_req reqs[NDISKS][T_QD];
	struct t_reset resets[NDISKS];
	char *mem;
	bool stop;
	unsigned long ios, resets_done, violations;
	int failed; /* first bad status */
};

static void
lane_publish(struct lane *l)
{
	uint64_t low = l->next;

	for (int i = 0; i < T_QD; i++)
		if (l->out[i] < low)
			low = l->out[i];
	atomic_store(&l->lowest, low);
	atomic_store(&l->accepted, l->next);
}

static void t_issue(struct t_req *r);

static void
t_cb(void *arg, int status)
{
	struct t_req *r = arg;
	struct lane *l = &lanes[r->t->id][r->disk];

	if (status != 0 && !r->t->failed)
		r->t->failed = status;
	l->out[r->slot] = UINT64_MAX;
	lane_publish(l);
	r->t->ios++;
	if (!r->t->stop)
		t_issue(r);
}

static void
t_issue(struct t_req *r)
{
	struct lane *l = &lanes[r->t->id][r->disk];
	uint32_t bs = aioblk_disk_block_size(disks[r->disk]);
	/* Each thread reads and writes its own half of every disk: no two writes overlap. */
	uint64_t block =
		(uint64_t)r->t->id * (DISK_BYTES / BLK / 2) + (r->t->ios + (uint64_t)r->slot) % (DISK_BYTES / BLK / 2);
	int rc;

	r->seq = l->next;
	if ((r->t->ios + (uint64_t)r->disk) % 3 == 0) {
		tc_fill(r->buf, BLK, block);
		rc = aioblk_write(r->t->ch[r->disk], r->buf, block * (BLK / bs), BLK / bs, t_cb, r);
	} else {
		rc = aioblk_read(r->t->ch[r->disk], r->buf, block * (BLK / bs), BLK / bs, t_cb, r);
	}
	assert_int_equal(rc, 0);
	l->out[r->slot] = l->next++;
	lane_publish(l);
}

static void
t_reset_cb(void *arg, int status)
{
	struct t_reset *rs = arg;

	if (status != 0 && !rs->t->failed)
		rs->t->failed = status;
	/* Every request of this disk accepted before the reset, on either thread, has finished. */
	for (int u = 0; u < 2; u++)
		if (atomic_load(&lanes[u][rs->disk].lowest) < rs->need[u])
			rs->t->violations++;
	rs->pending = false;
	rs->t->resets_done++;
}

static void *
t_main(void *arg)
{
	struct thr *t = arg;
	int64_t end = tc_now_ms() + T_SECONDS * 1000, deadline;
	uint64_t x = (uint64_t)t->id + 1;
	bool busy;

	for (int d = 0; d < NDISKS; d++)
		for (int k = 0; k < T_QD; k++)
			t_issue(&t->reqs[d][k]);
	while (tc_now_ms() < end) {
		int n = aioblk_group_wait(t->g, 10);

		if (n < 0 && !t->failed)
			t->failed = n;
		x = tc_mix64(x);
		struct t_reset *rs = &t->resets[x % NDISKS];

		if (!rs->pending) {
			/* What the reset must wait for, read before it is issued. */
			for (int u = 0; u < 2; u++)
				rs->need[u] = atomic_load(&lanes[u][rs->disk].accepted);
			rs->pending = true;
			if (aioblk_reset(t->ch[rs->disk], t_reset_cb, rs) != 0 && !t->failed)
				t->failed = -EIO;
		}
	}
	t->stop = true;
	deadline = tc_now_ms() + 20000;
	do {
		busy = false;
		aioblk_group_wait(t->g, 10);
		for (int d = 0; d < NDISKS; d++)
			busy |= aioblk_channel_inflight(t->ch[d]) != 0;
	} while (busy && tc_now_ms() < deadline);
	if (busy && !t->failed)
		t->failed = -ETIMEDOUT;
	return NULL;
}

static void
test_two_threads_reset_under_load(void **state)
{
	static struct thr thr[2];
	pthread_t tid[2];

	(void)state;
	for (int u = 0; u < 2; u++) {
		struct thr *t = &thr[u];

		memset(t, 0, sizeof(*t));
		t->id = u;
		t->eventfd = u == 1;
		t->g = shared_group(t->eventfd ? AIOBLK_GROUP_EVENTFD : 0, NDISKS * T_QD);
		t->mem = tc_alloc(BLK, (size_t)NDISKS * T_QD * BLK);
		assert_non_null(t->mem);
		for (int d = 0; d < NDISKS; d++) {
			struct lane *l = &lanes[u][d];

			memset(l, 0, sizeof(*l));
			for (int k = 0; k < T_QD; k++)
				l->out[k] = UINT64_MAX;
			assert_int_equal(aioblk_channel_create(t->g, disks[d], T_QD, &t->ch[d]), 0);
			for (int k = 0; k < T_QD; k++)
				t->reqs[d][k] =
					(struct t_req){ t, d, k, t->mem + ((size_t)d * T_QD + (size_t)k) * BLK, 0 };
			t->resets[d] = (struct t_reset){ .t = t, .disk = d };
		}
	}
	for (int u = 0; u < 2; u++)
		assert_int_equal(pthread_create(&tid[u], NULL, t_main, &thr[u]), 0);
	for (int u = 0; u < 2; u++)
		assert_int_equal(pthread_join(tid[u], NULL), 0);
	for (int u = 0; u < 2; u++) {
		struct thr *t = &thr[u];

		print_message("thread %d (%s): %lu I/Os, %lu resets\n", u, t->eventfd ? "eventfd" : "busy poll", t->ios,
			      t->resets_done);
		assert_int_equal(t->failed, 0);
		assert_int_equal(t->violations, 0);
		assert_true(t->resets_done > 0);
		assert_true(t->ios > 0);
		for (int d = 0; d < NDISKS; d++) {
			assert_false(t->resets[d].pending);
			assert_int_equal(aioblk_channel_destroy(t->ch[d]), 0);
		}
		assert_int_equal(aioblk_group_destroy(t->g), 0);
		free(t->mem);
	}
}

int
main(void)
{
	const struct CMUnitTest cases[] = {
		cmocka_unit_test(test_aio_nr),
		cmocka_unit_test(test_own_data_and_group_depth),
		cmocka_unit_test(test_reset_while_others_busy),
		cmocka_unit_test(test_two_threads_reset_under_load),
	};

	return tc_run_group(cases, setup_disks, teardown_disks);
}
