/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Defect 1 of README.md on one thread: a busy-poll group B fills the block
 * device's queue limit (aioblk_disk_queue_limit()) and is not polled, so a
 * WAIT_IN_KERNEL group A's one read stays held in A's channel and A has
 * nothing in the kernel. A's wait(200) must return 0 after 200 ms; the
 * header has WIK sleep in io_getevents while requests are in the kernel
 * and look every 100 us while only library-thread work or resets are
 * outstanding; here it is checked that it does not spin either (thread CPU
 * below 25% of the wall time; a busy-poll group A is measured beside it).
 * Also checked: A's channel counts no retries for a request that never
 * reached io_submit (the header: retries count resubmissions: short
 * transfers, NOWAIT retries, submit EAGAIN).
 * WIK_SKIP_KNOWN=1 prints both as known defects instead of failing.
 * usage: wik_held BLOCKDEV   (one with a queue limit: a loop device)
 */
#include "wcommon.h"

static int done;
static void
cb(void *arg, int status)
{
	done++;
}

int
main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	struct aioblk_disk *d;
	int rc = aioblk_disk_open(argv[1], NULL, &d);
	if (rc)
		DIE("open %s: %d", argv[1], rc);
	unsigned lim = aioblk_disk_queue_limit(d);
	if (lim == 0 || lim > 48) {
		printf("wik_held: skip: %s has queue limit %u\n", argv[1], lim);
		return 77;
	}
	int known = getenv("WIK_SKIP_KNOWN") && atoi(getenv("WIK_SKIP_KNOWN"));
	char *buf = xalloc(4096, 64 * 4096);
	double frac[2] = { 0, 0 };
	unsigned long retries[2] = { 0, 0 };
	for (int shared = 0; shared < 2; shared++)
		for (int wik = 1; wik >= 0; wik--) {
			struct aioblk_group *a, *b;
			struct aioblk_channel *ca, *cbb;
			struct aioblk_group_opts go = { .flags = (wik ? WIK : 0) |
								 (shared ? AIOBLK_GROUP_SHARED_CONTEXT : 0) };
			if (aioblk_group_create(0, &b) || aioblk_channel_create(b, d, 64, &cbb) ||
			    aioblk_group_create_ext(&go, &a) || aioblk_channel_create(a, d, 8, &ca))
				DIE("setup");
			done = 0;
			for (unsigned i = 0; i < lim; i++)
				if (aioblk_read(cbb, buf + i * 4096, (uint64_t)i * 8, 8, cb, NULL))
					DIE("B read");
			aioblk_group_submit(b); /* B holds the whole queue limit, unpolled */
			if (aioblk_read(ca, buf + 63 * 4096, 0, 8, cb, NULL))
				DIE("A read");
			double w0 = now_s(), c0 = thread_cpu_s();
			rc = aioblk_group_wait(a, 200);
			double w = now_s() - w0, c = thread_cpu_s() - c0;
			struct aioblk_channel_stats st;
			aioblk_channel_get_stats(ca, &st);
			printf("A %s %s: queue limit %u held by B, A's wait(200) = %d after %.1f ms, %.1f ms CPU "
			       "(%.0f%%); A's channel: %lu retries, %lu io_submit calls\n",
			       shared ? "shared" : "plain", wik ? "WAIT_IN_KERNEL" : "busy-poll", lim, rc, w * 1e3,
			       c * 1e3, 100 * c / w, (unsigned long)st.retries, (unsigned long)st.io_submit_calls);
			CHECK(rc == 0 || rc == 1, "A's wait(200) = %d", rc);
			if (rc == 0)
				CHECK(w >= 0.2, "A's wait(200) returned 0 after %.1f ms", w * 1e3);
			if (wik) {
				frac[shared] = c / w;
				retries[shared] = st.io_submit_calls == 0 ? (unsigned long)st.retries : 0;
			}
			while (done < (int)lim + 1) {
				aioblk_group_poll(b, 0);
				aioblk_group_poll(a, 0);
			}
			aioblk_channel_destroy(ca);
			aioblk_channel_destroy(cbb);
			aioblk_group_destroy(a);
			aioblk_group_destroy(b);
		}
	for (int shared = 0; shared < 2; shared++) {
		const char *k = shared ? "shared" : "plain";
		if (known && frac[shared] >= 0.25)
			printf("known defect 1: A %s WAIT_IN_KERNEL spun (%.0f%% CPU)\n", k, 100 * frac[shared]);
		else
			CHECK(frac[shared] < 0.25,
			      "A %s WAIT_IN_KERNEL: wait(200) spent %.0f%% of its time on CPU with its only request "
			      "held by the disk's queue limit (nothing in the kernel)",
			      k, 100 * frac[shared]);
		if (known && retries[shared] > 2)
			printf("known defect 2: A %s counted %lu retries without an io_submit\n", k, retries[shared]);
		else
			CHECK(retries[shared] <= 2,
			      "A %s: the channel counted %lu retries for one read that never reached io_submit", k,
			      retries[shared]);
	}
	aioblk_disk_close(d);
	free(buf);
	return adv_exit("wik_held");
}
