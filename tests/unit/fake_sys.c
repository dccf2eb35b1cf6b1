/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The scriptable kernel of fake_sys.h. The library's calls to
 * aioblk_sys_<name> arrive here as __wrap_aioblk_sys_<name> (link with
 * -Wl,--wrap=aioblk_sys_<name>); __real_aioblk_sys_<name> is sys.c.
 */
#define _GNU_SOURCE
#include "fake_sys.h"

#include <errno.h>
#include <limits.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "internal.h"

/* The wrapped names, as the linker sees them. */
int __real_aioblk_sys_io_setup(unsigned nr, io_context_t *ctx);
int __real_aioblk_sys_io_destroy(io_context_t ctx);
int __real_aioblk_sys_io_submit(io_context_t ctx, long nr, struct iocb **iocbs);
int __real_aioblk_sys_io_getevents(io_context_t ctx, long min_nr, long nr, struct io_event *events,
				   struct timespec *timeout);
int __real_aioblk_sys_eventfd(void);
int __real_aioblk_sys_eventfd_read(int fd, uint64_t *value);
int __real_aioblk_sys_eventfd_write(int fd, uint64_t value);
int __real_aioblk_sys_poll_in(int fd, const struct timespec *timeout);
int __real_aioblk_sys_fdatasync(int fd);
int __real_aioblk_sys_file_info(int fd, struct aioblk_sys_file_info *info);
int __real_aioblk_sys_blkdev_sector_size(int fd, uint32_t *bytes);
int __real_aioblk_sys_blkdev_size(int fd, uint64_t *bytes);
int __real_aioblk_sys_blkdev_range(int fd, unsigned long request, uint64_t offset, uint64_t len);

int __wrap_aioblk_sys_io_setup(unsigned nr, io_context_t *ctx);
int __wrap_aioblk_sys_io_destroy(io_context_t ctx);
int __wrap_aioblk_sys_io_submit(io_context_t ctx, long nr, struct iocb **iocbs);
int __wrap_aioblk_sys_io_getevents(io_context_t ctx, long min_nr, long nr, struct io_event *events,
				   struct timespec *timeout);
int __wrap_aioblk_sys_eventfd(void);
int __wrap_aioblk_sys_eventfd_read(int fd, uint64_t *value);
int __wrap_aioblk_sys_eventfd_write(int fd, uint64_t value);
int __wrap_aioblk_sys_poll_in(int fd, const struct timespec *timeout);
int __wrap_aioblk_sys_fdatasync(int fd);
int __wrap_aioblk_sys_file_info(int fd, struct aioblk_sys_file_info *info);
int __wrap_aioblk_sys_blkdev_sector_size(int fd, uint32_t *bytes);
int __wrap_aioblk_sys_blkdev_size(int fd, uint64_t *bytes);
int __wrap_aioblk_sys_blkdev_range(int fd, unsigned long request, uint64_t offset, uint64_t len);

unsigned fake_calls[FAKE_NFN];
struct fake_iocb fake_log[FAKE_LOG_MAX];
unsigned fake_nlog;

static struct {
	int err;
	unsigned times;
} fail_rule[FAKE_NFN];

static unsigned take_k, take_times;
#define MAX_SCRIPT 64
static int submit_seq[MAX_SCRIPT];
static unsigned submit_seq_len, submit_seq_pos;

#define MAX_RULES 32
static struct {
	uint64_t offset;
	int err;
	unsigned times;
} refuse_rule[MAX_RULES];
static unsigned nrefuse;

static struct {
	uint64_t offset;
	int64_t res;
	unsigned times;
	unsigned flags;
} result_rule[MAX_RULES];
static unsigned nresult;

static bool kernel_on, kernel_bad_magic, corrupt_on, blockdev_on, blockdev_gone;
static uint32_t blockdev_sector;
static bool dio_on;
static uint32_t dio_mem, dio_offset;

/* Fake contexts: rings in user memory. */
#define MAX_FAKE_CTX 64
static struct aio_ring *fake_ctx[MAX_FAKE_CTX];

