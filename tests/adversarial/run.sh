#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Build and run the adversarial programs against one build of the library.
# usage: tests/adversarial/run.sh [BUILD_DIR] [seconds per program]
#   BUILD_DIR: build (ASan/UBSan, default) or build-tsan (TSan)
# Exit 0 when every program passed or skipped, 1 otherwise. Programs that
# need root or tools skip (77) without them. ADV_SKIP_KNOWN=1 leaves out
# adv_fair and adv_hol (see tests/adversarial/README.md).
set -u
cd "$(dirname "$0")/../.." || exit 1
B=${1:-build}
T=${2:-4}
make -s -C tests/adversarial BUILD="$B" || exit 1
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
P=$B/adv
fails=0
run() {
	name=$1
	shift
	printf '%-40s ' "$name"
	out=$(timeout 600 "$@" 2>&1)
	rc=$?
	case $rc in
	0) echo PASS ;;
	77) echo SKIP ;;
	*) echo "FAIL ($rc)"; printf '%s\n' "$out" | grep -E 'FAIL|ERROR|WARNING: ThreadSanitizer|runtime error' | head -5
	   fails=$((fails + 1)) ;;
	esac
}
run "mix busy" $P/adv_mix -m busy -t "$T"
run "mix busy max1 g1" $P/adv_mix -m busy -x 1 -g 1 -q 4 -t "$T"
run "mix epoll 32 disks" $P/adv_mix -m epoll -d 32 -g 16 -q 4 -x 2 -t "$T"
run "mix cbonly" $P/adv_mix -m cbonly -x 1 -t "$T"
run "mix cbonly offload only" $P/adv_mix -m cbonly -Z -g 2 -q 1 -x 2 -t "$T"
run "mix buffered" $P/adv_mix -B -t "$T"
run "reset_mt 4 threads" $P/adv_reset_mt -t "$T"
run "reset_mt 8 threads tiny depths" $P/adv_reset_mt -n 8 -d 4 -g 8 -q 4 -t "$T"
run "wake" $P/adv_wake
run "handoff between threads" $P/adv_handoff 200
run "three groups, one thread, one disk" $P/adv_twogroups
run "life" $P/adv_life
run "shrink" $P/adv_shrink
run "idle polls: no system call" tests/adversarial/adv_idle.sh "$B"
if [ "${ADV_SKIP_KNOWN:-0}" != 1 ]; then
	run "fair (poll max rotation)" $P/adv_fair -t 1
	run "hol (slow device, small queue)" tests/adversarial/adv_hol.sh "$B" 40
fi
run "disks (odd disks, saturated loop)" tests/adversarial/adv_disks.sh "$B" "$T"
run "qlimit across threads" tests/adversarial/adv_qlimit.sh "$B" "$T"
run "nowait refusal mid-batch" tests/adversarial/adv_nowait.sh "$B"
[ $fails -eq 0 ] || { echo "$fails program(s) failed"; exit 1; }
echo "all passed"
