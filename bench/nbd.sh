#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# NBD serving: nbdkit-aioblk-plugin against nbdkit's own file plugin on the
# same device, measured by fio's nbd engine (4 KiB random reads, 4 jobs, 8
# requests in flight each: 4 connections). The cases run alternating,
# round after round, in the order given on odd rounds and in the reverse
# order on even rounds (A B, B A, ...: no case always runs first, or always
# right after the same other case); prints each run, the medians,
# the median of the per-round ratios to the file plugin and the device's
# reads per request (below 1 when the page cache answered).
#
# Usage: bench/nbd.sh [--device DEV] [--runtime S] [--rounds N] [--plugin SO]
#                     [--cases LIST] [--threads N] [--baseline SO] [--out DIR]
#                     [--strace] [--perf]
# --device: default /dev/zram0 (root; sized 1G and filled with random data
#   only when its disksize reads 0, else used as it is).
# --cases: a subset of "file file-random file-nocache aioblk aioblk-eventfd
#   aioblk-poll aioblk-buffered" (the default: file file-random aioblk
#   aioblk-eventfd aioblk-poll; aioblk is the plugin's defaults, wait=auto;
#   file-nocache is the file plugin with cache=none).
# --threads: nbdkit -t N (worker threads per connection) for every case;
#   default nbdkit's own (16).
# --baseline: another build of the plugin (before a change), served with its
#   defaults as the case aioblk-baseline (add it to --cases).
# --strace: after the timed rounds, one run of each case under strace -c -f
#   on the server (system calls per request; slows it down, not timed).
# --perf: after the timed rounds, one run of each case with the server's CPU
#   time per request (/proc/PID/stat), its system calls per request (perf
#   stat on the syscall tracepoints, all of them and the main ones: unlike
#   strace, it does not slow the server down), its context switches per
#   request and, under perf record -g, where its CPU time goes.
# Run it under flock /tmp/aioblk-bench.lock on a shared machine.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
device=/dev/zram0
runtime=5
rounds=3
plugin=""
cases="file file-random aioblk aioblk-eventfd aioblk-poll"
out=""
threads=""
baseline=""
do_strace=false
do_perf=false

while [ $# -gt 0 ]; do
	case $1 in
	--device) device=$2; shift 2 ;;
	--runtime) runtime=$2; shift 2 ;;
	--rounds) rounds=$2; shift 2 ;;
	--plugin) plugin=$2; shift 2 ;;
	--cases) cases=$2; shift 2 ;;
	--threads) threads=$2; shift 2 ;;
	--baseline) baseline=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	--strace) do_strace=true; shift ;;
	--perf) do_perf=true; shift ;;
	-h | --help) sed -n '3,32p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "nbd.sh: unknown argument '$1'" >&2; exit 2 ;;
	esac
done

if [ -z "$plugin" ]; then
	for p in "$root"/build*/plugins/nbdkit/nbdkit-aioblk-plugin.so; do
		if [ -f "$p" ]; then plugin=$p; break; fi
	done
fi
[ -n "$plugin" ] && [ -f "$plugin" ] || { echo "nbd.sh: build the plugin first or pass --plugin" >&2; exit 1; }
for t in nbdkit fio python3; do
	command -v $t >/dev/null || { echo "nbd.sh: $t is missing" >&2; exit 1; }
done
# The plugin as built links the library in its build tree.
export LD_LIBRARY_PATH="$(dirname "$(dirname "$(dirname "$plugin")")")/src${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

if [ "$device" = /dev/zram0 ]; then
	[ "$(id -u)" -eq 0 ] || { echo "nbd.sh: /dev/zram0 needs root (or pass --device)" >&2; exit 1; }
	[ -e /sys/block/zram0 ] || modprobe zram num_devices=1
	if [ "$(cat /sys/block/zram0/disksize)" = 0 ]; then
		echo 1G >/sys/block/zram0/disksize
		echo "nbd.sh: filling /dev/zram0 with random data" >&2
		dd if=/dev/urandom of=/dev/zram0 bs=1M count=1024 oflag=direct status=none
	fi
fi
[ -e "$device" ] || { echo "nbd.sh: $device does not exist" >&2; exit 1; }
[ -n "$out" ] || out=$(mktemp -d "${TMPDIR:-/tmp}/aioblk-nbd.XXXXXX")
mkdir -p "$out"

# nbdkit's own options, the same for every case.
nbdkit_opts=()
[ -z "$threads" ] || nbdkit_opts=(-t "$threads")