/* Completions kept back by fake_hold(), oldest first, each with the ring it belongs to. */
#define MAX_HELD 1024
static struct {
	struct aio_ring *ring;
	struct io_event ev;
	const struct iocb *iocb; /* for its eventfd (IOCB_FLAG_RESFD), signalled when posted */
} held[MAX_HELD];
static unsigned nheld;
static enum fake_hold_mode hold_mode;
static unsigned wake_posts = 1;

struct fake_getevents fake_getevents_log[FAKE_GETEVENTS_LOG_MAX];
unsigned fake_ngetevents;
struct fake_getevents fake_getevents_last;
struct fake_getevents_sum fake_getevents_sum;

#define LOG_KEEP 64
static char log_msgs[LOG_KEEP][512];
static unsigned log_next;

void
fake_reset(void)
{
	memset(fake_calls, 0, sizeof(fake_calls));
	memset(fail_rule, 0, sizeof(fail_rule));
	take_k = take_times = 0;
	submit_seq_len = submit_seq_pos = 0;
	nrefuse = nresult = 0;
	fake_nlog = 0;
	kernel_on = kernel_bad_magic = corrupt_on = false;
	blockdev_on = blockdev_gone = false;
	blockdev_sector = 0;
	dio_on = false;
	fake_fdatasync_gate(false);
	hold_mode = FAKE_HOLD_OFF;
	wake_posts = 1;
	nheld = 0;
	memset(&fake_getevents_last, 0, sizeof(fake_getevents_last));
	fake_getevents_clear();
	fake_log_clear();
}

void
fake_getevents_clear(void)
{
	fake_ngetevents = 0;
	memset(&fake_getevents_sum, 0, sizeof(fake_getevents_sum));
	fake_getevents_sum.min_timeout_ns = INT64_MAX;
	fake_getevents_sum.max_timeout_ns = -1;
}

void
fake_clear_rules(void)
{
	memset(fail_rule, 0, sizeof(fail_rule));
	take_k = take_times = 0;
	submit_seq_len = submit_seq_pos = 0;
	nrefuse = nresult = 0;
}

void
fake_fail(enum fake_fn fn, int err, unsigned times)
{
	fail_rule[fn].err = err;
	fail_rule[fn].times = times;
}

void
fake_submit_take(unsigned k, unsigned times)
{
	take_k = k;
	take_times = times;
}

void
fake_submit_script(const int *seq, unsigned n)
{
	if (n > MAX_SCRIPT)
		abort();
	memcpy(submit_seq, seq, n * sizeof(*seq));
	submit_seq_len = n;
	submit_seq_pos = 0;
}

void
fake_refuse_offset(uint64_t offset, int err, unsigned times)
{
	if (nrefuse == MAX_RULES)
		abort();
	refuse_rule[nrefuse].offset = offset;
	refuse_rule[nrefuse].err = err;
	refuse_rule[nrefuse].times = times;
	nrefuse++;
}

void
fake_result(uint64_t offset, int64_t res, unsigned times, unsigned flags)
{
	if (nresult == MAX_RULES)
		abort();
	result_rule[nresult].offset = offset;
	result_rule[nresult].res = res;
	result_rule[nresult].times = times;
	result_rule[nresult].flags = flags;
	nresult++;
}

void
fake_kernel(bool on, bool bad_magic)
{
	kernel_on = on;
	kernel_bad_magic = bad_magic;
}

void
fake_corrupt_ring(bool on)
{
	corrupt_on = on;
}

void
fake_blockdev(bool on, uint32_t sector)
{
	blockdev_on = on;
	blockdev_sector = sector;
}

void
fake_dio_align(bool on, uint32_t mem_align, uint32_t offset_align)
{
	dio_on = on;
	dio_mem = mem_align;
	dio_offset = offset_align;
}

void
fake_blockdev_gone(bool gone)
{
	blockdev_gone = gone;
}

void
fake_log_fn(int level, const char *msg, void *arg)
{
	(void)level;
	(void)arg;
	snprintf(log_msgs[log_next % LOG_KEEP], sizeof(log_msgs[0]), "%s", msg);
	log_next++;
}

