/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Odd disks in one SHARED_CONTEXT group (adv_disks.sh makes them).
 * Each argument is PATH[,ro][,buf][,sat][,big][,ext]:
 *   ro  opened read-only: writes, write-zeroes, unmap must be -EROFS
 *   buf opened AIOBLK_DISK_BUFFERED
 *   sat keep the channel full (queue depth 64) to saturate the device
 *   big also write 8 MiB requests (more than queue/nr_requests=4 requests
 *       of max_sectors_kb each: such a request must still be submitted)
 *   ext another process pwrite()s the second half of the file meanwhile
 *       (reads there return whole 8-byte words of one of its patterns)
 * Every disk: out-of-range -EINVAL at its exact end; writes then reads of
 * stamped blocks in its first half verified; the non-saturated disks must
 * keep completing while the saturated ones are full (no 500 ms gap).
 * usage: adv_disks [-t seconds] [-e] [-P] SPEC...   (-e: eventfd + epoll; -P: a plain group)
 */
#include "common.h"
#include <signal.h>
#include <sys/epoll.h>
#include <sys/wait.h>

#define MAXD 16
struct dsk {
	char path[256];
	bool ro, buf, sat, big, ext;
	struct aioblk_disk *d;
	struct aioblk_channel *ch;
	uint32_t bs;
	uint64_t nb, half;
	uint32_t *shadow;
	uint8_t *busy;
	uint32_t gen;
	unsigned out, cdepth;
	uint64_t done, bigdone;
	double last_done;
	double maxgap;
	uint64_t done_at_poll, pollgap, maxpollgap; /* polls with work outstanding and no completion */
	pid_t writer;
};
struct req {
	struct dsk *D;
	int op; /* 0 read 1 write 2 big write 3 ext read 4 flush */
	uint64_t off, n;
	uint32_t gen;
	void *buf;
	bool used;
};
static struct dsk disks[MAXD];
static int nd;
static struct req reqs[MAXD * 80];
static uint64_t rng = 12345;
static bool stopping;
static const uint64_t PA = 0x1111111111111111ull, PB = 0x2222222222222222ull;

static void cb(void *arg, int status);

static struct req *
getreq(void)
{
	for (unsigned i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++)
		if (!reqs[i].used)
			return &reqs[i];
	return NULL;
}

static int
issue(struct dsk *D)
{
	struct req *r = getreq();
	if (!r)
		return 1;
	memset(r, 0, sizeof(*r));
	r->D = D;
	unsigned p = (unsigned)(xrand(&rng) % 100);
	int rc;
	if (D->ext && p < 30) {
		r->op = 3;
		r->n = 1 + xrand(&rng) % 4;
		r->off = D->half + xrand(&rng) % (D->nb - D->half - r->n + 1);
		r->buf = xalloc(aioblk_disk_buf_align(D->d), r->n * D->bs);
		rc = aioblk_read(D->ch, r->buf, r->off, r->n, cb, r);
	} else if (D->big && p < 10 && D->half * D->bs >= (8u << 20)) {
		r->op = 2;
		r->n = (8u << 20) / D->bs;
		r->off = 0;
		for (uint64_t b = 0; b < r->n; b++)
			if (D->busy[b])
				return 1;
		r->buf = xalloc(aioblk_disk_buf_align(D->d), 8u << 20);
		r->gen = ++D->gen;
		for (uint64_t b = 0; b < r->n; b++)
			stamp((char *)r->buf + b * D->bs, D->bs, (uint32_t)(D - disks), b, r->gen);
		rc = aioblk_write(D->ch, r->buf, 0, r->n, cb, r);
	} else if (p < 95) {
		uint64_t base = D->big ? (8u << 20) / D->bs : 0; /* keep the big write's range free */
		r->n = 1 + xrand(&rng) % 8;
		if (r->n > D->half - base)
			r->n = D->half - base;
		r->off = base + xrand(&rng) % (D->half - base - r->n + 1);
		for (uint64_t b = r->off; b < r->off + r->n; b++)
			if (D->busy[b])
				return 1;
		r->buf = xalloc(aioblk_disk_buf_align(D->d), r->n * D->bs);
		if (!D->ro && p % 2) {
			r->op = 1;
			r->gen = ++D->gen;
			for (uint64_t b = 0; b < r->n; b++)
				stamp((char *)r->buf + b * D->bs, D->bs, (uint32_t)(D - disks), r->off + b, r->gen);
			rc = aioblk_write(D->ch, r->buf, r->off, r->n, cb, r);
		} else {
			r->op = 0;
			rc = aioblk_read(D->ch, r->buf, r->off, r->n, cb, r);
		}
	} else {
		r->op = 4;
		rc = aioblk_flush(D->ch, cb, r);
	}
	if (rc == 0) {
		r->used = true;
		D->out++;
		if (r->op <= 2)
			for (uint64_t b = r->off; b < r->off + r->n; b++)
				D->busy[b] = 1;
		return 0;
	}
	free(r->buf);
	if (rc != -EAGAIN)
		FAIL("%s: op %d off %" PRIu64 " n %" PRIu64 " refused %d", D->path, r->op, r->off, r->n, rc);
	return rc;
}

