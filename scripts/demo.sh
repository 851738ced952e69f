#!/usr/bin/env bash
# The demo: gcsafety in a real GStreamer program (examples/demo.c).
#
#   scripts/demo.sh
#
# Installs missing system packages (scripts/setup.sh, which prints the
# command to run when it cannot), builds the library in release mode, compiles
# examples/demo.c against it through the in-tree pkg-config file
# (target/pkgconfig/gcsafety.pc) and runs it. The demo checks its own claims
# and exits non-zero if one fails.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

scripts/setup.sh
scripts/install.sh --uninstalled

export PKG_CONFIG_PATH="$root/target/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
mkdir -p target/demo
# shellcheck disable=SC2046 # pkg-config's output is a list of words
"${CC:-cc}" -std=c11 -O2 -g -Wall -Wextra -Wpedantic -Werror examples/demo.c -o target/demo/demo \
    $(pkg-config --cflags --libs gcsafety gstreamer-1.0)

printf '\n'
exec target/demo/demo "$@"
