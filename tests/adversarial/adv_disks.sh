#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Odd disks in one SHARED_CONTEXT group: runs adv_disks over a tmpfs file,
# an O_DIRECT ext4 file, a buffered file, a 4096-byte-sector loop device, a
# private zram device, a read-only disk, a tiny disk, a file another process
# writes, and a loop device whose queue/nr_requests is lowered to 4 (kept
# saturated, with 8 MiB writes), next to a file disk that must keep flowing.
# Root only (77 otherwise). Undoes everything on exit.
# usage: adv_disks.sh BUILD_DIR [seconds]
set -u
B=${1:?build dir}
SECS=${2:-6}
PROG=$B/adv/adv_disks
[ "$(id -u)" = 0 ] || { echo "skip: needs root"; exit 77; }
[ -x "$PROG" ] || { echo "missing $PROG"; exit 1; }
W=$(mktemp -d /tmp/adv_disks.XXXXXX)
S=$(mktemp -d /dev/shm/adv_disks.XXXXXX)
LOOPS=""
Z=""
NRQ=""
cleanup() {
	if [ -n "$NRQ" ]; then echo "$NRQ_OLD" > "$NRQ" 2>/dev/null; fi
	for l in $LOOPS; do losetup -d "$l" 2>/dev/null; done
	if [ -n "$Z" ]; then
		echo 1 > /sys/block/zram$Z/reset 2>/dev/null
		echo "$Z" > /sys/class/zram-control/hot_remove 2>/dev/null
	fi
	rm -rf "$W" "$S"
}
trap cleanup EXIT INT TERM

truncate -s 32M "$S/tmpfs.img"
truncate -s 32M "$W/ext4.img"
truncate -s 16M "$W/buffered.img"
truncate -s 32M "$S/loop4k.img"
truncate -s 64M "$S/sat.img"
truncate -s 8M "$S/file-next-to-sat.img"
head -c 4M /dev/urandom > "$S/ro.img"
truncate -s 4096 "$S/tiny.img"
truncate -s 8M "$S/shared-writer.img"

L4K=$(losetup -f --show -b 4096 --direct-io=on "$S/loop4k.img") || exit 1
LOOPS="$L4K"
LSAT=$(losetup -f --show --direct-io=on "$S/sat.img") || exit 1
LOOPS="$LOOPS $LSAT"
NRQ=/sys/block/$(basename "$LSAT")/queue/nr_requests
NRQ_OLD=$(cat "$NRQ")
echo 4 > "$NRQ" || { echo "cannot set nr_requests"; exit 1; }
echo "$LSAT nr_requests $(cat "$NRQ"), max_sectors_kb $(cat /sys/block/$(basename "$LSAT")/queue/max_sectors_kb)"
Z=$(cat /sys/class/zram-control/hot_add) || { Z=""; exit 1; }
echo 64M > /sys/block/zram$Z/disksize || exit 1

rc=0
echo "== all odd disks, busy-poll"
"$PROG" -t "$SECS" "$S/tmpfs.img" "$W/ext4.img" "$W/buffered.img,buf" "$L4K" "/dev/zram$Z" \
	"$S/ro.img,ro" "$S/tiny.img" "$S/shared-writer.img,ext" || rc=1
echo "== all odd disks, eventfd"
"$PROG" -e -t "$SECS" "$S/tmpfs.img" "$W/ext4.img" "$W/buffered.img,buf" "$L4K" "/dev/zram$Z" \
	"$S/ro.img,ro" "$S/tiny.img" "$S/shared-writer.img,ext" || rc=1
echo "== saturated loop (nr_requests 4) next to a file, busy-poll"
"$PROG" -t "$SECS" "$LSAT,sat,big" "$S/file-next-to-sat.img" || rc=1
echo "== saturated loop (nr_requests 4) next to a file, eventfd"
"$PROG" -e -t "$SECS" "$LSAT,sat,big" "$S/file-next-to-sat.img" || rc=1
exit $rc
