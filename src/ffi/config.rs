//! `GcsConfig`, `gcs_config_init`, `gcs_configure`.

use core::ffi::c_void;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, MemoryPressure};
use crate::error::Result;
use crate::ffi::error::GcsResult;
use crate::record::SendPtr;

/// Called when tracked memory is above `memory_limit_bytes`:
/// `memory_pressure(tracked_bytes, user_data)`.
pub type GcsMemoryPressureFn =
    Option<unsafe extern "C" fn(tracked_bytes: u64, user_data: *mut c_void)>;

/// A manager's configuration. Fill it with `gcs_config_init`, then change
/// fields. Version 1 of the struct; `struct_size` must be at least its size.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct GcsConfig {
    /// `sizeof(GcsConfig)`, set by `gcs_config_init`.
    pub struct_size: u32,
    /// How often expired retained states are swept (lazily, at registration). Default 30000; at least 1.
    pub cleanup_interval_ms: u32,
    /// How long a released handle's state is kept, so a stale handle is
    /// reported with its type and name. Default 300000. At most
    /// `GCS_MAX_RETAINED_STATES` states are kept, whatever their age.
    pub state_retention_ms: u32,
    /// A finalizer running longer is counted as timed out. Default 5000; at least 1.
    pub finalizer_timeout_ms: u32,
    /// A finalizer returning non-zero is retried this often. Default 3; at most 1000.
    pub max_finalizer_retries: u32,
    /// Validate objects' GType at registration. Default true.
    pub enable_state_checking: bool,
    /// Run finalizers on the library's executor, with a timeout. Default true.
    pub enable_finalizer_safety: bool,
    /// A non-zero access callback invalidates the handle. Default false.
    pub invalidate_on_callback_error: bool,
    /// Log registrations, invalidations and releases even when the GStreamer
    /// debug category "gcsafety" does not show them (those lines then go to
    /// stderr; the category alone shows them: GST_DEBUG=gcsafety:5).
    /// Default false. Also GCS_DEBUG=state (default manager).
    pub log_state_changes: bool,
    /// Log finalizer runs (DEBUG), failures and timeouts (WARNING). Default
    /// false. Also GCS_DEBUG=finalizers (default manager).
    pub log_finalizers: bool,
    /// A `GMainContext *` (transfer none: the manager takes a reference) on
    /// which releases run (cleanups, finalizer hand-off, final unref), for
    /// objects that must die on their owner's thread: dispatched with
    /// g_main_context_invoke_full, so it runs at once when the releasing
    /// thread owns the context, else when the context is next iterated.
    /// Default NULL: on the thread that ends the last access.
    pub release_context: *mut c_void,
    /// Tracked bytes (sum of `size_bytes` of unreleased registrations) above
    /// which `memory_pressure` is called; 0 = no limit.
    pub memory_limit_bytes: u64,
    /// Called as `memory_pressure(tracked_bytes, memory_pressure_data)` on the
    /// registering thread, with no library lock held: by the registration that
    /// takes the tracked bytes above the limit, then at most once every
    /// GCS_MEMORY_PRESSURE_INTERVAL_MS while they stay above it. Requires a
    /// non-zero `memory_limit_bytes`.
    pub memory_pressure: GcsMemoryPressureFn,
    /// `user_data` of `memory_pressure`.
    pub memory_pressure_data: *mut c_void,
}

impl GcsConfig {
    /// The defaults.
    pub fn defaults() -> Self {
        let defaults = Config::default();
        GcsConfig {
            struct_size: core::mem::size_of::<GcsConfig>() as u32,
            cleanup_interval_ms: defaults.cleanup_interval.as_millis() as u32,
            state_retention_ms: defaults.state_retention.as_millis() as u32,
            finalizer_timeout_ms: defaults.finalizer_timeout.as_millis() as u32,
            max_finalizer_retries: defaults.max_finalizer_retries,
            enable_state_checking: defaults.enable_state_checking,
            enable_finalizer_safety: defaults.enable_finalizer_safety,
            invalidate_on_callback_error: defaults.invalidate_on_callback_error,
            log_state_changes: defaults.log_state_changes,
            log_finalizers: defaults.log_finalizers,
            release_context: core::ptr::null_mut(),
            memory_limit_bytes: defaults.memory_limit_bytes,
            memory_pressure: None,
            memory_pressure_data: core::ptr::null_mut(),
        }
    }

    /// The core configuration, or why these values cannot be used.
    ///
    /// # Safety
    /// `release_context` must be NULL or a valid `GMainContext *`.
    pub unsafe fn to_config(&self) -> Result<Config> {
        let release_context = if self.release_context.is_null() {
            None
        } else {
            use glib::translate::FromGlibPtrNone;
            // SAFETY: a valid GMainContext per the precondition; this takes
            // a reference of the manager's own (dropped with the manager).
            Some(unsafe {
                glib::MainContext::from_glib_none(
                    self.release_context.cast::<glib_sys::GMainContext>(),
                )
            })
        };
        let memory_pressure = self.memory_pressure.map(|func| {
            let data = SendPtr(self.memory_pressure_data);
            let pressure: MemoryPressure = Arc::new(move |tracked: u64| {
                // SAFETY: the caller registered `func` for `data`, and the
                // ABI documents the thread it is called on.
                unsafe { func(tracked, data.get()) }
            });
            pressure
        });
        let config = Config {
            cleanup_interval: Duration::from_millis(self.cleanup_interval_ms.into()),
            state_retention: Duration::from_millis(self.state_retention_ms.into()),
            finalizer_timeout: Duration::from_millis(self.finalizer_timeout_ms.into()),
            max_finalizer_retries: self.max_finalizer_retries,
            enable_state_checking: self.enable_state_checking,
            enable_finalizer_safety: self.enable_finalizer_safety,
            invalidate_on_callback_error: self.invalidate_on_callback_error,
            log_state_changes: self.log_state_changes,
            log_finalizers: self.log_finalizers,
            release_context,
            memory_limit_bytes: self.memory_limit_bytes,
            memory_pressure,
        };
        config.validate()?;
        Ok(config)
    }
}

/// While tracked bytes stay above `memory_limit_bytes`, `memory_pressure`
/// is called again at most this often.
pub const GCS_MEMORY_PRESSURE_INTERVAL_MS: u32 = 100;
const _: () = assert!(
    GCS_MEMORY_PRESSURE_INTERVAL_MS as u128 == crate::config::MEMORY_PRESSURE_INTERVAL.as_millis()
);

/// Fill `config` with the defaults and set its `struct_size`. Does nothing
/// if `config` is NULL.
#[unsafe(no_mangle)]
pub extern "C" fn gcs_config_init(config: *mut GcsConfig) {
    ffi_boundary!((), {
        if !config.is_null() {
            // SAFETY: non-NULL; the caller provides a GcsConfig of this version.
            unsafe { config.write(GcsConfig::defaults()) }
        }
    })
}

/// Configure the default manager. Only before its first use (the first
/// registration without a manager); afterwards GCS_ERROR_ALREADY_INITIALIZED.
/// A bad value gives GCS_ERROR_INVALID_ARGUMENT and changes nothing.
/// `config` is read during the call only (transfer none).
#[unsafe(no_mangle)]
pub extern "C" fn gcs_configure(config: *const GcsConfig) -> GcsResult {
    ffi_result!({
        let config = sized_struct!("gcs_configure", config, GcsConfig);
        // SAFETY: checked non-NULL and large enough by `sized_struct!`; the
        // ABI requires release_context to be NULL or a GMainContext.
        let config = unsafe { (*config).to_config()? };
        crate::manager::configure(&config)
    })
}
