#!/usr/bin/env bash
# The Go benchmarks of bindings/go (bench_test.go: BenchmarkAccess,
# BenchmarkRegisterUnregister) as markdown: median ns per access of each
# design on 1 goroutine, on 2 goroutines sharing one handle and on 2
# goroutines with a handle each; median ns per register+unregister; and the
# issue's Go targets, each a ratio of medians of this run with PASS or MISS.
#
#   scripts/bench-go.sh [--count N] [--benchtime D] [--json FILE]
#
#   --count N      repeats (default 5, or $COUNT). The test binary is built
#                  once and run N times with -test.count=1 and -test.cpu=1,2,
#                  so every design is measured once in each repeat, the
#                  designs interleaved (`go test -count N` would run one
#                  benchmark's N repeats back to back, and a change in the
#                  machine's load would fall on one design only). Each figure
#                  is the median of the N repeats.
#   --benchtime D  go test's -benchtime per benchmark (default 150ms, or
#                  $BENCHTIME); 5 repeats take about a minute on 2 cores.
#   --json FILE    also writes every median to FILE (scripts/bench-chart.py
#                  draws docs/access-chart.svg from it and table_bench's).
#
# How the numbers are read. Go reports ns/op = elapsed wall time ÷ b.N. For a
# benchmark on one goroutine that is the time of one operation. For the
# b.RunParallel variants ("/parallel": every goroutine on the same handle;
# "/parallel-distinct": each goroutine on its own handle), b.N operations are
# shared among GOMAXPROCS goroutines running at once, so ns/op is wall time
# per operation *across* goroutines: with 2 goroutines and no contention it
# is half an operation's time. This script reports per-goroutine time, the
# time one goroutine takes for one operation (what the C benchmark,
# benches/table_bench.c, reports per thread):
#     per-goroutine ns = ns/op (as Go reports it) × GOMAXPROCS
# with GOMAXPROCS = 2 for the 2-goroutine columns (-cpu 2; RunParallel starts
# GOMAXPROCS goroutines). "1 goroutine" is the serial benchmark at -cpu 1.
# The empty cgo call has no handle: its two 2-goroutine columns are the same
# measurement ("/parallel").
# On a machine busy with other work the 2 goroutines may take turns on one
# core rather than run at once; then a 2-goroutine figure is about twice the
# 1-goroutine one whatever the design. The script prints the effective
# parallelism (cgo.Handle.Value, which shares no written memory: 1-goroutine
# ns ÷ 2-goroutine ns/op, 2.00 on two free cores) to tell the cases apart.
#
# It first builds the release library and the in-tree pkg-config file
# (scripts/install.sh --uninstalled), then the Go test binary with
# PKG_CONFIG_PATH=target/pkgconfig CGO_ENABLED=1. Targets are reported, not
# enforced: the script exits 0 unless something fails to build or run.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

count=${COUNT:-5}
benchtime=${BENCHTIME:-150ms}
json=
while [ $# -gt 0 ]; do
    case $1 in
        --count) count=$2; shift 2 ;;
        --benchtime) benchtime=$2; shift 2 ;;
        --json) json=$2; shift 2 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "usage: scripts/bench-go.sh [--count N] [--benchtime D] [--json FILE]" >&2; exit 2 ;;
    esac
