/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The fast path's promises, counted rather than timed:
 * - no heap allocation per I/O: malloc, calloc, realloc, posix_memalign
 *   and aligned_alloc are wrapped (-Wl,--wrap on the internal static
 *   library) and counted while thousands of I/Os run in steady state;
 * - no system call on a poll that finds nothing;
 * - one io_submit per channel per poll, carrying every queued request.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common.h"
#include "internal.h"

/* ---- counting wrappers ---- */

static atomic_ulong allocs;
static atomic_ulong n_submit, n_getevents, n_efd_read, n_efd_write, n_poll_in;
/* nr of each io_submit while recording (for the batching test). */
#define MAX_RECORDED 16
static long submit_nr[MAX_RECORDED];
static atomic_uint recorded;

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
int __real_posix_memalign(void **p, size_t align, size_t size);
void *__real_aligned_alloc(size_t align, size_t size);
void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t size);
int __wrap_posix_memalign(void **p, size_t align, size_t size);
void *__wrap_aligned_alloc(size_t align, size_t size);

void *
__wrap_malloc(size_t size)
{
	atomic_fetch_add(&allocs, 1);
	return __real_malloc(size);
}

void *
__wrap_calloc(size_t n, size_t size)
{
	atomic_fetch_add(&allocs, 1);
	return __real_calloc(n, size);
}

void *
__wrap_realloc(void *p, size_t size)
{
	atomic_fetch_add(&allocs, 1);
	return __real_realloc(p, size);
}

int
__wrap_posix_memalign(void **p, size_t align, size_t size)
{
	atomic_fetch_add(&allocs, 1);
	return __real_posix_memalign(p, align, size);
}

void *
__wrap_aligned_alloc(size_t align, size_t size)
{
	atomic_fetch_add(&allocs, 1);
	return __real_aligned_alloc(align, size);
}

int __real_aioblk_sys_io_submit(io_context_t ctx, long nr, struct iocb **iocbs);
int __real_aioblk_sys_io_getevents(io_context_t ctx, long min_nr, long nr, struct io_event *events,
				   struct timespec *timeout);
int __real_aioblk_sys_eventfd_read(int fd, uint64_t *value);
int __real_aioblk_sys_eventfd_write(int fd, uint64_t value);
int __real_aioblk_sys_poll_in(int fd, const struct timespec *timeout);
int __wrap_aioblk_sys_io_submit(io_context_t ctx, long nr, struct iocb **iocbs);
int __wrap_aioblk_sys_io_getevents(io_context_t ctx, long min_nr, long nr, struct io_event *events,
				   struct timespec *timeout);
int __wrap_aioblk_sys_eventfd_read(int fd, uint64_t *value);
int __wrap_aioblk_sys_eventfd_write(int fd, uint64_t value);
int __wrap_aioblk_sys_poll_in(int fd, const struct timespec *timeout);

int
__wrap_aioblk_sys_io_submit(io_context_t ctx, long nr, struct iocb **iocbs)
{
	unsigned i = atomic_fetch_add(&recorded, 1);

	if (i < MAX_RECORDED)
		submit_nr[i] = nr;
	atomic_fetch_add(&n_submit, 1);
	return __real_aioblk_sys_io_submit(ctx, nr, iocbs);
}

int
__wrap_aioblk_sys_io_getevents(io_context_t ctx, long min_nr, long nr, struct io_event *events,
			       struct timespec *timeout)
{
	atomic_fetch_add(&n_getevents, 1);
	return __real_aioblk_sys_io_getevents(ctx, min_nr, nr, events, timeout);
}

int
__wrap_aioblk_sys_eventfd_read(int fd, uint64_t *value)
{
	atomic_fetch_add(&n_efd_read, 1);
	return __real_aioblk_sys_eventfd_read(fd, value);
}

int
__wrap_aioblk_sys_eventfd_write(int fd, uint64_t value)
{
	atomic_fetch_add(&n_efd_write, 1);
	return __real_aioblk_sys_eventfd_write(fd, value);
}

