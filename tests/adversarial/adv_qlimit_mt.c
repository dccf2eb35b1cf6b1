/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A block device with a small queue (queue/nr_requests lowered, see
 * adv_qlimit.sh) shared by several threads, each with an eventfd group
 * (SHARED_CONTEXT ones and a plain one) that also holds a channel on its
 * own file. Every thread keeps its channels full and sleeps only on its fd
 * (epoll), after aioblk_group_submit(). The device's limit is shared by
 * every channel of the disk in every thread, so requests wait in their
 * channel; a thread whose requests wait for room that another thread's
 * completion makes must be woken (no 3 s silence with work outstanding),
 * its file channel must keep flowing, and now and then an 8 MiB write
 * (more requests than the queue has) must go through. Data is verified.
 * usage: adv_qlimit_mt DEVICE [-n threads] [-t seconds]
 */
#include "common.h"
#include <pthread.h>
#include <sys/resource.h>
#include <sys/epoll.h>

#define MAXT 6
struct req {
	int th, disk; /* disk 0: device, 1: own file */
	int op;       /* 0 read 1 write 2 reset */
	uint64_t off, n;
	uint32_t gen;
	void *buf;
	bool used;
	double t_issue;
};
struct thr {
	int id, kind; /* 0,1 shared efd; 2 plain efd */
	struct aioblk_group *g;
	struct aioblk_disk *file;
	char fpath[256];
	struct aioblk_channel *ch[2];
	unsigned out[2], depth[2];
	struct req reqs[128];
	uint64_t base, span; /* slice of the device */
	uint32_t *shadow[2];
	uint8_t *busy[2];
	uint64_t nb[2];
	uint32_t gen;
	uint64_t done[2], big, hangs;
	double maxpoll_cpu;
	long maxpoll_vcsw, maxpoll_ivcsw;
	double maxbig, last_file, maxgap_file, maxsubmit, maxsleep, maxpoll;
	uint64_t rng;
	bool stopping;
	pthread_t th;
};
static struct thr T[MAXT];
static unsigned NT = 3;
static double secs = 8;
static struct aioblk_disk *dev;
static uint32_t bs;

static void cb(void *arg, int status);

static int
issue(struct thr *t, int disk, bool big)
{
	struct req *r = NULL;
	for (unsigned i = 0; i < 128; i++)
		if (!t->reqs[i].used) {
			r = &t->reqs[i];
			break;
		}
	if (!r)
		return 1;
	memset(r, 0, sizeof(*r));
	r->th = t->id;
	r->disk = disk;
	struct aioblk_channel *ch = t->ch[disk];
	uint64_t lo = disk == 0 ? t->base : 0, span = disk == 0 ? t->span : t->nb[1];
	if (big) {
		r->n = (8u << 20) / bs;
		if (r->n > span)
			return 1;
		r->off = lo;
	} else {
		uint64_t bigblocks = disk == 0 ? (8u << 20) / bs : 0;
		r->n = 1 + xrand(&t->rng) % 16;
		r->off = lo + bigblocks + xrand(&t->rng) % (span - bigblocks - r->n);
	}
	for (uint64_t b = r->off; b < r->off + r->n; b++)
		if (t->busy[disk][b - lo])
			return 1;
	r->buf = xalloc(4096, r->n * bs);
	int rc;
	if (big || xrand(&t->rng) % 2) {
		r->op = 1;
		r->gen = ++t->gen;
		for (uint64_t b = 0; b < r->n; b++)
			stamp((char *)r->buf + b * bs, bs, (uint32_t)(t->id * 2 + disk), r->off + b, r->gen);
		rc = aioblk_write(ch, r->buf, r->off, r->n, cb, r);
	} else {
		r->op = 0;
		rc = aioblk_read(ch, r->buf, r->off, r->n, cb, r);
	}
	if (rc == 0) {
		r->used = true;
		r->t_issue = now_s();
		t->out[disk]++;
		for (uint64_t b = r->off; b < r->off + r->n; b++)
			t->busy[disk][b - lo] = 1;
		return 0;
	}
	free(r->buf);
	if (rc != -EAGAIN)
		FAIL("thread %d disk %d: refused %d", t->id, disk, rc);
	return rc;
}

