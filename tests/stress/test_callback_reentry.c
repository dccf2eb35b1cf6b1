/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What a callback may do with its own group: submit new I/O (yes, and it
 * completes), poll, wait, submit, create or destroy channels, destroy the
 * group (refused with -EBUSY while the poll runs; the objects stay usable).
 * Checked from the three kinds of callbacks: a kernel completion, a request
 * finished without the kernel (write-zeroes) and a reset; from
 * aioblk_group_poll() and aioblk_group_wait(); in both group modes.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "stress.h"

#define FILE_BYTES (4u * 1024u * 1024u)

enum kind { KIND_WRITE, KIND_ZEROES, KIND_RESET };

struct ctx {
	struct aioblk_disk *disk;
	struct aioblk_group *g;
	struct aioblk_group *other; /* another group: its objects are not refused */
	struct aioblk_channel *ch;
	struct aioblk_channel *other_ch;
	void *buf;
	uint64_t n; /* blocks of 4 KiB */
	/* Filled in by the callback; checked by the test afterwards (no assert in a callback). */
	int ran;
	int status;
	int rc_poll;
	int rc_wait;
	int rc_wait0;
	int rc_ch_destroy;
	int rc_group_destroy;
	int rc_ch_create;
	int rc_other_destroy;
	int rc_submit_io;
	int rc_group_submit;
	struct tc_result inner; /* the request the callback submitted */
};

static void
reentry_cb(void *arg, int status)
{
	struct ctx *c = arg;
	struct aioblk_channel *extra = NULL;

	c->ran++;
	c->status = status;
	c->rc_poll = aioblk_group_poll(c->g, 0);
	c->rc_wait = aioblk_group_wait(c->g, 100);
	c->rc_wait0 = aioblk_group_wait(c->g, 0);
	c->rc_ch_destroy = aioblk_channel_destroy(c->ch);
	c->rc_group_destroy = aioblk_group_destroy(c->g);
	c->rc_ch_create = aioblk_channel_create(c->g, c->disk, 4, &extra);
	if (c->rc_ch_create == 0)
		aioblk_channel_destroy(extra); /* refused as well; the test reports the create */
	/* Another group's channel is not this poll's business. */
	c->rc_other_destroy = aioblk_channel_destroy(c->other_ch);
	if (c->rc_other_destroy == 0)
		c->other_ch = NULL;
	c->rc_submit_io = aioblk_read(c->ch, c->buf, 0, c->n, tc_cb, &c->inner);
	c->rc_group_submit = aioblk_group_submit(c->g);
}

static void
reentry_case(uint32_t group_flags, enum kind kind, bool use_wait)
{
	struct ctx c;
	char path[256];
	int rc;
	int64_t deadline;

	memset(&c, 0, sizeof(c));
	assert_int_equal(tc_make_file(NULL, FILE_BYTES, path, sizeof(path)), 0);
	assert_int_equal(aioblk_disk_open(path, NULL, &c.disk), 0);
	c.n = 4096 / aioblk_disk_block_size(c.disk);
	c.buf = tc_alloc(4096, 4096);
	assert_non_null(c.buf);
	tc_fill(c.buf, 4096, 5);
	assert_int_equal(tc_group_create(group_flags, &c.g), 0);
	assert_int_equal(tc_group_create(0, &c.other), 0);
	assert_int_equal(aioblk_channel_create(c.g, c.disk, 8, &c.ch), 0);
	assert_int_equal(aioblk_channel_create(c.other, c.disk, 8, &c.other_ch), 0);

	switch (kind) {
	case KIND_WRITE:
		rc = aioblk_write(c.ch, c.buf, 0, c.n, reentry_cb, &c);
		break;
	case KIND_ZEROES:
		rc = aioblk_write_zeroes(c.ch, 0, c.n, reentry_cb, &c);
		break;
	default:
		rc = aioblk_reset(c.ch, reentry_cb, &c);
		break;
	}
	assert_int_equal(rc, 0);

	deadline = tc_now_ms() + 10000;
	while (c.ran == 0 && tc_now_ms() < deadline) {
		rc = use_wait ? aioblk_group_wait(c.g, 1000) : aioblk_group_poll(c.g, 0);
		assert_true(rc >= 0);
	}
	assert_int_equal(c.ran, 1);
	assert_int_equal(c.status, 0);
	assert_int_equal(c.rc_poll, -EBUSY);
	assert_int_equal(c.rc_wait, -EBUSY);
	assert_int_equal(c.rc_wait0, -EBUSY);
	assert_int_equal(c.rc_ch_destroy, -EBUSY);
	assert_int_equal(c.rc_group_destroy, -EBUSY);
	assert_int_equal(c.rc_ch_create, -EBUSY);
	assert_int_equal(c.rc_other_destroy, 0);
	assert_int_equal(c.rc_submit_io, 0);
	assert_true(c.rc_group_submit >= 0);

	/* The request submitted from the callback completes like any other. */
	assert_int_equal(tc_wait_count(c.g, &c.inner, 1, 10000), 0);
	assert_int_equal(c.inner.status, 0);
	assert_int_equal(c.inner.count, 1);
	assert_int_equal(aioblk_group_poll(c.g, 0), 0);
	if (group_flags & AIOBLK_GROUP_EVENTFD)
		assert_true(st_fd_settles(c.g));

	/* Outside the callback, the same calls work. */
	assert_int_equal(aioblk_channel_destroy(c.ch), 0);
	assert_int_equal(aioblk_group_destroy(c.g), 0);
	assert_null(c.other_ch);
	assert_int_equal(aioblk_group_destroy(c.other), 0);
	assert_int_equal(aioblk_disk_close(c.disk), 0);
	free(c.buf);
}

