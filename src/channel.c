/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Channels: one disk inside one group, with preallocated request slots,
 * the requests completed without the kernel, bounce buffers and counters.
 * In a plain group a channel has its own kernel context; in a
 * SHARED_CONTEXT group it uses the group's. The group makes and links them
 * (group.c); the batch is submit.c's, reset epochs are reset.c's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

static void
free_channel(struct aioblk_channel *ch)
{
	reset_free_records(ch);
	free(ch->bounce_free);
	free(ch->bounce_mem);
	free(ch->slots);
	free(ch);
}

static int
setup_bounce(struct aioblk_channel *ch, const struct aioblk_channel_opts *opts)
{
	size_t bs = ch->disk->block_size;
	size_t size = opts->bounce_buffer_size ? opts->bounce_buffer_size : AIOBLK_DEFAULT_BOUNCE_SIZE;
	size_t align = ch->disk->buf_align > 4096 ? ch->disk->buf_align : 4096;
	unsigned i;

	if (size > AIOBLK_MAX_BOUNCE_SIZE || opts->bounce_buffers > AIOBLK_MAX_QUEUE_DEPTH)
		return -EINVAL;
	size = (size + bs - 1) / bs * bs;
	if ((uint64_t)size * opts->bounce_buffers > (uint64_t)AIOBLK_MAX_BOUNCE_SIZE * 4)
		return -EINVAL;
	if (posix_memalign(&ch->bounce_mem, align, size * opts->bounce_buffers))
		return -ENOMEM;
	ch->bounce_free = calloc(opts->bounce_buffers, sizeof(*ch->bounce_free));
	if (!ch->bounce_free)
		return -ENOMEM;
	for (i = 0; i < opts->bounce_buffers; i++)
		ch->bounce_free[i] = (char *)ch->bounce_mem + (size_t)i * size;
	ch->bounce_nfree = opts->bounce_buffers;
	ch->bounce_size = size;
	return 0;
}

/*
 * A new channel for @disk that signals through @wake: slots, bounce
 * buffers, and its own io_context, or none when it submits into @shared.
 * -EBUSY while @wake's group is polling (from a callback).
 */
int
chan_new(struct aioblk_wake *wake, struct aioblk_kctx *shared, struct aioblk_disk *disk,
	 const struct aioblk_channel_opts *opts, struct aioblk_channel **chp)
{
	static const struct aioblk_channel_opts defaults;
	struct aioblk_channel *ch;
	unsigned qd, i;
	int rc;

	if (!opts)
		opts = &defaults;
	qd = opts->queue_depth ? opts->queue_depth : AIOBLK_DEFAULT_QUEUE_DEPTH;
	if (qd > AIOBLK_MAX_QUEUE_DEPTH)
		return -EINVAL;
	if (wake->polling)
		return -EBUSY;

	ch = calloc(1, sizeof(*ch));
	if (!ch)
		return -ENOMEM;
	ch->wake = wake;
	ch->disk = disk;
	ch->queue_depth = qd;
	ch->polls_base = wake->polls;
	ch->busy_poll = wake->polls;
	atomic_init(&ch->oldest_epoch, UINT64_MAX);
	atomic_init(&ch->reset_epoch, UINT64_MAX);
	atomic_init(&ch->reset_woken, UINT64_MAX);
	ch->slots = calloc(qd, sizeof(*ch->slots));
	if (!ch->slots) {
		rc = -ENOMEM;
		goto fail;
	}
	for (i = 0; i < qd; i++) {
		ch->slots[i].ch = ch;
		ch->slots[i].next = i + 1 < qd ? &ch->slots[i + 1] : NULL;
	}
	ch->free = &ch->slots[0];

	if (opts->bounce_buffers) {
		rc = setup_bounce(ch, opts);
		if (rc < 0)
			goto fail;
	}

	if (shared) {
		ch->kc = shared;
		ch->shared = true;
	} else {
		ch->kc = &ch->own_kctx;
		ch->own_kctx.owner = ch;
		rc = ring_open(&ch->own_kctx, qd, disk->name);
		if (rc < 0)
			goto fail;
	}
	*chp = ch;
	return 0;

fail:
	free_channel(ch);
	return rc;
}

/* Free an idle channel and its own io_context (the group unlinked it). */
void
chan_free(struct aioblk_channel *ch)
{
	if (!ch->shared)
		ring_close(&ch->own_kctx);
	free_channel(ch);
}

AIOBLK_EXPORT unsigned
aioblk_channel_inflight(const struct aioblk_channel *ch)
{
	return ch ? ch->inflight : 0;
}

AIOBLK_EXPORT int
aioblk_channel_get_stats(const struct aioblk_channel *ch, struct aioblk_channel_stats *stats)
{
	if (!ch || !stats)
		return -EINVAL;
	*stats = ch->stats;
	stats->polls = ch->wake->polls - ch->polls_base;
	return 0;
}

/*
 * Take a free slot for a new request: NULL when the channel's queue depth
 * is reached, or its context's (a shared group's depth, across channels).
 */
