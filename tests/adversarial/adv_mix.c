/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Many channels of many disks in one SHARED_CONTEXT group: mixed reads,
 * writes, flushes, write-zeroes, unmaps and resets, from the main loop and
 * from callbacks, checked against a model:
 * - every accepted request's callback runs exactly once, none for refused;
 * - -EAGAIN exactly when the channel or the group is at its depth (the
 *   group depth counts every outstanding non-reset request of all channels);
 * - data read back equals the last write (or zeroes), per block;
 * - a reset completes after every request accepted on its disk before it;
 * - resets of one channel complete in issue order; resets accepted when full;
 * - aioblk_channel_inflight() equals the model's count.
 * Modes: busy (poll loop, random max), epoll (sleep on the group fd, poll
 * only when readable; a 3 s silence with work outstanding is a hang),
 * cbonly (epoll, and after start new requests come only from callbacks:
 * no aioblk_group_submit at all, the poll must hand them to the kernel).
 *
 * usage: adv_mix [-m busy|epoll|cbonly] [-d disks] [-c chans/disk]
 *                [-g group depth] [-q chan depth] [-t seconds] [-x max] [-B] [-R] [-Z]
 *   -x: poll max (0..3; -1 random), -B: buffered disks, -R: reads and writes
 *   only, -Z: write-zeroes and unmaps only (library threads)
 */
#include "common.h"
#include <sys/epoll.h>

enum op { OP_READ, OP_WRITE, OP_FLUSH, OP_WZ, OP_UNMAP, OP_RESET };
static const char *opname[] = { "read", "write", "flush", "write_zeroes", "unmap", "reset" };

struct req {
	int state; /* 0 free, 1 issuing, 2 accepted, 3 in callback */
	enum op op;
	int ch;
	uint64_t off, n;
	uint32_t gen;
	uint64_t seq;
	void *buf;
	uint64_t *snap; /* resets: seqs outstanding on the disk when issued */
	unsigned nsnap;
	uint64_t rseq; /* reset order within channel */
	bool from_cb;
	struct iovec iov[8]; /* must live until the callback */
};

struct chan {
	struct aioblk_channel *ch;
	int disk;
	unsigned out;    /* non-reset outstanding */
	unsigned resets; /* pending resets */
	uint64_t rs_issued, rs_done;
	uint64_t done;
};

struct dsk {
	struct aioblk_disk *d;
	char path[256];
	uint32_t bs;
	uint64_t nb;
	uint32_t *shadow; /* gen per block, 0 = zero */
	uint8_t *busy;
	uint32_t nextgen;
	bool unmap;
};

static struct dsk *disks;
static struct chan *chans;
static struct req *reqs;
static unsigned nreq, nd, nc, gdepth, cdepth;
static unsigned gout; /* non-reset outstanding, group */
static uint64_t seqno, accepted, completed, eagain_group, eagain_chan, eagain_cb_off_by_one;
static uint64_t opcount[6];
static struct aioblk_group *grp;
static uint64_t rng = 88172645463325252ull;
static int mode; /* 0 busy, 1 epoll, 2 cbonly */
static bool in_poll;
static int cbs_this_poll;
static double cbtime, cbtime_all;
static uint64_t poll_over_max;
static unsigned deficit;
static bool stopping;
static bool rwonly;  /* -R: reads and writes only */
static bool offonly; /* -Z: write-zeroes and unmaps only */

static struct req *
req_get(void)
{
	for (unsigned i = 0; i < nreq; i++) {
		unsigned k = (unsigned)(xrand(&rng) % nreq);
		if (reqs[k].state == 0)
			return &reqs[k];
	}
	for (unsigned k = 0; k < nreq; k++)
		if (reqs[k].state == 0)
			return &reqs[k];
	return NULL;
}

static void cb(void *arg, int status);
static int issue(int from_cb, int want_op);

static void
range_free(struct dsk *D, uint64_t off, uint64_t n, int v)
{
	for (uint64_t b = off; b < off + n; b++)
		D->busy[b] = (uint8_t)v;
}

