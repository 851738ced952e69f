"""ctypes declarations of include/gcsafety.h, and how the library is found."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import subprocess
from typing import List

GcsResult = ctypes.c_int32
GcsHandle = ctypes.c_uint64
GcsAccessFn = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
GcsReleaseFn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)


class GcsRegistration(ctypes.Structure):
    """struct GcsRegistration (version 1)."""

    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("manager", ctypes.c_void_p),
        ("kind", ctypes.c_int32),
        ("object", ctypes.c_void_p),
        ("type_name", ctypes.c_char_p),
        ("instance_name", ctypes.c_char_p),
        ("size_bytes", ctypes.c_uint64),
        ("release", GcsReleaseFn),
        ("release_data", ctypes.c_void_p),
        ("flags", ctypes.c_uint32),
    ]


class GcsHandleInfo(ctypes.Structure):
    """struct GcsHandleInfo (version 1)."""

    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("state", ctypes.c_int32),
        ("handle", GcsHandle),
        ("kind", ctypes.c_int32),
        ("accesses_in_flight", ctypes.c_uint32),
        ("type_name", ctypes.c_char_p),
        ("instance_name", ctypes.c_char_p),
        ("size_bytes", ctypes.c_uint64),
        ("age_ms", ctypes.c_uint64),
        ("released_ms_ago", ctypes.c_uint64),
    ]


STATS_FIELDS = (
    "total_registered",
    "active",
    "released",
    "invalidated",
    "access_ok",
    "access_rejected",
    "callback_failures",
    "panics_recovered",
    "cleanups_run",
    "cleanup_failures",
    "finalizers_run",
    "finalizer_failures",
    "finalizer_timeouts",
    "tracked_bytes",
    "peak_active",
)


class GcsStats(ctypes.Structure):
    """struct GcsStats (version 1)."""

    _fields_ = [("struct_size", ctypes.c_uint32)] + [(name, ctypes.c_uint64) for name in STATS_FIELDS]


ABI_VERSION = 1  # GCS_ABI_VERSION of the header these declarations follow
TIMEOUT_INFINITE = 0xFFFFFFFF


def _candidates() -> List[str]:
    """Where to look, in order: $GCSAFETY_LIBRARY, pkg-config's libdir, the
    dynamic linker's usual path (ctypes.util.find_library), the soname."""
    found: List[str] = []
    explicit = os.environ.get("GCSAFETY_LIBRARY")
    if explicit:
        return [explicit]  # an explicit choice is not second-guessed
    if shutil.which("pkg-config"):
        try:
            libdir = subprocess.run(
                ["pkg-config", "--variable=libdir", "gcsafety"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            libdir = ""
        if libdir:
            for name in ("libgcsafety.so.0", "libgcsafety.so"):
                path = os.path.join(libdir, name)
                if os.path.exists(path):
                    found.append(path)
                    break
    name = ctypes.util.find_library("gcsafety")
    if name:
        found.append(name)
    found.append("libgcsafety.so.0")
    return found


def load() -> ctypes.CDLL:
    """Load libgcsafety and declare its functions."""
    errors = []
    for candidate in _candidates():
        try:
            lib = ctypes.CDLL(candidate)
            break
        except OSError as error:
            errors.append(f"{candidate}: {error}")
    else:
        raise OSError(
            "gcsafety: cannot load libgcsafety (set GCSAFETY_LIBRARY to its path, or make "
            "pkg-config find gcsafety.pc): " + "; ".join(errors)
        )
    _declare(lib)
    return lib


def _declare(lib: ctypes.CDLL) -> None:
    def fn(name, restype, *argtypes):
        function = getattr(lib, name)
        function.restype = restype
        function.argtypes = list(argtypes)

    void_p = ctypes.c_void_p
    fn("gcs_abi_version", ctypes.c_uint32)
    fn("gcs_version_string", ctypes.c_char_p)
    fn("gcs_result_to_string", ctypes.c_char_p, GcsResult)
    fn("gcs_last_error", ctypes.c_char_p)
    fn("gcs_register_full", GcsResult, ctypes.POINTER(GcsRegistration), ctypes.POINTER(GcsHandle))
    fn("gcs_safe_access", GcsResult, GcsHandle, GcsAccessFn, void_p)
    fn("gcs_access_begin", GcsResult, GcsHandle, ctypes.POINTER(void_p))
    fn("gcs_access_end", GcsResult, GcsHandle)
    fn("gcs_is_valid", ctypes.c_bool, GcsHandle)
    fn("gcs_unregister", GcsResult, GcsHandle)
    fn("gcs_unregister_sync", GcsResult, GcsHandle, ctypes.c_uint32)
    fn("gcs_invalidate", GcsResult, GcsHandle)
    fn("gcs_get_info", GcsResult, GcsHandle, ctypes.POINTER(GcsHandleInfo))
    fn("gcs_get_stats", GcsResult, void_p, ctypes.POINTER(GcsStats))
    fn("gcs_shutdown", GcsResult, ctypes.c_uint32)
