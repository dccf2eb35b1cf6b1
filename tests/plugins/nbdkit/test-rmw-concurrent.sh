#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Eight clients write different 512-byte pieces of the same 4 KiB blocks at
# the same time (job N writes bytes N*512..N*512+511 of every block), so
# that every write is a read-modify-write of a block that the seven others
# are modifying too; then each verifies its pieces (crc32c). A
# read-modify-write that is not serialised per block loses pieces. The
# blocksize-policy filter advertises a minimum of 1 so that libnbd sends
# the 512-byte writes as they are.
. "$(dirname "$0")/common.sh"
need fio
fio --enghelp=nbd >/dev/null 2>&1 || skip "this fio has no nbd engine"

truncate -s 8M "$tmp/disk"
out=$tmp/fio.out
nbdkit -U - --filter=blocksize-policy "$plugin" file="$tmp/disk" block-size=4096 blocksize-minimum=1 --run '
	fio --name=pieces --ioengine=nbd --uri="$uri" --rw=write:3584 --bs=512 --iodepth=4 \
		--numjobs=8 --offset_increment=512 --size=4M \
		--verify=crc32c --verify_fatal=1 --do_verify=1 --verify_state_save=0 \
		--group_reporting --output='"$out"'' || { cat "$out"; fail "fio failed"; }
grep -q 'err= 0' "$out" || { cat "$out"; fail "fio reported an error"; }
echo "PASS: 8 clients modifying the same blocks concurrently lose nothing"