int
__wrap_aioblk_sys_poll_in(int fd, const struct timespec *timeout)
{
	atomic_fetch_add(&n_poll_in, 1);
	return __real_aioblk_sys_poll_in(fd, timeout);
}

static unsigned long
syscalls(void)
{
	return atomic_load(&n_submit) + atomic_load(&n_getevents) + atomic_load(&n_efd_read) +
	       atomic_load(&n_efd_write) + atomic_load(&n_poll_in);
}

/* ---- a small closed-loop load generator ---- */

#define QD 32
#define NIOV 8
#define FILE_BYTES (16u << 20)

enum mode {
	MODE_BUF,    /* aioblk_read / aioblk_write on one aligned buffer, a flush now and then */
	MODE_IOV,    /* readv / writev with more iovecs than the request slot holds inline */
	MODE_BOUNCE, /* unaligned buffers through the channel's bounce buffers */
};

struct load;

struct slot {
	struct load *l;
	char *buf;
	struct iovec iov[NIOV];
};

struct load {
	enum mode mode;
	bool eventfd;
	char path[256];
	struct aioblk_disk *disk;
	struct aioblk_group *g;
	struct aioblk_channel *ch;
	uint32_t bs;   /* bytes per request */
	uint64_t nreq; /* request-sized units in the file */
	char *mem;
	struct slot slots[QD];
	uint64_t rng;
	uint64_t issued, done, target;
	int errors;
	int first_error;
};

static uint64_t
next_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void on_done(void *arg, int status);

static int
issue(struct load *l, struct slot *s)
{
	uint64_t r = next_rand(&l->rng);
	uint32_t blocks = l->bs / aioblk_disk_block_size(l->disk);
	uint64_t off = (r >> 8) % l->nreq * blocks;
	bool wr = r & 1;
	int rc;

	if (l->mode == MODE_BUF && (r & 0xff0) == 0)
		rc = aioblk_flush(l->ch, on_done, s);
	else if (l->mode == MODE_IOV)
		rc = wr ? aioblk_writev(l->ch, s->iov, NIOV, off, blocks, on_done, s) :
			  aioblk_readv(l->ch, s->iov, NIOV, off, blocks, on_done, s);
	else
		rc = wr ? aioblk_write(l->ch, s->buf, off, blocks, on_done, s) :
			  aioblk_read(l->ch, s->buf, off, blocks, on_done, s);
	if (rc == 0)
		l->issued++;
	return rc;
}

static void
on_done(void *arg, int status)
{
	struct slot *s = arg;
	struct load *l = s->l;
	int rc;

	l->done++;
	if (status < 0 && !l->errors++)
		l->first_error = status;
	if (l->issued < l->target) {
		rc = issue(l, s);
		if (rc < 0 && !l->errors++)
			l->first_error = rc;
	}
}

static void
load_setup(struct load *l, enum mode mode, bool eventfd)
{
	struct aioblk_channel_opts copts = { .queue_depth = QD };
	size_t align;
	unsigned i, k;
	int rc;

	memset(l, 0, sizeof(*l));
	l->mode = mode;
	l->eventfd = eventfd;
	l->rng = 12345;
	assert_int_equal(tc_make_file(NULL, FILE_BYTES, l->path, sizeof(l->path)), 0);
	rc = aioblk_disk_open(l->path, NULL, &l->disk);
	assert_int_equal(rc, 0);
	align = aioblk_disk_buf_align(l->disk);
	if (align < 512)
		align = 512;
	/* Eight pieces of one block each (or of the alignment, when that is larger). */
	l->bs = NIOV * (aioblk_disk_block_size(l->disk) > align ? aioblk_disk_block_size(l->disk) : (uint32_t)align);
	l->nreq = FILE_BYTES / l->bs;
	if (mode == MODE_BOUNCE) {
		copts.bounce_buffers = QD;
		copts.bounce_buffer_size = l->bs;
	}
	assert_int_equal(tc_group_create(eventfd ? AIOBLK_GROUP_EVENTFD : 0, &l->g), 0);
	assert_int_equal(aioblk_channel_create_ext(l->g, l->disk, &copts, &l->ch), 0);
	/* One extra byte per slot lets MODE_BOUNCE start its buffers off alignment. */
	l->mem = tc_alloc(4096, (size_t)QD * (l->bs + 4096));
	assert_non_null(l->mem);
	memset(l->mem, 0x5a, (size_t)QD * (l->bs + 4096));
	for (i = 0; i < QD; i++) {
		struct slot *s = &l->slots[i];

		s->l = l;
		s->buf = l->mem + (size_t)i * (l->bs + 4096) + (mode == MODE_BOUNCE && aioblk_disk_is_direct(l->disk));
		for (k = 0; k < NIOV; k++) {
			s->iov[k].iov_base = s->buf + (size_t)k * (l->bs / NIOV);
			s->iov[k].iov_len = l->bs / NIOV;
		}
	}
}

