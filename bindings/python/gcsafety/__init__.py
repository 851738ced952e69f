"""gcsafety for Python: handles for GStreamer and GObject objects.

A ctypes binding of libgcsafety (include/gcsafety.h) that works with
PyGObject objects::

    import gcsafety
    handle = gcsafety.register(element)       # a Gst.Element, Gst.Buffer, Gst.Sample, ...
    with handle.access() as address:           # the C pointer, alive in the block
        ...
    handle.safe_access(lambda address: ...)    # same, through gcs_safe_access
    handle.unregister()                        # the registration's reference drops once

The library is found through $GCSAFETY_LIBRARY (a path), else pkg-config's
``libdir`` of gcsafety, else ``ctypes.util.find_library("gcsafety")``.
Failed calls raise :class:`Error`, carrying the :class:`ErrorCode` and the
library's message (``gcs_last_error()``).
"""

from __future__ import annotations

import ctypes
import enum
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, Tuple, TypeVar

from . import _native

__all__ = [
    "ABI_VERSION",
    "Error",
    "ErrorCode",
    "Handle",
    "HandleInfo",
    "HandleState",
    "Kind",
    "RegisterFlags",
    "Stats",
    "pointer_of",
    "register",
    "shutdown",
    "stats",
    "version",
]

ABI_VERSION = _native.ABI_VERSION
_lib = _native.load()
if _lib.gcs_abi_version() != ABI_VERSION:
    raise ImportError(
        f"gcsafety: the loaded library has ABI version {_lib.gcs_abi_version()}, "
        f"this package needs {ABI_VERSION}"
    )

T = TypeVar("T")


class ErrorCode(enum.IntEnum):
    """GcsResult: the library's result codes."""

    OK = 0
    INVALID_HANDLE = -1
    RELEASED = -2
    INVALIDATED = -3
    NULL_ARGUMENT = -4
    WRONG_TYPE = -5
    CALLBACK_FAILED = -6
    PANIC = -7
    TABLE_FULL = -8
    SHUT_DOWN = -9
    TIMEOUT = -10
    WOULD_DEADLOCK = -11
    NOT_ACCESSING = -12
    INVALID_ARGUMENT = -13
    ALREADY_INITIALIZED = -14


class Kind(enum.IntEnum):
    """GcsObjectKind: how a registration references its object."""

    GST_OBJECT = 0
    GOBJECT = 1
    MINI_OBJECT = 2
    POINTER = 3
    WEAK_GOBJECT = 4


class RegisterFlags(enum.IntFlag):
    """GcsRegisterFlags."""

    NONE = 0
    SET_NULL_STATE = 1 << 0
    CAPTURE_STACK = 1 << 1


class HandleState(enum.IntEnum):
    """GcsHandleState."""

    LIVE = 0
    INVALIDATED = 1
    RELEASING = 2
    RELEASED = 3


class Error(Exception):
    """A failed gcsafety call: ``code`` is the result (an :class:`ErrorCode`,
    or the raw int for a code this package does not know), ``message`` the
    library's detail for it."""

    def __init__(self, code: int, message: str) -> None:
        try:
            self.code: Any = ErrorCode(code)
        except ValueError:
            self.code = code
        self.message = message
        description = _lib.gcs_result_to_string(code).decode("utf-8", "replace")
        super().__init__(f"{description}: {message}" if message else description)


def _check(result: int) -> None:
    if result != 0:
        # gcs_last_error is per thread; ctypes calls run on this thread.
        detail = _lib.gcs_last_error()
        raise Error(result, detail.decode("utf-8", "replace") if detail else "")


# GStreamer's mini object types, which PyGObject wraps as boxed types.
MINI_OBJECT_TYPES = frozenset(
    {
        "GstBuffer",
        "GstBufferList",
        "GstCaps",
        "GstContext",
        "GstEvent",
        "GstMemory",
        "GstMessage",
        "GstPromise",
        "GstQuery",
        "GstSample",
        "GstTagList",
        "GstToc",
        "GstUri",
    }
)

_capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_pointer.restype = ctypes.c_void_p
_capsule_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]


def _is_a(gtype: Any, name: str) -> bool:
    while gtype is not None and gtype.name not in (None, "invalid"):
        if gtype.name == name:
            return True
        parent = gtype.parent
        if parent == gtype:
            break
        gtype = parent
    return False


def pointer_of(obj: Any) -> Tuple[int, Kind]:
    """The C pointer of a PyGObject object, and the kind to register it as.

    A GObject (``Gst.Element``, ``Gst.Pipeline``, ...) gives its
    ``__gpointer__`` capsule's pointer; a GStreamer mini object
    (``Gst.Buffer``, ``Gst.Sample``, ``Gst.Caps``, ...), which PyGObject wraps
    as a boxed type, gives ``hash(obj)``, which PyGObject makes its pointer.
    The pointer is valid only while ``obj`` (or another reference) lives.
    """
    gtype = getattr(obj, "__gtype__", None)
    capsule = getattr(obj, "__gpointer__", None)
    if capsule is not None and _is_a(gtype, "GObject"):
        address = _capsule_pointer(capsule, None)
        return address, Kind.GST_OBJECT if _is_a(gtype, "GstObject") else Kind.GOBJECT
    if gtype is not None and gtype.name in MINI_OBJECT_TYPES:
        return hash(obj) & 0xFFFFFFFFFFFFFFFF, Kind.MINI_OBJECT
    raise TypeError(f"gcsafety: not a GObject or GStreamer mini object: {type(obj).__name__}")


@dataclass(frozen=True)
class HandleInfo:
    """gcs_get_info: what the library knows of a handle."""

    state: HandleState
    kind: Kind
    accesses_in_flight: int
    type_name: str
    instance_name: Optional[str]
    size_bytes: int
    age_ms: int
    released_ms_ago: int


@dataclass(frozen=True)
class Stats:
    """gcs_get_stats of the default manager."""

    total_registered: int
    active: int
    released: int
    invalidated: int
    access_ok: int
    access_rejected: int
    callback_failures: int
    panics_recovered: int
    cleanups_run: int
    cleanup_failures: int
    finalizers_run: int
    finalizer_failures: int
    finalizer_timeouts: int
    tracked_bytes: int
    peak_active: int