bool
fake_log_has(const char *needle)
{
	unsigned i;

	for (i = 0; i < LOG_KEEP; i++)
		if (strstr(log_msgs[i], needle))
			return true;
	return false;
}

void
fake_log_clear(void)
{
	memset(log_msgs, 0, sizeof(log_msgs));
	log_next = 0;
}

/* A scripted failure of @fn, if one is due. */
static int
take_fail(enum fake_fn fn)
{
	fake_calls[fn]++;
	if (!fail_rule[fn].times)
		return 0;
	fail_rule[fn].times--;
	return fail_rule[fn].err;
}

static uint64_t
iocb_nbytes(const struct iocb *iocb)
{
	uint64_t total = 0;
	unsigned long i;

	switch (iocb->aio_lio_opcode) {
	case IO_CMD_PREAD:
	case IO_CMD_PWRITE:
		return iocb->u.c.nbytes;
	case IO_CMD_PREADV:
	case IO_CMD_PWRITEV:
		for (i = 0; i < iocb->u.v.nr; i++)
			total += iocb->u.v.vec[i].iov_len;
		return total;
	default:
		return 0;
	}
}

static bool
is_rw(const struct iocb *iocb)
{
	return iocb->aio_lio_opcode == IO_CMD_PREAD || iocb->aio_lio_opcode == IO_CMD_PWRITE ||
	       iocb->aio_lio_opcode == IO_CMD_PREADV || iocb->aio_lio_opcode == IO_CMD_PWRITEV;
}

static void
log_iocb(const struct iocb *iocb, int refused)
{
	struct fake_iocb *l;
	bool vec = iocb->aio_lio_opcode == IO_CMD_PREADV || iocb->aio_lio_opcode == IO_CMD_PWRITEV;

	if (fake_nlog == FAKE_LOG_MAX)
		return;
	l = &fake_log[fake_nlog++];
	l->opcode = iocb->aio_lio_opcode;
	l->offset = is_rw(iocb) ? (uint64_t)iocb->u.c.offset : 0;
	l->nbytes = iocb_nbytes(iocb);
	l->buf = vec ? (iocb->u.v.nr ? iocb->u.v.vec[0].iov_base : NULL) : iocb->u.c.buf;
	l->iovcnt = vec ? (int)iocb->u.v.nr : 1;
	l->rw_flags = iocb->aio_rw_flags;
	l->data = iocb->data;
	l->refused = refused;
}

/* The errno to refuse this iocb with (the rule is used up only when @consume); 0 when none applies. */
static int
refusal(const struct iocb *iocb, bool consume)
{
	bool flush = iocb->aio_lio_opcode == IO_CMD_FDSYNC || iocb->aio_lio_opcode == IO_CMD_FSYNC;
	uint64_t key = flush ? FAKE_FLUSH : (uint64_t)iocb->u.c.offset;
	unsigned i;

	if (!is_rw(iocb) && !flush)
		return 0;
	for (i = 0; i < nrefuse; i++) {
		if (refuse_rule[i].times && refuse_rule[i].offset == key) {
			if (consume)
				refuse_rule[i].times--;
			return refuse_rule[i].err;
		}
	}
	return 0;
}

/* Whether a completion rule applies; it is consumed then. */
static bool
result_override(const struct iocb *iocb, int64_t *res)
{
	uint64_t key = is_rw(iocb) ? (uint64_t)iocb->u.c.offset : FAKE_FLUSH;
	unsigned i;

	if (!is_rw(iocb) && iocb->aio_lio_opcode != IO_CMD_FDSYNC && iocb->aio_lio_opcode != IO_CMD_FSYNC)
		return false;
	for (i = 0; i < nresult; i++) {
		if (!result_rule[i].times || result_rule[i].offset != key)
			continue;
		if ((result_rule[i].flags & FAKE_RES_NOWAIT_ONLY) && !(iocb->aio_rw_flags & RWF_NOWAIT))
			continue;
		result_rule[i].times--;
		*res = result_rule[i].res;
		return true;
	}
	return false;
}

