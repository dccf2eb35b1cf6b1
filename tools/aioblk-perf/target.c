/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * aioblk-perf: the targets. Open and check each one (a regular file or a
 * block device), close them; with no target, make the temporary file,
 * write it once and remove it at the end.
 */
#define _GNU_SOURCE
#include "perf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Shared with the signal handler (main.c). */
char temp_path[PATH_MAX];
volatile sig_atomic_t temp_made;

/* Remove the temporary file, if we made one (also at exit). */
void
cleanup_temp(void)
{
	if (temp_made) {
		temp_made = 0;
		unlink(temp_path);
	}
}

/* Open @t and check it against the options: its kind, block size and size. */
static int
open_target(const struct opts *o, struct target *t, bool for_write)
{
	struct aioblk_disk_opts dopts = { 0 };
	uint64_t disk_bytes;
	struct stat st;
	int rc;

	if (stat(t->path, &st) < 0) {
		fprintf(stderr, PROG ": %s: %s\n", t->path, strerror(errno));
		return -errno;
	}
	if (S_ISDIR(st.st_mode)) {
		fprintf(stderr, PROG ": %s: is a directory; give a regular file or a block device\n", t->path);
		return -EISDIR;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		fprintf(stderr, PROG ": %s: neither a regular file nor a block device\n", t->path);
		return -ENOTBLK;
	}
	t->blockdev = S_ISBLK(st.st_mode);
	if (for_write && t->blockdev) {
		/* Refuse to write to a device that is mounted or held by someone else. */
		int fd = open(t->path, O_RDONLY | O_EXCL | O_CLOEXEC);

		if (fd < 0 && errno == EBUSY) {
			fprintf(stderr, PROG ": %s: the device is in use (mounted?); refusing to write to it\n",
				t->path);
			return -EBUSY;
		}
		if (fd >= 0)
			close(fd);
	}
	dopts.flags = (for_write ? 0 : AIOBLK_DISK_READONLY) | (o->buffered ? AIOBLK_DISK_BUFFERED : 0) |
		      (o->nowait ? AIOBLK_DISK_NOWAIT : 0) | (o->no_queue_limit ? AIOBLK_DISK_NO_QUEUE_LIMIT : 0);
	rc = aioblk_disk_open(t->path, &dopts, &t->disk);
	if (rc < 0) {
		fprintf(stderr, PROG ": %s: cannot open: %s\n", t->path, strerror(-rc));
		return rc;
	}
	t->block_size = aioblk_disk_block_size(t->disk);
	t->direct = aioblk_disk_is_direct(t->disk);
	t->queue_limit = aioblk_disk_queue_limit(t->disk);
	disk_bytes = aioblk_disk_num_blocks(t->disk) * t->block_size;
	if (o->bs % t->block_size) {
		fprintf(stderr, PROG ": %s: --bs %" PRIu64 " is not a multiple of its block size (%u bytes)\n", t->path,
			o->bs, t->block_size);
		return -EINVAL;
	}
	t->bytes = o->size && o->size < disk_bytes ? o->size : disk_bytes;
	if (o->size > disk_bytes)
		fprintf(stderr, PROG ": %s: --size is larger than the target; using its %" PRIu64 " bytes\n", t->path,
			disk_bytes);
	t->units = t->bytes / o->bs;
	t->bs_blocks = o->bs / t->block_size;
	if (!t->units) {
		fprintf(stderr, PROG ": %s: too small (%" PRIu64 " bytes) for one I/O of %" PRIu64 " bytes\n", t->path,
			t->bytes, o->bs);
		return -EINVAL;
	}
	if (o->wl == WL_VERIFY && t->units < o->threads) {
		fprintf(stderr, PROG ": %s: %" PRIu64 " blocks of %" PRIu64 " bytes cannot be shared by %u threads\n",
			t->path, t->units, o->bs, o->threads);
		return -EINVAL;
	}
	return 0;
}

