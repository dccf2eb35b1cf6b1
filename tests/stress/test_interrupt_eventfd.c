/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Interrupt mode (AIOBLK_GROUP_EVENTFD): the group's eventfd is readable
 * exactly while the group has work to poll. No wake-up is lost however many
 * completions arrive at once (more than a channel's queue depth, more than
 * the library reaps at a time, rings that wrap), a poll stopped at
 * max_completions leaves the fd readable, and work that no kernel completion
 * announces (requests finished at submission, resets) makes it readable too.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "stress.h"

#define FILE_BYTES (8u * 1024u * 1024u)

struct burst_req {
	int status;
	int count;
};

/* One configuration of the burst test. */
struct burst {
	uint32_t disk_flags;
	unsigned ndisks;
	unsigned channels_per_disk;
	unsigned qd;
	unsigned rounds;
};

static void
burst_cb(void *arg, int status)
{
	struct burst_req *r = arg;

	r->status = status;
	r->count++;
}

/*
 * Fill every channel of the group to its queue depth, hand everything to the
 * kernel, sleep until every completion has signalled the eventfd, then check
 * that one poll runs them all and leaves the fd quiet.
 */
static void
run_burst(const struct burst *b)
{
	unsigned nch = b->ndisks * b->channels_per_disk;
	unsigned total = nch * b->qd;
	struct aioblk_disk *disks[4] = { NULL };
	struct aioblk_channel *chs[16] = { NULL };
	struct aioblk_disk_opts opts = { .flags = b->disk_flags };
	struct aioblk_group *g = NULL;
	struct burst_req *reqs;
	unsigned char *buf;
	char path[256];
	size_t bs, align;
	unsigned d, c, i, round, pass;
	int fd;

	assert_true(b->ndisks <= 4 && nch <= 16);
	for (d = 0; d < b->ndisks; d++) {
		assert_int_equal(tc_make_file(NULL, FILE_BYTES, path, sizeof(path)), 0);
		assert_int_equal(aioblk_disk_open(path, &opts, &disks[d]), 0);
	}
	bs = aioblk_disk_block_size(disks[0]);
	for (d = 1; d < b->ndisks; d++)
		assert_int_equal(aioblk_disk_block_size(disks[d]), bs);
	align = aioblk_disk_buf_align(disks[0]) > 4096 ? aioblk_disk_buf_align(disks[0]) : 4096;
	assert_true((uint64_t)b->channels_per_disk * b->qd * bs <= FILE_BYTES);

	assert_int_equal(tc_group_create(AIOBLK_GROUP_EVENTFD, &g), 0);
	fd = aioblk_group_fd(g);
	assert_true(fd >= 0);
	for (c = 0; c < nch; c++)
		assert_int_equal(aioblk_channel_create(g, disks[c / b->channels_per_disk], b->qd, &chs[c]), 0);

	reqs = calloc(total, sizeof(*reqs));
	buf = tc_alloc(align, (size_t)total * bs);
	assert_non_null(reqs);
	assert_non_null(buf);

	for (round = 0; round < b->rounds; round++) {
		/* pass 0 writes a new pattern, pass 1 reads it back */
		for (pass = 0; pass < 2; pass++) {
			memset(reqs, 0, total * sizeof(*reqs));
			if (pass == 1)
				memset(buf, 0, (size_t)total * bs);
			for (c = 0; c < nch; c++) {
				for (i = 0; i < b->qd; i++) {
					unsigned k = c * b->qd + i;
					uint64_t block = (uint64_t)(c % b->channels_per_disk) * b->qd + i;
					unsigned char *p = buf + (size_t)k * bs;
					int rc;

					if (pass == 0) {
						tc_fill(p, bs, round * 1000003u + k);
						rc = aioblk_write(chs[c], p, block, 1, burst_cb, &reqs[k]);
					} else {
						rc = aioblk_read(chs[c], p, block, 1, burst_cb, &reqs[k]);
					}
					assert_int_equal(rc, 0);
				}
				/* The channel is full: the library itself refuses more. */
				assert_int_equal(aioblk_write(chs[c], buf, 0, 1, burst_cb, &reqs[0]), -EAGAIN);
				assert_int_equal(aioblk_channel_inflight(chs[c]), b->qd);
			}
			/* Full batches went to the kernel already; this hands over the rest. */
			assert_true(aioblk_group_submit(g) >= 0);
			/* Every completion is in its ring and has signalled before the one wake-up. */
			assert_true(st_wait_signals(fd, total) >= total);
			assert_true(st_readable(fd));
			if (pass == 0) {
				assert_int_equal(aioblk_group_poll(g, 0), (int)total);
			} else {
				/* A loop with a budget per wake-up: it polls while the fd says so. */
				unsigned ran = 0, wakeups = 0;

				while (st_readable(fd) && wakeups <= total) {
					int rc = aioblk_group_poll(g, 7);

					assert_true(rc >= 0 && rc <= 7);
					ran += (unsigned)rc;
					wakeups++;
				}
				assert_int_equal(ran, total);
			}
			for (i = 0; i < total; i++) {
				assert_int_equal(reqs[i].count, 1);
				assert_int_equal(reqs[i].status, 0);
			}
			/* Nothing left: an event loop must not wake up again. */
			assert_false(st_readable(fd));
			assert_int_equal(aioblk_group_poll(g, 0), 0);
			assert_false(st_readable(fd));
			if (pass == 1)
				for (i = 0; i < total; i++)
					assert_int_equal(tc_check(buf + (size_t)i * bs, bs, round * 1000003u + i), -1);
		}
	}

	for (c = 0; c < nch; c++)
		assert_int_equal(aioblk_channel_destroy(chs[c]), 0);
	assert_int_equal(aioblk_group_destroy(g), 0);
	for (d = 0; d < b->ndisks; d++)
		assert_int_equal(aioblk_disk_close(disks[d]), 0);
	free(reqs);
	free(buf);
}

