/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * AIOBLK_GROUP_WAIT_IN_KERNEL against a slow device (every request takes
 * DELAY ms: a loop over an nbdkit memory export with the delay filter, set
 * up by wik_slow.sh) next to a fast file, plain and SHARED_CONTEXT groups:
 * A. one slow read, wait(-1): returns 1 after about DELAY, thread CPU well
 *    below the wall time (a non-WIK group is measured beside it);
 * B. wait(0), wait(1), wait(5) with the slow read in flight: 0, never
 *    before t, and not held until the read completes; wait(200),
 *    wait(1000), wait(INT32_MAX) return at the completion; wait(-5);
 * C. a slow read plus a fast request (read, write-zeroes, flush, unmap) on
 *    the file: wait(-1) returns for the fast one long before DELAY;
 * D. more slow reads than the device's queue (nr_requests 4): all complete
 *    under wait(-1) (iocbs held in the channel are handed on);
 * E. a reset on the slow disk waiting for another thread's slow read while
 *    this thread's own later slow read is in its context: the reset's
 *    callback runs when the other thread's read completes, not when ours
 *    does (the sleep must not outlast the other thread's completion by
 *    much); the other thread polls busy, or sleeps in its own WIK wait(-1);
 * F. SIGUSR1 every 1 ms (handler without SA_RESTART) during wait(-1) and
 *    wait(20) with a slow read in flight: no -EINTR, no early 0, wait(-1)
 *    returns the callback;
 * G. another thread keeps the slow disk's shared queue limit full, so our
 *    read is held in our channel (nothing of ours in the kernel): wait(-1)
 *    must still hand it on and return its callback, without spinning;
 * S. (WIK_ONLY=S, a delay of 1-2 ms) deadlines racing completions: wait(0..2)
 *    and poll(g, 1) in a loop; every callback once, wait's return right;
 * H. only library-thread work (write-zeroes, unmap of the slow disk)
 *    outstanding, alone and with a slow read: callbacks, low CPU.
 * usage: wik_slow SLOWDEV FASTFILE DELAY_MS
 */
#include "wcommon.h"

static struct aioblk_disk *S, *F;
static double D; /* seconds */
static int ncb;
static double t_cb[64];
static void *who_cb[64];
static void
cb(void *arg, int status)
{
	int *st = arg;
	if (st)
		*st = status;
	if (ncb < 64) {
		t_cb[ncb] = now_s();
		who_cb[ncb] = arg;
	}
	ncb++;
	wd_progress();
}

static char *sbuf, *fbuf;

static const char *
kind(int shared)
{
	return shared ? "shared" : "plain";
}

static void
test_a(int shared, int wik)
{
	struct aioblk_group *g;
	if (wik)
		g = wik_group(shared, 0);
	else {
		struct aioblk_group_opts go = { .flags = shared ? AIOBLK_GROUP_SHARED_CONTEXT : 0 };
		if (aioblk_group_create_ext(&go, &g))
			DIE("group");
	}
	struct aioblk_channel *c;
	if (aioblk_channel_create(g, S, 8, &c))
		DIE("channel");
	double wall = 0, cpu = 0;
	for (int i = 0; i < 5; i++) {
		ncb = 0;
		int st = 1;
		if (aioblk_read(c, sbuf, (uint64_t)i * 8, 8, cb, &st))
			DIE("read");
		double w0 = now_s(), c0 = thread_cpu_s();
		wd_what_set("A: wait(-1) on one slow read");
		int rc = aioblk_group_wait(g, -1);
		double w = now_s() - w0, cp = thread_cpu_s() - c0;
		CHECK(rc == 1 && st == 0, "A %s wik %d: wait(-1) = %d, status %d", kind(shared), wik, rc, st);
		CHECK(w > D * 0.5, "A %s: wait(-1) returned after %.1f ms, the device takes %.0f", kind(shared),
		      w * 1e3, D * 1e3);
		wall += w;
		cpu += cp;
	}
	printf("A %s %s: 5 slow reads, wait(-1): %.1f ms wall, %.2f ms CPU (%.1f%%)\n", kind(shared),
	       wik ? "WAIT_IN_KERNEL" : "busy-poll", wall * 1e3, cpu * 1e3, 100 * cpu / wall);
	if (wik)
		CHECK(cpu < 0.1 * wall, "A %s: WAIT_IN_KERNEL wait(-1) burned %.1f ms CPU in %.1f ms", kind(shared),
		      cpu * 1e3, wall * 1e3);
	aioblk_channel_destroy(c);
	aioblk_group_destroy(g);
}

