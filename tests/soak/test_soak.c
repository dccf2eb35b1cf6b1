/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Soak: two threads, each with its own group and a channel on every disk,
 * issue a random mix for SOAK_SECONDS seconds (default 60): reads and
 * writes of mixed sizes (some FUA), write-zeroes, unmaps, flushes, resets
 * and rescans, with many requests in flight. The disks are shared: as root a
 * private zram, a loop device (direct I/O) and a file; otherwise two files.
 * Each thread owns half of every disk and never has two requests on one
 * block at once, so it knows what each block must hold:
 * - every acknowledged write reads back intact (checked on every read and in
 *   a last full pass), zeroes read as zeroes;
 * - every accepted request's callback runs exactly once, with status 0
 *   (an unmap may say -EOPNOTSUPP once, after which supports() says no);
 * - a reset's callback comes after every request of the thread that was
 *   outstanding on that disk when it was issued.
 * Public API only. Exit 0 on success, 1 on the first broken promise.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common.h"

#define MIB (1024ull * 1024ull)
#define NTHREADS 2
#define MAX_DISKS 3
#define QD 16
#define MAX_BLOCKS 64 /* per request */
#define DISK_BYTES (64 * MIB)
#define FILE_GROWTH MIB /* the tail a file disk grows by and shrinks back, past both halves */

/* What a block holds, as far as its owner knows. */
#define ST_UNKNOWN 0u /* never written, or unmapped on a device ("what the device says") */
#define ST_ZERO 1u
/* >= 2: the generation of the write that put its pattern there */

enum op { OP_READ, OP_WRITE, OP_FUA, OP_ZERO, OP_UNMAP, OP_FLUSH, OP_RESET, NOPS };
static const char *const op_names[NOPS] = { "read", "write", "fua-write", "write-zeroes", "unmap", "flush", "reset" };

struct disk {
	char path[320];
	const char *kind;
	bool blockdev;
	struct aioblk_disk *disk;
	uint32_t bs;
	uint64_t base_blocks; /* what the two halves cover */
	uint64_t grown_blocks;
	int id;
};

static struct disk disks[MAX_DISKS];
static int ndisks;
static atomic_bool failed;
static atomic_int_fast64_t rescans;

struct worker;

struct req {
	struct worker *w;
	struct chan *c;
	enum op op;
	bool busy;
	int calls; /* callbacks seen for the current use */
	uint64_t seq;
	uint64_t first, n; /* blocks */
	uint32_t gen;
	struct iovec iov[4];
	int iovcnt;
	unsigned char *buf;
};

struct chan {
	struct disk *d;
	struct aioblk_channel *ch;
	struct req reqs[QD];
	int inflight;
	uint64_t lo, hi;   /* the blocks this thread owns */
	uint32_t *state;   /* per owned block */
	uint16_t *pending; /* requests on each owned block */
	uint64_t next_seq;
	bool unmap_refused;
};

struct worker {
	int id;
	struct aioblk_group *group;
	struct chan chans[MAX_DISKS];
	uint64_t rng;
	uint32_t gen;
	uint64_t accepted, callbacks, ops[NOPS], bytes_verified, blocks_checked;
};

#define FAIL(...)                                              \
	do {                                                   \
		fprintf(stderr, "SOAK FAILURE: " __VA_ARGS__); \
		fprintf(stderr, "\n");                         \
		atomic_store(&failed, true);                   \
	} while (0)

static uint64_t
rnd(struct worker *w)
{
	/* xorshift64* */
	w->rng ^= w->rng >> 12;
	w->rng ^= w->rng << 25;
	w->rng ^= w->rng >> 27;
	return w->rng * 2685821657736338717ull;
}

/* The pattern of generation @gen in block @b of disk @d: 8 bytes at a time. */
static void
fill_block(uint64_t *p, uint32_t bs, int d, uint64_t b, uint32_t gen)
{
	uint64_t seed = ((uint64_t)d << 60) ^ (b << 20) ^ ((uint64_t)gen << 40);
	uint32_t i;

	for (i = 0; i < bs / 8; i++)
		p[i] = tc_mix64(seed + i);
	p[0] = b;                                  /* which block */
	p[1] = ((uint64_t)gen << 8) | (uint64_t)d; /* which write */
}

