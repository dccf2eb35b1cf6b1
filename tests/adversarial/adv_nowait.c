/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * io_submit refusing one iocb in the middle of a shared group's batch:
 * devices opened with AIOBLK_DISK_NOWAIT (a private zram, a loop device;
 * where the kernel refuses RWF_NOWAIT at io_submit the library turns it
 * off and resubmits) interleaved with files in one SHARED_CONTEXT group,
 * one submit for all. Every read completes once, with its disk's data.
 * usage: adv_nowait DEV... (files are made here)
 */
#include "common.h"
#include <sys/epoll.h>

#define MAXD 8
struct rq {
	int d;
	uint64_t off;
	char *buf;
	int calls, status;
};
static int ncb;
static void
cb(void *arg, int status)
{
	struct rq *r = arg;
	r->calls++;
	r->status = status;
	ncb++;
}

int
main(int argc, char **argv)
{
	struct aioblk_disk *d[MAXD];
	struct aioblk_channel *c[MAXD];
	char path[MAXD][256];
	int nd = 0;
	for (int i = 1; i < argc && nd < MAXD - 2; i++)
		snprintf(path[nd++], 256, "%s", argv[i]);
	int ndev = nd;
	for (int k = 0; k < 2; k++) {
		snprintf(path[nd], 256, "%s/adv_nowait.%d.%d", tmpdir(), getpid(), k);
		make_file(path[nd++], 4 << 20);
	}
	/* stamp 64 blocks of 4096 on every disk, with pwrite */
	char *blk = xalloc(4096, 4096);
	for (int i = 0; i < nd; i++) {
		int fd = open(path[i], O_WRONLY | O_DIRECT);
		if (fd < 0)
			fd = open(path[i], O_WRONLY);
		for (uint64_t b = 0; b < 64; b++) {
			stamp(blk, 4096, (uint32_t)i, b, 3);
			if (pwrite(fd, blk, 4096, (off_t)(b * 4096)) != 4096)
				DIE("pwrite %s", path[i]);
		}
		fsync(fd);
		close(fd);
	}
	/* ADV_NOWAIT_REACTOR_ONLY=1 runs only the reactor part, so that
	 * its devices meet RWF_NOWAIT for the first time */
	for (int g_kind = getenv("ADV_NOWAIT_REACTOR_ONLY") ? 2 : 0; g_kind < 2; g_kind++) {
		struct aioblk_group_opts go = {
			.flags = AIOBLK_GROUP_SHARED_CONTEXT | (g_kind ? AIOBLK_GROUP_EVENTFD : 0), .queue_depth = 1024
		};
		struct aioblk_group *g;
		if (aioblk_group_create_ext(&go, &g))
			DIE("group");
		for (int i = 0; i < nd; i++) {
			struct aioblk_disk_opts o = { .block_size = 4096, .flags = i < ndev ? AIOBLK_DISK_NOWAIT : 0 };
			int rc = aioblk_disk_open(path[i], &o, &d[i]);
			if (rc)
				DIE("open %s: %d", path[i], rc);
			if (aioblk_channel_create(g, d[i], 128, &c[i]))
				DIE("channel");
		}
		for (int round = 0; round < 20; round++) {
			struct rq r[MAXD * 16];
			int n = 0;
			ncb = 0;
			for (int k = 0; k < 16; k++)
				for (int i = 0; i < nd; i++) {
					struct rq *q = &r[n++];
					q->d = i;
					q->off = (uint64_t)((k * 7 + round) % 64);
					q->buf = xalloc(4096, 4096);
					q->calls = 0;
					q->status = 1;
					if (aioblk_read(c[i], q->buf, q->off, 1, cb, q))
						DIE("read");
				}
			int took = aioblk_group_submit(g);
			if (round == 0) {
				unsigned long long calls = 0;
				for (int i = 0; i < nd; i++) {
					struct aioblk_channel_stats st;
					aioblk_channel_get_stats(c[i], &st);
					calls += st.io_submit_calls;
				}
				printf("after the first submit (returned %d): channels' io_submit_calls sum %llu\n",
				       took, calls);
			}
			double dl = now_s() + 10;
			while (ncb < n && now_s() < dl)
				aioblk_group_poll(g, 0);
			CHECK(ncb == n, "round %d: %d of %d callbacks (first submit took %d)", round, ncb, n, took);
			for (int j = 0; j < n; j++) {
				CHECK(r[j].calls == 1, "read %d: %d callbacks", j, r[j].calls);
				CHECK(r[j].status == 0, "%s block %" PRIu64 ": status %d", path[r[j].d], r[j].off,
				      r[j].status);
				if (r[j].status == 0)
					CHECK(!verify(r[j].buf, 4096, (uint32_t)r[j].d, r[j].off, 3),
					      "%s block %" PRIu64 ": wrong data", path[r[j].d], r[j].off);
				free(r[j].buf);
			}
			if (round == 0)
				printf("group %s: first submit took %d of %d\n", g_kind ? "eventfd" : "busy", took, n);
		}
		for (int i = 0; i < nd; i++) {
			struct aioblk_channel_stats st;
			aioblk_channel_get_stats(c[i], &st);
			printf("  %s: reads %" PRIu64 " retries %" PRIu64 " errors %" PRIu64 " io_submit calls %" PRIu64
			       "\n",
			       path[i], st.reads, st.retries, st.errors, st.io_submit_calls);
			aioblk_channel_destroy(c[i]);
			aioblk_disk_close(d[i]);
		}
		aioblk_group_destroy(g);
	}
	/* eventfd reactor: aioblk_group_submit(), then sleep on the fd only. The first NOWAIT read of a
	 * freshly opened device heads the batch, the files' reads follow it. */
	for (int kind = 0; kind < 2; kind++) {
		for (int round = 0; round < 5; round++) {
			struct aioblk_group_opts go = { .flags = AIOBLK_GROUP_EVENTFD |
								 (kind ? 0 : AIOBLK_GROUP_SHARED_CONTEXT) };
			struct aioblk_group *g;
			if (aioblk_group_create_ext(&go, &g))
				DIE("group");
			int ep = epoll_create1(EPOLL_CLOEXEC);
			struct epoll_event ev = { .events = EPOLLIN };
			epoll_ctl(ep, EPOLL_CTL_ADD, aioblk_group_fd(g), &ev);
			for (int i = 0; i < nd; i++) {
				struct aioblk_disk_opts o = { .block_size = 4096,
							      .flags = i < ndev ? AIOBLK_DISK_NOWAIT : 0 };
				if (aioblk_disk_open(path[i], &o, &d[i]) || aioblk_channel_create(g, d[i], 16, &c[i]))
					DIE("open");
			}
			struct rq r[MAXD * 16];
			int n = 0, K = getenv("ADV_NOWAIT_K") ? atoi(getenv("ADV_NOWAIT_K")) : 4;
			ncb = 0;
			for (int k = 0; k < K && k < 16; k++)
				for (int i = 0; i < nd; i++) {
					struct rq *q = &r[n++];
					q->d = i;
					q->off = (uint64_t)k;
					q->buf = xalloc(4096, 4096);
					q->calls = 0;
					if (aioblk_read(c[i], q->buf, q->off, 1, cb, q))
						DIE("read");
				}
			int took = aioblk_group_submit(g);
			int sleeps = 0;
			while (ncb < n) {
				if (epoll_wait(ep, &ev, 1, 3000) <= 0) {
					int got = aioblk_group_poll(g, 0);
					FAIL("%s group, round %d: submit took %d of %d, then the fd stayed silent 3 s with %d "
					     "callbacks pending (a poll then ran %d)",
					     kind ? "plain" : "shared", round, took, n, n - ncb, got);
					break;
				}
				sleeps++;
				aioblk_group_poll(g, 0);
				aioblk_group_submit(g);
			}
			double dl = now_s() + 5;
			while (ncb < n && now_s() < dl)
				aioblk_group_poll(g, 0);
			if (round == 0)
				printf("%s eventfd group: submit took %d of %d, %d wake-ups\n",
				       kind ? "plain" : "shared", took, n, sleeps);
			for (int j = 0; j < n; j++) {
				CHECK(r[j].calls == 1, "read %d: %d callbacks", j, r[j].calls);
				free(r[j].buf);
			}
			for (int i = 0; i < nd; i++) {
				aioblk_channel_destroy(c[i]);
				aioblk_disk_close(d[i]);
			}
			aioblk_group_destroy(g);
			close(ep);
		}
	}
	free(blk);
	return adv_exit("adv_nowait");
}