/* A2: slow reads in two channels' contexts (plain: two contexts, 100 us sleeps by design). Reported only. */
static void
test_a2(int shared)
{
	struct aioblk_group *g = wik_group(shared, 0);
	struct aioblk_channel *c[2];
	if (aioblk_channel_create(g, S, 8, &c[0]) || aioblk_channel_create(g, S, 8, &c[1]))
		DIE("channel");
	double wall = 0, cpu = 0;
	for (int i = 0; i < 3; i++) {
		ncb = 0;
		if (aioblk_read(c[0], sbuf, 0, 8, cb, NULL) || aioblk_read(c[1], sbuf + 4096, 8, 8, cb, NULL))
			DIE("read");
		double w0 = now_s(), c0 = thread_cpu_s();
		while (ncb < 2) {
			wd_what_set("A2: wait(-1), slow reads in two channels");
			if (aioblk_group_wait(g, -1) < 0)
				break;
		}
		wall += now_s() - w0;
		cpu += thread_cpu_s() - c0;
	}
	printf("A2 %s: slow reads in two channels, wait(-1): %.1f ms wall, %.2f ms CPU (%.1f%%)\n", kind(shared),
	       wall * 1e3, cpu * 1e3, 100 * cpu / wall);
	aioblk_channel_destroy(c[0]);
	aioblk_channel_destroy(c[1]);
	aioblk_group_destroy(g);
}

static void
drain(struct aioblk_group *g, int want)
{
	while (ncb < want) {
		int rc = aioblk_group_wait(g, -1);
		if (rc < 0) {
			FAIL("drain wait: %d", rc);
			break;
		}
	}
}

static void
test_b(int shared)
{
	struct aioblk_group *g = wik_group(shared, 0);
	struct aioblk_channel *c;
	if (aioblk_channel_create(g, S, 8, &c))
		DIE("channel");
	int ts[] = { 0, 1, 5, 0, 1, 5 };
	for (int round = 0; round < 3; round++) {
		ncb = 0;
		if (aioblk_read(c, sbuf, 0, 8, cb, NULL))
			DIE("read");
		double t0 = now_s();
		for (int i = 0; i < 6; i++) {
			double w0 = now_s(), c0 = thread_cpu_s();
			wd_what_set("B: wait(t) with a slow read in flight");
			int rc = aioblk_group_wait(g, ts[i]);
			double w = now_s() - w0, cp = thread_cpu_s() - c0;
			if (rc > 0)
				break; /* the read completed: the machine was slow */
			CHECK(rc == 0, "B %s wait(%d) = %d", kind(shared), ts[i], rc);
			CHECK(w >= ts[i] * 1e-3, "B %s wait(%d) returned 0 early: %.3f ms", kind(shared), ts[i],
			      w * 1e3);
			CHECK(w < ts[i] * 1e-3 + D * 0.6 || now_s() - t0 > D * 0.9,
			      "B %s wait(%d) with a slow read in flight took %.1f ms (held until the completion?)",
			      kind(shared), ts[i], w * 1e3);
			if (round == 0)
				printf("B %s wait(%d): 0 after %.3f ms, %.3f ms CPU\n", kind(shared), ts[i], w * 1e3,
				       cp * 1e3);
		}
		drain(g, 1);
	}
	/* long timeouts return at the completion, not at the timeout */
	int longs[] = { 200, 1000, INT32_MAX, -5 };
	for (int i = 0; i < 4; i++) {
		ncb = 0;
		int st = 1;
		if (aioblk_read(c, sbuf, 0, 8, cb, &st))
			DIE("read");
		double w0 = now_s();
		wd_what_set("B: wait(long) with a slow read in flight");
		int rc = aioblk_group_wait(g, longs[i]);
		double w = now_s() - w0;
		printf("B %s wait(%d) with a slow read: %d after %.1f ms\n", kind(shared), longs[i], rc, w * 1e3);
		if (longs[i] == -5) {
			CHECK(rc == 1 || rc == -EINVAL, "B %s wait(-5) = %d", kind(shared), rc);
		} else {
			CHECK(rc == 1 && st == 0, "B %s wait(%d) = %d, status %d", kind(shared), longs[i], rc, st);
			CHECK(w < D + 0.1, "B %s wait(%d): returned after %.1f ms, the read takes %.0f", kind(shared),
			      longs[i], w * 1e3, D * 1e3);
		}
		drain(g, 1);
	}
	aioblk_channel_destroy(c);
	aioblk_group_destroy(g);
}

