#!/usr/bin/env bash
# Install what building, testing and demonstrating gcsafety needs, on a
# Debian or Ubuntu machine that already has Rust (rustup), Go and a C
# compiler. Idempotent: only what is missing is installed, and with
# everything present it takes a second or two.
#
#   scripts/setup.sh
#
# System packages go through apt-get: as root directly; otherwise through
# `sudo -n` when sudo needs no password; otherwise the script stops and
# prints the exact command to run. The Rust side (rustfmt and clippy for the
# toolchain cargo uses here, a nightly toolchain with Miri) goes through rustup.
set -euo pipefail

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# GStreamer for the library and its tests (headers, the core tools, and the
# plugins the tests and the demo use: videotestsrc, fakesink, ...), clang
# and valgrind for the sanitizer and valgrind runs of the C tests,
# pkg-config, g++ for the C++ binding, python3 with PyGObject and pytest
# for the Python binding, and curl for the Go capture demo's HTTP check.
packages=(
    pkg-config
    libgstreamer1.0-dev
    libgstreamer-plugins-base1.0-dev
    gstreamer1.0-plugins-base
    gstreamer1.0-plugins-good
    gstreamer1.0-tools
    clang
    valgrind
    python3
    g++
    python3-gi
    gir1.2-gstreamer-1.0
    python3-pytest
    curl
)

# The packages among "$@" that dpkg does not have installed.
missing_packages() {
    local installed
    installed=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' "$@" 2>/dev/null | awk '$1 == "ii" { print $2 }' | sed 's/:.*//') || true
    local p
    for p in "$@"; do
        grep -qxF "$p" <<<"$installed" || printf '%s\n' "$p"
    done
}

apt_updated=false
apt_install() {
    local prefix=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            prefix=(sudo -n)
        else
            cat >&2 <<EOF
setup: these system packages are missing: $*
setup: run this (as root, or with sudo), then run $0 again:

    sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y $*

EOF
            exit 1
        fi
    fi
    if ! $apt_updated; then
        say "apt-get update"
        "${prefix[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null
        apt_updated=true
    fi
    say "apt-get install $*"
    "${prefix[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" </dev/null
}

# Whether clang can build and link a program with ASan + UBSan (their
# runtimes are a separate package on Debian and Ubuntu).
sanitizers_link() {
    local dir status=0
    dir=$(mktemp -d)
    printf 'int main(void) { return 0; }\n' >"$dir/t.c"
    clang -fsanitize=address,undefined -o "$dir/t" "$dir/t.c" >/dev/null 2>&1 || status=$?
    rm -rf "$dir"
    return "$status"
}

# The package with clang's sanitizer runtimes for the installed clang:
# libclang-rt-N-dev (Debian 12, Ubuntu 23.04 and later), else
# libclang-common-N-dev (where the runtimes used to be).
clang_runtime_package() {
    local major candidate p
    major=$(clang -dumpversion | cut -d. -f1)
    for p in "libclang-rt-$major-dev" "libclang-common-$major-dev"; do
        candidate=$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ { print $2 }')
        if [ -n "$candidate" ] && [ "$candidate" != "(none)" ]; then
            printf '%s\n' "$p"
            return 0
        fi
    done
    return 1
}

# ----- system packages ------------------------------------------------------

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    die "this script knows Debian and Ubuntu (dpkg and apt-get); on another system install the equivalents of: ${packages[*]} and clang's sanitizer runtimes"
fi

mapfile -t missing < <(missing_packages "${packages[@]}")
if [ "${#missing[@]}" -gt 0 ]; then
    apt_install "${missing[@]}"
fi

if ! sanitizers_link; then
    # With everything apt-get knows installed, a `clang -fsanitize=address,undefined`
    # that cannot link means the runtimes are missing.
    runtime=$(clang_runtime_package) ||
        die "clang cannot link with -fsanitize=address,undefined and no libclang-rt-N-dev or libclang-common-N-dev package matches clang $(clang -dumpversion)"
    mapfile -t missing < <(missing_packages "$runtime")
    [ "${#missing[@]}" -gt 0 ] ||
        die "clang cannot link with -fsanitize=address,undefined although $runtime is installed"
    apt_install "$runtime"
    sanitizers_link || die "clang still cannot link with -fsanitize=address,undefined after installing $runtime"
fi

# ----- Rust -------------------------------------------------------------------

if ! command -v rustup >/dev/null 2>&1 || ! command -v cargo >/dev/null 2>&1; then
    die "rustup and cargo are needed (https://rustup.rs); if they are installed, put ~/.cargo/bin on PATH"
fi

# The crate needs Rust 1.85 (edition 2024).
rustc_version=$(rustc --version | awk '{ print $2 }')
IFS=. read -r rust_major rust_minor _ <<<"$rustc_version"
if [ "$rust_major" -lt 1 ] || { [ "$rust_major" -eq 1 ] && [ "$rust_minor" -lt 85 ]; }; then
    die "rustc $rustc_version is too old: gcsafety needs 1.85 or newer (rustup update stable)"
fi

# rustfmt and clippy for the toolchain `cargo` runs here (stable by default).
components=()
cargo fmt --version >/dev/null 2>&1 || components+=(rustfmt)
cargo clippy --version >/dev/null 2>&1 || components+=(clippy)
if [ "${#components[@]}" -gt 0 ]; then
    say "rustup component add ${components[*]}"
    rustup component add "${components[@]}"
fi

# Nightly with Miri and the standard library's sources (scripts/miri.sh).
if ! rustup run nightly cargo miri --version >/dev/null 2>&1 ||
    [ ! -d "$(rustup run nightly rustc --print sysroot 2>/dev/null)/lib/rustlib/src/rust/library" ]; then
    if rustup run nightly rustc --version >/dev/null 2>&1; then
        say "rustup component add --toolchain nightly miri rust-src"
        rustup component add --toolchain nightly miri rust-src
    else
        say "rustup toolchain install nightly --profile minimal --component miri rust-src"
        rustup toolchain install nightly --profile minimal --component miri rust-src
    fi
fi

# ----- Go (for bindings/go) -----------------------------------------------------

if ! command -v go >/dev/null 2>&1; then
    say "note: go is not on PATH; it is only needed for bindings/go (https://go.dev/doc/install)"
fi

say "ok"
