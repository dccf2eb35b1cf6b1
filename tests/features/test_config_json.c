/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * aioblk_disk_config_json: the exact format of issue 5 (SPDK's
 * bdev_aio_create: name, filename, block_size only when one was given,
 * readonly), JSON string escaping of odd names and paths (checked by
 * decoding, so any valid escape is accepted), and snprintf semantics.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "feat.h"

#define MIB (1u << 20)

static char *
json_of(const struct aioblk_disk *disk)
{
	int n = aioblk_disk_config_json(disk, NULL, 0);
	char *buf;

	assert_true(n > 0);
	buf = malloc((size_t)n + 1);
	assert_int_equal(aioblk_disk_config_json(disk, buf, (size_t)n + 1), n);
	assert_int_equal(strlen(buf), n);
	return buf;
}

/* @path opened with default options: its name is the path, no block_size, not read-only. */
static void
expect_default_json(const char *path)
{
	struct aioblk_disk *disk;
	char want[1024];
	char *got;

	assert_int_equal(aioblk_disk_open(path, NULL, &disk), 0);
	got = json_of(disk);
	snprintf(want, sizeof(want),
		 "{\"method\":\"bdev_aio_create\",\"params\":{\"name\":\"%s\",\"filename\":\"%s\",\"readonly\":false}}",
		 path, path);
	assert_string_equal(got, want);
	free(got);
	assert_int_equal(aioblk_disk_close(disk), 0);
}

static void
test_format_default(void **state)
{
	char path[256];

	(void)state;
	assert_int_equal(tc_make_file(NULL, MIB, path, sizeof(path)), 0);
	expect_default_json(path);
}

static void
test_format_given(void **state)
{
	struct aioblk_disk_opts opts = { .block_size = 4096, .flags = AIOBLK_DISK_READONLY, .name = "aio0" };
	struct aioblk_disk *disk;
	char path[256], want[1024];
	char *got;

	(void)state;
	assert_int_equal(tc_make_file(NULL, MIB, path, sizeof(path)), 0);
	assert_int_equal(aioblk_disk_open(path, &opts, &disk), 0);
	got = json_of(disk);
	snprintf(want, sizeof(want),
		 "{\"method\":\"bdev_aio_create\",\"params\":{\"name\":\"aio0\",\"filename\":\"%s\","
		 "\"block_size\":4096,\"readonly\":true}}",
		 path);
	assert_string_equal(got, want);
	free(got);
	assert_int_equal(aioblk_disk_close(disk), 0);

	/* A block size given equal to the detected one is still "given". */
	opts = (struct aioblk_disk_opts){ .block_size = 512, .name = "aio1" };
	assert_int_equal(aioblk_disk_open(path, &opts, &disk), 0);
	got = json_of(disk);
	assert_non_null(strstr(got, ",\"block_size\":512,"));
	assert_non_null(strstr(got, "\"readonly\":false}}"));
	free(got);
	assert_int_equal(aioblk_disk_close(disk), 0);
}

/* Decode the JSON string starting at @p (at its opening quote) into @out; return the end or NULL. */
static const char *
json_string(const char *p, char *out, size_t len)
{
	size_t n = 0;

	if (*p++ != '"')
		return NULL;
	while (*p && *p != '"') {
		unsigned char c = (unsigned char)*p++;

		if (c < 0x20)
			return NULL; /* raw control characters are not JSON */
		if (c == '\\') {
			switch (*p++) {
			case '"':
				c = '"';
				break;
			case '\\':
				c = '\\';
				break;
			case '/':
				c = '/';
				break;
			case 'b':
				c = '\b';
				break;
			case 'f':
				c = '\f';
				break;
			case 'n':
				c = '\n';
				break;
			case 'r':
				c = '\r';
				break;
			case 't':
				c = '\t';
				break;
			case 'u': {
				unsigned v;

				if (sscanf(p, "%4x", &v) != 1 || v > 0x7f)
					return NULL;
				c = (unsigned char)v;
				p += 4;
				break;
			}
			default:
				return NULL;
			}
		}
		if (n + 1 >= len)
			return NULL;
		out[n++] = (char)c;
	}
	if (*p != '"')
		return NULL;
	out[n] = '\0';
	return p + 1;
}

/* The value of the string member @key of the JSON @json, decoded. */
static void
member(const char *json, const char *key, char *out, size_t len)
{
	char k[64];
	const char *p;

	snprintf(k, sizeof(k), "\"%s\":", key);
	p = strstr(json, k);
	assert_non_null(p);
	assert_non_null(json_string(p + strlen(k), out, len));
}

