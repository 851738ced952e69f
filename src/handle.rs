//! Handles and what can be done with one: access, invalidate, unregister,
//! inspect. The C functions in `ffi/handle.rs` are one-line calls into here.

use core::ffi::{CStr, c_char, c_void};
use core::num::NonZeroU64;
use core::ptr::NonNull;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use crate::clock;
use crate::error::{Error, ErrorCode, Result, human_ms};
use crate::manager::{ManagerInner, default_manager_if_started, table};
use crate::object::{self, Kind, Target};
use crate::record::{Callback, Record};
use crate::release::{self, carry_out_release};
use crate::stats::{self, bump};
use crate::table::{Access, Details, Ended, Phase, Refusal, Slot, Word};
use crate::thread_accesses;

/// An opaque reference to a registration: index and generation, salted.
/// Never a pointer; any value is safe to use (a bad one gives an error).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(transparent)]
pub struct Handle(NonZeroU64);

impl core::fmt::Debug for Handle {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Handle({:#018x})", self.0)
    }
}

/// The state of a registration, as `gcs_get_info` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandleState {
    /// Accesses are allowed.
    Live,
    /// Refusing accesses, still registered.
    Invalidated,
    /// Unregistered; the release waits for accesses in flight (or is running).
    Releasing,
    /// Released; only its description is kept, for a while.
    Released,
}

/// What is known about a handle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandleInfo {
    /// The handle.
    pub handle: Handle,
    /// Its state.
    pub state: HandleState,
    /// Its kind.
    pub kind: Kind,
    /// Its type name.
    pub type_name: String,
    /// Its instance name, if one was given.
    pub instance_name: Option<String>,
    /// Size declared for accounting.
    pub size_bytes: u64,
    /// Accesses in flight now.
    pub accesses_in_flight: u32,
    /// Milliseconds since registration.
    pub age_ms: u64,
    /// Milliseconds since release (0 unless released).
    pub released_ms_ago: u64,
}

/// An access in progress: the object stays alive until this is dropped
/// (on any thread). Created by [`Handle::access`].
pub struct AccessGuard {
    handle: Handle,
    begun: Option<Begun>,
}

// SAFETY: ending an access on another thread than began it is allowed (the
// count belongs to the handle); the object pointer is only handed out.
unsafe impl Send for AccessGuard {}

impl core::fmt::Debug for AccessGuard {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AccessGuard")
            .field("handle", &self.handle)
            .field("object", &self.as_ptr())
            .finish()
    }
}

impl AccessGuard {
    /// The object: `GstObject *`, `GObject *`, `GstMiniObject *` or the
    /// registered pointer, valid until the guard is dropped (transfer none).
    pub fn as_ptr(&self) -> *mut c_void {
        self.begun
            .as_ref()
            .map_or(core::ptr::null_mut(), |b| b.object.as_ptr())
    }

    /// The handle this access is of.
    pub fn handle(&self) -> Handle {
        self.handle
    }
}

impl Drop for AccessGuard {
    fn drop(&mut self) {
        if let Some(begun) = self.begun.take() {
            end_access(begun);
        }
    }
}

/// An access that began: where its count is held, the object it sees, and
/// whether that is a strong reference taken through a weak one. Kept small:
/// it is returned and moved on every access.
pub(crate) struct Begun {
    handle: u64,
    slot: &'static Slot,
    pub(crate) object: NonNull<c_void>,
    index: u32,
    generation: u32,
    upgraded: bool,
}

