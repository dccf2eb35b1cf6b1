/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * aioblk-perf: one thread's I/O loop. The thread makes its poll group and
 * channels (group.c), waits at the start gate, keeps every request in flight
 * (a completion issues its request again) until the run stops, then drains.
 */
#define _GNU_SOURCE
#include "perf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static inline uint64_t
worker_now(struct worker *w)
{
	if (!w->now_valid) {
		w->now = now_ns();
		w->now_valid = true;
	}
	return w->now;
}

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
		if (vcheck((uint64_t *)w->scratch, io->wt->t->path, io->buf, w->run->o->bs, io->unit * w->run->o->bs,
			   w->vseed))
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
	if (w->run->o->interrupt || w->run->o->wait_in_kernel)
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

/* A worker thread: set up, report to the start gate, run, tear down. */
void *
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

	w->setup_rc = group_setup(w);
	pthread_mutex_lock(&r->lock);
	r->ready++;
	pthread_cond_broadcast(&r->cond);
	while (!r->go)
		pthread_cond_wait(&r->cond, &r->lock);
	pthread_mutex_unlock(&r->lock);
	if (!w->setup_rc && !atomic_load(&r->abort))
		worker_loop(w);
	group_teardown(w);
	atomic_fetch_sub(&r->running, 1);
	return NULL;
}
