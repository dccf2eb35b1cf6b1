#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Fetch Debian's fio 3.33 source with apt and configure it, so that the
# aioblk fio engine can be built against it (meson setup -Dfio_source=...).
#
# Usage: tools/fio-source.sh DIR
# Leaves the configured tree in DIR/fio-3.33 (prints its path last). Needs
# apt-get and dpkg-source (dpkg-dev), network access to the Debian archive,
# and no deb-src entry: a private apt state under DIR/apt is used, so the
# system's apt lists are not touched. Running it again on a DIR that already
# holds a configured tree does nothing.
set -euo pipefail

if [ $# -ne 1 ] || [ "$1" = -h ] || [ "$1" = --help ]; then
	sed -n '3,11p' "$0" | sed 's/^# \{0,1\}//'
	[ $# -eq 1 ] && exit 0
	exit 2
fi
version=3.33
debian_version=3.33-3
mkdir -p "$1"
dir=$(cd "$1" && pwd)
src=$dir/fio-$version

if [ -f "$src/config-host.h" ] && [ -f "$src/fio.h" ]; then
	echo "$src"
	exit 0
fi
for tool in apt-get dpkg-source; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "fio-source.sh: $tool is missing (apt-get install dpkg-dev)" >&2
		exit 1
	fi
done

# A private apt state whose only sources are the system's, turned into deb-src.
state=$dir/apt
mkdir -p "$state/sl" "$state/lists/partial" "$state/cache/archives/partial"
found=0
for f in /etc/apt/sources.list.d/*.sources; do
	[ -e "$f" ] || continue
	sed 's/^Types: deb$/Types: deb-src/' "$f" >"$state/sl/$(basename "$f")"
	found=1
done
if [ -f /etc/apt/sources.list ]; then
	sed -n 's/^deb \(.*\)$/deb-src \1/p' /etc/apt/sources.list >"$state/sl/from-sources-list.list"
	[ -s "$state/sl/from-sources-list.list" ] && found=1
fi
if [ "$found" = 0 ]; then
	echo "fio-source.sh: no apt sources found under /etc/apt" >&2
	exit 1
fi
apt_opts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$state/sl"
	-o "Dir::State::Lists=$state/lists" -o "Dir::Cache=$state/cache")
# As root, apt would download as _apt, who cannot write into DIR (and says so).
if [ "$(id -u)" -eq 0 ]; then
	apt_opts+=(-o APT::Sandbox::User=root)
fi

echo "fio-source.sh: fetching fio=$debian_version into $dir" >&2
apt-get "${apt_opts[@]}" -qq update
(cd "$dir" && apt-get "${apt_opts[@]}" -qq source "fio=$debian_version" >/dev/null)
if [ ! -f "$src/configure" ]; then
	echo "fio-source.sh: $src/configure missing after apt-get source" >&2
	exit 1
fi

echo "fio-source.sh: configuring $src" >&2
# --disable-native: the engine must not depend on the build machine's CPU.
(cd "$src" && ./configure --disable-native --prefix=/usr >"$dir/configure.log" 2>&1) || {
	echo "fio-source.sh: configure failed; see $dir/configure.log" >&2
	exit 1
}
echo "$src"
