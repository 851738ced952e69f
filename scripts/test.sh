#!/usr/bin/env bash
# Every check gcsafety has, in order, failing fast: the README's test command
# and what CI runs (.ci/run).
#
#   scripts/test.sh
#
# Installs missing system packages first (scripts/setup.sh, which prints the
# command to run when it cannot). Each stage prints the command it runs and
# its time; a failing stage stops the run with its name and that command.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

stage_names=()
stage_times=()
run_start=$EPOCHREALTIME

elapsed_since() { # seconds since an $EPOCHREALTIME, with one decimal
    awk -v start="$1" -v now="$EPOCHREALTIME" 'BEGIN { printf "%.1f", now - start }'
}

# stage NAME COMMAND...: run one stage (a command or a function of this
# script) in a subshell with `set -e`, time it, stop everything if it fails.
stage() {
    local name=$1 start status
    shift
    printf '\n==> %s: %s\n' "$name" "$*"
    start=$EPOCHREALTIME
    set +e
    (
        set -e
        "$@"
    )
    status=$?
    set -e
    local took
    took=$(elapsed_since "$start")
    if [ "$status" -ne 0 ]; then
        printf '\nFAILED: stage "%s" (exit status %s, after %s s)\n' "$name" "$status" "$took" >&2
        printf 'to rerun it: %s\n' "$*" >&2
        exit 1
    fi
    printf '<== %s: ok (%s s)\n' "$name" "$took"
    stage_names+=("$name")
    stage_times+=("$took")
}

# ----- pkg-config --------------------------------------------------------------

# The README's C example (its first ```c block, a complete program) is built
# and run here through pkg-config, so neither can rot: in-tree (the
# uninstalled .pc), installed into a temporary prefix (scripts/install.sh),
# and linked statically against libgcsafety.a with the .pc's Libs.private.
pkg_config_check() {
    fail() { echo "pkg-config check: $*" >&2; exit 1; }
    local example cflags=(-std=c11 -Wall -Wextra -Wpedantic -Werror)
    work=$(mktemp -d) # global: the trap runs when the stage's subshell exits
    trap 'rm -rf "$work"' EXIT
    example=$work/readme_example.c
    awk '/^```c$/ { inside = 1; next } /^```$/ && inside { exit } inside' README.md >"$example"
    grep -q '^main *(' "$example" || fail "README.md's first \`\`\`c block is not a complete program"

    echo "-- in-tree: target/pkgconfig/gcsafety.pc"
    scripts/install.sh --uninstalled
    local in_tree=$root/target/pkgconfig
    PKG_CONFIG_PATH=$in_tree pkg-config --print-errors --exists gcsafety
    # shellcheck disable=SC2046 # pkg-config's output is a list of words
    cc "${cflags[@]}" "$example" -o "$work/in_tree" \
        $(PKG_CONFIG_PATH=$in_tree pkg-config --cflags --libs gcsafety gstreamer-1.0)
    "$work/in_tree"

    echo "-- installed: scripts/install.sh --prefix $work/prefix"
    scripts/install.sh --prefix "$work/prefix" >/dev/null
    local installed=$work/prefix/lib/pkgconfig libdir
    libdir=$(PKG_CONFIG_PATH=$installed pkg-config --variable=libdir gcsafety)
    [ "$libdir" = "$work/prefix/lib" ] || fail "the installed gcsafety.pc has libdir $libdir"
    [ "$(readlink "$libdir/libgcsafety.so")" = libgcsafety.so.0 ] || fail "libgcsafety.so is not a symlink to libgcsafety.so.0"
    objdump -p "$libdir/libgcsafety.so.0" | grep -q 'SONAME *libgcsafety\.so\.0$' || fail "libgcsafety.so.0 has another soname"
    # shellcheck disable=SC2046
    cc "${cflags[@]}" "$example" -o "$work/installed" \
        $(PKG_CONFIG_PATH=$installed pkg-config --cflags --libs gcsafety gstreamer-1.0) -Wl,-rpath,"$libdir"
    readelf -d "$work/installed" | grep -q 'NEEDED.*\[libgcsafety\.so\.0\]' || fail "the program does not need libgcsafety.so.0"
    "$work/installed"

    echo "-- installed, static: libgcsafety.a + pkg-config --static"
    # --as-needed: libgcsafety.a defines every gcs_ symbol, so the .pc's
    # -lgcsafety (the shared library) goes unused and must not be recorded.
    # shellcheck disable=SC2046
    cc "${cflags[@]}" "$example" -o "$work/static" $(PKG_CONFIG_PATH=$installed pkg-config --cflags gcsafety gstreamer-1.0) \
        -Wl,--as-needed "$libdir/libgcsafety.a" $(PKG_CONFIG_PATH=$installed pkg-config --static --libs gcsafety gstreamer-1.0)
    ! readelf -d "$work/static" | grep -q 'NEEDED.*libgcsafety' || fail "the static program needs libgcsafety.so"
    "$work/static"
}