/*
 * S: deadlines racing completions. With a device delay close to the
 * timeouts (1-2 ms), io_getevents often returns an event just at wait's
 * deadline: that event must still run its callback once, in this wait or
 * a later poll/wait; wait's return must equal the callbacks it ran.
 */
static int s_st[64];
static long s_cbs;
static void
s_cb(void *arg, int status)
{
	int *p = arg;
	CHECK(*p == 1, "S: callback for a request that is not in flight (twice?)");
	CHECK(status == 0, "S: status %d", status);
	*p = 0;
	s_cbs++;
	wd_progress();
}
static void
test_s(int shared)
{
	struct aioblk_group *g = wik_group(shared, 0);
	struct aioblk_channel *c[2];
	if (aioblk_channel_create(g, S, 8, &c[0]) || aioblk_channel_create(g, S, 8, &c[1]))
		DIE("channel");
	uint64_t rnd = 7;
	long accepted = 0, zeros = 0, waits = 0;
	s_cbs = 0;
	double end = now_s() + 1.5;
	while (now_s() < end && FAILED() < 10) {
		for (int k = 0; k < 4; k++) {
			int i = (int)(xrand(&rnd) % 16);
			if (s_st[i])
				continue;
			s_st[i] = 1;
			if (aioblk_read(c[i % 2], sbuf + i * 4096, (uint64_t)i * 8, 8, s_cb, &s_st[i])) {
				s_st[i] = 0;
				continue;
			}
			accepted++;
		}
		int t = (int)(xrand(&rnd) % 3);
		long before = s_cbs;
		wd_what_set("S: wait(t) racing completions");
		int rc = xrand(&rnd) % 5 ? aioblk_group_wait(g, t) : aioblk_group_poll(g, 1);
		waits++;
		CHECK(rc == s_cbs - before, "S %s: wait/poll returned %d, %ld callbacks ran", kind(shared), rc,
		      s_cbs - before);
		zeros += rc == 0;
	}
	while (s_cbs < accepted) {
		wd_what_set("S: drain");
		if (aioblk_group_wait(g, -1) < 0)
			break;
	}
	printf("S %s: %ld reads, %ld callbacks, %ld waits (%ld returned 0)\n", kind(shared), accepted, s_cbs, waits,
	       zeros);
	CHECK(accepted == s_cbs, "S %s: %ld accepted, %ld callbacks", kind(shared), accepted, s_cbs);
	aioblk_channel_destroy(c[0]);
	aioblk_channel_destroy(c[1]);
	aioblk_group_destroy(g);
}

