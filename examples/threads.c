/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * threads: several threads on one shared disk, one group per thread.
 *
 * The thread contract in practice: the disk is shared by every thread; a
 * group and its channels belong to the thread that made them and are only
 * used there. Each worker writes random 4 KiB pages of its own part of the
 * disk and reads every page back to verify it, with a few requests in
 * flight, sleeping in aioblk_group_wait() (eventfd mode) in between. While
 * all of them are busy, the main thread issues a reset on a channel of its
 * own: it completes once every request that was in flight on the disk at
 * that moment, on any thread, has completed, and later requests do not
 * hold it up. Then every thread drains, destroys its channel and group, and
 * the disk is closed; everything must return 0.
 *
 * Usage: threads [-t THREADS] [-n OPS] [PATH]
 * Without PATH it uses a temporary file (in $TMPDIR or /var/tmp), removed
 * at the end. With PATH, the first THREADS * 1 MiB of it are overwritten.
 * The exit status is 0 when everything verified and shut down cleanly.
 */
#define _GNU_SOURCE
#include <aioblk/aioblk.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u
#define PAGES_PER_THREAD 256u /* 1 MiB of the disk each */
#define DEPTH 8u              /* requests in flight per thread */
#define MAX_THREADS 64u

struct worker;

/* One request slot: it writes a page, then reads it back, then moves on. */
struct job {
	struct worker *w;
	unsigned char *buf;
	unsigned page;
	uint32_t version;
	bool reading;
};

struct worker {
	unsigned id;
	pthread_t tid;
	struct aioblk_disk *disk;   /* shared */
	struct aioblk_group *group; /* this thread's */
	struct aioblk_channel *ch;  /* this thread's */
	uint64_t rng;
	unsigned long ops_target;
	unsigned long writes, reads, errors, mismatches;
	unsigned inflight;
	uint32_t next_version;
	struct job jobs[DEPTH];
	int rc_channel_destroy, rc_group_destroy, rc_setup;
};

static atomic_uint busy_workers; /* workers with requests in flight */
static atomic_bool reset_done;   /* set by the main thread once its reset completed */
static atomic_bool abort_all;    /* setup failed somewhere: everybody stops */

static uint64_t
next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* The content of a page: from the thread, the page and its version, so that a stale page shows. */
static void
fill_page(unsigned char *p, unsigned thread, unsigned page, uint32_t version)
{
	uint64_t x = ((uint64_t)thread << 48) ^ ((uint64_t)page << 24) ^ version;
	size_t i;

	for (i = 0; i < PAGE; i += 8) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		memcpy(p + i, &x, 8);
	}
}

static uint64_t
page_block(const struct worker *w, unsigned page)
{
	uint64_t bpp = PAGE / aioblk_disk_block_size(w->disk);

	return ((uint64_t)w->id * PAGES_PER_THREAD + page) * bpp;
}

static void job_cb(void *arg, int status);

/* Start the next write of a job: a random page of the slot's share of the thread's pages. */
static int
job_start_write(struct job *j)
{
	struct worker *w = j->w;
	uint64_t bpp = PAGE / aioblk_disk_block_size(w->disk);
	unsigned idx = (unsigned)(j - w->jobs);

	/* Slot k uses pages k, k + DEPTH, ...: two slots never touch the same page. */
	j->page = idx + DEPTH * (unsigned)(next_rand(&w->rng) % (PAGES_PER_THREAD / DEPTH));
	j->version = ++w->next_version;
	j->reading = false;
	fill_page(j->buf, w->id, j->page, j->version);
	return aioblk_write(w->ch, j->buf, page_block(w, j->page), bpp, job_cb, j);
}

static bool
worker_should_stop(const struct worker *w)
{
	/* Keep the disk busy until the main thread's reset is through, and the work is done. */
	return atomic_load(&abort_all) || (atomic_load(&reset_done) && w->writes + w->reads >= w->ops_target);
}

