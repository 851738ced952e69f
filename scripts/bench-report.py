#!/usr/bin/env python3
"""Summarise `cargo bench --bench access` (criterion) as markdown.

Reads every <criterion dir>/<group>/<function>/new/{benchmark,estimates}.json
and prints:

* the access table: median ns per operation of each design in each group
  (1 thread; 2 threads on one shared handle; 2 threads on distinct handles),
  with its ratio to the floor of the same group;
* the registration table: median ns per register + unregister;
* the performance targets, as ratios of medians of the same run, each with
  PASS or MISS;
* how each group was run (from <group>/gcsafety-run.json, written by the
  bench): the clock, and how much CPU other processes took meanwhile.

Usage: python3 scripts/bench-report.py [CRITERION_DIR]
CRITERION_DIR defaults to $CRITERION_HOME, else $CARGO_TARGET_DIR/criterion,
else target/criterion next to this script's directory. Standard library only. Always exits 0 when
results were found (the targets are reported, not enforced).
"""

import json
import os
import sys
import time
from pathlib import Path

ACCESS_GROUPS = [
    ("access_1thread", "1 thread"),
    ("access_2threads_shared", "2 threads, one shared handle"),
    ("access_2threads_distinct", "2 threads, distinct handles"),
]

ACCESS_FUNCTIONS = [
    ("gcsafety_safe_access", "gcsafety `gcs_safe_access`"),
    ("gcsafety_begin_end", "gcsafety `gcs_access_begin` + `gcs_access_end`"),
    ("gcsafety_rust_safe_access", "gcsafety Rust `Handle::safe_access`"),
    ("floor", "floor: 2 atomic RMWs around an indirect call"),
    ("rwlock_hashmap", "Go design: std `RwLock<HashMap>` (SipHash) + `Arc`"),
    ("rwlock_hashmap_fxhash", "Go design: std `RwLock<HashMap>` (Fx hash) + `Arc`"),
    ("parking_lot_rwlock_hashmap", "Go design: parking_lot `RwLock<HashMap>` (SipHash) + `Arc`"),
    ("sharded_slab_get", "`sharded_slab::Slab::get` (guard held)"),
    ("g_weak_ref_get", "GLib `g_weak_ref_get` + `g_object_unref`"),
]

REGISTER_GROUP = "register_unregister"
REGISTER_FUNCTIONS = [
    ("gcsafety_pointer", "gcsafety `gcs_register_full` (GCS_KIND_POINTER) + `gcs_unregister`"),
    ("sharded_slab_insert_remove", "`sharded_slab::Slab::insert` + `remove`"),
    ("gcsafety_gst_object", "gcsafety `gcs_register` (fakesink) + `gcs_unregister`"),
]

RWLOCK_VARIANTS = ["rwlock_hashmap", "rwlock_hashmap_fxhash", "parking_lot_rwlock_hashmap"]


def criterion_dir():
    if len(sys.argv) > 1:
        return Path(sys.argv[1])
    if os.environ.get("CRITERION_HOME"):
        return Path(os.environ["CRITERION_HOME"])
    target = os.environ.get("CARGO_TARGET_DIR")
    if target:
        return Path(target) / "criterion"
    return Path(__file__).resolve().parent.parent / "target" / "criterion"


def load(root):
    """{(group, function): {"median", "lo", "hi", "mtime"}}"""
    results = {}
    for bench in root.glob("*/*/new/benchmark.json"):
        estimates = bench.with_name("estimates.json")
        try:
            meta = json.loads(bench.read_text())
            est = json.loads(estimates.read_text())
        except (OSError, ValueError):
            continue
        median = est["median"]
        results[(meta["group_id"], meta["function_id"])] = {
            "median": median["point_estimate"],
            "lo": median["confidence_interval"]["lower_bound"],
            "hi": median["confidence_interval"]["upper_bound"],
            "mtime": estimates.stat().st_mtime,
        }
    return results


def load_runs(root):
    """{group: the bench's gcsafety-run.json of that group}"""
    runs = {}
    for path in root.glob("*/gcsafety-run.json"):
        try:
            run = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        runs[run.get("group", path.parent.name)] = run
    return runs


def ns(value):
    if value is None:
        return "—"
    if value >= 100:
        return f"{value:.0f} ns"
    return f"{value:.1f} ns"


def stale_note(results, group, function, newest):
    """" (earlier run, HH:MM)" when a result is older than this run's others."""
    entry = results.get((group, function))
    if entry is None or newest is None or newest - entry["mtime"] < 10 * 60:
        return ""
    return " (earlier run, " + time.strftime("%H:%M", time.localtime(entry["mtime"])) + ")"


