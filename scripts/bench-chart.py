#!/usr/bin/env python3
"""Draw the access benchmarks as a grouped horizontal bar chart (SVG).

Reads the JSON of the C benchmark (`scripts/bench-table.sh --json C_JSON`)
and of the Go benchmarks (`scripts/bench-go.sh --json GO_JSON`) and writes
OUT_SVG (default docs/access-chart.svg): for each design, ns per access with
1 thread, 2 threads on one shared handle and 2 threads on distinct handles
(per thread, or per goroutine for Go), C above and Go below on one shared
scale. Plain SVG: no script, no external font (sans-serif), no CSS, so that
it shows the same in a browser and on GitHub.

Usage: python3 scripts/bench-chart.py C_JSON GO_JSON [OUT_SVG]
Standard library only.
"""

import json
import math
import sys
from datetime import datetime, timezone
from pathlib import Path
from xml.sax.saxutils import escape

MODES = [
    ("1_thread", "1 thread (Go: goroutine)", "#4c78a8"),
    ("2_threads_shared", "2 threads, one shared handle", "#f58518"),
    ("2_threads_distinct", "2 threads, distinct handles", "#54a24b"),
]

# (JSON key, name, what it is)
C_DESIGNS = [
    ("floor", "floor", "2 atomic RMWs around an indirect call"),
    ("safe_access_inline", "gcs_safe_access_inline", "header inline"),
    ("safe_access", "gcs_safe_access", "exported: a library call"),
    ("begin_end_inline", "gcs_access_begin/end_inline", "header inline, callback by the caller"),
    ("begin_end", "gcs_access_begin/end", "exported: two library calls"),
]
GO_DESIGNS = [
    ("safe_access", "SafeAccess", "gcsafety, Manager method"),
    ("handle_access", "Handle.Access", "gcsafety, Handle method"),
    ("original_design", "original design", "sync.RWMutex + map + atomic flag"),
    ("cgo_handle_value", "cgo.Handle.Value", "runtime/cgo handle lookup"),
    ("empty_cgo_call", "empty cgo call", "no handle: both 2-goroutine bars are one run"),
]

WIDTH = 980
LABEL_W = 290  # the design names, left of the bars
RIGHT_PAD = 70  # room for the value printed after the longest bar
BAR_H = 15
BAR_GAP = 2
GROUP_GAP = 14
FONT = "sans-serif"


def nice_step(span, ticks=8):
    """A round tick step (1, 2, 2.5 or 5 × 10^k) giving about `ticks` ticks."""
    raw = span / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * magnitude:
            return m * magnitude
    return 10 * magnitude


def text(x, y, content, size=13, anchor="start", weight="normal", fill="#222", extra=""):
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-family="{FONT}" font-size="{size}" '
            f'text-anchor="{anchor}" font-weight="{weight}" fill="{fill}"{extra}>'
            f"{escape(content)}</text>")


def value_label(v):
    return f"{v:.1f}" if v < 100 else f"{v:.0f}"


def panel(out, y, title, subtitle, designs, data, scale, x0, plot_w, ticks):
    """Draw one panel from `y`; return the y below it."""
    out.append(text(16, y + 16, title, size=16, weight="bold"))
    out.append(text(16, y + 34, subtitle, size=12, fill="#555"))
    top = y + 46
    group_h = len(MODES) * (BAR_H + BAR_GAP) - BAR_GAP
    height = len(designs) * (group_h + GROUP_GAP) + GROUP_GAP
    # Grid and axis.
    for t in ticks:
        x = x0 + t * scale
        out.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + height}" '
                   f'stroke="{"#999" if t == 0 else "#e3e3e3"}" stroke-width="1"/>')
        out.append(text(x, top + height + 15, f"{t:g}", size=11, anchor="middle", fill="#555"))
    gy = top + GROUP_GAP
    for i, (key, name, what) in enumerate(designs):
        if i % 2 == 1:
            out.append(f'<rect x="8" y="{gy - GROUP_GAP / 2:.1f}" width="{WIDTH - 16}" '
                       f'height="{group_h + GROUP_GAP:.1f}" fill="#f6f6f6"/>')
            # Redraw the grid over the band.
            for t in ticks:
                x = x0 + t * scale
                out.append(f'<line x1="{x:.1f}" y1="{gy - GROUP_GAP / 2:.1f}" x2="{x:.1f}" '
                           f'y2="{gy + group_h + GROUP_GAP / 2:.1f}" '
                           f'stroke="{"#999" if t == 0 else "#e3e3e3"}" stroke-width="1"/>')
        mid = gy + group_h / 2
        out.append(text(x0 - 10, mid - 2, name, size=13, anchor="end", weight="bold"))
        out.append(text(x0 - 10, mid + 13, what, size=11, anchor="end", fill="#666"))
        row = data.get(key, {})
        for j, (mode, _, colour) in enumerate(MODES):
            by = gy + j * (BAR_H + BAR_GAP)
            v = row.get(mode)
            if v is None:
                out.append(text(x0 + 4, by + BAR_H - 3, "n/a", size=11, fill="#888"))
                continue
            w = max(v * scale, 1)
            out.append(f'<rect x="{x0}" y="{by}" width="{w:.1f}" height="{BAR_H}" '
                       f'fill="{colour}"><title>{escape(name)}, {escape(MODES[j][1])}: '
                       f"{v:.1f} ns</title></rect>")
            out.append(text(x0 + w + 4, by + BAR_H - 3.5, value_label(v), size=11, fill="#222"))
        gy += group_h + GROUP_GAP
    return top + height + 22


