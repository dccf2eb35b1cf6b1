/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * aioblk-fio: an external fio ioengine that does its I/O through aioblk.
 *
 * Load it with --ioengine=external:/path/to/aioblk-fio.so. Each fio job
 * (thread or process) gets one aioblk poll group; each file the job opens
 * gets one aioblk disk and one channel in that group. ->queue hands a request
 * to the channel, ->commit gives the batch to the kernel
 * (aioblk_group_submit), ->getevents polls the group (or sleeps on its
 * eventfd with aioblk_eventfd=1) and ->event returns the io_u a callback
 * finished.
 *
 * Two things differ from a thin mapping, both for fio's sake. A request the
 * channel has no room for waits in the engine instead of going back to fio
 * as FIO_Q_BUSY (fio's requeue path breaks verify in rw jobs). And every
 * poll reaps all that completed into a ring that later getevents calls are
 * answered from, so that fio, which takes one completion at a time, still
 * gets one io_submit per batch and no io_getevents at all.
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

/* What ->queue asks for, in aioblk's terms. */
enum aioblk_fio_op {
	AIOBLK_FIO_READ,
	AIOBLK_FIO_WRITE,
	AIOBLK_FIO_FLUSH,
	AIOBLK_FIO_UNMAP,
};

/* One request, as long as it waits for room in its channel. */
struct aioblk_fio_req {
	enum aioblk_fio_op op;
	void *buf;
	uint64_t offset; /* bytes */
	uint64_t len;    /* bytes */
	void *arg;       /* passed to the job's callback */
};

struct aioblk_fio_data;

/* Per file of a job: its disk and, once the job is set up, its channel. */
struct aioblk_fio_file {
	struct aioblk_disk *disk;
	struct aioblk_channel *ch;
	uint32_t block_size;
	/*
	 * Requests the channel had no room for (a queue depth below the job's
	 * iodepth, busy bounce buffers) or a flush waiting for the writes before
	 * it: a ring, started in order as completions make room. fio's own
	 * answer to a full engine (FIO_Q_BUSY) re-logs requeued writes and
	 * breaks verify in rw jobs, so the engine never gives it.
	 */
	struct aioblk_fio_req *wait;
	unsigned int wait_head;
	unsigned int wait_count;
	/*
	 * A trim was started (alone, on an idle channel) and may still run:
	 * the library unmaps on a thread of its own, so a write queued behind
	 * it could reach the disk first and be discarded. What follows waits
	 * until the channel is idle again.
	 */
	bool after_trim;
	struct aioblk_fio_data *data; /* the job whose group holds the channel */
	struct aioblk_fio_file *next; /* the next file with a channel in that group */
};

/* Per job: the poll group, its files and the completions not yet handed to fio. */
struct aioblk_fio_data {
	struct aioblk_group *group;
	aioblk_cb cb;
	bool eventfd;
	unsigned int cap; /* fio's iodepth: no job has more requests than that */
	struct aioblk_fio_file *files;
	/* Finished requests' args in completion order: a ring of cap entries. */
	void **done;
	unsigned int head;     /* oldest entry */
	unsigned int count;    /* entries in the ring */
	unsigned int returned; /* entries the last reap returned; dropped at the next */
	unsigned int inflight; /* accepted requests whose callback has not run (waiting ones too) */
	unsigned int waiting;  /* accepted requests waiting for room in their channel */
	unsigned int started;  /* handed to the library since the last commit */
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
afio_data_create(bool eventfd, unsigned int cap, aioblk_cb cb, struct aioblk_fio_data **datap)
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
	d->cb = cb;
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

/* Start req now: 0 when the library took it, -EAGAIN when it must wait, else refused. */
static int
afio_try(struct aioblk_fio_file *af, const struct aioblk_fio_req *req, aioblk_cb cb)
{
	uint64_t bs = af->block_size;
	int rc;

	if (af->after_trim) {
		if (aioblk_channel_inflight(af->ch) > 0)
			return -EAGAIN;
		af->after_trim = false;
	}
	switch (req->op) {
	case AIOBLK_FIO_READ:
		return aioblk_read(af->ch, req->buf, req->offset / bs, req->len / bs, cb, req->arg);
	case AIOBLK_FIO_WRITE:
		return aioblk_write(af->ch, req->buf, req->offset / bs, req->len / bs, cb, req->arg);
	case AIOBLK_FIO_FLUSH:
		/* A flush covers the writes that completed before it: let those finish first. */
		if (aioblk_channel_inflight(af->ch) > 0)
			return -EAGAIN;
		return aioblk_flush(af->ch, cb, req->arg);
	case AIOBLK_FIO_UNMAP:
		if (!aioblk_disk_supports(af->disk, AIOBLK_IO_UNMAP))
			return -EOPNOTSUPP;
		/* Ordered both ways, as fio's verifier expects of trimwrite: after what came before, before what follows. */
		if (aioblk_channel_inflight(af->ch) > 0)
			return -EAGAIN;
		rc = aioblk_unmap(af->ch, req->offset / bs, req->len / bs, cb, req->arg);
		if (rc == 0)
			af->after_trim = true;
		return rc;
	}
	return -EINVAL;
}

/*
 * Start the requests that wait for room, in order, as far as the channels
 * take them; a waiting request the library now refuses completes with the
 * error. Then hand what was started to the kernel.
 */
static void
afio_kick(struct aioblk_fio_data *d)
{
	struct aioblk_fio_file *af;
	unsigned int started = 0;

	if (!d->waiting)
		return;
	for (af = d->files; af; af = af->next) {
		while (af->wait_count > 0) {
			struct aioblk_fio_req *req = &af->wait[af->wait_head];
			int rc = afio_try(af, req, d->cb);

			if (rc == -EAGAIN)
				break;
			af->wait_head = (af->wait_head + 1) % d->cap;
			af->wait_count--;
			d->waiting--;
			if (rc == 0)
				started++;
			else
				d->cb(req->arg, rc);
		}
	}
	if (started)
		aioblk_group_submit(d->group);
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

	for (i = 0; i < 10000 && d->inflight > 0; i++) {
		afio_kick(d);
		if (aioblk_group_wait(d->group, 1) < 0)
			break;
	}
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
	int rc;

	if (af->ch)
		return 0;
	af->wait = calloc(d->cap, sizeof(*af->wait));
	if (!af->wait)
		return -ENOMEM;
	rc = aioblk_channel_create_ext(d->group, af->disk, &copts, &af->ch);
	if (rc < 0) {
		free(af->wait);
		af->wait = NULL;
		return rc;
	}
	af->data = d;
	af->next = d->files;
	d->files = af;
	return 0;
}

/* Destroy the file's channel once nothing of it is outstanding. */
static int
afio_file_detach(struct aioblk_fio_file *af)
{
	struct aioblk_fio_data *d = af->data;
	struct aioblk_fio_file **pp;
	int rc;

	if (!af->ch)
		return 0;
	if (af->wait_count > 0 || aioblk_channel_inflight(af->ch) > 0)
		afio_drain(d);
	rc = aioblk_channel_destroy(af->ch);
	if (rc < 0)
		return rc;
	for (pp = &d->files; *pp; pp = &(*pp)->next) {
		if (*pp == af) {
			*pp = af->next;
			break;
		}
	}
	af->ch = NULL;
	af->data = NULL;
	free(af->wait);
	af->wait = NULL;
	return 0;
}

static int
afio_file_close(struct aioblk_fio_file *af)
{
	int rc;

	rc = afio_file_detach(af);
	if (rc < 0)
		return rc;
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
 * Accept one request: the job's callback then runs once with req->arg.
 * Byte offsets and lengths must be whole blocks (like O_DIRECT requests);
 * a request the channel has no room for yet waits in the engine. Returns 0
 * when accepted or a negative errno when refused (no callback then).
 */
static int
afio_submit(struct aioblk_fio_data *d, struct aioblk_fio_file *af, const struct aioblk_fio_req *req)
{
	uint64_t bs = af->block_size;
	int rc = -EAGAIN;

	if (req->op != AIOBLK_FIO_FLUSH && (req->offset % bs || req->len % bs || req->len == 0))
		return -EINVAL;
	if (af->wait_count == 0)
		rc = afio_try(af, req, d->cb);
	if (rc == 0) {
		d->started++;
	} else if (rc == -EAGAIN) {
		/* fio never has more than iodepth (cap) requests, so the ring has room. */
		if (af->wait_count == d->cap)
			return -EBUSY;
		af->wait[(af->wait_head + af->wait_count) % d->cap] = *req;
		af->wait_count++;
		d->waiting++;
	} else {
		return rc;
	}
	d->inflight++;
	return 0;
}

/*
 * Hand what was started since the last commit to the kernel. While fio
 * still has completions to take from the ring, the batch is left to grow:
 * fio reaps one completion and queues one request at a time (with its
 * default iodepth_batch_complete_max), and an io_submit for each would cost
 * a system call per request. The batch goes to the kernel at the latest
 * when the ring runs dry, in the poll that the next reap makes.
 */
static int
afio_commit(struct aioblk_fio_data *d, unsigned int *started)
{
	int rc = 0;

	*started = 0;
	if (!d->started || d->count > d->returned)
		return 0;
	*started = d->started;
	rc = aioblk_group_submit(d->group);
	d->started = 0;
	return rc < 0 ? rc : 0;
}

/* The job's callback has finished arg: store it for the reaper. */
static void
afio_finished(struct aioblk_fio_data *d, void *arg)
{
	d->inflight--;
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
 * One round of the group: reap everything that has completed (the ring has
 * room for all of it: fio has no more requests than cap), hand what is
 * queued to the kernel, then start what waits for room. In eventfd mode a
 * round that may block sleeps on the eventfd.
 */
static int
afio_turn(struct aioblk_fio_data *d, int timeout_ms)
{
	int rc;

	if (d->eventfd && timeout_ms != 0)
		rc = aioblk_group_wait(d->group, timeout_ms);
	else
		rc = aioblk_group_poll(d->group, 0);
	d->started = 0;
	afio_kick(d);
	return rc;
}

/*
 * Collect at least min and at most max completions, waiting no longer than
 * timeout (NULL: no limit). Completions beyond max stay in the ring for the
 * next call, which returns them without asking the kernel. Returns how many
 * are ready (afio_ready(0..n-1) until the next call), or a negative errno.
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

	/* Without a minimum, one look at the kernel; with one, only when the ring cannot meet it. */
	if (min == 0 && d->count < max) {
		rc = afio_turn(d, 0);
		if (rc < 0)
			return rc;
	}
	while (d->count < min && d->inflight > 0) {
		int ms = -1;

		if (timeout) {
			uint64_t now = afio_now_ns();

			if (now >= deadline)
				break;
			ms = (int)((deadline - now + 999999) / 1000000);
		}
		rc = afio_turn(d, ms);
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

static void fio_aioblk_done(void *arg, int status);

/* Make the job's poll group. */
static int
fio_aioblk_init(struct thread_data *td)
{
	struct aioblk_fio_data *d;
	int rc;

	rc = afio_data_create(fio_aioblk_opts(td)->eventfd, td->o.iodepth, fio_aioblk_done, &d);
	if (rc < 0) {
		td_verror(td, -rc, "aioblk_group_create");
		return 1;
	}
	td->io_ops_data = d;
	return 0;
}

/* Destroy the channels still open, then the group. */
static void
fio_aioblk_cleanup(struct thread_data *td)
{
	struct aioblk_fio_data *d = td->io_ops_data;
	struct fio_file *f;
	unsigned int i;

	if (!d)
		return;
	/* fio's for_each_file(), spelled out (clang-format cannot read the macro). */
	for (i = 0; td->files_index && i < td->o.nr_files && (f = td->files[i]) != NULL; i++) {
		struct aioblk_fio_file *af = FILE_ENG_DATA(f);

		if (af)
			afio_file_detach(af);
	}
	afio_data_destroy(d);
	td->io_ops_data = NULL;
}

/* Open the file as an aioblk disk, with a channel in the job's group. */
static int
fio_aioblk_open_file(struct thread_data *td, struct fio_file *f)
{
	struct aioblk_fio_data *d = td->io_ops_data;
	struct aioblk_fio_file *af;
	int rc;

	rc = afio_file_open(f->file_name, afio_disk_flags(fio_aioblk_opts(td), fio_aioblk_writes(td), td->o.odirect),
			    &af);
	if (rc < 0) {
		struct stat st;

		/* fio splits size= over nrfiles= to the byte; aioblk opens whole blocks only. */
		if (rc == -EINVAL && stat(f->file_name, &st) == 0 && S_ISREG(st.st_mode) && st.st_size % 512)
			log_err("aioblk: %s: %lld bytes is not a whole number of 512-byte blocks: "
				"give fio sizes that divide (filesize=)\n",
				f->file_name, (long long)st.st_size);
		td_verror(td, -rc, "aioblk_disk_open");
		return 1;
	}
	/* fio may open a file before init: the channel then comes with the first request. */
	if (d) {
		rc = afio_file_attach(d, af, fio_aioblk_opts(td), fio_aioblk_queue_depth(td));
		if (rc < 0) {
			afio_file_close(af);
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
	rc = afio_file_close(af);
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

/* The library's callback: the io_u is done, with status. */
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
	struct aioblk_fio_req req = {
		.buf = io_u->xfer_buf,
		.offset = io_u->offset,
		.len = io_u->xfer_buflen,
		.arg = io_u,
	};
	int rc;

	fio_ro_check(td, io_u);
	switch (io_u->ddir) {
	case DDIR_READ:
		req.op = AIOBLK_FIO_READ;
		break;
	case DDIR_WRITE:
		req.op = AIOBLK_FIO_WRITE;
		break;
	case DDIR_TRIM:
		req.op = AIOBLK_FIO_UNMAP;
		break;
	case DDIR_SYNC:
	case DDIR_DATASYNC:
		req.op = AIOBLK_FIO_FLUSH;
		break;
	default:
		io_u->error = EINVAL;
		return FIO_Q_COMPLETED;
	}
	if (!af) {
		io_u->error = EBADF;
		return FIO_Q_COMPLETED;
	}
	rc = afio_file_attach(d, af, fio_aioblk_opts(td), fio_aioblk_queue_depth(td));
	if (rc == 0) {
		io_u->engine_data = d;
		rc = afio_submit(d, af, &req);
	}
	if (rc < 0) {
		io_u->error = -rc;
		return FIO_Q_COMPLETED;
	}
	return FIO_Q_QUEUED;
}

/* Give the requests queued since the last commit to the kernel. */
static int
fio_aioblk_commit(struct thread_data *td)
{
	unsigned int started;
	int rc;

	rc = afio_commit(td->io_ops_data, &started);
	if (started)
		io_u_mark_submit(td, started);
	return rc;
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