# ----- Go binding ------------------------------------------------------------------

# bindings/go (a later issue) finds the library with `#cgo pkg-config: gcsafety`
# through the in-tree .pc written by the pkg-config stage.
go_tests() {
    cd bindings/go
    PKG_CONFIG_PATH="$root/target/pkgconfig" CGO_ENABLED=1 go vet ./...
    PKG_CONFIG_PATH="$root/target/pkgconfig" CGO_ENABLED=1 go test -race -count=1 ./...
}

# ----- the capture demos -----------------------------------------------------------

# check_capture_summary OUTPUT METRICS: what a capture demo's summary (its
# stdout) and Prometheus file must say after a run: PASS, frames came, each
# was finalized and freed once, nothing leaked or was used after its free,
# and the Prometheus text agrees with the summary.
check_capture_summary() {
    local out=$1 metrics=$2
    fail() { echo "capture summary ($out): $*" >&2; exit 1; }
    field() { # the summary row KEY's value
        awk -v key="$1:" '$0 ~ "^  " key { sub("^  " key " *", ""); print; exit }' "$out"
    }
    metric() { awk -v name="$1" '$1 == name { print $2; exit }' "$metrics"; }
    local result frames finalizers freed leaks uaf ok
    result=$(field result)
    [[ $result == PASS* ]] || fail "result: ${result:-missing}"
    frames=$(field frames | awk '{ print $1 }')
    [[ $frames =~ ^[0-9]+$ ]] && [ "$frames" -gt 0 ] || fail "frames: ${frames:-missing}"
    finalizers=$(field finalizers)
    [[ $finalizers == "$frames run, 0 failed"* ]] || fail "finalizers: '$finalizers' for $frames frames"
    freed=$(field "samples freed")
    [[ $freed == "$frames of $frames "* ]] || fail "samples freed: '$freed' for $frames frames"
    leaks=$(field leaks)
    [ "$leaks" = 0 ] || fail "leaks: '$leaks'"
    uaf=$(field "use after free")
    [ "$uaf" = 0 ] || fail "use after free: '$uaf'"
    ok=$(field "accesses ok" | awk '{ print $1 }')
    [[ $ok =~ ^[0-9]+$ ]] && [ "$ok" -gt 0 ] || fail "accesses ok: '$ok'"
    field "cost per access" | grep -Eq '^[0-9]+\.[0-9] ns per ' || fail "no cost per access"
    [ -s "$metrics" ] || fail "no Prometheus text in $metrics"
    [ "$(metric gcs_capture_frames_total)" = "$frames" ] || fail "gcs_capture_frames_total is not $frames"
    [ "$(metric gcs_registrations_total)" = "$frames" ] || fail "gcs_registrations_total is not $frames"
    [ "$(metric gcs_releases_total)" = "$frames" ] || fail "gcs_releases_total is not $frames"
    [ "$(metric gcs_capture_samples_freed_total)" = "$frames" ] || fail "gcs_capture_samples_freed_total is not $frames"
    [ "$(metric gcs_accesses_total)" = "$ok" ] || fail "gcs_accesses_total is not $ok"
    [ "$(metric gcs_active_handles)" = 0 ] || fail "gcs_active_handles is not 0"
    [ "$(metric gcs_capture_invariants_broken)" = 0 ] || fail "gcs_capture_invariants_broken is not 0"
    echo "capture summary ok: $frames frames, $ok accesses, every sample finalized and freed once, no leak"
}

