/* SPDX-License-Identifier: BSD-3-Clause */
/* Disks: open, geometry detection and validation, rescan, close. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define KNOWN_DISK_FLAGS                                                                                 \
	(AIOBLK_DISK_READONLY | AIOBLK_DISK_REQUIRE_DIRECT | AIOBLK_DISK_BUFFERED | AIOBLK_DISK_NOWAIT | \
	 AIOBLK_DISK_NO_QUEUE_LIMIT)

static bool
is_pow2(uint64_t v)
{
	return v != 0 && (v & (v - 1)) == 0;
}

/*
 * What @path names, held without opening it (O_PATH: no FIFO waits for a
 * writer, no device is opened, no lease is broken), and refused by its type
 * unless it is a file or a block device: a directory with EISDIR whatever
 * the flags, anything else with ENOTBLK (opening a FIFO for reading waits
 * for a writer, opening some character devices has effects: a tape
 * rewinds). The real opens go through this descriptor (open_held), so
 * that a FIFO put at the path in between is never opened. (O_NONBLOCK at
 * open would avoid the wait, but it changes how files and devices open: a
 * leased file fails with EAGAIN, a removable disk opens without its media
 * check.)
 */
static int
hold_path(const struct aioblk_disk *disk)
{
	unsigned type;
	int pathfd, rc;

	pathfd = aioblk_sys_open(disk->path, O_PATH | O_CLOEXEC);
	if (pathfd < 0) {
		aioblk_log(AIOBLK_LOG_ERR, "%s: open failed: %s", disk->name, strerror(-pathfd));
		return pathfd;
	}
	rc = aioblk_sys_fd_type(pathfd, &type);
	if (rc == 0 && type != S_IFREG && type != S_IFBLK)
		rc = type == S_IFDIR ? -EISDIR : -ENOTBLK;
	if (rc < 0) {
		aioblk_log(AIOBLK_LOG_ERR, "%s: %s", disk->name,
			   rc == -EISDIR  ? "is a directory" :
			   rc == -ENOTBLK ? "neither a regular file nor a block device" :
					    strerror(-rc));
		aioblk_sys_close(pathfd);
		return rc;
	}
	return pathfd;
}

/* Open what @pathfd holds; where /proc is not mounted, the path once more. */
static int
open_held(const struct aioblk_disk *disk, int pathfd, int flags)
{
	int fd = aioblk_sys_reopen(pathfd, flags);

	return fd == -ENOENT ? aioblk_sys_open(disk->path, flags) : fd;
}

/*
 * A regular file that opened with O_DIRECT may still be unable to do it:
 * statx reports a direct I/O offset alignment of 0 then (STATX_DIOALIGN).
 */
static bool
file_refuses_direct(int fd)
{
	struct aioblk_sys_file_info info;

	return aioblk_sys_file_info(fd, &info) == 0 && info.type == S_IFREG && info.dio_known &&
	       info.dio_offset_align == 0;
}

static int
open_direct_or_not(struct aioblk_disk *disk, int pathfd, uint32_t flags, int access)
{
	int fd;

	if (!(flags & AIOBLK_DISK_BUFFERED)) {
		fd = open_held(disk, pathfd, access | O_CLOEXEC | O_DIRECT);
		if (fd >= 0 && file_refuses_direct(fd)) {
			aioblk_sys_close(fd);
			fd = -EINVAL;
		}
		if (fd >= 0) {
			disk->direct = true;
			return fd;
		}
		/* EINVAL from open() with O_DIRECT (or statx's alignment 0): the file cannot do it. */
		if (fd != -EINVAL || (flags & AIOBLK_DISK_REQUIRE_DIRECT)) {
			aioblk_log(AIOBLK_LOG_ERR, "%s: open with O_DIRECT failed: %s", disk->name, strerror(-fd));
			return fd;
		}
		aioblk_log(AIOBLK_LOG_WARNING, "%s: O_DIRECT refused for this file, using buffered I/O", disk->name);
	}
	fd = open_held(disk, pathfd, access | O_CLOEXEC);
	if (fd < 0) {
		aioblk_log(AIOBLK_LOG_ERR, "%s: open failed: %s", disk->name, strerror(-fd));
		return fd;
	}
	disk->direct = false;
	return fd;
}

