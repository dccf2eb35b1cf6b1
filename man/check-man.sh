#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Check the man pages: each renders with `man --warnings` without a single
# warning, each exported symbol of the version script has a page, and each
# section-3 page (not a .so link) has liburing's sections.
# Usage: check-man.sh MAPFILE PAGE... (exit 77 when man is not installed).
set -u
map=${1:?usage: check-man.sh MAPFILE PAGE...}
shift
if ! command -v man >/dev/null 2>&1 || ! command -v groff >/dev/null 2>&1; then
	echo "SKIP: man or groff not installed (apt-get install man-db groff-base)"
	exit 77
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Laid out as a man tree, so that `.so man3/page.3` resolves from $tmp.
mkdir -p "$tmp/man1" "$tmp/man3" "$tmp/man7"
for page in "$@"; do
	name=$(basename "$page")
	section=${name##*.}
	if [ ! -d "$tmp/man$section" ]; then
		echo "FAIL: $page: no section 1, 3 or 7"
		exit 1
	fi
	cp "$page" "$tmp/man$section/$name"
done

fail=0
case $map in /*) ;; *) map=$PWD/$map ;; esac
cd "$tmp" || exit 1
for page in man1/* man3/* man7/*; do
	[ -f "$page" ] || continue
	out=$(MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z "$page" 2>&1 >/dev/null)
	if [ -n "$out" ]; then
		echo "FAIL: $page renders with warnings:"
		echo "$out"
		fail=1
	fi
	# The text must really be there: a page that renders to nothing is wrong too.
	if [ "$(MANWIDTH=80 man -l "$page" 2>/dev/null | wc -l)" -lt 5 ]; then
		echo "FAIL: $page renders to almost nothing"
		fail=1
	fi
	if grep -q "^\\.so " "$page"; then
		continue
	fi
	if grep -q '@[A-Z_]*@' "$page"; then
		echo "FAIL: $page has an unsubstituted @VARIABLE@"
		fail=1
	fi
	case $page in
	man3/*)
		for sec in NAME SYNOPSIS DESCRIPTION 'RETURN VALUE' ERRORS 'SEE ALSO'; do
			if ! grep -q "^\\.SH \"\\{0,1\\}$sec\"\\{0,1\\}\$" "$page"; then
				echo "FAIL: $page has no $sec section"
				fail=1
			fi
		done
		;;
	esac
done

for sym in $(sed -n 's/^[[:space:]]*\(aioblk_[a-z0-9_]*\);.*/\1/p' "$map"); do
	if [ ! -f "man3/$sym.3" ]; then
		echo "FAIL: $sym is exported but has no man3/$sym.3"
		fail=1
	fi
done
n1=$(ls man1 | wc -l)
n3=$(ls man3 | wc -l)
n7=$(ls man7 | wc -l)
if [ "$fail" -eq 0 ]; then
	echo "$n1 section-1, $n3 section-3 and $n7 section-7 pages render without warnings; every exported symbol has a page"
fi
exit "$fail"
