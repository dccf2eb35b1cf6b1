/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Threads with their own AIOBLK_GROUP_WAIT_IN_KERNEL groups (plain and
 * SHARED_CONTEXT, alternating) on the same disks, with several channels
 * per disk, doing reads, writes, write-zeroes, unmaps, flushes and resets,
 * from the loop and from callbacks, and waiting in every way: wait(-1),
 * wait(0), wait(1), wait(5), poll(g, 0), poll(g, 1). One thread (-r) has
 * only resets, so its wait(-1) sleeps on resets waiting for the others.
 * Checked, per request: its callback runs once, on the owner thread, with
 * status 0; reads return what the model says (each thread owns a range of
 * blocks of every disk); -EAGAIN exactly when the channel is full; a reset
 * runs after every request its thread accepted on the disk before it, and
 * resets of a channel in order; wait returns the number of callbacks it
 * ran, a timed wait returns 0 only after its timeout; nothing stalls for
 * 5 s (hang). The CPU time of the waits is reported.
 * usage: wik_mix [-t secs] [-n threads] [-c channels per disk] [-q depth]
 *                [-r] [-B] [-N] [DISK...]   (default: two files in ADV_DIR)
 * -B opens the disks buffered, -N with AIOBLK_DISK_NOWAIT (reads the kernel
 * would block for, or a kernel refusing the flag at io_submit, are resubmitted
 * by the library: the waits must hand those on).
 */
#include "wcommon.h"

#define MAXD 8
#define MAXT 8
#define MAXC 4
#define BLKS 256 /* blocks each thread owns on each disk */

enum op { OP_READ, OP_WRITE, OP_WZ, OP_UNMAP, OP_FLUSH, OP_RESET };
static const char *opname[] = { "read", "write", "write-zeroes", "unmap", "flush", "reset" };

static int ndisks, nthreads = 4, nch = 2, depth = 8, resetter, buffered, nowait;
static double secs = 3;
static struct aioblk_disk *disks[MAXD];
static uint32_t bs;

struct thr;
struct req {
	struct thr *t;
	int busy;
	int op, d, ch;
	uint64_t blk, n;
	uint64_t seq; /* issue order in the thread */
	uint32_t gen;
	char *buf;
};
struct thr {
	int id;
	pthread_t self;
	struct aioblk_group *g;
	struct aioblk_channel *ch[MAXD][MAXC];
	int inflight[MAXD][MAXC]; /* non-reset requests */
	struct req *reqs;
	int nreq;
	uint32_t *gen[MAXD]; /* model: generation of each owned block, 0 zeroes, -1 unknown */
	int *wbusy[MAXD];    /* block has a write-type request in flight */
	int *rbusy[MAXD];    /* block has a read in flight */
	uint64_t seq;
	uint64_t oldest_open[MAXD]; /* computed at reset completion */
	uint64_t reset_seq_last[MAXD][MAXC];
	long cbs, ops, waits, resets, retries, submits;
	double wait_wall, wait_cpu;
	uint64_t rnd;
	uint32_t gen_next;
	int stop;
};
static struct thr T[MAXT];

static uint64_t
base_blk(int tid)
{
	return (uint64_t)tid * BLKS;
}

static void issue_random(struct thr *t, int from_cb);

