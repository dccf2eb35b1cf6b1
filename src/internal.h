/* SPDX-License-Identifier: BSD-3-Clause */
/* Private structures shared by the files of the library. */
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

struct aioblk_channel {
	struct aioblk_group *group;
	struct aioblk_disk *disk;
	io_context_t ctx;
	struct aio_ring *ring; /* ctx as the ring, or NULL when it cannot be read (fallback) */
	unsigned queue_depth;
	unsigned inflight;  /* accepted (requests and resets), callback not run yet */
	unsigned in_kernel; /* handed to io_submit, not reaped yet */
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

	/* Queued iocbs, in order: batch[batch_head .. batch_tail) wait for io_submit. */
	struct iocb **batch;
	unsigned batch_head;
	unsigned batch_tail;
	bool submit_again; /* io_submit said EAGAIN: retry at the next poll */

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

	struct aioblk_channel_stats stats;
	bool found_work; /* this poll ran a callback or reaped an event here (for busy_polls) */

	struct aioblk_channel *group_next, *group_prev;
	struct aioblk_channel *disk_next, *disk_prev;
};

struct aioblk_group {
	struct aioblk_channel *channels;
	/* Where the next poll starts (NULL: the first channel): after where a poll ran out of budget. */
	struct aioblk_channel *poll_next;
	unsigned nchannels;
	int efd;      /* eventfd, or -1 */
	bool in_poll; /* a poll is running callbacks: refuse re-entry */
	/*
	 * Eventfd accounting: every reaped kernel event and every kick added 1
	 * to the counter, every read took its value away. While the reads lag
	 * behind, a signal is still to come and the next poll must clear it;
	 * when they are level, an empty ring means the counter is zero.
	 */
	uint64_t efd_reaped;
	uint64_t efd_consumed;
	_Atomic uint64_t efd_kicks;

	/* Requests finished on worker threads (offload.c), for the next poll to run. */
	pthread_mutex_t inbox_lock;
	struct aioblk_req *inbox_head;
	struct aioblk_req *inbox_tail;
	_Atomic bool inbox_ready; /* the inbox is not empty: read without the lock by polls */
};

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
 * Functions shared between the files of the library are global symbols in
 * libaioblk.a: keep them inside our name space there.
 */
#define disk_add_channel aioblk_internal_disk_add_channel
#define disk_remove_channel aioblk_internal_disk_remove_channel
#define disk_reset_done aioblk_internal_disk_reset_done
#define disk_check_lost aioblk_internal_disk_check_lost
#define channel_get_req aioblk_internal_channel_get_req
#define channel_put_req aioblk_internal_channel_put_req
#define channel_accept aioblk_internal_channel_accept
#define channel_enqueue aioblk_internal_channel_enqueue
#define channel_complete_later aioblk_internal_channel_complete_later
#define channel_submit aioblk_internal_channel_submit
#define channel_run_done aioblk_internal_channel_run_done
#define channel_check_resets aioblk_internal_channel_check_resets
#define channel_add_reset aioblk_internal_channel_add_reset
#define channel_needs_kick aioblk_internal_channel_needs_kick
#define disk_wake_resetters aioblk_internal_disk_wake_resetters
#define group_kick aioblk_internal_group_kick
#define group_signal aioblk_internal_group_signal
#define group_log_signal_error aioblk_internal_group_log_signal_error
#define channel_finish aioblk_internal_channel_finish
#define offload_ref aioblk_internal_offload_ref
#define offload_unref aioblk_internal_offload_unref
#define offload_queue aioblk_internal_offload_queue
#define ring_reap aioblk_internal_ring_reap
#define ring_has_events aioblk_internal_ring_has_events
#define io_complete_event aioblk_internal_io_complete_event
#define io_prep aioblk_internal_io_prep
#define group_add_channel aioblk_internal_group_add_channel
#define group_remove_channel aioblk_internal_group_remove_channel

/* log.c */
void aioblk_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* disk.c */
void disk_add_channel(struct aioblk_disk *disk, struct aioblk_channel *ch);
void disk_remove_channel(struct aioblk_disk *disk, struct aioblk_channel *ch);
bool disk_reset_done(struct aioblk_disk *disk, uint64_t epoch);
void disk_wake_resetters(struct aioblk_disk *disk, const struct aioblk_group *except);
void disk_check_lost(struct aioblk_disk *disk);

/* channel.c */
struct aioblk_req *channel_get_req(struct aioblk_channel *ch, enum req_op op, aioblk_cb cb, void *cb_arg);
void channel_put_req(struct aioblk_channel *ch, struct aioblk_req *req);
void channel_accept(struct aioblk_channel *ch, struct aioblk_req *req);
void channel_enqueue(struct aioblk_channel *ch, struct aioblk_req *req);
void channel_complete_later(struct aioblk_channel *ch, struct aioblk_req *req, int status);
int channel_submit(struct aioblk_channel *ch);
unsigned channel_run_done(struct aioblk_channel *ch, unsigned max);
int channel_add_reset(struct aioblk_channel *ch, aioblk_cb cb, void *cb_arg);
unsigned channel_check_resets(struct aioblk_channel *ch, unsigned max);
bool channel_needs_kick(const struct aioblk_channel *ch);
void channel_finish(struct aioblk_channel *ch, struct aioblk_req *req, int status);

/* offload.c */
void offload_ref(void);
void offload_unref(void);
void offload_queue(struct aioblk_req *req);

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
unsigned ring_reap(struct aioblk_channel *ch, struct io_event *events, unsigned max);
bool ring_has_events(const struct aioblk_channel *ch);

/* io.c */
unsigned io_complete_event(struct aioblk_channel *ch, struct aioblk_req *req, int64_t res);
void io_prep(struct aioblk_channel *ch, struct aioblk_req *req);

/* group.c */
void group_add_channel(struct aioblk_group *group, struct aioblk_channel *ch);
void group_remove_channel(struct aioblk_group *group, struct aioblk_channel *ch);
void group_kick(struct aioblk_group *group);
int group_signal(struct aioblk_group *group);
void group_log_signal_error(int rc);

#endif /* AIOBLK_INTERNAL_H */
