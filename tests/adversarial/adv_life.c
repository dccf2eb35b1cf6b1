/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Lifetimes and refusals of SHARED_CONTEXT groups:
 * - aioblk_group_create_ext() inputs: NULL opts, NULL groupp, unknown flags,
 *   depth 65536 / 65537, depth without SHARED_CONTEXT;
 * - fs.aio-nr: a shared group of depth D adds D, whatever its channels, and
 *   gives it back on destroy (retried against other engineers' noise);
 * - the group depth is exact after storms of refused calls (no leaked count);
 * - channel destroy -EBUSY while outstanding, while the others stay busy;
 *   group destroy -EBUSY with channels; destroy/poll/create from callbacks;
 * - create/destroy channels repeatedly under load (leaks show under ASan);
 * - fork(): a child makes its own shared group on its own disk.
 */
#include "common.h"
#include <signal.h>
#include <sys/wait.h>

static struct aioblk_group *G;
static int ncb;
static int cb_expect_busy;
static struct aioblk_channel *cb_ch;
static struct aioblk_disk *cb_disk;

static void
cb(void *arg, int status)
{
	int *p = arg;
	if (p)
		(*p)++;
	ncb++;
	CHECK(status == 0, "status %d", status);
	if (cb_expect_busy) {
		cb_expect_busy = 0;
		int rc = aioblk_group_poll(G, 0);
		CHECK(rc == -EBUSY, "poll from a callback: %d", rc);
		rc = aioblk_group_wait(G, 0);
		CHECK(rc == -EBUSY, "wait from a callback: %d", rc);
		rc = aioblk_group_destroy(G);
		CHECK(rc == -EBUSY, "group destroy from a callback: %d", rc);
		rc = aioblk_channel_destroy(cb_ch);
		CHECK(rc == -EBUSY, "channel destroy from a callback: %d", rc);
		struct aioblk_channel *x = NULL;
		rc = aioblk_channel_create(G, cb_disk, 4, &x);
		CHECK(rc == -EBUSY, "channel create from a callback: %d", rc);
		if (rc == 0)
			aioblk_channel_destroy(x);
	}
}

static void
drain(struct aioblk_group *g, int *counter, int want)
{
	double dl = now_s() + 10;
	while (*counter < want && now_s() < dl)
		aioblk_group_wait(g, 100);
	CHECK(*counter >= want, "drain: %d of %d callbacks", *counter, want);
}

static long
aio_nr(void)
{
	return read_long("/proc/sys/fs/aio-nr");
}

/* Delta of fs.aio-nr across fn(); retried while other processes change it. */
static void
test_aio_nr(struct aioblk_disk **d, int nd)
{
	unsigned depths[] = { 1, 100, 256, 1000 };
	for (unsigned di = 0; di < 4; di++) {
		unsigned D = depths[di];
		bool ok = false;
		long got_create = 0, got_chan = 0, got_back = 0;
		for (int attempt = 0; attempt < 20 && !ok; attempt++) {
			long a0 = aio_nr();
			struct aioblk_group_opts go = { .flags = AIOBLK_GROUP_SHARED_CONTEXT, .queue_depth = D };
			struct aioblk_group *g;
			int rc = aioblk_group_create_ext(&go, &g);
			if (rc == -EAGAIN) {
				printf("aio-nr: depth %u refused -EAGAIN (aio-nr %ld, max %ld): skipped\n", D, a0,
				       read_long("/proc/sys/fs/aio-max-nr"));
				ok = true;
				break;
			}
			if (rc)
				DIE("create depth %u: %d", D, rc);
			long a1 = aio_nr();
			struct aioblk_channel *ch[16];
			for (int i = 0; i < nd; i++)
				if (aioblk_channel_create(g, d[i], 64, &ch[i]))
					DIE("channel create");
			long a2 = aio_nr();
			for (int i = 0; i < nd; i++)
				aioblk_channel_destroy(ch[i]);
			aioblk_group_destroy(g);
			long a3 = aio_nr();
			got_create = a1 - a0;
			got_chan = a2 - a1;
			got_back = a3 - a0;
			if (got_create == D && got_chan == 0 && got_back == 0)
				ok = true;
			else
				usleep(20000);
		}
		if (!ok)
			FAIL("fs.aio-nr with depth %u: create added %ld (want %u), %d channels added %ld (want 0), "
			     "after destroy %+ld (want 0), 20 tries",
			     D, got_create, D, nd, got_chan, got_back);
		else
			printf("aio-nr: depth %u adds %ld, %d channels add %ld, destroy gives back all\n", D,
			       got_create, nd, got_chan);
	}
	/* default depth 256 */
	for (int attempt = 0; attempt < 20; attempt++) {
		long a0 = aio_nr();
		struct aioblk_group_opts go = { .flags = AIOBLK_GROUP_SHARED_CONTEXT };
		struct aioblk_group *g;
		if (aioblk_group_create_ext(&go, &g))
			DIE("create default");
		long a1 = aio_nr();
		aioblk_group_destroy(g);
		if (a1 - a0 == 256)
			break;
		if (attempt == 19)
			FAIL("default depth: aio-nr grew by %ld, want 256", a1 - a0);
	}
}

static void drain(struct aioblk_group *g, int *counter, int want);

static void
test_inputs(void)
{
	struct aioblk_group *g = NULL;
	int rc;
	rc = aioblk_group_create_ext(NULL, &g);
	CHECK(rc == 0, "create_ext(NULL opts): %d", rc);
	if (rc == 0) {
		CHECK(aioblk_group_fd(g) == -EINVAL, "NULL opts: a busy-poll group has no fd");
		CHECK(aioblk_group_destroy(g) == 0, "destroy");
	}
	struct aioblk_group_opts go = { .flags = AIOBLK_GROUP_SHARED_CONTEXT };
	rc = aioblk_group_create_ext(&go, NULL);
	CHECK(rc == -EINVAL, "NULL groupp: %d", rc);
	/* Bit 2 is AIOBLK_GROUP_WAIT_IN_KERNEL (added after these programs were written): not with EVENTFD. */
	struct aioblk_group_opts wk = { .flags = AIOBLK_GROUP_SHARED_CONTEXT | AIOBLK_GROUP_WAIT_IN_KERNEL };
	g = NULL;
	rc = aioblk_group_create_ext(&wk, &g);
	CHECK(rc == 0, "SHARED_CONTEXT | WAIT_IN_KERNEL: %d", rc);
	if (rc == 0)
		CHECK(aioblk_group_destroy(g) == 0, "destroy");
	wk.flags |= AIOBLK_GROUP_EVENTFD;
	g = NULL;
	rc = aioblk_group_create_ext(&wk, &g);
	CHECK(rc == -EINVAL && g == NULL, "EVENTFD | WAIT_IN_KERNEL: %d", rc);
	for (unsigned bit = 3; bit < 32; bit++) {
		struct aioblk_group_opts o = { .flags = AIOBLK_GROUP_SHARED_CONTEXT | (1u << bit) };
		g = NULL;
		rc = aioblk_group_create_ext(&o, &g);
		CHECK(rc == -EINVAL, "unknown flag bit %u: %d", bit, rc);
		if (rc == 0)
			aioblk_group_destroy(g);
	}
	struct aioblk_group_opts o2 = { .flags = AIOBLK_GROUP_SHARED_CONTEXT, .queue_depth = 65537 };
	g = (void *)0x1;
	rc = aioblk_group_create_ext(&o2, &g);
	CHECK(rc == -EINVAL, "depth 65537: %d", rc);
	CHECK(g == (void *)0x1, "groupp written on failure");
	o2.queue_depth = UINT32_MAX;
	rc = aioblk_group_create_ext(&o2, &g);
	CHECK(rc == -EINVAL, "depth UINT_MAX: %d", rc);
	o2.queue_depth = 65536;
	rc = aioblk_group_create_ext(&o2, &g);
	long nr = aio_nr(), max = read_long("/proc/sys/fs/aio-max-nr");
	if (rc == 0)
		aioblk_group_destroy(g);
	else if (rc != -EAGAIN)
		FAIL("depth 65536: %d (aio-nr %ld max %ld)", rc, nr, max);
	else
		printf("depth 65536: -EAGAIN (aio-nr %ld, aio-max-nr %ld): as documented\n", nr, max);
	for (uint32_t f = 0; f <= AIOBLK_GROUP_EVENTFD; f++) {
		struct aioblk_group_opts o = { .flags = f, .queue_depth = 10 };
		rc = aioblk_group_create_ext(&o, &g);
		CHECK(rc == -EINVAL, "depth without SHARED_CONTEXT (flags %u): %d", f, rc);
		if (rc == 0)
			aioblk_group_destroy(g);
	}
	/* the old call: create(flags) is create_ext with only flags */
	rc = aioblk_group_create(AIOBLK_GROUP_SHARED_CONTEXT | AIOBLK_GROUP_EVENTFD, &g);
	printf("aioblk_group_create(SHARED_CONTEXT|EVENTFD): %d\n", rc);
	if (rc == 0) {
		CHECK(aioblk_group_fd(g) >= 0, "fd");
		aioblk_group_destroy(g);
	}
	rc = aioblk_group_create(1u << 7, &g);
	CHECK(rc == -EINVAL, "create unknown flags: %d", rc);
	CHECK(aioblk_group_destroy(NULL) == -EINVAL, "destroy NULL");
	/* the default depth (256) is enforced across channels, also through aioblk_group_create() */
	for (int via_create = 0; via_create < 2; via_create++) {
		char p[256];
		snprintf(p, sizeof(p), "%s/adv_life.def.%d", tmpdir(), getpid());
		make_file(p, 1 << 20);
		struct aioblk_disk *dd;
		struct aioblk_channel *c3[3];
		struct aioblk_group_opts o = { .flags = AIOBLK_GROUP_SHARED_CONTEXT };
		if (aioblk_disk_open(p, NULL, &dd))
			DIE("open");
		rc = via_create ? aioblk_group_create(AIOBLK_GROUP_SHARED_CONTEXT, &g) :
				  aioblk_group_create_ext(&o, &g);
		if (rc)
			DIE("default group %d", rc);
		for (int i = 0; i < 3; i++)
			if (aioblk_channel_create(g, dd, 128, &c3[i]))
				DIE("chan");
		int acc = 0, done = 0;
		while (acc < 400 && aioblk_flush(c3[acc % 3], cb, &done) == 0)
			acc++;
		CHECK(acc == 256, "default depth (%s): %d accepted, want 256", via_create ? "create" : "create_ext",
		      acc);
		drain(g, &done, acc);
		for (int i = 0; i < 3; i++)
			aioblk_channel_destroy(c3[i]);
		aioblk_group_destroy(g);
		aioblk_disk_close(dd);
		unlink(p);
	}
	CHECK(aioblk_group_poll(NULL, 0) == -EINVAL, "poll NULL");
	CHECK(aioblk_group_submit(NULL) == -EINVAL, "submit NULL");
}

/* The group depth stays exact after storms of refusals. */
static void
test_depth_exact(struct aioblk_disk **d, int nd, struct aioblk_disk *ro)
{
	const unsigned D = 24;
	struct aioblk_group_opts go = { .flags = AIOBLK_GROUP_SHARED_CONTEXT, .queue_depth = D };
	struct aioblk_group *g;
	if (aioblk_group_create_ext(&go, &g))
		DIE("create");
	struct aioblk_channel *ch[16], *rch;
	for (int i = 0; i < nd; i++)
		if (aioblk_channel_create(g, d[i], 128, &ch[i]))
			DIE("chan");
	if (aioblk_channel_create(g, ro, 128, &rch))
		DIE("ro chan");
	uint32_t bs = aioblk_disk_block_size(d[0]);
	char *buf = xalloc(4096, 64 * bs);
	int done = 0;
	for (int round = 0; round < 50; round++) {
		unsigned acc = 0;
		int i = 0;
		/* refusals first, on every channel */
		for (int k = 0; k < nd; k++) {
			uint64_t nb = aioblk_disk_num_blocks(d[k]);
			CHECK(aioblk_read(ch[k], buf, nb, 1, cb, &done) == -EINVAL, "out of range");
			CHECK(aioblk_read(ch[k], buf, UINT64_MAX, 2, cb, &done) == -EINVAL, "overflow");
			CHECK(aioblk_read(ch[k], buf, 0, 0, cb, &done) == -EINVAL, "zero length");
			CHECK(aioblk_read(ch[k], buf, 0, 1, NULL, &done) == -EINVAL, "NULL cb");
			CHECK(aioblk_write_zeroes(ch[k], nb - 1, 2, cb, &done) == -EINVAL, "wz out of range");
			CHECK(aioblk_unmap(ch[k], 0, 0, cb, &done) == -EINVAL, "unmap zero");
			if (aioblk_disk_is_direct(d[k]))
				CHECK(aioblk_read(ch[k], buf + 1, 0, 1, cb, &done) == -EINVAL, "misaligned");
			struct iovec iov = { buf, bs };
			CHECK(aioblk_readv(ch[k], &iov, 1, 0, 2, cb, &done) == -EINVAL, "iov total");
			CHECK(aioblk_readv(ch[k], &iov, 0, 0, 1, cb, &done) == -EINVAL, "iovcnt 0");
		}
		CHECK(aioblk_write(rch, buf, 0, 1, cb, &done) == -EROFS, "ro write");
		CHECK(aioblk_write_zeroes(rch, 0, 1, cb, &done) == -EROFS, "ro wz");
		CHECK(aioblk_unmap(rch, 0, 1, cb, &done) == -EROFS, "ro unmap");
		int before = done;
		for (;;) {
			int k = i++ % nd;
			int op = (round + i) % 4, rc;
			if (op == 0)
				rc = aioblk_read(ch[k], buf, 0, 1, cb, &done);
			else if (op == 1)
				rc = aioblk_flush(ch[k], cb, &done);
			else if (op == 2)
				rc = aioblk_write_zeroes(ch[k], 8, 1, cb, &done);
			else
				rc = aioblk_read(rch, buf + bs, 0, 1, cb, &done);
			if (rc == -EAGAIN)
				break;
			CHECK(rc == 0, "fill: %d", rc);
			if (rc)
				break;
			acc++;
			if (acc > D + 5)
				break;
		}
		CHECK(acc == D, "round %d: the group took %u requests, depth %u", round, acc, D);
		/* also refused while full: EAGAIN on every channel, reset accepted */
		for (int k = 0; k < nd; k++) {
			CHECK(aioblk_read(ch[k], buf, 0, 1, cb, &done) == -EAGAIN, "full group read");
			CHECK(aioblk_reset(ch[k], cb, &done) == 0, "reset on full group");
			acc++;
		}
		drain(g, &done, before + (int)acc);
	}
	for (int i = 0; i < nd; i++)
		CHECK(aioblk_channel_destroy(ch[i]) == 0, "destroy");
	CHECK(aioblk_channel_destroy(rch) == 0, "destroy");
	CHECK(aioblk_group_destroy(g) == 0, "group destroy");
	free(buf);
}

/* Bounce-buffer -EAGAIN must not eat group slots. */
static void
test_bounce(struct aioblk_disk *d)
{
	if (!aioblk_disk_is_direct(d)) {
		printf("bounce: disk not direct, skipped\n");
		return;
	}
	const unsigned D = 10;
	struct aioblk_group_opts go = { .flags = AIOBLK_GROUP_SHARED_CONTEXT, .queue_depth = D };
	struct aioblk_group *g;
	struct aioblk_channel *cb2, *plain;
	struct aioblk_channel_opts co = { .queue_depth = 16, .bounce_buffers = 2, .bounce_buffer_size = 8192 };
	if (aioblk_group_create_ext(&go, &g) || aioblk_channel_create_ext(g, d, &co, &cb2) ||
	    aioblk_channel_create(g, d, 16, &plain))
		DIE("bounce setup");
	uint32_t bs = aioblk_disk_block_size(d);
	char *buf = xalloc(4096, 64 * bs);
	int done = 0, acc = 0;
	for (int round = 0; round < 20; round++) {
		int before = done;
		acc = 0;
		for (int i = 0; i < 2; i++)
			if (aioblk_read(cb2, buf + 1 + i * 2 * bs, (uint64_t)i, 1, cb, &done) == 0)
				acc++;
		CHECK(acc == 2, "bounce reads accepted %d", acc);
		for (int i = 0; i < 5; i++)
			CHECK(aioblk_read(cb2, buf + 1 + 8 * bs, 0, 1, cb, &done) == -EAGAIN,
			      "3rd bounce read not -EAGAIN");
		int more = 0;
		while (aioblk_read(plain, buf + 32 * bs, 0, 1, cb, &done) == 0 && more < 20)
			more++;
		CHECK(acc + more == (int)D, "round %d: %d bounce + %d plain accepted, group depth %u", round, acc, more,
		      D);
		drain(g, &done, before + acc + more);
	}
	aioblk_channel_destroy(cb2);
	aioblk_channel_destroy(plain);
	aioblk_group_destroy(g);
	free(buf);
}

static void
test_destroy(struct aioblk_disk **d, int nd)
{
	struct aioblk_group_opts go = { .flags = AIOBLK_GROUP_SHARED_CONTEXT | AIOBLK_GROUP_EVENTFD,
					.queue_depth = 64 };
	int rc = aioblk_group_create_ext(&go, &G);
	if (rc)
		DIE("create");
	struct aioblk_channel *ch[16];
	for (int i = 0; i < nd; i++)
		if (aioblk_channel_create(G, d[i], 8, &ch[i]))
			DIE("chan");
	CHECK(aioblk_group_destroy(G) == -EBUSY, "group destroy with channels");
	uint32_t bs = aioblk_disk_block_size(d[0]);
	char *buf = xalloc(4096, 16 * bs);
	int done = 0, issued = 0;
	/* from a callback */
	cb_ch = ch[0];
	cb_disk = d[0];
	cb_expect_busy = 1;
	if (aioblk_read(ch[0], buf, 0, 1, cb, &done) == 0)
		issued++;
	drain(G, &done, issued);
	CHECK(cb_expect_busy == 0, "callback did not run");
	for (int iter = 0; iter < 300; iter++) {
		int v = iter % nd;
		/* everyone busy */
		for (int i = 0; i < nd; i++)
			for (int k = 0; k < 4; k++)
				if (aioblk_write_zeroes(ch[i], (uint64_t)k, 1, cb, &done) == 0)
					issued++;
		if (aioblk_reset(ch[v], cb, &done) == 0)
			issued++;
		unsigned inf = aioblk_channel_inflight(ch[v]);
		CHECK(inf >= 1, "inflight %u", inf);
		rc = aioblk_channel_destroy(ch[v]);
		CHECK(rc == -EBUSY, "destroy with %u outstanding: %d", inf, rc);
		if (rc == 0)
			DIE("channel destroyed while busy");
		/* drain only ch[v] (poll until its inflight is 0, the others get more work) */
		double dl = now_s() + 10;
		while (aioblk_channel_inflight(ch[v]) && now_s() < dl) {
			aioblk_group_poll(G, 0);
			for (int i = 0; i < nd; i++)
				if (i != v && aioblk_read(ch[i], buf + bs * (1 + i % 8), 0, 1, cb, &done) == 0)
					issued++;
		}
		CHECK(aioblk_channel_inflight(ch[v]) == 0, "channel %d never drained", v);
		rc = aioblk_channel_destroy(ch[v]);
		CHECK(rc == 0, "destroy idle channel while others busy: %d", rc);
		if (rc)
			break;
		ch[v] = NULL;
		rc = aioblk_channel_create(G, d[v], (unsigned)(1 + iter % 16), &ch[v]);
		CHECK(rc == 0, "re-create: %d", rc);
		if (rc)
			break;
	}
	drain(G, &done, issued);
	CHECK(done == issued, "callbacks %d issued %d", done, issued);
	for (int i = 0; i < nd; i++)
		if (ch[i])
			CHECK(aioblk_channel_destroy(ch[i]) == 0, "final destroy");
	CHECK(aioblk_group_destroy(G) == 0, "group destroy");
	/* groups with many channels, created and destroyed in a loop */
	for (int iter = 0; iter < 200; iter++) {
		struct aioblk_group_opts o = { .flags = AIOBLK_GROUP_SHARED_CONTEXT |
							(iter & 1 ? AIOBLK_GROUP_EVENTFD : 0),
					       .queue_depth = (unsigned)(1 + iter) };
		struct aioblk_group *g;
		if (aioblk_group_create_ext(&o, &g))
			DIE("loop create");
		for (int i = 0; i < nd; i++)
			if (aioblk_channel_create(g, d[i], 0, &ch[i]))
				DIE("loop chan");
		int dn = 0, is = 0;
		for (int i = 0; i < nd; i++)
			if (aioblk_read(ch[i], buf, 0, 1, cb, &dn) == 0)
				is++;
		drain(g, &dn, is);
		for (int i = 0; i < nd; i++)
			aioblk_channel_destroy(ch[i]);
		CHECK(aioblk_group_destroy(g) == 0, "loop destroy");
	}
	free(buf);
}

static int
child(void)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/adv_life.child.%d", tmpdir(), getpid());
	make_file(p, 1 << 20);
	struct aioblk_disk *d;
	struct aioblk_group *g;
	struct aioblk_channel *c;
	int rc = aioblk_disk_open(p, NULL, &d);
	if (rc) {
		fprintf(stderr, "child open %d\n", rc);
		return 10;
	}
	struct aioblk_group_opts go = { .flags = AIOBLK_GROUP_SHARED_CONTEXT | AIOBLK_GROUP_EVENTFD,
					.queue_depth = 32 };
	if ((rc = aioblk_group_create_ext(&go, &g))) {
		fprintf(stderr, "child group %d\n", rc);
		return 11;
	}
	if ((rc = aioblk_channel_create(g, d, 8, &c))) {
		fprintf(stderr, "child channel %d\n", rc);
		return 12;
	}
	uint32_t bs = aioblk_disk_block_size(d);
	char *buf = xalloc(4096, bs), *rb = xalloc(4096, bs);
	int done = 0;
	stamp(buf, bs, 7, 3, 99);
	if (aioblk_write(c, buf, 3, 1, cb, &done))
		return 13;
	drain(g, &done, 1);
	if (aioblk_read(c, rb, 3, 1, cb, &done) || aioblk_write_zeroes(c, 5, 1, cb, &done) ||
	    aioblk_reset(c, cb, &done))
		return 14;
	drain(g, &done, 4);
	if (done != 4 || verify(rb, bs, 7, 3, 99))
		return 15;
	aioblk_channel_destroy(c);
	aioblk_group_destroy(g);
	aioblk_disk_close(d);
	unlink(p);
	free(buf);
	free(rb);
	return adv_failures ? 16 : 0;
}

