//! Registration, access and release of handles.

use core::ffi::{CStr, c_char, c_int, c_void};
use std::time::Duration;

use crate::error::{Error, ErrorCode, Result};
use crate::ffi::error::{GcsResult, record};
use crate::ffi::manager::with_manager_ptr;
use crate::handle::{self, HandleState};
use crate::manager::with_default_manager;
use crate::object::Kind;
use crate::registration::{Registration, register_raw};

/// An opaque handle: index + generation, salted per load of the library.
/// Never a pointer; 0 (`GCS_INVALID_HANDLE`) is never issued; any value is
/// safe to pass to every function.
pub type GcsHandle = u64;

/// The handle value that is never issued.
pub const GCS_INVALID_HANDLE: GcsHandle = 0;

/// `gcs_unregister_sync`'s timeout that waits as long as it takes.
pub const GCS_TIMEOUT_INFINITE: u32 = u32::MAX;

/// At most this many released states are retained (for stale-handle
/// reports) per thread that releases, whatever `state_retention_ms` says;
/// that thread's oldest go first.
pub const GCS_MAX_RETAINED_STATES: u32 = 65_536;
const _: () = assert!(GCS_MAX_RETAINED_STATES as usize == crate::table::MAX_RETAINED_STATES);

/// Accesses per thread tracked for GCS_ERROR_WOULD_DEADLOCK detection;
/// deeper nesting is still safe but detected best-effort.
pub const GCS_TRACKED_ACCESSES_PER_THREAD: u32 = 16;
const _: () = assert!(GCS_TRACKED_ACCESSES_PER_THREAD as usize == crate::thread_accesses::TRACKED);

/// A manager (opaque). NULL means the default manager.
// Not `repr(C)`: cbindgen then declares it opaque (`typedef struct GcsManager GcsManager;`).
pub struct GcsManager {
    _private: (),
}

/// What a registration holds.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum GcsObjectKind {
    /// GstObject: gst_object_ref_sink at registration, gst_object_unref at release.
    GCS_KIND_GST_OBJECT = 0,
    /// Any GObject: g_object_ref_sink / g_object_unref.
    GCS_KIND_GOBJECT = 1,
    /// GstMiniObject (GstSample, GstBuffer, GstCaps, ...): gst_mini_object_ref / unref.
    GCS_KIND_MINI_OBJECT = 2,
    /// Any pointer; release = the GcsReleaseFn given.
    GCS_KIND_POINTER = 3,
    /// GObject held by a GWeakRef: no strong reference; each access upgrades.
    GCS_KIND_WEAK_GOBJECT = 4,
}

/// A `GcsObjectKind` as C passes it in: any `int32_t` (the header says `GcsObjectKind`).
pub type GcsObjectKindValue = i32;

impl From<Kind> for GcsObjectKind {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::GstObject => GcsObjectKind::GCS_KIND_GST_OBJECT,
            Kind::GObject => GcsObjectKind::GCS_KIND_GOBJECT,
            Kind::MiniObject => GcsObjectKind::GCS_KIND_MINI_OBJECT,
            Kind::Pointer => GcsObjectKind::GCS_KIND_POINTER,
            Kind::WeakGObject => GcsObjectKind::GCS_KIND_WEAK_GOBJECT,
        }
    }
}

/// Flags of a registration (`GcsRegistration.flags`).
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum GcsRegisterFlags {
    /// No flag.
    GCS_REGISTER_NONE = 0,
    /// GstElement: at release, immediately before the registration drops its
    /// reference, set it to GST_STATE_NULL, whether or not other references
    /// remain (GStreamer warns and leaks when a PLAYING element is disposed).
    /// Only with GCS_KIND_GST_OBJECT. The state change and the unref run on
    /// the library's executor thread (as finalizers do), never on the thread
    /// that releases (which may be one of the element's streaming threads: a
    /// pad probe or an appsink callback ending the last access), after the
    /// cleanups have run there. gcs_unregister therefore
    /// returns before the element is NULL; gcs_unregister_sync waits for it
    /// (but do not wait so on a streaming thread of the element: the state
    /// change waits for that thread). With a release_context, it runs there.
    GCS_REGISTER_SET_NULL_STATE = 1 << 0,
    /// Record a backtrace at registration, printed with the handle in the
    /// leak report (GCS_LEAKS=1). GCS_DEBUG=stacks does it for every
    /// registration of the default manager. Costs tens of microseconds.
    GCS_REGISTER_CAPTURE_STACK = 1 << 1,
}

