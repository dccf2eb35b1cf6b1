/* SPDX-License-Identifier: BSD-3-Clause */
/* Helpers for the adversarial programs in adv/: they use only the public API. */
#ifndef ADV_COMMON_H
#define ADV_COMMON_H
#define _GNU_SOURCE
#include <aioblk/aioblk.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int adv_failures;
#define FAILED() __atomic_load_n(&adv_failures, __ATOMIC_RELAXED)

#define FAIL(...)                                                       \
	do {                                                            \
		fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);    \
		fprintf(stderr, __VA_ARGS__);                           \
		fprintf(stderr, "\n");                                  \
		__atomic_add_fetch(&adv_failures, 1, __ATOMIC_RELAXED); \
	} while (0)

#define CHECK(cond, ...)                   \
	do {                               \
		if (!(cond))               \
			FAIL(__VA_ARGS__); \
	} while (0)

#define DIE(...)                   \
	do {                       \
		FAIL(__VA_ARGS__); \
		exit(1);           \
	} while (0)

static inline double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static inline uint64_t
xrand(uint64_t *s)
{
	/* xorshift64* */
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 2685821657736338717ull;
}

/* Files made by make_file() are removed at exit, also when a check DIEs. */
static char *adv_paths[512];
static int adv_npaths;
static pid_t adv_owner;
static void
adv_cleanup(void)
{
	if (getpid() != adv_owner)
		return;
	for (int i = 0; i < adv_npaths; i++)
		if (adv_paths[i])
			unlink(adv_paths[i]);
}

/* Make a sparse file of @size bytes at @path. */
static inline void
make_file(const char *path, uint64_t size)
{
	if (!adv_owner) {
		adv_owner = getpid();
		atexit(adv_cleanup);
	}
	if (getpid() == adv_owner && adv_npaths < 512)
		adv_paths[adv_npaths++] = strdup(path);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)size) != 0)
		DIE("make_file %s: %s", path, strerror(errno));
	close(fd);
}

static inline void *
xalloc(size_t align, size_t len)
{
	void *p = NULL;
	if (posix_memalign(&p, align < 4096 ? 4096 : align, len))
		DIE("posix_memalign");
	memset(p, 0, len);
	return p;
}

/* Stamp block @blk of disk @d with generation @gen: every 8 bytes carry it. */
static inline void
stamp(void *buf, uint32_t bs, uint32_t d, uint64_t blk, uint32_t gen)
{
	uint64_t *p = buf;
	uint64_t v = ((uint64_t)d << 56) ^ (blk << 20) ^ gen ^ 0x5a5a000000000000ull;
	for (uint32_t i = 0; i < bs / 8; i++)
		p[i] = v + i;
	p[0] = ((uint64_t)d << 48) | gen; /* readable in reports */
}

/* 0: matches gen (gen 0 means all zeroes); else the first bad offset + 1. */
static inline size_t
verify(const void *buf, uint32_t bs, uint32_t d, uint64_t blk, uint32_t gen)
{
	const uint64_t *p = buf;
	if (gen == 0) {
		for (uint32_t i = 0; i < bs / 8; i++)
			if (p[i])
				return i * 8 + 1;
		return 0;
	}
	uint64_t v = ((uint64_t)d << 56) ^ (blk << 20) ^ gen ^ 0x5a5a000000000000ull;
	if (p[0] != (((uint64_t)d << 48) | gen))
		return 1;
	for (uint32_t i = 1; i < bs / 8; i++)
		if (p[i] != v + i)
			return i * 8 + 1;
	return 0;
}

static inline const char *
tmpdir(void)
{
	const char *t = getenv("ADV_DIR");
	return t ? t : "/dev/shm";
}

static inline long
read_long(const char *path)
{
	FILE *f = fopen(path, "r");
	long v = -1;
	if (!f)
		return -1;
	if (fscanf(f, "%ld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

static inline int
adv_exit(const char *name)
{
	if (adv_failures) {
		fprintf(stderr, "%s: %d failure(s)\n", name, adv_failures);
		return 1;
	}
	printf("%s: ok\n", name);
	return 0;
}
#endif
