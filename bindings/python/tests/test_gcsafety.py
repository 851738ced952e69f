"""The Python binding against real GStreamer objects, through PyGObject.

Evidence is GLib's: weak references (``GObject.Object.weak_ref``) for
finalization, ``mini_object.refcount`` for buffers, C calls through ctypes
on the pointers the library hands out."""

from __future__ import annotations

import ctypes
import gc
import os
import subprocess
import sys
import threading

import pytest
from gi.repository import GObject, Gst

import gcsafety
from gcsafety import ErrorCode, HandleState, Kind, RegisterFlags

_gst = ctypes.CDLL("libgstreamer-1.0.so.0")
_gst.gst_object_get_name.restype = ctypes.c_void_p
_gst.gst_object_get_name.argtypes = [ctypes.c_void_p]
_gst.gst_buffer_get_size.restype = ctypes.c_size_t
_gst.gst_buffer_get_size.argtypes = [ctypes.c_void_p]
_glib = ctypes.CDLL("libglib-2.0.so.0")
_glib.g_free.argtypes = [ctypes.c_void_p]


def element_name(address: int) -> str:
    raw = _gst.gst_object_get_name(address)
    try:
        return ctypes.string_at(raw).decode()
    finally:
        _glib.g_free(raw)


class Finalized:
    """Counts the finalizations of a GObject (a GLib weak reference)."""

    def __init__(self, obj: GObject.Object) -> None:
        self.count = 0
        self._ref = obj.weak_ref(self._notify)

    def _notify(self, *_args) -> None:
        self.count += 1


def registered_element(factory: str = "fakesink", name: str | None = None):
    """A registered element whose only owner is the registration."""
    element = Gst.ElementFactory.make(factory, name)
    assert element is not None
    finalized = Finalized(element)
    handle = gcsafety.register(element)
    del element
    gc.collect()
    return handle, finalized


def test_registration_owns_the_element():
    handle, finalized = registered_element("fakesink", "owned")
    assert finalized.count == 0  # the Python wrapper is gone, the registration holds it
    assert handle.safe_access(element_name) == "owned"
    info = handle.info()
    assert (info.state, info.kind, info.type_name) == (HandleState.LIVE, Kind.GST_OBJECT, "GstFakeSink")
    handle.unregister()
    assert finalized.count == 1
    assert not handle.is_valid


def test_access_keeps_the_object_alive_past_unregister():
    handle, finalized = registered_element()
    with handle.access() as address:
        handle.unregister()
        assert finalized.count == 0
        assert element_name(address).startswith("fakesink")
        with pytest.raises(gcsafety.Error) as refused:
            with handle.access():
                pass
        assert refused.value.code in (ErrorCode.RELEASED, ErrorCode.INVALIDATED)
    assert finalized.count == 1


def test_exception_in_safe_access_is_raised_after_the_call():
    handle, finalized = registered_element()
    failures = gcsafety.stats().callback_failures

    def fails(_address: int) -> None:
        raise KeyError("from the callback")

    with pytest.raises(KeyError, match="from the callback"):
        handle.safe_access(fails)
    assert gcsafety.stats().callback_failures == failures + 1
    assert handle.safe_access(lambda address: address != 0)
    handle.unregister()
    assert finalized.count == 1


def test_errors_carry_code_and_message():
    handle, _ = registered_element("identity", "gone")
    handle.unregister()
    with pytest.raises(gcsafety.Error) as released:
        handle.safe_access(element_name)
    assert released.value.code == ErrorCode.RELEASED
    assert "(GstIdentity)" in released.value.message
    assert released.value.message in str(released.value)
    with pytest.raises(gcsafety.Error) as twice:
        handle.unregister()
    assert twice.value.code == ErrorCode.RELEASED
    with pytest.raises(gcsafety.Error) as forged:
        gcsafety.Handle(0x1234).safe_access(element_name)
    assert forged.value.code == ErrorCode.INVALID_HANDLE
    with pytest.raises(TypeError):
        gcsafety.register(object())
    structure = Gst.Structure.new_empty("not-a-mini-object")
    with pytest.raises(TypeError):
        gcsafety.register(structure)


