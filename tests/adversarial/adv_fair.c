/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * aioblk_group_poll(g, max) with max 1, 2, 3 over many channels of one
 * SHARED_CONTEXT eventfd group, in a reactor that polls only when the fd is
 * readable (epoll):
 * 1. burst: every channel has R completions ready; polls of max m must
 *    return exactly min(m, left); with max 1 a plain group (-P) must visit
 *    channels round-robin ("the next poll starts at the channel after the
 *    one this one stopped in": no channel served twice before every other
 *    ready channel was served once; a shared group runs its ring in
 *    completion order, fair per request, as the header says),
 *    and the fd must be readable again after each poll that stopped at max.
 * 2. steady: every callback reissues on its channel (from the callback, no
 *    aioblk_group_submit): no channel may starve, no wake-up may be lost.
 * usage: adv_fair [-c channels] [-t seconds per max] [-P: plain group, to compare]
 */
#include "common.h"
#include <sys/epoll.h>

#define MAXC 64
static unsigned NC = 16;
static struct aioblk_disk *disk[MAXC];
static struct aioblk_channel *ch[MAXC];
static char path[MAXC][256];
static struct aioblk_group *g;
static int ep;
static void *buf[MAXC][8];
static int order[4096], norder;
static uint64_t count[MAXC];
static unsigned out[MAXC];
static bool reissue;

static void cb(void *arg, int status);

static void
rd(unsigned c, unsigned k)
{
	int rc = aioblk_read(ch[c], buf[c][k], k, 1, cb, (void *)(uintptr_t)(c * 8 + k));
	if (rc)
		FAIL("read on channel %u: %d", c, rc);
	else
		out[c]++;
}

static void
cb(void *arg, int status)
{
	unsigned c = (unsigned)(uintptr_t)arg / 8, k = (unsigned)(uintptr_t)arg % 8;
	CHECK(status == 0, "status %d", status);
	out[c]--;
	count[c]++;
	if (norder < 4096)
		order[norder++] = (int)c;
	if (reissue)
		rd(c, k);
}

static bool
readable(int ms)
{
	struct epoll_event ev;
	return epoll_wait(ep, &ev, 1, ms) > 0;
}

static unsigned
total_out(void)
{
	unsigned s = 0;
	for (unsigned c = 0; c < NC; c++)
		s += out[c];
	return s;
}

