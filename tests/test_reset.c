/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Reset: completes once every request outstanding on any channel of the
 * disk at the moment of the reset has completed, and finishes under
 * continuous load from two threads (no livelock). It is accepted on a
 * channel whose queue is full of I/O, and a reset held up by another group
 * costs its eventfd group a bounded number of wake-ups, not one per I/O.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common.h"

static char path[256];
static struct aioblk_disk *disk;

static int
setup(void **state)
{
	(void)state;
	if (tc_make_file(NULL, 16 << 20, path, sizeof(path)))
		return -1;
	return aioblk_disk_open(path, NULL, &disk);
}

static int
teardown(void **state)
{
	(void)state;
	aioblk_disk_close(disk);
	unlink(path);
	return 0;
}

static void
test_reset_idle(void **state)
{
	struct aioblk_group *group;
	struct aioblk_channel *ch;
	struct tc_result r = { 1, 0 };

	(void)state;
	assert_int_equal(tc_group_create(0, &group), 0);
	assert_int_equal(aioblk_channel_create(group, disk, 4, &ch), 0);
	assert_int_equal(aioblk_reset(ch, tc_cb, &r), 0);
	assert_int_equal(r.count, 0); /* never from inside the call */
	assert_int_equal(aioblk_channel_inflight(ch), 1);
	assert_int_equal(aioblk_group_poll(group, 0), 1);
	assert_int_equal(r.count, 1);
	assert_int_equal(r.status, 0);
	assert_int_equal(aioblk_channel_inflight(ch), 0);
	assert_int_equal(aioblk_channel_destroy(ch), 0);
	assert_int_equal(aioblk_group_destroy(group), 0);
}

/* Requests of one channel: the reset's callback runs only after theirs. */
struct ordered {
	int done_before_reset;
	int requests_done;
	int resets_done;
};

static void
req_cb(void *arg, int status)
{
	struct ordered *o = arg;

	assert_int_equal(status, 0);
	o->requests_done++;
}

static void
reset_cb(void *arg, int status)
{
	struct ordered *o = arg;

	assert_int_equal(status, 0);
	o->done_before_reset = o->requests_done;
	o->resets_done++;
}

static void
test_reset_waits(void **state)
{
	enum { N = 32 };
	struct aioblk_group *group;
	struct aioblk_channel *ch, *ch2;
	struct ordered o = { 0 };
	struct tc_result after = { 0, 0 };
	unsigned char *buf = tc_alloc(4096, N * 4096);
	int i;

	(void)state;
	assert_non_null(buf);
	assert_int_equal(tc_group_create(0, &group), 0);
	assert_int_equal(aioblk_channel_create(group, disk, N + 2, &ch), 0);
	assert_int_equal(aioblk_channel_create(group, disk, N + 2, &ch2), 0);
	/* Half on each channel; the reset is issued on the first. */
	for (i = 0; i < N; i++)
		assert_int_equal(aioblk_write(i % 2 ? ch2 : ch, buf + i * 4096, (uint64_t)i * 8, 8, req_cb, &o), 0);
	assert_int_equal(aioblk_reset(ch, reset_cb, &o), 0);
	/* Issued after the reset: not waited for. */
	assert_int_equal(aioblk_read(ch2, buf, 0, 8, tc_cb, &after), 0);
	while (o.resets_done == 0)
		assert_true(aioblk_group_wait(group, 5000) > 0);
	assert_int_equal(o.done_before_reset, N);
	assert_int_equal(tc_wait_count(group, &after, 1, 10000), 0);
	assert_int_equal(aioblk_channel_destroy(ch), 0);
	assert_int_equal(aioblk_channel_destroy(ch2), 0);
	assert_int_equal(aioblk_group_destroy(group), 0);
	free(buf);
}

/*
 * Two threads keep their queues full. Each request carries a sequence
 * number; a thread marks done[seq] in its callback. Before a reset, the
 * resetting thread notes how many requests each thread had accepted; when
 * the reset's callback runs, all those must be marked done. Both threads
 * reset; every reset must finish while the load goes on.
 */
#define LOAD_QD 32
#define MAX_SEQ (1u << 20)
#define RESETS_PER_THREAD 50