static void
cb(void *arg, int status)
{
	struct req *r = arg;
	struct thr *t = &T[r->th];
	if (!r->used) {
		FAIL("duplicate callback");
		return;
	}
	r->used = false;
	int disk = r->disk;
	uint64_t lo = disk == 0 ? t->base : 0;
	t->out[disk]--;
	t->done[disk]++;
	if (disk == 1)
		t->last_file = now_s();
	CHECK(status == 0, "thread %d disk %d op %d status %d", t->id, disk, r->op, status);
	if (r->op == 2) {
		return;
	}
	for (uint64_t b = 0; b < r->n; b++) {
		uint64_t i = r->off + b - lo;
		if (r->op == 1 && status == 0)
			t->shadow[disk][i] = r->gen;
		else if (r->op == 0 && t->shadow[disk][i]) {
			size_t bad = verify((char *)r->buf + b * bs, bs, (uint32_t)(t->id * 2 + disk), r->off + b,
					    t->shadow[disk][i]);
			if (bad)
				FAIL("thread %d disk %d block %" PRIu64 ": data differs at %zu", t->id, disk,
				     r->off + b, bad - 1);
		}
		t->busy[disk][i] = 0;
	}
	if (r->op == 1 && r->n * bs == (8u << 20)) {
		t->big++;
		double lat = now_s() - r->t_issue;
		if (lat > t->maxbig)
			t->maxbig = lat;
	}
	free(r->buf);
	if (!t->stopping)
		issue(t, disk, false);
}

static void
reset_cb(void *arg, int status)
{
	struct thr *t = arg;
	CHECK(status == 0, "reset %d", status);
	t->out[0]--;
}

/* A control thread that only sleeps: its oversleep shows stalls of the whole process or machine. */
static double ctl_maxlate;
static int ctl_stop;
static void *
control(void *arg)
{
	while (!__atomic_load_n(&ctl_stop, __ATOMIC_RELAXED)) {
		double t = now_s();
		usleep(10000);
		double late = now_s() - t - 0.010;
		if (late > ctl_maxlate)
			ctl_maxlate = late;
	}
	return NULL;
}

static void *
run(void *arg)
{
	struct thr *t = arg;
	struct aioblk_group_opts go = { .flags = AIOBLK_GROUP_EVENTFD | (t->kind < 2 ? AIOBLK_GROUP_SHARED_CONTEXT : 0),
					.queue_depth = t->kind < 2 ? 48 : 0 };
	if (aioblk_group_create_ext(&go, &t->g))
		DIE("group");
	t->depth[0] = 32;
	t->depth[1] = 8;
	if (aioblk_channel_create(t->g, dev, t->depth[0], &t->ch[0]) ||
	    aioblk_channel_create(t->g, t->file, t->depth[1], &t->ch[1]))
		DIE("channels");
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN };
	epoll_ctl(ep, EPOLL_CTL_ADD, aioblk_group_fd(t->g), &ev);
	double tend = now_s() + secs;
	t->last_file = now_s();
	while (now_s() < tend && !FAILED()) {
		for (int d = 0; d < 2; d++)
			while (t->out[d] < t->depth[d] && issue(t, d, false) == 0)
				;
		if (!getenv("ADV_NOBIG") && xrand(&t->rng) % 64 == 0)
			issue(t, 0, true);
		if (xrand(&t->rng) % 32 == 0 && aioblk_reset(t->ch[0], reset_cb, t) == 0)
			t->out[0]++;
		double ts = now_s();
		aioblk_group_submit(t->g);
		ts = now_s() - ts;
		if (ts > t->maxsubmit)
			t->maxsubmit = ts;
		double tw = now_s();
		int n = epoll_wait(ep, &ev, 1, 3000);
		double now = now_s();
		if (now - tw > t->maxsleep)
			t->maxsleep = now - tw;
		if (t->out[1] && now - t->last_file > t->maxgap_file)
			t->maxgap_file = now - t->last_file;
		if (n == 0) {
			t->hangs++;
			int got = aioblk_group_poll(t->g, 0);
			FAIL("thread %d kind %d: fd silent 3 s with %u device + %u file requests outstanding; a poll "
			     "then ran %d",
			     t->id, t->kind, t->out[0], t->out[1], got);
			continue;
		}
		double tp = now_s();
		struct rusage ru0, ru1;
		struct timespec c0, c1;
		getrusage(RUSAGE_THREAD, &ru0);
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
		aioblk_group_poll(t->g, (unsigned)(xrand(&t->rng) % 4));
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
		getrusage(RUSAGE_THREAD, &ru1);
		tp = now_s() - tp;
		if (tp > t->maxpoll) {
			t->maxpoll = tp;
			t->maxpoll_cpu = (double)(c1.tv_sec - c0.tv_sec) + (c1.tv_nsec - c0.tv_nsec) * 1e-9;
			t->maxpoll_vcsw = ru1.ru_nvcsw - ru0.ru_nvcsw;
			t->maxpoll_ivcsw = ru1.ru_nivcsw - ru0.ru_nivcsw;
		}
	}
	t->stopping = true;
	double dl = now_s() + 30;
	while ((t->out[0] || t->out[1]) && now_s() < dl) {
		aioblk_group_submit(t->g);
		if (epoll_wait(ep, &ev, 1, 3000) == 0)
			FAIL("thread %d: drain, fd silent 3 s (%u + %u outstanding)", t->id, t->out[0], t->out[1]);
		aioblk_group_poll(t->g, 0);
	}
	CHECK(!t->out[0] && !t->out[1], "thread %d: %u + %u never completed", t->id, t->out[0], t->out[1]);
	if (!t->out[0] && !t->out[1]) {
		aioblk_channel_destroy(t->ch[0]);
		aioblk_channel_destroy(t->ch[1]);
		aioblk_group_destroy(t->g);
	}
	close(ep);
	return NULL;
}

