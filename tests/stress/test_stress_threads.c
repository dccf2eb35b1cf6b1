/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Threads x disks for a few seconds: every thread has its own group with a
 * channel on each of two shared disks (one O_DIRECT, one buffered) and does
 * random writes, write-zeroes and reads of its own region, checking every
 * read against what it wrote, and that each callback runs once. (Write-zeroes
 * completes without the kernel, so the requests behind it mix the two ways
 * a request completes.) Resets come in storms from every thread; each must
 * complete, and when its callback runs, every request on that disk issued
 * (accepted) before the reset, on any thread, must have finished its
 * callback: checked with a state flag and a generation per request slot.
 * Other threads create a group and channels on both disks, do a few reads
 * (and sometimes a reset), and destroy everything again, over and over.
 *
 * The threads wait in three ways: aioblk_group_wait() on an eventfd group,
 * poll(2) on the group's fd (submit first, as the contract says), and busy
 * polling without an eventfd. A wait that sleeps for seconds while I/O is
 * outstanding counts as a stall: a lost wake-up. Everything is counted in
 * the threads and asserted in the main thread after they are joined.
 * Meant to run clean under -Db_sanitize=thread too.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "stress.h"

#define NDISKS 2
#define NWORKERS 3
#define NCHURN 2
#define NTHREADS (NWORKERS + NCHURN)
#define QD 16                      /* per channel of a worker */
#define CHURN_QD 8                 /* per channel of a churn thread */
#define IO_SLOTS (QD - MAX_RESETS) /* I/O a worker keeps in flight per channel: room for its resets */
#define PAGE 4096u                 /* the unit of I/O here, whatever the block size */
#define MAX_PAGES 4                /* pages per request */
#define REGION 256                 /* pages of a worker's region on each disk */
#define ZERO_REGION 64             /* pages after the regions, never written: churn threads read them */
#define DISK_PAGES (NWORKERS * REGION + ZERO_REGION)
#define MAX_RESETS 4 /* pending resets per thread */
#define STALL_MS \
	20000 /* a sleep this long with I/O outstanding is a lost wake-up (not a latency bound: generous for a loaded host) */
#define RUN_MS_DEFAULT 2000

enum { REQ_IDLE, REQ_ACCEPTED, REQ_DONE };
enum wait_mode { WAIT_GROUP_WAIT, WAIT_POLL_FD, WAIT_BUSY };

struct thr;

/* One request slot. state and gen are read by other threads' resets. */
struct sreq {
	atomic_uint state;
	atomic_uint gen;
	struct thr *t;
	unsigned disk;
	unsigned page; /* first page */
	unsigned npages;
	bool write;
	bool zero;   /* write-zeroes */
	bool in_use; /* owner only */
	uint32_t version;
	unsigned char *buf;
};

struct snap {
	struct sreq *r;
	unsigned gen;
};

struct reset_rec {
	struct thr *t;
	bool in_use;
	unsigned nsnap;
	struct snap snap[NTHREADS * QD];
};

struct thr {
	unsigned id;
	bool churn;
	enum wait_mode mode;
	pthread_t tid;
	uint64_t rng;
	struct aioblk_group *g;
	struct aioblk_channel *ch[NDISKS];
	struct sreq reqs[NDISKS][QD];
	struct reset_rec resets[MAX_RESETS];
	uint32_t version[NDISKS][REGION]; /* committed version of each page; 0: never written */
	bool busy[NDISKS][REGION];
	uint32_t next_version;
	unsigned inflight; /* I/O and resets whose callbacks have not run */

	/* results, read by the main thread after the join */
	unsigned long writes, zeroes, reads, verify_errors, io_errors, submit_errors, double_callbacks;
	unsigned long resets_issued, resets_done, reset_errors, reset_violations;
	unsigned long stalls, cycles, api_errors;
};

static struct aioblk_disk *disks[NDISKS];
static struct thr thrs[NTHREADS];
static int64_t end_ms;
static const unsigned char zero_page[PAGE];

