#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# What tests make and must undo: loop devices, zram devices (zram0 is the
# machine's), mounts under /tmp and /var/tmp, nbdkit and nbdfuse processes,
# and aioblk-* entries in /tmp and /var/tmp.
#
#   tests/leftovers.sh snapshot FILE   record what is there now (before the suite)
#   tests/leftovers.sh check FILE      fail (exit 1) when anything is there
#                                      that FILE does not list, and name it
#
# CI runs alone on its machine, so its snapshot is (nearly) empty; on a
# shared machine the snapshot keeps other people's devices out of the
# verdict, although what they make during the run still shows up.
set -eu
mode=${1:-}
file=${2:-}
if [ -z "$file" ] || { [ "$mode" != snapshot ] && [ "$mode" != check ]; }; then
	echo "usage: leftovers.sh snapshot|check FILE" >&2
	exit 2
fi

list() {
	if command -v losetup >/dev/null 2>&1; then
		losetup --list --noheadings --output NAME,BACK-FILE 2>/dev/null |
			awk '{ print "loop device: " $0 }'
	fi
	for d in /sys/block/zram*; do
		[ -e "$d" ] || continue
		[ "${d##*/}" = zram0 ] && continue
		echo "zram device: /dev/${d##*/} (disksize $(cat "$d/disksize" 2>/dev/null || echo ?))"
	done
	awk '$2 ~ "^/(var/)?tmp/" { print "mount: " $2 " (" $3 ")" }' /proc/mounts
	for p in /proc/[0-9]*; do
		comm=$(cat "$p/comm" 2>/dev/null) || continue
		case $comm in
		nbdkit | nbdfuse)
			echo "process: ${p#/proc/} $(tr '\0' ' ' <"$p/cmdline" 2>/dev/null)"
			;;
		esac
	done
	for f in /tmp/aioblk-* /var/tmp/aioblk-*; do
		[ -e "$f" ] || continue
		echo "temporary: $f"
	done
}

case $mode in
snapshot)
	list | sort >"$file"
	echo "leftovers: $(wc -l <"$file") things there before the suite"
	;;
check)
	now=$(mktemp)
	trap 'rm -f "$now"' EXIT
	list | sort >"$now"
	new=$(comm -13 "$file" "$now")
	if [ -n "$new" ]; then
		echo "FAIL: left behind by the suite:"
		echo "$new" | sed 's/^/  /'
		exit 1
	fi
	echo "leftovers: none (loop devices, zram, mounts under /tmp and /var/tmp, nbdkit, aioblk-* temporaries)"
	;;
esac