static void
load_teardown(struct load *l)
{
	assert_int_equal(aioblk_channel_destroy(l->ch), 0);
	assert_int_equal(aioblk_group_destroy(l->g), 0);
	assert_int_equal(aioblk_disk_close(l->disk), 0);
	free(l->mem);
}

/* Run @n more I/Os with QD outstanding; resubmission happens in the callbacks. */
static void
load_run(struct load *l, uint64_t n)
{
	unsigned i;
	int rc;

	l->target = l->issued + n;
	for (i = 0; i < QD && l->issued < l->target; i++) {
		if (aioblk_channel_inflight(l->ch) >= QD)
			break;
		rc = issue(l, &l->slots[i]);
		assert_int_equal(rc, 0);
	}
	while (l->done < l->target) {
		rc = l->eventfd ? aioblk_group_wait(l->g, 10000) : aioblk_group_poll(l->g, 0);
		assert_true(rc >= 0);
		if (l->eventfd)
			assert_true(rc > 0); /* a 10 s wait with I/O in flight that ran nothing: stuck */
	}
	assert_int_equal(l->errors, 0);
	assert_int_equal(aioblk_channel_inflight(l->ch), 0);
}

static void
steady_state(enum mode mode, bool eventfd)
{
	static struct load l;
	unsigned long before, after, getevents;

	load_setup(&l, mode, eventfd);
	/* Warm-up: first-use paths (flush probing, lazy state) may allocate once. */
	load_run(&l, 2000);
	before = atomic_load(&allocs);
	getevents = atomic_load(&n_getevents);
	load_run(&l, 20000);
	after = atomic_load(&allocs);
	if (after != before)
		print_error("%lu allocations during 20000 I/Os in steady state\n", after - before);
	assert_int_equal(after, before);
	/* Completions came out of the ring in user space: io_getevents is only the fallback. */
	assert_int_equal(atomic_load(&n_getevents), getevents);
	load_teardown(&l);
}

/* ---- the tests ---- */

/* The counter sees allocations (otherwise the tests below would prove nothing). */
static void
test_counter_counts(void **state)
{
	unsigned long before = atomic_load(&allocs);
	struct aioblk_group *g;
	void *p = malloc(32);

	assert_non_null(p);
	assert_int_equal(atomic_load(&allocs), before + 1);
	free(p);
	/* And it sees the library's own allocations, made inside the static library. */
	assert_int_equal(tc_group_create(0, &g), 0);
	assert_true(atomic_load(&allocs) > before + 1);
	assert_int_equal(aioblk_group_destroy(g), 0);
}

static void
test_no_alloc_busy_poll(void **state)
{
	steady_state(MODE_BUF, false);
}

static void
test_no_alloc_eventfd_wait(void **state)
{
	steady_state(MODE_BUF, true);
}

static void
test_no_alloc_many_iovecs(void **state)
{
	steady_state(MODE_IOV, false);
}

static void
test_no_alloc_bounce_buffers(void **state)
{
	steady_state(MODE_BOUNCE, false);
}

