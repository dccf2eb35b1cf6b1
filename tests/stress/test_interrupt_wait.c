/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * aioblk_group_wait() behaves like poll(2): it returns 0 when the timeout
 * has passed, never before, also when nothing is outstanding (then it
 * sleeps, it does not spin), and > 0 with the callback run as soon as
 * something completes, also when the completion is a reset that another
 * thread's poll makes possible. In eventfd mode it sleeps in ppoll(2);
 * without the flag it busy-polls while something is outstanding and sleeps
 * otherwise: both are tested.
 *
 * Something that cannot complete quickly: a reset on group A waits for a
 * write on group B, and group B is not polled. The write is done in the
 * kernel (buffered), but its completion stays in B's ring until B polls.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "stress.h"

#define FILE_BYTES (4u * 1024u * 1024u)
/* "Returned long before the timeout": half of a generous timeout. */
#define LONG_TIMEOUT_MS 30000
#define NS_PER_MS 1000000LL

/* CPU time this thread used: a wait that sleeps uses next to none. */
static int64_t
cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

struct blocker {
	char path[256];
	struct aioblk_disk *disk;
	struct aioblk_group *a, *b;
	struct aioblk_channel *cha, *chb;
	void *buf;
	struct tc_result w;  /* the write on B */
	struct tc_result rs; /* the reset on A */
};

static void
blocker_open(struct blocker *bl, uint32_t a_flags, uint32_t disk_flags)
{
	struct aioblk_disk_opts opts = { .flags = disk_flags };

	memset(bl, 0, sizeof(*bl));
	assert_int_equal(tc_make_file(NULL, FILE_BYTES, bl->path, sizeof(bl->path)), 0);
	assert_int_equal(aioblk_disk_open(bl->path, &opts, &bl->disk), 0);
	assert_int_equal(tc_group_create(a_flags, &bl->a), 0);
	assert_int_equal(tc_group_create(0, &bl->b), 0);
	assert_int_equal(aioblk_channel_create(bl->a, bl->disk, 8, &bl->cha), 0);
	assert_int_equal(aioblk_channel_create(bl->b, bl->disk, 8, &bl->chb), 0);
	bl->buf = tc_alloc(4096, 4096);
	assert_non_null(bl->buf);
	tc_fill(bl->buf, 4096, 11);
}

/* Start the write on B (not polled) and the reset on A that must wait for it. */
static void
blocker_arm(struct blocker *bl, aioblk_cb wcb, void *warg)
{
	uint64_t n = 4096 / aioblk_disk_block_size(bl->disk);

	assert_int_equal(aioblk_write(bl->chb, bl->buf, 0, n, wcb ? wcb : tc_cb, wcb ? warg : &bl->w), 0);
	assert_true(aioblk_group_submit(bl->b) >= 0);
	assert_int_equal(aioblk_reset(bl->cha, tc_cb, &bl->rs), 0);
}

static void
blocker_close(struct blocker *bl)
{
	assert_int_equal(aioblk_channel_destroy(bl->cha), 0);
	assert_int_equal(aioblk_channel_destroy(bl->chb), 0);
	assert_int_equal(aioblk_group_destroy(bl->a), 0);
	assert_int_equal(aioblk_group_destroy(bl->b), 0);
	assert_int_equal(aioblk_disk_close(bl->disk), 0);
	free(bl->buf);
}

static void
timeout_case(uint32_t a_flags)
{
	struct blocker bl;
	int64_t t0, elapsed;
	int rc;

	blocker_open(&bl, a_flags, AIOBLK_DISK_BUFFERED);
	blocker_arm(&bl, NULL, NULL);

	t0 = tc_now_ns();
	rc = aioblk_group_wait(bl.a, 200);
	elapsed = tc_now_ns() - t0;
	assert_int_equal(rc, 0);
	assert_int_equal(bl.rs.count, 0);
	assert_true(elapsed >= 200 * NS_PER_MS);

	/* 0: poll once, never sleep. */
	assert_int_equal(aioblk_group_wait(bl.a, 0), 0);
	assert_int_equal(bl.rs.count, 0);
	assert_int_equal(aioblk_channel_inflight(bl.cha), 1);

	/* B's poll runs the write; the reset on A can finish and A's wait returns it. */
	assert_int_equal(aioblk_group_poll(bl.b, 0), 1);
	assert_int_equal(bl.w.count, 1);
	assert_int_equal(bl.w.status, 0);
	if (a_flags & AIOBLK_GROUP_EVENTFD)
		assert_true(st_readable(aioblk_group_fd(bl.a)));
	assert_int_equal(aioblk_group_wait(bl.a, LONG_TIMEOUT_MS), 1);
	assert_int_equal(bl.rs.count, 1);
	assert_int_equal(bl.rs.status, 0);
	if (a_flags & AIOBLK_GROUP_EVENTFD)
		assert_false(st_readable(aioblk_group_fd(bl.a)));
	blocker_close(&bl);
}

