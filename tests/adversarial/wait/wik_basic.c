/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * AIOBLK_GROUP_WAIT_IN_KERNEL, the basics, plain and SHARED_CONTEXT groups:
 * - create: EVENTFD | WAIT_IN_KERNEL is -EINVAL (create and create_ext),
 *   WAIT_IN_KERNEL alone and with SHARED_CONTEXT are accepted;
 * - an idle wait(t), t = 0, 1, 5, 20 ms: returns 0, never before t, and
 *   sleeps (thread CPU time well below the wall time);
 * - order: a buffered tmpfs file completes every request inside io_submit,
 *   so the kernel's ring holds them in issue order; wait(-1) must run the
 *   callbacks of each channel in that order (the event io_getevents took
 *   is returned first), with several channels and disks in one group;
 *   wait's return equals the callbacks it ran;
 * - callbacks: wait(0), wait(-1), wait(5) and poll from a callback return
 *   -EBUSY at once; a chain where every callback submits the next request
 *   (alternating channels) is driven by wait(-1) alone;
 * - queue full: a channel of depth 4 takes exactly 4, -EAGAIN on the 5th,
 *   wait(-1), resubmit; a shared group of depth 6 over channels of depth 4
 *   refuses at 6;
 * - churn: 300 channels (40 in a plain group, whose io_destroy takes ~30 ms)
 *   created and destroyed between waits while another
 *   channel of the group has reads in the kernel;
 * - nested: a callback of one WIK group waits (-1) on another WIK group;
 *   that group's callback gets -EBUSY from the first (it is polling);
 * - handoff: 100 times, a group with reads in flight is handed to a new
 *   thread, whose wait(-1) gets them.
 * usage: wik_basic
 */
#include "wcommon.h"

static struct aioblk_group *G;
static int ncb;

struct tag {
	int ch;
	int seq;
};
static int last_seq[8];
static int order_bad;

static void
order_cb(void *arg, int status)
{
	struct tag *t = arg;
	CHECK(status == 0, "order read status %d", status);
	if (t->seq != last_seq[t->ch] + 1 && order_bad++ < 5)
		FAIL("channel %d: callback of request %d after request %d (issue order)", t->ch, t->seq,
		     last_seq[t->ch]);
	last_seq[t->ch] = t->seq;
	ncb++;
	wd_progress();
}

static void
test_create(void)
{
	struct aioblk_group *g = NULL;
	int rc = aioblk_group_create(AIOBLK_GROUP_EVENTFD | WIK, &g);
	CHECK(rc == -EINVAL, "create(EVENTFD|WIK) = %d, want -EINVAL", rc);
	rc = aioblk_group_create(AIOBLK_GROUP_EVENTFD | WIK | AIOBLK_GROUP_SHARED_CONTEXT, &g);
	CHECK(rc == -EINVAL, "create(EVENTFD|WIK|SHARED) = %d, want -EINVAL", rc);
	struct aioblk_group_opts go = { .flags = AIOBLK_GROUP_EVENTFD | WIK };
	rc = aioblk_group_create_ext(&go, &g);
	CHECK(rc == -EINVAL, "create_ext(EVENTFD|WIK) = %d, want -EINVAL", rc);
	go.flags = WIK | (1u << 7);
	rc = aioblk_group_create_ext(&go, &g);
	CHECK(rc == -EINVAL, "create_ext(WIK|unknown) = %d, want -EINVAL", rc);
	go.flags = WIK;
	go.queue_depth = 16;
	rc = aioblk_group_create_ext(&go, &g);
	CHECK(rc == -EINVAL, "create_ext(WIK, depth without SHARED) = %d, want -EINVAL", rc);
	rc = aioblk_group_create(WIK, &g);
	CHECK(rc == 0, "create(WIK) = %d", rc);
	if (rc == 0) {
		CHECK(aioblk_group_fd(g) == -EINVAL, "fd of a WIK group: %d", aioblk_group_fd(g));
		aioblk_group_destroy(g);
	}
	rc = aioblk_group_create(WIK | AIOBLK_GROUP_SHARED_CONTEXT, &g);
	CHECK(rc == 0, "create(WIK|SHARED) = %d", rc);
	if (rc == 0)
		aioblk_group_destroy(g);
}