static bool
pick_range(struct dsk *D, uint64_t *off, uint64_t *n)
{
	for (int tries = 0; tries < 8; tries++) {
		uint64_t len = 1 + xrand(&rng) % 8;
		if (len > D->nb)
			len = D->nb;
		uint64_t o = xrand(&rng) % (D->nb - len + 1);
		bool ok = true;
		for (uint64_t b = o; b < o + len; b++)
			if (D->busy[b]) {
				ok = false;
				break;
			}
		if (ok) {
			*off = o;
			*n = len;
			return true;
		}
	}
	return false;
}

/* Returns 0 accepted, -EAGAIN refused (checked), 1 nothing to do. */
static double poll_t0;
static int
issue(int from_cb, int want_op)
{
	struct req *r = req_get();
	if (!r)
		return 1;
	int ci = (int)(xrand(&rng) % nc);
	struct chan *C = &chans[ci];
	struct dsk *D = &disks[C->disk];
	unsigned p = (unsigned)(xrand(&rng) % 100);
	enum op op = want_op >= 0 ? (enum op)want_op :
		     p < 40       ? OP_READ :
		     p < 75       ? OP_WRITE :
		     p < 81       ? OP_FLUSH :
		     p < 87       ? OP_WZ :
		     p < 93       ? OP_UNMAP :
				    OP_RESET;
	if (op == OP_UNMAP && !D->unmap)
		op = OP_WZ;
	if (rwonly && want_op < 0)
		op = p < 50 ? OP_READ : OP_WRITE;
	if (offonly && want_op < 0) /* only what runs on library threads */
		op = p < 50 || !D->unmap ? OP_WZ : OP_UNMAP;
	memset(r, 0, sizeof(*r) - 0);
	r->op = op;
	r->ch = ci;
	r->from_cb = from_cb;
	if (op == OP_READ || op == OP_WRITE || op == OP_WZ || op == OP_UNMAP) {
		if (!pick_range(D, &r->off, &r->n))
			return 1;
	}
	r->buf = NULL;
	int rc;
	r->state = 1;
	r->seq = ++seqno;
	switch (op) {
	case OP_READ:
		r->buf = xalloc(4096, r->n * D->bs);
		memset(r->buf, 0xee, r->n * D->bs);
		rc = aioblk_read(C->ch, r->buf, r->off, r->n, cb, r);
		break;
	case OP_WRITE:
		r->buf = xalloc(4096, r->n * D->bs);
		r->gen = ++D->nextgen;
		for (uint64_t i = 0; i < r->n; i++)
			stamp((char *)r->buf + i * D->bs, D->bs, C->disk, r->off + i, r->gen);
		if (xrand(&rng) % 2) {
			rc = aioblk_write(C->ch, r->buf, r->off, r->n, cb, r);
		} else {
			/* split into iovecs of one block each */
			struct iovec *iov = r->iov;
			for (uint64_t i = 0; i < r->n; i++) {
				iov[i].iov_base = (char *)r->buf + i * D->bs;
				iov[i].iov_len = D->bs;
			}
			rc = aioblk_writev(C->ch, iov, (int)r->n, r->off, r->n, cb, r);
		}
		break;
	case OP_FLUSH:
		rc = aioblk_flush(C->ch, cb, r);
		break;
	case OP_WZ:
		rc = aioblk_write_zeroes(C->ch, r->off, r->n, cb, r);
		break;
	case OP_UNMAP:
		rc = aioblk_unmap(C->ch, r->off, r->n, cb, r);
		break;
	case OP_RESET: {
		unsigned cnt = 0;
		for (unsigned k = 0; k < nreq; k++)
			if (reqs[k].state >= 2 && reqs[k].op != OP_RESET && chans[reqs[k].ch].disk == C->disk)
				cnt++;
		r->snap = calloc(cnt + 1, sizeof(uint64_t));
		for (unsigned k = 0; k < nreq; k++)
			if (reqs[k].state >= 2 && reqs[k].op != OP_RESET && chans[reqs[k].ch].disk == C->disk)
				r->snap[r->nsnap++] = reqs[k].seq;
		r->rseq = ++C->rs_issued;
		rc = aioblk_reset(C->ch, cb, r);
		if (rc != 0) {
			FAIL("reset refused: %d (ch out %u/%u group %u/%u)", rc, C->out, cdepth, gout, gdepth);
			C->rs_issued--;
		}
		break;
	}
	default:
		rc = -1;
	}
	if (rc == 0) {
		r->state = 2;
		accepted++;
		opcount[op]++;
		if (op == OP_RESET) {
			C->resets++;
		} else {
			if (gout >= gdepth)
				FAIL("%s accepted with group already at depth %u/%u", opname[op], gout, gdepth);
			if (C->out >= cdepth)
				FAIL("%s accepted with channel already at depth %u/%u", opname[op], C->out, cdepth);
			C->out++;
			gout++;
			if (r->n)
				range_free(D, r->off, r->n, 1);
		}
		return 0;
	}
	r->state = 0;
	free(r->buf);
	r->buf = NULL;
	free(r->snap);
	r->snap = NULL;
	if (rc == -EAGAIN) {
		if (gout >= gdepth)
			eagain_group++;
		else if (C->out >= cdepth)
			eagain_chan++;
		else if (from_cb && (gout + 1 >= gdepth || C->out + 1 >= cdepth))
			eagain_cb_off_by_one++; /* the running callback's own slot */
		else
			FAIL("%s -EAGAIN with channel %u/%u and group %u/%u (from_cb %d)", opname[op], C->out, cdepth,
			     gout, gdepth, from_cb);
		/* a reset on a full channel / group must be accepted */
		if (xrand(&rng) % 16 == 0)
			issue(from_cb, OP_RESET);
		return -EAGAIN;
	}
	FAIL("%s refused with %d (off %" PRIu64 " n %" PRIu64 ")", opname[op], rc, r->off, r->n);
	return rc;
}

