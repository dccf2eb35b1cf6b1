#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Draw IOPS and p99 latency against queue depth from a bench/compare.sh run.

Reads the randread-4k-qd{1,4,16,32,128} cases of RESULTS_DIR (the JSON that
compare.sh keeps), writes into OUT_DIR:
  rounds.csv   every run: case, qd, tool, round, IOPS, p99 latency (us)
  sweep.dat    the medians over the rounds, one line per queue depth (the
               numbers the chart is drawn from)
  sweep.gp     the gnuplot script
  sweep.png    the chart
and runs gnuplot (Debian: gnuplot-nox).

Usage: chart.py RESULTS_DIR OUT_DIR
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from summarize import SWEEP_QD, SWEEP_TOOLS, TOOL_LABEL, collect, med  # noqa: E402

COLORS = {
    "aioblk": "#1b9e77",
    "fio-libaio": "#d95f02",
    "fio-libaio-batched": "#e6ab02",
    "fio-io_uring": "#7570b3",
    "fio-aioblk": "#e7298a",
}


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    root, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    cases = {}
    for q in SWEEP_QD:
        d = os.path.join(root, f"randread-4k-qd{q}")
        if os.path.isdir(d):
            cases[q] = collect(d)
    if not cases:
        print(f"chart.py: no randread-4k-qd* cases in {root} (compare.sh --cases sweep)", file=sys.stderr)
        return 1
    tools = [t for t in SWEEP_TOOLS if any(t in r for r in cases.values())]

    with open(os.path.join(out, "rounds.csv"), "w") as f:
        f.write("case,qd,tool,round,iops,p99_us\n")
        for q, res in cases.items():
            for t in tools:
                for r, m in sorted(res.get(t, {}).items()):
                    p99 = "" if m.get("p99_us") is None else f"{m['p99_us']:.2f}"
                    f.write(f"randread-4k-qd{q},{q},{t},{r},{m['iops']:.1f},{p99}\n")

    dat = os.path.join(out, "sweep.dat")
    with open(dat, "w") as f:
        f.write("# 4 KiB randread, medians over the rounds (every round: rounds.csv)\n")
        f.write("# qd " + " ".join(f"{t}_iops {t}_p99_us" for t in tools) + "\n")
        for q, res in cases.items():
            cols = [str(q)]
            for t in tools:
                rounds = res.get(t, {}).values()
                iops = med([m["iops"] for m in rounds])
                p99 = med([m.get("p99_us") for m in rounds])
                cols.append("NaN" if iops is None else f"{iops:.1f}")
                cols.append("NaN" if p99 is None else f"{p99:.2f}")
            f.write(" ".join(cols) + "\n")

    machine = ""
    mpath = os.path.join(root, "machine.txt")
    if os.path.exists(mpath):
        with open(mpath) as f:
            for line in f:
                if line.startswith("device:"):
                    machine = line.split(":", 1)[1].split("(")[0].strip()
                    break
    title = "4 KiB random read" + (f" on {machine}" if machine else "") + ", one job, medians"
    plots_iops, plots_p99 = [], []
    for i, t in enumerate(tools):
        style = f"with linespoints lw 2 pt 7 lc rgb '{COLORS.get(t, '#666666')}' title '{TOOL_LABEL[t]}'"
        plots_iops.append(f"'sweep.dat' using 1:(${2 + 2 * i}/1000) {style}")
        plots_p99.append(f"'sweep.dat' using 1:{3 + 2 * i} {style}")
    png = os.path.join(out, "sweep.png")
    script = f"""# Drawn by bench/chart.py from sweep.dat (run in this directory: gnuplot sweep.gp)
set terminal pngcairo noenhanced size 1400,560 font 'DejaVu Sans,11'
set output 'sweep.png'
set multiplot layout 1,2 title '{title}'
set logscale x 2
set xtics (1, 4, 16, 32, 128)
set xrange [0.8:160]
set xlabel 'queue depth'
set grid
set key bottom right opaque box
set ylabel 'IOPS (thousands)'
set yrange [0:*]
set title 'IOPS'
plot {', '.join(plots_iops)}
set ylabel 'p99 latency (us)'
set key top left opaque box
set logscale y
set yrange [*:*]
set title 'p99 latency (log scale)'
plot {', '.join(plots_p99)}
unset multiplot
"""
    gp = os.path.join(out, "sweep.gp")
    with open(gp, "w") as f:
        f.write(script)
    subprocess.run(["gnuplot", "sweep.gp"], check=True, cwd=out)
    print(png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
