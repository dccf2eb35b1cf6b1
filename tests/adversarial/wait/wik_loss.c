/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Device loss under AIOBLK_GROUP_WAIT_IN_KERNEL: a loop device whose
 * backing file is truncated to 0 and whose capacity is then re-read
 * (LOOP_SET_CAPACITY) reads a size of 0, while this program keeps reads
 * and writes in flight and waits in wait(-1) (at the moment of the loss
 * only reads are in flight: a write in flight would extend the backing
 * file again, and the capacity would not read 0). Expected: every accepted
 * request's callback runs once (any status: 0, -EIO or -ENODEV), wait(-1)
 * never hangs; afterwards aioblk_disk_rescan() says -ENODEV and new I/O is
 * refused with -ENODEV. Plain and SHARED_CONTEXT groups (one loop each).
 * usage: wik_loss LOOPDEV BACKING_FILE SHARED(0|1)
 */
#include "wcommon.h"
#include <linux/loop.h>
#include <sys/ioctl.h>

static long ncb, nerr;
static int last_status;
static void
cb(void *arg, int status)
{
	ncb++;
	if (status) {
		nerr++;
		last_status = status;
		CHECK(status == -EIO || status == -ENODEV || status == -ENXIO,
		      "callback status %d after device loss (want -EIO or -ENODEV)", status);
	}
	wd_progress();
}

int
main(int argc, char **argv)
{
	if (argc < 4)
		return 2;
	int shared = atoi(argv[3]);
	struct aioblk_disk *d;
	int rc = aioblk_disk_open(argv[1], NULL, &d);
	if (rc)
		DIE("open %s: %d", argv[1], rc);
	struct aioblk_group *g = wik_group(shared, 0);
	struct aioblk_channel *c;
	if (aioblk_channel_create(g, d, 16, &c))
		DIE("channel");
	uint32_t bs = aioblk_disk_block_size(d);
	uint64_t nb = aioblk_disk_num_blocks(d);
	char *buf = xalloc(4096, 16 * 65536);
	wd_start(5);
	wd_armed_set(1);
	long accepted = 0, refused_nodev = 0;
	uint64_t rnd = 42;
	double t0 = now_s();
	int lost = 0;
	for (int iter = 0; now_s() - t0 < 1.5 && FAILED() < 20; iter++) {
		int losing = !lost && now_s() - t0 > 0.5;
		if (losing)
			while (aioblk_channel_inflight(c) > 0)
				aioblk_group_wait(g, -1);
		for (int k = 0; k < 16; k++) {
			uint64_t n = 65536 / bs, off = xrand(&rnd) % (nb - n);
			rc = (k % 2 || losing) ? aioblk_read(c, buf + k * 65536, off, n, cb, NULL) :
						 aioblk_write(c, buf + k * 65536, off, n, cb, NULL);
			if (rc == 0)
				accepted++;
			else if (rc == -ENODEV)
				refused_nodev++;
			else if (rc != -EAGAIN)
				FAIL("I/O refused with %d", rc);
		}
		aioblk_group_submit(g);
		if (losing) {
			/* the device loses its medium now, with requests in flight */
			int bfd = open(argv[2], O_WRONLY);
			int lfd = open(argv[1], O_RDONLY);
			if (bfd < 0 || lfd < 0 || ftruncate(bfd, 0) || ioctl(lfd, LOOP_SET_CAPACITY, 0))
				DIE("shrinking the loop device: %s", strerror(errno));
			close(bfd);
			close(lfd);
			lost = 1;
			printf("device lost at %.0f ms with %u in flight\n", (now_s() - t0) * 1e3,
			       aioblk_channel_inflight(c));
			rc = aioblk_disk_rescan(d);
			CHECK(rc == -ENODEV, "rescan after the loss = %d", rc);
		}
		wd_what_set("wait(-1) on a device that lost its medium");
		if (lost && aioblk_channel_inflight(c) == 0)
			usleep(1000); /* everything is refused now */
		if (aioblk_channel_inflight(c) > 0) {
			rc = aioblk_group_wait(g, -1);
			CHECK(rc > 0, "wait(-1) = %d", rc);
		}
	}
	while (aioblk_channel_inflight(c) > 0) {
		wd_what_set("drain: wait(-1) on a lost device");
		rc = aioblk_group_wait(g, -1);
		if (rc < 0) {
			FAIL("drain wait %d", rc);
			break;
		}
	}
	wd_armed_set(0);
	printf("%s: %ld accepted, %ld callbacks (%ld failed, last %d), %ld refused -ENODEV\n",
	       shared ? "shared" : "plain", accepted, ncb, nerr, last_status, refused_nodev);
	CHECK(ncb == accepted, "%ld accepted, %ld callbacks", accepted, ncb);
	CHECK(refused_nodev > 0, "no request was refused with -ENODEV after the loss");
	rc = aioblk_read(c, buf, 0, 1, cb, NULL);
	CHECK(rc == -ENODEV, "read after the loss = %d", rc);
	aioblk_channel_destroy(c);
	aioblk_group_destroy(g);
	aioblk_disk_close(d);
	free(buf);
	return adv_exit("wik_loss");
}
