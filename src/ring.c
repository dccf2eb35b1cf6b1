/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Reaping completions straight from the kernel's AIO ring.
 *
 * The kernel (fs/aio.c, aio_complete) writes the event, issues smp_wmb(),
 * then advances tail. We are the only writer of head. So: load tail with
 * acquire (the events before it are then visible), copy the events, and
 * store head with release (the copies are done before the kernel may reuse
 * the slots). Indices wrap at ring->nr, which is what the kernel made, not
 * the depth we asked for, and not a power of two.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "internal.h"

static unsigned
reap_syscall(struct aioblk_channel *ch, struct io_event *events, unsigned max)
{
	struct timespec zero = { 0, 0 };
	int rc;

	do {
		rc = aioblk_sys_io_getevents(ch->ctx, 0, max, events, &zero);
	} while (rc == -EINTR);
	if (rc < 0) {
		aioblk_log(AIOBLK_LOG_ERR, "%s: io_getevents failed: %s", ch->disk->name, strerror(-rc));
		return 0;
	}
	return (unsigned)rc;
}

unsigned
ring_reap(struct aioblk_channel *ch, struct io_event *events, unsigned max)
{
	struct aio_ring *ring = ch->ring;
	uint32_t head, tail, nr, avail, first;

	if (unlikely(!ring))
		return reap_syscall(ch, events, max);

	nr = ring->nr;
	head = ring->head; /* ours alone: no ordering needed */
	tail = __atomic_load_n(&ring->tail, __ATOMIC_ACQUIRE);
	if (unlikely(ring->magic != AIO_RING_MAGIC || ring->incompat_features != 0 || head >= nr || tail >= nr)) {
		aioblk_log(AIOBLK_LOG_WARNING, "%s: AIO ring header not as expected, reaping with io_getevents",
			   ch->disk->name);
		ch->ring = NULL;
		return reap_syscall(ch, events, max);
	}
	if (head == tail)
		return 0;

	avail = tail > head ? tail - head : nr - head + tail;
	if (avail > max)
		avail = max;
	first = nr - head;
	if (first >= avail) {
		memcpy(events, &ring->events[head], avail * sizeof(*events));
	} else {
		memcpy(events, &ring->events[head], first * sizeof(*events));
		memcpy(events + first, &ring->events[0], (avail - first) * sizeof(*events));
	}
	head += avail;
	if (head >= nr)
		head -= nr;
	__atomic_store_n(&ring->head, head, __ATOMIC_RELEASE);
	return avail;
}

bool
ring_has_events(const struct aioblk_channel *ch)
{
	const struct aio_ring *ring = ch->ring;

	if (!ring)
		return ch->in_kernel > 0; /* cannot look without a system call: assume so */
	return ring->head != __atomic_load_n(&ring->tail, __ATOMIC_ACQUIRE);
}
