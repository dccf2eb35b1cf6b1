/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * aioblk-perf: a run. Parse the options, open (or make) the targets, start
 * one worker thread per --threads behind a start gate, time the run and
 * print progress, stop the workers, and for verify read everything again
 * after a reopen; then report. Signals turn into a stop; a second one exits.
 */
#define _GNU_SOURCE
#include "perf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Shared with the signal handler. */
atomic_int interrupted;
atomic_bool stop_flag;

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

		w->id = wi;
		w->run = r;
		/* The busy targets come first; the --idle last ones get a channel and no request. */
		w->nios = o->iodepth * ((unsigned)r->ntargets - o->idle);
		w->wts = calloc((size_t)r->ntargets, sizeof(*w->wts));
		w->ios = calloc(w->nios, sizeof(*w->ios));
		if (!w->wts || !w->ios)
			return -ENOMEM;
		if (posix_memalign((void **)&w->bufmem, align, stride * w->nios))
			return -ENOMEM;
		w->rng = mix64(o->seed * 0x100000001b3ull + wi + 1);
		/* Random contents, so that compressing devices (zram) store and return real data. */
		if (o->zero_buffers)
			memset(w->bufmem, 0, stride * w->nios);
		else
			fill_random(w->bufmem, stride * w->nios, w->rng);
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
			o.iodepth * ((unsigned)r.ntargets - o.idle), o.bs);
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