struct loader {
	int id;
	struct aioblk_group *group;
	struct aioblk_channel *ch;
	unsigned char *buf;
	_Atomic uint32_t accepted;   /* sequence numbers 0..accepted-1 were accepted */
	_Atomic unsigned char *done; /* done[seq] set by the callback */
	struct loader *peer;
	int resets_done;
	int full_resets; /* resets issued while every request slot was taken */
	int violations;
	int errors;
	uint64_t rng;
};

struct slot {
	struct loader *l;
	uint32_t seq;
	unsigned index;
};

struct reset_check {
	struct loader *l;
	uint32_t own_mark, peer_mark;
};

static _Atomic int loaders_running;

static uint64_t
next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void load_cb(void *arg, int status);

static int
issue(struct slot *s)
{
	struct loader *l = s->l;
	uint32_t seq = atomic_load(&l->accepted);
	uint64_t blocks = aioblk_disk_num_blocks(disk) / 8;
	uint64_t off = (next_rand(&l->rng) % blocks) * 8;
	int rc;

	if (seq >= MAX_SEQ)
		return -ERANGE;
	s->seq = seq;
	rc = aioblk_read(l->ch, l->buf + (size_t)s->index * 4096, off, 8, load_cb, s);
	if (rc == 0)
		atomic_store(&l->accepted, seq + 1);
	return rc;
}

static void
load_cb(void *arg, int status)
{
	struct slot *s = arg;

	if (status)
		s->l->errors++;
	atomic_store_explicit(&s->l->done[s->seq], 1, memory_order_release);
	if (atomic_load(&loaders_running))
		issue(s);
}

static bool
all_done(struct loader *l, uint32_t mark)
{
	uint32_t i;

	for (i = 0; i < mark; i++)
		if (!atomic_load_explicit(&l->done[i], memory_order_acquire))
			return false;
	return true;
}

static void
check_reset_cb(void *arg, int status)
{
	struct reset_check *c = arg;

	if (status || !all_done(c->l, c->own_mark) || !all_done(c->l->peer, c->peer_mark))
		c->l->violations++;
	c->l->resets_done++;
}

static void *
loader_main(void *arg)
{
	struct loader *l = arg;
	struct slot slots[LOAD_QD];
	struct reset_check check;
	unsigned i;
	int r;

	for (i = 0; i < LOAD_QD; i++) {
		slots[i] = (struct slot){ l, 0, i };
		if (issue(&slots[i]))
			l->errors++;
	}
	for (r = 0; r < RESETS_PER_THREAD && !l->violations; r++) {
		int before = l->resets_done;
		struct timespec start, now;

		/* Let the load run a little, then reset in the middle of it. */
		for (i = 0; i < 20; i++)
			aioblk_group_poll(l->group, 0);
		check.l = l;
		check.own_mark = atomic_load(&l->accepted);
		check.peer_mark = atomic_load(&l->peer->accepted);
		if (aioblk_channel_inflight(l->ch) >= LOAD_QD)
			l->full_resets++;
		if (aioblk_reset(l->ch, check_reset_cb, &check)) {
			l->errors++;
			break;
		}
		clock_gettime(CLOCK_MONOTONIC, &start);
		while (l->resets_done == before) {
			aioblk_group_poll(l->group, 0);
			clock_gettime(CLOCK_MONOTONIC, &now);
			if (now.tv_sec - start.tv_sec > 20) {
				l->violations++; /* a reset that never finishes */
				break;
			}
		}
	}
	/* Stop issuing, then drain: the peer keeps polling until both are done. */
	atomic_fetch_sub(&loaders_running, 1);
	while (atomic_load(&loaders_running) > 0 || aioblk_channel_inflight(l->ch))
		aioblk_group_poll(l->group, 0);
	return NULL;
}

