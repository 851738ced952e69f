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
    # GCS_TEST_FROM=NAME: skip the stages before the one named NAME (to go
    # on from a failed stage after fixing it; CI never sets it).
    if [ -n "${GCS_TEST_FROM:-}" ]; then
        [ "$name" = "$GCS_TEST_FROM" ] || { printf '\n(skipped: %s)\n' "$name"; return 0; }
        GCS_TEST_FROM=
    fi
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

# stage_start NAME COMMAND...: start a stage in the background, its output to
# a log, for a stage that fills a core the next ones leave idle (the valgrind
# runs are single-threaded); stage_join NAME waits for it, prints its output
# and time, and stops everything if it failed. Its time overlaps the others'.
declare -A bg_pid=() bg_log=() bg_start=() bg_cmd=()
stage_start() {
    local name=$1
    shift
    if [ -n "${GCS_TEST_FROM:-}" ]; then
        [ "$name" = "$GCS_TEST_FROM" ] || { printf '\n(skipped: %s)\n' "$name"; return 0; }
        GCS_TEST_FROM=
    fi
    printf '\n==> %s (in the background): %s\n' "$name" "$*"
    bg_log[$name]=$(mktemp)
    bg_start[$name]=$EPOCHREALTIME
    bg_cmd[$name]="$*"
    (
        set -e
        "$@"
    ) >"${bg_log[$name]}" 2>&1 </dev/null &
    bg_pid[$name]=$!
}
stage_join() {
    local name=$1 status=0 took
    [ -n "${bg_pid[$name]:-}" ] || return 0 # skipped
    wait "${bg_pid[$name]}" || status=$?
    unset 'bg_pid[$name]' # reaped: its pid may be reused, the trap must not kill it
    took=$(elapsed_since "${bg_start[$name]}")
    printf '\n==> %s (its output, from the background)\n' "$name"
    cat "${bg_log[$name]}"
    rm -f "${bg_log[$name]}"
    if [ "$status" -ne 0 ]; then
        printf '\nFAILED: stage "%s" (exit status %s, after %s s)\n' "$name" "$status" "$took" >&2
        printf 'to rerun it: %s\n' "${bg_cmd[$name]}" >&2
        exit 1
    fi
    printf '<== %s: ok (%s s, in the background)\n' "$name" "$took"
    stage_names+=("$name (background)")
    stage_times+=("$took")
}
# A failing stage exits: background stages must not outlive the run (their
# commands are `timeout ...`, which passes the signal on to what it runs).
# `set +e` first: the trap runs under the script's `set -e`, where a failing
# kill (nothing left to kill) would end the trap, and the run, with status 1
# after every stage had passed. It kills only stages not yet joined, and
# leaves the run's exit status as it was.
trap 'set +e; for pid in "${bg_pid[@]}"; do pkill -TERM -P "$pid" 2>/dev/null; kill "$pid" 2>/dev/null; done' EXIT

# ----- README examples -------------------------------------------------------------

# readme_block LANG: the README's first ```LANG block (its examples are
# complete programs, so that they can be run here and cannot rot).
readme_block() {
    awk -v fence="\`\`\`$1" '$0 == fence { inside = 1; next } /^```$/ && inside { exit } inside' README.md
}

# ----- pkg-config, make install ------------------------------------------------------

