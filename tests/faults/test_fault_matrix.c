/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The fault matrix of the sys.c seam: every fault the kernel can give at
 * every system call the I/O path makes, each run with a plain group and
 * with an eventfd group driven the way an event loop drives it (sleep in
 * poll(2) on the fd, poll the group only when it is readable). For each:
 * the documented result, every callback exactly once, the channel still
 * usable afterwards, the acknowledged writes on disk, no hang (bounded
 * waits), no leak (ASan / valgrind runs of this binary).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <libaio.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common.h"
#include "fake_sys.h"
#include "fixture.h"

#define BS 4096u
#define NREQ 8
#define FILE_BYTES (256u * 1024u)
#define DRIVE_MS 3000

enum kernel { REAL, FAKE, FAKE_FALLBACK };

struct scenario {
	const char *name;
	enum kernel kernel;
	void (*arm)(void);
	int want[NREQ]; /* status of each write */
	bool buffered;
};

/* --- the faults ---------------------------------------------------------- */

static void
arm_submit_eagain(void)
{
	fake_fail(FAKE_IO_SUBMIT, -EAGAIN, 3);
}

static void
arm_submit_partial(void)
{
	static const int script[] = { 3, 2, -EAGAIN, 1 };

	fake_submit_script(script, 4);
}

static void
arm_submit_einval(void)
{
	fake_refuse_offset(3 * BS, -EINVAL, 1);
}

static void
arm_submit_ebadf(void)
{
	fake_refuse_offset(5 * BS, -EBADF, 1);
}

static void
arm_submit_mixed(void)
{
	static const int script[] = { 2, -EAGAIN };

	fake_submit_script(script, 2);
	fake_refuse_offset(0, -EFAULT, 1);
	fake_refuse_offset(7 * BS, -EOPNOTSUPP, 1);
}

static void
arm_getevents_eintr(void)
{
	fake_fail(FAKE_IO_GETEVENTS, -EINTR, 5);
}

static void
arm_getevents_efault(void)
{
	fake_fail(FAKE_IO_GETEVENTS, -EFAULT, 3);
}

static void
arm_getevents_einval(void)
{
	fake_fail(FAKE_IO_GETEVENTS, -EINVAL, 2);
}

static void
arm_res_errors(void)
{
	fake_result(0 * BS, -EIO, 1, 0);
	fake_result(1 * BS, -ENOSPC, 1, 0);
	fake_result(2 * BS, -EAGAIN, 1, 0);
	fake_result(3 * BS, -EINTR, 1, 0);
	fake_result(4 * BS, 0, 1, 0);
	fake_result(5 * BS, 1536, 1, 0);    /* short, then the rest */
	fake_result(6 * BS, 512, 1, 0);     /* short ... */
	fake_result(6 * BS + 512, 0, 1, 0); /* ... then nothing: -EIO */
	fake_result(7 * BS, -EOPNOTSUPP, 1, 0);
}

static void
arm_eventfd_read(void)
{
	fake_fail(FAKE_EVENTFD_READ, -EIO, 2);
}

static void
arm_eventfd_read_eagain(void)
{
	fake_fail(FAKE_EVENTFD_READ, -EAGAIN, 2);
}

static const struct scenario scenarios[] = {
	{ "none", REAL, NULL, { 0 }, false },
	{ "io_submit EAGAIN x3", REAL, arm_submit_eagain, { 0 }, false },
	{ "io_submit partial", REAL, arm_submit_partial, { 0 }, false },
	{ "io_submit EINVAL", REAL, arm_submit_einval, { 0, 0, 0, -EINVAL, 0, 0, 0, 0 }, false },
	{ "io_submit EBADF", REAL, arm_submit_ebadf, { 0, 0, 0, 0, 0, -EBADF, 0, 0 }, false },
	{ "io_submit mixed", REAL, arm_submit_mixed, { -EFAULT, 0, 0, 0, 0, 0, 0, -EOPNOTSUPP }, false },
	{ "io_submit EAGAIN, fake ring", FAKE, arm_submit_eagain, { 0 }, false },
	{ "io_getevents EINTR", FAKE_FALLBACK, arm_getevents_eintr, { 0 }, false },
	{ "io_getevents EFAULT", FAKE_FALLBACK, arm_getevents_efault, { 0 }, false },
	{ "io_getevents EINVAL", FAKE_FALLBACK, arm_getevents_einval, { 0 }, false },
	{ "res errors, ring",
	  FAKE,
	  arm_res_errors,
	  { -EIO, -ENOSPC, -EAGAIN, -EINTR, -EIO, 0, -EIO, -EOPNOTSUPP },
	  true },
	{ "res errors, fallback",
	  FAKE_FALLBACK,
	  arm_res_errors,
	  { -EIO, -ENOSPC, -EAGAIN, -EINTR, -EIO, 0, -EIO, -EOPNOTSUPP },
	  true },
	{ "eventfd read EIO", FAKE, arm_eventfd_read, { 0 }, false },
	{ "eventfd read EAGAIN", FAKE, arm_eventfd_read_eagain, { 0 }, false },
	{ "eventfd read EIO, real kernel", REAL, arm_eventfd_read, { 0 }, false },
};
#define NSCEN (sizeof(scenarios) / sizeof(scenarios[0]))

