/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * One reactor thread, two disks in one busy-polled group: a loaded disk
 * with QD reads in flight and a probe disk with one. The probe's latency
 * shows what the loaded disk's io_submit costs every other disk of the
 * reactor: when io_submit sleeps for a device request, the probe waits too.
 *
 *   reactor_latency [--no-limit] [--runtime S] [--qd N] LOADED PROBE
 *
 * Prints one JSON object: the loaded disk's IOPS and queue limit, the
 * probe's IOPS and latency percentiles (ns), and the longest poll.
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

#define BS 4096u
#define MAX_QD 256
#define MAX_SAMPLES (1u << 22)

struct disk_load {
	struct aioblk_disk *disk;
	struct aioblk_channel *ch;
	uint64_t blocks; /* of BS bytes */
	uint64_t rng;
	unsigned long done, errors;
};

struct slot {
	struct disk_load *d;
	void *buf;
	int64_t issued;
	bool busy;
};

static int64_t *samples;
static size_t nsamples;
static struct slot *probe_slot;

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
read_done(void *arg, int status)
{
	struct slot *s = arg;

	s->busy = false;
	if (status) {
		s->d->errors++;
		return;
	}
	s->d->done++;
	if (s == probe_slot && nsamples < MAX_SAMPLES)
		samples[nsamples++] = now_ns() - s->issued;
}

static int
issue(struct slot *s)
{
	struct disk_load *d = s->d;
	uint32_t per = BS / aioblk_disk_block_size(d->disk);
	int rc;

	d->rng ^= d->rng << 13;
	d->rng ^= d->rng >> 7;
	d->rng ^= d->rng << 17;
	s->issued = now_ns();
	rc = aioblk_read(d->ch, s->buf, (d->rng % d->blocks) * per, per, read_done, s);
	if (rc == 0)
		s->busy = true;
	return rc;
}

static int
open_load(struct disk_load *d, const char *path, uint32_t flags, struct aioblk_group *g, unsigned qd, uint64_t seed)
{
	struct aioblk_disk_opts opts = { .flags = flags };
	int rc = aioblk_disk_open(path, &opts, &d->disk);

	if (rc < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(-rc));
		return rc;
	}
	d->blocks = aioblk_disk_num_blocks(d->disk) * aioblk_disk_block_size(d->disk) / BS;
	d->rng = seed;
	rc = aioblk_channel_create(g, d->disk, qd, &d->ch);
	if (rc < 0)
		fprintf(stderr, "%s: channel: %s\n", path, strerror(-rc));
	return rc;
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static int64_t
pct(double p)
{
	size_t i = (size_t)(p / 100.0 * (double)(nsamples - 1));

	return nsamples ? samples[i] : 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "no-limit", no_argument, NULL, 'n' },
		{ "runtime", required_argument, NULL, 't' },
		{ "qd", required_argument, NULL, 'q' },
		{ NULL, 0, NULL, 0 },
	};
	struct disk_load loaded = { 0 }, probe = { 0 };
	struct slot slots[MAX_QD], pslot = { 0 };
	struct aioblk_group *g;
	uint32_t flags = 0;
	double runtime = 3;
	unsigned qd = 32, i;
	int64_t start, end, t, longest = 0, elapsed;
	int c;

	while ((c = getopt_long(argc, argv, "nt:q:", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			flags |= AIOBLK_DISK_NO_QUEUE_LIMIT;
			break;
		case 't':
			runtime = atof(optarg);
			break;
		case 'q':
			qd = (unsigned)atoi(optarg);
			break;
		default:
			return 2;
		}
	}
	if (argc - optind != 2 || qd < 1 || qd > MAX_QD || runtime <= 0) {
		fprintf(stderr, "usage: %s [--no-limit] [--runtime S] [--qd N] LOADED PROBE\n", argv[0]);
		return 2;
	}
	samples = malloc(MAX_SAMPLES * sizeof(*samples));
	if (!samples || aioblk_group_create(0, &g) < 0)
		return 1;
	if (open_load(&loaded, argv[optind], flags, g, qd, 88172645463325252ull) < 0 ||
	    open_load(&probe, argv[optind + 1], flags, g, 1, 0x9e3779b97f4a7c15ull) < 0)
		return 1;
	for (i = 0; i < qd; i++) {
		slots[i] = (struct slot){ .d = &loaded };
		if (posix_memalign(&slots[i].buf, BS, BS))
			return 1;
	}
	pslot.d = &probe;
	if (posix_memalign(&pslot.buf, BS, BS))
		return 1;
	probe_slot = &pslot;

	start = now_ns();
	end = start + (int64_t)(runtime * 1e9);
	while ((t = now_ns()) < end) {
		int64_t p0;

		for (i = 0; i < qd; i++)
			if (!slots[i].busy && issue(&slots[i]) < 0 && !slots[i].busy)
				break;
		if (!pslot.busy)
			issue(&pslot);
		p0 = now_ns();
		if (aioblk_group_poll(g, 0) < 0)
			return 1;
		if (now_ns() - p0 > longest)
			longest = now_ns() - p0;
	}
	elapsed = now_ns() - start;
	while (aioblk_channel_inflight(loaded.ch) || aioblk_channel_inflight(probe.ch))
		aioblk_group_poll(g, 0);
	qsort(samples, nsamples, sizeof(*samples), cmp_i64);
	printf("{\"loaded\":{\"iops\":%.1f,\"queue_limit\":%u,\"errors\":%lu},"
	       "\"probe\":{\"iops\":%.1f,\"lat_ns\":{\"p50\":%lld,\"p99\":%lld,\"p99_9\":%lld,\"max\":%lld},"
	       "\"errors\":%lu},\"longest_poll_ns\":%lld}\n",
	       loaded.done / (elapsed / 1e9), aioblk_disk_queue_limit(loaded.disk), loaded.errors,
	       probe.done / (elapsed / 1e9), (long long)pct(50), (long long)pct(99), (long long)pct(99.9),
	       (long long)(nsamples ? samples[nsamples - 1] : 0), probe.errors, (long long)longest);
	aioblk_channel_destroy(loaded.ch);
	aioblk_channel_destroy(probe.ch);
	aioblk_group_destroy(g);
	aioblk_disk_close(loaded.disk);
	aioblk_disk_close(probe.disk);
	return loaded.errors || probe.errors;
}
