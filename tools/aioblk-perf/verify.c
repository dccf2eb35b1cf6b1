/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * aioblk-perf: the verify block format.
 *
 * Every 512-byte sector of a verify block is self-describing: a magic, the
 * byte offset it was written to, the seed of the pass that wrote it, a
 * checksum over all of that and the payload, then 480 bytes of payload
 * derived from offset and seed. So a read can tell a lost write (old seed),
 * a misdirected one (other offset), a torn or corrupted one (checksum) and
 * a never-written one (no magic) apart.
 */
#define _GNU_SOURCE
#include "perf.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define VSECTOR 512u
#define VWORDS (VSECTOR / 8u)
#define VMAGIC 0x61696f626c6b7631ull /* "aioblkv1" */

static atomic_uint reported;

static uint64_t
vsum(const uint64_t *p)
{
	uint64_t h = 0xcbf29ce484222325ull ^ p[1] ^ mix64(p[2]);
	unsigned k;

	for (k = 4; k < VWORDS; k++)
		h = (h ^ p[k]) * 0x100000001b3ull;
	return mix64(h);
}

static void
vfill_sector(uint64_t *p, uint64_t off, uint64_t seed)
{
	uint64_t x = mix64(seed ^ mix64(off));
	unsigned k;

	for (k = 4; k < VWORDS; k++) {
		x += 0x9e3779b97f4a7c15ull;
		p[k] = mix64(x);
	}
	p[0] = VMAGIC;
	p[1] = off;
	p[2] = seed;
	p[3] = vsum(p);
}

/* Fill @buf, the @bs-byte block at byte offset @off, with the pattern of the pass @seed. */
void
vfill(char *buf, uint64_t bs, uint64_t off, uint64_t seed)
{
	uint64_t i;

	for (i = 0; i < bs; i += VSECTOR)
		vfill_sector((uint64_t *)(buf + i), off + i, seed);
}

/* Whether one more error may be printed (the first MAX_REPORTED of the whole run). */
bool
report_more(void)
{
	return atomic_fetch_add(&reported, 1) < MAX_REPORTED;
}

/*
 * Check the block @buf read from byte offset @off against the pattern of the
 * pass @seed; @scratch holds one sector. Returns the number of bad sectors
 * in the block (0: it verified).
 */
unsigned
vcheck(uint64_t *scratch, const char *path, const char *buf, uint64_t bs, uint64_t off, uint64_t seed)
{
	char why[160] = "";
	unsigned bad = 0;
	uint64_t first_bad = 0, i;

	for (i = 0; i < bs; i += VSECTOR) {
		const uint64_t *p = (const uint64_t *)(buf + i);
		uint64_t o = off + i;
		bool ok = false;

		if (p[0] != VMAGIC) {
			if (!bad)
				snprintf(why, sizeof(why), "no verify header (never written, or overwritten)");
		} else if (p[1] != o) {
			if (!bad)
				snprintf(why, sizeof(why), "holds the data written for offset %" PRIu64, p[1]);
		} else if (p[3] != vsum(p)) {
			if (!bad)
				snprintf(why, sizeof(why), "checksum mismatch (corrupted or torn data)");
		} else if (p[2] != seed) {
			if (!bad)
				snprintf(why, sizeof(why),
					 "stale data of pass seed %" PRIu64 " (expected seed %" PRIu64 ")", p[2], seed);
		} else {
			vfill_sector(scratch, o, seed);
			if (memcmp(p, scratch, VSECTOR) == 0)
				ok = true;
			else if (!bad)
				snprintf(why, sizeof(why), "payload differs from the pattern");
		}
		if (!ok && !bad++)
			first_bad = o;
	}
	if (bad && report_more())
		fprintf(stderr,
			PROG ": verify: %s: mismatch in the block at offset %" PRIu64 " (0x%" PRIx64 "): %u of %" PRIu64
			     " sectors bad, first at offset %" PRIu64 ": %s\n",
			path, off, off, bad, bs / VSECTOR, first_bad, why);
	return bad;
}
