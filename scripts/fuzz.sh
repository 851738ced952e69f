#!/usr/bin/env bash
# The model-based fuzzer of the C ABI (fuzz/fuzz_targets/model.rs, checked
# against tests/model/mod.rs), built with libFuzzer's coverage and
# AddressSanitizer on nightly — what `cargo fuzz build -O model` builds,
# without needing cargo-fuzz installed.
#
#   scripts/fuzz.sh [--seconds N] [--jobs J] [--merge] [-- LIBFUZZER-ARGS...]
#
#   --seconds N  run for N seconds (default 60: the CI smoke run)
#   --jobs J     J fuzzing processes sharing the corpus (default 1)
#   --merge      afterwards, minimise the corpus into fuzz/corpus/model
#                (to commit what a long run learnt)
#
# New inputs go to target/fuzz/corpus (seeded from the committed corpus
# fuzz/corpus/model); a failing input is written to target/fuzz/artifacts
# and reproduced with `scripts/fuzz.sh -- target/fuzz/artifacts/crash-...`
# or, on stable, by copying it into fuzz/corpus/model and running
# `cargo test --test model_check model_corpus`.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

seconds=60 jobs=1 merge=0 extra=()
while [ $# -gt 0 ]; do
    case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --merge) merge=1; shift ;;
    --) shift; extra=("$@"); break ;;
    *) echo "scripts/fuzz.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

toolchain=${GCS_FUZZ_TOOLCHAIN:-nightly}
triple=$(rustc +"$toolchain" -vV | sed -n 's/^host: //p')
# The flags of `cargo fuzz build -O` (cargo-fuzz 0.12): libFuzzer's
# coverage counters and comparison tracing, AddressSanitizer, and the
# `fuzzing` cfg; debug assertions on, as in `cargo fuzz`'s default.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Zsanitizer=address -Cdebug-assertions"
export CARGO_TARGET_DIR=$root/target/fuzz/build
# The shim and libFuzzer's C++ are compiled by cc-rs: with ASan too.
export CFLAGS="-fsanitize=address" CXXFLAGS="-fsanitize=address"

echo "fuzz: building (cargo +$toolchain build --release, target $triple)"
(cd fuzz && cargo +"$toolchain" build --release --target "$triple" --bin model)
binary=$CARGO_TARGET_DIR/$triple/release/model

work=$root/target/fuzz
mkdir -p "$work/corpus" "$work/artifacts"
# Leaks are the model's business (every release counted); GLib's one-time
# allocations would otherwise be reported as leaks at exit.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1}

if [ ${#extra[@]} -gt 0 ] && [ -f "${extra[0]}" ]; then
    exec "$binary" "${extra[@]}" # reproduce inputs
fi

args=(-max_total_time="$seconds" -max_len=1024 -timeout=60 -rss_limit_mb=4096
    -artifact_prefix="$work/artifacts/" -print_final_stats=1)
if [ "$jobs" -gt 1 ]; then
    args+=(-jobs="$jobs" -workers="$jobs")
fi
echo "fuzz: $binary ${args[*]} ${extra[*]} target/fuzz/corpus fuzz/corpus/model"
# timeout: a hang past the run's length (plus building-free slack) is a failure.
timeout --signal=KILL $((seconds + 300)) "$binary" "${args[@]}" "${extra[@]}" "$work/corpus" fuzz/corpus/model

if [ "$merge" -eq 1 ]; then
    merged=$(mktemp -d)
    "$binary" -merge=1 -max_len=1024 "$merged" fuzz/corpus/model "$work/corpus"
    # Named inputs (regression-*: the input of a fixed bug) stay as they are.
    find fuzz/corpus/model -type f ! -name 'regression-*' -delete
    cp "$merged"/* fuzz/corpus/model/
    rm -rf "$merged"
    echo "fuzz: fuzz/corpus/model now holds $(find fuzz/corpus/model -type f | wc -l) inputs (commit them)"
fi