static void
complete(void *arg, int status)
{
	struct req *r = arg;
	struct thr *t = r->t;
	if (!pthread_equal(pthread_self(), t->self))
		FAIL("thread %d: callback on another thread", t->id);
	if (!r->busy) {
		FAIL("thread %d: %s callback ran twice (or for a free slot)", t->id, opname[r->op]);
		return;
	}
	t->cbs++;
	wd_progress();
	if (r->op == OP_UNMAP && status == -EOPNOTSUPP)
		status = 0;
	CHECK(status == 0, "thread %d: %s d%d blk %" PRIu64 "+%" PRIu64 ": status %d", t->id, opname[r->op], r->d,
	      r->blk, r->n, status);
	uint64_t rel = r->blk - base_blk(t->id);
	switch (r->op) {
	case OP_READ:
		for (uint64_t i = 0; i < r->n; i++) {
			uint32_t gen = t->gen[r->d][rel + i];
			if (status == 0 && gen != UINT32_MAX) {
				size_t bad = verify(r->buf + i * bs, bs, r->d, r->blk + i, gen);
				if (bad && FAILED() < 10)
					FAIL("thread %d: read d%d blk %" PRIu64 ": gen %u expected, byte %zu differs "
					     "(first word %016" PRIx64 ")",
					     t->id, r->d, r->blk + i, gen, bad - 1, *(uint64_t *)(r->buf + i * bs));
			}
			t->rbusy[r->d][rel + i]--;
		}
		break;
	case OP_WRITE:
	case OP_WZ:
	case OP_UNMAP:
		for (uint64_t i = 0; i < r->n; i++) {
			t->gen[r->d][rel + i] = status ? UINT32_MAX : r->op == OP_WRITE ? r->gen : 0;
			t->wbusy[r->d][rel + i] = 0;
		}
		break;
	case OP_RESET: {
		/* every request of this thread on this disk issued before the reset is done */
		for (int i = 0; i < t->nreq; i++) {
			struct req *o = &t->reqs[i];
			if (o->busy && o != r && o->d == r->d && o->op != OP_RESET && o->seq < r->seq && FAILED() < 10)
				FAIL("thread %d: reset (seq %" PRIu64 ") on d%d completed before its %s seq %" PRIu64,
				     t->id, r->seq, r->d, opname[o->op], o->seq);
		}
		CHECK(r->seq > t->reset_seq_last[r->d][r->ch], "thread %d: resets of channel d%d/%d out of order",
		      t->id, r->d, r->ch);
		t->reset_seq_last[r->d][r->ch] = r->seq;
		t->resets++;
		break;
	}
	default:
		break;
	}
	if (r->op != OP_RESET)
		t->inflight[r->d][r->ch]--;
	r->busy = 0;
	if (!t->stop && xrand(&t->rnd) % 4 == 0)
		issue_random(t, 1);
}

static struct req *
get_req(struct thr *t)
{
	for (int i = 0; i < t->nreq; i++) {
		int k = (int)(xrand(&t->rnd) % t->nreq);
		if (!t->reqs[k].busy)
			return &t->reqs[k];
	}
	for (int i = 0; i < t->nreq; i++)
		if (!t->reqs[i].busy)
			return &t->reqs[i];
	return NULL;
}

static void
issue_random(struct thr *t, int from_cb)
{
	struct req *r = get_req(t);
	if (!r)
		return;
	int d = (int)(xrand(&t->rnd) % ndisks), c = (int)(xrand(&t->rnd) % nch);
	int op;
	uint64_t x = xrand(&t->rnd) % 100;
	if (resetter && t->id == 0)
		op = OP_RESET;
	else if (x < 40)
		op = OP_READ;
	else if (x < 70)
		op = OP_WRITE;
	else if (x < 78)
		op = OP_WZ;
	else if (x < 84)
		op = aioblk_disk_supports(disks[d], AIOBLK_IO_UNMAP) ? OP_UNMAP : OP_WZ;
	else if (x < 92)
		op = OP_FLUSH;
	else
		op = OP_RESET;
	uint64_t n = 1 + xrand(&t->rnd) % 8, rel = xrand(&t->rnd) % (BLKS - n);
	if (op <= OP_UNMAP) {
		for (uint64_t i = 0; i < n; i++)
			if (t->wbusy[d][rel + i] || (op != OP_READ && t->rbusy[d][rel + i]))
				return; /* no overlap with a write in flight */
	}
	*r = (struct req){ .t = t, .op = op, .d = d, .ch = c, .blk = base_blk(t->id) + rel, .n = n, .buf = r->buf };
	r->seq = ++t->seq;
	struct aioblk_channel *ch = t->ch[d][c];
	int full = t->inflight[d][c] >= depth;
	int rc;
	r->busy = 1;
	switch (op) {
	case OP_READ:
		rc = aioblk_read(ch, r->buf, r->blk, n, complete, r);
		break;
	case OP_WRITE:
		r->gen = ++t->gen_next;
		for (uint64_t i = 0; i < n; i++)
			stamp(r->buf + i * bs, bs, d, r->blk + i, r->gen);
		rc = aioblk_write(ch, r->buf, r->blk, n, complete, r);
		break;
	case OP_WZ:
		rc = aioblk_write_zeroes(ch, r->blk, n, complete, r);
		break;
	case OP_UNMAP:
		rc = aioblk_unmap(ch, r->blk, n, complete, r);
		break;
	case OP_FLUSH:
		rc = aioblk_flush(ch, complete, r);
		break;
	default:
		rc = aioblk_reset(ch, complete, r);
		break;
	}
	if (op == OP_RESET) {
		CHECK(rc == 0, "thread %d: reset = %d", t->id, rc);
	} else if (full) {
		CHECK(rc == -EAGAIN, "thread %d: %s on a full channel (%d of %d) = %d", t->id, opname[op],
		      t->inflight[d][c], depth, rc);
	} else if (rc == -EOPNOTSUPP && op == OP_UNMAP) {
	} else {
		CHECK(rc == 0, "thread %d: %s d%d (%d of %d in flight, from_cb %d) = %d", t->id, opname[op], d,
		      t->inflight[d][c], depth, from_cb, rc);
	}
	if (rc) {
		r->busy = 0;
		return;
	}
	t->ops++;
	if (op != OP_RESET)
		t->inflight[d][c]++;
	if (op <= OP_UNMAP)
		for (uint64_t i = 0; i < n; i++) {
			if (op == OP_READ)
				t->rbusy[d][rel + i]++;
			else
				t->wbusy[d][rel + i] = 1;
		}
}