static void
test_wait_timeout_eventfd(void **state)
{
	timeout_case(AIOBLK_GROUP_EVENTFD);
}

static void
test_wait_timeout_busy_poll(void **state)
{
	timeout_case(0);
}

/* One idle wait(@ms): 0, not before the deadline, and asleep (little CPU) all along. */
static void
expect_idle_wait(struct aioblk_group *g, int ms)
{
	int64_t t0 = tc_now_ns(), c0 = cpu_ns(), elapsed, cpu;

	assert_int_equal(aioblk_group_wait(g, ms), 0);
	elapsed = tc_now_ns() - t0;
	cpu = cpu_ns() - c0;
	if (elapsed < ms * NS_PER_MS || cpu > elapsed / 4)
		print_message("idle wait(%d): %lld ns, %lld ns of CPU\n", ms, (long long)elapsed, (long long)cpu);
	assert_true(elapsed >= ms * NS_PER_MS);
	assert_true(cpu <= elapsed / 4);
}

/*
 * Nothing accepted, nothing can complete: wait sleeps for its timeout like
 * poll(2), in both modes, rather than returning at once (a thread that
 * loops on wait(g, 100) would spin) or spinning.
 */
static void
test_wait_nothing_outstanding(void **state)
{
	static const uint32_t flags[] = { AIOBLK_GROUP_EVENTFD, 0 };
	struct aioblk_disk *disk;
	struct aioblk_group *g;
	struct aioblk_channel *ch;
	char path[256];
	unsigned i;

	assert_int_equal(tc_make_file(NULL, FILE_BYTES, path, sizeof(path)), 0);
	assert_int_equal(aioblk_disk_open(path, NULL, &disk), 0);
	for (i = 0; i < 2; i++) {
		assert_int_equal(tc_group_create(flags[i], &g), 0);
		/* A group without channels, then with an idle one. */
		expect_idle_wait(g, 50);
		assert_int_equal(aioblk_channel_create(g, disk, 4, &ch), 0);
		expect_idle_wait(g, 50);
		assert_int_equal(aioblk_group_wait(g, 0), 0);
		assert_int_equal(aioblk_channel_destroy(ch), 0);
		assert_int_equal(aioblk_group_destroy(g), 0);
	}
	assert_int_equal(aioblk_group_wait(NULL, 0), -EINVAL);
	assert_int_equal(aioblk_disk_close(disk), 0);
}

/*
 * Short timeouts are kept to the nanosecond: 20 wait(3) calls, each with
 * a reset outstanding that cannot finish (busy-poll mode spins then) and
 * each on an idle group (it sleeps), are never shorter than 3 ms.
 */
static void
expect_waits_not_early(struct aioblk_group *g)
{
	int64_t t0;
	unsigned i;

	for (i = 0; i < 20; i++) {
		t0 = tc_now_ns();
		assert_int_equal(aioblk_group_wait(g, 3), 0);
		assert_true(tc_now_ns() - t0 >= 3 * NS_PER_MS);
	}
}

static void
never_early_case(uint32_t a_flags)
{
	struct blocker bl;

	blocker_open(&bl, a_flags, AIOBLK_DISK_BUFFERED);
	blocker_arm(&bl, NULL, NULL);
	expect_waits_not_early(bl.a);
	assert_int_equal(aioblk_group_poll(bl.b, 0), 1);
	assert_int_equal(aioblk_group_wait(bl.a, LONG_TIMEOUT_MS), 1);
	assert_int_equal(bl.rs.count, 1);
	expect_waits_not_early(bl.a);
	blocker_close(&bl);
}