static void
cb(void *arg, int status)
{
	struct req *r = arg;
	if (r < reqs || r >= reqs + nreq) {
		FAIL("callback with a foreign cb_arg %p", arg);
		return;
	}
	if (!in_poll)
		FAIL("callback outside a poll");
	if (r->state != 2) {
		FAIL("callback for request seq %" PRIu64 " (%s) in state %d: %s", r->seq, opname[r->op], r->state,
		     r->state == 0 ? "duplicate or never accepted" : "?");
		return;
	}
	r->state = 3;
	cbs_this_poll++;
	double tcb0 = now_s();
	struct chan *C = &chans[r->ch];
	struct dsk *D = &disks[C->disk];
	completed++;
	C->done++;
	if (r->op == OP_RESET) {
		if (status != 0)
			FAIL("reset status %d", status);
		for (unsigned i = 0; i < r->nsnap; i++)
			for (unsigned k = 0; k < nreq; k++)
				if (reqs[k].seq == r->snap[i] && reqs[k].state >= 2)
					FAIL("reset on disk %d completed before request seq %" PRIu64 " (%s ch %d) "
					     "accepted before it",
					     C->disk, r->snap[i], opname[reqs[k].op], reqs[k].ch);
		if (r->rseq != C->rs_done + 1)
			FAIL("resets of channel %d out of order: %" PRIu64 " after %" PRIu64, r->ch, r->rseq,
			     C->rs_done);
		C->rs_done = r->rseq;
		C->resets--;
		free(r->snap);
		r->snap = NULL;
	} else {
		C->out--;
		gout--;
		if (status != 0 && !(r->op == OP_UNMAP && status == -EOPNOTSUPP))
			FAIL("%s disk %d off %" PRIu64 " n %" PRIu64 " status %d", opname[r->op], C->disk, r->off, r->n,
			     status);
		if (status == -EOPNOTSUPP && r->op == OP_UNMAP)
			D->unmap = false;
		if (status == 0) {
			for (uint64_t i = 0; i < r->n; i++) {
				uint64_t b = r->off + i;
				if (r->op == OP_READ) {
					size_t bad =
						verify((char *)r->buf + i * D->bs, D->bs, C->disk, b, D->shadow[b]);
					if (bad)
						FAIL("data: disk %d block %" PRIu64
						     " expected gen %u, byte %zu differs "
						     "(first word %016" PRIx64 ")",
						     C->disk, b, D->shadow[b], bad - 1,
						     *(uint64_t *)((char *)r->buf + i * D->bs));
				} else if (r->op == OP_WRITE) {
					D->shadow[b] = r->gen;
				} else if (r->op == OP_WZ || r->op == OP_UNMAP) {
					D->shadow[b] = 0;
				}
			}
		}
		if (r->n)
			range_free(D, r->off, r->n, 0);
	}
	free(r->buf);
	r->buf = NULL;
	r->state = 0;
	cbtime += now_s() - tcb0;
	if (!stopping) {
		/* keep the load up from callbacks */
		unsigned k = 1 + (mode == 2 ? deficit : 0);
		if (mode == 2)
			deficit = 0;
		for (unsigned i = 0; i < k; i++) {
			int rc = issue(1, -1);
			if (rc != 0 && mode == 2 && deficit < 4)
				deficit++;
		}
		if (xrand(&rng) % 3 == 0)
			issue(1, -1);
	}
	cbtime_all += now_s() - tcb0;
}

