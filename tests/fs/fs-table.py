#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Turn the AIOBLK-ROW lines of the fs and blocklayer tests into Markdown.

    fs-table.py [--update DOC] INPUT...

Each INPUT is a meson testlog.json (the rows are taken from each test's
stdout, and the test's result is added) or a plain text file of rows. The
tables are printed on stdout or, with --update, written into DOC between
its "<!-- BEGIN GENERATED" and "<!-- END GENERATED -->" lines.
"""
import json
import platform
import subprocess
import sys

BEGIN = "<!-- BEGIN GENERATED"
END = "<!-- END GENERATED -->"

# (title, table, [(column heading, key), ...])
TABLES = [
    ("Open and geometry", "fs", [
        ("file system", "fs"), ("made on", "on"), ("statx DIOALIGN", "statx_dio"),
        ("open(O_DIRECT)", "open_o_direct"), ("aioblk O_DIRECT", "direct"),
        ("block", "block"), ("buf align", "buf_align"), ("len align", "len_align"),
        ("iovec edges", "iov_edges"), ("note", "note"), ("kernel defect", "kernel_defect"),
        ("test", "result"),
    ]),
    ("Write-zeroes and unmap", "fs", [
        ("file system", "fs"), ("made on", "on"),
        ("kernel: ZERO_RANGE", "fs_zero_range"), ("kernel: allocate", "fs_alloc"),
        ("kernel: PUNCH_HOLE", "fs_punch"),
        ("write-zeroes: calls", "zero_calls"), ("status", "zero_status"),
        ("failed but changed", "zero_failed_but_changed"), ("range after", "zero_extent"),
        ("again: calls", "zero_again_calls"), ("status", "zero_again_status"),
        ("unmap supported", "unmap_supported"), ("unmap: calls", "unmap_calls"),
        ("status", "unmap_status"), ("range after", "unmap_extent"),
        ("supported after", "unmap_supported_after"),
    ]),
    ("Flush, FUA, end of file, rescan", "fs", [
        ("file system", "fs"), ("made on", "on"), ("flush", "flush"),
        ("forced fallback", "flush_forced"), ("FUA write", "fua"),
        ("read past a shrunk end", "eof_read"), ("rescan", "rescan"),
        ("calls made by open", "open_fs_calls"), ("open changed", "open_changed"),
        ("test", "result"),
    ]),
    ("Flushes and FUA at the block layer", "blocklayer", [
        ("target", "target"), ("driver", "driver"), ("queue/write_cache", "write_cache"),
        ("queue/fua", "queue_fua"), ("aioblk", "aioblk_open"),
        ("write, then aioblk_flush", "flush_after_write"),
        ("AIOBLK_WRITE_FUA write", "fua_write"), ("aioblk_flush alone", "flush_alone"),
        ("buffered open: write, then flush", "buffered_write_then_flush"),
        ("verdict", "verdict"),
    ]),
]


def parse_row(line):
    words = line.split()
    row = {"_table": words[1]}
    for w in words[2:]:
        k, _, v = w.partition("=")
        row[k] = v
    return row


def read_rows(paths):
    rows = []
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        try:
            tests = [json.loads(l) for l in text.splitlines() if l.strip()]
            if not all(isinstance(t, dict) and "stdout" in t for t in tests):
                raise ValueError
        except ValueError:
            tests = [{"stdout": text, "result": ""}]
        for t in tests:
            found = False
            for line in (t.get("stdout") or "").splitlines():
                if line.startswith("AIOBLK-ROW "):
                    row = parse_row(line)
                    row["result"] = t.get("result", "")
                    rows.append(row)
                    found = True
            if not found and t.get("name", "").split(" / ")[-1].startswith("fs_") and t.get("result") == "SKIP":
                rows.append({"_table": "fs", "fs": t["name"].split(" / ")[-1], "result": "SKIP"})
    return rows


def cell(v):
    return (v or "-").replace("|", "\\|")


def tool_version(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (out.stdout + out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "not found"


def render(rows):
    out = []
    out.append("%s by tests/fs/fs-table.py; do not edit by hand -->" % BEGIN)
    out.append("")
    out.append("Kernel %s (%s). %s; %s; %s." % (
        platform.release(), platform.machine(), tool_version(["mke2fs", "-V"]),
        tool_version(["mkfs.xfs", "-V"]), tool_version(["mkfs.btrfs", "--version"])))
    for title, table, cols in TABLES:
        mine = [r for r in rows if r["_table"] == table]
        if not mine:
            continue
        out.append("")
        out.append("### " + title)
        out.append("")
        out.append("| " + " | ".join(h for h, _ in cols) + " |")
        out.append("|" + "---|" * len(cols))
        for r in mine:
            out.append("| " + " | ".join(cell(r.get(k)) for _, k in cols) + " |")
    out.append("")
    out.append(END)
    return "\n".join(out)


def main(argv):
    doc = None
    if len(argv) > 2 and argv[1] == "--update":
        doc = argv[2]
        argv = argv[2:]
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    rows = read_rows(argv[1:])
    if not rows:
        print("no AIOBLK-ROW lines found", file=sys.stderr)
        return 1
    text = render(rows)
    if not doc:
        print(text)
        return 0
    with open(doc, encoding="utf-8") as f:
        old = f.read()
    start, end = old.find(BEGIN), old.find(END)
    if start < 0 or end < start:
        print("%s has no generated section" % doc, file=sys.stderr)
        return 1
    with open(doc, "w", encoding="utf-8") as f:
        f.write(old[:start] + text + old[end + len(END):])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
