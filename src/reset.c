/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Reset epochs. Every request is tagged with the disk's epoch when it is
 * accepted; a reset bumps the epoch and is done when no channel of the disk,
 * in any group and thread, still has an outstanding request of its epoch or
 * an older one. Each channel keeps its outstanding requests in acceptance
 * order and publishes the epoch of its oldest one, so a reset reads one
 * number per channel; a channel whose oldest request finished wakes the
 * groups of the resets that can now finish, once each.
 *
 * Resets take no request slot (a full queue is when a reset is wanted
 * most); their records are kept on the channel for reuse.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>

#include "internal.h"

/* Whether a reset that waits out @epoch is done: no channel of the disk has a request that old. */
static bool
reset_done(struct aioblk_disk *disk, uint64_t epoch)
{
	struct aioblk_channel *ch;
	bool done = true;

	pthread_mutex_lock(&disk->lock);
	for (ch = disk->channels; ch; ch = ch->disk_next) {
		/* seq_cst: pairs with reset_publish_oldest (see there). */
		if (atomic_load(&ch->oldest_epoch) <= epoch) {
			done = false;
			break;
		}
	}
	pthread_mutex_unlock(&disk->lock);
	return done;
}

/*
 * A channel's oldest outstanding request finished while resets wait: wake
 * the eventfd groups of the channels whose oldest reset can now finish,
 * since no completion of theirs will. Each reset is woken for once; a reset
 * that is still held up by another channel is not woken at all. @except is
 * the caller's own group, which checks its resets in its own poll.
 */
static void
wake_resetters(struct aioblk_disk *disk, const struct aioblk_wake *except)
{
	struct aioblk_channel *ch;
	uint64_t oldest = UINT64_MAX, epoch;
	int rc, err = 0;

	pthread_mutex_lock(&disk->lock);
	for (ch = disk->channels; ch; ch = ch->disk_next) {
		epoch = atomic_load(&ch->oldest_epoch);
		if (epoch < oldest)
			oldest = epoch;
	}
	for (ch = disk->channels; ch; ch = ch->disk_next) {
		if (ch->wake == except || ch->wake->efd < 0)
			continue;
		/* A reset waiting out @epoch is done once every channel's oldest request is newer. */
		epoch = atomic_load(&ch->reset_epoch);
		if (epoch < oldest && atomic_exchange(&ch->reset_woken, epoch) != epoch) {
			rc = wake_signal(ch->wake);
			if (rc < 0)
				err = rc;
		}
	}
	pthread_mutex_unlock(&disk->lock);
	/* Logged outside the lock: the user's log function should not hold up other threads' resets. */
	if (err < 0)
		wake_log_error(err);
}

/*
 * Tell resets on other threads the epoch of the oldest request still
 * outstanding on @ch. Called after a callback ran, so that a reset's
 * callback can rely on the callbacks of the requests it waited for having
 * run.
 */
void
reset_publish_oldest(struct aioblk_channel *ch)
{
	uint64_t oldest = ch->out_head ? ch->out_head->epoch : UINT64_MAX;
	uint64_t prev;

	if (atomic_load_explicit(&ch->oldest_epoch, memory_order_relaxed) == oldest)
		return;
	/*
	 * Sequentially consistent on both sides (here: store, then load the
	 * waiting count; a reset: count up, then load the epochs), so that
	 * either the reset sees the new epoch or we see the reset and wake it.
	 * A channel whose oldest request came after every reset (its epoch is
	 * the current one) held none of them up: its progress wakes nobody.
	 */
	prev = atomic_exchange(&ch->oldest_epoch, oldest);
	if (unlikely(atomic_load(&ch->disk->resets_waiting)) && prev < atomic_load(&ch->disk->epoch))
		wake_resetters(ch->disk, ch->wake);
}

/* Issue a reset. It counts as in flight until its callback has run. */
int
reset_add(struct aioblk_channel *ch, aioblk_cb cb, void *cb_arg)
{
	struct aioblk_disk *disk = ch->disk;
	struct aioblk_reset *r = ch->resets_free;

	if (r)
		ch->resets_free = r->next;
	else if (!(r = malloc(sizeof(*r))))
		return -ENOMEM;
	r->cb = cb;
	r->cb_arg = cb_arg;
	r->next = NULL;
	ch->inflight++;
	/* Wait out every request accepted in this epoch or before; later ones carry a newer epoch. */
	r->epoch = atomic_fetch_add(&disk->epoch, 1);
	/* Published before the waiting count (both seq_cst): a waker that sees the count sees this. */
	if (!ch->resets_head)
		atomic_store(&ch->reset_epoch, r->epoch);
	atomic_fetch_add(&disk->resets_waiting, 1);
	if (ch->resets_tail)
		ch->resets_tail->next = r;
	else
		ch->resets_head = r;
	ch->resets_tail = r;
	ch->kc->lists = true;
	if (ch->wake->efd >= 0 && !ch->wake->polling)
		wake_kick(ch->wake);
	return 0;
}

/*
 * Complete the resets that are done, oldest first. A later reset waits for
 * a superset of what an earlier one waits for, so the first one not done
 * ends the walk, and resets complete in the order they were issued. Resets
 * that callbacks issue here wait for the next poll.
 */
unsigned
reset_run_done(struct aioblk_channel *ch, unsigned max)
{
	struct aioblk_reset *last = ch->resets_tail;
	struct aioblk_reset *r;
	unsigned ran = 0;
	bool was_last = false;
	aioblk_cb cb;
	void *cb_arg;

	while (ran < max && !was_last && (r = ch->resets_head)) {
		if (!reset_done(ch->disk, r->epoch))
			break;
		ch->resets_head = r->next;
		if (!ch->resets_head)
			ch->resets_tail = NULL;
		was_last = r == last;
		atomic_store(&ch->reset_epoch, ch->resets_head ? ch->resets_head->epoch : UINT64_MAX);
		atomic_fetch_sub(&ch->disk->resets_waiting, 1);
		cb = r->cb;
		cb_arg = r->cb_arg;
		r->next = ch->resets_free;
		ch->resets_free = r;
		ch->stats.other_ops++;
		ch->inflight--;
		cb(cb_arg, 0);
		ran++;
	}
	return ran;
}

/* A reset issued during a poll, after its channel was checked, may be finished already. */
bool
reset_ready(const struct aioblk_channel *ch)
{
	/* The oldest is done first (see reset_run_done). */
	return reset_done(ch->disk, ch->resets_head->epoch);
}

void
reset_free_records(struct aioblk_channel *ch)
{
	struct aioblk_reset *r;

	while ((r = ch->resets_free)) {
		ch->resets_free = r->next;
		free(r);
	}
}