static void
test_c(int shared)
{
	struct aioblk_group *g = wik_group(shared, 0);
	struct aioblk_channel *cs, *cf;
	if (aioblk_channel_create(g, S, 8, &cs) || aioblk_channel_create(g, F, 8, &cf))
		DIE("channel");
	const char *names[] = { "read", "write-zeroes", "flush", "unmap", "write" };
	for (int op = 0; op < 5; op++) {
		int late = 0;
		for (int rep = 0; rep < 3; rep++) {
			ncb = 0;
			int sst = 1, fst = 1;
			if (aioblk_read(cs, sbuf, 0, 8, cb, &sst))
				DIE("read");
			aioblk_group_submit(g);
			usleep(2000); /* the slow read is in the kernel before the fast one exists */
			int rc;
			switch (op) {
			case 0:
				rc = aioblk_read(cf, fbuf, 8, 8, cb, &fst);
				break;
			case 1:
				rc = aioblk_write_zeroes(cf, 64, 64, cb, &fst);
				break;
			case 2:
				rc = aioblk_flush(cf, cb, &fst);
				break;
			case 3:
				rc = aioblk_unmap(cf, 128, 64, cb, &fst);
				break;
			default:
				rc = aioblk_write(cf, fbuf, 16, 8, cb, &fst);
				break;
			}
			if (rc)
				DIE("%s: %d", names[op], rc);
			double w0 = now_s(), c0 = thread_cpu_s();
			wd_what_set("C: wait(-1), slow read + fast request on another disk");
			rc = aioblk_group_wait(g, -1);
			double w = now_s() - w0, cp = thread_cpu_s() - c0;
			CHECK(rc >= 1, "C %s %s: wait = %d", kind(shared), names[op], rc);
			/*
			 * The first wait must not return the slow read alone. For a
			 * read or write of the tmpfs file that is exact (its event is
			 * in the ring before the wait can sleep); a library-thread
			 * request may itself be late on a loaded machine, so for those
			 * only all three repetitions failing counts.
			 */
			int slow_alone = rc == 1 && who_cb[0] == &sst;
			if (slow_alone) {
				late++;
				printf("C %s %s: the first wait(-1) returned only the slow read, after %.1f ms\n",
				       kind(shared), names[op], w * 1e3);
			}
			if (op == 0 || op == 4)
				CHECK(!slow_alone,
				      "C %s %s: the first wait(-1) returned only the slow read (%.1f ms), the tmpfs "
				      "%s had completed inside io_submit",
				      kind(shared), names[op], w * 1e3, names[op]);
			if (rep == 0)
				printf("C %s fast %s next to a slow read: first wait %d after %.3f ms, %.3f ms CPU\n",
				       kind(shared), names[op], rc, w * 1e3, cp * 1e3);
			drain(g, 2);
			CHECK(sst == 0 && fst == 0, "C slow status %d, fast %d", sst, fst);
		}
		CHECK(late < 3, "C %s %s: in all 3 tries the first wait(-1) returned only the slow read", kind(shared),
		      names[op]);
	}
	aioblk_channel_destroy(cs);
	aioblk_channel_destroy(cf);
	aioblk_group_destroy(g);
}

static void
test_d(int shared)
{
	struct aioblk_group *g = wik_group(shared, 0);
	struct aioblk_channel *c;
	if (aioblk_channel_create(g, S, 32, &c))
		DIE("channel");
	printf("D %s: queue limit of the slow disk: %u\n", kind(shared), aioblk_disk_queue_limit(S));
	ncb = 0;
	static int st[12];
	for (int i = 0; i < 12; i++) {
		st[i] = 1;
		if (aioblk_read(c, sbuf + i * 4096, (uint64_t)i * 8, 8, cb, &st[i]))
			DIE("read");
	}
	double w0 = now_s(), c0 = thread_cpu_s();
	int waits = 0;
	while (ncb < 12) {
		wd_what_set("D: wait(-1), 12 slow reads over a queue of 4");
		int rc = aioblk_group_wait(g, -1);
		CHECK(rc > 0, "D wait = %d", rc);
		if (rc < 0)
			break;
		waits++;
	}
	double w = now_s() - w0, cp = thread_cpu_s() - c0;
	for (int i = 0; i < 12; i++)
		CHECK(st[i] == 0, "D read %d status %d", i, st[i]);
	printf("D %s: 12 slow reads: %d waits, %.1f ms, %.2f ms CPU (%.1f%%)\n", kind(shared), waits, w * 1e3, cp * 1e3,
	       100 * cp / w);
	aioblk_channel_destroy(c);
	aioblk_group_destroy(g);
}

