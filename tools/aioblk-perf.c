/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * aioblk-perf: measure and verify block I/O through aioblk's public API.
 *
 * Every thread owns one poll group with one channel per target; each channel
 * keeps --iodepth requests in flight, and a request is issued again from its
 * own completion callback. Everything an I/O touches (its buffer, its slot
 * in the latency histogram) is allocated before the run starts, so the
 * measured loop is: poll, callbacks, resubmit.
 */
#define _GNU_SOURCE
#include <aioblk/aioblk.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PROG "aioblk-perf"
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define TEMP_FILE_SIZE (256ull << 20)
#define MAX_THREADS 1024u
#define MAX_IODEPTH 65536u
#define MAX_BS (64ull << 20)
/* Mismatches and I/O errors printed one per line before we only count them. */
#define MAX_REPORTED 100u

#define EXIT_USAGE 2
#define EXIT_INTERRUPTED 130

enum workload { WL_READ, WL_WRITE, WL_RANDREAD, WL_RANDWRITE, WL_RANDRW, WL_VERIFY };

static const char *const workload_names[] = {
	[WL_READ] = "read",           [WL_WRITE] = "write",   [WL_RANDREAD] = "randread",
	[WL_RANDWRITE] = "randwrite", [WL_RANDRW] = "randrw", [WL_VERIFY] = "verify",
};

struct opts {
	enum workload wl;
	uint64_t bs;
	unsigned iodepth;
	double runtime;
	unsigned threads;
	unsigned rwmixread;
	bool rwmix_given;
	bool wl_given;
	unsigned passes;  /* verify: exactly this many write+read passes; 0: until the run time passed */
	bool verify_only; /* verify: one read pass over data an earlier verify --passes 1 left */
	bool interrupt;
	bool json;
	bool buffered;
	bool nowait;
	bool zero_buffers; /* write zeroes instead of random data */
	uint64_t size;     /* bytes of each target to use; 0: all of it */
	uint64_t seed;
	char **paths;
	int npaths;
};

/*
 * Latency histogram, log-linear: values below 2^SUB_BITS ns have a bucket
 * each; above, every power of two is split into 2^SUB_BITS equal buckets,
 * so a bucket is at most 1/32 of its value wide (a percentile is off by at
 * most ~1.6% when the bucket middle is reported). Fixed size, no allocation.
 */
#define HIST_SUB_BITS 5
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_BUCKETS ((64 - HIST_SUB_BITS + 1) * HIST_SUB)

struct hist {
	uint64_t n;
	uint64_t sum;
	uint64_t max;
	uint64_t b[HIST_BUCKETS];
};

struct target {
	char *path;
	struct aioblk_disk *disk;
	uint32_t block_size;
	uint64_t bytes;     /* the region used, from offset 0 */
	uint64_t units;     /* bs-sized units in the region */
	uint64_t bs_blocks; /* bs in the disk's blocks */
	bool direct;
	bool blockdev;
};

struct worker;

/* One target as one worker sees it. */
struct wtarget {
	struct target *t;
	struct aioblk_channel *ch;
	uint64_t first, end; /* units this worker may use: all, or its verify slice */
	uint64_t next;       /* next unit of a sequential workload or verify pass */
};

struct io {
	struct worker *w;
	struct wtarget *wt;
	char *buf;
	uint64_t start; /* ns, when issued */
	uint64_t unit;
	bool write;
};

enum phase { PH_RUN, PH_WRITE, PH_READ };

struct run;

struct worker {
	unsigned id;
	struct run *run;
	pthread_t tid;
	bool started;
	struct aioblk_group *group;
	struct wtarget *wts;
	struct io *ios;
	unsigned nios;
	char *bufmem;

	uint64_t rng;
	uint64_t now; /* cached clock: one clock_gettime per poll that completed something */
	bool now_valid;
	bool stopping;
	unsigned outstanding;

	enum phase phase;
	bool readback; /* verify after a reopen: one read pass, no writes */
	uint64_t vseed;
	uint64_t passes;

	uint64_t ios_done[2]; /* [0] reads, [1] writes, counted while measuring */
	struct hist hist[2];
	uint64_t errors;
	uint64_t mismatches;
	struct aioblk_channel_stats stats; /* summed over the worker's channels, whole run */
	int setup_rc;
	uint64_t t_end;
	struct rusage ru0, ru1;

	_Atomic uint64_t pub_ios; /* for the progress line */
	char scratch[512] __attribute__((aligned(64)));
};

struct run {
	const struct opts *o;
	struct target *targets;
	int ntargets;
	struct worker *workers;
	/* Start gate: workers report their setup, then wait for main's go. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned ready;
	bool go;
	atomic_bool abort; /* setup failed, an I/O failed, or interrupted */
	atomic_bool verify_failed;
	atomic_uint running;
	uint64_t t_start;
};

/* Shared with the signal handler. */
static atomic_int interrupted;
static atomic_bool stop_flag;
static char temp_path[PATH_MAX];
static volatile sig_atomic_t temp_made;

static atomic_uint reported;

/* ---- small helpers ---- */

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t
worker_now(struct worker *w)
{
	if (!w->now_valid) {
		w->now = now_ns();
		w->now_valid = true;
	}
	return w->now;
}

static inline uint64_t
mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* splitmix64: one add and a mix per number, good enough for offsets. */
static inline uint64_t
rng_next(uint64_t *s)
{
	*s += 0x9e3779b97f4a7c15ull;
	return mix64(*s);
}

/* Uniform in [0, n) without a division (multiply-high). */
static inline uint64_t
rng_below(uint64_t *s, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)rng_next(s) * n) >> 64);
}

static void
cleanup_temp(void)
{
	if (temp_made) {
		temp_made = 0;
		unlink(temp_path);
	}
}

static void
on_signal(int sig)
{
	(void)sig;
	/* A second signal means "now": remove the file and go. */
	if (atomic_fetch_add(&interrupted, 1) > 0) {
		if (temp_made)
			unlink(temp_path);
		_exit(EXIT_INTERRUPTED);
	}
	atomic_store(&stop_flag, true);
}

static void
install_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	atexit(cleanup_temp);
}

/* ---- histogram ---- */

static inline unsigned
hist_bucket(uint64_t v)
{
	unsigned e, shift;

	if (v < HIST_SUB)
		return (unsigned)v;
	e = 63u - (unsigned)__builtin_clzll(v);
	shift = e - HIST_SUB_BITS;
	return ((shift + 1) << HIST_SUB_BITS) + (unsigned)((v >> shift) - HIST_SUB);
}

/* The middle of a bucket, in ns. */
static uint64_t
hist_value(unsigned b)
{
	unsigned shift;

	if (b < HIST_SUB)
		return b;
	shift = (b >> HIST_SUB_BITS) - 1;
	return (((uint64_t)HIST_SUB + (b & (HIST_SUB - 1))) << shift) + ((1ull << shift) >> 1);
}

static inline void
hist_add(struct hist *h, uint64_t v)
{
	h->n++;
	h->sum += v;
	if (unlikely(v > h->max))
		h->max = v;
	h->b[hist_bucket(v)]++;
}