static void
test_escaping(void **state)
{
	static const char odd[] = "a\"b\\c/d\ne\tf\x01g\x1fh\x7f\xc3\xa9 end";
	struct aioblk_disk_opts opts = { .name = odd };
	struct aioblk_disk *disk;
	char path[256], link[300], dec[512];
	char *got;
	size_t i;

	(void)state;
	assert_int_equal(tc_make_file(NULL, MIB, path, sizeof(path)), 0);
	/* A path with a quote, a backslash and a newline: a symbolic link to the file. */
	snprintf(link, sizeof(link), "%s.q\"b\\n\nl", path);
	assert_int_equal(symlink(path, link), 0);
	assert_int_equal(aioblk_disk_open(link, &opts, &disk), 0);
	unlink(link);
	got = json_of(disk);
	print_message("%s\n", got);
	for (i = 0; got[i]; i++)
		assert_true((unsigned char)got[i] >= 0x20);
	member(got, "name", dec, sizeof(dec));
	assert_string_equal(dec, odd);
	member(got, "filename", dec, sizeof(dec));
	assert_string_equal(dec, link);
	{
		static const char head[] = "{\"method\":\"bdev_aio_create\",\"params\":{\"name\":\"";

		assert_memory_equal(got, head, sizeof(head) - 1);
	}
	assert_non_null(strstr(got, "\",\"readonly\":false}}"));
	free(got);
	assert_int_equal(aioblk_disk_close(disk), 0);
}

static void
test_snprintf(void **state)
{
	struct aioblk_disk_opts opts = { .name = "trunc\"ated" };
	struct aioblk_disk *disk;
	char path[256], *full, buf[1024];
	int n;
	size_t len;

	(void)state;
	assert_int_equal(tc_make_file(NULL, MIB, path, sizeof(path)), 0);
	assert_int_equal(aioblk_disk_open(path, &opts, &disk), 0);
	full = json_of(disk);
	n = (int)strlen(full);
	assert_true(n + 64 < (int)sizeof(buf));

	/* NULL buffer with 0: the length only. */
	assert_int_equal(aioblk_disk_config_json(disk, NULL, 0), n);
	/* A buffer with 0: the length, nothing written. */
	memset(buf, 'X', sizeof(buf));
	assert_int_equal(aioblk_disk_config_json(disk, buf, 0), n);
	assert_int_equal(buf[0], 'X');
	/* Every length up to full + 1: a NUL-terminated prefix, nothing written past len. */
	for (len = 1; len <= (size_t)n + 1; len++) {
		memset(buf, 'X', sizeof(buf));
		assert_int_equal(aioblk_disk_config_json(disk, buf, len), n);
		assert_int_equal(strlen(buf), len - 1);
		assert_memory_equal(buf, full, len - 1);
		assert_int_equal(buf[len], 'X');
	}
	/* A larger buffer: the whole thing, untouched after the NUL. */
	memset(buf, 'X', sizeof(buf));
	assert_int_equal(aioblk_disk_config_json(disk, buf, sizeof(buf)), n);
	assert_string_equal(buf, full);
	assert_int_equal(buf[n + 1], 'X');

	assert_int_equal(aioblk_disk_config_json(disk, NULL, 5), -EINVAL);
	assert_int_equal(aioblk_disk_config_json(NULL, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(aioblk_disk_config_json(NULL, NULL, 0), -EINVAL);
	free(full);
	assert_int_equal(aioblk_disk_close(disk), 0);
}

/* Whether @s is well-formed UTF-8 (no overlongs, no surrogates, at most U+10FFFF). */
static bool
valid_utf8(const unsigned char *s)
{
	while (*s) {
		unsigned c = *s++, n, cp, i;

		if (c < 0x80)
			continue;
		if (c >= 0xc2 && c <= 0xdf)
			n = 1, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			n = 2, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			n = 3, cp = c & 0x07;
		else
			return false;
		for (i = 0; i < n; i++, s++) {
			if ((*s & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (*s & 0x3f);
		}
		if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return false;
	}
	return true;
}

/*
 * JSON text is UTF-8 (RFC 8259), and SPDK's parser checks it. A name that
 * is not UTF-8 (Linux names are bytes) must not produce invalid JSON:
 * either the call refuses it or the output is still valid UTF-8.
 */
static void
test_invalid_utf8(void **state)
{
	static const char *const bad[] = { "bad\xff\xfe", "half\xc3", "overlong\xc0\xaf", "surrogate\xed\xa0\x80" };
	struct aioblk_disk *disk;
	char path[256], buf[1024];
	size_t i;
	int rc;

	(void)state;
	assert_int_equal(tc_make_file(NULL, MIB, path, sizeof(path)), 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct aioblk_disk_opts opts = { .name = bad[i] };

		assert_int_equal(aioblk_disk_open(path, &opts, &disk), 0);
		rc = aioblk_disk_config_json(disk, buf, sizeof(buf));
		print_message("name %zu: rc %d, output %s\n", i, rc,
			      rc >= 0 && valid_utf8((const unsigned char *)buf) ? "valid UTF-8" : "NOT valid UTF-8");
		if (rc >= 0)
			assert_true(valid_utf8((const unsigned char *)buf));
		assert_int_equal(aioblk_disk_close(disk), 0);
	}
}

/* A block device: the device path, no block_size unless given. */
static void
test_blockdev(void **state)
{
	char path[256];

	(void)state;
	feat_make_target_or_skip(FEAT_LOOP_4096, 4 * MIB, path, sizeof(path));
	expect_default_json(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format_default), cmocka_unit_test(test_format_given),
		cmocka_unit_test(test_escaping),       cmocka_unit_test(test_snprintf),
		cmocka_unit_test(test_invalid_utf8),   cmocka_unit_test(test_blockdev),
	};

	return tc_run_group(tests, NULL, NULL);
}
