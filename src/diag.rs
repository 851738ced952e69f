//! Diagnostics: the hooks the rest of the library calls to log accesses and
//! misuse, the debug mode that aborts at the first misuse (`GCS_DEBUG=fatal`),
//! leak checkpoints, and the live-handle report the `gcsafety` tracer
//! (`tracers/gstgcsafety.c`) prints at `gst_deinit`.
//!
//! The access path calls one hook, [`access_begun`]: a relaxed load of the
//! cached category level ([`crate::log::LEVEL`]) when the level is off.
//! Everything else here runs on cold paths.

use core::ffi::c_void;
use std::backtrace::Backtrace;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use gstreamer_sys as gst_sys;

use crate::error::{Error, human_ms};
use crate::handle::{self, HandleInfo};
use crate::log::{self, Level};
use crate::manager::table;
use crate::object::Kind;

// ----- the access hook ----------------------------------------------------------

/// Called by every access that began, inside it (the object is alive).
#[inline(always)]
pub(crate) fn access_begun(handle: u64, object: *mut c_void) {
    if log::enabled(Level::Log) {
        access_logged(handle, object);
    }
}

#[cold]
#[inline(never)]
fn access_logged(handle: u64, object: *mut c_void) {
    let found = table().with_details(handle, |word, details| {
        let gobject = matches!(
            Kind::from_raw(details.kind as i32),
            Some(Kind::GstObject | Kind::GObject | Kind::WeakGObject)
        );
        (word.count(), gobject)
    });
    let Some((in_flight, gobject)) = found else {
        return;
    };
    // The outermost access at LOG, nested ones at TRACE.
    let level = if in_flight > 1 {
        Level::Trace
    } else {
        Level::Log
    };
    if !log::enabled(level) {
        return;
    }
    log::emit(
        level,
        false,
        if gobject {
            object
        } else {
            core::ptr::null_mut()
        },
        file!(),
        module_path!(),
        line!(),
        format_args!(
            "{}: access begun ({in_flight} in flight)",
            handle::describe(handle)
        ),
    );
}

// ----- registration and unregister lines ---------------------------------------------

/// A reference held across the registration's log line, so that the line
/// can name the object even if a concurrent close releases it meanwhile.
/// Holds nothing unless the line will be written.
pub(crate) struct HeldForLog(*mut c_void);

impl HeldForLog {
    /// Take a reference to a validated `GstObject` / `GObject` when the
    /// registration line will be shown (`forced`: the manager logs state).
    ///
    /// # Safety
    /// `object` must be a live object of `kind`.
    pub(crate) unsafe fn new(kind: Kind, object: *mut c_void, forced: bool) -> HeldForLog {
        log::refresh();
        if !(forced || log::enabled(Level::Info))
            || !matches!(kind, Kind::GstObject | Kind::GObject)
        {
            return HeldForLog(core::ptr::null_mut());
        }
        // SAFETY: a live GObject (precondition); a floating reference stays
        // floating (g_object_ref does not sink).
        unsafe { gobject_sys::g_object_ref(object.cast()) };
        HeldForLog(object)
    }

    /// The object to name the line after (NULL when none is held).
    pub(crate) fn object(&self) -> *mut c_void {
        self.0
    }
}

impl Drop for HeldForLog {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the reference taken by `new`.
            unsafe { gobject_sys::g_object_unref(self.0.cast()) };
        }
    }
}

/// Whether some manager ever started with `GCS_DEBUG=stacks` or
/// `log_state_changes`: until then an unregister that the category does not
/// show costs one more relaxed load, not a lookup of its manager.
static MANAGER_FLAGS_SEEN: AtomicBool = AtomicBool::new(false);

/// A manager started: note whether it records stacks or logs state.
pub(crate) fn manager_started(stacks: bool, log_state: bool) {
    if stacks || log_state {
        MANAGER_FLAGS_SEEN.store(true, Ordering::Relaxed);
    }
}

/// An unregister was accepted (INFO); with `stacks` on, remember where, for
/// the handle's story.
pub(crate) fn unregistered(handle: u64) {
    if !log::enabled(Level::Info) && !MANAGER_FLAGS_SEEN.load(Ordering::Relaxed) {
        return;
    }
    let Some(manager) = handle::owner(handle) else {
        return;
    };
    if manager.capture_stacks() {
        let backtrace = Arc::new(Backtrace::force_capture());
        table().with_details_mut(handle, |_, details| {
            if let Some(record) = details.payload.as_mut() {
                record.extras_mut().unregistered_at = Some(backtrace);
            }
        });
    }
    log_state!(
        manager,
        Level::Info,
        core::ptr::null_mut(),
        "{}: unregistered",
        handle::describe(handle)
    );
}

