/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The batch of a kernel context: iocbs wait in it, in the order they were
 * queued, until a poll, a wait or aioblk_group_submit() hands them to the
 * kernel, all at once where their devices' queues have room. A plain
 * group's channel has a context of its own; a SHARED_CONTEXT group's batch
 * mixes the iocbs of all its channels, so that one io_submit carries them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "internal.h"

static inline struct aioblk_req *
iocb_req(const struct iocb *iocb)
{
	return iocb->data;
}

void
submit_enqueue(struct aioblk_channel *ch, struct aioblk_req *req)
{
	struct aioblk_kctx *kc = ch->kc;
	unsigned queued;

	if (unlikely(kc->batch_tail == kc->depth)) {
		/* Slide the waiting part to the front; it is never longer than the array. */
		queued = kc->batch_tail - kc->batch_head;
		memmove(kc->batch, kc->batch + kc->batch_head, queued * sizeof(*kc->batch));
		kc->batch_head = 0;
		kc->batch_tail = queued;
	}
	kc->batch[kc->batch_tail++] = &req->iocb;
	/*
	 * A full batch goes now, unless the kernel just said EAGAIN, or a poll
	 * is running: it submits when its callbacks are done, and submitting
	 * from inside its reaping could feed it forever on devices that
	 * complete within io_submit.
	 */
	if (kc->batch_tail - kc->batch_head >= AIOBLK_BATCH_MAX && !kc->submit_again && !ch->wake->polling)
		submit_batch(kc);
}

/*
 * The kernel refused the iocb at the head of the batch with @err (not
 * EAGAIN). Decide what becomes of that one request; the rest go on.
 */
static void
submit_refused(struct aioblk_kctx *kc, struct aioblk_req *req, int err)
{
	struct aioblk_channel *ch = req->ch;
	struct aioblk_disk *disk = ch->disk;

	if (req->op == OP_FLUSH && err == -EINVAL) {
		/* This kernel or file cannot do IOCB_CMD_FDSYNC: fdatasync on a worker from now on. */
		if (atomic_exchange(&disk->flush_mode, FLUSH_SYNC) != FLUSH_SYNC)
			aioblk_log(AIOBLK_LOG_WARNING, "%s: asynchronous flush refused, using fdatasync", disk->name);
		offload_queue(req);
		return;
	}
#ifdef AIOBLK_HAVE_RW_FLAGS
	if (req->op == OP_READ && (err == -EOPNOTSUPP || err == -EINVAL) && (req->iocb.aio_rw_flags & RWF_NOWAIT)) {
		/*
		 * The file lacks FMODE_NOWAIT (EOPNOTSUPP), or the kernel takes no
		 * aio_rw_flags at all (EINVAL, before 4.13): stop asking for it on
		 * this disk. A request that is refused again without it gets that error.
		 */
		unsigned i;

		atomic_store(&disk->nowait, false);
		aioblk_log(AIOBLK_LOG_WARNING, "%s: RWF_NOWAIT not supported, turned off", disk->name);
		req->iocb.aio_rw_flags &= ~RWF_NOWAIT;
		/* The reads of this disk queued behind it would only be refused the same way. */
		for (i = kc->batch_head; i < kc->batch_tail; i++)
			if (iocb_req(kc->batch[i])->ch->disk == disk)
				kc->batch[i]->aio_rw_flags &= ~RWF_NOWAIT;
		ch->stats.retries++;
		/* Back to the head of the batch, where its iocb pointer still is: the submit loop goes on with it. */
		kc->batch_head--;
		return;
	}
#endif
	aioblk_log(AIOBLK_LOG_ERR, "%s: io_submit refused a request: %s", disk->name, strerror(-err));
	chan_complete_later(ch, req, err);
}

/*
 * A plain context's batch, all of one channel: how many iocbs at its head
 * may go now. On a lost device none do; they fail without reaching the
 * kernel.
 */
static unsigned
admit_own(struct aioblk_kctx *kc)
{
	struct aioblk_channel *ch = kc->owner;
	unsigned limit = atomic_load_explicit(&ch->disk->queue_limit, memory_order_relaxed);
	unsigned n = kc->batch_tail - kc->batch_head;

	if (unlikely(atomic_load_explicit(&ch->disk->lost, memory_order_relaxed))) {
		while (kc->batch_head < kc->batch_tail)
			chan_complete_later(ch, iocb_req(kc->batch[kc->batch_head++]), -ENODEV);
		return 0;
	}
	if (unlikely(limit)) {
		bool was_holding = ch->limit_holding;

		n = limit_admit(ch, kc->batch + kc->batch_head, n, limit, kc->in_kernel == 0);
		ch->limit_holding = n < kc->batch_tail - kc->batch_head;
		if (ch->limit_holding) {
			/* A hold counts once, when it starts after progress; not once per poll it lasts. */
			ch->stats.retries += n > 0 || !was_holding;
			kc->parked = n == 0 && atomic_load_explicit(&ch->limit_blocked, memory_order_relaxed);
			if (!n)
				return 0;
		}
	}
	ch->stats.io_submit_calls++;
	return n;
}

