/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * One thread, three groups on one disk: A (SHARED_CONTEXT, eventfd),
 * B (plain), C (SHARED_CONTEXT, busy-poll). Requests are accepted in B and
 * C, then A resets the disk. Polling only A must not complete the reset
 * while B's and C's callbacks have not run; once B and C are polled, A's fd
 * becomes readable and A's next poll runs the reset, after all of B's and
 * C's callbacks. Repeated with resets issued from B's callbacks on A.
 * usage: adv_twogroups
 */
#include "common.h"
#include <sys/epoll.h>

static int bc_done, a_done, seq, a_seq, last_bc_seq;
static void
bc_cb(void *arg, int status)
{
	CHECK(status == 0, "status %d", status);
	bc_done++;
	last_bc_seq = ++seq;
}
static void
a_cb(void *arg, int status)
{
	CHECK(status == 0, "reset %d", status);
	a_done++;
	a_seq = ++seq;
}

static bool
readable(int ep, int ms)
{
	struct epoll_event ev;
	return epoll_wait(ep, &ev, 1, ms) > 0;
}

int
main(void)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/adv_twogroups.%d", tmpdir(), getpid());
	make_file(path, 4 << 20);
	struct aioblk_disk *d;
	if (aioblk_disk_open(path, NULL, &d))
		DIE("open");
	struct aioblk_group_opts ga = { .flags = AIOBLK_GROUP_SHARED_CONTEXT | AIOBLK_GROUP_EVENTFD };
	struct aioblk_group_opts gb = { 0 };
	struct aioblk_group_opts gc = { .flags = AIOBLK_GROUP_SHARED_CONTEXT, .queue_depth = 64 };
	struct aioblk_group *A, *B, *C;
	struct aioblk_channel *ca, *cb_, *cc;
	if (aioblk_group_create_ext(&ga, &A) || aioblk_group_create_ext(&gb, &B) || aioblk_group_create_ext(&gc, &C) ||
	    aioblk_channel_create(A, d, 8, &ca) || aioblk_channel_create(B, d, 32, &cb_) ||
	    aioblk_channel_create(C, d, 32, &cc))
		DIE("setup");
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN };
	epoll_ctl(ep, EPOLL_CTL_ADD, aioblk_group_fd(A), &ev);
	char *buf = xalloc(4096, 64 * 4096);
	for (int round = 0; round < 50; round++) {
		bc_done = a_done = 0;
		int n = 0;
		for (int i = 0; i < 16; i++) {
			if (aioblk_read(cb_, buf + i * 4096, (uint64_t)i, 1, bc_cb, NULL) == 0)
				n++;
			if (i % 4 == 0 && aioblk_write_zeroes(cc, 100 + (uint64_t)i, 1, bc_cb, NULL) == 0)
				n++;
			else if (aioblk_read(cc, buf + (16 + i) * 4096, (uint64_t)i, 1, bc_cb, NULL) == 0)
				n++;
		}
		aioblk_group_submit(B);
		aioblk_group_submit(C);
		usleep(2000);
		if (aioblk_reset(ca, a_cb, NULL))
			DIE("reset");
		/* only A polled */
		double t0 = now_s();
		while (now_s() - t0 < 0.05) {
			aioblk_group_poll(A, 0);
			if (a_done)
				break;
		}
		CHECK(!a_done, "round %d: A's reset finished while B's and C's callbacks had not run (%d of %d)", round,
		      bc_done, n);
		/* now B and C */
		while (bc_done < n && now_s() - t0 < 10) {
			aioblk_group_poll(B, 0);
			aioblk_group_poll(C, 0);
		}
		CHECK(bc_done == n, "round %d: B/C %d of %d", round, bc_done, n);
		if (!readable(ep, 3000))
			FAIL("round %d: A's fd not readable after B and C completed (reset pending)", round);
		aioblk_group_poll(A, 0);
		CHECK(a_done == 1, "round %d: A's reset not done after B and C (a_done %d)", round, a_done);
		if (a_done)
			CHECK(a_seq > last_bc_seq, "round %d: reset callback before B/C callbacks", round);
	}
	aioblk_channel_destroy(ca);
	aioblk_channel_destroy(cb_);
	aioblk_channel_destroy(cc);
	aioblk_group_destroy(A);
	aioblk_group_destroy(B);
	aioblk_group_destroy(C);
	aioblk_disk_close(d);
	close(ep);
	free(buf);
	unlink(path);
	return adv_exit("adv_twogroups");
}