struct state {
	const struct scenario *s;
	uint32_t group_flags;
	struct fx fx;
	char *buf;
	char *check;
	struct fx_req reqs[NREQ];
	char name[96];
};

static struct state states[NSCEN * 2];

static int
setup(void **pstate)
{
	struct state *st = *pstate;
	const struct scenario *s = st->s;

	fake_reset();
	aioblk_set_log_fn(fake_log_fn, NULL);
	if (s->kernel != REAL)
		fake_kernel(true, s->kernel == FAKE_FALLBACK);
	assert_int_equal(fx_open(&st->fx, FILE_BYTES, s->buffered ? AIOBLK_DISK_BUFFERED : 0, st->group_flags, 16), 0);
	st->buf = tc_alloc(BS, NREQ * BS);
	st->check = tc_alloc(BS, NREQ * BS);
	assert_non_null(st->buf);
	assert_non_null(st->check);
	memset(st->reqs, 0, sizeof(st->reqs));
	return 0;
}

static int
teardown(void **pstate)
{
	struct state *st = *pstate;

	fx_close(&st->fx);
	assert_int_equal(fake_pending(), 0);
	aioblk_set_log_fn(NULL, NULL);
	fake_reset();
	free(st->buf);
	free(st->check);
	st->buf = st->check = NULL;
	return 0;
}

static void
run_scenario(void **pstate)
{
	struct state *st = *pstate;
	const struct scenario *s = st->s;
	uint64_t per = BS / st->fx.bs;
	unsigned i;

	print_message("scenario: %s, %s group\n", s->name, st->group_flags ? "eventfd" : "plain");
	if (s->arm)
		s->arm();
	for (i = 0; i < NREQ; i++) {
		tc_fill(st->buf + i * BS, BS, 1000 + i);
		assert_int_equal(aioblk_write(st->fx.ch, st->buf + i * BS, i * per, per, fx_cb, &st->reqs[i]), 0);
	}
	/* No hang: every callback within the bound, with its documented status. */
	assert_int_equal(fx_drive(&st->fx, st->reqs, NREQ, DRIVE_MS), 0);
	for (i = 0; i < NREQ; i++) {
		if (st->reqs[i].count != 1 || st->reqs[i].status != s->want[i])
			print_message("request %u: count %d status %d, want status %d\n", i, st->reqs[i].count,
				      st->reqs[i].status, s->want[i]);
		assert_int_equal(st->reqs[i].count, 1);
		assert_int_equal(st->reqs[i].status, s->want[i]);
	}
	assert_int_equal(aioblk_channel_inflight(st->fx.ch), 0);
	/* Exactly once: more polls run nothing again. */
	for (i = 0; i < 10; i++)
		aioblk_group_poll(st->fx.group, 0);
	for (i = 0; i < NREQ; i++)
		assert_int_equal(st->reqs[i].count, 1);

	/* Acknowledged writes are on the disk. */
	fx_pread(&st->fx, st->check, NREQ * BS, 0);
	for (i = 0; i < NREQ; i++)
		if (s->want[i] == 0)
			assert_int_equal(tc_check(st->check + i * BS, BS, 1000 + i), -1);

	/* The channel still works once the faults are gone: read everything back through it. */
	fake_clear_rules();
	memset(st->buf, 0, NREQ * BS);
	for (i = 0; i < NREQ; i++) {
		st->reqs[i].count = 0;
		assert_int_equal(aioblk_read(st->fx.ch, st->buf + i * BS, i * per, per, fx_cb, &st->reqs[i]), 0);
	}
	assert_int_equal(fx_drive(&st->fx, st->reqs, NREQ, DRIVE_MS), 0);
	for (i = 0; i < NREQ; i++) {
		assert_int_equal(st->reqs[i].count, 1);
		assert_int_equal(st->reqs[i].status, 0);
	}
	assert_memory_equal(st->buf, st->check, NREQ * BS);
}