static void
test_reentry_from_io_callback(void **state)
{
	reentry_case(AIOBLK_GROUP_EVENTFD, KIND_WRITE, false);
	reentry_case(AIOBLK_GROUP_EVENTFD, KIND_WRITE, true);
	reentry_case(0, KIND_WRITE, false);
	reentry_case(0, KIND_WRITE, true);
}

static void
test_reentry_from_done_list_callback(void **state)
{
	reentry_case(AIOBLK_GROUP_EVENTFD, KIND_ZEROES, false);
	reentry_case(AIOBLK_GROUP_EVENTFD, KIND_ZEROES, true);
	reentry_case(0, KIND_ZEROES, true);
}

static void
test_reentry_from_reset_callback(void **state)
{
	reentry_case(AIOBLK_GROUP_EVENTFD, KIND_RESET, false);
	reentry_case(AIOBLK_GROUP_EVENTFD, KIND_RESET, true);
	reentry_case(0, KIND_RESET, true);
}

/*
 * A callback that keeps submitting: a chain of 1000 writes and reads, each
 * started by the previous one's callback, at full queue depth (the slot is
 * free again when the callback runs). Everything completes and verifies.
 */
struct chain {
	struct aioblk_channel *ch;
	unsigned char *bufs;
	uint64_t n;
	unsigned qd;
	unsigned left; /* requests still to start */
	unsigned done;
	unsigned errors;
	int submit_rc;
};

struct chain_req {
	struct chain *c;
	unsigned slot;
	unsigned seq;
	bool reading;
};

static struct chain_req chain_reqs[16];

static void chain_cb(void *arg, int status);

static int
chain_start(struct chain_req *r)
{
	struct chain *c = r->c;
	unsigned char *p = c->bufs + (size_t)r->slot * 4096;

	if (r->reading) {
		memset(p, 0, 4096);
		return aioblk_read(c->ch, p, (uint64_t)r->slot * c->n, c->n, chain_cb, r);
	}
	tc_fill(p, 4096, r->seq);
	return aioblk_write(c->ch, p, (uint64_t)r->slot * c->n, c->n, chain_cb, r);
}

static void
chain_cb(void *arg, int status)
{
	struct chain_req *r = arg;
	struct chain *c = r->c;
	int rc;

	c->done++;
	if (status != 0)
		c->errors++;
	if (r->reading && tc_check(c->bufs + (size_t)r->slot * 4096, 4096, r->seq) != -1)
		c->errors++;
	if (!c->left)
		return;
	c->left--;
	/* Alternate: a write, then the read that checks it, then a new write. */
	if (r->reading)
		r->seq += c->qd;
	r->reading = !r->reading;
	rc = chain_start(r);
	if (rc != 0 && c->submit_rc == 0)
		c->submit_rc = rc;
}

static void
chain_case(uint32_t group_flags)
{
	struct aioblk_disk *disk;
	struct aioblk_group *g;
	struct chain c;
	char path[256];
	unsigned i, total = 1000;
	int64_t deadline;

	memset(&c, 0, sizeof(c));
	c.qd = 16;
	assert_int_equal(tc_make_file(NULL, FILE_BYTES, path, sizeof(path)), 0);
	assert_int_equal(aioblk_disk_open(path, NULL, &disk), 0);
	assert_int_equal(tc_group_create(group_flags, &g), 0);
	assert_int_equal(aioblk_channel_create(g, disk, c.qd, &c.ch), 0);
	c.n = 4096 / aioblk_disk_block_size(disk);
	c.bufs = tc_alloc(4096, (size_t)c.qd * 4096);
	assert_non_null(c.bufs);
	c.left = total - c.qd;
	for (i = 0; i < c.qd; i++) {
		chain_reqs[i] = (struct chain_req){ .c = &c, .slot = i, .seq = i };
		assert_int_equal(chain_start(&chain_reqs[i]), 0);
	}
	deadline = tc_now_ms() + 20000;
	while (c.done < total && tc_now_ms() < deadline)
		assert_true(aioblk_group_wait(g, 1000) >= 0);
	assert_int_equal(c.submit_rc, 0);
	assert_int_equal(c.done, total);
	assert_int_equal(c.errors, 0);
	assert_int_equal(aioblk_channel_inflight(c.ch), 0);
	if (group_flags & AIOBLK_GROUP_EVENTFD)
		assert_true(st_fd_settles(g));
	assert_int_equal(aioblk_channel_destroy(c.ch), 0);
	assert_int_equal(aioblk_group_destroy(g), 0);
	assert_int_equal(aioblk_disk_close(disk), 0);
	free(c.bufs);
}

static void
test_submit_from_callbacks_at_full_depth(void **state)
{
	chain_case(AIOBLK_GROUP_EVENTFD);
	chain_case(0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reentry_from_io_callback),
		cmocka_unit_test(test_reentry_from_done_list_callback),
		cmocka_unit_test(test_reentry_from_reset_callback),
		cmocka_unit_test(test_submit_from_callbacks_at_full_depth),
	};

	return tc_run_group(tests, NULL, NULL);
}