static bool
check_block(struct chan *c, const uint64_t *p, uint64_t b)
{
	uint32_t st = c->state[b - c->lo], bs = c->d->bs, i;
	uint64_t want[4096 / 8];

	if (st == ST_UNKNOWN)
		return true;
	if (st == ST_ZERO) {
		for (i = 0; i < bs / 8; i++)
			if (p[i]) {
				FAIL("%s: block %" PRIu64 " should read as zeroes, word %u is %#" PRIx64, c->d->kind, b,
				     i, p[i]);
				return false;
			}
		return true;
	}
	fill_block(want, bs, c->d->id, b, st);
	if (memcmp(want, p, bs) != 0) {
		for (i = 0; i < bs / 8 && want[i] == p[i]; i++)
			;
		FAIL("%s: block %" PRIu64 " does not hold write generation %u from byte %u on: it says block %" PRIu64
		     ", generation %" PRIu64 " of disk %" PRIu64,
		     c->d->kind, b, st, i * 8, p[0], p[1] >> 8, p[1] & 0xff);
		return false;
	}
	return true;
}

static void
req_done(void *arg, int status)
{
	struct req *r = arg;
	struct chan *c = r->c;
	struct worker *w = r->w;
	uint64_t b;
	int i;

	if (++r->calls != 1 || !r->busy) {
		FAIL("%s: %s callback ran %d times", c->d->kind, op_names[r->op], r->calls);
		return;
	}
	w->callbacks++;
	if (status == -EOPNOTSUPP && r->op == OP_UNMAP) {
		/* "Supported until the kernel refuses": then it says so for good, and nothing changed. */
		if (aioblk_disk_supports(c->d->disk, AIOBLK_IO_UNMAP))
			FAIL("%s: unmap refused with -EOPNOTSUPP but supports() still says yes", c->d->kind);
		c->unmap_refused = true;
		status = 0;
		r->op = OP_FLUSH; /* no state change below */
	}
	if (status != 0)
		FAIL("%s: %s of %" PRIu64 "+%" PRIu64 " completed with %d (%s)", c->d->kind, op_names[r->op], r->first,
		     r->n, status, strerror(-status));
	if (r->op == OP_RESET) {
		/* Everything this thread had outstanding on the disk when the reset was issued is done. */
		for (i = 0; i < QD; i++)
			if (c->reqs[i].busy && c->reqs[i].seq < r->seq)
				FAIL("%s: reset completed before the %s issued before it", c->d->kind,
				     op_names[c->reqs[i].op]);
	}
	for (b = r->first; b < r->first + r->n; b++) {
		switch (r->op) {
		case OP_READ:
			if (status == 0 && !check_block(c, (const uint64_t *)(r->buf + (b - r->first) * c->d->bs), b))
				goto out;
			w->bytes_verified += c->d->bs;
			break;
		case OP_WRITE:
		case OP_FUA:
			c->state[b - c->lo] = r->gen;
			break;
		case OP_ZERO:
			c->state[b - c->lo] = ST_ZERO;
			break;
		case OP_UNMAP:
			c->state[b - c->lo] = c->d->blockdev ? ST_UNKNOWN : ST_ZERO;
			break;
		default:
			break;
		}
	}
out:
	for (b = r->first; b < r->first + r->n; b++)
		c->pending[b - c->lo]--;
	r->busy = false;
	c->inflight--;
}

/* A free range of up to @max blocks in the channel's half, or false. */
static bool
pick_range(struct worker *w, struct chan *c, uint64_t max, uint64_t *first, uint64_t *n)
{
	uint64_t span = c->hi - c->lo, len, start, b;
	int tries;

	for (tries = 0; tries < 8; tries++) {
		/* Mostly small, sometimes large: 1, 2, 4 ... max, or any. */
		len = rnd(w) % 4 == 0 ? 1 + rnd(w) % max : 1ull << (rnd(w) % 7);
		if (len > max)
			len = max;
		start = c->lo + rnd(w) % (span - len + 1);
		for (b = start; b < start + len; b++)
			if (c->pending[b - c->lo])
				break;
		if (b == start + len) {
			*first = start;
			*n = len;
			return true;
		}
	}
	return false;
}

static struct req *
free_req(struct chan *c)
{
	int i;

	for (i = 0; i < QD; i++)
		if (!c->reqs[i].busy)
			return &c->reqs[i];
	return NULL;
}

/* Split the buffer into up to four iovecs at block boundaries. */
static void
make_iov(struct worker *w, struct req *r, uint32_t bs)
{
	uint64_t left = r->n, at = 0, k;

	r->iovcnt = 0;
	while (left && r->iovcnt < 4) {
		k = r->iovcnt == 3 ? left : 1 + rnd(w) % left;
		r->iov[r->iovcnt].iov_base = r->buf + at * bs;
		r->iov[r->iovcnt].iov_len = k * bs;
		r->iovcnt++;
		at += k;
		left -= k;
	}
}

