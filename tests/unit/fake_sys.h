/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A scriptable kernel behind the sys.c seam. Programs that link fake_sys.c
 * are linked with -Wl,--wrap=aioblk_sys_<name> for every name below, so the
 * library's calls land here. By default every call passes through to the
 * real system call (__real_aioblk_sys_*) and is counted; a test then scripts
 * what the kernel says:
 *
 * - fake_fail(): the next N calls of a function fail with an errno;
 * - fake_submit_take(): io_submit takes at most K iocbs (a partial submit);
 * - fake_refuse_offset(): io_submit stops at the iocb for a given offset
 *   (or a flush, FAKE_FLUSH) with an errno, the way the kernel refuses one
 *   bad iocb;
 * - fake_kernel(): io_setup hands back a ring in user memory and io_submit
 *   does the I/O synchronously with pread/pwrite on the real file, then
 *   posts the io_event into that ring (or, with a bad magic, serves it to
 *   io_getevents): completions are deterministic and fake_result() can say
 *   what res a given request gets (an errno, 0, a short count), while the
 *   bytes really moved always match res;
 * - fake_hold(): with fake_kernel() on, io_submit still does the I/O at
 *   once but keeps the io_events back, oldest first, instead of posting
 *   them: fake_release() posts them, and an io_getevents that would sleep
 *   (min_nr >= 1) on an empty fake ring either gets the oldest held event
 *   of its context, as when the I/O finishes during the sleep
 *   (FAKE_HOLD_UNTIL_WAIT; fake_wake_posts() says how many finish), or
 *   times out at once (FAKE_HOLD_FOREVER); every io_getevents call is
 *   recorded (fake_getevents_*);
 * - fake_corrupt_ring(): the real kernel's ring header gets a bad magic, so
 *   the library must reap with io_getevents (where fake_result() rules then
 *   rewrite res of real completions);
 * - fake_blockdev(): statx says "block device" and the block device ioctls
 *   answer from the file, so block-device-only paths run on a file.
 *
 * - fake_fdatasync_gate(): fdatasync, which library threads call, waits
 *   until the test opens the gate, so that thread work stays outstanding.
 *
 * Every submitted iocb is recorded (fake_log) so that tests can check what
 * the library asked the kernel for. Single-threaded but for the fdatasync
 * gate; fake_reset() between tests.
 */
#ifndef AIOBLK_TEST_FAKE_SYS_H
#define AIOBLK_TEST_FAKE_SYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum fake_fn {
	FAKE_IO_SETUP,
	FAKE_IO_DESTROY,
	FAKE_IO_SUBMIT,
	FAKE_IO_GETEVENTS,
	FAKE_EVENTFD,
	FAKE_EVENTFD_READ,
	FAKE_EVENTFD_WRITE,
	FAKE_POLL_IN,
	FAKE_FDATASYNC,
	FAKE_FILE_INFO,
	FAKE_BLKDEV_SIZE,
	FAKE_NFN,
};

/* Calls of each function since the last fake_reset(), faked or not. */
extern unsigned fake_calls[FAKE_NFN];

/* What one submitted iocb asked for (iocbs the kernel took or refused). */
struct fake_iocb {
	int opcode;        /* IO_CMD_* */
	uint64_t offset;   /* bytes */
	uint64_t nbytes;   /* total bytes of the buffer or the iovecs */
	const void *buf;   /* buffer, or the first iovec's base */
	int iovcnt;        /* 1 for PREAD/PWRITE */
	unsigned rw_flags; /* aio_rw_flags */
	void *data;        /* iocb->data */
	int refused;       /* 0, or the errno it was refused with */
};
#define FAKE_LOG_MAX 4096
extern struct fake_iocb fake_log[FAKE_LOG_MAX];
extern unsigned fake_nlog;

/* Forget every rule and counter; back to pass-through. */
void fake_reset(void);

/* Forget the fault rules only; the fake kernel and its rings stay. */
void fake_clear_rules(void);

/* The next @times calls of @fn return @err (negative) without reaching the kernel. */
void fake_fail(enum fake_fn fn, int err, unsigned times);

/* The next @times io_submit calls take at most @k iocbs (k >= 1). */
void fake_submit_take(unsigned k, unsigned times);

/*
 * What the next @n io_submit calls do, one entry per call: > 0 takes at
 * most that many iocbs, 0 returns 0 having taken none, < 0 returns that
 * errno. Applies before fake_submit_take().
 */
void fake_submit_script(const int *seq, unsigned n);

/*
 * The iocb at byte @offset (FAKE_FLUSH: a flush) is refused with @err (negative) the next @times
 * it reaches io_submit: the iocbs before it are submitted and their count
 * returned; when it comes first, io_submit returns @err.
 */
void fake_refuse_offset(uint64_t offset, int err, unsigned times);

