#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# nbdcopy --connections=4 copies 64 MiB of random data into the export;
# qemu-img compares source and export, and the backing file equals the
# source byte for byte.
. "$(dirname "$0")/common.sh"
need nbdcopy qemu-img cmp

random_file "$tmp/src" 64
truncate -s 64M "$tmp/disk"
nbdkit -v -U - "$plugin" file="$tmp/disk" 2>"$tmp/nbdkit.log" --run '
	nbdcopy --connections=4 --requests=16 "'"$tmp"'/src" "$uri" &&
	qemu-img compare -f raw -F raw "'"$tmp"'/src" "$uri"' || { tail -20 "$tmp/nbdkit.log"; fail "nbdcopy or qemu-img compare failed"; }
cmp "$tmp/src" "$tmp/disk" || fail "the backing file differs from the source"
# Every worker thread that made a channel destroyed it when it exited.
made=$(grep -c "worker thread's channel made" "$tmp/nbdkit.log")
destroyed=$(grep -c "worker thread's channel destroyed" "$tmp/nbdkit.log")
[ "$made" -ge 4 ] || fail "only $made worker threads made a channel"
[ "$made" -eq "$destroyed" ] || fail "$made worker channels made, $destroyed destroyed"
echo "PASS: 64 MiB copied with 4 connections, identical through NBD and on disk; $made worker channels made and destroyed"
