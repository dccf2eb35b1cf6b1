/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * One temporary file opened as a disk, a group and a channel, for the unit
 * and fault tests; and callbacks that count how often each request ran.
 */
#ifndef AIOBLK_TEST_FIXTURE_H
#define AIOBLK_TEST_FIXTURE_H

#include <aioblk/aioblk.h>
#include <stdbool.h>
#include <stdint.h>

struct fx {
	char path[256];
	int fd; /* the file opened by the test itself, buffered, for checking */
	struct aioblk_disk *disk;
	struct aioblk_group *group;
	struct aioblk_channel *ch;
	uint32_t bs;
};

/* A file of @bytes (zeroes), a disk, a group (@group_flags) and a channel of @qd. 0 or -errno. */
int fx_open(struct fx *fx, uint64_t bytes, uint32_t disk_flags, uint32_t group_flags, unsigned qd);
/* Check that the channel is idle, then tear everything down; asserts each step succeeds. */
void fx_close(struct fx *fx);

/* One request's callback record: how often it ran and with what. */
struct fx_req {
	int count;
	int status;
};
void fx_cb(void *arg, int status);

/*
 * Drive the group until every one of @n records ran at least once or
 * @timeout_ms passed. In eventfd mode it sleeps in poll(2) on the group's fd
 * between polls, the way an event loop would, so a missing wake-up shows as
 * a timeout instead of being papered over by busy polling.
 * Returns 0 or -ETIMEDOUT.
 */
int fx_drive(struct fx *fx, struct fx_req *reqs, unsigned n, int timeout_ms);

/* Read @len bytes at @off from the file, behind the library. */
void fx_pread(struct fx *fx, void *buf, size_t len, uint64_t off);

#endif
