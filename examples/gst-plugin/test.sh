#!/usr/bin/env bash
# The gcsworker plugin, built as a real GStreamer plugin and run by
# gst-inspect-1.0 and gst-launch-1.0 (--gst-plugin-path): a stream read to
# its end, a pipeline stopped mid-stream by an error, and one that seeks
# with flush (the element's seek-after). At stop the element logs (debug category gcsworker, INFO)
#   stopped: registered=N released=N processed=P dropped=D flushes=F active=A
# and fails its state change unless every registration was released exactly
# once; this script checks those counts too. GLib warnings and criticals are
# fatal (G_DEBUG=fatal-warnings). The pipelines run twice: with the plain
# plugin, and with the plugin built with ASan+UBSan. Run by scripts/test.sh.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
"$root/scripts/install.sh" --uninstalled >/dev/null
export PKG_CONFIG_PATH=$root/target/pkgconfig

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "gst-plugin test: $*" >&2; exit 1; }

make -s -C "$here" BUILD="$work/plugins"
export GST_REGISTRY=$work/registry.bin # not the user's registry cache
export GST_DEBUG_NO_COLOR=1 G_DEBUG=fatal-warnings
plugin_path=--gst-plugin-path=$work/plugins

echo "-- gst-inspect-1.0 gcsworker"
gst-inspect-1.0 "$plugin_path" gcsworker >"$work/inspect.txt"
grep -q 'Hands each buffer to a worker thread through gcsafety handles' "$work/inspect.txt" || fail "gst-inspect does not describe gcsworker"
grep -q 'seek-after' "$work/inspect.txt" || fail "gst-inspect lists no seek-after property"
gst-inspect-1.0 "$plugin_path" "$work/plugins/libgstgcsworker.so" >"$work/inspect-plugin.txt"
grep -q 'gcsworker: gcsafety worker hand-off' "$work/inspect-plugin.txt" ||
    fail "gst-inspect of the plugin file does not list the element"

# check_stop LOG EXPECTED_MIN_FLUSHES [all-read]: the element's stop line,
# with every registration released exactly once and each one either read or
# dropped (with all-read: every one read).
check_stop() {
    local line
    line=$(grep -o 'stopped: registered=.*' "$1") || { cat "$1" >&2; fail "no stop line in $1"; }
    echo "   $line"
    local registered released processed dropped flushes active
    read -r registered released processed dropped flushes active < <(
        sed 's/[a-z]*=//g; s/stopped: //' <<<"$line")
    [ "$registered" -gt 0 ] || fail "nothing registered"
    [ "$released" -eq "$registered" ] || fail "released $released of $registered registrations"
    [ $((processed + dropped)) -eq "$registered" ] || fail "processed + dropped != registered"
    [ "$active" -eq 0 ] || fail "$active registrations still active after the manager closed"
    [ "$flushes" -ge "$2" ] || fail "expected at least $2 flushes, saw $flushes"
    if [ "${3:-}" = all-read ]; then
        [ "$processed" -eq "$registered" ] && [ "$dropped" -eq 0 ] || fail "not every buffer was read"
    fi
}

# pipelines LABEL PLUGIN_DIR [ENV...]: the three pipelines, with the plugin from
# PLUGIN_DIR and gst-launch-1.0 run under `env ENV...`.
pipelines() {
    local label=$1 dir=$2 status=0
    shift 2
    echo "-- $label: a stream read to its end (EOS waits for the worker)"
    env "$@" GST_DEBUG=gcsworker:4 gst-launch-1.0 --gst-plugin-path="$dir" \
        videotestsrc num-buffers=50 ! video/x-raw,width=160,height=120 ! gcsworker passes=5 ! fakesink \
        >"$work/eos.log" 2>&1 || { cat "$work/eos.log" >&2; fail "gst-launch failed"; }
    check_stop "$work/eos.log" 0 all-read
    grep -q 'registered=50 ' "$work/eos.log" || fail "expected the 50 buffers of the stream"

    echo "-- $label: a pipeline stopped mid-stream (identity error-after=60)"
    env "$@" GST_DEBUG=gcsworker:4 gst-launch-1.0 --gst-plugin-path="$dir" \
        videotestsrc ! video/x-raw,width=160,height=120 ! gcsworker passes=20 ! identity error-after=60 ! fakesink \
        >"$work/stop.log" 2>&1 || status=$?
    [ "$status" -eq 1 ] || { cat "$work/stop.log" >&2; fail "gst-launch exited $status, expected 1 (the identity error)"; }
    grep -q 'ERROR: from element' "$work/stop.log" || fail "the pipeline did not stop on the error"
    check_stop "$work/stop.log" 0

    echo "-- $label: a pipeline that seeks with flush (gcsworker seek-after=50)"
    env "$@" GST_DEBUG=gcsworker:4 gst-launch-1.0 --gst-plugin-path="$dir" \
        videotestsrc num-buffers=200 ! video/x-raw,width=160,height=120 ! gcsworker passes=20 seek-after=50 ! fakesink \
        >"$work/seek.log" 2>&1 || { cat "$work/seek.log" >&2; fail "gst-launch failed"; }
    grep -q 'flushing seek to 0' "$work/seek.log" || fail "the element did not seek"
    check_stop "$work/seek.log" 1
}

pipelines "plain" "$work/plugins"

# The plugin again, built with AddressSanitizer + UBSan (clang's shared
# runtime, preloaded into the uninstrumented gst-launch-1.0). Leak checking
# is off: gst-launch-1.0 itself does not free everything at exit; the
# element's own accounting (check_stop) covers its buffers.
make -s -C "$here" BUILD="$work/asan" CC=clang \
    CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -shared-libasan"
pipelines "ASan+UBSan" "$work/asan" LD_PRELOAD="$(clang -print-file-name=libclang_rt.asan-x86_64.so)" \
    ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:exitcode=99 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