static int
outstanding(struct thr *t)
{
	int n = 0;
	for (int i = 0; i < t->nreq; i++)
		n += t->reqs[i].busy;
	return n;
}

static void
one_wait(struct thr *t)
{
	static const int modes[] = { -1, -1, -1, 0, 1, 5, -2, -3 };
	int m = modes[xrand(&t->rnd) % 8];
	if (m == -1 && outstanding(t) == 0)
		m = 1; /* wait(-1) on an idle busy-poll group never returns */
	long before = t->cbs;
	double w0 = now_s(), c0 = thread_cpu_s();
	int rc;
	if (m == -2)
		rc = aioblk_group_poll(t->g, 0);
	else if (m == -3)
		rc = aioblk_group_poll(t->g, 1);
	else
		rc = aioblk_group_wait(t->g, m);
	double w = now_s() - w0;
	t->wait_wall += w;
	t->wait_cpu += thread_cpu_s() - c0;
	t->waits++;
	CHECK(rc >= 0, "thread %d: wait/poll(%d) = %d", t->id, m, rc);
	CHECK(rc == t->cbs - before, "thread %d: %s(%d) returned %d, %ld callbacks ran", t->id,
	      m < -1 ? "poll" : "wait", m, rc, t->cbs - before);
	if (m == -3)
		CHECK(rc <= 1, "poll(g, 1) ran %d", rc);
	if (m >= 0 && rc == 0)
		CHECK(w >= m * 1e-3, "thread %d: wait(%d) returned 0 after %.3f ms", t->id, m, w * 1e3);
	if (m == -1)
		CHECK(rc > 0, "thread %d: wait(-1) returned %d", t->id, rc);
}

static pthread_barrier_t bar;
static void *
thread_main(void *arg)
{
	struct thr *t = arg;
	t->self = pthread_self();
	t->rnd = 0x9e3779b97f4a7c15ull * (t->id + 1) ^ (uint64_t)getpid();
	int shared = t->id % 2;
	t->g = wik_group(shared, (unsigned)(depth * nch * ndisks));
	for (int d = 0; d < ndisks; d++) {
		for (int c = 0; c < nch; c++)
			if (aioblk_channel_create(t->g, disks[d], (unsigned)depth, &t->ch[d][c]))
				DIE("channel");
		t->gen[d] = calloc(BLKS, sizeof(uint32_t));
		t->wbusy[d] = calloc(BLKS, sizeof(int));
		t->rbusy[d] = calloc(BLKS, sizeof(int));
		for (int b = 0; b < BLKS; b++)
			t->gen[d][b] = UINT32_MAX; /* unknown until written */
	}
	t->nreq = depth * nch * ndisks + 64;
	t->reqs = calloc((size_t)t->nreq, sizeof(*t->reqs));
	for (int i = 0; i < t->nreq; i++)
		t->reqs[i].buf = xalloc(4096, 8 * (size_t)bs);
	pthread_barrier_wait(&bar);
	double end = now_s() + secs;
	while (now_s() < end && FAILED() < 10) {
		int k = (int)(xrand(&t->rnd) % 6);
		for (int i = 0; i < k; i++)
			issue_random(t, 0);
		one_wait(t);
	}
	t->stop = 1;
	while (outstanding(t) > 0) {
		wd_what_set("drain: wait(-1) until every callback ran");
		int rc = aioblk_group_wait(t->g, -1);
		if (rc < 0) {
			FAIL("drain wait %d", rc);
			break;
		}
	}
	for (int d = 0; d < ndisks; d++) {
		for (int c = 0; c < nch; c++) {
			CHECK(aioblk_channel_inflight(t->ch[d][c]) == 0, "thread %d: inflight %u after drain", t->id,
			      aioblk_channel_inflight(t->ch[d][c]));
			struct aioblk_channel_stats st;
			if (aioblk_channel_get_stats(t->ch[d][c], &st) == 0)
				t->retries += (long)st.retries, t->submits += (long)st.io_submit_calls;
			int rc = aioblk_channel_destroy(t->ch[d][c]);
			CHECK(rc == 0, "channel destroy %d", rc);
		}
		free(t->gen[d]);
		free(t->wbusy[d]);
		free(t->rbusy[d]);
	}
	CHECK(aioblk_group_destroy(t->g) == 0, "group destroy");
	for (int i = 0; i < t->nreq; i++)
		free(t->reqs[i].buf);
	free(t->reqs);
	return NULL;
}

