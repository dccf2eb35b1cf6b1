#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Many disks in one thread: aioblk-perf with one thread over 16 files (16
# aioblk disks) on a file system on one private zram device, plain groups
# (a kernel context per disk) against SHARED_CONTEXT groups (one context).
# The cases, 4 KiB random reads, one thread:
#   alone        one disk at QD1, alone in its group: the baseline
#   idle-plain   the same disk at QD1, 15 idle disks in a plain group
#   idle-shared  the same, in a shared group
#   busy-plain   16 disks, all busy, --qd each, plain group
#   busy-shared  the same, shared group
# Every round runs every case, in the reverse order of the round before, so
# that plain and shared alternate and neither always runs first. Prints the
# medians (IOPS, mean and p99 latency, CPU), the medians of the per-round
# ratios, and fs.aio-nr as read in the middle of each run (system-wide:
# other programs' contexts count too; the value before the run is shown).
#
# Usage: bench/many-disks.sh [--perf PATH/TO/aioblk-perf] [--disks N] [--qd N]
#                            [--runtime S] [--rounds N] [--fs ext4|xfs]
#                            [--file-size SIZE] [--out DIR]
#        bench/many-disks.sh --summarize DIR   (the tables again from --out DIR)
# Defaults: 16 disks, QD 8, 5 rounds of 3 s, ext4, 32 MiB files. Needs root:
# the zram device, the file system and its mount are made here and removed
# at the end, also on failure or Ctrl-C.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
perf="" disks=16 qd=8 runtime=3 rounds=5 fs=ext4 file_mib=32 out="" summarize=""
usage() {
	sed -n '3,24p' "$0" | sed 's/^# \{0,1\}//'
	exit "${1:-0}"
}
while [ $# -gt 0 ]; do
	case $1 in
	--perf) perf=$2; shift 2 ;;
	--disks) disks=$2; shift 2 ;;
	--qd) qd=$2; shift 2 ;;
	--runtime) runtime=$2; shift 2 ;;
	--rounds) rounds=$2; shift 2 ;;
	--fs) fs=$2; shift 2 ;;
	--file-size) file_mib=$(numfmt --from=iec "${2%[bB]}"); file_mib=$((file_mib >> 20)); shift 2 ;;
	--out) out=$2; shift 2 ;;
	--summarize) summarize=$2; shift 2 ;;
	-h | --help) usage 0 ;;
	*) echo "many-disks.sh: unknown argument '$1'" >&2; usage 2 >&2 ;;
	esac
done
# summarize DIR: the tables, from the raw results in DIR.
summarize() {
	local cases rounds
	cases=$(sed -n 's/^case \([a-z-]*\):.*/\1/p' "$1/machine.txt" | tr '\n' ' ')
	rounds=$(sed -n 's/^rounds: \([0-9]*\),.*/\1/p' "$1/machine.txt")
	# shellcheck disable=SC2086 # one argument per case
	python3 - "$1" "$rounds" $cases <<'EOF'
import json, statistics, sys
out, rounds, cases = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
med = statistics.median
rs = range(1, rounds + 1)
def j(c, r): return json.load(open(f"{out}/{c}.{r}.json"))
def nr(c, r, suffix=""): return int(open(f"{out}/{c}.{r}.aionr{suffix}").read())
iops = {c: {r: j(c, r)["read"]["iops"] for r in rs} for c in cases}
print("per round, IOPS:")
print(f"{'round':>5} " + " ".join(f"{c:>12}" for c in cases))
for r in rs:
    print(f"{r:5} " + " ".join(f"{iops[c][r]:12.0f}" for c in cases))
print()
# aio-nr +: fs.aio-nr halfway through the run minus just before it (median; every round's value
# follows, since other programs' contexts come and go in between).
print(f"{'case':12} {'IOPS':>9} {'lat us':>8} {'p99 us':>8} {'us cpu/IO':>9} {'aio-nr +':>8}  aio-nr + per round")
for c in cases:
    js = [j(c, r) for r in rs]
    cpu_io = med(x["cpu"]["total_s"] / max(x["read"]["ios"], 1) * 1e6 for x in js)
    grow = [nr(c, r) - nr(c, r, "0") for r in rs]
    print(f"{c:12} {med(iops[c].values()):9.0f} {med(x['read']['lat_ns']['mean'] for x in js) / 1e3:8.2f} "
          f"{med(x['read']['lat_ns']['p99'] for x in js) / 1e3:8.2f} {cpu_io:9.3f} {med(grow):8.0f}  "
          + " ".join(str(g) for g in grow))
print()
print("medians of the per-round ratios (IOPS):")
for a, b in (("idle-plain", "alone"), ("idle-shared", "alone"), ("idle-shared", "idle-plain"),
             ("busy-shared", "busy-plain")):
    per = [iops[a][r] / iops[b][r] for r in rs]
    print(f"  {a} / {b}: {med(per):.3f}   (rounds: {' '.join(f'{x:.3f}' for x in per)})")
EOF
}
if [ -n "$summarize" ]; then
	summarize "$summarize"
	exit 0
fi
case $fs in ext4 | xfs) ;; *) echo "many-disks.sh: --fs is ext4 or xfs" >&2; exit 2 ;; esac
if [ "$disks" -lt 2 ] || [ "$rounds" -lt 1 ] || [ "$file_mib" -lt 1 ]; then
	echo "many-disks.sh: --disks at least 2, --rounds at least 1, --file-size at least 1M" >&2
	exit 2
fi
if [ -z "$perf" ]; then
	for p in "$root"/build*/tools/aioblk-perf; do
		if [ -x "$p" ]; then perf=$p; break; fi
	done
