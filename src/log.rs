//! Logging of state changes and finalizers: to the GStreamer debug category
//! `gcsafety` when GStreamer is initialised (so `GST_DEBUG=gcsafety:6` works
//! like any category), else to stderr. Every call site checks the manager's
//! flag first, through the macros, so nothing is formatted when logging is off.

use std::fmt;
use std::sync::OnceLock;

use gstreamer as gst;

/// Whether GStreamer has been initialised (by the application).
fn gst_ready() -> bool {
    // SAFETY: gst_is_initialized has no precondition.
    unsafe { gstreamer_sys::gst_is_initialized() != 0 }
}

fn category() -> gst::DebugCategory {
    static CATEGORY: OnceLock<gst::DebugCategory> = OnceLock::new();
    *CATEGORY.get_or_init(|| {
        gst::DebugCategory::new(
            "gcsafety",
            gst::DebugColorFlags::empty(),
            Some("gcsafety handle lifecycle and finalizers"),
        )
    })
}

/// Emit one message (already known to be wanted by the manager's flags).
#[cold]
pub(crate) fn emit(level: gst::DebugLevel, file: &'static str, line: u32, args: fmt::Arguments) {
    if gst_ready() {
        let file = glib::GString::from(file);
        category().log(
            None::<&glib::Object>,
            level,
            file.as_gstr(),
            "gcsafety",
            line,
            args,
        );
    } else {
        eprintln!("gcsafety {level:?}: {args}");
    }
}

/// Log a state change if the manager logs them: `log_state!(manager, "...", args)`.
macro_rules! log_state {
    ($manager:expr, $($arg:tt)+) => {
        if $manager.log_state_changes() {
            $crate::log::emit(gstreamer::DebugLevel::Debug, file!(), line!(), format_args!($($arg)+));
        }
    };
}

/// Log a finalizer event if the manager logs them; `$level` is a `gstreamer::DebugLevel`.
macro_rules! log_finalizer {
    ($manager:expr, $level:expr, $($arg:tt)+) => {
        if $manager.log_finalizers() {
            $crate::log::emit($level, file!(), line!(), format_args!($($arg)+));
        }
    };
}