/*
 * Busy-poll mode, with nothing of the group's own in the kernel: only a
 * reset held up by another group is outstanding. No ring of the group can
 * fill, so the wait naps instead of spinning: little CPU over 200 ms, and
 * the reset still completes promptly once the other group polls.
 */
static void
test_wait_busy_naps_on_held_reset(void **state)
{
	struct blocker bl;
	int64_t t0, c0, elapsed, cpu;

	blocker_open(&bl, 0, AIOBLK_DISK_BUFFERED);
	blocker_arm(&bl, NULL, NULL);
	t0 = tc_now_ns();
	c0 = cpu_ns();
	assert_int_equal(aioblk_group_wait(bl.a, 200), 0);
	elapsed = tc_now_ns() - t0;
	cpu = cpu_ns() - c0;
	print_message("busy wait(200) on a held reset: %lld ms, %lld ms of CPU\n", (long long)(elapsed / NS_PER_MS),
		      (long long)(cpu / NS_PER_MS));
	assert_true(elapsed >= 200 * NS_PER_MS);
	assert_true(cpu <= elapsed / 4);
	assert_int_equal(aioblk_group_poll(bl.b, 0), 1);
	assert_int_equal(aioblk_group_wait(bl.a, LONG_TIMEOUT_MS), 1);
	assert_int_equal(bl.rs.count, 1);
	blocker_close(&bl);
}

static void
test_wait_never_early_busy_poll(void **state)
{
	never_early_case(0);
}

static void
test_wait_never_early_eventfd(void **state)
{
	never_early_case(AIOBLK_GROUP_EVENTFD);
}

/* wait hands queued requests to the kernel itself and returns once their callbacks ran. */
static void
completion_case(uint32_t group_flags, uint32_t disk_flags)
{
	struct aioblk_disk_opts opts = { .flags = disk_flags };
	struct aioblk_disk *disk;
	struct aioblk_group *g;
	struct aioblk_channel *ch;
	struct tc_result r;
	char path[256];
	void *buf;
	uint64_t n;
	int i, rc, total;

	assert_int_equal(tc_make_file(NULL, FILE_BYTES, path, sizeof(path)), 0);
	assert_int_equal(aioblk_disk_open(path, &opts, &disk), 0);
	assert_int_equal(tc_group_create(group_flags, &g), 0);
	assert_int_equal(aioblk_channel_create(g, disk, 8, &ch), 0);
	n = 4096 / aioblk_disk_block_size(disk);
	buf = tc_alloc(4096, 4096);
	assert_non_null(buf);
	for (i = 0; i < 50; i++) {
		int64_t t0 = tc_now_ms();

		memset(&r, 0, sizeof(r));
		tc_fill(buf, 4096, (uint64_t)i);
		assert_int_equal(aioblk_write(ch, buf, (uint64_t)i * n, n, tc_cb, &r), 0);
		rc = aioblk_group_wait(g, LONG_TIMEOUT_MS);
		assert_int_equal(rc, 1);
		assert_int_equal(r.count, 1);
		assert_int_equal(r.status, 0);
		memset(buf, 0, 4096);
		memset(&r, 0, sizeof(r));
		assert_int_equal(aioblk_read(ch, buf, (uint64_t)i * n, n, tc_cb, &r), 0);
		assert_int_equal(aioblk_group_wait(g, LONG_TIMEOUT_MS), 1);
		assert_int_equal(r.count, 1);
		assert_int_equal(r.status, 0);
		assert_int_equal(tc_check(buf, 4096, (uint64_t)i), -1);
		assert_true(tc_now_ms() - t0 < LONG_TIMEOUT_MS / 2);
	}
	/* Several at once: every wait returns what it ran, the sum is all of them. */
	memset(&r, 0, sizeof(r));
	for (i = 0; i < 8; i++)
		assert_int_equal(aioblk_read(ch, buf, (uint64_t)i * n, n, tc_cb, &r), 0);
	for (total = 0; total < 8; total += rc) {
		rc = aioblk_group_wait(g, LONG_TIMEOUT_MS);
		assert_true(rc > 0);
		assert_int_equal(r.count, total + rc);
	}
	assert_int_equal(aioblk_group_wait(g, 0), 0);
	if (group_flags & AIOBLK_GROUP_EVENTFD)
		assert_false(st_readable(aioblk_group_fd(g)));
	assert_int_equal(aioblk_channel_destroy(ch), 0);
	assert_int_equal(aioblk_group_destroy(g), 0);
	assert_int_equal(aioblk_disk_close(disk), 0);
	free(buf);
}

