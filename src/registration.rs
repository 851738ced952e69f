//! What to register, and registration itself: validate, take the
//! reference, fill a slot, count.

use core::ffi::c_void;
use core::ptr::NonNull;
use std::ffi::CString;
use std::sync::Arc;

use crate::clock;
use crate::error::{Error, ErrorCode, Result};
use crate::handle::Handle;
use crate::manager::{Manager, ManagerInner, table, with_default_manager};
use crate::names::{self, Name};
use crate::object::{self, Kind, ReleaseFn};
use crate::record::{Extras, Record};
use crate::release::carry_out_release;
use crate::stats;
use crate::table::Details;

/// What to register: an object of a [`Kind`], its names and accounting size.
///
/// ```no_run
/// # fn main() -> gcsafety::Result<()> {
/// gstreamer::init().unwrap();
/// let element = gstreamer::ElementFactory::make("fakesink").build().unwrap();
/// let handle = gcsafety::Registration::gst_object(&element).instance_name("sink").register()?;
/// handle.unregister()?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Registration {
    kind: Kind,
    object: *mut c_void,
    type_name: Option<String>,
    instance_name: Option<String>,
    size_bytes: u64,
    release: Option<ReleaseFn>,
    release_data: *mut c_void,
    set_null_state: bool,
    capture_stack: bool,
}

impl Registration {
    /// A registration of a raw object pointer of `kind`.
    ///
    /// The pointer must stay valid until [`register`](Self::register) has
    /// taken its reference; for [`Kind::Pointer`] give a release function with
    /// [`release`](Self::release).
    pub fn from_raw(kind: Kind, object: *mut c_void) -> Self {
        Registration {
            kind,
            object,
            type_name: None,
            instance_name: None,
            size_bytes: 0,
            release: None,
            release_data: core::ptr::null_mut(),
            set_null_state: false,
            capture_stack: false,
        }
    }

    /// A `GstObject` (element, pad, bus, pipeline...). The registration takes
    /// its own reference (transfer none).
    pub fn gst_object<T: glib::prelude::IsA<gstreamer::Object>>(object: &T) -> Self {
        use glib::translate::ToGlibPtr;
        let raw: *mut gstreamer_sys::GstObject = object.as_ref().to_glib_none().0;
        Self::from_raw(Kind::GstObject, raw.cast())
    }

    /// Any `GObject`. The registration takes its own reference (transfer none).
    pub fn gobject<T: glib::prelude::IsA<glib::Object>>(object: &T) -> Self {
        use glib::translate::ToGlibPtr;
        let raw: *mut gobject_sys::GObject = object.as_ref().to_glib_none().0;
        Self::from_raw(Kind::GObject, raw.cast())
    }

    /// A `GObject` held weakly: no strong reference; each access upgrades.
    pub fn weak_gobject<T: glib::prelude::IsA<glib::Object>>(object: &T) -> Self {
        Self {
            kind: Kind::WeakGObject,
            ..Self::gobject(object)
        }
    }

    /// A `GstMiniObject` (`gst::Buffer`, `gst::Sample`, `gst::Caps`, ...).
    /// The registration takes its own reference (transfer none).
    pub fn mini_object<T: gstreamer::prelude::IsMiniObject>(object: &T) -> Self {
        // `RefType` is `#[repr(transparent)]` over the C struct: its address
        // is the `GstMiniObject *`.
        let raw: *const T::RefType = object.as_ref();
        Self::from_raw(Kind::MiniObject, raw as *mut c_void)
    }

    /// The type name for messages and statistics (default: the GType name,
    /// or "pointer").
    pub fn type_name(mut self, name: impl Into<String>) -> Self {
        self.type_name = Some(name.into());
        self
    }

    /// The instance name for messages and the leak report.
    pub fn instance_name(mut self, name: impl Into<String>) -> Self {
        self.instance_name = Some(name.into());
        self
    }

    /// Size for memory accounting.
    pub fn size_bytes(mut self, size: u64) -> Self {
        self.size_bytes = size;
        self
    }

    /// The release function of a [`Kind::Pointer`] registration, called once
    /// with `(object, data)` at release.
    pub fn release(mut self, release: ReleaseFn, data: *mut c_void) -> Self {
        self.release = Some(release);
        self.release_data = data;
        self
    }

    /// For a `GstElement`: set it to `GST_STATE_NULL` immediately before the
    /// registration drops its reference. This runs on the releasing thread,
    /// which must not be one of the element's own streaming threads.
    pub fn set_null_state(mut self, yes: bool) -> Self {
        self.set_null_state = yes;
        self
    }

    /// Record a backtrace of this registration for the leak report.
    pub fn capture_stack(mut self, yes: bool) -> Self {
        self.capture_stack = yes;
        self
    }

    /// Register with `manager`.
    pub fn register_with(self, manager: &Manager) -> Result<Handle> {
        // SAFETY: as in `register`.
        unsafe { register_raw(&manager.inner, self) }
    }

    /// Register with the default manager.
    pub fn register(self) -> Result<Handle> {
        // SAFETY: the typed constructors pass live gstreamer-rs objects; for
        // `from_raw`, the caller's contract (documented there) applies. A
        // NULL pointer is refused inside.
        with_default_manager(|manager| unsafe { register_raw(manager, self) })
    }
}