# The README's C example is built and run here through pkg-config: in-tree
# (the uninstalled .pc), against a `make install DESTDIR=...` copy, and
# linked statically against libgcsafety.a with the .pc's Libs.private.
pkg_config_check() {
    fail() { echo "pkg-config check: $*" >&2; exit 1; }
    # (grep without -q below: with pipefail, -q could stop reading early and
    # fail the pipeline with SIGPIPE in the writer.)
    local example cflags=(-std=c11 -Wall -Wextra -Wpedantic -Werror)
    work=$(mktemp -d) # global: the trap runs when the stage's subshell exits
    trap 'rm -rf "$work"' EXIT
    example=$work/readme_example.c
    readme_block c >"$example"
    grep -q '^main *(' "$example" || fail "README.md's first \`\`\`c block is not a complete program"

    echo "-- in-tree: target/pkgconfig/gcsafety.pc"
    scripts/install.sh --uninstalled
    local in_tree=$root/target/pkgconfig
    PKG_CONFIG_PATH=$in_tree pkg-config --print-errors --exists gcsafety
    # shellcheck disable=SC2046 # pkg-config's output is a list of words
    cc "${cflags[@]}" "$example" -o "$work/in_tree" \
        $(PKG_CONFIG_PATH=$in_tree pkg-config --cflags --libs gcsafety gstreamer-1.0)
    "$work/in_tree"

    # A package build: installed under a staging root, used from there
    # (PKG_CONFIG_SYSROOT_DIR), then moved to its prefix as a package
    # manager would unpack it.
    local prefix=$work/root/usr stage=$work/stage version
    version=$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -n 1)
    echo "-- make install PREFIX=$prefix DESTDIR=$stage"
    make -s install PREFIX="$prefix" DESTDIR="$stage" >/dev/null
    local expected actual
    expected=$(
        printf '%s\n' include/*.h bindings/cpp/gcsafety.hpp | sed 's|.*/|include/|'
        printf 'lib/%s\n' libgcsafety.a libgcsafety.so libgcsafety.so.0 "libgcsafety.so.$version" pkgconfig/gcsafety.pc \
            gstreamer-1.0/libgstgcsafety.so
    )
    actual=$(cd "$stage$prefix" && find . ! -type d | sed 's|^\./||')
    [ "$(sort <<<"$actual")" = "$(sort <<<"$expected")" ] ||
        fail "make install installed:"$'\n'"$actual"$'\n'"expected:"$'\n'"$expected"
    [ -z "$(find "$stage" ! -type d ! -path "$stage$prefix/*")" ] || fail "make install wrote outside DESTDIR/PREFIX"
    local staged_lib=$stage$prefix/lib
    [ "$(readlink "$staged_lib/libgcsafety.so")" = "libgcsafety.so.$version" ] || fail "libgcsafety.so is not a symlink to libgcsafety.so.$version"
    [ "$(readlink "$staged_lib/libgcsafety.so.0")" = "libgcsafety.so.$version" ] || fail "libgcsafety.so.0 is not a symlink to libgcsafety.so.$version"
    objdump -p "$staged_lib/libgcsafety.so.$version" | grep 'SONAME *libgcsafety\.so\.0$' >/dev/null || fail "libgcsafety.so.$version has another soname"

    echo "-- staged: an outside program (c-tests/header_check.c) with pkg-config --cflags --libs gcsafety only"
    # shellcheck disable=SC2046
    cc -std=c99 -Wall -Wextra -Wpedantic -Werror c-tests/header_check.c -o "$work/outside" \
        $(PKG_CONFIG_SYSROOT_DIR=$stage PKG_CONFIG_PATH=$staged_lib/pkgconfig pkg-config --cflags --libs gcsafety)
    LD_LIBRARY_PATH=$staged_lib ldd "$work/outside" | grep "libgcsafety\.so\.0 => $staged_lib/libgcsafety\.so\.0 " >/dev/null ||
        fail "the outside program does not load the staged library"
    LD_LIBRARY_PATH=$staged_lib "$work/outside"

    echo "-- installed: the staged tree moved to $prefix"
    mkdir -p "$(dirname "$prefix")"
    mv "$stage$prefix" "$prefix"
    local installed=$prefix/lib/pkgconfig libdir
    libdir=$(PKG_CONFIG_PATH=$installed pkg-config --variable=libdir gcsafety)
    [ "$libdir" = "$prefix/lib" ] || fail "the installed gcsafety.pc has libdir $libdir"
    # shellcheck disable=SC2046
    cc "${cflags[@]}" "$example" -o "$work/installed" \
        $(PKG_CONFIG_PATH=$installed pkg-config --cflags --libs gcsafety gstreamer-1.0) -Wl,-rpath,"$libdir"
    readelf -d "$work/installed" | grep 'NEEDED.*\[libgcsafety\.so\.0\]' >/dev/null || fail "the program does not need libgcsafety.so.0"
    "$work/installed"
    # The tracer, loadable from the installed plugin directory, linking the
    # installed shared library.
    readelf -d "$libdir/gstreamer-1.0/libgstgcsafety.so" | grep -q 'NEEDED.*\[libgcsafety\.so\.0\]' ||
        fail "the installed tracer does not need libgcsafety.so.0"
    GST_REGISTRY=$work/registry.bin GST_PLUGIN_PATH=$libdir/gstreamer-1.0 gst-inspect-1.0 gcsafety >/dev/null ||
        fail "gst-inspect-1.0 cannot load the installed tracer"

    echo "-- installed, static: libgcsafety.a + pkg-config --static"
    # --as-needed: libgcsafety.a defines every gcs_ symbol, so the .pc's
    # -lgcsafety (the shared library) goes unused and must not be recorded.
    # shellcheck disable=SC2046
    cc "${cflags[@]}" "$example" -o "$work/static" $(PKG_CONFIG_PATH=$installed pkg-config --cflags gcsafety gstreamer-1.0) \
        -Wl,--as-needed "$libdir/libgcsafety.a" $(PKG_CONFIG_PATH=$installed pkg-config --static --libs gcsafety gstreamer-1.0)
    ! readelf -d "$work/static" | grep 'NEEDED.*libgcsafety' >/dev/null || fail "the static program needs libgcsafety.so"
    "$work/static"

    echo "-- make uninstall PREFIX=$prefix"
    make -s uninstall PREFIX="$prefix"
    [ -z "$(find "$prefix" ! -type d)" ] || fail "make uninstall left: $(find "$prefix" ! -type d)"
}

# The README's C++, Python and Go examples, each a complete program, run
# against the in-tree build. (The C example runs in the pkg-config stage; the
# Rust one is a doctest of src/lib.rs, run by `cargo test`.)
readme_examples() {
    fail() { echo "README examples: $*" >&2; exit 1; }
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    scripts/install.sh --uninstalled >/dev/null
    export PKG_CONFIG_PATH=$root/target/pkgconfig

    echo "-- C++ (\`\`\`cpp)"
    readme_block cpp >"$work/example.cpp"
    grep -q '^int main *(' "$work/example.cpp" || fail "README.md's first \`\`\`cpp block is not a complete program"
    # shellcheck disable=SC2046
    c++ -std=c++17 -Wall -Wextra -Wpedantic -Werror -Ibindings/cpp "$work/example.cpp" -o "$work/example_cpp" \
        $(pkg-config --cflags --libs gcsafety gstreamer-1.0)
    "$work/example_cpp"

    echo "-- Python (\`\`\`python, /usr/bin/python3)"
    readme_block python >"$work/example.py"
    grep -q '^import gcsafety' "$work/example.py" || fail "README.md's first \`\`\`python block does not import gcsafety"
    PYTHONPATH=$root/bindings/python /usr/bin/python3 "$work/example.py"

    echo "-- Go (\`\`\`go)"
    mkdir "$work/go"
    readme_block go >"$work/go/main.go"
    grep -q '^package main' "$work/go/main.go" || fail "README.md's first \`\`\`go block is not a main package"
    printf '%s\n' "module readme.example/app" "" "go 1.19" "" "require gcsafety.dev/gcsafety v0.0.0" \
        "replace gcsafety.dev/gcsafety => $root/bindings/go" >"$work/go/go.mod"
    (cd "$work/go" && CGO_ENABLED=1 go run .)
}

# ----- Go binding ------------------------------------------------------------------

# bindings/go (a later issue) finds the library with `#cgo pkg-config: gcsafety`
# through the in-tree .pc written by the pkg-config stage.
go_tests() {
    cd bindings/go
    PKG_CONFIG_PATH="$root/target/pkgconfig" CGO_ENABLED=1 go vet ./...
    PKG_CONFIG_PATH="$root/target/pkgconfig" CGO_ENABLED=1 go test -race -count=1 ./...
    # The benchmarks, once each (they build and their setup works).
    PKG_CONFIG_PATH="$root/target/pkgconfig" CGO_ENABLED=1 go test -count=1 -run '^$' -bench . -benchtime 1x .
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
    # The library counts the accesses made through it; the demos' accesses
    # take the inline / fast path, which it does not count.
    [ "$(metric gcs_capture_accesses_ok_total)" = "$ok" ] || fail "gcs_capture_accesses_ok_total is not $ok"
    [ "$(metric gcs_accesses_total)" = 0 ] || fail "gcs_accesses_total is not 0 (inline accesses are not counted)"
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
# The C benchmark of the table (benches/table_bench.c): builds and runs once.
stage "table benchmark (smoke)" scripts/bench-table.sh --smoke
# The model-based fuzzer (libFuzzer + ASan, nightly) for one minute from the
# committed corpus; tests/model_check.rs (in `cargo test`) is its stable twin.
# In the background: its build (own target dir) and run fill the core that
# the valgrind runs below leave idle.
stage_start "fuzzer against the model (60 s)" timeout 1500 scripts/fuzz.sh --seconds 60
# The C tests, the C++ binding's test and the library's unit tests under
# ThreadSanitizer, with the library (and std) instrumented: nightly
# -Zsanitizer=thread -Zbuild-std.
# In the background too: its build has its own target dir (its test runner
# waits for cargo's lock on target/ until the stage below is done).
stage_start "ThreadSanitizer (C tests, C++, unit tests)" timeout 1500 scripts/tsan.sh --unit
# The #[ignore]d tests: the C tests under ASan+UBSan and under valgrind
# (GLib's suppressions). Every sanitizer job runs under `timeout`: a hang
# fails the run with the stage's name instead of eating CI's 90 minutes.
stage "ignored tests (C: ASan+UBSan, valgrind)" timeout 1800 cargo test --tests -- --ignored
stage_join "fuzzer against the model (60 s)"
stage_join "ThreadSanitizer (C tests, C++, unit tests)"
# The table's unit tests under Miri: strict provenance, seeds 0..8.
stage "miri" timeout 1200 scripts/miri.sh
# Every loom model, with up to 5 preemptions per execution (tokio's CI
# bounds at 2): 10 s instead of the exhaustive search's 4 minutes, which is
# one of docs/reliability.md's long runs (scripts/loom.sh alone).
stage "loom" env LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-5}" timeout 1800 scripts/loom.sh
# The soak program for 30 s: 4 threads of random operations on real
# GStreamer objects, invariants checked all along (docs/stress.md).
stage "soak (30 s)" timeout 900 scripts/stress.sh --duration 30
stage "pkg-config, make install" pkg_config_check
stage "demo (tour)" scripts/demo.sh --tour
stage "capture demo (C, ASan)" capture_demo_c
if [ -f bindings/go/go.mod ]; then
    stage "go vet, go test -race" go_tests
    stage "capture demo (Go, -race)" capture_demo_go
fi
# The C header as C99 and C++11; gcsafety.hpp with g++ (plainly and under
# valgrind) and clang++ (ASan+UBSan).
stage "C++ binding, C header as C99/C++11" bindings/cpp/test.sh
# pytest with Debian's python3 and PyGObject, real GStreamer.
stage "Python binding (pytest)" bindings/python/test.sh
# gcsworker in gst-inspect-1.0 and gst-launch-1.0, plain and ASan+UBSan.
stage "GStreamer plugin (gst-launch)" examples/gst-plugin/test.sh
stage "README examples (C++, Python, Go)" readme_examples

printf '\nAll stages passed.\n'
for i in "${!stage_names[@]}"; do
    printf '  %-56s %8s s\n' "${stage_names[$i]}" "${stage_times[$i]}"
done
printf '  %-56s %8s s\n' "total" "$(elapsed_since "$run_start")"
