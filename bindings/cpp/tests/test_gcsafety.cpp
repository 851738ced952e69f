// Tests of bindings/cpp/gcsafety.hpp against real GStreamer objects, with
// weak references and reference counts as evidence. Built with -std=c++17
// -Wall -Wextra -Wpedantic -Werror, plainly and under ASan+UBSan, by
// bindings/cpp/test.sh (scripts/test.sh's "C++ binding" stage).
#include <gst/gst.h>

#include "gcsafety.hpp"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>

#include <sys/wait.h>
#include <unistd.h>

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                \
      std::abort();                                                                                \
    }                                                                                              \
  } while (0)

namespace {

// Set to true when the watched GObject is finalized.
void on_finalized(gpointer data, GObject *) { *static_cast<bool *>(data) = true; }

GstElement *watched_element(const char *factory, bool *finalized) {
  GstElement *element = gst_element_factory_make(factory, nullptr); // floating
  CHECK(element != nullptr);
  *finalized = false;
  g_object_weak_ref(G_OBJECT(element), on_finalized, finalized);
  return element;
}

std::uint64_t callback_failures() { return gcs::stats().callback_failures; }

// The destructor drops the registration's reference exactly once; a floating
// element is sunk, so the registration is its only owner.
void handle_destructor_releases() {
  bool finalized;
  GstElement *element = watched_element("fakesink", &finalized);
  GcsHandle raw;
  {
    gcs::Handle handle = gcs::register_object(element);
    raw = handle.get();
    CHECK(handle.is_valid());
    CHECK(!g_object_is_floating(element));
    CHECK(!finalized);
  }
  CHECK(finalized);
  CHECK(!gcs_is_valid(raw));
}

// Moving transfers ownership: one unregister, by the last owner; move
// assignment releases what the target owned.
void handle_moves() {
  bool first_finalized, second_finalized;
  gcs::Handle first = gcs::register_object(watched_element("fakesink", &first_finalized));
  gcs::Handle second = gcs::register_object(watched_element("identity", &second_finalized));
  GcsHandle first_raw = first.get();

  gcs::Handle moved(std::move(first));
  CHECK(!first && moved.get() == first_raw);
  CHECK(!first_finalized);

  second = std::move(moved); // second's element is released here
  CHECK(second_finalized && !first_finalized);
  CHECK(second.get() == first_raw);

  GcsHandle raw = second.release(); // ownership handed back to C
  second.reset();
  CHECK(!first_finalized && gcs_is_valid(raw));
  gcs::Handle adopted(raw);
  adopted.unregister();
  CHECK(first_finalized);
  CHECK(!adopted);
}

// An Access keeps the object alive past the Handle's destruction; the
// release happens when the access ends.
void access_keeps_alive() {
  bool finalized;
  std::optional<gcs::Handle> handle(gcs::register_object(watched_element("fakesink", &finalized)));
  GcsHandle raw = handle->get();
  {
    gcs::Access access(*handle);
    handle.reset(); // unregisters: new accesses are refused at once
    CHECK(!finalized);
    GstElement *element = access.as<GstElement>();
    CHECK(GST_IS_ELEMENT(element));
    gchar *name = gst_object_get_name(GST_OBJECT(element));
    CHECK(name != nullptr);
    g_free(name);
    try {
      gcs::Access refused(raw);
      CHECK(false);
    } catch (const gcs::Error &error) {
      CHECK(error.code() == GCS_ERROR_RELEASED || error.code() == GCS_ERROR_INVALIDATED);
    }
  }
  CHECK(finalized);
}

// An access begun on one thread may end on another (moved guard).
void access_moves_across_threads() {
  bool finalized;
  gcs::Handle handle = gcs::register_object(watched_element("fakesink", &finalized));
  gcs::Access access(handle);
  handle.reset();
  CHECK(!finalized);
  std::thread worker([guard = std::move(access)]() mutable {
    CHECK(GST_IS_ELEMENT(guard.as<GstElement>()));
    gcs::Access ended(std::move(guard));
  });
  worker.join();
  CHECK(finalized);
}

// safe_access returns the callable's value, with the typed pointer.
void safe_access_returns() {
  bool finalized;
  gcs::Handle handle = gcs::register_object(watched_element("fakesink", &finalized), {nullptr, nullptr, "the-sink", 0, GCS_REGISTER_SET_NULL_STATE});
  std::string name = gcs::safe_access<GstElement>(handle, [](GstElement *element) {
    gchar *raw = gst_object_get_name(GST_OBJECT(element));
    std::string copy(raw);
    g_free(raw);
    return copy;
  });
  CHECK(!name.empty());
  int calls = 0;
  gcs::safe_access(handle.get(), [&calls](void *object) {
    CHECK(G_IS_OBJECT(object));
    ++calls;
  });
  CHECK(calls == 1);
  // A reference returned by the callable is copied out of the access.
  std::string stored = "kept";
  const std::string &copy = gcs::safe_access(handle, [&stored](void *) -> const std::string & { return stored; });
  CHECK(copy == "kept" && &copy != &stored);
  GcsHandleInfo info = handle.info();
  CHECK(std::strcmp(info.instance_name, "the-sink") == 0);
  CHECK(std::strcmp(info.type_name, "GstFakeSink") == 0);
  // Wait for the release (set to NULL state, possibly on a library thread):
  // the weak reference writes `finalized`, in this frame.
  handle.unregister_sync();
  CHECK(finalized);
}

// An exception thrown by the callable does not cross the library: the
// trampoline reports a failure (counted by the library) and the exception is
// rethrown, with its own type, after gcs_safe_access returned.
void safe_access_rethrows() {
  bool finalized;
  gcs::Handle handle = gcs::register_object(watched_element("fakesink", &finalized));
  std::uint64_t failures = callback_failures();
  bool caught = false;
  try {
    gcs::safe_access(handle, [](void *) -> int { throw std::out_of_range("from the callable"); });
  } catch (const std::out_of_range &error) {
    caught = std::strcmp(error.what(), "from the callable") == 0;
  }
  CHECK(caught);
  CHECK(callback_failures() == failures + 1);
  CHECK(handle.is_valid()); // invalidate_on_callback_error is off by default
  CHECK(gcs::safe_access(handle, [](void *) { return 7; }) == 7);
  handle.unregister_sync(); // the weak reference writes `finalized`, in this frame
  CHECK(finalized);
}

// Errors carry the GcsResult and gcs_last_error()'s detail.
void errors_carry_code_and_detail() {
  bool finalized;
  gcs::Handle handle = gcs::register_object(watched_element("fakesink", &finalized));
  GcsHandle raw = handle.get();
  handle.unregister_sync();
  CHECK(finalized);
  try {
    gcs::safe_access(raw, [](void *) { CHECK(false); });
    CHECK(false);
  } catch (const gcs::Error &error) {
    CHECK(error.code() == GCS_ERROR_RELEASED);
    CHECK(error.detail().find("GstFakeSink") != std::string::npos);
    CHECK(std::string(error.what()).find(error.detail()) != std::string::npos);
  }
  try {
    gcs::Handle(raw).unregister(); // a second unregister is refused
    CHECK(false);
  } catch (const gcs::Error &error) {
    CHECK(error.code() == GCS_ERROR_RELEASED);
  }
  try {
    gcs::Access forged(GcsHandle{0x1234});
    CHECK(false);
  } catch (const gcs::Error &error) {
    CHECK(error.code() == GCS_ERROR_INVALID_HANDLE);
  }
  try {
    gcs::register_object(static_cast<GstElement *>(nullptr));
    CHECK(false);
  } catch (const gcs::Error &error) {
    CHECK(error.code() == GCS_ERROR_NULL_ARGUMENT);
  }
}

// Mini objects: the registration holds one reference of a GstBuffer.
void mini_objects() {
  GstBuffer *buffer = gst_buffer_new_allocate(nullptr, 64, nullptr);
  {
    gcs::Handle handle = gcs::register_object(buffer, {nullptr, nullptr, "frame", 64, 0});
    CHECK(GST_MINI_OBJECT_REFCOUNT_VALUE(buffer) == 2);
    gsize size = gcs::safe_access<GstBuffer>(handle, [](GstBuffer *b) { return gst_buffer_get_size(b); });
    CHECK(size == 64);
    CHECK(gcs::stats().tracked_bytes >= 64);
  }
  CHECK(GST_MINI_OBJECT_REFCOUNT_VALUE(buffer) == 1);
  gst_buffer_unref(buffer);

  GstCaps *caps = gst_caps_new_empty_simple("video/x-raw");
  gcs::Handle caps_handle = gcs::register_object(caps);
  CHECK(GST_MINI_OBJECT_REFCOUNT_VALUE(caps) == 2);
  caps_handle.reset();
  CHECK(GST_MINI_OBJECT_REFCOUNT_VALUE(caps) == 1);
  gst_caps_unref(caps);
}

// ----- foreign control flow (docs/foreign-control-flow.md) -------------------------

// Generous: a correct release happens at once.
constexpr std::uint32_t generous_ms = 10000;

std::uint32_t in_flight(GcsHandle handle) {
  GcsHandleInfo info{};
  info.struct_size = sizeof info;
  CHECK(gcs_get_info(handle, &info) == GCS_OK);
  return info.accesses_in_flight;
}

int mini_refcount(GstBuffer *buffer) {
  return g_atomic_int_get(&GST_MINI_OBJECT_CAST(buffer)->refcount);
}

// Counts finalizations of the watched GObject.
void count_finalized(gpointer data, GObject *) { ++*static_cast<int *>(data); }

struct Thrown : std::runtime_error {
  Thrown() : std::runtime_error("thrown inside the access") {}
};

// After safe_access rethrew, nothing of the access is left: the in-flight
// count is 0, a sync unregister succeeds at once, and the registration's
// reference is dropped exactly once (the buffer's count goes 2 -> 1, the
// element is finalized once).
void safe_access_rethrow_leaks_no_access() {
  GstBuffer *buffer = gst_buffer_new_allocate(nullptr, 64, nullptr);
  int finalized = 0;
  GstElement *element = gst_element_factory_make("fakesink", nullptr);
  CHECK(element != nullptr);
  g_object_weak_ref(G_OBJECT(element), count_finalized, &finalized);
  gcs::Handle buffer_handle = gcs::register_object(buffer);
  gcs::Handle element_handle = gcs::register_object(element);
  for (gcs::Handle *handle : {&buffer_handle, &element_handle}) {
    bool caught = false;
    try {
      gcs::safe_access(*handle, [](void *) { throw Thrown(); });
    } catch (const Thrown &) {
      caught = true;
    }
    CHECK(caught);
    CHECK(in_flight(handle->get()) == 0);
  }
  CHECK(mini_refcount(buffer) == 2);
  buffer_handle.unregister_sync(generous_ms);
  element_handle.unregister_sync(generous_ms);
  CHECK(mini_refcount(buffer) == 1);
  CHECK(finalized == 1);
  gst_buffer_unref(buffer);
}

// An exception leaving the scope of a gcs::Access ends the access during
// unwinding (its destructor): nothing leaks.
void access_ends_during_unwinding() {
  GstBuffer *buffer = gst_buffer_new_allocate(nullptr, 64, nullptr);
  gcs::Handle handle = gcs::register_object(buffer);
  bool caught = false;
  try {
    gcs::Access access(handle);
    CHECK(in_flight(handle.get()) == 1);
    throw Thrown();
  } catch (const Thrown &) {
    caught = true;
  }
  CHECK(caught);
  CHECK(in_flight(handle.get()) == 0);
  handle.unregister_sync(generous_ms);
  CHECK(mini_refcount(buffer) == 1);
  gst_buffer_unref(buffer);
}

// A C-signature callback that throws (as C++ code given to the C API might).
int throwing_callback(void *, void *) { throw Thrown(); }

// The raw gcs_safe_access_inline, compiled as C++: the callback runs in the
// inline function's own frame, which ends the access while the exception
// propagates. No callback failure is reported (the callback never returned).
void raw_inline_access_ends_when_the_callback_throws() {
  GstBuffer *buffer = gst_buffer_new_allocate(nullptr, 64, nullptr);
  gcs::Handle handle = gcs::register_object(buffer);
  std::uint64_t failures = callback_failures();
  bool caught = false;
  try {
    (void)gcs_safe_access_inline(handle.get(), throwing_callback, nullptr);
  } catch (const Thrown &) {
    caught = true;
  }
  CHECK(caught);
  CHECK(in_flight(handle.get()) == 0);
  CHECK(callback_failures() == failures);
  CHECK(handle.is_valid());
  handle.unregister_sync(generous_ms);
  CHECK(mini_refcount(buffer) == 1);
  gst_buffer_unref(buffer);
}

// A C++ exception thrown through the exported gcs_safe_access (its callback
// runs inside the library's Rust frames) is a clean, documented abort:
// Rust's catch_unwind cannot catch a foreign exception and aborts the
// process with a message. Run in a child process; the parent checks the
// signal and the message.
void exception_through_the_library_aborts_cleanly() {
  GstBuffer *buffer = gst_buffer_new_allocate(nullptr, 64, nullptr);
  gcs::Handle handle = gcs::register_object(buffer);
  int err[2];
  CHECK(pipe(err) == 0);
  std::fflush(nullptr);
  pid_t child = fork();
  CHECK(child >= 0);
  if (child == 0) {
    dup2(err[1], STDERR_FILENO);
    close(err[0]);
    close(err[1]);
    try {
      (void)gcs_safe_access(handle.get(), throwing_callback, nullptr);
    } catch (...) {
      _exit(3); // the exception came back: not what the library documents
    }
    _exit(4); // returned: neither
  }
  close(err[1]);
  std::string output;
  char chunk[512];
  ssize_t got;
  while ((got = read(err[0], chunk, sizeof chunk)) > 0)
    output.append(chunk, static_cast<std::size_t>(got));
  close(err[0]);
  int status = 0;
  CHECK(waitpid(child, &status, 0) == child);
  if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT))
    std::fprintf(stderr, "child status %d, stderr:\n%s\n", status, output.c_str());
  CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
  CHECK(output.find("Rust cannot catch foreign exceptions") != std::string::npos);
  // This process is untouched: the access never began here.
  CHECK(in_flight(handle.get()) == 0);
  handle.unregister_sync(generous_ms);
  CHECK(mini_refcount(buffer) == 1);
  gst_buffer_unref(buffer);
}

} // namespace

int main(int argc, char **argv) {
  gst_init(&argc, &argv);
  CHECK(gcs::abi_matches());
  handle_destructor_releases();
  handle_moves();
  access_keeps_alive();
  access_moves_across_threads();
  safe_access_returns();
  safe_access_rethrows();
  errors_carry_code_and_detail();
  mini_objects();
  safe_access_rethrow_leaks_no_access();
  access_ends_during_unwinding();
  raw_inline_access_ends_when_the_callback_throws();
  exception_through_the_library_aborts_cleanly();
  CHECK(gcs_shutdown(GCS_TIMEOUT_INFINITE) == GCS_OK);
  std::puts("C++ binding: all tests passed");
  return 0;
}