/// Begin an access of a handle value (the fast path, shared by every API).
#[inline]
pub(crate) fn begin_access(handle: u64) -> Result<Begun> {
    let access = match table().begin(handle) {
        Ok(access) => access,
        Err(refusal) => return Err(rejected_access(handle, refusal)),
    };
    let published = access.published;
    let (object, upgraded) = match Target::of(&published) {
        // Never null: registrations of NULL are refused.
        Target::Direct(object) => (NonNull::new(object).expect("registered object"), false),
        // The GWeakRef lives while we hold a count: upgrade it without any
        // lock of ours (GLib takes its own weak-ref lock).
        Target::Weak(weak) => match object::upgrade(weak) {
            Some(object) => (object, true),
            None => return Err(weak_object_gone(handle, access)),
        },
    };
    thread_accesses::push(handle, in_flight);
    // SAFETY: the accounting pointer is the registration's `TypeCounters`,
    // kept alive by its record at least until this access ends.
    unsafe { stats::count_access(published.accounting.cast()) };
    crate::diag::access_begun(handle, object.as_ptr());
    Ok(Begun {
        handle,
        slot: access.slot,
        object,
        index: access.index,
        generation: access.generation,
        upgraded,
    })
}

/// End an access begun by [`begin_access`] (its count is known to be held).
#[inline]
pub(crate) fn end_access(begun: Begun) {
    thread_accesses::remove(begun.handle);
    if begun.upgraded {
        object::downgrade(begun.object);
    }
    if let Some(claim) = table().end_of(begun.slot, begun.index, begun.generation) {
        carry_out_release(claim);
    }
}

/// `gcs_safe_access`: run `callback` inside an access; a non-zero result is
/// a failure (which invalidates the handle when the manager says so).
#[inline]
pub(crate) fn access_with(handle: u64, callback: impl FnOnce(*mut c_void) -> i32) -> Result<()> {
    let begun = begin_access(handle)?;
    let object = begun.object.as_ptr();
    // The C callback is `extern "C-unwind"`: a Rust panic out of it is
    // caught here, so that the access ends either way (a foreign exception
    // aborts in `catch_unwind`, before anything else runs).
    let status = catch_unwind(AssertUnwindSafe(|| callback(object)));
    end_access(begun);
    match status {
        Ok(0) => Ok(()),
        Ok(status) => Err(callback_failed(handle, status)),
        Err(panic) => Err(access_panicked(handle, panic)),
    }
}

/// After an access callback panicked (the access has ended): count,
/// invalidate, and say so.
#[cold]
#[inline(never)]
fn access_panicked(handle: u64, panic: Box<dyn core::any::Any + Send>) -> Error {
    if let Some(manager) = owner(handle) {
        bump(&manager.counters.panics_recovered);
    }
    let _ = invalidate(handle);
    let what = crate::error::panic_message(&*panic);
    Error::new(
        ErrorCode::Panic,
        format!(
            "{}: panic during object access: {what} (handle invalidated)",
            describe(handle)
        ),
    )
}

#[cold]
pub(crate) fn callback_failed(handle: u64, status: i32) -> Error {
    let invalidated = invalidate_after_callback_error(handle);
    Error::new(
        ErrorCode::CallbackFailed,
        format!(
            "{}: access callback returned {status}{}",
            describe(handle),
            if invalidated {
                " (handle invalidated)"
            } else {
                ""
            }
        ),
    )
}

/// End an access by handle value only (`gcs_access_end`): validated first.
pub(crate) fn end_access_by_value(handle: u64) -> Result<()> {
    match table().end_by_handle(handle) {
        Ok(Ended { published, claim }) => {
            thread_accesses::remove(handle);
            if let Some(address) = Target::upgraded_address(&published) {
                // The access took a strong reference by upgrading; drop it (the
                // object is alive: that reference is still ours).
                object::downgrade(address);
            }
            if let Some(claim) = claim {
                carry_out_release(claim);
            }
            Ok(())
        }
        Err(refusal) => {
            let error = match refusal {
                Refusal::NotAccessing => Error::new(
                    ErrorCode::NotAccessing,
                    format!(
                        "{}: gcs_access_end without a matching gcs_access_begin",
                        describe(handle)
                    ),
                ),
                refusal => rejection(handle, refusal, "no access to end"),
            };
            crate::diag::misuse(handle, crate::diag::Misuse::UnmatchedEnd, &error);
            Err(error)
        }
    }
}