/* E: thread B's slow read, then A's reset and A's own slow read. */
static pthread_barrier_t bar;
static int b_mode; /* 0 busy poll, 1 WIK wait(-1) */
static int b_shared;
static double t_b_done;
static void
b_cb(void *arg, int status)
{
	CHECK(status == 0, "E B read %d", status);
	__atomic_store_n((int *)arg, 1, __ATOMIC_RELEASE);
	t_b_done = now_s();
	wd_progress();
}
static void *
thread_b(void *arg)
{
	struct aioblk_group *g;
	if (b_mode)
		g = wik_group(b_shared, 0);
	else {
		struct aioblk_group_opts go = { .flags = b_shared ? AIOBLK_GROUP_SHARED_CONTEXT : 0 };
		if (aioblk_group_create_ext(&go, &g))
			DIE("B group");
	}
	struct aioblk_channel *c;
	if (aioblk_channel_create(g, S, 4, &c))
		DIE("B channel");
	char *buf = xalloc(4096, 4096);
	int done = 0;
	if (aioblk_read(c, buf, 512, 8, b_cb, &done))
		DIE("B read");
	aioblk_group_submit(g);
	pthread_barrier_wait(&bar);
	while (!__atomic_load_n(&done, __ATOMIC_ACQUIRE)) {
		if (b_mode)
			aioblk_group_wait(g, -1);
		else
			aioblk_group_poll(g, 0);
	}
	aioblk_channel_destroy(c);
	aioblk_group_destroy(g);
	free(buf);
	return NULL;
}
static double t_reset, t_own;
static void
own_cb(void *arg, int status)
{
	*(int *)arg = status;
	t_own = now_s();
	ncb++;
	wd_progress();
}
static void
reset_cb(void *arg, int status)
{
	CHECK(status == 0, "E reset %d", status);
	t_reset = now_s();
	ncb++;
	wd_progress();
}
static void
test_e(int shared)
{
	for (b_mode = 0; b_mode < 2; b_mode++)
		for (b_shared = 0; b_shared < 2; b_shared++) {
			/*
			 * A sleeping on its own read past B's completion is
			 * deterministic (about 0.4 DELAY late every time); a loaded
			 * machine is late now and then: three tries, all late fails.
			 */
			int late = 0;
			char lags[128] = "";
			for (int attempt = 0; attempt < 3 && late == attempt; attempt++) {
				struct aioblk_group *g = wik_group(shared, 0);
				struct aioblk_channel *c;
				if (aioblk_channel_create(g, S, 8, &c))
					DIE("channel");
				pthread_barrier_init(&bar, NULL, 2);
				pthread_t tb;
				t_b_done = t_reset = t_own = 0;
				pthread_create(&tb, NULL, thread_b, NULL);
				pthread_barrier_wait(&bar);
				double t0 = now_s();
				usleep((useconds_t)(D * 0.4 * 1e6));
				ncb = 0;
				int st = 1;
				if (aioblk_reset(c, reset_cb, NULL) || aioblk_read(c, sbuf, 8, 8, own_cb, &st))
					DIE("reset/read");
				while (ncb < 2) {
					wd_what_set("E: wait(-1), a reset waiting for another thread's slow read");
					int rc = aioblk_group_wait(g, -1);
					if (rc < 0) {
						FAIL("E wait %d", rc);
						break;
					}
				}
				pthread_join(tb, NULL);
				double lag = t_reset - t_b_done;
				printf("E A %s, B %s %s: B's read done at %.1f ms, A's reset at %.1f ms (+%.2f ms), A's "
				       "own read at %.1f ms\n",
				       kind(shared), kind(b_shared), b_mode ? "WIK wait(-1)" : "busy poll",
				       (t_b_done - t0) * 1e3, (t_reset - t0) * 1e3, lag * 1e3, (t_own - t0) * 1e3);
				CHECK(t_reset >= t_b_done, "E: reset completed before B's read");
				size_t l = strlen(lags);
				snprintf(lags + l, sizeof(lags) - l, " %.1f", lag * 1e3);
				if (lag >= D * 0.25)
					late++;
				aioblk_channel_destroy(c);
				aioblk_group_destroy(g);
				pthread_barrier_destroy(&bar);
			}
			CHECK(late < 3,
			      "E A %s, B %s %s: the reset ran late after B's read completed in 3 tries (ms:%s): A "
			      "slept on its own read?",
			      kind(shared), kind(b_shared), b_mode ? "WIK" : "busy", lags);
		}
}