static void
job_cb(void *arg, int status)
{
	struct job *j = arg;
	struct worker *w = j->w;
	uint64_t bpp = PAGE / aioblk_disk_block_size(w->disk);
	unsigned char expect[PAGE];
	int rc;

	w->inflight--;
	if (status < 0) {
		w->errors++;
		fprintf(stderr, "threads: thread %u: %s of page %u failed: %s\n", w->id, j->reading ? "read" : "write",
			j->page, strerror(-status));
		return;
	}
	if (!j->reading) {
		/* Written: read it back (callbacks may submit). */
		w->writes++;
		j->reading = true;
		memset(j->buf, 0, PAGE);
		rc = aioblk_read(w->ch, j->buf, page_block(w, j->page), bpp, job_cb, j);
	} else {
		w->reads++;
		fill_page(expect, w->id, j->page, j->version);
		if (memcmp(expect, j->buf, PAGE) != 0) {
			w->mismatches++;
			fprintf(stderr, "threads: thread %u: page %u does not read back what was written\n", w->id,
				j->page);
		}
		if (worker_should_stop(w))
			return;
		rc = job_start_write(j);
	}
	if (rc < 0) {
		w->errors++;
		fprintf(stderr, "threads: thread %u: submit failed: %s\n", w->id, strerror(-rc));
		return;
	}
	w->inflight++;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	bool announced = false;
	unsigned i;
	int rc;

	/* The group and its channel are made here: they belong to this thread. */
	rc = aioblk_group_create(AIOBLK_GROUP_EVENTFD, &w->group);
	if (rc == 0)
		rc = aioblk_channel_create(w->group, w->disk, DEPTH, &w->ch);
	if (rc < 0) {
		w->rc_setup = rc;
		atomic_store(&abort_all, true);
		goto out;
	}
	for (i = 0; i < DEPTH; i++) {
		rc = job_start_write(&w->jobs[i]);
		if (rc < 0) {
			w->errors++;
			break;
		}
		w->inflight++;
	}
	while (w->inflight > 0) {
		if (!announced) {
			/* Requests are queued: from here on until the reset is done, this thread is busy. */
			atomic_fetch_add(&busy_workers, 1);
			announced = true;
		}
		/* Hands the queued requests to the kernel, then sleeps on the eventfd. */
		rc = aioblk_group_wait(w->group, 1000);
		if (rc < 0) {
			w->errors++;
			fprintf(stderr, "threads: thread %u: wait: %s\n", w->id, strerror(-rc));
			break;
		}
	}
	if (!announced)
		atomic_fetch_add(&busy_workers, 1); /* do not keep the main thread waiting */
out:
	w->rc_channel_destroy = w->ch ? aioblk_channel_destroy(w->ch) : 0;
	w->rc_group_destroy = w->group ? aioblk_group_destroy(w->group) : 0;
	return NULL;
}

