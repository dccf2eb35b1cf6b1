#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Faults of the real kernel reach the NBD client with their errno: ENOSPC
# from a file on a 1 MiB tmpfs, EIO from a private zram device whose
# mem_limit stops incompressible writes after 1 MiB.
. "$(dirname "$0")/common.sh"
need_root
need qemu-io

random_file "$tmp/random" 4

# ENOSPC: an 8 MiB sparse file on a 1 MiB tmpfs.
mkdir "$tmp/mnt"
mount -t tmpfs -o size=1m tmpfs "$tmp/mnt" || fail "cannot mount a tmpfs"
on_exit "umount '$tmp/mnt'"
truncate -s 8M "$tmp/mnt/disk"
out=$(nbdkit -U - "$plugin" file="$tmp/mnt/disk" --run \
	'qemu-io -f raw "$uri" -c "write -s '"$tmp"'/random 0 4M"' 2>&1)
grep -q 'No space left on device' <<<"$out" || { echo "$out"; fail "a full tmpfs did not give ENOSPC at the client"; }

# EIO: incompressible data past the zram device's 1 MiB mem_limit.
zram_add 16M; z=$zram
echo 1M >/sys/block/zram$z/mem_limit || fail "cannot set mem_limit"
out=$(nbdkit -U - "$plugin" file=/dev/zram$z --run \
	'qemu-io -f raw "$uri" -c "write -s '"$tmp"'/random 0 4M"' 2>&1)
grep -q 'Input/output error' <<<"$out" || { echo "$out"; fail "zram over its mem_limit did not give EIO at the client"; }
# A file system that cannot punch holes (ramfs, buffered: no O_DIRECT
# either): a trim is advice, so the discard succeeds and the data stays.
mkdir "$tmp/ramfs"
mount -t ramfs ramfs "$tmp/ramfs" || fail "cannot mount a ramfs"
on_exit "umount '$tmp/ramfs'"
head -c 1M /dev/zero | tr '\0' '\132' >"$tmp/ramfs/disk"
out=$(nbdkit -U - "$plugin" file="$tmp/ramfs/disk" --run \
	'qemu-io -f raw "$uri" -c "discard 0 64k" -c "read -P 0x5a 64k 64k" -c "write -z 128k 4k" -c "read -P 0 128k 4k"' 2>&1)
if [ $? -ne 0 ] || grep -qi 'fail\|error' <<<"$out"; then
	echo "$out"
	fail "discard or zero on ramfs failed"
fi
echo "PASS: ENOSPC (tmpfs) and EIO (zram mem_limit) reach the client; trim on ramfs is harmless"