static void
test_idle(int shared, struct aioblk_disk *d)
{
	struct aioblk_group *g = wik_group(shared, 0);
	struct aioblk_channel *c;
	if (aioblk_channel_create(g, d, 8, &c))
		DIE("channel");
	int ts[] = { 0, 1, 5, 20 };
	for (int i = 0; i < 4; i++) {
		double w0 = now_s(), c0 = thread_cpu_s();
		int rc = aioblk_group_wait(g, ts[i]);
		double w = now_s() - w0, cpu = thread_cpu_s() - c0;
		CHECK(rc == 0, "%s idle wait(%d) = %d", shared ? "shared" : "plain", ts[i], rc);
		CHECK(w >= ts[i] * 1e-3, "%s idle wait(%d) returned early, after %.3f ms", shared ? "shared" : "plain",
		      ts[i], w * 1e3);
		if (ts[i] >= 5)
			CHECK(cpu < 0.5 * w, "%s idle wait(%d): %.2f ms CPU in %.2f ms (spins)",
			      shared ? "shared" : "plain", ts[i], cpu * 1e3, w * 1e3);
		printf("  %s idle wait(%d): %d after %.3f ms, %.3f ms CPU\n", shared ? "shared" : "plain", ts[i], rc,
		       w * 1e3, cpu * 1e3);
	}
	aioblk_channel_destroy(c);
	aioblk_group_destroy(g);
}

/* 3 channels (disk 0 twice, disk 1 once), N requests each, issued interleaved. */
static void
test_order(int shared, struct aioblk_disk *d0, struct aioblk_disk *d1)
{
	enum { N = 40 };
	G = wik_group(shared, 256);
	struct aioblk_channel *c[3];
	struct aioblk_disk *dk[3] = { d0, d0, d1 };
	for (int i = 0; i < 3; i++)
		if (aioblk_channel_create(G, dk[i], 64, &c[i]))
			DIE("channel");
	char *buf = xalloc(4096, 3 * N * 4096);
	static struct tag tags[3][N];
	for (int round = 0; round < 20; round++) {
		memset(last_seq, 0, sizeof(last_seq));
		ncb = 0;
		int issued = 0;
		/* some rounds: one request per wait; others: whole batches */
		int per = round % 3 == 0 ? 1 : N;
		for (int base = 0; base < N; base += per) {
			for (int k = base; k < base + per && k < N; k++)
				for (int i = 0; i < 3; i++) {
					tags[i][k] = (struct tag){ i, k + 1 };
					int rc = aioblk_read(c[i], buf + (size_t)(i * N + k) * 4096, (uint64_t)k * 8, 8,
							     order_cb, &tags[i][k]);
					if (rc)
						DIE("read %d", rc);
					issued++;
				}
			if (round % 2)
				aioblk_group_submit(G); /* all in the ring before the wait */
			if (round % 4 == 1 && issued > ncb) {
				/* leave the ring partly reaped: wait must still start at the oldest */
				int rc = aioblk_group_poll(G, 1);
				CHECK(rc >= 0 && rc <= 1, "poll(g, 1) = %d", rc);
			}
			while (ncb < issued) {
				int before = ncb;
				wd_what_set("order: wait(-1) with requests done in the ring");
				int rc = aioblk_group_wait(G, -1);
				CHECK(rc > 0, "wait(-1) = %d", rc);
				CHECK(rc == ncb - before, "wait returned %d but %d callbacks ran", rc, ncb - before);
			}
		}
		for (int i = 0; i < 3; i++)
			CHECK(last_seq[i] == N, "channel %d: last %d of %d", i, last_seq[i], N);
	}
	for (int i = 0; i < 3; i++)
		aioblk_channel_destroy(c[i]);
	aioblk_group_destroy(G);
	free(buf);
}

