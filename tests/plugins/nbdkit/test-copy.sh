#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# nbdcopy --connections=4 copies 64 MiB of random data into the export;
# qemu-img compares source and export, and the backing file equals the
# source byte for byte.
. "$(dirname "$0")/common.sh"
need nbdcopy qemu-img cmp

random_file "$tmp/src" 64
truncate -s 64M "$tmp/disk"
nbdkit -U - "$plugin" file="$tmp/disk" --run '
	nbdcopy --connections=4 --requests=16 "'"$tmp"'/src" "$uri" &&
	qemu-img compare -f raw -F raw "'"$tmp"'/src" "$uri"' || fail "nbdcopy or qemu-img compare failed"
cmp "$tmp/src" "$tmp/disk" || fail "the backing file differs from the source"
echo "PASS: 64 MiB copied with 4 connections, identical through NBD and on disk"