static int
open_fd(struct aioblk_disk *disk, uint32_t flags)
{
	int access = (flags & AIOBLK_DISK_READONLY) ? O_RDONLY : O_RDWR;
	int pathfd = hold_path(disk);
	int fd;

	if (pathfd < 0)
		return pathfd;
	fd = open_direct_or_not(disk, pathfd, flags, access);
	aioblk_sys_close(pathfd);
	return fd;
}

/*
 * The memory alignment for O_DIRECT: what statx says (STATX_DIOALIGN; for
 * block devices since 6.11 the queue's DMA alignment), but never less than
 * the logical block size @lblock. The kernel takes memory aligned to 512
 * bytes for a device of 4096-byte sectors, but not every driver handles
 * such segments: on Linux 6.18, zram stores wrong data for a write from
 * memory that is 512- but not 4096-aligned (raw device, and files of
 * ext4 or xfs on it), and reports success. Memory aligned to the sector
 * costs nothing where it was not needed.
 */
static size_t
direct_mem_align(const struct aioblk_sys_file_info *info, uint32_t lblock)
{
	if (info->dio_known && is_pow2(info->dio_mem_align) && info->dio_mem_align > lblock)
		return info->dio_mem_align;
	return lblock;
}

/*
 * Find the smallest block size the kernel accepts and the memory alignment
 * it needs, and the size in bytes.
 */
static int
detect_geometry(struct aioblk_disk *disk, uint32_t *detected, uint64_t *bytes)
{
	struct aioblk_sys_file_info info;
	int rc;

	rc = aioblk_sys_file_info(disk->fd, &info);
	if (rc < 0)
		return rc;

	if (info.type == S_IFDIR)
		return -EISDIR;

	if (info.type == S_IFBLK) {
		uint32_t sector;

		disk->blockdev = true;
		rc = aioblk_sys_blkdev_sector_size(disk->fd, &sector);
		if (rc < 0)
			return rc;
		rc = aioblk_sys_blkdev_size(disk->fd, bytes);
		if (rc < 0)
			return rc;
		if (*bytes == 0) {
			aioblk_log(AIOBLK_LOG_ERR, "%s: block device has size 0", disk->name);
			return -ENODEV;
		}
		if (!is_pow2(sector) || sector < 512)
			return -EINVAL;
		*detected = sector;
		disk->rdev_major = info.rdev_major;
		disk->rdev_minor = info.rdev_minor;
		disk->buf_align = disk->direct ? direct_mem_align(&info, sector) : 1;
		return 0;
	}

	if (info.type != S_IFREG)
		return -ENOTBLK;

	*bytes = info.size;
	if (!disk->direct) {
		*detected = 512;
		disk->buf_align = 1;
		return 0;
	}
	/* O_DIRECT on a file: statx tells the alignment when the file system knows it. */
	*detected = 512;
	if (info.dio_offset_align > 512 && is_pow2(info.dio_offset_align))
		*detected = info.dio_offset_align;
	disk->buf_align = direct_mem_align(&info, *detected);
	return 0;
}

/* File systems (statfs f_type) known not to punch holes in regular files. */
static const uint64_t nonpunching_fs[] = {
	0x858458f6, /* ramfs: no fallocate at all */
	0x4d44,     /* vfat, msdos */
	0x2011bab0, /* exfat */
	0x9660,     /* iso9660 */
	0x73717368, /* squashfs */
};

static bool
magic_in(uint64_t magic, const uint64_t *list, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (list[i] == magic)
			return true;
	return false;
}