static struct aioblk_channel *CB_CH[2];
static int chain_left, chain_done;
static char *chain_buf;
static void
chain_cb(void *arg, int status)
{
	CHECK(status == 0, "chain status %d", status);
	chain_done++;
	wd_progress();
	int rc = aioblk_group_wait(G, 0);
	CHECK(rc == -EBUSY, "wait(0) in a callback = %d", rc);
	rc = aioblk_group_wait(G, 5);
	CHECK(rc == -EBUSY, "wait(5) in a callback = %d", rc);
	wd_what_set("wait(-1) called from a callback (expected -EBUSY at once)");
	rc = aioblk_group_wait(G, -1);
	CHECK(rc == -EBUSY, "wait(-1) in a callback = %d", rc);
	rc = aioblk_group_poll(G, 0);
	CHECK(rc == -EBUSY, "poll in a callback = %d", rc);
	if (chain_left > 0) {
		chain_left--;
		struct aioblk_channel *c = CB_CH[chain_left % 2];
		rc = aioblk_read(c, chain_buf, (uint64_t)(chain_left % 64) * 8, 8, chain_cb, NULL);
		CHECK(rc == 0, "read from a callback: %d", rc);
	}
}

static void
test_chain(int shared, struct aioblk_disk *d0, struct aioblk_disk *d1, int len)
{
	G = wik_group(shared, 0);
	if (aioblk_channel_create(G, d0, 4, &CB_CH[0]) || aioblk_channel_create(G, d1, 4, &CB_CH[1]))
		DIE("channel");
	chain_buf = xalloc(4096, 4096);
	chain_left = len;
	chain_done = 0;
	if (aioblk_read(CB_CH[0], chain_buf, 0, 8, chain_cb, NULL))
		DIE("read");
	double w0 = now_s();
	while (chain_done < len + 1) {
		wd_what_set("chain: each callback submits the next read; wait(-1) drives it");
		int rc = aioblk_group_wait(G, -1);
		CHECK(rc > 0, "chain wait(-1) = %d", rc);
		if (rc < 0)
			break;
	}
	printf("  %s chain of %d (%s): %.1f ms\n", shared ? "shared" : "plain", len + 1, aioblk_disk_name(d0),
	       (now_s() - w0) * 1e3);
	aioblk_channel_destroy(CB_CH[0]);
	aioblk_channel_destroy(CB_CH[1]);
	aioblk_group_destroy(G);
	free(chain_buf);
}

static void
count_cb(void *arg, int status)
{
	CHECK(status == 0, "status %d", status);
	ncb++;
	wd_progress();
}

static void
test_full(int shared, struct aioblk_disk *d0, struct aioblk_disk *d1)
{
	G = wik_group(shared, shared ? 6 : 0);
	struct aioblk_channel *c[2];
	if (aioblk_channel_create(G, d0, 4, &c[0]) || aioblk_channel_create(G, d1, 4, &c[1]))
		DIE("channel");
	char *buf = xalloc(4096, 8 * 4096);
	ncb = 0;
	int accepted = 0;
	for (int round = 0; round < 100; round++) {
		int got[2] = { 0, 0 };
		for (int i = 0; i < 2; i++)
			for (int k = 0; k < 6; k++) {
				int rc = aioblk_read(c[i], buf + (i * 4 + k % 4) * 4096, (uint64_t)k * 8, 8, count_cb,
						     NULL);
				if (rc == 0)
					got[i]++, accepted++;
				else if (rc != -EAGAIN)
					FAIL("read: %d", rc);
				else
					break;
			}
		if (shared)
			CHECK(got[0] == 4 && got[1] == 2, "shared depth 6: channels took %d and %d", got[0], got[1]);
		else
			CHECK(got[0] == 4 && got[1] == 4, "depth 4: channels took %d and %d", got[0], got[1]);
		while (ncb < accepted) {
			wd_what_set("queue full: wait(-1) after -EAGAIN");
			int rc = aioblk_group_wait(G, -1);
			CHECK(rc > 0, "wait(-1) = %d", rc);
		}
		CHECK(aioblk_channel_inflight(c[0]) == 0 && aioblk_channel_inflight(c[1]) == 0, "inflight %u %u",
		      aioblk_channel_inflight(c[0]), aioblk_channel_inflight(c[1]));
	}
	aioblk_channel_destroy(c[0]);
	aioblk_channel_destroy(c[1]);
	aioblk_group_destroy(G);
	free(buf);
}

