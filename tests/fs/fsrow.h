/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * One machine-readable result row per target, printed on stdout as
 *   AIOBLK-ROW <table> key=value key=value ...
 * (values have no spaces). tests/fs/fs-table.py turns the rows of a test
 * run into the tables of docs/FILESYSTEMS.md.
 */
#ifndef AIOBLK_TEST_FSROW_H
#define AIOBLK_TEST_FSROW_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define FSROW_MAX 48

struct fsrow {
	const char *table;
	int n;
	char key[FSROW_MAX][32];
	char val[FSROW_MAX][192];
};

/* Set @key (replacing an earlier value, keeping its place) to a printf-formatted value; spaces become '_'. */
static inline void __attribute__((format(printf, 3, 4)))
fsrow_set(struct fsrow *row, const char *key, const char *fmt, ...)
{
	va_list ap;
	char *p;
	int i;

	for (i = 0; i < row->n; i++)
		if (strcmp(row->key[i], key) == 0)
			break;
	if (i == FSROW_MAX)
		return;
	if (i == row->n) {
		snprintf(row->key[i], sizeof(row->key[i]), "%s", key);
		row->n++;
	}
	va_start(ap, fmt);
	vsnprintf(row->val[i], sizeof(row->val[i]), fmt, ap);
	va_end(ap);
	for (p = row->val[i]; *p; p++)
		if (*p == ' ' || *p == '\t' || *p == '\n')
			*p = '_';
}

/* The value of @key, or "" when it was never set. */
static inline const char *
fsrow_get(const struct fsrow *row, const char *key)
{
	int i;

	for (i = 0; i < row->n; i++)
		if (strcmp(row->key[i], key) == 0)
			return row->val[i];
	return "";
}

static inline void
fsrow_print(const struct fsrow *row)
{
	int i;

	printf("AIOBLK-ROW %s", row->table);
	for (i = 0; i < row->n; i++)
		printf(" %s=%s", row->key[i], row->val[i][0] ? row->val[i] : "-");
	printf("\n");
	fflush(stdout);
}

#endif
