/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Private structures shared by the files of the library, and the functions
 * each file offers the others.
 *
 * The files form layers, and a file calls only files below it, never one
 * above: a request flows down from the public calls to the kernel, and its
 * completion comes back up only through the poll loop, which drives the
 * channels from the top. From the top:
 *
 *   io.c        the public I/O calls: validate, fill the request, hand it to
 *               its channel (or to the offload pool)
 *   group.c     poll groups: the channel list, making and destroying
 *               channels, the poll loop, the eventfd's accounting, wait
 *   request.c   preparing iocbs and decoding what the kernel answers
 *   submit.c    the batch of a kernel context: iocbs waiting for io_submit,
 *               admitted to their devices' queues, handed over together
 *   channel.c   one disk in one group: request slots, the list of requests
 *               completed without the kernel, bounce buffers, counters
 *   limit.c     the device queue's limit: room reserved and given back
 *   reset.c     reset epochs: pending resets and who to wake for them
 *   disk.c      disks: open, geometry, what they can do, rescan, close
 *   json.c      a disk's configuration as SPDK's JSON
 *   offload.c   library threads for what the kernel cannot do through AIO
 *   wake.c      a group's wake-up: its eventfd and its inbox, usable from
 *               any layer and any thread without knowing the group
 *   ring.c      a kernel io_context: made, its completion ring reaped in
 *               user space, destroyed
 *   sys.c       every system call (the seam unit tests replace)
 *   log.c       diagnostics
 *   version.c   the version string
 *
 * tests/check-layers.sh reads the list below (one file a line, top first;
 * files on one line are peers that may call each other) and fails the
 * build's tests when an object file calls a function defined in a file of
 * a higher layer.
 *
 * layers: io.c
 * layers: group.c
 * layers: request.c
 * layers: submit.c
 * layers: channel.c
 * layers: limit.c
 * layers: reset.c
 * layers: disk.c json.c
 * layers: offload.c
 * layers: wake.c
 * layers: ring.c
 * layers: sys.c log.c version.c
 */
#ifndef AIOBLK_INTERNAL_H
#define AIOBLK_INTERNAL_H

#include <libaio.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "aioblk/aioblk.h"
#include "sys.h"

#define AIOBLK_EXPORT __attribute__((visibility("default")))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define AIOBLK_DEFAULT_QUEUE_DEPTH 128u
#define AIOBLK_MAX_QUEUE_DEPTH 65536u
/* A SHARED_CONTEXT group's context depth when none is given. */
#define AIOBLK_DEFAULT_GROUP_DEPTH 256u
/* A channel hands its queue to the kernel as soon as this many requests wait. */
#define AIOBLK_BATCH_MAX 64u
/* iovec arrays up to this size are copied into the request slot. */
#define AIOBLK_INLINE_IOVS 4
#define AIOBLK_DEFAULT_BOUNCE_SIZE (128u * 1024u)
#define AIOBLK_MAX_BOUNCE_SIZE (1024u * 1024u * 1024u)

/* The kernel's completion ring, mapped into our address space (fs/aio.c). */
struct aio_ring {
	uint32_t id;
	uint32_t nr;
	uint32_t head;
	uint32_t tail;
	uint32_t magic;
	uint32_t compat_features;
	uint32_t incompat_features;
	uint32_t header_length;
	struct io_event events[];
};
#define AIO_RING_MAGIC 0xa10a10a1u

enum flush_mode {
	FLUSH_ASYNC, /* IOCB_CMD_FDSYNC, until the kernel refuses it for this disk */
	FLUSH_SYNC,  /* it refused: fdatasync(2) on a worker thread (offload.c) */
};

