/* SPDX-License-Identifier: BSD-3-Clause */
/* aioblk-perf: latency histograms (the layout is in perf.h), merged and read as percentiles. */
#define _GNU_SOURCE
#include "perf.h"

#include <math.h>

/* The middle of a bucket, in ns. */
static uint64_t
hist_value(unsigned b)
{
	unsigned shift;

	if (b < HIST_SUB)
		return b;
	shift = (b >> HIST_SUB_BITS) - 1;
	return (((uint64_t)HIST_SUB + (b & (HIST_SUB - 1))) << shift) + ((1ull << shift) >> 1);
}

void
hist_merge(struct hist *into, const struct hist *h)
{
	unsigned i;

	into->n += h->n;
	into->sum += h->sum;
	if (h->max > into->max)
		into->max = h->max;
	for (i = 0; i < HIST_BUCKETS; i++)
		into->b[i] += h->b[i];
}

uint64_t
hist_percentile(const struct hist *h, double p)
{
	uint64_t rank, seen = 0;
	unsigned i;

	if (!h->n)
		return 0;
	rank = (uint64_t)ceil(p / 100.0 * (double)h->n);
	if (rank < 1)
		rank = 1;
	for (i = 0; i < HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= rank) {
			uint64_t v = hist_value(i);

			return v > h->max ? h->max : v;
		}
	}
	return h->max;
}
