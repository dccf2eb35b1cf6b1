#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# A read-only export refuses writes with EPERM at the client and still
# reads: with nbdkit -r, with readonly=true, and for a file on a file system
# mounted read-only (as root) or without write permission (not root), which
# the plugin opens read-only by itself.
# The writer is fio's nbd engine (libnbd): it sees the export's read-only
# flag and fails the write with EPERM, as nbdkit would if it were sent.
. "$(dirname "$0")/common.sh"
need qemu-io nbdinfo fio
fio --enghelp=nbd >/dev/null 2>&1 || skip "this fio has no nbd engine"

head -c 1M /dev/zero | tr '\0' '\132' >"$tmp/disk" # 1 MiB of 0x5a
cp "$tmp/disk" "$tmp/orig"

# refused SERVER-ARGS...: nbdinfo says read-only, reads work, a write fails with EPERM.
refused() {
	local out
	out=$(nbdkit -U - "$@" --run 'nbdinfo "$uri"') || fail "nbdinfo: nbdkit $*"
	grep -q 'is_read_only: true' <<<"$out" || { echo "$out"; fail "not read-only: nbdkit $*"; }
	out=$(nbdkit -U - "$@" --run 'qemu-io -r -f raw "$uri" -c "read -P 0x5a 0 64k"' 2>&1)
	grep -q 'read 65536/65536' <<<"$out" || { echo "$out"; fail "read failed: nbdkit $*"; }
	out=$(nbdkit -U - "$@" --run 'fio --name=w --ioengine=nbd --uri="$uri" --rw=write --bs=4k --size=64k' 2>&1)
	grep -q 'err=1/.*error=Operation not permitted' <<<"$out" ||
		{ echo "$out"; fail "the write was not refused with EPERM: nbdkit $*"; }
}

refused -r "$plugin" file="$tmp/disk"
refused "$plugin" file="$tmp/disk" readonly=true
cmp "$tmp/disk" "$tmp/orig" || fail "a read-only export changed the file"

if [ "$(id -u)" -eq 0 ]; then
	mkdir "$tmp/mnt"
	mount -t tmpfs -o size=4m tmpfs "$tmp/mnt" || fail "cannot mount a tmpfs"
	on_exit "umount '$tmp/mnt'"
	cp "$tmp/disk" "$tmp/mnt/disk"
	mount -o remount,ro "$tmp/mnt" || fail "cannot remount the tmpfs read-only"
	refused "$plugin" file="$tmp/mnt/disk"
	echo "PASS: -r, readonly=true and a read-only file system refuse writes with EPERM"
else
	# Without root, a file without write permission is read-only too.
	chmod a-w "$tmp/disk"
	refused "$plugin" file="$tmp/disk"
	echo "PASS: -r, readonly=true and a file without write permission refuse writes with EPERM"
fi
