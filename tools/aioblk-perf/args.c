/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * aioblk-perf: the options. One row of optdefs[] says everything about an
 * option: its name, short option, argument, help text, and how its value is
 * parsed into struct opts. getopt_long's array, the short option string,
 * --help and the parsing are all made from that table, so an option is
 * added by adding a row (and, if it needs one, a default in parse_args).
 */
#define _GNU_SOURCE
#include "perf.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const workload_names[WL_VERIFY + 1] = {
	[WL_READ] = "read",           [WL_WRITE] = "write",   [WL_RANDREAD] = "randread",
	[WL_RANDWRITE] = "randwrite", [WL_RANDRW] = "randrw", [WL_VERIFY] = "verify",
};

struct optdef {
	const char *name; /* --name */
	char short_opt;   /* -c; 0: the long name only */
	const char *arg;  /* the argument as --help names it; NULL: takes none */
	const char *help; /* a line after a '\n' is indented under the first */
	int (*parse)(const struct optdef *d, const char *val, struct opts *o);
	size_t off;        /* the field of struct opts that parse sets */
	unsigned min, max; /* opt_uint: the range */
	const char *why;   /* what a bad value is told */
};

/* The column --help starts the help text in. */
#define HELP_COL 23

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
bad_arg(const struct optdef *d, const char *val, const char *why)
{
	fprintf(stderr, PROG ": invalid --%s '%s': %s\n", d->name, val, why);
	fprintf(stderr, "Try '" PROG " --help'.\n");
	return -1;
}

/* The field of @o that the row @d sets. */
#define FIELD(o, d, type) ((type *)((char *)(o) + (d)->off))

/* The parsers a row can name: each sets its field, or says why not and returns -1. */

static int
opt_flag(const struct optdef *d, const char *val, struct opts *o)
{
	*FIELD(o, d, bool) = true;
	return 0;
}

static int
opt_uint(const struct optdef *d, const char *val, struct opts *o)
{
	if (parse_uint(val, d->min, d->max, FIELD(o, d, unsigned)) < 0)
		return bad_arg(d, val, d->why);
	return 0;
}

/* A size, more than 0. */
static int
opt_size(const struct optdef *d, const char *val, struct opts *o)
{
	uint64_t *v = FIELD(o, d, uint64_t);

	if (parse_size(val, v) < 0 || *v == 0)
		return bad_arg(d, val, d->why);
	return 0;
}

/* Any 64-bit number, in C's notation (0x..., 0...). */
static int
opt_u64(const struct optdef *d, const char *val, struct opts *o)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(val, &end, 0);
	if (errno || end == val || *end)
		return bad_arg(d, val, d->why);
	*FIELD(o, d, uint64_t) = v;
	return 0;
}

static int
opt_bs(const struct optdef *d, const char *val, struct opts *o)
{
	if (opt_size(d, val, o) < 0)
		return -1;
	if (o->bs % 512 || o->bs > MAX_BS)
		return bad_arg(d, val, "must be a multiple of 512 and at most 64m");
	return 0;
}

static int
opt_workload(const struct optdef *d, const char *val, struct opts *o)
{
	unsigned i;

	for (i = 0; i < sizeof(workload_names) / sizeof(workload_names[0]); i++)
		if (strcmp(val, workload_names[i]) == 0)
			break;
	if (i == sizeof(workload_names) / sizeof(workload_names[0]))
		return bad_arg(d, val, d->why);
	o->wl = (enum workload)i;
	o->wl_given = true;
	return 0;
}

/* Seconds, more than 0, an 's' allowed after them. */
static int
opt_runtime(const struct optdef *d, const char *val, struct opts *o)
{
	char *end;

	errno = 0;
	o->runtime = strtod(val, &end);
	if (end != val && *end == 's')
		end++;
	if (errno || end == val || *end || !(o->runtime > 0) || o->runtime > 1e6)
		return bad_arg(d, val, d->why);
	return 0;
}