/// Release function of a GCS_KIND_POINTER registration: called exactly once
/// with `(object, release_data)`, on the thread that ends the last access or
/// unregisters, with no library lock held. Unwinding out of it: as for
/// GcsAccessFn (a Rust panic is caught and counted in `panics_recovered`,
/// the release counts as done; a C++ exception aborts).
pub type GcsReleaseFn =
    Option<unsafe extern "C-unwind" fn(object: *mut c_void, user_data: *mut c_void)>;

/// Access callback: `callback(object, user_data)`; return 0 for success.
/// Runs on the calling thread, inside the access; it may call any gcs_
/// function (including gcs_unregister of its own handle).
///
/// Foreign control flow (docs/foreign-control-flow.md). The library calls it
/// as `extern "C-unwind"`: a Rust panic unwinding out of it is caught, the
/// access ended, `panics_recovered` counted, the handle invalidated and
/// GCS_ERROR_PANIC returned. A C++ exception thrown through
/// gcs_safe_access aborts the process ("Rust cannot catch foreign
/// exceptions"): catch it in the callback and rethrow after the call returns
/// (gcsafety.hpp does), or use gcs_safe_access_inline, which in C++ ends the
/// access and lets the exception propagate. Never longjmp out of a callback
/// of gcs_safe_access: that deallocates Rust frames, which Rust leaves
/// undefined. To longjmp, use gcs_access_begin / gcs_access_end with your
/// own setjmp (end the access where the jump lands), or
/// gcs_safe_access_inline (pure C frames: the jump is defined, but the
/// access is never ended, so the handle's release waits for ever).
pub type GcsAccessFn =
    Option<unsafe extern "C-unwind" fn(object: *mut c_void, user_data: *mut c_void) -> c_int>;

/// A full registration (for `gcs_register_full`). Version 1 of the struct.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct GcsRegistration {
    /// `sizeof(GcsRegistration)`.
    pub struct_size: u32,
    /// NULL = the default manager (started if needed), else one from
    /// gcs_manager_new.
    pub manager: *mut GcsManager,
    /// What `object` is.
    pub kind: GcsObjectKindValue,
    /// The object (transfer none: the registration takes its own reference,
    /// sinking a floating one).
    pub object: *mut c_void,
    /// NULL = the GType name, or "pointer"; copied. UTF-8.
    pub type_name: *const c_char,
    /// May be NULL; copied. UTF-8.
    pub instance_name: *const c_char,
    /// Memory accounting; 0 = unknown.
    pub size_bytes: u64,
    /// Required for GCS_KIND_POINTER, else must be NULL.
    pub release: GcsReleaseFn,
    /// `user_data` of `release`.
    pub release_data: *mut c_void,
    /// `GcsRegisterFlags`, or-ed.
    pub flags: u32,
}

/// The state of a handle in `GcsHandleInfo`.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum GcsHandleState {
    /// Accesses are allowed.
    GCS_STATE_LIVE = 0,
    /// Refusing accesses; still registered.
    GCS_STATE_INVALIDATED = 1,
    /// Unregistered; the release waits for accesses in flight.
    GCS_STATE_RELEASING = 2,
    /// Released; its state is retained for `state_retention_ms`.
    GCS_STATE_RELEASED = 3,
}

/// What `gcs_get_info` reports. Version 1 of the struct.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct GcsHandleInfo {
    /// Set by the caller to `sizeof(GcsHandleInfo)`.
    pub struct_size: u32,
    /// The handle's state.
    pub state: GcsHandleState,
    /// The handle.
    pub handle: GcsHandle,
    /// Its kind.
    pub kind: GcsObjectKind,
    /// Accesses in flight now.
    pub accesses_in_flight: u32,
    /// Type name (owned by the library; valid until the handle's retained
    /// state is dropped: copy it if you keep it).
    pub type_name: *const c_char,
    /// Instance name or NULL (same lifetime as `type_name`).
    pub instance_name: *const c_char,
    /// Size declared at registration.
    pub size_bytes: u64,
    /// Milliseconds since registration.
    pub age_ms: u64,
    /// Milliseconds since release (0 unless released).
    pub released_ms_ago: u64,
}

