// gcsafety.hpp: header-only C++17 binding of gcsafety (include/gcsafety.h).
//
//   gcs::Handle       move-only owner of one registration; its destructor
//                     unregisters (gcs_unregister: never blocks).
//   gcs::Access       RAII guard over gcs_access_begin / gcs_access_end; an
//                     exception leaving its scope ends the access (destructor).
//   gcs::safe_access  runs a callable inside gcs_safe_access; an exception it
//                     throws is caught in the trampoline (it never crosses the
//                     library's frames), reported to the library as a
//                     non-zero result, and rethrown once the C call returned,
//                     the access ended (its in-flight count is back to 0).
//
// Do not give the C API a callback that throws: an exception thrown through
// the exported gcs_safe_access aborts the process (docs/foreign-control-flow.md).
//   gcs::Error        a std::runtime_error with the GcsResult and the
//                     gcs_last_error() detail of the failed call.
//
// Typed overloads for GstObject, GstElement, GstMiniObject, GstBuffer,
// GstSample and GstCaps exist only if the matching GStreamer header was
// included before this one: this header itself includes no GLib or GStreamer
// header. If the C header provides the inline access path (it defines
// GCS_TABLE_LAYOUT_VERSION), Access and safe_access use it.
//
// Ownership is as in the C API: registering is transfer none for an ordinary
// reference and transfer floating for a floating one (the registration sinks
// it); the object an access yields is transfer none, valid while the access
// lasts.
#ifndef GCSAFETY_HPP
#define GCSAFETY_HPP

#if __cplusplus < 201703L
#error "gcsafety.hpp needs C++17 (or include <gcsafety.h> for the C API)"
#endif

#include <gcsafety.h>

#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

namespace gcs {

// ----- errors -----------------------------------------------------------------

// A failed gcsafety call: code() is its GcsResult, what() reads
// "GCS_ERROR_...: <description>: <gcs_last_error() detail>".
class Error : public std::runtime_error {
public:
  Error(GcsResult code, const std::string &detail)
      : std::runtime_error(compose(code, detail)), code_(code), detail_(detail) {}

  // The GcsResult of the failed call (negative).
  GcsResult code() const noexcept { return code_; }
  // gcs_last_error() right after the failed call ("" if there was none).
  const std::string &detail() const noexcept { return detail_; }

  // An Error for `code`, with this thread's gcs_last_error() as detail. Call
  // it right after the failing call, before any other gcs_ call.
  static Error from_last(GcsResult code) {
    const char *detail = gcs_last_error();
    return Error(code, detail ? detail : "");
  }

private:
  static std::string compose(GcsResult code, const std::string &detail) {
    std::string text = gcs_result_to_string(code);
    if (!detail.empty())
      text += ": " + detail;
    return text;
  }

  GcsResult code_;
  std::string detail_;
};

namespace detail {

inline void check(GcsResult result) {
  if (result != GCS_OK)
    throw Error::from_last(result);
}

// The access path: the header-inline table reads when the C header has them.
inline GcsResult access_begin(GcsHandle handle, void **object_out) noexcept {
#ifdef GCS_TABLE_LAYOUT_VERSION
  return gcs_access_begin_inline(handle, object_out);
#else
  return gcs_access_begin(handle, object_out);
#endif
}

inline GcsResult access_end(GcsHandle handle) noexcept {
#ifdef GCS_TABLE_LAYOUT_VERSION
  return gcs_access_end_inline(handle);
#else
  return gcs_access_end(handle);
#endif
}

inline GcsResult safe_access_c(GcsHandle handle, GcsAccessFn callback, void *user_data) noexcept {
#ifdef GCS_TABLE_LAYOUT_VERSION
  return gcs_safe_access_inline(handle, callback, user_data);
#else
  return gcs_safe_access(handle, callback, user_data);
#endif
}

} // namespace detail

// ----- registration options -----------------------------------------------------

// The optional fields of a GcsRegistration.
struct Options {
  GcsManager *manager = nullptr;          // NULL: the default manager
  const char *type_name = nullptr;        // NULL: the object's GType name
  const char *instance_name = nullptr;    // for messages; copied
  std::uint64_t size_bytes = 0;           // memory accounting
  std::uint32_t flags = GCS_REGISTER_NONE; // GcsRegisterFlags, or-ed
};

// ----- Handle ----------------------------------------------------------------------

// Owns one registration. Move-only; the destructor (and reset()) unregister,
// ignoring the result: use unregister() or unregister_sync() to see it.
// get() is the raw GcsHandle to share with other threads or languages; an
// Access or safe_access on it after this Handle unregistered fails cleanly.
class Handle {
public:
  Handle() noexcept = default;
  // Adopts a registration made through the C API (it unregisters it).
  explicit Handle(GcsHandle adopted) noexcept : value_(adopted) {}

