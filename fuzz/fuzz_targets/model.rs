//! The model-based fuzzer: each input is a sequence of operations on the C
//! ABI (exported and header-inline), checked against the reference model of
//! tests/model/mod.rs — every result code, every release count. Its stable
//! twin is tests/model_check.rs (proptest, inside `cargo test`), which also
//! replays this target's committed corpus (fuzz/corpus/model).
#![no_main]

#[path = "../../tests/model/mod.rs"]
mod model;

use std::ffi::c_void;
use std::sync::OnceLock;

use gcsafety::ffi::{cleanup, config, diag, error, handle, manager, stats};
use libfuzzer_sys::fuzz_target;

unsafe extern "C" {
    fn gcs_model_inline_available() -> bool;
    fn gcs_model_begin_inline(handle: u64, object_out: *mut *mut c_void) -> i32;
    fn gcs_model_end_inline(handle: u64) -> i32;
    fn gcs_model_is_valid_inline(handle: u64) -> bool;
    fn gcs_model_safe_access_inline(
        handle: u64,
        callback: model::Callback,
        data: *mut c_void,
    ) -> i32;
}

/// An exported function as the C declaration's function pointer type (the
/// Rust signatures use the crate's enums and `extern "C-unwind"` callback
/// types, ABI-identical to the model's `i32` and `extern "C"` ones).
macro_rules! c {
    ($f:expr) => {
        // SAFETY: same C ABI, see above.
        unsafe { std::mem::transmute::<*const (), _>($f as *const ()) }
    };
}

// Each transmute's target type is its Api field's, which says it better
// than a repeated annotation.
#[allow(clippy::missing_transmute_annotations)]
fn api() -> model::Api {
    static API: OnceLock<model::Api> = OnceLock::new();
    *API.get_or_init(|| {
        // SAFETY: GStreamer initialised once, before any object is made.
        unsafe { gstreamer_sys::gst_init(std::ptr::null_mut(), std::ptr::null_mut()) };
        model::Api {
            register: c!(handle::gcs_register),
            register_full: c!(handle::gcs_register_full),
            safe_access: c!(handle::gcs_safe_access),
            access_begin: c!(handle::gcs_access_begin),
            access_end: c!(handle::gcs_access_end),
            is_valid: c!(handle::gcs_is_valid),
            unregister: c!(handle::gcs_unregister),
            unregister_sync: c!(handle::gcs_unregister_sync),
            invalidate: c!(handle::gcs_invalidate),
            get_info: c!(handle::gcs_get_info),
            add_cleanup: c!(cleanup::gcs_add_cleanup),
            set_finalizer: c!(cleanup::gcs_set_finalizer),
            config_init: c!(config::gcs_config_init),
            configure: c!(config::gcs_configure),
            manager_new: c!(manager::gcs_manager_new),
            manager_close: c!(manager::gcs_manager_close),
            manager_free: c!(manager::gcs_manager_free),
            shutdown: c!(manager::gcs_shutdown),
            get_stats: c!(stats::gcs_get_stats),
            foreach_live_handle: c!(diag::gcs_foreach_live_handle),
            last_error: c!(error::gcs_last_error),
            // SAFETY: a plain call of the shim.
            inline_available: unsafe { gcs_model_inline_available() },
            begin_inline: gcs_model_begin_inline,
            end_inline: gcs_model_end_inline,
            is_valid_inline: gcs_model_is_valid_inline,
            safe_access_inline: gcs_model_safe_access_inline,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    model::run(api(), data);
});
