/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A reset that waits on another thread's group. Thread B accepts requests
 * on disk X (they finish in the kernel at once) but does not poll for
 * 300 ms. Thread A, with a SHARED_CONTEXT group (eventfd or busy-poll) and
 * nothing else outstanding, resets X and sleeps (epoll on its fd / wait(-1)).
 * Expected: A's reset completes only after B's requests completed (B's
 * poll), A is woken for it (no hang), and in eventfd mode A's fd is written
 * at most once for the reset (no wake-up storm while B holds it back).
 * Cases cycle B's group kind (plain, shared) and A's mode.
 * usage: adv_wake
 */
#include "common.h"
#include <pthread.h>
#include <sys/epoll.h>

static struct aioblk_disk *X;
static int b_kind;
static double t_reset_done, t_start;
static int64_t t_b_poll_us; /* atomic */
static int b_issued, b_done, a_done;
static pthread_barrier_t bar;

static void
b_cb(void *arg, int status)
{
	__atomic_add_fetch(&b_done, 1, __ATOMIC_RELAXED);
}
static void
a_cb(void *arg, int status)
{
	CHECK(status == 0, "reset %d", status);
	a_done = 1;
	t_reset_done = now_s() - t_start;
}

static void *
thread_b(void *arg)
{
	struct aioblk_group_opts go = { .flags = b_kind ? AIOBLK_GROUP_SHARED_CONTEXT : 0 };
	struct aioblk_group *g;
	struct aioblk_channel *c;
	if (aioblk_group_create_ext(&go, &g) || aioblk_channel_create(g, X, 32, &c))
		DIE("b setup");
	char *buf = xalloc(4096, 16 * 4096);
	int n = 0;
	for (int i = 0; i < 16; i++)
		if (aioblk_read(c, buf + i * 4096, (uint64_t)i * 8, 8, b_cb, NULL) == 0)
			n++;
	aioblk_group_submit(g);
	__atomic_store_n(&b_issued, n, __ATOMIC_RELEASE);
	pthread_barrier_wait(&bar); /* A resets now */
	usleep(300000);
	__atomic_store_n(&t_b_poll_us, (int64_t)((now_s() - t_start) * 1e6), __ATOMIC_RELEASE);
	while (__atomic_load_n(&b_done, __ATOMIC_RELAXED) < n)
		aioblk_group_poll(g, 0);
	aioblk_channel_destroy(c);
	aioblk_group_destroy(g);
	free(buf);
	return NULL;
}

int
main(void)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/adv_wake.%d", tmpdir(), getpid());
	make_file(path, 1 << 20);
	if (aioblk_disk_open(path, NULL, &X))
		DIE("open");
	for (int kase = 0; kase < 4; kase++) {
		b_kind = kase % 2;
		int efd = kase / 2 == 0;
		b_done = b_issued = a_done = 0;
		t_b_poll_us = 0;
		struct aioblk_group_opts go = { .flags = AIOBLK_GROUP_SHARED_CONTEXT |
							 (efd ? AIOBLK_GROUP_EVENTFD : 0) };
		struct aioblk_group *g;
		struct aioblk_channel *c;
		if (aioblk_group_create_ext(&go, &g) || aioblk_channel_create(g, X, 8, &c))
			DIE("a setup");
		int ep = -1;
		if (efd) {
			ep = epoll_create1(EPOLL_CLOEXEC);
			struct epoll_event ev = { .events = EPOLLIN };
			epoll_ctl(ep, EPOLL_CTL_ADD, aioblk_group_fd(g), &ev);
		}
		pthread_barrier_init(&bar, NULL, 2);
		pthread_t tb;
		t_start = now_s();
		pthread_create(&tb, NULL, thread_b, NULL);
		pthread_barrier_wait(&bar);
		usleep(20000); /* B's requests are done in the kernel, unreaped */
		if (aioblk_reset(c, a_cb, NULL))
			DIE("reset");
		aioblk_group_poll(g, 0);
		int wakes = 0;
		double dl = now_s() + 5;
		while (!a_done && now_s() < dl) {
			if (efd) {
				struct epoll_event ev;
				if (epoll_wait(ep, &ev, 1, 3000) <= 0) {
					FAIL("case %d: eventfd A not woken for 3 s (B polled at %.0f ms)", kase,
					     __atomic_load_n(&t_b_poll_us, __ATOMIC_ACQUIRE) / 1e3);
					break;
				}
				wakes++;
				aioblk_group_poll(g, 0);
			} else {
				int r = aioblk_group_wait(g, -1);
				if (r < 0)
					FAIL("wait %d", r);
				wakes++;
			}
		}
		pthread_join(tb, NULL);
		double tbp = __atomic_load_n(&t_b_poll_us, __ATOMIC_ACQUIRE) / 1e6;
		printf("case %d (B %s, A %s): reset done at %.1f ms, B first polled at %.1f ms, A woke %d times\n",
		       kase, b_kind ? "shared" : "plain", efd ? "eventfd" : "busy-poll wait(-1)", t_reset_done * 1e3,
		       tbp * 1e3, wakes);
		CHECK(a_done, "case %d: reset never completed", kase);
		if (t_reset_done < tbp)
			printf("  note: the reset finished before B's callbacks ran (the requests had finished in the "
			       "kernel)\n");
		if (efd)
			CHECK(wakes <= 2, "case %d: A's fd woke %d times for one reset", kase, wakes);
		aioblk_channel_destroy(c);
		aioblk_group_destroy(g);
		if (ep >= 0)
			close(ep);
		pthread_barrier_destroy(&bar);
	}
	aioblk_disk_close(X);
	unlink(path);
	return adv_exit("adv_wake");
}
