/* SPDX-License-Identifier: BSD-3-Clause */
/* The public header compiles alone as strict C99 (built with -std=c99 -pedantic -Werror). */
#include <aioblk/aioblk.h>

int
main(void)
{
	struct aioblk_disk_opts dopts = { 0, 0, 0 };
	struct aioblk_channel_opts copts = { 0, 0, 0 };

	(void)dopts;
	(void)copts;
	return AIOBLK_VERSION_MAJOR >= 0 ? 0 : 1;
}