static void
test_reset_under_load(void **state)
{
	struct loader l[2];
	pthread_t t[2];
	int i;

	(void)state;
	memset(l, 0, sizeof(l));
	for (i = 0; i < 2; i++) {
		l[i].id = i;
		l[i].rng = 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1);
		l[i].done = calloc(MAX_SEQ, 1);
		l[i].buf = tc_alloc(4096, LOAD_QD * 4096);
		assert_non_null(l[i].done);
		assert_non_null(l[i].buf);
		assert_int_equal(tc_group_create(0, &l[i].group), 0);
		/* Exactly the load's depth: the resets are issued on a full channel. */
		assert_int_equal(aioblk_channel_create(l[i].group, disk, LOAD_QD, &l[i].ch), 0);
		l[i].peer = &l[1 - i];
	}
	/* 1: no loader has finished issuing yet (each subtracts one when it stops). */
	atomic_store(&loaders_running, 2);
	for (i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, loader_main, &l[i]), 0);
	for (i = 0; i < 2; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	for (i = 0; i < 2; i++) {
		printf("thread %d: %u requests, %d resets (%d on a full channel)\n", i,
		       (unsigned)atomic_load(&l[i].accepted), l[i].resets_done, l[i].full_resets);
		assert_true(l[i].full_resets > 0);
		assert_int_equal(l[i].violations, 0);
		assert_int_equal(l[i].errors, 0);
		assert_int_equal(l[i].resets_done, RESETS_PER_THREAD);
		assert_int_equal(aioblk_channel_inflight(l[i].ch), 0);
		assert_int_equal(aioblk_channel_destroy(l[i].ch), 0);
		assert_int_equal(aioblk_group_destroy(l[i].group), 0);
		free((void *)l[i].done);
		free(l[i].buf);
	}
}

/* What ran, in order: 'W' for the read, '1'.. for the resets. */
struct trail {
	char seen[16];
	int n;
};

struct mark {
	struct trail *t;
	char c;
};

static void
mark_cb(void *arg, int status)
{
	struct mark *m = arg;

	assert_int_equal(status, 0);
	assert_true(m->t->n < (int)sizeof(m->t->seen) - 1);
	m->t->seen[m->t->n++] = m->c;
}