/*
 * A completion rule: a read or write iocb starting at byte @offset
 * completes with @res instead of the whole transfer, @times times. res < 0
 * is an errno, 0 is no progress, 0 < res < length moves only res bytes.
 * flags: FAKE_RES_NOWAIT_ONLY applies it only to iocbs with RWF_NOWAIT.
 */
#define FAKE_RES_NOWAIT_ONLY 1u
/* The offset that matches flush (FDSYNC) iocbs in fake_result(). */
#define FAKE_FLUSH UINT64_MAX
void fake_result(uint64_t offset, int64_t res, unsigned times, unsigned flags);

/* io_setup makes a fake ring (see above); @bad_magic makes the library fall back to io_getevents. */
void fake_kernel(bool on, bool bad_magic);
/* The real kernel's ring gets a bad magic at io_setup. */
void fake_corrupt_ring(bool on);
/* Pretend the open file is a block device of @sector bytes; blkdev size answers with the file's size. */
void fake_blockdev(bool on, uint32_t sector);
/*
 * statx on regular files reports STATX_DIOALIGN with these alignments
 * (0 and 0: the file cannot do direct I/O), whatever the file system says.
 */
void fake_dio_align(bool on, uint32_t mem_align, uint32_t offset_align);
/* Pretend the block device now reads a size of zero. */
void fake_blockdev_gone(bool gone);

/*
 * While closed, every fdatasync (the flush fallback of library threads)
 * waits until it is opened again; fake_reset() opens it.
 * fake_fdatasync_waiting() counts the calls waiting at the closed gate.
 */
void fake_fdatasync_gate(bool closed);
unsigned fake_fdatasync_waiting(void);

/* Completions waiting in fake rings, posted or held (fake_hold). */
unsigned fake_pending(void);

/*
 * What io_submit does with completions on fake rings: post them at once
 * (FAKE_HOLD_OFF, the default), or hold them. A held completion is posted
 * by fake_release(), or by an io_getevents with min_nr >= 1 that finds its
 * ring empty: in FAKE_HOLD_UNTIL_WAIT that call gets the oldest held event
 * of its context, in FAKE_HOLD_FOREVER it returns 0 at once, as if its
 * timeout had passed (also with no timeout, where the kernel would sleep).
 * Setting FAKE_HOLD_OFF posts everything still held.
 */
enum fake_hold_mode { FAKE_HOLD_OFF, FAKE_HOLD_UNTIL_WAIT, FAKE_HOLD_FOREVER };
void fake_hold(enum fake_hold_mode mode);
/*
 * How many held completions of its context finish while an io_getevents
 * sleeps in FAKE_HOLD_UNTIL_WAIT (default 1): the oldest @k are posted, the
 * call returns the first of them (at most nr), the rest stay in the ring.
 */
void fake_wake_posts(unsigned k);
/* Post the oldest @n held completions to their rings (UINT_MAX: all); returns how many. */
unsigned fake_release(unsigned n);
/* Completions held back, not yet posted. */
unsigned fake_held(void);

/* One io_getevents call, as the library made it (also the ones fake_fail() failed). */
struct fake_getevents {
	long min_nr;
	long nr;
	int64_t timeout_ns; /* -1: NULL, no timeout */
	unsigned submitted; /* fake_nlog at the call: iocbs io_submit had seen */
	unsigned held;      /* fake_held() at the call */
};
/* The first FAKE_GETEVENTS_LOG_MAX calls since fake_reset() or fake_getevents_clear(); fake_ngetevents counts all. */
#define FAKE_GETEVENTS_LOG_MAX 4096
extern struct fake_getevents fake_getevents_log[FAKE_GETEVENTS_LOG_MAX];
extern unsigned fake_ngetevents;
/* The last call since fake_reset() (zeroes before any). */
extern struct fake_getevents fake_getevents_last;
/* Sums over every call with min_nr >= 1 (one that may sleep) since fake_reset() or fake_getevents_clear(). */
struct fake_getevents_sum {
	unsigned blocking;      /* calls with min_nr >= 1 */
	unsigned no_timeout;    /* those with a NULL timeout */
	unsigned zero_timeout;  /* those with a timeout of 0 */
	int64_t min_timeout_ns; /* over those with a timeout; INT64_MAX when none */
	int64_t max_timeout_ns; /* over those with a timeout; -1 when none */
	/* Those with a NULL timeout on an empty fake ring with nothing held for it: the kernel never returns. */
	unsigned would_hang;
};
extern struct fake_getevents_sum fake_getevents_sum;
/* Forget the log and the sums (not fake_getevents_last nor fake_calls). */
void fake_getevents_clear(void);

/* A log callback that keeps the last messages; fake_log_has() looks for a substring. */
void fake_log_fn(int level, const char *msg, void *arg);
bool fake_log_has(const char *needle);
void fake_log_clear(void);

#endif