static int
opt_rwmixread(const struct optdef *d, const char *val, struct opts *o)
{
	if (opt_uint(d, val, o) < 0)
		return -1;
	o->rwmix_given = true;
	return 0;
}

static void usage(FILE *f);

static int
opt_help(const struct optdef *d, const char *val, struct opts *o)
{
	usage(stdout);
	exit(0);
}

static int
opt_version(const struct optdef *d, const char *val, struct opts *o)
{
	printf(PROG " %s\n", aioblk_version());
	exit(0);
}

#define OFF(field) offsetof(struct opts, field)

/*
 * In the order --help lists them. Name, short option, argument, help text,
 * parser, the field it sets, for opt_uint the range, and what a bad value
 * is told.
 */
static const struct optdef optdefs[] = {
	{ "workload", 'w', "W", "read, write, randread, randwrite, randrw, verify (default randread)", opt_workload,
	  OFF(wl), 0, 0, "expected read, write, randread, randwrite, randrw or verify" },
	{ "bs", 'b', "SIZE", "I/O size in bytes, k/m/g suffixes (default 4k); a multiple of\nevery target's block size",
	  opt_bs, OFF(bs), 0, 0, "expected a size such as 4096, 4k or 1m" },
	{ "iodepth", 'q', "N", "requests in flight per thread per target (default 32)", opt_uint, OFF(iodepth), 1,
	  MAX_IODEPTH, "expected a number from 1 to 65536" },
	{ "runtime", 't', "SEC",
	  "run time in seconds (default 10); verify repeats write+read\npasses until it has passed", opt_runtime,
	  OFF(runtime), 0, 0, "expected seconds, more than 0" },
	{ "threads", 'j', "N", "threads, each with its own poll group (default 1)", opt_uint, OFF(threads), 1,
	  MAX_THREADS, "expected a number from 1 to 1024" },
	{ "rwmixread", 'M', "PCT", "percentage of reads in randrw (default 50)", opt_rwmixread, OFF(rwmixread), 0, 100,
	  "expected a percentage from 0 to 100" },
	{ "size", 's', "SIZE", "use only the first SIZE bytes of each target", opt_size, OFF(size), 0, 0,
	  "expected a size such as 64m or 1g" },
	{ "idle", 0, "N",
	  "the last N targets get a channel in every thread's group\nbut no I/O: idle disks its polls still visit",
	  opt_uint, OFF(idle), 0, UINT_MAX, "expected a number" },
	{ "shared-context", 0, NULL,
	  "one kernel AIO context per thread for all its targets\n(AIOBLK_GROUP_SHARED_CONTEXT) instead of one per target",
	  opt_flag, OFF(shared_context), 0, 0, NULL },
	{ "group-depth", 0, "N",
	  "the shared context's depth (default 256, the library's,\nor --iodepth x busy targets when that is more)",
	  opt_uint, OFF(group_depth), 1, MAX_GROUP_DEPTH, "expected a number from 1 to 65536" },
	{ "interrupt", 'i', NULL, "sleep on the group's eventfd instead of busy-polling", opt_flag, OFF(interrupt), 0,
	  0, NULL },
	{ "wait-in-kernel", 0, NULL,
	  "wait for completions asleep in io_getevents\n(AIOBLK_GROUP_WAIT_IN_KERNEL) instead of busy-polling",
	  opt_flag, OFF(wait_in_kernel), 0, 0, NULL },
	{ "buffered", 0, NULL, "do not use O_DIRECT", opt_flag, OFF(buffered), 0, 0, NULL },
	{ "nowait", 0, NULL, "try RWF_NOWAIT on reads (AIOBLK_DISK_NOWAIT)", opt_flag, OFF(nowait), 0, 0, NULL },
	{ "no-queue-limit", 0, NULL, "let io_submit sleep for a device request (AIOBLK_DISK_NO_QUEUE_LIMIT)", opt_flag,
	  OFF(no_queue_limit), 0, 0, NULL },
	{ "zero-buffers", 0, NULL, "write zeroes instead of random data (zram stores them\nwithout compressing)",
	  opt_flag, OFF(zero_buffers), 0, 0, NULL },
	{ "seed", 0, "N", "seed for offsets, data and verify patterns (default 1)", opt_u64, OFF(seed), 0, 0,
	  "expected a number" },
	{ "passes", 0, "N", "verify: exactly N write+read passes (the run time is ignored)", opt_uint, OFF(passes), 1,
	  UINT_MAX, "expected a number, at least 1" },
	{ "verify-only", 0, NULL,
	  "verify: only read and check what an earlier\n'verify --passes 1' with the same --seed and --bs wrote",
	  opt_flag, OFF(verify_only), 0, 0, NULL },
	{ "json", 0, NULL, "print the report as one JSON object", opt_flag, OFF(json), 0, 0, NULL },
	{ "help", 'h', NULL, "this help", opt_help, 0, 0, 0, NULL },
	{ "version", 'V', NULL, "print the library version", opt_version, 0, 0, 0, NULL },
};