static uint64_t
rnd(struct thr *t)
{
	/* xorshift64 */
	t->rng ^= t->rng << 13;
	t->rng ^= t->rng >> 7;
	t->rng ^= t->rng << 17;
	return t->rng;
}

static uint64_t
page_seed(unsigned disk, unsigned owner, unsigned page, uint32_t version)
{
	return ((uint64_t)disk << 60) ^ ((uint64_t)owner << 52) ^ ((uint64_t)page << 32) ^ version;
}

static uint64_t
blocks_per_page(unsigned d)
{
	return PAGE / aioblk_disk_block_size(disks[d]);
}

/* Every request slot of every thread on @disk that is accepted now: a reset issued next must wait for them. */
static void
take_snapshot(struct reset_rec *rec, unsigned disk)
{
	unsigned i, s;

	rec->nsnap = 0;
	for (i = 0; i < NTHREADS; i++) {
		for (s = 0; s < QD; s++) {
			struct sreq *r = &thrs[i].reqs[disk][s];
			unsigned gen = atomic_load(&r->gen);

			/*
			 * The owner bumps gen before it submits and marks the slot accepted after:
			 * "accepted" seen between two equal reads of gen belongs to that generation,
			 * which was accepted before this reset is issued. A slot that changed
			 * generation meanwhile is left out (its next request may come after the reset).
			 */
			if (atomic_load(&r->state) != REQ_ACCEPTED || atomic_load(&r->gen) != gen)
				continue;
			rec->snap[rec->nsnap].r = r;
			rec->snap[rec->nsnap].gen = gen;
			rec->nsnap++;
		}
	}
}

static void
reset_cb(void *arg, int status)
{
	struct reset_rec *rec = arg;
	struct thr *t = rec->t;
	unsigned i;

	if (status != 0)
		t->reset_errors++;
	for (i = 0; i < rec->nsnap; i++) {
		struct sreq *r = rec->snap[i].r;

		/*
		 * State first, then generation: the owner bumps gen before it marks a
		 * new request accepted, so "not done" followed by the same gen is the
		 * snapped request itself, not a later one in the same slot.
		 */
		unsigned state = atomic_load(&r->state);

		if (state != REQ_DONE && atomic_load(&r->gen) == rec->snap[i].gen)
			t->reset_violations++;
	}
	t->resets_done++;
	t->inflight--;
	rec->in_use = false;
}

static void
maybe_reset(struct thr *t, unsigned disk)
{
	struct reset_rec *rec = NULL;
	unsigned i;
	int rc;

	for (i = 0; i < MAX_RESETS && !rec; i++)
		if (!t->resets[i].in_use)
			rec = &t->resets[i];
	if (!rec)
		return;
	rec->t = t;
	take_snapshot(rec, disk);
	rc = aioblk_reset(t->ch[disk], reset_cb, rec);
	if (rc == -EAGAIN)
		return; /* the channel is full; no slot for the reset now */
	if (rc != 0) {
		t->submit_errors++;
		return;
	}
	rec->in_use = true;
	t->inflight++;
	t->resets_issued++;
}

static void
io_cb(void *arg, int status)
{
	struct sreq *r = arg;
	struct thr *t = r->t;
	unsigned p, owner = t->churn ? 0 : t->id;

	if (atomic_load(&r->state) != REQ_ACCEPTED)
		t->double_callbacks++;
	if (status != 0) {
		t->io_errors++;
	} else if (r->zero) {
		t->zeroes++;
		for (p = 0; p < r->npages; p++)
			t->version[r->disk][r->page + p] = 0; /* reads as zeroes, like a page never written */
	} else if (r->write) {
		t->writes++;
		for (p = 0; p < r->npages; p++)
			t->version[r->disk][r->page + p] = r->version;
	} else {
		t->reads++;
		for (p = 0; p < r->npages; p++) {
			const unsigned char *b = r->buf + (size_t)p * PAGE;
			uint32_t v = t->churn ? 0 : t->version[r->disk][r->page + p];

			if (v == 0 ? memcmp(b, zero_page, PAGE) != 0 :
				     tc_check(b, PAGE, page_seed(r->disk, owner, r->page + p, v)) != -1)
				t->verify_errors++;
		}
	}
	if (!t->churn)
		for (p = 0; p < r->npages; p++)
			t->busy[r->disk][r->page + p] = false;
	r->in_use = false;
	t->inflight--;
	/* Last: a reset on another thread may now count this request as finished. */
	atomic_store(&r->state, REQ_DONE);
}