/* What a write-zeroes / unmap request turns into on this disk. */
enum zero_mode {
	ZERO_NONE,
	ZERO_FALLOC,      /* fallocate(FALLOC_FL_ZERO_RANGE) */
	ZERO_PUNCH_ALLOC, /* punch a hole, then allocate it again */
	ZERO_BLKZEROOUT,  /* ioctl BLKZEROOUT */
	ZERO_WRITE,       /* pwrite of zeroes */
};
enum unmap_mode {
	UNMAP_NONE,
	UNMAP_PUNCH,      /* fallocate(PUNCH_HOLE | KEEP_SIZE) */
	UNMAP_BLKDISCARD, /* ioctl BLKDISCARD */
};

struct aioblk_disk {
	char *path;
	char *name; /* points at path when no name was given */
	int fd;
	uint32_t block_size;
	uint32_t block_shift;
	size_t buf_align;   /* memory address alignment for O_DIRECT */
	uint32_t len_align; /* length alignment of each iovec for O_DIRECT: the logical block size */
	bool direct;
	bool readonly;
	bool blockdev;
	bool block_size_given;
	uint32_t rdev_major, rdev_minor; /* block devices: for sysfs */
	_Atomic bool nowait;             /* RWF_NOWAIT on reads, until the kernel refuses it */
	_Atomic bool lost;               /* the device is gone: new I/O gets -ENODEV */
	_Atomic uint64_t num_blocks;
	_Atomic int flush_mode; /* enum flush_mode */
	_Atomic int zero_mode;  /* enum zero_mode */
	_Atomic int unmap_mode; /* enum unmap_mode */

	/*
	 * Reset epochs: every request is tagged with the epoch current when it
	 * was accepted; a reset bumps the epoch and waits until no channel of
	 * the disk has an outstanding request tagged with an older epoch.
	 */
	_Atomic uint64_t epoch;
	_Atomic unsigned resets_waiting; /* resets issued on any channel, not yet finished */

	/*
	 * The device's queue (aioblk_disk_queue_limit): at most queue_limit
	 * requests in it (0: no limit), counted across every channel when it
	 * has one hardware queue (in_device), else per channel. A request of
	 * more than max_request bytes counts as the pieces the kernel makes.
	 * Eventfd channels that found no room and have nothing in the kernel
	 * (limit_blocked) are woken by the completions of other channels.
	 */
	bool has_queue;    /* a request queue the limit applies to (set at open, as is the next) */
	bool queue_shared; /* one hardware queue: in_device counts for every channel */
	_Atomic unsigned queue_limit;
	_Atomic uint32_t max_request;
	_Atomic unsigned in_device;
	_Atomic unsigned limit_waiters;

	pthread_mutex_t lock; /* protects the channel list */
	struct aioblk_channel *channels;
	unsigned nchannels;
};

enum req_op {
	OP_READ,
	OP_WRITE,
	OP_FLUSH,
	OP_ZERO,  /* write-zeroes, done on a worker thread (offload.c) */
	OP_UNMAP, /* unmap, done on a worker thread */
};

struct aioblk_req {
	struct iocb iocb; /* the kernel gives &iocb back in io_event.obj */
	struct aioblk_channel *ch;
	aioblk_cb cb;
	void *cb_arg;
	struct aioblk_req *next; /* free list, done list, offload queue or a group's inbox */
	/* The outstanding list that resets wait on; a request stays on it while on the done list. */
	struct aioblk_req *out_next, *out_prev;
	const struct iovec *iov; /* the caller's iovecs (or inline_iov) */
	uint64_t offset;         /* bytes */
	uint64_t len;            /* bytes */
	uint64_t done;           /* bytes transferred so far (short transfers continue) */
	uint64_t epoch;          /* reset epoch at acceptance */
	void *bounce;            /* bounce buffer in use, or NULL */
	int iovcnt;
	int status;          /* result of a request completed without the kernel (or on a worker) */
	uint8_t op;          /* enum req_op */
	bool nowait_retried; /* a RWF_NOWAIT -EAGAIN was retried without the flag */
	uint16_t tags;       /* device requests it holds while in the kernel (queue limit) */
	bool fua;
	struct iovec inline_iov[AIOBLK_INLINE_IOVS];
};

