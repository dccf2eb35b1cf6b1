#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Doxygen has nothing to say about the public header: every symbol, every
# parameter and every return value is documented. Runs the build's Doxyfile
# again into a temporary directory with warnings as errors.
# Usage: check-doxygen.sh DOXYGEN DOXYFILE
set -u
doxygen=${1:?usage: check-doxygen.sh DOXYGEN DOXYFILE}
doxyfile=${2:?usage: check-doxygen.sh DOXYGEN DOXYFILE}
if ! command -v "$doxygen" >/dev/null 2>&1; then
	echo "SKIP: $doxygen not found"
	exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Later settings win: same input, output elsewhere, warnings to stderr, fatal.
{
	cat "$doxyfile"
	echo "OUTPUT_DIRECTORY = $tmp"
	echo "WARN_LOGFILE ="
	echo "WARN_AS_ERROR = FAIL_ON_WARNINGS"
} | "$doxygen" - >"$tmp/stdout" 2>"$tmp/warnings"
rc=$?
if [ "$rc" -ne 0 ] || [ -s "$tmp/warnings" ]; then
	cat "$tmp/warnings"
	echo "FAIL: doxygen warns about the public header ($(grep -c -e 'warning:' -e 'error:' "$tmp/warnings") messages, exit $rc)"
	exit 1
fi
echo "doxygen: no warnings ($("$doxygen" --version))"