/// A NUL-terminated UTF-8 string argument that may be NULL.
fn optional_str(name: &str, value: *const c_char) -> Result<Option<String>> {
    if value.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL; the ABI requires a NUL-terminated string.
    let value = unsafe { CStr::from_ptr(value) };
    value
        .to_str()
        .map(|value| Some(value.to_owned()))
        .map_err(|_| {
            Error::new(
                ErrorCode::InvalidArgument,
                format!("{name} is not valid UTF-8"),
            )
        })
}

/// Write `value` to an out-parameter (already checked non-NULL).
fn write_out<T>(out: *mut T, value: T) {
    // SAFETY: every caller checked `out` non-NULL; the ABI requires it to be
    // valid for writes of T.
    unsafe { out.write(value) }
}

fn handle_out_checked(func: &str, handle_out: *mut GcsHandle) -> Result<()> {
    if handle_out.is_null() {
        return Err(Error::new(
            ErrorCode::NullArgument,
            format!("{func}: handle_out is NULL"),
        ));
    }
    Ok(())
}

/// Register a GstObject with the default manager. A floating reference is
/// sunk (the registration owns it); otherwise a reference is added. With
/// `enable_state_checking`, a non-GstObject is refused with
/// GCS_ERROR_WRONG_TYPE before any reference is taken. `type_name` may be
/// NULL (the GType name is used); it is copied.
/// `*handle_out` is written only on success.
#[unsafe(no_mangle)]
pub extern "C" fn gcs_register(
    gst_object: *mut c_void,
    type_name: *const c_char,
    handle_out: *mut GcsHandle,
) -> GcsResult {
    ffi_result!({
        handle_out_checked("gcs_register", handle_out)?;
        let mut registration = Registration::from_raw(Kind::GstObject, gst_object);
        if let Some(name) = optional_str("type_name", type_name)? {
            registration = registration.type_name(name);
        }
        // SAFETY: the ABI requires `gst_object` to be NULL (refused) or a live object.
        let handle =
            with_default_manager(|manager| unsafe { register_raw(manager, registration) })?;
        write_out(handle_out, handle.as_raw());
        Ok(())
    })
}

/// Register any kind of object, with names, size, release function and flags.
/// See `GcsRegistration`. `*handle_out` is written only on success; on error
/// nothing is registered and no reference is kept.
#[unsafe(no_mangle)]
pub extern "C" fn gcs_register_full(
    registration: *const GcsRegistration,
    handle_out: *mut GcsHandle,
) -> GcsResult {
    ffi_result!({
        let registration = sized_struct!("gcs_register_full", registration, GcsRegistration);
        handle_out_checked("gcs_register_full", handle_out)?;
        // SAFETY: checked non-NULL and large enough by `sized_struct!`.
        let r = unsafe { &*registration };
        let kind = Kind::from_raw(r.kind).ok_or_else(|| {
            Error::new(
                ErrorCode::InvalidArgument,
                format!("gcs_register_full: kind {} is not a GcsObjectKind", r.kind),
            )
        })?;
        const KNOWN: u32 = GcsRegisterFlags::GCS_REGISTER_SET_NULL_STATE as u32
            | GcsRegisterFlags::GCS_REGISTER_CAPTURE_STACK as u32;
        if r.flags & !KNOWN != 0 {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                format!("gcs_register_full: unknown flags {:#x}", r.flags & !KNOWN),
            ));
        }
        let mut registration = Registration::from_raw(kind, r.object)
            .size_bytes(r.size_bytes)
            .set_null_state(r.flags & GcsRegisterFlags::GCS_REGISTER_SET_NULL_STATE as u32 != 0)
            .capture_stack(r.flags & GcsRegisterFlags::GCS_REGISTER_CAPTURE_STACK as u32 != 0);
        if let Some(name) = optional_str("type_name", r.type_name)? {
            registration = registration.type_name(name);
        }
        if let Some(name) = optional_str("instance_name", r.instance_name)? {
            registration = registration.instance_name(name);
        }
        if let Some(release) = r.release {
            registration = registration.release(release, r.release_data);
        }
        // SAFETY: the ABI requires `manager` to be NULL or live, `object`
        // to be NULL (refused) or a live object of `kind`, and `release` to
        // be callable with it.
        let handle =
            unsafe { with_manager_ptr(r.manager, |manager| register_raw(manager, registration))? };
        write_out(handle_out, handle.as_raw());
        Ok(())
    })
}

