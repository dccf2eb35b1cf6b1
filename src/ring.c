/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A kernel io_context: made with its batch array, its completion ring read
 * straight from user space (or slept on in io_getevents, for a wait that
 * must not spin), destroyed.
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
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* The ring is read in user space only when its header is one we know. */
static struct aio_ring *
usable_ring(const struct aioblk_kctx *kc)
{
	struct aio_ring *ring = (struct aio_ring *)kc->ctx;

	if (ring->magic != AIO_RING_MAGIC || ring->incompat_features != 0 ||
	    ring->header_length != sizeof(struct aio_ring) || ring->nr == 0) {
		aioblk_log(AIOBLK_LOG_WARNING, "%s: unknown AIO ring layout, reaping with io_getevents", kc->name);
		return NULL;
	}
	return ring;
}

/*
 * A context for @depth requests, and its batch (a shared one also gets its
 * scratch array). The kernel charges fs.aio-max-nr with @depth.
 */
int
ring_open(struct aioblk_kctx *kc, unsigned depth, const char *name)
{
	int rc;

	kc->name = name;
	kc->depth = depth;
	kc->batch = calloc(depth, sizeof(*kc->batch));
	if (kc->shared)
		kc->deferred = calloc(depth, sizeof(*kc->deferred));
	if (!kc->batch || (kc->shared && !kc->deferred)) {
		rc = -ENOMEM;
		goto fail;
	}
	kc->ctx = 0; /* io_setup requires a zeroed context */
	rc = aioblk_sys_io_setup(depth, &kc->ctx);
	if (rc < 0) {
		if (rc == -EAGAIN)
			aioblk_log(AIOBLK_LOG_ERR,
				   "%s: io_setup(%u): the system-wide AIO limit is reached; "
				   "raise sysctl fs.aio-max-nr (see /proc/sys/fs/aio-nr)",
				   name, depth);
		else
			aioblk_log(AIOBLK_LOG_ERR, "%s: io_setup(%u) failed: %s", name, depth, strerror(-rc));
		goto fail;
	}
	kc->ring = usable_ring(kc);
	return 0;

fail:
	free(kc->deferred);
	free(kc->batch);
	kc->deferred = NULL;
	kc->batch = NULL;
	kc->ctx = 0;
	return rc;
}

/* Destroy an idle context (nothing in the kernel: io_destroy would wait for it uninterruptibly). */
void
ring_close(struct aioblk_kctx *kc)
{
	int rc = aioblk_sys_io_destroy(kc->ctx);

	if (rc < 0)
		aioblk_log(AIOBLK_LOG_WARNING, "%s: io_destroy failed: %s", kc->name, strerror(-rc));
	free(kc->deferred);
	free(kc->batch);
}

static unsigned
reap_syscall(struct aioblk_kctx *kc, struct io_event *events, unsigned max)
{
	struct timespec zero = { 0, 0 };
	int rc;

	do {
		rc = aioblk_sys_io_getevents(kc->ctx, 0, max, events, &zero);
	} while (rc == -EINTR);
	if (rc < 0) {
		aioblk_log(AIOBLK_LOG_ERR, "%s: io_getevents failed: %s", kc->name, strerror(-rc));
		return 0;
	}
	return (unsigned)rc;
}

static unsigned
reap_ring(struct aioblk_kctx *kc, struct io_event *events, unsigned max)
{
	struct aio_ring *ring = kc->ring;
	uint32_t head, tail, nr, avail, first;

	if (unlikely(!ring))
		return reap_syscall(kc, events, max);

	nr = ring->nr;
	head = ring->head; /* ours alone: no ordering needed */
	tail = __atomic_load_n(&ring->tail, __ATOMIC_ACQUIRE);
	if (unlikely(ring->magic != AIO_RING_MAGIC || ring->incompat_features != 0 || head >= nr || tail >= nr)) {
		aioblk_log(AIOBLK_LOG_WARNING, "%s: AIO ring header not as expected, reaping with io_getevents",
			   kc->name);
		kc->ring = NULL;
		return reap_syscall(kc, events, max);
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

/* Up to @max completed events, oldest first: the one a wait took (ring_wait), then the ring's. */
unsigned
ring_reap(struct aioblk_kctx *kc, struct io_event *events, unsigned max)
{
	if (unlikely(kc->stashed)) {
		events[0] = kc->stash;
		kc->stashed = false;
		return 1 + (max > 1 ? reap_ring(kc, events + 1, max - 1) : 0);
	}
	return reap_ring(kc, events, max);
}

/* Events are known to wait: the stash, or a readable ring's. False when only a system call could tell. */
bool
ring_events_seen(const struct aioblk_kctx *kc)
{
	const struct aio_ring *ring = kc->ring;

	return kc->stashed || (ring && ring->head != __atomic_load_n(&ring->tail, __ATOMIC_ACQUIRE));
}

/* Events may wait: where the ring cannot be read, whenever requests are in the kernel. */
bool
ring_has_events(const struct aioblk_kctx *kc)
{
	return ring_events_seen(kc) || (!kc->ring && kc->in_kernel > 0);
}

/*
 * Sleep in io_getevents(2) until the context has a completion, or for
 * @timeout (NULL: no limit). The event it returns is kept for the next
 * ring_reap, ahead of the ring: every completion is still run by a poll.
 * Returns 0 (an event, the timeout, or a signal) or -errno.
 */
int
ring_wait(struct aioblk_kctx *kc, const struct timespec *timeout)
{
	struct timespec left;
	int rc;

	if (kc->stashed)
		return 0;
	/* The kernel may write what is left of the timeout back. */
	if (timeout)
		left = *timeout;
	rc = aioblk_sys_io_getevents(kc->ctx, 1, 1, &kc->stash, timeout ? &left : NULL);
	if (rc == -EINTR)
		return 0;
	if (rc < 0) {
		aioblk_log(AIOBLK_LOG_ERR, "%s: io_getevents failed: %s", kc->name, strerror(-rc));
		return rc;
	}
	kc->stashed = rc > 0;
	return 0;
}
