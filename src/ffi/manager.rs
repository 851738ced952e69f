//! Managers and shutdown.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, ErrorCode};
use crate::ffi::config::GcsConfig;
use crate::ffi::error::GcsResult;
use crate::ffi::handle::{GCS_TIMEOUT_INFINITE, GcsManager};
use crate::manager::{self, ManagerInner};

/// The manager a C pointer names: NULL is the default manager (started if
/// needed); otherwise a pointer from `gcs_manager_new` not yet freed.
///
/// # Safety
/// `manager` is NULL or from `gcs_manager_new` and not yet freed.
pub(crate) unsafe fn manager_from_ptr(manager: *mut GcsManager) -> Arc<ManagerInner> {
    // SAFETY: forwarded precondition; the clone is a strong count of our own.
    unsafe { with_manager_ptr(manager, Arc::clone) }
}

/// Run `f` with the manager a C pointer names (see [`manager_from_ptr`]),
/// borrowed: no reference count is taken.
///
/// # Safety
/// As for [`manager_from_ptr`].
pub(crate) unsafe fn with_manager_ptr<R>(
    manager: *mut GcsManager,
    f: impl FnOnce(&Arc<ManagerInner>) -> R,
) -> R {
    if manager.is_null() {
        return manager::with_default_manager(f);
    }
    // SAFETY: made by `Arc::into_raw` in `gcs_manager_new`, and not freed
    // before this call returns (the caller's guarantee); `ManuallyDrop`
    // gives back no count it did not take.
    let borrowed = core::mem::ManuallyDrop::new(unsafe {
        Arc::from_raw(manager.cast_const().cast::<ManagerInner>())
    });
    f(&borrowed)
}

fn timeout(timeout_ms: u32) -> Option<Duration> {
    (timeout_ms != GCS_TIMEOUT_INFINITE).then(|| Duration::from_millis(timeout_ms.into()))
}

/// Create a manager with its own configuration (NULL = the defaults) and
/// statistics. `config` is read during the call only. On success
/// `*manager_out` owns the manager: free it with `gcs_manager_free`. The
/// environment variables (GCS_DEBUG, GCS_LEAKS) apply to the default
/// manager only.
#[unsafe(no_mangle)]
pub extern "C" fn gcs_manager_new(
    config: *const GcsConfig,
    manager_out: *mut *mut GcsManager,
) -> GcsResult {
    ffi_result!({
        if manager_out.is_null() {
            return Err(Error::new(
                ErrorCode::NullArgument,
                "gcs_manager_new: manager_out is NULL",
            ));
        }
        let config = if config.is_null() {
            crate::Config::default()
        } else {
            let config = sized_struct!("gcs_manager_new", config, GcsConfig);
            // SAFETY: checked non-NULL and large enough; the ABI requires
            // release_context to be NULL or a GMainContext.
            unsafe { (*config).to_config()? }
        };
        config.validate()?;
        // The C caller owns the only strong count; gcs_manager_free drops it.
        let raw = Arc::into_raw(ManagerInner::new_owned(config)?);
        // SAFETY: checked non-NULL; the ABI requires it writable.
        unsafe { manager_out.write(raw.cast_mut().cast()) };
        Ok(())
    })
}

/// Close a manager (NULL = the default manager): new registrations and
/// accesses of its handles are refused with GCS_ERROR_SHUT_DOWN at once;
/// every registration is unregistered, those with no access in flight are
/// released now (cleanups run); waits up to `timeout_ms`
/// (GCS_TIMEOUT_INFINITE: as long as it takes) for the others, which are
/// released when their last access ends — GCS_ERROR_TIMEOUT if some are
/// still pending. Closing again waits the same way. Closing the default
/// manager does not restart it: use gcs_shutdown for that.
#[unsafe(no_mangle)]
pub extern "C" fn gcs_manager_close(manager: *mut GcsManager, timeout_ms: u32) -> GcsResult {
    ffi_result!({
        // SAFETY: the ABI requires NULL or a live manager pointer.
        let manager = unsafe { manager_from_ptr(manager) };
        manager.close(timeout(timeout_ms))
    })
}

/// Close the manager if needed (without waiting: registrations with accesses
/// in flight are released when those end) and free it. NULL does nothing.
/// Its handles stay safe to pass: they report GCS_ERROR_SHUT_DOWN.
#[unsafe(no_mangle)]
pub extern "C" fn gcs_manager_free(manager: *mut GcsManager) {
    ffi_boundary!((), {
        if manager.is_null() {
            return;
        }
        // SAFETY: made by `Arc::into_raw` in gcs_manager_new; the caller
        // frees it once. This consumes the caller's count.
        let inner = unsafe { Arc::from_raw(manager.cast_const().cast::<ManagerInner>()) };
        let _ = inner.close(Some(Duration::ZERO));
    })
}

/// Close the default manager and every manager still open (waiting up to
/// `timeout_ms` in total), and join every library thread (the finalizer
/// executor). With GCS_LEAKS=1, live handles are reported first. The next
/// use starts a fresh default manager; handles from before stay dead.
/// Call it before dlclose. GCS_ERROR_TIMEOUT if accesses or a finalizer were
/// still running at the timeout (they finish on their own).
#[unsafe(no_mangle)]
pub extern "C" fn gcs_shutdown(timeout_ms: u32) -> GcsResult {
    ffi_result!({ manager::shutdown(timeout(timeout_ms)) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// gcs_manager_free drops the manager's last strong count: nothing keeps
    /// a freed manager's state (a program that creates and frees managers in
    /// a loop, as the stress program does, must not grow).
    #[test]
    fn a_freed_manager_is_dropped() {
        let mut raw: *mut GcsManager = std::ptr::null_mut();
        assert_eq!(
            gcs_manager_new(std::ptr::null(), &mut raw),
            GcsResult::GCS_OK
        );
        // SAFETY: `raw` is from gcs_manager_new and not yet freed; the
        // ManuallyDrop keeps the caller's count for gcs_manager_free.
        let weak = unsafe {
            let owned =
                std::mem::ManuallyDrop::new(Arc::from_raw(raw.cast_const().cast::<ManagerInner>()));
            Arc::downgrade(&owned)
        };
        assert_eq!(weak.strong_count(), 1);
        gcs_manager_free(raw);
        assert_eq!(weak.strong_count(), 0);
    }
}