// ----- misuse and the debug mode ---------------------------------------------------

/// What a program did wrong with a handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Misuse {
    /// An access of a handle that is released, invalidated or was never issued.
    RefusedAccess,
    /// `gcs_unregister` of a handle already unregistered.
    DoubleUnregister,
    /// `gcs_access_end` without a matching begin.
    UnmatchedEnd,
}

impl Misuse {
    fn what(self) -> &'static str {
        match self {
            Misuse::RefusedAccess => "refused access",
            Misuse::DoubleUnregister => "double unregister",
            Misuse::UnmatchedEnd => "unmatched gcs_access_end",
        }
    }
}

/// Whether `GCS_DEBUG` has the word `fatal` (read once).
pub(crate) fn fatal_mode() -> bool {
    static FATAL: OnceLock<bool> = OnceLock::new();
    *FATAL.get_or_init(|| {
        std::env::var("GCS_DEBUG").is_ok_and(|value| {
            value
                .split([',', ' ', ':'])
                .any(|word| word.trim() == "fatal")
        })
    })
}

/// A misuse was refused with `error`: a WARNING line, and in the debug mode
/// the handle's story on stderr and `abort()`.
#[cold]
#[inline(never)]
pub(crate) fn misuse(handle: u64, misuse: Misuse, error: &Error) {
    log::refresh();
    let forced = handle::owner(handle).is_some_and(|m| m.log_state_changes());
    if forced || log::enabled(Level::Warning) {
        log::emit(
            Level::Warning,
            forced,
            core::ptr::null_mut(),
            file!(),
            module_path!(),
            line!(),
            format_args!("{}: {}", misuse.what(), error.message()),
        );
    }
    if fatal_mode() {
        eprintln!(
            "gcsafety: fatal ({}; GCS_DEBUG=fatal): {}\n{}",
            misuse.what(),
            error.message(),
            story(handle)
        );
        eprintln!(
            "gcsafety: misused at:\n{}",
            callers_frames(&Backtrace::force_capture())
        );
        std::process::abort();
    }
}

/// Everything still known about a handle, for the debug mode.
pub(crate) fn story(handle: u64) -> String {
    let now = crate::clock::now_ms();
    let known = table().with_details(handle, |word, details| {
        let mut text = format!(
            "gcsafety: the story of handle {handle:#018x}: a {} ({}){}, registered {} ago",
            details.type_name.as_str(),
            Kind::from_raw(details.kind as i32).map_or("?", Kind::name),
            details
                .instance_name
                .as_deref()
                .map(|n| format!(" named '{}'", n.to_string_lossy()))
                .unwrap_or_default(),
            human_ms(now.saturating_sub(details.registered_at_ms)),
        );
        match word.phase() {
            crate::table::Phase::Retained => text.push_str(&format!(
                ", released {} ago",
                human_ms(now.saturating_sub(details.released_at_ms))
            )),
            phase => text.push_str(&format!(
                ", now {phase:?} with {} accesses in flight",
                word.count()
            )),
        }
        let record = details.payload.as_ref();
        match record.and_then(|r| r.backtrace()) {
            Some(bt) => text.push_str(&format!(
                "\ngcsafety: registered at:\n{}",
                callers_frames(bt)
            )),
            None => text.push_str(
                "\ngcsafety: (GCS_DEBUG=stacks records where it was registered and unregistered)",
            ),
        }
        if let Some(bt) = record.and_then(|r| r.unregistered_at()) {
            text.push_str(&format!(
                "\ngcsafety: unregistered at:\n{}",
                callers_frames(bt)
            ));
        }
        text
    });
    known.unwrap_or_else(|| {
        format!(
            "gcsafety: handle {handle:#018x} names nothing this library knows (never issued, forged, \
             or released longer ago than state_retention_ms)"
        )
    })
}

/// The frames of a backtrace from the library's caller on: those after the
/// last frame of the library itself (an exported `gcs_` function or a
/// `gcsafety::` one).
fn callers_frames(backtrace: &Backtrace) -> String {
    let text = backtrace.to_string();
    let lines: Vec<&str> = text.lines().collect();
    let is_frame = |line: &str| {
        let t = line.trim_start();
        t.split(':')
            .next()
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
    };
    let last_own = lines
        .iter()
        .rposition(|l| is_frame(l) && (l.contains(": gcs_") || l.contains(": gcsafety::")));
    let start = match last_own {
        Some(own) => (own + 1..lines.len())
            .find(|&i| is_frame(lines[i]))
            .unwrap_or(lines.len()),
        None => 0,
    };
    lines[start..].join("\n")
}