/* Close the targets that are open; a failed close is printed, not fatal. */
void
close_targets(struct target *targets, int n)
{
	int i, rc;

	for (i = 0; i < n; i++) {
		if (!targets[i].disk)
			continue;
		rc = aioblk_disk_close(targets[i].disk);
		if (rc < 0)
			fprintf(stderr, PROG ": %s: close failed: %s\n", targets[i].path, strerror(-rc));
		targets[i].disk = NULL;
	}
}

/* Make the temporary file of @bytes in the current directory, its space reserved. */
int
make_temp_file(uint64_t bytes)
{
	int fd, rc;

	snprintf(temp_path, sizeof(temp_path), "./aioblk-perf.XXXXXX");
	fd = mkstemp(temp_path);
	if (fd < 0) {
		rc = -errno;
		fprintf(stderr, PROG ": cannot create a temporary file in the current directory: %s\n",
			strerror(errno));
		return rc;
	}
	temp_made = 1;
	/* Reserve the space now, so that a full file system fails here and not mid-run. */
	rc = posix_fallocate(fd, 0, (off_t)bytes);
	if (rc == EOPNOTSUPP || rc == EINVAL)
		rc = ftruncate(fd, (off_t)bytes) < 0 ? errno : 0;
	close(fd);
	if (rc) {
		fprintf(stderr, PROG ": cannot make a %" PRIu64 "-byte temporary file %s: %s\n", bytes, temp_path,
			strerror(rc));
		return -rc;
	}
	return 0;
}

struct prefill_state {
	unsigned outstanding;
	int status;
};

static void
prefill_done(void *arg, int status)
{
	struct prefill_state *s = arg;

	s->outstanding--;
	if (status < 0 && !s->status)
		s->status = status;
}

/*
 * Write the whole temporary file once: reads of never-written (unwritten
 * extent) blocks cost the device nothing and would measure only the file
 * system.
 */
int
prefill(struct target *t)
{
	enum { CHUNK = 1 << 20, DEPTH = 4 };
	struct prefill_state s = { 0, 0 };
	struct aioblk_group *g = NULL;
	struct aioblk_channel *ch = NULL;
	uint64_t off = 0, chunk_blocks, left, n;
	char *buf = NULL;
	size_t i;
	int rc;

	if (posix_memalign((void **)&buf, 4096, (size_t)CHUNK * DEPTH))
		return -ENOMEM;
	fill_random(buf, (size_t)CHUNK * DEPTH, 42);
	rc = aioblk_group_create(0, &g);
	if (rc < 0)
		goto out;
	rc = aioblk_channel_create(g, t->disk, DEPTH, &ch);
	if (rc < 0)
		goto out;
	chunk_blocks = CHUNK / t->block_size;
	left = t->bytes / t->block_size;
	i = 0;
	while ((left || s.outstanding) && !s.status && !atomic_load(&stop_flag)) {
		while (left && s.outstanding < DEPTH) {
			n = left < chunk_blocks ? left : chunk_blocks;
			rc = aioblk_write(ch, buf + (i++ % DEPTH) * CHUNK, off, n, prefill_done, &s);
			if (rc < 0)
				goto drain;
			s.outstanding++;
			off += n;
			left -= n;
		}
		rc = aioblk_group_wait(g, 100);
		if (rc < 0)
			goto drain;
	}
	rc = s.status;
drain:
	while (s.outstanding && aioblk_group_wait(g, 100) >= 0)
		;
out:
	if (ch)
		aioblk_channel_destroy(ch);
	if (g)
		aioblk_group_destroy(g);
	free(buf);
	if (rc < 0)
		fprintf(stderr, PROG ": writing the temporary file failed: %s\n", strerror(-rc));
	return rc;
}

/* Open every target of the run (@for_write: read-write), checked against the options. */
int
open_all(struct run *r, bool for_write)
{
	int t, rc;

	for (t = 0; t < r->ntargets; t++) {
		rc = open_target(r->o, &r->targets[t], for_write);
		if (rc < 0)
			return rc;
	}
	return 0;
}
