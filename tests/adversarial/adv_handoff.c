/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * "A group belongs to one thread at a time": hand SHARED_CONTEXT groups
 * from thread to thread (each hop joined before the next starts), with
 * requests, resets and write-zeroes outstanding across the hand-off, and a
 * reset of another thread's disk waiting meanwhile. Every callback runs
 * once, on the thread that polls; -EBUSY from callbacks still holds on the
 * new thread; the group's fd still wakes its new owner.
 * usage: adv_handoff [hops]
 */
#include "common.h"
#include <pthread.h>
#include <sys/epoll.h>

#define NCH 4
static struct aioblk_group *G;
static struct aioblk_channel *C[NCH];
static struct aioblk_disk *D[NCH];
static int ep;
static int outstanding;
static pthread_t poller;
static int hop;
static char *bufs[NCH];
static uint64_t rng = 99;

static void
cb(void *arg, int status)
{
	CHECK(status == 0, "status %d", status);
	CHECK(pthread_equal(pthread_self(), poller), "hop %d: callback on a thread that is not polling", hop);
	CHECK(aioblk_group_poll(G, 0) == -EBUSY, "hop %d: poll from a callback not -EBUSY", hop);
	CHECK(aioblk_channel_destroy(C[0]) == -EBUSY, "hop %d: destroy from a callback not -EBUSY", hop);
	outstanding--;
}

static void
load(int n)
{
	for (int i = 0; i < n; i++) {
		int c = (int)(xrand(&rng) % NCH);
		int op = (int)(xrand(&rng) % 4), rc;
		if (op == 0)
			rc = aioblk_read(C[c], bufs[c], xrand(&rng) % 16, 1, cb, NULL);
		else if (op == 1)
			rc = aioblk_write_zeroes(C[c], 16 + xrand(&rng) % 16, 1, cb, NULL);
		else if (op == 2)
			rc = aioblk_reset(C[c], cb, NULL);
		else
			rc = aioblk_flush(C[c], cb, NULL);
		if (rc == 0)
			outstanding++;
		else if (rc != -EAGAIN)
			FAIL("refused %d", rc);
	}
	aioblk_group_submit(G);
}

static void *
owner(void *arg)
{
	poller = pthread_self();
	/* drain half of what the previous owner left, via the fd */
	int target = outstanding / 2;
	while (outstanding > target) {
		struct epoll_event ev;
		if (epoll_wait(ep, &ev, 1, 3000) <= 0) {
			FAIL("hop %d: fd silent 3 s with %d outstanding (poll now runs %d)", hop, outstanding,
			     aioblk_group_poll(G, 0));
			break;
		}
		aioblk_group_poll(G, (unsigned)(xrand(&rng) % 3));
		aioblk_group_submit(G);
	}
	load(16);
	return NULL;
}

int
main(int argc, char **argv)
{
	int hops = argc > 1 ? atoi(argv[1]) : 300;
	struct aioblk_group_opts go = { .flags = AIOBLK_GROUP_SHARED_CONTEXT | AIOBLK_GROUP_EVENTFD,
					.queue_depth = 32 };
	if (aioblk_group_create_ext(&go, &G))
		DIE("group");
	char path[NCH][256];
	for (int i = 0; i < NCH; i++) {
		snprintf(path[i], sizeof(path[i]), "%s/adv_handoff.%d.%d", tmpdir(), getpid(), i);
		make_file(path[i], 1 << 20);
		if (aioblk_disk_open(path[i], NULL, &D[i]) || aioblk_channel_create(G, D[i], 16, &C[i]))
			DIE("setup");
		bufs[i] = xalloc(4096, 4096);
	}
	ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN };
	epoll_ctl(ep, EPOLL_CTL_ADD, aioblk_group_fd(G), &ev);
	poller = pthread_self();
	load(24);
	for (hop = 0; hop < hops && !FAILED(); hop++) {
		pthread_t t;
		pthread_create(&t, NULL, owner, NULL);
		pthread_join(t, NULL);
	}
	poller = pthread_self();
	double dl = now_s() + 10;
	while (outstanding && now_s() < dl) {
		if (epoll_wait(ep, &ev, 1, 3000) <= 0) {
			FAIL("final drain: fd silent with %d outstanding", outstanding);
			break;
		}
		aioblk_group_poll(G, 0);
	}
	CHECK(outstanding == 0, "%d never completed", outstanding);
	for (int i = 0; i < NCH; i++) {
		CHECK(aioblk_channel_destroy(C[i]) == 0, "destroy");
		aioblk_disk_close(D[i]);
		free(bufs[i]);
	}
	CHECK(aioblk_group_destroy(G) == 0, "group destroy");
	close(ep);
	printf("%d hops\n", hops);
	return adv_exit("adv_handoff");
}
