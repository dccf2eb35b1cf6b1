/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * nbdkit-aioblk-plugin: serve a file or block device over NBD, with every
 * request done through aioblk (Linux AIO, O_DIRECT where the file system
 * allows it).
 *
 * The disk is opened once and shared by every connection. Each nbdkit
 * worker thread makes its own aioblk group and channel the first time it
 * serves a request, and they are destroyed when the thread exits (a
 * pthread key's destructor). A request is issued on the thread's channel
 * and the thread polls the ring (and, on a slow device, sleeps in
 * io_getevents) until the callback ran: nbdkit hands each worker one
 * request at a time, so a channel has at most BOUNCE_SLOTS requests
 * outstanding (the pieces of a large request going through the bounce
 * buffer).
 *
 * Requests that are not whole blocks in block-aligned memory (nbdkit's
 * buffers come from malloc) go through a per-thread bounce buffer; writes
 * that cover part of a block read that block first, merge and write it
 * back while holding a lock of a striped table, so that two clients
 * writing different bytes of one block cannot undo each other's write.
 *
 * The callbacks are named aionbd_*: the aioblk_* names belong to the library.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include <aioblk/aioblk.h>

/*
 * Each worker thread's bounce buffer: BOUNCE_SLOTS slots of SLOT_SIZE bytes
 * (a multiple of any block size, at least two of the largest blocks).
 */
#define SLOT_SIZE (128u * 1024u)
#define BOUNCE_SLOTS 4u
/* Locks of the read-modify-write table; a block's lock is its number modulo this. */
#define RMW_STRIPES 256u
/* Default request slots of each thread's channel. */
#define DEFAULT_QUEUE_DEPTH 4u

/* wait=eventfd: how long a wait polls before it sleeps. */
#define SPIN_NS 20000
/* Polls of a wait before it sleeps (or reads the clock): a fast device's request is found by the first. */
#define FREE_POLLS 4

enum wait_mode {
	WAIT_AUTO,    /* poll the ring a few times, then sleep in io_getevents (AIOBLK_GROUP_WAIT_IN_KERNEL) */
	WAIT_EVENTFD, /* poll for SPIN_NS, then sleep in poll(2) on the group's eventfd */
	WAIT_POLL,    /* busy-poll until the request completes */
};

/* Parameters (config) and the disk (get_ready), shared by all threads. */
static char *filename;
static uint32_t block_size_param;
static bool buffered;
static bool direct_required;
static bool nowait;
static bool readonly_param;
static unsigned queue_depth = DEFAULT_QUEUE_DEPTH;
static enum wait_mode wait_mode = WAIT_AUTO;

static struct aioblk_disk *disk;
static uint32_t blksize;   /* the disk's block size */
static size_t mem_align;   /* alignment of memory for direct I/O */
static bool disk_readonly; /* opened read-only (asked for, or the file refused writing) */
static bool fast_zero;     /* zeroing is done by the file system or device, not by writing */
static pid_t opened_pid;   /* the process that opened the disk (nbdkit may fork after get_ready) */

static pthread_key_t ctx_key;
static bool ctx_key_made;
static atomic_uint live_ctxs;
static pthread_mutex_t rmw_locks[RMW_STRIPES];
static atomic_bool trim_refused_logged;

/* One worker thread's aioblk objects. */
struct thread_ctx {
	struct aioblk_group *group;
	struct aioblk_channel *ch;
	char *bounce; /* BOUNCE_SLOTS * SLOT_SIZE bytes aligned for direct I/O, made on first use */
};

/* One request in flight: what its callback reports. */
struct op {
	bool done;
	int status;
};

/* Per connection. */
struct handle {
	bool readonly;
};

/*
 * While the disk is being opened, the library's errors are only debug
 * messages: a refused read-write open is retried read-only, and a final
 * failure is reported by open_disk itself.
 */
static atomic_bool opening;

/* Diagnostics of the library go to nbdkit's (stderr or syslog, never stdout). */
static void
log_to_nbdkit(int level, const char *msg, void *arg)
{
	(void)arg;
	if (level <= AIOBLK_LOG_ERR && !atomic_load(&opening))
		nbdkit_error("aioblk: %s", msg);
	else
		nbdkit_debug("aioblk: %s%s", level == AIOBLK_LOG_WARNING ? "warning: " : "", msg);
}

/* Thread exit: give back the io_context and the memory. */
static void
ctx_destroy(void *p)
{
	struct thread_ctx *ctx = p;
	int rc;

	if (ctx->ch) {
		rc = aioblk_channel_destroy(ctx->ch);
		if (rc < 0) {
			/* Requests still in flight: io_destroy would wait for them; leak instead. */
			nbdkit_debug("aioblk: channel not destroyed at thread exit: %s", strerror(-rc));
			return;
		}
	}
	if (ctx->group)
		aioblk_group_destroy(ctx->group);
	free(ctx->bounce);
	free(ctx);
	nbdkit_debug("aioblk: worker thread's channel destroyed (%u left)", atomic_fetch_sub(&live_ctxs, 1) - 1);
}

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Make the thread's group, of the kind its wait= asks for, and its channel. */
static int
ctx_make(struct thread_ctx *ctx)
{
	static const uint32_t group_flags[] = {
		[WAIT_AUTO] = AIOBLK_GROUP_WAIT_IN_KERNEL,
		[WAIT_EVENTFD] = AIOBLK_GROUP_EVENTFD,
		[WAIT_POLL] = 0,
	};
	int rc = aioblk_group_create(group_flags[wait_mode], &ctx->group);

	if (rc < 0) {
		nbdkit_error("aioblk_group_create: %s", strerror(-rc));
		return rc;
	}
	rc = aioblk_channel_create(ctx->group, disk, queue_depth, &ctx->ch);
	if (rc < 0)
		nbdkit_error("aioblk_channel_create: %s%s", strerror(-rc),
			     rc == -EAGAIN ? " (raise sysctl fs.aio-max-nr or lower queue-depth=)" : "");
	return rc;
}

/* The calling worker thread's group and channel, made on its first request. */
static struct thread_ctx *
get_ctx(void)
{
	struct thread_ctx *ctx = pthread_getspecific(ctx_key);
	int rc;

	if (ctx)
		return ctx;
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx) {
		nbdkit_error("calloc: %m");
		return NULL;
	}
	rc = ctx_make(ctx);
	if (rc < 0)
		goto fail;
	rc = pthread_setspecific(ctx_key, ctx);
	if (rc) {
		nbdkit_error("pthread_setspecific: %s", strerror(rc));
		goto fail;
	}
	nbdkit_debug("aioblk: worker thread's channel made (%u in all)", atomic_fetch_add(&live_ctxs, 1) + 1);
	return ctx;
fail:
	if (ctx->ch)
		aioblk_channel_destroy(ctx->ch);
	if (ctx->group)
		aioblk_group_destroy(ctx->group);
	free(ctx);
	errno = rc < 0 ? -rc : rc;
	return NULL;
}

