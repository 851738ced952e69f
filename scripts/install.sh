#!/usr/bin/env bash
# Build gcsafety (release) and install it, or set it up for use in-tree.
#
#   scripts/install.sh [--prefix DIR] [--libdir DIR] [--includedir DIR] [--destdir DIR]
#       Installs, as cargo-c does (`cargo cinstall`, with the
#       [package.metadata.capi] of Cargo.toml):
#         $includedir/*.h                (every header of include/)
#         $includedir/gcsafety.hpp       (the header-only C++ binding)
#         $libdir/libgcsafety.so.VERSION (the cdylib; its soname is libgcsafety.so.0)
#         $libdir/libgcsafety.so.0       -> libgcsafety.so.VERSION
#         $libdir/libgcsafety.so         -> libgcsafety.so.VERSION
#         $libdir/libgcsafety.a          (the staticlib)
#         $libdir/pkgconfig/gcsafety.pc
#       VERSION is the crate's version (Cargo.toml). `make install` runs this.
#         $libdir/gstreamer-1.0/libgstgcsafety.so  (the "gcsafety" GStreamer
#                                  tracer; it links libgcsafety.so.0)
#       Defaults: --prefix /usr/local, --libdir PREFIX/lib,
#       --includedir PREFIX/include. --destdir (or $DESTDIR) stages the files
#       under another root, for packaging; the .pc still names PREFIX.
#
#   scripts/install.sh --uninstalled
#       Builds the release library and writes target/pkgconfig/gcsafety.pc,
#       which points at include/ and target/release/ in this source tree (with
#       an rpath, so programs run without LD_LIBRARY_PATH), and the symlink
#       target/release/libgcsafety.so.0 -> libgcsafety.so, and the tracer
#       target/release/gstreamer-1.0/libgstgcsafety.so (GST_PLUGIN_PATH). Then:
#         PKG_CONFIG_PATH=$PWD/target/pkgconfig pkg-config --cflags --libs gcsafety
#       That path is stable: the Go binding and scripts/demo.sh use it.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

usage() { # usage EXIT_STATUS: the comment above; on stdout for --help, else stderr
    local text
    text=$(sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//')
    if [ "$1" -eq 0 ]; then printf '%s\n' "$text"; else printf '%s\n' "$text" >&2; fi
    exit "$1"
}

mode=install
prefix=/usr/local
libdir=
includedir=
destdir=${DESTDIR:-}
while [ $# -gt 0 ]; do
    case "$1" in
        --uninstalled) mode=uninstalled ;;
        --prefix) prefix=${2:?--prefix needs a directory}; shift ;;
        --prefix=*) prefix=${1#*=} ;;
        --libdir) libdir=${2:?--libdir needs a directory}; shift ;;
        --libdir=*) libdir=${1#*=} ;;
        --includedir) includedir=${2:?--includedir needs a directory}; shift ;;
        --includedir=*) includedir=${1#*=} ;;
        --destdir) destdir=${2:?--destdir needs a directory}; shift ;;
        --destdir=*) destdir=${1#*=} ;;
        -h | --help) usage 0 ;;
        *) printf 'install.sh: unknown argument %s\n' "$1" >&2; usage 2 ;;
    esac
    shift
done