fi
if [ -z "$perf" ] || [ ! -x "$perf" ]; then
	echo "many-disks.sh: aioblk-perf not found: build it (meson setup build && ninja -C build) or pass --perf" >&2
	exit 1
fi
if ! "$perf" --help | grep -q -- --shared-context; then
	echo "many-disks.sh: $perf has no --shared-context" >&2
	exit 1
fi
if [ "$(id -u)" -ne 0 ] || [ ! -w /sys/class/zram-control/hot_add ]; then
	echo "many-disks.sh: needs root and zram (a private zram device)" >&2
	exit 1
fi
command -v "mkfs.$fs" >/dev/null || { echo "many-disks.sh: mkfs.$fs is missing" >&2; exit 1; }
command -v python3 >/dev/null || { echo "many-disks.sh: python3 is needed for the summary" >&2; exit 1; }

zram="" mnt="" sampler=""
cleanup() {
	local rc=$? i
	if [ -n "$sampler" ]; then kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true; fi
	if [ -n "$mnt" ]; then
		for i in 1 2 3 4 5; do
			umount "$mnt" 2>/dev/null && break
			sleep 0.2
		done
		rmdir "$mnt" 2>/dev/null || echo "many-disks.sh: $mnt could not be unmounted" >&2
	fi
	if [ -n "$zram" ]; then
		for i in $(seq 1 25); do
			[ -e "/sys/block/zram$zram" ] || break
			echo "$zram" >/sys/class/zram-control/hot_remove 2>/dev/null && break
			sleep 0.2
		done
		if [ -e "/sys/block/zram$zram" ]; then echo "many-disks.sh: zram$zram left behind" >&2; rc=1; fi
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

if [ -z "$out" ]; then
	out=$(mktemp -d "${TMPDIR:-/tmp}/aioblk-many-disks-results.XXXXXX")
fi
mkdir -p "$out"

# One zram device: the files, with room for the file system's own blocks.
zram=$(cat /sys/class/zram-control/hot_add)
echo $((disks * file_mib + 64 + disks * file_mib / 8))M >"/sys/block/zram$zram/disksize"
"mkfs.$fs" -q "/dev/zram$zram" >/dev/null 2>&1 || "mkfs.$fs" -f -q "/dev/zram$zram" >/dev/null
mnt=$(mktemp -d /tmp/aioblk-many-disks-mnt.XXXXXX)
mount "/dev/zram$zram" "$mnt"
files=()
for i in $(seq 1 "$disks"); do
	# Random data: zram compresses, and a zero page would be read for free.
	dd if=/dev/urandom of="$mnt/disk$i" bs=1M count="$file_mib" oflag=direct status=none
	files+=("$mnt/disk$i")
done
sync

idle=$((disks - 1))
args_of() {
	case $1 in
	alone) echo "-q 1 ${files[0]}" ;;
	idle-plain) echo "-q 1 --idle $idle ${files[*]}" ;;
	idle-shared) echo "-q 1 --idle $idle --shared-context ${files[*]}" ;;
	busy-plain) echo "-q $qd ${files[*]}" ;;
	busy-shared) echo "-q $qd --shared-context ${files[*]}" ;;
	esac
}
cases="alone idle-plain idle-shared busy-plain busy-shared"

{
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "kernel: $(uname -r), cpus: $(nproc)"
	echo "aioblk-perf: $("$perf" --version) ($perf)"
	echo "device: /dev/zram$zram ($(cat /sys/block/zram"$zram"/disksize) bytes), $fs, $disks files of $file_mib MiB of random data"
	echo "rounds: $rounds, runtime per run: ${runtime}s, busy QD per disk: $qd"
	echo "uptime before: $(uptime)"
	for c in $cases; do
		# shellcheck disable=SC2046
		echo "case $c: $perf -w randread -b 4k $(args_of "$c" | sed -E "s|$mnt/|DIR/|g; s|DIR/disk1 (DIR/disk[0-9]+ )*DIR/disk([0-9]+)|DIR/disk1 ... DIR/disk\\2|") -t $runtime --json"
	done
} | tee "$out/machine.txt" >&2

# run_case CASE ROUND: the page cache of the files dropped first (reads
# only, O_DIRECT: every case sees the same data); fs.aio-nr read halfway.
run_case() {
	local c=$1 r=$2 f
	for f in "${files[@]}"; do dd if="$f" iflag=nocache count=0 status=none; done
	cat /proc/sys/fs/aio-nr >"$out/$c.$r.aionr0"
	(sleep "$(awk -v t="$runtime" 'BEGIN { print t / 2 }')" && cat /proc/sys/fs/aio-nr >"$out/$c.$r.aionr") &
	sampler=$!
	# shellcheck disable=SC2046 # split on purpose
	if ! "$perf" -w randread -b 4k $(args_of "$c") -t "$runtime" --json >"$out/$c.$r.json" 2>"$out/$c.$r.err"; then
		echo "many-disks.sh: $c round $r failed" >&2
		cat "$out/$c.$r.err" >&2
		exit 1
	fi
	wait "$sampler" || true
	sampler=""
	echo "  round $r: $c $(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["read"]["iops"]))' "$out/$c.$r.json") IOPS, aio-nr $(cat "$out/$c.$r.aionr")" >&2
}

order=$cases
for r in $(seq 1 "$rounds"); do
	for c in $order; do run_case "$c" "$r"; done
	order=$(echo "$order" | awk '{ for (i = NF; i > 0; i--) printf "%s%s", $i, (i > 1 ? " " : "\n") }')
done
echo "uptime after: $(uptime)" | tee -a "$out/machine.txt" >&2

summarize "$out"
echo "results: $out" >&2
