#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# The tracked C sources are formatted as .clang-format says.
# Usage: check-format.sh SOURCE_ROOT. Exit 77 (skip) without clang-format,
# git or a git checkout: a release tarball has nothing to compare.
set -u
root=${1:?usage: check-format.sh SOURCE_ROOT}
clang_format=${CLANG_FORMAT:-clang-format}

if ! command -v "$clang_format" >/dev/null 2>&1; then
	echo "SKIP: $clang_format not found"
	exit 77
fi
if ! command -v git >/dev/null 2>&1; then
	echo "SKIP: git not found"
	exit 77
fi
cd "$root" || exit 1
if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	echo "SKIP: $root is not a git checkout"
	exit 77
fi

# NUL-separated, so that no file name can split; -z keeps names unquoted.
list=$(mktemp)
trap 'rm -f "$list"' EXIT
git ls-files -z -- '*.c' '*.h' >"$list"
count=$(tr -cd '\0' <"$list" | wc -c)
if [ "$count" -eq 0 ]; then
	echo "no tracked .c/.h files"
	exit 1
fi
if xargs -0 "$clang_format" --style=file --dry-run --Werror <"$list"; then
	echo "$count files formatted as .clang-format says ($("$clang_format" --version))"
	exit 0
fi
echo "Some files are not formatted: run  git ls-files -z '*.c' '*.h' | xargs -0 $clang_format -i"
exit 1
