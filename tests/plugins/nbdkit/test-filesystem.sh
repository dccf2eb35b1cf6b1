#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# A real file system through the kernel. This kernel has no nbd driver, so
# nbdfuse exposes the export as a file and losetup makes a block device of
# it: mkfs.ext4, mount, copy a tree, remount read-only, check md5sums, and
# e2fsck -fn must find it clean. nbdkit runs as a daemon here (it forks
# after get_ready), which the other tests do not.
. "$(dirname "$0")/common.sh"
need_root
need nbdfuse fusermount3 losetup mkfs.ext4 e2fsck md5sum mount umount
[ -e /dev/fuse ] || skip "no /dev/fuse"

truncate -s 256M "$tmp/disk"
sock=$tmp/nbd.sock
nbdkit -P "$tmp/nbdkit.pid" -U "$sock" "$plugin" file="$tmp/disk" || fail "nbdkit did not start"
on_exit "kill \$(cat '$tmp/nbdkit.pid')"
wait_for "$sock"

mkdir "$tmp/fuse" "$tmp/mnt"
# nbdfuse stays in the foreground.
nbdfuse "$tmp/fuse/nbd" --unix "$sock" &
fuse_pid=$!
on_exit "fusermount3 -u '$tmp/fuse'; kill $fuse_pid; wait $fuse_pid"
wait_for "$tmp/fuse/nbd"

dev=$(losetup -f --show "$tmp/fuse/nbd") || fail "losetup failed"
on_exit "losetup -d $dev"
mkfs.ext4 -q -F "$dev" || fail "mkfs.ext4 failed"
mount "$dev" "$tmp/mnt" || fail "mount failed"
on_exit "umount '$tmp/mnt'"

# A tree with many small files and some large ones.
src=/usr/include
cp -a "$src" "$tmp/mnt/tree" || fail "copying $src failed"
head -c 8M /dev/urandom >"$tmp/mnt/tree/random.bin"
(cd "$tmp/mnt/tree" && find . -type f -print0 | sort -z | xargs -0 md5sum) >"$tmp/sums" || fail "md5sum failed"
sync
mount -o remount,ro "$tmp/mnt" || fail "remount read-only failed"
echo 3 >/proc/sys/vm/drop_caches
(cd "$tmp/mnt/tree" && md5sum --quiet -c "$tmp/sums") || fail "md5sums differ after remounting read-only"
umount "$tmp/mnt" || fail "umount failed"
e2fsck -fn "$dev" >"$tmp/fsck.out" 2>&1 || { cat "$tmp/fsck.out"; fail "e2fsck -fn found problems"; }
n=$(wc -l <"$tmp/sums")
echo "PASS: ext4 through nbdfuse + loop: $n files copied, md5sums match read-only, e2fsck clean"
