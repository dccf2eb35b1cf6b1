/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * aioblk-perf: a thread's poll group and its channels. A plain group gives
 * every channel its own kernel context; with --shared-context the group
 * makes one context (--group-depth) and its channels submit into it. Every
 * target gets a channel, also the --idle ones, which carry no I/O: they are
 * the idle disks a poll still has to visit.
 */
#define _GNU_SOURCE
#include "perf.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/*
 * Cross-check the group options against the @ntargets targets and set the
 * default group depth: the library's 256, or more when one thread keeps
 * more requests in flight (a smaller depth would refuse them with -EAGAIN).
 */
int
check_group_opts(struct opts *o, unsigned ntargets)
{
	uint64_t need;

	if (o->group_depth && !o->shared_context) {
		fprintf(stderr, PROG ": --group-depth applies only with --shared-context\n");
		return -1;
	}
	if (o->wait_in_kernel && o->interrupt) {
		fprintf(stderr, PROG ": --wait-in-kernel and --interrupt are two ways to sleep: choose one\n");
		return -1;
	}
	if (o->idle >= ntargets) {
		fprintf(stderr, PROG ": --idle %u leaves none of the %u target%s busy\n", o->idle, ntargets,
			ntargets == 1 ? "" : "s");
		return -1;
	}
	if (!o->shared_context)
		return 0;
	need = (uint64_t)o->iodepth * (ntargets - o->idle);
	if (need > MAX_GROUP_DEPTH) {
		fprintf(stderr,
			PROG ": --iodepth %u x %u busy targets is more than a shared context takes (%u requests)\n",
			o->iodepth, ntargets - o->idle, MAX_GROUP_DEPTH);
		return -1;
	}
	if (o->group_depth && o->group_depth < need) {
		fprintf(stderr,
			PROG ": --group-depth %u is less than the %u requests a thread keeps in flight "
			     "(--iodepth x busy targets)\n",
			o->group_depth, (unsigned)need);
		return -1;
	}
	if (!o->group_depth)
		o->group_depth = need > DEFAULT_GROUP_DEPTH ? (unsigned)need : DEFAULT_GROUP_DEPTH;
	return 0;
}

static void
say_no_context(unsigned depth)
{
	fprintf(stderr,
		PROG ": no AIO context of depth %u: the system-wide limit is reached "
		     "(raise sysctl fs.aio-max-nr, now used: /proc/sys/fs/aio-nr)\n",
		depth);
}

/* Make @w's group and one channel per target. Returns 0 or -errno (said on stderr). */
int
group_setup(struct worker *w)
{
	const struct opts *o = w->run->o;
	struct aioblk_group_opts gopts = {
		.flags = (o->interrupt ? AIOBLK_GROUP_EVENTFD : 0u) |
			 (o->shared_context ? AIOBLK_GROUP_SHARED_CONTEXT : 0u) |
			 (o->wait_in_kernel ? AIOBLK_GROUP_WAIT_IN_KERNEL : 0u),
		.queue_depth = o->shared_context ? o->group_depth : 0,
	};
	int t, rc;

	rc = aioblk_group_create_ext(&gopts, &w->group);
	if (rc < 0) {
		if (rc == -EAGAIN && o->shared_context)
			say_no_context(o->group_depth);
		else
			fprintf(stderr, PROG ": creating a poll group failed: %s\n", strerror(-rc));
		w->group = NULL;
		return rc;
	}
	for (t = 0; t < w->run->ntargets; t++) {
		struct wtarget *wt = &w->wts[t];

		rc = aioblk_channel_create(w->group, wt->t->disk, o->iodepth, &wt->ch);
		if (rc < 0) {
			if (rc == -EAGAIN && !o->shared_context)
				say_no_context(o->iodepth);
			else
				fprintf(stderr, PROG ": %s: creating a channel of depth %u failed: %s\n", wt->t->path,
					o->iodepth, strerror(-rc));
			wt->ch = NULL;
			return rc;
		}
	}
	return 0;
}

/* Destroy @w's channels (their counters summed into w->stats first) and its group. */
void
group_teardown(struct worker *w)
{
	int t, rc;

	for (t = 0; t < w->run->ntargets; t++) {
		struct aioblk_channel_stats st;

		if (!w->wts[t].ch)
			continue;
		if (aioblk_channel_get_stats(w->wts[t].ch, &st) == 0)
			stats_add(&w->stats, &st);
		rc = aioblk_channel_destroy(w->wts[t].ch);
		if (rc < 0)
			fprintf(stderr, PROG ": %s: destroying a channel failed: %s\n", w->wts[t].t->path,
				strerror(-rc));
		w->wts[t].ch = NULL;
	}
	if (w->group) {
		rc = aioblk_group_destroy(w->group);
		if (rc < 0)
			fprintf(stderr, PROG ": destroying the poll group failed: %s\n", strerror(-rc));
		w->group = NULL;
	}
}