static char *
get_bounce(struct thread_ctx *ctx)
{
	size_t align = mem_align > 4096 ? mem_align : 4096;
	void *p;
	int rc;

	if (ctx->bounce)
		return ctx->bounce;
	rc = posix_memalign(&p, align, (size_t)BOUNCE_SLOTS * SLOT_SIZE);
	if (rc) {
		errno = rc;
		nbdkit_error("posix_memalign: %m");
		return NULL;
	}
	/* Cleared once: no stale heap data can reach a client, and valgrind,
	 * which cannot see what AIO reads write, knows the bytes. */
	memset(p, 0, (size_t)BOUNCE_SLOTS * SLOT_SIZE);
	ctx->bounce = p;
	return p;
}

static void
op_done(void *arg, int status)
{
	struct op *op = arg;

	op->status = status;
	op->done = true;
}

/*
 * Wait until at least one callback of the group ran; the caller has a
 * request outstanding. What is queued goes to the kernel first, and a
 * fast device (zram) has completed it inside that io_submit: the first
 * poll of the ring finds it, without another system call. Otherwise
 * wait=auto sleeps in io_getevents at once (one system call, and the CPU
 * goes to whatever completes the request: the loop driver's worker
 * thread, on a loop device), wait=eventfd polls for SPIN_NS and then
 * sleeps in poll(2) on the eventfd (then reads it: two system calls), and
 * wait=poll spins. It never gives up: a request still in flight points
 * at the caller's stack and buffers, so a failing wait turns into polling.
 */
static void
wait_some(struct thread_ctx *ctx)
{
	int64_t deadline;
	unsigned i;
	int rc;

	aioblk_group_submit(ctx->group);
	for (i = 0; i < FREE_POLLS; i++)
		if (aioblk_group_poll(ctx->group, 0) > 0)
			return;
	if (wait_mode == WAIT_POLL) {
		while (aioblk_group_poll(ctx->group, 0) == 0)
			;
		return;
	}
	if (wait_mode == WAIT_EVENTFD) {
		deadline = now_ns() + SPIN_NS;
		do {
			if (aioblk_group_poll(ctx->group, 0) > 0)
				return;
		} while ((++i & 15) || now_ns() < deadline);
	}
	for (;;) {
		rc = aioblk_group_wait(ctx->group, -1);
		if (rc > 0)
			return;
		if (rc < 0 && rc != -EINTR && aioblk_group_poll(ctx->group, 0) > 0)
			return;
	}
}

