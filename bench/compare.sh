#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Side-by-side: aioblk-perf against fio's libaio (default and with batched
# submission) and io_uring engines and fio with the aioblk engine, on the
# same device, runs alternating A B C D E A B C D E ... for --rounds rounds;
# prints medians and the medians of the per-round ratios (bench/summarize.py).
#
# Usage: bench/compare.sh [--device DEV|FILE] [--runtime S] [--rounds N]
#                         [--perf PATH/TO/aioblk-perf] [--engine PATH/TO/aioblk-fio.so]
#                         [--out DIR] [--cases LIST]
# Cases: qd1 qd4 qd16 qd32 qd128 (4 KiB randread; "sweep" is all five),
# randwrite, seqread, threads2, interrupt; default: all of them. Also, not
# in the default (it needs root, and makes its own loop and zram devices):
# smallqueue, a loop device whose queue takes 4 requests under QD32 with a
# QD1 reader on another disk of the same group (bench/small-queue.sh); and
# manydisks, 16 disks in one thread, plain against shared groups
# (bench/many-disks.sh, its own zram device).
# Default device: /dev/zram0 as root (sized 1G when its disksize reads 0),
# else a temporary 512 MiB file in $TMPDIR (removed at the end). The device
# is overwritten: with random data before every read case, so that no case
# reads what another case wrote (zero pages are cheap to read on zram).
# The engine column is left out when no aioblk-fio.so is found (build with
# meson setup -Dfio_source=DIR, see tools/fio-source.sh).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
device=""
runtime=3
rounds=3
perf=${AIOBLK_PERF:-}
engine=${AIOBLK_FIO_ENGINE:-}
out=""
cases="sweep randwrite seqread threads2 interrupt"

usage() {
	sed -n '3,23p' "$0" | sed 's/^# \{0,1\}//'
	exit "${1:-0}"
}
while [ $# -gt 0 ]; do
	case $1 in
	--device) device=$2; shift 2 ;;
	--runtime) runtime=$2; shift 2 ;;
	--rounds) rounds=$2; shift 2 ;;
	--perf) perf=$2; shift 2 ;;
	--engine) engine=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	--cases) cases=$2; shift 2 ;;
	-h | --help) usage 0 ;;
	*) echo "compare.sh: unknown argument '$1'" >&2; usage 2 >&2 ;;
	esac
done
if [ "$rounds" -lt 3 ]; then
	echo "compare.sh: --rounds must be at least 3 (medians of alternating runs)" >&2
	exit 2
fi

# --- tools ---
if [ -z "$perf" ]; then
	for p in "$root"/build*/tools/aioblk-perf; do
		if [ -x "$p" ]; then perf=$p; break; fi
	done
fi
if [ -z "$perf" ] && command -v aioblk-perf >/dev/null 2>&1; then
	perf=$(command -v aioblk-perf)
fi
if [ -z "$perf" ] || [ ! -x "$perf" ]; then
	echo "compare.sh: aioblk-perf not found: build it (meson setup build && ninja -C build) or pass --perf" >&2
	exit 1
fi
if ! command -v fio >/dev/null 2>&1; then
	if [ "$(id -u)" -eq 0 ]; then
		echo "compare.sh: installing fio" >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fio >/dev/null
	else
		echo "compare.sh: fio is missing (apt-get install fio)" >&2
		exit 1
	fi
fi
if [ -z "$engine" ]; then
	for e in "$root"/build*/plugins/fio/aioblk-fio.so; do
		if [ -f "$e" ]; then engine=$e; break; fi
	done
fi
if [ -n "$engine" ] && [ ! -f "$engine" ]; then
	echo "compare.sh: --engine $engine does not exist" >&2
	exit 1
fi
if [ -z "$engine" ]; then
	echo "compare.sh: no aioblk-fio.so (meson setup -Dfio_source=DIR): the fio + aioblk engine column is left out" >&2
fi
command -v python3 >/dev/null 2>&1 || { echo "compare.sh: python3 is needed for the summary" >&2; exit 1; }
fio_version=$(fio --version)
case $fio_version in
fio-3.33) ;;
*) echo "compare.sh: note: fio is $fio_version; the reference numbers were taken with fio-3.33" >&2 ;;
esac