/*
 * Channels come and go between waits while another channel of the group
 * has requests in the kernel: a wait must never sleep on (or reap) a
 * destroyed channel's context; ASan sees use-after-free.
 */
static void
test_churn(int shared, struct aioblk_disk *d0, struct aioblk_disk *d2)
{
	G = wik_group(shared, 0);
	struct aioblk_channel *p;
	if (aioblk_channel_create(G, d2, 8, &p))
		DIE("channel");
	char *buf = xalloc(4096, 4 * 4096);
	ncb = 0;
	int want = 0;
	/* a plain channel's io_destroy(2) takes ~30 ms here (the kernel waits for RCU): fewer of those */
	int rounds = shared ? 300 : 40;
	for (int i = 0; i < rounds; i++) {
		struct aioblk_channel *x;
		if (aioblk_channel_create(G, i % 2 ? d0 : d2, 2, &x))
			DIE("churn channel %d", i);
		if (aioblk_channel_inflight(p) < 6) {
			if (aioblk_read(p, buf, (uint64_t)(i % 64) * 8, 8, count_cb, NULL))
				DIE("churn read");
			want++;
		}
		if (aioblk_read(x, buf + 4096, 8, 8, count_cb, NULL))
			DIE("churn read");
		want++;
		while (aioblk_channel_inflight(x) > 0) {
			wd_what_set("churn: wait(-1) for a new channel's read");
			int rc = aioblk_group_wait(G, i % 3 == 0 ? 0 : -1);
			CHECK(rc >= 0, "churn wait = %d", rc);
			if (rc < 0)
				break;
		}
		CHECK(aioblk_channel_destroy(x) == 0, "churn destroy");
		if (i % 5 == 0 && aioblk_channel_inflight(p) < 6 &&
		    aioblk_read(p, buf + 8192, 0, 8, count_cb, NULL) == 0)
			want++; /* left in flight across the next create/destroy */
	}
	while (ncb < want) {
		int rc = aioblk_group_wait(G, -1);
		if (rc < 0)
			break;
	}
	CHECK(ncb == want, "churn: %d callbacks of %d", ncb, want);
	aioblk_channel_destroy(p);
	aioblk_group_destroy(G);
	free(buf);
}

/*
 * A callback of group G1 waits on another WIK group G2 (allowed: only its
 * own group is off limits): G2's wait(-1) sleeps and returns G2's
 * callback, which in turn gets -EBUSY from wait/poll on G1 (G1 is polling).
 */
static struct aioblk_group *G2;
static struct aioblk_channel *C2;
static char *nbuf;
static int n2;
static void
inner_cb(void *arg, int status)
{
	CHECK(status == 0, "inner status %d", status);
	n2++;
	int rc = aioblk_group_wait(G, 0);
	CHECK(rc == -EBUSY, "G2's callback: wait on G1 (polling) = %d", rc);
	rc = aioblk_group_wait(G2, 0);
	CHECK(rc == -EBUSY, "G2's callback: wait on G2 = %d", rc);
}
static void
outer_cb(void *arg, int status)
{
	CHECK(status == 0, "outer status %d", status);
	ncb++;
	wd_progress();
	int before = n2;
	if (aioblk_read(C2, nbuf + 4096, 0, 8, inner_cb, NULL))
		DIE("inner read");
	wd_what_set("a callback of G1 waits on G2 with wait(-1)");
	while (n2 == before) {
		int rc = aioblk_group_wait(G2, -1);
		CHECK(rc == 1, "G1's callback: wait(-1) on G2 = %d", rc);
		if (rc < 0)
			break;
	}
}
static void
test_nested(int shared, struct aioblk_disk *d0, struct aioblk_disk *d2)
{
	G = wik_group(shared, 0);
	G2 = wik_group(!shared, 0);
	struct aioblk_channel *c;
	if (aioblk_channel_create(G, d0, 8, &c) || aioblk_channel_create(G2, d2, 8, &C2))
		DIE("channel");
	nbuf = xalloc(4096, 2 * 4096);
	ncb = n2 = 0;
	for (int i = 0; i < 50; i++) {
		if (aioblk_read(c, nbuf, 0, 8, outer_cb, NULL))
			DIE("outer read");
		while (ncb < i + 1)
			if (aioblk_group_wait(G, -1) < 0)
				break;
	}
	CHECK(ncb == 50 && n2 == 50, "nested: %d outer, %d inner callbacks", ncb, n2);
	aioblk_channel_destroy(c);
	aioblk_channel_destroy(C2);
	aioblk_group_destroy(G);
	aioblk_group_destroy(G2);
	free(nbuf);
}