/* Wait until @op's callback ran. */
static void
wait_op(struct thread_ctx *ctx, struct op *op)
{
	while (!op->done)
		wait_some(ctx);
}

enum req_type { REQ_READ, REQ_WRITE, REQ_FLUSH, REQ_ZEROES, REQ_UNMAP };

/*
 * Issue one request on the thread's channel. A full channel (-EAGAIN: a
 * queue-depth= smaller than the bounce slots) is waited out.
 */
static int
issue(struct thread_ctx *ctx, enum req_type type, void *buf, uint64_t block, uint64_t nblocks, uint32_t io_flags,
      struct op *op)
{
	struct iovec iov = { .iov_base = buf, .iov_len = (size_t)(nblocks * blksize) };
	int rc;

	op->done = false;
	op->status = 0;
	for (;;) {
		switch (type) {
		case REQ_READ:
			rc = aioblk_read(ctx->ch, buf, block, nblocks, op_done, op);
			break;
		case REQ_WRITE:
			rc = aioblk_writev_ext(ctx->ch, &iov, 1, block, nblocks, io_flags, op_done, op);
			break;
		case REQ_FLUSH:
			rc = aioblk_flush(ctx->ch, op_done, op);
			break;
		case REQ_ZEROES:
			rc = aioblk_write_zeroes(ctx->ch, block, nblocks, op_done, op);
			break;
		case REQ_UNMAP:
		default:
			rc = aioblk_unmap(ctx->ch, block, nblocks, op_done, op);
			break;
		}
		if (rc != -EAGAIN || aioblk_channel_inflight(ctx->ch) == 0)
			return rc;
		wait_some(ctx);
	}
}

/* Issue one request and wait for it: 0 or a negative errno. */
static int
run(struct thread_ctx *ctx, enum req_type type, void *buf, uint64_t block, uint64_t nblocks, uint32_t io_flags)
{
	struct op op;
	int rc;

	rc = issue(ctx, type, buf, block, nblocks, io_flags, &op);
	if (rc < 0)
		return rc;
	wait_op(ctx, &op);
	return op.status;
}

/* Report a failed request to nbdkit: the message, and the errno that goes to the client. */
static int
fail(const char *what, int rc, uint32_t count, uint64_t offset)
{
	nbdkit_error("%s of %" PRIu32 " bytes at offset %" PRIu64 ": %s", what, count, offset, strerror(-rc));
	nbdkit_set_error(-rc);
	return -1;
}

static bool
is_aligned(const void *buf, uint32_t count, uint64_t offset)
{
	return offset % blksize == 0 && count % blksize == 0 && (uintptr_t)buf % mem_align == 0;
}

/* Lock the stripes of a write's partial first and last blocks, in order (no deadlock). */
static void
rmw_lock(uint64_t first, bool head, uint64_t last, bool tail, unsigned s[2], unsigned *n)
{
	unsigned a = (unsigned)(first % RMW_STRIPES), b = (unsigned)(last % RMW_STRIPES);

	*n = 0;
	if (head)
		s[(*n)++] = a;
	if (tail && !(head && a == b))
		s[(*n)++] = b;
	if (*n == 2 && s[0] > s[1]) {
		unsigned t = s[0];

		s[0] = s[1];
		s[1] = t;
	}
	for (unsigned i = 0; i < *n; i++)
		pthread_mutex_lock(&rmw_locks[s[i]]);
}

static void
rmw_unlock(const unsigned s[2], unsigned n)
{
	while (n-- > 0)
		pthread_mutex_unlock(&rmw_locks[s[n]]);
}

/*
 * Write [offset, offset + count) through the first bounce slot by
 * read-modify-write (@src, or zeroes when @src is NULL), one slot at a
 * time; used for the parts of writes that cover blocks partly. The first
 * and last blocks, when partial, are read first and the span is written
 * back while their locks are held: a second writer of the same block
 * waits, and reads the block after the first one's write has completed.
 */
