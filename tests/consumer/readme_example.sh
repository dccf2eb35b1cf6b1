#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# The README's C example is a program: take the first ```c block of README.md,
# build it the way the README says (installed library, pkg-config only, and
# -Wall -Wextra -Werror), then run it on a 1 MiB file of known bytes (exit 0,
# prints the byte count and the first bytes) and on a missing path (exits
# non-zero at once, says "No such file or directory").
#
# Usage: readme_example.sh BUILD_ROOT SOURCE_ROOT [SANITIZE]
# SANITIZE is the build's b_sanitize ("none" or e.g. "address,undefined"):
# a sanitized library needs the program built with the same runtime.
set -eu
build=${1:-${MESON_BUILD_ROOT:-}}
src=${2:-${MESON_SOURCE_ROOT:-}}
sanitize=${3:-none}
if [ -z "$build" ] || [ -z "$src" ]; then
	echo "usage: readme_example.sh BUILD_ROOT SOURCE_ROOT [SANITIZE]" >&2
	exit 2
fi
build=$(cd "$build" && pwd)
cc=${CC:-cc}
for tool in "$cc" pkg-config meson timeout od; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "SKIP: $tool not found"
		exit 77
	fi
done
LC_ALL=C
export LC_ALL
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export ASAN_OPTIONS UBSAN_OPTIONS

tmp=$(mktemp -d "${TMPDIR:-/tmp}/aioblk-readme.XXXXXX")
data=
trap 'rm -rf "$tmp"; if [ -n "$data" ]; then rm -f "$data"; fi' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
dest=$tmp/dest
mkdir "$tmp/app"

# The first C block, exactly as a reader would copy it.
awk '/^```c[[:space:]]*$/ { inside = 1; next } inside && /^```/ { exit } inside { print }' \
	"$src/README.md" >"$tmp/app/readme.c"
if [ ! -s "$tmp/app/readme.c" ]; then
	echo "FAIL: no \`\`\`c block in $src/README.md"
	exit 1
fi

# Install exactly what a user gets; no rebuild (meson test built it already).
. "$(dirname "$0")/install.sh"
install_as_user "$build" "$dest"


# Outside the tree, so that no include path of the source tree is near.
cd "$tmp/app"
cflags=$(pkg-config --cflags aioblk)
libs=$(pkg-config --libs aioblk)
echo "build: $cc -Wall -Wextra -Werror $san_flags $cflags readme.c $libs"
# shellcheck disable=SC2086 # word splitting of the flags is intended
if ! "$cc" -Wall -Wextra -Werror $san_flags $cflags -o readme readme.c $libs; then
	echo "FAIL: the README's C example does not compile"
	exit 1
fi

# run LABEL ARGS...: run the example on the installed library only (meson
# test points LD_LIBRARY_PATH at the build tree), bounded by a timeout;
# leaves the exit status in $rc and the output in $tmp/LABEL.out and .err.
run() {
	label=$1
	shift
	rc=0
	LD_LIBRARY_PATH=$libdir timeout 10 ./readme "$@" >"$tmp/$label.out" 2>"$tmp/$label.err" || rc=$?
	echo "$label: ./readme $* -> exit $rc"
	sed 's/^/  stdout: /' "$tmp/$label.out"
	sed 's/^/  stderr: /' "$tmp/$label.err"
}

# 1. A real file of known bytes, on a disk file system where one is at hand
#    (O_DIRECT then really goes to a device), else wherever TMPDIR is.
in_memory() {
	case $(stat -f -c %T "$1" 2>/dev/null || echo unknown) in
	tmpfs | ramfs) return 0 ;;
	*) return 1 ;;
	esac
}
dir=${TMPDIR:-/tmp}
if in_memory "$dir" && ! in_memory "$build"; then
	dir=$build
fi
data=$(mktemp "$dir/aioblk-readme-data.XXXXXX")
yes 'aioblk README example' | head -c 1048576 >"$data"
expect=$(od -An -tx1 -N16 "$data" | tr -s ' \n' '  ' | sed 's/^ //; s/ $//')
run file "$data"
if [ "$rc" -ne 0 ]; then
	echo "FAIL: the example exited $rc on a readable 1 MiB file ($data)"
	exit 1
fi
if ! grep -Eq '(^|[^0-9])[1-9][0-9]* bytes' "$tmp/file.out"; then
	echo "FAIL: the example did not print how many bytes it read"
	exit 1
fi
if ! grep -Fq "$expect" "$tmp/file.out"; then
	echo "FAIL: the example did not print the file's first bytes ($expect)"
	exit 1
fi
if [ -s "$tmp/file.err" ]; then
	echo "FAIL: the example wrote to stderr on success"
	exit 1
fi

# 2. A path that does not exist: a prompt failure that names the problem.
missing=$tmp/no-such-disk.img
run missing "$missing"
if [ "$rc" -eq 0 ]; then
	echo "FAIL: the example exited 0 on a missing path"
	exit 1
fi
if [ "$rc" -eq 124 ]; then
	echo "FAIL: the example did not return within 10 s on a missing path"
	exit 1
fi
if [ "$rc" -gt 125 ]; then
	echo "FAIL: the example died (exit $rc) on a missing path"
	exit 1
fi
if ! grep -q 'No such file or directory' "$tmp/missing.err"; then
	echo "FAIL: the example's message on a missing path does not say what is wrong"
	exit 1
fi
echo "readme_example: the README's C example built with pkg-config, read a file and refused a missing path"