# --- device ---
tmpfile=""
cleanup() {
	if [ -n "$tmpfile" ]; then rm -f "$tmpfile"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
prepared="as found"
if [ -z "$device" ]; then
	if [ "$(id -u)" -eq 0 ]; then
		device=/dev/zram0
		if [ ! -e /sys/block/zram0 ]; then
			modprobe zram num_devices=1 2>/dev/null || true
		fi
		if [ ! -e /sys/block/zram0 ]; then
			echo "compare.sh: no /dev/zram0 (zram module missing?); pass --device" >&2
			exit 1
		fi
		if [ "$(cat /sys/block/zram0/disksize)" = 0 ]; then
			echo 1G >/sys/block/zram0/disksize
			prepared="sized 1G by this script"
		fi
	else
		tmpfile=$(mktemp "${TMPDIR:-/var/tmp}/aioblk-compare.XXXXXX")
		echo "compare.sh: not root: using a temporary 512 MiB file $tmpfile" >&2
		head -c $((512 << 20)) /dev/urandom >"$tmpfile"
		device=$tmpfile
		prepared="temporary file filled with random data"
	fi
fi
if [ ! -e "$device" ]; then
	echo "compare.sh: $device does not exist" >&2
	exit 1
fi
prepared="$prepared; refilled with random data before every read case"

# Random (incompressible) data over the whole device, so that reads return
# real data as a used device would, whatever the case before wrote.
refill() {
	local bytes
	if [ -b "$device" ]; then
		bytes=$(blockdev --getsize64 "$device")
	else
		bytes=$(stat -c %s "$device")
	fi
	echo "  refilling $device with random data" >&2
	dd if=/dev/urandom of="$device" bs=1M count=$((bytes >> 20)) oflag=direct conv=notrunc status=none
}

if [ -z "$out" ]; then
	out=$(mktemp -d "${TMPDIR:-/tmp}/aioblk-compare-results.XXXXXX")
fi
mkdir -p "$out"

# --- machine ---
{
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "kernel: $(uname -r)"
	echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') x $(nproc)"
	echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
	echo "device: $device ($prepared)"
	if [[ $device == /dev/zram* ]]; then
		z=$(basename "$device")
		echo "zram: disksize $(cat /sys/block/"$z"/disksize), algorithm $(sed 's/.*\[\(.*\)\].*/\1/' /sys/block/"$z"/comp_algorithm)"
	fi
	echo "fio: $fio_version"
	echo "aioblk-perf: $("$perf" --version) ($perf)"
	echo "fio engine: ${engine:-none}"
	echo "cases: $cases"
	echo "runtime per run: ${runtime}s, rounds: $rounds"
	echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >>"$out/machine.txt"
cat "$out/machine.txt" >&2

# --- runs ---
# One run: TOOL CASE ROUND ARGS... ; the JSON goes to $out/CASE/TOOL.ROUND.json.
run_one() {
	local tool=$1 case=$2 round=$3
	shift 3
	mkdir -p "$out/$case"
	local f="$out/$case/$tool.$round.json"
	if ! "$@" >"$f" 2>"$out/$case/$tool.$round.err"; then
		echo "compare.sh: $case/$tool round $round failed: $*" >&2
		cat "$out/$case/$tool.$round.err" >&2
		exit 1
	fi
	echo "  $case round $round: $tool done" >&2
}

# --lat_percentiles: p99 of the whole latency (submission to completion), as aioblk-perf counts it.
fio_common=(--name=job --filename="$device" --direct=1 --time_based --runtime="$runtime"
	--norandommap --randrepeat=0 --group_reporting --lat_percentiles=1 --output-format=json)
fio_libaio=(--ioengine=libaio)
fio_batched=(--ioengine=libaio --iodepth_batch_submit=16 --iodepth_batch_complete_min=1)
fio_uring=(--ioengine=io_uring)
# fio's defaults, as for the libaio column: the engine batches by itself.
fio_engine=(--ioengine="external:$engine")

# compare CASE "aioblk-perf args" "fio args": the tools, alternating, for every round.
compare() {
	local case=$1 pargs=$2 fargs=$3 r
	echo "case $case: aioblk-perf $pargs | fio $fargs" >&2
	mkdir -p "$out/$case"
	case $fargs in
	--rw=randread* | --rw=read*) refill ;;
	esac
	{
		printf 'aioblk-perf %s %s -t %s --json\n' "$device" "$pargs" "$runtime"
		printf 'fio %s %s %s\n' "${fio_common[*]}" "${fio_libaio[*]}" "$fargs"
		printf 'fio %s %s %s\n' "${fio_common[*]}" "${fio_batched[*]}" "$fargs"
		printf 'fio %s %s %s\n' "${fio_common[*]}" "${fio_uring[*]}" "$fargs"
		if [ -n "$engine" ]; then
			printf 'fio %s %s %s\n' "${fio_common[*]}" "${fio_engine[*]}" "$fargs"
		fi
	} >"$out/$case/commands.txt"
	for r in $(seq 1 "$rounds"); do
		# shellcheck disable=SC2086 # the argument strings split on purpose
		run_one aioblk "$case" "$r" "$perf" "$device" $pargs -t "$runtime" --json
		# shellcheck disable=SC2086
		run_one fio-libaio "$case" "$r" fio "${fio_common[@]}" "${fio_libaio[@]}" $fargs
		# shellcheck disable=SC2086
		run_one fio-libaio-batched "$case" "$r" fio "${fio_common[@]}" "${fio_batched[@]}" $fargs
		# shellcheck disable=SC2086
		run_one fio-io_uring "$case" "$r" fio "${fio_common[@]}" "${fio_uring[@]}" $fargs
		if [ -n "$engine" ]; then
			# shellcheck disable=SC2086
			run_one fio-aioblk "$case" "$r" fio "${fio_common[@]}" "${fio_engine[@]}" $fargs
		fi
		if [ "$case" = threads2 ]; then
			# One thread in the same round, for the scaling ratio.
			# shellcheck disable=SC2086
			run_one aioblk-1thread "$case" "$r" "$perf" "$device" ${pargs/-j 2/-j 1} -t "$runtime" --json
		fi
	done
}

# interrupt QD: aioblk-perf busy-polling against aioblk-perf sleeping on the eventfd.
compare_interrupt() {
	local qd=$1 case=interrupt-qd$1 r
	echo "case $case: aioblk-perf busy-poll vs --interrupt, randread 4k QD$qd" >&2
	refill
	for r in $(seq 1 "$rounds"); do
		run_one aioblk-poll "$case" "$r" "$perf" "$device" -w randread -b 4k -q "$qd" -t "$runtime" --json
		run_one aioblk-interrupt "$case" "$r" "$perf" "$device" -w randread -b 4k -q "$qd" -t "$runtime" \
			--interrupt --json
	done
}

for c in ${cases//sweep/qd1 qd4 qd16 qd32 qd128}; do
	case $c in
	qd1 | qd4 | qd16 | qd32 | qd128)
		q=${c#qd}
		compare "randread-4k-qd$q" "-w randread -b 4k -q $q" "--rw=randread --bs=4k --iodepth=$q"
		;;
	randwrite)
		# Random data in both (fio without its per-write scrambling, which aioblk-perf does not do):
		# zram compresses every write, so this measures the data as much as the I/O path.
		compare randwrite-4k-qd32 "-w randwrite -b 4k -q 32" \
			"--rw=randwrite --bs=4k --iodepth=32 --scramble_buffers=0"
		# Zero pages: zram stores them without compressing, which leaves the I/O path.
		compare randwrite-zero-4k-qd32 "-w randwrite -b 4k -q 32 --zero-buffers" \
			"--rw=randwrite --bs=4k --iodepth=32 --zero_buffers"
		;;
	seqread) compare read-128k-qd8 "-w read -b 128k -q 8" "--rw=read --bs=128k --iodepth=8" ;;
	threads2) compare threads2 "-w randread -b 4k -q 32 -j 2" "--rw=randread --bs=4k --iodepth=32 --numjobs=2" ;;
	interrupt)
		compare_interrupt 1
		compare_interrupt 32
		;;
	smallqueue)
		mkdir -p "$out/smallqueue"
		"$here/small-queue.sh" --runtime "$runtime" --rounds "$rounds" --out "$out/smallqueue" \
			| tee "$out/smallqueue/summary.txt" >&2
		;;
	manydisks)
		mkdir -p "$out/manydisks"
		"$here/many-disks.sh" --perf "$perf" --runtime "$runtime" --rounds "$rounds" --out "$out/manydisks" \
			| tee "$out/manydisks/summary.txt" >&2
		;;
	*) echo "compare.sh: unknown case '$c'" >&2; exit 2 ;;
	esac
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/machine.txt"

echo "results: $out" >&2
python3 "$here/summarize.py" "$out"
