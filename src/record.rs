//! What a slot holds for one registration: the object's payload, its
//! manager and counters, and the cleanups and finalizer to run at release.

use core::ffi::{c_int, c_void};
use std::backtrace::Backtrace;
use std::sync::Arc;

use crate::manager::ManagerInner;
use crate::object::Payload;
use crate::stats::TypeRef;

/// A C callback of the ABI: `fn(object, user_data)`, 0 = success. May
/// unwind (a Rust panic is caught: a failure).
pub type CleanupFn =
    unsafe extern "C-unwind" fn(object: *mut c_void, user_data: *mut c_void) -> c_int;

/// A pointer that the C caller promised may cross threads (`user_data`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct SendPtr(pub(crate) *mut c_void);
// SAFETY: the ABI documents that cleanups, finalizers and release functions
// may run on another thread than registered them; the caller's `user_data`
// must allow that.
unsafe impl Send for SendPtr {}
// SAFETY: as above; the pointer is only passed back to the caller.
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The pointer. (A method, so that closures capture the whole `SendPtr`,
    /// not its `!Send` field.)
    pub(crate) fn get(self) -> *mut c_void {
        self.0
    }
}

/// A cleanup or finalizer: a C function with its data, or a Rust closure.
pub(crate) enum Callback {
    /// From the C ABI.
    C { func: CleanupFn, data: SendPtr },
    /// From the Rust API; `true` = success. `FnMut` so a finalizer can be retried.
    Rust(Box<dyn FnMut(*mut c_void) -> bool + Send>),
}

impl core::fmt::Debug for Callback {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Callback::C { func, data } => write!(f, "Callback::C({func:p}, {:p})", data.0),
            Callback::Rust(_) => f.write_str("Callback::Rust"),
        }
    }
}

impl Callback {
    /// Run it; `true` on success. A panic (of a Rust closure, or of a Rust
    /// `extern "C-unwind"` function given through the C ABI) is caught and
    /// is a failure; a foreign exception aborts in `catch_unwind`.
    pub(crate) fn call(&mut self, object: *mut c_void) -> bool {
        match self {
            Callback::C { func, data } => {
                let (func, data) = (*func, data.0);
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    // SAFETY: the caller registered `func` for this data and object.
                    unsafe { func(object, data) == 0 }
                }))
                .unwrap_or(false)
            }
            Callback::Rust(closure) => {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| closure(object)))
                    .unwrap_or(false)
            }
        }
    }
}

/// The registration held in a slot's details.
#[derive(Debug)]
pub(crate) struct Record {
    /// The manager it belongs to (kept after release, for error codes and
    /// statistics of refused accesses).
    pub(crate) manager: Arc<ManagerInner>,
    /// Its type's counters in that manager (kept alive by the manager).
    pub(crate) counters: TypeRef,
    /// The statistics stripe of the registering thread (its release is
    /// counted there too).
    pub(crate) stripe: u8,
    /// Whether the release job was taken.
    pub(crate) released: bool,
    /// The reference to drop; taken at release.
    pub(crate) payload: Option<Payload>,
    /// Cleanups, finalizer and backtraces: allocated only by registrations
    /// that have one (most have none), so that a registration's cold entry
    /// stays small.
    pub(crate) extras: Option<Box<Extras>>,
    /// Whether the handle was invalidated before it was unregistered
    /// (finalizers are skipped then). Set under the detail lock together
    /// with the transition (`Table::invalidate_with`).
    pub(crate) invalidated: bool,
    /// Its place in the order of registration (`clock::sequence`): the leak
    /// report's order, and what leak checkpoints compare.
    pub(crate) sequence: u64,
}

/// What few registrations have (see [`Record::extras`]).
#[derive(Debug, Default)]
pub(crate) struct Extras {
    /// Cleanups in order of addition; run in reverse at release.
    pub(crate) cleanups: Vec<Callback>,
    /// The finalizer, if set.
    pub(crate) finalizer: Option<Callback>,
    /// Where it was registered (GCS_REGISTER_CAPTURE_STACK / GCS_DEBUG=stacks).
    pub(crate) backtrace: Option<Arc<Backtrace>>,
    /// Where it was unregistered (`GCS_DEBUG=stacks`), for the debug mode's story.
    pub(crate) unregistered_at: Option<Arc<Backtrace>>,
}

impl Record {
    /// The extras, allocated on first use.
    pub(crate) fn extras_mut(&mut self) -> &mut Extras {
        self.extras.get_or_insert_with(Default::default)
    }

    /// Where it was registered, if recorded.
    pub(crate) fn backtrace(&self) -> Option<&Arc<Backtrace>> {
        self.extras.as_ref()?.backtrace.as_ref()
    }

    /// Where it was unregistered, if recorded.
    pub(crate) fn unregistered_at(&self) -> Option<&Arc<Backtrace>> {
        self.extras.as_ref()?.unregistered_at.as_ref()
    }
}

/// A manager borrowed by a release job from its record: the record keeps
/// its `Arc` until the slot is swept, which happens only after the release
/// claim is dropped, i.e. after the job is done. So a job never touches the
/// manager's reference count.
#[derive(Clone, Copy)]
pub(crate) struct ManagerRef(core::ptr::NonNull<ManagerInner>);

// SAFETY: `ManagerInner` is `Sync`; the pointer is only dereferenced while
// the record that owns the `Arc` is alive (see the type's documentation).
unsafe impl Send for ManagerRef {}
// SAFETY: as above.
unsafe impl Sync for ManagerRef {}

impl core::ops::Deref for ManagerRef {
    type Target = ManagerInner;
    fn deref(&self) -> &ManagerInner {
        // SAFETY: the record holding an `Arc` of it outlives the job (see
        // the type's documentation).
        unsafe { self.0.as_ref() }
    }
}

impl ManagerRef {
    /// An owned reference, for work that may outlive the release (the
    /// finalizer executor's callbacks).
    pub(crate) fn to_arc(self) -> Arc<ManagerInner> {
        // SAFETY: the pointer came from `Arc::as_ptr` of a live `Arc` (the
        // record's), so adding a strong count is sound.
        unsafe {
            Arc::increment_strong_count(self.0.as_ptr());
            Arc::from_raw(self.0.as_ptr())
        }
    }
}

/// What a release takes out of a record (the record itself stays, retained).
pub(crate) struct ReleaseJob {
    pub(crate) manager: ManagerRef,
    pub(crate) counters: TypeRef,
    pub(crate) stripe: u8,
    pub(crate) payload: Option<Payload>,
    pub(crate) cleanups: Vec<Callback>,
    pub(crate) finalizer: Option<Callback>,
    pub(crate) size_bytes: u64,
}

impl Record {
    /// Take what the release needs: the payload, cleanups, and the finalizer
    /// unless the handle was invalidated. `None` if it was taken already.
    pub(crate) fn take_release_job(&mut self, size_bytes: u64) -> Option<ReleaseJob> {
        if core::mem::replace(&mut self.released, true) {
            return None;
        }
        let (cleanups, finalizer) = match self.extras.as_mut() {
            Some(extras) => (
                std::mem::take(&mut extras.cleanups),
                extras.finalizer.take(),
            ),
            None => (Vec::new(), None),
        };
        Some(ReleaseJob {
            manager: ManagerRef(core::ptr::NonNull::from(&*self.manager)),
            counters: self.counters,
            stripe: self.stripe,
            payload: self.payload.take(),
            cleanups,
            finalizer: if self.invalidated { None } else { finalizer },
            size_bytes,
        })
    }
}
