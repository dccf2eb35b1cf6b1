#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Regenerate the tables of docs/FILESYSTEMS.md from a run of the fs and
# blocklayer suites: tests/fs/update-doc.sh [BUILD-DIR] (default: build), as
# root. The suites' results go into the tables (a FAIL row stays FAIL).
set -eu
cd "$(dirname "$0")/../.."
build=${1:-build}
meson test -C "$build" --suite fs --suite blocklayer --logbase fsdoc >/dev/null || true
python3 tests/fs/fs-table.py --update docs/FILESYSTEMS.md "$build/meson-logs/fsdoc.json"
echo "docs/FILESYSTEMS.md updated from $build/meson-logs/fsdoc.json"
