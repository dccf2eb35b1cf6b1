#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# The files of src/ call only downward. src/internal.h lists the layers, top
# first ("* layers: a.c b.c": one layer a line, peers on one line); this
# reads, from the internal static library, which object file defines each
# function and which functions each object file calls, and fails when a
# file calls one defined in a layer above its own, or when an object file
# is missing from the list.
# Usage: check-layers.sh INTERNAL_H LIBAIOBLK_INTERNAL.a
set -eu
header=$1
lib=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# file rank, rank 0 at the top
sed -n 's/^ \* layers: //p' "$header" | awk '{ for (i = 1; i <= NF; i++) print $i, NR - 1 }' >"$tmp/ranks"
if [ ! -s "$tmp/ranks" ]; then
	echo "no '* layers:' lines in $header"
	exit 1
fi
# "member type symbol" from nm's "ARCHIVE:DIR/member.c.o:ADDR TYPE NAME" (ADDR blank for U)
nm -A "$lib" | awk -F: '{ m = $2; sub(/.*\//, "", m); sub(/\.o$/, "", m); n = split($3, f, " "); print m, f[n - 1], f[n] }' \
	>"$tmp/syms"
awk '
FILENAME == ARGV[1] { rank[$1] = $2; next }
$2 ~ /^[TDRBW]$/ { def[$3] = $1; files[$1] = 1; next }
$2 == "U" { use[++n] = $1 " " $3; files[$1] = 1 }
END {
	bad = 0
	for (f in files)
		if (!(f in rank)) { printf "%s is not in the layer list of internal.h\n", f; bad = 1 }
	for (i = 1; i <= n; i++) {
		split(use[i], u, " ")
		f = u[1]; s = u[2]
		if (!(s in def) || def[s] == f || !(f in rank) || !(def[s] in rank))
			continue
		if (rank[def[s]] < rank[f]) {
			printf "%s calls %s, defined in %s, a layer above it\n", f, s, def[s]
			bad = 1
		}
	}
	exit bad
}' "$tmp/ranks" "$tmp/syms"
echo "$(wc -l <"$tmp/ranks") files, every call goes down"