static struct aio_ring *
find_fake(io_context_t ctx)
{
	unsigned i;

	for (i = 0; i < MAX_FAKE_CTX; i++)
		if (fake_ctx[i] && (void *)fake_ctx[i] == (void *)ctx)
			return fake_ctx[i];
	return NULL;
}

unsigned
fake_pending(void)
{
	unsigned i, n = 0;

	for (i = 0; i < MAX_FAKE_CTX; i++)
		if (fake_ctx[i])
			n += (fake_ctx[i]->tail + fake_ctx[i]->nr - fake_ctx[i]->head) % fake_ctx[i]->nr;
	return n + nheld;
}

unsigned
fake_held(void)
{
	return nheld;
}

static void signal_resfd(const struct iocb *iocb);

/* Completions in @ring, posted or not: what the ring must still find room for. */
static unsigned
ring_used(const struct aio_ring *ring)
{
	unsigned i, n = (ring->tail + ring->nr - ring->head) % ring->nr;

	for (i = 0; i < nheld; i++)
		n += held[i].ring == ring;
	return n;
}

/* Post the held completion at index @k into its ring. */
static void
post_held(unsigned k)
{
	struct aio_ring *ring = held[k].ring;
	uint32_t next = ring->tail + 1 == ring->nr ? 0 : ring->tail + 1;
	const struct iocb *iocb = held[k].iocb;

	if (next == ring->head)
		abort(); /* fake_submit kept room for every held completion */
	ring->events[ring->tail] = held[k].ev;
	__atomic_store_n(&ring->tail, next, __ATOMIC_RELEASE);
	memmove(&held[k], &held[k + 1], (nheld - k - 1) * sizeof(held[0]));
	nheld--;
	signal_resfd(iocb);
}

unsigned
fake_release(unsigned n)
{
	unsigned done = 0;

	while (done < n && nheld) {
		post_held(0);
		done++;
	}
	return done;
}

void
fake_wake_posts(unsigned k)
{
	wake_posts = k ? k : 1;
}

void
fake_hold(enum fake_hold_mode mode)
{
	hold_mode = mode;
	if (mode == FAKE_HOLD_OFF)
		fake_release(UINT_MAX);
}

int
__wrap_aioblk_sys_io_setup(unsigned nr, io_context_t *ctx)
{
	struct aio_ring *ring;
	unsigned i, slots;
	int rc = take_fail(FAKE_IO_SETUP);

	if (rc)
		return rc;
	if (!kernel_on) {
		rc = __real_aioblk_sys_io_setup(nr, ctx);
		if (rc == 0 && corrupt_on)
			((struct aio_ring *)*ctx)->magic = 0xdeadbeef;
		return rc;
	}
	/* Like the kernel: more slots than asked for, and not a power of two. */
	slots = nr + 3;
	for (i = 0; i < MAX_FAKE_CTX && fake_ctx[i]; i++)
		;
	if (i == MAX_FAKE_CTX)
		return -EAGAIN;
	ring = calloc(1, sizeof(*ring) + (size_t)slots * sizeof(struct io_event));
	if (!ring)
		return -ENOMEM;
	ring->id = i;
	ring->nr = slots;
	ring->magic = kernel_bad_magic ? 0x12345678u : AIO_RING_MAGIC;
	ring->header_length = sizeof(*ring);
	fake_ctx[i] = ring;
	*ctx = (io_context_t)ring;
	return 0;
}

int
__wrap_aioblk_sys_io_destroy(io_context_t ctx)
{
	unsigned i;
	int rc = take_fail(FAKE_IO_DESTROY);

	for (i = 0; i < MAX_FAKE_CTX; i++) {
		if (fake_ctx[i] && (void *)fake_ctx[i] == (void *)ctx) {
			unsigned k = 0;

			/* The kernel waits for (or cancels) what is in flight: nothing of it survives. */
			while (k < nheld) {
				if (held[k].ring == fake_ctx[i]) {
					memmove(&held[k], &held[k + 1], (nheld - k - 1) * sizeof(held[0]));
					nheld--;
				} else {
					k++;
				}
			}
			free(fake_ctx[i]);
			fake_ctx[i] = NULL;
			return rc;
		}
	}
	if (rc)
		return rc; /* the real context leaks, as it would if the kernel failed */
	return __real_aioblk_sys_io_destroy(ctx);
}

