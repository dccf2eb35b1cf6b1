/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * aioblk-perf: the report. Sums the workers of a run and prints the result
 * as text, or as one JSON object (--json).
 */
#define _GNU_SOURCE
#include "perf.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

static double
tv_s(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* Sum the workers of the run @r into @tot. */
void
sum_up(const struct run *r, struct totals *tot)
{
	uint64_t t_end = r->t_start;
	unsigned i;
	int d;

	memset(tot, 0, sizeof(*tot));
	for (i = 0; i < r->o->threads; i++) {
		const struct worker *w = &r->workers[i];

		for (d = 0; d < 2; d++) {
			tot->ios[d] += w->ios_done[d];
			tot->ios[2] += w->ios_done[d];
			hist_merge(&tot->hist[d], &w->hist[d]);
			hist_merge(&tot->hist[2], &w->hist[d]);
		}
		tot->errors += w->errors;
		tot->mismatches += w->mismatches;
		stats_add(&tot->stats, &w->stats);
		if (w->passes > tot->passes)
			tot->passes = w->passes;
		if (w->t_end > t_end)
			t_end = w->t_end;
		if (w->t_end) {
			tot->cpu_user += tv_s(w->ru1.ru_utime) - tv_s(w->ru0.ru_utime);
			tot->cpu_sys += tv_s(w->ru1.ru_stime) - tv_s(w->ru0.ru_stime);
		}
	}
	tot->elapsed = (double)(t_end - r->t_start) / 1e9;
	if (tot->elapsed <= 0)
		tot->elapsed = 1e-9;
}

static void
print_lat_text(const char *label, const struct totals *tot, int d, uint64_t bs)
{
	const struct hist *h = &tot->hist[d];
	uint64_t ios = tot->ios[d];
	double iops = (double)ios / tot->elapsed;

	printf("%-6s IOPS %.0f, %.1f MiB/s, %" PRIu64 " I/Os; latency mean %.2f us, p50 %.2f us, p99 %.2f us, "
	       "p99.9 %.2f us, max %.2f us\n",
	       label, iops, iops * (double)bs / 1048576.0, ios, h->n ? (double)h->sum / (double)h->n / 1e3 : 0.0,
	       (double)hist_percentile(h, 50) / 1e3, (double)hist_percentile(h, 99) / 1e3,
	       (double)hist_percentile(h, 99.9) / 1e3, (double)h->max / 1e3);
}

/* Bytes in the well-formed UTF-8 sequence at @s; 0 when it is not one (overlong, surrogate, cut short, ...). */
static int
utf8_len(const unsigned char *s)
{
	static const uint32_t least[4] = { 0, 0x80, 0x800, 0x10000 };
	int more = *s >= 0xf8 ? -1 : *s >= 0xf0 ? 3 : *s >= 0xe0 ? 2 : *s >= 0xc0 ? 1 : -1;
	uint32_t cp;

	if (*s < 0x80)
		return 1;
	if (more < 0)
		return 0;
	cp = *s & (0x3fu >> more);
	for (int i = 1; i <= more; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3fu);
	}
	if (cp < least[more] || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return more + 1;
}

/* A JSON string; a byte that is not UTF-8 (file names need not be) becomes U+FFFD. */
static void
json_string(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	int len;

	putchar('"');
	while (*s) {
		len = utf8_len(s);
		if (!len) {
			fputs("\\ufffd", stdout);
			s++;
			continue;
		}
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if (*s < 0x20)
			printf("\\u%04x", *s);
		else
			fwrite(s, 1, (size_t)len, stdout);
		s += len;
	}
	putchar('"');
}

static void
print_lat_json(const char *name, const struct totals *tot, int d, uint64_t bs)
{
	const struct hist *h = &tot->hist[d];
	uint64_t ios = tot->ios[d];
	double iops = (double)ios / tot->elapsed;

	printf("\"%s\":{\"ios\":%" PRIu64 ",\"iops\":%.1f,\"mib_s\":%.3f,\"lat_ns\":{\"mean\":%.1f,\"p50\":%" PRIu64
	       ",\"p99\":%" PRIu64 ",\"p99_9\":%" PRIu64 ",\"max\":%" PRIu64 "}}",
	       name, ios, iops, iops * (double)bs / 1048576.0, h->n ? (double)h->sum / (double)h->n : 0.0,
	       hist_percentile(h, 50), hist_percentile(h, 99), hist_percentile(h, 99.9), h->max);
}

/* Print the report: text, or one JSON object; @verify_result NULL when not verifying. */
/* How the threads wait, for --json's "mode". */
static const char *
mode_name(const struct opts *o)
{
	return o->interrupt ? "interrupt" : o->wait_in_kernel ? "wait-in-kernel" : "poll";
}

void
report(const struct run *r, const struct totals *tot, const char *verify_result, bool was_interrupted)
{
	const struct opts *o = r->o;
	int t;

	if (o->json) {
		printf("{\"tool\":\"" PROG "\",\"version\":\"%s\",\"workload\":\"%s\",\"bs\":%" PRIu64
		       ",\"iodepth\":%u,\"threads\":%u,\"mode\":\"%s\",\"rwmixread\":%u,\"runtime_s\":%.3f,"
		       "\"elapsed_s\":%.6f,\"group\":\"%s\",\"group_depth\":%u,\"idle_targets\":%u,\"targets\":[",
		       aioblk_version(), workload_names[o->wl], o->bs, o->iodepth, o->threads, mode_name(o),
		       o->rwmixread, o->runtime, tot->elapsed, o->shared_context ? "shared" : "plain",
		       o->shared_context ? o->group_depth : 0, o->idle);
		for (t = 0; t < r->ntargets; t++) {
			const struct target *tg = &r->targets[t];

			printf("%s{\"path\":", t ? "," : "");
			json_string(tg->path);
			printf(",\"block_size\":%u,\"bytes\":%" PRIu64
			       ",\"direct\":%s,\"block_device\":%s,\"queue_limit\":%u,\"idle\":%s}",
			       tg->block_size, tg->bytes, tg->direct ? "true" : "false",
			       tg->blockdev ? "true" : "false", tg->queue_limit,
			       t >= r->ntargets - (int)o->idle ? "true" : "false");
		}
		printf("],");
		print_lat_json("read", tot, 0, o->bs);
		putchar(',');
		print_lat_json("write", tot, 1, o->bs);
		putchar(',');
		print_lat_json("total", tot, 2, o->bs);
		printf(",\"cpu\":{\"user_s\":%.3f,\"sys_s\":%.3f,\"total_s\":%.3f},\"errors\":%" PRIu64
		       ",\"mismatches\":%" PRIu64 ",\"interrupted\":%s",
		       tot->cpu_user, tot->cpu_sys, tot->cpu_user + tot->cpu_sys, tot->errors, tot->mismatches,
		       was_interrupted ? "true" : "false");
		printf(",\"channel_stats\":{\"io_submit_calls\":%" PRIu64 ",\"completions\":%" PRIu64
		       ",\"polls\":%" PRIu64 ",\"busy_polls\":%" PRIu64 ",\"retries\":%" PRIu64 "}",
		       tot->stats.io_submit_calls, tot->stats.completions, tot->stats.polls, tot->stats.busy_polls,
		       tot->stats.retries);
		if (verify_result)
			printf(",\"verify\":\"%s\",\"verify_passes\":%" PRIu64, verify_result, tot->passes);
		printf("}\n");
		return;
	}
	printf(PROG " %s: %s, bs %" PRIu64 ", iodepth %u, %u thread%s, %s", aioblk_version(), workload_names[o->wl],
	       o->bs, o->iodepth, o->threads, o->threads == 1 ? "" : "s",
	       o->interrupt      ? "interrupt (eventfd)" :
	       o->wait_in_kernel ? "wait in the kernel (io_getevents)" :
				   "busy-poll");
	if (o->shared_context)
		printf(", one shared context of depth %u per thread", o->group_depth);
	printf("%s\n", was_interrupted ? ", interrupted" : "");
	for (t = 0; t < r->ntargets; t++) {
		const struct target *tg = &r->targets[t];

		printf("target %s: %s, %u-byte blocks, %" PRIu64 " bytes used, %s", tg->path,
		       tg->blockdev          ? "block device" :
		       tg->path == temp_path ? "temporary file" :
					       "file",
		       tg->block_size, tg->bytes, tg->direct ? "O_DIRECT" : "buffered (no O_DIRECT)");
		if (tg->queue_limit)
			printf(", at most %u requests in the device", tg->queue_limit);
		printf("%s\n", t >= r->ntargets - (int)o->idle ? ", idle (a channel, no I/O)" : "");
	}
	if (tot->ios[0])
		print_lat_text("read:", tot, 0, o->bs);
	if (tot->ios[1])
		print_lat_text("write:", tot, 1, o->bs);
	print_lat_text("total:", tot, 2, o->bs);
	printf("time:  %.3f s; cpu: user %.3f s, sys %.3f s, total %.3f s\n", tot->elapsed, tot->cpu_user, tot->cpu_sys,
	       tot->cpu_user + tot->cpu_sys);
	/* A shared context's io_submit counts once in each channel it carried: the sum is no call count. */
	if (tot->stats.io_submit_calls && !o->shared_context)
		printf("kernel: %" PRIu64 " io_submit calls (%.1f requests each), %" PRIu64 " polls, %.1f%% of them "
		       "found completions\n",
		       tot->stats.io_submit_calls, (double)tot->stats.completions / (double)tot->stats.io_submit_calls,
		       tot->stats.polls,
		       tot->stats.polls ? 100.0 * (double)tot->stats.busy_polls / (double)tot->stats.polls : 0.0);
	else if (tot->stats.io_submit_calls)
		printf("kernel: io_submit calls counted per channel %" PRIu64 " (a shared call counts in each channel "
		       "it carried), %" PRIu64 " polls, %.1f%% of them found completions\n",
		       tot->stats.io_submit_calls, tot->stats.polls,
		       tot->stats.polls ? 100.0 * (double)tot->stats.busy_polls / (double)tot->stats.polls : 0.0);
	if (tot->errors)
		printf("errors: %" PRIu64 "\n", tot->errors);
	if (verify_result)
		printf("verify: %s (%" PRIu64 " %s passes, %" PRIu64 " mismatched blocks)\n", verify_result,
		       tot->passes, o->verify_only ? "read" : "write+read", tot->mismatches);
}
