/* SPDX-License-Identifier: BSD-3-Clause */
/* aioblk-perf: the options: --help and their parsing into struct opts. */
#define _GNU_SOURCE
#include "perf.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const workload_names[WL_VERIFY + 1] = {
	[WL_READ] = "read",           [WL_WRITE] = "write",   [WL_RANDREAD] = "randread",
	[WL_RANDWRITE] = "randwrite", [WL_RANDRW] = "randrw", [WL_VERIFY] = "verify",
};

static void
usage(FILE *f)
{
	fprintf(f,
		"Usage: " PROG " [OPTIONS] [TARGET...]\n"
		"Measure or verify block I/O through aioblk (Linux AIO, polled).\n"
		"\n"
		"TARGET is a regular file or a block device; every thread works on every target.\n"
		"With no target, a temporary 256 MiB file (or --size) is made in the current\n"
		"directory, written once, and removed at the end (also on error or Ctrl-C).\n"
		"\n"
		"  -w, --workload=W     read, write, randread, randwrite, randrw, verify (default randread)\n"
		"  -b, --bs=SIZE        I/O size in bytes, k/m/g suffixes (default 4k); a multiple of\n"
		"                       every target's block size\n"
		"  -q, --iodepth=N      requests in flight per thread per target (default 32)\n"
		"  -t, --runtime=SEC    run time in seconds (default 10); verify repeats write+read\n"
		"                       passes until it has passed\n"
		"  -j, --threads=N      threads, each with its own poll group (default 1)\n"
		"  -M, --rwmixread=PCT  percentage of reads in randrw (default 50)\n"
		"  -s, --size=SIZE      use only the first SIZE bytes of each target\n"
		"  -i, --interrupt      sleep on the group's eventfd instead of busy-polling\n"
		"      --buffered       do not use O_DIRECT\n"
		"      --nowait         try RWF_NOWAIT on reads (AIOBLK_DISK_NOWAIT)\n"
		"      --zero-buffers   write zeroes instead of random data (zram stores them\n"
		"                       without compressing)\n"
		"      --seed=N         seed for offsets, data and verify patterns (default 1)\n"
		"      --passes=N       verify: exactly N write+read passes (the run time is ignored)\n"
		"      --verify-only    verify: only read and check what an earlier\n"
		"                       'verify --passes 1' with the same --seed and --bs wrote\n"
		"      --json           print the report as one JSON object\n"
		"  -h, --help           this help\n"
		"  -V, --version        print the library version\n"
		"\n"
		"verify writes blocks whose every 512-byte sector holds its offset, the pass seed,\n"
		"a checksum and a derived payload, reads them back, then closes and reopens the\n"
		"targets and reads them again. Each mismatch is printed with its offset (the\n"
		"first %u errors; the rest are counted). Write workloads and verify overwrite\n"
		"the targets' data.\n"
		"\n"
		"Exit status: 0 success, 1 I/O error, verify mismatch or failure, 2 bad\n"
		"arguments, 130 interrupted.\n",
		MAX_REPORTED);
}

