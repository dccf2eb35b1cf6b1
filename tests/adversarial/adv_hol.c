/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Head-of-line blocking in one group: a slow block device whose queue
 * (queue/nr_requests) is small, next to a fast file, in one group (made
 * by adv_hol.sh: loop device over an nbdkit export with a delay filter).
 * The device's requests beyond its queue limit wait in their channel; the
 * file's requests issued after them must still reach the kernel at once
 * and complete long before the device's first completion, and no poll or
 * submit may sleep in the kernel. Cases, for a shared busy-poll, a shared
 * eventfd and a plain group:
 *  A: limit small requests in the device, one more waiting, then file reads;
 *  B: one small device request, then one larger than the whole queue
 *     (split into more requests than nr_requests), then file reads;
 *  C: 5 x limit reads (most held back in the channel), then resets on the
 *     same channel and on a channel of another (shared eventfd) group: both
 *     finish only after every read.
 * usage: adv_hol DEVICE DELAY_MS
 */
#include "common.h"
#include <sys/epoll.h>
#include <sys/resource.h>

static int done_dev, done_file;
static double t_first_dev, t_last_file, t0;

static void
cb_dev(void *arg, int status)
{
	CHECK(status == 0, "device status %d", status);
	if (!done_dev++)
		t_first_dev = now_s() - t0;
}
static void
cb_file(void *arg, int status)
{
	CHECK(status == 0, "file status %d", status);
	done_file++;
	t_last_file = now_s() - t0;
}

struct rflag {
	int *flag, *at;
};
static void
reset_cb(void *arg, int status)
{
	struct rflag *f = arg;
	CHECK(status == 0, "reset %d", status);
	*f->flag = 1;
	*f->at = done_dev;
}

