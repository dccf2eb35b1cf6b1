/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * aioblk-fio: an external fio ioengine that does its I/O through aioblk.
 *
 * Load it with --ioengine=external:/path/to/aioblk-fio.so. Each fio job
 * (thread or process) gets one aioblk poll group; each file the job opens
 * gets one aioblk disk and one channel in that group. ->queue hands a request
 * to the channel, ->commit gives the batch to the kernel
 * (aioblk_group_submit), ->getevents polls the group (or sleeps on its eventfd
 * with the "eventfd" option) and ->event returns the io_u a callback finished.
 *
 * Built against a configured fio source tree (the meson option fio_source):
 * the headers come from that tree, none are shipped with aioblk, and this
 * file contains no fio code. Only aioblk's public API is used.
 *
 * The file has three parts: the options, the logic (which knows aioblk and
 * the engine's own structs), and the thin adapters fio calls, ending with
 * the ops table.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "fio.h"
#include "optgroup.h"

#include <aioblk/aioblk.h>

/* ------------------------------------------------------------------ */
/* Options                                                            */
/* ------------------------------------------------------------------ */

/* fio parses into this struct; off1 of an option must not be 0, hence pad. */
struct aioblk_fio_options {
	void *pad;
	unsigned int eventfd;
	unsigned int buffered;
	unsigned int nowait;
	unsigned int bounce_buffers;
	unsigned long long bounce_buffer_size;
	unsigned int queue_depth;
};

static struct fio_option options[] = {
	{
		.name = "aioblk_eventfd",
		.lname = "aioblk eventfd mode",
		.type = FIO_OPT_BOOL,
		.off1 = offsetof(struct aioblk_fio_options, eventfd),
		.help = "Sleep on the poll group's eventfd (aioblk_group_wait) instead of busy-polling",
		.def = "0",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "aioblk_buffered",
		.lname = "aioblk buffered",
		.type = FIO_OPT_BOOL,
		.off1 = offsetof(struct aioblk_fio_options, buffered),
		.help = "Open disks without O_DIRECT (AIOBLK_DISK_BUFFERED); default: O_DIRECT, falling back to "
			"buffered where the file system refuses it (never with direct=1)",
		.def = "0",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "aioblk_nowait",
		.lname = "aioblk NOWAIT reads",
		.type = FIO_OPT_BOOL,
		.off1 = offsetof(struct aioblk_fio_options, nowait),
		.help = "Try RWF_NOWAIT on reads of O_DIRECT block devices (AIOBLK_DISK_NOWAIT)",
		.def = "0",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "aioblk_bounce_buffers",
		.lname = "aioblk bounce buffers",
		.type = FIO_OPT_INT,
		.off1 = offsetof(struct aioblk_fio_options, bounce_buffers),
		.help = "Bounce buffers per channel for memory that O_DIRECT cannot take (0: refuse it)",
		.def = "0",
		.minval = 0,
		.maxval = 65536,
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "aioblk_bounce_buffer_size",
		.lname = "aioblk bounce buffer size",
		.type = FIO_OPT_STR_VAL,
		.off1 = offsetof(struct aioblk_fio_options, bounce_buffer_size),
		.help = "Size of each bounce buffer (0: the library's default, 128k)",
		.def = "0",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "aioblk_queue_depth",
		.lname = "aioblk channel queue depth",
		.type = FIO_OPT_INT,
		.off1 = offsetof(struct aioblk_fio_options, queue_depth),
		.help = "Request slots of each file's channel (0: the job's iodepth)",
		.def = "0",
		.minval = 0,
		.maxval = 65536,
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = NULL,
	},
};

/* ------------------------------------------------------------------ */
/* Logic                                                              */
/* ------------------------------------------------------------------ */

/* Per job: the poll group and the completions not yet handed to fio. */
struct aioblk_fio_data {
	struct aioblk_group *group;
	bool eventfd;
	/* Finished io_us in completion order: a ring of cap entries. */
	struct io_u **done;
	unsigned int cap;
	unsigned int head;     /* oldest entry */
	unsigned int count;    /* entries in the ring */
	unsigned int returned; /* entries the last getevents returned; dropped at the next */
	unsigned int inflight; /* accepted requests whose callback has not run */
	unsigned int queued;   /* queued since the last commit, for fio's statistics */
};

/* Per file of a job: its disk and, once the job is set up, its channel. */
struct aioblk_fio_file {
	struct aioblk_disk *disk;
	struct aioblk_channel *ch;
	uint32_t block_size;
};

/* What ->queue asks for, in aioblk's terms. */
enum aioblk_fio_op {
	AIOBLK_FIO_READ,
	AIOBLK_FIO_WRITE,
	AIOBLK_FIO_FLUSH,
	AIOBLK_FIO_UNMAP,
};

/* Disk flags for a job that writes (or not), with the engine's options. */
static uint32_t
afio_disk_flags(const struct aioblk_fio_options *o, bool writes, bool require_direct)
{
	uint32_t flags = 0;

	if (!writes)
		flags |= AIOBLK_DISK_READONLY;
	if (o->buffered)
		flags |= AIOBLK_DISK_BUFFERED;
	else if (require_direct)
		flags |= AIOBLK_DISK_REQUIRE_DIRECT;
	if (o->nowait)
		flags |= AIOBLK_DISK_NOWAIT;
	return flags;
}

static int
afio_data_create(bool eventfd, unsigned int cap, struct aioblk_fio_data **datap)
{
	struct aioblk_fio_data *d;
	int rc;

	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->cap = cap ? cap : 1;
	d->done = calloc(d->cap, sizeof(*d->done));
	if (!d->done) {
		free(d);
		return -ENOMEM;
	}
	d->eventfd = eventfd;
	rc = aioblk_group_create(eventfd ? AIOBLK_GROUP_EVENTFD : 0, &d->group);
	if (rc < 0) {
		free(d->done);
		free(d);
		return rc;
	}
	*datap = d;
	return 0;
}

/*
 * Run the group until nothing is outstanding, so that its channels can be
 * destroyed (a channel with requests in flight refuses). Bounded: a request
 * that never completes leaves the channel alive rather than hanging fio.
 */
static void
afio_drain(struct aioblk_fio_data *d)
{
	int i;

	for (i = 0; i < 10000 && d->inflight > 0; i++)
		if (aioblk_group_wait(d->group, 1) < 0)
			break;
}

static void
afio_data_destroy(struct aioblk_fio_data *d)
{
	if (!d)
		return;
	afio_drain(d);
	aioblk_group_destroy(d->group);
	free(d->done);
	free(d);
}

static int
afio_file_open(const char *path, uint32_t flags, struct aioblk_fio_file **filep)
{
	struct aioblk_disk_opts opts = { .flags = flags };
	struct aioblk_fio_file *af;
	int rc;

	af = calloc(1, sizeof(*af));
	if (!af)
		return -ENOMEM;
	rc = aioblk_disk_open(path, &opts, &af->disk);
	if (rc < 0) {
		free(af);
		return rc;
	}
	af->block_size = aioblk_disk_block_size(af->disk);
	*filep = af;
	return 0;
}

/* Give the file its channel in the job's group, once. */
static int
afio_file_attach(struct aioblk_fio_data *d, struct aioblk_fio_file *af, const struct aioblk_fio_options *o,
		 unsigned int queue_depth)
{
	struct aioblk_channel_opts copts = {
		.queue_depth = queue_depth,
		.bounce_buffers = o->bounce_buffers,
		.bounce_buffer_size = o->bounce_buffer_size,
	};

	if (af->ch)
		return 0;
	return aioblk_channel_create_ext(d->group, af->disk, &copts, &af->ch);
}

static int
afio_file_close(struct aioblk_fio_data *d, struct aioblk_fio_file *af)
{
	int rc;

	if (af->ch) {
		if (d && aioblk_channel_inflight(af->ch) > 0)
			afio_drain(d);
		rc = aioblk_channel_destroy(af->ch);
		if (rc < 0)
			return rc;
		af->ch = NULL;
	}
	rc = aioblk_disk_close(af->disk);
	if (rc < 0)
		return rc;
	free(af);
	return 0;
}

/* Size in bytes of a file or block device, as aioblk sees it. */
static int
afio_disk_size(const char *path, uint32_t flags, uint64_t *bytes)
{
	struct aioblk_disk_opts opts = { .flags = flags | AIOBLK_DISK_READONLY };
	struct aioblk_disk *disk;
	int rc;

	rc = aioblk_disk_open(path, &opts, &disk);
	if (rc < 0)
		return rc;
	*bytes = aioblk_disk_num_blocks(disk) * aioblk_disk_block_size(disk);
	aioblk_disk_close(disk);
	return 0;
}

/*
 * Start one request. Byte offsets and lengths become blocks; what is not a
 * whole number of blocks is refused with -EINVAL, like a misaligned O_DIRECT
 * request. Returns 0 when accepted (cb then runs once from a poll), -EAGAIN
 * when the channel is full, or another negative errno when refused.
 */
static int
afio_start(struct aioblk_fio_data *d, struct aioblk_fio_file *af, enum aioblk_fio_op op, void *buf,
	   uint64_t offset, uint64_t len, aioblk_cb cb, void *arg)
{
	uint64_t bs = af->block_size;
	int rc;

	if (op != AIOBLK_FIO_FLUSH && (offset % bs || len % bs || len == 0))
		return -EINVAL;
	switch (op) {
	case AIOBLK_FIO_READ:
		rc = aioblk_read(af->ch, buf, offset / bs, len / bs, cb, arg);
		break;
	case AIOBLK_FIO_WRITE:
		rc = aioblk_write(af->ch, buf, offset / bs, len / bs, cb, arg);
		break;
	case AIOBLK_FIO_FLUSH:
		rc = aioblk_flush(af->ch, cb, arg);
		break;
	case AIOBLK_FIO_UNMAP:
		if (!aioblk_disk_supports(af->disk, AIOBLK_IO_UNMAP))
			return -EOPNOTSUPP;
		rc = aioblk_unmap(af->ch, offset / bs, len / bs, cb, arg);
		break;
	default:
		return -EINVAL;
	}
	if (rc == 0) {
		d->inflight++;
		d->queued++;
	}
	return rc;
}

/* A callback finished arg: store it for ->event. */
static void
afio_finished(struct aioblk_fio_data *d, void *arg)
{
	d->inflight--;
	/* fio never has more than iodepth io_us, and cap is iodepth. */
	if (d->count < d->cap) {
		d->done[(d->head + d->count) % d->cap] = arg;
		d->count++;
	}
}

static uint64_t
afio_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * Collect at least min and at most max completions, waiting no longer than
 * timeout (NULL: no limit). Returns how many are ready (the entries
 * afio_ready(0..n-1) until the next call), or a negative errno.
 */
static int
afio_reap(struct aioblk_fio_data *d, unsigned int min, unsigned int max, const struct timespec *timeout)
{
	uint64_t deadline = 0;
	int rc;

	/* The batch fio took last time is done with. */
	d->head = (d->head + d->returned) % d->cap;
	d->count -= d->returned;
	d->returned = 0;
	if (max > d->cap)
		max = d->cap;
	if (min > max)
		min = max;
	if (timeout)
		deadline = afio_now_ns() + (uint64_t)timeout->tv_sec * 1000000000u + (uint64_t)timeout->tv_nsec;

	if (d->count < max) {
		rc = aioblk_group_poll(d->group, max - d->count);
		if (rc < 0)
			return rc;
	}
	while (d->count < min && d->inflight > 0) {
		if (d->eventfd) {
			int ms = -1;

			if (timeout) {
				uint64_t now = afio_now_ns();

				if (now >= deadline)
					break;
				ms = (int)((deadline - now + 999999) / 1000000);
			}
			rc = aioblk_group_wait(d->group, ms);
		} else {
			if (timeout && afio_now_ns() >= deadline)
				break;
			rc = aioblk_group_poll(d->group, max - d->count);
		}
		if (rc < 0)
			return rc;
	}
	d->returned = d->count < max ? d->count : max;
	return (int)d->returned;
}

static void *
afio_ready(const struct aioblk_fio_data *d, int i)
{
	return d->done[(d->head + (unsigned int)i) % d->cap];
}

/* ------------------------------------------------------------------ */
/* fio adapters                                                       */
/* ------------------------------------------------------------------ */

static struct aioblk_fio_options *
fio_aioblk_opts(struct thread_data *td)
{
	return td->eo;
}

static bool
fio_aioblk_writes(struct thread_data *td)
{
	return td_write(td) || td_trim(td);
}

static unsigned int
fio_aioblk_queue_depth(struct thread_data *td)
{
	unsigned int qd = fio_aioblk_opts(td)->queue_depth;

	return qd ? qd : td->o.iodepth;
}

/* Make the job's poll group. */
static int
fio_aioblk_init(struct thread_data *td)
{
	struct aioblk_fio_data *d;
	int rc;

	rc = afio_data_create(fio_aioblk_opts(td)->eventfd, td->o.iodepth, &d);
	if (rc < 0) {
		td_verror(td, -rc, "aioblk_group_create");
		return 1;
	}
	td->io_ops_data = d;
	return 0;
}

/* Destroy the channels left open, then the group. */
static void
fio_aioblk_cleanup(struct thread_data *td)
{
	struct aioblk_fio_data *d = td->io_ops_data;
	struct fio_file *f;
	unsigned int i;

	if (!d)
		return;
	afio_drain(d);
	for_each_file(td, f, i) {
		struct aioblk_fio_file *af = FILE_ENG_DATA(f);

		if (af && af->ch && aioblk_channel_destroy(af->ch) == 0)
			af->ch = NULL;
	}
	afio_data_destroy(d);
	td->io_ops_data = NULL;
}

/* Open the file as an aioblk disk; its channel comes with the job's group. */
static int
fio_aioblk_open_file(struct thread_data *td, struct fio_file *f)
{
	struct aioblk_fio_data *d = td->io_ops_data;
	struct aioblk_fio_file *af;
	int rc;

	rc = afio_file_open(f->file_name, afio_disk_flags(fio_aioblk_opts(td), fio_aioblk_writes(td), td->o.odirect),
			    &af);
	if (rc < 0) {
		td_verror(td, -rc, "aioblk_disk_open");
		return 1;
	}
	/* fio may open a file before init (to size it): the channel then waits for the first request. */
	if (d) {
		rc = afio_file_attach(d, af, fio_aioblk_opts(td), fio_aioblk_queue_depth(td));
		if (rc < 0) {
			afio_file_close(d, af);
			td_verror(td, -rc, "aioblk_channel_create");
			return 1;
		}
	}
	FILE_SET_ENG_DATA(f, af);
	return 0;
}

/* Destroy the file's channel and close its disk. */
static int
fio_aioblk_close_file(struct thread_data *td, struct fio_file *f)
{
	struct aioblk_fio_file *af = FILE_ENG_DATA(f);
	int rc;

	if (!af)
		return 0;
	rc = afio_file_close(td->io_ops_data, af);
	if (rc < 0) {
		td_verror(td, -rc, "aioblk_disk_close");
		return 1;
	}
	FILE_SET_ENG_DATA(f, NULL);
	return 0;
}

/* The size of a block device, or of a regular file, from the disk. */
static int
fio_aioblk_get_file_size(struct thread_data *td, struct fio_file *f)
{
	struct stat st;
	uint64_t bytes;
	int rc;

	if (fio_file_size_known(f))
		return 0;
	if (stat(f->file_name, &st) < 0) {
		/* ENOENT lets fio create and lay out the file. */
		td_verror(td, errno, "stat");
		return 1;
	}
	rc = afio_disk_size(f->file_name, afio_disk_flags(fio_aioblk_opts(td), false, false), &bytes);
	if (rc < 0) {
		if (!S_ISREG(st.st_mode)) {
			td_verror(td, -rc, "aioblk_disk_open");
			return 1;
		}
		/* An empty or odd-sized file: fio lays it out to the size the job asks for. */
		bytes = (uint64_t)st.st_size;
	}
	f->real_file_size = bytes;
	fio_file_set_size_known(f);
	return 0;
}

/* There is no fd for fio to drop the page cache with: nothing to do. */
static int
fio_aioblk_invalidate(struct thread_data *td, struct fio_file *f)
{
	return 0;
}

static void
fio_aioblk_done(void *arg, int status)
{
	struct io_u *io_u = arg;
	struct aioblk_fio_data *d = io_u->engine_data;

	io_u->error = status < 0 ? -status : 0;
	io_u->resid = status < 0 ? io_u->xfer_buflen : 0;
	afio_finished(d, io_u);
}

/* Hand one io_u to its file's channel. */
static enum fio_q_status
fio_aioblk_queue(struct thread_data *td, struct io_u *io_u)
{
	struct aioblk_fio_data *d = td->io_ops_data;
	struct aioblk_fio_file *af = FILE_ENG_DATA(io_u->file);
	enum aioblk_fio_op op;
	int rc;

	fio_ro_check(td, io_u);
	if (!af) {
		io_u->error = EBADF;
		return FIO_Q_COMPLETED;
	}
	if (!af->ch) {
		rc = afio_file_attach(d, af, fio_aioblk_opts(td), fio_aioblk_queue_depth(td));
		if (rc < 0) {
			io_u->error = -rc;
			return FIO_Q_COMPLETED;
		}
	}
	switch (io_u->ddir) {
	case DDIR_READ:
		op = AIOBLK_FIO_READ;
		break;
	case DDIR_WRITE:
		op = AIOBLK_FIO_WRITE;
		break;
	case DDIR_TRIM:
		op = AIOBLK_FIO_UNMAP;
		break;
	case DDIR_SYNC:
	case DDIR_DATASYNC:
		/* A flush covers the writes that completed before it: let those finish first. */
		if (aioblk_channel_inflight(af->ch) > 0)
			return FIO_Q_BUSY;
		op = AIOBLK_FIO_FLUSH;
		break;
	default:
		io_u->error = EINVAL;
		return FIO_Q_COMPLETED;
	}
	io_u->engine_data = d;
	rc = afio_start(d, af, op, io_u->xfer_buf, io_u->offset, io_u->xfer_buflen, fio_aioblk_done, io_u);
	if (rc == -EAGAIN)
		return FIO_Q_BUSY;
	if (rc < 0) {
		io_u->error = -rc;
		return FIO_Q_COMPLETED;
	}
	return FIO_Q_QUEUED;
}

/* Give the queued batch to the kernel. */
static int
fio_aioblk_commit(struct thread_data *td)
{
	struct aioblk_fio_data *d = td->io_ops_data;
	int rc;

	if (!d->queued)
		return 0;
	rc = aioblk_group_submit(d->group);
	io_u_mark_submit(td, d->queued);
	d->queued = 0;
	return rc < 0 ? rc : 0;
}

/* Reap between min and max completions. */
static int
fio_aioblk_getevents(struct thread_data *td, unsigned int min, unsigned int max, const struct timespec *t)
{
	return afio_reap(td->io_ops_data, min, max, t);
}

/* The io_u of completion number event of the last getevents. */
static struct io_u *
fio_aioblk_event(struct thread_data *td, int event)
{
	return afio_ready(td->io_ops_data, event);
}

/* fio looks this symbol up by name in the loaded object. */
__attribute__((visibility("default"))) struct ioengine_ops ioengine = {
	.name = "aioblk",
	.version = FIO_IOOPS_VERSION,
	.flags = FIO_RAWIO | FIO_MEMALIGN,
	.init = fio_aioblk_init,
	.queue = fio_aioblk_queue,
	.commit = fio_aioblk_commit,
	.getevents = fio_aioblk_getevents,
	.event = fio_aioblk_event,
	.cleanup = fio_aioblk_cleanup,
	.open_file = fio_aioblk_open_file,
	.close_file = fio_aioblk_close_file,
	.invalidate = fio_aioblk_invalidate,
	.get_file_size = fio_aioblk_get_file_size,
	.options = options,
	.option_struct_size = sizeof(struct aioblk_fio_options),
};
