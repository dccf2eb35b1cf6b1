/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The public I/O calls: validate, fill the iocb, hand the request to its
 * channel; and the decoding of what the kernel says when it completes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/uio.h>

#include "internal.h"

static int
check_range(const struct aioblk_channel *ch, uint64_t offset_blocks, uint64_t num_blocks, uint64_t *offset,
	    uint64_t *len)
{
	const struct aioblk_disk *disk = ch->disk;
	uint64_t end = offset_blocks + num_blocks;

	if (unlikely(num_blocks == 0 || end < offset_blocks ||
		     end > atomic_load_explicit(&disk->num_blocks, memory_order_relaxed)))
		return -EINVAL;
	if (unlikely(atomic_load_explicit(&disk->lost, memory_order_relaxed)))
		return -ENODEV;
	/* end fits in the disk, whose size in bytes fits in 64 bits: no overflow. */
	*offset = offset_blocks << disk->block_shift;
	*len = num_blocks << disk->block_shift;
	return 0;
}

/* The iovecs must add up to @len; on O_DIRECT, every piece must be aligned. */
static int
check_iov(const struct aioblk_channel *ch, const struct iovec *iov, int iovcnt, uint64_t len, bool *aligned)
{
	const struct aioblk_disk *disk = ch->disk;
	uint64_t total = 0;
	uintptr_t addr_bits = 0;
	size_t len_bits = 0;
	int i;

	for (i = 0; i < iovcnt; i++) {
		if (unlikely(iov[i].iov_len > len - total || (!iov[i].iov_base && iov[i].iov_len)))
			return -EINVAL;
		total += iov[i].iov_len;
		addr_bits |= (uintptr_t)iov[i].iov_base;
		len_bits |= iov[i].iov_len;
	}
	if (unlikely(total != len))
		return -EINVAL;
	*aligned = !disk->direct || (!(addr_bits & (disk->buf_align - 1)) && !(len_bits & (disk->len_align - 1)));
	return 0;
}

static void
copy_from_iov(void *dst, const struct iovec *iov, int iovcnt)
{
	char *p = dst;
	int i;

	for (i = 0; i < iovcnt; i++) {
		memcpy(p, iov[i].iov_base, iov[i].iov_len);
		p += iov[i].iov_len;
	}
}

static void
copy_to_iov(const struct iovec *iov, int iovcnt, const void *src)
{
	const char *p = src;
	int i;

	for (i = 0; i < iovcnt; i++) {
		memcpy(iov[i].iov_base, p, iov[i].iov_len);
		p += iov[i].iov_len;
	}
}

/* Fill the iocb for what is left of a read or write (all of it, or the rest of a short transfer). */
static void
prep_rw(struct aioblk_channel *ch, struct aioblk_req *req)
{
	struct iocb *iocb = &req->iocb;
	int fd = ch->disk->fd;
	uint64_t pos = req->offset + req->done;
	size_t left = req->len - req->done;
	bool rd = req->op == OP_READ;
	const struct iovec *iov = req->iov;
	int iovcnt = req->iovcnt;
	uint64_t skip = req->done;

	if (req->bounce) {
		char *buf = (char *)req->bounce + req->done;

		rd ? io_prep_pread(iocb, fd, buf, left, pos) : io_prep_pwrite(iocb, fd, buf, left, pos);
	} else if (iovcnt == 1) {
		/* One buffer: PREAD/PWRITE spare the kernel an iovec copy. */
		char *buf = (char *)iov[0].iov_base + req->done;

		rd ? io_prep_pread(iocb, fd, buf, left, pos) : io_prep_pwrite(iocb, fd, buf, left, pos);
	} else {
		/* After a short transfer, start at the iovec where it stopped. */
		while (skip && skip >= iov->iov_len) {
			skip -= iov->iov_len;
			iov++;
			iovcnt--;
		}
		if (skip) {
			/* Mid-iovec: finish that piece alone; the next round is whole iovecs again. */
			char *buf = (char *)iov->iov_base + skip;
			size_t n = iov->iov_len - skip;

			rd ? io_prep_pread(iocb, fd, buf, n, pos) : io_prep_pwrite(iocb, fd, buf, n, pos);
		} else {
			rd ? io_prep_preadv(iocb, fd, iov, iovcnt, pos) : io_prep_pwritev(iocb, fd, iov, iovcnt, pos);
		}
	}
#ifdef AIOBLK_HAVE_RW_FLAGS
	if (req->fua)
		iocb->aio_rw_flags = RWF_DSYNC;
	else if (rd && !req->nowait_retried && atomic_load_explicit(&ch->disk->nowait, memory_order_relaxed))
		iocb->aio_rw_flags = RWF_NOWAIT;
#endif
}

