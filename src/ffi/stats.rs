//! Statistics, the leak report, and Prometheus text.

use core::ffi::{c_char, c_void};

use crate::error::{Error, ErrorCode};
use crate::ffi::error::GcsResult;
use crate::ffi::handle::{GcsHandleInfo, GcsManager, handle_info_to_c};
use crate::ffi::manager::manager_from_ptr;
use crate::stats::Stats;

/// A manager's statistics (`gcs_get_stats`). Version 1 of the struct.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GcsStats {
    /// Set by the caller to `sizeof(GcsStats)`.
    pub struct_size: u32,
    /// Registrations ever made (cumulative).
    pub total_registered: u64,
    /// Registrations not yet released (live, invalidated or releasing).
    pub active: u64,
    /// Registrations released.
    pub released: u64,
    /// Handles invalidated (gcs_invalidate, failed or panicking accesses).
    pub invalidated: u64,
    /// Accesses that ran.
    pub access_ok: u64,
    /// Accesses refused: stale, invalidated, closed, and (counted on the
    /// default manager) values that name no registration.
    pub access_rejected: u64,
    /// Access callbacks that returned non-zero.
    pub callback_failures: u64,
    /// Panics caught inside accesses.
    pub panics_recovered: u64,
    /// Cleanup callbacks run.
    pub cleanups_run: u64,
    /// Cleanup callbacks that returned non-zero.
    pub cleanup_failures: u64,
    /// Finalizers run (once each, however many attempts).
    pub finalizers_run: u64,
    /// Finalizers that failed every attempt.
    pub finalizer_failures: u64,
    /// Finalizers that overran `finalizer_timeout_ms`.
    pub finalizer_timeouts: u64,
    /// Bytes declared by registrations not yet released.
    pub tracked_bytes: u64,
    /// The most registrations active at once.
    pub peak_active: u64,
}

impl From<&Stats> for GcsStats {
    fn from(s: &Stats) -> Self {
        GcsStats {
            struct_size: core::mem::size_of::<GcsStats>() as u32,
            total_registered: s.total_registered,
            active: s.active,
            released: s.released,
            invalidated: s.invalidated,
            access_ok: s.access_ok,
            access_rejected: s.access_rejected,
            callback_failures: s.callback_failures,
            panics_recovered: s.panics_recovered,
            cleanups_run: s.cleanups_run,
            cleanup_failures: s.cleanup_failures,
            finalizers_run: s.finalizers_run,
            finalizer_failures: s.finalizer_failures,
            finalizer_timeouts: s.finalizer_timeouts,
            tracked_bytes: s.tracked_bytes,
            peak_active: s.peak_active,
        }
    }
}

/// One type's statistics within a manager (`gcs_foreach_type_stats`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct GcsTypeStats {
    /// `sizeof(GcsTypeStats)`.
    pub struct_size: u32,
    /// The type name (valid during the callback).
    pub type_name: *const c_char,
    /// Registrations of this type not yet released.
    pub live: u64,
    /// Registrations of this type ever made.
    pub registered: u64,
    /// Registrations of this type released.
    pub released: u64,
    /// Accesses of this type's handles that ran.
    pub accesses: u64,
    /// Bytes declared by this type's unreleased registrations.
    pub tracked_bytes: u64,
}

/// Callback of `gcs_foreach_type_stats`.
pub type GcsTypeStatsFn =
    Option<unsafe extern "C" fn(stats: *const GcsTypeStats, user_data: *mut c_void)>;
/// Callback of `gcs_foreach_live`.
pub type GcsHandleInfoFn =
    Option<unsafe extern "C" fn(info: *const GcsHandleInfo, user_data: *mut c_void)>;

/// The statistics of a manager (NULL = the default manager, started if
/// needed). `stats_out->struct_size` must be set; written only on success.
/// Counts are exact once no thread is registering or accessing; taken while
/// they are, they may lag by the operations of that instant.
#[unsafe(no_mangle)]
pub extern "C" fn gcs_get_stats(manager: *mut GcsManager, stats_out: *mut GcsStats) -> GcsResult {
    ffi_result!({
        let stats_out = sized_struct!("gcs_get_stats", stats_out, GcsStats);
        // SAFETY: the ABI requires NULL or a live manager pointer.
        let s = unsafe { manager_from_ptr(manager) }.stats();
        // SAFETY: checked non-NULL and large enough by `sized_struct!`.
        unsafe { stats_out.write(GcsStats::from(&s)) };
        Ok(())
    })
}