// ----- checkpoints ------------------------------------------------------------------

/// The registration sequence (`clock::sequence`) at the last checkpoint: a
/// registration is after it if its sequence is greater. Sequences are
/// monotonic-clock nanoseconds, strictly increasing per thread, so a
/// checkpoint costs registrations nothing (no shared counter).
static CHECKPOINT: AtomicU64 = AtomicU64::new(0);

/// Start a leak checkpoint: [`live_handles`] with `since_checkpoint` then
/// reports only registrations made after this call.
pub fn leaks_checkpoint() {
    CHECKPOINT.store(crate::clock::sequence(), Ordering::Relaxed);
}

// ----- the live-handle report -------------------------------------------------------------

/// A handle not yet released, as the `gcsafety` tracer reports it.
#[derive(Clone, Debug)]
pub struct LiveHandle {
    /// What `Handle::info` says.
    pub info: HandleInfo,
    /// The object's address, as the leaks tracer prints it (not a reference).
    pub address: usize,
    /// The `GstObject`'s name, for a `GstObject` registration.
    pub object_name: Option<String>,
    /// Where it was registered, when recorded (`GCS_DEBUG=stacks`).
    pub registered_at: Option<String>,
    /// Whether it was registered after the last [`leaks_checkpoint`].
    pub since_checkpoint: bool,
}

/// Every handle not yet released, of every manager, oldest first; with
/// `since_checkpoint`, only those registered after the last
/// [`leaks_checkpoint`] (the leaks tracer's `activity-*` idea).
pub fn live_handles(since_checkpoint: bool) -> Vec<LiveHandle> {
    let checkpoint = CHECKPOINT.load(Ordering::Relaxed);
    let mut found = Vec::new();
    table().for_each_registered(|handle, _, details| {
        let Some(record) = details.payload.as_ref() else {
            return;
        };
        if since_checkpoint && record.sequence <= checkpoint {
            return;
        }
        let (address, object_name) = match record.payload.as_ref() {
            Some(payload) => {
                let address = payload.object_pointer();
                // Under the detail lock the record still holds its reference
                // (a release takes the payload under this lock), so the
                // object is alive.
                let name = match payload {
                    crate::object::Payload::GstObject { object, .. } => {
                        // SAFETY: a live GstObject (see above).
                        let name = unsafe { gst_sys::gst_object_get_name(object.as_ptr()) };
                        (!name.is_null()).then(|| {
                            // SAFETY: a NUL-terminated string we own.
                            let text = unsafe { core::ffi::CStr::from_ptr(name) }
                                .to_string_lossy()
                                .into_owned();
                            // SAFETY: allocated by GLib for us.
                            unsafe { glib_sys::g_free(name.cast()) };
                            text
                        })
                    }
                    _ => None,
                };
                (address as usize, name)
            }
            None => (0, None),
        };
        found.push((
            record.sequence,
            handle,
            address,
            object_name,
            record.backtrace().cloned(),
        ));
    });
    found.sort_by_key(|entry| entry.0);
    found
        .into_iter()
        .filter_map(|(serial, handle, address, object_name, backtrace)| {
            let info = handle::info(handle).ok()?;
            Some(LiveHandle {
                info,
                address,
                object_name,
                registered_at: backtrace.map(|bt| crate::manager::callers_frames(&bt.to_string())),
                since_checkpoint: serial > checkpoint,
            })
        })
        .collect()
}

/// The counters of every manager still alive, summed.
pub fn total_stats() -> crate::Stats {
    let mut t = crate::Stats::default();
    for manager in crate::manager::all_managers() {
        let s = manager.stats();
        t.total_registered += s.total_registered;
        t.active += s.active;
        t.released += s.released;
        t.invalidated += s.invalidated;
        t.access_ok += s.access_ok;
        t.access_rejected += s.access_rejected;
        t.callback_failures += s.callback_failures;
        t.panics_recovered += s.panics_recovered;
        t.cleanups_run += s.cleanups_run;
        t.cleanup_failures += s.cleanup_failures;
        t.finalizers_run += s.finalizers_run;
        t.finalizer_failures += s.finalizer_failures;
        t.finalizer_timeouts += s.finalizer_timeouts;
        t.tracked_bytes += s.tracked_bytes;
        t.peak_active += s.peak_active;
    }
    t
}