/* The group is handed to another thread with reads in flight; it waits there. */
static void *
handoff_thread(void *arg)
{
	int want = *(int *)arg;
	while (ncb < want) {
		wd_what_set("handoff: the new owner's wait(-1)");
		int rc = aioblk_group_wait(G, -1);
		CHECK(rc > 0, "handoff wait = %d", rc);
		if (rc < 0)
			break;
	}
	return NULL;
}
static void
test_handoff(int shared, struct aioblk_disk *d2)
{
	G = wik_group(shared, 0);
	struct aioblk_channel *c;
	if (aioblk_channel_create(G, d2, 16, &c))
		DIE("channel");
	char *buf = xalloc(4096, 16 * 4096);
	ncb = 0;
	int want = 0;
	for (int hop = 0; hop < 100; hop++) {
		for (int i = 0; i < 8; i++)
			if (aioblk_read(c, buf + i * 4096, (uint64_t)(hop + i) % 64 * 8, 8, count_cb, NULL) == 0)
				want++;
		aioblk_group_submit(G);
		if (hop % 2)
			aioblk_group_wait(G, 0); /* some completions reaped here, the rest there */
		pthread_t t;
		pthread_create(&t, NULL, handoff_thread, &want);
		pthread_join(t, NULL);
	}
	CHECK(ncb == want, "handoff: %d of %d", ncb, want);
	aioblk_channel_destroy(c);
	aioblk_group_destroy(G);
	free(buf);
}

int
main(void)
{
	char p0[256], p1[256], p2[256];
	snprintf(p0, sizeof(p0), "%s/wik_basic0.%d", tmpdir(), getpid());
	snprintf(p1, sizeof(p1), "%s/wik_basic1.%d", tmpdir(), getpid());
	const char *ext = getenv("WIK_EXT4_DIR") ? getenv("WIK_EXT4_DIR") : "/tmp";
	snprintf(p2, sizeof(p2), "%s/wik_basic2.%d", ext, getpid());
	make_file(p0, 4 << 20);
	make_file(p1, 4 << 20);
	make_file(p2, 8 << 20);
	/* p2 gets real blocks, so O_DIRECT reads go to the disk */
	int fd = open(p2, O_WRONLY);
	char *junk = xalloc(4096, 1 << 20);
	memset(junk, 0x77, 1 << 20);
	for (int i = 0; i < 8; i++)
		if (pwrite(fd, junk, 1 << 20, (off_t)i << 20) != 1 << 20)
			DIE("pwrite");
	fsync(fd);
	close(fd);
	free(junk);
	struct aioblk_disk_opts bo = { .flags = AIOBLK_DISK_BUFFERED };
	struct aioblk_disk *d0, *d1, *d2;
	if (aioblk_disk_open(p0, &bo, &d0) || aioblk_disk_open(p1, &bo, &d1) || aioblk_disk_open(p2, NULL, &d2))
		DIE("open");
	printf("  %s direct %d\n", p2, aioblk_disk_is_direct(d2));
	wd_start(5);
	wd_armed_set(1);
	test_create();
	for (int shared = 0; shared < 2; shared++) {
		test_idle(shared, d0);
		test_order(shared, d0, d1);
		test_chain(shared, d0, d1, 300);
		test_chain(shared, d2, d0, 300);
		test_full(shared, d0, d1);
		test_full(shared, d2, d2);
		test_churn(shared, d0, d2);
		test_nested(shared, d0, d2);
		test_handoff(shared, d2);
	}
	wd_armed_set(0);
	aioblk_disk_close(d0);
	aioblk_disk_close(d1);
	aioblk_disk_close(d2);
	return adv_exit("wik_basic");
}