static void
hist_merge(struct hist *into, const struct hist *h)
{
	unsigned i;

	into->n += h->n;
	into->sum += h->sum;
	if (h->max > into->max)
		into->max = h->max;
	for (i = 0; i < HIST_BUCKETS; i++)
		into->b[i] += h->b[i];
}

static uint64_t
hist_percentile(const struct hist *h, double p)
{
	uint64_t rank, seen = 0;
	unsigned i;

	if (!h->n)
		return 0;
	rank = (uint64_t)ceil(p / 100.0 * (double)h->n);
	if (rank < 1)
		rank = 1;
	for (i = 0; i < HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= rank) {
			uint64_t v = hist_value(i);

			return v > h->max ? h->max : v;
		}
	}
	return h->max;
}

/* ---- verify block format ---- */

/*
 * Every 512-byte sector of a verify block is self-describing: a magic, the
 * byte offset it was written to, the seed of the pass that wrote it, a
 * checksum over all of that and the payload, then 480 bytes of payload
 * derived from offset and seed. So a read can tell a lost write (old seed),
 * a misdirected one (other offset), a torn or corrupted one (checksum) and
 * a never-written one (no magic) apart.
 */
#define VSECTOR 512u
#define VWORDS (VSECTOR / 8u)
#define VMAGIC 0x61696f626c6b7631ull /* "aioblkv1" */

static uint64_t
vsum(const uint64_t *p)
{
	uint64_t h = 0xcbf29ce484222325ull ^ p[1] ^ mix64(p[2]);
	unsigned k;

	for (k = 4; k < VWORDS; k++)
		h = (h ^ p[k]) * 0x100000001b3ull;
	return mix64(h);
}

static void
vfill_sector(uint64_t *p, uint64_t off, uint64_t seed)
{
	uint64_t x = mix64(seed ^ mix64(off));
	unsigned k;

	for (k = 4; k < VWORDS; k++) {
		x += 0x9e3779b97f4a7c15ull;
		p[k] = mix64(x);
	}
	p[0] = VMAGIC;
	p[1] = off;
	p[2] = seed;
	p[3] = vsum(p);
}

static void
vfill(char *buf, uint64_t bs, uint64_t off, uint64_t seed)
{
	uint64_t i;

	for (i = 0; i < bs; i += VSECTOR)
		vfill_sector((uint64_t *)(buf + i), off + i, seed);
}

static bool
report_more(void)
{
	return atomic_fetch_add(&reported, 1) < MAX_REPORTED;
}

/* Returns the number of bad sectors in the block (0: it verified). */
static unsigned
vcheck(struct worker *w, const char *path, const char *buf, uint64_t bs, uint64_t off, uint64_t seed)
{
	uint64_t *want = (uint64_t *)w->scratch;
	char why[160] = "";
	unsigned bad = 0;
	uint64_t first_bad = 0, i;

	for (i = 0; i < bs; i += VSECTOR) {
		const uint64_t *p = (const uint64_t *)(buf + i);
		uint64_t o = off + i;
		bool ok = false;

		if (p[0] != VMAGIC) {
			if (!bad)
				snprintf(why, sizeof(why), "no verify header (never written, or overwritten)");
		} else if (p[1] != o) {
			if (!bad)
				snprintf(why, sizeof(why), "holds the data written for offset %" PRIu64, p[1]);
		} else if (p[3] != vsum(p)) {
			if (!bad)
				snprintf(why, sizeof(why), "checksum mismatch (corrupted or torn data)");
		} else if (p[2] != seed) {
			if (!bad)
				snprintf(why, sizeof(why),
					 "stale data of pass seed %" PRIu64 " (expected seed %" PRIu64 ")", p[2], seed);
		} else {
			vfill_sector(want, o, seed);
			if (memcmp(p, want, VSECTOR) == 0)
				ok = true;
			else if (!bad)
				snprintf(why, sizeof(why), "payload differs from the pattern");
		}
		if (!ok && !bad++)
			first_bad = o;
	}
	if (bad && report_more())
		fprintf(stderr,
			PROG ": verify: %s: mismatch in the block at offset %" PRIu64 " (0x%" PRIx64 "): %u of %" PRIu64
			     " sectors bad, first at offset %" PRIu64 ": %s\n",
			path, off, off, bad, bs / VSECTOR, first_bad, why);
	return bad;
}

/* ---- the I/O path ---- */

static void io_done(void *arg, int status);

static void
fail_run(struct worker *w)
{
	atomic_store(&w->run->abort, true);
	atomic_store(&stop_flag, true);
}

/* Issue @io for its next unit. Returns 0, or the submission error (then the run stops). */
static inline int
issue(struct worker *w, struct io *io, uint64_t now)
{
	struct wtarget *wt = io->wt;
	const struct opts *o = w->run->o;
	uint64_t bsb = wt->t->bs_blocks;
	uint64_t unit;
	bool wr;
	int rc;

	switch (o->wl) {
	case WL_RANDREAD:
		unit = rng_below(&w->rng, wt->end);
		wr = false;
		break;
	case WL_RANDWRITE:
		unit = rng_below(&w->rng, wt->end);
		wr = true;
		break;
	case WL_RANDRW: {
		uint64_t r = rng_next(&w->rng);

		unit = (uint64_t)(((unsigned __int128)r * wt->end) >> 64);
		/* The low 32 bits are independent enough of the high ones used above. */
		wr = (((r & 0xffffffffu) * 100u) >> 32) >= o->rwmixread;
		break;
	}
	case WL_READ:
	case WL_WRITE:
		unit = wt->next++;
		if (wt->next == wt->end)
			wt->next = wt->first;
		wr = o->wl == WL_WRITE;
		break;
	default: /* verify */
		if (wt->next == wt->end)
			return 0;
		unit = wt->next++;
		wr = w->phase == PH_WRITE;
		if (wr)
			vfill(io->buf, o->bs, unit * o->bs, w->vseed);
		else
			/* What a read that delivers nothing would leave must not pass: the buffer held this block's pattern. */
			memset(io->buf, 0, o->bs);
		break;
	}
	io->unit = unit;
	io->write = wr;
	io->start = now;
	if (wr)
		rc = aioblk_write(wt->ch, io->buf, unit * bsb, bsb, io_done, io);
	else
		rc = aioblk_read(wt->ch, io->buf, unit * bsb, bsb, io_done, io);
	if (unlikely(rc < 0)) {
		if (report_more())
			fprintf(stderr, PROG ": %s: submitting a %s at offset %" PRIu64 " failed: %s\n", wt->t->path,
				wr ? "write" : "read", unit * o->bs, strerror(-rc));
		w->errors++;
		fail_run(w);
		return rc;
	}
	w->outstanding++;
	return 0;
}

