#!/usr/bin/env bash
# The Python binding's tests (pytest, real GStreamer through PyGObject), with
# Debian's /usr/bin/python3 (python3-gi, gir1.2-gstreamer-1.0, python3-pytest:
# scripts/setup.sh installs them), against the in-tree build. Run by
# scripts/test.sh. pytest exits 5 when it collects no test: that fails too.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
"$root/scripts/install.sh" --uninstalled >/dev/null
export PKG_CONFIG_PATH=$root/target/pkgconfig
export GCSAFETY_LIBRARY=$root/target/release/libgcsafety.so.0
cd "$here"
/usr/bin/python3 -m pytest -q -p no:cacheprovider tests "$@"