static void
issue_one(struct worker *w, struct chan *c)
{
	uint64_t first = 0, n = 0, b, roll = rnd(w) % 100;
	struct req *r = free_req(c);
	enum op op;
	int rc;

	if (!r)
		return;
	op = roll < 38 ? OP_READ :
	     roll < 76 ? OP_WRITE :
	     roll < 82 ? OP_FUA :
	     roll < 87 ? OP_ZERO :
	     roll < 91 ? OP_UNMAP :
	     roll < 98 ? OP_FLUSH :
			 OP_RESET;
	if (op == OP_UNMAP && c->unmap_refused)
		op = OP_ZERO;
	if (op != OP_FLUSH && op != OP_RESET && !pick_range(w, c, MAX_BLOCKS, &first, &n))
		return;
	memset(r->iov, 0, sizeof(r->iov));
	r->w = w;
	r->c = c;
	r->op = op;
	r->first = first;
	r->n = n;
	r->calls = 0;
	r->seq = c->next_seq++;
	r->gen = 0;
	if (op == OP_WRITE || op == OP_FUA) {
		r->gen = w->gen++;
		if (w->gen < 2)
			w->gen = 2;
		for (b = 0; b < n; b++)
			fill_block((uint64_t *)(r->buf + b * c->d->bs), c->d->bs, c->d->id, first + b, r->gen);
	}
	if (op == OP_READ)
		memset(r->buf, 0xa5, n * c->d->bs); /* nothing left over from an earlier read can pass */
	make_iov(w, r, c->d->bs);
	r->busy = true;
	for (b = first; b < first + n; b++)
		c->pending[b - c->lo]++;
	c->inflight++;
	switch (op) {
	case OP_READ:
		rc = aioblk_readv(c->ch, r->iov, r->iovcnt, first, n, req_done, r);
		break;
	case OP_WRITE:
		rc = aioblk_writev(c->ch, r->iov, r->iovcnt, first, n, req_done, r);
		break;
	case OP_FUA:
		rc = aioblk_writev_ext(c->ch, r->iov, r->iovcnt, first, n, AIOBLK_WRITE_FUA, req_done, r);
		break;
	case OP_ZERO:
		rc = aioblk_write_zeroes(c->ch, first, n, req_done, r);
		break;
	case OP_UNMAP:
		rc = aioblk_unmap(c->ch, first, n, req_done, r);
		if (rc == -EOPNOTSUPP && !aioblk_disk_supports(c->d->disk, AIOBLK_IO_UNMAP))
			c->unmap_refused = true; /* refused up front: the disk said so */
		break;
	case OP_FLUSH:
		rc = aioblk_flush(c->ch, req_done, r);
		break;
	default:
		rc = aioblk_reset(c->ch, req_done, r);
		break;
	}
	if (rc == 0) {
		w->accepted++;
		w->ops[op]++;
		return;
	}
	/* Refused: the callback must never run. */
	for (b = first; b < first + n; b++)
		c->pending[b - c->lo]--;
	c->inflight--;
	r->busy = false;
	if (rc != -EAGAIN && !(op == OP_UNMAP && rc == -EOPNOTSUPP))
		FAIL("%s: %s of %" PRIu64 "+%" PRIu64 " refused with %d", c->d->kind, op_names[op], first, n, rc);
}

/* Grow a file disk past both halves, or shrink it back, and rescan; or just rescan a device. */
static void
rescan_one(struct worker *w)
{
	struct disk *d = &disks[rnd(w) % (uint64_t)ndisks];
	uint64_t nb;
	int rc;

	if (!d->blockdev && w->id == 0) {
		uint64_t bytes = (rnd(w) & 1 ? d->base_blocks : d->grown_blocks) * d->bs;

		if (truncate(d->path, (off_t)bytes) < 0)
			FAIL("%s: truncate: %s", d->kind, strerror(errno));
	}
	rc = aioblk_disk_rescan(d->disk);
	nb = aioblk_disk_num_blocks(d->disk);
	if (rc != 0 || (nb != d->base_blocks && nb != d->grown_blocks))
		FAIL("%s: rescan: %d, %" PRIu64 " blocks (want %" PRIu64 " or %" PRIu64 ")", d->kind, rc, nb,
		     d->base_blocks, d->grown_blocks);
	atomic_fetch_add(&rescans, 1);
}

