/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The only door to the kernel. Every function returns 0 (or a count) or a
 * negative errno and never leaves errno behind. Unit tests replace these
 * functions with -Wl,--wrap on the internal static library.
 */
#ifndef AIOBLK_SYS_H
#define AIOBLK_SYS_H

#include <libaio.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* What statx(2) says of an open file. */
struct aioblk_sys_file_info {
	unsigned type;             /* S_IFREG, S_IFBLK, ... */
	uint64_t size;             /* bytes (regular files) */
	bool dio_known;            /* the kernel reported STATX_DIOALIGN */
	uint32_t dio_mem_align;    /* with dio_known: 0 means no direct I/O on this file */
	uint32_t dio_offset_align; /* with dio_known: 0 means no direct I/O on this file */
	uint32_t rdev_major;       /* block devices: the device number */
	uint32_t rdev_minor;
};

int aioblk_sys_open(const char *path, int flags);
int aioblk_sys_fd_type(int fd, unsigned *type);
int aioblk_sys_reopen(int pathfd, int flags);
int aioblk_sys_close(int fd);
int aioblk_sys_file_info(int fd, struct aioblk_sys_file_info *info);
int aioblk_sys_blkdev_sector_size(int fd, uint32_t *bytes);
int aioblk_sys_blkdev_size(int fd, uint64_t *bytes);
int aioblk_sys_blkdev_range(int fd, unsigned long request, uint64_t offset, uint64_t len);
int aioblk_sys_fs_magic(int fd, uint64_t *magic);
int aioblk_sys_read_text(const char *path, char *buf, size_t len);
int aioblk_sys_count_dir(const char *path, unsigned *n);
int aioblk_sys_fdatasync(int fd);
int aioblk_sys_fallocate(int fd, int mode, uint64_t offset, uint64_t len);
ssize_t aioblk_sys_pwrite(int fd, const void *buf, size_t len, uint64_t offset);

int aioblk_sys_io_setup(unsigned nr, io_context_t *ctx);
int aioblk_sys_io_destroy(io_context_t ctx);
int aioblk_sys_io_submit(io_context_t ctx, long nr, struct iocb **iocbs);
int aioblk_sys_io_getevents(io_context_t ctx, long min_nr, long nr, struct io_event *events, struct timespec *timeout);

int aioblk_sys_eventfd(void);
int aioblk_sys_eventfd_read(int fd, uint64_t *value);
int aioblk_sys_eventfd_write(int fd, uint64_t value);
int aioblk_sys_poll_in(int fd, const struct timespec *timeout);
int aioblk_sys_sleep_until(const struct timespec *deadline);

#endif /* AIOBLK_SYS_H */
