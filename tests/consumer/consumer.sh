#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Build and run examples/hello.c the way a user outside the tree would: with
# nothing but what `meson install` puts in a prefix and what pkg-config says,
# once against libaioblk.so and once statically against libaioblk.a.
#
# Usage: consumer.sh BUILD_ROOT SOURCE_ROOT [SANITIZE]
# SANITIZE is the build's b_sanitize ("none" or e.g. "address,undefined"):
# a sanitized library needs the consumer built with the same runtime.
set -eu
build=${1:-${MESON_BUILD_ROOT:-}}
src=${2:-${MESON_SOURCE_ROOT:-}}
sanitize=${3:-none}
if [ -z "$build" ] || [ -z "$src" ]; then
	echo "usage: consumer.sh BUILD_ROOT SOURCE_ROOT [SANITIZE]" >&2
	exit 2
fi
cc=${CC:-cc}
for tool in "$cc" pkg-config meson; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "SKIP: $tool not found"
		exit 77
	fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/aioblk-consumer.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
dest=$tmp/dest

# Install exactly what a user gets; no rebuild (meson test built it already).
. "$(dirname "$0")/install.sh"
install_as_user "$build" "$dest"
if [ ! -e "$libdir/libaioblk.so" ] || [ ! -e "$libdir/libaioblk.a" ]; then
	echo "FAIL: libaioblk.so or libaioblk.a missing in $libdir"
	ls -l "$libdir"
	exit 1
fi


# Outside the tree: copy the example so no include path of the source tree is near.
mkdir "$tmp/app"
cp "$src/examples/hello.c" "$tmp/app/hello.c"
cd "$tmp/app"

cflags=$(pkg-config --cflags aioblk)
libs=$(pkg-config --libs aioblk)
echo "shared: $cc $cflags hello.c $libs"
# shellcheck disable=SC2086 # word splitting of the flags is intended
"$cc" $san_flags $cflags -o hello-shared hello.c $libs
if ! readelf -d hello-shared | grep -q 'NEEDED.*libaioblk\.so'; then
	echo "FAIL: hello-shared does not link libaioblk.so"
	exit 1
fi
# Only the installed library: meson test points LD_LIBRARY_PATH at the build tree.
LD_LIBRARY_PATH=$libdir TMPDIR=$tmp ./hello-shared

cflags=$(pkg-config --static --cflags aioblk)
libs=$(pkg-config --static --libs aioblk)
# Only libaioblk static: libaio and libc stay shared, as a packager would do.
static_libs=
for word in $libs; do
	if [ "$word" = -laioblk ]; then
		word="-Wl,-Bstatic -laioblk -Wl,-Bdynamic"
	fi
	static_libs="$static_libs $word"
done
echo "static: $cc $cflags hello.c $static_libs"
# shellcheck disable=SC2086
"$cc" $san_flags $cflags -o hello-static hello.c $static_libs
if readelf -d hello-static | grep -q 'NEEDED.*libaioblk'; then
	echo "FAIL: hello-static still needs libaioblk.so"
	exit 1
fi
# No LD_LIBRARY_PATH: the static binary must not need the installed library.
env -u LD_LIBRARY_PATH TMPDIR="$tmp" ./hello-static
echo "consumer: shared and static builds from $dest ran"