static int
poll_some(struct worker *w)
{
	int rc;

	if (w->id == 0)
		rc = aioblk_group_wait(w->group, 1); /* the eventfd group sleeps */
	else
		rc = aioblk_group_poll(w->group, (unsigned)(1 + rnd(w) % 8)); /* a bounded busy poll */
	if (rc < 0)
		FAIL("poll/wait: %d", rc);
	return rc;
}

/* The last pass: read every owned block of every disk and check it. */
static void
final_pass(struct worker *w)
{
	int64_t deadline;
	int i, k;

	for (i = 0; i < ndisks; i++) {
		struct chan *c = &w->chans[i];
		uint64_t b = c->lo;

		deadline = tc_now_ms() + 60000;
		/* After a failure, issue nothing more but still collect what is in flight. */
		while (((b < c->hi && !atomic_load(&failed)) || c->inflight) && tc_now_ms() < deadline) {
			struct req *r;

			while (b < c->hi && !atomic_load(&failed) && (r = free_req(c))) {
				uint64_t n = c->hi - b < MAX_BLOCKS ? c->hi - b : MAX_BLOCKS;
				int rc;

				memset(r->iov, 0, sizeof(r->iov));
				r->w = w;
				r->c = c;
				r->op = OP_READ;
				r->first = b;
				r->n = n;
				r->calls = 0;
				r->seq = c->next_seq++;
				memset(r->buf, 0xa5, n * c->d->bs);
				r->iov[0].iov_base = r->buf;
				r->iov[0].iov_len = n * c->d->bs;
				r->iovcnt = 1;
				r->busy = true;
				for (k = 0; k < (int)n; k++)
					c->pending[b + (uint64_t)k - c->lo]++;
				c->inflight++;
				rc = aioblk_readv(c->ch, r->iov, 1, b, n, req_done, r);
				if (rc != 0) {
					for (k = 0; k < (int)n; k++)
						c->pending[b + (uint64_t)k - c->lo]--;
					c->inflight--;
					r->busy = false;
					if (rc != -EAGAIN)
						FAIL("%s: final read refused: %d", c->d->kind, rc);
					break;
				}
				w->accepted++;
				w->blocks_checked += n;
				b += n;
			}
			poll_some(w);
		}
		if (c->inflight)
			FAIL("%s: final pass timed out", c->d->kind);
	}
}

static int64_t soak_end;

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	int i, k;
	int64_t drain;

	if (tc_group_create(w->id == 0 ? AIOBLK_GROUP_EVENTFD : 0, &w->group) < 0) {
		FAIL("group_create");
		return NULL;
	}
	for (i = 0; i < ndisks; i++) {
		struct chan *c = &w->chans[i];
		uint64_t half = disks[i].base_blocks / NTHREADS;

		c->d = &disks[i];
		c->lo = half * (uint64_t)w->id;
		c->hi = c->lo + half;
		c->state = calloc(half, sizeof(*c->state));
		c->pending = calloc(half, sizeof(*c->pending));
		if (!c->state || !c->pending || aioblk_channel_create(w->group, c->d->disk, QD, &c->ch) < 0) {
			FAIL("channel setup on %s", c->d->kind);
			return NULL;
		}
		for (k = 0; k < QD; k++) {
			c->reqs[k].buf = tc_alloc(4096, MAX_BLOCKS * (size_t)c->d->bs);
			if (!c->reqs[k].buf) {
				FAIL("out of memory");
				return NULL;
			}
		}
	}
	w->gen = 2;
	while (tc_now_ms() < soak_end && !atomic_load(&failed)) {
		for (i = 0; i < ndisks; i++)
			for (k = 0; k < 4; k++)
				issue_one(w, &w->chans[i]);
		if (rnd(w) % 2000 == 0)
			rescan_one(w);
		poll_some(w);
	}
	/* Drain, then check everything once more. */
	drain = tc_now_ms() + 60000;
	for (;;) {
		int busy = 0;

		for (i = 0; i < ndisks; i++)
			busy += w->chans[i].inflight;
		if (!busy || tc_now_ms() > drain)
			break;
		poll_some(w);
	}
	final_pass(w);
	for (i = 0; i < ndisks; i++) {
		struct chan *c = &w->chans[i];

		if (c->inflight || aioblk_channel_inflight(c->ch))
			FAIL("%s: %d requests never completed (library says %u)", c->d->kind, c->inflight,
			     aioblk_channel_inflight(c->ch));
		else if (aioblk_channel_destroy(c->ch) != 0)
			FAIL("%s: channel_destroy", c->d->kind);
		for (k = 0; k < QD; k++)
			free(c->reqs[k].buf);
		free(c->state);
		free(c->pending);
	}
	if (w->accepted != w->callbacks)
		FAIL("thread %d: %" PRIu64 " requests accepted, %" PRIu64 " callbacks", w->id, w->accepted,
		     w->callbacks);
	if (!atomic_load(&failed) && aioblk_group_destroy(w->group) != 0)
		FAIL("group_destroy");
	return NULL;
}