/* Resets on one channel complete in the order they were issued, after what was outstanding before them. */
static void
test_resets_in_order(void **state)
{
	struct aioblk_group *group;
	struct aioblk_channel *ch;
	struct trail t = { { 0 }, 0 };
	struct mark w = { &t, 'W' }, m[3] = { { &t, '1' }, { &t, '2' }, { &t, '3' } };
	void *buf = tc_alloc(4096, 4096);
	int64_t deadline = tc_now_ms() + 10000;

	(void)state;
	assert_int_equal(tc_group_create(0, &group), 0);
	assert_int_equal(aioblk_channel_create(group, disk, 8, &ch), 0);
	assert_int_equal(aioblk_read(ch, buf, 0, 4096 / aioblk_disk_block_size(disk), mark_cb, &w), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(aioblk_reset(ch, mark_cb, &m[i]), 0);
	while (aioblk_channel_inflight(ch) && tc_now_ms() < deadline)
		assert_true(aioblk_group_poll(group, 0) >= 0);
	assert_string_equal(t.seen, "W123");
	assert_int_equal(aioblk_channel_destroy(ch), 0);
	assert_int_equal(aioblk_group_destroy(group), 0);
	free(buf);
}

/*
 * Resets issued from a reset's callback, forever: each poll still returns,
 * having run one or two of them (a reset issued during a poll may complete
 * in its last pass over the channels).
 */
struct chain {
	struct aioblk_channel *ch;
	int done, left;
};

static void
chain_cb(void *arg, int status)
{
	struct chain *c = arg;

	assert_int_equal(status, 0);
	c->done++;
	if (c->left-- > 0)
		assert_int_equal(aioblk_reset(c->ch, chain_cb, c), 0);
}

static void
check_reset_chain(uint32_t group_flags)
{
	struct aioblk_group *group;
	struct chain c = { NULL, 0, 1000000 };
	int rc, total = 0;

	assert_int_equal(tc_group_create(group_flags, &group), 0);
	assert_int_equal(aioblk_channel_create(group, disk, 4, &c.ch), 0);
	assert_int_equal(aioblk_reset(c.ch, chain_cb, &c), 0);
	for (int i = 1; i <= 5; i++) {
		rc = aioblk_group_poll(group, 0);
		assert_in_range(rc, 1, 2);
		total += rc;
		assert_int_equal(c.done, total);
	}
	c.left = 0;
	while (aioblk_channel_inflight(c.ch))
		assert_in_range(aioblk_group_poll(group, 0), 0, 2);
	assert_int_equal(aioblk_channel_destroy(c.ch), 0);
	assert_int_equal(aioblk_group_destroy(group), 0);
}

static void
test_reset_from_reset_callback(void **state)
{
	(void)state;
	check_reset_chain(0);
}

static void
test_reset_from_reset_callback_eventfd(void **state)
{
	(void)state;
	check_reset_chain(AIOBLK_GROUP_EVENTFD);
}

/*
 * A reset on eventfd group A is held up by a write on group B, which nobody
 * polls. Meanwhile group C runs continuous I/O on the same disk. C's
 * progress cannot finish A's reset, so it must not write A's eventfd: the
 * counter stays at the reset's own kick. When B is polled, A is woken once.
 */
static void
test_blocked_reset_wakes_bounded(void **state)
{
	enum { C_QD = 16 };
	struct aioblk_group *a, *b, *c;
	struct aioblk_channel *cha, *chb, *chc;
	struct tc_result w = { 0, 0 }, rs = { 0, 0 }, cr = { 0, 0 };
	unsigned char *buf;
	uint64_t value = 0, n = 4096 / aioblk_disk_block_size(disk), issued = 0;
	int64_t end;
	int efd, i;

	(void)state;
	buf = tc_alloc(4096, (C_QD + 1) * 4096);
	assert_non_null(buf);
	assert_int_equal(tc_group_create(AIOBLK_GROUP_EVENTFD, &a), 0);
	assert_int_equal(tc_group_create(0, &b), 0);
	assert_int_equal(tc_group_create(0, &c), 0);
	assert_int_equal(aioblk_channel_create(a, disk, 4, &cha), 0);
	assert_int_equal(aioblk_channel_create(b, disk, 4, &chb), 0);
	assert_int_equal(aioblk_channel_create(c, disk, C_QD, &chc), 0);
	efd = aioblk_group_fd(a);

	/* C is busy before the reset too, so that its oldest request is older than it. */
	for (i = 0; i < C_QD; i++, issued++)
		assert_int_equal(aioblk_read(chc, buf + (size_t)i * 4096, (issued % 64) * n, n, tc_cb, &cr), 0);
	assert_int_equal(aioblk_group_submit(c), C_QD);
	assert_int_equal(aioblk_write(chb, buf + C_QD * 4096, 0, n, tc_cb, &w), 0);
	assert_int_equal(aioblk_group_submit(b), 1);
	assert_int_equal(aioblk_reset(cha, tc_cb, &rs), 0);

	end = tc_now_ms() + 1000;
	while (tc_now_ms() < end) {
		int before = cr.count;

		assert_true(aioblk_group_poll(c, 0) >= 0);
		for (i = before; i < cr.count; i++, issued++)
			assert_int_equal(
				aioblk_read(chc, buf + (issued % C_QD) * 4096, (issued % 64) * n, n, tc_cb, &cr), 0);
	}
	assert_int_equal(cr.status, 0);
	assert_int_equal(rs.count, 0);
	/* Only the reset's own kick: nothing C did could finish it. */
	assert_int_equal(read(efd, &value, sizeof(value)), (ssize_t)sizeof(value));
	print_message("%llu reads on C, %llu eventfd signals to A\n", (unsigned long long)issued,
		      (unsigned long long)value);
	assert_true(issued > 1000);
	assert_true(value <= 2);

	/* B's write completes: now A's reset can finish, and A is told. */
	assert_int_equal(tc_wait_count(b, &w, 1, 10000), 0);
	assert_int_equal(tc_wait_count(a, &rs, 1, 10000), 0);
	assert_int_equal(rs.status, 0);

	while (aioblk_channel_inflight(chc))
		assert_true(aioblk_group_poll(c, 0) >= 0);
	assert_int_equal(aioblk_channel_destroy(cha), 0);
	assert_int_equal(aioblk_channel_destroy(chb), 0);
	assert_int_equal(aioblk_channel_destroy(chc), 0);
	assert_int_equal(aioblk_group_destroy(a), 0);
	assert_int_equal(aioblk_group_destroy(b), 0);
	assert_int_equal(aioblk_group_destroy(c), 0);
	free(buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reset_idle),
		cmocka_unit_test(test_reset_waits),
		cmocka_unit_test(test_reset_under_load),
		cmocka_unit_test(test_resets_in_order),
		cmocka_unit_test(test_reset_from_reset_callback),
		cmocka_unit_test(test_reset_from_reset_callback_eventfd),
		cmocka_unit_test(test_blocked_reset_wakes_bounded),
	};

	return tc_run_group(tests, setup, teardown);
}
