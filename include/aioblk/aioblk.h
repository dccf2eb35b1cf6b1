/* SPDX-License-Identifier: BSD-3-Clause */
/**
 * @file aioblk.h
 * @brief aioblk: polled Linux AIO block I/O on files and block devices.
 *
 * The model has three objects:
 *
 * - a **disk** (struct aioblk_disk) is one opened file or block device. It
 *   may be shared by any number of threads.
 * - a **group** (struct aioblk_group) is a poll group. It belongs to one
 *   thread at a time; completions are reaped and callbacks run only inside
 *   aioblk_group_poll() and aioblk_group_wait() of the group, on the calling
 *   thread.
 * - a **channel** (struct aioblk_channel) is one kernel io_context for one
 *   disk inside one group, with its preallocated request slots. It belongs
 *   to its group and is used from the group's thread.
 *
 * Every function returns 0 (or a count) on success and a negative errno on
 * failure; none sets errno. Options structs are zero-initialisable: a NULL
 * pointer or an all-zero struct means the defaults.
 *
 * Thread contract:
 * - Disks may be shared: aioblk_disk_open(), the accessors, aioblk_disk_rescan()
 *   and aioblk_channel_create() / aioblk_channel_destroy() on one disk may be
 *   called from different threads at once. aioblk_disk_close() must not race
 *   with any other use of that disk.
 * - A group and its channels belong to one thread at a time: all calls that
 *   take a group or a channel (I/O, poll, wait, submit, destroy) must come
 *   from that thread, or be serialised by the caller.
 * - A callback may submit new I/O on any channel of its group. It may not
 *   poll, wait on or destroy its own group or any of the group's channels:
 *   those calls return -EBUSY while a poll of the group is running.
 * - Library threads: write-zeroes, unmap and the fdatasync(2) fallback of a
 *   flush never run on the calling or the polling thread. They run on a
 *   small pool of library threads (at most 4, named "aioblk-offload", with
 *   every signal blocked), started when the first such request needs one
 *   and stopped (joined) when the last disk is closed. Their callbacks
 *   still run only from a poll or wait of the channel's group, on its
 *   thread. Where no thread can be created at all, the operation runs on
 *   the caller's thread (a warning is logged). The log function may be
 *   called from these threads.
 * - Kernel AIO contexts and the library's threads do not survive fork(): a
 *   child process must not use disks, groups or channels created by its
 *   parent.
 */
#ifndef AIOBLK_AIOBLK_H
#define AIOBLK_AIOBLK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <aioblk/version.h>

