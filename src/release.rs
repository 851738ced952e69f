//! Carrying out a release: cleanups (newest first), the finalizer (inline or
//! on the executor, with timeout and retries), then the reference is dropped
//! — on the thread that claimed the release, on the finalizer executor, or on
//! the manager's `release_context`. No lock is held while user code runs.
//!
//! Who waits for releases (`unregister_sync`, manager close) sleeps on one
//! condition variable that a completed release signals when it sees a
//! waiter. The release path takes no fence for that: a waiter that arrives
//! just as a release completes may be missed, so waiters re-check the state
//! at least every [`RECHECK`] — a bounded latency instead of a full memory
//! barrier on every release.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::executor;
use crate::log::Level;
use crate::manager::{ManagerInner, table};
use crate::object;
use crate::record::{Record, ReleaseJob, SendPtr};
use crate::stats::bump;
use crate::table::Claim;
use crate::thread_accesses;

/// A claimed release, owned by whoever carries it out.
pub(crate) type Claimed = Claim<'static, Record>;

/// Carry out a claimed release.
pub(crate) fn carry_out_release(claim: Claimed) {
    let job = table().claimed_details(&claim, |details| {
        let size = details.size_bytes;
        details
            .payload
            .as_mut()
            .and_then(|record| record.take_release_job(size))
    });
    let Some(job) = job else {
        // Nothing registered there (cannot happen for a claim); mark it done.
        drop(claim);
        signal_released();
        return;
    };
    match job.manager.release_context().cloned() {
        Some(context) => dispatch_to_context(&context, claim, job),
        None => run_release(claim, job),
    }
}

/// Cleanups, finalizer, then the final unref; on this thread.
fn run_release(claim: Claimed, mut job: ReleaseJob) {
    let handle = claim.handle();
    // While this thread releases `handle`, a sync unregister of it here must
    // not wait for itself.
    let _releasing = thread_accesses::releasing(handle);
    let manager = &*job.manager;
    crate::log::refresh();
    log_state!(
        manager,
        Level::Debug,
        job.payload
            .as_ref()
            .map_or(core::ptr::null_mut(), |p| p.debug_object()),
        "handle {handle:#018x} ({}): releasing",
        job.counters.name.as_str()
    );
    // For a weak handle: a strong reference for the cleanups, or NULL if the
    // object is already gone.
    let (object, strong) = match job.payload.as_ref() {
        Some(payload) => payload.object_for_cleanup(),
        None => (core::ptr::null_mut(), None),
    };
    for mut cleanup in std::mem::take(&mut job.cleanups).into_iter().rev() {
        let ok = cleanup.call(object);
        bump(&manager.counters.cleanups_run);
        if !ok {
            bump(&manager.counters.cleanup_failures);
        }
        log_state!(
            manager,
            if ok { Level::Debug } else { Level::Warning },
            core::ptr::null_mut(),
            "handle {handle:#018x}: cleanup {}",
            if ok { "ran" } else { "failed" }
        );
    }
    let strong = strong.map(|strong| SendPtr(strong.as_ptr()));
    let Some(mut finalizer) = job.finalizer.take() else {
        return finish(claim, job, strong);
    };
    let config = &manager.config;
    let retries = config.max_finalizer_retries;
    let timeout = config.finalizer_timeout;
    let object = SendPtr(object);
    if config.enable_finalizer_safety {
        let on_timeout_manager = job.manager.to_arc();
        let done_manager = job.manager.to_arc();
        executor::submit(executor::Task {
            attempt: Box::new(move || {
                let _releasing = thread_accesses::releasing(handle);
                finalizer.call(object.get())
            }),
            retries,
            timeout,
            on_timeout: Box::new(move || {
                bump(&on_timeout_manager.counters.finalizer_timeouts);
                log_finalizer!(
                    on_timeout_manager,
                    Level::Warning,
                    "handle {handle:#018x}: finalizer still running after {timeout:?}"
                );
            }),
            done: Box::new(move |outcome| {
                finalizer_done(&done_manager, handle, outcome.succeeded, outcome.attempts);
                finish(claim, job, strong);
            }),
        });
    } else {
        let started = Instant::now();
        let mut attempts = 0;
        let mut succeeded = false;
        while !succeeded && attempts <= retries {
            attempts += 1;
            succeeded = finalizer.call(object.0);
        }
        if started.elapsed() > timeout {
            bump(&manager.counters.finalizer_timeouts);
        }
        finalizer_done(manager, handle, succeeded, attempts);
        finish(claim, job, strong);
    }
}