static void
cb(void *arg, int status)
{
	struct req *r = arg;
	struct dsk *D = r->D;
	if (!r->used) {
		FAIL("duplicate callback");
		return;
	}
	r->used = false;
	D->out--;
	D->done++;
	double t = now_s();
	D->last_done = t;
	if (status)
		FAIL("%s: op %d off %" PRIu64 " n %" PRIu64 " status %d", D->path, r->op, r->off, r->n, status);
	else if (r->op == 0) {
		for (uint64_t b = 0; b < r->n; b++) {
			size_t bad = verify((char *)r->buf + b * D->bs, D->bs, (uint32_t)(D - disks), r->off + b,
					    D->shadow[r->off + b]);
			/* ro disks and untouched blocks: whatever the disk held; only check written ones */
			if (bad && D->shadow[r->off + b])
				FAIL("%s: block %" PRIu64 " gen %u: byte %zu differs", D->path, r->off + b,
				     D->shadow[r->off + b], bad - 1);
		}
	} else if (r->op == 1 || r->op == 2) {
		for (uint64_t b = 0; b < r->n; b++)
			D->shadow[r->off + b] = r->gen;
		if (r->op == 2)
			D->bigdone++;
	} else if (r->op == 3) {
		const uint64_t *w = r->buf;
		for (uint64_t i = 0; i < r->n * D->bs / 8; i++)
			if (w[i] != PA && w[i] != PB && w[i] != 0) {
				FAIL("%s: concurrent-writer region word %" PRIu64 " is %016" PRIx64, D->path, i, w[i]);
				break;
			}
	}
	if (r->op <= 2)
		for (uint64_t b = r->off; b < r->off + r->n; b++)
			D->busy[b] = 0;
	free(r->buf);
	if (!stopping)
		issue(D);
}

static void
writer(const char *path, uint64_t from, uint64_t to)
{
	int fd = open(path, O_WRONLY);
	char *b = xalloc(4096, 4096);
	for (uint64_t i = 0;; i++) {
		uint64_t v = i % 2 ? PA : PB;
		for (int k = 0; k < 512; k++)
			((uint64_t *)b)[k] = v;
		uint64_t off = from + (i * 4096) % (to - from - 4096);
		off &= ~4095ull;
		if (pwrite(fd, b, 4096, (off_t)off) < 0)
			_exit(3);
	}
}

