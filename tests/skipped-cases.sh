#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# How much a passing run did not check: sums the "SKIPPED-CASES: N of M"
# lines that tests print (tc_group_result in common.c, perf_smoke.sh) over
# the tests meson reports as OK, from meson's testlog.json.
#
# Usage: tests/skipped-cases.sh [-n] BUILD_DIR [LOG]
#   LOG: the file in BUILD_DIR/meson-logs (default testlog.json; with
#   --wrapper, meson names it after the wrapper, e.g. testlog-valgrind.json)
#   -n: print only the number
set -eu
count_only=0
if [ "${1:-}" = -n ]; then
	count_only=1
	shift
fi
build=${1:?usage: skipped-cases.sh [-n] BUILD_DIR [LOG]}
log=$build/meson-logs/${2:-testlog.json}
python3 - "$log" "$count_only" <<'PY'
import json, re, sys

log, count_only = sys.argv[1], sys.argv[2] == "1"
pat = re.compile(r"^SKIPPED-CASES: (\d+)", re.M)
total, per = 0, []
with open(log) as f:
    for line in f:
        r = json.loads(line)
        if r.get("result") != "OK":
            continue
        out = (r.get("stdout") or "") + (r.get("stderr") or "")
        n = sum(int(m) for m in pat.findall(out))
        if n:
            total += n
            per.append("%s %d" % (r["name"].split(" / ")[-1], n))
if count_only:
    print(total)
elif total:
    print("%d cases skipped inside passing tests (%s): not checked by this run"
          % (total, ", ".join(per)))
else:
    print("0 cases skipped inside passing tests")
PY
