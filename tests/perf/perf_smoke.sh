#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Smoke tests of the built aioblk-perf: short runs on small temporary files,
# its JSON, verify (and that it catches planted corruption), bad arguments,
# unusable targets, Ctrl-C, and an I/O error (root: a zram device with a
# memory limit). Nothing here measures speed.
# Usage: perf_smoke.sh PATH/TO/aioblk-perf [PATH/TO/read_blackhole.so]
set -u
perf=${1:?usage: perf_smoke.sh AIOBLK_PERF [READ_BLACKHOLE_SO]}
blackhole=${2:-}
pass=0
fail=0
skip=0
zram=""

scratch=$(mktemp -d "${TMPDIR:-/var/tmp}/aioblk-perf-smoke.XXXXXX") || exit 1
# zram_remove N: hot_remove, retried for 5 s while the device is busy (udev's
# probe may still hold it); fails when zramN is still there after that.
zram_remove() {
	local i
	for i in $(seq 1 250); do
		[ -e "/sys/block/zram$1" ] || return 0
		echo "$1" >/sys/class/zram-control/hot_remove 2>/dev/null && return 0
		sleep 0.02
	done
	[ ! -e "/sys/block/zram$1" ]
}
cleanup() {
	local rc=$?
	if [ -n "$zram" ] && ! zram_remove "$zram"; then
		echo "not ok - zram$zram could not be removed: left behind"
		rc=1
	fi
	rm -rf "$scratch"
	exit "$rc"
}
trap cleanup EXIT
cd "$scratch" || exit 1

ok() {
	echo "ok - $1"
	pass=$((pass + 1))
}
not_ok() {
	echo "not ok - $1"
	fail=$((fail + 1))
	if [ -s out ]; then sed 's/^/    stdout: /' out | head -20; fi
	if [ -s err ]; then sed 's/^/    stderr: /' err | head -20; fi
}
skipped() {
	echo "skip - $1"
	skip=$((skip + 1))
}
# run NAME EXPECTED_STATUS ARGS...: runs aioblk-perf in the scratch directory.
run() {
	local name=$1 want=$2 rc
	shift 2
	"$perf" "$@" >out 2>err
	rc=$?
	if [ "$rc" -eq "$want" ]; then
		ok "$name (exit $rc)"
		return 0
	fi
	not_ok "$name: exit $rc, expected $want"
	return 1
}
# expect NAME FILE PATTERN: the file has a line matching the pattern.
expect() {
	if grep -q -e "$3" "$2"; then ok "$1"; else not_ok "$1: no '$3' in $2"; fi
}
no_temp_left() {
	if ls aioblk-perf.* >/dev/null 2>&1; then
		not_ok "$1: temporary file left behind: $(ls aioblk-perf.*)"
		rm -f aioblk-perf.*
	else
		ok "$1: temporary file removed"
	fi
}

json_tool=""
if command -v python3 >/dev/null 2>&1; then
	json_tool=python3
elif command -v jq >/dev/null 2>&1; then
	json_tool=jq
fi
# json_check NAME EXPR: EXPR is a Python boolean over the parsed object j
# (with jq: a jq filter that must print true).
json_check() {
	local name=$1 py=$2 jqf=$3
	case $json_tool in
	python3)
		if python3 -c "import json,sys; j=json.load(open('out')); sys.exit(0 if ($py) else 1)" 2>>err; then
			ok "$name"
		else
			not_ok "$name: $py"
		fi
		;;
	jq)
		if [ "$(jq "$jqf" out 2>>err)" = true ]; then ok "$name"; else not_ok "$name: $jqf"; fi
		;;
	*)
		skipped "$name: neither python3 nor jq to parse JSON"
		;;
	esac
}

# --- help, version, bad arguments ---
run "--help" 0 --help && expect "--help prints usage" out "^Usage: aioblk-perf"
run "--version" 0 --version && expect "--version prints the version" out "^aioblk-perf [0-9]"
for args in "--bs 1000" "--bs 4x" "--bs 0" "--iodepth 0" "--iodepth 70000" "--threads 0" \
	"--workload scan" "--runtime 0" "--runtime abc" "--rwmixread 30" "--workload randrw --rwmixread 101" \
	"--size 0" "--passes 2" "--verify-only" "--workload verify --zero-buffers" "--frobnicate" \
	"--interrupt --wait-in-kernel"; do
	# shellcheck disable=SC2086 # split on purpose
	run "bad arguments: $args" 2 $args --runtime 0.1 && expect "bad arguments: $args: says why" err "."