int
main(int argc, char **argv)
{
	double secs = 6;
	bool efd = false;
	int opt;
	bool plain = false;
	while ((opt = getopt(argc, argv, "t:eP")) != -1) {
		if (opt == 'P')
			plain = true;
		else if (opt == 't')
			secs = atof(optarg);
		else if (opt == 'e')
			efd = true;
		else
			return 2;
	}
	struct aioblk_group_opts go = { .flags = AIOBLK_GROUP_SHARED_CONTEXT | (efd ? AIOBLK_GROUP_EVENTFD : 0),
					.queue_depth = 512 };
	if (plain) { /* for comparison */
		go.flags &= ~AIOBLK_GROUP_SHARED_CONTEXT;
		go.queue_depth = 0;
	}
	struct aioblk_group *g;
	if (aioblk_group_create_ext(&go, &g))
		DIE("group");
	for (int i = optind; i < argc && nd < MAXD; i++) {
		struct dsk *D = &disks[nd++];
		char *s = strdup(argv[i]), *tok = strtok(s, ",");
		snprintf(D->path, sizeof(D->path), "%s", tok);
		while ((tok = strtok(NULL, ","))) {
			D->ro |= !strcmp(tok, "ro");
			D->buf |= !strcmp(tok, "buf");
			D->sat |= !strcmp(tok, "sat");
			D->big |= !strcmp(tok, "big");
			D->ext |= !strcmp(tok, "ext");
		}
		free(s);
		struct aioblk_disk_opts o = { .flags = (D->ro ? AIOBLK_DISK_READONLY : 0) |
						       (D->buf ? AIOBLK_DISK_BUFFERED : 0) };
		int rc = aioblk_disk_open(D->path, &o, &D->d);
		if (rc)
			DIE("open %s: %d", D->path, rc);
		D->bs = aioblk_disk_block_size(D->d);
		D->nb = aioblk_disk_num_blocks(D->d);
		D->half = D->ext ? D->nb / 2 : D->nb;
		if (D->half > 4096)
			D->half = D->big ? (16u << 20) / D->bs : 4096;
		if (D->half > D->nb)
			D->half = D->nb;
		D->shadow = calloc(D->nb, 4);
		D->busy = calloc(D->nb, 1);
		D->cdepth = D->sat ? 64 : 8;
		printf("%s: bs %u blocks %" PRIu64 " direct %d ro %d queue limit %u align %zu/%zu\n", D->path, D->bs,
		       D->nb, aioblk_disk_is_direct(D->d), aioblk_disk_is_readonly(D->d), aioblk_disk_queue_limit(D->d),
		       aioblk_disk_buf_align(D->d), aioblk_disk_len_align(D->d));
		if ((rc = aioblk_channel_create(g, D->d, D->cdepth, &D->ch)))
			DIE("channel %s: %d", D->path, rc);
		/* refusals at the exact end */
		char *b = xalloc(aioblk_disk_buf_align(D->d), 2 * D->bs);
		CHECK(aioblk_read(D->ch, b, D->nb, 1, cb, NULL) == -EINVAL, "%s: read at end", D->path);
		CHECK(aioblk_read(D->ch, b, D->nb - 1, 2, cb, NULL) == -EINVAL, "%s: read across end", D->path);
		if (D->ro) {
			CHECK(aioblk_write(D->ch, b, 0, 1, cb, NULL) == -EROFS, "%s: ro write", D->path);
			CHECK(aioblk_write_zeroes(D->ch, 0, 1, cb, NULL) == -EROFS, "%s: ro wz", D->path);
			CHECK(aioblk_unmap(D->ch, 0, 1, cb, NULL) == -EROFS, "%s: ro unmap", D->path);
			CHECK(!aioblk_disk_supports(D->d, AIOBLK_IO_WRITE), "%s: ro supports write", D->path);
		} else {
			CHECK(aioblk_write(D->ch, b, D->nb, 1, cb, NULL) == -EINVAL, "%s: write at end", D->path);
			CHECK(aioblk_write_zeroes(D->ch, D->nb - 1, 2, cb, NULL) == -EINVAL, "%s: wz across end",
			      D->path);
		}
		free(b);
		if (D->ext) {
			uint64_t from = D->half * D->bs, to = D->nb * D->bs;
			D->writer = fork();
			if (D->writer == 0)
				writer(D->path, from, to);
		}
	}
	int ep = -1;
	if (efd) {
		ep = epoll_create1(EPOLL_CLOEXEC);
		struct epoll_event ev = { .events = EPOLLIN };
		epoll_ctl(ep, EPOLL_CTL_ADD, aioblk_group_fd(g), &ev);
	}
	double t0 = now_s(), tend = t0 + secs;
	for (int i = 0; i < nd; i++) {
		disks[i].last_done = t0;
		for (unsigned k = 0; k < disks[i].cdepth; k++)
			issue(&disks[i]);
	}
	bool any_sat = false;
	for (int i = 0; i < nd; i++)
		any_sat |= disks[i].sat;
	while (now_s() < tend && !FAILED()) {
		if (efd) {
			aioblk_group_submit(g);
			struct epoll_event ev;
			if (epoll_wait(ep, &ev, 1, 3000) == 0) {
				FAIL("fd silent 3 s");
				break;
			}
			aioblk_group_poll(g, 0);
		} else {
			aioblk_group_poll(g, 0);
		}
		double t = now_s();
		for (int i = 0; i < nd; i++) {
			struct dsk *D = &disks[i];
			if (D->out && t - D->last_done > D->maxgap)
				D->maxgap = t - D->last_done;
			if (D->done != D->done_at_poll) {
				D->done_at_poll = D->done;
				D->pollgap = 0;
			} else if (D->out && ++D->pollgap > D->maxpollgap) {
				D->maxpollgap = D->pollgap;
			}
			if (D->out < D->cdepth)
				issue(D);
		}
	}
	stopping = true;
	for (int i = 0; i < nd; i++)
		if (disks[i].writer > 0) {
			kill(disks[i].writer, SIGKILL);
			waitpid(disks[i].writer, NULL, 0);
		}
	double dl = now_s() + 30;
	unsigned left;
	do {
		aioblk_group_wait(g, 100);
		left = 0;
		for (int i = 0; i < nd; i++)
			left += disks[i].out;
	} while (left && now_s() < dl);
	CHECK(left == 0, "%u requests never completed", left);
	for (int i = 0; i < nd; i++) {
		struct dsk *D = &disks[i];
		printf("%s: %" PRIu64 " done (%" PRIu64 " big), longest gap with work outstanding %.3f s, %" PRIu64
		       " polls\n",
		       D->path, D->done, D->bigdone, D->maxgap, D->maxpollgap);
		/* wall time: 1 s is generous on a shared, noisy machine (a plain group shows gaps of
		 * tens of ms here, also counted in polls: flushes run on a kworker) */
		if (any_sat && !D->sat)
			CHECK(D->maxgap < 1.0,
			      "%s starved (%" PRIu64 " polls, %.3f s) while a saturated disk shared the group", D->path,
			      D->maxpollgap, D->maxgap);
		CHECK(D->done > 0, "%s: nothing completed", D->path);
		if (D->big)
			CHECK(D->bigdone > 0, "%s: no 8 MiB write completed", D->path);
		if (!left) {
			CHECK(aioblk_channel_destroy(D->ch) == 0, "destroy");
			CHECK(aioblk_disk_close(D->d) == 0, "close");
		}
		free(D->shadow);
		free(D->busy);
	}
	if (!left)
		CHECK(aioblk_group_destroy(g) == 0, "group destroy");
	if (ep >= 0)
		close(ep);
	return adv_exit("adv_disks");
}