/*
 * G: thread B keeps the slow disk's queue (nr_requests 4, shared by every
 * thread on a loop device) full; A's read on that disk is accepted but held
 * in A's channel, so A has nothing in the kernel. A's wait(-1) must hand it
 * on once B's completions make room, and return its callback. Variant: A
 * also has a fast read in flight on another disk.
 */
static int g_stop;
static void
g_b_cb(void *arg, int status)
{
	(*(int *)arg)--;
}
static void *
g_thread_b(void *arg)
{
	struct aioblk_group *g;
	struct aioblk_group_opts go = { .flags = b_shared ? AIOBLK_GROUP_SHARED_CONTEXT : 0 };
	if (aioblk_group_create_ext(&go, &g))
		DIE("B group");
	struct aioblk_channel *c;
	if (aioblk_channel_create(g, S, 16, &c))
		DIE("B channel");
	char *buf = xalloc(4096, 16 * 4096);
	int out = 0, k = 0;
	for (int i = 0; i < 8; i++)
		if (aioblk_read(c, buf + i * 4096, (uint64_t)(256 + i) * 8, 8, g_b_cb, &out) == 0)
			out++;
	aioblk_group_submit(g);
	pthread_barrier_wait(&bar);
	while (!__atomic_load_n(&g_stop, __ATOMIC_RELAXED)) {
		aioblk_group_poll(g, 0);
		while (out < 8 &&
		       aioblk_read(c, buf + (k % 16) * 4096, (uint64_t)(256 + k % 16) * 8, 8, g_b_cb, &out) == 0)
			out++, k++;
		usleep(200);
	}
	while (out > 0)
		aioblk_group_poll(g, 0);
	aioblk_channel_destroy(c);
	aioblk_group_destroy(g);
	free(buf);
	return NULL;
}
static void
test_g(int shared)
{
	if (aioblk_disk_queue_limit(S) == 0) {
		printf("G: the slow disk has no queue limit: skipped\n");
		return;
	}
	double cpu_frac[2][2][2] = { { { 0 } } }; /* [wik][variant][b_shared] */
	for (int wik = 1; wik >= 0; wik--)
		for (int variant = 0; variant < 2; variant++)
			for (b_shared = 0; b_shared < 2; b_shared++) {
				struct aioblk_group *g;
				if (wik)
					g = wik_group(shared, 0);
				else {
					struct aioblk_group_opts go = { .flags = shared ? AIOBLK_GROUP_SHARED_CONTEXT :
											  0 };
					if (aioblk_group_create_ext(&go, &g))
						DIE("group");
				}
				struct aioblk_channel *c, *cf;
				if (aioblk_channel_create(g, S, 8, &c) || aioblk_channel_create(g, F, 8, &cf))
					DIE("channel");
				pthread_barrier_init(&bar, NULL, 2);
				__atomic_store_n(&g_stop, 0, __ATOMIC_RELAXED);
				pthread_t tb;
				pthread_create(&tb, NULL, g_thread_b, NULL);
				pthread_barrier_wait(&bar);
				usleep(5000);
				ncb = 0;
				int st = 1, fst = 1;
				if (aioblk_read(c, sbuf, 8, 8, cb, &st))
					DIE("G read");
				if (variant && aioblk_read(cf, fbuf, 0, 8, cb, &fst))
					DIE("G fast read");
				double w0 = now_s(), c0 = thread_cpu_s();
				int starved = 0;
				while (ncb < 1 + variant) {
					wd_what_set("G: wait(500), own read held back by another thread's full device "
						    "queue");
					int rc = aioblk_group_wait(g, 500);
					if (rc < 0) {
						FAIL("G wait %d", rc);
						break;
					}
					if (!starved && now_s() - w0 > 2) {
						/* B takes every slot that frees (no fairness is promised):
						 * B stops refilling; a lost wake-up would still hang here */
						starved = 1;
						printf("G: A's read starved for 2 s by B; B stops refilling\n");
						__atomic_store_n(&g_stop, 1, __ATOMIC_RELAXED);
					}
				}
				double w = now_s() - w0, cp = thread_cpu_s() - c0;
				__atomic_store_n(&g_stop, 1, __ATOMIC_RELAXED);
				pthread_join(tb, NULL);
				CHECK(st == 0, "G status %d", st);
				printf("G A %s%s%s, B %s keeps the queue full: A's held read done after %.1f ms, %.2f ms CPU "
				       "(%.1f%%)\n",
				       kind(shared), wik ? " WIK" : " busy-poll", variant ? " + fast read" : "",
				       kind(b_shared), w * 1e3, cp * 1e3, 100 * cp / w);
				cpu_frac[wik][variant][b_shared] = cp / w;
				aioblk_channel_destroy(c);
				aioblk_channel_destroy(cf);
				aioblk_group_destroy(g);
				pthread_barrier_destroy(&bar);
			}
	/* WIK_SKIP_KNOWN=1: defect 1 of README.md is reported, not failed */
	int known = getenv("WIK_SKIP_KNOWN") && atoi(getenv("WIK_SKIP_KNOWN"));
	for (int v = 0; v < 2; v++)
		for (int b = 0; b < 2; b++)
			if (known && cpu_frac[1][v][b] >= 0.25)
				printf("G: known defect 1 (README.md): %.0f%% CPU while held\n",
				       100 * cpu_frac[1][v][b]);
			else
				CHECK(cpu_frac[1][v][b] < 0.25,
				      "G A %s WAIT_IN_KERNEL%s, B %s: %.0f%% of the wall time on CPU (busy-poll group: %.0f%%) "
				      "while its only request was held back by the device's queue limit",
				      kind(shared), v ? " + fast read" : "", kind(b), 100 * cpu_frac[1][v][b],
				      100 * cpu_frac[0][v][b]);
}