/*
 * A shared context's batch, of many channels: move the iocbs that may go
 * now to its head, keeping their order, and return how many they are. An
 * iocb whose device has no room waits behind them, and so do the later
 * iocbs of its channel, which stay in the order they were queued; the
 * other channels' go on. Iocbs of lost devices fail here.
 */
static __attribute__((noinline)) unsigned
admit_shared(struct aioblk_kctx *kc)
{
	uint64_t round = ++kc->rounds;
	unsigned i, go = kc->batch_head, held = 0, limit;
	bool all_blocked = true;
	struct aioblk_channel *ch;
	struct aioblk_req *req;

	for (i = kc->batch_head; i < kc->batch_tail; i++) {
		req = iocb_req(kc->batch[i]);
		ch = req->ch;
		if (unlikely(atomic_load_explicit(&ch->disk->lost, memory_order_relaxed))) {
			chan_complete_later(ch, req, -ENODEV);
			continue;
		}
		limit = atomic_load_explicit(&ch->disk->queue_limit, memory_order_relaxed);
		if (unlikely(limit) &&
		    (ch->deferred_round == round || !limit_admit(ch, &kc->batch[i], 1, limit, kc->in_kernel == 0))) {
			if (ch->deferred_round != round) {
				ch->deferred_round = round;
				/* Once when a hold starts (or starts again after progress), not once per poll. */
				ch->stats.retries += !ch->limit_holding;
				ch->limit_holding = true;
				all_blocked &= atomic_load_explicit(&ch->limit_blocked, memory_order_relaxed);
			}
			kc->deferred[held++] = kc->batch[i];
			continue;
		}
		if (ch->admitted_round != round) {
			ch->admitted_round = round;
			ch->stats.io_submit_calls++;
		}
		if (ch->deferred_round != round)
			ch->limit_holding = false; /* progress: a hold after it counts again */
		kc->batch[go++] = kc->batch[i];
	}
	memcpy(kc->batch + go, kc->deferred, held * sizeof(*kc->batch));
	kc->batch_tail = go + held;
	if (go == kc->batch_head && held)
		kc->parked = all_blocked;
	return go - kc->batch_head;
}

/*
 * Hand the queued iocbs to the kernel. io_submit stops at the first iocb it
 * cannot take: it returns how many it took, or the error of that first one.
 * Only EAGAIN means "later"; any other error belongs to that one request.
 * Where a device's queue is limited (aioblk_disk_queue_limit), only what
 * fits goes; the rest waits for room like a kernel EAGAIN.
 * Returns how many iocbs the kernel took.
 */
int
submit_batch(struct aioblk_kctx *kc)
{
	unsigned n, i, unused;
	struct aioblk_req *req;
	int taken = 0;
	int rc;

	kc->submit_again = false;
	kc->parked = false;
	while (kc->batch_head < kc->batch_tail) {
		n = kc->shared ? admit_shared(kc) : admit_own(kc);
		if (!n)
			break;
		rc = aioblk_sys_io_submit(kc->ctx, n, kc->batch + kc->batch_head);
		/* What the kernel did not take gives its room back; it is admitted again next time round. */
		for (i = rc > 0 ? (unsigned)rc : 0; unlikely(i < n); i++) {
			req = iocb_req(kc->batch[kc->batch_head + i]);
			unused = req->tags;
			req->tags = 0;
			if (unused)
				limit_release(req->ch, unused);
		}
		if (likely(rc > 0)) {
			kc->batch_head += (unsigned)rc;
			kc->in_kernel += (unsigned)rc;
			taken += rc;
			continue;
		}
		if (rc == -EAGAIN || rc == 0) {
			/* Keep the rest queued; a later poll reaps first, then retries. */
			kc->submit_again = true;
			iocb_req(kc->batch[kc->batch_head])->ch->stats.retries++;
			break;
		}
		req = iocb_req(kc->batch[kc->batch_head++]);
		submit_refused(kc, req, rc);
	}
	if (kc->batch_head == kc->batch_tail)
		kc->batch_head = kc->batch_tail = 0;
	return taken;
}

/* Queued iocbs that no kernel completion will announce: nothing in the kernel, and no release to wait for. */
bool
submit_needs_kick(const struct aioblk_kctx *kc)
{
	return kc->batch_head < kc->batch_tail && kc->in_kernel == 0 && !kc->parked;
}