static int
parse_size(const char *s, uint64_t *out)
{
	unsigned long long v;
	unsigned shift = 0;
	char *end;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	switch (tolower((unsigned char)*end)) {
	case 'k':
		shift = 10;
		break;
	case 'm':
		shift = 20;
		break;
	case 'g':
		shift = 30;
		break;
	case 't':
		shift = 40;
		break;
	}
	if (shift) {
		end++;
		if (*end == 'i')
			end++;
		if (tolower((unsigned char)*end) == 'b')
			end++;
	} else if (tolower((unsigned char)*end) == 'b') {
		end++;
	}
	if (*end || v > (UINT64_MAX >> shift))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

static int
parse_uint(const char *s, unsigned min, unsigned max, unsigned *out)
{
	unsigned long v;
	char *end;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -1;
	*out = (unsigned)v;
	return 0;
}

static int
bad_arg(const char *opt, const char *val, const char *why)
{
	fprintf(stderr, PROG ": invalid %s '%s': %s\n", opt, val, why);
	fprintf(stderr, "Try '" PROG " --help'.\n");
	return -1;
}

enum { OPT_JSON = 256, OPT_BUFFERED, OPT_NOWAIT, OPT_SEED, OPT_PASSES, OPT_VERIFY_ONLY, OPT_ZERO_BUFFERS };

int
parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "workload", required_argument, NULL, 'w' },
		{ "bs", required_argument, NULL, 'b' },
		{ "iodepth", required_argument, NULL, 'q' },
		{ "runtime", required_argument, NULL, 't' },
		{ "threads", required_argument, NULL, 'j' },
		{ "rwmixread", required_argument, NULL, 'M' },
		{ "size", required_argument, NULL, 's' },
		{ "interrupt", no_argument, NULL, 'i' },
		{ "buffered", no_argument, NULL, OPT_BUFFERED },
		{ "nowait", no_argument, NULL, OPT_NOWAIT },
		{ "zero-buffers", no_argument, NULL, OPT_ZERO_BUFFERS },
		{ "seed", required_argument, NULL, OPT_SEED },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "passes", required_argument, NULL, OPT_PASSES },
		{ "verify-only", no_argument, NULL, OPT_VERIFY_ONLY },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	unsigned i;
	int c;

	memset(o, 0, sizeof(*o));
	o->wl = WL_RANDREAD;
	o->bs = 4096;
	o->iodepth = 32;
	o->runtime = 10;
	o->threads = 1;
	o->rwmixread = 50;
	o->seed = 1;

	while ((c = getopt_long(argc, argv, "w:b:q:t:j:M:s:ihV", longopts, NULL)) != -1) {
		switch (c) {
		case 'w':
			for (i = 0; i < sizeof(workload_names) / sizeof(workload_names[0]); i++)
				if (strcmp(optarg, workload_names[i]) == 0)
					break;
			if (i == sizeof(workload_names) / sizeof(workload_names[0]))
				return bad_arg("--workload", optarg,
					       "expected read, write, randread, randwrite, randrw or verify");
			o->wl = (enum workload)i;
			o->wl_given = true;
			break;
		case 'b':
			if (parse_size(optarg, &o->bs) < 0 || o->bs == 0)
				return bad_arg("--bs", optarg, "expected a size such as 4096, 4k or 1m");
			if (o->bs % 512 || o->bs > MAX_BS)
				return bad_arg("--bs", optarg, "must be a multiple of 512 and at most 64m");
			break;
		case 'q':
			if (parse_uint(optarg, 1, MAX_IODEPTH, &o->iodepth) < 0)
				return bad_arg("--iodepth", optarg, "expected a number from 1 to 65536");
			break;
		case 't':
			errno = 0;
			o->runtime = strtod(optarg, &end);
			if (end != optarg && *end == 's')
				end++;
			if (errno || end == optarg || *end || !(o->runtime > 0) || o->runtime > 1e6)
				return bad_arg("--runtime", optarg, "expected seconds, more than 0");
			break;
		case 'j':
			if (parse_uint(optarg, 1, MAX_THREADS, &o->threads) < 0)
				return bad_arg("--threads", optarg, "expected a number from 1 to 1024");
			break;
		case 'M':
			if (parse_uint(optarg, 0, 100, &o->rwmixread) < 0)
				return bad_arg("--rwmixread", optarg, "expected a percentage from 0 to 100");
			o->rwmix_given = true;
			break;
		case 's':
			if (parse_size(optarg, &o->size) < 0 || o->size == 0)
				return bad_arg("--size", optarg, "expected a size such as 64m or 1g");
			break;
		case 'i':
			o->interrupt = true;
			break;
		case OPT_BUFFERED:
			o->buffered = true;
			break;
		case OPT_NOWAIT:
			o->nowait = true;
			break;
		case OPT_ZERO_BUFFERS:
			o->zero_buffers = true;
			break;
		case OPT_SEED: {
			unsigned long long v;

			errno = 0;
			v = strtoull(optarg, &end, 0);
			if (errno || end == optarg || *end)
				return bad_arg("--seed", optarg, "expected a number");
			o->seed = v;
			break;
		}
		case OPT_PASSES:
			if (parse_uint(optarg, 1, UINT_MAX, &o->passes) < 0)
				return bad_arg("--passes", optarg, "expected a number, at least 1");
			break;
		case OPT_VERIFY_ONLY:
			o->verify_only = true;
			break;
		case OPT_JSON:
			o->json = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf(PROG " %s\n", aioblk_version());
			exit(0);
		default:
			fprintf(stderr, "Try '" PROG " --help'.\n");
			return -1;
		}
	}
	if (o->rwmix_given && o->wl != WL_RANDRW) {
		fprintf(stderr, PROG ": --rwmixread applies only to --workload=randrw\n");
		return -1;
	}
	if (o->verify_only && !o->wl_given)
		o->wl = WL_VERIFY;
	if ((o->verify_only || o->passes) && o->wl != WL_VERIFY) {
		fprintf(stderr, PROG ": --passes and --verify-only apply only to --workload=verify\n");
		return -1;
	}
	if (o->zero_buffers && o->wl == WL_VERIFY) {
		fprintf(stderr, PROG ": verify writes its own patterns; it takes no --zero-buffers\n");
		return -1;
	}
	if (o->verify_only && o->passes) {
		fprintf(stderr, PROG ": --verify-only reads once; it takes no --passes\n");
		return -1;
	}
	o->paths = argv + optind;
	o->npaths = argc - optind;
	if (o->verify_only && !o->npaths) {
		fprintf(stderr, PROG ": --verify-only needs the target that an earlier verify wrote\n");
		return -1;
	}
	return 0;
}