/*
 * A pending reset. Resets take no request slot, so that a full queue never
 * refuses one; their records are kept on the channel for reuse.
 */
struct aioblk_reset {
	aioblk_cb cb;
	void *cb_arg;
	uint64_t epoch; /* the epoch it waits out */
	struct aioblk_reset *next;
};

/*
 * What the layers below a group need of it: whether it is polling now, and
 * how to wake it from any thread (its eventfd, and an inbox for requests
 * that library threads finished). Embedded in the group; channels point at it.
 */
struct aioblk_wake {
	int efd;      /* eventfd, or -1 */
	bool polling; /* a poll is running callbacks: submit and kick at its end */
	/* Polls that ran, counting this one: channels count theirs from it (stats). */
	uint64_t polls;
	/* Signals written to the eventfd, counted before they are written (see group.c). */
	_Atomic uint64_t kicks;
	pthread_mutex_t inbox_lock;
	struct aioblk_req *inbox_head;
	struct aioblk_req *inbox_tail;
	_Atomic bool inbox_ready; /* the inbox is not empty: read without the lock by polls */
};

/*
 * A kernel io_context, its completion ring, and the batch of iocbs waiting
 * for io_submit. A channel of a plain group owns one; a SHARED_CONTEXT group
 * has one that all its channels submit into and are reaped from, so its
 * batch holds iocbs of several channels (each request knows its own).
 */
struct aioblk_kctx {
	io_context_t ctx;
	struct aio_ring *ring;        /* ctx as the ring, or NULL when it cannot be read (fallback) */
	const char *name;             /* for diagnostics: the disk's name, or "shared context" */
	bool shared;                  /* a SHARED_CONTEXT group's */
	struct aioblk_channel *owner; /* plain: the channel it belongs to */
	unsigned depth;               /* requests it may hold at once */
	unsigned used;                /* shared: request slots taken on its channels */
	unsigned in_kernel;           /* handed to io_submit, not reaped yet */

	/* Queued iocbs, in order: batch[batch_head .. batch_tail) wait for io_submit. */
	struct iocb **batch;
	unsigned batch_head;
	unsigned batch_tail;
	bool submit_again; /* io_submit said EAGAIN: retry at the next poll */
	/* What is left in the batch waits for room in device queues, and a release will wake the group. */
	bool parked;

	/* Shared only. */
	struct iocb **deferred; /* scratch: iocbs held back from this submit, in order */
	uint64_t rounds;        /* admissions made, so that each channel is counted once in each */
	/* A channel's done list or resets may hold something: the poll looks at each channel. */
	bool lists;

	/* The event a wait took with io_getevents (ring_wait): the next reap returns it first. */
	bool stashed;
	struct io_event stash;
};

struct aioblk_channel {
	struct aioblk_group *group; /* for group.c: the lower layers use wake */
	struct aioblk_wake *wake;
	struct aioblk_kctx *kc; /* own_kctx, or the group's shared one */
	bool shared;            /* kc is the group's: its slots count against the group's depth too */
	struct aioblk_disk *disk;
	unsigned queue_depth;
	unsigned inflight;          /* accepted (requests and resets), callback not run yet */
	unsigned tags_held;         /* device requests those hold (queue limit, per-channel case) */
	bool limit_holding;         /* the queue limit holds iocbs of it back: counted once in retries */
	_Atomic bool limit_blocked; /* no room in the device's queue: waiting for another channel's completion */
	/* Pending resets, oldest first: they complete in the order they were issued. */
	struct aioblk_reset *resets_head;
	struct aioblk_reset *resets_tail;
	struct aioblk_reset *resets_free; /* records for reuse */
	/*
	 * For wake-ups from other threads: the epoch of the oldest pending
	 * reset (UINT64_MAX: none), and the last one a wake-up was sent for,
	 * so that each reset costs its group at most one eventfd write.
	 */
	_Atomic uint64_t reset_epoch;
	_Atomic uint64_t reset_woken;

	struct aioblk_req *slots;
	struct aioblk_req *free;

