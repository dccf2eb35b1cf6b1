#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The parameters: bad values and contradictions stop nbdkit with a message;
# block-size=, buffered=true, queue-depth=1 (every bounce slot waits for a
# free request slot), wait=eventfd and wait=poll serve data that reads back
# as written; as root, direct=required fails on a file system without
# O_DIRECT (ramfs) and nowait=true works on a zram device.
. "$(dirname "$0")/common.sh"
need nbdcopy qemu-img nbdinfo cmp

truncate -s 8M "$tmp/disk"
random_file "$tmp/src" 8

# refused ARGS... -- MESSAGE: nbdkit does not start, and says MESSAGE.
refused() {
	local args=() msg out
	while [ "$1" != -- ]; do args+=("$1"); shift; done
	msg=$2
	if out=$(nbdkit -U - "$plugin" "${args[@]}" --run true 2>&1); then
		fail "nbdkit started with ${args[*]}"
	fi
	grep -q -- "$msg" <<<"$out" || { echo "$out"; fail "no '$msg' for ${args[*]}"; }
}
refused -- "file=<FILENAME> parameter"
refused file="$tmp/disk" block-size=1000 -- "power of two"
refused file="$tmp/disk" queue-depth=0 -- "from 1 to 65536"
refused file="$tmp/disk" buffered=true direct=required -- "contradict"
refused file="$tmp/disk" direct=maybe -- "expected 'auto' or 'required'"
refused file="$tmp/disk" wait=often -- "expected 'auto', 'eventfd' or 'poll'"
refused file="$tmp/disk" colour=blue -- "unknown parameter 'colour'"
refused file="$tmp/nonexistent" -- "No such file or directory"

# copied ARGS...: the source copied in through an export with ARGS reads back.
copied() {
	truncate -s 0 "$tmp/disk" && truncate -s 8M "$tmp/disk"
	nbdkit -U - "$plugin" file="$tmp/disk" "$@" --run '
		nbdcopy --connections=2 "'"$tmp"'/src" "$uri" &&
		qemu-img compare -f raw -F raw "'"$tmp"'/src" "$uri"' >"$tmp/out" 2>&1 ||
		{ cat "$tmp/out"; fail "copy through nbdkit $*"; }
	cmp "$tmp/src" "$tmp/disk" || fail "the file differs after a copy with $*"
}
copied block-size=4096
copied buffered=true
copied queue-depth=1
copied wait=auto
copied wait=eventfd
copied wait=poll
copied direct=required
out=$(nbdkit -U - "$plugin" file="$tmp/disk" block-size=65536 --run 'nbdinfo "$uri"')
grep -q 'block_size_minimum: 65536' <<<"$out" || { echo "$out"; fail "block-size=65536 not advertised"; }

if [ "$(id -u)" -eq 0 ]; then
	mkdir "$tmp/ramfs"
	mount -t ramfs ramfs "$tmp/ramfs" || fail "cannot mount a ramfs"
	on_exit "umount '$tmp/ramfs'"
	truncate -s 1M "$tmp/ramfs/disk"
	refused file="$tmp/ramfs/disk" direct=required -- "Invalid argument"
	zram_add 8M
	dd if="$tmp/src" of=/dev/zram$zram bs=1M oflag=direct status=none || fail "cannot fill /dev/zram$zram"
	out=$(nbdkit -U - "$plugin" file=/dev/zram$zram nowait=true --run \
		'qemu-img compare -f raw -F raw "'"$tmp"'/src" "$uri"' 2>&1) || { echo "$out"; fail "nowait=true on zram"; }
	echo "PASS: bad parameters refused; block-size, buffered, queue-depth=1, wait=, direct=required, nowait serve data"
else
	echo "PASS: bad parameters refused; block-size, buffered, queue-depth=1, wait=, direct=required serve data (not root: ramfs and zram cases skipped)"
fi
