#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# The README's Quick start, on a fresh Debian 12 machine:
#   tools/quickstart.sh demo   build, then run the aioblk-perf demo on a temporary file
#   tools/quickstart.sh test   build, then run the whole test suite
# Installs the Debian packages it needs when run as root; otherwise names them.
# BUILD_DIR (default: build) and extra meson options (MESON_OPTIONS) may be set.
set -euo pipefail

cd "$(dirname "$0")/.."
mode=${1:-}
build=${BUILD_DIR:-build}

case "$mode" in
demo|test) ;;
*)
	echo "usage: $0 demo|test" >&2
	exit 2
	;;
esac

# What building and testing need (tests: losetup for loop devices, man for the
# man page check, clang-format for the format check, pkg-config for the consumer
# test, mkfs.ext4 for the file system on a 4096-byte-sector loop device).
# dpkg-dev: without dpkg-architecture meson installs into lib64, which the
# dynamic linker and pkg-config do not search on Debian.
packages=(meson ninja-build gcc libc6-dev dpkg-dev pkg-config libaio-dev)
if [ "$mode" = test ]; then
	packages+=(libcmocka-dev util-linux mount man-db groff-base clang-format e2fsprogs)
fi

missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" -eq 0 ]; then
		echo "quickstart: installing ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq "${missing[@]}" >/dev/null
	else
		echo "quickstart: missing Debian packages: ${missing[*]}" >&2
		echo "quickstart: install them as root with: apt-get install -y ${missing[*]}" >&2
		exit 1
	fi
fi

# The demo needs no cmocka: a new build directory for it leaves the tests out;
# an existing one is used as it is configured.
if [ ! -d "$build" ]; then
	meson setup "$build" -Dtests=$([ "$mode" = test ] && echo enabled || echo disabled) ${MESON_OPTIONS:-} >/dev/null
elif [ "$mode" = test ]; then
	# --reconfigure, not configure: it also takes a build directory made when
	# tests was a boolean option.
	meson setup --reconfigure "$build" -Dtests=enabled ${MESON_OPTIONS:-} >/dev/null
fi
meson compile -C "$build" >/dev/null

if [ "$mode" = demo ]; then
	# No target: aioblk-perf makes (and removes) a 256 MiB file in the current directory.
	exec "$build/tools/aioblk-perf" --workload randread --bs 4096 --iodepth 32 --runtime 5
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "quickstart: not root: tests that need loop devices, tmpfs mounts or zram are skipped"
fi
rc=0
meson test -C "$build" --print-errorlogs || rc=$?
# Cases skipped inside tests meson reports as OK (no root, no mkfs.ext4, ...).
tests/skipped-cases.sh "$build" || true
exit "$rc"
