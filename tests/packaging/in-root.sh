#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Run by deb.sh inside a fresh Debian root where the .debs were installed
# with apt: a user's first steps, with nothing but what the packages put
# there. No LD_LIBRARY_PATH, no ldconfig by hand: dpkg's trigger must have
# made libaioblk.so.0 findable.
set -eu
if [ -n "${LD_LIBRARY_PATH:-}" ]; then
	echo "FAIL: LD_LIBRARY_PATH is set ($LD_LIBRARY_PATH)"
	exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

# The example as the -dev package ships it (dh_compress may have gzipped it).
ex=/usr/share/doc/libaioblk-dev/examples
if [ -f "$ex/hello.c" ]; then
	cp "$ex/hello.c" hello.c
elif [ -f "$ex/hello.c.gz" ]; then
	zcat "$ex/hello.c.gz" >hello.c
else
	echo "FAIL: no hello.c in $ex"
	exit 1
fi

echo "pkg-config: aioblk $(pkg-config --modversion aioblk): $(pkg-config --cflags --libs aioblk)"
# shellcheck disable=SC2046 # the flags are words
cc -o hello-shared hello.c $(pkg-config --cflags --libs aioblk)
ldd hello-shared | grep libaioblk
./hello-shared

# Statically against libaioblk.a: --static brings -laio (libaio-dev, a
# dependency of libaioblk-dev).
static=
for word in $(pkg-config --static --libs aioblk); do
	[ "$word" = -laioblk ] && word="-Wl,-Bstatic -laioblk -Wl,-Bdynamic"
	static="$static $word"
done
# shellcheck disable=SC2046,SC2086
cc -o hello-static hello.c $(pkg-config --cflags aioblk) $static
if readelf -d hello-static 2>/dev/null | grep -q 'NEEDED.*libaioblk'; then
	echo "FAIL: hello-static needs libaioblk.so"
	exit 1
fi
./hello-static

# The tool, on a temporary file in this directory, and its man page.
aioblk-perf --runtime 1
test -f /usr/share/man/man1/aioblk-perf.1.gz
test -f /usr/share/man/man3/aioblk_disk_open.3.gz

# The NBD plugin, when it was built: nbdkit (a dependency) finds it by its short name.
if dpkg-query -W -f='${Status}' nbdkit-plugin-aioblk 2>/dev/null | grep -q 'install ok installed'; then
	nbdkit aioblk --dump-plugin | grep -E '^(path|name|version)='
	test -f /usr/share/man/man1/nbdkit-aioblk-plugin.1.gz
	echo "in-root: nbdkit aioblk --dump-plugin works"
fi
echo "in-root: hello (shared and static) and aioblk-perf ran"