static int
rmw_write(struct thread_ctx *ctx, const void *src, uint32_t count, uint64_t offset, uint32_t io_flags)
{
	char *bounce = get_bounce(ctx);
	int rc = 0;

	if (!bounce)
		return -ENOMEM;
	while (count > 0) {
		uint64_t start = offset - offset % blksize;
		uint64_t end = offset + count < start + SLOT_SIZE ? offset + count : start + SLOT_SIZE;
		uint64_t span_end = (end + blksize - 1) / blksize * blksize;
		uint64_t first = start / blksize, nblocks = (span_end - start) / blksize;
		uint64_t last = first + nblocks - 1;
		size_t skip = (size_t)(offset - start), n = (size_t)(end - offset);
		bool head = skip != 0, tail = end != span_end;
		unsigned stripes[2], nstripes;

		rmw_lock(first, head, last, tail, stripes, &nstripes);
		if (head)
			rc = run(ctx, REQ_READ, bounce, first, 1, 0);
		if (rc == 0 && tail && !(head && last == first))
			rc = run(ctx, REQ_READ, bounce + (size_t)(nblocks - 1) * blksize, last, 1, 0);
		if (rc == 0) {
			if (src) {
				memcpy(bounce + skip, src, n);
				src = (const char *)src + n;
			} else {
				memset(bounce + skip, 0, n);
			}
			rc = run(ctx, REQ_WRITE, bounce, first, nblocks, io_flags);
		}
		rmw_unlock(stripes, nstripes);
		if (rc < 0)
			return rc;
		offset += n;
		count -= (uint32_t)n;
	}
	return 0;
}

/*
 * Read [offset, offset + count) into @dst, or write whole blocks from @src,
 * through the bounce slots with up to BOUNCE_SLOTS requests in flight, so
 * that a large request in unaligned memory (nbdkit's buffers come from
 * malloc) still keeps the device busy. A read widens the range to whole
 * blocks and copies out only what was asked for.
 */
static int
bounce_rw(struct thread_ctx *ctx, bool write, char *dst, const char *src, uint32_t count, uint64_t offset,
	  uint32_t io_flags)
{
	char *bounce = get_bounce(ctx);
	uint64_t end = offset + count, next = offset - offset % blksize;
	uint64_t span_end = (end + blksize - 1) / blksize * blksize;
	struct op ops[BOUNCE_SLOTS];
	uint64_t at[BOUNCE_SLOTS];
	size_t len[BOUNCE_SLOTS];
	bool busy[BOUNCE_SLOTS] = { false };
	unsigned inflight = 0, i;
	int err = 0, rc;

	if (!bounce)
		return -ENOMEM;
	for (;;) {
		for (i = 0; i < BOUNCE_SLOTS && next < span_end && !err; i++) {
			char *slot = bounce + (size_t)i * SLOT_SIZE;
			size_t n = span_end - next < SLOT_SIZE ? (size_t)(span_end - next) : SLOT_SIZE;

			if (busy[i])
				continue;
			if (write)
				memcpy(slot, src + (next - offset), n);
			rc = issue(ctx, write ? REQ_WRITE : REQ_READ, slot, next / blksize, n / blksize, io_flags,
				   &ops[i]);
			if (rc < 0) {
				err = rc;
				break;
			}
			busy[i] = true;
			at[i] = next;
			len[i] = n;
			inflight++;
			next += n;
		}
		if (inflight == 0)
			return err;
		wait_some(ctx);
		for (i = 0; i < BOUNCE_SLOTS; i++) {
			if (!busy[i] || !ops[i].done)
				continue;
			busy[i] = false;
			inflight--;
			if (ops[i].status < 0 && !err)
				err = ops[i].status;
			if (!write && !err) {
				uint64_t lo = at[i] > offset ? at[i] : offset;
				uint64_t hi = at[i] + len[i] < end ? at[i] + len[i] : end;

				memcpy(dst + (lo - offset), bounce + (size_t)i * SLOT_SIZE + (lo - at[i]),
				       (size_t)(hi - lo));
			}
		}
	}
}

/*
 * A write that is not whole blocks in aligned memory: the partial first and
 * last blocks by read-modify-write, the whole blocks between them directly
 * when their memory is aligned, else through the bounce slots.
 */