def median(results, group, function):
    entry = results.get((group, function))
    return entry["median"] if entry else None


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt_ratio(value):
    return "—" if value is None else f"{value:.2f}×"


def main():
    root = criterion_dir()
    results = load(root)
    if not results:
        print(f"no criterion results under {root}; run `cargo bench --bench access` first", file=sys.stderr)
        return 1

    ours = [r for (g, _), r in results.items() if g in dict(ACCESS_GROUPS) or g == REGISTER_GROUP]
    newest = max((r["mtime"] for r in ours), default=None)
    if ours:
        oldest = min(r["mtime"] for r in ours)
        newest = max(r["mtime"] for r in ours)
        stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(newest))
        print(f"Results of {root} (latest {stamp}).")
        if newest - oldest > 10 * 60:
            print(
                f"\n**Warning:** these results span {(newest - oldest) / 60:.0f} minutes: they come from "
                "more than one run (a filtered run updates only some; such rows say \"earlier run\")."
            )
    print()

    runs = load_runs(root)

    def running(group, function):
        """Mean running fraction of a benchmark's samples, if recorded."""
        bench = runs.get(group, {}).get("benchmarks", {}).get(function)
        return bench.get("running_mean") if bench else None

    def min_running(group):
        return runs.get(group, {}).get("min_running", 0.9)

    flagged = []

    # ----- access table -----
    print("### Access: median time per operation, as one thread sees it (× the floor of the same column)\n")
    header = "| design | " + " | ".join(label for _, label in ACCESS_GROUPS) + " |"
    print(header)
    print("|---|" + "---:|" * len(ACCESS_GROUPS))
    for function, label in ACCESS_FUNCTIONS:
        cells = []
        present = False
        for group, _ in ACCESS_GROUPS:
            value = median(results, group, function)
            floor = median(results, group, "floor")
            if value is None:
                cells.append("—")
                continue
            present = True
            note = stale_note(results, group, function, newest)
            run_fraction = running(group, function)
            # One thread on its own CPU clock is not disturbed by descheduling.
            robust = group == "access_1thread" and runs.get(group, {}).get("clock") == "cpu"
            if run_fraction is not None and run_fraction < min_running(group) and not robust:
                note += " †"
                flagged.append((group, function, run_fraction))
            if function == "floor":
                cells.append(ns(value) + note)
            else:
                cells.append(f"{ns(value)} ({fmt_ratio(ratio(value, floor))}){note}")
        if present:
            print(f"| {label} | " + " | ".join(cells) + " |")
    if flagged:
        print("\n† Its threads ran only part of the time (descheduled: the machine was busy), even after "
              "retrying such samples: " + ", ".join(f"{g}/{f} {r:.0%}" for g, f, r in flagged) + ". "
              "Two-thread figures then understate contention.")
    print()

    # ----- registration table -----
    print("### Register + unregister: median time per pair\n")
    print("| design | median | × sharded-slab |")
    print("|---|---:|---:|")
    slab = median(results, REGISTER_GROUP, "sharded_slab_insert_remove")
    known = dict(REGISTER_FUNCTIONS)
    extra = sorted(f for (g, f) in results if g == REGISTER_GROUP and f not in known)
    for function in [f for f, _ in REGISTER_FUNCTIONS] + extra:
        value = median(results, REGISTER_GROUP, function)
        if value is None:
            continue
        label = known.get(function, f"`{function}`") + stale_note(results, REGISTER_GROUP, function, newest)
        print(f"| {label} | {ns(value)} | {fmt_ratio(ratio(value, slab))} |")
    print()

    # ----- targets -----
    g1, gs, gd = (g for g, _ in ACCESS_GROUPS)
    safe = {g: median(results, g, "gcsafety_safe_access") for g in (g1, gs, gd)}
    floor = {g: median(results, g, "floor") for g in (g1, gs, gd)}
    rwlock = {g: median(results, g, "rwlock_hashmap") for g in (g1, gs, gd)}
    fastest_rwlock = {}
    for g in (g1, gs, gd):
        values = [(median(results, g, v), v) for v in RWLOCK_VARIANTS]
        values = [(value, v) for value, v in values if value is not None]
        fastest_rwlock[g] = min(values) if values else (None, None)

    def verdict(value, limit, at_most):
        if value is None:
            return "n/a"
        ok = value <= limit if at_most else value >= limit
        return "PASS" if ok else "MISS"

    rows = [
        ("safe_access ÷ floor, 1 thread", ratio(safe[g1], floor[g1]), "≤ 2.0×", 2.0, True, 1.5),
        ("safe_access ÷ floor, 2 threads distinct", ratio(safe[gd], floor[gd]), "≤ 2.0×", 2.0, True, 1.5),
        ("RwLock design ÷ safe_access, 1 thread", ratio(rwlock[g1], safe[g1]), "≥ 2.5×", 2.5, False, None),
        ("RwLock design ÷ safe_access, 2 threads shared", ratio(rwlock[gs], safe[gs]), "≥ 4.0×", 4.0, False, None),
        (
            "register+unregister (POINTER) ÷ sharded-slab insert+remove",
            ratio(median(results, REGISTER_GROUP, "gcsafety_pointer"), slab),
            "≤ 2.0×",
            2.0,
            True,
            None,
        ),
    ]
    print("### Targets (ratios of medians of this run)\n")
    print("| target | measured | goal | result | stretch (≤ 1.5×) |")
    print("|---|---:|---:|:---:|:---:|")
    for name, value, goal, limit, at_most, stretch in rows:
        stretch_cell = verdict(value, stretch, True) if stretch is not None else ""
        print(f"| {name} | {fmt_ratio(value)} | {goal} | {verdict(value, limit, at_most)} | {stretch_cell} |")
    print()

    print("Informational ratios:\n")
    info = [
        ("begin+end ÷ floor, 1 thread", ratio(median(results, g1, "gcsafety_begin_end"), floor[g1])),
        ("safe_access ÷ floor, 2 threads shared", ratio(safe[gs], floor[gs])),
        ("safe_access 2 threads distinct ÷ safe_access 1 thread", ratio(safe[gd], safe[g1])),
        ("Rust Handle::safe_access ÷ gcs_safe_access, 1 thread",
         ratio(median(results, g1, "gcsafety_rust_safe_access"), safe[g1])),
        ("RwLock design ÷ safe_access, 2 threads distinct", ratio(rwlock[gd], safe[gd])),
    ]
    for g, label in ((g1, "1 thread"), (gs, "2 threads shared"), (gd, "2 threads distinct")):
        value, variant = fastest_rwlock[g]
        if variant is not None:
            info.append((f"fastest RwLock variant (`{variant}`) ÷ safe_access, {label}", ratio(value, safe[g])))
    for g, label in ((g1, "1 thread"), (gs, "2 threads shared"), (gd, "2 threads distinct")):
        info.append((f"sharded_slab get ÷ safe_access, {label}", ratio(median(results, g, "sharded_slab_get"), safe[g])))
        info.append((f"g_weak_ref_get ÷ safe_access, {label}", ratio(median(results, g, "g_weak_ref_get"), safe[g])))
    for name, value in info:
        if value is not None:
            print(f"* {name}: {fmt_ratio(value)}")
    print()

    # ----- provenance -----
    if runs:
        print("### How each group ran\n")
        print("Other processes' CPU: CPU time used by everything but the bench while the group ran, from "
              "/proc/stat. Threads running: per benchmark, the mean over samples of the least (thread CPU time "
              "÷ wall time) of its threads; the lowest benchmark is shown, and samples below "
              "the threshold were measured again (retried).\n")
        print("| group | clock | other processes' CPU | steal | threads running (lowest) | retried samples "
              "| load average (start → end) | finished |")
        print("|---|---|---:|---:|---:|---:|---|---|")
        disturbed = []
        for group in [g for g, _ in ACCESS_GROUPS] + [REGISTER_GROUP]:
            run = runs.get(group)
            if not run:
                continue
            other = run.get("other_cpu_percent")
            steal = run.get("steal_percent")
            clock = run.get("clock", "?")
            if run.get("state_retention_ms") is not None:
                clock += f", retention {run['state_retention_ms']} ms"
            finished = run.get("finished_unix")
            finished = time.strftime("%H:%M:%S", time.localtime(finished)) if finished else "?"
            other_cell = "?" if other is None else f"{other:.0f}% of a CPU"
            steal_cell = "?" if steal is None else f"{steal:.0f}%"
            benches = run.get("benchmarks", {})
            if benches:
                name, worst = min(benches.items(), key=lambda item: item[1]["running_mean"])
                running_cell = f"{worst['running_mean']:.0%} ({name})"
                retried_cell = str(sum(b.get("retried", 0) for b in benches.values()))
            else:
                running_cell = retried_cell = "?"
            print(f"| {group} | {clock} | {other_cell} | {steal_cell} | {running_cell} | {retried_cell} | "
                  f"{run.get('loadavg_start', '?')} → {run.get('loadavg_end', '?')} | {finished} |")
            if (other or 0) > 20 or (steal or 0) > 20:
                disturbed.append(group)
        if disturbed:
            print(f"\n**Warning:** other processes used the CPUs while {', '.join(disturbed)} ran: "
                  "those figures are disturbed. Rerun on a quiet machine; with GCS_BENCH_CLOCK=cpu the "
                  "one-thread figures hold up on a busy machine, the two-thread ones do not.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
