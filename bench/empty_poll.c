/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What an empty poll costs: aioblk_group_poll() of a group whose channels
 * are all idle, for groups of 1, 8, 32 and 64 channels (each on its own
 * disk), plain (a kernel context per channel) and SHARED_CONTEXT (one for
 * the group, of the library's default depth). Every round makes each group
 * afresh, polls it for --ms milliseconds in batches of 1000 polls and takes
 * the median batch's time per poll (a batch the scheduler interrupted does
 * not count); the kinds alternate (plain first in odd rounds, shared first
 * in even ones). Prints every
 * round, then the medians, shared/plain at each size, each kind against
 * its own one-channel group, and how much fs.aio-nr grew while each group
 * existed (the counter is system-wide: other programs move it too).
 *
 *   empty_poll [--rounds N] [--ms MS] [--channels "1 8 32 64"] [--depth D] [FILE]
 *
 * FILE: any regular file or block device of at least 4 KiB; it is only
 * opened, never read or written. Default: a 64 KiB file made in $TMPDIR
 * (or /var/tmp) and removed once the disks are open.
 */
#define _GNU_SOURCE
#include <aioblk/aioblk.h>
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_CHANNELS 1024
#define MAX_SIZES 16
#define MAX_ROUNDS 101
#define BATCH 1000u
#define MAX_BATCHES (1u << 20)

static double batch_ns[MAX_BATCHES];

enum { PLAIN, SHARED };
static const char *const kind_names[2] = { "plain", "shared" };