/* Move the bytes of a read or write, at most @limit of them; returns res. */
static int64_t
do_rw(const struct iocb *iocb, uint64_t limit)
{
	struct iovec one, *iov;
	int iovcnt, i, fd = iocb->aio_fildes;
	bool rd = iocb->aio_lio_opcode == IO_CMD_PREAD || iocb->aio_lio_opcode == IO_CMD_PREADV;
	uint64_t left = limit;
	ssize_t n;
	int64_t res;

	if (iocb->aio_lio_opcode == IO_CMD_PREAD || iocb->aio_lio_opcode == IO_CMD_PWRITE) {
		one.iov_base = iocb->u.c.buf;
		one.iov_len = iocb->u.c.nbytes;
		iov = &one;
		iovcnt = 1;
	} else {
		iovcnt = (int)iocb->u.v.nr;
		iov = calloc((size_t)iovcnt ? (size_t)iovcnt : 1, sizeof(*iov));
		if (!iov)
			return -ENOMEM;
		memcpy(iov, iocb->u.v.vec, (size_t)iovcnt * sizeof(*iov));
	}
	/* Cut the iovecs down to @limit bytes. */
	for (i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len > left)
			iov[i].iov_len = left;
		left -= iov[i].iov_len;
	}
	n = rd ? preadv(fd, iov, iovcnt, (off_t)iocb->u.c.offset) : pwritev(fd, iov, iovcnt, (off_t)iocb->u.c.offset);
	res = n < 0 ? -errno : n;
	if (iov != &one)
		free(iov);
	return res;
}

/* What the fake kernel does with one iocb. */
static int64_t
fake_execute(const struct iocb *iocb)
{
	int64_t res;
	uint64_t len = iocb_nbytes(iocb);

	if (result_override(iocb, &res)) {
		if (res > 0 && (uint64_t)res < len)
			return do_rw(iocb, (uint64_t)res);
		return res;
	}
	if (iocb->aio_lio_opcode == IO_CMD_FDSYNC || iocb->aio_lio_opcode == IO_CMD_FSYNC)
		return __real_aioblk_sys_fdatasync(iocb->aio_fildes);
	return do_rw(iocb, len);
}

static void
signal_resfd(const struct iocb *iocb)
{
	uint64_t one = 1;

	if (iocb->u.c.flags & (1u << 0) /* IOCB_FLAG_RESFD */) {
		if (write((int)iocb->u.c.resfd, &one, sizeof(one)) != sizeof(one))
			abort();
	}
}

static int
fake_submit(struct aio_ring *ring, long nr, struct iocb **iocbs)
{
	long i;
	uint32_t next;

	for (i = 0; i < nr; i++) {
		struct io_event *ev;

		next = ring->tail + 1 == ring->nr ? 0 : ring->tail + 1;
		if (next == ring->head || ring_used(ring) + 1 >= ring->nr)
			return i ? (int)i : -EAGAIN; /* no room for the completion */
		if (hold_mode != FAKE_HOLD_OFF && nheld == MAX_HELD)
			abort();
		log_iocb(iocbs[i], 0);
		ev = hold_mode != FAKE_HOLD_OFF ? &held[nheld].ev : &ring->events[ring->tail];
		memset(ev, 0, sizeof(*ev));
		ev->data = iocbs[i]->data;
		ev->obj = iocbs[i];
		ev->res = (unsigned long)fake_execute(iocbs[i]);
		if (hold_mode != FAKE_HOLD_OFF) {
			/* Done, but not announced: fake_release() or a sleeping io_getevents posts it. */
			held[nheld].ring = ring;
			held[nheld].iocb = iocbs[i];
			nheld++;
			continue;
		}
		/* The kernel's order: the event, a write barrier, then tail. */
		__atomic_store_n(&ring->tail, next, __ATOMIC_RELEASE);
		signal_resfd(iocbs[i]);
	}
	return (int)nr;
}

