/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * aioblk-perf: measure and verify block I/O through aioblk's public API.
 *
 * Every thread owns one poll group (plain, or one shared kernel context with
 * --shared-context) with one channel per target; each busy channel keeps
 * --iodepth requests in flight (the --idle last ones none), and a request is
 * issued again from its own completion callback. Everything an I/O touches
 * (its buffer, its slot in the latency histogram) is allocated before the
 * run starts, so the measured loop is: poll, callbacks, resubmit.
 *
 * The files, one job each: args.c (the options table), target.c (opening
 * the targets, the temporary file), group.c (a thread's poll group and
 * channels), worker.c (a thread's I/O loop),
 * verify.c (the verify block format), hist.c (latency histograms),
 * report.c (text and JSON), main.c (a run: threads, timing, signals).
 * This header holds what more than one of them uses.
 */
#ifndef AIOBLK_PERF_H
#define AIOBLK_PERF_H

#include <aioblk/aioblk.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <time.h>

#define PROG "aioblk-perf"
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

extern const char *const workload_names[WL_VERIFY + 1];

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
	bool wait_in_kernel; /* AIOBLK_GROUP_WAIT_IN_KERNEL: waits sleep in io_getevents */
	bool json;
	bool buffered;
	bool nowait;
	bool no_queue_limit;
	bool zero_buffers;    /* write zeroes instead of random data */
	bool shared_context;  /* AIOBLK_GROUP_SHARED_CONTEXT */
	unsigned group_depth; /* the shared context's depth (parse_args sets the default) */
	unsigned idle;        /* the last this many targets get a channel each but no I/O */
	uint64_t size;        /* bytes of each target to use; 0: all of it */
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
	unsigned queue_limit; /* aioblk_disk_queue_limit(): 0 none */
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

/* What the report prints: the workers of one run, summed. */
struct totals {
	uint64_t ios[3];     /* read, write, all */
	struct hist hist[3]; /* read, write, all */
	uint64_t errors, mismatches, passes;
	struct aioblk_channel_stats stats;
	double elapsed;
	double cpu_user, cpu_sys;
};

/* main.c: shared with the signal handler. */
extern atomic_int interrupted;
extern atomic_bool stop_flag;

/* The one clock of the tool, in ns. */
static inline uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
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

/* Fill @bytes (a multiple of 8) at @buf with the random numbers of @seed. */
static inline void
fill_random(void *buf, size_t bytes, uint64_t seed)
{
	size_t i;

	for (i = 0; i < bytes / 8; i++)
		((uint64_t *)buf)[i] = rng_next(&seed);
}

/* Add the counters the report shows (not every one the library keeps). */
static inline void
stats_add(struct aioblk_channel_stats *into, const struct aioblk_channel_stats *st)
{
	into->io_submit_calls += st->io_submit_calls;
	into->completions += st->completions;
	into->polls += st->polls;
	into->busy_polls += st->busy_polls;
	into->retries += st->retries;
}

/* args.c */
int parse_args(int argc, char **argv, struct opts *o);

/* group.c */
#define DEFAULT_GROUP_DEPTH 256u /* the library's own default */
#define MAX_GROUP_DEPTH 65536u
int check_group_opts(struct opts *o, unsigned ntargets);
int group_setup(struct worker *w);
void group_teardown(struct worker *w);

/* hist.c; adding a sample is inline, it is on every I/O's path. */
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

static inline void
hist_add(struct hist *h, uint64_t v)
{
	h->n++;
	h->sum += v;
	if (unlikely(v > h->max))
		h->max = v;
	h->b[hist_bucket(v)]++;
}

void hist_merge(struct hist *into, const struct hist *h);
uint64_t hist_percentile(const struct hist *h, double p);

/* verify.c */
bool report_more(void);
void vfill(char *buf, uint64_t bs, uint64_t off, uint64_t seed);
unsigned vcheck(uint64_t *scratch, const char *path, const char *buf, uint64_t bs, uint64_t off, uint64_t seed);

/* target.c */
extern char temp_path[PATH_MAX];
extern volatile sig_atomic_t temp_made;
int open_all(struct run *r, bool for_write);
void close_targets(struct target *targets, int n);
int make_temp_file(uint64_t bytes);
void cleanup_temp(void);
int prefill(struct target *t);

/* worker.c */
void *worker_main(void *arg);

/* report.c */
void sum_up(const struct run *r, struct totals *tot);
void report(const struct run *r, const struct totals *tot, const char *verify_result, bool was_interrupted);

#endif