static struct aioblk_disk *disks[MAX_CHANNELS];

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static long
aio_nr(void)
{
	long v = -1;
	FILE *f = fopen("/proc/sys/fs/aio-nr", "r");

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* The median of @v; sorts @v in place. */
static double
median_sort(double *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The median of @n rounds, @v left as it is. */
static double
median(const double *v, unsigned n)
{
	double s[MAX_ROUNDS];

	memcpy(s, v, n * sizeof(*v));
	return median_sort(s, n);
}

/*
 * One measurement: a fresh group of @n idle channels of @kind, polled for
 * @ms ms after a warm-up. Returns ns per poll, or a negative -errno; the
 * growth of fs.aio-nr while the group existed goes to @aio_growth.
 */
static double
measure(int kind, unsigned n, unsigned depth, unsigned ms, long *aio_growth)
{
	struct aioblk_group_opts gopts = { .flags = kind == SHARED ? AIOBLK_GROUP_SHARED_CONTEXT : 0 };
	struct aioblk_channel *chs[MAX_CHANNELS];
	struct aioblk_group *g;
	uint64_t t0, t1, deadline;
	unsigned nbatches = 0;
	long before = aio_nr();
	double result;
	unsigned i, made = 0, k;
	int rc;

	rc = aioblk_group_create_ext(&gopts, &g);
	if (rc < 0)
		return rc;
	for (i = 0; i < n; i++) {
		rc = aioblk_channel_create(g, disks[i], depth, &chs[i]);
		if (rc < 0)
			goto out;
		made++;
	}
	*aio_growth = before < 0 ? -1 : aio_nr() - before;
	for (k = 0; k < 10000; k++)
		if ((rc = aioblk_group_poll(g, 0)) != 0)
			goto out;
	/*
	 * Batches of 1000 polls between clock reads, so that the clock is not
	 * what is timed; the median batch, so that a batch the scheduler
	 * interrupted (the machine is shared) does not count.
	 */
	t0 = now_ns();
	deadline = t0 + (uint64_t)ms * 1000000u;
	do {
		for (k = 0; k < BATCH; k++)
			rc |= aioblk_group_poll(g, 0);
		t1 = now_ns();
		batch_ns[nbatches++] = (double)(t1 - t0);
		t0 = t1;
	} while (t1 < deadline && nbatches < MAX_BATCHES);
	if (rc != 0) {
		rc = rc < 0 ? rc : -EPROTO; /* an idle group must run no callback */
		goto out;
	}
	rc = 0;
out:
	result = rc < 0 ? rc : median_sort(batch_ns, nbatches) / BATCH;
	for (i = 0; i < made; i++)
		aioblk_channel_destroy(chs[i]);
	aioblk_group_destroy(g);
	return result;
}

static int
usage(const char *prog)
{
	fprintf(stderr, "usage: %s [--rounds N] [--ms MS] [--channels \"1 8 32 64\"] [--depth D] [FILE]\n", prog);
	return 2;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "rounds", required_argument, NULL, 'r' },
		{ "ms", required_argument, NULL, 'm' },
		{ "channels", required_argument, NULL, 'c' },
		{ "depth", required_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};
	static double ns[2][MAX_SIZES][MAX_ROUNDS];
	static long growth[2][MAX_SIZES];
	unsigned sizes[MAX_SIZES], nsizes = 0, rounds = 7, ms = 200, depth = 32, maxn = 0, r, s, i;
	char tmp[4096] = "", list[256] = "1 8 32 64", *tok, *save;
	const char *path;
	int c, rc;

	while ((c = getopt_long(argc, argv, "r:m:c:d:", longopts, NULL)) != -1) {
		switch (c) {
		case 'r':
			rounds = (unsigned)atoi(optarg);
			break;
		case 'm':
			ms = (unsigned)atoi(optarg);
			break;
		case 'c':
			snprintf(list, sizeof(list), "%s", optarg);
			break;
		case 'd':
			depth = (unsigned)atoi(optarg);
			break;
		default:
			return usage(argv[0]);
		}
	}
	if (argc - optind > 1 || rounds < 1 || rounds > MAX_ROUNDS || ms < 1 || depth < 1)
		return usage(argv[0]);
	for (tok = strtok_r(list, " ,", &save); tok; tok = strtok_r(NULL, " ,", &save)) {
		unsigned v = (unsigned)atoi(tok);

		if (nsizes == MAX_SIZES || v < 1 || v > MAX_CHANNELS)
			return usage(argv[0]);
		sizes[nsizes++] = v;
		if (v > maxn)
			maxn = v;
	}
	if (!nsizes)
		return usage(argv[0]);
	if (optind < argc) {
		path = argv[optind];
	} else {
		const char *dir = getenv("TMPDIR");
		int fd;

		snprintf(tmp, sizeof(tmp), "%s/aioblk-empty-poll.XXXXXX", dir && *dir ? dir : "/var/tmp");
		fd = mkstemp(tmp);
		if (fd < 0 || ftruncate(fd, 64 << 10) < 0) {
			perror(tmp);
			return 1;
		}
		close(fd);
		path = tmp;
	}
	for (i = 0; i < maxn; i++) {
		struct aioblk_disk_opts dopts = { .flags = AIOBLK_DISK_READONLY };

		rc = aioblk_disk_open(path, &dopts, &disks[i]);
		if (rc < 0) {
			fprintf(stderr, "%s: %s\n", path, strerror(-rc));
			if (*tmp)
				unlink(tmp);
			return 1;
		}
	}
	if (*tmp)
		unlink(tmp);

	printf("empty poll of an idle group, ns per poll; %u rounds of %u ms, channel depth %u, %s\n", rounds, ms,
	       depth, aioblk_version());
	for (r = 0; r < rounds; r++) {
		for (s = 0; s < nsizes; s++) {
			int first = r % 2 ? SHARED : PLAIN;

			for (int j = 0; j < 2; j++) {
				int kind = j ? !first : first;
				double v = measure(kind, sizes[s], depth, ms, &growth[kind][s]);

				if (v < 0) {
					fprintf(stderr, "%s group of %u channels: %s\n", kind_names[kind], sizes[s],
						strerror((int)-v));
					return 1;
				}
				ns[kind][s][r] = v;
			}
		}
		printf("round %u:", r + 1);
		for (s = 0; s < nsizes; s++)
			printf("  %u: plain %.1f shared %.1f", sizes[s], ns[PLAIN][s][r], ns[SHARED][s][r]);
		putchar('\n');
	}
	/* x/plain1 and x/shared1: against the median of the first size (give 1 first). */
	printf("\n%8s %9s %9s %8s %8s %8s %8s %11s %11s\n", "channels", "plain ns", "shared ns", "sh/pl", "pl/pl1",
	       "sh/pl1", "sh/sh1", "aio-nr +pl", "aio-nr +sh");
	for (s = 0; s < nsizes; s++) {
		double p = median(ns[PLAIN][s], rounds), sh = median(ns[SHARED][s], rounds);
		double p1 = median(ns[PLAIN][0], rounds), sh1 = median(ns[SHARED][0], rounds);

		printf("%8u %9.1f %9.1f %8.2f %8.2f %8.2f %8.2f %11ld %11ld\n", sizes[s], p, sh, sh / p, p / p1,
		       sh / p1, sh / sh1, growth[PLAIN][s], growth[SHARED][s]);
	}
	for (i = 0; i < maxn; i++)
		aioblk_disk_close(disks[i]);
	return 0;
}