/*
 * How this disk unmaps and zeroes, learnt without writing a byte: from
 * sysfs for block devices (queue/discard_max_bytes; a partition's queue is
 * its parent's), from the file system's type for files (ext4, xfs, btrfs,
 * tmpfs and most others punch holes; the few listed above cannot). Where
 * sysfs cannot be read, or a file system punches only some files, unmap
 * works until the kernel refuses it: offload.c turns it off then. Zeroing
 * always works: its fallbacks end in writing zeroes.
 */
static void
detect_unmap(struct aioblk_disk *disk)
{
	char path[96], text[32];
	uint64_t magic;
	int rc;

	if (disk->readonly)
		return;
	if (disk->blockdev) {
		atomic_store(&disk->zero_mode, ZERO_BLKZEROOUT);
		snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/queue/discard_max_bytes", disk->rdev_major,
			 disk->rdev_minor);
		rc = aioblk_sys_read_text(path, text, sizeof(text));
		if (rc == -ENOENT) {
			snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/../queue/discard_max_bytes",
				 disk->rdev_major, disk->rdev_minor);
			rc = aioblk_sys_read_text(path, text, sizeof(text));
		}
		if (rc < 0 || strtoull(text, NULL, 10) > 0)
			atomic_store(&disk->unmap_mode, UNMAP_BLKDISCARD);
		return;
	}
	atomic_store(&disk->zero_mode, ZERO_FALLOC);
	if (aioblk_sys_fs_magic(disk->fd, &magic) < 0 || !magic_in(magic, nonpunching_fs, ARRAY_SIZE(nonpunching_fs)))
		atomic_store(&disk->unmap_mode, UNMAP_PUNCH);
}

/*
 * Read sysfs attribute @attr of the block device's queue as a number: the
 * device's own queue/, or its parent's for a partition (which has none).
 */
static int
read_queue_attr(const struct aioblk_disk *disk, const char *attr, unsigned long long *value)
{
	char path[128], text[32];
	int rc;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/%s", disk->rdev_major, disk->rdev_minor, attr);
	rc = aioblk_sys_read_text(path, text, sizeof(text));
	if (rc == -ENOENT) {
		snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/../%s", disk->rdev_major, disk->rdev_minor, attr);
		rc = aioblk_sys_read_text(path, text, sizeof(text));
	}
	if (rc == 0)
		*value = strtoull(text, NULL, 10);
	return rc;
}

/*
 * How many requests the device's queue takes before io_submit would sleep
 * for one (a tag): queue/nr_requests, for drivers with request queues
 * (their hardware queues are listed in mq/; bio-based drivers such as zram
 * have none and never make a submitter wait for a tag). With one hardware
 * queue every submitter shares it; with several, each thread submits to
 * its CPU's. Direct I/O on block devices only: buffered I/O is done
 * inside io_submit anyway, and files have no queue of their own. Only the
 * size is read again by rescan: requests in flight stay counted the way
 * they were reserved.
 */
static void
read_queue_size(struct aioblk_disk *disk)
{
	unsigned long long nr = 0, max_kb = 0, segs = 0;
	long page = sysconf(_SC_PAGESIZE);

	if (read_queue_attr(disk, "queue/nr_requests", &nr) < 0)
		nr = 0;
	if (nr && (read_queue_attr(disk, "queue/max_sectors_kb", &max_kb) < 0 || max_kb >= UINT32_MAX / 1024))
		max_kb = 0;
	/*
	 * A request also ends at max_segments pieces of memory, and the pages
	 * of a user buffer need not be contiguous: count a page a segment
	 * (loop: 128 of them, 512 KiB, where max_sectors_kb says 1280).
	 */
	if (max_kb && page > 0 && read_queue_attr(disk, "queue/max_segments", &segs) == 0 && segs &&
	    segs * (unsigned long long)page / 1024 < max_kb)
		max_kb = segs * (unsigned long long)page / 1024;
	atomic_store(&disk->max_request, (uint32_t)(max_kb * 1024));
	/* Stored last: a submitter that sees the limit sees how to count against it. */
	atomic_store(&disk->queue_limit, nr > 65536 ? 65536u : (unsigned)nr);
}

