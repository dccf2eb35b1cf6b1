#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# nbdinfo shows the native flags; qemu-io writes unaligned and sub-block
# ranges, FUA writes, write -z, discard and flush, and reads each back with
# -P. It runs twice: as qemu sends it (qemu honours the advertised minimum
# block size and does its own read-modify-write), and through the
# blocksize-policy filter advertising a minimum of 1, so that the 1000
# bytes at offset 1 reach the plugin as they are and its own bounce buffers
# and read-modify-write do the work.
. "$(dirname "$0")/common.sh"
need qemu-io nbdinfo

truncate -s 16M "$tmp/disk"
info=$(nbdkit -U - "$plugin" file="$tmp/disk" block-size=4096 --run 'nbdinfo "$uri"') ||
	fail "nbdinfo failed"
for want in 'can_fua: true' 'can_flush: true' 'can_trim: true' 'can_zero: true' \
	'can_fast_zero: true' 'can_multi_conn: true' 'is_read_only: false' \
	'block_size_minimum: 4096' 'block_size_preferred: 4096' 'export-size: 16777216'; do
	grep -q "$want" <<<"$info" || { echo "$info"; fail "nbdinfo does not show '$want'"; }
done

# write 1000 bytes at 1, FUA writes, zeroes inside a pattern, a discard, a flush.
cmds=(
	-c "write -P 0x5a 1 1000" -c "read -P 0x5a 1 1000" -c "read -P 0 0 1" -c "read -P 0 1001 7191"
	-c "write -f -P 0x11 64k 64k" -c "read -P 0x11 64k 64k"
	-c "write -f -P 0x12 4097 100" -c "read -P 0x12 4097 100" -c "read -P 0 4197 3995"
	-c "write -P 0x22 1M 1M" -c "write -z 1048579 200000" -c "read -P 0x22 1M 3"
	-c "read -P 0 1048579 200000" -c "read -P 0x22 1248579 848573"
	-c "write -f -z 2M 64k" -c "read -P 0 2M 64k"
	-c "write -P 0x44 3M 64k" -c "write -z -n 3M 64k" -c "read -P 0 3M 64k"
	-c "write -P 0x33 4M 1M" -c "discard 4M 1M" -c "read -P 0 4M 1M"
	-c "flush"
)
run_qemu() {
	local out
	out=$(nbdkit -U - "$@" --run "qemu-io -f raw \"\$uri\" $(printf '%q ' "${cmds[@]}")" 2>&1)
	if [ $? -ne 0 ] || grep -qi 'fail\|error' <<<"$out"; then
		echo "$out"
		fail "qemu-io through: nbdkit $*"
	fi
}
run_qemu "$plugin" file="$tmp/disk" block-size=4096
truncate -s 0 "$tmp/disk" && truncate -s 16M "$tmp/disk"
run_qemu --filter=blocksize-policy "$plugin" file="$tmp/disk" block-size=4096 blocksize-minimum=1

# A fast zero of part of a block would be a read-modify-write: refused at once.
out=$(nbdkit -U - --filter=blocksize-policy "$plugin" file="$tmp/disk" block-size=4096 blocksize-minimum=1 \
	--run 'qemu-io -f raw "$uri" -c "write -z -n 3 100"' 2>&1)
grep -q 'Operation not supported' <<<"$out" || { echo "$out"; fail "a sub-block fast zero was not refused with ENOTSUP"; }

# What the plugin wrote is in the file itself.
out=$(qemu-io -f raw -r "$tmp/disk" -c "read -P 0x5a 1 1000" -c "read -P 0 0 1" -c "read -P 0x12 4097 100" \
	-c "read -P 0 1048579 200000" -c "read -P 0x22 1248579 848573" -c "read -P 0 3M 64k" -c "read -P 0 4M 1M" 2>&1)
if [ $? -ne 0 ] || grep -qi 'fail\|error' <<<"$out"; then
	echo "$out"
	fail "the backing file does not hold what was written"
fi
echo "PASS: flags shown by nbdinfo; unaligned, FUA, zero, discard and flush read back, with and without qemu's alignment"
