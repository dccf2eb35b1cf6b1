/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * epoll_reactor: aioblk inside an event loop of your own.
 *
 * One epoll loop serves two file descriptors: a timerfd that prints progress
 * once a second, and the eventfd of an aioblk group (AIOBLK_GROUP_EVENTFD)
 * that becomes readable when completions are ready. The work is a file copy
 * in chunks with a fixed number of requests in flight: each chunk is read,
 * and the read's callback writes it (callbacks may submit). Then the copy is
 * flushed and verified by reading both files back the same way.
 *
 * The one rule of embedding: requests are queued by aioblk_read() and
 * friends and reach the kernel at the next aioblk_group_submit() or poll, so
 * call aioblk_group_submit() before sleeping in epoll_wait().
 *
 * Usage: epoll_reactor [-q DEPTH] [-c CHUNK_KIB] [-s SIZE_MIB] [SRC DST]
 * Without SRC and DST it makes a temporary source of random data and a
 * destination (in $TMPDIR or /var/tmp) and removes both at the end. DST is
 * overwritten. The exit status is 0 when the copy was made and verified.
 */
#define _GNU_SOURCE
#include <aioblk/aioblk.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

/* How many callbacks one wake-up runs at most, so that the timer is not kept waiting. */
#define POLL_BUDGET 32

enum phase { PHASE_COPY, PHASE_FLUSH, PHASE_VERIFY };

struct copy;

/* One request in flight: a chunk on its way through read -> write, or read + read -> compare. */
struct slot {
	struct copy *c;
	uint64_t off; /* bytes */
	size_t len;
	unsigned char *buf;  /* source data */
	unsigned char *buf2; /* destination data, when verifying */
	int pending;         /* requests of this chunk not finished yet */
};

struct copy {
	struct aioblk_disk *src, *dst;
	struct aioblk_group *group;
	struct aioblk_channel *sch, *dch;
	uint64_t bytes; /* to copy */
	size_t chunk;
	uint32_t sbs, dbs; /* block sizes */
	enum phase phase;
	uint64_t next;   /* offset of the next chunk to start */
	uint64_t done;   /* bytes copied (or verified) in this phase */
	unsigned active; /* chunks (or the flush) in flight */
	int error;       /* the first error */
	uint64_t mismatch_at;
	struct slot *slots;
	unsigned nslots;
	/* loop statistics */
	unsigned long wakeups, callbacks;
	struct timespec t0;
};