int
main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	double delay = atof(argv[2]) / 1000;
	struct aioblk_disk *dev, *file;
	int rc = aioblk_disk_open(argv[1], NULL, &dev);
	if (rc)
		DIE("open %s: %d", argv[1], rc);
	unsigned lim = aioblk_disk_queue_limit(dev);
	uint32_t bs = aioblk_disk_block_size(dev);
	printf("%s: queue limit %u, block %u\n", argv[1], lim, bs);
	if (lim == 0 || lim > 16)
		DIE("want a small queue limit, got %u", lim);
	char fpath[256];
	snprintf(fpath, sizeof(fpath), "%s/adv_hol.%d", tmpdir(), getpid());
	make_file(fpath, 1 << 20);
	struct aioblk_disk_opts fo = { .block_size = bs };
	if ((rc = aioblk_disk_open(fpath, &fo, &file)))
		DIE("open file %d", rc);
	size_t bigsz = 8u << 20;
	char *big = xalloc(4096, bigsz), *small = xalloc(4096, 64 * 4096);
	const char *kname[] = { "shared busy-poll", "shared eventfd", "plain busy-poll", "plain eventfd" };
	for (int kind = 0; kind < 4; kind++) {
		for (int cs = 0; cs < 2; cs++) {
			struct aioblk_group_opts go = { .flags = (kind < 2 ? AIOBLK_GROUP_SHARED_CONTEXT : 0) |
								 (kind % 2 ? AIOBLK_GROUP_EVENTFD : 0) };
			struct aioblk_group *g;
			struct aioblk_channel *cd, *cf;
			if (aioblk_group_create_ext(&go, &g) || aioblk_channel_create(g, dev, 64, &cd) ||
			    aioblk_channel_create(g, file, 64, &cf))
				DIE("setup");
			done_dev = done_file = 0;
			t_first_dev = t_last_file = -1;
			int ndev = 0;
			t0 = now_s();
			if (cs == 0) {
				for (unsigned i = 0; i <= lim; i++, ndev++)
					if ((rc = aioblk_read(cd, small + i * bs, i * 8, 1, cb_dev, NULL)))
						DIE("dev read %d", rc);
			} else {
				if ((rc = aioblk_read(cd, small, 0, 1, cb_dev, NULL)))
					DIE("dev read %d", rc);
				if ((rc = aioblk_write(cd, big, 1024, bigsz / bs, cb_dev, NULL)))
					DIE("dev big write %d", rc);
				ndev = 2;
			}
			for (int i = 0; i < 8; i++)
				if ((rc = aioblk_read(cf, small + (32 + i) * 4096, (uint64_t)i, 1, cb_file, NULL)))
					DIE("file read %d", rc);
			struct rusage ru0, ru1;
			long vcsw = 0;
			double ts = now_s();
			getrusage(RUSAGE_THREAD, &ru0);
			aioblk_group_submit(g);
			getrusage(RUSAGE_THREAD, &ru1);
			vcsw += ru1.ru_nvcsw - ru0.ru_nvcsw;
			double tsub = now_s() - ts, tpoll = 0;
			double dl = now_s() + 30 * delay + 10;
			while ((done_dev < ndev || done_file < 8) && now_s() < dl) {
				double tp = now_s();
				getrusage(RUSAGE_THREAD, &ru0);
				aioblk_group_poll(g, 0);
				getrusage(RUSAGE_THREAD, &ru1);
				vcsw += ru1.ru_nvcsw - ru0.ru_nvcsw;
				tp = now_s() - tp;
				if (tp > tpoll)
					tpoll = tp;
			}
			printf("%s, case %c: submit %.1f ms, longest poll %.1f ms, %ld sleeps in submit/poll; files done at %.1f ms, first device "
			       "completion at %.1f ms (delay %.0f ms)\n",
			       kname[kind], 'A' + cs, tsub * 1e3, tpoll * 1e3, vcsw, t_last_file * 1e3,
			       t_first_dev * 1e3, delay * 1e3);
			CHECK(done_dev == ndev && done_file == 8, "%s case %c: %d/%d device, %d/8 file done",
			      kname[kind], 'A' + cs, done_dev, ndev, done_file);
			CHECK(t_last_file >= 0 && t_last_file < delay / 2,
			      "%s case %c: the file's reads waited %.1f ms behind the device (its first completion at "
			      "%.1f ms)",
			      kname[kind], 'A' + cs, t_last_file * 1e3, t_first_dev * 1e3);
			/* voluntary context switches: the thread slept (preemption on a busy machine is involuntary) */
			CHECK(vcsw == 0,
			      "%s case %c: submit/poll slept in the kernel %ld times (submit %.1f ms, longest "
			      "poll %.1f ms)",
			      kname[kind], 'A' + cs, vcsw, tsub * 1e3, tpoll * 1e3);
			aioblk_channel_destroy(cd);
			aioblk_channel_destroy(cf);
			aioblk_group_destroy(g);
		}
	}
	/* C: requests held back by the queue limit (accepted, not yet in the kernel) delay a reset:
	 * 5 x limit reads, then a reset on the same channel and one from another group's channel */
	for (int kind = 0; kind < 2; kind++) {
		struct aioblk_group_opts go = { .flags = kind == 0 ? AIOBLK_GROUP_SHARED_CONTEXT : 0 };
		struct aioblk_group_opts go2 = { .flags = AIOBLK_GROUP_SHARED_CONTEXT | AIOBLK_GROUP_EVENTFD };
		struct aioblk_group *g, *g2;
		struct aioblk_channel *cd, *cd2;
		if (aioblk_group_create_ext(&go, &g) || aioblk_channel_create(g, dev, 64, &cd) ||
		    aioblk_group_create_ext(&go2, &g2) || aioblk_channel_create(g2, dev, 4, &cd2))
			DIE("setup C");
		done_dev = 0;
		int n = (int)lim * 5;
		for (int i = 0; i < n; i++)
			if ((rc = aioblk_read(cd, small + (i % 32) * 4096, (uint64_t)i * 8, 1, cb_dev, NULL)))
				DIE("read %d", rc);
		aioblk_group_submit(g);
		int r1 = 0, r2 = 0;
		int at1 = -1, at2 = -1;
		struct rflag f1 = { &r1, &at1 }, f2 = { &r2, &at2 };
		if (aioblk_reset(cd, reset_cb, &f1) || aioblk_reset(cd2, reset_cb, &f2))
			DIE("reset");
		double dl = now_s() + 30 * delay * n + 10;
		while ((!r1 || !r2 || done_dev < n) && now_s() < dl) {
			aioblk_group_poll(g, 0);
			aioblk_group_poll(g2, 0);
		}
		printf("case C (%s): %d reads behind a queue of %u; resets done after %d (same group) and %d (shared "
		       "eventfd group) of them\n",
		       kind ? "plain" : "shared", n, lim, at1, at2);
		CHECK(r1 && r2 && done_dev == n, "case C: resets %d %d, reads %d of %d", r1, r2, done_dev, n);
		CHECK(at1 == n && at2 == n,
		      "case C (%s): a reset finished after only %d / %d of %d reads accepted before it",
		      kind ? "plain" : "shared", at1, at2, n);
		aioblk_channel_destroy(cd);
		aioblk_channel_destroy(cd2);
		aioblk_group_destroy(g);
		aioblk_group_destroy(g2);
	}
	aioblk_disk_close(dev);
	aioblk_disk_close(file);
	unlink(fpath);
	free(big);
	free(small);
	return adv_exit("adv_hol");
}
