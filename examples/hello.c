/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * hello: the smallest complete aioblk program. With no argument it makes a
 * temporary file, writes a pattern, flushes, reads it back, verifies it and
 * removes the file; with a path it does the same on the first 64 blocks of
 * that file or device (their contents are overwritten).
 */
#define _GNU_SOURCE
#include <aioblk/aioblk.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NUM_BLOCKS 64

static void
on_done(void *arg, int status)
{
	int *result = arg;

	*result = status;
}

/* Issue one request with @submit_rc and poll until its callback has run. */
static int
finish(struct aioblk_group *group, int submit_rc, int *result)
{
	if (submit_rc < 0)
		return submit_rc;
	while (*result == 1) {
		int rc = aioblk_group_wait(group, -1);

		if (rc < 0)
			return rc;
	}
	return *result;
}

static int
make_temp_file(char *path, size_t len, size_t bytes)
{
	const char *dir = getenv("TMPDIR");
	int fd;

	snprintf(path, len, "%s/aioblk-hello-XXXXXX", dir ? dir : ".");
	fd = mkstemp(path);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)bytes) < 0) {
		int err = -errno;

		close(fd);
		unlink(path);
		return err;
	}
	close(fd);
	return 0;
}

int
main(int argc, char **argv)
{
	struct aioblk_disk *disk = NULL;
	struct aioblk_group *group = NULL;
	struct aioblk_channel *ch = NULL;
	char path[4096];
	bool temp = argc < 2;
	unsigned char *wbuf = NULL, *rbuf = NULL;
	size_t bs, bytes, i;
	int rc, result;

	if (temp) {
		rc = make_temp_file(path, sizeof(path), 1024 * 1024);
		if (rc < 0) {
			fprintf(stderr, "hello: cannot create a temporary file: %s\n", strerror(-rc));
			return 1;
		}
	} else {
		snprintf(path, sizeof(path), "%s", argv[1]);
	}

	rc = aioblk_disk_open(path, NULL, &disk);
	if (rc < 0) {
		fprintf(stderr, "hello: open %s: %s\n", path, strerror(-rc));
		goto out;
	}
	bs = aioblk_disk_block_size(disk);
	printf("aioblk %s: opened %s (%s, block size %zu, %llu blocks, buffer alignment %zu)\n", aioblk_version(), path,
	       aioblk_disk_is_direct(disk) ? "O_DIRECT" : "buffered", bs,
	       (unsigned long long)aioblk_disk_num_blocks(disk), aioblk_disk_buf_align(disk));
	if (aioblk_disk_num_blocks(disk) < NUM_BLOCKS) {
		fprintf(stderr, "hello: %s is smaller than %d blocks\n", path, NUM_BLOCKS);
		rc = -EINVAL;
		goto out;
	}
	bytes = bs * NUM_BLOCKS;
	if (posix_memalign((void **)&wbuf, aioblk_disk_buf_align(disk) < 4096 ? 4096 : aioblk_disk_buf_align(disk),
			   bytes) ||
	    posix_memalign((void **)&rbuf, aioblk_disk_buf_align(disk) < 4096 ? 4096 : aioblk_disk_buf_align(disk),
			   bytes)) {
		rc = -ENOMEM;
		goto out;
	}
	for (i = 0; i < bytes; i++)
		wbuf[i] = (unsigned char)(i * 7 + i / 4096);
	memset(rbuf, 0, bytes);

	rc = aioblk_group_create(0, &group);
	if (rc == 0)
		rc = aioblk_channel_create(group, disk, 0, &ch);
	if (rc < 0) {
		fprintf(stderr, "hello: group/channel: %s\n", strerror(-rc));
		goto out;
	}

	result = 1;
	rc = finish(group, aioblk_write(ch, wbuf, 0, NUM_BLOCKS, on_done, &result), &result);
	printf("write %zu bytes at block 0: %s\n", bytes, rc ? strerror(-rc) : "ok");
	if (rc)
		goto out;
	result = 1;
	rc = finish(group, aioblk_flush(ch, on_done, &result), &result);
	printf("flush: %s\n", rc ? strerror(-rc) : "ok");
	if (rc)
		goto out;
	result = 1;
	rc = finish(group, aioblk_read(ch, rbuf, 0, NUM_BLOCKS, on_done, &result), &result);
	printf("read %zu bytes at block 0: %s\n", bytes, rc ? strerror(-rc) : "ok");
	if (rc)
		goto out;
	if (memcmp(wbuf, rbuf, bytes) != 0) {
		for (i = 0; i < bytes && wbuf[i] == rbuf[i]; i++)
			;
		fprintf(stderr, "hello: data mismatch at byte %zu\n", i);
		rc = -EIO;
		goto out;
	}
	printf("verify: %zu bytes match\n", bytes);

out:
	if (ch)
		aioblk_channel_destroy(ch);
	if (group)
		aioblk_group_destroy(group);
	if (disk)
		aioblk_disk_close(disk);
	if (temp)
		unlink(path);
	free(wbuf);
	free(rbuf);
	printf("hello: %s\n", rc == 0 ? "success" : "FAILED");
	return rc == 0 ? 0 : 1;
}