static double
elapsed_s(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

static void
fail(struct copy *c, int err)
{
	if (!c->error)
		c->error = err;
}

static void start_chunk(struct slot *s);

/* A chunk is finished: count it and start the next one in the same slot. */
static void
chunk_done(struct slot *s)
{
	struct copy *c = s->c;

	c->done += s->len;
	c->active--;
	start_chunk(s);
}

static void
write_done(void *arg, int status)
{
	struct slot *s = arg;

	if (status < 0)
		fail(s->c, status);
	chunk_done(s);
}

static void
read_done(void *arg, int status)
{
	struct slot *s = arg;
	struct copy *c = s->c;
	int rc;

	if (status < 0) {
		fail(c, status);
		chunk_done(s);
		return;
	}
	/* Submitting from a callback is allowed: the write goes out with the next submit or poll. */
	rc = aioblk_write(c->dch, s->buf, s->off / c->dbs, s->len / c->dbs, write_done, s);
	if (rc < 0) {
		fail(c, rc);
		chunk_done(s);
	}
}

static void
verify_done(void *arg, int status)
{
	struct slot *s = arg;
	struct copy *c = s->c;

	if (status < 0)
		fail(c, status);
	if (--s->pending > 0)
		return;
	if (!c->error && memcmp(s->buf, s->buf2, s->len) != 0) {
		size_t i = 0;

		while (s->buf[i] == s->buf2[i])
			i++;
		c->mismatch_at = s->off + i;
		fail(c, -EILSEQ);
	}
	chunk_done(s);
}

static void
start_chunk(struct slot *s)
{
	struct copy *c = s->c;
	int rc;

	if (c->error || c->next >= c->bytes)
		return;
	s->off = c->next;
	s->len = c->bytes - c->next < c->chunk ? (size_t)(c->bytes - c->next) : c->chunk;
	c->next += s->len;
	c->active++;
	if (c->phase == PHASE_COPY) {
		rc = aioblk_read(c->sch, s->buf, s->off / c->sbs, s->len / c->sbs, read_done, s);
	} else {
		s->pending = 2;
		rc = aioblk_read(c->sch, s->buf, s->off / c->sbs, s->len / c->sbs, verify_done, s);
		if (rc == 0) {
			rc = aioblk_read(c->dch, s->buf2, s->off / c->dbs, s->len / c->dbs, verify_done, s);
			if (rc < 0)
				s->pending = 1; /* the first read still comes back */
		} else {
			s->pending = 0;
		}
	}
	/* Refused: nothing of the chunk is in flight, unless the first of its two reads was accepted. */
	if (rc < 0) {
		fail(c, rc);
		if (c->phase == PHASE_COPY || s->pending == 0)
			c->active--;
	}
}

static void
flush_done(void *arg, int status)
{
	struct copy *c = arg;

	if (status < 0)
		fail(c, status);
	c->active--;
}

static void
print_progress(struct copy *c, bool final)
{
	static const char *const names[] = { "copy", "flush", "verify" };
	double t = elapsed_s(&c->t0);

	if (c->phase == PHASE_FLUSH) {
		printf("flush: %s after %.1f ms\n", final ? "done" : "running", t * 1000.0);
	} else {
		printf("%s: %6.1f / %.1f MiB (%3.0f%%), %.1f MiB/s, %lu wake-ups, %lu callbacks%s\n", names[c->phase],
		       (double)c->done / 1048576.0, (double)c->bytes / 1048576.0,
		       c->bytes ? 100.0 * (double)c->done / (double)c->bytes : 100.0,
		       t > 0 ? (double)c->done / 1048576.0 / t : 0.0, c->wakeups, c->callbacks, final ? " (done)" : "");
	}
	fflush(stdout);
}

/*
 * The event loop: runs until nothing of the phase is in flight. Before every
 * sleep, aioblk_group_submit() hands what callbacks queued to the kernel.
 */
static int
run_loop(struct copy *c, int ep, int tfd, int gfd)
{
	struct epoll_event evs[2];
	uint64_t ticks;
	int n, i, rc;

	while (c->active > 0) {
		rc = aioblk_group_submit(c->group);
		if (rc < 0)
			return rc;
		n = epoll_wait(ep, evs, 2, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (i = 0; i < n; i++) {
			if (evs[i].data.fd == tfd) {
				if (read(tfd, &ticks, sizeof(ticks)) == sizeof(ticks))
					print_progress(c, false);
			} else if (evs[i].data.fd == gfd) {
				/* With a budget: if more is ready, the fd stays readable and epoll says so again. */
				rc = aioblk_group_poll(c->group, POLL_BUDGET);
				if (rc < 0)
					return rc;
				c->wakeups++;
				c->callbacks += (unsigned long)rc;
			}
		}
	}
	return 0;
}

static int
run_phase(struct copy *c, enum phase phase, int ep, int tfd, int gfd)
{
	unsigned i;
	int rc;

	c->phase = phase;
	c->next = 0;
	c->done = 0;
	c->wakeups = 0;
	c->callbacks = 0;
	clock_gettime(CLOCK_MONOTONIC, &c->t0);
	if (phase == PHASE_FLUSH) {
		rc = aioblk_flush(c->dch, flush_done, c);
		if (rc < 0)
			return rc;
		c->active = 1;
	} else {
		for (i = 0; i < c->nslots; i++)
			start_chunk(&c->slots[i]);
	}
	rc = run_loop(c, ep, tfd, gfd);
	if (rc == 0)
		print_progress(c, true);
	return rc < 0 ? rc : c->error;
}

static int
temp_file(char *path, size_t len, const char *what, uint64_t bytes, bool random)
{
	const char *dir = getenv("TMPDIR");
	unsigned char *buf = NULL;
	uint64_t off;
	int fd, rc = 0;

	snprintf(path, len, "%s/aioblk-epoll-%s-XXXXXX", dir && *dir ? dir : "/var/tmp", what);
	fd = mkstemp(path);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)bytes) < 0) {
		rc = -errno;
		goto out;
	}
	if (!random)
		goto out;
	buf = malloc(1u << 20);
	if (!buf) {
		rc = -ENOMEM;
		goto out;
	}
	for (off = 0; off < bytes; off += 1u << 20) {
		size_t n = bytes - off < (1u << 20) ? (size_t)(bytes - off) : (1u << 20);
		size_t got = 0;

		while (got < n) {
			ssize_t r = getrandom(buf + got, n - got, 0);

			if (r < 0 && errno != EINTR) {
				rc = -errno;
				goto out;
			}
			if (r > 0)
				got += (size_t)r;
		}
		if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n) {
			rc = errno ? -errno : -EIO;
			goto out;
		}
	}
	if (fsync(fd) < 0)
		rc = -errno;