struct aioblk_req *
chan_get_req(struct aioblk_channel *ch, enum req_op op, aioblk_cb cb, void *cb_arg)
{
	struct aioblk_req *req = ch->free;

	if (unlikely(!req))
		return NULL;
	if (unlikely(ch->shared)) {
		if (ch->kc->used == ch->kc->depth)
			return NULL;
		ch->kc->used++;
	}
	ch->free = req->next;
	req->next = NULL;
	req->op = op;
	req->cb = cb;
	req->cb_arg = cb_arg;
	req->offset = 0;
	req->len = 0;
	req->bounce = NULL;
	req->done = 0;
	req->status = 0;
	req->nowait_retried = false;
	req->fua = false;
	req->tags = 0;
	return req;
}

/* Give back a slot that was taken but never accepted. */
void
chan_put_req(struct aioblk_channel *ch, struct aioblk_req *req)
{
	if (unlikely(ch->shared))
		ch->kc->used--;
	req->next = ch->free;
	ch->free = req;
}

/*
 * The request is now the caller's promise: it counts against the queue
 * depth and joins the outstanding list that resets wait on.
 */
void
chan_accept(struct aioblk_channel *ch, struct aioblk_req *req)
{
	ch->inflight++;
	req->epoch = atomic_load_explicit(&ch->disk->epoch, memory_order_acquire);
	req->out_next = NULL;
	req->out_prev = ch->out_tail;
	if (ch->out_tail) {
		ch->out_tail->out_next = req;
	} else {
		ch->out_head = req;
		/*
		 * Publish only over "nothing outstanding": inside the callback of
		 * the previous oldest request, its older epoch must stay visible
		 * until that callback has returned (reset_publish_oldest).
		 */
		if (atomic_load_explicit(&ch->oldest_epoch, memory_order_relaxed) == UINT64_MAX)
			atomic_store_explicit(&ch->oldest_epoch, req->epoch, memory_order_release);
	}
	ch->out_tail = req;
}

static void
unlink_outstanding(struct aioblk_channel *ch, struct aioblk_req *req)
{
	if (req->out_next)
		req->out_next->out_prev = req->out_prev;
	else
		ch->out_tail = req->out_prev;
	if (req->out_prev)
		req->out_prev->out_next = req->out_next;
	else
		ch->out_head = req->out_next;
}

static void
count_completion(struct aioblk_channel *ch, const struct aioblk_req *req, int status)
{
	struct aioblk_channel_stats *st = &ch->stats;

	if (status < 0)
		st->errors++;
	switch (req->op) {
	case OP_READ:
		st->reads++;
		if (status == 0)
			st->bytes_read += req->len;
		break;
	case OP_WRITE:
		st->writes++;
		if (status == 0)
			st->bytes_written += req->len;
		break;
	case OP_FLUSH:
		st->flushes++;
		break;
	default:
		st->other_ops++;
		break;
	}
}

/*
 * Finish a request: release its slot first, so that the callback can
 * submit again at full queue depth, then run the callback.
 */
void
chan_finish(struct aioblk_channel *ch, struct aioblk_req *req, int status)
{
	aioblk_cb cb = req->cb;
	void *cb_arg = req->cb_arg;

	bool was_oldest = req == ch->out_head;

	count_completion(ch, req, status);
	unlink_outstanding(ch, req);
	if (req->bounce)
		ch->bounce_free[ch->bounce_nfree++] = req->bounce;
	chan_put_req(ch, req);
	ch->inflight--;
	cb(cb_arg, status);
	if (was_oldest)
		reset_publish_oldest(ch);
}

void
chan_complete_later(struct aioblk_channel *ch, struct aioblk_req *req, int status)
{
	req->status = status;
	req_fifo_push(&ch->done_head, &ch->done_tail, req);
	ch->kc->lists = true;
	/* Outside a poll, an event loop sleeping on the eventfd must learn of it. */
	if (ch->wake->efd >= 0 && !ch->wake->polling)
		wake_kick(ch->wake);
}

/*
 * Run what was on the done list when the poll came here. Callbacks that
 * add to it (a write-zeroes that issues the next) wait for the next poll,
 * like requests that go to the kernel: a poll must return.
 */
unsigned
chan_run_done(struct aioblk_channel *ch, unsigned max)
{
	struct aioblk_req *last = ch->done_tail;
	struct aioblk_req *req;
	unsigned ran = 0;
	bool was_last = false;

	while (ran < max && !was_last && (req = ch->done_head)) {
		ch->done_head = req->next;
		if (!ch->done_head)
			ch->done_tail = NULL;
		was_last = req == last;
		chan_finish(ch, req, req->status);
		ran++;
	}
	return ran;
}

bool
chan_needs_kick(const struct aioblk_channel *ch)
{
	/* Work of its own lists that no kernel completion will announce (the batch: submit_needs_kick). */
	return ch->done_head || (unlikely(ch->resets_head != NULL) && reset_ready(ch));
}