class Handle:
    """A registration's handle: an opaque 64-bit value (``int(handle)``),
    safe to hand to other threads and languages. Using it after the object
    was released raises :class:`Error`; it never crashes.

    As a context manager it unregisters at the end of the ``with`` block."""

    __slots__ = ("value",)

    def __init__(self, value: int) -> None:
        self.value = value

    def __int__(self) -> int:
        return self.value

    def __repr__(self) -> str:
        return f"gcsafety.Handle({self.value:#018x})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Handle) and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)

    def __enter__(self) -> "Handle":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        try:
            self.unregister()
        except Error as error:  # already unregistered in the block, or shut down
            if error.code not in (ErrorCode.RELEASED, ErrorCode.SHUT_DOWN):
                raise

    @property
    def is_valid(self) -> bool:
        """Whether an access would succeed now (gcs_is_valid)."""
        return bool(_lib.gcs_is_valid(self.value))

    @contextmanager
    def access(self) -> Iterator[int]:
        """An access (gcs_access_begin/end): yields the object's C pointer,
        which stays valid, whatever other threads do, until the block ends."""
        address = ctypes.c_void_p()
        _check(_lib.gcs_access_begin(self.value, ctypes.byref(address)))
        try:
            yield address.value or 0
        finally:
            _lib.gcs_access_end(self.value)

    def safe_access(self, function: Callable[[int], T]) -> T:
        """Run ``function(pointer)`` inside gcs_safe_access and return its
        result. An exception it raises is kept, reported to the library as a
        failed callback, and raised again here once the C call returned."""
        outcome: list = []

        def trampoline(address: Optional[int], _user_data: Optional[int]) -> int:
            try:
                outcome.append((True, function(address or 0)))
                return 0
            except BaseException as error:  # noqa: BLE001 - re-raised below
                outcome.append((False, error))
                return 1

        callback = _native.GcsAccessFn(trampoline)
        result = _lib.gcs_safe_access(self.value, callback, None)
        if outcome and not outcome[0][0]:
            raise outcome[0][1]
        _check(result)
        return outcome[0][1]

    def unregister(self) -> None:
        """gcs_unregister: refuses new accesses now; the reference drops when
        the last access in flight ends (here, if none is)."""
        _check(_lib.gcs_unregister(self.value))

    def unregister_sync(self, timeout_ms: Optional[int] = None) -> None:
        """gcs_unregister_sync: returns once the object is released (None:
        wait as long as it takes; Error(TIMEOUT) leaves the release pending)."""
        _check(_lib.gcs_unregister_sync(self.value, _native.TIMEOUT_INFINITE if timeout_ms is None else timeout_ms))

    def invalidate(self) -> None:
        """gcs_invalidate: refuses new accesses, keeps the registration."""
        _check(_lib.gcs_invalidate(self.value))

    def info(self) -> HandleInfo:
        """gcs_get_info."""
        info = _native.GcsHandleInfo()
        info.struct_size = ctypes.sizeof(info)
        _check(_lib.gcs_get_info(self.value, ctypes.byref(info)))
        return HandleInfo(
            state=HandleState(info.state),
            kind=Kind(info.kind),
            accesses_in_flight=info.accesses_in_flight,
            type_name=(info.type_name or b"").decode("utf-8", "replace"),
            instance_name=info.instance_name.decode("utf-8", "replace") if info.instance_name else None,
            size_bytes=info.size_bytes,
            age_ms=info.age_ms,
            released_ms_ago=info.released_ms_ago,
        )


def register(
    obj: Any,
    *,
    instance_name: Optional[str] = None,
    type_name: Optional[str] = None,
    size_bytes: int = 0,
    flags: RegisterFlags = RegisterFlags.NONE,
    kind: Optional[Kind] = None,
) -> Handle:
    """Register a PyGObject object (``Gst.Element``, ``Gst.Buffer``,
    ``Gst.Sample``, any ``GObject.Object``): the registration takes its own
    reference, so the object outlives the Python wrapper for as long as the
    handle is registered. ``kind`` overrides the kind guessed from the type
    (``Kind.WEAK_GOBJECT`` holds a weak reference instead)."""
    address, guessed = pointer_of(obj)
    registration = _native.GcsRegistration()
    registration.struct_size = ctypes.sizeof(registration)
    registration.kind = int(guessed if kind is None else kind)
    registration.object = address
    registration.type_name = type_name.encode() if type_name is not None else None
    registration.instance_name = instance_name.encode() if instance_name is not None else None
    registration.size_bytes = size_bytes
    registration.flags = int(flags)
    value = _native.GcsHandle()
    result = _lib.gcs_register_full(ctypes.byref(registration), ctypes.byref(value))
    # `obj` kept the object alive until here: the registration now holds its
    # own reference, so the wrapper may go.
    del obj
    _check(result)
    return Handle(value.value)


def stats() -> Stats:
    """gcs_get_stats of the default manager."""
    raw = _native.GcsStats()
    raw.struct_size = ctypes.sizeof(raw)
    _check(_lib.gcs_get_stats(None, ctypes.byref(raw)))
    return Stats(**{name: getattr(raw, name) for name in _native.STATS_FIELDS})


def version() -> str:
    """The loaded library's version, "MAJOR.MINOR.PATCH"."""
    return _lib.gcs_version_string().decode()


def shutdown(timeout_ms: Optional[int] = None) -> None:
    """gcs_shutdown: close every manager, join the library's threads."""
    _check(_lib.gcs_shutdown(_native.TIMEOUT_INFINITE if timeout_ms is None else timeout_ms))
