#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# adv_qlimit_mt on a loop device whose queue/nr_requests is lowered to 4.
# Root only (77 otherwise); the loop device is detached on exit.
# usage: adv_qlimit.sh BUILD_DIR [seconds]
set -u
B=${1:?build dir}
SECS=${2:-8}
[ "$(id -u)" = 0 ] || { echo "skip: needs root"; exit 77; }
S=$(mktemp -d /dev/shm/adv_qlimit.XXXXXX)
L=""
cleanup() {
	[ -n "$L" ] && losetup -d "$L" 2>/dev/null
	rm -rf "$S"
}
trap cleanup EXIT INT TERM
truncate -s 128M "$S/dev.img"
L=$(losetup -f --show --direct-io=on "$S/dev.img") || exit 1
echo 4 > /sys/block/$(basename "$L")/queue/nr_requests || exit 1
ADV_DIR=$S "$B/adv/adv_qlimit_mt" -t "$SECS" "$L"
