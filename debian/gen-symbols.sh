#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Print debian/libaioblk0.symbols from the version script: every symbol of
# node AIOBLK_X.Y is versioned @AIOBLK_X.Y and was first in release X.Y.0.
# Regenerate after adding a node to src/aioblk.map:
#   debian/gen-symbols.sh src/aioblk.map > debian/libaioblk0.symbols
# (tests/check-symbols.sh fails while the two differ.)
set -eu
map=${1:-$(dirname "$0")/../src/aioblk.map}
echo "libaioblk.so.0 libaioblk0 #MINVER#"
echo "* Build-Depends-Package: libaioblk-dev"
awk '
/^[[:space:]]*AIOBLK_[0-9.]+[[:space:]]*\{/ {
	node = $1
	sub(/\{.*/, "", node)
	ver = node
	sub(/^AIOBLK_/, "", ver)
	if (ver !~ /\.[0-9]+\.[0-9]+$/)
		ver = ver ".0"
	print " " node "@" node " " ver
	inglobal = 0
	next
}
/^[[:space:]]*global:/ { inglobal = 1; next }
/^[[:space:]]*local:/ { inglobal = 0; next }
/^[[:space:]]*\}/ { inglobal = 0; node = ""; next }
inglobal && node != "" && /^[[:space:]]*[A-Za-z_][A-Za-z0-9_]*;/ {
	sym = $1
	sub(/;.*/, "", sym)
	print " " sym "@" node " " ver
}' "$map"