static unsigned
outstanding(void)
{
	unsigned s = 0;
	for (unsigned i = 0; i < nc; i++)
		s += chans[i].out + chans[i].resets;
	return s;
}

static void
check_inflight(void)
{
	for (unsigned i = 0; i < nc; i++) {
		unsigned got = aioblk_channel_inflight(chans[i].ch);
		if (got != chans[i].out + chans[i].resets)
			FAIL("inflight of channel %u is %u, model %u", i, got, chans[i].out + chans[i].resets);
	}
}

static double maxpoll;
static int maxpoll_n, maxpoll_m;
static double maxpoll_cb, maxpoll_cball;
static int pmax = -1;
static double maxsleep;

static int
do_poll(void)
{
	int m = pmax >= 0 ? pmax : (int)(xrand(&rng) % 4);
	in_poll = true;
	cbs_this_poll = 0;
	cbtime = cbtime_all = 0;
	double tp = now_s();
	poll_t0 = tp;
	int rc = aioblk_group_poll(grp, (unsigned)m);
	tp = now_s() - tp;
	in_poll = false;
	if (tp > maxpoll) {
		maxpoll = tp;
		maxpoll_n = rc;
		maxpoll_m = m;
		maxpoll_cb = cbtime;
		maxpoll_cball = cbtime_all;
	}
	if (rc < 0)
		FAIL("poll: %d", rc);
	if (m && rc > m)
		FAIL("poll(max %d) returned %d", m, rc);
	if (rc >= 0 && rc != cbs_this_poll) {
		if (poll_over_max++ < 5)
			FAIL("poll(max %d) returned %d but ran %d callbacks", m, rc, cbs_this_poll);
	}
	return rc;
}