static void
test_fork(struct aioblk_disk **d)
{
#if defined(__SANITIZE_THREAD__)
#define ADV_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ADV_TSAN 1
#endif
#endif
#ifdef ADV_TSAN
	printf("fork: skipped under TSan (no threads after a multi-threaded fork)\n");
	return;
#endif
	/* the parent is busy in its own shared group while it forks */
	struct aioblk_group_opts go = { .flags = AIOBLK_GROUP_SHARED_CONTEXT, .queue_depth = 16 };
	struct aioblk_group *g;
	struct aioblk_channel *c;
	if (aioblk_group_create_ext(&go, &g) || aioblk_channel_create(g, d[0], 16, &c))
		DIE("parent group");
	char *buf = xalloc(4096, 8 * 4096);
	int done = 0, issued = 0;
	/* fork 20 times while the library's threads are busy with the parent's write-zeroes */
	for (int f = 0; f < 20; f++) {
		for (int i = 0; i < 8; i++)
			if (aioblk_write_zeroes(c, (uint64_t)i, 1 + (uint64_t)f, cb, &done) == 0)
				issued++;
		if (f % 2)
			aioblk_group_poll(g, 0);
		fflush(NULL);
		pid_t pid = fork();
		if (pid == 0) {
			alarm(20);
			_exit(child());
		}
		int st;
		waitpid(pid, &st, 0);
		char cp[256]; /* the child's file, also when it died */
		snprintf(cp, sizeof(cp), "%s/adv_life.child.%d", tmpdir(), (int)pid);
		unlink(cp);
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fork %d: child %s %d", f,
		      WIFEXITED(st) ? "exit" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
	}
	drain(g, &done, issued);
	aioblk_channel_destroy(c);
	aioblk_group_destroy(g);
	free(buf);
}

