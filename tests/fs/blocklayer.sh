#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Run test_blocklayer in a trace instance of its own: blocklayer.sh BINARY.
# Needs root and tracefs with the block events; exits 77 without them.
# tracefs is mounted, when it is not yet, in a private mount namespace (so
# the mount goes away with this process and nobody else sees it); the
# instance (instances/aioblk-PID) keeps its events, filters and clock apart
# from the global buffer and from other users, and is removed on every exit.
set -u
bin=$1

skip() {
	echo "SKIP: $*"
	exit 77
}

[ "$(id -u)" = 0 ] || skip "needs root (tracefs, loop devices, zram)"
if [ -z "${AIOBLK_BLOCKLAYER_NS:-}" ]; then
	unshare -m --propagation private true 2>/dev/null || skip "no private mount namespace (unshare -m)"
	AIOBLK_BLOCKLAYER_NS=1 exec unshare -m --propagation private "$0" "$@"
	skip "unshare -m failed"
fi

tracing=/sys/kernel/tracing
if [ ! -d "$tracing/instances" ]; then
	mount -t tracefs nodev "$tracing" 2>/dev/null || skip "cannot mount tracefs on $tracing"
fi
[ -d "$tracing/events/block/block_rq_issue" ] || skip "no block tracepoints in this kernel"
instance=$tracing/instances/aioblk-$$
mkdir "$instance" 2>/dev/null || skip "cannot make a trace instance"
# Removing the instance drops its events, filters, clock and buffer at once.
trap 'rmdir "$instance" 2>/dev/null || echo "could not remove $instance" >&2' EXIT
trap 'exit 1' INT TERM HUP

"$bin" "$instance"