/*
 * H: only library-thread work outstanding (write-zeroes, unmap and flush of
 * the slow disk, slow because they end in the device): wait(-1) returns
 * their callbacks and looks again every 100 us instead of spinning.
 */
static void
test_h(int shared)
{
	struct aioblk_group *g = wik_group(shared, 0);
	struct aioblk_channel *c;
	if (aioblk_channel_create(g, S, 8, &c))
		DIE("channel");
	const char *names[] = { "write-zeroes", "unmap", "write-zeroes + slow read" };
	for (int op = 0; op < 3; op++) {
		ncb = 0;
		int st = 1, st2 = 1;
		int rc = op == 1 ? aioblk_unmap(c, 1024, 256, cb, &st) : aioblk_write_zeroes(c, 1024, 256, cb, &st);
		if (rc == -EOPNOTSUPP) {
			printf("H %s %s: -EOPNOTSUPP\n", kind(shared), names[op]);
			continue;
		}
		if (rc)
			DIE("H %s: %d", names[op], rc);
		if (op == 2 && aioblk_read(c, sbuf, 0, 8, cb, &st2))
			DIE("H read");
		double w0 = now_s(), c0 = thread_cpu_s();
		while (ncb < (op == 2 ? 2 : 1)) {
			wd_what_set("H: wait(-1) with library-thread work on the slow disk");
			rc = aioblk_group_wait(g, -1);
			if (rc < 0) {
				FAIL("H wait %d", rc);
				break;
			}
		}
		double w = now_s() - w0, cp = thread_cpu_s() - c0;
		printf("H %s %s: status %d, %.1f ms, %.2f ms CPU (%.1f%%)\n", kind(shared), names[op], st, w * 1e3,
		       cp * 1e3, 100 * cp / w);
		CHECK(st == 0 || (op == 1 && st == -EOPNOTSUPP), "H %s status %d", names[op], st);
		if (w > 0.02)
			CHECK(cp < 0.25 * w, "H %s %s: %.0f%% CPU while waiting for library-thread work", kind(shared),
			      names[op], 100 * cp / w);
	}
	aioblk_channel_destroy(c);
	aioblk_group_destroy(g);
}