static int
write_unaligned(struct thread_ctx *ctx, const char *buf, uint32_t count, uint64_t offset, uint32_t io_flags)
{
	uint64_t first = (offset + blksize - 1) / blksize, end = (offset + count) / blksize;
	uint32_t head = (uint32_t)(first * blksize - offset);
	uint32_t tail = (uint32_t)(offset + count - end * blksize);
	const char *mid = buf + head;
	int rc = 0;

	if (end <= first) /* no whole block */
		return rmw_write(ctx, buf, count, offset, io_flags);
	if (head)
		rc = rmw_write(ctx, buf, head, offset, io_flags);
	if (rc == 0 && (uintptr_t)mid % mem_align == 0)
		rc = run(ctx, REQ_WRITE, (void *)mid, first, end - first, io_flags);
	else if (rc == 0)
		rc = bounce_rw(ctx, true, NULL, mid, count - head - tail, first * blksize, io_flags);
	if (rc == 0 && tail)
		rc = rmw_write(ctx, mid + (count - head - tail), tail, end * blksize, io_flags);
	return rc;
}

/* Whether zeroing this block device is done by the device (sysfs write_zeroes_max_bytes > 0). */
static bool
blockdev_zeroes_fast(dev_t rdev)
{
	char path[128];
	unsigned long long max = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/queue/write_zeroes_max_bytes", major(rdev), minor(rdev));
	f = fopen(path, "re");
	if (!f)
		return false;
	if (fscanf(f, "%llu", &max) != 1)
		max = 0;
	fclose(f);
	return max > 0;
}

static int
open_disk(void)
{
	/*
	 * No queue limit: a worker thread waits for its one request anyway, so
	 * an io_submit that sleeps for a free device request costs it nothing
	 * that a pread would not, while the limit's bookkeeping (channels held
	 * back, then woken through their eventfds) cost every request on a
	 * device with a small queue (a loop device: 16 requests here).
	 */
	struct aioblk_disk_opts opts = { .block_size = block_size_param, .flags = AIOBLK_DISK_NO_QUEUE_LIMIT };
	struct stat st;
	int rc;

	if (buffered)
		opts.flags |= AIOBLK_DISK_BUFFERED;
	if (direct_required)
		opts.flags |= AIOBLK_DISK_REQUIRE_DIRECT;
	if (nowait)
		opts.flags |= AIOBLK_DISK_NOWAIT;
	if (readonly_param)
		opts.flags |= AIOBLK_DISK_READONLY;
	atomic_store(&opening, true);
	rc = aioblk_disk_open(filename, &opts, &disk);
	if ((rc == -EROFS || rc == -EACCES || rc == -EPERM) && !readonly_param) {
		/* A read-only file or file system is served read-only. */
		nbdkit_debug("aioblk: %s cannot be opened for writing (%s): serving it read-only", filename,
			     strerror(-rc));
		opts.flags |= AIOBLK_DISK_READONLY;
		rc = aioblk_disk_open(filename, &opts, &disk);
	}
	atomic_store(&opening, false);
	if (rc < 0) {
		const char *hint = "";

		if (rc == -EINVAL && direct_required)
			hint = " (O_DIRECT refused with direct=required, or a block-size= that does not fit)";
		else if (rc == -EINVAL)
			hint = " (a size that is not a multiple of the block size, or a block-size= below the device's)";
		nbdkit_error("%s: %s%s", filename, strerror(-rc), hint);
		disk = NULL;
		return -1;
	}
	blksize = aioblk_disk_block_size(disk);
	mem_align = aioblk_disk_buf_align(disk);
	if (mem_align < 1)
		mem_align = 1;
	disk_readonly = aioblk_disk_is_readonly(disk);
	fast_zero = false;
	if (stat(filename, &st) == 0)
		fast_zero = S_ISREG(st.st_mode) || (S_ISBLK(st.st_mode) && blockdev_zeroes_fast(st.st_rdev));
	opened_pid = getpid();
	return 0;
}

static void
close_disk(void)
{
	int rc;

	if (!disk)
		return;
	rc = aioblk_disk_close(disk);
	if (rc < 0) {
		nbdkit_debug("aioblk: disk not closed (%u worker threads still hold channels): %s",
			     atomic_load(&live_ctxs), strerror(-rc));
		return;
	}
	disk = NULL;
}

/* Make the thread key and the lock table; route the library's diagnostics to nbdkit. */
static void
aionbd_load(void)
{
	int rc;

	aioblk_set_log_fn(log_to_nbdkit, NULL);
	for (unsigned i = 0; i < RMW_STRIPES; i++)
		pthread_mutex_init(&rmw_locks[i], NULL);
	rc = pthread_key_create(&ctx_key, ctx_destroy);
	if (rc == 0)
		ctx_key_made = true;
	else
		nbdkit_error("pthread_key_create: %s", strerror(rc));
}

/* Free the parameters; the key and the locks go with the plugin. */
static void
aionbd_unload(void)
{
	if (ctx_key_made)
		pthread_key_delete(ctx_key);
	for (unsigned i = 0; i < RMW_STRIPES; i++)
		pthread_mutex_destroy(&rmw_locks[i]);
	aioblk_set_log_fn(NULL, NULL);
	free(filename);
}

