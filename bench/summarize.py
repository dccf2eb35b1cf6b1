#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Summarize a bench/compare.sh results directory as Markdown.

Per case and tool: the median over the rounds. Per case and fio engine: the
median of the per-round ratios aioblk / fio (each ratio from runs of the same
round, which ran back to back). The same for fio with the aioblk engine
against fio's own engines, and IOPS and p99 latency against queue depth
(bench/chart.sh draws them). Then the targets, met or missed.

Usage: summarize.py RESULTS_DIR
"""
import json
import os
import re
import statistics
import sys

FIO_TOOLS = ["fio-libaio", "fio-libaio-batched", "fio-io_uring"]
FIO_LABEL = {
    "fio-libaio": "fio libaio",
    "fio-libaio-batched": "fio libaio batched",
    "fio-io_uring": "fio io_uring",
}
ENGINE = "fio-aioblk"
SWEEP_QD = [1, 4, 16, 32, 128]
SWEEP_TOOLS = ["aioblk", "fio-libaio", "fio-libaio-batched", "fio-io_uring", ENGINE]
TOOL_LABEL = dict(FIO_LABEL, **{"aioblk": "aioblk-perf", ENGINE: "fio + aioblk engine"})
CASE_ORDER = ["randread-4k-qd1", "randread-4k-qd4", "randread-4k-qd16", "randread-4k-qd32", "randread-4k-qd128",
              "randwrite-4k-qd32", "randwrite-zero-4k-qd32", "read-128k-qd8", "threads2"]
CASE_LABEL = {
    "randread-4k-qd1": "4 KiB randread QD1",
    "randread-4k-qd4": "4 KiB randread QD4",
    "randread-4k-qd16": "4 KiB randread QD16",
    "randread-4k-qd32": "4 KiB randread QD32",
    "randread-4k-qd128": "4 KiB randread QD128",
    "randwrite-4k-qd32": "4 KiB randwrite QD32 (random data)",
    "randwrite-zero-4k-qd32": "4 KiB randwrite QD32 (zero pages)",
    "read-128k-qd8": "128 KiB seq read QD8",
    "threads2": "4 KiB randread 2 threads x QD32",
}


def load_json(path):
    with open(path) as f:
        text = f.read()
    # fio may print notes before its JSON.
    return json.loads(text[text.index("{"):])


def metrics(tool, path):
    """iops, mean latency (us), cpu seconds (None when unknown)."""
    d = load_json(path)
    if tool.startswith("aioblk"):
        t = d["total"]
        return {"iops": t["iops"], "lat_us": t["lat_ns"]["mean"] / 1e3, "cpu_s": d["cpu"]["total_s"],
                "ios": t["ios"], "p99_us": t["lat_ns"]["p99"] / 1e3}
    job = d["jobs"][0]
    iops = 0.0
    lat_sum = 0.0
    ios = 0
    p99 = None
    for direction in ("read", "write"):
        s = job[direction]
        n = s.get("total_ios", 0)
        iops += s["iops"]
        if n:
            lat_sum += s["lat_ns"]["mean"] * n
            ios += n
            # The whole latency's percentiles with --lat_percentiles=1, else completion latency's.
            pct = s["lat_ns"].get("percentile") or s["clat_ns"].get("percentile") or {}
            if "99.000000" in pct:
                p99 = max(p99 or 0.0, pct["99.000000"] / 1e3)
    cpu = None
    if d.get("global options", {}).get("numjobs", "1") in ("1", 1):
        cpu = (job["usr_cpu"] + job["sys_cpu"]) / 100.0 * job["job_runtime"] / 1000.0
    return {"iops": iops, "lat_us": lat_sum / ios / 1e3 if ios else 0.0, "cpu_s": cpu, "p99_us": p99}


def collect(case_dir):
    """{tool: {round: metrics}}"""
    res = {}
    for name in os.listdir(case_dir):
        m = re.fullmatch(r"(.+)\.(\d+)\.json", name)
        if not m:
            continue
        tool, rnd = m.group(1), int(m.group(2))
        res.setdefault(tool, {})[rnd] = metrics(tool, os.path.join(case_dir, name))
    return res


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratio_median(res, a, b, key):
    """Median over rounds of res[a][r][key] / res[b][r][key], same round only."""
    rounds = sorted(set(res.get(a, {})) & set(res.get(b, {})))
    ratios = [res[a][r][key] / res[b][r][key] for r in rounds if res[b][r][key]]
    return med(ratios), ratios


def fmt_iops(v):
    return "-" if v is None else f"{v / 1000:.1f}k"


def fmt_lat(v):
    return "-" if v is None else f"{v:.2f} us"


def fmt_ratio(v):
    return "-" if v is None else f"{v:.3f}"


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    root = sys.argv[1]
    # smallqueue (bench/small-queue.sh) summarizes itself, in its own format.
    cases = {c: collect(os.path.join(root, c)) for c in os.listdir(root)
             if os.path.isdir(os.path.join(root, c)) and c != "smallqueue"}
    out = []
    machine = os.path.join(root, "machine.txt")
    if os.path.exists(machine):
        out.append("Machine and run:\n")
        out.append("```")
        with open(machine) as f:
            out.append(f.read().rstrip())
        out.append("```\n")

    out.append("Medians over the rounds; ratios are medians of the per-round ratios "
               "(aioblk-perf / fio, runs of one round back to back).\n")
    out.append("| case | metric | aioblk-perf | fio libaio | fio libaio batched | fio io_uring "
               "| ÷ libaio | ÷ libaio batched | ÷ io_uring |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for c in CASE_ORDER:
        res = cases.get(c)
        if not res or "aioblk" not in res:
            continue
        rows = [("IOPS", "iops", fmt_iops)]
        if c == "randread-4k-qd1":
            rows.append(("mean latency", "lat_us", fmt_lat))
        for label, key, fmt in rows:
            cells = [fmt(med([m[key] for m in res.get(t, {}).values()])) for t in ["aioblk"] + FIO_TOOLS]
            ratios = [fmt_ratio(ratio_median(res, "aioblk", t, key)[0]) for t in FIO_TOOLS]
            out.append(f"| {CASE_LABEL[c]} | {label} | " + " | ".join(cells + ratios) + " |")
    t2 = cases.get("threads2")
    if t2 and "aioblk-1thread" in t2:
        one = med([m["iops"] for m in t2["aioblk-1thread"].values()])
        scale, _ = ratio_median(t2, "aioblk", "aioblk-1thread", "iops")
        out.append(f"| 4 KiB randread 1 thread x QD32 (same rounds as 2 threads) | IOPS | {fmt_iops(one)} "
                   f"| | | | 2 threads ÷ 1 thread: {fmt_ratio(scale)} | | |")
    out.append("")
    if t2 and "aioblk-1thread" in t2:
        # Scaling needs a second CPU to itself: show how much CPU the threads got and what it bought.
        out.append("Scaling, aioblk-perf 4 KiB randread QD32 per thread (CPU seconds are the worker threads' "
                   "user+sys over the measured run):\n")
        out.append("| threads | IOPS | CPU seconds | IOPS per CPU-second |")
        out.append("|---|---:|---:|---:|")
        for tool, n in (("aioblk-1thread", 1), ("aioblk", 2)):
            rounds = t2[tool].values()
            iops = med([m["iops"] for m in rounds])
            cpu = med([m["cpu_s"] for m in rounds])
            eff = med([m["ios"] / m["cpu_s"] if m["cpu_s"] else None for m in rounds])
            out.append(f"| {n} | {fmt_iops(iops)} | {cpu:.2f} | {fmt_iops(eff)} |")
        out.append("")

    eng_cases = [c for c in CASE_ORDER if ENGINE in cases.get(c, {})]
    if eng_cases:
        out.append("fio with the aioblk engine against fio's own engines (same fio, same options; "
                   "ratios are medians of the per-round ratios):\n")
        out.append("| case | metric | fio + aioblk engine | ÷ fio libaio | ÷ fio libaio batched | ÷ fio io_uring |")
        out.append("|---|---|---:|---:|---:|---:|")
        for c in eng_cases:
            res = cases[c]
            rows = [("IOPS", "iops", fmt_iops)]
            if c == "randread-4k-qd1":
                rows.append(("mean latency", "lat_us", fmt_lat))
            for label, key, fmt in rows:
                cell = fmt(med([m[key] for m in res[ENGINE].values()]))
                ratios = [fmt_ratio(ratio_median(res, ENGINE, t, key)[0]) for t in FIO_TOOLS]
                out.append(f"| {CASE_LABEL[c]} | {label} | " + " | ".join([cell] + ratios) + " |")
        out.append("")

    sweep = {q: cases.get(f"randread-4k-qd{q}") for q in SWEEP_QD}
    sweep = {q: r for q, r in sweep.items() if r}
    if sweep:
        tools = [t for t in SWEEP_TOOLS if any(t in r for r in sweep.values())]
        out.append("4 KiB randread against queue depth, medians: IOPS / p99 latency (us) "
                   "(the data of bench/chart.sh):\n")
        out.append("| QD | " + " | ".join(TOOL_LABEL[t] for t in tools) + " |")
        out.append("|---:|" + "---:|" * len(tools))
        for q, res in sweep.items():
            cells = []
            for t in tools:
                rounds = res.get(t, {}).values()
                iops = med([m["iops"] for m in rounds])
                p99 = med([m.get("p99_us") for m in rounds])
                cells.append("-" if iops is None else f"{fmt_iops(iops)} / {'-' if p99 is None else f'{p99:.1f}'}")
            out.append(f"| {q} | " + " | ".join(cells) + " |")
        out.append("")

    inter = [c for c in ("interrupt-qd1", "interrupt-qd32") if c in cases]
    if inter:
        out.append("Busy-poll against interrupt mode (eventfd + aioblk_group_wait), aioblk-perf only, "
                   "4 KiB randread:\n")
        out.append("| QD | mode | IOPS | CPU seconds | CPU us per I/O | IOPS ÷ busy-poll |")
        out.append("|---|---|---:|---:|---:|---:|")
        for c in inter:
            res = cases[c]
            for tool, label in (("aioblk-poll", "busy-poll"), ("aioblk-interrupt", "interrupt")):
                if tool not in res:
                    continue
                iops = med([m["iops"] for m in res[tool].values()])
                cpu = med([m["cpu_s"] for m in res[tool].values()])
                rel = ratio_median(res, tool, "aioblk-poll", "iops")[0]
                out.append(f"| {c.split('qd')[1]} | {label} | {fmt_iops(iops)} | {cpu:.2f} | "
                           f"{per_io_us(res[tool]):.2f} | {fmt_ratio(rel)} |")
        out.append("")

    out.append("Targets:\n")
    out.append("| target | measured | met |")
    out.append("|---|---:|---|")

    def target(name, value, ok):
        out.append(f"| {name} | {fmt_ratio(value)} | {'yes' if ok else 'NO'} |")

    q32 = cases.get("randread-4k-qd32")
    if q32:
        v = ratio_median(q32, "aioblk", "fio-libaio-batched", "iops")[0]
        if v is not None:
            target("QD32 IOPS >= 1.05 x fio libaio batched", v, v >= 1.05)
        v = ratio_median(q32, "aioblk", "fio-io_uring", "iops")[0]
        if v is not None:
            target("QD32 IOPS >= 1.00 x fio io_uring", v, v >= 1.00)
    q1 = cases.get("randread-4k-qd1")
    if q1:
        v = ratio_median(q1, "aioblk", "fio-libaio", "lat_us")[0]
        if v is not None:
            target("QD1 mean latency <= fio libaio (ratio <= 1.00)", v, v <= 1.00)
    if t2 and "aioblk-1thread" in t2:
        v = ratio_median(t2, "aioblk", "aioblk-1thread", "iops")[0]
        if v is not None:
            target("2 threads >= 1.8 x 1 thread (QD32 each)", v, v >= 1.8)
    engine_targets = [
        ("randread-4k-qd32", "fio-libaio-batched", 1.15, "fio + aioblk engine QD32 IOPS >= 1.15 x fio libaio batched"),
        ("randread-4k-qd32", "fio-io_uring", 0.90, "fio + aioblk engine QD32 IOPS >= 0.90 x fio io_uring"),
        ("randread-4k-qd1", "fio-libaio", 1.00, "fio + aioblk engine QD1 IOPS >= 1.00 x fio libaio"),
    ]
    for c, other, want, name in engine_targets:
        res = cases.get(c)
        if res and ENGINE in res:
            v = ratio_median(res, ENGINE, other, "iops")[0]
            if v is not None:
                target(name, v, v >= want)
    out.append("")

    out.append("Per-round values (IOPS; QD1 also mean latency in us):\n")
    out.append("| case | tool | rounds |")
    out.append("|---|---|---|")
    for c in CASE_ORDER + ["interrupt-qd1", "interrupt-qd32"]:
        res = cases.get(c)
        if not res:
            continue
        for tool in sorted(res):
            vals = [res[tool][r] for r in sorted(res[tool])]
            s = ", ".join(f"{m['iops'] / 1000:.1f}k" + (f" / {m['lat_us']:.2f}" if c.endswith("qd1") else "")
                          for m in vals)
            out.append(f"| {c} | {tool} | {s} |")
    print("\n".join(out))
    return 0


def per_io_us(rounds):
    """Median over rounds of CPU microseconds per completed I/O."""
    vals = []
    for m in rounds.values():
        ios = m.get("ios")
        if ios:
            vals.append(m["cpu_s"] / ios * 1e6)
    return med(vals) or 0.0


if __name__ == "__main__":
    sys.exit(main())
