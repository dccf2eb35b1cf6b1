/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * An idle SHARED_CONTEXT group of many channels: polls make no system call
 * (adv_idle.sh counts them with strace), also after I/O has come and gone.
 * usage: adv_idle [channels]
 */
#include "common.h"

static int done;
static void
cb(void *arg, int status)
{
	done++;
}

int
main(int argc, char **argv)
{
	int nc = argc > 1 ? atoi(argv[1]) : 32;
	struct aioblk_group_opts go = { .flags = AIOBLK_GROUP_SHARED_CONTEXT | AIOBLK_GROUP_EVENTFD };
	struct aioblk_group *g;
	if (aioblk_group_create_ext(&go, &g))
		DIE("group");
	struct aioblk_disk *d[64];
	struct aioblk_channel *c[64];
	char p[64][256];
	for (int i = 0; i < nc && i < 64; i++) {
		snprintf(p[i], sizeof(p[i]), "%s/adv_idle.%d.%d", tmpdir(), getpid(), i);
		make_file(p[i], 1 << 16);
		if (aioblk_disk_open(p[i], NULL, &d[i]) || aioblk_channel_create(g, d[i], 4, &c[i]))
			DIE("setup");
	}
	char *buf = xalloc(4096, 4096);
	for (int i = 0; i < nc; i++)
		aioblk_read(c[i], buf, 0, 1, cb, NULL);
	while (done < nc)
		aioblk_group_wait(g, 100);
	/* marker: the idle polls start after this write */
	if (write(2, "IDLE-START\n", 11) < 0)
		return 1;
	int ran = 0;
	for (int k = 0; k < 200000; k++)
		ran += aioblk_group_poll(g, (unsigned)(k % 3));
	if (write(2, "IDLE-END\n", 9) < 0)
		return 1;
	CHECK(ran == 0, "idle polls ran %d callbacks", ran);
	for (int i = 0; i < nc; i++) {
		aioblk_channel_destroy(c[i]);
		aioblk_disk_close(d[i]);
	}
	aioblk_group_destroy(g);
	free(buf);
	return adv_exit("adv_idle");
}
