/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Poll groups: the channel list, the poll loop, the eventfd and the
 * blocking wait.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

/* How long a busy-polled wait naps while only library threads or other groups can finish its work. */
#define BUSY_NAP_NS 100000
/* Events copied out of a ring at a time (on the stack). */
#define REAP_CHUNK 64u

AIOBLK_EXPORT int
aioblk_group_create_ext(const struct aioblk_group_opts *opts, struct aioblk_group **groupp)
{
	static const struct aioblk_group_opts defaults;
	struct aioblk_group *group;
	bool shared;
	int rc;

	if (!opts)
		opts = &defaults;
	shared = opts->flags & AIOBLK_GROUP_SHARED_CONTEXT;
	if (!groupp ||
	    (opts->flags & ~(AIOBLK_GROUP_EVENTFD | AIOBLK_GROUP_SHARED_CONTEXT | AIOBLK_GROUP_WAIT_IN_KERNEL)))
		return -EINVAL;
	/* An eventfd group's wait sleeps on the eventfd; events taken by io_getevents would never signal it. */
	if ((opts->flags & AIOBLK_GROUP_EVENTFD) && (opts->flags & AIOBLK_GROUP_WAIT_IN_KERNEL))
		return -EINVAL;
	/* A depth is the shared context's: without one it would mean nothing. */
	if (opts->queue_depth > AIOBLK_MAX_QUEUE_DEPTH || (opts->queue_depth && !shared))
		return -EINVAL;
	group = calloc(1, sizeof(*group));
	if (!group)
		return -ENOMEM;
	rc = wake_init(&group->wake, opts->flags & AIOBLK_GROUP_EVENTFD);
	if (rc < 0) {
		free(group);
		return rc;
	}
	if (shared) {
		group->kctx.shared = true;
		rc = ring_open(&group->kctx, opts->queue_depth ? opts->queue_depth : AIOBLK_DEFAULT_GROUP_DEPTH,
			       "shared context");
		if (rc < 0) {
			wake_destroy(&group->wake);
			free(group);
			return rc;
		}
	}
	group->wait_in_kernel = opts->flags & AIOBLK_GROUP_WAIT_IN_KERNEL;
	*groupp = group;
	return 0;
}

AIOBLK_EXPORT int
aioblk_group_create(uint32_t flags, struct aioblk_group **groupp)
{
	struct aioblk_group_opts opts = { .flags = flags };

	return aioblk_group_create_ext(&opts, groupp);
}

AIOBLK_EXPORT int
aioblk_group_destroy(struct aioblk_group *group)
{
	if (!group)
		return -EINVAL;
	if (group->wake.polling || group->nchannels)
		return -EBUSY;
	if (group->kctx.shared)
		ring_close(&group->kctx);
	wake_destroy(&group->wake);
	free(group);
	return 0;
}

AIOBLK_EXPORT int
aioblk_group_fd(const struct aioblk_group *group)
{
	if (!group || group->wake.efd < 0)
		return -EINVAL;
	return group->wake.efd;
}

AIOBLK_EXPORT int
aioblk_channel_create_ext(struct aioblk_group *group, struct aioblk_disk *disk, const struct aioblk_channel_opts *opts,
			  struct aioblk_channel **chp)
{
	struct aioblk_channel *ch, **link, *prev = NULL;
	int rc;

	if (!group || !disk || !chp)
		return -EINVAL;
	rc = chan_new(&group->wake, group->kctx.shared ? &group->kctx : NULL, disk, opts, &ch);
	if (rc < 0)
		return rc;
	ch->group = group;
	/* Appended, so that channels are polled in the order they were made. */
	link = &group->channels;
	while (*link) {
		prev = *link;
		link = &prev->group_next;
	}
	ch->group_prev = prev;
	ch->group_next = NULL;
	*link = ch;
	group->nchannels++;
	disk_add_channel(disk, ch);
	*chp = ch;
	return 0;
}

AIOBLK_EXPORT int
aioblk_channel_create(struct aioblk_group *group, struct aioblk_disk *disk, unsigned queue_depth,
		      struct aioblk_channel **chp)
{
	struct aioblk_channel_opts opts = { .queue_depth = queue_depth };

	return aioblk_channel_create_ext(group, disk, &opts, chp);
}