#ifdef __cplusplus
extern "C" {
#endif

/** An opened file or block device. */
struct aioblk_disk;
/** A poll group: the per-thread unit that is polled. */
struct aioblk_group;
/** One kernel io_context for one disk inside one group. */
struct aioblk_channel;

/**
 * Completion callback.
 *
 * @param cb_arg the pointer given with the request.
 * @param status 0 on success or a negative errno (-EIO, -ENOSPC, ...).
 */
typedef void (*aioblk_cb)(void *cb_arg, int status);

/** @name Disk flags (struct aioblk_disk_opts.flags) */
/**@{*/
/** Open read-only: writes, write-zeroes and unmap return -EROFS. */
#define AIOBLK_DISK_READONLY (1u << 0)
/** Fail with the kernel's error instead of falling back to buffered I/O when O_DIRECT is refused. */
#define AIOBLK_DISK_REQUIRE_DIRECT (1u << 1)
/** Do not try O_DIRECT: use the page cache. */
#define AIOBLK_DISK_BUFFERED (1u << 2)
/**
 * Try RWF_NOWAIT on reads of a block device opened O_DIRECT. A read the
 * kernel would have to block for is retried once without the flag; a kernel
 * that refuses the flag at io_submit (-EOPNOTSUPP, or -EINVAL from kernels
 * before 4.13 that take no aio_rw_flags) turns it off for the disk, and the
 * read is resubmitted without it. Ignored on regular files and buffered
 * disks.
 */
#define AIOBLK_DISK_NOWAIT (1u << 3)
/**
 * Do not hold requests back to the device's queue size (see
 * aioblk_disk_queue_limit()): let io_submit() sleep in the kernel when the
 * device has no free request, as plain libaio does.
 */
#define AIOBLK_DISK_NO_QUEUE_LIMIT (1u << 4)
/**@}*/

/** Options of aioblk_disk_open(). All-zero (or NULL) means the defaults. */
struct aioblk_disk_opts {
	/** Block size in bytes; 0 detects it. A power of two, >= 512, >= the detected size. */
	uint32_t block_size;
	/** AIOBLK_DISK_* flags. */
	uint32_t flags;
	/** Name reported by aioblk_disk_name() and in log messages; NULL: the path. */
	const char *name;
};

/**
 * Open a file or block device.
 *
 * The path's type is checked before it is opened: a directory is refused
 * with -EISDIR and anything that is neither a regular file nor a block
 * device with -ENOTBLK, whatever the flags. O_DIRECT is tried first; when
 * the file system refuses it (open(2) fails with EINVAL, or statx reports
 * STATX_DIOALIGN with a direct I/O offset alignment of 0: the file cannot
 * do direct I/O), the disk falls back to buffered I/O with a logged warning
 * (see aioblk_disk_is_direct()) unless AIOBLK_DISK_REQUIRE_DIRECT is set.
 * The block size is detected with BLKSSZGET on block devices and
 * statx(STATX_DIOALIGN) on regular files opened O_DIRECT (512 where nothing
 * is detected and for buffered files). All file descriptors are opened
 * O_CLOEXEC.
 *
 * Opening writes nothing: content, size, allocation, mode, mtime and ctime
 * of the file or device stay as they were (no hole is punched, no
 * BLKDISCARD is issued). What the disk supports is learnt from the kernel
 * and the file system type, or from the first request the kernel refuses
 * (see aioblk_disk_supports()). The accessors, aioblk_disk_rescan() and
 * aioblk_disk_close() write nothing either.
 *
 * Thread: any; disks may be opened concurrently.
 *
 * @param path  a regular file or a block device.
 * @param opts  options, or NULL for the defaults.
 * @param diskp where the new disk is stored on success (untouched on failure).
 * @return 0 on success, or a negative errno:
 * - -EINVAL: NULL path or diskp; unknown flags; both REQUIRE_DIRECT and
 *   BUFFERED; a block size that is not a power of two, is < 512 or smaller
 *   than the detected size; a size that is not a multiple of the block size
 *   or is zero; O_DIRECT refused (or a direct I/O alignment of 0 reported
 *   by statx) with REQUIRE_DIRECT.
 * - -ENOENT, -EACCES, -EPERM, -EROFS, -ELOOP, -ENAMETOOLONG, -ENOTDIR, -EBUSY: from open(2).
 * - -EISDIR: the path is a directory (checked by type before opening,
 *   under every flag combination).
 * - -ENOTBLK: neither a regular file nor a block device.
 * - -ENODEV: a block device of size zero (no medium).
 * - -ENOMEM: out of memory.
 */
int aioblk_disk_open(const char *path, const struct aioblk_disk_opts *opts, struct aioblk_disk **diskp);

/**
 * Close a disk and free it. Closing writes nothing to the file or device.
 * Closing the last open disk stops the library's worker threads (see the
 * thread contract above) and waits for them to exit; none has work then,
 * since a disk with channels cannot be closed.
 *
 * Thread: any, but no other call may use the disk at the same time.
 *
 * @param disk the disk to close.
 * @return 0, -EINVAL for NULL, or -EBUSY while the disk has channels (nothing
 *         is closed then).
 */
int aioblk_disk_close(struct aioblk_disk *disk);

/**
 * The disk's name (the path unless a name was given). Thread: any.
 * @param disk the disk.
 * @return the name, valid until aioblk_disk_close(); NULL for a NULL disk.
 */
const char *aioblk_disk_name(const struct aioblk_disk *disk);
/**
 * The path the disk was opened with. Thread: any.
 * @param disk the disk.
 * @return the path, valid until aioblk_disk_close(); NULL for a NULL disk.
 */
const char *aioblk_disk_path(const struct aioblk_disk *disk);
/**
 * Block size in bytes: the unit of every offset and length. Thread: any.
 * @param disk the disk.
 * @return the block size (a power of two, >= 512); 0 for a NULL disk.
 */
uint32_t aioblk_disk_block_size(const struct aioblk_disk *disk);
/**
 * Number of blocks (changes only through aioblk_disk_rescan()). Thread: any.
 * @param disk the disk.
 * @return the size in blocks; 0 for a NULL disk.
 */
uint64_t aioblk_disk_num_blocks(const struct aioblk_disk *disk);
/**
 * Alignment in bytes that the address of every iovec needs on an O_DIRECT
 * disk; 1 for buffered disks. It is the memory alignment that
 * statx(STATX_DIOALIGN) reports (block devices since Linux 6.11), but never
 * less than the logical block size (BLKSSZGET on block devices, the direct
 * I/O offset alignment on files): the kernel takes memory aligned to 512
 * bytes for a device of 4096-byte sectors, but zram, for one, then stores
 * wrong data (seen on Linux 6.18). The length and offset alignment is the
 * logical sector size (aioblk_disk_len_align()).
 * Thread: any.
 * @param disk the disk.
 * @return the alignment in bytes; 0 for a NULL disk.
 */
size_t aioblk_disk_buf_align(const struct aioblk_disk *disk);
/**
 * Alignment in bytes that the length of every iovec needs on an O_DIRECT
 * disk: the logical sector size the kernel needs, never more than
 * aioblk_disk_block_size() (so whole blocks always do); 1 for buffered
 * disks. It can be larger than aioblk_disk_buf_align() (a file system on a
 * device of 4096-byte sectors may take memory at 512-byte boundaries but
 * lengths only in 4096-byte steps). Thread: any.
 * @param disk the disk.
 * @return the alignment in bytes; 0 for a NULL disk.
 */
size_t aioblk_disk_len_align(const struct aioblk_disk *disk);
/**
 * Whether the disk was opened O_DIRECT. Thread: any.
 * @param disk the disk.
 * @return true when it was; false when it uses the page cache, or for a NULL disk.
 */
bool aioblk_disk_is_direct(const struct aioblk_disk *disk);
/**
 * Whether the disk is read-only. Thread: any.
 * @param disk the disk.
 * @return true when opened with AIOBLK_DISK_READONLY; false otherwise or for a NULL disk.
 */
bool aioblk_disk_is_readonly(const struct aioblk_disk *disk);

/**
 * How many requests the library keeps in the device at once, so that
 * io_submit() never sleeps waiting for a free one: the block device's
 * queue size (sysfs queue/nr_requests) for block devices opened O_DIRECT
 * whose driver has request queues (sysfs mq/), re-read by
 * aioblk_disk_rescan(). On a device with one hardware queue (loop, SATA,
 * virtio with one queue) the limit is shared by every channel of the disk,
 * in every thread; with several (NVMe: one per CPU or so) it applies to
 * each channel alone, since a thread submits to the queue of the CPU it
 * runs on. A request larger than the queue's max_sectors_kb counts as the
 * requests the kernel splits it into; one larger than the whole queue
 * (limit x max_sectors_kb) goes to the kernel in pieces that an idle queue
 * takes whole, one after the other, and completes once. Requests over the
 * limit stay queued in
 * their channel and go to the kernel as completions make room (a later
 * poll; an eventfd group is woken when another thread's completion makes
 * room). Regular files, buffered block devices and devices without request
 * queues (zram) have no limit, and neither has a disk opened with
 * AIOBLK_DISK_NO_QUEUE_LIMIT. Thread: any.
 *
 * @param disk the disk.
 * @return the limit in requests; 0 when there is none (or for a NULL disk).
 */
unsigned aioblk_disk_queue_limit(const struct aioblk_disk *disk);

/** Request types, for aioblk_disk_supports(). */
enum aioblk_io_type {
	AIOBLK_IO_READ,
	AIOBLK_IO_WRITE,
	AIOBLK_IO_FLUSH,
	AIOBLK_IO_RESET,
	AIOBLK_IO_WRITE_ZEROES,
	AIOBLK_IO_UNMAP,
	AIOBLK_IO_FUA_WRITE,
};

/**
 * Whether the disk supports a request type. Nothing is written to find out.
 *
 * - Read, flush and reset: always.
 * - Write: unless the disk is read-only. FUA write: unless read-only, and
 *   only in a build whose libaio has aio_rw_flags.
 * - Write-zeroes: on every writable disk (the fallbacks end in writing
 *   zeroes).
 * - Unmap (never on a read-only disk): on a block device, known from sysfs
 *   (queue/discard_max_bytes non-zero); where sysfs cannot be read, true
 *   until the kernel refuses. On a regular file, false on file systems
 *   known not to punch holes (ramfs, vfat/msdos, exfat, iso9660, squashfs);
 *   otherwise true until the kernel refuses. "Until the kernel refuses": an
 *   aioblk_unmap() that the kernel refuses completes with -EOPNOTSUPP (its
 *   callback gets it), and from then on this answers false and
 *   aioblk_unmap() returns -EOPNOTSUPP at once.
 *
 * Thread: any.
 *
 * @param disk the disk.
 * @param type the request type.
 * @return whether requests of @p type are accepted; false for a NULL disk or an unknown type.
 */
bool aioblk_disk_supports(const struct aioblk_disk *disk, enum aioblk_io_type type);

/**
 * Re-read the size of the disk. A larger size is visible to I/O submitted
 * afterwards. A smaller size refuses new I/O beyond the new end with
 * -EINVAL; requests already accepted go on and complete with what the kernel
 * says (a short or failed transfer). A block device that now reads a size
 * of zero is marked lost: new I/O is refused with -ENODEV. A lost disk
 * stays lost (rescan keeps answering -ENODEV): close it and open the
 * device again.
 *
 * Thread: any.
 *
 * @param disk the disk.
 * @return 0 on success; -EINVAL for NULL or a new size that is not a
 *         multiple of the block size (the old size stays); -ENODEV when a
 *         block device reads a size of zero; other -errno from the kernel.
 */
int aioblk_disk_rescan(struct aioblk_disk *disk);

/**
 * Write the disk's configuration as JSON in the form SPDK's bdev_aio_create
 * RPC takes: {"method":"bdev_aio_create","params":{"name":...,"filename":...,
 * "block_size":... (only when one was given),"readonly":...}}.
 *
 * snprintf semantics: at most @p len bytes including the terminating NUL are
 * written; the return is the full length the JSON needs (without the NUL).
 *
 * @param disk the disk.
 * @param buf  where the JSON is written (may be NULL when @p len is 0).
 * @param len  size of @p buf in bytes.
 * @return the length, or -EINVAL for a NULL disk or a NULL buf with len > 0,
 *         -EILSEQ when the name or the path is not valid UTF-8 (JSON cannot
 *         carry it faithfully), or -EOVERFLOW when the length does not fit
 *         in an int.
 */
int aioblk_disk_config_json(const struct aioblk_disk *disk, char *buf, size_t len);

/** @name Group flags (aioblk_group_create()) */
/**@{*/
/** The group owns an eventfd that becomes readable when a completion may be ready. */
#define AIOBLK_GROUP_EVENTFD (1u << 0)
/**
 * The group's channels share one kernel io_context (aioblk_group_create_ext()):
 * one context per thread instead of one per disk per thread.
 */
#define AIOBLK_GROUP_SHARED_CONTEXT (1u << 1)
/**
 * aioblk_group_wait() sleeps in io_getevents(2) while the group's requests
 * are in the kernel, instead of spinning: for a thread that waits for its
 * own requests and has nothing else to do (a server's worker thread, a
 * synchronous wrapper). A completion then costs one system call and wakes
 * the thread at once. Not with AIOBLK_GROUP_EVENTFD, whose wait already
 * sleeps (in ppoll(2) on the eventfd).
 */
#define AIOBLK_GROUP_WAIT_IN_KERNEL (1u << 2)
/**@}*/

/** Options of aioblk_group_create_ext(). Zeroed fields take their defaults. */
struct aioblk_group_opts {
	uint32_t flags;       /**< AIOBLK_GROUP_EVENTFD, AIOBLK_GROUP_SHARED_CONTEXT, AIOBLK_GROUP_WAIT_IN_KERNEL */
	unsigned queue_depth; /**< with SHARED_CONTEXT: the shared context's depth; 0: 256; at most 65536 */
};

/**
 * Create a poll group.
 *
 * With AIOBLK_GROUP_EVENTFD the group owns a non-blocking, close-on-exec
 * eventfd (aioblk_group_fd()) that every request of its channels signals on
 * completion. Requests are handed to the kernel at the next poll, wait or
 * aioblk_group_submit(): call one of these before sleeping on the fd.
 *
 * Thread: any; the group then belongs to the caller.
 *
 * @param flags  0, or AIOBLK_GROUP_EVENTFD, AIOBLK_GROUP_SHARED_CONTEXT (a
 *               shared context of the default depth, 256) and
 *               AIOBLK_GROUP_WAIT_IN_KERNEL or'ed together.
 * @param groupp where the new group is stored on success.
 * @return 0, -EINVAL (NULL groupp, unknown flags, EVENTFD with
 *         WAIT_IN_KERNEL), -ENOMEM, or an eventfd error (-EMFILE, -ENFILE).
 */
int aioblk_group_create(uint32_t flags, struct aioblk_group **groupp);

/**
 * Create a poll group with options: aioblk_group_create() is this call
 * with only @p flags set.
 *
 * With AIOBLK_GROUP_SHARED_CONTEXT the group makes one kernel io_context of
 * @p queue_depth requests now, and its channels make none: they submit
 * into the group's context, one io_submit per group per poll, and their
 * completions are reaped from its one ring. The kernel charges the
 * system-wide fs.aio-max-nr with the group's depth alone, whatever the
 * number of disks, and an idle poll reads one ring and makes no system
 * call. Each channel still enforces its own queue depth, and the group
 * enforces its depth across its channels: an I/O call that would exceed
 * it returns -EAGAIN (resets, which take no request slot, never do).
 * Everything else behaves as in a plain group, and channel counters stay
 * per channel (io_submit_calls counts the calls that carried the channel's
 * requests). Choose it for many disks per thread; a plain group gives each
 * disk its own context and ring, as SPDK's bdev_aio does.
 *
 * Thread: any; the group then belongs to the caller.
 *
 * @param opts   the options, or NULL for a plain busy-poll group.
 * @param groupp where the new group is stored on success.
 * @return 0; -EINVAL (NULL groupp, unknown flags, EVENTFD with
 *         WAIT_IN_KERNEL, a queue_depth above 65536, or a queue_depth
 *         without AIOBLK_GROUP_SHARED_CONTEXT);
 *         -ENOMEM; an eventfd error (-EMFILE, -ENFILE); with
 *         SHARED_CONTEXT, an io_setup error: -EAGAIN when the system-wide
 *         AIO limit (fs.aio-max-nr) would be exceeded.
 */
int aioblk_group_create_ext(const struct aioblk_group_opts *opts, struct aioblk_group **groupp);

/**
 * Destroy an empty group.
 *
 * @param group the group.
 * @return 0, -EINVAL for NULL, -EBUSY while it has channels or from one of
 *         its callbacks.
 */
int aioblk_group_destroy(struct aioblk_group *group);

/**
 * Reap completions of every channel of the group, run their callbacks, then
 * hand every queued request to the kernel (one io_submit per channel; one
 * for the group when it has AIOBLK_GROUP_SHARED_CONTEXT).
 * Makes no system call when nothing is queued and nothing completed (in
 * eventfd mode, the eventfd is read only after completions were found).
 * A poll runs only what was waiting when it came to a channel: what
 * callbacks issue waits for a later poll (only a reset issued from a
 * callback may complete in the same poll, in its last pass over the
 * channels), so a poll always returns.
 *
 * @param group the group.
 * @param max_completions stop after this many callbacks; 0: no limit. The
 *        next poll then starts at the channel after the one this one
 *        stopped in, so that no channel starves. In a shared group the
 *        completions of the one ring run in the order the kernel finished
 *        them, whatever their channel (fair per request: a channel with
 *        more in flight gets more of each poll), and the rotation applies
 *        to the channels' other work (resets, requests finished without
 *        the kernel). In eventfd mode the fd is made readable again when
 *        completions remain.
 * @return the number of callbacks run; -EINVAL for NULL; -EBUSY from a
 *         callback of the group.
 */
int aioblk_group_poll(struct aioblk_group *group, unsigned max_completions);

/**
 * Hand every queued request of the group to the kernel now, without
 * reaping.
 *
 * @param group the group.
 * @return the number of requests the kernel took; -EINVAL for NULL.
 *         Requests the kernel refused with EAGAIN stay queued for the next
 *         poll; a request the kernel refused with another error completes
 *         with it at the next poll.
 */
int aioblk_group_submit(struct aioblk_group *group);

/**
 * Submit, then block until at least one callback has run or the timeout has
 * passed, like poll(2). It returns 0 only once the timeout has passed, never
 * earlier (the deadline is kept in nanoseconds), also when the group has
 * nothing outstanding: it then sleeps rather than returning at once. In
 * eventfd mode it sleeps in ppoll(2) on the eventfd. Without an eventfd
 * (busy-poll mode) it busy-polls while the group has requests in the
 * kernel or queued for it, unless the group has AIOBLK_GROUP_WAIT_IN_KERNEL:
 * it then sleeps in io_getevents(2) on a context that has requests in the
 * kernel, until one of them completes or the timeout passes, and for at
 * most 100 us at a time while the group also has requests elsewhere (in
 * other channels' contexts, held back by the device's queue limit or a
 * kernel EAGAIN, or with the library's threads) or resets; with nothing in
 * the kernel it looks again every 100 us. Either way, while what is
 * outstanding is only work of the
 * library's threads (write-zeroes, unmap, the fdatasync fallback) or resets
 * waiting for other groups, it looks again every 100 us instead of
 * spinning; and it sleeps (clock_nanosleep(2)) while nothing is
 * outstanding, since nothing can complete.
 *
 * With timeout -1 and nothing outstanding it sleeps until something can
 * wake it: in eventfd mode, until the eventfd becomes readable; in
 * busy-poll mode nothing can, so it does not return (like poll(2) with no
 * file descriptors).
 *
 * @param group the group.
 * @param timeout_ms -1: no timeout; 0: poll once.
 * @return callbacks run (> 0), 0 when the timeout has passed, -EINVAL for
 *         NULL, -EBUSY from a callback of the group, or an error of the
 *         sleep (ppoll(2) on the eventfd, or clock_nanosleep(2)); -EINTR is
 *         retried inside; a failed read of the eventfd is logged and the
 *         wait goes on.
 */
int aioblk_group_wait(struct aioblk_group *group, int timeout_ms);

/**
 * The group's eventfd, for epoll and other event loops. It is readable when
 * the group should be polled. Do not read or close it yourself.
 *
 * @param group the group.
 * @return the fd, or -EINVAL for NULL or a group without AIOBLK_GROUP_EVENTFD.
 */
int aioblk_group_fd(const struct aioblk_group *group);

/** Options of aioblk_channel_create_ext(). All-zero (or NULL) means the defaults. */
struct aioblk_channel_opts {
	/** Most requests outstanding at once; 0: 128. At most 65536. */
	unsigned queue_depth;
	/**
	 * Number of bounce buffers for unaligned memory on an O_DIRECT disk;
	 * 0: none, and unaligned buffers are refused with -EINVAL. With bounce
	 * buffers, a read or write whose memory is not aligned is copied
	 * through one (preallocated, aligned); -EAGAIN when all are busy.
	 */
	unsigned bounce_buffers;
	/** Size of each bounce buffer in bytes (rounded up to the block size); 0: 128 KiB. An unaligned request larger than this is refused with -EINVAL; aligned requests never use bounce buffers. */
	size_t bounce_buffer_size;
};

/**
 * Create a channel: one kernel io_context for @p disk inside @p group, with
 * @p queue_depth preallocated request slots.
 *
 * Thread: the group's thread. Channels of one disk may be created and
 * destroyed from different threads (different groups) at once.
 *
 * @param group the group the channel belongs to.
 * @param disk the disk it does I/O on.
 * @param queue_depth most requests outstanding at once; 0: 128; at most 65536.
 * @param chp where the new channel is stored on success.
 * @return 0; -EINVAL (NULL argument, queue depth too large); -EBUSY from a
 *         callback of the group; -ENOMEM; -EAGAIN when the system-wide AIO
 *         limit (sysctl fs.aio-max-nr) is reached; other -errno of io_setup.
 */
int aioblk_channel_create(struct aioblk_group *group, struct aioblk_disk *disk, unsigned queue_depth,
			  struct aioblk_channel **chp);

/**
 * aioblk_channel_create() with options (bounce buffers).
 *
 * @param group the group the channel belongs to.
 * @param disk the disk it does I/O on.
 * @param opts options, or NULL for the defaults.
 * @param chp where the new channel is stored on success.
 * @return the same as aioblk_channel_create(); also -EINVAL for more than
 *         65536 bounce buffers, a bounce buffer larger than 1 GiB or more
 *         than 4 GiB of them in all.
 */
int aioblk_channel_create_ext(struct aioblk_group *group, struct aioblk_disk *disk,
			      const struct aioblk_channel_opts *opts, struct aioblk_channel **chp);

/**
 * Destroy a channel. io_destroy(2) would wait uninterruptibly for requests
 * in flight, so a channel with outstanding requests is not destroyed: every
 * request counted by aioblk_channel_inflight() (pending resets and
 * requests running on a library thread included) must have had its
 * callback run.
 *
 * @param ch the channel.
 * @return 0; -EINVAL for NULL; -EBUSY while requests are outstanding or from
 *         a callback of its group.
 */
int aioblk_channel_destroy(struct aioblk_channel *ch);

/**
 * Requests accepted on the channel whose callbacks have not run yet,
 * resets included. Resets take no request slot, so the count may exceed
 * the queue depth by the number of pending resets.
 *
 * @param ch the channel.
 * @return the count; 0 for a NULL channel.
 */
unsigned aioblk_channel_inflight(const struct aioblk_channel *ch);

/** Per-channel counters (aioblk_channel_get_stats()). Counted on the channel's thread. */
struct aioblk_channel_stats {
	uint64_t reads;         /**< read requests completed */
	uint64_t writes;        /**< write requests completed (FUA included) */
	uint64_t flushes;       /**< flushes completed */
	uint64_t other_ops;     /**< resets, write-zeroes and unmaps completed */
	uint64_t bytes_read;    /**< bytes of successful reads */
	uint64_t bytes_written; /**< bytes of successful writes */
	uint64_t errors;        /**< requests completed with an error */
	uint64_t
		retries; /**< resubmissions: short transfers continued, NOWAIT retried, submit EAGAIN, queue-limit holds */
	uint64_t io_submit_calls; /**< io_submit system calls made */
	uint64_t completions;     /**< completion events reaped from the kernel */
	uint64_t polls;           /**< polls of the channel */
	uint64_t busy_polls;      /**< polls of the channel that found work */
};

/**
 * Copy the channel's counters.
 *
 * @param ch the channel.
 * @param stats where the counters are copied.
 * @return 0, or -EINVAL for a NULL @p ch or @p stats.
 */
int aioblk_channel_get_stats(const struct aioblk_channel *ch, struct aioblk_channel_stats *stats);

/**
 * @name I/O
 * Offsets and lengths count blocks of aioblk_disk_block_size(). The iovec
 * array and the memory it points to must stay valid until the callback
 * runs. On an O_DIRECT disk every iov_base must be a multiple of
 * aioblk_disk_buf_align() and every iov_len a multiple of
 * aioblk_disk_len_align() (unless the channel has bounce buffers).
 *
 * Return 0 when the request was accepted: its callback then runs exactly
 * once, later, from a poll of the channel's group. A negative return means it
 * was refused and the callback never runs:
 * - -EINVAL: NULL channel or callback; num_blocks 0; the range is beyond the
 *   disk or offset + length overflows; iovcnt < 1 or > IOV_MAX; NULL iov; the
 *   iovec lengths do not add up to the request's length; memory not aligned
 *   for O_DIRECT; unknown io_flags.
 * - -EROFS: a write on a read-only disk.
 * - -EAGAIN: the channel already has queue_depth requests outstanding, not
 *   counting resets (or all bounce buffers are busy); poll, then try again.
 *   aioblk_reset() never returns -EAGAIN.
 * - -ENODEV: the disk's device is gone (see aioblk_disk_rescan()).
 * - -EOPNOTSUPP: an unmap the disk does not support, or no longer supports
 *   after the kernel refused one (see aioblk_disk_supports());
 *   AIOBLK_WRITE_FUA in a build whose libaio lacks aio_rw_flags.
 *
 * A callback receives 0 or a negative errno: what the kernel reported
 * (-EIO, -ENOSPC, ...), -EIO for a transfer that stopped without progress
 * (such as a read past a shrunken file's end), or -ENODEV when the request
 * failed because the block device is gone (its size reads 0). The kernel's
 * io_event.res is read as a signed value, also in 32-bit builds.
 *
 * Every call returns at once: aioblk_write_zeroes(), aioblk_unmap() and
 * the fdatasync(2) fallback of aioblk_flush() run on a library thread (see
 * the thread contract above), and their completion comes back through the
 * group (in eventfd mode the group's fd becomes readable). Completions are
 * not ordered by issue, as with any kernel I/O: a read issued after a
 * write-zeroes may complete before it.
 */
/**@{*/
/**
 * Read blocks into iovecs.
 *
 * @param ch the channel.
 * @param iov the iovecs; their lengths add up to num_blocks blocks.
 * @param iovcnt number of iovecs, 1 to IOV_MAX.
 * @param offset_blocks first block.
 * @param num_blocks number of blocks, > 0.
 * @param cb the callback, run once from a poll of the channel's group.
 * @param cb_arg passed to @p cb.
 * @return 0 when accepted, or a negative errno (see above) when refused.
 */
int aioblk_readv(struct aioblk_channel *ch, const struct iovec *iov, int iovcnt, uint64_t offset_blocks,
		 uint64_t num_blocks, aioblk_cb cb, void *cb_arg);
/**
 * Write blocks from iovecs.
 *
 * @param ch the channel.
 * @param iov the iovecs; their lengths add up to num_blocks blocks.
 * @param iovcnt number of iovecs, 1 to IOV_MAX.
 * @param offset_blocks first block.
 * @param num_blocks number of blocks, > 0.
 * @param cb the callback, run once from a poll of the channel's group.
 * @param cb_arg passed to @p cb.
 * @return 0 when accepted, or a negative errno (see above) when refused.
 */
int aioblk_writev(struct aioblk_channel *ch, const struct iovec *iov, int iovcnt, uint64_t offset_blocks,
		  uint64_t num_blocks, aioblk_cb cb, void *cb_arg);
/**
 * Read blocks into one buffer.
 *
 * @param ch the channel.
 * @param buf one buffer of num_blocks blocks.
 * @param offset_blocks first block.
 * @param num_blocks number of blocks, > 0.
 * @param cb the callback, run once from a poll of the channel's group.
 * @param cb_arg passed to @p cb.
 * @return 0 when accepted, or a negative errno (see above) when refused.
 */
int aioblk_read(struct aioblk_channel *ch, void *buf, uint64_t offset_blocks, uint64_t num_blocks, aioblk_cb cb,
		void *cb_arg);
/**
 * Write blocks from one buffer.
 *
 * @param ch the channel.
 * @param buf one buffer of num_blocks blocks.
 * @param offset_blocks first block.
 * @param num_blocks number of blocks, > 0.
 * @param cb the callback, run once from a poll of the channel's group.
 * @param cb_arg passed to @p cb.
 * @return 0 when accepted, or a negative errno (see above) when refused.
 */
int aioblk_write(struct aioblk_channel *ch, const void *buf, uint64_t offset_blocks, uint64_t num_blocks, aioblk_cb cb,
		 void *cb_arg);

/** Write flag: force unit access (RWF_DSYNC): the data is durable when the callback runs. */
#define AIOBLK_WRITE_FUA (1u << 0)

/**
 * aioblk_writev() with AIOBLK_WRITE_* flags.
 *
 * @param ch the channel.
 * @param iov the iovecs; their lengths add up to num_blocks blocks.
 * @param iovcnt number of iovecs, 1 to IOV_MAX.
 * @param offset_blocks first block.
 * @param num_blocks number of blocks, > 0.
 * @param io_flags 0 or AIOBLK_WRITE_FUA.
 * @param cb the callback, run once from a poll of the channel's group.
 * @param cb_arg passed to @p cb.
 * @return 0 when accepted, or a negative errno (see above) when refused;
 *         -EOPNOTSUPP for AIOBLK_WRITE_FUA in a build without aio_rw_flags.
 */
int aioblk_writev_ext(struct aioblk_channel *ch, const struct iovec *iov, int iovcnt, uint64_t offset_blocks,
		      uint64_t num_blocks, uint32_t io_flags, aioblk_cb cb, void *cb_arg);

/**
 * Flush: the callback runs once the data of every write that completed
 * before the flush was issued is durable (fdatasync semantics). Sent to the
 * kernel as an asynchronous IOCB_CMD_FDSYNC. Where the kernel refuses that
 * for the disk (io_submit says EINVAL; logged as a warning once), that flush
 * and every later one of the disk run fdatasync(2) on a library thread
 * instead, never inside a poll; the result comes back through the group.
 * A flush takes a slot and counts against the queue depth until its
 * callback has run.
 *
 * @param ch the channel.
 * @param cb the callback, run once from a poll of the channel's group.
 * @param cb_arg passed to @p cb.
 * @return 0 when accepted; -EINVAL (NULL @p ch or @p cb), -EAGAIN (queue
 *         full) or -ENODEV (device gone) when refused.
 */
int aioblk_flush(struct aioblk_channel *ch, aioblk_cb cb, void *cb_arg);

/**
 * Reset: the callback runs once every request that was outstanding on any
 * channel of the disk, in any group and thread, when the reset was issued
 * has completed (requests running on a library thread included). Requests
 * issued afterwards do not delay it. Resets of one channel complete in the
 * order they were issued. The callback runs from a poll of this channel's
 * group, so that group must be polled; the other groups must be polled for
 * their requests to complete.
 *
 * A reset never reaches the kernel and never competes with I/O: it takes
 * no request slot and is accepted on a full channel (it never returns
 * -EAGAIN) and on a lost disk. It counts in aioblk_channel_inflight() until
 * its callback has run, and the channel cannot be destroyed meanwhile
 * (-EBUSY). When a reset waits on requests of other groups, its eventfd
 * group is woken (its fd written) only when the reset can now finish, at
 * most once per reset.
 *
 * @param ch the channel.
 * @param cb the callback, run once from a poll of the channel's group.
 * @param cb_arg passed to @p cb.
 * @return 0 when accepted (the callback gets status 0); -EINVAL (NULL @p ch
 *         or @p cb) or -ENOMEM (no record for it could be allocated; records
 *         are reused within a channel) when refused.
 */
int aioblk_reset(struct aioblk_channel *ch, aioblk_cb cb, void *cb_arg);

/**
 * Write zeroes over a range, on a library thread: the call returns at once
 * and the callback runs from a later poll (in eventfd mode the group's fd
 * becomes readable when it is done). Supported on every writable disk.
 * Files: fallocate(FALLOC_FL_ZERO_RANGE); where that is refused, a hole is
 * punched and then allocated again (FALLOC_FL_KEEP_SIZE); where the
 * allocation is refused after the punch (ext2-style files), zeroes are
 * written and the request succeeds. Block devices: BLKZEROOUT, else zeroes
 * are written. A refused step changes nothing and the next one is tried
 * (logged as a warning once per disk); when a step fails after it changed
 * data, the callback gets that step's error. No zero-length range is ever
 * sent to the kernel. The request takes a slot and counts against the
 * queue depth until its callback has run.
 *
 * @param ch the channel.
 * @param offset_blocks first block.
 * @param num_blocks number of blocks, > 0.
 * @param cb the callback, run once from a later poll of the channel's group.
 * @param cb_arg passed to @p cb.
 * @return 0 when accepted; -EINVAL, -EROFS, -EAGAIN or -ENODEV as for
 *         writes when refused.
 */
int aioblk_write_zeroes(struct aioblk_channel *ch, uint64_t offset_blocks, uint64_t num_blocks, aioblk_cb cb,
			void *cb_arg);

/**
 * Unmap (discard / punch a hole in) a range: fallocate(FALLOC_FL_PUNCH_HOLE |
 * FALLOC_FL_KEEP_SIZE) on files, BLKDISCARD on block devices, on a library
 * thread: the call returns at once and the callback runs from a later poll
 * (in eventfd mode the group's fd becomes readable when it is done). Reads
 * of an unmapped range return zeroes on files; on devices what the device
 * says. Where aioblk_disk_supports() answered true only "until the kernel
 * refuses" and the kernel refuses, the callback gets -EOPNOTSUPP and unmap
 * is off for the disk from then on. No zero-length range is ever sent to
 * the kernel. The request takes a slot and counts against the queue depth
 * until its callback has run.
 *
 * @param ch the channel.
 * @param offset_blocks first block.
 * @param num_blocks number of blocks, > 0.
 * @param cb the callback, run once from a later poll of the channel's group.
 * @param cb_arg passed to @p cb.
 * @return 0 when accepted; -EINVAL, -EROFS, -EAGAIN or -ENODEV as for
 *         writes, or -EOPNOTSUPP when the disk cannot unmap (or the kernel
 *         refused an earlier unmap of the disk).
 */
int aioblk_unmap(struct aioblk_channel *ch, uint64_t offset_blocks, uint64_t num_blocks, aioblk_cb cb, void *cb_arg);
/**@}*/

/** @name Logging */
/**@{*/
#define AIOBLK_LOG_ERR 3     /**< an error the caller also gets as a return code */
#define AIOBLK_LOG_WARNING 4 /**< something degraded (a fallback was taken) */
#define AIOBLK_LOG_INFO 6    /**< what was detected */
#define AIOBLK_LOG_DEBUG 7   /**< details */

/** Log callback: @p msg has no trailing newline. */
typedef void (*aioblk_log_fn)(int level, const char *msg, void *arg);

/**
 * Send diagnostics to @p fn (NULL: silence, the default). The library prints
 * nothing by itself. Call before other threads use the library.
 *
 * @p fn may be called from any thread that calls into the library and from
 * the library's own worker threads (see the thread contract above),
 * possibly with internal locks held: it must be thread-safe, return
 * quickly and must not call aioblk functions.
 *
 * @param fn  the log function, or NULL.
 * @param arg passed to @p fn.
 */
void aioblk_set_log_fn(aioblk_log_fn fn, void *arg);
/**@}*/

/**
 * The library's version.
 *
 * @return "MAJOR.MINOR.MICRO" of the library in use, in static storage.
 */
const char *aioblk_version(void);

#ifdef __cplusplus
}
#endif

#endif /* AIOBLK_AIOBLK_H */
