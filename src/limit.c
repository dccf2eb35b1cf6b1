/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The device queue's limit (aioblk_disk_queue_limit): a request goes to the
 * kernel only when the device has room for it, so that io_submit never
 * sleeps for a device request. Room is counted across every channel of the
 * disk when it has one hardware queue, else per channel; a request of more
 * than max_request bytes counts as the pieces the kernel makes of it.
 */
#define _GNU_SOURCE
#include "internal.h"

/* Device requests an iocb becomes: the kernel splits a transfer at the queue's max_sectors_kb. */
static unsigned
iocb_tags(const struct aioblk_disk *disk, const struct aioblk_req *req)
{
	uint32_t max = atomic_load_explicit(&disk->max_request, memory_order_relaxed);
	uint64_t cap = disk_iocb_cap(disk), left, n;

	if (!max || req->op == OP_FLUSH || req->len <= req->done)
		return 1;
	/* The iocb carries at most cap bytes of what is left (request.c). */
	left = req->len - req->done;
	if (cap && left > cap)
		left = cap;
	n = (left + max - 1) / max;
	return n > UINT16_MAX ? UINT16_MAX : (unsigned)n;
}

/*
 * Room in the device's queue for the first of the @n iocbs of @ch: reserve
 * their device requests (each request holds its count in ->tags) and return
 * how many fit (0: none). A request larger than the whole queue goes alone
 * into an idle one.
 */
static unsigned
reserve(struct aioblk_channel *ch, struct iocb *const *iocbs, unsigned n, unsigned limit)
{
	struct aioblk_disk *disk = ch->disk;
	bool shared = disk->queue_shared;
	unsigned used, room, k, tags, t;

	for (;;) {
		used = shared ? atomic_load(&disk->in_device) : ch->tags_held;
		room = used < limit ? limit - used : 0;
		for (k = 0, tags = 0; k < n; k++) {
			t = iocb_tags(disk, iocbs[k]->data);
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
			break;
		}
		/* seq_cst: pairs with the waiters' count in limit_release. */
		if (atomic_compare_exchange_weak(&disk->in_device, &used, used + tags))
			break;
	}
	for (t = 0; t < k; t++) {
		struct aioblk_req *req = iocbs[t]->data;

		req->tags = (uint16_t)iocb_tags(disk, req);
	}
	return k;
}

/*
 * Give back device requests: of reaped completions, or reserved for iocbs
 * the kernel did not take. Eventfd channels of other groups that wait for
 * room with nothing of their own in the kernel are woken.
 */
void
limit_release(struct aioblk_channel *ch, unsigned tags)
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
 * How many of the @n iocbs of @ch (the first ones waiting for io_submit)
 * may go to the kernel now without io_submit sleeping for a device request
 * (0: none; they stay queued). An eventfd channel whose context is @idle
 * (nothing in the kernel, so no completion of its own will come) that finds
 * no room waits for another channel's completion to wake it: it says so
 * first, then looks once more (both seq_cst), so that no release slips
 * between.
 */
unsigned
limit_admit(struct aioblk_channel *ch, struct iocb *const *iocbs, unsigned n, unsigned limit, bool idle)
{
	struct aioblk_disk *disk = ch->disk;
	unsigned k = reserve(ch, iocbs, n, limit);

	if (k == 0 && idle && ch->wake->efd >= 0 && disk->queue_shared) {
		if (!atomic_exchange(&ch->limit_blocked, true))
			atomic_fetch_add(&disk->limit_waiters, 1);
		k = reserve(ch, iocbs, n, limit);
	}
	if (k && unlikely(atomic_load_explicit(&ch->limit_blocked, memory_order_relaxed)))
		unblock(ch);
	return k;
}