/// A weak handle's object was finalized elsewhere: end the access, release
/// the registration (its cleanups see NULL) and report the handle released.
#[cold]
fn weak_object_gone(handle: u64, access: Access<'static>) -> Error {
    if let Some(claim) = table().end(access) {
        carry_out_release(claim);
    }
    if let Ok(Some(claim)) = table().unregister(handle) {
        carry_out_release(claim);
    }
    Error::new(
        ErrorCode::Released,
        format!(
            "{}: object finalized elsewhere (weak reference): not valid for access",
            describe(handle)
        ),
    )
}

/// Whether the release of `handle` is done (or it names nothing pending).
fn released(handle: u64) -> bool {
    match table().word(handle) {
        Some((word, generation)) => {
            word.generation() != generation || word.phase() != Phase::Draining
        }
        None => true,
    }
}

fn in_flight(handle: u64) -> bool {
    table()
        .word(handle)
        .is_some_and(|(word, generation)| word.generation() == generation && word.count() > 0)
}

// ----- messages --------------------------------------------------------------

/// "handle 0x… (GstSample 'capture-sample')", with whatever is still known.
pub(crate) fn describe(handle: u64) -> String {
    let known = table().with_details(handle, |_, details| format!(" ({})", names(details)));
    format!("handle {handle:#018x}{}", known.unwrap_or_default())
}

/// "Type 'instance'", or "Type" without an instance name.
fn names(details: &Details<Record>) -> String {
    match &details.instance_name {
        Some(instance) => format!(
            "{} '{}'",
            details.type_name.as_str(),
            instance.to_string_lossy()
        ),
        None => details.type_name.as_str().to_owned(),
    }
}

/// The error for a handle the table refused, with its story.
#[cold]
#[inline(never)]
pub(crate) fn rejection(handle: u64, refusal: Refusal, what: &str) -> Error {
    let now = clock::now_ms();
    let story = table().with_details(handle, |word, details| {
        let names = names(details);
        let state = match word.phase() {
            Phase::Retained => {
                let ago = now.saturating_sub(details.released_at_ms);
                if ago > details.retention_ms {
                    return None; // past retention: no details
                }
                format!("released {} ago", human_ms(ago))
            }
            Phase::Draining => format!(
                "unregistered, release pending ({} accesses in flight)",
                word.count()
            ),
            Phase::Invalidated => "invalidated".to_owned(),
            // A refusal of a live handle is the count limit: say so.
            Phase::Live if refusal == Refusal::TooManyAccesses => format!(
                "has too many accesses in flight ({}, the most one handle can have)",
                word.count()
            ),
            Phase::Live => format!("{} accesses in flight", word.count()),
            Phase::Free => return None,
        };
        Some(format!("({names}) {state}"))
    });
    let (code, fallback) = match refusal {
        Refusal::InvalidHandle if handle == 0 => (
            ErrorCode::InvalidHandle,
            "is GCS_INVALID_HANDLE (0)".to_owned(),
        ),
        Refusal::InvalidHandle => (
            ErrorCode::InvalidHandle,
            "was never issued by this library (forged, corrupted, or from before a reload)"
                .to_owned(),
        ),
        Refusal::Released | Refusal::Releasing => (ErrorCode::Released, "was released".to_owned()),
        Refusal::Invalidated => (ErrorCode::Invalidated, "was invalidated".to_owned()),
        Refusal::TooManyAccesses => (
            ErrorCode::InvalidArgument,
            "has too many accesses in flight".to_owned(),
        ),
        Refusal::NotAccessing => (
            ErrorCode::NotAccessing,
            "has no access in flight".to_owned(),
        ),
        Refusal::Full => (ErrorCode::TableFull, "table full".to_owned()),
    };
    let story = story.flatten().unwrap_or(fallback);
    // A handle unregistered by its manager's close reports the close.
    if matches!(refusal, Refusal::Released | Refusal::Releasing)
        && owner(handle).is_some_and(|manager| manager.is_closed())
    {
        return Error::new(
            ErrorCode::ShutDown,
            format!("handle {handle:#018x} {story} (its manager is closed): {what}"),
        );
    }
    Error::new(code, format!("handle {handle:#018x} {story}: {what}"))
}