int
main(int argc, char **argv)
{
	nd = 8;
	unsigned cpd = 2;
	gdepth = 48;
	cdepth = 16;
	double secs = 10;
	bool buffered = false;
	int opt;
	while ((opt = getopt(argc, argv, "m:d:c:g:q:t:x:BRZ")) != -1) {
		switch (opt) {
		case 'm':
			mode = !strcmp(optarg, "busy") ? 0 : !strcmp(optarg, "epoll") ? 1 : 2;
			break;
		case 'd':
			nd = (unsigned)atoi(optarg);
			break;
		case 'c':
			cpd = (unsigned)atoi(optarg);
			break;
		case 'g':
			gdepth = (unsigned)atoi(optarg);
			break;
		case 'q':
			cdepth = (unsigned)atoi(optarg);
			break;
		case 't':
			secs = atof(optarg);
			break;
		case 'x':
			pmax = atoi(optarg);
			break;
		case 'B':
			buffered = true;
			break;
		case 'R':
			rwonly = true;
			break;
		case 'Z':
			offonly = true;
			break;
		default:
			return 2;
		}
	}
	nc = nd * cpd;
	disks = calloc(nd, sizeof(*disks));
	chans = calloc(nc, sizeof(*chans));
	nreq = nc * cdepth + 4 * nc + 64;
	reqs = calloc(nreq, sizeof(*reqs));

	struct aioblk_group_opts go = { .flags = AIOBLK_GROUP_SHARED_CONTEXT | (mode ? AIOBLK_GROUP_EVENTFD : 0),
					.queue_depth = gdepth };
	int rc = aioblk_group_create_ext(&go, &grp);
	if (rc)
		DIE("group_create_ext: %d", rc);
	for (unsigned i = 0; i < nd; i++) {
		struct dsk *D = &disks[i];
		snprintf(D->path, sizeof(D->path), "%s/adv_mix.%d.%u", tmpdir(), getpid(), i);
		uint64_t nbytes = (64 + 16 * (i % 16)) * 4096ull;
		make_file(D->path, nbytes);
		struct aioblk_disk_opts dop = { .flags = buffered ? AIOBLK_DISK_BUFFERED : 0 };
		rc = aioblk_disk_open(D->path, &dop, &D->d);
		if (rc)
			DIE("open %s: %d", D->path, rc);
		D->bs = aioblk_disk_block_size(D->d);
		D->nb = aioblk_disk_num_blocks(D->d);
		D->shadow = calloc(D->nb, sizeof(uint32_t));
		D->busy = calloc(D->nb, 1);
		D->unmap = aioblk_disk_supports(D->d, AIOBLK_IO_UNMAP);
	}
	for (unsigned i = 0; i < nc; i++) {
		chans[i].disk = (int)(i % nd);
		rc = aioblk_channel_create(grp, disks[chans[i].disk].d, cdepth, &chans[i].ch);
		if (rc)
			DIE("channel_create %u (disk %d): %d", i, chans[i].disk, rc);
	}
	int efd = -1, ep = -1;
	if (mode) {
		efd = aioblk_group_fd(grp);
		if (efd < 0)
			DIE("group_fd %d", efd);
		ep = epoll_create1(EPOLL_CLOEXEC);
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = 1 };
		if (epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev))
			DIE("epoll_ctl");
	} else {
		CHECK(aioblk_group_fd(grp) == -EINVAL, "group_fd without EVENTFD: %d", aioblk_group_fd(grp));
	}

	double t0 = now_s(), tend = t0 + secs;
	uint64_t loops = 0, hangs = 0;
	/* initial fill */
	for (unsigned i = 0; i < gdepth + 8; i++)
		issue(0, -1);
	if (mode)
		aioblk_group_submit(grp);
	while (now_s() < tend && !FAILED()) {
		loops++;
		if (mode == 0) {
			do_poll();
			check_inflight();
			unsigned k = (unsigned)(xrand(&rng) % 8);
			for (unsigned i = 0; i < k; i++)
				issue(0, -1);
			if (xrand(&rng) % 5 == 0)
				aioblk_group_submit(grp);
		} else {
			struct epoll_event ev;
			double tw = now_s();
			int n = epoll_wait(ep, &ev, 1, 3000);
			tw = now_s() - tw;
			if (tw > maxsleep && outstanding())
				maxsleep = tw;
			if (n < 0 && errno == EINTR)
				continue;
			if (n == 0) {
				unsigned o = outstanding();
				if (o) {
					hangs++;
					int got = do_poll();
					FAIL("hang: fd not readable for 3 s with %u outstanding (group %u); a poll "
					     "then ran %d callbacks",
					     o, gout, got);
				}
				if (mode == 2) {
					issue(0, -1);
					aioblk_group_submit(grp);
				}
				continue;
			}
			do_poll();
			check_inflight();
			if (mode == 1) {
				unsigned k = (unsigned)(xrand(&rng) % 4);
				for (unsigned i = 0; i < k; i++)
					issue(0, -1);
				aioblk_group_submit(grp);
			} else if (outstanding() == 0) {
				issue(0, -1);
				aioblk_group_submit(grp);
			}
		}
	}
	/* drain */
	stopping = true;
	double dl = now_s() + 20;
	while (outstanding() && now_s() < dl) {
		if (mode) {
			struct epoll_event ev;
			int n = epoll_wait(ep, &ev, 1, 3000);
			if (n == 0) {
				int got = do_poll();
				FAIL("drain hang: fd silent 3 s, %u outstanding; a poll ran %d", outstanding(), got);
				continue;
			}
		}
		do_poll();
	}
	if (outstanding())
		FAIL("%u requests never completed", outstanding());
	check_inflight();
	CHECK(accepted == completed, "accepted %" PRIu64 " completed %" PRIu64, accepted, completed);

	/* read everything back */
	for (unsigned i = 0; i < nd && !FAILED(); i++) {
		struct dsk *D = &disks[i];
		void *buf = xalloc(4096, D->nb * D->bs);
		int fd = open(D->path, O_RDONLY);
		if (pread(fd, buf, D->nb * D->bs, 0) != (ssize_t)(D->nb * D->bs))
			FAIL("pread %s", D->path);
		close(fd);
		for (uint64_t b = 0; b < D->nb; b++) {
			size_t bad = verify((char *)buf + b * D->bs, D->bs, i, b, D->shadow[b]);
			if (bad)
				FAIL("final data: disk %u block %" PRIu64 " gen %u byte %zu", i, b, D->shadow[b],
				     bad - 1);
		}
		free(buf);
	}
	/* per-channel counters stay per channel */
	for (unsigned i = 0; i < nc; i++) {
		struct aioblk_channel_stats st;
		CHECK(aioblk_channel_get_stats(chans[i].ch, &st) == 0, "stats");
		uint64_t sum = st.reads + st.writes + st.flushes + st.other_ops;
		if (sum != chans[i].done || st.errors != 0)
			FAIL("channel %u stats: %" PRIu64 " completed (r %" PRIu64 " w %" PRIu64 " f %" PRIu64
			     " other %" PRIu64 ") errors %" PRIu64 ", model %" PRIu64,
			     i, sum, st.reads, st.writes, st.flushes, st.other_ops, st.errors, chans[i].done);
	}
	CHECK(aioblk_group_destroy(grp) == -EBUSY, "group destroy with channels not -EBUSY");
	for (unsigned i = 0; i < nc; i++) {
		rc = aioblk_channel_destroy(chans[i].ch);
		CHECK(rc == 0, "channel destroy %u: %d", i, rc);
	}
	rc = aioblk_group_destroy(grp);
	CHECK(rc == 0, "group destroy %d", rc);
	for (unsigned i = 0; i < nd; i++) {
		CHECK(aioblk_disk_close(disks[i].d) == 0, "close");
		unlink(disks[i].path);
		free(disks[i].shadow);
		free(disks[i].busy);
	}
	if (ep >= 0)
		close(ep);
	printf("mode %d: %" PRIu64 " accepted (r %" PRIu64 " w %" PRIu64 " f %" PRIu64 " wz %" PRIu64 " un %" PRIu64
	       " rs %" PRIu64 "), eagain group %" PRIu64 " chan %" PRIu64 " cb-own-slot %" PRIu64 ", loops %" PRIu64
	       "\n",
	       mode, accepted, opcount[0], opcount[1], opcount[2], opcount[3], opcount[4], opcount[5], eagain_group,
	       eagain_chan, eagain_cb_off_by_one, loops);
	printf("longest poll: %.3f s (max %d, ran %d; in callbacks %.3f s, of which checks %.3f s)\n", maxpoll,
	       maxpoll_m, maxpoll_n, maxpoll_cball, maxpoll_cb);
	if (mode)
		printf("longest sleep with work outstanding: %.3f s\n", maxsleep);
	free(chans);
	free(disks);
	free(reqs);
	return adv_exit("adv_mix");
}
