//! Manager configuration, with the defaults of `gcs_config_init`.

use std::time::Duration;

use crate::error::{Error, ErrorCode, Result};

/// How a manager behaves. `Config::default()` gives the ABI's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// How often expired retained states are swept (lazily, at registration
    /// and release). Default 30 s. Must be at least 1 ms.
    pub cleanup_interval: Duration,
    /// How long a released handle's type and instance name are kept, so a
    /// stale handle is reported with them. Default 300 s. Also capped in
    /// number: see [`crate::MAX_RETAINED_STATES`].
    pub state_retention: Duration,
    /// A finalizer running longer is counted as timed out. Default 5 s.
    pub finalizer_timeout: Duration,
    /// A finalizer returning non-zero is retried this many times. Default 3.
    pub max_finalizer_retries: u32,
    /// Validate objects' GType at registration. Default true.
    pub enable_state_checking: bool,
    /// Run finalizers on the library's executor, with a timeout. Default true.
    pub enable_finalizer_safety: bool,
    /// A failed access callback (non-zero, or a Rust panic always) invalidates
    /// the handle. Default false.
    pub invalidate_on_callback_error: bool,
    /// Log state changes. Default false. (Not available in this version:
    /// setting it is refused.)
    pub log_state_changes: bool,
    /// Log finalizers. Default false. (Not available in this version.)
    pub log_finalizers: bool,
    /// Bytes of tracked memory above which memory pressure is signalled;
    /// 0 = none. (Not available in this version: a non-zero value is refused.)
    pub memory_limit_bytes: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            cleanup_interval: Duration::from_millis(30_000),
            state_retention: Duration::from_millis(300_000),
            finalizer_timeout: Duration::from_millis(5_000),
            max_finalizer_retries: 3,
            enable_state_checking: true,
            enable_finalizer_safety: true,
            invalidate_on_callback_error: false,
            log_state_changes: false,
            log_finalizers: false,
            memory_limit_bytes: 0,
        }
    }
}

/// The most finalizer retries accepted.
pub const MAX_FINALIZER_RETRIES: u32 = 1000;

impl Config {
    /// Check every value; the error names the first bad field.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: &str| Err(Error::new(ErrorCode::InvalidArgument, msg));
        if self.cleanup_interval.is_zero() {
            return bad("cleanup_interval_ms must be at least 1");
        }
        if self.finalizer_timeout.is_zero() {
            return bad("finalizer_timeout_ms must be at least 1");
        }
        if self.max_finalizer_retries > MAX_FINALIZER_RETRIES {
            return bad("max_finalizer_retries must be at most 1000");
        }
        if self.log_state_changes || self.log_finalizers {
            return bad(
                "log_state_changes / log_finalizers are not available in this version of gcsafety",
            );
        }
        if self.memory_limit_bytes != 0 {
            return bad("memory_limit_bytes is not available in this version of gcsafety");
        }
        Ok(())
    }
}
