#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The "small device queue" case: one reactor thread (busy-polled group) with
# 32 reads in flight on a loop device whose queue takes 4 requests
# (queue/nr_requests 4), and a QD1 reader on a second disk (a private zram)
# in the same group. When io_submit sleeps for a free request, the reader
# waits too. Alternating, for --rounds rounds:
#   limit    aioblk keeps at most nr_requests in the device (the default)
#   nolimit  AIOBLK_DISK_NO_QUEUE_LIMIT: io_submit sleeps, as with libaio
#   nr128    the same loop device with nr_requests 128, limit on: the reference
#   fio      fio's libaio engine, QD32, alone on the loop device (nr_requests 4)
# Prints the medians and the QD1 reader's p99 against its p99 at nr128.
#
# Usage: bench/small-queue.sh [--runtime S] [--rounds N] [--bin PATH/TO/reactor_latency] [--out DIR]
# Needs root (loop and zram devices, made here and removed at the end).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
runtime=3 rounds=3 bin="" out=""
while [ $# -gt 0 ]; do
	case $1 in
	--runtime) runtime=$2; shift 2 ;;
	--rounds) rounds=$2; shift 2 ;;
	--bin) bin=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	-h | --help) sed -n '3,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "small-queue.sh: unknown argument '$1'" >&2; exit 2 ;;
	esac
done
if [ -z "$bin" ]; then
	for b in "$root"/build*/bench/reactor_latency; do
		if [ -x "$b" ]; then bin=$b; break; fi
	done
fi
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
	echo "small-queue.sh: bench/reactor_latency not built (meson compile -C build)" >&2
	exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "small-queue.sh: needs root (loop and zram devices)" >&2
	exit 1
fi
command -v fio >/dev/null || { echo "small-queue.sh: fio is needed (apt-get install fio)" >&2; exit 1; }

work=$(mktemp -d)
loop="" zram="" nr_saved=""
cleanup() {
	if [ -n "$loop" ]; then
		[ -n "$nr_saved" ] && echo "$nr_saved" >"/sys/block/${loop#/dev/}/queue/nr_requests" 2>/dev/null
		losetup -d "$loop" 2>/dev/null || true
	fi
	if [ -n "$zram" ]; then
		for _ in 1 2 3 4 5; do
			echo "$zram" >/sys/class/zram-control/hot_remove 2>/dev/null && break
			sleep 0.2
		done
	fi
	rm -rf "$work"
}
trap cleanup EXIT
[ -n "$out" ] || out=$work/out
mkdir -p "$out"

# The loaded disk: a loop device (direct I/O) over a file of random data.
dd if=/dev/urandom of="$work/loaded.img" bs=1M count=256 status=none
loop=$(losetup -f --show --direct-io=on "$work/loaded.img")
q=/sys/block/${loop#/dev/}/queue/nr_requests
nr_saved=$(cat "$q")
# The probe disk: a private zram, random data.
zram=$(cat /sys/class/zram-control/hot_add)
echo 256M >/sys/block/zram"$zram"/disksize
dd if=/dev/urandom of=/dev/zram"$zram" bs=1M count=256 oflag=direct status=none
echo "loaded $loop (nr_requests 4 except nr128), probe /dev/zram$zram; $rounds rounds of $runtime s"

run_case() {
	local c=$1 r=$2
	case $c in
	limit) echo 4 >"$q"; "$bin" --runtime "$runtime" "$loop" /dev/zram"$zram" ;;
	nolimit) echo 4 >"$q"; "$bin" --no-limit --runtime "$runtime" "$loop" /dev/zram"$zram" ;;
	nr128) echo 128 >"$q"; "$bin" --runtime "$runtime" "$loop" /dev/zram"$zram" ;;
	fio) echo 4 >"$q"
		fio --name=sq --filename="$loop" --ioengine=libaio --direct=1 --rw=randread --bs=4k --iodepth=32 \
			--iodepth_batch_submit=32 --iodepth_batch_complete_max=32 --time_based --runtime="$runtime" \
			--norandommap --randrepeat=0 --output-format=json ;;
	esac >"$out/$c.$r.json"
}
cases="limit nolimit nr128 fio"
for r in $(seq 1 "$rounds"); do
	for c in $cases; do run_case "$c" "$r"; done
	cases=$(echo "$cases" | awk '{ for (i = NF; i > 0; i--) printf "%s%s", $i, (i > 1 ? " " : "\n") }')
done

python3 - "$out" "$rounds" <<'EOF'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def load(c, r):
    return json.load(open(f"{out}/{c}.{r}.json"))
med = statistics.median
rows = {}
for c in ("limit", "nolimit", "nr128"):
    js = [load(c, r) for r in range(1, rounds + 1)]
    rows[c] = {
        "iops": med(j["loaded"]["iops"] for j in js),
        "p50": med(j["probe"]["lat_ns"]["p50"] for j in js) / 1000,
        "p99": med(j["probe"]["lat_ns"]["p99"] for j in js) / 1000,
        "max": med(j["probe"]["lat_ns"]["max"] for j in js) / 1000,
        "poll": med(j["longest_poll_ns"] for j in js) / 1000,
    }
fio = med(load("fio", r)["jobs"][0]["read"]["iops"] for r in range(1, rounds + 1))
print(f"{'case':8} {'loaded IOPS':>12} {'probe p50 us':>13} {'probe p99 us':>13} {'probe max us':>13} {'longest poll us':>16}")
for c, v in rows.items():
    print(f"{c:8} {v['iops']:12.0f} {v['p50']:13.1f} {v['p99']:13.1f} {v['max']:13.1f} {v['poll']:16.1f}")
print(f"{'fio':8} {fio:12.0f}   (libaio, QD32 alone on the loaded disk, nr_requests 4)")
ref = rows["nr128"]["p99"]
for c in ("limit", "nolimit"):
    print(f"probe p99 {c} / nr128: {rows[c]['p99'] / ref:.2f}")
EOF
