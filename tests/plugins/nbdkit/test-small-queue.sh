#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# A device whose requests complete after io_submit returns, with a queue
# smaller than what the clients keep in flight: a loop device (private,
# losetup -f) over a file, its nr_requests lowered to 16 where the kernel
# allows it. fio's nbd engine writes and verifies (crc32c) with 4 jobs x 16
# requests in flight, so io_submit sleeps for free device requests and the
# worker threads of wait=auto sleep in io_getevents; then the same
# with wait=eventfd and wait=poll.
. "$(dirname "$0")/common.sh"
need_root
need fio losetup
fio --enghelp=nbd >/dev/null 2>&1 || skip "this fio has no nbd engine"

truncate -s 64M "$tmp/backing" || fail "cannot make the backing file"
dev=$(losetup -f --show "$tmp/backing") || skip "losetup failed (no loop devices?)"
on_exit "losetup -d $dev"
nr=/sys/block/$(basename "$dev")/queue/nr_requests
[ -w "$nr" ] && echo 16 >"$nr" 2>/dev/null
depth=$(cat "$nr" 2>/dev/null || echo "?")

out=$tmp/fio.out
for wait in auto eventfd poll; do
	nbdkit -U - "$plugin" file="$dev" wait=$wait --run '
		fio --name=verify --ioengine=nbd --uri="$uri" --rw=randwrite \
			--bsrange=4k-64k --iodepth=16 --numjobs=4 --size=16M --offset_increment=16M \
			--verify=crc32c --verify_fatal=1 --do_verify=1 --verify_state_save=0 --norandommap=0 \
			--group_reporting --output='"$out"'' || { cat "$out"; fail "fio failed (wait=$wait)"; }
	grep -q 'err= 0' "$out" || { cat "$out"; fail "fio reported an error (wait=$wait)"; }
done
echo "PASS: loop device (nr_requests $depth), 4 jobs x QD16, verify=crc32c, wait=auto, eventfd, poll"
