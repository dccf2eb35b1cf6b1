/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer harness: bytes become a sequence of API calls against a
 * temporary file — disk opens with odd options, groups and channels made
 * and destroyed in odd orders, reads and writes with odd offsets, lengths
 * and iovecs (aligned and not), write-zeroes, unmap, flush, reset, poll,
 * wait, submit, rescan, and calls a callback may not make. Every return is
 * checked against what the API documents, every callback must run exactly
 * once, resets must complete only after what was outstanding before them,
 * and every read and the file at the end must match an in-memory model of
 * the disk. Any mismatch aborts (a crash for libFuzzer); ASan finds leaks.
 *
 * Overlapping requests in flight at the same time have no defined order, so
 * the harness does not issue a read or write that overlaps one in flight
 * (it still issues the ones that must be refused).
 */
#define _GNU_SOURCE
#include <aioblk/aioblk.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define CHECK(cond)                                                                                        \
	do {                                                                                               \
		if (!(cond)) {                                                                             \
			fprintf(stderr, "fuzz_api: %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                                           \
		}                                                                                          \
	} while (0)

/* AIOBLK_FUZZ_TRACE=1 prints every call and callback, to read a crashing input. */
static bool trace;
#define TRACE(...)                                    \
	do {                                          \
		if (trace)                            \
			fprintf(stderr, __VA_ARGS__); \
	} while (0)

#define MAX_GROUPS 3
#define MAX_CHANNELS 4
#define MAX_IOVS 6
#define MAX_OPS 400
#define DRAIN_MS 10000

/* --- input ---------------------------------------------------------------- */

static const uint8_t *in;
static size_t in_len, in_pos;

static bool
more(void)
{
	return in_pos < in_len;
}

static uint8_t
u8(void)
{
	return in_pos < in_len ? in[in_pos++] : 0;
}

static uint16_t
u16(void)
{
	return (uint16_t)(u8() | (u8() << 8));
}

/* --- the world ------------------------------------------------------------ */

enum kind { K_READ, K_WRITE, K_FLUSH, K_RESET, K_ZERO, K_UNMAP };

struct grp {
	struct aioblk_group *g;
	bool efd;
	unsigned depth; /* SHARED_CONTEXT: the group's depth across its channels; 0: a plain group */
};

struct chan {
	struct aioblk_channel *ch;
	int grp;
	unsigned qd;
	unsigned bounce_n;
	size_t bounce_size;
	unsigned bounce_used;
	unsigned inflight;
	unsigned resets; /* of those, resets: they take no request slot */
};

struct op {
	enum kind kind;
	struct chan *c;
	uint64_t seq;
	uint64_t off, len; /* bytes */
	unsigned char *mem;
	struct iovec iov[MAX_IOVS];
	int iovcnt;
	bool unaligned;
	bool nasty; /* the callback tries calls that must return -EBUSY */
	int calls;
	struct op *next, *prev;
};

static char path[256];
static int check_fd = -1;

static struct {
	struct aioblk_disk *disk;
	struct aioblk_disk_opts opts;
	bool readonly, direct;
	uint32_t bs;
	size_t align;     /* of iovec addresses */
	size_t len_align; /* of iovec lengths */
	uint64_t size;
	unsigned char *model;
	unsigned char *unknown; /* 1: a failed write left this byte undefined */
	struct grp grps[MAX_GROUPS];
	struct chan chans[MAX_CHANNELS];
	struct op *ops; /* outstanding, in issue order */
	unsigned nops;
	uint64_t seq;
} W;

static bool
is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

/* --- callbacks ------------------------------------------------------------ */

static void
unlink_op(struct op *op)
{
	if (op->prev)
		op->prev->next = op->next;
	else
		W.ops = op->next;
	if (op->next)
		op->next->prev = op->prev;
	W.nops--;
}

static void
gather(const struct op *op, unsigned char *dst)
{
	for (int i = 0; i < op->iovcnt; i++) {
		memcpy(dst, op->iov[i].iov_base, op->iov[i].iov_len);
		dst += op->iov[i].iov_len;
	}
}

static void
op_cb(void *arg, int status)
{
	struct op *op = arg;
	struct chan *c = op->c;
	struct aioblk_group *g = W.grps[c->grp].g;
	struct aioblk_channel *tmp = NULL;
	unsigned char *buf;

	TRACE("cb seq %llu kind %d chan %d status %d\n", (unsigned long long)op->seq, op->kind, (int)(c - W.chans),
	      status);
	CHECK(++op->calls == 1);
	if (op->nasty) {
		/* A callback may not poll, wait on or destroy its own group or channels. */
		CHECK(aioblk_group_poll(g, 0) == -EBUSY);
		CHECK(aioblk_group_wait(g, 0) == -EBUSY);
		CHECK(aioblk_channel_destroy(c->ch) == -EBUSY);
		CHECK(aioblk_group_destroy(g) == -EBUSY);
		CHECK(aioblk_channel_create(g, W.disk, 1, &tmp) == -EBUSY);
		CHECK(tmp == NULL);
	}
	/* A healthy file on a healthy file system: everything succeeds. */
	if (status != 0)
		fprintf(stderr, "fuzz_api: op kind %d off %llu len %llu: status %d\n", op->kind,
			(unsigned long long)op->off, (unsigned long long)op->len, status);
	CHECK(status == 0);
	switch (op->kind) {
	case K_WRITE:
		gather(op, W.model + op->off);
		memset(W.unknown + op->off, 0, op->len);
		break;
	case K_READ:
		buf = malloc(op->len);
		CHECK(buf);
		gather(op, buf);
		for (uint64_t i = 0; i < op->len; i++)
			CHECK(W.unknown[op->off + i] || buf[i] == W.model[op->off + i]);
		free(buf);
		break;
	case K_ZERO:
	case K_UNMAP:
		memset(W.model + op->off, 0, op->len);
		memset(W.unknown + op->off, 0, op->len);
		break;
	case K_RESET:
		/* Everything issued before the reset, on any channel of the disk, is done. */
		for (struct op *o = W.ops; o; o = o->next)
			CHECK(o->kind == K_RESET || o->seq > op->seq);
		break;
	case K_FLUSH:
		break;
	}
	c->inflight--;
	if (op->kind == K_RESET)
		c->resets--;
	if (op->unaligned)
		c->bounce_used--;
	unlink_op(op);
	free(op->mem);
	free(op);
}

/* --- helpers --------------------------------------------------------------- */

static struct op *
new_op(enum kind kind, struct chan *c)
{
	struct op *op = calloc(1, sizeof(*op));

	CHECK(op);
	op->kind = kind;
	op->c = c;
	op->seq = W.seq++;
	op->nasty = (u8() & 7) == 0;
	return op;
}

static void
track(struct op *op)
{
	struct op **link = &W.ops;
	struct op *prev = NULL;

	while (*link) {
		prev = *link;
		link = &prev->next;
	}
	op->prev = prev;
	*link = op;
	W.nops++;
	op->c->inflight++;
	if (op->kind == K_RESET)
		op->c->resets++;
	if (op->unaligned)
		op->c->bounce_used++;
}

static bool
overlaps_inflight(uint64_t off, uint64_t len)
{
	for (struct op *o = W.ops; o; o = o->next) {
		if (o->kind == K_FLUSH || o->kind == K_RESET)
			continue;
		if (off < o->off + o->len && o->off < off + len)
			return true;
	}
	return false;
}

static struct chan *
pick_chan(void)
{
	struct chan *c = &W.chans[u8() % MAX_CHANNELS];

	return c->ch ? c : NULL;
}

static void
check_inflight(void)
{
	for (int i = 0; i < MAX_CHANNELS; i++)
		if (W.chans[i].ch)
			CHECK(aioblk_channel_inflight(W.chans[i].ch) == W.chans[i].inflight);
}

static int
poll_all(void)
{
	int ran = 0;

	for (int i = 0; i < MAX_GROUPS; i++) {
		if (W.grps[i].g) {
			int rc = aioblk_group_poll(W.grps[i].g, 0);

			CHECK(rc >= 0);
			ran += rc;
		}
	}
	return ran;
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Poll every group until nothing is outstanding; a hang is a crash. */
static void
drain(void)
{
	int64_t deadline = now_ms() + DRAIN_MS;

	while (W.ops) {
		poll_all();
		if (now_ms() > deadline) {
			fprintf(stderr, "fuzz_api: %u requests never completed\n", W.nops);
			abort();
		}
	}
	check_inflight();
}

/* --- operations ------------------------------------------------------------ */

static void
do_open(void)
{
	static const uint32_t sizes[] = { 0, 0, 0, 512, 1024, 4096, 8192, 3, 100, 768, 1u << 20, 65536 };
	uint8_t f = u8();
	uint32_t flags = f & 0x0f;
	uint32_t bs = sizes[u8() % (sizeof(sizes) / sizeof(sizes[0]))];
	bool bad = false, maybe = false;
	int rc;

	if ((f & 0x30) == 0x10)
		flags |= AIOBLK_DISK_NO_QUEUE_LIMIT;
	if ((f & 0x30) == 0x30)
		flags |= 1u << (5 + (f >> 6)); /* an unknown flag */
	W.opts.flags = flags;
	W.opts.block_size = bs;
	W.opts.name = (f & 0x40) ? "fuzz disk \"named\"" : NULL;
	if (flags & ~0x1fu)
		bad = true;
	if ((flags & AIOBLK_DISK_REQUIRE_DIRECT) && (flags & AIOBLK_DISK_BUFFERED))
		bad = true;
	if (bs && (!is_pow2(bs) || bs < 512 || W.size % bs))
		bad = true;
	/* A given size below what the file system detects is refused too; the harness does not know that size. */
	if (bs && bs < 4096 && !(flags & AIOBLK_DISK_BUFFERED))
		maybe = true;

	rc = aioblk_disk_open(path, &W.opts, &W.disk);
	TRACE("open flags %#x bs %u: %d\n", flags, bs, rc);
	if (bad) {
		CHECK(rc == -EINVAL);
		W.disk = NULL;
		return;
	}
	if (rc == -EINVAL && maybe) {
		W.disk = NULL;
		return;
	}
	if (rc != 0)
		fprintf(stderr, "fuzz_api: open flags %#x bs %u: %d\n", flags, bs, rc);
	CHECK(rc == 0);
	W.readonly = flags & AIOBLK_DISK_READONLY;
	W.direct = aioblk_disk_is_direct(W.disk);
	W.bs = aioblk_disk_block_size(W.disk);
	W.align = aioblk_disk_buf_align(W.disk);
	W.len_align = aioblk_disk_len_align(W.disk);
	CHECK(!bs || W.bs == bs);
	CHECK(is_pow2(W.bs) && W.bs >= 512);
	CHECK(aioblk_disk_num_blocks(W.disk) == W.size / W.bs);
	CHECK(aioblk_disk_is_readonly(W.disk) == W.readonly);
	CHECK(!(flags & AIOBLK_DISK_BUFFERED) || !W.direct);
	CHECK(W.direct || W.align == 1);
	CHECK(W.align >= 1 && is_pow2(W.align));
	CHECK(W.direct ? W.len_align >= 512 && W.bs % W.len_align == 0 : W.len_align == 1);
	CHECK(strcmp(aioblk_disk_path(W.disk), path) == 0);
	CHECK(strcmp(aioblk_disk_name(W.disk), W.opts.name ? W.opts.name : path) == 0);
	{
		char json[32];
		int n = aioblk_disk_config_json(W.disk, json, sizeof(json));

		CHECK(n > 0);
		CHECK(strlen(json) == ((size_t)n < sizeof(json) ? (size_t)n : sizeof(json) - 1));
	}
}

static void
do_group_create(void)
{
	struct grp *gr = &W.grps[u8() % MAX_GROUPS];
	uint8_t f = u8();
	struct aioblk_group_opts opts = { .flags = f & 1 ? AIOBLK_GROUP_EVENTFD : 0 };
	struct aioblk_group *g = NULL;
	int rc;

	if (gr->g)
		return;
	switch ((f >> 1) & 7) {
	case 7: /* an unknown flag, or a wait in the kernel with an eventfd */
		CHECK(aioblk_group_create(opts.flags | (1u << (3 + (f >> 4))), &g) == -EINVAL);
		opts.flags = AIOBLK_GROUP_EVENTFD | AIOBLK_GROUP_WAIT_IN_KERNEL;
		CHECK(aioblk_group_create_ext(&opts, &g) == -EINVAL);
		CHECK(g == NULL);
		return;
	case 6: /* a depth without a shared context, or too deep */
		opts.queue_depth = f & 0x10 ? 65537 : 8;
		opts.flags |= f & 0x10 ? AIOBLK_GROUP_SHARED_CONTEXT : 0;
		CHECK(aioblk_group_create_ext(&opts, &g) == -EINVAL);
		CHECK(g == NULL);
		return;
	case 0:
	case 1:
	case 2:
		/* A shared context, shallow enough for the input to fill it. */
		opts.flags |= AIOBLK_GROUP_SHARED_CONTEXT;
		opts.queue_depth = 1 + (f >> 4);
		break;
	default:
		break;
	}
	/* Busy-poll groups whose waits sleep in io_getevents(2). */
	if (!(opts.flags & AIOBLK_GROUP_EVENTFD) && (f & 0x40))
		opts.flags |= AIOBLK_GROUP_WAIT_IN_KERNEL;
	rc = f & 0x80 && !opts.queue_depth ? aioblk_group_create(opts.flags, &g) : aioblk_group_create_ext(&opts, &g);
	TRACE("group %d create eventfd %d depth %u: %d\n", (int)(gr - W.grps), (int)(opts.flags & 1), opts.queue_depth,
	      rc);
	CHECK(rc == 0);
	gr->g = g;
	gr->efd = opts.flags & AIOBLK_GROUP_EVENTFD;
	gr->depth = opts.queue_depth;
	CHECK(gr->efd ? aioblk_group_fd(g) >= 0 : aioblk_group_fd(g) == -EINVAL);
}

/* A request slot is free on @c and in its group's shared context. */
static bool
slot_free(const struct chan *c)
{
	unsigned used = 0;

	if (c->inflight - c->resets >= c->qd)
		return false;
	if (!W.grps[c->grp].depth)
		return true;
	for (int i = 0; i < MAX_CHANNELS; i++)
		if (W.chans[i].ch && W.chans[i].grp == c->grp)
			used += W.chans[i].inflight - W.chans[i].resets;
	return used < W.grps[c->grp].depth;
}

static unsigned
live_channels_of(int grp)
{
	unsigned n = 0;

	for (int i = 0; i < MAX_CHANNELS; i++)
		if (W.chans[i].ch && W.chans[i].grp == grp)
			n++;
	return n;
}

static unsigned
live_channels(void)
{
	unsigned n = 0;

	for (int i = 0; i < MAX_CHANNELS; i++)
		n += W.chans[i].ch != NULL;
	return n;
}

static void
do_group_destroy(void)
{
	int i = u8() % MAX_GROUPS;

	if (!W.grps[i].g)
		return;
	if (live_channels_of(i)) {
		CHECK(aioblk_group_destroy(W.grps[i].g) == -EBUSY);
		return;
	}
	CHECK(aioblk_group_destroy(W.grps[i].g) == 0);
	W.grps[i].g = NULL;
}

static void
do_channel_create(void)
{
	static const unsigned qds[] = { 0, 1, 2, 3, 4, 8, 16, 65, 65537 };
	struct chan *c = &W.chans[u8() % MAX_CHANNELS];
	int grp = u8() % MAX_GROUPS;
	struct aioblk_channel_opts opts = { 0 };
	uint8_t b = u8();
	int rc;

	opts.queue_depth = qds[b % (sizeof(qds) / sizeof(qds[0]))];
	if (b & 0x10) {
		opts.bounce_buffers = 1 + (b >> 6);
		opts.bounce_buffer_size = (b & 0x20) ? 0 : 1000; /* rounded up to the block size */
	}
	if (c->ch || !W.grps[grp].g || !W.disk)
		return;
	rc = aioblk_channel_create_ext(W.grps[grp].g, W.disk, &opts, &c->ch);
	TRACE("channel %d create group %d qd %u bounce %u x %zu: %d\n", (int)(c - W.chans), grp, opts.queue_depth,
	      opts.bounce_buffers, opts.bounce_buffer_size, rc);
	if (opts.queue_depth > 65536) {
		CHECK(rc == -EINVAL);
		c->ch = NULL;
		return;
	}
	CHECK(rc == 0);
	c->grp = grp;
	c->qd = opts.queue_depth ? opts.queue_depth : 128;
	c->bounce_n = opts.bounce_buffers;
	c->bounce_size =
		opts.bounce_buffers ?
			((opts.bounce_buffer_size ? opts.bounce_buffer_size : 128 * 1024) + W.bs - 1) / W.bs * W.bs :
			0;
	c->bounce_used = 0;
	c->inflight = 0;
	c->resets = 0;
	CHECK(aioblk_channel_inflight(c->ch) == 0);
}

static void
do_channel_destroy(void)
{
	struct chan *c = pick_chan();

	if (!c)
		return;
	if (c->inflight) {
		CHECK(aioblk_channel_destroy(c->ch) == -EBUSY);
		return;
	}
	CHECK(aioblk_channel_destroy(c->ch) == 0);
	c->ch = NULL;
}

static void
do_close(void)
{
	if (!W.disk)
		return;
	if (live_channels()) {
		CHECK(aioblk_disk_close(W.disk) == -EBUSY);
		return;
	}
	CHECK(aioblk_disk_close(W.disk) == 0);
	W.disk = NULL;
}

/* Set @err when @cond: the call must return one of the errors that apply. */
#define MAY(cond, err)                               \
	do {                                         \
		if (cond)                            \
			allowed[nallowed++] = (err); \
	} while (0)

static void
expect(int rc, const int *allowed, int nallowed)
{
	if (nallowed == 0) {
		if (rc != 0)
			fprintf(stderr, "fuzz_api: refused with %d, expected acceptance\n", rc);
		CHECK(rc == 0);
		return;
	}
	for (int i = 0; i < nallowed; i++)
		if (rc == allowed[i])
			return;
	fprintf(stderr, "fuzz_api: returned %d, expected one of:", rc);
	for (int i = 0; i < nallowed; i++)
		fprintf(stderr, " %d", allowed[i]);
	fprintf(stderr, "\n");
	abort();
}

static void
do_rw(bool write)
{
	struct chan *c = pick_chan();
	uint64_t nblocks = W.size / (W.bs ? W.bs : 512);
	uint8_t shape = u8();
	uint64_t off_blocks, num_blocks;
	int iovcnt = 1 + (shape & 3) + ((shape & 4) ? 2 : 0);
	bool unaligned = (shape & 0x18) == 0x18;
	bool use_buf_api = (shape & 0x60) == 0x60;
	bool fua = write && (shape & 0x80);
	int allowed[8], nallowed = 0;
	struct op *op;
	size_t len, pos, mis;
	int rc;

	if (!c)
		return;
	switch (u8() & 3) {
	case 0: /* anywhere, maybe beyond the end */
		off_blocks = u16() % (nblocks + 3);
		break;
	case 1: /* near the end */
		off_blocks = nblocks - (u8() % (nblocks < 4 ? nblocks : 4)) - 1 + (u8() & 1);
		break;
	case 2: /* overflow */
		off_blocks = UINT64_MAX - (u8() & 7);
		break;
	default:
		off_blocks = u8() % (nblocks ? nblocks : 1);
		break;
	}
	num_blocks = u8() % 9; /* 0 is refused */
	if (num_blocks > 4 && (shape & 0x80) && !write)
		num_blocks = (uint64_t)1 << 62; /* length that overflows */

	MAY(num_blocks == 0, -EINVAL);
	MAY(off_blocks + num_blocks < off_blocks || off_blocks + num_blocks > nblocks, -EINVAL);
	MAY(write && W.readonly, -EROFS);
	MAY(!slot_free(c), -EAGAIN);

	op = new_op(write ? K_WRITE : K_READ, c);
	len = num_blocks && num_blocks < 64 ? (size_t)(num_blocks * W.bs) : 0;
	mis = unaligned ? 1 + (u8() % 7) : 0;
	{
		void *mem = NULL;

		CHECK(posix_memalign(&mem, 4096, len + 8192) == 0);
		op->mem = mem;
	}
	for (size_t i = 0; i < len + 8192; i++)
		op->mem[i] = (unsigned char)(u8() ^ i);
	/* Cut the length into iovcnt pieces at input-chosen points (aligned to the buffer alignment unless not). */
	pos = 0;
	for (int i = 0; i < iovcnt; i++) {
		size_t piece;

		if (i == iovcnt - 1) {
			piece = len - pos;
		} else {
			piece = len ? (size_t)u16() % (len - pos + 1) : 0;
			/* Both powers of two: the larger is a multiple of the smaller. */
			if (!unaligned)
				piece -= piece % (W.align > W.len_align ? W.align : W.len_align);
		}
		op->iov[i].iov_base = op->mem + mis + pos;
		op->iov[i].iov_len = piece;
		pos += piece;
	}
	op->iovcnt = iovcnt;
	/* An iovec total that does not add up. */
	if ((shape & 0x60) == 0x20 && len) {
		op->iov[iovcnt - 1].iov_len += W.bs;
		MAY(true, -EINVAL);
	}
	op->off = off_blocks * W.bs;
	op->len = len;
	/* Exactly the library's rule: every base a multiple of buf_align, every length of len_align. */
	{
		uintptr_t base_bits = 0;
		size_t len_bits = 0;

		for (int i = 0; i < iovcnt; i++) {
			base_bits |= (uintptr_t)op->iov[i].iov_base;
			len_bits |= op->iov[i].iov_len;
		}
		op->unaligned = W.direct && ((base_bits & (W.align - 1)) || (len_bits & (W.len_align - 1)));
	}
	if (op->unaligned) {
		MAY(!c->bounce_n || len > c->bounce_size, -EINVAL);
		MAY(c->bounce_used >= c->bounce_n, -EAGAIN);
	}
	if (nallowed == 0 && overlaps_inflight(op->off, op->len)) {
		free(op->mem);
		free(op);
		return;
	}
	if (use_buf_api && iovcnt == 1)
		rc = write ? aioblk_write(c->ch, op->iov[0].iov_base, off_blocks, num_blocks, op_cb, op) :
			     aioblk_read(c->ch, op->iov[0].iov_base, off_blocks, num_blocks, op_cb, op);
	else if (fua)
		rc = aioblk_writev_ext(c->ch, op->iov, iovcnt, off_blocks, num_blocks, AIOBLK_WRITE_FUA, op_cb, op);
	else
		rc = write ? aioblk_writev(c->ch, op->iov, iovcnt, off_blocks, num_blocks, op_cb, op) :
			     aioblk_readv(c->ch, op->iov, iovcnt, off_blocks, num_blocks, op_cb, op);
	TRACE("%s seq %llu chan %d off %llu blocks %llu iovcnt %d unaligned %d fua %d: %d\n", write ? "write" : "read",
	      (unsigned long long)op->seq, (int)(c - W.chans), (unsigned long long)off_blocks,
	      (unsigned long long)num_blocks, iovcnt, op->unaligned, fua, rc);
	expect(rc, allowed, nallowed);
	if (rc != 0) {
		free(op->mem);
		free(op);
		return;
	}
	track(op);
}

static void
do_bad_calls(void)
{
	struct chan *c = pick_chan();
	struct iovec iov[2] = { { NULL, 512 }, { NULL, 0 } };
	static struct iovec many[IOV_MAX + 1];
	char one;

	/* Refusals that never reach a channel's state. */
	CHECK(aioblk_readv(NULL, iov, 1, 0, 1, op_cb, NULL) == -EINVAL);
	CHECK(aioblk_flush(NULL, op_cb, NULL) == -EINVAL);
	CHECK(aioblk_reset(NULL, op_cb, NULL) == -EINVAL);
	CHECK(aioblk_group_poll(NULL, 0) == -EINVAL);
	CHECK(aioblk_group_wait(NULL, 0) == -EINVAL);
	CHECK(aioblk_group_submit(NULL) == -EINVAL);
	CHECK(aioblk_group_destroy(NULL) == -EINVAL);
	CHECK(aioblk_channel_destroy(NULL) == -EINVAL);
	CHECK(aioblk_disk_close(NULL) == -EINVAL);
	CHECK(aioblk_disk_rescan(NULL) == -EINVAL);
	CHECK(aioblk_channel_get_stats(NULL, NULL) == -EINVAL);
	if (!c)
		return;
	CHECK(aioblk_readv(c->ch, iov, 1, 0, 1, NULL, NULL) == -EINVAL);   /* NULL callback */
	CHECK(aioblk_readv(c->ch, NULL, 1, 0, 1, op_cb, NULL) == -EINVAL); /* NULL iov */
	CHECK(aioblk_readv(c->ch, iov, 0, 0, 1, op_cb, NULL) == -EINVAL);  /* iovcnt 0 */
	CHECK(aioblk_readv(c->ch, iov, -1, 0, 1, op_cb, NULL) == -EINVAL);
	CHECK(aioblk_readv(c->ch, many, IOV_MAX + 1, 0, 1, op_cb, NULL) == -EINVAL);
	if (W.bs == 512 && !W.readonly)
		CHECK(aioblk_writev(c->ch, iov, 2, 0, 1, op_cb, NULL) == -EINVAL);   /* NULL base, non-zero length */
	CHECK(aioblk_writev_ext(c->ch, iov, 1, 0, 1, 0x80, op_cb, NULL) == -EINVAL); /* unknown flag */
	CHECK(aioblk_read(c->ch, &one, 0, UINT64_MAX >> 1, op_cb, NULL) == -EINVAL);
	CHECK(aioblk_flush(c->ch, NULL, NULL) == -EINVAL);
	CHECK(aioblk_reset(c->ch, NULL, NULL) == -EINVAL);
	CHECK(aioblk_write_zeroes(c->ch, 0, 1, NULL, NULL) == -EINVAL);
	CHECK(aioblk_unmap(c->ch, 0, 1, NULL, NULL) == -EINVAL);
	check_inflight();
}

static void
do_simple(enum kind kind)
{
	struct chan *c = pick_chan();
	struct op *op;
	int rc;

	if (!c)
		return;
	op = new_op(kind, c);
	rc = kind == K_FLUSH ? aioblk_flush(c->ch, op_cb, op) : aioblk_reset(c->ch, op_cb, op);
	TRACE("%s seq %llu chan %d: %d\n", kind == K_FLUSH ? "flush" : "reset", (unsigned long long)op->seq,
	      (int)(c - W.chans), rc);
	/* A reset takes no request slot: it is accepted on a full channel. */
	if (kind == K_FLUSH && !slot_free(c)) {
		CHECK(rc == -EAGAIN);
		free(op);
		return;
	}
	CHECK(rc == 0);
	track(op);
}

static void
do_zero(bool unmap)
{
	struct chan *c = pick_chan();
	uint64_t nblocks = W.size / (W.bs ? W.bs : 512);
	uint64_t off_blocks = u8() % (nblocks + 2);
	uint64_t num_blocks = u8() % 6;
	int allowed[8], nallowed = 0;
	struct op *op;
	int rc;

	if (!c)
		return;
	MAY(num_blocks == 0 || off_blocks + num_blocks > nblocks, -EINVAL);
	MAY(W.readonly, -EROFS);
	MAY(unmap && !aioblk_disk_supports(W.disk, AIOBLK_IO_UNMAP), -EOPNOTSUPP);
	MAY(!slot_free(c), -EAGAIN);
	op = new_op(unmap ? K_UNMAP : K_ZERO, c);
	op->off = off_blocks * W.bs;
	op->len = num_blocks * W.bs;
	if (nallowed == 0 && overlaps_inflight(op->off, op->len)) {
		free(op);
		return;
	}
	rc = unmap ? aioblk_unmap(c->ch, off_blocks, num_blocks, op_cb, op) :
		     aioblk_write_zeroes(c->ch, off_blocks, num_blocks, op_cb, op);
	TRACE("%s seq %llu chan %d off %llu blocks %llu: %d\n", unmap ? "unmap" : "zeroes", (unsigned long long)op->seq,
	      (int)(c - W.chans), (unsigned long long)off_blocks, (unsigned long long)num_blocks, rc);
	expect(rc, allowed, nallowed);
	if (rc != 0) {
		free(op);
		return;
	}
	track(op);
}

static void
do_poll(void)
{
	struct grp *gr = &W.grps[u8() % MAX_GROUPS];
	uint8_t how = u8();
	int rc;

	if (!gr->g)
		return;
	TRACE("poll group %d how %d\n", (int)(gr - W.grps), how & 3);
	switch (how & 3) {
	case 0:
		rc = aioblk_group_poll(gr->g, how >> 2);
		CHECK(rc >= 0);
		if (how >> 2)
			CHECK(rc <= (how >> 2));
		break;
	case 1:
		rc = aioblk_group_wait(gr->g, how & 4 ? 1 : 0);
		CHECK(rc >= 0);
		break;
	case 2:
		CHECK(aioblk_group_submit(gr->g) >= 0);
		break;
	default:
		rc = aioblk_group_poll(gr->g, 0);
		CHECK(rc >= 0);
		break;
	}
}

static void
setup_file(void)
{
	uint8_t a = u8(), b = u8();

	W.size = 4096ull * (1 + a % 32) + ((b & 1) ? 512ull * (1 + b % 7) : 0);
	CHECK(ftruncate(check_fd, 0) == 0);
	CHECK(ftruncate(check_fd, (off_t)W.size) == 0);
	W.model = calloc(1, W.size);
	W.unknown = calloc(1, W.size);
	CHECK(W.model && W.unknown);
}

static void
teardown_world(void)
{
	unsigned char *buf;

	if (W.disk || W.ops)
		drain();
	for (int i = 0; i < MAX_CHANNELS; i++) {
		if (W.chans[i].ch) {
			CHECK(aioblk_channel_destroy(W.chans[i].ch) == 0);
			W.chans[i].ch = NULL;
		}
	}
	for (int i = 0; i < MAX_GROUPS; i++) {
		if (W.grps[i].g) {
			CHECK(aioblk_group_destroy(W.grps[i].g) == 0);
			W.grps[i].g = NULL;
		}
	}
	if (W.disk) {
		CHECK(aioblk_disk_close(W.disk) == 0);
		W.disk = NULL;
	}
	/* The file holds what the model says. */
	buf = malloc(W.size);
	CHECK(buf);
	CHECK(pread(check_fd, buf, W.size, 0) == (ssize_t)W.size);
	for (uint64_t i = 0; i < W.size; i++)
		CHECK(W.unknown[i] || buf[i] == W.model[i]);
	free(buf);
	free(W.model);
	free(W.unknown);
	memset(&W, 0, sizeof(W));
}

static void
remove_file(void)
{
	unlink(path);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *dir = getenv("AIOBLK_FUZZ_DIR");
	int fd;

	(void)argc;
	(void)argv;
	trace = getenv("AIOBLK_FUZZ_TRACE") != NULL;
	if (!dir)
		dir = getenv("TMPDIR");
	snprintf(path, sizeof(path), "%s/aioblk-fuzz-XXXXXX", dir ? dir : "/var/tmp");
	fd = mkstemp(path);
	CHECK(fd >= 0);
	close(fd);
	check_fd = open(path, O_RDWR | O_CLOEXEC);
	CHECK(check_fd >= 0);
	atexit(remove_file);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned steps = 0;

	in = data;
	in_len = size;
	in_pos = 0;
	memset(&W, 0, sizeof(W));
	setup_file();
	TRACE("file size %llu\n", (unsigned long long)W.size);
	do_open();
	while (more() && steps++ < MAX_OPS) {
		switch (u8() % 20) {
		case 0:
		case 1:
		case 2:
		case 3:
			if (W.disk)
				do_rw(true);
			break;
		case 4:
		case 5:
		case 6:
			if (W.disk)
				do_rw(false);
			break;
		case 7:
			do_simple(K_FLUSH);
			break;
		case 8:
			do_simple(K_RESET);
			break;
		case 9:
			if (W.disk)
				do_zero(u8() & 1);
			break;
		case 10:
		case 11:
			do_poll();
			break;
		case 12:
			do_group_create();
			break;
		case 13:
			do_group_destroy();
			break;
		case 14:
			do_channel_create();
			break;
		case 15:
			do_channel_destroy();
			break;
		case 16:
			do_close();
			break;
		case 17:
			if (!W.disk)
				do_open();
			else
				CHECK(aioblk_disk_rescan(W.disk) == 0);
			break;
		case 18:
			do_bad_calls();
			break;
		default:
			if ((u8() & 3) == 0)
				drain();
			else
				poll_all();
			break;
		}
		check_inflight();
	}
	teardown_world();
	return 0;
}
