//! Managers own registrations and their configuration; this version has the
//! default manager, started lazily at the first registration.
//!
//! All managers share one handle table (a handle identifies its manager
//! through its slot), created once per load of the library with a fresh salt.

use core::ffi::c_void;
use core::ptr::NonNull;
use std::ffi::CString;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, LazyLock};

use parking_lot::{Mutex, RwLock};

use crate::clock;
use crate::config::Config;
use crate::error::{Error, ErrorCode, Result};
use crate::handle::Handle;
use crate::names::{self, Name};
use crate::object::{self, Kind, Payload, ReleaseFn};
use crate::sync::{AtomicU64, Ordering};
use crate::table::{Details, Limits, Table};

/// The table of this load of the library.
pub(crate) fn table() -> &'static Table<Payload> {
    static TABLE: LazyLock<Table<Payload>> =
        LazyLock::new(|| Table::new(Limits::default(), fresh_salt()));
    &TABLE
}

/// A salt no earlier load of the library can have had: OS randomness (std's
/// `RandomState` keys come from getrandom) mixed with the time and pid.
fn fresh_salt() -> u64 {
    let mut hasher = std::hash::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    if let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(now.as_nanos());
    }
    hasher.finish()
}

/// The shared state of a manager.
#[derive(Debug)]
pub(crate) struct ManagerInner {
    pub(crate) config: Config,
    /// `clock::now_ms()` of the last sweep of expired retained states.
    last_sweep_ms: AtomicU64,
}

impl ManagerInner {
    fn new(config: Config) -> Self {
        ManagerInner {
            config,
            last_sweep_ms: AtomicU64::new(clock::now_ms()),
        }
    }

    /// Sweep expired retained states if `cleanup_interval` has passed.
    fn maybe_sweep(&self) {
        let now = clock::now_ms();
        // Relaxed: a timestamp; losing a race only means one thread sweeps.
        let last = self.last_sweep_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= self.config.cleanup_interval.as_millis() as u64
            && self
                .last_sweep_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            table().sweep_expired();
        }
    }
}

struct DefaultState {
    running: Option<Arc<ManagerInner>>,
    /// Set by `configure` before the default manager starts.
    pending: Option<Config>,
}

static DEFAULT: RwLock<DefaultState> = RwLock::new(DefaultState {
    running: None,
    pending: None,
});
/// Serialises the start of the default manager (reading the environment once).
static STARTING: Mutex<()> = Mutex::new(());

/// The default manager: started with its configuration (from
/// [`configure`], else the defaults) at its first use.
pub(crate) fn default_manager() -> Arc<ManagerInner> {
    if let Some(running) = &DEFAULT.read().running {
        return running.clone();
    }
    let _starting = STARTING.lock();
    let mut state = DEFAULT.write();
    if let Some(running) = &state.running {
        return running.clone();
    }
    let config = state.pending.take().unwrap_or_default();
    let inner = Arc::new(ManagerInner::new(config));
    state.running = Some(inner.clone());
    inner
}

/// Whether the default manager has started.
pub fn default_manager_started() -> bool {
    DEFAULT.read().running.is_some()
}

/// Configure the default manager. Only before its first use: afterwards
/// [`ErrorCode::AlreadyInitialized`]. A bad value is refused and changes nothing.
pub fn configure(config: &Config) -> Result<()> {
    config.validate()?;
    let mut state = DEFAULT.write();
    if state.running.is_some() {
        return Err(Error::new(
            ErrorCode::AlreadyInitialized,
            "gcs_configure: the default manager has already started (configure before the first registration)",
        ));
    }
    state.pending = Some(config.clone());
    Ok(())
}

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

    /// Register with the default manager.
    pub fn register(self) -> Result<Handle> {
        // SAFETY: the typed constructors pass live gstreamer-rs objects; for
        // `from_raw`, the caller's contract (documented there) applies. A
        // NULL pointer is refused inside.
        unsafe { register_raw(&default_manager(), self) }
    }
}

/// Register with `manager`. Validates, takes the reference, fills a slot.
///
/// # Safety
/// `registration.object` must be NULL or point at a live object of its kind.
pub(crate) unsafe fn register_raw(
    manager: &ManagerInner,
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
    } = registration;
    let object = NonNull::new(object)
        .ok_or_else(|| Error::new(ErrorCode::NullArgument, "cannot register a NULL object"))?;
    match (kind, release.is_some()) {
        (Kind::Pointer, false) => {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                "GCS_KIND_POINTER needs a release function",
            ));
        }
        (Kind::Pointer, true) => {}
        (_, true) => {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                format!(
                    "a release function is only for GCS_KIND_POINTER, not {}",
                    kind.name()
                ),
            ));
        }
        (_, false) => {}
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
    let retention_ms = manager.config.state_retention.as_millis() as u64;
    let make = || {
        // SAFETY: validated (or vouched for) above; runs only once a slot is
        // reserved, so a full table takes no reference.
        let payload =
            unsafe { object::acquire(kind, object, release, release_data, set_null_state) };
        let stored = payload.stored_pointer();
        let details = Details {
            payload: Some(payload),
            type_name,
            instance_name: instance_name.map(CString::into_boxed_c_str),
            kind: kind as u32,
            size_bytes,
            registered_at_ms: clock::now_ms(),
            released_at_ms: 0,
            retention_ms,
        };
        (stored, details)
    };
    match table().insert(make) {
        Ok(handle) => Ok(Handle::from_issued(handle)),
        Err(_) => Err(Error::new(
            ErrorCode::TableFull,
            format!(
                "handle table full ({} slots): nothing registered",
                table().capacity()
            ),
        )),
    }
}

fn c_string(name: String, what: &str) -> Result<CString> {
    CString::new(name).map_err(|_| {
        Error::new(
            ErrorCode::InvalidArgument,
            format!("{what} contains a NUL byte"),
        )
    })
}