int
__wrap_aioblk_sys_io_submit(io_context_t ctx, long nr, struct iocb **iocbs)
{
	struct aio_ring *ring = find_fake(ctx);
	long limit = nr, i;
	int rc = take_fail(FAKE_IO_SUBMIT);

	if (rc)
		return rc;
	if (submit_seq_pos < submit_seq_len) {
		int v = submit_seq[submit_seq_pos++];

		if (v <= 0)
			return v;
		if (v < limit)
			limit = v;
	} else if (take_times && nr > 0) {
		take_times--;
		if ((long)take_k < limit)
			limit = take_k;
	}
	for (i = 0; i < limit; i++) {
		/* Only the iocb that comes first is refused now; before it, the batch is cut. */
		int err = refusal(iocbs[i], i == 0);

		if (!err)
			continue;
		if (i == 0) {
			log_iocb(iocbs[0], -err);
			return err;
		}
		limit = i;
		break;
	}
	if (ring)
		return fake_submit(ring, limit, iocbs);
	rc = __real_aioblk_sys_io_submit(ctx, limit, iocbs);
	for (i = 0; i < rc; i++)
		log_iocb(iocbs[i], 0);
	return rc;
}

/* What the library asked io_getevents for: the last call, the log, the sums. */
static void
record_getevents(long min_nr, long nr, const struct timespec *timeout)
{
	struct fake_getevents g = {
		.min_nr = min_nr,
		.nr = nr,
		.timeout_ns = timeout ? (int64_t)timeout->tv_sec * 1000000000 + timeout->tv_nsec : -1,
		.submitted = fake_nlog,
		.held = nheld,
	};

	fake_getevents_last = g;
	if (fake_ngetevents < FAKE_GETEVENTS_LOG_MAX)
		fake_getevents_log[fake_ngetevents] = g;
	fake_ngetevents++;
	if (min_nr < 1)
		return;
	fake_getevents_sum.blocking++;
	if (!timeout) {
		fake_getevents_sum.no_timeout++;
		return;
	}
	fake_getevents_sum.zero_timeout += g.timeout_ns == 0;
	if (g.timeout_ns < fake_getevents_sum.min_timeout_ns)
		fake_getevents_sum.min_timeout_ns = g.timeout_ns;
	if (g.timeout_ns > fake_getevents_sum.max_timeout_ns)
		fake_getevents_sum.max_timeout_ns = g.timeout_ns;
}

int
__wrap_aioblk_sys_io_getevents(io_context_t ctx, long min_nr, long nr, struct io_event *events,
			       struct timespec *timeout)
{
	struct aio_ring *ring = find_fake(ctx);
	int rc;
	int i;

	record_getevents(min_nr, nr, timeout);
	rc = take_fail(FAKE_IO_GETEVENTS);
	if (rc)
		return rc;
	if (ring) {
		/* Like the kernel, trust no index the user may have written. */
		uint32_t head = ring->head % ring->nr;

		if (min_nr >= 1 && head == ring->tail) {
			unsigned k;

			/* Asleep on an empty ring: the oldest request of this context finishes meanwhile. */
			for (k = 0; k < nheld && held[k].ring != ring; k++)
				;
			if (hold_mode == FAKE_HOLD_UNTIL_WAIT && k < nheld) {
				unsigned posted = 0;

				/* Posting shifts the later ones down to k. */
				while (k < nheld && posted < wake_posts) {
					if (held[k].ring == ring) {
						post_held(k);
						posted++;
					} else {
						k++;
					}
				}
			} else {
				/* Nothing finishes: the timeout passes at once (none: the real kernel would hang). */
				if (!timeout)
					fake_getevents_sum.would_hang += k == nheld;
				return 0;
			}
		}

		for (i = 0; i < nr && head != ring->tail; i++) {
			events[i] = ring->events[head];
			head = head + 1 == ring->nr ? 0 : head + 1;
		}
		ring->head = head;
		return i;
	}
	rc = __real_aioblk_sys_io_getevents(ctx, min_nr, nr, events, timeout);
	/* Real completions: rules rewrite what the kernel reported. */
	for (i = 0; i < rc; i++) {
		int64_t res;

		if (result_override(events[i].obj, &res))
			events[i].res = (unsigned long)res;
	}
	return rc;
}