static void
add_disk(const char *kind, const char *path, bool blockdev)
{
	struct disk *d = &disks[ndisks];
	int rc;

	snprintf(d->path, sizeof(d->path), "%s", path);
	d->kind = kind;
	d->blockdev = blockdev;
	d->id = ndisks;
	rc = aioblk_disk_open(path, NULL, &d->disk);
	if (rc < 0) {
		fprintf(stderr, "cannot open %s (%s): %s\n", kind, path, strerror(-rc));
		exit(1);
	}
	d->bs = aioblk_disk_block_size(d->disk);
	if (d->bs > 4096) {
		fprintf(stderr, "%s: block size %u is more than this test handles\n", kind, d->bs);
		exit(1);
	}
	d->base_blocks = DISK_BYTES / d->bs;
	d->grown_blocks = blockdev ? d->base_blocks : (DISK_BYTES + FILE_GROWTH) / d->bs;
	printf("disk %d: %s %s, block size %u, %s\n", ndisks, kind, path, d->bs,
	       aioblk_disk_is_direct(d->disk) ? "O_DIRECT" : "buffered");
	ndisks++;
}

int
main(void)
{
	static struct worker workers[NTHREADS];
	pthread_t threads[NTHREADS];
	const char *env = getenv("SOAK_SECONDS");
	uint64_t total[NOPS] = { 0 }, accepted = 0, callbacks = 0, verified = 0, checked = 0;
	char path[320], dev[64];
	long seconds = env ? strtol(env, NULL, 10) : 60;
	int i, k;

	if (seconds < 1)
		seconds = 1;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (tc_is_root()) {
		if (tc_zram_add("64M", NULL, dev, sizeof(dev)) >= 0)
			add_disk("zram", dev, true);
		else
			printf("no zram here: going on without it\n");
		if (tc_make_file(NULL, DISK_BYTES, path, sizeof(path)) < 0 ||
		    tc_loop_attach(path, 512, true, dev, sizeof(dev)) < 0) {
			fprintf(stderr, "cannot make a loop device\n");
			return 1;
		}
		add_disk("loop", dev, true);
	} else {
		printf("not root: two files instead of zram and a loop device\n");
		if (tc_make_file(NULL, DISK_BYTES, path, sizeof(path)) < 0)
			return 1;
		add_disk("file-2", path, false);
	}
	if (tc_make_file(NULL, DISK_BYTES, path, sizeof(path)) < 0)
		return 1;
	add_disk("file", path, false);

	printf("soak: %ld s, %d threads, %d disks, queue depth %d per channel\n", seconds, NTHREADS, ndisks, QD);
	soak_end = tc_now_ms() + seconds * 1000;
	for (i = 0; i < NTHREADS; i++) {
		workers[i].id = i;
		workers[i].rng = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1) ^ (uint64_t)tc_now_ms();
		if (pthread_create(&threads[i], NULL, worker_main, &workers[i]) != 0)
			return 1;
	}
	for (i = 0; i < NTHREADS; i++)
		pthread_join(threads[i], NULL);
	for (i = 0; i < NTHREADS; i++) {
		for (k = 0; k < NOPS; k++)
			total[k] += workers[i].ops[k];
		accepted += workers[i].accepted;
		callbacks += workers[i].callbacks;
		verified += workers[i].bytes_verified;
		checked += workers[i].blocks_checked;
	}
	printf("requests accepted %" PRIu64 ", callbacks %" PRIu64 ":", accepted, callbacks);
	for (k = 0; k < NOPS; k++)
		printf(" %s %" PRIu64, op_names[k], total[k]);
	printf(", rescans %" PRIdFAST64 "; %" PRIu64 " MiB verified by reads, %" PRIu64 " blocks in the last pass\n",
	       atomic_load(&rescans), verified >> 20, checked);
	if (!atomic_load(&failed))
		for (i = 0; i < ndisks; i++)
			if (aioblk_disk_close(disks[i].disk) != 0)
				FAIL("disk_close %s", disks[i].kind);
	printf("%s\n", atomic_load(&failed) ? "SOAK FAILED" : "soak passed");
	return atomic_load(&failed) ? 1 : 0;
}