int
main(int argc, char **argv)
{
	double secs = 2;
	int opt;
	bool plain = false;
	while ((opt = getopt(argc, argv, "c:t:P")) != -1) {
		if (opt == 'P')
			plain = true;
		else if (opt == 'c')
			NC = (unsigned)atoi(optarg);
		else if (opt == 't')
			secs = atof(optarg);
		else
			return 2;
	}
	if (NC > MAXC)
		return 2;
	struct aioblk_group_opts go = { .flags = AIOBLK_GROUP_SHARED_CONTEXT | AIOBLK_GROUP_EVENTFD,
					.queue_depth = NC * 8 };
	if (plain) { /* the same checks on a plain group, for comparison */
		go.flags = AIOBLK_GROUP_EVENTFD;
		go.queue_depth = 0;
	}
	int rc = aioblk_group_create_ext(&go, &g);
	if (rc)
		DIE("create %d", rc);
	ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN };
	epoll_ctl(ep, EPOLL_CTL_ADD, aioblk_group_fd(g), &ev);
	for (unsigned c = 0; c < NC; c++) {
		snprintf(path[c], sizeof(path[c]), "%s/adv_fair.%d.%u", tmpdir(), getpid(), c);
		make_file(path[c], 64 * 4096);
		if ((rc = aioblk_disk_open(path[c], NULL, &disk[c])))
			DIE("open %d", rc);
		if ((rc = aioblk_channel_create(g, disk[c], 8, &ch[c])))
			DIE("channel %d", rc);
		for (int k = 0; k < 8; k++)
			buf[c][k] = xalloc(4096, aioblk_disk_block_size(disk[c]));
	}
	/* 1. bursts */
	for (unsigned m = 1; m <= 3; m++) {
		for (unsigned R = 1; R <= 3; R++) {
			norder = 0;
			for (unsigned c = 0; c < NC; c++)
				for (unsigned k = 0; k < R; k++)
					rd(c, k);
			uint64_t calls0[MAXC];
			for (unsigned c = 0; c < NC; c++) {
				struct aioblk_channel_stats st;
				aioblk_channel_get_stats(ch[c], &st);
				calls0[c] = st.io_submit_calls;
			}
			int s = aioblk_group_submit(g);
			CHECK(s == (int)(NC * R), "submit took %d of %u", s, NC * R);
			for (unsigned c = 0; c < NC; c++) {
				struct aioblk_channel_stats st;
				aioblk_channel_get_stats(ch[c], &st);
				/* one io_submit per group carried every channel's requests */
				CHECK(plain || st.io_submit_calls - calls0[c] == 1,
				      "channel %u: io_submit_calls grew by %" PRIu64 " for one group submit", c,
				      st.io_submit_calls - calls0[c]);
			}
			usleep(20000); /* let the kernel finish them all */
			unsigned left = NC * R, polls = 0;
			while (left) {
				if (!readable(2000)) {
					FAIL("max %u, R %u: fd not readable with %u completions left after %u polls", m,
					     R, left, polls);
					break;
				}
				int n = aioblk_group_poll(g, m);
				polls++;
				unsigned want = left < m ? left : m;
				if (n != (int)want)
					FAIL("max %u R %u: poll %u returned %d, expected %u (left %u)", m, R, polls, n,
					     want, left);
				if (n <= 0)
					break;
				left -= (unsigned)n;
			}
			/*
			 * round robin: in every window of NC callbacks while all channels had work, distinct.
			 * A plain group's promise; a shared group's one ring runs in completion order,
			 * fair per request (the header, aioblk_group_poll): the steady and skewed checks.
			 */
			unsigned full = NC * (R - 1) + 1; /* positions where every channel still had one */
			for (unsigned i = 0; plain && m == 1 && i + NC <= (unsigned)norder && i < full; i += NC) {
				uint8_t seen[MAXC] = { 0 };
				for (unsigned j = i; j < i + NC; j++) {
					if (seen[order[j]]++) {
						char s[512];
						int p = 0;
						for (unsigned q = 0; q < (unsigned)norder && q < 48; q++)
							p += snprintf(s + p, sizeof(s) - (size_t)p, "%d ", order[q]);
						FAIL("max %u R %u: channel %d served twice in callbacks %u..%u before every "
						     "ready channel once; order: %s",
						     m, R, order[j], i, i + NC - 1, s);
						break;
					}
				}
			}
			CHECK(!readable(0) || aioblk_group_poll(g, 0) == 0, "stale readiness ran callbacks");
		}
	}
	/* 2. steady state from callbacks */
	reissue = true;
	for (unsigned m = 1; m <= 3; m++) {
		memset(count, 0, sizeof(count));
		for (unsigned c = 0; c < NC; c++)
			for (unsigned k = 0; k < 4; k++)
				rd(c, k);
		aioblk_group_submit(g);
		double tend = now_s() + secs;
		uint64_t polls = 0;
		while (now_s() < tend) {
			if (!readable(2000)) {
				FAIL("steady max %u: fd silent 2 s with %u outstanding; poll now runs %d", m,
				     total_out(), aioblk_group_poll(g, 0));
				break;
			}
			aioblk_group_poll(g, m);
			polls++;
		}
		reissue = false;
		double dl = now_s() + 10;
		while (total_out() && now_s() < dl)
			if (readable(2000))
				aioblk_group_poll(g, 0);
			else
				FAIL("drain: fd silent with %u outstanding", total_out());
		reissue = true;
		uint64_t mn = UINT64_MAX, mx = 0;
		for (unsigned c = 0; c < NC; c++) {
			if (count[c] < mn)
				mn = count[c];
			if (count[c] > mx)
				mx = count[c];
		}
		printf("steady max %u: %" PRIu64 " polls, per-channel callbacks min %" PRIu64 " max %" PRIu64 "\n", m,
		       polls, mn, mx);
		CHECK(mn > 0, "max %u: a channel starved (0 callbacks of %" PRIu64 " polls)", m, polls);
		CHECK(mn * 4 >= mx, "max %u: unfair: min %" PRIu64 " max %" PRIu64, m, mn, mx);
	}
	/* 3. skewed: channel 0 keeps 8 requests going, the others 1 each */
	for (unsigned m = 1; m <= 2; m++) {
		memset(count, 0, sizeof(count));
		for (unsigned k = 0; k < 8; k++)
			rd(0, k);
		for (unsigned c = 1; c < NC; c++)
			rd(c, 0);
		aioblk_group_submit(g);
		double tend = now_s() + secs;
		uint64_t polls = 0;
		while (now_s() < tend) {
			if (!readable(2000)) {
				FAIL("skewed max %u: fd silent 2 s with %u outstanding", m, total_out());
				break;
			}
			aioblk_group_poll(g, m);
			polls++;
		}
		reissue = false;
		double dl = now_s() + 10;
		while (total_out() && now_s() < dl)
			if (readable(2000))
				aioblk_group_poll(g, 0);
		reissue = true;
		uint64_t mn = UINT64_MAX;
		for (unsigned c = 1; c < NC; c++)
			if (count[c] < mn)
				mn = count[c];
		printf("skewed max %u: %" PRIu64 " polls, channel 0: %" PRIu64 " callbacks, others min %" PRIu64 "\n",
		       m, polls, count[0], mn);
		CHECK(mn > 0,
		      "skewed max %u: a channel starved (0 callbacks in %" PRIu64 " polls; channel 0 ran %" PRIu64 ")",
		      m, polls, count[0]);
		CHECK(mn * 16 >= count[0], "skewed max %u: channel 0 ran %" PRIu64 ", another only %" PRIu64, m,
		      count[0], mn);
	}
	for (unsigned c = 0; c < NC; c++) {
		CHECK(aioblk_channel_destroy(ch[c]) == 0, "destroy");
		aioblk_disk_close(disk[c]);
		unlink(path[c]);
		for (int k = 0; k < 8; k++)
			free(buf[c][k]);
	}
	CHECK(aioblk_group_destroy(g) == 0, "group destroy");
	close(ep);
	return adv_exit("adv_fair");
}