static void
test_wait(struct aioblk_disk **d)
{
	for (int efd = 0; efd < 2; efd++) {
		struct aioblk_group_opts go = { .flags = AIOBLK_GROUP_SHARED_CONTEXT | (efd ? AIOBLK_GROUP_EVENTFD : 0),
						.queue_depth = 8 };
		struct aioblk_group *g;
		struct aioblk_channel *c[2];
		if (aioblk_group_create_ext(&go, &g) || aioblk_channel_create(g, d[0], 4, &c[0]) ||
		    aioblk_channel_create(g, d[1], 4, &c[1]))
			DIE("wait setup");
		double t = now_s();
		int rc = aioblk_group_wait(g, 50);
		t = now_s() - t;
		CHECK(rc == 0 && t >= 0.050, "efd %d: idle wait(50) returned %d after %.1f ms", efd, rc, t * 1e3);
		int done = 0;
		char *buf = xalloc(4096, 4096);
		CHECK(aioblk_write_zeroes(c[1], 0, 1, cb, &done) == 0, "wz");
		t = now_s();
		rc = aioblk_group_wait(g, efd ? -1 : 5000);
		t = now_s() - t;
		CHECK(rc == 1 && done == 1, "efd %d: wait for a lone write-zeroes: %d (%d done) after %.1f ms", efd, rc,
		      done, t * 1e3);
		CHECK(aioblk_read(c[0], buf, 0, 1, cb, &done) == 0, "read");
		CHECK(aioblk_reset(c[1], cb, &done) == 0, "reset");
		t = now_s();
		while (done < 3 && now_s() - t < 5)
			aioblk_group_wait(g, efd ? -1 : 1000);
		CHECK(done == 3, "efd %d: read + reset: %d done", efd, done);
		aioblk_channel_destroy(c[0]);
		aioblk_channel_destroy(c[1]);
		aioblk_group_destroy(g);
		free(buf);
	}
}

int
main(void)
{
	enum { ND = 6 };
	char paths[ND + 1][256];
	struct aioblk_disk *d[ND + 1];
	for (int i = 0; i <= ND; i++) {
		snprintf(paths[i], sizeof(paths[i]), "%s/adv_life.%d.%d", tmpdir(), getpid(), i);
		make_file(paths[i], (uint64_t)(1 + i) << 20);
		struct aioblk_disk_opts o = { .flags = i == ND ? AIOBLK_DISK_READONLY :
								 (i % 2 ? AIOBLK_DISK_BUFFERED : 0) };
		if (aioblk_disk_open(paths[i], &o, &d[i]))
			DIE("open");
	}
	test_inputs();
	test_aio_nr(d, ND);
	test_depth_exact(d, ND, d[ND]);
	test_destroy(d, ND);
	test_wait(d);
	test_bounce(d[0]);
	test_fork(d);
	for (int i = 0; i <= ND; i++) {
		CHECK(aioblk_disk_close(d[i]) == 0, "close");
		unlink(paths[i]);
	}
	return adv_exit("adv_life");
}