done
no_temp_left "bad arguments"

# --- unusable targets ---
mkdir adir
head -c 2048 /dev/zero >small
run "missing target" 1 -t 0.1 ./nonexistent && expect "missing target: named" err "nonexistent"
run "directory target" 1 -t 0.1 adir && expect "directory target: named" err "adir: is a directory"
run "character device target" 1 -t 0.1 /dev/null && expect "character device: named" err "/dev/null"
run "target smaller than one I/O" 1 -t 0.1 --bs 4k small && expect "small target: says so" err "too small"
run "--size below one I/O" 1 -t 0.1 --size 1000 && expect "--size below one I/O: says so" err "too small"
no_temp_left "--size below one I/O"
run "--size not a multiple of 4k" 0 -t 0.1 --size 5000
no_temp_left "--size not a multiple of 4k"

# --- short runs on the temporary file ---
run "randread on a temporary file" 0 -t 0.3 --size 8m -q 8
expect "randread: reports IOPS" out "^read: *IOPS [0-9]"
expect "randread: reports CPU" out "cpu: user"
no_temp_left "randread"

run "randrw --json" 0 -w randrw --rwmixread 70 -t 0.5 --size 8m -q 16 --json
json_check "randrw --json: counts and latency order" \
	"j['workload']=='randrw' and j['read']['ios']>0 and j['write']['ios']>0 and j['total']['ios']==j['read']['ios']+j['write']['ios'] and 0<j['total']['lat_ns']['p50']<=j['total']['lat_ns']['p99']<=j['total']['lat_ns']['p99_9']<=j['total']['lat_ns']['max'] and j['cpu']['total_s']>=0 and j['errors']==0" \
	'.workload=="randrw" and .read.ios>0 and .write.ios>0 and .total.lat_ns.p50<=.total.lat_ns.p99 and .errors==0'
no_temp_left "randrw"

head -c 1048576 /dev/zero >odd$'\xff'name
run "--json of a path that is not UTF-8" 0 -t 0.1 --json odd$'\xff'name
json_check "--json of a path that is not UTF-8: UTF-8 JSON, U+FFFD for the byte" \
	"j['targets'][0]['path']=='odd\ufffdname'" '.targets[0].path=="odd\ufffdname"'

run "interrupt mode --json" 0 --interrupt -t 0.5 --size 8m -q 4 --json
json_check "interrupt mode: did I/O" "j['mode']=='interrupt' and j['total']['ios']>0" '.mode=="interrupt" and .total.ios>0'
run "wait-in-kernel mode --json" 0 --wait-in-kernel -t 0.5 --size 8m -q 4 --json
json_check "wait-in-kernel mode: did I/O" "j['mode']=='wait-in-kernel' and j['total']['ios']>0" \
	'.mode=="wait-in-kernel" and .total.ios>0'
run "wait-in-kernel verify, shared context" 0 --wait-in-kernel --shared-context -w verify --size 4m -q 8 -t 0.3

head -c 4194304 /dev/zero >t1
head -c 4194304 /dev/zero >t2
run "sequential read, 2 threads x 2 targets" 0 -w read --bs 128k -q 2 -j 2 -t 0.3 t1 t2
run "sequential write, 2 threads x 2 targets" 0 -w write --bs 64k -q 2 -j 2 -t 0.3 t1 t2

# --- one shared kernel context per thread, idle targets ---
run "--shared-context, 2 threads x 2 targets --json" 0 --shared-context -q 4 -j 2 -t 0.3 --json t1 t2
json_check "--shared-context: a shared group of the default depth did I/O" \
	"j['group']=='shared' and j['group_depth']==256 and j['total']['ios']>0 and j['errors']==0" \
	'.group=="shared" and .group_depth==256 and .total.ios>0 and .errors==0'
run "--shared-context verify with an idle target" 0 -w verify --passes 1 -q 4 --shared-context --idle 1 t1 t2
expect "shared verify: passed" out "^verify: passed"
run "--idle in a plain group --json" 0 -q 2 --idle 1 -t 0.3 --json t1 t2
json_check "--idle: plain group, the last target idle" \
	"j['group']=='plain' and j['idle_targets']==1 and not j['targets'][0]['idle'] and j['targets'][1]['idle'] and j['total']['ios']>0" \
	'.group=="plain" and .idle_targets==1 and .targets[1].idle and .total.ios>0'