/* Parse one key=value parameter. */
static int
aionbd_config(const char *key, const char *value)
{
	int r;

	if (strcmp(key, "file") == 0) {
		free(filename);
		filename = nbdkit_absolute_path(value);
		return filename ? 0 : -1;
	}
	if (strcmp(key, "block-size") == 0) {
		int64_t n = nbdkit_parse_size(value);

		if (n < 0)
			return -1;
		if (n < 512 || n > 65536 || (n & (n - 1))) {
			nbdkit_error("block-size=%s: must be a power of two from 512 to 65536", value);
			return -1;
		}
		block_size_param = (uint32_t)n;
		return 0;
	}
	if (strcmp(key, "buffered") == 0 || strcmp(key, "nowait") == 0 || strcmp(key, "readonly") == 0) {
		r = nbdkit_parse_bool(value);
		if (r < 0)
			return -1;
		if (key[0] == 'b')
			buffered = r;
		else if (key[0] == 'n')
			nowait = r;
		else
			readonly_param = r;
		return 0;
	}
	if (strcmp(key, "direct") == 0) {
		if (strcmp(value, "required") == 0) {
			direct_required = true;
		} else if (strcmp(value, "auto") == 0) {
			direct_required = false;
		} else {
			nbdkit_error("direct=%s: expected 'auto' or 'required'", value);
			return -1;
		}
		return 0;
	}
	if (strcmp(key, "queue-depth") == 0) {
		if (nbdkit_parse_unsigned("queue-depth", value, &queue_depth) < 0)
			return -1;
		if (queue_depth < 1 || queue_depth > 65536) {
			nbdkit_error("queue-depth=%s: must be from 1 to 65536", value);
			return -1;
		}
		return 0;
	}
	if (strcmp(key, "wait") == 0) {
		if (strcmp(value, "auto") == 0) {
			wait_mode = WAIT_AUTO;
		} else if (strcmp(value, "eventfd") == 0) {
			wait_mode = WAIT_EVENTFD;
		} else if (strcmp(value, "poll") == 0) {
			wait_mode = WAIT_POLL;
		} else {
			nbdkit_error("wait=%s: expected 'auto', 'eventfd' or 'poll'", value);
			return -1;
		}
		return 0;
	}
	nbdkit_error("unknown parameter '%s'", key);
	return -1;
}

/* Check that the parameters make sense together. */
static int
aionbd_config_complete(void)
{
	if (!filename) {
		nbdkit_error("you must supply the file=<FILENAME> parameter");
		return -1;
	}
	if (buffered && direct_required) {
		nbdkit_error("buffered=true and direct=required contradict each other");
		return -1;
	}
	if (!ctx_key_made)
		return -1;
	return 0;
}

#define aionbd_config_help                                                          \
	"file=<FILENAME>     (required) The file or block device to serve.\n"       \
	"block-size=<SIZE>   Block size (default: detected).\n"                     \
	"buffered=true       Use the page cache instead of O_DIRECT.\n"             \
	"direct=required     Fail instead of falling back to buffered I/O.\n"       \
	"nowait=true         Try RWF_NOWAIT on reads of block devices.\n"           \
	"readonly=true       Open the file read-only.\n"                            \
	"queue-depth=<N>     Request slots of each thread's channel (default 4).\n" \
	"wait=auto|eventfd|poll  Poll after fast requests (default); sleep; busy-poll."

/* Print the library's version for nbdkit --dump-plugin. */
static void
aionbd_dump_plugin(void)
{
	printf("aioblk_version=%s\n", aioblk_version());
}

/* Open the disk once, before nbdkit forks, so that errors reach the user. */
static int
aionbd_get_ready(void)
{
	if (open_disk() < 0)
		return -1;
	nbdkit_debug("aioblk: %s: %" PRIu64 " blocks of %" PRIu32 " bytes, %s%s, memory alignment %zu", filename,
		     aioblk_disk_num_blocks(disk), blksize, aioblk_disk_is_direct(disk) ? "O_DIRECT" : "buffered",
		     disk_readonly ? ", read-only" : "", mem_align);
	return 0;
}

/*
 * In a child nbdkit forked into: open the disk again, since the library
 * may keep a worker thread for write-zeroes and unmap, and threads do not
 * survive fork. Opening writes nothing.
 */