/// Call `callback(stats, user_data)` for each type name registered with the
/// manager (NULL = default), sorted by name, on this thread, with no library
/// lock held (it may call gcs_ functions). `stats` is valid during the call.
#[unsafe(no_mangle)]
pub extern "C" fn gcs_foreach_type_stats(
    manager: *mut GcsManager,
    callback: GcsTypeStatsFn,
    user_data: *mut c_void,
) -> GcsResult {
    ffi_result!({
        let callback = callback.ok_or_else(|| {
            Error::new(
                ErrorCode::NullArgument,
                "gcs_foreach_type_stats: callback is NULL",
            )
        })?;
        // SAFETY: the ABI requires NULL or a live manager pointer.
        let types = unsafe { manager_from_ptr(manager) }.type_stats();
        for t in types {
            let name = crate::manager::c_name(&t.type_name);
            let stats = GcsTypeStats {
                struct_size: core::mem::size_of::<GcsTypeStats>() as u32,
                type_name: name.as_ptr(),
                live: t.live,
                registered: t.registered,
                released: t.released,
                accesses: t.accesses,
                tracked_bytes: t.tracked_bytes,
            };
            // SAFETY: the caller's callback with its data; `stats` and the
            // name outlive the call.
            unsafe { callback(&stats, user_data) };
        }
        Ok(())
    })
}

/// The leak report: call `callback(info, user_data)` for every registration
/// of the manager (NULL = default) not yet released, oldest first, on this
/// thread, with no library lock held. `info` and its strings are valid
/// during the call.
#[unsafe(no_mangle)]
pub extern "C" fn gcs_foreach_live(
    manager: *mut GcsManager,
    callback: GcsHandleInfoFn,
    user_data: *mut c_void,
) -> GcsResult {
    ffi_result!({
        let callback = callback.ok_or_else(|| {
            Error::new(
                ErrorCode::NullArgument,
                "gcs_foreach_live: callback is NULL",
            )
        })?;
        // SAFETY: the ABI requires NULL or a live manager pointer.
        let live = unsafe { manager_from_ptr(manager) }.live();
        for (info, _) in live {
            let type_name = crate::manager::c_name(&info.type_name);
            let instance_name = info.instance_name.as_deref().map(crate::manager::c_name);
            let c_info = handle_info_to_c(
                &info,
                type_name.as_ptr(),
                instance_name
                    .as_ref()
                    .map_or(core::ptr::null(), |n| n.as_ptr()),
            );
            // SAFETY: the caller's callback with its data; `c_info` and the
            // names outlive the call.
            unsafe { callback(&c_info, user_data) };
        }
        Ok(())
    })
}

/// Write the manager's statistics (NULL = default) in the Prometheus text
/// exposition format, with snprintf semantics: returns the length of the
/// whole text (without the NUL), writes at most `buf_len` bytes including a
/// terminating NUL (none if `buf_len` is 0 or `buf` is NULL). Call with
/// (NULL, 0) to size the buffer. Metric names are prefixed `gcs_`; per-type
/// series carry `type="..."`. Returns 0 on an internal error.
#[unsafe(no_mangle)]
pub extern "C" fn gcs_stats_prometheus(
    manager: *mut GcsManager,
    buf: *mut c_char,
    buf_len: usize,
) -> usize {
    ffi_boundary!(0, {
        // SAFETY: the ABI requires NULL or a live manager pointer.
        let manager = unsafe { manager_from_ptr(manager) };
        let text = crate::prometheus::render(&manager.stats(), &manager.type_stats());
        if !buf.is_null() && buf_len > 0 {
            let n = text.len().min(buf_len - 1);
            // SAFETY: the caller provides `buf_len` writable bytes at `buf`;
            // we write `n + 1 <= buf_len`.
            unsafe {
                core::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), n);
                buf.add(n).write(0);
            }
        }
        text.len()
    })
}