static void
io_done(void *arg, int status)
{
	struct io *io = arg;
	struct worker *w = io->w;
	uint64_t now = worker_now(w);

	w->outstanding--;
	if (unlikely(status < 0)) {
		if (report_more())
			fprintf(stderr, PROG ": %s: %s at offset %" PRIu64 " failed: %s\n", io->wt->t->path,
				io->write ? "write" : "read", io->unit * w->run->o->bs, strerror(-status));
		w->errors++;
		fail_run(w);
		return;
	}
	if (unlikely(w->phase == PH_READ)) {
		/* The pass goes on, so that every bad block of it is reported. */
		if (vcheck(w, io->wt->t->path, io->buf, w->run->o->bs, io->unit * w->run->o->bs, w->vseed))
			w->mismatches++;
	}
	if (unlikely(w->stopping))
		return;
	w->ios_done[io->write]++;
	hist_add(&w->hist[io->write], now - io->start);
	issue(w, io, now);
}

/* Start a verify pass: every unit of each slice once, --iodepth at a time per target. */
static void
start_pass(struct worker *w, enum phase phase)
{
	uint64_t now = worker_now(w);
	unsigned i;
	int t;

	w->phase = phase;
	for (t = 0; t < w->run->ntargets; t++)
		w->wts[t].next = w->wts[t].first;
	for (i = 0; i < w->nios; i++)
		if (issue(w, &w->ios[i], now) < 0)
			return;
}

/* A verify pass ended (nothing outstanding). Returns false when the worker is done. */
static bool
next_pass(struct worker *w)
{
	if (w->phase == PH_WRITE) {
		start_pass(w, PH_READ);
		return true;
	}
	const struct opts *o = w->run->o;

	w->passes++;
	if (w->mismatches) {
		/* Other threads stop after their current pass. */
		atomic_store(&w->run->verify_failed, true);
		return false;
	}
	if (w->readback || o->verify_only || atomic_load_explicit(&w->run->verify_failed, memory_order_relaxed))
		return false;
	if (o->passes ? w->passes >= o->passes : atomic_load_explicit(&stop_flag, memory_order_relaxed))
		return false;
	w->vseed = mix64(w->vseed + 1);
	start_pass(w, PH_WRITE);
	return true;
}

static int
poll_once(struct worker *w)
{
	int n;

	/*
	 * At most one completion per request per poll: every poll then ends
	 * with the io_submit of what its callbacks queued. (Before commit
	 * 497d739 a poll without a limit could reap forever on devices that
	 * complete inside io_submit; tests/perf/test_poll_bound.c.)
	 */
	if (w->run->o->interrupt)
		n = aioblk_group_wait(w->group, 100);
	else
		n = aioblk_group_poll(w->group, w->nios);
	w->now_valid = false;
	return n;
}

static void
worker_loop(struct worker *w)
{
	struct run *r = w->run;
	bool verify = r->o->wl == WL_VERIFY;
	uint64_t now;
	unsigned i;
	int n;

	getrusage(RUSAGE_THREAD, &w->ru0);
	w->now_valid = false;
	if (verify) {
		start_pass(w, w->readback || r->o->verify_only ? PH_READ : PH_WRITE);
	} else {
		now = worker_now(w);
		for (i = 0; i < w->nios; i++)
			if (issue(w, &w->ios[i], now) < 0)
				break;
	}
	for (;;) {
		n = poll_once(w);
		if (unlikely(n < 0)) {
			fprintf(stderr, PROG ": polling failed: %s\n", strerror(-n));
			w->errors++;
			fail_run(w);
			break;
		}
		atomic_store_explicit(&w->pub_ios, w->ios_done[0] + w->ios_done[1], memory_order_relaxed);
		if (verify) {
			if (atomic_load_explicit(&r->abort, memory_order_relaxed) ||
			    atomic_load_explicit(&interrupted, memory_order_relaxed))
				break;
			if (!w->outstanding && !next_pass(w))
				break;
		} else if (atomic_load_explicit(&stop_flag, memory_order_relaxed)) {
			break;
		}
	}
	w->t_end = now_ns();
	getrusage(RUSAGE_THREAD, &w->ru1);

	/* Let what is in flight come back; callbacks no longer resubmit. */
	w->stopping = true;
	while (w->outstanding) {
		n = poll_once(w);
		if (n < 0) {
			fprintf(stderr, PROG ": polling failed while draining: %s\n", strerror(-n));
			break;
		}
	}
}

static void
worker_teardown(struct worker *w)
{
	int t, rc;

	for (t = 0; t < w->run->ntargets; t++) {
		struct aioblk_channel_stats st;

		if (!w->wts[t].ch)
			continue;
		if (aioblk_channel_get_stats(w->wts[t].ch, &st) == 0) {
			w->stats.io_submit_calls += st.io_submit_calls;
			w->stats.completions += st.completions;
			w->stats.polls += st.polls;
			w->stats.busy_polls += st.busy_polls;
			w->stats.retries += st.retries;
		}
		rc = aioblk_channel_destroy(w->wts[t].ch);
		if (rc < 0)
			fprintf(stderr, PROG ": %s: destroying a channel failed: %s\n", w->wts[t].t->path,
				strerror(-rc));
		w->wts[t].ch = NULL;
	}
	if (w->group) {
		aioblk_group_destroy(w->group);
		w->group = NULL;
	}
}

