#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Run L5 of BENCHMARKS.md: bench/nbd.sh on a private loop device over a 1 GiB
# file in /dev/shm, filled with random data, detached on exit (root).
# Arguments go to bench/nbd.sh; the baseline plugin is /tmp/plugin-before.so.
set -e
img=/dev/shm/nbd-loop-bench.img
truncate -s 1G $img
L=$(losetup -f --show $img)
trap 'losetup -d $L; rm -f $img' EXIT
dd if=/dev/urandom of=$L bs=1M count=1024 oflag=direct status=none
echo "loop device $L, nr_requests $(cat /sys/block/$(basename $L)/queue/nr_requests)"
cd "$(dirname "$0")/../../.."
bench/nbd.sh --device $L --plugin build-rel/plugins/nbdkit/nbdkit-aioblk-plugin.so --baseline /tmp/plugin-before.so "$@"
