#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Before and after: two builds of aioblk-perf (A and B, e.g. the previous
# main and this change) on the same device, alternating A B B A per round so
# that neither always runs first, for each case; prints the median IOPS and
# mean latency of each and the median of the per-round ratios B/A.
#
# Usage: bench/ab.sh --a PERF_A --b PERF_B [--device DEV] [--runtime S] [--rounds N]
#                    [--cases "qd1 qd32"] [--out DIR]
# Default device: a private zram device (root), 1 GiB of random data, made
# for this run and removed at the end. Reads only: every case sees the same
# data.
set -euo pipefail

a="" b="" device="" runtime=3 rounds=5 cases="qd1 qd32" out=""
while [ $# -gt 0 ]; do
	case $1 in
	--a) a=$2; shift 2 ;;
	--b) b=$2; shift 2 ;;
	--device) device=$2; shift 2 ;;
	--runtime) runtime=$2; shift 2 ;;
	--rounds) rounds=$2; shift 2 ;;
	--cases) cases=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	-h | --help) sed -n '3,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "ab.sh: unknown argument '$1'" >&2; exit 2 ;;
	esac
done
if [ ! -x "$a" ] || [ ! -x "$b" ]; then
	echo "ab.sh: --a and --b must name two aioblk-perf executables" >&2
	exit 2
fi

zram=""
cleanup() {
	if [ -n "$zram" ]; then
		for _ in 1 2 3 4 5; do
			echo "$zram" >/sys/class/zram-control/hot_remove 2>/dev/null && break
			sleep 0.2
		done
	fi
	if [ -n "${tmp_out:-}" ]; then rm -rf "$tmp_out"; fi
}
trap cleanup EXIT
if [ -z "$device" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "ab.sh: a private zram device needs root; pass --device" >&2
		exit 1
	fi
	zram=$(cat /sys/class/zram-control/hot_add)
	echo 1G >/sys/block/zram"$zram"/disksize
	device=/dev/zram$zram
	dd if=/dev/urandom of="$device" bs=1M count=1024 oflag=direct status=none
fi
if [ -z "$out" ]; then
	tmp_out=$(mktemp -d)
	out=$tmp_out
fi

args_of() {
	case $1 in
	qd1) echo "-w randread -b 4k -q 1" ;;
	qd32) echo "-w randread -b 4k -q 32" ;;
	qd128) echo "-w randread -b 4k -q 128" ;;
	*) echo "ab.sh: unknown case '$1'" >&2; exit 2 ;;
	esac
}

echo "device $device, $rounds rounds of $runtime s, A=$a B=$b"
for c in $cases; do
	mkdir -p "$out/$c"
	for r in $(seq 1 "$rounds"); do
		if [ $((r % 2)) -eq 1 ]; then order="a b"; else order="b a"; fi
		for which in $order; do
			perf=$a
			[ "$which" = b ] && perf=$b
			# shellcheck disable=SC2046
			"$perf" "$device" $(args_of "$c") -t "$runtime" --json >"$out/$c/$which.$r.json"
		done
	done
done

python3 - "$out" $cases <<'EOF'
import json, statistics, sys
out, cases = sys.argv[1], sys.argv[2:]
print(f"{'case':6} {'A IOPS':>10} {'B IOPS':>10} {'B/A IOPS':>9} {'A lat us':>9} {'B lat us':>9} {'B/A lat':>8}")
for c in cases:
    rounds = {}
    for which in "ab":
        import glob
        rs = []
        for f in sorted(glob.glob(f"{out}/{c}/{which}.*.json")):
            j = json.load(open(f))["read"]
            rs.append((int(f.rsplit(".", 2)[1]), j["iops"], j["lat_ns"]["mean"] / 1000))
        rounds[which] = {r: (iops, lat) for r, iops, lat in rs}
    common = sorted(set(rounds["a"]) & set(rounds["b"]))
    ia = statistics.median(rounds["a"][r][0] for r in common)
    ib = statistics.median(rounds["b"][r][0] for r in common)
    la = statistics.median(rounds["a"][r][1] for r in common)
    lb = statistics.median(rounds["b"][r][1] for r in common)
    ri = statistics.median(rounds["b"][r][0] / rounds["a"][r][0] for r in common)
    rl = statistics.median(rounds["b"][r][1] / rounds["a"][r][1] for r in common)
    print(f"{c:6} {ia:10.0f} {ib:10.0f} {ri:9.3f} {la:9.2f} {lb:9.2f} {rl:8.3f}")
EOF