	/* Requests completed without the kernel, run at the next poll (FIFO). */
	struct aioblk_req *done_head;
	struct aioblk_req *done_tail;

	/* Outstanding requests in acceptance order, for reset epochs. */
	struct aioblk_req *out_head;
	struct aioblk_req *out_tail;
	/* Epoch of out_head (UINT64_MAX when empty); read by resets on other threads. */
	_Atomic uint64_t oldest_epoch;

	/* Bounce buffers: a stack of free buffers of bounce_size bytes. */
	void *bounce_mem;
	void **bounce_free;
	unsigned bounce_nfree;
	size_t bounce_size;

	struct aioblk_channel_stats stats; /* polls and busy_polls are counted from the next two */
	uint64_t polls_base;               /* the group's poll count when the channel was made */
	uint64_t busy_poll;                /* the last poll that found work here */
	uint64_t admitted_round;           /* shared: the kctx round that last counted it (io_submit_calls) */
	uint64_t deferred_round;           /* shared: the kctx round that held it back (queue limit) */

	struct aioblk_channel *group_next, *group_prev;
	struct aioblk_channel *disk_next, *disk_prev;
	struct aioblk_kctx own_kctx; /* unused in a shared group */
};

struct aioblk_group {
	struct aioblk_wake wake;
	struct aioblk_kctx kctx; /* SHARED_CONTEXT: the one context of every channel */
	struct aioblk_channel *channels;
	/* Where the next poll starts (NULL: the first channel): after where a poll ran out of budget. */
	struct aioblk_channel *poll_next;
	unsigned nchannels;
	/*
	 * Eventfd accounting: every reaped kernel event and every kick added 1
	 * to the counter, every read took its value away. While the reads lag
	 * behind, a signal is still to come and the next poll must clear it;
	 * when they are level, an empty ring means the counter is zero.
	 */
	uint64_t efd_reaped;
	uint64_t efd_consumed;
	bool wait_in_kernel; /* AIOBLK_GROUP_WAIT_IN_KERNEL */
};

/* This poll found work on @ch: count it once among the channel's busy polls. */
static inline void
chan_mark_busy(struct aioblk_channel *ch)
{
	if (ch->busy_poll != ch->wake->polls) {
		ch->busy_poll = ch->wake->polls;
		ch->stats.busy_polls++;
	}
}

/* Append @req to a FIFO of requests linked through ->next (the done list, the offload queue, an inbox). */
static inline void
req_fifo_push(struct aioblk_req **head, struct aioblk_req **tail, struct aioblk_req *req)
{
	req->next = NULL;
	if (*tail)
		(*tail)->next = req;
	else
		*head = req;
	*tail = req;
}

/*
 * The most bytes one iocb may carry on a device whose queue is limited:
 * what an idle queue takes whole (0: no cap). A larger transfer would make
 * io_submit sleep for device requests that cannot all be free at once, so
 * it goes in pieces of this size, continued like a short transfer.
 */
static inline uint64_t
disk_iocb_cap(const struct aioblk_disk *disk)
{
	unsigned limit = atomic_load_explicit(&disk->queue_limit, memory_order_relaxed);
	uint64_t cap, align;
	uint32_t max;

	if (likely(!limit))
		return 0;
	max = atomic_load_explicit(&disk->max_request, memory_order_relaxed);
	if (!max)
		return 0;
	align = disk->buf_align > disk->len_align ? disk->buf_align : disk->len_align;
	cap = (uint64_t)limit * max;
	cap -= cap % align;
	return cap ? cap : align;
}

/*
 * Functions shared between the files. They are hidden in the shared
 * library (-fvisibility=hidden) and made local in the static one
 * (src/meson.build), so they need no name space of their own.
 */

/* io.c: nothing; the public I/O calls only. */

/* group.c: nothing; the public group and channel calls only. */

