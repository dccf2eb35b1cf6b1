/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * An LD_PRELOAD shim for perf_smoke.sh: every plain read handed to
 * io_submit lands in a scratch buffer instead of the caller's, and still
 * completes with success. A verifier that passes under it never looked at
 * what its reads delivered. At exit it says how many reads it diverted, so
 * that a shim that intercepted nothing is told apart from a verifier that
 * checked nothing.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <libaio.h>
#include <stdio.h>
#include <stdlib.h>

#define SINK_BYTES (4u << 20)

typedef int (*io_submit_fn)(io_context_t ctx, long nr, struct iocb *ios[]);

static unsigned long diverted;

int
io_submit(io_context_t ctx, long nr, struct iocb *ios[])
{
	static io_submit_fn real;
	static void *sink;

	if (!real)
		real = (io_submit_fn)dlsym(RTLD_NEXT, "io_submit");
	if (!real || (!sink && posix_memalign(&sink, 4096, SINK_BYTES)))
		return -ENOSYS;
	for (long i = 0; i < nr; i++) {
		if (ios[i]->aio_lio_opcode == IO_CMD_PREAD && ios[i]->u.c.nbytes <= SINK_BYTES) {
			ios[i]->u.c.buf = sink;
			__atomic_add_fetch(&diverted, 1, __ATOMIC_RELAXED);
		}
	}
	return real(ctx, nr, ios);
}

__attribute__((destructor)) static void
report(void)
{
	fprintf(stderr, "read_blackhole: %lu reads diverted\n", diverted);
}
