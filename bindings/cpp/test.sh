#!/usr/bin/env bash
# Tests of the C++ binding and of the C header's language modes:
#   - c-tests/header_check.c as C99 and as C++11 (the C header alone);
#   - tests/test_gcsafety.cpp (gcsafety.hpp with real GStreamer) with
#     -std=c++17, by g++, and by clang++ under AddressSanitizer + UBSan;
# all with -Wall -Wextra -Wpedantic -Werror, linked through the in-tree
# gcsafety.pc (scripts/install.sh --uninstalled). Run by scripts/test.sh.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
"$root/scripts/install.sh" --uninstalled >/dev/null
export PKG_CONFIG_PATH=$root/target/pkgconfig

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
warnings=(-Wall -Wextra -Wpedantic -Werror)
# shellcheck disable=SC2207 # pkg-config's output is a list of words
gcs=($(pkg-config --cflags --libs gcsafety))
# shellcheck disable=SC2207
gst=($(pkg-config --cflags --libs gcsafety gstreamer-1.0))

echo "-- include/gcsafety.h as C99"
cc -std=c99 "${warnings[@]}" "$root/c-tests/header_check.c" -o "$out/header_c99" "${gcs[@]}"
"$out/header_c99"

echo "-- include/gcsafety.h as C++11"
c++ -x c++ -std=c++11 "${warnings[@]}" "$root/c-tests/header_check.c" -x none -o "$out/header_cxx11" "${gcs[@]}"
"$out/header_cxx11"

echo "-- gcsafety.hpp, C++17 (g++)"
c++ -std=c++17 "${warnings[@]}" -g -pthread -I"$here" "$here/tests/test_gcsafety.cpp" -o "$out/test_cpp" "${gst[@]}"
"$out/test_cpp"

echo "-- gcsafety.hpp, C++17 (clang++, ASan + UBSan)"
clang++ -std=c++17 "${warnings[@]}" -g -O1 -pthread -fsanitize=address,undefined -fno-omit-frame-pointer \
    -fno-sanitize-recover=undefined -I"$here" "$here/tests/test_gcsafety.cpp" -o "$out/test_cpp_asan" "${gst[@]}"
ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 LSAN_OPTIONS=suppressions=$root/c-tests/lsan.supp \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 "$out/test_cpp_asan"

echo "-- gcsafety.hpp, C++17 (g++) under valgrind memcheck"
# The same checks as the C tests' valgrind run (tests/c_tests.rs). The child
# that exception_through_the_library_aborts_cleanly forks aborts on purpose,
# its executor thread gone: its report would only be noise.
GST_REGISTRY_FORK=no timeout 900 valgrind --error-exitcode=99 --leak-check=full --child-silent-after-fork=yes \
    --errors-for-leak-kinds=definite --show-leak-kinds=definite --track-origins=yes \
    --suppressions=/usr/share/glib-2.0/valgrind/glib.supp --suppressions="$root/c-tests/gstreamer.supp" \
    "$out/test_cpp"