/* request.c */
void req_prep(struct aioblk_channel *ch, struct aioblk_req *req);
unsigned req_complete_event(struct aioblk_channel *ch, struct aioblk_req *req, int64_t res);
void req_complete_offloaded(struct aioblk_channel *ch, struct aioblk_req *req);

/* submit.c */
void submit_enqueue(struct aioblk_channel *ch, struct aioblk_req *req);
int submit_batch(struct aioblk_kctx *kc);
bool submit_needs_kick(const struct aioblk_kctx *kc);

/* channel.c */
int chan_new(struct aioblk_wake *wake, struct aioblk_kctx *shared, struct aioblk_disk *disk,
	     const struct aioblk_channel_opts *opts, struct aioblk_channel **chp);
void chan_free(struct aioblk_channel *ch);
struct aioblk_req *chan_get_req(struct aioblk_channel *ch, enum req_op op, aioblk_cb cb, void *cb_arg);
void chan_put_req(struct aioblk_channel *ch, struct aioblk_req *req);
void chan_accept(struct aioblk_channel *ch, struct aioblk_req *req);
void chan_complete_later(struct aioblk_channel *ch, struct aioblk_req *req, int status);
unsigned chan_run_done(struct aioblk_channel *ch, unsigned max);
bool chan_needs_kick(const struct aioblk_channel *ch);
void chan_finish(struct aioblk_channel *ch, struct aioblk_req *req, int status);

/* limit.c */
unsigned limit_admit(struct aioblk_channel *ch, struct iocb *const *iocbs, unsigned n, unsigned limit, bool idle);
void limit_release(struct aioblk_channel *ch, unsigned tags);

/* reset.c */
int reset_add(struct aioblk_channel *ch, aioblk_cb cb, void *cb_arg);
unsigned reset_run_done(struct aioblk_channel *ch, unsigned max);
bool reset_ready(const struct aioblk_channel *ch);
void reset_publish_oldest(struct aioblk_channel *ch);
void reset_free_records(struct aioblk_channel *ch);

/* disk.c */
void disk_add_channel(struct aioblk_disk *disk, struct aioblk_channel *ch);
void disk_remove_channel(struct aioblk_disk *disk, struct aioblk_channel *ch);
void disk_check_lost(struct aioblk_disk *disk);
void disk_wake_limit_waiters(struct aioblk_disk *disk, const struct aioblk_wake *except);

/* offload.c */
void offload_ref(void);
void offload_unref(void);
void offload_queue(struct aioblk_req *req);

/* wake.c */
int wake_init(struct aioblk_wake *wake, bool eventfd);
void wake_destroy(struct aioblk_wake *wake);
int wake_signal(struct aioblk_wake *wake);
void wake_kick(struct aioblk_wake *wake);
void wake_log_error(int rc);
void wake_post(struct aioblk_wake *wake, struct aioblk_req *req);
struct aioblk_req *wake_take(struct aioblk_wake *wake);

/*
 * io_event.res is the kernel's signed 64-bit result, but libaio declares it
 * an unsigned long: 32 bits wide on 32-bit builds, where it must be sign
 * extended from there (the kernel's results fit: MAX_RW_COUNT < 2^31).
 */
static inline int64_t
event_res_from(uint64_t raw, unsigned width)
{
	return width >= sizeof(int64_t) ? (int64_t)raw : (int64_t)(int32_t)(uint32_t)raw;
}

static inline int64_t
event_res(const struct io_event *ev)
{
	return event_res_from((uint64_t)ev->res, sizeof(ev->res));
}

/* ring.c */
int ring_open(struct aioblk_kctx *kc, unsigned depth, const char *name);
void ring_close(struct aioblk_kctx *kc);
unsigned ring_reap(struct aioblk_kctx *kc, struct io_event *events, unsigned max);
bool ring_has_events(const struct aioblk_kctx *kc);
bool ring_events_seen(const struct aioblk_kctx *kc);
int ring_wait(struct aioblk_kctx *kc, const struct timespec *timeout);

/* log.c */
void aioblk_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif /* AIOBLK_INTERNAL_H */
