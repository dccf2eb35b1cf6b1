/* SPDX-License-Identifier: BSD-3-Clause */
#define _GNU_SOURCE
#include "fixture.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common.h"

int
fx_open(struct fx *fx, uint64_t bytes, uint32_t disk_flags, uint32_t group_flags, unsigned qd)
{
	struct aioblk_disk_opts opts = { .flags = disk_flags };
	int rc;

	memset(fx, 0, sizeof(*fx));
	fx->fd = -1;
	rc = tc_make_file(NULL, bytes, fx->path, sizeof(fx->path));
	if (rc < 0)
		return rc;
	fx->fd = open(fx->path, O_RDWR | O_CLOEXEC);
	if (fx->fd < 0)
		return -errno;
	rc = aioblk_disk_open(fx->path, &opts, &fx->disk);
	if (rc < 0)
		return rc;
	fx->bs = aioblk_disk_block_size(fx->disk);
	/* A shared group as deep as the channel: the unit tests' queue-full cases hold for both. */
	if (tc_shared_groups()) {
		struct aioblk_group_opts gopts = { .flags = group_flags | AIOBLK_GROUP_SHARED_CONTEXT,
						   .queue_depth = qd ? qd : 128 };

		rc = aioblk_group_create_ext(&gopts, &fx->group);
	} else {
		rc = aioblk_group_create(group_flags, &fx->group);
	}
	if (rc < 0)
		return rc;
	return aioblk_channel_create(fx->group, fx->disk, qd, &fx->ch);
}

void
fx_close(struct fx *fx)
{
	int64_t deadline = tc_now_ms() + 3000;

	/*
	 * A test that failed half-way may leave requests behind: drain them
	 * (bounded) so that what follows is not a cascade of leaks. The
	 * assertion below still reports them.
	 */
	while (fx->ch && aioblk_channel_inflight(fx->ch) && tc_now_ms() < deadline)
		aioblk_group_poll(fx->group, 0);
	if (fx->ch) {
		assert_int_equal(aioblk_channel_inflight(fx->ch), 0);
		assert_int_equal(aioblk_channel_destroy(fx->ch), 0);
	}
	if (fx->group)
		assert_int_equal(aioblk_group_destroy(fx->group), 0);
	if (fx->disk)
		assert_int_equal(aioblk_disk_close(fx->disk), 0);
	if (fx->fd >= 0)
		close(fx->fd);
	if (fx->path[0])
		unlink(fx->path);
	memset(fx, 0, sizeof(*fx));
	fx->fd = -1;
}

void
fx_cb(void *arg, int status)
{
	struct fx_req *r = arg;

	r->count++;
	r->status = status;
}

static bool
all_ran(const struct fx_req *reqs, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++)
		if (reqs[i].count == 0)
			return false;
	return true;
}

int
fx_drive(struct fx *fx, struct fx_req *reqs, unsigned n, int timeout_ms)
{
	int64_t deadline = tc_now_ms() + timeout_ms;
	int efd = aioblk_group_fd(fx->group);

	/* Hand over what is queued, as an event loop does before it sleeps. */
	if (efd >= 0)
		aioblk_group_submit(fx->group);
	while (!all_ran(reqs, n)) {
		int64_t left = deadline - tc_now_ms();

		if (left <= 0)
			return -ETIMEDOUT;
		if (efd >= 0) {
			struct pollfd pfd = { .fd = efd, .events = POLLIN };

			/* Only a readable fd earns a poll: that is the contract. */
			if (poll(&pfd, 1, (int)left) <= 0)
				continue;
		}
		/*
		 * Nothing ran: let the offload threads have the CPU, as a reactor
		 * with other work would. Under valgrind, whose threads take turns
		 * on one lock, a poller that never yields can starve them.
		 */
		if (aioblk_group_poll(fx->group, 0) == 0)
			sched_yield();
	}
	return 0;
}

void
fx_pread(struct fx *fx, void *buf, size_t len, uint64_t off)
{
	assert_int_equal(pread(fx->fd, buf, len, (off_t)off), (ssize_t)len);
}