/// Call `callback(object, user_data)` while the handle is live; the object
/// cannot be released before the callback returns, whatever other threads
/// do. Returns GCS_OK, GCS_ERROR_CALLBACK_FAILED if the callback returned
/// non-zero (invalidating the handle when `invalidate_on_callback_error`),
/// or the handle's error without calling the callback ("not valid for
/// access" in gcs_last_error()). The callback runs on this thread with no
/// library lock held and may re-enter the library.
#[unsafe(no_mangle)]
pub extern "C" fn gcs_safe_access(
    handle: GcsHandle,
    callback: GcsAccessFn,
    user_data: *mut c_void,
) -> GcsResult {
    ffi_boundary!(GcsResult::GCS_ERROR_PANIC, {
        let Some(callback) = callback else {
            return record(&Error::new(
                ErrorCode::NullArgument,
                "gcs_safe_access: callback is NULL",
            ));
        };
        // SAFETY: the ABI requires `callback` to be callable with
        // (object, user_data); the object is kept alive across the call.
        match handle::access_with(handle, |object| unsafe { callback(object, user_data) }) {
            Ok(()) => GcsResult::GCS_OK,
            Err(error) => record(&error),
        }
    })
}

/// Begin an access without a callback (for bindings and RAII): on success
/// `*object_out` is the object (transfer none), alive until the matching
/// `gcs_access_end`, which may run on another thread. Every successful begin
/// must be ended exactly once.
#[unsafe(no_mangle)]
pub extern "C" fn gcs_access_begin(handle: GcsHandle, object_out: *mut *mut c_void) -> GcsResult {
    ffi_result!({
        if object_out.is_null() {
            return Err(Error::new(
                ErrorCode::NullArgument,
                "gcs_access_begin: object_out is NULL",
            ));
        }
        // The access's count stays held until gcs_access_end.
        let begun = handle::begin_access(handle)?;
        write_out(object_out, begun.object.as_ptr());
        Ok(())
    })
}

/// End an access begun by `gcs_access_begin`. With no access in flight on
/// the handle, returns GCS_ERROR_NOT_ACCESSING and changes nothing. If the
/// handle was unregistered meanwhile and this is the last access, the
/// release happens here, on this thread.
///
/// Accesses are counted per handle, not per caller: an unmatched end while
/// another access of the same handle is in flight cannot be told from that
/// access's own end and ends it early (as a double g_object_unref would),
/// so end every successful begin exactly once. The counts themselves never
/// underflow, whatever is called.
#[unsafe(no_mangle)]
pub extern "C" fn gcs_access_end(handle: GcsHandle) -> GcsResult {
    ffi_result!({ handle::end_access_by_value(handle) })
}

/// Whether accesses would be accepted now (a snapshot). Never starts the
/// default manager; false for any value that is not a live handle.
#[unsafe(no_mangle)]
pub extern "C" fn gcs_is_valid(handle: GcsHandle) -> bool {
    ffi_boundary!(false, { crate::manager::table().is_live(handle) })
}

/// Unregister: new accesses are refused at once; the reference is dropped
/// when the last access in flight ends, on the thread that ends it (here,
/// if none is in flight). Never blocks on accesses. May be called inside an
/// access of the same handle. A second call gives GCS_ERROR_RELEASED.
#[unsafe(no_mangle)]
pub extern "C" fn gcs_unregister(handle: GcsHandle) -> GcsResult {
    ffi_result!({ handle::unregister(handle) })
}