void
io_prep(struct aioblk_channel *ch, struct aioblk_req *req)
{
	if (req->op == OP_FLUSH)
		io_prep_fdsync(&req->iocb, ch->disk->fd);
	else
		prep_rw(ch, req);
	req->iocb.data = req;
	if (ch->group->efd >= 0)
		io_set_eventfd(&req->iocb, ch->group->efd);
}

static int
submit_rw(struct aioblk_channel *ch, enum req_op op, const struct iovec *iov, int iovcnt, uint64_t offset_blocks,
	  uint64_t num_blocks, uint32_t io_flags, aioblk_cb cb, void *cb_arg)
{
	struct aioblk_req *req;
	uint64_t offset, len;
	bool aligned;
	int rc;

	if (unlikely(!ch || !cb || !iov || iovcnt < 1 || iovcnt > IOV_MAX || (io_flags & ~AIOBLK_WRITE_FUA)))
		return -EINVAL;
	if (unlikely(op == OP_WRITE && ch->disk->readonly))
		return -EROFS;
#ifndef AIOBLK_HAVE_RW_FLAGS
	if (io_flags & AIOBLK_WRITE_FUA)
		return -EOPNOTSUPP;
#endif
	rc = check_range(ch, offset_blocks, num_blocks, &offset, &len);
	if (unlikely(rc < 0))
		return rc;
	rc = check_iov(ch, iov, iovcnt, len, &aligned);
	if (unlikely(rc < 0))
		return rc;
	if (unlikely(!aligned && (!ch->bounce_size || len > ch->bounce_size)))
		return -EINVAL;

	req = channel_get_req(ch, op, cb, cb_arg);
	if (unlikely(!req))
		return -EAGAIN;
	if (unlikely(!aligned)) {
		if (!ch->bounce_nfree) {
			channel_put_req(ch, req);
			return -EAGAIN;
		}
		req->bounce = ch->bounce_free[--ch->bounce_nfree];
		if (op == OP_WRITE)
			copy_from_iov(req->bounce, iov, iovcnt);
	}

	req->offset = offset;
	req->len = len;
	req->fua = io_flags & AIOBLK_WRITE_FUA;
	req->iovcnt = iovcnt;
	if (likely(iovcnt == 1)) {
		/* The common case, and every aioblk_read/aioblk_write: two moves, no memcpy call. */
		req->inline_iov[0] = iov[0];
		req->iov = req->inline_iov;
	} else if (iovcnt <= AIOBLK_INLINE_IOVS) {
		/* Small arrays are copied, so a caller's stack array cannot go stale. */
		memcpy(req->inline_iov, iov, (size_t)iovcnt * sizeof(*iov));
		req->iov = req->inline_iov;
	} else {
		req->iov = iov;
	}
	io_prep(ch, req);
	channel_accept(ch, req);
	channel_enqueue(ch, req);
	return 0;
}

