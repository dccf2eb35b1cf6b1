/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Channels: one kernel io_context per disk per group, preallocated request
 * slots, the submission batch, and the requests completed without the
 * kernel. The group makes and links them (group.c); reset epochs are
 * reset.c's.
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
	free(ch->batch);
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

/* The ring is read in user space only when its header is one we know. */
static struct aio_ring *
usable_ring(struct aioblk_channel *ch)
{
	struct aio_ring *ring = (struct aio_ring *)ch->ctx;

	if (ring->magic != AIO_RING_MAGIC || ring->incompat_features != 0 ||
	    ring->header_length != sizeof(struct aio_ring) || ring->nr == 0) {
		aioblk_log(AIOBLK_LOG_WARNING, "%s: unknown AIO ring layout, reaping with io_getevents",
			   ch->disk->name);
		return NULL;
	}
	return ring;
}

/*
 * A new channel for @disk that signals through @wake: slots, bounce
 * buffers, the io_context. -EBUSY while @wake's group is polling (from a
 * callback).
 */
int
chan_new(struct aioblk_wake *wake, struct aioblk_disk *disk, const struct aioblk_channel_opts *opts,
	 struct aioblk_channel **chp)
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
	atomic_init(&ch->oldest_epoch, UINT64_MAX);
	atomic_init(&ch->reset_epoch, UINT64_MAX);
	atomic_init(&ch->reset_woken, UINT64_MAX);
	ch->slots = calloc(qd, sizeof(*ch->slots));
	ch->batch = calloc(qd, sizeof(*ch->batch));
	if (!ch->slots || !ch->batch) {
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

	ch->ctx = 0; /* io_setup requires a zeroed context */
	rc = aioblk_sys_io_setup(qd, &ch->ctx);
	if (rc < 0) {
		if (rc == -EAGAIN)
			aioblk_log(AIOBLK_LOG_ERR,
				   "%s: io_setup(%u): the system-wide AIO limit is reached; "
				   "raise sysctl fs.aio-max-nr (see /proc/sys/fs/aio-nr)",
				   disk->name, qd);
		else
			aioblk_log(AIOBLK_LOG_ERR, "%s: io_setup(%u) failed: %s", disk->name, qd, strerror(-rc));
		ch->ctx = 0;
		goto fail;
	}
	ch->ring = usable_ring(ch);
	*chp = ch;
	return 0;

fail:
	free_channel(ch);
	return rc;
}

/* Destroy an idle channel's io_context and free it (the group unlinked it). */
void
chan_free(struct aioblk_channel *ch)
{
	int rc = aioblk_sys_io_destroy(ch->ctx);

	if (rc < 0)
		aioblk_log(AIOBLK_LOG_WARNING, "%s: io_destroy failed: %s", ch->disk->name, strerror(-rc));
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
	return 0;
}

/* Take a free slot for a new request (NULL when the queue depth is reached). */
struct aioblk_req *
chan_get_req(struct aioblk_channel *ch, enum req_op op, aioblk_cb cb, void *cb_arg)
{
	struct aioblk_req *req = ch->free;

	if (unlikely(!req))
		return NULL;
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
	req->next = ch->free;
	ch->free = req;
	ch->inflight--;
	cb(cb_arg, status);
	if (was_oldest)
		reset_publish_oldest(ch);
}

void
chan_enqueue(struct aioblk_channel *ch, struct aioblk_req *req)
{
	unsigned queued;

	if (unlikely(ch->batch_tail == ch->queue_depth)) {
		/* Slide the waiting part to the front; it is never longer than the array. */
		queued = ch->batch_tail - ch->batch_head;
		memmove(ch->batch, ch->batch + ch->batch_head, queued * sizeof(*ch->batch));
		ch->batch_head = 0;
		ch->batch_tail = queued;
	}
	ch->batch[ch->batch_tail++] = &req->iocb;
	/*
	 * A full batch goes now, unless the kernel just said EAGAIN, or a poll
	 * is running: it submits when its callbacks are done, and submitting
	 * from inside its reaping could feed it forever on devices that
	 * complete within io_submit.
	 */
	if (ch->batch_tail - ch->batch_head >= AIOBLK_BATCH_MAX && !ch->submit_again && !ch->wake->polling)
		chan_submit(ch);
}

