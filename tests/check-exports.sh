#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# The symbols libaioblk.so exports are exactly the ones src/aioblk.map lists.
set -eu
lib=$1
map=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
nm -D --defined-only "$lib" | awk '$2 ~ /^[TDRBW]$/ { sub(/@.*/, "", $3); print $3 }' | sort -u > "$tmp/exported"
sed -n 's/^[[:space:]]*\(aioblk_[a-z0-9_]*\);.*/\1/p' "$map" | sort -u > "$tmp/map"
if ! diff -u "$tmp/map" "$tmp/exported"; then
	echo "exported symbols differ from $map (- map, + library)"
	exit 1
fi
grep -v '^aioblk_' "$tmp/exported" && { echo "non-aioblk symbols exported"; exit 1; }
echo "$(wc -l < "$tmp/exported") symbols, all in the map"