done
case $count in '' | *[!0-9]* | 0) echo "--count: a positive number, not '$count'" >&2; exit 2 ;; esac
if [ -n "$json" ]; then
    case $json in /*) ;; *) json=$PWD/$json ;; esac
fi

scripts/install.sh --uninstalled >/dev/null
export PKG_CONFIG_PATH="$root/target/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export CGO_ENABLED=1
mkdir -p target/bench
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
(cd bindings/go && go test -c -o "$root/target/bench/gcsafety-go.test" .)

loadavg=$(cat /proc/loadavg 2>/dev/null || true)
for ((r = 1; r <= count; r++)); do
    echo "bench-go: run $r of $count" >&2
    # The test binary runs in its package's directory, as `go test` does.
    if ! (cd bindings/go && "$root/target/bench/gcsafety-go.test" -test.run '^$' \
        -test.bench '^(BenchmarkAccess|BenchmarkRegisterUnregister)$' \
        -test.cpu 1,2 -test.count 1 -test.benchtime "$benchtime") >"$out/run$r.txt" 2>&1; then
        cat "$out/run$r.txt" >&2
        echo "bench-go: run $r failed" >&2
        exit 1
    fi
done

python3 - "$out" "$count" "$benchtime" "$json" "$loadavg" "$(go version)" <<'EOF'
import json
import re
import statistics
import sys
from pathlib import Path

out, count, benchtime, json_path, loadavg, go_version = sys.argv[1:]
count = int(count)

# "BenchmarkAccess/SafeAccess/parallel-2   2004698   73.76 ns/op": the name,
# then "-N" when GOMAXPROCS (N) is not 1, iterations, ns/op.
LINE = re.compile(r"^(Benchmark\S+?)(?:-(\d+))?\s+\d+\s+([0-9.]+) ns/op")
samples = {}  # (name, procs) -> [ns/op of each run]
for r in range(1, count + 1):
    for line in Path(out, f"run{r}.txt").read_text().splitlines():
        m = LINE.match(line)
        if m:
            key = (m.group(1), int(m.group(2) or 1))
            samples.setdefault(key, []).append(float(m.group(3)))


def raw(name, procs):
    """Median ns/op as Go reports it, or None."""
    values = samples.get((name, procs))
    return round(statistics.median(values), 3) if values else None


def per_goroutine(name, procs):
    """Median ns of one operation on one goroutine (ns/op × GOMAXPROCS)."""
    value = raw(name, procs)
    return None if value is None else round(value * procs, 3)


# (JSON key, label, benchmark name, 2-goroutine shared, 2-goroutine distinct)
DESIGNS = [
    ("safe_access", "`SafeAccess`", "SafeAccess", "SafeAccess/parallel",
     "SafeAccess/parallel-distinct"),
    ("handle_access", "`Handle.Access`", "HandleAccess", "HandleAccess/parallel",
     "HandleAccess/parallel-distinct"),
    ("begin_end_only", "`accessBegin` + `accessEnd` only", "BeginEndOnly",
     "BeginEndOnly/parallel", None),
    ("original_design", "original design: `RWMutex` + map + atomic flag", "OriginalDesign",
     "OriginalDesign/parallel", "OriginalDesign/parallel-distinct"),
    ("cgo_handle_value", "`cgo.Handle.Value`", "CgoHandleValue", "CgoHandleValue/parallel",
     "CgoHandleValue/parallel-distinct"),
    ("empty_cgo_call", "empty cgo call", "EmptyCgoCall", "EmptyCgoCall/parallel",
     "EmptyCgoCall/parallel"),
]
MODES = [("1_thread", "1 goroutine"), ("2_threads_shared", "2 goroutines, one shared handle"),
         ("2_threads_distinct", "2 goroutines, distinct handles")]

designs = {}
for key, label, serial, shared, distinct in DESIGNS:
    designs[key] = {
        "label": label,
        "1_thread": per_goroutine("BenchmarkAccess/" + serial, 1),
        "2_threads_shared": per_goroutine("BenchmarkAccess/" + shared, 2),
        "2_threads_distinct": per_goroutine("BenchmarkAccess/" + distinct, 2) if distinct else None,
    }
register = {
    "go_value": raw("BenchmarkRegisterUnregister/GoValue", 1),
    "original_design": raw("BenchmarkRegisterUnregister/OriginalDesign", 1),
}


def fmt(value):
    return "n/a" if value is None else f"{value:.1f}"


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


print(f"### Access, Go (median of {count} runs, -benchtime {benchtime}; "
      "ns per access, per goroutine)\n")
print("| design | 1 goroutine | ÷ original design | 2 goroutines, one shared handle "
      "| 2 goroutines, distinct handles |")
print("|---|---|---|---|---|")
original = designs["original_design"]["1_thread"]
for key, label, *_ in DESIGNS:
    d = designs[key]
    versus = ratio(d["1_thread"], original)
    distinct = fmt(d["2_threads_distinct"])
    if key == "empty_cgo_call":
        distinct += " (no handle: the shared run)"
    print(f"| {label} | {fmt(d['1_thread'])} | "
          f"{'n/a' if versus is None else f'{versus:.2f}×'} | "
          f"{fmt(d['2_threads_shared'])} | {distinct} |")
print("\n2-goroutine columns: Go's ns/op at -cpu 2 × 2 (RunParallel's ns/op is wall time "
      "per operation across goroutines).")
# How much of 2 CPUs the 2 goroutines got: cgo.Handle.Value on distinct
# handles writes nothing shared, so on 2 free cores its throughput doubles.
value_1 = raw("BenchmarkAccess/CgoHandleValue", 1)
value_2 = raw("BenchmarkAccess/CgoHandleValue/parallel-distinct", 2)
parallelism = ratio(value_1, value_2)
if parallelism is not None:
    print(f"\nEffective parallelism at -cpu 2: {parallelism:.2f} (`cgo.Handle.Value`, 1 goroutine "
          "÷ its ns/op on 2 goroutines with distinct handles; 2.00 when both goroutines have a "
          "core of their own, 1.00 when they take turns on one).")

print(f"\n### Register + unregister, Go (median of {count} runs; ns per pair, 1 goroutine)\n")
print("| design | ns per pair |\n|---|---|")
print(f"| gcsafety `RegisterObject` (Go value) + `UnregisterObject` | {fmt(register['go_value'])} |")
print(f"| original design | {fmt(register['original_design'])} |")

safe = designs["safe_access"]
TARGETS = [
    ("safe_access_over_original", "Go `SafeAccess` ÷ original design (`RWMutex`+map), 1 goroutine",
     ratio(safe["1_thread"], original), 0.8),
    ("safe_access_over_cgo_handle_value", "Go `SafeAccess` ÷ `cgo.Handle.Value`, 1 goroutine",
     ratio(safe["1_thread"], designs["cgo_handle_value"]["1_thread"]), 2.0),
    ("safe_access_2_distinct_over_1",
     "Go `SafeAccess`, 2 goroutines on distinct handles ÷ 1 goroutine (per-goroutine time)",
     ratio(safe["2_threads_distinct"], safe["1_thread"]), 1.2),
    ("register_go_value_over_original",
     "Go register+unregister of a Go value ÷ the original design's",
     ratio(register["go_value"], register["original_design"]), 3.0),
]
print("\n### Targets, Go (ratios of medians of this run)\n")
print("| measure | measured | target | |\n|---|---|---|---|")
for _, what, value, limit in TARGETS:
    if value is None:
        print(f"| {what} | n/a | ≤ {limit:.2f}× | MISSING |")
    else:
        print(f"| {what} | {value:.2f}× | ≤ {limit:.2f}× | {'PASS' if value <= limit else 'MISS'} |")

if json_path:
    document = {
        "benchmark": "bindings/go bench_test.go",
        "unit": "ns",
        "statistic": "median of repeats",
        "repeats": count,
        "benchtime": benchtime,
        "go_version": go_version,
        "loadavg_at_start": loadavg,
        "effective_parallelism_cpu2": None if parallelism is None else round(parallelism, 3),
        "access": {
            "what": "ns per access, per goroutine (parallel variants: ns/op × GOMAXPROCS)",
            "modes": dict(MODES),
            "designs": designs,
        },
        "register_unregister": {"what": "ns per register + unregister pair, 1 goroutine",
                                **register},
        "targets": [{"key": key, "measure": what, "measured": None if value is None else round(value, 4), "limit": limit,
                     "pass": value is not None and value <= limit}
                    for key, what, value, limit in TARGETS],
        "ns_per_op_as_reported": {f"{name}-{procs}": statistics.median(values)
                                  for (name, procs), values in sorted(samples.items())},
        "ns_per_op_samples": {f"{name}-{procs}": values
                              for (name, procs), values in sorted(samples.items())},
    }
    Path(json_path).write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
EOF
