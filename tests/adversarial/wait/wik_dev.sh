#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# WAIT_IN_KERNEL groups on real devices: wik_mix over a 512-byte-sector loop
# device, a tmpfs file and an O_DIRECT ext4 file in one run; over a
# 4096-byte-sector loop and a private zram device, also with
# AIOBLK_DISK_NOWAIT (zram refuses RWF_NOWAIT at io_submit; the loop's
# queue of 4 makes NOWAIT reads fail -EAGAIN); buffered files; a loop
# device detached (losetup -d: auto-clear) while wik_mix runs on it; and
# wik_held (defect 1 on one thread, loop with nr_requests 4); wik_loss (a
# loop device whose capacity drops to 0 under load), plain and
# shared. Root only (77 otherwise); everything is undone on exit.
# usage: wik_dev.sh BUILD_DIR [seconds]
set -u
B=${1:?build dir}
SECS=${2:-2}
P=$B/adv-wait
[ "$(id -u)" = 0 ] || { echo "skip: needs root"; exit 77; }
command -v losetup >/dev/null || { echo "skip: no losetup"; exit 77; }
W=$(mktemp -d /tmp/wik_dev.XXXXXX)
S=$(mktemp -d /dev/shm/wik_dev.XXXXXX)
LOOPS=""
Z=""
cleanup() {
	for l in $LOOPS; do losetup -d "$l" 2>/dev/null; done
	if [ -n "$Z" ]; then
		echo 1 > /sys/block/zram$Z/reset 2>/dev/null
		echo "$Z" > /sys/class/zram-control/hot_remove 2>/dev/null
	fi
	rm -rf "$W" "$S"
}
trap cleanup EXIT INT TERM
newloop() { # VAR file [losetup options]: attaches, sets VAR to the device
	v=$1; f=$2; shift 2
	l=$(losetup -f --show "$@" "$f") || return 1
	LOOPS="$LOOPS $l"
	eval "$v=$l"
}
for f in l512 l4k ldet loss0 loss1; do truncate -s 32M "$S/$f.img"; done
truncate -s 32M "$S/tmpfs.img"
head -c 32M /dev/zero > "$W/ext4.img"
truncate -s 32M "$W/buf.img"
newloop L512 "$S/l512.img" --direct-io=on || exit 1
newloop L4K "$S/l4k.img" -b 4096 --direct-io=on || exit 1
newloop LDET "$S/ldet.img" --direct-io=on || exit 1
newloop LOSS0 "$S/loss0.img" --direct-io=on || exit 1
newloop LOSS1 "$S/loss1.img" || exit 1
Z=$(cat /sys/class/zram-control/hot_add) || { Z=""; exit 1; }
echo 64M > /sys/block/zram$Z/disksize || exit 1

rc=0
run() {
	echo "== $*"
	"$@" || { echo "FAILED: $*"; rc=1; }
}
run "$P/wik_mix" -t "$SECS" -c 2 "$L512" "$S/tmpfs.img" "$W/ext4.img"
run "$P/wik_mix" -t "$SECS" -r -n 5 -q 4 "$L4K" "/dev/zram$Z"
run "$P/wik_mix" -t "$SECS" -B "$W/buf.img" "$S/tmpfs.img"
run "$P/wik_mix" -t "$SECS" -N -q 16 "$L4K" "/dev/zram$Z"
echo "== wik_mix on $LDET, detached (losetup -d) after 0.5 s"
"$P/wik_mix" -t "$SECS" "$LDET" "$S/tmpfs.img" &
MP=$!
sleep 0.5
losetup -d "$LDET" && echo "detached $LDET (auto-clear while open)"
wait $MP || { echo "FAILED: wik_mix on a detached loop"; rc=1; }
echo 4 > /sys/block/$(basename "$L512")/queue/nr_requests
run "$P/wik_held" "$L512"
run "$P/wik_loss" "$LOSS0" "$S/loss0.img" 0
run "$P/wik_loss" "$LOSS1" "$S/loss1.img" 1
exit $rc
