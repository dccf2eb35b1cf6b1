/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Requests on their way to the kernel and back: filling the iocb for what
 * is left of a request, and decoding what the kernel answers, continuing
 * short transfers and retrying what RWF_NOWAIT turned away.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/uio.h>

#include "internal.h"

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

/*
 * Fill the iocb for what is left of a read or write (all of it, or the rest
 * of a short transfer), at most @cap bytes of it (0: no cap) where the
 * device's queue could not take it whole: the rest follows like the rest of
 * a short transfer.
 */
static void
prep_rw(struct aioblk_channel *ch, struct aioblk_req *req)
{
	struct iocb *iocb = &req->iocb;
	int fd = ch->disk->fd;
	uint64_t pos = req->offset + req->done;
	size_t left = req->len - req->done;
	uint64_t cap = disk_iocb_cap(ch->disk);
	bool rd = req->op == OP_READ;
	const struct iovec *iov = req->iov;
	int iovcnt = req->iovcnt;
	uint64_t skip = req->done;

	if (unlikely(cap && left > cap))
		left = (size_t)cap;

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

			if (n > left)
				n = left;
			rd ? io_prep_pread(iocb, fd, buf, n, pos) : io_prep_pwrite(iocb, fd, buf, n, pos);
		} else if (unlikely(left < req->len - req->done)) {
			/* Capped: the whole iovecs that fit, or the first part of the first one. */
			size_t sum = 0;
			int k = 0;

			while (k < iovcnt && sum + iov[k].iov_len <= left)
				sum += iov[k++].iov_len;
			if (k == 0)
				rd ? io_prep_pread(iocb, fd, iov->iov_base, left, pos) :
				     io_prep_pwrite(iocb, fd, iov->iov_base, left, pos);
			else
				rd ? io_prep_preadv(iocb, fd, iov, k, pos) : io_prep_pwritev(iocb, fd, iov, k, pos);
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
req_prep(struct aioblk_channel *ch, struct aioblk_req *req)
{
	if (req->op == OP_FLUSH)
		io_prep_fdsync(&req->iocb, ch->disk->fd);
	else
		prep_rw(ch, req);
	req->iocb.data = req;
	if (ch->wake->efd >= 0)
		io_set_eventfd(&req->iocb, ch->wake->efd);
}

static const char *
op_name(const struct aioblk_req *req)
{
	switch (req->op) {
	case OP_READ:
		return "read";
	case OP_WRITE:
		return "write";
	case OP_FLUSH:
		return "flush";
	case OP_ZERO:
		return "write-zeroes";
	default:
		return "unmap";
	}
}

/* A request failed: say so, and on a block device that reads size 0 now, say it is gone (-ENODEV). */
static int
failed_status(struct aioblk_channel *ch, const struct aioblk_req *req, int status)
{
	aioblk_log(AIOBLK_LOG_ERR, "%s: %s of %llu bytes at %llu failed: %s", ch->disk->name, op_name(req),
		   (unsigned long long)req->len, (unsigned long long)req->offset, strerror(-status));
	disk_check_lost(ch->disk);
	return atomic_load_explicit(&ch->disk->lost, memory_order_relaxed) ? -ENODEV : status;
}

/*
 * Decode one kernel completion. io_event.res is a signed 64-bit value
 * (libaio declares it unsigned): negative is -errno; for reads and writes
 * exactly the remaining length is success, 0 is no progress (-EIO), and a
 * shorter count is continued from where it stopped.
 * Returns 1 when the request's callback ran, 0 when it went back to the queue.
 */
unsigned
req_complete_event(struct aioblk_channel *ch, struct aioblk_req *req, int64_t res)
{
	int status;

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
			req_prep(ch, req);
			submit_enqueue(ch, req);
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
		req_prep(ch, req);
		submit_enqueue(ch, req);
		return 0;
	}
	if (req->bounce && req->op == OP_READ)
		copy_to_iov(req->iov, req->iovcnt, req->bounce);
	status = 0;
finish:
	if (unlikely(status < 0))
		status = failed_status(ch, req, status);
	chan_finish(ch, req, status);
	return 1;
}

/*
 * A request a library thread finished (offload.c): to the channel's done
 * list, which this poll runs. A refusal (-EOPNOTSUPP: nothing was done) is
 * no failure to report.
 */
void
req_complete_offloaded(struct aioblk_channel *ch, struct aioblk_req *req)
{
	int status = req->status;

	if (status < 0 && status != -EOPNOTSUPP)
		status = failed_status(ch, req, status);
	chan_complete_later(ch, req, status);
}