#define NOPTS (sizeof(optdefs) / sizeof(optdefs[0]))

/* What getopt_long returns for a row: its short option, or a code above every character. */
static int
opt_val(unsigned i)
{
	return optdefs[i].short_opt ? optdefs[i].short_opt : 256 + (int)i;
}

static void
usage(FILE *f)
{
	const char *p;
	unsigned i;

	fprintf(f, "Usage: " PROG " [OPTIONS] [TARGET...]\n"
		   "Measure or verify block I/O through aioblk (Linux AIO, polled).\n"
		   "\n"
		   "TARGET is a regular file or a block device; every thread works on every target.\n"
		   "With no target, a temporary 256 MiB file (or --size) is made in the current\n"
		   "directory, written once, and removed at the end (also on error or Ctrl-C).\n"
		   "\n");
	for (i = 0; i < NOPTS; i++) {
		const struct optdef *d = &optdefs[i];
		int n;

		if (d->short_opt)
			n = fprintf(f, "  -%c, --%s", d->short_opt, d->name);
		else
			n = fprintf(f, "      --%s", d->name);
		if (d->arg)
			n += fprintf(f, "=%s", d->arg);
		fprintf(f, "%*s", n < HELP_COL - 1 ? HELP_COL - n : 2, ""); /* at least two spaces */
		for (p = d->help; *p; p++) {
			fputc(*p, f);
			if (*p == '\n')
				fprintf(f, "%*s", HELP_COL, "");
		}
		fputc('\n', f);
	}
	fprintf(f,
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

int
parse_args(int argc, char **argv, struct opts *o)
{
	static struct option longopts[NOPTS + 1];
	char shortopts[2 * NOPTS + 1], *s = shortopts;
	unsigned i;
	int c;

	*o = (struct opts){
		.wl = WL_RANDREAD,
		.bs = 4096,
		.iodepth = 32,
		.runtime = 10,
		.threads = 1,
		.rwmixread = 50,
		.seed = 1,
	};
	for (i = 0; i < NOPTS; i++) {
		const struct optdef *d = &optdefs[i];

		longopts[i] = (struct option){ d->name, d->arg ? required_argument : no_argument, NULL, opt_val(i) };
		if (d->short_opt) {
			*s++ = d->short_opt;
			if (d->arg)
				*s++ = ':';
		}
	}
	*s = '\0';

	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		for (i = 0; i < NOPTS; i++)
			if (opt_val(i) == c)
				break;
		if (i == NOPTS) {
			fprintf(stderr, "Try '" PROG " --help'.\n");
			return -1;
		}
		if (optdefs[i].parse(&optdefs[i], optarg, o) < 0)
			return -1;
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
	if (check_group_opts(o, o->npaths ? (unsigned)o->npaths : 1) < 0)
		return -1;
	if (o->verify_only && !o->npaths) {
		fprintf(stderr, PROG ": --verify-only needs the target that an earlier verify wrote\n");
		return -1;
	}
	return 0;
}