int
main(int argc, char **argv)
{
	int opt;
	while ((opt = getopt(argc, argv, "n:t:")) != -1) {
		if (opt == 'n')
			NT = (unsigned)atoi(optarg);
		else if (opt == 't')
			secs = atof(optarg);
		else
			return 2;
	}
	if (optind >= argc || NT > MAXT)
		return 2;
	int rc = aioblk_disk_open(argv[optind], NULL, &dev);
	if (rc)
		DIE("open %s: %d", argv[optind], rc);
	bs = aioblk_disk_block_size(dev);
	printf("%s: queue limit %u, %" PRIu64 " blocks of %u\n", argv[optind], aioblk_disk_queue_limit(dev),
	       aioblk_disk_num_blocks(dev), bs);
	uint64_t span = aioblk_disk_num_blocks(dev) / NT;
	if (span * bs < (16u << 20))
		DIE("device too small");
	for (unsigned i = 0; i < NT; i++) {
		struct thr *t = &T[i];
		t->id = (int)i;
		t->kind = (int)(i % 3);
		t->rng = 77 + i;
		t->base = i * span;
		t->span = span;
		snprintf(t->fpath, sizeof(t->fpath), "%s/adv_qlim.%d.%u", tmpdir(), getpid(), i);
		make_file(t->fpath, 4 << 20);
		struct aioblk_disk_opts o = { .block_size = bs };
		if ((rc = aioblk_disk_open(t->fpath, &o, &t->file)))
			DIE("open file %d", rc);
		t->nb[0] = span;
		t->nb[1] = aioblk_disk_num_blocks(t->file);
		for (int d = 0; d < 2; d++) {
			t->shadow[d] = calloc(t->nb[d], 4);
			t->busy[d] = calloc(t->nb[d], 1);
		}
	}
	pthread_t ctl;
	pthread_create(&ctl, NULL, control, NULL);
	for (unsigned i = 0; i < NT; i++)
		pthread_create(&T[i].th, NULL, run, &T[i]);
	for (unsigned i = 0; i < NT; i++)
		pthread_join(T[i].th, NULL);
	__atomic_store_n(&ctl_stop, 1, __ATOMIC_RELAXED);
	pthread_join(ctl, NULL);
	printf("control thread (sleeps 10 ms in a loop) overslept up to %.3f s\n", ctl_maxlate);
	for (unsigned i = 0; i < NT; i++) {
		struct thr *t = &T[i];
		printf("thread %u kind %d: device %" PRIu64 " (%" PRIu64 " of 8 MiB), file %" PRIu64
		       ", slowest 8 MiB write %.3f s, longest file gap %.3f s; longest submit %.3f s, sleep %.3f s, poll %.3f s\n",
		       i, t->kind, t->done[0], t->big, t->done[1], t->maxbig, t->maxgap_file, t->maxsubmit, t->maxsleep,
		       t->maxpoll);
		printf("  its longest poll: %.3f s CPU, %ld voluntary switches (slept in the kernel), %ld involuntary\n",
		       t->maxpoll_cpu, t->maxpoll_vcsw, t->maxpoll_ivcsw);
		/* the machine is shared and noisy: a shared group's file channel may not stall much
		 * longer than the plain group's in the same run (thread 2), nor 1 s beyond the control */
		double ref = NT > 2 ? T[2].maxgap_file : 0;
		if (ctl_maxlate > ref)
			ref = ctl_maxlate;
		CHECK(t->maxgap_file<
			      3 * ref + 1.0,
			      "thread %u (kind %d): file channel stalled %.3f s behind the saturated device (plain group "
			      "%.3f s, control %.3f s)",
			      i, t->kind, t->maxgap_file, NT> 2 ?
			      T[2].maxgap_file :
			      0,
		      ctl_maxlate);
		aioblk_disk_close(t->file);
		unlink(t->fpath);
		for (int d = 0; d < 2; d++) {
			free(t->shadow[d]);
			free(t->busy[d]);
		}
	}
	aioblk_disk_close(dev);
	return adv_exit("adv_qlimit_mt");
}
