#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# adv_nowait over a private zram and a loop device (AIOBLK_DISK_NOWAIT), with files.
# Root only (77 otherwise); undone on exit.
# usage: adv_nowait.sh BUILD_DIR
set -u
B=${1:?build dir}
[ "$(id -u)" = 0 ] || { echo "skip: needs root"; exit 77; }
S=$(mktemp -d /dev/shm/adv_nowait.XXXXXX)
L=""
Z=""
cleanup() {
	[ -n "$L" ] && losetup -d "$L" 2>/dev/null
	if [ -n "$Z" ]; then
		echo 1 > /sys/block/zram$Z/reset 2>/dev/null
		echo "$Z" > /sys/class/zram-control/hot_remove 2>/dev/null
	fi
	rm -rf "$S"
}
trap cleanup EXIT INT TERM
truncate -s 16M "$S/loop.img"
L=$(losetup -f --show --direct-io=on "$S/loop.img") || exit 1
Z=$(cat /sys/class/zram-control/hot_add) || { Z=""; exit 1; }
echo 16M > /sys/block/zram$Z/disksize || exit 1
rc=0
ADV_DIR=$S "$B/adv/adv_nowait" "/dev/zram$Z" "$L" || rc=1
echo "== the reactor part alone, on devices that meet RWF_NOWAIT for the first time"
echo 1 > /sys/block/zram$Z/reset; echo 16M > /sys/block/zram$Z/disksize || exit 1
ADV_NOWAIT_REACTOR_ONLY=1 ADV_DIR=$S "$B/adv/adv_nowait" "/dev/zram$Z" "$L" || rc=1
exit $rc