fn finalizer_done(manager: &ManagerInner, handle: u64, succeeded: bool, attempts: u32) {
    bump(&manager.counters.finalizers_run);
    if succeeded {
        log_finalizer!(
            manager,
            Level::Debug,
            "handle {handle:#018x}: finalizer ran ({attempts} attempts)"
        );
    } else {
        bump(&manager.counters.finalizer_failures);
        log_finalizer!(
            manager,
            Level::Warning,
            "handle {handle:#018x}: finalizer failed {attempts} times"
        );
    }
}

/// Drop the reference, count, mark the slot released, wake waiters. A
/// `GCS_REGISTER_SET_NULL_STATE` element is set to NULL and unreffed on the
/// library's executor, never here: this thread may be one of its streaming
/// threads (a pad probe, an appsink callback ending the last access), where
/// `gst_element_set_state` would join itself. The executor's threads are
/// the library's own, never streaming threads; the state change is timed
/// like a finalizer (`finalizer_timeout`: a hung one is reported and the
/// other releases go on on another worker). The slot stays releasing until
/// the unref, so `gcs_unregister_sync`, closes and `gcs_shutdown` wait for
/// it, and the registration's unref is the last one it makes (unlike
/// `gst_element_call_async`, whose pool holds a reference of its own until
/// after the call, so the element would be finalized after the wait).
/// With a `release_context`, the release already runs on the thread that
/// iterates it (the application's, chosen for this), so it stays there.
fn finish(claim: Claimed, job: ReleaseJob, strong: Option<SendPtr>) {
    let element = match job.manager.release_context() {
        Some(_) => None,
        None => job.payload.as_ref().and_then(|p| p.null_state_element()),
    };
    let Some(element) = element else {
        return finish_here(claim, job, strong);
    };
    let handle = claim.handle();
    let timeout = job.manager.config.finalizer_timeout;
    let on_timeout_manager = job.manager.to_arc();
    let element = SendPtr(element.as_ptr().cast());
    struct Finish(Claimed, ReleaseJob, Option<SendPtr>);
    // SAFETY: as for `ContextJob`: a claim indexes the 'static table and
    // the job owns thread-safe references.
    unsafe impl Send for Finish {}
    let finish = Finish(claim, job, strong);
    executor::submit(executor::Task {
        attempt: Box::new(move || {
            if let Some(element) = core::ptr::NonNull::new(element.get()) {
                object::set_element_state_null(element.cast());
            }
            true
        }),
        retries: 0,
        timeout,
        on_timeout: Box::new(move || {
            log_state!(
                on_timeout_manager,
                Level::Warning,
                core::ptr::null_mut(),
                "handle {handle:#018x}: setting the element to NULL still runs after {timeout:?}"
            );
        }),
        done: Box::new(move |_| {
            let Finish(claim, job, strong) = finish;
            finish_here(claim, job, strong)
        }),
    });
}

/// [`finish`] on this thread.
fn finish_here(claim: Claimed, job: ReleaseJob, strong: Option<SendPtr>) {
    if let Some(strong) = strong.and_then(|s| core::ptr::NonNull::new(s.0)) {
        object::downgrade(strong);
    }
    if let Some(payload) = job.payload
        && payload.release()
    {
        // A Rust release function (`extern "C-unwind"`) panicked.
        bump(&job.manager.counters.panics_recovered);
    }
    job.manager
        .counters
        .counts
        .released(job.stripe, job.size_bytes);
    job.counters.counts.released(job.stripe, job.size_bytes);
    log_state!(
        job.manager,
        Level::Debug,
        core::ptr::null_mut(),
        "handle {:#018x}: released",
        claim.handle()
    );
    drop(claim); // Draining(0) → Retained: the release is done.
    signal_released();
}

