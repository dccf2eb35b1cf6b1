#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# fio's nbd engine writes and verifies (crc32c) with 4 jobs, 4k-128k
# random block sizes, 16 requests in flight each, each job in its own 16 MiB.
. "$(dirname "$0")/common.sh"
need fio
fio --enghelp=nbd >/dev/null 2>&1 || skip "this fio has no nbd engine"

truncate -s 64M "$tmp/disk"
out=$tmp/fio.out
nbdkit -U - "$plugin" file="$tmp/disk" --run '
	fio --name=verify --ioengine=nbd --uri="$uri" --rw=randwrite \
		--bsrange=4k-128k --iodepth=16 --numjobs=4 --size=16M --offset_increment=16M \
		--verify=crc32c --verify_fatal=1 --do_verify=1 --verify_state_save=0 --norandommap=0 \
		--group_reporting --output='"$out"'' || { cat "$out"; fail "fio failed"; }
grep -q 'err= 0' "$out" || { cat "$out"; fail "fio reported an error"; }
echo "PASS: fio nbd engine, 4 jobs x QD16, 4k-128k, verify=crc32c"
