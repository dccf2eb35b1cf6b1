/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A group's wake-up, for the layers below the group: its eventfd, made
 * readable so that an event loop polls the group, and its inbox, where
 * library threads leave the requests they finished. Any thread may signal
 * or post; only the group's own poll takes from the inbox.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "internal.h"

int
wake_init(struct aioblk_wake *wake, bool eventfd)
{
	int rc;

	memset(wake, 0, sizeof(*wake));
	wake->efd = -1;
	rc = pthread_mutex_init(&wake->inbox_lock, NULL);
	if (rc)
		return -rc;
	if (eventfd) {
		wake->efd = aioblk_sys_eventfd();
		if (wake->efd < 0) {
			rc = wake->efd;
			aioblk_log(AIOBLK_LOG_ERR, "eventfd failed: %s", strerror(-rc));
			pthread_mutex_destroy(&wake->inbox_lock);
			return rc;
		}
	}
	return 0;
}

void
wake_destroy(struct aioblk_wake *wake)
{
	if (wake->efd >= 0)
		aioblk_sys_close(wake->efd);
	pthread_mutex_destroy(&wake->inbox_lock);
}

/*
 * Make the eventfd readable. Any thread; it does not log, so that under a
 * disk's lock the user's log function is not run. Returns 0 or the write's
 * -errno.
 */
int
wake_signal(struct aioblk_wake *wake)
{
	/* Counted before it is written, so a read can never find more than was counted. */
	atomic_fetch_add(&wake->kicks, 1);
	return aioblk_sys_eventfd_write(wake->efd, 1);
}

void
wake_log_error(int rc)
{
	aioblk_log(AIOBLK_LOG_ERR, "eventfd write failed: %s", strerror(-rc));
}

/* wake_signal, and log a failure. */
void
wake_kick(struct aioblk_wake *wake)
{
	int rc = wake_signal(wake);

	if (rc < 0)
		wake_log_error(rc);
}

/*
 * Leave a finished request for the group's next poll. The eventfd is
 * written under the inbox lock: the poll that runs the callback takes the
 * lock first, so the group (and its eventfd) cannot be destroyed before the
 * poster is done with it.
 */
void
wake_post(struct aioblk_wake *wake, struct aioblk_req *req)
{
	int rc = 0;

	pthread_mutex_lock(&wake->inbox_lock);
	req_fifo_push(&wake->inbox_head, &wake->inbox_tail, req);
	atomic_store_explicit(&wake->inbox_ready, true, memory_order_release);
	if (wake->efd >= 0)
		rc = wake_signal(wake);
	pthread_mutex_unlock(&wake->inbox_lock);
	if (rc < 0)
		wake_log_error(rc);
}

/* Everything in the inbox, oldest first (linked through ->next), or NULL. */
struct aioblk_req *
wake_take(struct aioblk_wake *wake)
{
	struct aioblk_req *req;

	if (likely(!atomic_load_explicit(&wake->inbox_ready, memory_order_acquire)))
		return NULL;
	pthread_mutex_lock(&wake->inbox_lock);
	req = wake->inbox_head;
	wake->inbox_head = wake->inbox_tail = NULL;
	atomic_store_explicit(&wake->inbox_ready, false, memory_order_relaxed);
	pthread_mutex_unlock(&wake->inbox_lock);
	return req;
}