static void
reset_cb(void *arg, int status)
{
	int *result = arg;

	*result = status;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	struct worker *workers = NULL;
	struct aioblk_disk *disk = NULL;
	struct aioblk_group *group = NULL;
	struct aioblk_channel *ch = NULL;
	unsigned nthreads = 4, started = 0, i, j;
	unsigned long ops = 2000;
	char path[4096];
	bool temp, ok = false;
	int opt, rc, reset_result = 1;
	double t0, t_reset;

	while ((opt = getopt(argc, argv, "t:n:h")) != -1) {
		switch (opt) {
		case 't':
			nthreads = (unsigned)strtoul(optarg, NULL, 0);
			break;
		case 'n':
			ops = strtoul(optarg, NULL, 0);
			break;
		default:
			fprintf(stderr, "usage: threads [-t THREADS] [-n OPS] [PATH]\n");
			return 2;
		}
	}
	if (nthreads < 1 || nthreads > MAX_THREADS || argc - optind > 1) {
		fprintf(stderr, "usage: threads [-t THREADS (1..%u)] [-n OPS] [PATH]\n", MAX_THREADS);
		return 2;
	}
	temp = argc == optind;
	if (temp) {
		const char *dir = getenv("TMPDIR");
		int fd;

		snprintf(path, sizeof(path), "%s/aioblk-threads-XXXXXX", dir && *dir ? dir : "/var/tmp");
		fd = mkstemp(path);
		if (fd < 0 || ftruncate(fd, (off_t)nthreads * PAGES_PER_THREAD * PAGE) < 0) {
			fprintf(stderr, "threads: cannot make a temporary file: %s\n", strerror(errno));
			if (fd >= 0) {
				close(fd);
				unlink(path);
			}
			return 1;
		}
		close(fd);
	} else {
		snprintf(path, sizeof(path), "%s", argv[optind]);
	}

	/* One disk for everybody. */
	rc = aioblk_disk_open(path, NULL, &disk);
	if (rc < 0) {
		fprintf(stderr, "threads: open %s: %s\n", path, strerror(-rc));
		goto out;
	}
	if (aioblk_disk_num_blocks(disk) * aioblk_disk_block_size(disk) <
		    (uint64_t)nthreads * PAGES_PER_THREAD * PAGE ||
	    PAGE % aioblk_disk_block_size(disk)) {
		fprintf(stderr, "threads: %s is too small or its block size is above %u\n", path, PAGE);
		goto out;
	}
	/* The main thread has a group of its own, for the reset. */
	rc = aioblk_group_create(AIOBLK_GROUP_EVENTFD, &group);
	if (rc == 0)
		rc = aioblk_channel_create(group, disk, 1, &ch);
	if (rc < 0) {
		fprintf(stderr, "threads: group/channel: %s\n", strerror(-rc));
		goto out;
	}
	printf("aioblk %s: %u threads on %s (%s), %u requests in flight each, %lu operations each\n", aioblk_version(),
	       nthreads, path, aioblk_disk_is_direct(disk) ? "O_DIRECT" : "buffered", DEPTH, ops);

	workers = calloc(nthreads, sizeof(*workers));
	if (!workers)
		goto out;
	for (i = 0; i < nthreads; i++) {
		struct worker *w = &workers[i];

		w->id = i;
		w->disk = disk;
		w->rng = 0x9e3779b97f4a7c15ULL * (i + 1);
		w->ops_target = ops;
		for (j = 0; j < DEPTH; j++) {
			w->jobs[j].w = w;
			if (posix_memalign((void **)&w->jobs[j].buf, 4096, PAGE))
				goto out;
		}
	}
	t0 = now_s();
	for (i = 0; i < nthreads; i++) {
		if (pthread_create(&workers[i].tid, NULL, worker_main, &workers[i]) != 0) {
			atomic_store(&abort_all, true);
			break;
		}
		started++;
	}

	/* Wait until every worker has requests in flight, then reset the disk under their feet. */
	while (atomic_load(&busy_workers) < started && !atomic_load(&abort_all))
		usleep(1000);
	if (started == nthreads && !atomic_load(&abort_all)) {
		t_reset = now_s();
		rc = aioblk_reset(ch, reset_cb, &reset_result);
		if (rc < 0) {
			fprintf(stderr, "threads: reset: %s\n", strerror(-rc));
		} else {
			while (reset_result == 1 && now_s() - t_reset < 60) {
				rc = aioblk_group_wait(group, 1000);
				if (rc < 0) {
					fprintf(stderr, "threads: wait for the reset: %s\n", strerror(-rc));
					break;
				}
			}
			if (reset_result == 1)
				fprintf(stderr, "threads: the reset did not complete\n");
			else
				printf("reset issued while %u threads were busy: completed with %s after %.1f ms\n",
				       nthreads, reset_result ? strerror(-reset_result) : "success",
				       (now_s() - t_reset) * 1000.0);
		}
	}
	/* Even if the reset failed: the workers must finish. */
	atomic_store(&reset_done, true);

	ok = reset_result == 0 && started == nthreads;
	for (i = 0; i < started; i++) {
		struct worker *w = &workers[i];

		pthread_join(w->tid, NULL);
		printf("thread %u: %lu writes, %lu reads verified, %lu errors, %lu mismatches; channel_destroy %d, "
		       "group_destroy %d\n",
		       i, w->writes, w->reads, w->errors, w->mismatches, w->rc_channel_destroy, w->rc_group_destroy);
		if (w->rc_setup < 0)
			fprintf(stderr, "threads: thread %u could not set up: %s\n", i, strerror(-w->rc_setup));
		if (w->rc_setup || w->errors || w->mismatches || w->rc_channel_destroy || w->rc_group_destroy ||
		    w->reads == 0)
			ok = false;
	}
	printf("%.2f s\n", now_s() - t0);

out:
	/* Clean shutdown: every object is destroyed, and says so with 0. */
	if (ch && (rc = aioblk_channel_destroy(ch)) != 0) {
		fprintf(stderr, "threads: channel_destroy: %s\n", strerror(-rc));
		ok = false;
	}
	if (group && (rc = aioblk_group_destroy(group)) != 0) {
		fprintf(stderr, "threads: group_destroy: %s\n", strerror(-rc));
		ok = false;
	}
	if (disk && (rc = aioblk_disk_close(disk)) != 0) {
		fprintf(stderr, "threads: disk_close: %s\n", strerror(-rc));
		ok = false;
	}
	if (workers)
		for (i = 0; i < nthreads; i++)
			for (j = 0; j < DEPTH; j++)
				free(workers[i].jobs[j].buf);
	free(workers);
	if (temp)
		unlink(path);
	printf("threads: %s\n", ok ? "success" : "FAILED");
	return ok ? 0 : 1;
}