/* Buffered files complete inside io_submit: everything is done at once, for sure. */
static void
test_burst_channels_buffered(void **state)
{
	const struct burst b = { AIOBLK_DISK_BUFFERED, 1, 4, 32, 6 };

	run_burst(&b);
}

/* One channel with more completions than the library reaps at a time (and than the default depth). */
static void
test_burst_deep_channel_buffered(void **state)
{
	const struct burst b = { AIOBLK_DISK_BUFFERED, 1, 1, 256, 4 };

	run_burst(&b);
}

/* O_DIRECT: completions come from the block layer; two disks, two channels each. */
static void
test_burst_two_disks_direct(void **state)
{
	const struct burst b = { 0, 2, 2, 32, 4 };

	run_burst(&b);
}

struct env {
	char path[256];
	struct aioblk_disk *disk;
	struct aioblk_group *g;
	struct aioblk_channel *ch[3];
	int fd;
	void *buf;
	size_t bs;
};

static void
env_open(struct env *e, uint32_t disk_flags, uint32_t group_flags, unsigned nch, unsigned qd)
{
	struct aioblk_disk_opts opts = { .flags = disk_flags };
	unsigned i;

	memset(e, 0, sizeof(*e));
	assert_int_equal(tc_make_file(NULL, FILE_BYTES, e->path, sizeof(e->path)), 0);
	assert_int_equal(aioblk_disk_open(e->path, &opts, &e->disk), 0);
	assert_int_equal(tc_group_create(group_flags, &e->g), 0);
	for (i = 0; i < nch; i++)
		assert_int_equal(aioblk_channel_create(e->g, e->disk, qd, &e->ch[i]), 0);
	e->fd = (group_flags & AIOBLK_GROUP_EVENTFD) ? aioblk_group_fd(e->g) : -1;
	e->bs = aioblk_disk_block_size(e->disk);
	e->buf = tc_alloc(4096, 128 * e->bs);
	assert_non_null(e->buf);
	tc_fill(e->buf, 128 * e->bs, 7);
}

static void
env_close(struct env *e)
{
	unsigned i;

	for (i = 0; i < 3; i++)
		if (e->ch[i])
			assert_int_equal(aioblk_channel_destroy(e->ch[i]), 0);
	assert_int_equal(aioblk_group_destroy(e->g), 0);
	assert_int_equal(aioblk_disk_close(e->disk), 0);
	free(e->buf);
}

