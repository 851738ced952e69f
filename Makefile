# The usual entry points for C users and packagers; the work is done by
# scripts/install.sh and scripts/test.sh.
#
#   make                  build the release library (target/release) and the
#                         in-tree target/pkgconfig/gcsafety.pc
#   make check            every test (scripts/test.sh)
#   make install          install the library, headers and gcsafety.pc:
#                         PREFIX (/usr/local), LIBDIR (PREFIX/lib),
#                         INCLUDEDIR (PREFIX/include), DESTDIR (staging root)
#   make uninstall        remove what make install installed (same variables)
#   make demo             scripts/demo.sh
#   make soak             the soak program for an hour (scripts/stress.sh;
#                         SOAK_SECONDS, SOAK_THREADS)
#   make fuzz             the model fuzzer for an hour (scripts/fuzz.sh;
#                         FUZZ_SECONDS), minimising the corpus afterwards
#   make tsan             the C tests and unit tests under ThreadSanitizer (scripts/tsan.sh --unit)
#
# The files and their names are those of cargo-c (`cargo cinstall`, with the
# [package.metadata.capi] of Cargo.toml): libgcsafety.so.VERSION with the
# soname libgcsafety.so.0, the symlinks libgcsafety.so.0 and libgcsafety.so,
# libgcsafety.a, include/*.h, bindings/cpp/gcsafety.hpp, and
# pkgconfig/gcsafety.pc; plus the GStreamer tracer plugin,
# gstreamer-1.0/libgstgcsafety.so (GST_TRACERS=gcsafety), which cargo-c
# does not build.
PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
DESTDIR ?=
VERSION := $(shell sed -n 's/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -n 1)
HEADERS := $(notdir $(wildcard include/*.h)) gcsafety.hpp

all:
	scripts/install.sh --uninstalled

check:
	scripts/test.sh

install:
	scripts/install.sh --prefix "$(PREFIX)" --libdir "$(LIBDIR)" --includedir "$(INCLUDEDIR)" --destdir "$(DESTDIR)"

uninstall:
	rm -f $(addprefix "$(DESTDIR)$(INCLUDEDIR)"/,$(HEADERS))
	rm -f "$(DESTDIR)$(LIBDIR)/libgcsafety.so.$(VERSION)" "$(DESTDIR)$(LIBDIR)/libgcsafety.so.0" \
	    "$(DESTDIR)$(LIBDIR)/libgcsafety.so" "$(DESTDIR)$(LIBDIR)/libgcsafety.a" \
	    "$(DESTDIR)$(LIBDIR)/pkgconfig/gcsafety.pc" \
	    "$(DESTDIR)$(LIBDIR)/gstreamer-1.0/libgstgcsafety.so"

demo:
	scripts/demo.sh

SOAK_SECONDS ?= 3600
SOAK_THREADS ?= 8
FUZZ_SECONDS ?= 3600

soak:
	scripts/stress.sh --threads "$(SOAK_THREADS)" --duration "$(SOAK_SECONDS)"

fuzz:
	scripts/fuzz.sh --seconds "$(FUZZ_SECONDS)" --merge

tsan:
	scripts/tsan.sh --unit

.PHONY: all check install uninstall demo soak fuzz tsan