/// The manager a handle belongs to, while its state is kept.
pub(crate) fn owner(handle: u64) -> Option<Arc<ManagerInner>> {
    table()
        .with_details(handle, |_, details| {
            details.payload.as_ref().map(|r| r.manager.clone())
        })
        .flatten()
}

/// The error for a refused access, counted in the owner's statistics (or,
/// for a value that names no registration, the default manager's if started).
#[cold]
#[inline(never)]
fn rejected_access(handle: u64, refusal: Refusal) -> Error {
    if let Some(manager) = owner(handle).or_else(default_manager_if_started) {
        bump(&manager.counters.access_rejected);
    }
    let error = rejection(handle, refusal, "not valid for access");
    crate::diag::misuse(handle, crate::diag::Misuse::RefusedAccess, &error);
    error
}

// ----- the public API ----------------------------------------------------------

impl Handle {
    pub(crate) fn from_issued(value: u64) -> Handle {
        Handle(NonZeroU64::new(value).expect("the table never issues 0"))
    }

    /// A handle from its raw value (as passed through C or Go). Any value is
    /// accepted; an invalid one fails every operation with an error.
    /// `None` for 0 (`GCS_INVALID_HANDLE`).
    pub fn from_raw(value: u64) -> Option<Handle> {
        NonZeroU64::new(value).map(Handle)
    }

    /// The raw value, for C or Go.
    pub fn as_raw(self) -> u64 {
        self.0.get()
    }

    /// Whether accesses would be accepted now (a snapshot).
    pub fn is_valid(self) -> bool {
        table().is_live(self.0.get())
    }

    /// Begin an access; the object stays alive until the guard is dropped.
    /// The guard may be dropped on another thread.
    pub fn access(self) -> Result<AccessGuard> {
        let begun = begin_access(self.0.get())?;
        Ok(AccessGuard {
            handle: self,
            begun: Some(begun),
        })
    }

    /// Run `f` with the object while the handle is live; the object cannot
    /// be released before `f` returns. A panic in `f` is caught: the handle
    /// is invalidated and `Err` ("panic during object access") returned.
    pub fn safe_access<R>(self, f: impl FnOnce(*mut c_void) -> R) -> Result<R> {
        // The same path as `gcs_safe_access`: begin, call, end (the panic is
        // caught, so the end runs either way; no guard object to move).
        let begun = begin_access(self.0.get())?;
        let object = begun.object.as_ptr();
        let result = catch_unwind(AssertUnwindSafe(|| f(object)));
        end_access(begun);
        match result {
            Ok(value) => Ok(value),
            Err(panic) => Err(access_panicked(self.0.get(), panic)),
        }
    }

    /// Refuse new accesses at once; the reference is dropped when the last
    /// access in flight ends, on the thread that ends it (now if none).
    /// A second unregister gives [`ErrorCode::Released`].
    pub fn unregister(self) -> Result<()> {
        unregister(self.0.get())
    }

    /// Like [`unregister`](Self::unregister), then wait until the release
    /// has happened. See `gcs_unregister_sync`.
    pub fn unregister_sync(self, timeout: Option<Duration>) -> Result<()> {
        unregister_sync(self.0.get(), timeout)
    }

    /// Refuse new accesses but keep the registration.
    pub fn invalidate(self) -> Result<()> {
        invalidate(self.0.get())
    }

    /// What is known about the handle.
    pub fn info(self) -> Result<HandleInfo> {
        info(self.0.get())
    }

    /// Run `cleanup(object)` once when the registration is released, after
    /// accesses in flight have ended and before the reference drops (newest
    /// cleanup first). See `gcs_add_cleanup`.
    pub fn add_cleanup(self, cleanup: impl FnOnce(*mut c_void) + Send + 'static) -> Result<()> {
        let mut cleanup = Some(cleanup);
        add_cleanup(
            self.0.get(),
            Callback::Rust(Box::new(move |object| {
                if let Some(cleanup) = cleanup.take() {
                    cleanup(object);
                }
                true
            })),
        )
    }