/* Pages of @t's region (or the zero region for churn threads) as block offsets on @disk. */
static uint64_t
page_block(const struct thr *t, unsigned disk, unsigned page)
{
	unsigned base = t->churn ? NWORKERS * REGION : t->id * REGION;

	return (uint64_t)(base + page) * blocks_per_page(disk);
}

static int
submit_io(struct thr *t, struct sreq *r)
{
	uint64_t n = blocks_per_page(r->disk);
	uint64_t off = page_block(t, r->disk, r->page);
	int rc;

	atomic_fetch_add(&r->gen, 1);
	if (r->zero)
		rc = aioblk_write_zeroes(t->ch[r->disk], off, n * r->npages, io_cb, r);
	else if (r->write)
		rc = aioblk_write(t->ch[r->disk], r->buf, off, n * r->npages, io_cb, r);
	else
		rc = aioblk_read(t->ch[r->disk], r->buf, off, n * r->npages, io_cb, r);
	if (rc != 0) {
		t->submit_errors++;
		return rc;
	}
	r->in_use = true;
	t->inflight++;
	/* Accepted: a reset issued from now on by any thread must wait for it. */
	atomic_store(&r->state, REQ_ACCEPTED);
	return 0;
}

/* A random write or read of free pages of the worker's region. */
static void
worker_issue(struct thr *t, unsigned disk)
{
	struct sreq *r = NULL;
	unsigned s, p, page, npages;

	for (s = 0; s < IO_SLOTS && !r; s++)
		if (!t->reqs[disk][s].in_use)
			r = &t->reqs[disk][s];
	if (!r)
		return;
	npages = 1 + (unsigned)(rnd(t) % MAX_PAGES);
	page = (unsigned)(rnd(t) % (REGION - npages + 1));
	for (p = 0; p < npages; p++)
		if (t->busy[disk][page + p])
			return;
	r->disk = disk;
	r->page = page;
	r->npages = npages;
	r->write = rnd(t) & 1;
	r->zero = r->write && (rnd(t) & 7) == 0;
	if (r->write && !r->zero) {
		r->version = ++t->next_version;
		for (p = 0; p < npages; p++)
			tc_fill(r->buf + (size_t)p * PAGE, PAGE, page_seed(disk, t->id, page + p, r->version));
	} else if (!r->write) {
		memset(r->buf, 0xa5, (size_t)npages * PAGE);
	}
	if (submit_io(t, r) == 0)
		for (p = 0; p < npages; p++)
			t->busy[disk][page + p] = true;
}

/* Sleep (or not) the thread's way until something ran; count a sleep through STALL_MS with work pending. */
static void
thr_wait(struct thr *t)
{
	struct pollfd pfd;
	int rc;

	switch (t->mode) {
	case WAIT_GROUP_WAIT:
		rc = aioblk_group_wait(t->g, STALL_MS);
		if (rc < 0)
			t->api_errors++;
		else if (rc == 0 && t->inflight)
			t->stalls++;
		break;
	case WAIT_POLL_FD:
		if (aioblk_group_submit(t->g) < 0)
			t->api_errors++;
		pfd = (struct pollfd){ .fd = aioblk_group_fd(t->g), .events = POLLIN };
		rc = poll(&pfd, 1, t->inflight ? STALL_MS : 0);
		if (rc == 0 && t->inflight)
			t->stalls++;
		if (aioblk_group_poll(t->g, 0) < 0)
			t->api_errors++;
		break;
	case WAIT_BUSY:
		rc = aioblk_group_poll(t->g, 0);
		if (rc < 0)
			t->api_errors++;
		else if (rc == 0)
			sched_yield(); /* two CPUs shared by everyone */
		break;
	}
}