def test_buffer_and_sample_are_mini_objects():
    buffer = Gst.Buffer.new_allocate(None, 4096, None)
    before = buffer.mini_object.refcount
    handle = gcsafety.register(buffer, instance_name="frame-1", size_bytes=4096)
    assert buffer.mini_object.refcount == before + 1
    assert handle.info().kind == Kind.MINI_OBJECT
    assert gcsafety.stats().tracked_bytes >= 4096
    assert handle.safe_access(_gst.gst_buffer_get_size) == 4096
    handle.unregister()
    assert buffer.mini_object.refcount == before

    sample = Gst.Sample.new(buffer, Gst.Caps.from_string("video/x-raw"), None, None)
    with gcsafety.register(sample) as sample_handle:
        assert sample_handle.info().type_name == "GstSample"
        with sample_handle.access() as address:
            assert address == hash(sample)
    assert not sample_handle.is_valid


def test_set_null_state_stops_a_playing_pipeline():
    pipeline = Gst.parse_launch("videotestsrc is-live=true ! fakesink sync=false")
    finalized = Finalized(pipeline)
    assert pipeline.set_state(Gst.State.PLAYING) != Gst.StateChangeReturn.FAILURE
    pipeline.get_state(Gst.CLOCK_TIME_NONE)
    handle = gcsafety.register(pipeline, flags=RegisterFlags.SET_NULL_STATE)
    handle.unregister_sync()
    # The registration's reference dropped after setting the pipeline to NULL;
    # ours keeps the object, now stopped.
    assert finalized.count == 0
    assert pipeline.get_state(0)[1] == Gst.State.NULL
    del pipeline
    gc.collect()
    assert finalized.count == 1


def test_accesses_from_threads_while_unregistering():
    handle, finalized = registered_element("fakesink", "shared")
    started = threading.Barrier(5)
    outcomes: list = []

    def worker() -> None:
        started.wait()
        for _ in range(200):
            try:
                outcomes.append(handle.safe_access(element_name))
            except gcsafety.Error as error:
                outcomes.append(error.code)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    started.wait()
    handle.unregister()
    for thread in threads:
        thread.join()
    assert finalized.count == 1
    assert set(outcomes) <= {"shared", ErrorCode.RELEASED, ErrorCode.INVALIDATED}
    assert len(outcomes) == 800


def test_stats_is_a_dataclass_of_counts():
    before = gcsafety.stats()
    handle, _ = registered_element()
    after = gcsafety.stats()
    assert after.total_registered == before.total_registered + 1
    assert after.active == before.active + 1
    handle.unregister()
    assert gcsafety.stats().active == before.active
    assert all(isinstance(value, int) for value in vars(after).values())


def _import_in_subprocess(env: dict) -> subprocess.CompletedProcess:
    code = "import gcsafety; print(gcsafety.version())"
    package_dir = os.path.join(os.path.dirname(__file__), "..")
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "PYTHONPATH": package_dir},
        capture_output=True,
        text=True,
        check=False,
    )


def test_library_found_through_pkg_config():
    env = {k: v for k, v in os.environ.items() if k != "GCSAFETY_LIBRARY"}
    if "PKG_CONFIG_PATH" not in env:
        pytest.fail("run with PKG_CONFIG_PATH naming gcsafety.pc (bindings/python/test.sh does)")
    found = _import_in_subprocess(env)
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == gcsafety.version()


def test_a_wrong_library_path_is_an_error():
    missing = _import_in_subprocess({**os.environ, "GCSAFETY_LIBRARY": "/nonexistent/libgcsafety.so"})
    assert missing.returncode != 0
    assert "GCSAFETY_LIBRARY" in missing.stderr
