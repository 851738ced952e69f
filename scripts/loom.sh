#!/usr/bin/env bash
# Model-check the handle table's slot protocol with loom: the models in
# src/table/loom.rs run the real table code (src/sync.rs swaps std's atomics
# and locks for loom's under `--cfg loom`) through every interleaving.
#
#   scripts/loom.sh                # every model, exhaustively
#   scripts/loom.sh --ignored      # the ignored models (kept findings)
#   scripts/loom.sh NAME           # the models whose name starts with NAME
#
# Needs only a stable toolchain. Builds in target/loom (GCS_LOOM_TARGET_DIR),
# never in the shared target/, which `--cfg loom` would invalidate.
# LOOM_MAX_PREEMPTIONS bounds the preemptions explored per execution; it is
# unset by default, so loom's search is exhaustive. scripts/test.sh (CI) sets
# 5: every execution with up to 5 preemptions (concurrency bugs seldom need
# more than 2 or 3) in about 10 s for all models, where the exhaustive search
# takes about 4 minutes (close_vs_accesses alone: 0.1 s at 3, 0.5 s at 4,
# 4.8 s at 6, 21 s at 8, over 60 s unbounded). Other
# loom settings (LOOM_LOG, LOOM_LOCATION, LOOM_CHECKPOINT_FILE, ...) pass
# through; see src/table/loom.rs for replaying a failure.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

start=$(date +%s.%N)
log=$(mktemp)
finish() {
    local status=$? took
    rm -f "$log"
    took=$(awk -v start="$start" -v now="$(date +%s.%N)" 'BEGIN { printf "%.1f", now - start }')
    if [ "$status" -eq 0 ]; then
        printf 'loom: ok (%s s)\n' "$took"
    else
        printf 'loom: FAILED (exit status %s, after %s s)\n' "$status" "$took" >&2
    fi
}
trap finish EXIT

export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }--cfg loom"
export CARGO_TARGET_DIR="${GCS_LOOM_TARGET_DIR:-$root/target/loom}"
# Optimized, since loom runs each model thousands of times; debug assertions
# stay on so that the table's own `debug_assert!`s are checked too.
export CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true

filter=table::loom
args=()
for arg in "$@"; do
    case $arg in
    -*) args+=("$arg") ;;
    *) filter=table::loom::$arg ;;
    esac
done

printf 'loom: RUSTFLAGS="%s" CARGO_TARGET_DIR=%s LOOM_MAX_PREEMPTIONS=%s\n' \
    "$RUSTFLAGS" "$CARGO_TARGET_DIR" "${LOOM_MAX_PREEMPTIONS:-unbounded}"

cargo test --release --lib "$filter" -- "${args[@]}" 2>&1 | tee "$log"
# A filter that matches nothing passes silently: make sure models ran.
if ! grep -Eq '^test result: ok\. [1-9]' "$log"; then
    echo "loom: no model ran (filter $filter)" >&2
    exit 1
fi
