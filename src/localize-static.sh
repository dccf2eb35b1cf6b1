#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Make the installed static library from the internal one: one relocatable
# object in which every hidden symbol (everything but the API, which is
# marked AIOBLK_EXPORT) is made local, so that a program linking
# libaioblk.a sees only aioblk_* names, as with libaioblk.so.
#
# Usage: localize-static.sh IN.a OUT.a OBJCOPY AR CC [CC_ARGS...]
set -eu
in=$1 out=$2 objcopy=$3 ar=$4
shift 4
tmp=$(mktemp -d "${TMPDIR:-/tmp}/aioblk-static.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
"$@" -r -nostdlib -Wl,--whole-archive "$in" -Wl,--no-whole-archive -o "$tmp/aioblk.o"
"$objcopy" --localize-hidden "$tmp/aioblk.o"
rm -f "$out"
"$ar" rcs "$out" "$tmp/aioblk.o"