static void
detect_queue_limit(struct aioblk_disk *disk, uint32_t flags)
{
	char path[128];
	unsigned hwq = 0;

	if (!disk->blockdev || !disk->direct || (flags & AIOBLK_DISK_NO_QUEUE_LIMIT))
		return;
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/mq", disk->rdev_major, disk->rdev_minor);
	if (aioblk_sys_count_dir(path, &hwq) == -ENOENT) {
		snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/../mq", disk->rdev_major, disk->rdev_minor);
		aioblk_sys_count_dir(path, &hwq);
	}
	if (hwq == 0)
		return;
	disk->has_queue = true;
	disk->queue_shared = hwq == 1;
	read_queue_size(disk);
}

static void
free_disk(struct aioblk_disk *disk)
{
	if (disk->name != disk->path)
		free(disk->name);
	free(disk->path);
	pthread_mutex_destroy(&disk->lock);
	free(disk);
}

AIOBLK_EXPORT int
aioblk_disk_open(const char *path, const struct aioblk_disk_opts *opts, struct aioblk_disk **diskp)
{
	static const struct aioblk_disk_opts defaults;
	struct aioblk_disk *disk;
	uint32_t detected = 0;
	uint64_t bytes = 0;
	int rc;

	if (!path || !diskp)
		return -EINVAL;
	if (!opts)
		opts = &defaults;
	if (opts->flags & ~KNOWN_DISK_FLAGS)
		return -EINVAL;
	if ((opts->flags & AIOBLK_DISK_REQUIRE_DIRECT) && (opts->flags & AIOBLK_DISK_BUFFERED))
		return -EINVAL;
	if (opts->block_size && (!is_pow2(opts->block_size) || opts->block_size < 512))
		return -EINVAL;

	disk = calloc(1, sizeof(*disk));
	if (!disk)
		return -ENOMEM;
	disk->fd = -1;
	rc = pthread_mutex_init(&disk->lock, NULL);
	if (rc) {
		free(disk);
		return -rc;
	}
	disk->path = strdup(path);
	disk->name = opts->name ? strdup(opts->name) : disk->path;
	if (!disk->path || !disk->name) {
		rc = -ENOMEM;
		goto fail;
	}
	disk->readonly = opts->flags & AIOBLK_DISK_READONLY;

	rc = open_fd(disk, opts->flags);
	if (rc < 0)
		goto fail;
	disk->fd = rc;

	rc = detect_geometry(disk, &detected, &bytes);
	if (rc < 0)
		goto fail;

	disk->block_size = opts->block_size ? opts->block_size : detected;
	disk->block_size_given = opts->block_size != 0;
	if (disk->block_size < detected) {
		aioblk_log(AIOBLK_LOG_ERR, "%s: block size %u is smaller than the device's %u", disk->name,
			   disk->block_size, detected);
		rc = -EINVAL;
		goto fail;
	}
	if (bytes == 0 || bytes % disk->block_size) {
		aioblk_log(AIOBLK_LOG_ERR, "%s: size %llu is not a non-zero multiple of the block size %u", disk->name,
			   (unsigned long long)bytes, disk->block_size);
		rc = -EINVAL;
		goto fail;
	}
	disk->block_shift = (uint32_t)__builtin_ctz(disk->block_size);
	/* The kernel wants every O_DIRECT segment to be whole logical blocks. */
	disk->len_align = disk->direct ? detected : 1;
	atomic_store(&disk->num_blocks, bytes >> disk->block_shift);
	atomic_store(&disk->nowait, disk->blockdev && disk->direct && (opts->flags & AIOBLK_DISK_NOWAIT));
	atomic_store(&disk->flush_mode, FLUSH_ASYNC);
	detect_queue_limit(disk, opts->flags);
	detect_unmap(disk);
	offload_ref();

	aioblk_log(AIOBLK_LOG_INFO, "%s: %s, %s, block size %u, %llu blocks, buffer alignment %zu, queue limit %u%s",
		   disk->name, disk->blockdev ? "block device" : "file", disk->direct ? "O_DIRECT" : "buffered",
		   disk->block_size, (unsigned long long)atomic_load(&disk->num_blocks), disk->buf_align,
		   atomic_load(&disk->queue_limit), disk->queue_shared ? " (shared)" : "");
	*diskp = disk;
	return 0;

fail:
	if (disk->fd >= 0)
		aioblk_sys_close(disk->fd);
	free_disk(disk);
	return rc;
}

