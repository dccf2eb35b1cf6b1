/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the kernel cannot do through AIO: write-zeroes, unmap and the
 * fdatasync(2) flush fallback. They block for as long as the file system or
 * device takes (a large zeroing for seconds), so they run on a few library
 * threads, never on the thread that polls. A finished request goes to its
 * group's inbox and the group's eventfd is made readable; its callback then
 * runs from a poll of that group, on the group's thread, like any other.
 *
 * The threads start when the first request needs one and stop when the last
 * disk closes (no request can be pending then: a disk with channels cannot
 * close, a channel with requests cannot be destroyed).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>

#include "internal.h"

#define OFFLOAD_MAX_THREADS 4

/* Zeroes for the last write-zeroes fallback; .bss, so it costs nothing until used. */
#define ZERO_BUF_SIZE (64u * 1024u)
static const char zero_buf[ZERO_BUF_SIZE] __attribute__((aligned(ZERO_BUF_SIZE)));

static struct {
	pthread_mutex_t lock;
	pthread_cond_t work; /* the queue is not empty, or the generation changed */
	struct aioblk_req *head, *tail;
	unsigned nqueued;    /* requests in the queue */
	unsigned users;      /* open disks */
	unsigned nthreads;   /* threads of the current generation */
	unsigned nidle;      /* of those, waiting for work */
	uint64_t generation; /* bumped when the last disk closes: the threads of older ones exit */
	pthread_t threads[OFFLOAD_MAX_THREADS];
} pool = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.work = PTHREAD_COND_INITIALIZER,
};

void
offload_ref(void)
{
	pthread_mutex_lock(&pool.lock);
	pool.users++;
	pthread_mutex_unlock(&pool.lock);
}

void
offload_unref(void)
{
	pthread_t threads[OFFLOAD_MAX_THREADS];
	unsigned n = 0, i;

	pthread_mutex_lock(&pool.lock);
	if (--pool.users == 0 && pool.nthreads) {
		pool.generation++;
		n = pool.nthreads;
		memcpy(threads, pool.threads, n * sizeof(*threads));
		pool.nthreads = 0;
		pool.nidle = 0;
		pthread_cond_broadcast(&pool.work);
	}
	pthread_mutex_unlock(&pool.lock);
	for (i = 0; i < n; i++)
		pthread_join(threads[i], NULL);
}

/* Write zeroes over [offset, offset + len), for the disk's zero mode or the one it falls back to. */
static int
write_zeroes_by_writing(struct aioblk_disk *disk, uint64_t offset, uint64_t len)
{
	uint64_t done;
	ssize_t n;

	if (atomic_exchange(&disk->zero_mode, ZERO_WRITE) != ZERO_WRITE)
		aioblk_log(AIOBLK_LOG_WARNING, "%s: zeroing refused by the kernel, writing zeroes", disk->name);
	if (disk->buf_align > ZERO_BUF_SIZE)
		return -EOPNOTSUPP;
	for (done = 0; done < len; done += (uint64_t)n) {
		size_t chunk = len - done < ZERO_BUF_SIZE ? (size_t)(len - done) : ZERO_BUF_SIZE;

		n = aioblk_sys_pwrite(disk->fd, zero_buf, chunk, offset + done);
		if (n < 0)
			return (int)n;
		if (n == 0)
			return -EIO;
	}
	return 0;
}

/*
 * Zero a range the way this disk allows, stepping down when the kernel
 * refuses. A step that refuses has changed nothing, except the allocation
 * after a punched hole: the range then already reads zeroes, and writing
 * them gives its blocks back, so zeroing goes on to the end and succeeds.
 */
static int
zero_range(struct aioblk_disk *disk, uint64_t offset, uint64_t len)
{
	int rc;

	switch (atomic_load(&disk->zero_mode)) {
	case ZERO_FALLOC:
		rc = aioblk_sys_fallocate(disk->fd, FALLOC_FL_ZERO_RANGE, offset, len);
		if (rc != -EOPNOTSUPP)
			return rc;
		aioblk_log(AIOBLK_LOG_WARNING, "%s: FALLOC_FL_ZERO_RANGE not supported, punching holes", disk->name);
		atomic_store(&disk->zero_mode, ZERO_PUNCH_ALLOC);
		/* fall through */
	case ZERO_PUNCH_ALLOC:
		rc = aioblk_sys_fallocate(disk->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, len);
		if (rc == 0) {
			rc = aioblk_sys_fallocate(disk->fd, FALLOC_FL_KEEP_SIZE, offset, len);
			/* ext2-style files punch holes but cannot allocate: the hole is filled by writing. */
			if (rc != -EOPNOTSUPP)
				return rc;
		} else if (rc != -EOPNOTSUPP) {
			return rc;
		}
		break;
	case ZERO_BLKZEROOUT:
		rc = aioblk_sys_blkdev_range(disk->fd, BLKZEROOUT, offset, len);
		if (rc != -EOPNOTSUPP)
			return rc;
		break;
	default:
		break;
	}
	return write_zeroes_by_writing(disk, offset, len);
}

