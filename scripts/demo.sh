#!/usr/bin/env bash
# The demos: gcsafety in real GStreamer programs.
#
#   scripts/demo.sh [ARGS...]          the live capture demo (C), 10 s by default:
#                                      examples/capture/gcs-capture-demo.c
#   scripts/demo.sh --go [ARGS...]     the same demo in Go (bindings/go/examples/capture)
#   scripts/demo.sh --tour [ARGS...]   the guided tour of the API (examples/demo.c)
#   scripts/demo.sh --asan [ARGS...]   the capture demo built with AddressSanitizer
#   scripts/demo.sh --build            build everything, run nothing
#
# ARGS go to the program: `scripts/demo.sh --duration 30 --source ximagesrc`,
# `scripts/demo.sh --help` for the capture demo's options. The capture demos
# write their Prometheus text to target/demo/capture-metrics.prom (C) and
# target/demo/capture-metrics-go.prom (Go) unless given --metrics-file.
#
# `scripts/demo.sh --asan --unguarded` runs the same workload with raw
# pointers and manual refcounts under AddressSanitizer: it is EXPECTED TO
# FAIL (heap-use-after-free or double-free), which is the point.
#
# Installs missing system packages (scripts/setup.sh, which prints the
# command to run when it cannot), builds the library in release mode and
# compiles the programs against it through the in-tree pkg-config file
# (target/pkgconfig/gcsafety.pc). Each program checks its own claims and
# exits non-zero if one fails.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

mode=capture
case "${1:-}" in
    --tour) mode=tour; shift ;;
    --go) mode=go; shift ;;
    --asan) mode=asan; shift ;;
    --build) mode=build; shift ;;
esac

scripts/setup.sh
scripts/install.sh --uninstalled

export PKG_CONFIG_PATH="$root/target/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
mkdir -p target/demo
cflags=(-std=c11 -O2 -g -Wall -Wextra -Wpedantic -Werror)
capture_packages=(gcsafety gstreamer-1.0 gstreamer-app-1.0 gstreamer-video-1.0)

build_tour() {
    # shellcheck disable=SC2046 # pkg-config's output is a list of words
    "${CC:-cc}" "${cflags[@]}" examples/demo.c -o target/demo/demo \
        $(pkg-config --cflags --libs gcsafety gstreamer-1.0)
}
build_capture() {
    # shellcheck disable=SC2046
    "${CC:-cc}" "${cflags[@]}" examples/capture/gcs-capture-demo.c -o target/demo/gcs-capture-demo \
        $(pkg-config --cflags --libs "${capture_packages[@]}")
}
build_capture_asan() {
    # shellcheck disable=SC2046
    clang "${cflags[@]}" -O1 -fsanitize=address -fno-omit-frame-pointer \
        examples/capture/gcs-capture-demo.c -o target/demo/gcs-capture-demo-asan \
        $(pkg-config --cflags --libs "${capture_packages[@]}")
}
build_go() {
    # -a is not needed: the Go build cache keys on the .pc path's contents
    # only through pkg-config's output, which names this tree.
    (cd bindings/go && CGO_ENABLED=1 go build -o "$root/target/demo/gcs-capture-demo-go" ./examples/capture)
}

case "$mode" in
    tour)
        build_tour
        printf '\n'
        exec target/demo/demo "$@"
        ;;
    capture)
        build_capture
        printf '\n'
        exec target/demo/gcs-capture-demo --metrics-file target/demo/capture-metrics.prom "$@"
        ;;
    asan)
        build_capture_asan
        printf '\n'
        # The GStreamer libraries are not instrumented; their process-lifetime
        # allocations are not leaks worth reporting here (the demo counts its
        # own: every sample freed exactly once).
        ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:halt_on_error=1} \
            exec target/demo/gcs-capture-demo-asan --metrics-file target/demo/capture-metrics.prom "$@"
        ;;
    go)
        build_go
        printf '\n'
        exec target/demo/gcs-capture-demo-go --metrics-file target/demo/capture-metrics-go.prom "$@"
        ;;
    build)
        build_tour
        build_capture
        build_capture_asan
        if command -v go >/dev/null 2>&1; then build_go; fi
        ;;
esac