static int
aionbd_after_fork(void)
{
	if (getpid() == opened_pid)
		return 0;
	close_disk();
	disk = NULL;
	return open_disk();
}

/* Close the disk after the last connection (threads have given back their channels). */
static void
aionbd_cleanup(void)
{
	close_disk();
}

/* A new connection; it shares the disk with the others. */
static void *
aionbd_open(int readonly)
{
	struct handle *h = malloc(sizeof(*h));

	if (!h) {
		nbdkit_error("malloc: %m");
		return NULL;
	}
	h->readonly = readonly || disk_readonly;
	return h;
}

/* The connection is gone; its worker threads free their own channels. */
static void
aionbd_close(void *handle)
{
	free(handle);
}

/* The size in bytes. */
static int64_t
aionbd_get_size(void *handle)
{
	return (int64_t)(aioblk_disk_num_blocks(disk) * blksize);
}

/* Minimum: the disk's block size (smaller requests still work); preferred 4 KiB or the block. */
static int
aionbd_block_size(void *handle, uint32_t *minimum, uint32_t *preferred, uint32_t *maximum)
{
	*minimum = blksize;
	*preferred = blksize > 4096 ? blksize : 4096;
	*maximum = 0xffffffff;
	return 0;
}

/* Writable unless nbdkit -r, readonly=true or the file could only be opened read-only. */
static int
aionbd_can_write(void *handle)
{
	struct handle *h = handle;

	return !h->readonly;
}

/* Flush is an asynchronous fdatasync. */
static int
aionbd_can_flush(void *handle)
{
	return 1;
}

/* FUA is RWF_DSYNC on the write itself where libaio has aio_rw_flags. */
static int
aionbd_can_fua(void *handle)
{
	return aioblk_disk_supports(disk, AIOBLK_IO_FUA_WRITE) ? NBDKIT_FUA_NATIVE : NBDKIT_FUA_EMULATE;
}

/* One file descriptor for every connection: a flush covers the writes of all of them. */
static int
aionbd_can_multi_conn(void *handle)
{
	return 1;
}

/* Trim where the file system can punch holes or the device discard. */
static int
aionbd_can_trim(void *handle)
{
	return aioblk_disk_supports(disk, AIOBLK_IO_UNMAP);
}

/* Zeroing: fallocate, BLKZEROOUT, or writing zeroes as the last fallback. */
static int
aionbd_can_zero(void *handle)
{
	return aioblk_disk_supports(disk, AIOBLK_IO_WRITE_ZEROES);
}

/* Fast zero requests are answered at once: done when the disk zeroes natively, else ENOTSUP. */
static int
aionbd_can_fast_zero(void *handle)
{
	return aioblk_disk_supports(disk, AIOBLK_IO_WRITE_ZEROES);
}

/* Read into the client's buffer, directly when it is aligned. */
static int
aionbd_pread(void *handle, void *buf, uint32_t count, uint64_t offset, uint32_t flags)
{
	struct thread_ctx *ctx = get_ctx();
	int rc;

	if (!ctx)
		return -1;
	if (is_aligned(buf, count, offset))
		rc = run(ctx, REQ_READ, buf, offset / blksize, count / blksize, 0);
	else
		rc = bounce_rw(ctx, false, buf, NULL, count, offset, 0);
	return rc < 0 ? fail("read", rc, count, offset) : 0;
}

/* Write, with FUA on the write itself; partial blocks by read-modify-write. */
static int
aionbd_pwrite(void *handle, const void *buf, uint32_t count, uint64_t offset, uint32_t flags)
{
	struct thread_ctx *ctx = get_ctx();
	uint32_t io_flags = 0;
	int rc;

	if (!ctx)
		return -1;
	if (flags & NBDKIT_FLAG_FUA) {
		if (aioblk_disk_supports(disk, AIOBLK_IO_FUA_WRITE))
			io_flags = AIOBLK_WRITE_FUA;
	}
	if (is_aligned(buf, count, offset))
		rc = run(ctx, REQ_WRITE, (void *)buf, offset / blksize, count / blksize, io_flags);
	else
		rc = write_unaligned(ctx, buf, count, offset, io_flags);
	if (rc == 0 && (flags & NBDKIT_FLAG_FUA) && !io_flags)
		rc = run(ctx, REQ_FLUSH, NULL, 0, 0, 0);
	return rc < 0 ? fail("write", rc, count, offset) : 0;
}

/* Make every completed write durable. */
static int
aionbd_flush(void *handle, uint32_t flags)
{
	struct thread_ctx *ctx = get_ctx();
	int rc;

	if (!ctx)
		return -1;
	rc = run(ctx, REQ_FLUSH, NULL, 0, 0, 0);
	return rc < 0 ? fail("flush", rc, 0, 0) : 0;
}

