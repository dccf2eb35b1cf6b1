/* SPDX-License-Identifier: BSD-3-Clause */
#include "internal.h"

#define STR2(x) #x
#define STR(x) STR2(x)

AIOBLK_EXPORT const char *
aioblk_version(void)
{
	return STR(AIOBLK_VERSION_MAJOR) "." STR(AIOBLK_VERSION_MINOR) "." STR(AIOBLK_VERSION_MICRO);
}
