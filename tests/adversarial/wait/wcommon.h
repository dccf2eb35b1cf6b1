/* SPDX-License-Identifier: BSD-3-Clause */
/* Helpers for the AIOBLK_GROUP_WAIT_IN_KERNEL programs: public API only. */
#ifndef WIK_COMMON_H
#define WIK_COMMON_H
#include "../common.h"
#include <pthread.h>
#include <signal.h>

#define WIK AIOBLK_GROUP_WAIT_IN_KERNEL

static inline double
thread_cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A group of kind @shared (0 plain, 1 SHARED_CONTEXT) with WAIT_IN_KERNEL. */
static inline struct aioblk_group *
wik_group(int shared, unsigned depth)
{
	struct aioblk_group_opts go = { .flags = WIK | (shared ? AIOBLK_GROUP_SHARED_CONTEXT : 0),
					.queue_depth = shared ? depth : 0 };
	struct aioblk_group *g = NULL;
	int rc = aioblk_group_create_ext(&go, &g);
	if (rc)
		DIE("group_create_ext(WIK%s): %d", shared ? "|SHARED" : "", rc);
	return g;
}

/*
 * Hang detector: wd_progress() is called whenever something completes; when
 * nothing did for wd_secs while armed (wd_armed_set), the program prints
 * what it was doing (wd_what_set) and exits 2 (a hang is a defect; the program cannot go on).
 */
static long wd_count;
static int wd_armed_v;
#define wd_armed_set(v) __atomic_store_n(&wd_armed_v, (v), __ATOMIC_RELAXED)
static const char *wd_what_s = "";
#define wd_what_set(s) __atomic_store_n(&wd_what_s, (s), __ATOMIC_RELAXED)
static double wd_secs = 5;
static inline void
wd_progress(void)
{
	__atomic_add_fetch(&wd_count, 1, __ATOMIC_RELAXED);
}
static void *
wd_thread(void *arg)
{
	long last = -1;
	double since = now_s();
	for (;;) {
		usleep(50000);
		long c = __atomic_load_n(&wd_count, __ATOMIC_RELAXED);
		if (c != last || !__atomic_load_n(&wd_armed_v, __ATOMIC_RELAXED)) {
			last = c;
			since = now_s();
			continue;
		}
		if (now_s() - since > wd_secs) {
			fprintf(stderr, "FAIL hang: nothing completed for %.1f s while: %s\n", wd_secs,
				__atomic_load_n(&wd_what_s, __ATOMIC_RELAXED));
			adv_cleanup();
			_exit(2);
		}
	}
	return NULL;
}
static inline void
wd_start(double secs)
{
	pthread_t t;
	setvbuf(stdout, NULL, _IOLBF, 0); /* reports interleave with FAIL lines in order */
	wd_secs = secs;
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	pthread_create(&t, NULL, wd_thread, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_detach(t);
}

/* Skip (77) unless root. */
static inline void
need_root(const char *name)
{
	if (geteuid() != 0) {
		printf("%s: skip: needs root\n", name);
		exit(77);
	}
}
#endif
