/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Resets across threads and kinds of group. Disks are files shared by
 * NT threads; thread t has one group (kinds cycle: shared busy-poll,
 * plain busy-poll, shared eventfd+epoll, plain eventfd+epoll) with one
 * channel per disk, and does reads/writes on its own slice of every disk.
 * Every thread issues resets (from its loop, from callbacks, on a full
 * group) and checks that when a reset's callback runs:
 * - every request of its own group accepted on that disk before the reset
 *   has had its callback (strict);
 * - every write accepted on that disk before the reset, by any thread, is
 *   on the disk (pread sees that generation or a later one), and every
 *   write-zeroes (a library thread's work) has zeroed its range (strict);
 * - requests of other threads accepted before it have had their callback
 *   (counted and reported; the contract says "completed").
 * Also: the lone-reset case (a thread with nothing else outstanding
 * issues a reset that waits on other threads, then sleeps: it must be woken).
 *
 * usage: adv_reset_mt [-n threads] [-d disks] [-t seconds] [-g gdepth] [-q cdepth]
 */
#include "common.h"
#include <pthread.h>
#include <sys/epoll.h>

#define MAXT 8
#define MAXD 32
enum { ST_FREE, ST_ISSUING, ST_ACC, ST_CB };

struct req {
	uint64_t tag; /* atomic: seq << 2 | state */
	int op;       /* 0 read 1 write 2 reset 3 flush */
	int disk;
	uint64_t off, n;
	uint32_t gen;
	void *buf;
	struct snap {
		struct req *r;
		uint64_t tag;
		int owner;
		int op;
		uint64_t off, n;
		uint32_t gen;
		uint32_t ev[4]; /* evc of its blocks when the reset was issued */
	} * snap;
	unsigned nsnap;
	int owner;
};

struct thr {
	int id, kind; /* 0 shared busy, 1 plain busy, 2 shared efd, 3 plain efd */
	pthread_t th, self;
	int ready;
	struct aioblk_group *g;
	struct aioblk_channel *ch[MAXD];
	struct req *reqs;
	unsigned nreq;
	unsigned out, resets;
	uint64_t rng;
	uint64_t nio, nrs, xthread_late, lone_ok;
	bool in_poll, stopping;
	int ep;
};

static struct thr T[MAXT];
static unsigned NT = 4, ND = 8, gdepth = 64, cdepth = 16;
static double secs = 10;
static char paths[MAXD][256];
static struct aioblk_disk *disks[MAXD];
static uint32_t bs;
static uint64_t nb, slice;
static uint32_t gens[MAXD][8192]; /* last gen issued per block (owner thread writes) */
static uint64_t seqctr;
static uint32_t evc[MAXD][8192];  /* writes + write-zeroes accepted per block (atomic) */
static uint8_t zflag[MAXD][8192]; /* block zeroed by a write-zeroes, owner thread only */

static inline uint64_t
tag_load(struct req *r)
{
	return __atomic_load_n(&r->tag, __ATOMIC_ACQUIRE);
}
static inline void
tag_set(struct req *r, uint64_t seq, int st)
{
	__atomic_store_n(&r->tag, seq << 2 | (uint64_t)st, __ATOMIC_RELEASE);
}

static void cb(void *arg, int status);
/* fields another thread's reset snapshot reads (seqlock style, re-checked by tag) */
#define ST(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
#define LD(x) __atomic_load_n(&(x), __ATOMIC_ACQUIRE)

static struct req *
getreq(struct thr *t)
{
	for (unsigned i = 0; i < t->nreq; i++) {
		unsigned k = (unsigned)(xrand(&t->rng) % t->nreq);
		if ((tag_load(&t->reqs[k]) & 3) == ST_FREE)
			return &t->reqs[k];
	}
	return NULL;
}

static int issue_reset(struct thr *t, int d);

static int
issue_io(struct thr *t)
{
	struct req *r = getreq(t);
	if (!r)
		return 1;
	int d = (int)(xrand(&t->rng) % ND);
	uint64_t base = (uint64_t)t->id * slice;
	uint64_t n = 1 + xrand(&t->rng) % 4;
	unsigned slot = (unsigned)(r - t->reqs);
	uint64_t off = base + (uint64_t)slot * 4; /* each slot owns 4 blocks */
	int op = (int)(xrand(&t->rng) % 10);
	uint64_t seq = __atomic_add_fetch(&seqctr, 1, __ATOMIC_RELAXED);
	tag_set(r, seq, ST_ISSUING);
	ST(r->disk, d);
	ST(r->off, off);
	ST(r->n, n);
	r->owner = t->id;
	r->snap = NULL;
	r->nsnap = 0;
	int rc;
	/* a write or write-zeroes may land as soon as it is issued: count it before the call */
	if (op >= 4) /* (a flush counts too: harmless, it only skips a check) */
		for (uint64_t i = 0; i < n; i++)
			__atomic_add_fetch(&evc[d][off + i], 1, __ATOMIC_RELEASE);
	if (op < 4) {
		ST(r->op, 0);
		r->buf = xalloc(4096, n * bs);
		rc = aioblk_read(t->ch[d], r->buf, off, n, cb, r);
	} else if (op < 9) {
		ST(r->op, 1);
		r->buf = xalloc(4096, n * bs);
		uint32_t g = __atomic_load_n(&gens[d][off], __ATOMIC_RELAXED) + 1;
		for (uint64_t i = 0; i < n; i++)
			if (__atomic_load_n(&gens[d][off + i], __ATOMIC_RELAXED) + 1 > g)
				g = __atomic_load_n(&gens[d][off + i], __ATOMIC_RELAXED) + 1;
		ST(r->gen, g);
		for (uint64_t i = 0; i < n; i++)
			stamp((char *)r->buf + i * bs, bs, d, off + i, g);
		rc = aioblk_write(t->ch[d], r->buf, off, n, cb, r);
	} else if (op == 9 && xrand(&t->rng) % 2) {
		/* write-zeroes: runs on a library thread; gen = the block's gen before it */
		ST(r->op, 4);
		r->buf = NULL;
		ST(r->gen, __atomic_load_n(&gens[d][off], __ATOMIC_RELAXED));
		rc = aioblk_write_zeroes(t->ch[d], off, n, cb, r);
	} else {
		ST(r->op, 3);
		r->buf = NULL;
		rc = aioblk_flush(t->ch[d], cb, r);
	}
	if (rc == 0) {
		if (r->op == 1)
			for (uint64_t i = 0; i < n; i++) {
				__atomic_store_n(&gens[d][off + i], r->gen, __ATOMIC_RELAXED);
				zflag[d][off + i] = 0;
			}
		if (r->op == 4)
			for (uint64_t i = 0; i < n; i++)
				zflag[d][off + i] = 1;
		tag_set(r, seq, ST_ACC);
		t->out++;
		t->nio++;
		return 0;
	}
	free(r->buf);
	r->buf = NULL;
	tag_set(r, 0, ST_FREE);
	if (rc != -EAGAIN)
		FAIL("thread %d: io refused %d", t->id, rc);
	else if (xrand(&t->rng) % 4 == 0)
		issue_reset(t, d); /* on a full channel/group */
	return rc;
}

static int
issue_reset(struct thr *t, int d)
{
	struct req *r = getreq(t);
	if (!r)
		return 1;
	uint64_t seq = __atomic_add_fetch(&seqctr, 1, __ATOMIC_RELAXED);
	tag_set(r, seq, ST_ISSUING);
	ST(r->op, 2);
	ST(r->disk, d);
	r->owner = t->id;
	r->buf = NULL;
	/* snapshot accepted requests on disk d of every thread */
	unsigned cap = 0;
	for (unsigned i = 0; i < NT; i++)
		cap += T[i].nreq;
	r->snap = calloc(cap, sizeof(*r->snap));
	r->nsnap = 0;
	for (unsigned i = 0; i < NT; i++)
		for (unsigned k = 0; k < T[i].nreq; k++) {
			struct req *o = &T[i].reqs[k];
			uint64_t tg = tag_load(o);
			if ((tg & 3) != ST_ACC)
				continue;
			/* fields of o were written before its ST_ACC store (release) */
			if (LD(o->op) == 2 || LD(o->disk) != d)
				continue;
			struct snap *s = &r->snap[r->nsnap++];
			s->r = o;
			s->tag = tg;
			s->owner = (int)i;
			s->op = LD(o->op);
			s->off = LD(o->off);
			s->n = LD(o->n);
			s->gen = LD(o->gen);
			for (uint64_t b = 0; b < s->n && b < 4; b++)
				s->ev[b] = __atomic_load_n(&evc[d][s->off + b], __ATOMIC_ACQUIRE);
			/* o may have completed meanwhile: re-check tag, drop if changed */
			if (tag_load(o) != tg || LD(o->disk) != d)
				r->nsnap--;
		}
	int rc = aioblk_reset(t->ch[d], cb, r);
	if (rc != 0) {
		FAIL("thread %d: reset refused %d", t->id, rc);
		free(r->snap);
		tag_set(r, 0, ST_FREE);
		return rc;
	}
	tag_set(r, seq, ST_ACC);
	t->resets++;
	t->nrs++;
	return 0;
}

static void
check_reset(struct thr *t, struct req *r)
{
	int fd = -1;
	for (unsigned i = 0; i < r->nsnap; i++) {
		struct snap *s = &r->snap[i];
		bool still = tag_load(s->r) == s->tag;
		if (still && s->owner == t->id)
			FAIL("thread %d (kind %d): reset on disk %d ran before own request (op %d) accepted before it",
			     t->id, t->kind, r->disk, s->op);
		else if (still)
			t->xthread_late++;
		if (s->op == 4) {
			/* the write-zeroes must have happened: zeroes, or a later write's generation */
			if (fd < 0)
				fd = open(paths[r->disk], O_RDONLY);
			char *buf = xalloc(4096, s->n * bs);
			if (pread(fd, buf, s->n * bs, (off_t)(s->off * bs)) != (ssize_t)(s->n * bs))
				FAIL("pread");
			for (uint64_t b = 0; b < s->n; b++) {
				uint64_t w0 = *(uint64_t *)(buf + b * bs);
				uint32_t g = (uint32_t)(w0 & 0xffffffffffffull);
				if (__atomic_load_n(&evc[r->disk][s->off + b], __ATOMIC_ACQUIRE) != s->ev[b])
					continue; /* a later write or write-zeroes of the block came after */
				if (w0 != 0 && g <= s->gen)
					FAIL("thread %d (kind %d): reset on disk %d done, but write-zeroes of thread %d "
					     "(block %" PRIu64 ") accepted before it has not happened (gen %u there%s)",
					     t->id, t->kind, r->disk, s->owner, s->off + b, g,
					     still ? ", its callback has not run" : "");
			}
			free(buf);
		}
		if (s->op == 1) {
			if (fd < 0)
				fd = open(paths[r->disk], O_RDONLY);
			char *buf = xalloc(4096, s->n * bs);
			if (pread(fd, buf, s->n * bs, (off_t)(s->off * bs)) != (ssize_t)(s->n * bs))
				FAIL("pread");
			for (uint64_t b = 0; b < s->n; b++) {
				uint64_t w0 = *(uint64_t *)(buf + b * bs);
				uint32_t g = (uint32_t)(w0 & 0xffffffffffffull);
				if (__atomic_load_n(&evc[r->disk][s->off + b], __ATOMIC_ACQUIRE) != s->ev[b])
					continue; /* a later write or write-zeroes of the block came after */
				if ((w0 >> 48) != (uint64_t)r->disk || g < s->gen)
					FAIL("thread %d (kind %d): reset on disk %d done, but write of thread %d (gen %u, "
					     "block %" PRIu64
					     ") accepted before it is not on the disk (found gen %u%s)",
					     t->id, t->kind, r->disk, s->owner, s->gen, s->off + b, g,
					     still ? ", its callback has not run" : "");
			}
			free(buf);
		}
	}
	if (fd >= 0)
		close(fd);
}

static void
cb(void *arg, int status)
{
	struct req *r = arg;
	struct thr *t = &T[r->owner];
	uint64_t tg = tag_load(r);
	if ((tg & 3) != ST_ACC) {
		FAIL("thread %d: callback for a request in state %d", t->id, (int)(tg & 3));
		return;
	}
	if (!t->in_poll)
		FAIL("callback outside a poll of its group");
	if (!pthread_equal(pthread_self(), t->self))
		FAIL("callback on another thread");
	tag_set(r, tg >> 2, ST_CB);
	if (r->op == 2) {
		CHECK(status == 0, "reset status %d", status);
		check_reset(t, r);
		free(r->snap);
		r->snap = NULL;
		t->resets--;
	} else {
		t->out--;
		CHECK(status == 0, "thread %d op %d status %d", t->id, r->op, status);
		if (r->op == 0 && status == 0)
			for (uint64_t b = 0; b < r->n; b++) {
				uint64_t w0 = *(uint64_t *)((char *)r->buf + b * bs);
				uint32_t g = (uint32_t)(w0 & 0xffffffffffffull);
				uint32_t want = __atomic_load_n(&gens[r->disk][r->off + b], __ATOMIC_RELAXED);
				if (zflag[r->disk][r->off + b])
					want = 0;
				if (want == 0 ?
					    w0 != 0 :
					    verify((char *)r->buf + b * bs, bs, r->disk, r->off + b, g) || g != want)
					FAIL("thread %d: read disk %d block %" PRIu64 " gen %u, expected %u", t->id,
					     r->disk, r->off + b, g, want);
			}
	}
	free(r->buf);
	r->buf = NULL;
	tag_set(r, 0, ST_FREE);
	if (!t->stopping) {
		issue_io(t);
		if (xrand(&t->rng) % 16 == 0)
			issue_reset(t, (int)(xrand(&t->rng) % ND)); /* reset from a callback */
	}
}

static int
tpoll(struct thr *t, unsigned max)
{
	t->in_poll = true;
	int n = aioblk_group_poll(t->g, max);
	t->in_poll = false;
	if (n < 0)
		FAIL("poll %d", n);
	return n;
}

/* Sleep until something to poll: busy kinds use wait(), efd kinds epoll. */
static int
tsleep(struct thr *t, int ms)
{
	if (t->kind == 0 || t->kind == 1) {
		t->in_poll = true;
		int n = aioblk_group_wait(t->g, ms);
		t->in_poll = false;
		if (n < 0)
			FAIL("wait %d", n);
		return n > 0;
	}
	aioblk_group_submit(t->g);
	struct epoll_event ev;
	int n = epoll_wait(t->ep, &ev, 1, ms);
	if (n > 0)
		tpoll(t, (unsigned)(xrand(&t->rng) % 3));
	return n > 0;
}

static void *
run(void *arg)
{
	struct thr *t = arg;
	int rc;
	t->self = pthread_self();
	bool shared = t->kind == 0 || t->kind == 2, efd = t->kind >= 2;
	struct aioblk_group_opts go = { .flags = (shared ? AIOBLK_GROUP_SHARED_CONTEXT : 0) |
						 (efd ? AIOBLK_GROUP_EVENTFD : 0),
					.queue_depth = shared ? gdepth : 0 };
	rc = aioblk_group_create_ext(&go, &t->g);
	if (rc)
		DIE("group create kind %d: %d", t->kind, rc);
	for (unsigned d = 0; d < ND; d++)
		if ((rc = aioblk_channel_create(t->g, disks[d], cdepth, &t->ch[d])))
			DIE("channel create: %d", rc);
	t->nreq = ND * cdepth + 64;
	t->reqs = calloc(t->nreq, sizeof(*t->reqs));
	__atomic_store_n(&t->ready, 1, __ATOMIC_RELEASE);
	for (unsigned i = 0; i < NT; i++)
		while (!__atomic_load_n(&T[i].ready, __ATOMIC_ACQUIRE))
			usleep(100);
	if (efd) {
		t->ep = epoll_create1(EPOLL_CLOEXEC);
		struct epoll_event ev = { .events = EPOLLIN };
		epoll_ctl(t->ep, EPOLL_CTL_ADD, aioblk_group_fd(t->g), &ev);
	}
	double tend = now_s() + secs, next_lone = now_s() + 0.5;
	while (now_s() < tend && !FAILED()) {
		if (now_s() > next_lone) {
			/* lone reset: drain, then one reset and sleep until it is done */
			next_lone = now_s() + 0.5 + (double)(xrand(&t->rng) % 500) / 1000;
			t->stopping = true;
			double dl = now_s() + 10;
			while ((t->out || t->resets) && now_s() < dl)
				if (!tsleep(t, 3000))
					FAIL("thread %d kind %d: nothing for 3 s while draining (%u out, %u resets)",
					     t->id, t->kind, t->out, t->resets);
			t->stopping = false;
			if (t->out || t->resets)
				break;
			issue_reset(t, (int)(xrand(&t->rng) % ND));
			double t0 = now_s();
			while (t->resets && now_s() - t0 < 10)
				if (!tsleep(t, 3000))
					FAIL("thread %d kind %d: lone reset not done after %.1f s (hang / lost wake-up)",
					     t->id, t->kind, now_s() - t0);
			if (!t->resets)
				t->lone_ok++;
			continue;
		}
		unsigned k = (unsigned)(xrand(&t->rng) % 16);
		for (unsigned i = 0; i < k; i++)
			issue_io(t);
		if (xrand(&t->rng) % 8 == 0)
			issue_reset(t, (int)(xrand(&t->rng) % ND));
		if (efd) {
			if (!tsleep(t, 3000) && (t->out || t->resets))
				FAIL("thread %d kind %d: fd silent 3 s with %u out %u resets", t->id, t->kind, t->out,
				     t->resets);
		} else {
			tpoll(t, (unsigned)(xrand(&t->rng) % 3));
		}
	}
	t->stopping = true;
	double dl = now_s() + 20;
	while ((t->out || t->resets) && now_s() < dl)
		if (!tsleep(t, 3000))
			FAIL("thread %d kind %d: drain silent 3 s (%u out %u resets)", t->id, t->kind, t->out,
			     t->resets);
	if (t->out || t->resets)
		FAIL("thread %d: %u requests, %u resets never completed", t->id, t->out, t->resets);
	return NULL;
}

int
main(int argc, char **argv)
{
	int opt;
	while ((opt = getopt(argc, argv, "n:d:t:g:q:")) != -1) {
		switch (opt) {
		case 'n':
			NT = (unsigned)atoi(optarg);
			break;
		case 'd':
			ND = (unsigned)atoi(optarg);
			break;
		case 't':
			secs = atof(optarg);
			break;
		case 'g':
			gdepth = (unsigned)atoi(optarg);
			break;
		case 'q':
			cdepth = (unsigned)atoi(optarg);
			break;
		default:
			return 2;
		}
	}
	if (NT > MAXT || ND > MAXD)
		return 2;
	for (unsigned d = 0; d < ND; d++) {
		snprintf(paths[d], sizeof(paths[d]), "%s/adv_rmt.%d.%u", tmpdir(), getpid(), d);
		make_file(paths[d], 8192 * 4096ull);
		int rc = aioblk_disk_open(paths[d], NULL, &disks[d]);
		if (rc)
			DIE("open %d", rc);
	}
	bs = aioblk_disk_block_size(disks[0]);
	nb = aioblk_disk_num_blocks(disks[0]);
	if (nb > 8192)
		nb = 8192;
	slice = nb / NT;
	if ((ND * cdepth + 64) * 4 + 4 > slice)
		DIE("slices too small: fewer disks, threads or a smaller depth");
	for (unsigned i = 0; i < NT; i++) {
		T[i].id = (int)i;
		T[i].kind = (int)(i % 4);
		T[i].rng = 0x9e3779b97f4a7c15ull * (i + 1);
		T[i].ep = -1;
	}
	for (unsigned i = 0; i < NT; i++)
		pthread_create(&T[i].th, NULL, run, &T[i]);
	for (unsigned i = 0; i < NT; i++)
		pthread_join(T[i].th, NULL);
	for (unsigned i = 0; i < NT; i++) {
		struct thr *t = &T[i];
		printf("thread %u kind %d: %" PRIu64 " io, %" PRIu64 " resets, %" PRIu64 " lone resets ok, %" PRIu64
		       " other-thread requests whose callback had not run when a reset finished\n",
		       i, t->kind, t->nio, t->nrs, t->lone_ok, t->xthread_late);
		if (t->out || t->resets)
			continue; /* cannot destroy; leak it */
		for (unsigned d = 0; d < ND; d++)
			CHECK(aioblk_channel_destroy(t->ch[d]) == 0, "channel destroy");
		CHECK(aioblk_group_destroy(t->g) == 0, "group destroy");
		if (t->ep >= 0)
			close(t->ep);
		free(t->reqs);
	}
	for (unsigned d = 0; d < ND; d++) {
		aioblk_disk_close(disks[d]);
		unlink(paths[d]);
	}
	return adv_exit("adv_reset_mt");
}
