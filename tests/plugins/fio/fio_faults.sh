#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# What the aioblk engine must turn into fio errors (exit 1, with the error
# named), never into a pass or a crash: EIO from a zram device at its
# mem_limit and from a buffered file cut short under a running job, damage
# behind the engine's back that fio's verifier must see, misaligned block
# sizes on a device of 4096-byte sectors, unaligned memory without bounce
# buffers, and writes to a read-only disk.
#
# Usage: fio_faults.sh PATH/TO/aioblk-fio.so   (root; exit 77 to skip)
set -uo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

mount_tmpfs "$work/tmpfs" 64M || exit 1

# EIO: a private zram device that may store 1 MiB; fio's default buffers are
# random, so zram cannot compress them below the limit.
zram_make 64M 1M || { echo "FAIL: no private zram"; exit 1; }
z_full=$dev
fio_fails zram-mem_limit-eio 'Input/output error' --filename="$z_full" --direct=1 --rw=write --bs=64k \
	--size=16M --iodepth=8 --refill_buffers=1

# A read error: a buffered file shrinks under a running job (rate-limited so
# that it reads for 5 s); reads past the new end transfer nothing, which the
# library reports as EIO. The file is cut once fio holds it open (not
# earlier: fio would lay it out again at its full size).
shrinks=$work/tmpfs/shrinks
head -c 8M /dev/urandom >"$shrinks"
# Open in two looks 0.1 s apart: the job's open, not the engine's brief one
# for the file's size.
held_open() { [ -n "$(find /proc/[0-9]*/fd -lname "$shrinks" 2>/dev/null | head -1)" ]; }
(
	for _ in $(seq 1 400); do
		if held_open && sleep 0.1 && held_open; then
			sleep 0.2
			truncate -s 1M "$shrinks"
			exit 0
		fi
		sleep 0.05
	done
) &
fio_fails buffered-file-truncated-eio 'Input/output error' --filename="$shrinks" \
	--aioblk_buffered=1 --rw=read --bs=4k --size=8M --rate_iops=400
wait
rm -f "$shrinks"

# Damage the verifier must see: write with headers, overwrite 4 KiB behind the
# engine, read back through the engine.
zram_make 16M || exit 1
z=$dev
fio_ok zram-write-for-verify --filename="$z" --direct=1 --rw=write --bs=4k --size=8M --iodepth=16 \
	--verify=crc32c --do_verify=0
dd if=/dev/urandom of="$z" bs=4k seek=100 count=1 oflag=direct conv=notrunc status=none
fio_fails damaged 'verify: bad|verify type mismatch|crc32c: verify failed' --filename="$z" --direct=1 --rw=write \
	--bs=4k --size=8M --iodepth=16 --verify=crc32c --verify_only=1 --verify_fatal=1

# Unaligned memory (512 bytes past a page) on a disk of 4096-byte sectors:
# refused without bounce buffers; with them the same job passes.
fio_fails zram-unaligned-memory-refused 'Invalid argument' --filename="$z" --direct=1 --rw=randread \
	--bs=4k --size=8M --iodepth=4 --iomem_align=512 --number_ios=64
fio_ok zram-unaligned-memory-bounced --filename="$z" --direct=1 --rw=randread --bs=4k --size=8M \
	--iodepth=4 --iomem_align=512 --number_ios=64 --aioblk_bounce_buffers=4

# Block sizes below the sector size of a 4Kn device.
truncate -s 16M "$work/tmpfs/l4k"
loop_make "$work/tmpfs/l4k" 4096 || exit 1
l4k=$dev
fio_fails loop4k-bs512-read 'Invalid argument' --filename="$l4k" --direct=1 --rw=randread --bs=512 \
	--size=8M --iodepth=4 --number_ios=16
fio_fails loop4k-bs6k-write 'Invalid argument' --filename="$l4k" --direct=1 --rw=randwrite --bs=6k \
	--size=8M --iodepth=4 --number_ios=16
fio_fails loop4k-offset-misaligned 'Invalid argument' --filename="$l4k" --direct=1 --rw=read --bs=4k \
	--offset=512 --size=4M --iodepth=4 --number_ios=16

# A read-only disk (losetup -r): writes fail (the kernel lets the open succeed
# and refuses each write with EPERM), reads work.
truncate -s 16M "$work/tmpfs/ro"
loop_make "$work/tmpfs/ro" 512 -r || exit 1
ro=$dev
fio_fails loop-readonly-write 'Read-only|Permission denied|Operation not permitted' --filename="$ro" --direct=1 --rw=randwrite \
	--bs=4k --size=8M --iodepth=4 --number_ios=16
fio_ok loop-readonly-read --filename="$ro" --direct=1 --rw=randread --bs=4k --size=8M --iodepth=4 \
	--number_ios=256

finish