// ----- release_context --------------------------------------------------------

struct ContextJob(Option<(Claimed, ReleaseJob)>);

unsafe extern "C" fn run_context_job(data: glib_sys::gpointer) -> glib_sys::gboolean {
    // SAFETY: `data` is the ContextJob boxed by `dispatch_to_context`, alive
    // until `drop_context_job` (called after this returns).
    let job = unsafe { &mut *data.cast::<ContextJob>() };
    if let Some((claim, job)) = job.0.take() {
        // No panic may unwind into GLib.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_release(claim, job)));
    }
    glib_sys::GFALSE
}

unsafe extern "C" fn drop_context_job(data: glib_sys::gpointer) {
    // SAFETY: `data` came from Box::into_raw in `dispatch_to_context`; GLib
    // calls the destroy notify exactly once.
    let mut job = unsafe { Box::from_raw(data.cast::<ContextJob>()) };
    // The source was destroyed without running (its context went away):
    // release here rather than leak the reference.
    if let Some((claim, job)) = job.0.take() {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_release(claim, job)));
    }
}

/// Run the release on `context` (`g_main_context_invoke_full`: at once if
/// this thread owns the context, else from an idle source in its loop).
fn dispatch_to_context(context: &glib::MainContext, claim: Claimed, job: ReleaseJob) {
    use glib::translate::ToGlibPtr;
    let data = Box::into_raw(Box::new(ContextJob(Some((claim, job)))));
    // SAFETY: the context pointer is valid (the manager holds a reference);
    // the callbacks match GSourceFunc / GDestroyNotify and own `data`.
    unsafe {
        glib_sys::g_main_context_invoke_full(
            context.to_glib_none().0,
            glib_sys::G_PRIORITY_DEFAULT,
            Some(run_context_job),
            data.cast(),
            Some(drop_context_job),
        );
    }
}

// SAFETY: a claim is an index into the 'static table, and a release job owns
// what it carries; the payload's objects are thread-safe GObjects and mini
// objects, or pointers the ABI documents as released on any thread.
unsafe impl Send for ContextJob {}

// ----- waiting for releases -------------------------------------------------------

static WAITERS: AtomicUsize = AtomicUsize::new(0);
static EPOCH: Mutex<u64> = Mutex::new(0);
static RELEASED: Condvar = Condvar::new();

/// How often a waiter re-checks, in case it missed a signal.
const RECHECK: Duration = Duration::from_millis(1);

/// Wake whoever waits for releases (a relaxed load when nobody does).
pub(crate) fn signal_released() {
    if WAITERS.load(Ordering::Relaxed) > 0 {
        *EPOCH.lock() += 1;
        RELEASED.notify_all();
    }
}

/// Wait until `done()` holds, or the timeout passes (`None`: no limit).
/// Returns whether `done()` held.
pub(crate) fn wait_until(timeout: Option<Duration>, done: impl Fn() -> bool) -> bool {
    let deadline = timeout.map(|t| Instant::now() + t);
    WAITERS.fetch_add(1, Ordering::Relaxed);
    let mut epoch = EPOCH.lock();
    let result = loop {
        if done() {
            break true;
        }
        let now = Instant::now();
        if deadline.is_some_and(|deadline| now >= deadline) {
            break false;
        }
        let slice = deadline.map_or(RECHECK, |deadline| (deadline - now).min(RECHECK));
        let _ = RELEASED.wait_for(&mut epoch, slice);
    };
    drop(epoch);
    WAITERS.fetch_sub(1, Ordering::Relaxed);
    result
}

/// For fork handlers: the waiters' lock.
#[cfg(not(loom))]
pub(crate) fn epoch_lock() -> &'static Mutex<u64> {
    &EPOCH
}