out:
	free(buf);
	close(fd);
	if (rc < 0)
		unlink(path);
	return rc;
}

static void
usage(void)
{
	fprintf(stderr, "usage: epoll_reactor [-q DEPTH] [-c CHUNK_KIB] [-s SIZE_MIB] [SRC DST]\n"
			"  copies SRC to DST (DST is overwritten) with DEPTH requests in flight and verifies it;\n"
			"  without SRC and DST, uses temporary files of SIZE_MIB (default 32)\n");
}

int
main(int argc, char **argv)
{
	struct aioblk_disk_opts ro = { .flags = AIOBLK_DISK_READONLY };
	struct epoll_event ev;
	struct itimerspec its = { { 1, 0 }, { 1, 0 } };
	struct copy c;
	char srcpath[4096], dstpath[4096];
	unsigned depth = 16, i;
	unsigned long chunk_kib = 128, size_mib = 32;
	bool temp;
	size_t align, unit;
	int opt, ep = -1, tfd = -1, gfd, rc;

	memset(&c, 0, sizeof(c));
	while ((opt = getopt(argc, argv, "q:c:s:h")) != -1) {
		switch (opt) {
		case 'q':
			depth = (unsigned)strtoul(optarg, NULL, 0);
			break;
		case 'c':
			chunk_kib = strtoul(optarg, NULL, 0);
			break;
		case 's':
			size_mib = strtoul(optarg, NULL, 0);
			break;
		default:
			usage();
			return 2;
		}
	}
	if (depth < 1 || depth > 4096 || chunk_kib < 4 || chunk_kib > 65536 || size_mib < 1 ||
	    (argc - optind != 0 && argc - optind != 2)) {
		usage();
		return 2;
	}
	temp = argc == optind;
	if (temp) {
		rc = temp_file(srcpath, sizeof(srcpath), "src", (uint64_t)size_mib << 20, true);
		if (rc == 0) {
			rc = temp_file(dstpath, sizeof(dstpath), "dst", (uint64_t)size_mib << 20, false);
			if (rc < 0)
				unlink(srcpath);
		}
		if (rc < 0) {
			fprintf(stderr, "epoll_reactor: cannot make temporary files: %s\n", strerror(-rc));
			return 1;
		}
	} else {
		snprintf(srcpath, sizeof(srcpath), "%s", argv[optind]);
		snprintf(dstpath, sizeof(dstpath), "%s", argv[optind + 1]);
	}

	rc = aioblk_disk_open(srcpath, &ro, &c.src);
	if (rc < 0) {
		fprintf(stderr, "epoll_reactor: open %s: %s\n", srcpath, strerror(-rc));
		goto out;
	}
	rc = aioblk_disk_open(dstpath, NULL, &c.dst);
	if (rc < 0) {
		fprintf(stderr, "epoll_reactor: open %s: %s\n", dstpath, strerror(-rc));
		goto out;
	}
	c.sbs = aioblk_disk_block_size(c.src);
	c.dbs = aioblk_disk_block_size(c.dst);
	unit = c.sbs > c.dbs ? c.sbs : c.dbs; /* both are powers of two */
	c.bytes = aioblk_disk_num_blocks(c.src) * c.sbs;
	c.chunk = (size_t)((chunk_kib * 1024 + unit - 1) / unit * unit);
	if (c.bytes % unit || c.bytes > aioblk_disk_num_blocks(c.dst) * c.dbs) {
		fprintf(stderr, "epoll_reactor: %s (%" PRIu64 " bytes) does not fit %s in whole blocks\n", srcpath,
			c.bytes, dstpath);
		rc = -EINVAL;
		goto out;
	}

	/* The group with an eventfd, and one channel per disk in it. */
	rc = aioblk_group_create(AIOBLK_GROUP_EVENTFD, &c.group);
	if (rc == 0)
		rc = aioblk_channel_create(c.group, c.src, depth, &c.sch);
	if (rc == 0)
		rc = aioblk_channel_create(c.group, c.dst, depth, &c.dch);
	if (rc < 0) {
		fprintf(stderr, "epoll_reactor: group/channels: %s\n", strerror(-rc));
		goto out;
	}

	align = aioblk_disk_buf_align(c.src) > aioblk_disk_buf_align(c.dst) ? aioblk_disk_buf_align(c.src) :
									      aioblk_disk_buf_align(c.dst);
	if (align < 4096)
		align = 4096;
	c.nslots = depth;
	c.slots = calloc(depth, sizeof(*c.slots));
	if (!c.slots) {
		rc = -ENOMEM;
		goto out;
	}
	for (i = 0; i < depth; i++) {
		c.slots[i].c = &c;
		if (posix_memalign((void **)&c.slots[i].buf, align, c.chunk) ||
		    posix_memalign((void **)&c.slots[i].buf2, align, c.chunk)) {
			rc = -ENOMEM;
			goto out;
		}
	}

	/* The loop's two sources: progress once a second, and the group. */
	ep = epoll_create1(EPOLL_CLOEXEC);
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (ep < 0 || tfd < 0 || timerfd_settime(tfd, 0, &its, NULL) < 0) {
		rc = -errno;
		fprintf(stderr, "epoll_reactor: epoll/timerfd: %s\n", strerror(errno));
		goto out;
	}
	gfd = aioblk_group_fd(c.group);
	ev = (struct epoll_event){ .events = EPOLLIN, .data.fd = tfd };
	if (epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev) < 0) {
		rc = -errno;
		goto out;
	}
	ev = (struct epoll_event){ .events = EPOLLIN, .data.fd = gfd };
	if (epoll_ctl(ep, EPOLL_CTL_ADD, gfd, &ev) < 0) {
		rc = -errno;
		goto out;
	}

	printf("aioblk %s: copying %.1f MiB from %s (%s) to %s (%s), %u requests of %zu KiB in flight\n",
	       aioblk_version(), (double)c.bytes / 1048576.0, srcpath,
	       aioblk_disk_is_direct(c.src) ? "O_DIRECT" : "buffered", dstpath,
	       aioblk_disk_is_direct(c.dst) ? "O_DIRECT" : "buffered", depth, c.chunk / 1024);
	rc = run_phase(&c, PHASE_COPY, ep, tfd, gfd);
	if (rc == 0)
		rc = run_phase(&c, PHASE_FLUSH, ep, tfd, gfd);
	if (rc == 0)
		rc = run_phase(&c, PHASE_VERIFY, ep, tfd, gfd);
	if (rc == -EILSEQ)
		fprintf(stderr, "epoll_reactor: the copy differs at byte %" PRIu64 "\n", c.mismatch_at);
	else if (rc < 0)
		fprintf(stderr, "epoll_reactor: %s failed: %s\n",
			c.phase == PHASE_COPY  ? "copy" :
			c.phase == PHASE_FLUSH ? "flush" :
						 "verify",
			strerror(-rc));

out:
	/* Every request has finished here (the loop ran until none was in flight): tear down. */
	if (c.sch && aioblk_channel_destroy(c.sch) < 0)
		rc = rc ? rc : -EBUSY;
	if (c.dch && aioblk_channel_destroy(c.dch) < 0)
		rc = rc ? rc : -EBUSY;
	if (c.group && aioblk_group_destroy(c.group) < 0)
		rc = rc ? rc : -EBUSY;
	if (c.src)
		aioblk_disk_close(c.src);
	if (c.dst)
		aioblk_disk_close(c.dst);
	if (tfd >= 0)
		close(tfd);
	if (ep >= 0)
		close(ep);
	if (c.slots)
		for (i = 0; i < c.nslots; i++) {
			free(c.slots[i].buf);
			free(c.slots[i].buf2);
		}
	free(c.slots);
	if (temp) {
		unlink(srcpath);
		unlink(dstpath);
	}
	printf("epoll_reactor: %s\n", rc == 0 ? "copied and verified" : "FAILED");
	return rc == 0 ? 0 : 1;
}
