#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# aioblk as a meson subproject: a tiny project with the source tree in its
# subprojects/ (a symlink made here) gets dependency('aioblk') through the
# subproject's meson.override_dependency, builds examples/hello.c with it
# and runs it. The subproject must build the library alone: no tests,
# tools, examples or man pages by default.
#
# Usage: subproject.sh SOURCE_ROOT
set -eu
src=${1:-${MESON_SOURCE_ROOT:-}}
if [ -z "$src" ]; then
	echo "usage: subproject.sh SOURCE_ROOT" >&2
	exit 2
fi
for tool in meson ninja "${CC:-cc}"; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "SKIP: $tool not found"
		exit 77
	fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/aioblk-subproject.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

app=$tmp/app
mkdir -p "$app/subprojects"
ln -s "$src" "$app/subprojects/aioblk"
cp "$src/examples/hello.c" "$app/hello.c"
cat >"$app/meson.build" <<'MESON'
project('aioblk-consumer', 'c', meson_version: '>= 1.0.1')
# A system aioblk (installed .pc) must not win: the subproject overrides it.
subproject('aioblk')
aioblk = dependency('aioblk')
if aioblk.type_name() != 'internal'
	error('dependency(\'aioblk\') is not the subproject\'s: ' + aioblk.type_name())
endif
executable('hello', 'hello.c', dependencies: aioblk)
MESON

# The meson test environment points LD_LIBRARY_PATH at the outer build tree:
# the consumer must find its own libaioblk.so (meson sets the rpath).
if ! env -u LD_LIBRARY_PATH meson setup "$tmp/build" "$app" >"$tmp/setup.log" 2>&1; then
	cat "$tmp/setup.log"
	echo "FAIL: meson setup of the consumer"
	exit 1
fi
sed -n '/^aioblk /,/^$/p; /Parts/,/fuzzing/p' "$tmp/setup.log"
if ! grep -q 'tests *: NO (subproject)' "$tmp/setup.log"; then
	echo "FAIL: the subproject's summary does not say tests are off as a subproject"
	exit 1
fi
if ! env -u LD_LIBRARY_PATH ninja -C "$tmp/build" >"$tmp/build.log" 2>&1; then
	cat "$tmp/build.log"
	echo "FAIL: building the consumer"
	exit 1
fi

# Only the library (what src/meson.build defines) and the consumer are built.
extra=$(meson introspect --targets "$tmp/build" | python3 -c '
import json, os, sys
for t in json.load(sys.stdin):
    where = os.path.dirname(t["defined_in"])
    if t["name"] != "hello" and not where.endswith("/subprojects/aioblk/src"):
        print(t["name"], "(" + t["defined_in"] + ")")')
if [ -n "$extra" ]; then
	echo "FAIL: the subproject builds more than the library: $extra"
	exit 1
fi

cd "$tmp"
env -u LD_LIBRARY_PATH "$tmp/build/hello"
echo "subproject: dependency('aioblk') from subprojects/aioblk built and ran hello"
