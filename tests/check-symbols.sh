#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# debian/libaioblk0.symbols is what debian/gen-symbols.sh makes from
# src/aioblk.map (the package build then checks the library against it).
# Usage: check-symbols.sh SOURCE_ROOT
set -eu
src=${1:?usage: check-symbols.sh SOURCE_ROOT}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sh "$src/debian/gen-symbols.sh" "$src/src/aioblk.map" >"$tmp/symbols"
if ! diff -u "$src/debian/libaioblk0.symbols" "$tmp/symbols"; then
	echo "FAIL: debian/libaioblk0.symbols is out of date (- committed, + from the map); regenerate with:"
	echo "  debian/gen-symbols.sh src/aioblk.map > debian/libaioblk0.symbols"
	exit 1
fi
echo "$(grep -c '@AIOBLK_' "$tmp/symbols") symbols, as in the map"