/* poll(max) runs at most max callbacks; while some remain, the fd stays readable. */
static void
poll_in_steps(unsigned n, unsigned max)
{
	struct env e;
	struct tc_result r = { 0, 0 };
	unsigned i, left;
	int rc;

	env_open(&e, AIOBLK_DISK_BUFFERED, AIOBLK_GROUP_EVENTFD, 1, 128);
	for (i = 0; i < n; i++)
		assert_int_equal(aioblk_write(e.ch[0], (char *)e.buf + i * e.bs, i, 1, tc_cb, &r), 0);
	assert_true(aioblk_group_submit(e.g) >= 0);
	assert_true(st_wait_signals(e.fd, n) >= n);
	for (left = n; left > 0; left -= (unsigned)rc) {
		assert_true(st_readable(e.fd));
		rc = aioblk_group_poll(e.g, max);
		assert_int_equal(rc, left < max ? left : max);
		assert_int_equal(r.count, n - left + (unsigned)rc);
	}
	assert_int_equal(r.status, 0);
	assert_false(st_readable(e.fd));
	assert_int_equal(aioblk_group_poll(e.g, max), 0);
	assert_false(st_readable(e.fd));
	env_close(&e);
}

static void
test_poll_max_leaves_fd_readable(void **state)
{
	poll_in_steps(10, 3);
	poll_in_steps(10, 5);  /* the limit falls on the last completion */
	poll_in_steps(100, 7); /* the limit falls inside the library's reaping chunks */
	poll_in_steps(10, 1);
}

/* The same limit on requests completed without the kernel (write-zeroes). */
static void
test_poll_max_done_list(void **state)
{
	struct env e;
	struct tc_result r = { 0, 0 };
	int i;

	env_open(&e, AIOBLK_DISK_BUFFERED, AIOBLK_GROUP_EVENTFD, 1, 32);
	for (i = 0; i < 4; i++)
		assert_int_equal(aioblk_write_zeroes(e.ch[0], (uint64_t)i * 8, 8, tc_cb, &r), 0);
	for (i = 0; i < 4; i++) {
		/* They finish on a worker thread: the fd becomes readable when one has. */
		struct pollfd pfd = { .fd = e.fd, .events = POLLIN };

		assert_int_equal(poll(&pfd, 1, 10000), 1);
		assert_int_equal(aioblk_group_poll(e.g, 1), 1);
		assert_int_equal(r.count, i + 1);
		assert_int_equal(r.status, 0);
	}
	assert_false(st_readable(e.fd));
	env_close(&e);
}

/* The limit in busy-poll mode: same counts, no fd. */
static void
test_poll_max_no_eventfd(void **state)
{
	struct env e;
	struct tc_result r = { 0, 0 };
	int i;

	env_open(&e, AIOBLK_DISK_BUFFERED, 0, 1, 32);
	assert_int_equal(aioblk_group_fd(e.g), -EINVAL);
	for (i = 0; i < 10; i++)
		assert_int_equal(aioblk_write(e.ch[0], (char *)e.buf + i * e.bs, i, 1, tc_cb, &r), 0);
	assert_int_equal(aioblk_group_submit(e.g), 10);
	assert_int_equal(aioblk_group_poll(e.g, 4), 4);
	assert_int_equal(aioblk_group_poll(e.g, 4), 4);
	assert_int_equal(aioblk_group_poll(e.g, 4), 2);
	assert_int_equal(aioblk_group_poll(e.g, 4), 0);
	assert_int_equal(r.count, 10);
	env_close(&e);
}

