//! Diagnostics: leak checkpoints, the live-handle report of every manager
//! (what the `gcsafety` GStreamer tracer prints), and the counters of every
//! manager summed.

use core::ffi::{c_char, c_void};
use std::ffi::CString;

use super::error::GcsResult;
use super::handle::{GcsHandleInfo, handle_info_to_c};
use super::stats::GcsStats;
use crate::error::{Error, ErrorCode};

/// Which live handles `gcs_foreach_live_handle` reports.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum GcsLiveFlags {
    /// Every handle not yet released, of every manager.
    GCS_LIVE_ALL = 0,
    /// Only those registered after the last `gcs_leaks_checkpoint`.
    GCS_LIVE_SINCE_CHECKPOINT = 1 << 0,
}

/// One handle not yet released, as `gcs_foreach_live_handle` reports it.
/// Everything it points to is owned by the library and valid during the
/// callback only.
#[repr(C)]
#[derive(Debug)]
pub struct GcsLiveHandle {
    /// `sizeof(GcsLiveHandle)` of the library that filled it.
    pub struct_size: u32,
    /// What `gcs_get_info` says about it.
    pub info: GcsHandleInfo,
    /// The object's address, as GStreamer's leaks tracer prints it. Not a
    /// reference: do not dereference it (use an access for that).
    pub address: *const c_void,
    /// The `GstObject`'s name (`gst_object_get_name`) for a
    /// `GCS_KIND_GST_OBJECT` registration, else NULL.
    pub object_name: *const c_char,
    /// Where it was registered (a backtrace, from the caller of the library
    /// on) when recorded (`GCS_REGISTER_CAPTURE_STACK`, `GCS_DEBUG=stacks`),
    /// else NULL.
    pub registered_at: *const c_char,
    /// Whether it was registered after the last `gcs_leaks_checkpoint`.
    pub since_checkpoint: bool,
}

/// Callback of `gcs_foreach_live_handle`.
pub type GcsLiveHandleFn =
    Option<unsafe extern "C" fn(live: *const GcsLiveHandle, user_data: *mut c_void)>;

/// Start a leak checkpoint (the leaks tracer's `activity-start-tracking`):
/// `gcs_foreach_live_handle (GCS_LIVE_SINCE_CHECKPOINT, ...)` then reports
/// only what is registered after this call and still not released. A new
/// checkpoint replaces the previous one. Thread-safe; never fails.
#[unsafe(no_mangle)]
pub extern "C" fn gcs_leaks_checkpoint() -> GcsResult {
    ffi_result!({
        crate::diag::leaks_checkpoint();
        Ok(())
    })
}

/// Call `callback(live, user_data)` for every handle not yet released, of
/// every manager (the default one and those of `gcs_manager_new`), oldest
/// first; with `GCS_LIVE_SINCE_CHECKPOINT` in `flags`, only those registered
/// after the last `gcs_leaks_checkpoint`. On this thread, with no library
/// lock held: the callback may call any `gcs_` function. `live` (transfer
/// none) is valid during the call. Never starts the default manager.
#[unsafe(no_mangle)]
pub extern "C" fn gcs_foreach_live_handle(
    flags: u32,
    callback: GcsLiveHandleFn,
    user_data: *mut c_void,
) -> GcsResult {
    ffi_result!({
        let callback = callback.ok_or_else(|| {
            Error::new(
                ErrorCode::NullArgument,
                "gcs_foreach_live_handle: callback is NULL",
            )
        })?;
        let since = GcsLiveFlags::GCS_LIVE_SINCE_CHECKPOINT as u32;
        if flags & !since != 0 {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                format!(
                    "gcs_foreach_live_handle: unknown flags {:#x}",
                    flags & !since
                ),
            ));
        }
        for live in crate::diag::live_handles(flags & since != 0) {
            let c = |text: &str| CString::new(text).unwrap_or_default();
            let type_name = c(&live.info.type_name);
            let instance_name = live.info.instance_name.as_deref().map(c);
            let object_name = live.object_name.as_deref().map(c);
            let registered_at = live.registered_at.as_deref().map(c);
            let ptr = |s: &Option<CString>| s.as_ref().map_or(core::ptr::null(), |s| s.as_ptr());
            let c_live = GcsLiveHandle {
                struct_size: core::mem::size_of::<GcsLiveHandle>() as u32,
                info: handle_info_to_c(&live.info, type_name.as_ptr(), ptr(&instance_name)),
                address: live.address as *const c_void,
                object_name: ptr(&object_name),
                registered_at: ptr(&registered_at),
                since_checkpoint: live.since_checkpoint,
            };
            // SAFETY: the caller's callback with its data; `c_live` and its
            // strings outlive the call.
            unsafe { callback(&c_live, user_data) };
        }
        Ok(())
    })
}

/// The statistics of every manager still alive (open or closed, not yet
/// freed), summed; `peak_active` is the sum of their peaks. Unlike
/// `gcs_get_stats (NULL, ...)` it never starts the default manager, so a
/// tracer may call it after `gcs_shutdown`. `stats_out->struct_size` must be
/// set; written only on success.
#[unsafe(no_mangle)]
pub extern "C" fn gcs_get_total_stats(stats_out: *mut GcsStats) -> GcsResult {
    ffi_result!({
        let stats_out = sized_struct!("gcs_get_total_stats", stats_out, GcsStats);
        let s = crate::diag::total_stats();
        // SAFETY: checked non-NULL and large enough by `sized_struct!`.
        unsafe { stats_out.write(GcsStats::from(&s)) };
        Ok(())
    })
}