/* --- faults outside the I/O path ---------------------------------------- */

/* One aligned block of defined bytes (valgrind checks what goes to the kernel). */
static char *
zbuf(void)
{
	char *buf = tc_alloc(BS, BS);

	assert_non_null(buf);
	memset(buf, 0x33, BS);
	return buf;
}

static void
log_to_fake(void)
{
	fake_reset();
	fake_log_clear();
	aioblk_set_log_fn(fake_log_fn, NULL);
}

static void
io_setup_fails(int err)
{
	struct fx fx;
	struct aioblk_channel *ch = NULL;
	struct aioblk_group *g2 = NULL;
	char *buf = zbuf();

	log_to_fake();
	assert_int_equal(fx_open(&fx, FILE_BYTES, 0, 0, 8), 0);
	fake_fail(FAKE_IO_SETUP, err, 1);
	if (tc_shared_groups()) {
		/* A shared group makes its context when it is created; its channels make none. */
		assert_int_equal(tc_group_create(0, &g2), err);
		assert_null(g2);
		assert_int_equal(aioblk_channel_create(fx.group, fx.disk, 8, &ch), 0);
		assert_int_equal(aioblk_channel_destroy(ch), 0);
		ch = NULL;
	} else {
		assert_int_equal(aioblk_channel_create(fx.group, fx.disk, 8, &ch), err);
	}
	assert_null(ch);
	/* Nothing half made: the disk and group have only the fixture's channel. */
	assert_int_equal(aioblk_disk_close(fx.disk), -EBUSY);
	assert_int_equal(aioblk_group_destroy(fx.group), -EBUSY);
	/* The group still works. */
	assert_int_equal(tc_sync_write(fx.group, fx.ch, buf, 0, BS / fx.bs), 0);
	fx_close(&fx);
	free(buf);
	aioblk_set_log_fn(NULL, NULL);
}

static void
io_setup_eagain(void **state)
{
	(void)state;
	io_setup_fails(-EAGAIN);
	assert_true(fake_log_has("fs.aio-max-nr"));
}

static void
io_setup_enomem(void **state)
{
	(void)state;
	io_setup_fails(-ENOMEM);
	assert_true(fake_log_has("io_setup"));
	assert_false(fake_log_has("fs.aio-max-nr"));
}

/* The first channel of a group fails: group and disk are left empty and can go. */
static void
io_setup_first_channel(void **state)
{
	char path[256];
	struct aioblk_disk *disk;
	struct aioblk_group *group;
	struct aioblk_channel *ch = NULL;

	(void)state;
	log_to_fake();
	assert_int_equal(tc_make_file(NULL, FILE_BYTES, path, sizeof(path)), 0);
	assert_int_equal(aioblk_disk_open(path, NULL, &disk), 0);
	if (tc_shared_groups()) {
		/* The shared group's own context fails: no group, nothing left open. */
		group = NULL;
		fake_fail(FAKE_IO_SETUP, -EAGAIN, 1);
		assert_int_equal(tc_group_create(AIOBLK_GROUP_EVENTFD, &group), -EAGAIN);
		assert_null(group);
		assert_true(fake_log_has("fs.aio-max-nr"));
		assert_int_equal(fake_calls[FAKE_IO_DESTROY], 0);
	} else {
		assert_int_equal(tc_group_create(AIOBLK_GROUP_EVENTFD, &group), 0);
		fake_fail(FAKE_IO_SETUP, -EAGAIN, 1);
		assert_int_equal(aioblk_channel_create(group, disk, 0, &ch), -EAGAIN);
		assert_null(ch);
		assert_int_equal(aioblk_group_destroy(group), 0);
	}
	assert_int_equal(aioblk_disk_close(disk), 0);
	aioblk_set_log_fn(NULL, NULL);
}