/// Register with `manager`. Validates, takes the reference, fills a slot.
///
/// # Safety
/// `registration.object` must be NULL or point at a live object of its kind.
pub(crate) unsafe fn register_raw(
    manager: &Arc<ManagerInner>,
    registration: Registration,
) -> Result<Handle> {
    let Registration {
        kind,
        object,
        type_name,
        instance_name,
        size_bytes,
        release,
        release_data,
        set_null_state,
        capture_stack,
    } = registration;
    let object = NonNull::new(object)
        .ok_or_else(|| Error::new(ErrorCode::NullArgument, "cannot register a NULL object"))?;
    if manager.is_closed() {
        return Err(manager.closed_error("cannot register"));
    }
    match (kind, release.is_some()) {
        (Kind::Pointer, false) => {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                "GCS_KIND_POINTER needs a release function",
            ));
        }
        (Kind::Pointer, true) | (_, false) => {}
        (_, true) => {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                format!(
                    "a release function is only for GCS_KIND_POINTER, not {}",
                    kind.name()
                ),
            ));
        }
    }
    if set_null_state && kind != Kind::GstObject {
        return Err(Error::new(
            ErrorCode::InvalidArgument,
            format!(
                "GCS_REGISTER_SET_NULL_STATE is for GstElements (GCS_KIND_GST_OBJECT), not {}",
                kind.name()
            ),
        ));
    }
    // SAFETY: forwarded precondition; validation happens before any reference.
    let gtype_name =
        unsafe { object::validate(kind, object, manager.config.enable_state_checking)? };
    let type_name = match type_name {
        Some(name) => names::intern(&c_string(name, "type_name")?),
        None => Name::Static(gtype_name),
    };
    let instance_name = instance_name
        .map(|name| c_string(name, "instance_name"))
        .transpose()?;
    manager.maybe_sweep();
    let counters = manager.type_counters(&type_name);
    let backtrace = (capture_stack || manager.capture_stacks())
        .then(|| Arc::new(std::backtrace::Backtrace::force_capture()));
    let retention_ms = manager.config.state_retention.as_millis() as u64;
    let sequence = clock::sequence();
    // Counted before the slot is published, so that a release (which a
    // forged unregister could claim at once) is never counted before its
    // registration; undone if no slot can be had. In this thread's stripe:
    // no line that other registering threads write.
    let stripe = stats::stripe();
    let tracked_before = manager.watches_memory().then(|| manager.tracked_bytes());
    manager.counters.registered(stripe, size_bytes);
    counters.counts.registered(stripe, size_bytes);
    let accounting = counters.as_ptr().cast_mut().cast::<c_void>();
    let make = || {
        // SAFETY: validated (or vouched for) above; runs only once a slot is
        // reserved, so a full table takes no reference.
        let payload =
            unsafe { object::acquire(kind, object, release, release_data, set_null_state) };
        let published = payload.published(accounting);
        let record = Record {
            manager: manager.clone(),
            counters,
            stripe,
            released: false,
            payload: Some(payload),
            extras: backtrace.map(|backtrace| {
                Box::new(Extras {
                    backtrace: Some(backtrace),
                    ..Extras::default()
                })
            }),
            invalidated: false,
            sequence,
        };
        let details = Details {
            payload: Some(record),
            type_name,
            instance_name: instance_name.map(CString::into_boxed_c_str),
            kind: kind as u32,
            size_bytes,
            registered_at_ms: clock::now_ms(),
            released_at_ms: 0,
            retention_ms,
        };
        (published, details)
    };
    // SAFETY: validated (or vouched for) above.
    let held =
        unsafe { crate::diag::HeldForLog::new(kind, object.as_ptr(), manager.log_state_changes()) };
    let handle = match table().insert(make) {
        Ok(handle) => handle,
        Err(_) => {
            manager.counters.counts.unregistered(stripe, size_bytes);
            counters.counts.unregistered(stripe, size_bytes);
            return Err(Error::new(
                ErrorCode::TableFull,
                format!(
                    "handle table full ({} slots): nothing registered",
                    table().capacity()
                ),
            ));
        }
    };
    // A close that started meanwhile may not have seen this slot: if so, it
    // is visible here; undo and refuse.
    if !manager.enter_registration(stripe) {
        if let Ok(Some(claim)) = table().unregister(handle) {
            carry_out_release(claim);
        }
        return Err(manager.closed_error("cannot register"));
    }
    log_state!(
        manager,
        crate::log::Level::Info,
        held.object(),
        "{} registered ({}, {size_bytes} bytes)",
        crate::handle::describe(handle),
        kind.name()
    );
    drop(held);
    if let Some(before) = tracked_before {
        manager.check_memory(before, before + size_bytes);
    }
    Ok(Handle::from_issued(handle))
}

fn c_string(name: String, what: &str) -> Result<CString> {
    CString::new(name).map_err(|_| {
        Error::new(
            ErrorCode::InvalidArgument,
            format!("{what} contains a NUL byte"),
        )
    })
}