AIOBLK_EXPORT int
aioblk_channel_destroy(struct aioblk_channel *ch)
{
	struct aioblk_group *group;

	if (!ch)
		return -EINVAL;
	group = ch->group;
	/* io_destroy would sleep uninterruptibly until the kernel finishes them. */
	if (group->wake.polling || ch->inflight)
		return -EBUSY;
	disk_remove_channel(ch->disk, ch);
	if (ch->group_prev)
		ch->group_prev->group_next = ch->group_next;
	else
		group->channels = ch->group_next;
	if (ch->group_next)
		ch->group_next->group_prev = ch->group_prev;
	if (group->poll_next == ch)
		group->poll_next = ch->group_next;
	group->nchannels--;
	chan_free(ch);
	return 0;
}

/*
 * Reap at most what was in the kernel when this poll came to the context:
 * requests that callbacks submit during the poll (aioblk_group_submit) may
 * complete within io_submit, and a poll must return. Each event goes to
 * the channel of its request (in a shared context, any of the group's).
 */
static unsigned
reap_kctx(struct aioblk_kctx *kc, unsigned max, uint64_t *reaped)
{
	struct io_event events[REAP_CHUNK];
	unsigned ran = 0, n, i, want, tags;
	unsigned budget = kc->in_kernel;
	struct aioblk_channel *ch, *tags_ch;
	struct aioblk_req *req;

	while (ran < max && budget) {
		want = max - ran < REAP_CHUNK ? max - ran : REAP_CHUNK;
		if (want > budget)
			want = budget;
		n = ring_reap(kc, events, want);
		if (!n)
			break;
		*reaped += n;
		budget -= n;
		kc->in_kernel -= n;
		/*
		 * Counted on their channels (a plain context's are all its
		 * owner's); what they held of limited device queues is free
		 * again, before callbacks submit more.
		 */
		tags = 0;
		tags_ch = kc->owner;
		if (likely(!kc->shared)) {
			tags_ch->stats.completions += n;
			chan_mark_busy(tags_ch);
			for (i = 0; i < n; i++)
				tags += ((struct aioblk_req *)events[i].data)->tags;
			/* Given back: a continued transfer reserves its next iocb's room anew. */
			for (i = 0; unlikely(tags) && i < n; i++)
				((struct aioblk_req *)events[i].data)->tags = 0;
		} else {
			for (i = 0; i < n; i++) {
				req = events[i].data;
				ch = req->ch;
				ch->stats.completions++;
				chan_mark_busy(ch);
				if (unlikely(req->tags)) {
					if (ch != tags_ch && tags) {
						limit_release(tags_ch, tags);
						tags = 0;
					}
					tags_ch = ch;
					tags += req->tags;
					req->tags = 0;
				}
			}
		}
		if (unlikely(tags))
			limit_release(tags_ch, tags);
		for (i = 0; i < n; i++) {
			req = events[i].data;
			ran += req_complete_event(req->ch, req, event_res(&events[i]));
		}
		if (n < want)
			break;
	}
	return ran;
}

/* Move what library threads finished (offload.c) to the done lists of their channels, where this poll runs it. */
static void
take_inbox(struct aioblk_group *group)
{
	struct aioblk_req *req = wake_take(&group->wake), *next;

	for (; req; req = next) {
		next = req->next;
		req_complete_offloaded(req->ch, req);
	}
}

static struct aioblk_channel *
next_channel(const struct aioblk_group *group, struct aioblk_channel *ch)
{
	return ch->group_next ? ch->group_next : group->channels;
}

/*
 * A plain group: run what completed on every channel: resets that earlier
 * polls made ready, requests finished without the kernel, then its ring;
 * last, the resets that this poll's completions made ready. Without
 * @lists, only the rings (the eventfd's second pass: what is left on the
 * lists is announced by a kick at the end of the poll). A poll that runs
 * out of budget leaves the next poll to start at the channel after the one
 * it stopped in, so that a busy channel cannot starve the others.
 */