static void
eventfd_create_fails(void **state)
{
	struct aioblk_group *group = NULL;

	(void)state;
	log_to_fake();
	fake_fail(FAKE_EVENTFD, -EMFILE, 1);
	assert_int_equal(tc_group_create(AIOBLK_GROUP_EVENTFD, &group), -EMFILE);
	assert_null(group);
	assert_true(fake_log_has("eventfd"));
	/* A plain group needs no eventfd. */
	assert_int_equal(tc_group_create(0, &group), 0);
	assert_int_equal(fake_calls[FAKE_EVENTFD], 1);
	assert_int_equal(aioblk_group_destroy(group), 0);
	aioblk_set_log_fn(NULL, NULL);
}

/* io_destroy failing is logged; the channel is gone anyway. */
static void
io_destroy_fails(void **state)
{
	struct fx fx;

	(void)state;
	log_to_fake();
	fake_kernel(true, false);
	assert_int_equal(fx_open(&fx, FILE_BYTES, 0, 0, 8), 0);
	fake_fail(FAKE_IO_DESTROY, -EINVAL, 1);
	fx_close(&fx);
	assert_true(fake_log_has("io_destroy failed"));
	aioblk_set_log_fn(NULL, NULL);
}

/* poll(2) on the eventfd fails inside aioblk_group_wait: EINTR is retried, others returned. */
static void
wait_poll_errors(void **state)
{
	struct fx fx;
	struct fx_req r = { 0, 0 };
	char *buf = zbuf();

	(void)state;
	log_to_fake();
	assert_int_equal(fx_open(&fx, FILE_BYTES, 0, AIOBLK_GROUP_EVENTFD, 8), 0);
	/* Nothing outstanding: wait sleeps its timeout in ppoll(2) on the eventfd, like poll(2). */
	assert_int_equal(aioblk_group_wait(fx.group, 20), 0);
	assert_true(fake_calls[FAKE_POLL_IN] >= 1);
	/* An error of that sleep comes back as it is. */
	fake_fail(FAKE_POLL_IN, -ENOMEM, 1);
	assert_int_equal(aioblk_group_wait(fx.group, 20), -ENOMEM);

	assert_int_equal(aioblk_write(fx.ch, buf, 0, BS / fx.bs, fx_cb, &r), 0);
	fake_fail(FAKE_POLL_IN, -ENOMEM, 1);
	/* The real write may complete before the first poll(2); then wait returns 1 at once. */
	int rc = aioblk_group_wait(fx.group, 5000);
	if (rc == 0 || rc == -ENOMEM) {
		assert_int_equal(rc, -ENOMEM);
		assert_int_equal(r.count, 0);
		fake_fail(FAKE_POLL_IN, -EINTR, 3);
		rc = aioblk_group_wait(fx.group, 5000);
	}
	assert_int_equal(rc, 1);
	assert_int_equal(r.count, 1);
	assert_int_equal(r.status, 0);
	fx_close(&fx);
	free(buf);
	aioblk_set_log_fn(NULL, NULL);
}

/*
 * An event loop hands queued requests over with aioblk_group_submit() and
 * sleeps on the fd. When the kernel answers EAGAIN with nothing in flight,
 * no completion will wake it: the group must wake itself (DESIGN.md §6.6).
 */
static void
submit_eagain_wakes_event_loop(void **state)
{
	struct fx fx;
	struct fx_req r = { 0, 0 };
	char *buf = zbuf();
	struct pollfd pfd;

	(void)state;
	fake_reset();
	fake_kernel(true, false);
	assert_int_equal(fx_open(&fx, FILE_BYTES, 0, AIOBLK_GROUP_EVENTFD, 8), 0);
	assert_int_equal(aioblk_write(fx.ch, buf, 0, BS / fx.bs, fx_cb, &r), 0);
	fake_fail(FAKE_IO_SUBMIT, -EAGAIN, 1);
	assert_int_equal(aioblk_group_submit(fx.group), 0);
	pfd.fd = aioblk_group_fd(fx.group);
	pfd.events = POLLIN;
	/* Readable now, or the loop sleeps forever with a request queued. */
	assert_int_equal(poll(&pfd, 1, 1000), 1);
	assert_int_equal(fx_drive(&fx, &r, 1, DRIVE_MS), 0);
	assert_int_equal(r.status, 0);
	fx_close(&fx);
	free(buf);
	fake_reset();
}

