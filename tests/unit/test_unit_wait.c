/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * AIOBLK_GROUP_WAIT_IN_KERNEL: a busy-poll group whose wait sleeps in
 * io_getevents(2) on a context with requests in the kernel. With the fake
 * kernel holding completions back (fake_hold), each case checks what the
 * wait asked io_getevents for (min_nr, nr, the timeout), that the event it
 * took is run by a poll exactly once and in ring order (also with the
 * ring's events behind it, a short read continued, a ring reaped with
 * io_getevents, a callback that issues more), the 100 us cap while
 * anything else is outstanding (an iocb still queued, another channel's
 * context, a library thread's work), no sleep while a completion is
 * already in hand, errors and EINTR of the sleep, that a group without the
 * flag never sleeps there, and the flags refused at create.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common.h"
#include "fake_sys.h"
#include "fixture.h"

#define FILE_BYTES (1024u * 1024u)
#define LEN 8192u /* one request */
#define NREQ 8
#define QD 4
#define CAP_NS 100000 /* the longest sleep while something else is outstanding */
#define MS 1000000LL
/* A hang (an event lost, a wait that never returns) kills the program instead of meson's timeout. */
#define ALARM_S 30

struct ctx;

/* One request: how often its callback ran, with what, and where in the order of all callbacks. */
struct rec {
	struct ctx *c;
	int idx;
	int count;
	int status;
	/* From inside the callback: issue this one too (once). */
	struct rec *then;
};

struct ctx {
	struct fx fx;
	char *buf; /* NREQ * LEN */
	struct rec recs[NREQ];
	int order[64];
	int norder;
	int resubmit_rc;
	/* A second disk and channel in the group (two_channels), undone by teardown. */
	char path2[256];
	struct aioblk_disk *disk2;
	struct aioblk_channel *ch2;
};

static uint64_t
blocks(const struct ctx *c, uint64_t bytes)
{
	return bytes / c->fx.bs;
}

static uint64_t
off_of(int idx)
{
	return (uint64_t)idx * LEN * 2 + 4096; /* spread out, none at 0 */
}

static void rec_cb(void *arg, int status);

static int
read_rec(struct ctx *c, struct aioblk_channel *ch, struct rec *r)
{
	return aioblk_read(ch, c->buf + (size_t)r->idx * LEN, blocks(c, off_of(r->idx)), blocks(c, LEN), rec_cb, r);
}

static void
rec_cb(void *arg, int status)
{
	struct rec *r = arg;
	struct ctx *c = r->c;

	r->count++;
	r->status = status;
	if (c->norder < (int)(sizeof(c->order) / sizeof(c->order[0])))
		c->order[c->norder] = r->idx;
	c->norder++;
	if (r->then) {
		struct rec *next = r->then;

		r->then = NULL;
		c->resubmit_rc = read_rec(c, c->fx.ch, next);
	}
}

static struct ctx *
make(uint32_t group_flags)
{
	struct ctx *c = calloc(1, sizeof(*c));
	char *pattern;
	int i;

	assert_non_null(c);
	fake_reset();
	fake_kernel(true, false);
	aioblk_set_log_fn(fake_log_fn, NULL);
	assert_int_equal(fx_open(&c->fx, FILE_BYTES, 0, group_flags, QD), 0);
	c->buf = tc_alloc(4096, (size_t)NREQ * LEN);
	pattern = tc_alloc(4096, LEN);
	assert_non_null(c->buf);
	assert_non_null(pattern);
	memset(c->buf, 0xee, (size_t)NREQ * LEN);
	/* Each request's range holds its own pattern, written behind the library. */
	for (i = 0; i < NREQ; i++) {
		tc_fill(pattern, LEN, 100 + (uint64_t)i);
		assert_int_equal(pwrite(c->fx.fd, pattern, LEN, (off_t)off_of(i)), LEN);
		c->recs[i].c = c;
		c->recs[i].idx = i;
	}
	assert_int_equal(fsync(c->fx.fd), 0);
	free(pattern);
	alarm(ALARM_S);
	return c;
}

static int
setup_wik(void **state)
{
	*state = make(AIOBLK_GROUP_WAIT_IN_KERNEL);
	return 0;
}

static int
setup_plain(void **state)
{
	*state = make(0);
	return 0;
}

static int
teardown(void **state)
{
	struct ctx *c = *state;

	/* Whatever a failed case left held or waiting is let go, so that fx_close can drain it. */
	fake_fdatasync_gate(false);
	fake_hold(FAKE_HOLD_OFF);
	if (c->ch2) {
		int64_t deadline = tc_now_ms() + 3000;

		while (aioblk_channel_inflight(c->ch2) && tc_now_ms() < deadline)
			aioblk_group_poll(c->fx.group, 0);
		assert_int_equal(aioblk_channel_destroy(c->ch2), 0);
	}
	if (c->disk2)
		assert_int_equal(aioblk_disk_close(c->disk2), 0);
	if (c->path2[0])
		unlink(c->path2);
	fx_close(&c->fx);
	assert_int_equal(fake_pending(), 0);
	alarm(0);
	aioblk_set_log_fn(NULL, NULL);
	fake_reset();
	free(c->buf);
	free(c);
	return 0;
}

/* Request @idx ran exactly once, successfully, and its buffer holds its range of the file. */
static void
assert_read_ok(const struct ctx *c, int idx)
{
	assert_int_equal(c->recs[idx].count, 1);
	assert_int_equal(c->recs[idx].status, 0);
	assert_int_equal(tc_check(c->buf + (size_t)idx * LEN, LEN, 100 + (uint64_t)idx), -1);
}

/* Nothing left anywhere, and one more poll runs nothing again. */
static void
assert_idle(struct ctx *c)
{
	int before = c->norder;

	assert_int_equal(aioblk_group_poll(c->fx.group, 0), 0);
	assert_int_equal(c->norder, before);
	assert_int_equal(aioblk_channel_inflight(c->fx.ch), 0);
	assert_int_equal(fake_pending(), 0);
}

/*
 * Every call that may sleep had a timeout, and none longer than @max_ns.
 * One wait may make one call of timeout 0: the deadline passes between the
 * wait's check of it and the sleep's reading of the clock.
 */
static void
assert_timeouts_within(int64_t max_ns)
{
	assert_int_equal(fake_getevents_sum.no_timeout, 0);
	assert_true(fake_getevents_sum.min_timeout_ns >= 0);
	assert_true(fake_getevents_sum.zero_timeout <= 1);
	assert_true(fake_getevents_sum.max_timeout_ns <= max_ns);
}

/*
 * A timed case can be robbed of its sleeps by the scheduler (a thread
 * preempted past the deadline right after its first poll returns without
 * sleeping): what must be seen at least once is tried this many times,
 * while what must always hold is checked on every try.
 */
#define TRIES 3

/* One read held until the wait sleeps: one io_getevents (1, 1, no timeout), the callback once. */
static void
one_held_read(void **state)
{
	struct ctx *c = *state;

	fake_hold(FAKE_HOLD_UNTIL_WAIT);
	assert_int_equal(read_rec(c, c->fx.ch, &c->recs[0]), 0);
	assert_int_equal(aioblk_group_wait(c->fx.group, -1), 1);
	assert_read_ok(c, 0);
	assert_int_equal(fake_calls[FAKE_IO_GETEVENTS], 1);
	assert_int_equal(fake_getevents_last.min_nr, 1);
	assert_int_equal(fake_getevents_last.nr, 1);
	assert_int_equal(fake_getevents_last.timeout_ns, -1);
	/* It slept with the read in the kernel, not before submitting it. */
	assert_int_equal(fake_getevents_last.submitted, 1);
	assert_int_equal(fake_getevents_last.held, 1);
	assert_int_equal(fake_getevents_sum.would_hang, 0);
	assert_idle(c);
}

/* QD 4 held, one finishing per sleep: each wait runs the next one, in submission order, each once. */
static void
held_reads_one_per_sleep(void **state)
{
	struct ctx *c = *state;
	int i, j;

	fake_hold(FAKE_HOLD_UNTIL_WAIT);
	for (i = 0; i < QD; i++)
		assert_int_equal(read_rec(c, c->fx.ch, &c->recs[i]), 0);
	for (i = 0; i < QD; i++) {
		assert_int_equal(aioblk_group_wait(c->fx.group, -1), 1);
		assert_int_equal(c->norder, i + 1);
		assert_int_equal(c->order[i], i);
		assert_read_ok(c, i);
		for (j = i + 1; j < QD; j++)
			assert_int_equal(c->recs[j].count, 0);
		assert_int_equal(fake_held(), QD - 1 - i);
		assert_int_equal(aioblk_channel_inflight(c->fx.ch), QD - 1 - i);
		assert_int_equal(fake_calls[FAKE_IO_GETEVENTS], i + 1);
		assert_int_equal(fake_getevents_last.timeout_ns, -1);
	}
	assert_int_equal(fake_getevents_sum.no_timeout, QD);
	assert_int_equal(fake_getevents_sum.would_hang, 0);
	assert_idle(c);
}

/*
 * All four finish during one sleep: io_getevents returns the first (nr 1),
 * the other three stay in the ring. The poll after it runs the one the
 * wait took first, then the ring's: submission order, each once.
 */
static void
held_reads_all_in_one_sleep(void **state)
{
	struct ctx *c = *state;
	int i;

	fake_hold(FAKE_HOLD_UNTIL_WAIT);
	fake_wake_posts(QD);
	for (i = 0; i < QD; i++)
		assert_int_equal(read_rec(c, c->fx.ch, &c->recs[i]), 0);
	assert_int_equal(aioblk_group_wait(c->fx.group, -1), QD);
	assert_int_equal(c->norder, QD);
	for (i = 0; i < QD; i++) {
		assert_int_equal(c->order[i], i);
		assert_read_ok(c, i);
	}
	assert_int_equal(fake_calls[FAKE_IO_GETEVENTS], 1);
	assert_idle(c);
}

/* Completions already in the ring: the wait's first poll runs them, no sleep. */
static void
posted_before_wait_no_sleep(void **state)
{
	struct ctx *c = *state;

	fake_hold(FAKE_HOLD_FOREVER);
	assert_int_equal(read_rec(c, c->fx.ch, &c->recs[0]), 0);
	assert_int_equal(read_rec(c, c->fx.ch, &c->recs[1]), 0);
	assert_int_equal(aioblk_group_submit(c->fx.group), 2);
	assert_int_equal(fake_release(2), 2);
	assert_int_equal(aioblk_group_wait(c->fx.group, -1), 2);
	assert_int_equal(c->order[0], 0);
	assert_int_equal(c->order[1], 1);
	assert_read_ok(c, 0);
	assert_read_ok(c, 1);
	assert_int_equal(fake_calls[FAKE_IO_GETEVENTS], 0);
	/* Timeout 0 polls once: no sleep either, even with a request in the kernel. */
	fake_hold(FAKE_HOLD_UNTIL_WAIT);
	assert_int_equal(read_rec(c, c->fx.ch, &c->recs[2]), 0);
	assert_int_equal(aioblk_group_wait(c->fx.group, 0), 0);
	assert_int_equal(fake_calls[FAKE_IO_GETEVENTS], 0);
	assert_int_equal(c->recs[2].count, 0);
	assert_int_equal(aioblk_group_wait(c->fx.group, -1), 1);
	assert_read_ok(c, 2);
	assert_idle(c);
}

/* Nothing finishes: the wait returns 0 at its deadline, never earlier, each sleep bounded by it. */
static void
timeout_bounds_the_sleep(void **state)
{
	struct ctx *c = *state;
	int64_t t0, elapsed;
	bool slept = false;
	int try;

	fake_hold(FAKE_HOLD_FOREVER);
	assert_int_equal(read_rec(c, c->fx.ch, &c->recs[0]), 0);
	for (try = 0; try < TRIES && !slept; try++) {
		fake_getevents_clear();
		t0 = tc_now_ns();
		assert_int_equal(aioblk_group_wait(c->fx.group, 30), 0);
		elapsed = tc_now_ns() - t0;
		assert_true(elapsed >= 30 * MS);
		assert_int_equal(c->recs[0].count, 0);
		assert_timeouts_within(30 * MS);
		/* Slept at once, for (nearly) all of it: nothing else is outstanding, no cap. */
		slept = fake_ngetevents > 0 && fake_getevents_log[0].min_nr == 1 && fake_getevents_log[0].nr == 1 &&
			fake_getevents_log[0].timeout_ns > CAP_NS;
	}
	assert_true(slept);
	/* It finishes: the next wait runs it. */
	assert_int_equal(fake_release(1), 1);
	assert_int_equal(aioblk_group_wait(c->fx.group, 30), 1);
	assert_read_ok(c, 0);
	assert_idle(c);
}

/* The longest sleep that any call made while io_submit had seen fewer than @submitted iocbs. */
static int64_t
longest_sleep_before(unsigned submitted, unsigned *calls)
{
	int64_t longest = 0;
	unsigned i, n = fake_ngetevents < FAKE_GETEVENTS_LOG_MAX ? fake_ngetevents : FAKE_GETEVENTS_LOG_MAX;

	*calls = 0;
	for (i = 0; i < n; i++) {
		const struct fake_getevents *g = &fake_getevents_log[i];

		if (g->min_nr < 1 || g->submitted >= submitted)
			continue;
		(*calls)++;
		if (g->timeout_ns < 0)
			return INT64_MAX; /* no timeout at all */
		if (g->timeout_ns > longest)
			longest = g->timeout_ns;
	}
	return longest;
}

/*
 * Two reads, of which io_submit takes one, then none for a while; nothing
 * finishes during the 20 ms wait. Returns whether the wait slept at least
 * once before the second went in; checks every such sleep was capped.
 */
static bool
queued_iocb_try(struct ctx *c)
{
	int script[40];
	unsigned i, calls, first = fake_nlog;

	script[0] = 1;
	for (i = 1; i < sizeof(script) / sizeof(script[0]); i++)
		script[i] = 0;
	fake_submit_script(script, sizeof(script) / sizeof(script[0]));
	fake_getevents_clear();
	c->recs[0].count = c->recs[1].count = 0;
	c->norder = 0;
	memset(c->buf, 0xee, 2 * LEN);
	fake_hold(FAKE_HOLD_FOREVER);
	assert_int_equal(read_rec(c, c->fx.ch, &c->recs[0]), 0);
	assert_int_equal(read_rec(c, c->fx.ch, &c->recs[1]), 0);
	assert_int_equal(aioblk_group_wait(c->fx.group, 20), 0);
	assert_true(longest_sleep_before(first + 2, &calls) <= CAP_NS);
	/* The queued one reaches the kernel once the kernel takes it (the wait's polls retry). */
	for (i = 0; i < 100 && fake_nlog < first + 2; i++) {
		assert_int_equal(aioblk_group_wait(c->fx.group, 5), 0);
		assert_true(longest_sleep_before(first + 2, &calls) <= CAP_NS);
	}
	assert_int_equal(fake_nlog, first + 2);
	assert_int_equal(fake_held(), 2);
	assert_int_equal(fake_release(UINT_MAX), 2);
	while (c->norder < 2)
		assert_true(aioblk_group_wait(c->fx.group, 1000) >= 1);
	assert_int_equal(c->order[0], 0);
	assert_int_equal(c->order[1], 1);
	assert_read_ok(c, 0);
	assert_read_ok(c, 1);
	assert_idle(c);
	return calls > 0;
}

/*
 * An iocb queued but not in the kernel: no completion of the context
 * announces it, so every sleep meanwhile lasts at most 100 us; then it
 * goes in and completes.
 */
static void
queued_iocb_caps_the_sleep(void **state)
{
	struct ctx *c = *state;
	bool seen = false;
	int try;

	for (try = 0; try < TRIES && !seen; try++)
		seen = queued_iocb_try(c);
	assert_true(seen);
}

/*
 * A second disk and channel in the same group, each with a request held.
 * A plain group has a context per channel: a sleep on one context cannot
 * see the other's completion, so each lasts at most 100 us. A shared group
 * has one context for both: it sleeps for the whole timeout.
 */
static void
two_channels(void **state)
{
	struct ctx *c = *state;
	char *pattern = tc_alloc(4096, LEN);
	bool seen = false;
	int fd2, try;

	assert_non_null(pattern);
	assert_int_equal(tc_make_file(NULL, FILE_BYTES, c->path2, sizeof(c->path2)), 0);
	/* The second disk holds the same pattern at the same place. */
	fd2 = open(c->path2, O_WRONLY | O_CLOEXEC);
	assert_true(fd2 >= 0);
	tc_fill(pattern, LEN, 101);
	assert_int_equal(pwrite(fd2, pattern, LEN, (off_t)off_of(1)), LEN);
	assert_int_equal(fsync(fd2), 0);
	close(fd2);
	free(pattern);
	assert_int_equal(aioblk_disk_open(c->path2, NULL, &c->disk2), 0);
	assert_int_equal(aioblk_channel_create(c->fx.group, c->disk2, QD, &c->ch2), 0);

	fake_hold(FAKE_HOLD_FOREVER);
	assert_int_equal(read_rec(c, c->fx.ch, &c->recs[0]), 0);
	assert_int_equal(read_rec(c, c->ch2, &c->recs[1]), 0);
	for (try = 0; try < TRIES && !seen; try++) {
		fake_getevents_clear();
		assert_int_equal(aioblk_group_wait(c->fx.group, 20), 0);
		assert_int_equal(fake_nlog, 2);
		assert_timeouts_within(tc_shared_groups() ? 20 * MS : CAP_NS);
		seen = tc_shared_groups() ? fake_getevents_sum.max_timeout_ns > CAP_NS :
					    fake_getevents_sum.blocking > 0;
	}
	assert_true(seen);
	/* Both finish: each is run once, whichever context the sleeps were on. */
	assert_int_equal(fake_release(UINT_MAX), 2);
	while (c->norder < 2)
		assert_true(aioblk_group_wait(c->fx.group, 1000) >= 1);
	assert_int_equal(c->norder, 2);
	assert_read_ok(c, 0);
	assert_read_ok(c, 1);
	assert_int_equal(aioblk_channel_inflight(c->ch2), 0);
	assert_idle(c);
}

/*
 * A completion the library already holds (a read io_submit refused, run by
 * the next poll) is run at once: the wait does not sleep in the kernel
 * first, though another read is held there.
 */
static void
refused_read_runs_before_sleeping(void **state)
{
	struct ctx *c = *state;

	fake_hold(FAKE_HOLD_FOREVER);
	assert_int_equal(read_rec(c, c->fx.ch, &c->recs[0]), 0);
	assert_int_equal(aioblk_group_submit(c->fx.group), 1);
	fake_refuse_offset(off_of(1), -EINVAL, 1);
	assert_int_equal(read_rec(c, c->fx.ch, &c->recs[1]), 0);
	assert_int_equal(aioblk_group_wait(c->fx.group, 1000), 1);
	assert_int_equal(c->recs[1].count, 1);
	assert_int_equal(c->recs[1].status, -EINVAL);
	assert_int_equal(c->recs[0].count, 0);
	assert_int_equal(fake_calls[FAKE_IO_GETEVENTS], 0);
	/* Then the held one, in the kernel alone now: a sleep with no timeout. */
	fake_hold(FAKE_HOLD_UNTIL_WAIT);
	assert_int_equal(aioblk_group_wait(c->fx.group, -1), 1);
	assert_read_ok(c, 0);
	assert_int_equal(fake_calls[FAKE_IO_GETEVENTS], 1);
	assert_int_equal(fake_getevents_last.timeout_ns, -1);
	assert_idle(c);
}

/*
 * Work of the library's threads (the fdatasync a refused flush falls back
 * to, kept waiting at the fake's gate) while a read is held in the kernel:
 * its completion comes through the group's inbox, which no io_getevents
 * announces, so every sleep until it ran lasts at most 100 us.
 */
static void
thread_work_caps_the_sleep(void **state)
{
	struct ctx *c = *state;
	struct rec *f = &c->recs[1];
	bool seen = false;
	int i, rc, try;

	fake_hold(FAKE_HOLD_FOREVER);
	fake_fdatasync_gate(true);
	assert_int_equal(read_rec(c, c->fx.ch, &c->recs[0]), 0);
	fake_refuse_offset(FAKE_FLUSH, -EINVAL, 1);
	assert_int_equal(aioblk_flush(c->fx.ch, rec_cb, f), 0);
	assert_int_equal(aioblk_group_submit(c->fx.group), 1);
	assert_true(fake_log_has("using fdatasync"));
	for (try = 0; try < TRIES && !seen; try++) {
		fake_getevents_clear();
		assert_int_equal(aioblk_group_wait(c->fx.group, 20), 0);
		assert_timeouts_within(CAP_NS);
		seen = fake_getevents_sum.blocking > 0;
	}
	assert_true(seen);
	assert_int_equal(f->count, 0);
	for (i = 0; i < 5000 && fake_fdatasync_waiting() == 0; i++)
		usleep(1000);
	assert_int_equal(fake_fdatasync_waiting(), 1);
	/* It finishes: a wait runs it, the read still held; the sleeps stayed capped. */
	fake_fdatasync_gate(false);
	for (i = 0; i < 1000 && !f->count; i++) {
		fake_getevents_clear();
		rc = aioblk_group_wait(c->fx.group, 100);
		assert_true(rc == 0 || rc == 1);
		assert_timeouts_within(CAP_NS);
	}
	assert_int_equal(f->count, 1);
	assert_int_equal(f->status, 0);
	assert_int_equal(c->recs[0].count, 0);
	/* The read alone is left: the next sleep has no timeout. */
	fake_hold(FAKE_HOLD_UNTIL_WAIT);
	assert_int_equal(aioblk_group_wait(c->fx.group, -1), 1);
	assert_int_equal(fake_getevents_last.timeout_ns, -1);
	assert_read_ok(c, 0);
	assert_idle(c);
}

/*
 * A reset waiting for a read held in the kernel: no sleep without a bound
 * meanwhile, and the reset runs after the read, each once.
 */
static void
reset_waits_for_held_read(void **state)
{
	struct ctx *c = *state;
	struct rec *r = &c->recs[1];

	fake_hold(FAKE_HOLD_FOREVER);
	assert_int_equal(read_rec(c, c->fx.ch, &c->recs[0]), 0);
	assert_int_equal(aioblk_group_submit(c->fx.group), 1);
	assert_int_equal(aioblk_reset(c->fx.ch, rec_cb, r), 0);
	assert_int_equal(aioblk_group_wait(c->fx.group, 20), 0);
	assert_int_equal(r->count, 0);
	assert_int_equal(c->recs[0].count, 0);
	/* The wait slept (a pending reset is no work for a poll), 100 us at a time: only a poll runs the read's completion. */
	assert_true(fake_getevents_sum.blocking > 0);
	assert_timeouts_within(CAP_NS);
	assert_int_equal(fake_release(1), 1);
	while (c->norder < 2)
		assert_true(aioblk_group_wait(c->fx.group, 1000) >= 1);
	assert_int_equal(c->order[0], 0);
	assert_int_equal(c->order[1], 1);
	assert_read_ok(c, 0);
	assert_int_equal(r->count, 1);
	assert_int_equal(r->status, 0);
	assert_idle(c);
}

/*
 * A short read taken by a sleep: the poll after it sends the rest, the
 * wait sleeps again for that, and the callback runs once, for all of it.
 */
static void
short_read_continued_across_sleeps(void **state)
{
	struct ctx *c = *state;

	fake_hold(FAKE_HOLD_UNTIL_WAIT);
	fake_result(off_of(0), 4096, 1, 0);
	assert_int_equal(read_rec(c, c->fx.ch, &c->recs[0]), 0);
	assert_int_equal(aioblk_group_wait(c->fx.group, -1), 1);
	assert_read_ok(c, 0);
	assert_int_equal(fake_nlog, 2);
	assert_int_equal(fake_log[1].offset, off_of(0) + 4096);
	assert_int_equal(fake_calls[FAKE_IO_GETEVENTS], 2);
	assert_int_equal(fake_getevents_sum.no_timeout, 2);
	assert_idle(c);
}

/*
 * A ring whose header is not the one the library knows: it reaps with
 * io_getevents (min_nr 0, which never takes a held event here) and still
 * sleeps with min_nr 1; the event that sleep took is run once.
 */
static int
setup_bad_magic(void **state)
{
	struct ctx *c = make(AIOBLK_GROUP_WAIT_IN_KERNEL);

	/* make() opened the fake rings with a good magic: again, with a bad one. */
	fx_close(&c->fx);
	fake_kernel(true, true);
	assert_int_equal(fx_open(&c->fx, FILE_BYTES, 0, AIOBLK_GROUP_WAIT_IN_KERNEL, QD), 0);
	for (int i = 0; i < NREQ; i++) {
		char *pattern = tc_alloc(4096, LEN);

		assert_non_null(pattern);
		tc_fill(pattern, LEN, 100 + (uint64_t)i);
		assert_int_equal(pwrite(c->fx.fd, pattern, LEN, (off_t)off_of(i)), LEN);
		free(pattern);
	}
	*state = c;
	return 0;
}

static void
bad_magic_ring_sleeps_too(void **state)
{
	struct ctx *c = *state;
	int i;

	fake_hold(FAKE_HOLD_UNTIL_WAIT);
	for (i = 0; i < 3; i++)
		assert_int_equal(read_rec(c, c->fx.ch, &c->recs[i]), 0);
	for (i = 0; i < 3; i++) {
		fake_getevents_clear();
		assert_int_equal(aioblk_group_wait(c->fx.group, -1), 1);
		assert_int_equal(c->order[i], i);
		assert_read_ok(c, i);
		/* The reaps did not sleep; the one sleep had no timeout. */
		assert_int_equal(fake_getevents_sum.blocking, 1);
		assert_int_equal(fake_getevents_sum.no_timeout, 1);
		assert_true(fake_ngetevents > 1);
	}
	assert_true(fake_log_has("reaping with io_getevents"));
	assert_int_equal(fake_getevents_sum.would_hang, 0);
	assert_idle(c);
}

/* An error of the sleep is returned (and logged); the request still completes once, later. */
static void
getevents_error_returned(void **state)
{
	struct ctx *c = *state;

	fake_hold(FAKE_HOLD_UNTIL_WAIT);
	assert_int_equal(read_rec(c, c->fx.ch, &c->recs[0]), 0);
	fake_fail(FAKE_IO_GETEVENTS, -EIO, 1);
	assert_int_equal(aioblk_group_wait(c->fx.group, -1), -EIO);
	assert_int_equal(c->recs[0].count, 0);
	assert_true(fake_log_has("io_getevents failed"));
	assert_int_equal(aioblk_channel_inflight(c->fx.ch), 1);
	assert_int_equal(aioblk_group_wait(c->fx.group, -1), 1);
	assert_read_ok(c, 0);
	assert_int_equal(fake_calls[FAKE_IO_GETEVENTS], 2);
	assert_idle(c);
}

/* EINTR is a wake-up: the wait polls and sleeps again, and returns the completion. */
static void
getevents_eintr_goes_on(void **state)
{
	struct ctx *c = *state;

	fake_hold(FAKE_HOLD_UNTIL_WAIT);
	assert_int_equal(read_rec(c, c->fx.ch, &c->recs[0]), 0);
	fake_fail(FAKE_IO_GETEVENTS, -EINTR, 3);
	assert_int_equal(aioblk_group_wait(c->fx.group, -1), 1);
	assert_read_ok(c, 0);
	assert_int_equal(fake_calls[FAKE_IO_GETEVENTS], 4);
	assert_int_equal(fake_getevents_sum.no_timeout, 4);
	assert_false(fake_log_has("io_getevents failed"));
	assert_idle(c);
}

/* Without the flag a wait spins: never io_getevents, whatever is held. */
static void
no_flag_never_sleeps_in_kernel(void **state)
{
	struct ctx *c = *state;
	int64_t t0;

	fake_hold(FAKE_HOLD_FOREVER);
	assert_int_equal(read_rec(c, c->fx.ch, &c->recs[0]), 0);
	t0 = tc_now_ns();
	assert_int_equal(aioblk_group_wait(c->fx.group, 20), 0);
	assert_true(tc_now_ns() - t0 >= 20 * MS);
	assert_int_equal(fake_calls[FAKE_IO_GETEVENTS], 0);
	/* Even one that would be handed the completion. */
	fake_hold(FAKE_HOLD_UNTIL_WAIT);
	assert_int_equal(aioblk_group_wait(c->fx.group, 20), 0);
	assert_int_equal(fake_calls[FAKE_IO_GETEVENTS], 0);
	assert_int_equal(c->recs[0].count, 0);
	assert_int_equal(fake_release(1), 1);
	assert_int_equal(aioblk_group_wait(c->fx.group, 20), 1);
	assert_read_ok(c, 0);
	assert_int_equal(fake_calls[FAKE_IO_GETEVENTS], 0);
	assert_idle(c);
}

/* EVENTFD with WAIT_IN_KERNEL is refused by both create calls; the flag alone (and with SHARED) is taken. */
static void
eventfd_with_flag_refused(void **state)
{
	struct aioblk_group_opts opts = { .flags = AIOBLK_GROUP_EVENTFD | AIOBLK_GROUP_WAIT_IN_KERNEL };
	struct aioblk_group *g = NULL;

	(void)state;
	fake_reset();
	assert_int_equal(aioblk_group_create(AIOBLK_GROUP_EVENTFD | AIOBLK_GROUP_WAIT_IN_KERNEL, &g), -EINVAL);
	assert_null(g);
	assert_int_equal(aioblk_group_create_ext(&opts, &g), -EINVAL);
	assert_null(g);
	opts.flags |= AIOBLK_GROUP_SHARED_CONTEXT;
	opts.queue_depth = 8;
	assert_int_equal(aioblk_group_create_ext(&opts, &g), -EINVAL);
	assert_null(g);
	assert_int_equal(aioblk_group_create(
				 AIOBLK_GROUP_EVENTFD | AIOBLK_GROUP_SHARED_CONTEXT | AIOBLK_GROUP_WAIT_IN_KERNEL, &g),
			 -EINVAL);
	assert_null(g);
	/* Nothing was made on the way: no eventfd, no context. */
	assert_int_equal(fake_calls[FAKE_EVENTFD], 0);
	assert_int_equal(fake_calls[FAKE_IO_SETUP], 0);
	assert_int_equal(aioblk_group_create(AIOBLK_GROUP_WAIT_IN_KERNEL, &g), 0);
	assert_non_null(g);
	assert_int_equal(aioblk_group_destroy(g), 0);
	g = NULL;
	opts.flags = AIOBLK_GROUP_WAIT_IN_KERNEL | AIOBLK_GROUP_SHARED_CONTEXT;
	assert_int_equal(aioblk_group_create_ext(&opts, &g), 0);
	assert_non_null(g);
	assert_int_equal(aioblk_group_destroy(g), 0);
	fake_reset();
}

/*
 * A callback that issues a read from inside the wait: that one is waited
 * for too (a later wait sleeps for it), and nothing runs twice.
 */
static void
resubmit_from_callback(void **state)
{
	struct ctx *c = *state;
	int i, total = 0, rc;

	fake_hold(FAKE_HOLD_UNTIL_WAIT);
	/* A chain: 0 issues 1, 1 issues 2, ... */
	for (i = 0; i + 1 < NREQ; i++)
		c->recs[i].then = &c->recs[i + 1];
	assert_int_equal(read_rec(c, c->fx.ch, &c->recs[0]), 0);
	while (total < NREQ) {
		rc = aioblk_group_wait(c->fx.group, -1);
		assert_true(rc >= 1);
		total += rc;
		assert_int_equal(c->resubmit_rc, 0);
		assert_int_equal(c->norder, total);
	}
	assert_int_equal(total, NREQ);
	for (i = 0; i < NREQ; i++) {
		assert_int_equal(c->order[i], i);
		assert_read_ok(c, i);
	}
	assert_int_equal(fake_nlog, NREQ);
	assert_int_equal(fake_getevents_sum.would_hang, 0);
	assert_idle(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(one_held_read, setup_wik, teardown),
		cmocka_unit_test_setup_teardown(held_reads_one_per_sleep, setup_wik, teardown),
		cmocka_unit_test_setup_teardown(held_reads_all_in_one_sleep, setup_wik, teardown),
		cmocka_unit_test_setup_teardown(posted_before_wait_no_sleep, setup_wik, teardown),
		cmocka_unit_test_setup_teardown(timeout_bounds_the_sleep, setup_wik, teardown),
		cmocka_unit_test_setup_teardown(queued_iocb_caps_the_sleep, setup_wik, teardown),
		cmocka_unit_test_setup_teardown(two_channels, setup_wik, teardown),
		cmocka_unit_test_setup_teardown(refused_read_runs_before_sleeping, setup_wik, teardown),
		cmocka_unit_test_setup_teardown(thread_work_caps_the_sleep, setup_wik, teardown),
		cmocka_unit_test_setup_teardown(reset_waits_for_held_read, setup_wik, teardown),
		cmocka_unit_test_setup_teardown(short_read_continued_across_sleeps, setup_wik, teardown),
		cmocka_unit_test_setup_teardown(bad_magic_ring_sleeps_too, setup_bad_magic, teardown),
		cmocka_unit_test_setup_teardown(getevents_error_returned, setup_wik, teardown),
		cmocka_unit_test_setup_teardown(getevents_eintr_goes_on, setup_wik, teardown),
		cmocka_unit_test_setup_teardown(no_flag_never_sleeps_in_kernel, setup_plain, teardown),
		cmocka_unit_test(eventfd_with_flag_refused),
		cmocka_unit_test_setup_teardown(resubmit_from_callback, setup_wik, teardown),
	};

	return tc_run_group(tests, NULL, NULL);
}
