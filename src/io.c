/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The public I/O calls: validate, fill the request, hand it to its channel
 * (or, for what the kernel cannot do through AIO, to the offload pool).
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

	req = chan_get_req(ch, op, cb, cb_arg);
	if (unlikely(!req))
		return -EAGAIN;
	if (unlikely(!aligned)) {
		if (!ch->bounce_nfree) {
			chan_put_req(ch, req);
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
	req_prep(ch, req);
	chan_accept(ch, req);
	submit_enqueue(ch, req);
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
	req = chan_get_req(ch, OP_FLUSH, cb, cb_arg);
	if (!req)
		return -EAGAIN;
	chan_accept(ch, req);
	if (atomic_load_explicit(&ch->disk->flush_mode, memory_order_relaxed) == FLUSH_SYNC) {
		/* fdatasync(2) on a worker: it covers every write completed before now. */
		offload_queue(req);
		return 0;
	}
	req_prep(ch, req);
	submit_enqueue(ch, req);
	return 0;
}

AIOBLK_EXPORT int
aioblk_reset(struct aioblk_channel *ch, aioblk_cb cb, void *cb_arg)
{
	if (!ch || !cb)
		return -EINVAL;
	return reset_add(ch, cb, cb_arg);
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
	req = chan_get_req(ch, op, cb, cb_arg);
	if (!req)
		return -EAGAIN;
	req->offset = offset;
	req->len = len;
	chan_accept(ch, req);
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