int
main(int argc, char **argv)
{
	int opt;
	while ((opt = getopt(argc, argv, "t:n:c:q:rBN")) != -1) {
		switch (opt) {
		case 't':
			secs = atof(optarg);
			break;
		case 'n':
			nthreads = atoi(optarg);
			break;
		case 'c':
			nch = atoi(optarg);
			break;
		case 'q':
			depth = atoi(optarg);
			break;
		case 'r':
			resetter = 1;
			break;
		case 'B':
			buffered = 1;
			break;
		case 'N':
			nowait = 1;
			break;
		default:
			return 2;
		}
	}
	if (nthreads < 1 || nthreads > MAXT || nch < 1 || nch > MAXC || depth < 1)
		return 2;
	char paths[2][256];
	const char *dp[MAXD];
	for (int i = optind; i < argc && ndisks < MAXD; i++)
		dp[ndisks++] = argv[i];
	if (ndisks == 0) {
		for (int i = 0; i < 2; i++) {
			snprintf(paths[i], sizeof(paths[i]), "%s/wik_mix%d.%d", tmpdir(), i, getpid());
			make_file(paths[i], (uint64_t)MAXT * BLKS * 4096);
			dp[ndisks++] = paths[i];
		}
	}
	struct aioblk_disk_opts o = { .flags = (buffered ? AIOBLK_DISK_BUFFERED : 0) |
					       (nowait ? AIOBLK_DISK_NOWAIT : 0) };
	for (int d = 0; d < ndisks; d++) {
		int rc = aioblk_disk_open(dp[d], &o, &disks[d]);
		if (rc)
			DIE("open %s: %d", dp[d], rc);
		uint32_t b = aioblk_disk_block_size(disks[d]);
		if (bs && b != bs)
			DIE("disks of different block sizes");
		bs = b;
		if (aioblk_disk_num_blocks(disks[d]) < (uint64_t)nthreads * BLKS)
			DIE("%s: too small (%d threads x %d blocks)", dp[d], nthreads, BLKS);
		printf("disk %d: %s direct %d bs %u queue limit %u\n", d, dp[d], aioblk_disk_is_direct(disks[d]), bs,
		       aioblk_disk_queue_limit(disks[d]));
	}
	wd_start(5);
	wd_armed_set(1);
	pthread_barrier_init(&bar, NULL, (unsigned)nthreads);
	pthread_t th[MAXT];
	for (int i = 0; i < nthreads; i++) {
		T[i].id = i;
		pthread_create(&th[i], NULL, thread_main, &T[i]);
	}
	for (int i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	wd_armed_set(0);
	for (int i = 0; i < nthreads; i++) {
		struct thr *t = &T[i];
		printf("thread %d (%s%s): %ld requests, %ld callbacks, %ld resets, %ld retries, %ld io_submit, %ld waits: %.0f ms "
		       "waiting, %.1f%% CPU\n",
		       i, i % 2 ? "shared" : "plain", resetter && i == 0 ? ", resets only" : "", t->ops, t->cbs,
		       t->resets, t->retries, t->submits, t->waits, t->wait_wall * 1e3,
		       t->wait_wall > 0 ? 100 * t->wait_cpu / t->wait_wall : 0);
		CHECK(t->ops == t->cbs, "thread %d: %ld accepted, %ld callbacks", i, t->ops, t->cbs);
	}
	for (int d = 0; d < ndisks; d++)
		aioblk_disk_close(disks[d]);
	return adv_exit("wik_mix");
}
