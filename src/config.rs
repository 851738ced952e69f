//! Manager configuration, with the defaults of `gcs_config_init`.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, ErrorCode, Result};

/// Called when a manager's tracked bytes exceed `memory_limit_bytes`, with
/// the tracked bytes; see [`Config::memory_pressure`].
pub type MemoryPressure = Arc<dyn Fn(u64) + Send + Sync>;

/// How a manager behaves. `Config::default()` gives the ABI's defaults.
#[derive(Clone)]
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
    /// Log registrations, invalidations and releases even when the GStreamer
    /// category `gcsafety` is off (then on stderr; the category alone shows
    /// them at INFO/DEBUG, `GST_DEBUG=gcsafety:5`). Default false.
    pub log_state_changes: bool,
    /// Log finalizer runs, failures and timeouts. Default false.
    pub log_finalizers: bool,
    /// When set, releases (cleanups, finalizer hand-off and the final unref)
    /// are dispatched to this main context, for objects that must die on their
    /// owner's thread. Default `None`: on the thread that ends the last access.
    pub release_context: Option<glib::MainContext>,
    /// Tracked bytes above which `memory_pressure` is called; 0 = none.
    pub memory_limit_bytes: u64,
    /// Called, on the registering thread and outside every library lock, by
    /// the registration that takes the tracked bytes above the limit, and then
    /// at most once per [`MEMORY_PRESSURE_INTERVAL`] while they stay above it.
    pub memory_pressure: Option<MemoryPressure>,
}

/// While tracked bytes stay above the limit, memory pressure is signalled
/// again at most this often.
pub const MEMORY_PRESSURE_INTERVAL: Duration = Duration::from_millis(100);

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("cleanup_interval", &self.cleanup_interval)
            .field("state_retention", &self.state_retention)
            .field("finalizer_timeout", &self.finalizer_timeout)
            .field("max_finalizer_retries", &self.max_finalizer_retries)
            .field("enable_state_checking", &self.enable_state_checking)
            .field("enable_finalizer_safety", &self.enable_finalizer_safety)
            .field(
                "invalidate_on_callback_error",
                &self.invalidate_on_callback_error,
            )
            .field("log_state_changes", &self.log_state_changes)
            .field("log_finalizers", &self.log_finalizers)
            .field("release_context", &self.release_context)
            .field("memory_limit_bytes", &self.memory_limit_bytes)
            .field(
                "memory_pressure",
                &self.memory_pressure.as_ref().map(|_| "fn"),
            )
            .finish()
    }
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
            release_context: None,
            memory_limit_bytes: 0,
            memory_pressure: None,
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
        if self.memory_pressure.is_some() && self.memory_limit_bytes == 0 {
            return bad("memory_pressure needs a memory_limit_bytes above 0");
        }
        Ok(())
    }
}
