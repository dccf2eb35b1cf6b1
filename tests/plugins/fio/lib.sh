# shellcheck shell=bash
# SPDX-License-Identifier: BSD-3-Clause
# Shared by the fio engine tests: skip rules, private devices made so that
# they are undone at exit (also on failure), and a fio runner that tells an
# fio error from a crash. Source it with the engine's path in $1.

engine=${1:-}
if [ "$(id -u)" -ne 0 ]; then
	echo "SKIP: needs root (loop devices, zram, mounts)"
	exit 77
fi
if ! command -v fio >/dev/null 2>&1; then
	echo "SKIP: fio is not installed"
	exit 77
fi
if [ -z "$engine" ] || [ ! -f "$engine" ]; then
	echo "SKIP: the engine '$engine' is not built (meson setup -Dfio_source=DIR)"
	exit 77
fi
engine=$(realpath "$engine")
case $(fio --version) in
fio-3.33) ;;
*) echo "note: fio is $(fio --version); the engine is built for fio-3.33" ;;
esac

work=$(mktemp -d "${TMPDIR:-/tmp}/aioblk-fio-test.XXXXXX")
# fio leaves verify state files in its working directory: keep them in $work.
cd "$work" || exit 1
cleanup_mounts=()
cleanup_loops=()
cleanup_zrams=()
cleanup_failed=0

# Remove a zram device, retrying while udev's probe still holds it.
zram_remove() {
	local id=$1
	for _ in $(seq 1 100); do
		if echo "$id" >/sys/class/zram-control/hot_remove 2>/dev/null; then
			return 0
		fi
		[ -e "/sys/block/zram$id" ] || return 0
		sleep 0.05
	done
	echo "FAIL: could not remove /dev/zram$id" >&2
	return 1
}

cleanup() {
	local rc=$? m l z
	set +e
	# Loop devices first: their backing files may live on the mounts.
	for l in "${cleanup_loops[@]}"; do
		losetup -d "$l" || { cleanup_failed=1; echo "FAIL: could not detach $l" >&2; }
	done
	for m in "${cleanup_mounts[@]}"; do
		umount "$m" || { umount -l "$m"; cleanup_failed=1; echo "FAIL: could not unmount $m" >&2; }
	done
	for z in "${cleanup_zrams[@]}"; do
		zram_remove "$z" || cleanup_failed=1
	done
	rm -rf "$work"
	if [ "$rc" -eq 0 ] && [ "$cleanup_failed" -ne 0 ]; then
		rc=1
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# zram_make SIZE [MEM_LIMIT]: a private zram device, path in $dev. (Not
# called in $(...): the cleanup list must be this shell's.)
zram_make() {
	local id
	dev=""
	[ -w /sys/class/zram-control/hot_add ] || return 1
	id=$(cat /sys/class/zram-control/hot_add) || return 1
	cleanup_zrams+=("$id")
	if [ -n "${2:-}" ]; then
		echo "$2" >"/sys/block/zram$id/mem_limit" || return 1
	fi
	echo "$1" >"/sys/block/zram$id/disksize" || return 1
	dev=/dev/zram$id
}

# loop_make FILE SECTOR_SIZE [-r]: a loop device over FILE, path in $dev.
loop_make() {
	local extra=()
	[ -n "${3:-}" ] && extra=("$3")
	dev=$(losetup -f --show --sector-size "$2" --direct-io=on "${extra[@]}" "$1" 2>/dev/null) ||
		dev=$(losetup -f --show --sector-size "$2" "${extra[@]}" "$1") || return 1
	# Detached before the file system that holds FILE is unmounted.
	cleanup_loops+=("$dev")
}

# mount_tmpfs DIR SIZE
mount_tmpfs() {
	mkdir -p "$1"
	mount -t tmpfs -o "size=$2" tmpfs "$1" || return 1
	cleanup_mounts+=("$1")
}

# mount_ext4 DEV DIR
mount_ext4() {
	mkfs.ext4 -q -F "$1" >/dev/null || return 1
	mkdir -p "$2"
	mount "$1" "$2" || return 1
	cleanup_mounts=("$2" "${cleanup_mounts[@]}")
}

failures=0
runs=0

# fio_ok NAME ARGS...: fio through the engine must succeed.
fio_ok() {
	local name=$1 rc
	shift
	runs=$((runs + 1))
	fio --name="$name" --ioengine="external:$engine" --output="$work/$name.out" "$@" >"$work/$name.err" 2>&1
	rc=$?
	if [ "$rc" -eq 0 ] && ! grep -q 'err= *[1-9]' "$work/$name.out"; then
		echo "ok   $name"
	else
		echo "FAIL $name (fio exit $rc): fio $*"
		cat "$work/$name.err" "$work/$name.out" | grep -v '^ *$' | head -40
		failures=$((failures + 1))
	fi
}

# fio_fails NAME PATTERN ARGS...: fio through the engine must report an
# error (exit 1, PATTERN in its output), not pass and not crash.
fio_fails() {
	local name=$1 pattern=$2 rc
	shift 2
	runs=$((runs + 1))
	fio --name="$name" --ioengine="external:$engine" --output="$work/$name.out" "$@" >"$work/$name.err" 2>&1
	rc=$?
	# grep the files, not a pipe: with pipefail, grep -q closing the pipe early would fail it.
	if [ "$rc" -eq 1 ] && grep -qE "$pattern" "$work/$name.out" "$work/$name.err"; then
		echo "ok   $name (fio reported: $(grep -h -m1 -E "$pattern" "$work/$name.out" "$work/$name.err" | head -1 | sed 's/^ *//'))"
	else
		echo "FAIL $name: wanted an fio error matching '$pattern' (exit 1), got exit $rc: fio $*"
		cat "$work/$name.err" "$work/$name.out" | grep -v '^ *$' | head -40
		failures=$((failures + 1))
	fi
}

finish() {
	echo "$runs fio runs, $failures failed"
	[ "$failures" -eq 0 ]
}
