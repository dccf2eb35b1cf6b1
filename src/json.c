/* SPDX-License-Identifier: BSD-3-Clause */
/* A disk's configuration as the JSON object SPDK's bdev_aio_create RPC takes. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>

#include "internal.h"

/* snprintf-like output: counts everything, stores what fits. */
struct json_out {
	char *buf;
	size_t len;
	size_t pos;
};

static void
json_putc(struct json_out *out, char c)
{
	if (out->pos + 1 < out->len)
		out->buf[out->pos] = c;
	out->pos++;
}

static void
json_puts(struct json_out *out, const char *s)
{
	while (*s)
		json_putc(out, *s++);
}

static void
json_put_string(struct json_out *out, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	json_putc(out, '"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			json_putc(out, '\\');
			json_putc(out, (char)c);
		} else if (c < 0x20) {
			json_puts(out, "\\u00");
			json_putc(out, hex[c >> 4]);
			json_putc(out, hex[c & 15]);
		} else {
			json_putc(out, (char)c);
		}
	}
	json_putc(out, '"');
}

/* JSON strings must be UTF-8: a path that is not cannot be written faithfully. */
static bool
utf8_valid(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	uint32_t cp;
	int n, i;

	while (*s) {
		if (*s < 0x80) {
			s++;
			continue;
		}
		if ((*s & 0xe0) == 0xc0) {
			n = 1;
			cp = *s & 0x1f;
		} else if ((*s & 0xf0) == 0xe0) {
			n = 2;
			cp = *s & 0x0f;
		} else if ((*s & 0xf8) == 0xf0) {
			n = 3;
			cp = *s & 0x07;
		} else {
			return false;
		}
		for (i = 1; i <= n; i++) {
			if ((s[i] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i] & 0x3f);
		}
		/* No overlong forms, no surrogates, nothing past U+10FFFF. */
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			return false;
		s += n + 1;
	}
	return true;
}

AIOBLK_EXPORT int
aioblk_disk_config_json(const struct aioblk_disk *disk, char *buf, size_t len)
{
	struct json_out out = { .buf = buf, .len = len };
	char num[16];

	if (!disk || (!buf && len))
		return -EINVAL;
	if (!utf8_valid(disk->name) || !utf8_valid(disk->path))
		return -EILSEQ;
	json_puts(&out, "{\"method\":\"bdev_aio_create\",\"params\":{\"name\":");
	json_put_string(&out, disk->name);
	json_puts(&out, ",\"filename\":");
	json_put_string(&out, disk->path);
	if (disk->block_size_given) {
		snprintf(num, sizeof(num), "%u", disk->block_size);
		json_puts(&out, ",\"block_size\":");
		json_puts(&out, num);
	}
	json_puts(&out, ",\"readonly\":");
	json_puts(&out, disk->readonly ? "true" : "false");
	json_puts(&out, "}}");
	if (len)
		buf[out.pos < len ? out.pos : len - 1] = '\0';
	if (out.pos > INT32_MAX)
		return -EOVERFLOW;
	return (int)out.pos;
}
