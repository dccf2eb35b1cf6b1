/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Short transfers in a SHARED_CONTEXT group: a file shrunk behind the
 * library's back while reads are accepted across and past its new end
 * (other channels of the group stay busy). Reads inside the new size
 * succeed with the right data; reads crossing or past it fail with -EIO
 * (a short read is continued, no progress is -EIO); every callback once;
 * the group depth is whole afterwards; after aioblk_disk_rescan() reads
 * past the new end are refused with -EINVAL.
 * usage: adv_shrink
 */
#include "common.h"

struct rq {
	uint64_t off, n;
	int status, calls;
	char *buf;
};
static int ncb;
static void
cb(void *arg, int status)
{
	struct rq *r = arg;
	r->status = status;
	r->calls++;
	ncb++;
}

int
main(void)
{
	for (int buffered = 0; buffered < 2; buffered++) {
		char path[256], other[256];
		snprintf(path, sizeof(path), "%s/adv_shrink.%d", tmpdir(), getpid());
		snprintf(other, sizeof(other), "%s/adv_shrink_o.%d", tmpdir(), getpid());
		/* content: every block stamped */
		int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
		char *blk = xalloc(4096, 4096);
		for (uint64_t b = 0; b < 256; b++) {
			stamp(blk, 4096, 1, b, 7);
			if (pwrite(fd, blk, 4096, (off_t)(b * 4096)) != 4096)
				DIE("pwrite");
		}
		make_file(other, 1 << 20);
		struct aioblk_disk_opts o = { .block_size = 4096, .flags = buffered ? AIOBLK_DISK_BUFFERED : 0 };
		struct aioblk_disk *d, *d2;
		if (aioblk_disk_open(path, &o, &d) || aioblk_disk_open(other, &o, &d2))
			DIE("open");
		const unsigned D = 80;
		struct aioblk_group_opts go = { .flags = AIOBLK_GROUP_SHARED_CONTEXT, .queue_depth = D };
		struct aioblk_group *g;
		struct aioblk_channel *c, *c2;
		if (aioblk_group_create_ext(&go, &g) || aioblk_channel_create(g, d, 64, &c) ||
		    aioblk_channel_create(g, d2, 16, &c2))
			DIE("setup");
		/* shrink to 102 blocks + 1000 bytes (not a block multiple) behind the library's back: it still
		 * knows 256 blocks and accepts reads up to there */
		const uint64_t newsz = 102 * 4096 + 1000;
		if (ftruncate(fd, (off_t)newsz))
			DIE("ftruncate");
		struct rq r[64], o2[16];
		memset(r, 0, sizeof(r));
		memset(o2, 0, sizeof(o2));
		for (int i = 0; i < 64; i++) {
			r[i].off = (uint64_t)i * 4;
			r[i].n = 4;
			r[i].buf = xalloc(4096, 4 * 4096);
			if (aioblk_read(c, r[i].buf, r[i].off, r[i].n, cb, &r[i]))
				DIE("read %d", i);
		}
		for (int i = 0; i < 16; i++) {
			o2[i].buf = xalloc(4096, 4096);
			if (aioblk_write_zeroes(c2, (uint64_t)i, 1, cb, &o2[i]))
				DIE("wz");
		}
		double dl = now_s() + 10;
		while (ncb < 80 && now_s() < dl)
			aioblk_group_wait(g, 100);
		CHECK(ncb == 80, "buffered %d: %d of 80 callbacks", buffered, ncb);
		int ok = 0, eio = 0;
		for (int i = 0; i < 64; i++) {
			uint64_t end = (r[i].off + r[i].n) * 4096;
			CHECK(r[i].calls == 1, "read %d: %d callbacks", i, r[i].calls);
			if (end <= 102 * 4096) {
				CHECK(r[i].status == 0,
				      "buffered %d: read inside the new size (blocks %" PRIu64 "+4): %d", buffered,
				      r[i].off, r[i].status);
				for (uint64_t b = 0; b < r[i].n && r[i].status == 0; b++)
					CHECK(!verify(r[i].buf + b * 4096, 4096, 1, r[i].off + b, 7),
					      "data block %" PRIu64, r[i].off + b);
				ok++;
			} else {
				CHECK(r[i].status == -EIO,
				      "buffered %d: read of blocks %" PRIu64 "+4 across/past the end "
				      "(%" PRIu64 " bytes): status %d, want -EIO",
				      buffered, r[i].off, newsz, r[i].status);
				eio++;
			}
		}
		/* the group depth is whole */
		int acc = 0, rc;
		char *b1 = xalloc(4096, 4096);
		while ((rc = aioblk_read(c2, b1, 0, 1, cb, &o2[0])) == 0 && acc < 100) {
			acc++;
			if (acc == 16)
				break;
		}
		while (acc < (int)D && (rc = aioblk_read(c, b1, 0, 1, cb, &r[0])) == 0)
			acc++;
		CHECK(acc == (int)D, "buffered %d: group took %d after the short reads, depth %u (last rc %d)",
		      buffered, acc, D, rc);
		ncb = 0;
		dl = now_s() + 10;
		while (ncb < acc && now_s() < dl)
			aioblk_group_wait(g, 100);
		CHECK(aioblk_disk_rescan(d) == -EINVAL, "rescan of a size that is not a block multiple: want -EINVAL");
		if (ftruncate(fd, 100 * 4096))
			DIE("ftruncate");
		CHECK(aioblk_disk_rescan(d) == 0, "rescan");
		CHECK(aioblk_disk_num_blocks(d) == 100, "blocks after rescan %" PRIu64, aioblk_disk_num_blocks(d));
		CHECK(aioblk_read(c, b1, 100, 1, cb, &r[0]) == -EINVAL, "read past the rescanned end");
		printf("buffered %d: %d reads ok, %d -EIO across/past the new end\n", buffered, ok, eio);
		ncb = 0;
		aioblk_channel_destroy(c);
		aioblk_channel_destroy(c2);
		aioblk_group_destroy(g);
		aioblk_disk_close(d);
		aioblk_disk_close(d2);
		close(fd);
		unlink(path);
		unlink(other);
		for (int i = 0; i < 64; i++)
			free(r[i].buf);
		for (int i = 0; i < 16; i++)
			free(o2[i].buf);
		free(blk);
		free(b1);
	}
	return adv_exit("adv_shrink");
}