static unsigned
poll_plain(struct aioblk_group *group, unsigned max, uint64_t *reaped, bool lists)
{
	struct aioblk_channel *first = group->poll_next ? group->poll_next : group->channels;
	struct aioblk_channel *ch = first;
	unsigned ran = 0, before;

	if (!ch)
		return 0;
	do {
		before = ran;
		if (unlikely(ch->resets_head != NULL) && lists)
			ran += reset_run_done(ch, max - ran);
		if (unlikely(ch->done_head != NULL) && lists && ran < max)
			ran += chan_run_done(ch, max - ran);
		if (unlikely(ran != before))
			chan_mark_busy(ch);
		if (ran < max)
			ran += reap_kctx(ch->kc, max - ran, reaped);
		ch = next_channel(group, ch);
		if (ran >= max) {
			group->poll_next = ch;
			return ran;
		}
	} while (ch != first);
	/* Last, so that completions of this poll already count for the resets. */
	for (ch = group->channels; lists && ch && ran < max; ch = ch->group_next) {
		if (unlikely(ch->resets_head != NULL)) {
			before = ran;
			ran += reset_run_done(ch, max - ran);
			if (ran != before)
				chan_mark_busy(ch);
		}
	}
	return ran;
}

/*
 * A shared group: the resets and (with @done) the done lists of every
 * channel, starting after the channel where a poll last ran out of budget.
 * Only called while the context says a list may hold something; it says so
 * again when one still does.
 */
static unsigned
run_lists(struct aioblk_group *group, unsigned max, bool done)
{
	struct aioblk_channel *first = group->poll_next ? group->poll_next : group->channels;
	struct aioblk_channel *ch = first;
	unsigned ran = 0, before;
	bool left = false;

	group->kctx.lists = false; /* callbacks that add to a list set it again */
	if (!ch)
		return 0;
	do {
		before = ran;
		if (ch->resets_head)
			ran += reset_run_done(ch, max - ran);
		if (done && ch->done_head && ran < max)
			ran += chan_run_done(ch, max - ran);
		if (ran != before)
			chan_mark_busy(ch);
		left |= ch->resets_head || ch->done_head;
		ch = next_channel(group, ch);
		if (ran >= max) {
			group->poll_next = ch;
			group->kctx.lists = true;
			return ran;
		}
	} while (ch != first);
	group->kctx.lists |= left;
	return ran;
}

/*
 * A shared group: the lists (only when one may hold something), the one
 * ring, then the resets this poll's completions made ready. An idle poll
 * reads two flags and the ring's head and tail, whatever the number of
 * channels.
 */
static unsigned
poll_shared(struct aioblk_group *group, unsigned max, uint64_t *reaped, bool lists)
{
	struct aioblk_kctx *kc = &group->kctx;
	unsigned ran = 0;

	if (unlikely(kc->lists) && lists)
		ran = run_lists(group, max, true);
	if (ran < max)
		ran += reap_kctx(kc, max - ran, reaped);
	if (unlikely(kc->lists) && lists && ran < max)
		ran += run_lists(group, max - ran, false);
	return ran;
}

static unsigned
poll_channels(struct aioblk_group *group, unsigned max, uint64_t *reaped, bool lists)
{
	return group->kctx.shared ? poll_shared(group, max, reaped, lists) : poll_plain(group, max, reaped, lists);
}

/*
 * Clear the eventfd only when a signal is owed (more events reaped and kicks
 * made than values read), then drain the rings once more: an event whose
 * signal was just consumed is already in its ring.
 */
static unsigned
clear_eventfd(struct aioblk_group *group, unsigned max)
{
	uint64_t value = 0, reaped = 0;
	unsigned ran = 0;
	int rc;

	if (group->efd_reaped + atomic_load(&group->wake.kicks) <= group->efd_consumed)
		return 0;
	rc = aioblk_sys_eventfd_read(group->wake.efd, &value);
	if (rc == -EAGAIN)
		return 0;
	if (rc < 0) {
		aioblk_log(AIOBLK_LOG_ERR, "eventfd read failed: %s", strerror(-rc));
		return 0;
	}
	group->efd_consumed += value;
	if (max)
		ran = poll_channels(group, max, &reaped, false);
	group->efd_reaped += reaped;
	return ran;
}

