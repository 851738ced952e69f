#!/usr/bin/env bash
# ThreadSanitizer with the Rust side instrumented too (docs/tsan.md):
#
#   1. builds libgcsafety.so with `-Zsanitizer=thread -Zbuild-std` (nightly,
#      rust-src), so that std, the dependencies and the library are all
#      instrumented: a C-only TSan build sees the library's atomics as plain
#      memory and reports false races;
#   2. runs every C test (tests/c_tests.rs, Variant::Tsan; the header's inline
#      path is test_inline) built with clang -fsanitize=thread against it,
#      with the Rust toolchain's TSan runtime as the process's only runtime;
#   3. runs the C++ binding's test (bindings/cpp) the same way;
#   4. with --unit, runs every unit test of the library (the table, the
#      per-thread access tracker, the finalizer executor, ...) under TSan
#      too: it builds the dev-dependencies and the test harness with TSan,
#      about a minute more on 2 cores. scripts/test.sh (CI) passes it.
#
#   scripts/tsan.sh                          # steps 1-3
#   scripts/tsan.sh --unit                   # and step 4
#   GCS_C_TEST=test_race scripts/tsan.sh     # one C test (and the C++ one)
#
# Builds in target/tsan (GCS_TSAN_TARGET_DIR), never in the shared target/.
# The toolchain is GCS_TSAN_TOOLCHAIN (default nightly); the profile is
# GCS_TSAN_PROFILE (default dev: std and the dependencies build in half the
# time of a release build, and the tests are short). Every step runs under
# `timeout`; TSAN_OPTIONS halts on the first report.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

unit=false
case "${1:-}" in
    "") ;;
    --unit) unit=true ;;
    *) echo "usage: $0 [--unit]" >&2; exit 2 ;;
esac

start=$(date +%s.%N)
out=
finish() {
    local status=$? took
    [ -z "$out" ] || rm -rf "$out"
    took=$(awk -v start="$start" -v now="$(date +%s.%N)" 'BEGIN { printf "%.1f", now - start }')
    if [ "$status" -eq 0 ]; then
        printf 'tsan: ok (%s s)\n' "$took"
    else
        printf 'tsan: FAILED (exit status %s, after %s s)\n' "$status" "$took" >&2
    fi
}
trap finish EXIT
step() {
    printf 'tsan: %s (%.1f s)\n' "$1" \
        "$(awk -v start="$start" -v now="$(date +%s.%N)" 'BEGIN { print now - start }')"
}

toolchain=${GCS_TSAN_TOOLCHAIN:-nightly}
profile=${GCS_TSAN_PROFILE:-dev}
target=x86_64-unknown-linux-gnu
sysroot=$(rustup run "$toolchain" rustc --print sysroot)
if [ ! -d "$sysroot/lib/rustlib/src/rust/library" ]; then
    echo "tsan: rustup component add --toolchain $toolchain rust-src"
    rustup component add --toolchain "$toolchain" rust-src
fi
# The runtime rustc links into a Rust executable built with
# -Zsanitizer=thread; the C programs link it themselves.
runtime="$sysroot/lib/rustlib/$target/lib/librustc-${toolchain%%-*}_rt.tsan.a"
[ -f "$runtime" ] || runtime=$(find "$sysroot/lib/rustlib/$target/lib" -name 'librustc-*_rt.tsan.a' | head -n 1)
[ -f "$runtime" ] || { echo "tsan: no TSan runtime in $sysroot" >&2; exit 1; }

export CARGO_TARGET_DIR="${GCS_TSAN_TARGET_DIR:-$root/target/tsan}"
profile_dir=$profile
[ "$profile" = dev ] && profile_dir=debug
# tsan_cargo SUBCOMMAND ARGS...: cargo SUBCOMMAND with TSan, the build-std
# options before ARGS (which may end in `-- test-args`). --target keeps
# -Zsanitizer off build scripts and proc macros, which run on the host.
tsan_cargo() {
    RUSTFLAGS="-Zsanitizer=thread" timeout 900 cargo "+$toolchain" "$1" \
        -Zbuild-std --target "$target" --profile "$profile" "${@:2}"
}
lib_dir="$CARGO_TARGET_DIR/$target/$profile_dir"
suppressions="$root/c-tests/tsan.supp"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$suppressions${TSAN_OPTIONS:+:$TSAN_OPTIONS}"

printf 'tsan: %s, runtime %s, profile %s, CARGO_TARGET_DIR=%s\n' \
    "$(rustup run "$toolchain" rustc --version)" "$runtime" "$profile" "$CARGO_TARGET_DIR"

# 1. The library: the cdylib only (no staticlib, no rlib to link).
tsan_cargo rustc --lib --crate-type cdylib
# Programs linked against it look for its soname (build.rs sets it).
ln -sf libgcsafety.so "$lib_dir/libgcsafety.so.0"
step "library built"

# 2. The C tests. The runner is an ordinary test binary, built in the shared
# target/ by the default toolchain; only the programs it builds use TSan.
(
    unset CARGO_TARGET_DIR TSAN_OPTIONS
    GCS_TSAN_LIB_DIR=$lib_dir GCS_TSAN_RUNTIME=$runtime \
        timeout 900 cargo test --test c_tests -- --ignored --exact c_tests_tsan --nocapture
)
step "C tests passed"

# 3. The C++ binding's test (the same link as the C tests').
out=$(mktemp -d)
# shellcheck disable=SC2207 # pkg-config's output is a list of words
gst=($(pkg-config --cflags --libs gstreamer-1.0))
# shellcheck disable=SC2207
glib_cflags=($(pkg-config --cflags glib-2.0))
tsan_flags=(-g -O1 -pthread -fsanitize=thread -fno-sanitize-link-runtime -fno-omit-frame-pointer)
clang "${tsan_flags[@]}" -std=c11 -Wall -Wextra -Wpedantic -Werror "${glib_cflags[@]}" \
    -c c-tests/tsan_glib_locks.c -o "$out/tsan_glib_locks.o"
clang++ -std=c++17 -Wall -Wextra -Wpedantic -Werror "${tsan_flags[@]}" -Iinclude -Ibindings/cpp \
    bindings/cpp/tests/test_gcsafety.cpp "$out/tsan_glib_locks.o" -o "$out/test_cpp_tsan" \
    -Wl,--whole-archive "$runtime" -Wl,--no-whole-archive -rdynamic \
    -L"$lib_dir" -lgcsafety -Wl,-rpath,"$lib_dir" "${gst[@]}" -lm -lrt
GST_REGISTRY_FORK=no timeout --kill-after=10 300 "$out/test_cpp_tsan"
step "C++ binding test passed"

# 4. The library's unit tests. report_thread_leaks=0 here only: the global
# finalizer executor's worker threads are never joined (by design: they
# outlive every test), and TSan would report each as leaked at exit. The
# C programs of steps 2 and 3 keep the report.
if $unit; then
    TSAN_OPTIONS="$TSAN_OPTIONS:report_thread_leaks=0" tsan_cargo test --lib -- --test-threads=2
    step "unit tests passed"
fi