  Handle(const Handle &) = delete;
  Handle &operator=(const Handle &) = delete;
  Handle(Handle &&other) noexcept : value_(other.release()) {}
  Handle &operator=(Handle &&other) noexcept {
    if (this != &other)
      reset(other.release());
    return *this;
  }
  ~Handle() { reset(); }

  // Registers `object` of `kind` (GCS_KIND_GST_OBJECT, ...). Throws Error.
  static Handle register_object(GcsObjectKind kind, void *object, const Options &options = {}) {
    GcsRegistration registration{};
    registration.struct_size = sizeof registration;
    registration.manager = options.manager;
    registration.kind = kind;
    registration.object = object;
    registration.type_name = options.type_name;
    registration.instance_name = options.instance_name;
    registration.size_bytes = options.size_bytes;
    registration.flags = options.flags;
    return register_full(registration);
  }

  // gcs_register_full. Throws Error.
  static Handle register_full(const GcsRegistration &registration) {
    GcsHandle value = GCS_INVALID_HANDLE;
    detail::check(gcs_register_full(&registration, &value));
    return Handle(value);
  }

  // The raw handle (GCS_INVALID_HANDLE once released or moved from).
  GcsHandle get() const noexcept { return value_; }
  explicit operator bool() const noexcept { return value_ != GCS_INVALID_HANDLE; }

  // Gives up ownership without unregistering; returns the raw handle.
  GcsHandle release() noexcept { return std::exchange(value_, GCS_INVALID_HANDLE); }

  // Unregisters the owned handle (if any, ignoring the result) and owns `adopted`.
  void reset(GcsHandle adopted = GCS_INVALID_HANDLE) noexcept {
    GcsHandle old = std::exchange(value_, adopted);
    if (old != GCS_INVALID_HANDLE)
      (void)gcs_unregister(old);
  }

  // gcs_unregister; this Handle owns nothing afterwards, even on error.
  void unregister() { detail::check(gcs_unregister(release())); }

  // gcs_unregister_sync: returns once the object is released. On error
  // (GCS_ERROR_TIMEOUT: the release stays pending) this Handle owns nothing.
  void unregister_sync(std::uint32_t timeout_ms = GCS_TIMEOUT_INFINITE) {
    detail::check(gcs_unregister_sync(release(), timeout_ms));
  }

  // gcs_invalidate: refuses new accesses; the registration stays owned.
  void invalidate() const { detail::check(gcs_invalidate(value_)); }

  // gcs_is_valid.
  bool is_valid() const noexcept { return gcs_is_valid(value_); }

  // gcs_get_info. Throws Error (GCS_ERROR_RELEASED once released, ...).
  GcsHandleInfo info() const {
    GcsHandleInfo info{};
    info.struct_size = sizeof info;
    detail::check(gcs_get_info(value_, &info));
    return info;
  }

private:
  GcsHandle value_ = GCS_INVALID_HANDLE;
};

// ----- Access ------------------------------------------------------------------------

// One access: the object stays alive, whatever other threads do, until this
// guard is destroyed (which calls gcs_access_end exactly once). Construction
// throws Error when the handle is not valid for access. Movable, so that it
// may end on another thread than it began (as the C API allows).
class Access {
public:
  explicit Access(GcsHandle handle) : handle_(handle) {
    detail::check(detail::access_begin(handle, &object_));
  }
  explicit Access(const Handle &handle) : Access(handle.get()) {}

  Access(const Access &) = delete;
  Access &operator=(const Access &) = delete;
  Access(Access &&other) noexcept
      : handle_(other.handle_), object_(std::exchange(other.object_, nullptr)) {}
  Access &operator=(Access &&other) noexcept {
    if (this != &other) {
      end();
      handle_ = other.handle_;
      object_ = std::exchange(other.object_, nullptr);
    }
    return *this;
  }
  ~Access() { end(); }

  // The object (transfer none), alive while this guard is.
  void *get() const noexcept { return object_; }
  template <class T> T *as() const noexcept { return static_cast<T *>(object_); }
  GcsHandle handle() const noexcept { return handle_; }

private:
  void end() noexcept {
    if (std::exchange(object_, nullptr) != nullptr)
      (void)detail::access_end(handle_);
  }

