#!/usr/bin/env bash
# The soak/stress program: N threads x T seconds of random operations on real
# GStreamer objects, with invariants checked all along (docs/stress.md).
#
#   scripts/stress.sh [ARGS...]          build (release library) and run
#                                        examples/stress/gcs-stress.c
#   scripts/stress.sh --asan [ARGS...]   the same program built with clang and
#                                        AddressSanitizer (+UBSan)
#   scripts/stress.sh --build            build both, run nothing
#
# ARGS go to the program: --threads N (default 4), --duration SECONDS
# (default 30), --seed S (default from the clock; printed, so a failing run
# can be repeated thread for thread), --pool N, --rss-limit-mib MIB;
# `scripts/stress.sh --help` for all.
#
#   scripts/stress.sh --duration 30                  what CI runs
#   scripts/stress.sh --threads 8 --duration 14400   a four-hour soak
#
# Builds the library in release mode (scripts/install.sh --uninstalled) and
# compiles the program against include/ and target/release through the
# in-tree pkg-config file. Exit status 0 only when every invariant held.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

mode=run
case "${1:-}" in
    --asan) mode=asan; shift ;;
    --build) mode=build; shift ;;
esac

scripts/setup.sh
scripts/install.sh --uninstalled

export PKG_CONFIG_PATH="$root/target/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
mkdir -p target/stress
cflags=(-std=c11 -g -Wall -Wextra -Wpedantic -Werror -pthread)

build_plain() {
    # shellcheck disable=SC2046 # pkg-config's output is a list of words
    "${CC:-cc}" "${cflags[@]}" -O2 examples/stress/gcs-stress.c -o target/stress/gcs-stress \
        $(pkg-config --cflags --libs gcsafety gstreamer-1.0)
}
build_asan() {
    # shellcheck disable=SC2046
    clang "${cflags[@]}" -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined \
        -fno-omit-frame-pointer examples/stress/gcs-stress.c -o target/stress/gcs-stress-asan \
        $(pkg-config --cflags --libs gcsafety gstreamer-1.0)
}

case "$mode" in
    run)
        build_plain
        exec target/stress/gcs-stress "$@"
        ;;
    asan)
        build_asan
        # GStreamer and GLib are not instrumented; their process-lifetime
        # allocations are not leaks worth reporting (the program counts its
        # own objects: each finalized exactly once). A smaller quarantine
        # keeps a long run's memory bounded; freed memory still stays
        # poisoned long enough to catch a use after free of a recent object.
        ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:halt_on_error=1:quarantine_size_mb=64} \
            exec target/stress/gcs-stress-asan "$@"
        ;;
    build)
        build_plain
        build_asan
        ;;
esac
