#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Build and run the AIOBLK_GROUP_WAIT_IN_KERNEL programs against one build.
# usage: tests/adversarial/wait/run.sh [BUILD_DIR] [seconds per timed program]
#   BUILD_DIR: a meson build of the library (build, build-asan, build-tsan);
#   for a clang build (TSan) set CC=clang.
# Exit 0 when every program passed or skipped, 1 when one found a defect
# (its FAIL lines are printed), 77 when none could run.
set -u
cd "$(dirname "$0")/../../.." || exit 1
B=${1:-build}
T=${2:-2}
make -s -C tests/adversarial/wait BUILD="$B" ${CC:+CC=$CC} || exit 1
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=0:exitcode=66}
P=$B/adv-wait
W=tests/adversarial/wait
fails=0
ran=0
run() {
	name=$1
	shift
	printf '%-44s ' "$name"
	out=$(timeout 300 "$@" 2>&1)
	rc=$?
	case $rc in
	0) echo PASS; ran=$((ran + 1)) ;;
	77) echo SKIP ;;
	*) echo "FAIL ($rc)"; printf '%s\n' "$out" | grep -E 'FAIL|ERROR|WARNING: ThreadSanitizer|runtime error|LeakSanitizer' | head -8
	   fails=$((fails + 1)); ran=$((ran + 1)) ;;
	esac
}
run "basic (create, idle, order, callbacks, full)" $P/wik_basic
run "edge (short reads, signals idle, fork)" $P/wik_edge
run "mix 4 threads, 2 files" $P/wik_mix -t "$T"
run "mix 5 threads, resetter, depth 4, 3 ch" $P/wik_mix -t "$T" -n 5 -c 3 -q 4 -r
run "mix buffered" $P/wik_mix -t "$T" -B
run "mix O_DIRECT ext4 (/tmp)" env ADV_DIR=/tmp $P/wik_mix -t "$T" -r
run "slow device (nbdkit delay, queue of 4)" $W/wik_slow.sh "$B" 40
run "deadlines racing 1 ms completions" env WIK_ONLY=S $W/wik_slow.sh "$B" 1
run "devices (loop, zram, detach, loss)" $W/wik_dev.sh "$B" "$T"
[ $fails -eq 0 ] || { echo "$fails program(s) found a defect"; exit 1; }
[ $ran -gt 0 ] || exit 77
echo "all passed"
