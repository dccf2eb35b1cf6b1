#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The Debian packages, end to end: build them from the source tree
# (dpkg-buildpackage -us -uc -b), check them with lintian (errors and
# warnings fail; justified ones are overridden in debian/), install them
# with apt into a fresh, minimal Debian 12 root made by mmdebstrap, and
# there build examples/hello.c with pkg-config alone and run it and
# `aioblk-perf --runtime 1` (tests/packaging/in-root.sh).
#
# Usage: tests/packaging/deb.sh            (root; exit 77 otherwise)
# DEB_BUILD_OPTIONS is passed on: CI sets nocheck, because the suite has
# already run on the same tree; without it dh_auto_test runs the suite.
# AIOBLK_DEB_MIRROR overrides the Debian mirror (default: mmdebstrap's).
# Everything it makes lives in one temporary directory: mmdebstrap's
# chroot (format null: removed by mmdebstrap) and its mounts are undone on
# every exit, also on SIGINT/SIGTERM.
set -euo pipefail

src=$(cd "$(dirname "$0")/../.." && pwd)

if [ "$(id -u)" -ne 0 ]; then
	echo "SKIP: needs root (mmdebstrap's root mode, chroot)"
	exit 77
fi
for tool in dpkg-buildpackage dh lintian mmdebstrap; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "SKIP: $tool not found (apt-get install dpkg-dev debhelper lintian mmdebstrap)"
		exit 77
	fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/aioblk-deb.XXXXXX")
child=""
cleanup() {
	local rc=$? m
	trap - EXIT INT TERM
	if [ -n "$child" ] && kill -0 "$child" 2>/dev/null; then
		echo "deb.sh: stopping $child and cleaning up" >&2
		kill -TERM "$child" 2>/dev/null || true
		wait "$child" 2>/dev/null || true
	fi
	# mmdebstrap unmounts what it mounted; if it was killed, do it here,
	# deepest first, before anything is removed.
	awk -v t="$tmp/" 'index($2, t) == 1 { print $2 }' /proc/mounts | sort -r |
		while read -r m; do umount -l "$m" || echo "deb.sh: could not unmount $m" >&2; done
	if awk -v t="$tmp/" 'index($2, t) == 1 { f = 1 } END { exit !f }' /proc/mounts; then
		echo "deb.sh: mounts left under $tmp; not removing it" >&2
		exit 1
	fi
	rm -rf --one-file-system "$tmp"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# run CMD...: in the background, so that a signal reaches the trap at once.
run() {
	"$@" &
	child=$!
	wait "$child"
	child=""
}
t0=$(date +%s)
phase() { printf 'deb.sh: %s (%ds)\n' "$1" $(($(date +%s) - t0)); }

# A copy of the tree without build directories: what a clean clone holds.
mkdir "$tmp/src" "$tmp/src/aioblk"
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
	git -C "$src" ls-files -z --cached --others --exclude-standard |
		(cd "$src" && tar --null -T - -cf -) | tar -xf - -C "$tmp/src/aioblk"
else
	tar -C "$src" --exclude='./build*' --exclude='./obj-*' -cf - . | tar -xf - -C "$tmp/src/aioblk"
fi

phase "dpkg-buildpackage -us -uc -b (DEB_BUILD_OPTIONS=${DEB_BUILD_OPTIONS:-})"
if ! (cd "$tmp/src/aioblk" && run dpkg-buildpackage -us -uc -b >"$tmp/build.log" 2>&1); then
	tail -n 60 "$tmp/build.log"
	echo "FAIL: dpkg-buildpackage"
	exit 1
fi
changes=$(ls "$tmp"/src/aioblk_*.changes)
debs=()
for f in "$tmp"/src/*.deb; do
	case $f in *-dbgsym_*) ;; *) debs+=("$f") ;; esac
done
printf 'deb.sh: built %s\n' "${debs[*]##*/}"

phase "lintian"
# Errors and warnings fail (justified ones are overridden in debian/); info
# and pedantic tags are shown.
lint_rc=0
run lintian --fail-on error,warning -I --pedantic "$changes" >"$tmp/lintian.log" 2>&1 || lint_rc=$?
grep -v 'running with root privileges' "$tmp/lintian.log" || true
if [ "$lint_rc" -ne 0 ]; then
	echo "FAIL: lintian (exit $lint_rc)"
	exit 1
fi

phase "mmdebstrap bookworm + the .debs, then in-root.sh"
# The .debs go in through --include, so apt resolves their Depends (libaio-dev
# comes in only as libaioblk-dev's). file-mirror-automount makes them visible
# inside the chroot and removes them afterwards.
include=()
for f in "${debs[@]}"; do include+=("--include=$f"); done
cp "$src/tests/packaging/in-root.sh" "$tmp/in-root.sh"
export TMPDIR=$tmp
if ! run mmdebstrap --variant=apt --quiet \
	--include=gcc,pkg-config,libc6-dev "${include[@]}" \
	--hook-dir=/usr/share/mmdebstrap/hooks/file-mirror-automount \
	--customize-hook="copy-in $tmp/in-root.sh /tmp" \
	--customize-hook='chroot "$1" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root sh /tmp/in-root.sh' \
	bookworm /dev/null ${AIOBLK_DEB_MIRROR:+"$AIOBLK_DEB_MIRROR"} >"$tmp/mmdebstrap.log" 2>&1; then
	cat "$tmp/mmdebstrap.log"
	echo "FAIL: installing the packages or running in-root.sh in a fresh root"
	exit 1
fi
grep -v '^I: ' "$tmp/mmdebstrap.log" || true
phase "done"
