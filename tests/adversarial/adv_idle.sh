#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# 200000 polls of an idle SHARED_CONTEXT group of 32 channels make no system call.
# usage: adv_idle.sh BUILD_DIR
B=${1:?build dir}
command -v strace >/dev/null || { echo "skip: no strace"; exit 77; }
T=$(mktemp /tmp/adv_idle.XXXXXX)
trap 'rm -f "$T"' EXIT INT TERM
ASAN_OPTIONS=detect_leaks=0 strace -o "$T" "$B/adv/adv_idle" 32 || exit 1
# mmap/munmap/madvise between the markers come from the sanitizers' runtimes (TSan's traces)
n=$(sed -n '/IDLE-START/,/IDLE-END/p' "$T" | grep -v -e IDLE-START -e IDLE-END -e '^mmap(' -e '^munmap(' -e '^madvise(' | wc -l)
echo "system calls between the markers: $n"
[ "$n" -eq 0 ] || { sed -n '/IDLE-START/,/IDLE-END/p' "$T" | grep -v -e '^mmap(' -e '^munmap(' -e '^madvise(' | head; exit 1; }