AIOBLK_EXPORT int
aioblk_disk_close(struct aioblk_disk *disk)
{
	unsigned nchannels;

	if (!disk)
		return -EINVAL;
	pthread_mutex_lock(&disk->lock);
	nchannels = disk->nchannels;
	pthread_mutex_unlock(&disk->lock);
	if (nchannels)
		return -EBUSY;
	aioblk_sys_close(disk->fd);
	free_disk(disk);
	offload_unref();
	return 0;
}

AIOBLK_EXPORT const char *
aioblk_disk_name(const struct aioblk_disk *disk)
{
	return disk ? disk->name : NULL;
}

AIOBLK_EXPORT const char *
aioblk_disk_path(const struct aioblk_disk *disk)
{
	return disk ? disk->path : NULL;
}

AIOBLK_EXPORT uint32_t
aioblk_disk_block_size(const struct aioblk_disk *disk)
{
	return disk ? disk->block_size : 0;
}

AIOBLK_EXPORT uint64_t
aioblk_disk_num_blocks(const struct aioblk_disk *disk)
{
	return disk ? atomic_load(&disk->num_blocks) : 0;
}

AIOBLK_EXPORT size_t
aioblk_disk_buf_align(const struct aioblk_disk *disk)
{
	return disk ? disk->buf_align : 0;
}

AIOBLK_EXPORT size_t
aioblk_disk_len_align(const struct aioblk_disk *disk)
{
	return disk ? disk->len_align : 0;
}

AIOBLK_EXPORT bool
aioblk_disk_is_direct(const struct aioblk_disk *disk)
{
	return disk && disk->direct;
}

AIOBLK_EXPORT unsigned
aioblk_disk_queue_limit(const struct aioblk_disk *disk)
{
	return disk ? atomic_load(&disk->queue_limit) : 0;
}

AIOBLK_EXPORT bool
aioblk_disk_is_readonly(const struct aioblk_disk *disk)
{
	return disk && disk->readonly;
}

AIOBLK_EXPORT bool
aioblk_disk_supports(const struct aioblk_disk *disk, enum aioblk_io_type type)
{
	if (!disk)
		return false;
	switch (type) {
	case AIOBLK_IO_READ:
	case AIOBLK_IO_FLUSH:
	case AIOBLK_IO_RESET:
		return true;
	case AIOBLK_IO_WRITE:
		return !disk->readonly;
	case AIOBLK_IO_FUA_WRITE:
#ifdef AIOBLK_HAVE_RW_FLAGS
		return !disk->readonly;
#else
		return false; /* no aio_rw_flags for RWF_DSYNC in this libaio */
#endif
	case AIOBLK_IO_WRITE_ZEROES:
		/* Writing zeroes is the last fallback, so any writable disk can. */
		return !disk->readonly;
	case AIOBLK_IO_UNMAP:
		return !disk->readonly && atomic_load(&disk->unmap_mode) != UNMAP_NONE;
	}
	return false;
}