/* F: signals */
static volatile int nsig;
static void
on_sig(int s)
{
	nsig++;
}
static int sig_stop;
static pthread_t sig_target;
static void *
sig_thread(void *arg)
{
	while (!__atomic_load_n(&sig_stop, __ATOMIC_RELAXED)) {
		pthread_kill(sig_target, SIGUSR1);
		usleep(1000);
	}
	return NULL;
}
static void
test_f(int shared)
{
	struct sigaction sa = { .sa_handler = on_sig }; /* no SA_RESTART */
	sigaction(SIGUSR1, &sa, NULL);
	struct aioblk_group *g = wik_group(shared, 0);
	struct aioblk_channel *c;
	if (aioblk_channel_create(g, S, 8, &c))
		DIE("channel");
	sig_target = pthread_self();
	__atomic_store_n(&sig_stop, 0, __ATOMIC_RELAXED);
	nsig = 0;
	pthread_t ts;
	pthread_create(&ts, NULL, sig_thread, NULL);
	for (int i = 0; i < 4; i++) {
		ncb = 0;
		int st = 1;
		if (aioblk_read(c, sbuf, 0, 8, cb, &st))
			DIE("read");
		double w0 = now_s();
		wd_what_set("F: wait(20) with signals");
		int rc = aioblk_group_wait(g, 20);
		double w = now_s() - w0;
		if (rc == 0)
			CHECK(w >= 0.020, "F %s: wait(20) under signals returned 0 after %.3f ms", kind(shared),
			      w * 1e3);
		else
			CHECK(rc == 1 || rc == -EINTR, "F %s: wait(20) = %d", kind(shared), rc);
		CHECK(rc != -EINTR, "F %s: wait(20) returned -EINTR (retried inside, says the header)", kind(shared));
		while (ncb < 1) {
			wd_what_set("F: wait(-1) with signals");
			rc = aioblk_group_wait(g, -1);
			CHECK(rc == 1, "F %s: wait(-1) under signals = %d", kind(shared), rc);
			if (rc < 0 && rc != -EINTR)
				break;
		}
		CHECK(st == 0, "F status %d", st);
	}
	__atomic_store_n(&sig_stop, 1, __ATOMIC_RELAXED);
	pthread_join(ts, NULL);
	printf("F %s: %d signals during the waits\n", kind(shared), nsig);
	CHECK(nsig > 20, "F: only %d signals were delivered", nsig);
	aioblk_channel_destroy(c);
	aioblk_group_destroy(g);
	signal(SIGUSR1, SIG_IGN);
}

int
main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: wik_slow SLOWDEV FASTFILE DELAY_MS\n");
		return 2;
	}
	D = atoi(argv[3]) * 1e-3;
	if (aioblk_disk_open(argv[1], NULL, &S) || aioblk_disk_open(argv[2], NULL, &F))
		DIE("open");
	printf("slow %s direct %d, fast %s direct %d, delay %.0f ms\n", argv[1], aioblk_disk_is_direct(S), argv[2],
	       aioblk_disk_is_direct(F), D * 1e3);
	sbuf = xalloc(4096, 64 * 4096);
	fbuf = xalloc(4096, 64 * 4096);
	wd_start(5 + 20 * D);
	wd_armed_set(1);
	const char *only = getenv("WIK_ONLY");
	for (int shared = 0; shared < 2; shared++) {
		if (!only || strchr(only, 'A')) {
			test_a(shared, 0);
			test_a(shared, 1);
			test_a2(shared);
		}
		if (!only || strchr(only, 'B'))
			test_b(shared);
		if (!only || strchr(only, 'C'))
			test_c(shared);
		if (!only || strchr(only, 'D'))
			test_d(shared);
		if (!only || strchr(only, 'E'))
			test_e(shared);
		if (!only || strchr(only, 'F'))
			test_f(shared);
		if (!only || strchr(only, 'G'))
			test_g(shared);
		if (!only || strchr(only, 'H'))
			test_h(shared);
		if (only && strchr(only, 'S'))
			test_s(shared);
	}
	wd_armed_set(0);
	aioblk_disk_close(S);
	aioblk_disk_close(F);
	return adv_exit("wik_slow");
}