static int
worker_setup(struct worker *w)
{
	const struct opts *o = w->run->o;
	int t, rc;

	rc = aioblk_group_create(o->interrupt ? AIOBLK_GROUP_EVENTFD : 0, &w->group);
	if (rc < 0) {
		fprintf(stderr, PROG ": creating a poll group failed: %s\n", strerror(-rc));
		return rc;
	}
	for (t = 0; t < w->run->ntargets; t++) {
		struct wtarget *wt = &w->wts[t];

		rc = aioblk_channel_create(w->group, wt->t->disk, o->iodepth, &wt->ch);
		if (rc < 0) {
			if (rc == -EAGAIN)
				fprintf(stderr,
					PROG ": %s: no AIO context of depth %u: the system-wide limit is "
					     "reached (raise sysctl fs.aio-max-nr, now used: /proc/sys/fs/aio-nr)\n",
					wt->t->path, o->iodepth);
			else
				fprintf(stderr, PROG ": %s: creating a channel of depth %u failed: %s\n", wt->t->path,
					o->iodepth, strerror(-rc));
			wt->ch = NULL;
			return rc;
		}
	}
	return 0;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct run *r = w->run;
	sigset_t set;

	/* Signals go to the main thread, which turns them into a stop. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	w->setup_rc = worker_setup(w);
	pthread_mutex_lock(&r->lock);
	r->ready++;
	pthread_cond_broadcast(&r->cond);
	while (!r->go)
		pthread_cond_wait(&r->cond, &r->lock);
	pthread_mutex_unlock(&r->lock);
	if (!w->setup_rc && !atomic_load(&r->abort))
		worker_loop(w);
	worker_teardown(w);
	atomic_fetch_sub(&r->running, 1);
	return NULL;
}

/* ---- targets ---- */

static int
open_target(const struct opts *o, struct target *t, bool for_write)
{
	struct aioblk_disk_opts dopts = { 0 };
	uint64_t disk_bytes;
	struct stat st;
	int rc;

	if (stat(t->path, &st) < 0) {
		fprintf(stderr, PROG ": %s: %s\n", t->path, strerror(errno));
		return -errno;
	}
	if (S_ISDIR(st.st_mode)) {
		fprintf(stderr, PROG ": %s: is a directory; give a regular file or a block device\n", t->path);
		return -EISDIR;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		fprintf(stderr, PROG ": %s: neither a regular file nor a block device\n", t->path);
		return -ENOTBLK;
	}
	t->blockdev = S_ISBLK(st.st_mode);
	if (for_write && t->blockdev) {
		/* Refuse to write to a device that is mounted or held by someone else. */
		int fd = open(t->path, O_RDONLY | O_EXCL | O_CLOEXEC);

		if (fd < 0 && errno == EBUSY) {
			fprintf(stderr, PROG ": %s: the device is in use (mounted?); refusing to write to it\n",
				t->path);
			return -EBUSY;
		}
		if (fd >= 0)
			close(fd);
	}
	dopts.flags = (for_write ? 0 : AIOBLK_DISK_READONLY) | (o->buffered ? AIOBLK_DISK_BUFFERED : 0) |
		      (o->nowait ? AIOBLK_DISK_NOWAIT : 0);
	rc = aioblk_disk_open(t->path, &dopts, &t->disk);
	if (rc < 0) {
		fprintf(stderr, PROG ": %s: cannot open: %s\n", t->path, strerror(-rc));
		return rc;
	}
	t->block_size = aioblk_disk_block_size(t->disk);
	t->direct = aioblk_disk_is_direct(t->disk);
	disk_bytes = aioblk_disk_num_blocks(t->disk) * t->block_size;
	if (o->bs % t->block_size) {
		fprintf(stderr, PROG ": %s: --bs %" PRIu64 " is not a multiple of its block size (%u bytes)\n", t->path,
			o->bs, t->block_size);
		return -EINVAL;
	}
	t->bytes = o->size && o->size < disk_bytes ? o->size : disk_bytes;
	if (o->size > disk_bytes)
		fprintf(stderr, PROG ": %s: --size is larger than the target; using its %" PRIu64 " bytes\n", t->path,
			disk_bytes);
	t->units = t->bytes / o->bs;
	t->bs_blocks = o->bs / t->block_size;
	if (!t->units) {
		fprintf(stderr, PROG ": %s: too small (%" PRIu64 " bytes) for one I/O of %" PRIu64 " bytes\n", t->path,
			t->bytes, o->bs);
		return -EINVAL;
	}
	if (o->wl == WL_VERIFY && t->units < o->threads) {
		fprintf(stderr, PROG ": %s: %" PRIu64 " blocks of %" PRIu64 " bytes cannot be shared by %u threads\n",
			t->path, t->units, o->bs, o->threads);
		return -EINVAL;
	}
	return 0;
}

static void
close_targets(struct target *targets, int n)
{
	int i, rc;

	for (i = 0; i < n; i++) {
		if (!targets[i].disk)
			continue;
		rc = aioblk_disk_close(targets[i].disk);
		if (rc < 0)
			fprintf(stderr, PROG ": %s: close failed: %s\n", targets[i].path, strerror(-rc));
		targets[i].disk = NULL;
	}
}

static int
make_temp_file(uint64_t bytes)
{
	int fd, rc;

	snprintf(temp_path, sizeof(temp_path), "./aioblk-perf.XXXXXX");
	fd = mkstemp(temp_path);
	if (fd < 0) {
		rc = -errno;
		fprintf(stderr, PROG ": cannot create a temporary file in the current directory: %s\n",
			strerror(errno));
		return rc;
	}
	temp_made = 1;
	/* Reserve the space now, so that a full file system fails here and not mid-run. */
	rc = posix_fallocate(fd, 0, (off_t)bytes);
	if (rc == EOPNOTSUPP || rc == EINVAL)
		rc = ftruncate(fd, (off_t)bytes) < 0 ? errno : 0;
	close(fd);
	if (rc) {
		fprintf(stderr, PROG ": cannot make a %" PRIu64 "-byte temporary file %s: %s\n", bytes, temp_path,
			strerror(rc));
		return -rc;
	}
	return 0;
}

struct prefill_state {
	unsigned outstanding;
	int status;
};

static void
prefill_done(void *arg, int status)
{
	struct prefill_state *s = arg;

	s->outstanding--;
	if (status < 0 && !s->status)
		s->status = status;
}

/*
 * Write the whole temporary file once: reads of never-written (unwritten
 * extent) blocks cost the device nothing and would measure only the file
 * system.
 */
static int
prefill(struct target *t)
{
	enum { CHUNK = 1 << 20, DEPTH = 4 };
	struct prefill_state s = { 0, 0 };
	struct aioblk_group *g = NULL;
	struct aioblk_channel *ch = NULL;
	uint64_t off = 0, chunk_blocks, left, n;
	uint64_t seed = 42;
	char *buf = NULL;
	size_t i;
	int rc;

	if (posix_memalign((void **)&buf, 4096, (size_t)CHUNK * DEPTH))
		return -ENOMEM;
	for (i = 0; i < (size_t)CHUNK * DEPTH / 8; i++)
		((uint64_t *)buf)[i] = rng_next(&seed);
	rc = aioblk_group_create(0, &g);
	if (rc < 0)
		goto out;
	rc = aioblk_channel_create(g, t->disk, DEPTH, &ch);
	if (rc < 0)
		goto out;
	chunk_blocks = CHUNK / t->block_size;
	left = t->bytes / t->block_size;
	i = 0;
	while ((left || s.outstanding) && !s.status && !atomic_load(&stop_flag)) {
		while (left && s.outstanding < DEPTH) {
			n = left < chunk_blocks ? left : chunk_blocks;
			rc = aioblk_write(ch, buf + (i++ % DEPTH) * CHUNK, off, n, prefill_done, &s);
			if (rc < 0)
				goto drain;
			s.outstanding++;
			off += n;
			left -= n;
		}
		rc = aioblk_group_wait(g, 100);
		if (rc < 0)
			goto drain;
	}
	rc = s.status;
drain:
	while (s.outstanding && aioblk_group_wait(g, 100) >= 0)
		;
out:
	if (ch)
		aioblk_channel_destroy(ch);
	if (g)
		aioblk_group_destroy(g);
	free(buf);
	if (rc < 0)
		fprintf(stderr, PROG ": writing the temporary file failed: %s\n", strerror(-rc));
	return rc;
}

/* ---- running ---- */

static int
alloc_workers(struct run *r)
{
	const struct opts *o = r->o;
	size_t align = 4096, stride, k;
	unsigned wi;
	int t;

	for (t = 0; t < r->ntargets; t++)
		if (aioblk_disk_buf_align(r->targets[t].disk) > align)
			align = aioblk_disk_buf_align(r->targets[t].disk);
	stride = (o->bs + align - 1) / align * align;

	r->workers = calloc(o->threads, sizeof(*r->workers));
	if (!r->workers)
		return -ENOMEM;
	for (wi = 0; wi < o->threads; wi++) {
		struct worker *w = &r->workers[wi];
		uint64_t seed;

		w->id = wi;
		w->run = r;
		w->nios = o->iodepth * (unsigned)r->ntargets;
		w->wts = calloc((size_t)r->ntargets, sizeof(*w->wts));
		w->ios = calloc(w->nios, sizeof(*w->ios));
		if (!w->wts || !w->ios)
			return -ENOMEM;
		if (posix_memalign((void **)&w->bufmem, align, stride * w->nios))
			return -ENOMEM;
		w->rng = mix64(o->seed * 0x100000001b3ull + wi + 1);
		/* Random contents, so that compressing devices (zram) store and return real data. */
		seed = w->rng;
		for (k = 0; k < stride * w->nios / 8; k++)
			((uint64_t *)w->bufmem)[k] = o->zero_buffers ? 0 : rng_next(&seed);
		/* The same pass seeds on every thread, so that --verify-only need not know the thread count. */
		w->vseed = mix64(o->seed);
		for (t = 0; t < r->ntargets; t++) {
			struct wtarget *wt = &w->wts[t];
			struct target *tg = &r->targets[t];

			wt->t = tg;
			if (o->wl == WL_VERIFY) {
				/* Each thread verifies its own slice: no two threads write one block. */
				wt->first = tg->units * wi / o->threads;
				wt->end = tg->units * (wi + 1) / o->threads;
			} else {
				wt->first = 0;
				wt->end = tg->units;
			}
			/* Sequential threads start spread over the target. */
			wt->next = o->wl == WL_VERIFY ? wt->first : tg->units * wi / o->threads;
		}
		for (k = 0; k < w->nios; k++) {
			w->ios[k].w = w;
			w->ios[k].wt = &w->wts[k / o->iodepth];
			w->ios[k].buf = w->bufmem + (size_t)k * stride;
		}
	}
	return 0;
}

static void
free_workers(struct run *r)
{
	unsigned i;

	if (!r->workers)
		return;
	for (i = 0; i < r->o->threads; i++) {
		free(r->workers[i].wts);
		free(r->workers[i].ios);
		free(r->workers[i].bufmem);
	}
	free(r->workers);
	r->workers = NULL;
}

static void
reset_counters(struct worker *w, bool readback)
{
	/* A readback checks what the last pass wrote: keep its seed. */
	if (!readback)
		w->vseed = mix64(w->run->o->seed);
	w->ios_done[0] = w->ios_done[1] = 0;
	memset(w->hist, 0, sizeof(w->hist));
	atomic_store(&w->pub_ios, 0);
	w->stopping = false;
	w->outstanding = 0;
	w->passes = 0;
	w->t_end = 0;
	w->setup_rc = 0;
	w->started = false;
	memset(&w->stats, 0, sizeof(w->stats));
}

static void
progress(const struct run *r, uint64_t now, uint64_t *last_ios, uint64_t *last_t)
{
	uint64_t ios = 0, dt = now - *last_t;
	double rate;
	unsigned i;

	for (i = 0; i < r->o->threads; i++)
		ios += atomic_load_explicit(&r->workers[i].pub_ios, memory_order_relaxed);
	rate = dt ? (double)(ios - *last_ios) * 1e9 / (double)dt : 0;
	printf("\r[%5.1fs] %10.0f IOPS %9.1f MiB/s %12" PRIu64 " I/Os  ", (double)(now - r->t_start) / 1e9, rate,
	       rate * (double)r->o->bs / 1048576.0, ios);
	fflush(stdout);
	*last_ios = ios;
	*last_t = now;
}

static void
sleep_until(uint64_t t)
{
	struct timespec ts = { (time_t)(t / 1000000000u), (long)(t % 1000000000u) };

	/* EINTR (a signal) just ends the sleep early; the caller looks at the flags. */
	clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

/* Run the workers once: until the run time passes (timed), or until every verify pass ended. */
static int
run_workers(struct run *r, bool readback, bool show_progress)
{
	const struct opts *o = r->o;
	uint64_t deadline, next_tick, now, last_ios = 0, last_t;
	unsigned i, started = 0;
	int rc = 0;

	atomic_store(&stop_flag, atomic_load(&interrupted) > 0);
	atomic_store(&r->abort, atomic_load(&interrupted) > 0);
	atomic_store(&r->running, 0);
	atomic_store(&r->verify_failed, false);
	r->ready = 0;
	r->go = false;
	for (i = 0; i < o->threads; i++) {
		struct worker *w = &r->workers[i];

		reset_counters(w, readback);
		w->readback = readback;
		atomic_fetch_add(&r->running, 1);
		rc = pthread_create(&w->tid, NULL, worker_main, w);
		if (rc) {
			atomic_fetch_sub(&r->running, 1);
			fprintf(stderr, PROG ": cannot start a thread: %s\n", strerror(rc));
			rc = -rc;
			break;
		}
		w->started = true;
		started++;
	}

	pthread_mutex_lock(&r->lock);
	while (r->ready < started)
		pthread_cond_wait(&r->cond, &r->lock);
	for (i = 0; i < started; i++)
		if (r->workers[i].setup_rc < 0 && !rc)
			rc = r->workers[i].setup_rc;
	if (rc < 0)
		atomic_store(&r->abort, true);
	r->t_start = now_ns();
	r->go = true;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);

	deadline = r->t_start + (uint64_t)(o->runtime * 1e9);
	last_t = r->t_start;
	next_tick = r->t_start + 1000000000u;
	while (atomic_load(&r->running)) {
		now = now_ns();
		if (now >= deadline && !atomic_load(&stop_flag))
			atomic_store(&stop_flag, true);
		if (now >= next_tick) {
			if (show_progress)
				progress(r, now, &last_ios, &last_t);
			next_tick += 1000000000u;
		}
		if (atomic_load(&stop_flag)) {
			/* Stopping takes at most one poll per thread (verify: the current pass). */
			sleep_until(now + 1000000u);
			continue;
		}
		sleep_until(deadline < next_tick ? deadline : next_tick);
	}
	if (show_progress)
		printf("\r%70s\r", "");
	for (i = 0; i < o->threads; i++)
		if (r->workers[i].started)
			pthread_join(r->workers[i].tid, NULL);
	return rc;
}

/* ---- the report ---- */

struct totals {
	uint64_t ios[2];
	struct hist hist[3]; /* read, write, all */
	uint64_t errors, mismatches, passes;
	struct aioblk_channel_stats stats;
	double elapsed;
	double cpu_user, cpu_sys;
};

static double
tv_s(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static void
sum_up(const struct run *r, struct totals *tot)
{
	uint64_t t_end = r->t_start;
	unsigned i;
	int d;

	memset(tot, 0, sizeof(*tot));
	for (i = 0; i < r->o->threads; i++) {
		const struct worker *w = &r->workers[i];

		for (d = 0; d < 2; d++) {
			tot->ios[d] += w->ios_done[d];
			hist_merge(&tot->hist[d], &w->hist[d]);
			hist_merge(&tot->hist[2], &w->hist[d]);
		}
		tot->errors += w->errors;
		tot->mismatches += w->mismatches;
		tot->stats.io_submit_calls += w->stats.io_submit_calls;
		tot->stats.completions += w->stats.completions;
		tot->stats.polls += w->stats.polls;
		tot->stats.busy_polls += w->stats.busy_polls;
		tot->stats.retries += w->stats.retries;
		if (w->passes > tot->passes)
			tot->passes = w->passes;
		if (w->t_end > t_end)
			t_end = w->t_end;
		if (w->t_end) {
			tot->cpu_user += tv_s(w->ru1.ru_utime) - tv_s(w->ru0.ru_utime);
			tot->cpu_sys += tv_s(w->ru1.ru_stime) - tv_s(w->ru0.ru_stime);
		}
	}
	tot->elapsed = (double)(t_end - r->t_start) / 1e9;
	if (tot->elapsed <= 0)
		tot->elapsed = 1e-9;
}

static void
print_lat_text(const char *label, const struct totals *tot, int d, uint64_t bs)
{
	const struct hist *h = &tot->hist[d];
	uint64_t ios = d < 2 ? tot->ios[d] : tot->ios[0] + tot->ios[1];
	double iops = (double)ios / tot->elapsed;

	printf("%-6s IOPS %.0f, %.1f MiB/s, %" PRIu64 " I/Os; latency mean %.2f us, p50 %.2f us, p99 %.2f us, "
	       "p99.9 %.2f us, max %.2f us\n",
	       label, iops, iops * (double)bs / 1048576.0, ios, h->n ? (double)h->sum / (double)h->n / 1e3 : 0.0,
	       (double)hist_percentile(h, 50) / 1e3, (double)hist_percentile(h, 99) / 1e3,
	       (double)hist_percentile(h, 99.9) / 1e3, (double)h->max / 1e3);
}

/* Bytes in the well-formed UTF-8 sequence at @s; 0 when it is not one (overlong, surrogate, cut short, ...). */
static int
utf8_len(const unsigned char *s)
{
	static const uint32_t least[4] = { 0, 0x80, 0x800, 0x10000 };
	int more = *s >= 0xf8 ? -1 : *s >= 0xf0 ? 3 : *s >= 0xe0 ? 2 : *s >= 0xc0 ? 1 : -1;
	uint32_t cp;

	if (*s < 0x80)
		return 1;
	if (more < 0)
		return 0;
	cp = *s & (0x3fu >> more);
	for (int i = 1; i <= more; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3fu);
	}
	if (cp < least[more] || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return more + 1;
}

/* A JSON string; a byte that is not UTF-8 (file names need not be) becomes U+FFFD. */
static void
json_string(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	int len;

	putchar('"');
	while (*s) {
		len = utf8_len(s);
		if (!len) {
			fputs("\\ufffd", stdout);
			s++;
			continue;
		}
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if (*s < 0x20)
			printf("\\u%04x", *s);
		else
			fwrite(s, 1, (size_t)len, stdout);
		s += len;
	}
	putchar('"');
}

static void
print_lat_json(const char *name, const struct totals *tot, int d, uint64_t bs)
{
	const struct hist *h = &tot->hist[d];
	uint64_t ios = d < 2 ? tot->ios[d] : tot->ios[0] + tot->ios[1];
	double iops = (double)ios / tot->elapsed;

	printf("\"%s\":{\"ios\":%" PRIu64 ",\"iops\":%.1f,\"mib_s\":%.3f,\"lat_ns\":{\"mean\":%.1f,\"p50\":%" PRIu64
	       ",\"p99\":%" PRIu64 ",\"p99_9\":%" PRIu64 ",\"max\":%" PRIu64 "}}",
	       name, ios, iops, iops * (double)bs / 1048576.0, h->n ? (double)h->sum / (double)h->n : 0.0,
	       hist_percentile(h, 50), hist_percentile(h, 99), hist_percentile(h, 99.9), h->max);
}

static void
report(const struct run *r, const struct totals *tot, const char *verify_result, bool was_interrupted)
{
	const struct opts *o = r->o;
	int t;

	if (o->json) {
		printf("{\"tool\":\"" PROG "\",\"version\":\"%s\",\"workload\":\"%s\",\"bs\":%" PRIu64
		       ",\"iodepth\":%u,\"threads\":%u,\"mode\":\"%s\",\"rwmixread\":%u,\"runtime_s\":%.3f,"
		       "\"elapsed_s\":%.6f,\"targets\":[",
		       aioblk_version(), workload_names[o->wl], o->bs, o->iodepth, o->threads,
		       o->interrupt ? "interrupt" : "poll", o->rwmixread, o->runtime, tot->elapsed);
		for (t = 0; t < r->ntargets; t++) {
			const struct target *tg = &r->targets[t];

			printf("%s{\"path\":", t ? "," : "");
			json_string(tg->path);
			printf(",\"block_size\":%u,\"bytes\":%" PRIu64 ",\"direct\":%s,\"block_device\":%s}",
			       tg->block_size, tg->bytes, tg->direct ? "true" : "false",
			       tg->blockdev ? "true" : "false");
		}
		printf("],");
		print_lat_json("read", tot, 0, o->bs);
		putchar(',');
		print_lat_json("write", tot, 1, o->bs);
		putchar(',');
		print_lat_json("total", tot, 2, o->bs);
		printf(",\"cpu\":{\"user_s\":%.3f,\"sys_s\":%.3f,\"total_s\":%.3f},\"errors\":%" PRIu64
		       ",\"mismatches\":%" PRIu64 ",\"interrupted\":%s",
		       tot->cpu_user, tot->cpu_sys, tot->cpu_user + tot->cpu_sys, tot->errors, tot->mismatches,
		       was_interrupted ? "true" : "false");
		printf(",\"channel_stats\":{\"io_submit_calls\":%" PRIu64 ",\"completions\":%" PRIu64
		       ",\"polls\":%" PRIu64 ",\"busy_polls\":%" PRIu64 ",\"retries\":%" PRIu64 "}",
		       tot->stats.io_submit_calls, tot->stats.completions, tot->stats.polls, tot->stats.busy_polls,
		       tot->stats.retries);
		if (verify_result)
			printf(",\"verify\":\"%s\",\"verify_passes\":%" PRIu64, verify_result, tot->passes);
		printf("}\n");
		return;
	}
	printf(PROG " %s: %s, bs %" PRIu64 ", iodepth %u, %u thread%s, %s%s\n", aioblk_version(), workload_names[o->wl],
	       o->bs, o->iodepth, o->threads, o->threads == 1 ? "" : "s",
	       o->interrupt ? "interrupt (eventfd)" : "busy-poll", was_interrupted ? ", interrupted" : "");
	for (t = 0; t < r->ntargets; t++) {
		const struct target *tg = &r->targets[t];

		printf("target %s: %s, %u-byte blocks, %" PRIu64 " bytes used, %s\n", tg->path,
		       tg->blockdev          ? "block device" :
		       tg->path == temp_path ? "temporary file" :
					       "file",
		       tg->block_size, tg->bytes, tg->direct ? "O_DIRECT" : "buffered (no O_DIRECT)");
	}
	if (tot->ios[0])
		print_lat_text("read:", tot, 0, o->bs);
	if (tot->ios[1])
		print_lat_text("write:", tot, 1, o->bs);
	print_lat_text("total:", tot, 2, o->bs);
	printf("time:  %.3f s; cpu: user %.3f s, sys %.3f s, total %.3f s\n", tot->elapsed, tot->cpu_user, tot->cpu_sys,
	       tot->cpu_user + tot->cpu_sys);
	if (tot->stats.io_submit_calls)
		printf("kernel: %" PRIu64 " io_submit calls (%.1f requests each), %" PRIu64 " polls, %.1f%% of them "
		       "found completions\n",
		       tot->stats.io_submit_calls, (double)tot->stats.completions / (double)tot->stats.io_submit_calls,
		       tot->stats.polls,
		       tot->stats.polls ? 100.0 * (double)tot->stats.busy_polls / (double)tot->stats.polls : 0.0);
	if (tot->errors)
		printf("errors: %" PRIu64 "\n", tot->errors);
	if (verify_result)
		printf("verify: %s (%" PRIu64 " %s passes, %" PRIu64 " mismatched blocks)\n", verify_result,
		       tot->passes, o->verify_only ? "read" : "write+read", tot->mismatches);
}

/* ---- arguments ---- */

static void
usage(FILE *f)
{
	fprintf(f,
		"Usage: " PROG " [OPTIONS] [TARGET...]\n"
		"Measure or verify block I/O through aioblk (Linux AIO, polled).\n"
		"\n"
		"TARGET is a regular file or a block device; every thread works on every target.\n"
		"With no target, a temporary 256 MiB file (or --size) is made in the current\n"
		"directory, written once, and removed at the end (also on error or Ctrl-C).\n"
		"\n"
		"  -w, --workload=W     read, write, randread, randwrite, randrw, verify (default randread)\n"
		"  -b, --bs=SIZE        I/O size in bytes, k/m/g suffixes (default 4k); a multiple of\n"
		"                       every target's block size\n"
		"  -q, --iodepth=N      requests in flight per thread per target (default 32)\n"
		"  -t, --runtime=SEC    run time in seconds (default 10); verify repeats write+read\n"
		"                       passes until it has passed\n"
		"  -j, --threads=N      threads, each with its own poll group (default 1)\n"
		"  -M, --rwmixread=PCT  percentage of reads in randrw (default 50)\n"
		"  -s, --size=SIZE      use only the first SIZE bytes of each target\n"
		"  -i, --interrupt      sleep on the group's eventfd instead of busy-polling\n"
		"      --buffered       do not use O_DIRECT\n"
		"      --nowait         try RWF_NOWAIT on reads (AIOBLK_DISK_NOWAIT)\n"
		"      --zero-buffers   write zeroes instead of random data (zram stores them\n"
		"                       without compressing)\n"
		"      --seed=N         seed for offsets, data and verify patterns (default 1)\n"
		"      --passes=N       verify: exactly N write+read passes (the run time is ignored)\n"
		"      --verify-only    verify: only read and check what an earlier\n"
		"                       'verify --passes 1' with the same --seed and --bs wrote\n"
		"      --json           print the report as one JSON object\n"
		"  -h, --help           this help\n"
		"  -V, --version        print the library version\n"
		"\n"
		"verify writes blocks whose every 512-byte sector holds its offset, the pass seed,\n"
		"a checksum and a derived payload, reads them back, then closes and reopens the\n"
		"targets and reads them again. Each mismatch is printed with its offset (the\n"
		"first %u errors; the rest are counted). Write workloads and verify overwrite\n"
		"the targets' data.\n"
		"\n"
		"Exit status: 0 success, 1 I/O error, verify mismatch or failure, 2 bad\n"
		"arguments, 130 interrupted.\n",
		MAX_REPORTED);
}

static int
parse_size(const char *s, uint64_t *out)
{
	unsigned long long v;
	unsigned shift = 0;
	char *end;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	switch (tolower((unsigned char)*end)) {
	case 'k':
		shift = 10;
		break;
	case 'm':
		shift = 20;
		break;
	case 'g':
		shift = 30;
		break;
	case 't':
		shift = 40;
		break;
	}
	if (shift) {
		end++;
		if (*end == 'i')
			end++;
		if (tolower((unsigned char)*end) == 'b')
			end++;
	} else if (tolower((unsigned char)*end) == 'b') {
		end++;
	}
	if (*end || v > (UINT64_MAX >> shift))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

static int
parse_uint(const char *s, unsigned min, unsigned max, unsigned *out)
{
	unsigned long v;
	char *end;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -1;
	*out = (unsigned)v;
	return 0;
}

static int
bad_arg(const char *opt, const char *val, const char *why)
{
	fprintf(stderr, PROG ": invalid %s '%s': %s\n", opt, val, why);
	fprintf(stderr, "Try '" PROG " --help'.\n");
	return -1;
}

enum { OPT_JSON = 256, OPT_BUFFERED, OPT_NOWAIT, OPT_SEED, OPT_PASSES, OPT_VERIFY_ONLY, OPT_ZERO_BUFFERS };

static int
parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "workload", required_argument, NULL, 'w' },
		{ "bs", required_argument, NULL, 'b' },
		{ "iodepth", required_argument, NULL, 'q' },
		{ "runtime", required_argument, NULL, 't' },
		{ "threads", required_argument, NULL, 'j' },
		{ "rwmixread", required_argument, NULL, 'M' },
		{ "size", required_argument, NULL, 's' },
		{ "interrupt", no_argument, NULL, 'i' },
		{ "buffered", no_argument, NULL, OPT_BUFFERED },
		{ "nowait", no_argument, NULL, OPT_NOWAIT },
		{ "zero-buffers", no_argument, NULL, OPT_ZERO_BUFFERS },
		{ "seed", required_argument, NULL, OPT_SEED },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "passes", required_argument, NULL, OPT_PASSES },
		{ "verify-only", no_argument, NULL, OPT_VERIFY_ONLY },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	unsigned i;
	int c;

	memset(o, 0, sizeof(*o));
	o->wl = WL_RANDREAD;
	o->bs = 4096;
	o->iodepth = 32;
	o->runtime = 10;
	o->threads = 1;
	o->rwmixread = 50;
	o->seed = 1;

	while ((c = getopt_long(argc, argv, "w:b:q:t:j:M:s:ihV", longopts, NULL)) != -1) {
		switch (c) {
		case 'w':
			for (i = 0; i < sizeof(workload_names) / sizeof(workload_names[0]); i++)
				if (strcmp(optarg, workload_names[i]) == 0)
					break;
			if (i == sizeof(workload_names) / sizeof(workload_names[0]))
				return bad_arg("--workload", optarg,
					       "expected read, write, randread, randwrite, randrw or verify");
			o->wl = (enum workload)i;
			o->wl_given = true;
			break;
		case 'b':
			if (parse_size(optarg, &o->bs) < 0 || o->bs == 0)
				return bad_arg("--bs", optarg, "expected a size such as 4096, 4k or 1m");
			if (o->bs % 512 || o->bs > MAX_BS)
				return bad_arg("--bs", optarg, "must be a multiple of 512 and at most 64m");
			break;
		case 'q':
			if (parse_uint(optarg, 1, MAX_IODEPTH, &o->iodepth) < 0)
				return bad_arg("--iodepth", optarg, "expected a number from 1 to 65536");
			break;
		case 't':
			errno = 0;
			o->runtime = strtod(optarg, &end);
			if (end != optarg && *end == 's')
				end++;
			if (errno || end == optarg || *end || !(o->runtime > 0) || o->runtime > 1e6)
				return bad_arg("--runtime", optarg, "expected seconds, more than 0");
			break;
		case 'j':
			if (parse_uint(optarg, 1, MAX_THREADS, &o->threads) < 0)
				return bad_arg("--threads", optarg, "expected a number from 1 to 1024");
			break;
		case 'M':
			if (parse_uint(optarg, 0, 100, &o->rwmixread) < 0)
				return bad_arg("--rwmixread", optarg, "expected a percentage from 0 to 100");
			o->rwmix_given = true;
			break;
		case 's':
			if (parse_size(optarg, &o->size) < 0 || o->size == 0)
				return bad_arg("--size", optarg, "expected a size such as 64m or 1g");
			break;
		case 'i':
			o->interrupt = true;
			break;
		case OPT_BUFFERED:
			o->buffered = true;
			break;
		case OPT_NOWAIT:
			o->nowait = true;
			break;
		case OPT_ZERO_BUFFERS:
			o->zero_buffers = true;
			break;
		case OPT_SEED: {
			unsigned long long v;

			errno = 0;
			v = strtoull(optarg, &end, 0);
			if (errno || end == optarg || *end)
				return bad_arg("--seed", optarg, "expected a number");
			o->seed = v;
			break;
		}
		case OPT_PASSES:
			if (parse_uint(optarg, 1, UINT_MAX, &o->passes) < 0)
				return bad_arg("--passes", optarg, "expected a number, at least 1");
			break;
		case OPT_VERIFY_ONLY:
			o->verify_only = true;
			break;
		case OPT_JSON:
			o->json = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf(PROG " %s\n", aioblk_version());
			exit(0);
		default:
			fprintf(stderr, "Try '" PROG " --help'.\n");
			return -1;
		}
	}
	if (o->rwmix_given && o->wl != WL_RANDRW) {
		fprintf(stderr, PROG ": --rwmixread applies only to --workload=randrw\n");
		return -1;
	}
	if (o->verify_only && !o->wl_given)
		o->wl = WL_VERIFY;
	if ((o->verify_only || o->passes) && o->wl != WL_VERIFY) {
		fprintf(stderr, PROG ": --passes and --verify-only apply only to --workload=verify\n");
		return -1;
	}
	if (o->zero_buffers && o->wl == WL_VERIFY) {
		fprintf(stderr, PROG ": verify writes its own patterns; it takes no --zero-buffers\n");
		return -1;
	}
	if (o->verify_only && o->passes) {
		fprintf(stderr, PROG ": --verify-only reads once; it takes no --passes\n");
		return -1;
	}
	o->paths = argv + optind;
	o->npaths = argc - optind;
	if (o->verify_only && !o->npaths) {
		fprintf(stderr, PROG ": --verify-only needs the target that an earlier verify wrote\n");
		return -1;
	}
	return 0;
}