static bool
group_needs_kick(const struct aioblk_group *group, bool stopped_at_max)
{
	const struct aioblk_kctx *kc = &group->kctx;
	const struct aioblk_channel *ch;

	/*
	 * A library thread finished a request after this poll took the inbox,
	 * and the poll's read of the eventfd consumed its signal: say it again.
	 */
	if (atomic_load_explicit(&group->wake.inbox_ready, memory_order_acquire))
		return true;
	if (kc->shared) {
		if (submit_needs_kick(kc))
			return true;
		/* Events left behind when the poll stopped at its limit. */
		if (stopped_at_max && ring_has_events(kc))
			return true;
		for (ch = group->channels; kc->lists && ch; ch = ch->group_next)
			if (chan_needs_kick(ch) || (stopped_at_max && ch->resets_head))
				return true;
		return false;
	}
	for (ch = group->channels; ch; ch = ch->group_next) {
		if (chan_needs_kick(ch) || submit_needs_kick(ch->kc))
			return true;
		if (stopped_at_max && (ring_has_events(ch->kc) || ch->resets_head))
			return true;
	}
	return false;
}

/* Hand every queued request of the group to the kernel: one io_submit for a shared context, one per channel else. */
static int
submit_all(struct aioblk_group *group)
{
	struct aioblk_channel *ch;
	int taken = 0;

	if (group->kctx.shared)
		return group->kctx.batch_head != group->kctx.batch_tail ? submit_batch(&group->kctx) : 0;
	for (ch = group->channels; ch; ch = ch->group_next)
		if (ch->kc->batch_head != ch->kc->batch_tail)
			taken += submit_batch(ch->kc);
	return taken;
}

AIOBLK_EXPORT int
aioblk_group_poll(struct aioblk_group *group, unsigned max_completions)
{
	unsigned limit = max_completions ? max_completions : UINT_MAX;
	uint64_t reaped = 0;
	unsigned ran;

	if (!group)
		return -EINVAL;
	if (group->wake.polling)
		return -EBUSY;
	group->wake.polling = true;
	group->wake.polls++;
	take_inbox(group);
	ran = poll_channels(group, limit, &reaped, true);
	if (group->wake.efd >= 0) {
		group->efd_reaped += reaped;
		ran += clear_eventfd(group, limit - ran);
	}
	/* The end of a poll: hand each queue to the kernel. */
	submit_all(group);
	group->wake.polling = false;
	if (group->wake.efd >= 0 && group_needs_kick(group, ran >= limit))
		wake_kick(&group->wake);
	return ran > INT_MAX ? INT_MAX : (int)ran;
}

AIOBLK_EXPORT int
aioblk_group_submit(struct aioblk_group *group)
{
	int taken;

	if (!group)
		return -EINVAL;
	taken = submit_all(group);
	/* Requests the kernel refused or deferred with nothing in flight: no completion will wake the loop. */
	if (group->wake.efd >= 0 && !group->wake.polling && group_needs_kick(group, false))
		wake_kick(&group->wake);
	return taken;
}

/* What a busy-polled wait does next: spin (its own rings or queues have work), nap, or sleep. */
enum busy_next { BUSY_SLEEP, BUSY_NAP, BUSY_SPIN };

static enum busy_next
busy_next(const struct aioblk_group *group)
{
	const struct aioblk_kctx *kc = &group->kctx;
	const struct aioblk_channel *ch;
	bool outstanding = false;

	if (kc->shared) {
		if (kc->in_kernel || kc->batch_head != kc->batch_tail)
			return BUSY_SPIN;
		for (ch = group->channels; kc->lists && ch; ch = ch->group_next)
			if (ch->done_head)
				return BUSY_SPIN;
		/* Slots taken with nothing in the kernel, or resets: see below. */
		outstanding = kc->used || kc->lists;
	} else {
		for (ch = group->channels; ch; ch = ch->group_next) {
			if (ch->kc->in_kernel || ch->kc->batch_head != ch->kc->batch_tail || ch->done_head)
				return BUSY_SPIN;
			outstanding |= ch->inflight != 0;
		}
	}
	/*
	 * Outstanding, but nothing of it in the kernel: library threads are
	 * working (write-zeroes, unmap, fdatasync) or resets wait for other
	 * groups. No ring can fill, so spinning would only take the CPU from
	 * those threads: look again in a moment.
	 */
	return outstanding ? BUSY_NAP : BUSY_SLEEP;
}

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static struct timespec
ns_to_timespec(int64_t ns)
{
	return (struct timespec){ .tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000 };
}

/*
 * Sleep until something may have happened: the eventfd is readable, or
 * (busy-poll mode, where only our own requests can complete and none is
 * outstanding) the deadline. @deadline < 0: none. Returns 0 or -errno.
 */