server_args() {
	case $1 in
	file) echo "file file=$device" ;;
	file-random) echo "file file=$device fadvise=random" ;;
	file-nocache) echo "file file=$device cache=none" ;;
	aioblk) echo "$plugin file=$device" ;;
	aioblk-eventfd) echo "$plugin file=$device wait=eventfd" ;;
	aioblk-poll) echo "$plugin file=$device wait=poll" ;;
	aioblk-buffered) echo "$plugin file=$device buffered=true" ;;
	aioblk-baseline) [ -n "$baseline" ] || { echo "nbd.sh: aioblk-baseline needs --baseline" >&2; exit 2; }
		echo "$baseline file=$device" ;;
	*) echo "nbd.sh: unknown case $1" >&2; exit 2 ;;
	esac
}

fio_cmd="fio --name=nbd --ioengine=nbd --uri=\"\$uri\" --rw=randread --bs=4k --iodepth=8 --numjobs=4"
fio_cmd+=" --time_based --runtime=$runtime --norandommap --randrepeat=0 --group_reporting --output-format=json"

{
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "kernel: $(uname -r), $(nproc) CPUs, $(nbdkit --version), $(fio --version)"
	echo "device: $device"
	echo "client: $fio_cmd"
	for c in $cases; do echo "server $c: nbdkit -U -${threads:+ -t $threads} $(server_args "$c")"; done
	echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out/machine.txt" >&2

# One timed run: the JSON goes to $out/CASE.ROUND.json (fio --output: the nbd
# engine prints to stdout). The file plugin reads
# through the page cache: drop the device's cached pages first, so that every
# run starts cold (aioblk reads O_DIRECT and never fills it).
# The server's CPU time (utime and stime, in clock ticks) is read from
# /proc around the fio run, into $out/CASE.ROUND.cpu; the device's reads
# (/sys/class/block/DEV/stat) around the server's run, into $out/CASE.ROUND.dev.
devstat=/sys/class/block/$(basename "$(readlink -f "$device")")/stat
dev_reads() { if [ -r "$devstat" ]; then awk '{ print $1 }' "$devstat"; else echo 0; fi; }
run_case() {
	local c=$1 r=$2 stat cmd d0
	stat="cut -d' ' -f14,15 /proc/\$(cat $out/server.pid)/stat"
	# nbdkit may start the command before it has written its pid file.
	cmd="while [ ! -s $out/server.pid ]; do sleep 0.01; done; a=\$($stat); $fio_cmd --output=$out/$c.$r.json; rc=\$?; echo \$a \$($stat) >$out/$c.$r.cpu; exit \$rc"
	blockdev --flushbufs "$device" 2>/dev/null || true
	rm -f "$out/server.pid"
	d0=$(dev_reads)
	# shellcheck disable=SC2046 # the server's arguments split on purpose
	nbdkit -U - "${nbdkit_opts[@]}" -P "$out/server.pid" $(server_args "$c") --run "$cmd" >"$out/$c.$r.err" 2>&1 ||
		{ cat "$out/$c.$r.err" >&2; exit 1; }
	echo "$d0 $(dev_reads)" >"$out/$c.$r.dev"
}

reversed=""
for c in $cases; do reversed="$c${reversed:+ $reversed}"; done

for r in $(seq 1 "$rounds"); do
	order=$cases
	[ $((r % 2)) -eq 1 ] || order=$reversed
	for c in $order; do
		run_case "$c" "$r"
		echo "  round $r $c: $(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["jobs"][0]["read"]["iops"]))' "$out/$c.$r.json") IOPS" >&2
	done
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/machine.txt" >&2

python3 - "$out" "$rounds" $cases <<'EOF'
import json, os, statistics, sys
out, rounds, cases = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def iops(c, r):
    return json.load(open(f"{out}/{c}.{r}.json"))["jobs"][0]["read"]["iops"]
def lat(c, r):
    return json.load(open(f"{out}/{c}.{r}.json"))["jobs"][0]["read"]["clat_ns"]["mean"] / 1000
hz = os.sysconf("SC_CLK_TCK")
def cpu(c, r):
    """The server's CPU time per request in microseconds."""
    a, b, c2, d = (int(x) for x in open(f"{out}/{c}.{r}.cpu").read().split())
    n = json.load(open(f"{out}/{c}.{r}.json"))["jobs"][0]["read"]["total_ios"]
    return (c2 + d - a - b) * 1e6 / hz / n
def devreads(c, r):
    """The device's reads per request (reads, not sectors: a page cache read-ahead counts once)."""
    a, b = (int(x) for x in open(f"{out}/{c}.{r}.dev").read().split())
    n = json.load(open(f"{out}/{c}.{r}.json"))["jobs"][0]["read"]["total_ios"]
    return (b - a) / n
base = "file" if "file" in cases else cases[0]
rs = range(1, rounds + 1)
print(f"| server | median IOPS | per round | ÷ {base} (median of per-round ratios) | mean latency | server CPU per request | ÷ {base} | device reads per request |")
print("|---|---:|---|---:|---:|---:|---:|---:|")
for c in cases:
    v = [iops(c, r) for r in rs]
    ratio = statistics.median(iops(c, r) / iops(base, r) for r in rs)
    l = statistics.median(lat(c, r) for r in rs)
    u = statistics.median(cpu(c, r) for r in rs)
    uratio = statistics.median(cpu(c, r) / cpu(base, r) for r in rs)
    dr = statistics.median(devreads(c, r) for r in rs)
    print(f"| {c} | {statistics.median(v) / 1000:.1f}k | {', '.join(f'{x / 1000:.1f}k' for x in v)} | {ratio:.3f} "
          f"| {l:.1f} us | {u:.2f} us | {uratio:.3f} | {dr:.2f} |")
EOF

if $do_strace; then
	command -v strace >/dev/null || { echo "nbd.sh: strace is missing" >&2; exit 1; }
	for c in $cases; do
		# shellcheck disable=SC2046
		nbdkit -f -U "$out/strace.sock" "${nbdkit_opts[@]}" $(server_args "$c") &
		srv=$!
		for _ in $(seq 50); do [ -S "$out/strace.sock" ] && break; sleep 0.1; done
		timeout $((runtime + 5)) strace -c -f -q -p "$srv" -o "$out/strace.$c.txt" &
		st=$!
		sleep 0.5
		uri="nbd+unix:///?socket=$out/strace.sock" eval "$fio_cmd --output=$out/strace.$c.json" >/dev/null
		kill -INT "$st" 2>/dev/null || true
		wait "$st" 2>/dev/null || true
		kill "$srv"; wait "$srv" 2>/dev/null || true
		rm -f "$out/strace.sock"
		n=$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1]))["jobs"][0]["read"]; print(j["total_ios"])' "$out/strace.$c.json")
		echo "== $c: system calls of the server for $n requests (strace -c -f)"
		python3 - "$out/strace.$c.txt" "$n" <<'EOF'
