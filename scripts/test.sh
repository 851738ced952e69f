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
stage "demo" scripts/demo.sh
if [ -f bindings/go/go.mod ]; then
    stage "go vet, go test -race" go_tests
fi

printf '\nAll stages passed.\n'
for i in "${!stage_names[@]}"; do
    printf '  %-42s %8s s\n' "${stage_names[$i]}" "${stage_times[$i]}"
done
printf '  %-42s %8s s\n' "total" "$(elapsed_since "$run_start")"
