# SPDX-License-Identifier: BSD-3-Clause
# Sourced by the nbdkit plugin's tests: the plugin's path, skipping (77)
# without a tool or root, a private temporary directory, and cleanup steps
# that run in reverse order on every exit, also a failing one.
set -u

plugin=${AIOBLK_NBDKIT_PLUGIN:-}
if [ -z "$plugin" ] || [ ! -f "$plugin" ]; then
	echo "SKIP: AIOBLK_NBDKIT_PLUGIN does not name the built plugin (run through meson test)"
	exit 77
fi

skip() {
	echo "SKIP: $*"
	exit 77
}

fail() {
	echo "FAIL: $*"
	exit 1
}

# need TOOL...: skip unless every tool is installed.
need() {
	local t
	for t in "$@"; do
		command -v "$t" >/dev/null 2>&1 || skip "$t is not installed"
	done
}

need_root() {
	[ "$(id -u)" -eq 0 ] || skip "needs root"
}

# Cleanup steps, run last-registered first when the shell exits.
cleanups=()
on_exit() {
	cleanups+=("$1")
}
run_cleanups() {
	local rc=$? i
	set +e
	for ((i = ${#cleanups[@]} - 1; i >= 0; i--)); do
		eval "${cleanups[i]}" >/dev/null 2>&1
	done
	exit "$rc"
}
trap run_cleanups EXIT
trap 'exit 130' INT TERM HUP

tmp=$(mktemp -d "${TMPDIR:-/tmp}/aioblk-nbdkit.XXXXXX")
on_exit "rm -rf '$tmp'"
# Whatever a tool leaves in its working directory goes with it.
cd "$tmp" || exit 1

# Random data of SIZE MiB in FILE.
random_file() {
	head -c "$(($2 * 1024 * 1024))" /dev/urandom >"$1" || fail "cannot write $1"
}

# A private zram device of SIZE: its number in $zram; removed at exit.
zram_add() {
	local z
	[ -e /sys/class/zram-control/hot_add ] || skip "no zram (modprobe zram)"
	z=$(cat /sys/class/zram-control/hot_add) || skip "cannot add a zram device"
	on_exit "echo $z > /sys/class/zram-control/hot_remove"
	echo "$1" >/sys/block/zram$z/disksize || fail "cannot size /dev/zram$z"
	zram=$z
}

# Wait up to 10 s for a path to exist (a socket, a FUSE file).
wait_for() {
	local i
	for ((i = 0; i < 100; i++)); do
		[ -e "$1" ] && return 0
		sleep 0.1
	done
	fail "$1 did not appear"
}

need nbdkit