static void
test_wait_returns_after_completion_direct(void **state)
{
	completion_case(AIOBLK_GROUP_EVENTFD, 0);
}

static void
test_wait_returns_after_completion_buffered(void **state)
{
	completion_case(AIOBLK_GROUP_EVENTFD, AIOBLK_DISK_BUFFERED);
}

static void
test_wait_returns_after_completion_busy_poll(void **state)
{
	completion_case(0, 0);
}

/* Another thread polls B, which finishes what A's reset waits for: A's wait must wake up. */
struct helper {
	struct blocker *bl;
	unsigned delay_ms;
	int polled;
};

static void *
helper_poll_b(void *arg)
{
	struct helper *h = arg;
	int64_t deadline;

	if (h->delay_ms)
		st_sleep_ms(h->delay_ms);
	deadline = tc_now_ms() + 10000;
	while (aioblk_channel_inflight(h->bl->chb) && tc_now_ms() < deadline)
		h->polled += aioblk_group_poll(h->bl->b, 0);
	return NULL;
}

static void
woken_case(uint32_t a_flags, unsigned iterations, unsigned delay_ms)
{
	struct blocker bl;
	struct helper h;
	pthread_t t;
	unsigned i;
	int rc;

	blocker_open(&bl, a_flags, AIOBLK_DISK_BUFFERED);
	for (i = 0; i < iterations; i++) {
		int64_t t0;

		memset(&bl.w, 0, sizeof(bl.w));
		memset(&bl.rs, 0, sizeof(bl.rs));
		blocker_arm(&bl, NULL, NULL);
		h = (struct helper){ .bl = &bl, .delay_ms = delay_ms };
		/* B belongs to the helper until it is joined. */
		assert_int_equal(pthread_create(&t, NULL, helper_poll_b, &h), 0);
		t0 = tc_now_ms();
		rc = aioblk_group_wait(bl.a, LONG_TIMEOUT_MS);
		/* A wake-up that was lost would sleep until the timeout and return 0. */
		assert_int_equal(rc, 1);
		assert_int_equal(bl.rs.count, 1);
		assert_int_equal(bl.rs.status, 0);
		assert_true(tc_now_ms() - t0 < LONG_TIMEOUT_MS / 2);
		assert_int_equal(pthread_join(t, NULL), 0);
		assert_int_equal(h.polled, 1);
		assert_int_equal(bl.w.count, 1);
	}
	blocker_close(&bl);
}

static void
test_wait_woken_by_other_thread(void **state)
{
	woken_case(AIOBLK_GROUP_EVENTFD, 3, 100); /* A is asleep in poll(2) when B's write finishes */
	woken_case(AIOBLK_GROUP_EVENTFD, 300, 0); /* the two threads race */
	woken_case(0, 3, 100);
	woken_case(0, 100, 0);
}

/*
 * A reset waits for the requests issued before it: when its callback runs,
 * their callbacks have run, also on other threads. Here the write's callback
 * on B's thread takes a while (it waits up to 500 ms for a go that only
 * comes after the reset's callback); the reset must not finish meanwhile.
 */
struct slow {
	atomic_int in_cb;
	atomic_int done;
	atomic_int go;
	int seen_done_at_reset;
};

static struct slow slow;

static void
slow_write_cb(void *arg, int status)
{
	int64_t deadline = tc_now_ms() + 500;

	atomic_store(&slow.in_cb, 1);
	while (!atomic_load(&slow.go) && tc_now_ms() < deadline)
		st_sleep_ms(1);
	atomic_store(&slow.done, 1);
}

static void
reset_seen_cb(void *arg, int status)
{
	struct tc_result *r = arg;

	slow.seen_done_at_reset = atomic_load(&slow.done);
	r->status = status;
	r->count++;
}

