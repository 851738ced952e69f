#!/usr/bin/env bash
# The C benchmark of the atomic state table (benches/table_bench.c): the
# header-inline and exported access paths against the floor (1 thread, 2
# threads on one shared handle, 2 threads on distinct handles), random-handle
# access with 1k and 1M live handles, memory per live handle,
# register+unregister with 1 and 2 threads. Prints markdown; every figure is
# a median of REPEATS runs, the designs interleaved within each run.
#
#   scripts/bench-table.sh [REPEATS] [--json FILE]    # REPEATS: default 7
#
# --json FILE also writes every median (and the targets' ratios) to FILE, for
# scripts/bench-chart.py, which draws docs/access-chart.svg.
#
# `scripts/bench-table.sh --smoke` builds it and runs one short repeat (the
# test command's check that it builds and runs).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

scripts/install.sh --uninstalled >/dev/null
export PKG_CONFIG_PATH="$root/target/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
mkdir -p target/bench
# shellcheck disable=SC2046 # pkg-config's output is a list of words
"${CC:-cc}" -std=c11 -O2 -g -Wall -Wextra -Wpedantic -Werror benches/table_bench.c \
    -o target/bench/table_bench $(pkg-config --cflags --libs gcsafety) -lpthread

if [ "${1:-}" = "--smoke" ]; then
    exec target/bench/table_bench 1 >/dev/null
fi
exec target/bench/table_bench "$@"