/* Wait until every request and reset of the thread has finished (bounded). */
static void
thr_drain(struct thr *t)
{
	int64_t deadline = tc_now_ms() + 30000;

	while (t->inflight && tc_now_ms() < deadline)
		thr_wait(t);
}

static int
thr_open(struct thr *t, uint32_t group_flags, unsigned qd)
{
	unsigned d;
	int rc;

	rc = tc_group_create(group_flags, &t->g);
	if (rc < 0)
		return rc;
	for (d = 0; d < NDISKS; d++) {
		rc = aioblk_channel_create(t->g, disks[d], qd, &t->ch[d]);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static void
thr_close(struct thr *t)
{
	unsigned d;

	for (d = 0; d < NDISKS; d++) {
		if (t->ch[d] && aioblk_channel_destroy(t->ch[d]) != 0)
			t->api_errors++;
		t->ch[d] = NULL;
	}
	if (t->g && aioblk_group_destroy(t->g) != 0)
		t->api_errors++;
	t->g = NULL;
}

static void *
worker_main(void *arg)
{
	struct thr *t = arg;
	unsigned d, i;

	if (thr_open(t, t->mode == WAIT_BUSY ? 0 : AIOBLK_GROUP_EVENTFD, QD) < 0) {
		t->api_errors++;
		thr_close(t);
		return NULL;
	}
	while (tc_now_ms() < end_ms) {
		for (i = 0; i < 4; i++)
			worker_issue(t, (unsigned)(rnd(t) % NDISKS));
		/* Storms: mostly calm, sometimes a reset, now and then one on every channel. */
		if (rnd(t) % 16 == 0)
			maybe_reset(t, (unsigned)(rnd(t) % NDISKS));
		if (rnd(t) % 256 == 0)
			for (d = 0; d < NDISKS; d++)
				maybe_reset(t, d);
		thr_wait(t);
	}
	thr_drain(t);
	thr_close(t);
	return NULL;
}

/* Make a group and channels, read a little of the zero region, maybe reset, tear it all down. */
static void *
churn_main(void *arg)
{
	struct thr *t = arg;
	unsigned k, nreads;

	while (tc_now_ms() < end_ms) {
		t->mode = (t->cycles + t->id) % 2 ? WAIT_GROUP_WAIT : WAIT_BUSY;
		if (thr_open(t, t->mode == WAIT_BUSY ? 0 : AIOBLK_GROUP_EVENTFD, CHURN_QD) < 0) {
			t->api_errors++;
			thr_close(t);
			break;
		}
		nreads = (unsigned)(rnd(t) % 3);
		for (k = 0; k < nreads; k++) {
			struct sreq *r = &t->reqs[k % NDISKS][k];

			r->disk = k % NDISKS;
			r->npages = 1 + (unsigned)(rnd(t) % MAX_PAGES);
			r->page = (unsigned)(rnd(t) % (ZERO_REGION - r->npages + 1));
			r->write = false;
			r->zero = false;
			memset(r->buf, 0xa5, (size_t)r->npages * PAGE);
			submit_io(t, r);
		}
		if (rnd(t) % 3 == 0)
			maybe_reset(t, (unsigned)(rnd(t) % NDISKS));
		thr_drain(t);
		thr_close(t);
		t->cycles++;
	}
	return NULL;
}

static void
test_threads_disks_resets_churn(void **state)
{
	char path[NDISKS][256];
	const char *env = getenv("AIOBLK_STRESS_MS");
	int run_ms = env ? atoi(env) : RUN_MS_DEFAULT;
	unsigned long total_io = 0, total_resets = 0, total_cycles = 0;
	struct aioblk_group *g;
	struct aioblk_channel *ch;
	unsigned char *buf;
	unsigned i, d, s, p;

	for (d = 0; d < NDISKS; d++) {
		struct aioblk_disk_opts opts = { .flags = d == 1 ? AIOBLK_DISK_BUFFERED : 0 };

		assert_int_equal(tc_make_file(NULL, (uint64_t)DISK_PAGES * PAGE, path[d], sizeof(path[d])), 0);
		assert_int_equal(aioblk_disk_open(path[d], &opts, &disks[d]), 0);
		assert_true(PAGE % aioblk_disk_block_size(disks[d]) == 0);
	}
	memset(thrs, 0, sizeof(thrs));
	for (i = 0; i < NTHREADS; i++) {
		struct thr *t = &thrs[i];

		t->id = i;
		t->churn = i >= NWORKERS;
		t->mode = (enum wait_mode)(i % 3);
		t->rng = 0x9e3779b97f4a7c15ULL * (i + 1);
		for (d = 0; d < NDISKS; d++) {
			for (s = 0; s < QD; s++) {
				t->reqs[d][s].t = t;
				t->reqs[d][s].buf = tc_alloc(4096, (size_t)MAX_PAGES * PAGE);
				assert_non_null(t->reqs[d][s].buf);
			}
		}
	}

	end_ms = tc_now_ms() + (run_ms > 0 ? run_ms : RUN_MS_DEFAULT);
	for (i = 0; i < NTHREADS; i++)
		assert_int_equal(pthread_create(&thrs[i].tid, NULL, thrs[i].churn ? churn_main : worker_main, &thrs[i]),
				 0);
	for (i = 0; i < NTHREADS; i++)
		assert_int_equal(pthread_join(thrs[i].tid, NULL), 0);

	for (i = 0; i < NTHREADS; i++) {
		struct thr *t = &thrs[i];

		print_message(
			"thread %u (%s, %s): %lu writes, %lu write-zeroes, %lu reads, %lu/%lu resets, %lu cycles\n", i,
			t->churn ? "churn" : "worker",
			t->mode == WAIT_GROUP_WAIT ? "group_wait" :
			t->mode == WAIT_POLL_FD    ? "poll(fd)" :
						     "busy",
			t->writes, t->zeroes, t->reads, t->resets_done, t->resets_issued, t->cycles);
		assert_int_equal(t->api_errors, 0);
		assert_int_equal(t->submit_errors, 0);
		assert_int_equal(t->io_errors, 0);
		assert_int_equal(t->verify_errors, 0);
		assert_int_equal(t->double_callbacks, 0);
		assert_int_equal(t->stalls, 0);
		assert_int_equal(t->inflight, 0);
		assert_int_equal(t->resets_done, t->resets_issued);
		assert_int_equal(t->reset_errors, 0);
		assert_int_equal(t->reset_violations, 0);
		total_io += t->writes + t->reads;
		total_resets += t->resets_done;
		total_cycles += t->cycles;
	}
	/* The run did what it is for. */
	assert_true(total_io > 0);
	assert_true(total_resets > 0);
	assert_true(total_cycles > 0);

	/* What is on the disks is what each worker last wrote. */
	buf = tc_alloc(4096, PAGE);
	assert_non_null(buf);
	assert_int_equal(tc_group_create(0, &g), 0);
	for (d = 0; d < NDISKS; d++) {
		uint64_t n = blocks_per_page(d);

		assert_int_equal(aioblk_channel_create(g, disks[d], 4, &ch), 0);
		for (i = 0; i < NWORKERS; i++) {
			for (p = 0; p < REGION; p++) {
				uint32_t v = thrs[i].version[d][p];

				assert_int_equal(tc_sync_read(g, ch, buf, (uint64_t)(i * REGION + p) * n, n), 0);
				if (v == 0)
					assert_memory_equal(buf, zero_page, PAGE);
				else
					assert_int_equal(tc_check(buf, PAGE, page_seed(d, i, p, v)), -1);
			}
		}
		assert_int_equal(aioblk_channel_destroy(ch), 0);
	}
	assert_int_equal(aioblk_group_destroy(g), 0);
	free(buf);
	for (d = 0; d < NDISKS; d++)
		assert_int_equal(aioblk_disk_close(disks[d]), 0);
	for (i = 0; i < NTHREADS; i++)
		for (d = 0; d < NDISKS; d++)
			for (s = 0; s < QD; s++)
				free(thrs[i].reqs[d][s].buf);
}

/*
 * One channel after the other on different threads: the kernel maps the new
 * context's completion ring where the destroyed one was. The threads take
 * turns through a relaxed flag only, which orders nothing for the sanitizer:
 * the library itself must tell ThreadSanitizer that a new ring is new memory
 * (io_destroy unmaps, io_setup maps, both inside the kernel).
 */
struct handover {
	struct aioblk_disk *disk[2]; /* one per thread: no lock of a shared disk orders them either */
	atomic_int turn;
	int rc[4];
};

static void *
handover_main(void *arg)
{
	struct handover *h = arg;
	struct aioblk_group *g = NULL;
	struct aioblk_channel *ch = NULL;
	unsigned char *buf = tc_alloc(4096, PAGE);
	struct aioblk_disk *disk;
	uint64_t n;
	int me, rc = -ENOMEM;

	/* Threads 0 and 1 take turns 0, 2 and 1, 3. */
	me = atomic_load_explicit(&h->turn, memory_order_relaxed) == 0 ? 0 : 1;
	disk = h->disk[me];
	n = PAGE / aioblk_disk_block_size(disk);
	if (!buf)
		goto out;
	for (int round = me; round < 4; round += 2) {
		int64_t deadline = tc_now_ms() + 10000;

		while (atomic_load_explicit(&h->turn, memory_order_relaxed) != round && tc_now_ms() < deadline)
			st_sleep_ms(1);
		rc = tc_group_create(0, &g);
		if (rc == 0)
			rc = aioblk_channel_create(g, disk, 4, &ch);
		if (rc == 0) {
			tc_fill(buf, PAGE, (uint64_t)round);
			rc = tc_sync_write(g, ch, buf, (uint64_t)round * n, n);
		}
		if (rc == 0) {
			memset(buf, 0, PAGE);
			rc = tc_sync_read(g, ch, buf, (uint64_t)round * n, n);
		}
		if (rc == 0 && tc_check(buf, PAGE, (uint64_t)round) != -1)
			rc = -EILSEQ;
		if (ch && aioblk_channel_destroy(ch) != 0 && rc == 0)
			rc = -EBUSY;
		if (g && aioblk_group_destroy(g) != 0 && rc == 0)
			rc = -EBUSY;
		ch = NULL;
		g = NULL;
		h->rc[round] = rc;
		atomic_store_explicit(&h->turn, round + 1, memory_order_relaxed);
	}
out:
	free(buf);
	return NULL;
}

static void
test_channels_handed_over_between_threads(void **state)
{
	struct handover h;
	char path[256];
	pthread_t t[2];
	int i;

	memset(&h, 0, sizeof(h));
	for (i = 0; i < 4; i++)
		h.rc[i] = 1;
	for (i = 0; i < 2; i++) {
		assert_int_equal(tc_make_file(NULL, 64 * PAGE, path, sizeof(path)), 0);
		assert_int_equal(aioblk_disk_open(path, NULL, &h.disk[i]), 0);
	}
	/* The first thread to start takes turn 0: start it alone. */
	assert_int_equal(pthread_create(&t[0], NULL, handover_main, &h), 0);
	while (atomic_load_explicit(&h.turn, memory_order_relaxed) == 0)
		st_sleep_ms(1);
	assert_int_equal(pthread_create(&t[1], NULL, handover_main, &h), 0);
	for (i = 0; i < 2; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	for (i = 0; i < 4; i++)
		assert_int_equal(h.rc[i], 0);
	for (i = 0; i < 2; i++)
		assert_int_equal(aioblk_disk_close(h.disk[i]), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_threads_disks_resets_churn),
		cmocka_unit_test(test_channels_handed_over_between_threads),
	};

	return tc_run_group(tests, NULL, NULL);
}