void
chan_complete_later(struct aioblk_channel *ch, struct aioblk_req *req, int status)
{
	req->status = status;
	req_fifo_push(&ch->done_head, &ch->done_tail, req);
	/* Outside a poll, an event loop sleeping on the eventfd must learn of it. */
	if (ch->wake->efd >= 0 && !ch->wake->polling)
		wake_kick(ch->wake);
}

/*
 * The kernel refused the iocb at the head of the batch with @err (not
 * EAGAIN). Decide what becomes of that one request; the rest go on.
 */
static void
submit_refused(struct aioblk_channel *ch, struct aioblk_req *req, int err)
{
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
		/* The reads queued behind it would only be refused the same way. */
		for (i = ch->batch_head; i < ch->batch_tail; i++)
			ch->batch[i]->aio_rw_flags &= ~RWF_NOWAIT;
		ch->stats.retries++;
		/* Back to the head of the batch, where its iocb pointer still is: the submit loop goes on with it. */
		ch->batch_head--;
		return;
	}
#endif
	aioblk_log(AIOBLK_LOG_ERR, "%s: io_submit refused a request: %s", disk->name, strerror(-err));
	chan_complete_later(ch, req, err);
}

/* Device requests an iocb becomes: the kernel splits a transfer at the queue's max_sectors_kb. */
static unsigned
iocb_tags(const struct aioblk_disk *disk, const struct aioblk_req *req)
{
	uint32_t max = atomic_load_explicit(&disk->max_request, memory_order_relaxed);
	uint64_t n;

	if (!max || req->op == OP_FLUSH || req->len <= req->done)
		return 1;
	n = (req->len - req->done + max - 1) / max;
	return n > UINT16_MAX ? UINT16_MAX : (unsigned)n;
}

/*
 * Room in the device's queue for the first iocbs of the batch, at most @n:
 * reserve their device requests and return how many fit (0: none). A
 * request larger than the whole queue goes alone into an idle one.
 */
static unsigned
limit_reserve(struct aioblk_channel *ch, unsigned n, unsigned limit)
{
	struct aioblk_disk *disk = ch->disk;
	bool shared = disk->queue_shared;
	unsigned used, room, k, tags, t;
	struct aioblk_req *req;

	for (;;) {
		used = shared ? atomic_load(&disk->in_device) : ch->tags_held;
		room = used < limit ? limit - used : 0;
		for (k = 0, tags = 0; k < n; k++) {
			req = ch->batch[ch->batch_head + k]->data;
			t = iocb_tags(disk, req);
			req->tags = (uint16_t)t;
			if (tags + t > room) {
				if (k == 0 && used == 0)
					tags = t, k = 1;
				break;
			}
			tags += t;
		}
		if (k == 0)
			return 0;
		if (!shared) {
			ch->tags_held += tags;
			return k;
		}
		/* seq_cst: pairs with the waiters' count in chan_release_tags. */
		if (atomic_compare_exchange_weak(&disk->in_device, &used, used + tags))
			return k;
	}
}

/*
 * Give back device requests: of reaped completions, or reserved for iocbs
 * the kernel did not take. Eventfd channels of other groups that wait for
 * room with nothing of their own in the kernel are woken.
 */
void
chan_release_tags(struct aioblk_channel *ch, unsigned tags)
{
	struct aioblk_disk *disk = ch->disk;

	if (!disk->queue_shared) {
		ch->tags_held -= tags;
		return;
	}
	atomic_fetch_sub(&disk->in_device, tags);
	if (unlikely(atomic_load(&disk->limit_waiters)))
		disk_wake_limit_waiters(disk, ch->wake);
}