/// Unregister and wait until the release has happened (up to `timeout_ms`;
/// `GCS_TIMEOUT_INFINITE` waits as long as it takes): accesses in flight
/// ended, cleanups and the finalizer run (on the finalizer executor too),
/// and the reference dropped — with a `release_context`, when that context
/// has run the release (so do not wait on a thread that must iterate it). On timeout returns
/// GCS_ERROR_TIMEOUT and the handle stays released-pending. Inside an access
/// of the same handle begun on this thread, returns GCS_ERROR_WOULD_DEADLOCK
/// at once and changes nothing; from inside its own release (a release
/// function), returns GCS_ERROR_RELEASED at once. On a handle someone else
/// unregistered whose release is pending, waits the same way, then returns
/// GCS_ERROR_RELEASED. Detection follows the thread that began an access;
/// for accesses ended on another thread it is best-effort (see the README).
#[unsafe(no_mangle)]
pub extern "C" fn gcs_unregister_sync(handle: GcsHandle, timeout_ms: u32) -> GcsResult {
    ffi_result!({
        let timeout =
            (timeout_ms != GCS_TIMEOUT_INFINITE).then(|| Duration::from_millis(timeout_ms.into()));
        handle::unregister_sync(handle, timeout)
    })
}

/// Refuse new accesses like unregister, but keep the registration (so
/// `gcs_get_info` still reports it); the reference is dropped at unregister.
/// Invalidating an invalidated handle gives GCS_ERROR_INVALIDATED.
#[unsafe(no_mangle)]
pub extern "C" fn gcs_invalidate(handle: GcsHandle) -> GcsResult {
    ffi_result!({ handle::invalidate(handle) })
}

/// Describe a handle: live, invalidated, releasing, or released within its
/// retention. `info_out->struct_size` must be set by the caller; `*info_out`
/// is written only on success. Its strings are owned by the library and
/// stay valid until the handle's retained state is dropped.
#[unsafe(no_mangle)]
pub extern "C" fn gcs_get_info(handle: GcsHandle, info_out: *mut GcsHandleInfo) -> GcsResult {
    ffi_result!({
        let info_out = sized_struct!("gcs_get_info", info_out, GcsHandleInfo);
        let (info, type_name, instance_name) = handle::info_with_c_names(handle)?;
        write_out(info_out, handle_info_to_c(&info, type_name, instance_name));
        Ok(())
    })
}

/// A `GcsHandleInfo` for `info`, with names owned by the caller.
pub(crate) fn handle_info_to_c(
    info: &crate::HandleInfo,
    type_name: *const c_char,
    instance_name: *const c_char,
) -> GcsHandleInfo {
    GcsHandleInfo {
        struct_size: core::mem::size_of::<GcsHandleInfo>() as u32,
        state: match info.state {
            HandleState::Live => GcsHandleState::GCS_STATE_LIVE,
            HandleState::Invalidated => GcsHandleState::GCS_STATE_INVALIDATED,
            HandleState::Releasing => GcsHandleState::GCS_STATE_RELEASING,
            HandleState::Released => GcsHandleState::GCS_STATE_RELEASED,
        },
        handle: info.handle.as_raw(),
        kind: info.kind.into(),
        accesses_in_flight: info.accesses_in_flight,
        type_name,
        instance_name,
        size_bytes: info.size_bytes,
        age_ms: info.age_ms,
        released_ms_ago: info.released_ms_ago,
    }
}

/// The kind to register `object` with: GCS_KIND_GST_OBJECT for a GstObject,
/// GCS_KIND_GOBJECT for any other GObject, GCS_KIND_MINI_OBJECT for a
/// GstMiniObject, found from its GType with the checks of
/// `enable_state_checking`. For bindings whose wrappers give a pointer of
/// unknown type. GCS_ERROR_NULL_ARGUMENT for NULL, GCS_ERROR_WRONG_TYPE for
/// anything else (a GTypeInstance that is not a GObject, or memory of neither
/// shape, as far as it can be told). `object` must point at a live
/// GTypeInstance or GstMiniObject (transfer none: no reference is taken).
/// `*kind_out` is written only on success.
#[unsafe(no_mangle)]
pub extern "C" fn gcs_object_kind(object: *mut c_void, kind_out: *mut GcsObjectKind) -> GcsResult {
    ffi_result!({
        if kind_out.is_null() {
            return Err(Error::new(
                ErrorCode::NullArgument,
                "gcs_object_kind: kind_out is NULL",
            ));
        }
        let Some(object) = core::ptr::NonNull::new(object) else {
            return Err(Error::new(
                ErrorCode::NullArgument,
                "gcs_object_kind: object is NULL",
            ));
        };
        // SAFETY: the ABI requires a live GTypeInstance or GstMiniObject.
        let kind = unsafe { crate::object::kind_of(object) }?;
        write_out(kind_out, kind.into());
        Ok(())
    })
}
