/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Every system call the library makes, returning -errno instead of setting
 * errno, so that the rest of the library never looks at errno and the unit
 * tests can put faults here.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/stat.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sys.h"

/*
 * ThreadSanitizer does not see the kernel map a context's ring at io_setup
 * and unmap it at io_destroy; a new ring at the address of an old one then
 * looks like a race with the old ring's last user. Tell it.
 */
#if defined(__SANITIZE_THREAD__)
#define AIOBLK_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define AIOBLK_TSAN 1
#endif
#endif
#ifdef AIOBLK_TSAN
#include <sanitizer/tsan_interface.h>
#define tsan_release(p) __tsan_release(p)
#define tsan_acquire(p) __tsan_acquire(p)
#else
#define tsan_release(p) ((void)(p))
#define tsan_acquire(p) ((void)(p))
#endif

int
aioblk_sys_open(const char *path, int flags)
{
	int fd = open(path, flags);

	return fd < 0 ? -errno : fd;
}

/* The file type (S_IFMT bits) of what @fd is (an O_PATH descriptor will do). */
int
aioblk_sys_fd_type(int fd, unsigned *type)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	*type = st.st_mode & S_IFMT;
	return 0;
}

/*
 * Open what the O_PATH descriptor @pathfd holds, with @flags: the same
 * inode, whatever its path names by now (through /proc's magic link).
 * -ENOENT where /proc is not mounted.
 */
int
aioblk_sys_reopen(int pathfd, int flags)
{
	char proc[32];
	int fd;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pathfd);
	fd = open(proc, flags);
	return fd < 0 ? -errno : fd;
}

int
aioblk_sys_close(int fd)
{
	/* Linux frees the descriptor even when close fails: never retry. */
	return close(fd) < 0 ? -errno : 0;
}

int
aioblk_sys_file_info(int fd, struct aioblk_sys_file_info *info)
{
	/*
	 * glibc's struct statx predates the direct I/O fields: use the
	 * kernel's structure and the raw system call.
	 */
	struct statx stx = { 0 };

	if (syscall(SYS_statx, fd, "", AT_EMPTY_PATH, STATX_TYPE | STATX_SIZE | STATX_DIOALIGN, &stx) < 0)
		return -errno;
	info->type = stx.stx_mode & 0170000;
	info->size = stx.stx_size;
	info->dio_known = stx.stx_mask & STATX_DIOALIGN;
	info->dio_mem_align = info->dio_known ? stx.stx_dio_mem_align : 0;
	info->dio_offset_align = info->dio_known ? stx.stx_dio_offset_align : 0;
	info->rdev_major = stx.stx_rdev_major;
	info->rdev_minor = stx.stx_rdev_minor;
	return 0;
}

int
aioblk_sys_blkdev_sector_size(int fd, uint32_t *bytes)
{
	int size = 0; /* BLKSSZGET writes an int */

	if (ioctl(fd, BLKSSZGET, &size) < 0)
		return -errno;
	*bytes = (uint32_t)size;
	return 0;
}

int
aioblk_sys_blkdev_size(int fd, uint64_t *bytes)
{
	uint64_t size = 0; /* BLKGETSIZE64 writes a u64 */

	if (ioctl(fd, BLKGETSIZE64, &size) < 0)
		return -errno;
	*bytes = size;
	return 0;
}

int
aioblk_sys_blkdev_range(int fd, unsigned long request, uint64_t offset, uint64_t len)
{
	uint64_t range[2] = { offset, len };

	return ioctl(fd, request, range) < 0 ? -errno : 0;
}

/* The file system's type (f_type of statfs(2)), to know what it can do without trying it. */
int
aioblk_sys_fs_magic(int fd, uint64_t *magic)
{
	struct statfs sfs;

	if (fstatfs(fd, &sfs) < 0)
		return -errno;
	*magic = (uint64_t)sfs.f_type;
	return 0;
}

/* Read a small text file (sysfs attributes) into @buf, NUL-terminated. */
int
aioblk_sys_read_text(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd, err;

	if (len == 0)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	err = errno;
	close(fd);
	if (n < 0)
		return -err;
	buf[n] = '\0';
	return 0;
}

/* How many entries a directory has, "." and ".." left out (the hardware queues in sysfs' mq/). */
int
aioblk_sys_count_dir(const char *path, unsigned *n)
{
	DIR *dir = opendir(path);
	struct dirent *de;

	if (!dir)
		return -errno;
	*n = 0;
	while ((de = readdir(dir)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			(*n)++;
	closedir(dir);
	return 0;
}

int
aioblk_sys_fdatasync(int fd)
{
	return fdatasync(fd) < 0 ? -errno : 0;
}

int
aioblk_sys_fallocate(int fd, int mode, uint64_t offset, uint64_t len)
{
	return fallocate(fd, mode, (off_t)offset, (off_t)len) < 0 ? -errno : 0;
}

ssize_t
aioblk_sys_pwrite(int fd, const void *buf, size_t len, uint64_t offset)
{
	ssize_t n = pwrite(fd, buf, len, (off_t)offset);

	return n < 0 ? -errno : n;
}

int
aioblk_sys_io_setup(unsigned nr, io_context_t *ctx)
{
	int rc = io_setup((int)nr, ctx); /* libaio returns -errno */

	if (rc == 0)
		tsan_acquire((void *)*ctx);
	return rc;
}

int
aioblk_sys_io_destroy(io_context_t ctx)
{
	tsan_release((void *)ctx);
	return io_destroy(ctx);
}

int
aioblk_sys_io_submit(io_context_t ctx, long nr, struct iocb **iocbs)
{
	return io_submit(ctx, nr, iocbs);
}

int
aioblk_sys_io_getevents(io_context_t ctx, long min_nr, long nr, struct io_event *events, struct timespec *timeout)
{
	return io_getevents(ctx, min_nr, nr, events, timeout);
}

int
aioblk_sys_eventfd(void)
{
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

int
aioblk_sys_eventfd_read(int fd, uint64_t *value)
{
	ssize_t n = read(fd, value, sizeof(*value));

	if (n < 0)
		return -errno;
	return n == sizeof(*value) ? 0 : -EIO;
}

int
aioblk_sys_eventfd_write(int fd, uint64_t value)
{
	ssize_t n = write(fd, &value, sizeof(value));

	if (n < 0)
		return -errno;
	return n == sizeof(value) ? 0 : -EIO;
}

/* Wait for @fd to become readable for at most @timeout (NULL: no limit); 0 on timeout. */
int
aioblk_sys_poll_in(int fd, const struct timespec *timeout)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int n = ppoll(&pfd, 1, timeout, NULL);

	return n < 0 ? -errno : n;
}

/* Sleep until the CLOCK_MONOTONIC time @deadline (NULL: until a signal); -EINTR when one came. */
int
aioblk_sys_sleep_until(const struct timespec *deadline)
{
	if (!deadline)
		return pause() < 0 ? -errno : 0;
	/* clock_nanosleep returns the error number itself. */
	return -clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, deadline, NULL);
}