static int
read_size(struct aioblk_disk *disk, uint64_t *bytes)
{
	struct aioblk_sys_file_info info;
	int rc;

	if (disk->blockdev)
		return aioblk_sys_blkdev_size(disk->fd, bytes);
	rc = aioblk_sys_file_info(disk->fd, &info);
	if (rc == 0)
		*bytes = info.size;
	return rc;
}

AIOBLK_EXPORT int
aioblk_disk_rescan(struct aioblk_disk *disk)
{
	uint64_t bytes = 0;
	int rc;

	if (!disk)
		return -EINVAL;
	/* A lost device stays lost: its fd may point at a device that is gone for good. */
	if (atomic_load(&disk->lost))
		return -ENODEV;
	rc = read_size(disk, &bytes);
	if (rc < 0)
		return rc;
	if (disk->blockdev && bytes == 0) {
		atomic_store(&disk->lost, true);
		aioblk_log(AIOBLK_LOG_ERR, "%s: device lost (size 0)", disk->name);
		return -ENODEV;
	}
	if (bytes % disk->block_size) {
		aioblk_log(AIOBLK_LOG_ERR, "%s: new size %llu is not a multiple of the block size %u", disk->name,
			   (unsigned long long)bytes, disk->block_size);
		return -EINVAL;
	}
	atomic_store(&disk->num_blocks, bytes >> disk->block_shift);
	/* The queue may have been resized (queue/nr_requests): a larger one has room for those waiting. */
	if (disk->has_queue) {
		read_queue_size(disk);
		if (atomic_load(&disk->limit_waiters))
			disk_wake_limit_waiters(disk, NULL);
	}
	return 0;
}

void
disk_check_lost(struct aioblk_disk *disk)
{
	uint64_t bytes = 1;

	/* After an I/O error: a block device that now reads size 0 is gone. */
	if (!disk->blockdev || atomic_load(&disk->lost))
		return;
	if (aioblk_sys_blkdev_size(disk->fd, &bytes) == 0 && bytes == 0) {
		atomic_store(&disk->lost, true);
		aioblk_log(AIOBLK_LOG_ERR, "%s: device lost (size 0): failing new I/O with ENODEV", disk->name);
	}
}

void
disk_add_channel(struct aioblk_disk *disk, struct aioblk_channel *ch)
{
	pthread_mutex_lock(&disk->lock);
	ch->disk_prev = NULL;
	ch->disk_next = disk->channels;
	if (disk->channels)
		disk->channels->disk_prev = ch;
	disk->channels = ch;
	disk->nchannels++;
	pthread_mutex_unlock(&disk->lock);
}

void
disk_remove_channel(struct aioblk_disk *disk, struct aioblk_channel *ch)
{
	pthread_mutex_lock(&disk->lock);
	if (ch->disk_prev)
		ch->disk_prev->disk_next = ch->disk_next;
	else
		disk->channels = ch->disk_next;
	if (ch->disk_next)
		ch->disk_next->disk_prev = ch->disk_prev;
	disk->nchannels--;
	pthread_mutex_unlock(&disk->lock);
}

/*
 * Room was made in the device's queue: wake the eventfd groups of the
 * channels that wait for it with nothing of their own in the kernel (no
 * completion of theirs will come). @except checks its own channels in the
 * poll that made the room.
 */
void
disk_wake_limit_waiters(struct aioblk_disk *disk, const struct aioblk_wake *except)
{
	struct aioblk_channel *ch;
	int rc, err = 0;

	pthread_mutex_lock(&disk->lock);
	for (ch = disk->channels; ch; ch = ch->disk_next) {
		if (ch->wake == except || !atomic_load(&ch->limit_blocked))
			continue;
		if (atomic_exchange(&ch->limit_blocked, false)) {
			atomic_fetch_sub(&disk->limit_waiters, 1);
			rc = wake_signal(ch->wake);
			if (rc < 0)
				err = rc;
		}
	}
	pthread_mutex_unlock(&disk->lock);
	if (err < 0)
		wake_log_error(err);
}
