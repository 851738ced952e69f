//! Logging through the GStreamer debug category `gcsafety`, which is the
//! switch: `GST_DEBUG=gcsafety:N` (or `*:N`) alone shows
//!
//! * WARNING: refused accesses, double unregisters, unmatched ends, failed
//!   cleanups and finalizers, finalizer timeouts;
//! * INFO: registrations, unregisters, invalidations, manager closes;
//! * DEBUG: releases, cleanups and finalizer runs;
//! * LOG / TRACE: accesses.
//!
//! Lines carry the object as `GST_DEBUG_OBJECT` lines do (`<fakesink0>` for
//! a `GstObject`), when the object is alive at the time of the line.
//!
//! The category's threshold is cached in one atomic ([`LEVEL`]), refreshed on
//! the slow paths (every registration, release and close, and the first use
//! after `gst_init`), so that an access path hook costs one relaxed load
//! when its level is off. A runtime change of the threshold
//! (`gst_debug_set_threshold_for_name`) takes effect at the next
//! registration or release.
//!
//! `GCS_DEBUG=state,finalizers` and the `log_state_changes` /
//! `log_finalizers` configuration flags still work, for programs without
//! GStreamer debugging: what they ask for and the category does not show
//! goes to stderr.

use core::ffi::c_void;
use std::ffi::CString;
use std::fmt::{self, Write as _};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, Ordering};

use gstreamer_sys as gst_sys;

/// The levels gcsafety logs at (GStreamer's `GstDebugLevel` values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(i32)]
pub(crate) enum Level {
    Warning = gst_sys::GST_LEVEL_WARNING,
    Info = gst_sys::GST_LEVEL_INFO,
    Debug = gst_sys::GST_LEVEL_DEBUG,
    Log = gst_sys::GST_LEVEL_LOG,
    Trace = gst_sys::GST_LEVEL_TRACE,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Warning => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
            Level::Log => "LOG",
            Level::Trace => "TRACE",
        }
    }
}

/// The `gcsafety` category's threshold as last read (0, `GST_LEVEL_NONE`,
/// until GStreamer is initialised).
pub(crate) static LEVEL: AtomicI32 = AtomicI32::new(0);

/// Whether the category shows `level` (as last refreshed): one relaxed load.
#[inline(always)]
pub(crate) fn enabled(level: Level) -> bool {
    // Relaxed: a cached configuration value; a stale read only delays or
    // adds one line.
    LEVEL.load(Ordering::Relaxed) >= level as i32
}

/// Whether GStreamer has been initialised (by the application).
fn gst_ready() -> bool {
    // SAFETY: gst_is_initialized has no precondition.
    unsafe { gst_sys::gst_is_initialized() != 0 }
}

unsafe extern "C" {
    /// What `GST_DEBUG_CATEGORY_INIT` calls (not in gstreamer-sys's list).
    fn _gst_debug_category_new(
        name: *const core::ffi::c_char,
        color: core::ffi::c_uint,
        description: *const core::ffi::c_char,
    ) -> *mut gst_sys::GstDebugCategory;
}

/// The category, created at the first use after `gst_init` (it then picks
/// up `GST_DEBUG`'s patterns, as every category does).
fn category() -> Option<*mut gst_sys::GstDebugCategory> {
    struct Category(*mut gst_sys::GstDebugCategory);
    // SAFETY: a GstDebugCategory lives for the process and is thread-safe.
    unsafe impl Send for Category {}
    // SAFETY: as above.
    unsafe impl Sync for Category {}
    static CATEGORY: OnceLock<Category> = OnceLock::new();
    if let Some(category) = CATEGORY.get() {
        return Some(category.0);
    }
    if !gst_ready() {
        return None;
    }
    let category = CATEGORY.get_or_init(|| {
        // SAFETY: GStreamer is initialised; the strings are copied.
        Category(unsafe {
            _gst_debug_category_new(
                c"gcsafety".as_ptr(),
                0,
                c"gcsafety handle lifecycle, accesses and finalizers".as_ptr(),
            )
        })
    });
    Some(category.0)
}

/// Read the category's threshold into [`LEVEL`] (slow paths only).
pub(crate) fn refresh() {
    let level = match category() {
        // SAFETY: a live category.
        Some(category) => unsafe { gst_sys::gst_debug_category_get_threshold(category) },
        None => 0,
    };
    if LEVEL.load(Ordering::Relaxed) != level {
        LEVEL.store(level, Ordering::Relaxed);
    }
}

/// Emit one line at `level`: to the category when it shows that level,
/// else to stderr when `forced` (a `GCS_DEBUG` word or a configuration
/// flag asked for it). `object` is a live `GObject *` to name the line after
/// (as `GST_DEBUG_OBJECT` does), or NULL.
#[cold]
#[inline(never)]
pub(crate) fn emit(
    level: Level,
    forced: bool,
    object: *mut c_void,
    file: &'static str,
    function: &'static str,
    line: u32,
    args: fmt::Arguments,
) {
    if let Some(category) = category() {
        // SAFETY: a live category.
        let threshold = unsafe { gst_sys::gst_debug_category_get_threshold(category) };
        if threshold >= level as i32 {
            let mut text = String::new();
            let _ = text.write_fmt(args);
            let text = CString::new(text.replace('\0', "\\0")).unwrap_or_default();
            let file = CString::new(file).unwrap_or_default();
            let function = CString::new(function).unwrap_or_default();
            // SAFETY: every string is NUL-terminated and outlives the call;
            // `object` is NULL or a GObject the caller keeps alive.
            unsafe {
                gst_sys::gst_debug_log(
                    category,
                    level as i32,
                    file.as_ptr(),
                    function.as_ptr(),
                    line as i32,
                    object.cast(),
                    c"%s".as_ptr(),
                    text.as_ptr(),
                )
            };
            return;
        }
    }
    if forced {
        eprintln!("gcsafety {}: {args}", level.name());
    }
}

/// Log a lifecycle event: `log_state!(manager, Level::Info, object, "...", args)`.
/// Shown when the category's threshold reaches the level, or (to stderr)
/// when the manager logs state changes (`GCS_DEBUG=state`).
macro_rules! log_state {
    ($manager:expr, $level:expr, $object:expr, $($arg:tt)+) => {{
        let forced = $manager.log_state_changes();
        if forced || $crate::log::enabled($level) {
            $crate::log::emit($level, forced, $object, file!(), module_path!(), line!(), format_args!($($arg)+));
        }
    }};
}

/// Log a finalizer event: `log_finalizer!(manager, Level::Warning, "...", args)`.
macro_rules! log_finalizer {
    ($manager:expr, $level:expr, $($arg:tt)+) => {{
        let forced = $manager.log_finalizers();
        if forced || $crate::log::enabled($level) {
            $crate::log::emit($level, forced, core::ptr::null_mut(), file!(), module_path!(), line!(), format_args!($($arg)+));
        }
    }};
}