static void
unblock(struct aioblk_channel *ch)
{
	if (atomic_exchange(&ch->limit_blocked, false))
		atomic_fetch_sub(&ch->disk->limit_waiters, 1);
}

/*
 * How many of the @n queued iocbs may go to the kernel now without
 * io_submit sleeping for a device request (0: none; they stay queued).
 * An eventfd channel with nothing in the kernel that finds no room waits
 * for another channel's completion to wake it: it says so first, then
 * looks once more (both seq_cst), so that no release slips between.
 */
static unsigned
limit_admit(struct aioblk_channel *ch, unsigned n, unsigned limit)
{
	struct aioblk_disk *disk = ch->disk;
	unsigned k = limit_reserve(ch, n, limit);

	if (k == 0 && ch->in_kernel == 0 && ch->wake->efd >= 0 && disk->queue_shared) {
		if (!atomic_exchange(&ch->limit_blocked, true))
			atomic_fetch_add(&disk->limit_waiters, 1);
		k = limit_reserve(ch, n, limit);
	}
	if (k && unlikely(atomic_load_explicit(&ch->limit_blocked, memory_order_relaxed)))
		unblock(ch);
	return k;
}

/*
 * Hand the queued iocbs to the kernel. io_submit stops at the first iocb it
 * cannot take: it returns how many it took, or the error of that first one.
 * Only EAGAIN means "later"; any other error belongs to that one request.
 * Where the device's queue is limited (aioblk_disk_queue_limit), only what
 * fits goes; the rest waits for room like a kernel EAGAIN.
 */
int
chan_submit(struct aioblk_channel *ch)
{
	unsigned limit = atomic_load_explicit(&ch->disk->queue_limit, memory_order_relaxed);
	unsigned n, i, unused;
	int taken = 0;
	int rc;

	ch->submit_again = false;
	if (unlikely(atomic_load_explicit(&ch->disk->lost, memory_order_relaxed))) {
		/* The device is gone: what still waits here fails without reaching the kernel. */
		while (ch->batch_head < ch->batch_tail)
			chan_complete_later(ch, (struct aioblk_req *)ch->batch[ch->batch_head++]->data, -ENODEV);
	}
	while (ch->batch_head < ch->batch_tail) {
		n = ch->batch_tail - ch->batch_head;
		if (unlikely(limit)) {
			n = limit_admit(ch, n, limit);
			if (!n) {
				ch->stats.retries++;
				break;
			}
		}
		rc = aioblk_sys_io_submit(ch->ctx, n, ch->batch + ch->batch_head);
		ch->stats.io_submit_calls++;
		if (unlikely(limit)) {
			/* What the kernel did not take gives its room back. */
			for (i = rc > 0 ? (unsigned)rc : 0, unused = 0; i < n; i++)
				unused += ((struct aioblk_req *)ch->batch[ch->batch_head + i]->data)->tags;
			if (unused)
				chan_release_tags(ch, unused);
		}
		if (likely(rc > 0)) {
			ch->batch_head += (unsigned)rc;
			ch->in_kernel += (unsigned)rc;
			taken += rc;
			continue;
		}
		if (rc == -EAGAIN || rc == 0) {
			/* Keep the rest queued; a later poll reaps first, then retries. */
			ch->submit_again = true;
			ch->stats.retries++;
			break;
		}
		submit_refused(ch, (struct aioblk_req *)ch->batch[ch->batch_head++]->data, rc);
	}
	if (ch->batch_head == ch->batch_tail)
		ch->batch_head = ch->batch_tail = 0;
	return taken;
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
	/* Work that no kernel completion will announce. */
	return ch->done_head ||
	       (ch->batch_head < ch->batch_tail && ch->in_kernel == 0 &&
		!atomic_load_explicit(&ch->limit_blocked, memory_order_relaxed)) ||
	       (unlikely(ch->resets_head != NULL) && reset_ready(ch));
}