run "--group-depth defaults to what the jobs need" 0 --shared-context -q 200 -t 0.2 --json t1 t2
json_check "--group-depth default: --iodepth x busy targets above 256" "j['group_depth']==400" '.group_depth==400'
for args in "--group-depth 64" "--shared-context --group-depth 4 -q 4 t1 t2" "--idle 1" "--idle 2 t1 t2" \
	"--shared-context --group-depth 0" "--shared-context -q 65536 t1 t2"; do
	# shellcheck disable=SC2086 # split on purpose
	run "bad group arguments: $args" 2 $args --runtime 0.1 && expect "bad group arguments: $args: says why" err "."
done
no_temp_left "group arguments"

# --- verify ---
run "verify on a temporary file (2 threads)" 0 -w verify -t 0.5 --size 4m -q 8 -j 2
expect "verify: passed" out "^verify: passed"
no_temp_left "verify"

head -c 1048576 /dev/zero >v
run "verify --passes 1" 0 -w verify --passes 1 --seed 7 v
run "verify-only of intact data" 0 --verify-only --seed 7 -j 3 v
run "verify-only with another seed fails" 1 --verify-only --seed 8 v
expect "another seed: says stale" err "stale data"
# Plant two faults: a changed byte in the block at 8192, and block 0 copied over block 5.
printf 'XY' | dd of=v bs=1 seek=8300 conv=notrunc 2>/dev/null
dd if=v of=v bs=4096 skip=0 seek=5 count=1 conv=notrunc 2>/dev/null
run "verify-only finds planted corruption" 1 --verify-only --seed 7 v
expect "corruption: reported with its offset" err "block at offset 8192 .*checksum mismatch"
expect "misplaced block: reported with its offset" err "block at offset 20480 .*written for offset 0"
expect "corruption: summary" out "verify: failed .* 2 mismatched blocks"

# Reads that complete with success but deliver nothing (the shim diverts
# them): verify must fail, also on the last block of a pass and at depth 1.
if [ -n "$blackhole" ]; then
	for qd in 1 4; do
		head -c 262144 /dev/zero >bh
		LD_PRELOAD=$blackhole ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 \
			"$perf" -w verify --passes 1 -b 64k -q $qd bh >out 2>err
		rc=$?
		if ! grep -q "read_blackhole: [1-9][0-9]* reads diverted" err; then
			not_ok "verify of reads that deliver nothing (qd $qd): the shim diverted no read"
		elif [ "$rc" -eq 1 ] && grep -q "verify: failed .* 4 mismatched blocks" out; then
			ok "verify of reads that deliver nothing fails (qd $qd)"
		else
			not_ok "verify of reads that deliver nothing (qd $qd): exit $rc, expected 1 with 4 mismatched blocks"
		fi
	done
else
	skipped "verify of reads that deliver nothing: no read_blackhole shim given"
fi

# --- Ctrl-C: stops, reports, removes the temporary file ---
"$perf" -t 60 --size 8m -q 4 >out 2>err &
pid=$!
for _ in $(seq 1 100); do
	grep -q . out 2>/dev/null && break
	ls aioblk-perf.* >/dev/null 2>&1 && break
	sleep 0.05
done
sleep 0.5
kill -INT "$pid"
wait "$pid"
rc=$?
if [ "$rc" -eq 130 ]; then ok "SIGINT: exit 130"; else not_ok "SIGINT: exit $rc, expected 130"; fi
expect "SIGINT: still reports" out "interrupted"
no_temp_left "SIGINT"

# --- I/O errors: a zram device that runs out of memory fails writes with EIO ---
if [ "$(id -u)" -ne 0 ] || [ ! -w /sys/class/zram-control/hot_add ]; then
	skipped "I/O error exits non-zero: needs root and zram"
else
	zram=$(cat /sys/class/zram-control/hot_add)
	if echo 1M >"/sys/block/zram$zram/mem_limit" && echo 64M >"/sys/block/zram$zram/disksize"; then
		run "I/O error exits non-zero" 1 -w randwrite -t 2 "/dev/zram$zram"
		expect "I/O error: reported" err "failed: Input/output error"
	else
		skipped "I/O error exits non-zero: could not set up zram$zram"
	fi
	if zram_remove "$zram"; then
		ok "zram$zram removed"
		zram=""
	else
		not_ok "zram$zram removed: still there after 5 s"
	fi
fi

echo "$pass passed, $fail failed, $skip skipped"
# Parsed by tests/skipped-cases.sh: skips inside a test meson reports as OK.
if [ "$skip" -gt 0 ]; then echo "SKIPPED-CASES: $skip of $((pass + fail + skip))"; fi
[ "$fail" -eq 0 ]
