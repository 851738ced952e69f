#!/usr/bin/env bash
# Run the core's unit tests under Miri: the handle table (src/table/tests.rs)
# and the per-thread access tracker (src/thread_accesses.rs), which call no C.
# Miri checks them for undefined behaviour, data races and leaks.
#
#   scripts/miri.sh                # those tests
#   scripts/miri.sh NAME...        # the tests whose name contains a NAME
#
# Installs a nightly toolchain with Miri and rust-src through rustup if it is
# missing (the toolchain is GCS_MIRI_TOOLCHAIN, default nightly). Builds in
# target/miri (GCS_MIRI_TARGET_DIR), never in the shared target/. MIRIFLAGS
# defaults to strict provenance (no integer-to-pointer casts anywhere) and
# eight scheduler seeds, so the threaded tests run under eight different
# interleavings; set MIRIFLAGS to override.
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
        printf 'miri: ok (%s s)\n' "$took"
    else
        printf 'miri: FAILED (exit status %s, after %s s)\n' "$status" "$took" >&2
    fi
}
trap finish EXIT

toolchain=${GCS_MIRI_TOOLCHAIN:-nightly}
sysroot_src() { echo "$(rustup run "$toolchain" rustc --print sysroot 2>/dev/null)/lib/rustlib/src/rust/library"; }
if ! rustup run "$toolchain" cargo miri --version >/dev/null 2>&1 || [ ! -d "$(sysroot_src)" ]; then
    if rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
        echo "miri: rustup component add --toolchain $toolchain miri rust-src"
        rustup component add --toolchain "$toolchain" miri rust-src
    else
        echo "miri: rustup toolchain install $toolchain --profile minimal --component miri rust-src"
        rustup toolchain install "$toolchain" --profile minimal --component miri rust-src
    fi
fi

export CARGO_TARGET_DIR="${GCS_MIRI_TARGET_DIR:-$root/target/miri}"
export MIRIFLAGS="${MIRIFLAGS--Zmiri-strict-provenance -Zmiri-many-seeds=0..8}"

filters=("$@")
[ "${#filters[@]}" -gt 0 ] || filters=(table:: thread_accesses::)

printf 'miri: %s, MIRIFLAGS="%s", CARGO_TARGET_DIR=%s\n' \
    "$(rustup run "$toolchain" cargo miri --version)" "$MIRIFLAGS" "$CARGO_TARGET_DIR"

# The standard library built for Miri (once per toolchain; quiet when done).
cargo "+$toolchain" miri setup
cargo "+$toolchain" miri test --lib -- "${filters[@]}" 2>&1 | tee "$log"
# A filter that matches nothing passes silently: make sure tests ran. (The
# seeds run in parallel, so their summaries may interleave.)
if ! grep -Eq '(^|[^0-9])[1-9][0-9]* passed' "$log"; then
    echo "miri: no test ran (filters ${filters[*]})" >&2
    exit 1
fi
