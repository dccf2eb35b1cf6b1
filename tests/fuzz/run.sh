#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Build the libFuzzer harness with clang, ASan and UBSan in its own build
# directory, then fuzz for a bounded time starting from the committed seed
# corpus. Exits 1 on a crash, a failed check, a leak or a sanitizer report,
# 70 on an input that hangs (-timeout).
#
#   tests/fuzz/run.sh [seconds]      (default 60)
#   AIOBLK_FUZZ_BUILD=dir            build directory (default build-fuzz)
#   AIOBLK_FUZZ_DIR=dir              where the temporary disk file lives (default: a scratch
#                                    directory on $TMPDIR, removed at the end)
#
# To read a crash: AIOBLK_FUZZ_TRACE=1 build-fuzz/tests/fuzz/fuzz_api <crash file>
# prints every call the input makes and every callback, in order.
set -eu

src=$(cd "$(dirname "$0")/../.." && pwd)
build=${AIOBLK_FUZZ_BUILD:-$src/build-fuzz}
seconds=${1:-60}

command -v clang >/dev/null || { echo "run.sh: clang is needed (apt-get install clang)" >&2; exit 1; }
if [ ! -f "$build/build.ninja" ]; then
	# Everything instrumented for coverage; only the harness links libFuzzer.
	CC=clang meson setup "$build" "$src" -Dfuzz=true -Dtests=enabled \
		-Db_sanitize=address,undefined -Db_lundef=false \
		-Dc_args=-fsanitize=fuzzer-no-link
fi
ninja -C "$build" tests/fuzz/fuzz_api

# New inputs go to a scratch copy: the committed seeds stay as they are.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
mkdir "$work/corpus" "$work/disk"
cp "$src"/tests/fuzz/corpus/* "$work/corpus"/
# The temporary disk file lives in the scratch directory too, so that a crash leaves nothing behind.
export AIOBLK_FUZZ_DIR=${AIOBLK_FUZZ_DIR:-$work/disk}

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
"$build"/tests/fuzz/fuzz_api -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 -error_exitcode=1 \
	-print_final_stats=1 -artifact_prefix="$build/fuzz-" "$work/corpus"
