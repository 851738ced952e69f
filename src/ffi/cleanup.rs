//! Cleanup callbacks and finalizers.

use core::ffi::{c_int, c_void};

use crate::error::{Error, ErrorCode};
use crate::ffi::error::GcsResult;
use crate::ffi::handle::GcsHandle;
use crate::handle;
use crate::record::{Callback, SendPtr};

/// A cleanup or finalizer: `fn(object, user_data)`, 0 = success. `object` is
/// the registered object (transfer none, alive for the call; NULL for a weak
/// handle whose object is already gone). Unwinding out of it: a Rust panic
/// is caught and counts as a failure (a non-zero result); a C++ exception
/// aborts the process; a longjmp out of it is undefined (it runs inside the
/// library). See docs/foreign-control-flow.md.
pub type GcsCleanupFn =
    Option<unsafe extern "C-unwind" fn(object: *mut c_void, user_data: *mut c_void) -> c_int>;

fn callback(func: GcsCleanupFn, data: *mut c_void, name: &str) -> crate::Result<Callback> {
    let func = func.ok_or_else(|| {
        Error::new(
            ErrorCode::NullArgument,
            format!("{name}: the callback is NULL"),
        )
    })?;
    Ok(Callback::C {
        func,
        data: SendPtr(data),
    })
}

/// Run `cleanup(object, user_data)` when the registration is released (also at
/// unregister after an invalidation, and at manager close): exactly once,
/// after in-flight accesses have ended and before the reference drops, so it
/// may use the object; cleanups run newest first, on the releasing thread
/// (or the manager's release_context), with no library lock held. A cleanup
/// may call any gcs_ function, on its own handle too (which then reports
/// GCS_ERROR_RELEASED); a cycle of cleanups unregistering each other ends.
/// A non-zero result is counted in `cleanup_failures`. On a handle that is
/// already unregistered: GCS_ERROR_RELEASED, and `cleanup` is not kept.
#[unsafe(no_mangle)]
pub extern "C" fn gcs_add_cleanup(
    handle: GcsHandle,
    cleanup: GcsCleanupFn,
    user_data: *mut c_void,
) -> GcsResult {
    ffi_result!({ handle::add_cleanup(handle, callback(cleanup, user_data, "gcs_add_cleanup")?) })
}

/// Set the registration's finalizer (one per registration; a second gives
/// GCS_ERROR_INVALID_ARGUMENT): a cleanup that runs only if the handle was
/// not invalidated, at most once, after the other cleanups. With
/// `enable_finalizer_safety` it runs on a library thread with
/// `finalizer_timeout_ms` watched (an overrun is counted in
/// `finalizer_timeouts`, and delays other finalizers by at most that long),
/// non-zero results are retried up to `max_finalizer_retries` times before
/// counting in `finalizer_failures`, and the reference is dropped only after
/// it returns. Without it, it runs like a cleanup, on the releasing thread.
#[unsafe(no_mangle)]
pub extern "C" fn gcs_set_finalizer(
    handle: GcsHandle,
    finalizer: GcsCleanupFn,
    user_data: *mut c_void,
) -> GcsResult {
    ffi_result!({
        handle::set_finalizer(handle, callback(finalizer, user_data, "gcs_set_finalizer")?)
    })
}
