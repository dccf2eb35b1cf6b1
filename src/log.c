/* SPDX-License-Identifier: BSD-3-Clause */
/* Diagnostics: silent unless the application installs a log callback. */
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

static aioblk_log_fn log_fn;
static void *log_arg;

AIOBLK_EXPORT void
aioblk_set_log_fn(aioblk_log_fn fn, void *arg)
{
	log_arg = arg;
	log_fn = fn;
}

void
aioblk_log(int level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!log_fn)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_fn(level, msg, log_arg);
}
