#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# fio's own verifier through the aioblk engine, --verify_fatal=1: regular
# files on ext4 and tmpfs, loop devices with 512- and 4096-byte sectors and a
# private zram; randrw with bsrange and bssplit up to 256k, iodepth 1 to 128,
# two jobs as threads and as processes, crc32c and md5, verify_backlog,
# fsync=N, and trims.
#
# Usage: fio_verify.sh PATH/TO/aioblk-fio.so   (root; exit 77 to skip)
set -uo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

size=48M
mount_tmpfs "$work/tmpfs" 256M || exit 1
zram_make 160M || { echo "FAIL: no private zram"; exit 1; }
mount_ext4 "$dev" "$work/ext4" || exit 1
zram_make $size || exit 1
z_raw=$dev
truncate -s $size "$work/tmpfs/loop512" "$work/tmpfs/loop4k"
loop_make "$work/tmpfs/loop512" 512 || exit 1
l512=$dev
loop_make "$work/tmpfs/loop4k" 4096 || exit 1
l4k=$dev

common=(--verify_fatal=1 --direct=1 --randrepeat=0 --norandommap=0)

# matrix TAG MIN_BS (--filename=X | --directory=D) : the jobs on one target.
matrix() {
	local tag=$1 b=$2 split split_args half
	local target=("$3")
	if [ "$b" = 512 ]; then
		split=512/20:4k/40:64k/30:256k/10
	else
		split=4k/50:16k/20:64k/20:256k/10
	fi
	# Two jobs: their own files in a directory, halves of a device.
	case $3 in
	--directory=*) target+=(--unlink=1); split_args=(--size=16M) ;;
	*) half=$((48 / 2))M; split_args=(--size="$half" --offset_increment="$half") ;;
	esac
	fio_ok "$tag-randrw-bsrange-qd1-crc32c" "${target[@]}" "${common[@]}" --size=$size --rw=randrw \
		--bsrange="$b"-256k --iodepth=1 --verify=crc32c
	fio_ok "$tag-randrw-bssplit-qd128-md5-backlog-fsync" "${target[@]}" "${common[@]}" --size=$size --rw=randrw \
		--bssplit="$split" --iodepth=128 --verify=md5 --verify_backlog=64 --fsync=16
	fio_ok "$tag-randwrite-threads2-qd32-crc32c-eventfd" "${target[@]}" "${common[@]}" "${split_args[@]}" \
		--rw=randwrite --bsrange="$b"-64k --iodepth=32 --verify=crc32c --thread --numjobs=2 \
		--aioblk_eventfd=1 --fdatasync=8
	fio_ok "$tag-randrw-procs2-qd8-md5-backlog" "${target[@]}" "${common[@]}" "${split_args[@]}" \
		--rw=randrw --bssplit="$split" --iodepth=8 --verify=md5 --verify_backlog=16 --numjobs=2
	fio_ok "$tag-trimwrite-crc32c" "${target[@]}" "${common[@]}" --size=$size --rw=trimwrite \
		--bsrange="$b"-64k --iodepth=16 --verify=crc32c
	fio_ok "$tag-randtrim" "${target[@]}" "${common[@]}" --size=$size --rw=randtrim --bsrange="$b"-256k --iodepth=4
}

# ext4 on a zram device: O_DIRECT in 4096-byte units.
matrix ext4 4096 --directory="$work/ext4"
matrix tmpfs 512 --directory="$work/tmpfs"
matrix loop512 512 --filename="$l512"
matrix loop4k 4096 --filename="$l4k"
matrix zram 4096 --filename="$z_raw"

# Buffered disks, the bounce buffers and a channel depth below the job's.
fio_ok ext4-buffered-randrw-md5 --directory="$work/ext4" --unlink=1 --verify_fatal=1 --size=$size --rw=randrw \
	--bsrange=512-128k --iodepth=16 --verify=md5 --aioblk_buffered=1
fio_ok zram-bounce-randrw-crc32c --filename="$z_raw" --verify_fatal=1 --direct=1 --size=$size --rw=randrw \
	--bs=4k --iomem_align=512 --iodepth=16 --verify=crc32c --aioblk_bounce_buffers=16
fio_ok loop512-qd64-channel8-nowait-crc32c --filename="$l512" --verify_fatal=1 --direct=1 --size=$size \
	--rw=randrw --bsrange=512-16k --iodepth=64 --verify=crc32c --aioblk_queue_depth=8 --aioblk_nowait=1

# Several files in one job: a channel each, opened and closed as fio rotates them.
fio_ok tmpfs-nrfiles3-openfiles1-crc32c --directory="$work/tmpfs" --unlink=1 --verify_fatal=1 --direct=1 \
	--nrfiles=3 --filesize=8M --openfiles=1 --file_service_type=random --rw=randrw --bsrange=512-64k \
	--iodepth=16 --verify=crc32c --aioblk_queue_depth=4

finish