    /// Set the finalizer: `finalizer(object)` runs at release only if the
    /// handle was not invalidated, at most once successfully (`true`), with
    /// the manager's timeout and retries (a panic is a failed attempt). See
    /// `gcs_set_finalizer`.
    pub fn set_finalizer(
        self,
        finalizer: impl FnMut(*mut c_void) -> bool + Send + 'static,
    ) -> Result<()> {
        set_finalizer(self.0.get(), Callback::Rust(Box::new(finalizer)))
    }
}

/// `gcs_unregister`.
pub(crate) fn unregister(handle: u64) -> Result<()> {
    match table().unregister(handle) {
        Ok(claim) => {
            crate::diag::unregistered(handle);
            if let Some(claim) = claim {
                carry_out_release(claim);
            }
            Ok(())
        }
        Err(refusal) => {
            let error = rejection(handle, refusal, "already unregistered");
            crate::diag::misuse(handle, crate::diag::Misuse::DoubleUnregister, &error);
            Err(error)
        }
    }
}

/// `gcs_unregister_sync`.
pub(crate) fn unregister_sync(handle: u64, timeout: Option<Duration>) -> Result<()> {
    let pending =
        |what: &str| Error::new(ErrorCode::Timeout, format!("{}: {what}", describe(handle)));
    if thread_accesses::is_releasing(handle) {
        return Err(rejection(
            handle,
            Refusal::Released,
            "its release is running on this thread (not waiting for itself)",
        ));
    }
    if thread_accesses::contains(handle) && in_flight(handle) {
        return Err(Error::new(
            ErrorCode::WouldDeadlock,
            format!(
                "{}: gcs_unregister_sync inside an access of the same handle on the same thread would wait \
                 for itself; nothing was changed (use gcs_unregister)",
                describe(handle)
            ),
        ));
    }
    match table().unregister(handle) {
        Ok(claim) => {
            crate::diag::unregistered(handle);
            // Claimed here, the release may still be handed off (to the
            // finalizer executor, or the manager's release_context): wait for
            // it to be done in every case.
            if let Some(claim) = claim {
                carry_out_release(claim);
            }
            if release::wait_until(timeout, || released(handle)) {
                Ok(())
            } else {
                Err(pending(
                    "timed out waiting for accesses in flight, a finalizer or the release context; \
                     the release stays pending",
                ))
            }
        }
        Err(refusal @ Refusal::Released) => {
            // Someone else unregistered: wait for that release, then say so.
            if release::wait_until(timeout, || released(handle)) {
                Err(rejection(handle, refusal, "already unregistered"))
            } else {
                Err(pending(
                    "already unregistered, and its release is still pending",
                ))
            }
        }
        Err(refusal) => Err(rejection(handle, refusal, "cannot unregister")),
    }
}

/// `gcs_invalidate`.
pub(crate) fn invalidate(handle: u64) -> Result<()> {
    let mut manager = None;
    table()
        .invalidate_with(handle, |details| {
            if let Some(record) = details.payload.as_mut() {
                // Under the detail lock, with the transition: a release reads
                // this after it, so the finalizer is skipped.
                record.invalidated = true;
                manager = Some(record.manager.clone());
            }
        })
        .map_err(|refusal| rejection(handle, refusal, "cannot invalidate"))?;
    if let Some(manager) = manager {
        bump(&manager.counters.invalidated);
        log_state!(
            manager,
            crate::log::Level::Info,
            core::ptr::null_mut(),
            "{}: invalidated",
            describe(handle)
        );
    }
    Ok(())
}

/// `Handle::info`.
pub(crate) fn info(handle: u64) -> Result<HandleInfo> {
    info_with_c_names(handle).map(|(info, _, _)| info)
}