# The C capture demo (examples/capture/gcs-capture-demo.c) for 2 s, plainly
# and under AddressSanitizer, through scripts/demo.sh; then a pipeline that
# yields no frame, which it must report as a failure.
capture_demo_c() {
    local dir=target/demo/test status=0
    mkdir -p "$dir"
    scripts/demo.sh --duration 2 --metrics-file "$dir/c.prom" | tee "$dir/c.out"
    check_capture_summary "$dir/c.out" "$dir/c.prom"
    echo "-- under AddressSanitizer"
    scripts/demo.sh --asan --duration 2 --metrics-file "$dir/asan.prom" | tee "$dir/asan.out"
    check_capture_summary "$dir/asan.out" "$dir/asan.prom"
    echo "-- a pipeline without frames must fail"
    target/demo/gcs-capture-demo --duration 1 --metrics-file "$dir/none.prom" \
        --pipeline 'videotestsrc num-buffers=0 ! appsink name=sink' >"$dir/none.out" 2>&1 || status=$?
    [ "$status" -eq 1 ] && grep -q 'no frame came out' "$dir/none.out" ||
        { cat "$dir/none.out"; echo "the capture demo did not fail on a pipeline without frames (status $status)" >&2; exit 1; }
}

# The Go capture demo (bindings/go/examples/capture), built with -race, for
# 2 s, its Prometheus text fetched over -http while it runs; the same metric
# names as the C demo's.
capture_demo_go() {
    local dir=$root/target/demo/test pid status=0 url=
    mkdir -p "$dir"
    (cd bindings/go && PKG_CONFIG_PATH="$root/target/pkgconfig" CGO_ENABLED=1 \
        go build -race -o "$dir/capture-go-race" ./examples/capture)
    "$dir/capture-go-race" -duration 2 -http 127.0.0.1:0 -metrics-file "$dir/go.prom" >"$dir/go.out" 2>&1 &
    pid=$!
    # The address is printed before the pipeline starts.
    while kill -0 "$pid" 2>/dev/null && [ -z "$url" ]; do
        url=$(sed -n 's|.*serving the Prometheus text at \(http://[^ ]*\)$|\1|p' "$dir/go.out")
        [ -n "$url" ] || sleep 0.05
    done
    [ -n "$url" ] && curl -fsS "$url" >"$dir/go-http.prom" || { kill "$pid" 2>/dev/null; cat "$dir/go.out"; exit 1; }
    wait "$pid" || status=$?
    cat "$dir/go.out"
    [ "$status" -eq 0 ] || { echo "the Go capture demo exited with $status" >&2; exit 1; }
    grep -q '^gcs_capture_frames_total ' "$dir/go-http.prom" || { echo "-http served no capture metrics" >&2; exit 1; }
    check_capture_summary "$dir/go.out" "$dir/go.prom"
    if [ -f "$dir/c.prom" ]; then
        diff <(grep '^# ' "$dir/c.prom") <(grep '^# ' "$dir/go.prom") ||
            { echo "the C and Go demos' Prometheus texts differ in their metrics" >&2; exit 1; }
    fi
}

# ----- the stages ------------------------------------------------------------------

stage "setup" scripts/setup.sh
stage "rustfmt" cargo fmt --all -- --check
stage "clippy" cargo clippy --all-targets -- -D warnings
stage "rustdoc" env RUSTDOCFLAGS=-Dwarnings cargo doc --no-deps
# Unit tests, Rust integration tests (header freshness, exported symbols,
# the Rust API), the C tests (plain) and the doctests.
stage "cargo test" cargo test
# The benchmarks, each run once in test mode: they build and their setup works.
stage "benches (test mode)" cargo test --benches
# The #[ignore]d tests: the C tests under ASan+UBSan and under valgrind.
stage "ignored tests (C: ASan+UBSan, valgrind)" cargo test --tests -- --ignored
stage "miri" scripts/miri.sh
stage "loom" scripts/loom.sh
stage "pkg-config" pkg_config_check
stage "demo (tour)" scripts/demo.sh --tour
stage "capture demo (C, ASan)" capture_demo_c
if [ -f bindings/go/go.mod ]; then
    stage "go vet, go test -race" go_tests
    stage "capture demo (Go, -race)" capture_demo_go
fi

printf '\nAll stages passed.\n'
for i in "${!stage_names[@]}"; do
    printf '  %-42s %8s s\n' "${stage_names[$i]}" "${stage_times[$i]}"
done
printf '  %-42s %8s s\n' "total" "$(elapsed_since "$run_start")"
