#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# The symbols libaioblk.so exports, and the global symbols libaioblk.a
# defines, are exactly the ones src/aioblk.map lists: a program linking
# either one sees the API and nothing else of the library.
# Usage: check-exports.sh MAP LIBRARY...
set -eu
map=$1
shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed -n 's/^[[:space:]]*\(aioblk_[a-z0-9_]*\);.*/\1/p' "$map" | sort -u >"$tmp/map"
for lib in "$@"; do
	case $lib in
	*.a) nm -g --defined-only "$lib" | awk 'NF == 3 && $2 ~ /^[TDRBWV]$/ { print $3 }' ;;
	*) nm -D --defined-only "$lib" | awk '$2 ~ /^[TDRBWV]$/ { sub(/@.*/, "", $3); print $3 }' ;;
	esac | sort -u >"$tmp/exported"
	if ! diff -u "$tmp/map" "$tmp/exported"; then
		echo "$lib: exported symbols differ from $map (- map, + library)"
		exit 1
	fi
	echo "$lib: $(wc -l <"$tmp/exported") symbols, exactly the map"
done