static int
wait_idle(struct aioblk_group *group, int64_t deadline)
{
	struct timespec left, until;
	int rc;

	if (group->wake.efd >= 0) {
		if (deadline >= 0) {
			int64_t ns = deadline - now_ns();

			left = ns_to_timespec(ns > 0 ? ns : 0);
		}
		rc = aioblk_sys_poll_in(group->wake.efd, deadline >= 0 ? &left : NULL);
	} else {
		until = ns_to_timespec(deadline);
		rc = aioblk_sys_sleep_until(deadline >= 0 ? &until : NULL);
	}
	if (rc == -EINTR)
		return 0;
	if (rc < 0) {
		aioblk_log(AIOBLK_LOG_ERR, "%s failed: %s", group->wake.efd >= 0 ? "poll on the eventfd" : "sleep",
			   strerror(-rc));
		return rc;
	}
	return 0;
}

/* The end of a BUSY_NAP_NS nap from @now, or @deadline (< 0: none) when that comes first. */
static int64_t
nap_end(int64_t now, int64_t deadline)
{
	return deadline >= 0 && deadline < now + BUSY_NAP_NS ? deadline : now + BUSY_NAP_NS;
}

/*
 * WAIT_IN_KERNEL: sleep in io_getevents(2) on a context with requests in
 * the kernel, until one completes or @deadline (< 0: none). Only that
 * context's completions can end the sleep, so it lasts at most BUSY_NAP_NS
 * while anything else of the group is outstanding: other contexts'
 * requests, iocbs held back (the device's queue limit, a kernel EAGAIN),
 * library threads' work, resets. With nothing in the kernel, what is
 * outstanding can only be looked at again: a BUSY_NAP_NS nap. Returns 0
 * after the sleep, -errno of the sleep, or 1 when the group has work for a
 * poll right now (the caller polls at once).
 */
static int
wait_in_kernel(struct aioblk_group *group, int64_t deadline)
{
	struct aioblk_kctx *kc = group->kctx.shared && group->kctx.in_kernel ? &group->kctx : NULL;
	const struct aioblk_channel *ch;
	unsigned outstanding = 0;
	struct timespec left;
	int64_t now;

	if (kc && ring_events_seen(kc))
		return 1;
	for (ch = group->channels; ch; ch = ch->group_next) {
		outstanding += ch->inflight;
		if (chan_needs_kick(ch))
			return 1; /* callbacks or a reset to run */
		if (ch->shared)
			continue;
		if (ring_events_seen(ch->kc))
			return 1; /* completed during the poll's io_submit */
		if (!kc && ch->kc->in_kernel)
			kc = ch->kc;
	}
	now = now_ns();
	if (!kc)
		return wait_idle(group, nap_end(now, deadline));
	if (outstanding != kc->in_kernel)
		deadline = nap_end(now, deadline);
	left = ns_to_timespec(deadline > now ? deadline - now : 0);
	return ring_wait(kc, deadline >= 0 ? &left : NULL);
}

AIOBLK_EXPORT int
aioblk_group_wait(struct aioblk_group *group, int timeout_ms)
{
	int64_t deadline = -1;
	enum busy_next next;
	int rc;

	if (!group)
		return -EINVAL;
	if (group->wake.polling)
		return -EBUSY;
	if (timeout_ms >= 0)
		deadline = now_ns() + (int64_t)timeout_ms * 1000000;
	for (;;) {
		rc = aioblk_group_poll(group, 0);
		if (rc != 0 || timeout_ms == 0)
			return rc;
		/* Like poll(2): never back before the deadline, unless a callback ran. */
		if (deadline >= 0 && now_ns() >= deadline)
			return 0;
		/* Busy-poll mode spins only while its own rings or queues have work. */
		next = group->wake.efd < 0 ? busy_next(group) : BUSY_SLEEP;
		if (next == BUSY_SPIN) {
			if (group->wait_in_kernel) {
				rc = wait_in_kernel(group, deadline);
				if (rc < 0)
					return rc;
			}
			continue;
		}
		rc = wait_idle(group, next == BUSY_NAP ? nap_end(now_ns(), deadline) : deadline);
		if (rc < 0)
			return rc;
	}
}