/* The fd is the group's own: non-blocking and close-on-exec. */
static void
test_fd_flags(void **state)
{
	struct env e;

	env_open(&e, AIOBLK_DISK_BUFFERED, AIOBLK_GROUP_EVENTFD, 1, 8);
	assert_true(fcntl(e.fd, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(e.fd, F_GETFD) & FD_CLOEXEC);
	assert_false(st_readable(e.fd));
	env_close(&e);
}

/*
 * A queued request is not in the kernel until submit or poll: nothing can
 * wake the loop before that (the contract: submit before sleeping).
 */
static void
test_submit_before_sleeping(void **state)
{
	struct env e;
	struct tc_result r = { 0, 0 };

	env_open(&e, AIOBLK_DISK_BUFFERED, AIOBLK_GROUP_EVENTFD, 1, 8);
	assert_int_equal(aioblk_write(e.ch[0], e.buf, 0, 1, tc_cb, &r), 0);
	assert_false(st_readable(e.fd));
	assert_int_equal(aioblk_group_submit(e.g), 1);
	assert_true(st_wait_signals(e.fd, 1) >= 1);
	assert_true(st_readable(e.fd));
	assert_int_equal(aioblk_group_poll(e.g, 0), 1);
	assert_int_equal(r.count, 1);
	assert_int_equal(r.status, 0);
	assert_false(st_readable(e.fd));
	env_close(&e);
}

/* Requests finished without the kernel (write-zeroes) and resets wake the loop themselves. */
static void
test_kick_without_kernel(void **state)
{
	struct env e;
	struct tc_result z = { 1, 0 }, rs = { 1, 0 };

	env_open(&e, AIOBLK_DISK_BUFFERED, AIOBLK_GROUP_EVENTFD, 1, 8);
	assert_int_equal(aioblk_write_zeroes(e.ch[0], 0, 8, tc_cb, &z), 0);
	/* It runs on a worker thread, which makes the fd readable when done. */
	struct pollfd pfd = { .fd = e.fd, .events = POLLIN };

	assert_int_equal(poll(&pfd, 1, 10000), 1);
	assert_int_equal(aioblk_group_poll(e.g, 0), 1);
	assert_int_equal(z.count, 1);
	assert_int_equal(z.status, 0);
	assert_false(st_readable(e.fd));

	/* A reset with nothing outstanding finishes at the next poll: that poll must happen. */
	assert_int_equal(aioblk_reset(e.ch[0], tc_cb, &rs), 0);
	assert_true(st_readable(e.fd));
	assert_int_equal(aioblk_group_poll(e.g, 0), 1);
	assert_int_equal(rs.count, 1);
	assert_int_equal(rs.status, 0);
	assert_false(st_readable(e.fd));
	env_close(&e);
}

/*
 * An event loop that polls only when the fd is readable: it must still run
 * everything, also work that callbacks start on other channels of the group.
 * Here each reset's callback resets the channel made before it.
 */
struct chain {
	struct env *e;
	int ran[3];
	int rc[3];
};

static struct chain *chain_arg;

static void
chain_cb(void *arg, int status)
{
	struct chain *c = chain_arg;
	unsigned idx = (unsigned)(uintptr_t)arg;

	c->ran[idx]++;
	if (status != 0)
		c->rc[idx] = status;
	if (idx > 0)
		c->rc[idx - 1] = aioblk_reset(c->e->ch[idx - 1], chain_cb, (void *)(uintptr_t)(idx - 1));
}

static void
test_event_loop_runs_resets_started_in_callbacks(void **state)
{
	struct env e;
	struct chain c = { .e = &e };
	int polls = 0;

	env_open(&e, AIOBLK_DISK_BUFFERED, AIOBLK_GROUP_EVENTFD, 3, 8);
	chain_arg = &c;
	assert_int_equal(aioblk_reset(e.ch[2], chain_cb, (void *)(uintptr_t)2), 0);
	/* The loop: sleep on the fd, poll when it is readable. */
	while (st_readable(e.fd) && polls < 100) {
		assert_true(aioblk_group_poll(e.g, 0) >= 0);
		polls++;
	}
	assert_int_equal(c.rc[0], 0);
	assert_int_equal(c.rc[1], 0);
	assert_int_equal(c.ran[2], 1);
	assert_int_equal(c.ran[1], 1);
	/* The reset of ch[0] is done (nothing is outstanding) but nothing woke the loop for it. */
	assert_int_equal(c.ran[0], 1);
	env_close(&e);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_burst_channels_buffered),
		cmocka_unit_test(test_burst_deep_channel_buffered),
		cmocka_unit_test(test_burst_two_disks_direct),
		cmocka_unit_test(test_poll_max_leaves_fd_readable),
		cmocka_unit_test(test_poll_max_done_list),
		cmocka_unit_test(test_poll_max_no_eventfd),
		cmocka_unit_test(test_fd_flags),
		cmocka_unit_test(test_submit_before_sleeping),
		cmocka_unit_test(test_kick_without_kernel),
		cmocka_unit_test(test_event_loop_runs_resets_started_in_callbacks),
	};

	return tc_run_group(tests, NULL, NULL);
}