/*
 * Discard the whole blocks of the range; partial blocks are left as they
 * are, since a trim is only advice. An unmap the kernel refuses
 * (-EOPNOTSUPP: a file system that cannot punch holes, found out on the
 * first try) is reported as success for the same reason.
 */
static int
aionbd_trim(void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
	struct thread_ctx *ctx = get_ctx();
	uint64_t first = (offset + blksize - 1) / blksize, end = (offset + count) / blksize;
	int rc = 0;

	if (!ctx)
		return -1;
	if (end > first && aioblk_disk_supports(disk, AIOBLK_IO_UNMAP))
		rc = run(ctx, REQ_UNMAP, NULL, first, end - first, 0);
	if (rc == -EOPNOTSUPP) {
		if (!atomic_exchange(&trim_refused_logged, true))
			nbdkit_debug("aioblk: %s cannot unmap; trims are ignored from now on", filename);
		rc = 0;
	}
	if (rc == 0 && (flags & NBDKIT_FLAG_FUA))
		rc = run(ctx, REQ_FLUSH, NULL, 0, 0, 0);
	return rc < 0 ? fail("trim", rc, count, offset) : 0;
}

/*
 * Write zeroes: whole blocks with aioblk_write_zeroes, partial ones by
 * read-modify-write. A fast zero is refused with ENOTSUP up front when it
 * would be done by writing (partial blocks, or a device that cannot zero).
 */
static int
aionbd_zero(void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
	struct thread_ctx *ctx = get_ctx();
	uint64_t first = (offset + blksize - 1) / blksize, end = (offset + count) / blksize;
	int rc = 0;

	if (!ctx)
		return -1;
	if ((flags & NBDKIT_FLAG_FAST_ZERO) && (!fast_zero || offset % blksize || count % blksize)) {
		nbdkit_set_error(ENOTSUP);
		return -1;
	}
	if (end <= first) {
		/* Inside one block, or across one block boundary without a whole block. */
		rc = rmw_write(ctx, NULL, count, offset, 0);
	} else {
		uint64_t head = first * blksize - offset, tail = offset + count - end * blksize;

		if (head)
			rc = rmw_write(ctx, NULL, (uint32_t)head, offset, 0);
		if (rc == 0)
			rc = run(ctx, REQ_ZEROES, NULL, first, end - first, 0);
		if (rc == 0 && tail)
			rc = rmw_write(ctx, NULL, (uint32_t)tail, end * blksize, 0);
	}
	if (rc == 0 && (flags & NBDKIT_FLAG_FUA))
		rc = run(ctx, REQ_FLUSH, NULL, 0, 0, 0);
	if (rc == -EOPNOTSUPP && !(flags & NBDKIT_FLAG_FAST_ZERO)) {
		/* nbdkit falls back to writing zeroes with pwrite. */
		nbdkit_set_error(ENOTSUP);
		return -1;
	}
	return rc < 0 ? fail("zero", rc, count, offset) : 0;
}

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

static struct nbdkit_plugin plugin = {
	.name = "aioblk",
	.longname = "nbdkit aioblk plugin",
	.version = PACKAGE_VERSION,
	.description = "Serve a file or block device through aioblk (Linux AIO, O_DIRECT)",
	.load = aionbd_load,
	.unload = aionbd_unload,
	.config = aionbd_config,
	.config_complete = aionbd_config_complete,
	.config_help = aionbd_config_help,
	.magic_config_key = "file",
	.dump_plugin = aionbd_dump_plugin,
	.get_ready = aionbd_get_ready,
	.after_fork = aionbd_after_fork,
	.cleanup = aionbd_cleanup,
	.open = aionbd_open,
	.close = aionbd_close,
	.get_size = aionbd_get_size,
	.block_size = aionbd_block_size,
	.can_write = aionbd_can_write,
	.can_flush = aionbd_can_flush,
	.can_fua = aionbd_can_fua,
	.can_multi_conn = aionbd_can_multi_conn,
	.can_trim = aionbd_can_trim,
	.can_zero = aionbd_can_zero,
	.can_fast_zero = aionbd_can_fast_zero,
	.pread = aionbd_pread,
	.pwrite = aionbd_pwrite,
	.flush = aionbd_flush,
	.trim = aionbd_trim,
	.zero = aionbd_zero,
	.errno_is_preserved = 0,
};

NBDKIT_REGISTER_PLUGIN(plugin)
