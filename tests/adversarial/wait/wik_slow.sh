#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# A slow block device (loop over an nbdkit memory export with the delay
# filter, exposed by nbdfuse; queue/nr_requests 4) next to a tmpfs
# file (its requests complete inside io_submit), for wik_slow. Root, nbdkit and nbdfuse needed (77 otherwise);
# everything is undone on exit.
# usage: wik_slow.sh BUILD_DIR [delay_ms]
set -u
B=${1:?build dir}
D=${2:-40}
[ "$(id -u)" = 0 ] || { echo "skip: needs root"; exit 77; }
for t in nbdkit nbdfuse fusermount3 losetup; do
	command -v $t >/dev/null || { echo "skip: no $t"; exit 77; }
done
S=$(mktemp -d /dev/shm/wik_slow.XXXXXX)
E=$(mktemp -d /tmp/wik_slow.XXXXXX)
mkdir "$S/mnt"
L=""
FPID=""
cleanup() {
	[ -n "$L" ] && losetup -d "$L" 2>/dev/null
	fusermount3 -u "$S/mnt" 2>/dev/null
	[ -n "$FPID" ] && kill "$FPID" 2>/dev/null && wait "$FPID" 2>/dev/null
	[ -f "$S/nbdkit.pid" ] && kill "$(cat "$S/nbdkit.pid")" 2>/dev/null
	sleep 0.2
	rm -rf "$S" "$E"
}
trap cleanup EXIT INT TERM
nbdkit -U "$S/sock" -P "$S/nbdkit.pid" --filter=delay memory 64M delay-read=${D}ms delay-write=${D}ms delay-zero=${D}ms delay-trim=${D}ms || exit 1
i=0; while [ ! -S "$S/sock" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
nbdfuse "$S/mnt/nbd" --unix "$S/sock" &
FPID=$!
i=0; while [ ! -f "$S/mnt/nbd" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
L=$(losetup -f --show --direct-io=on "$S/mnt/nbd") || exit 1
echo 4 > /sys/block/$(basename "$L")/queue/nr_requests || exit 1
head -c 8M /dev/zero > "$S/fast.img"
"$B/adv-wait/wik_slow" "$L" "$S/fast.img" "$D"