/* The same with a poll: the poll's own EAGAIN must leave the fd readable. */
static void
poll_eagain_wakes_event_loop(void **state)
{
	struct fx fx;
	struct fx_req r = { 0, 0 };
	char *buf = zbuf();
	struct pollfd pfd;

	(void)state;
	fake_reset();
	fake_kernel(true, false);
	assert_int_equal(fx_open(&fx, FILE_BYTES, 0, AIOBLK_GROUP_EVENTFD, 8), 0);
	assert_int_equal(aioblk_write(fx.ch, buf, 0, BS / fx.bs, fx_cb, &r), 0);
	fake_fail(FAKE_IO_SUBMIT, -EAGAIN, 1);
	assert_int_equal(aioblk_group_poll(fx.group, 0), 0);
	assert_int_equal(fake_calls[FAKE_IO_SUBMIT], 1);
	pfd.fd = aioblk_group_fd(fx.group);
	pfd.events = POLLIN;
	assert_int_equal(poll(&pfd, 1, 1000), 1);
	assert_int_equal(fx_drive(&fx, &r, 1, DRIVE_MS), 0);
	assert_int_equal(r.status, 0);
	fx_close(&fx);
	free(buf);
	fake_reset();
}

/* The synchronous flush fallback: fdatasync(2) fails, the flush says so, once. */
static void
flush_fdatasync_fails(void **state)
{
	struct fx fx;
	struct fx_req r[2] = { { 0, 0 }, { 0, 0 } };

	(void)state;
	fake_reset();
	assert_int_equal(fx_open(&fx, FILE_BYTES, 0, AIOBLK_GROUP_EVENTFD, 8), 0);
	fake_fail(FAKE_IO_SUBMIT, -EINVAL, 1); /* no IOCB_CMD_FDSYNC here */
	fake_fail(FAKE_FDATASYNC, -EIO, 1);
	assert_int_equal(aioblk_flush(fx.ch, fx_cb, &r[0]), 0);
	assert_int_equal(fx_drive(&fx, &r[0], 1, DRIVE_MS), 0);
	assert_int_equal(r[0].status, -EIO);
	fake_fail(FAKE_FDATASYNC, -ENOSPC, 1);
	assert_int_equal(aioblk_flush(fx.ch, fx_cb, &r[1]), 0);
	assert_int_equal(fx_drive(&fx, &r[1], 1, DRIVE_MS), 0);
	assert_int_equal(r[1].status, -ENOSPC);
	assert_int_equal(r[0].count, 1);
	assert_int_equal(r[1].count, 1);
	fx_close(&fx);
	fake_reset();
}

int
main(void)
{
	struct CMUnitTest tests[NSCEN * 2 + 9];
	unsigned i, n = 0;

	for (i = 0; i < NSCEN * 2; i++) {
		states[i].s = &scenarios[i / 2];
		states[i].group_flags = (i % 2) ? AIOBLK_GROUP_EVENTFD : 0;
		/* Eventfd faults only mean something with an eventfd. */
		if (scenarios[i / 2].arm == arm_eventfd_read || scenarios[i / 2].arm == arm_eventfd_read_eagain)
			if (!states[i].group_flags)
				continue;
		tests[n] = (struct CMUnitTest)cmocka_unit_test_prestate_setup_teardown(run_scenario, setup, teardown,
										       &states[i]);
		snprintf(states[i].name, sizeof(states[i].name), "%s (%s group)", scenarios[i / 2].name,
			 states[i].group_flags ? "eventfd" : "plain");
		tests[n].name = states[i].name;
		n++;
	}
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(io_setup_eagain);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(io_setup_enomem);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(io_setup_first_channel);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(eventfd_create_fails);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(io_destroy_fails);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(wait_poll_errors);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(poll_eagain_wakes_event_loop);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(flush_fdatasync_fails);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(submit_eagain_wakes_event_loop);
	return _cmocka_run_group_tests("fault_matrix", tests, n, NULL, NULL);
}