AIOBLK_EXPORT int
aioblk_readv(struct aioblk_channel *ch, const struct iovec *iov, int iovcnt, uint64_t offset_blocks,
	     uint64_t num_blocks, aioblk_cb cb, void *cb_arg)
{
	return submit_rw(ch, OP_READ, iov, iovcnt, offset_blocks, num_blocks, 0, cb, cb_arg);
}

AIOBLK_EXPORT int
aioblk_writev(struct aioblk_channel *ch, const struct iovec *iov, int iovcnt, uint64_t offset_blocks,
	      uint64_t num_blocks, aioblk_cb cb, void *cb_arg)
{
	return submit_rw(ch, OP_WRITE, iov, iovcnt, offset_blocks, num_blocks, 0, cb, cb_arg);
}

AIOBLK_EXPORT int
aioblk_writev_ext(struct aioblk_channel *ch, const struct iovec *iov, int iovcnt, uint64_t offset_blocks,
		  uint64_t num_blocks, uint32_t io_flags, aioblk_cb cb, void *cb_arg)
{
	return submit_rw(ch, OP_WRITE, iov, iovcnt, offset_blocks, num_blocks, io_flags, cb, cb_arg);
}

/* One buffer as one iovec; a length whose bytes do not fit is refused like any bad range. */
static int
buf_iov(const struct aioblk_channel *ch, void *buf, uint64_t num_blocks, struct iovec *iov)
{
	if (!ch)
		return -EINVAL;
	if (num_blocks > (SIZE_MAX >> ch->disk->block_shift))
		return -EINVAL;
	iov->iov_base = buf;
	iov->iov_len = (size_t)(num_blocks << ch->disk->block_shift);
	return 0;
}

AIOBLK_EXPORT int
aioblk_read(struct aioblk_channel *ch, void *buf, uint64_t offset_blocks, uint64_t num_blocks, aioblk_cb cb,
	    void *cb_arg)
{
	struct iovec iov;
	int rc = buf_iov(ch, buf, num_blocks, &iov);

	return rc < 0 ? rc : submit_rw(ch, OP_READ, &iov, 1, offset_blocks, num_blocks, 0, cb, cb_arg);
}

AIOBLK_EXPORT int
aioblk_write(struct aioblk_channel *ch, const void *buf, uint64_t offset_blocks, uint64_t num_blocks, aioblk_cb cb,
	     void *cb_arg)
{
	struct iovec iov;
	int rc = buf_iov(ch, (void *)buf, num_blocks, &iov);

	return rc < 0 ? rc : submit_rw(ch, OP_WRITE, &iov, 1, offset_blocks, num_blocks, 0, cb, cb_arg);
}

AIOBLK_EXPORT int
aioblk_flush(struct aioblk_channel *ch, aioblk_cb cb, void *cb_arg)
{
	struct aioblk_req *req;

	if (!ch || !cb)
		return -EINVAL;
	if (atomic_load_explicit(&ch->disk->lost, memory_order_relaxed))
		return -ENODEV;
	req = channel_get_req(ch, OP_FLUSH, cb, cb_arg);
	if (!req)
		return -EAGAIN;
	channel_accept(ch, req);
	if (atomic_load_explicit(&ch->disk->flush_mode, memory_order_relaxed) == FLUSH_SYNC) {
		/* fdatasync(2) on a worker: it covers every write completed before now. */
		offload_queue(req);
		return 0;
	}
	io_prep(ch, req);
	channel_enqueue(ch, req);
	return 0;
}

AIOBLK_EXPORT int
aioblk_reset(struct aioblk_channel *ch, aioblk_cb cb, void *cb_arg)
{
	if (!ch || !cb)
		return -EINVAL;
	return channel_add_reset(ch, cb, cb_arg);
}

/*
 * write-zeroes and unmap: validated and accepted here, done on a worker
 * thread (offload.c), completed from a later poll.
 */