import sys
n = int(sys.argv[2])
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
        calls = int(f[3])
        if calls >= n / 20:
            print(f"  {f[-1]:<16} {calls / n:6.2f} per request")
    elif f and f[-1] == "total":
        print(f"  {'total':<16} {int(f[3]) / n:6.2f} per request")
EOF
	done
fi
# CPU time (user + system) of a process in microseconds.
cpu_us() {
	awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) * 1000000 / hz }' "/proc/$1/stat"
}

if $do_perf; then
	command -v perf >/dev/null || { echo "nbd.sh: perf is missing" >&2; exit 1; }
	perf_events="raw_syscalls:sys_enter,context-switches"
	for e in read io_submit io_getevents poll ppoll clock_nanosleep pread64 sendto futex; do perf_events+="${perf_events:+,}syscalls:sys_enter_$e"; done
	for c in $cases; do
		rm -f "$out/perf.sock"
		# shellcheck disable=SC2046
		nbdkit -f -U "$out/perf.sock" "${nbdkit_opts[@]}" $(server_args "$c") &
		srv=$!
		for _ in $(seq 50); do [ -S "$out/perf.sock" ] && break; sleep 0.1; done
		blockdev --flushbufs "$device" 2>/dev/null || true
		perf record -q -g -p "$srv" -o "$out/perf.$c.data" -- sleep "$runtime" 2>/dev/null &
		pr=$!
		perf stat -x, -e "$perf_events" -p "$srv" -o "$out/perf.$c.stat" &
		ps=$!
		t0=$(cpu_us "$srv")
		uri="nbd+unix:///?socket=$out/perf.sock" eval "$fio_cmd --output=$out/perf.$c.json" >/dev/null
		t1=$(cpu_us "$srv")
		kill -INT "$ps"
		wait "$ps" || true
		wait "$pr" || true
		kill "$srv"; wait "$srv" 2>/dev/null || true
		n=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["jobs"][0]["read"]["total_ios"])' "$out/perf.$c.json")
		echo "== $c: server CPU $(python3 -c "print(f'{($t1 - $t0) / $n:.2f}')") us per request ($n requests); shares of its CPU (perf, with children):"
		awk -F, -v n="$n" '$3 == "raw_syscalls:sys_enter" { printf "  all %.2f", $1 / n }
			$3 ~ /sys_enter_/ { sub(/.*sys_enter_/, "", $3); printf "  %s %.2f", $3, $1 / n }
			$3 == "context-switches" { cs = $1 / n }
			END { printf "  (system calls per request); %.2f context switches per request\n", cs }' "$out/perf.$c.stat"
		perf report -i "$out/perf.$c.data" --children --sort sym -g none 2>/dev/null |
			grep -E '\] (__x64_sys_[a-z0-9_]+|schedule|zram_submit_bio|aionbd_p(read|write)|aioblk_[a-z_]+)$' |
			awk '$1 + 0 >= 0.5 { printf "  %-28s %s\n", $NF, $1 }' | head -12
	done
fi
echo "raw results: $out" >&2