  GcsHandle handle_;
  void *object_ = nullptr;
};

// ----- safe_access ------------------------------------------------------------------------

namespace detail {

template <class T, class F> struct AccessCall {
  // Returned by value: a reference into the object would outlive the access.
  using Result = std::remove_cv_t<std::remove_reference_t<std::invoke_result_t<F &, T *>>>;
  using Stored = std::conditional_t<std::is_void_v<Result>, bool, std::optional<Result>>;

  F &callable;
  Stored result{};
  std::exception_ptr error{};

  // The C callback: no exception leaves it.
  static int trampoline(void *object, void *user_data) noexcept {
    auto *call = static_cast<AccessCall *>(user_data);
    try {
      if constexpr (std::is_void_v<Result>) {
        std::invoke(call->callable, static_cast<T *>(object));
        call->result = true;
      } else {
        call->result.emplace(std::invoke(call->callable, static_cast<T *>(object)));
      }
      return 0;
    } catch (...) {
      call->error = std::current_exception();
      return 1;
    }
  }
};

} // namespace detail

// Runs `callable(static_cast<T *>(object))` inside gcs_safe_access and
// returns what it returns, by value (a copy of a returned reference). Throws what the callable threw (rethrown after
// the library returned; the library counts a callback failure, and with
// invalidate_on_callback_error invalidates the handle), else Error when the
// handle was not valid for access.
template <class T = void, class F> decltype(auto) safe_access(GcsHandle handle, F &&callable) {
  using Call = detail::AccessCall<T, std::remove_reference_t<F>>;
  Call call{callable};
  GcsResult result = detail::safe_access_c(handle, &Call::trampoline, &call);
  if (call.error)
    std::rethrow_exception(call.error);
  detail::check(result);
  if constexpr (!std::is_void_v<typename Call::Result>)
    return typename Call::Result(std::move(*call.result));
}

template <class T = void, class F> decltype(auto) safe_access(const Handle &handle, F &&callable) {
  return safe_access<T>(handle.get(), std::forward<F>(callable));
}

// ----- statistics and versions ----------------------------------------------------------------------

// gcs_get_stats (NULL: the default manager). Throws Error.
inline GcsStats stats(GcsManager *manager = nullptr) {
  GcsStats stats{};
  stats.struct_size = sizeof stats;
  detail::check(gcs_get_stats(manager, &stats));
  return stats;
}

// Whether the loaded library implements the ABI this header describes.
inline bool abi_matches() noexcept { return gcs_abi_version() == GCS_ABI_VERSION; }

// ----- typed helpers (only with the GStreamer headers included first) -------------------------------------

#ifdef __GST_OBJECT_H__
// A GstObject (or subclass): sinks a floating reference, else adds one.
inline Handle register_object(GstObject *object, const Options &options = {}) {
  return Handle::register_object(GCS_KIND_GST_OBJECT, object, options);
}
#endif
#ifdef __GST_ELEMENT_H__
// A GstElement; with GCS_REGISTER_SET_NULL_STATE in options.flags it is set
// to NULL before the registration's reference drops.
inline Handle register_object(GstElement *element, const Options &options = {}) {
  return Handle::register_object(GCS_KIND_GST_OBJECT, element, options);
}
#endif
#ifdef __GST_MINI_OBJECT_H__
// A GstMiniObject: the registration holds one gst_mini_object_ref.
inline Handle register_object(GstMiniObject *object, const Options &options = {}) {
  return Handle::register_object(GCS_KIND_MINI_OBJECT, object, options);
}
#endif
#ifdef __GST_BUFFER_H__
inline Handle register_object(GstBuffer *buffer, const Options &options = {}) {
  return Handle::register_object(GCS_KIND_MINI_OBJECT, buffer, options);
}
#endif
#ifdef __GST_SAMPLE_H__
inline Handle register_object(GstSample *sample, const Options &options = {}) {
  return Handle::register_object(GCS_KIND_MINI_OBJECT, sample, options);
}
#endif
#ifdef __GST_CAPS_H__
inline Handle register_object(GstCaps *caps, const Options &options = {}) {
  return Handle::register_object(GCS_KIND_MINI_OBJECT, caps, options);
}
#endif

} // namespace gcs

#endif // GCSAFETY_HPP