/* Unmap a range; a refusal turns unmap off for the disk (aioblk_disk_supports says so from then on). */
static int
unmap_range(struct aioblk_disk *disk, uint64_t offset, uint64_t len)
{
	int mode = atomic_load(&disk->unmap_mode);
	int rc;

	if (mode == UNMAP_NONE)
		return -EOPNOTSUPP;
	if (mode == UNMAP_BLKDISCARD)
		rc = aioblk_sys_blkdev_range(disk->fd, BLKDISCARD, offset, len);
	else
		rc = aioblk_sys_fallocate(disk->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, len);
	if (rc == -EOPNOTSUPP && atomic_exchange(&disk->unmap_mode, UNMAP_NONE) != UNMAP_NONE)
		aioblk_log(AIOBLK_LOG_WARNING, "%s: unmap refused by the kernel, turned off", disk->name);
	return rc;
}

static int
run_request(struct aioblk_req *req)
{
	struct aioblk_disk *disk = req->ch->disk;
	const char *what;
	int rc;

	switch (req->op) {
	case OP_FLUSH:
		what = "fdatasync";
		rc = aioblk_sys_fdatasync(disk->fd);
		break;
	case OP_UNMAP:
		what = "unmap";
		rc = unmap_range(disk, req->offset, req->len);
		break;
	default:
		what = "write-zeroes";
		rc = zero_range(disk, req->offset, req->len);
		break;
	}
	if (rc < 0 && rc != -EOPNOTSUPP) {
		aioblk_log(AIOBLK_LOG_ERR, "%s: %s of %llu bytes at %llu failed: %s", disk->name, what,
			   (unsigned long long)req->len, (unsigned long long)req->offset, strerror(-rc));
		/* A block device that reads size 0 now is gone: say so, not just EIO. */
		disk_check_lost(disk);
		if (atomic_load(&disk->lost))
			rc = -ENODEV;
	}
	return rc;
}

/*
 * Hand a finished request to its group. The eventfd is written under the
 * inbox lock: the poll that runs the callback takes the lock first, so the
 * group (and its eventfd) cannot be destroyed before we are done with it.
 */
static void
deliver(struct aioblk_req *req, int status)
{
	struct aioblk_group *group = req->ch->group;
	int rc = 0;

	req->status = status;
	pthread_mutex_lock(&group->inbox_lock);
	req_fifo_push(&group->inbox_head, &group->inbox_tail, req);
	atomic_store_explicit(&group->inbox_ready, true, memory_order_release);
	if (group->efd >= 0)
		rc = group_signal(group);
	pthread_mutex_unlock(&group->inbox_lock);
	if (rc < 0)
		group_log_signal_error(rc);
}

static void *
worker_main(void *arg)
{
	uint64_t generation = (uintptr_t)arg;
	struct aioblk_req *req;

	pthread_mutex_lock(&pool.lock);
	for (;;) {
		while (!pool.head && pool.generation == generation) {
			pool.nidle++;
			pthread_cond_wait(&pool.work, &pool.lock);
			if (pool.generation != generation)
				break; /* offload_unref reset the counts */
			pool.nidle--;
		}
		if (pool.generation != generation)
			break;
		req = pool.head;
		pool.head = req->next;
		if (!pool.head)
			pool.tail = NULL;
		pool.nqueued--;
		pthread_mutex_unlock(&pool.lock);
		deliver(req, run_request(req));
		pthread_mutex_lock(&pool.lock);
	}
	pthread_mutex_unlock(&pool.lock);
	return NULL;
}

/* Start one more worker; called with the pool locked. Signals go to the application's threads, not ours. */
static int
start_worker(void)
{
	sigset_t all, old;
	int rc;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&pool.threads[pool.nthreads], NULL, worker_main, (void *)(uintptr_t)pool.generation);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc)
		return -rc;
	pthread_setname_np(pool.threads[pool.nthreads], "aioblk-offload");
	pool.nthreads++;
	return 0;
}

/*
 * Run an accepted request's blocking operation on a worker. Where no thread
 * can be had at all, it runs here: late, but never lost.
 */
void
offload_queue(struct aioblk_req *req)
{
	int rc = 0;

	pthread_mutex_lock(&pool.lock);
	/* Every idle worker already has a request waiting for it: one more thread. */
	if (pool.nqueued >= pool.nidle && pool.nthreads < OFFLOAD_MAX_THREADS)
		rc = start_worker();
	if (rc < 0 && pool.nthreads == 0) {
		pthread_mutex_unlock(&pool.lock);
		aioblk_log(AIOBLK_LOG_WARNING, "%s: no worker thread (%s): running on the caller's thread",
			   req->ch->disk->name, strerror(-rc));
		deliver(req, run_request(req));
		return;
	}
	req_fifo_push(&pool.head, &pool.tail, req);
	pool.nqueued++;
	pthread_cond_signal(&pool.work);
	pthread_mutex_unlock(&pool.lock);
}