static void
test_reset_completes_after_earlier_callbacks(void **state)
{
	struct blocker bl;
	struct helper h;
	pthread_t t;
	uint64_t n;
	int64_t deadline;

	blocker_open(&bl, AIOBLK_GROUP_EVENTFD, AIOBLK_DISK_BUFFERED);
	n = 4096 / aioblk_disk_block_size(bl.disk);
	memset(&slow, 0, sizeof(slow));
	assert_int_equal(aioblk_write(bl.chb, bl.buf, 0, n, slow_write_cb, NULL), 0);
	assert_true(aioblk_group_submit(bl.b) >= 0);
	assert_int_equal(aioblk_reset(bl.cha, reset_seen_cb, &bl.rs), 0);

	h = (struct helper){ .bl = &bl };
	assert_int_equal(pthread_create(&t, NULL, helper_poll_b, &h), 0);
	deadline = tc_now_ms() + 10000;
	while (bl.rs.count == 0 && tc_now_ms() < deadline)
		assert_true(aioblk_group_wait(bl.a, 1000) >= 0);
	atomic_store(&slow.go, 1);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(bl.rs.count, 1);
	assert_int_equal(atomic_load(&slow.done), 1);
	/* The write was issued before the reset: its callback had finished when the reset's ran. */
	assert_int_equal(slow.seen_done_at_reset, 1);
	blocker_close(&bl);
}

/*
 * A wait asleep is woken promptly: another thread polls B 20 ms into A's
 * wait, which lets A's reset finish; A's wait returns. The time from
 * the end of B's poll to A's return is the wake-up latency; its median over
 * the rounds stays under 1 ms (single rounds can be delayed by the
 * scheduler on a loaded machine, so the median is what is held to it, and
 * the wait's own timeout is generous).
 */
struct waker {
	struct blocker *bl;
	int64_t polled_at;
};

static void *
waker_main(void *arg)
{
	struct waker *w = arg;

	st_sleep_ms(20);
	assert_int_equal(aioblk_group_poll(w->bl->b, 0), 1);
	w->polled_at = tc_now_ns();
	return NULL;
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static void
wakes_promptly_case(uint32_t a_flags)
{
	enum { ROUNDS = 15 };
	int64_t latency[ROUNDS], returned;
	struct blocker bl;
	struct waker w;
	pthread_t t;
	unsigned i;

	blocker_open(&bl, a_flags, AIOBLK_DISK_BUFFERED);
	for (i = 0; i < ROUNDS; i++) {
		memset(&bl.w, 0, sizeof(bl.w));
		memset(&bl.rs, 0, sizeof(bl.rs));
		blocker_arm(&bl, NULL, NULL);
		w = (struct waker){ .bl = &bl };
		assert_int_equal(pthread_create(&t, NULL, waker_main, &w), 0);
		assert_int_equal(aioblk_group_wait(bl.a, LONG_TIMEOUT_MS), 1);
		returned = tc_now_ns();
		assert_int_equal(pthread_join(t, NULL), 0);
		assert_int_equal(bl.rs.count, 1);
		latency[i] = returned - w.polled_at;
	}
	qsort(latency, ROUNDS, sizeof(latency[0]), cmp_i64);
	print_message("wake-up latency: median %lld ns, max %lld ns\n", (long long)latency[ROUNDS / 2],
		      (long long)latency[ROUNDS - 1]);
	assert_true(latency[ROUNDS / 2] < 1 * NS_PER_MS);
	blocker_close(&bl);
}

static void
test_wait_wakes_promptly_eventfd(void **state)
{
	wakes_promptly_case(AIOBLK_GROUP_EVENTFD);
}

static void
test_wait_wakes_promptly_busy_poll(void **state)
{
	wakes_promptly_case(0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wait_timeout_eventfd),
		cmocka_unit_test(test_wait_timeout_busy_poll),
		cmocka_unit_test(test_wait_nothing_outstanding),
		cmocka_unit_test(test_wait_never_early_busy_poll),
		cmocka_unit_test(test_wait_busy_naps_on_held_reset),
		cmocka_unit_test(test_wait_never_early_eventfd),
		cmocka_unit_test(test_wait_wakes_promptly_eventfd),
		cmocka_unit_test(test_wait_wakes_promptly_busy_poll),
		cmocka_unit_test(test_wait_returns_after_completion_direct),
		cmocka_unit_test(test_wait_returns_after_completion_buffered),
		cmocka_unit_test(test_wait_returns_after_completion_busy_poll),
		cmocka_unit_test(test_wait_woken_by_other_thread),
		cmocka_unit_test(test_reset_completes_after_earlier_callbacks),
	};

	return tc_run_group(tests, NULL, NULL);
}