static int
submit_offload(struct aioblk_channel *ch, enum req_op op, uint64_t offset_blocks, uint64_t num_blocks, aioblk_cb cb,
	       void *cb_arg)
{
	struct aioblk_req *req;
	uint64_t offset, len;
	int rc;

	if (!ch || !cb)
		return -EINVAL;
	if (ch->disk->readonly)
		return -EROFS;
	if (op == OP_UNMAP && !aioblk_disk_supports(ch->disk, AIOBLK_IO_UNMAP))
		return -EOPNOTSUPP;
	rc = check_range(ch, offset_blocks, num_blocks, &offset, &len);
	if (rc < 0)
		return rc;
	req = channel_get_req(ch, op, cb, cb_arg);
	if (!req)
		return -EAGAIN;
	req->offset = offset;
	req->len = len;
	channel_accept(ch, req);
	offload_queue(req);
	return 0;
}

AIOBLK_EXPORT int
aioblk_write_zeroes(struct aioblk_channel *ch, uint64_t offset_blocks, uint64_t num_blocks, aioblk_cb cb, void *cb_arg)
{
	return submit_offload(ch, OP_ZERO, offset_blocks, num_blocks, cb, cb_arg);
}

AIOBLK_EXPORT int
aioblk_unmap(struct aioblk_channel *ch, uint64_t offset_blocks, uint64_t num_blocks, aioblk_cb cb, void *cb_arg)
{
	return submit_offload(ch, OP_UNMAP, offset_blocks, num_blocks, cb, cb_arg);
}

static void
log_io_error(const struct aioblk_channel *ch, const struct aioblk_req *req, int status)
{
	aioblk_log(AIOBLK_LOG_ERR, "%s: %s of %llu bytes at %llu failed: %s", ch->disk->name,
		   req->op == OP_READ  ? "read" :
		   req->op == OP_WRITE ? "write" :
					 "flush",
		   (unsigned long long)req->len, (unsigned long long)req->offset, strerror(-status));
}

/*
 * Decode one kernel completion. io_event.res is a signed 64-bit value
 * (libaio declares it unsigned): negative is -errno; for reads and writes
 * exactly the remaining length is success, 0 is no progress (-EIO), and a
 * shorter count is continued from where it stopped.
 * Returns 1 when the request's callback ran, 0 when it went back to the queue.
 */
unsigned
io_complete_event(struct aioblk_channel *ch, struct aioblk_req *req, int64_t res)
{
	int status;

	ch->in_kernel--;
	if (req->op == OP_FLUSH) {
		status = res >= 0 ? 0 : res < -4095 ? -EIO : (int)res;
		goto finish;
	}
	if (unlikely(res < 0)) {
#ifdef AIOBLK_HAVE_RW_FLAGS
		if (res == -EAGAIN && (req->iocb.aio_rw_flags & RWF_NOWAIT)) {
			/* It would have blocked: once more, allowed to block. Never requeued with NOWAIT. */
			req->nowait_retried = true;
			ch->stats.retries++;
			io_prep(ch, req);
			channel_enqueue(ch, req);
			return 0;
		}
#endif
		status = res < -4095 ? -EIO : (int)res;
		goto finish;
	}
	if (unlikely(res == 0 || (uint64_t)res > req->len - req->done)) {
		status = -EIO;
		goto finish;
	}
	req->done += (uint64_t)res;
	if (unlikely(req->done < req->len)) {
		ch->stats.retries++;
		io_prep(ch, req);
		channel_enqueue(ch, req);
		return 0;
	}
	if (req->bounce && req->op == OP_READ)
		copy_to_iov(req->iov, req->iovcnt, req->bounce);
	status = 0;
finish:
	if (unlikely(status < 0)) {
		log_io_error(ch, req, status);
		/* A block device that reads size 0 now is gone: say so, not just EIO. */
		disk_check_lost(ch->disk);
		if (atomic_load_explicit(&ch->disk->lost, memory_order_relaxed))
			status = -ENODEV;
	}
	channel_finish(ch, req, status);
	return 1;
}
