/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Small helpers of the interrupt-mode and concurrency tests: looking at a
 * group's eventfd from outside, a clock, and a temporary disk.
 */
#ifndef AIOBLK_TEST_STRESS_H
#define AIOBLK_TEST_STRESS_H

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

static inline void
st_sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Whether an event loop sleeping on @fd would wake up now. */
static inline bool
st_readable(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN);
}

/*
 * Nothing is left to do: the group's fd goes quiet after polls that run no
 * callback. A completion's eventfd signal lands just after its event is in
 * the ring, so a poll can reap the event first and the fd turns readable
 * once more; the next poll clears that. Real work left behind fails this.
 */
static inline bool
st_fd_settles(struct aioblk_group *g)
{
	int fd = aioblk_group_fd(g);
	int i;

	for (i = 0; i < 100; i++) {
		if (!st_readable(fd))
			return true;
		if (aioblk_group_poll(g, 0) != 0)
			return false;
		st_sleep_ms(1);
	}
	return false;
}

/*
 * The eventfd counter, looked at without changing it: read it (that clears
 * it) and write the value straight back. Only the test's own thread polls the
 * group, so the library never sees the short moment the counter is zero.
 * Signals that arrive in between are added to what is written back.
 */
static inline uint64_t
st_eventfd_peek(int fd)
{
	uint64_t v = 0;

	if (read(fd, &v, sizeof(v)) != sizeof(v))
		return 0;
	if (write(fd, &v, sizeof(v)) != sizeof(v))
		return 0;
	return v;
}

/* Sleep until the kernel has signalled @fd at least @want times, or 10 s passed. */
static inline uint64_t
st_wait_signals(int fd, uint64_t want)
{
	int64_t deadline = tc_now_ms() + 10000;
	uint64_t v;

	while ((v = st_eventfd_peek(fd)) < want && tc_now_ms() < deadline)
		st_sleep_ms(1);
	return v;
}

#endif