def main(argv):
    if len(argv) not in (3, 4):
        sys.stderr.write(__doc__)
        return 2
    c = json.loads(Path(argv[1]).read_text())
    go = json.loads(Path(argv[2]).read_text())
    out_path = Path(argv[3] if len(argv) == 4 else Path(__file__).resolve().parent.parent
                    / "docs" / "access-chart.svg")
    c_data = c["access"]["designs"]
    go_data = go["access"]["designs"]

    # The scale fits the designs drawn (the JSON has more, e.g. Go's BeginEndOnly).
    values = [v for designs, data in ((C_DESIGNS, c_data), (GO_DESIGNS, go_data))
              for key, _, _ in designs
              for v in (data.get(key, {}).get(m) for m, _, _ in MODES)
              if isinstance(v, (int, float))]
    top_value = max(values) if values else 1
    step = nice_step(top_value)
    axis_max = math.ceil(top_value / step) * step
    ticks = [i * step for i in range(int(round(axis_max / step)) + 1)]
    x0 = LABEL_W
    plot_w = WIDTH - LABEL_W - RIGHT_PAD
    scale = plot_w / axis_max

    out = []
    y = 0
    out.append(text(16, 28, "gcsafety: the cost of one guarded access", size=20, weight="bold"))
    out.append(text(16, 48, "ns per access (median of repeats; per thread, or per goroutine), "
                    "lower is better; C and Go on one scale", size=13, fill="#444"))
    # Legend.
    lx = 16
    for _, label, colour in MODES:
        out.append(f'<rect x="{lx}" y="60" width="14" height="14" fill="{colour}"/>')
        out.append(text(lx + 20, 72, label, size=13))
        lx += 20 + len(label) * 7.2 + 24
    y = 86
    y = panel(out, y, "C  (benches/table_bench.c)",
              f"median of {c.get('repeats')} runs of {c['access'].get('iterations_per_thread')} "
              "accesses per thread; the callback is an empty function called through a pointer",
              C_DESIGNS, c_data, scale, x0, plot_w, ticks)
    y = panel(out, y + 6, "Go  (bindings/go, BenchmarkAccess)",
              f"median of {go.get('repeats')} runs, -benchtime {go.get('benchtime')}; "
              "2-goroutine bars: ns/op at -cpu 2 × 2 (RunParallel reports wall time ÷ all "
              "goroutines' operations)",
              GO_DESIGNS, go_data, scale, x0, plot_w, ticks)
    out.append(text(x0 + plot_w / 2, y + 8, "ns per access", size=13, anchor="middle",
                    weight="bold"))
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load_c = c.get("loadavg_at_start", "?").split(" ")[0]
    load_go = go.get("loadavg_at_start", "?").split(" ")[0]
    out.append(text(16, y + 30,
                    f"Drawn {stamp} by scripts/bench-chart.py from scripts/bench-table.sh --json "
                    "and scripts/bench-go.sh --json.", size=11, fill="#666"))
    out.append(text(16, y + 45,
                    "One machine, 2 cores, shared with other work: load average at the start "
                    f"{load_c} (C) and {load_go} (Go). Compare bars of one run, not across runs.",
                    size=11, fill="#666"))
    notes = []
    share = c["access"].get("on_cpu_share")
    if share:
        short = {"1_thread": "1 thread", "2_threads_shared": "shared",
                 "2_threads_distinct": "distinct"}
        notes.append("C threads were on a CPU for "
                     + ", ".join(f"{100 * share[mode]:.0f}% ({short[mode]})"
                                 for mode, _, _ in MODES if mode in share)
                     + " of their wall time; below 100%, they took turns with other processes.")
    parallelism = go.get("effective_parallelism_cpu2")
    if parallelism is not None:
        notes.append(f"Go goroutines at -cpu 2 got {parallelism:.2f} cores' worth of time "
                     "(cgo.Handle.Value's throughput, 2 goroutines ÷ 1; 2.00 on two free cores).")
    for k, note in enumerate(notes):
        out.append(text(16, y + 60 + 15 * k, note, size=11, fill="#666"))
    height = y + 58 + 15 * len(notes)
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0f}" '
           f'viewBox="0 0 {WIDTH} {height:.0f}" role="img" '
           'aria-label="ns per guarded access, per design, C and Go">',
           f'<rect width="{WIDTH}" height="{height:.0f}" fill="#ffffff"/>']
    svg += out
    svg.append("</svg>")
    out_path.write_text("\n".join(svg) + "\n")
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