static void
empty_polls(bool eventfd)
{
	static struct load l;
	unsigned long before;
	int i;

	load_setup(&l, MODE_BUF, eventfd);
	before = syscalls();
	for (i = 0; i < 10000; i++)
		assert_int_equal(aioblk_group_poll(l.g, 0), 0);
	assert_int_equal(syscalls(), before);

	/* The same after traffic, once everything is reaped. */
	load_run(&l, 500);
	while (aioblk_group_poll(l.g, 0) > 0)
		;
	before = syscalls();
	for (i = 0; i < 10000; i++)
		assert_int_equal(aioblk_group_poll(l.g, 0), 0);
	if (syscalls() != before)
		print_error("io_submit %lu, io_getevents %lu, eventfd read %lu write %lu, poll %lu\n",
			    atomic_load(&n_submit), atomic_load(&n_getevents), atomic_load(&n_efd_read),
			    atomic_load(&n_efd_write), atomic_load(&n_poll_in));
	assert_int_equal(syscalls(), before);
	load_teardown(&l);
}

static void
test_empty_poll_no_syscall(void **state)
{
	empty_polls(false);
}

static void
test_empty_poll_no_syscall_eventfd(void **state)
{
	empty_polls(true);
}

static void
test_one_submit_per_channel_per_poll(void **state)
{
	struct tc_result r = { 0, 0 };
	struct aioblk_channel *ch[2];
	struct aioblk_disk *disk;
	struct aioblk_group *g;
	char path[256];
	char *buf;
	uint32_t bs;
	/*
	 * Fewer than a full batch, so that only the poll hands them over: one
	 * io_submit per channel, or one for the group when they share a context
	 * (and a batch).
	 */
	bool shared = tc_shared_groups();
	unsigned fit = (AIOBLK_BATCH_MAX - 1) / (shared ? 2 : 1);
	unsigned per_ch = fit < QD ? fit : QD;
	unsigned long submits;
	unsigned i, c;

	assert_int_equal(tc_make_file(NULL, FILE_BYTES, path, sizeof(path)), 0);
	assert_int_equal(aioblk_disk_open(path, NULL, &disk), 0);
	bs = aioblk_disk_block_size(disk);
	buf = tc_alloc(4096, (size_t)bs * per_ch * 2);
	assert_non_null(buf);
	assert_int_equal(tc_group_create(0, &g), 0);
	for (c = 0; c < 2; c++)
		assert_int_equal(aioblk_channel_create(g, disk, QD, &ch[c]), 0);

	submits = atomic_load(&n_submit);
	for (c = 0; c < 2; c++)
		for (i = 0; i < per_ch; i++)
			assert_int_equal(aioblk_read(ch[c], buf + (size_t)(c * per_ch + i) * bs, i, 1, tc_cb, &r), 0);
	/* Accepting requests makes no system call. */
	assert_int_equal(atomic_load(&n_submit), submits);
	atomic_store(&recorded, 0);
	aioblk_group_poll(g, 0);
	if (shared) {
		assert_int_equal(atomic_load(&n_submit), submits + 1);
		assert_int_equal(submit_nr[0], per_ch * 2);
	} else {
		assert_int_equal(atomic_load(&n_submit), submits + 2);
		assert_int_equal(submit_nr[0], per_ch);
		assert_int_equal(submit_nr[1], per_ch);
	}
	assert_int_equal(tc_wait_count(g, &r, (int)per_ch * 2, 10000), 0);
	assert_int_equal(r.status, 0);

	for (c = 0; c < 2; c++)
		assert_int_equal(aioblk_channel_destroy(ch[c]), 0);
	assert_int_equal(aioblk_group_destroy(g), 0);
	assert_int_equal(aioblk_disk_close(disk), 0);
	free(buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_submit_per_channel_per_poll),
		cmocka_unit_test(test_counter_counts),
		cmocka_unit_test(test_no_alloc_busy_poll),
		cmocka_unit_test(test_no_alloc_eventfd_wait),
		cmocka_unit_test(test_no_alloc_many_iovecs),
		cmocka_unit_test(test_no_alloc_bounce_buffers),
		cmocka_unit_test(test_empty_poll_no_syscall),
		cmocka_unit_test(test_empty_poll_no_syscall_eventfd),
	};

	return tc_run_group(tests, NULL, NULL);
}