/* ---- main ---- */

static int
open_all(struct run *r, bool for_write)
{
	int t, rc;

	for (t = 0; t < r->ntargets; t++) {
		rc = open_target(r->o, &r->targets[t], for_write);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct opts o;
	struct run r;
	struct totals tot, rb;
	const char *verify_result = NULL;
	bool for_write, show_progress;
	int t, rc, status = 0;

	if (parse_args(argc, argv, &o) < 0)
		return EXIT_USAGE;
	install_signals();
	memset(&r, 0, sizeof(r));
	r.o = &o;
	pthread_mutex_init(&r.lock, NULL);
	pthread_cond_init(&r.cond, NULL);
	for_write = o.wl != WL_READ && o.wl != WL_RANDREAD && !o.verify_only;
	show_progress = !o.json && isatty(STDOUT_FILENO);

	r.ntargets = o.npaths ? o.npaths : 1;
	r.targets = calloc((size_t)r.ntargets, sizeof(*r.targets));
	if (!r.targets) {
		fprintf(stderr, PROG ": out of memory\n");
		return 1;
	}
	if (o.npaths) {
		for (t = 0; t < o.npaths; t++)
			r.targets[t].path = o.paths[t];
	} else {
		/* Whole 4 KiB blocks, so that it opens with any block size; --size still limits the I/O. */
		rc = make_temp_file(!o.size                    ? TEMP_FILE_SIZE :
				    o.size > UINT64_MAX - 4095 ? o.size :
								 (o.size + 4095) / 4096 * 4096);
		if (rc < 0) {
			status = 1;
			goto out;
		}
		r.targets[0].path = temp_path;
	}
	/* The temporary file is ours to write even for read workloads (prefill). */
	rc = open_all(&r, for_write || !o.npaths);
	if (rc < 0) {
		status = 1;
		goto out;
	}
	if (!o.npaths && o.wl != WL_VERIFY) {
		if (show_progress)
			fprintf(stderr, PROG ": writing the temporary file %s once...\n", temp_path);
		if (prefill(&r.targets[0]) < 0) {
			status = 1;
			goto out;
		}
	}
	if (alloc_workers(&r) < 0) {
		fprintf(stderr, PROG ": out of memory for %u threads x %u requests of %" PRIu64 " bytes\n", o.threads,
			o.iodepth * (unsigned)r.ntargets, o.bs);
		status = 1;
		goto out;
	}

	rc = run_workers(&r, false, show_progress);
	if (rc < 0) {
		status = 1;
		goto out;
	}
	sum_up(&r, &tot);
	if (o.wl == WL_VERIFY && !o.verify_only && !tot.errors && !tot.mismatches && !atomic_load(&interrupted)) {
		/* Again after a reopen: the data must come from the device, not from anything we held. */
		close_targets(r.targets, r.ntargets);
		rc = open_all(&r, true);
		if (rc == 0)
			rc = run_workers(&r, true, false);
		if (rc < 0) {
			status = 1;
			goto out;
		}
		sum_up(&r, &rb);
		tot.errors += rb.errors;
		tot.mismatches += rb.mismatches;
	}
	if (o.wl == WL_VERIFY) {
		if (tot.errors || tot.mismatches)
			verify_result = "failed";
		else if (atomic_load(&interrupted))
			verify_result = "incomplete";
		else
			verify_result = "passed";
	}
	report(&r, &tot, verify_result, atomic_load(&interrupted) > 0);
	if (tot.errors || tot.mismatches)
		status = 1;
	else if (atomic_load(&interrupted))
		status = EXIT_INTERRUPTED;
out:
	free_workers(&r);
	close_targets(r.targets, r.ntargets);
	free(r.targets);
	cleanup_temp();
	if (!status && atomic_load(&interrupted))
		status = EXIT_INTERRUPTED;
	return status;
}