int
__wrap_aioblk_sys_eventfd(void)
{
	int rc = take_fail(FAKE_EVENTFD);

	return rc ? rc : __real_aioblk_sys_eventfd();
}

int
__wrap_aioblk_sys_eventfd_read(int fd, uint64_t *value)
{
	int rc = take_fail(FAKE_EVENTFD_READ);

	return rc ? rc : __real_aioblk_sys_eventfd_read(fd, value);
}

int
__wrap_aioblk_sys_eventfd_write(int fd, uint64_t value)
{
	int rc = take_fail(FAKE_EVENTFD_WRITE);

	return rc ? rc : __real_aioblk_sys_eventfd_write(fd, value);
}

int
__wrap_aioblk_sys_poll_in(int fd, const struct timespec *timeout)
{
	int rc = take_fail(FAKE_POLL_IN);

	return rc ? rc : __real_aioblk_sys_poll_in(fd, timeout);
}

/* fdatasync runs on library threads: its gate is the one thread-safe part of the fake. */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool gate_closed;
static unsigned gate_waiting;

void
fake_fdatasync_gate(bool closed)
{
	pthread_mutex_lock(&gate_lock);
	gate_closed = closed;
	pthread_cond_broadcast(&gate_cond);
	pthread_mutex_unlock(&gate_lock);
}

unsigned
fake_fdatasync_waiting(void)
{
	unsigned n;

	pthread_mutex_lock(&gate_lock);
	n = gate_waiting;
	pthread_mutex_unlock(&gate_lock);
	return n;
}

int
__wrap_aioblk_sys_fdatasync(int fd)
{
	int rc;

	pthread_mutex_lock(&gate_lock);
	gate_waiting++;
	while (gate_closed)
		pthread_cond_wait(&gate_cond, &gate_lock);
	gate_waiting--;
	rc = take_fail(FAKE_FDATASYNC);
	pthread_mutex_unlock(&gate_lock);

	return rc ? rc : __real_aioblk_sys_fdatasync(fd);
}

int
__wrap_aioblk_sys_file_info(int fd, struct aioblk_sys_file_info *info)
{
	int rc = take_fail(FAKE_FILE_INFO);

	if (rc)
		return rc;
	rc = __real_aioblk_sys_file_info(fd, info);
	if (rc == 0 && dio_on && info->type == S_IFREG) {
		info->dio_known = true;
		info->dio_mem_align = dio_mem;
		info->dio_offset_align = dio_offset;
	}
	if (rc == 0 && blockdev_on && info->type == S_IFREG) {
		info->type = S_IFBLK;
		info->dio_known = false;
		info->dio_mem_align = 0;
		info->dio_offset_align = 0;
	}
	return rc;
}

int
__wrap_aioblk_sys_blkdev_sector_size(int fd, uint32_t *bytes)
{
	if (!blockdev_on)
		return __real_aioblk_sys_blkdev_sector_size(fd, bytes);
	*bytes = blockdev_sector;
	return 0;
}

int
__wrap_aioblk_sys_blkdev_size(int fd, uint64_t *bytes)
{
	struct aioblk_sys_file_info info;
	int rc = take_fail(FAKE_BLKDEV_SIZE);

	if (rc)
		return rc;
	if (!blockdev_on)
		return __real_aioblk_sys_blkdev_size(fd, bytes);
	if (blockdev_gone) {
		*bytes = 0;
		return 0;
	}
	rc = __real_aioblk_sys_file_info(fd, &info);
	if (rc == 0)
		*bytes = info.size;
	return rc;
}

int
__wrap_aioblk_sys_blkdev_range(int fd, unsigned long request, uint64_t offset, uint64_t len)
{
	/* A pretended block device can neither discard nor zero out. */
	if (blockdev_on)
		return -EOPNOTSUPP;
	return __real_aioblk_sys_blkdev_range(fd, request, offset, len);
}