absolute() {
    case "$1" in
        /*) printf '%s\n' "${1%/}" ;;
        *) printf 'install.sh: %s must be an absolute path\n' "$1" >&2; exit 2 ;;
    esac
}

version=$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -n 1)
build_dir=$root/target/release

cargo build --release --lib

# What a program linking the staticlib must link too (system-deps and std's
# needs), from rustc itself; cargo replays the note when the build is fresh.
# Duplicates are dropped, keeping each library's last position.
native_static_libs=$(
    cargo rustc --release --lib --crate-type staticlib --message-format=json -- --print native-static-libs 2>/dev/null |
        grep -o 'native-static-libs: [^"\\]*' | head -n 1 | sed 's/^native-static-libs: //' |
        tr ' ' '\n' | grep . | tac | awk '!seen[$0]++' | tac | tr '\n' ' ' | sed 's/ $//'
)
[ -n "$native_static_libs" ] || {
    echo "install.sh: could not get the staticlib's native-static-libs from rustc" >&2
    exit 1
}

# write_pc FILE PREFIX LIBDIR INCLUDEDIR [EXTRA_LIBS]
write_pc() {
    local file=$1 pc_prefix=$2 pc_libdir=$3 pc_includedir=$4 extra=${5:-}
    # Relative to ${prefix} when they are under it, as cargo-c and meson write them.
    case "$pc_libdir" in "$pc_prefix"/*) pc_libdir="\${prefix}${pc_libdir#"$pc_prefix"}" ;; esac
    case "$pc_includedir" in "$pc_prefix"/*) pc_includedir="\${prefix}${pc_includedir#"$pc_prefix"}" ;; esac
    mkdir -p "$(dirname "$file")"
    cat >"$file" <<EOF
prefix=$pc_prefix
libdir=$pc_libdir
includedir=$pc_includedir

Name: gcsafety
Description: Handle-based lifetime safety for GStreamer and GObject objects
Version: $version
Requires.private: gstreamer-1.0
Cflags: -I\${includedir}
Libs: -L\${libdir}${extra:+ $extra} -lgcsafety
Libs.private: $native_static_libs
EOF
}

# build_tracer OUT RPATH: the "gcsafety" GStreamer tracer (tracers/), linked
# against the one shared library (never a copy of it: see tracers/gstgcsafety.c),
# finding it at run time through RPATH.
build_tracer() {
    local out=$1 rpath=$2
    mkdir -p "$(dirname "$out")"
    # shellcheck disable=SC2046 # pkg-config's output is a list of words
    cc -std=c11 -O2 -g -shared -fPIC -fvisibility=hidden -Wall -Wextra -Wpedantic -Werror \
        -I"$root/include" $(pkg-config --cflags gstreamer-1.0) tracers/gstgcsafety.c -o "$out" \
        -L"$build_dir" -lgcsafety -Wl,-rpath,"$rpath" $(pkg-config --libs gstreamer-1.0)
}

if [ "$mode" = uninstalled ]; then
    # The soname programs record; in an install it is the real file.
    ln -sfn libgcsafety.so "$build_dir/libgcsafety.so.0"
    write_pc "$root/target/pkgconfig/gcsafety.pc" "$root" "$build_dir" "$root/include" "-Wl,-rpath,\${libdir}"
    build_tracer "$build_dir/gstreamer-1.0/libgstgcsafety.so" "$build_dir"
    echo "install.sh: wrote $root/target/pkgconfig/gcsafety.pc (use PKG_CONFIG_PATH=$root/target/pkgconfig)"
    echo "install.sh: built the tracer: GST_PLUGIN_PATH=$build_dir/gstreamer-1.0 GST_TRACERS=gcsafety"
    exit 0
fi

prefix=$(absolute "$prefix")
libdir=$(absolute "${libdir:-$prefix/lib}")
includedir=$(absolute "${includedir:-$prefix/include}")

headers=(include/*.h bindings/cpp/gcsafety.hpp)
install -d "$destdir$includedir" "$destdir$libdir/pkgconfig"
install -m 644 "${headers[@]}" "$destdir$includedir/"
install -m 755 "$build_dir/libgcsafety.so" "$destdir$libdir/libgcsafety.so.$version"
ln -sfn "libgcsafety.so.$version" "$destdir$libdir/libgcsafety.so.0"
ln -sfn "libgcsafety.so.$version" "$destdir$libdir/libgcsafety.so"
install -m 644 "$build_dir/libgcsafety.a" "$destdir$libdir/libgcsafety.a"
write_pc "$destdir$libdir/pkgconfig/gcsafety.pc" "$prefix" "$libdir" "$includedir"
build_tracer "$build_dir/tracer-for-install/libgstgcsafety.so" "$libdir"
install -d "$destdir$libdir/gstreamer-1.0"
install -m 755 "$build_dir/tracer-for-install/libgstgcsafety.so" "$destdir$libdir/gstreamer-1.0/libgstgcsafety.so"

for file in "${headers[@]/#*\//$includedir/}" "$libdir/libgcsafety.so.$version" "$libdir/libgcsafety.so.0" \
    "$libdir/libgcsafety.so" "$libdir/libgcsafety.a" "$libdir/pkgconfig/gcsafety.pc" \
    "$libdir/gstreamer-1.0/libgstgcsafety.so"; do
    echo "install.sh: installed $destdir$file"
done

if [ -z "$destdir" ]; then
    case "$libdir" in
        /lib | /lib/* | /usr/lib | /usr/lib/* | /usr/local/lib | /usr/local/lib/*)
            if [ "$(id -u)" -eq 0 ] && command -v ldconfig >/dev/null 2>&1; then
                ldconfig
            fi
            ;;
        *)
            echo "install.sh: $libdir is not on the dynamic linker's default path: link with -Wl,-rpath,$libdir or set LD_LIBRARY_PATH"
            ;;
    esac
    case ":${PKG_CONFIG_PATH:-}:" in
        *":$libdir/pkgconfig:"*) ;;
        *) echo "install.sh: if pkg-config does not find gcsafety, add $libdir/pkgconfig to PKG_CONFIG_PATH" ;;
    esac
fi