/// `gcs_get_info`: the info, and its names as C strings owned by the slot's
/// details (valid until the retained state is swept).
pub(crate) fn info_with_c_names(handle: u64) -> Result<(HandleInfo, *const c_char, *const c_char)> {
    let now = clock::now_ms();
    let found = table().with_details(handle, |word: Word, details| {
        let state = match word.phase() {
            Phase::Live => HandleState::Live,
            Phase::Invalidated => HandleState::Invalidated,
            Phase::Draining => HandleState::Releasing,
            _ => HandleState::Released,
        };
        if state == HandleState::Released
            && now.saturating_sub(details.released_at_ms) > details.retention_ms
        {
            return None;
        }
        let type_name = details.type_name.as_c_str().as_ptr();
        let instance_name = details
            .instance_name
            .as_deref()
            .map_or(core::ptr::null(), CStr::as_ptr);
        let info = HandleInfo {
            handle: Handle::from_issued(handle),
            state,
            kind: Kind::from_raw(details.kind as i32).unwrap_or(Kind::Pointer),
            type_name: details.type_name.as_str().to_owned(),
            instance_name: details
                .instance_name
                .as_deref()
                .map(|name| name.to_string_lossy().into_owned()),
            size_bytes: details.size_bytes,
            accesses_in_flight: if state == HandleState::Released {
                0
            } else {
                word.count()
            },
            age_ms: now.saturating_sub(details.registered_at_ms),
            released_ms_ago: if state == HandleState::Released {
                now.saturating_sub(details.released_at_ms)
            } else {
                0
            },
        };
        Some((info, type_name, instance_name))
    });
    match found.flatten() {
        Some(info) => Ok(info),
        None => Err(match table().check(handle) {
            Err(refusal) => rejection(handle, refusal, "no information kept"),
            Ok(_) => unreachable!("a live handle has details"),
        }),
    }
}

/// Invalidate after a failed access callback when the handle's manager has
/// `invalidate_on_callback_error`; returns whether it did.
fn invalidate_after_callback_error(handle: u64) -> bool {
    let Some(manager) = owner(handle) else {
        return false;
    };
    bump(&manager.counters.callback_failures);
    manager.config.invalidate_on_callback_error && invalidate(handle).is_ok()
}

/// `gcs_add_cleanup`: run `callback(object)` at release, before the
/// reference drops; cleanups run newest first.
pub(crate) fn add_cleanup(handle: u64, callback: Callback) -> Result<()> {
    with_registered_record(handle, "cannot add a cleanup", |record| {
        record.extras_mut().cleanups.push(callback);
        Ok(())
    })
}

/// `gcs_set_finalizer`: one per registration.
pub(crate) fn set_finalizer(handle: u64, callback: Callback) -> Result<()> {
    let mut already_set = false;
    with_registered_record(handle, "cannot set a finalizer", |record| {
        // No message here: `describe` takes the detail lock we are under.
        already_set = record
            .extras
            .as_ref()
            .is_some_and(|e| e.finalizer.is_some());
        if !already_set {
            record.extras_mut().finalizer = Some(callback);
        }
        Ok(())
    })?;
    if already_set {
        return Err(Error::new(
            ErrorCode::InvalidArgument,
            format!(
                "{}: already has a finalizer (one per registration)",
                describe(handle)
            ),
        ));
    }
    Ok(())
}

/// Change a record that is still registered (live or invalidated), under the
/// detail lock: a release takes the cleanups under that lock after the
/// unregister transition, so what is added here either runs or is refused.
/// `f` runs under that lock: it must not call anything that takes it (such
/// as `describe`).
fn with_registered_record(
    handle: u64,
    what: &str,
    f: impl FnOnce(&mut Record) -> Result<()>,
) -> Result<()> {
    let outcome = table().with_details_mut(handle, |word, details| {
        match (word.phase(), details.payload.as_mut()) {
            (Phase::Live | Phase::Invalidated, Some(record)) => Some(f(record)),
            _ => None,
        }
    });
    match outcome.flatten() {
        Some(result) => result,
        None => Err(match table().check(handle) {
            Err(refusal) => rejection(handle, refusal, what),
            Ok(_) => rejection(handle, Refusal::Released, what),
        }),
    }
}
