//! Statistics: per manager, and per type name within a manager.
//!
//! Registration counts (registered, released, tracked bytes) are
//! [`Striped`]: each thread writes the stripe it was assigned, and readers
//! sum the stripes, so concurrent registrations on different threads share
//! no written cache line.
//!
//! Everything counted on a slow path (registration, release, rejection,
//! cleanups, finalizers) is a relaxed atomic in the manager or its
//! [`TypeCounters`]. The one count on the access fast path, successful
//! accesses, is kept off shared cache lines: each thread has a one-entry memo
//! — "the last `TypeCounters` I counted for, and how many since" — whose
//! count is a single-writer atomic (a plain load and store, no locked
//! instruction). When the thread accesses a handle of another type it
//! flushes the memo into that type's shared counter (a rare `fetch_add`).
//! Readers add the memo counts of every thread they find (a registry of
//! memos, locked only on the slow paths). A snapshot taken while threads are
//! accessing may lag by the accesses of that instant; once threads are quiet
//! (or have exited, which flushes), it is exact.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use crate::names::Name;

/// A snapshot of a manager's statistics (the ABI's `GcsStats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Registrations ever made (cumulative).
    pub total_registered: u64,
    /// Registrations not yet released (live, invalidated or releasing).
    pub active: u64,
    /// Registrations released.
    pub released: u64,
    /// Handles invalidated (explicitly, or by a failed or panicking access).
    pub invalidated: u64,
    /// Accesses that ran.
    pub access_ok: u64,
    /// Accesses refused (stale, invalidated, forged handles, closed manager).
    pub access_rejected: u64,
    /// Access callbacks that returned non-zero.
    pub callback_failures: u64,
    /// Panics caught inside accesses (Rust API) and at the C boundary.
    pub panics_recovered: u64,
    /// Cleanup callbacks run.
    pub cleanups_run: u64,
    /// Cleanup callbacks that returned non-zero.
    pub cleanup_failures: u64,
    /// Finalizers run (once each, however many attempts).
    pub finalizers_run: u64,
    /// Finalizers that failed every attempt.
    pub finalizer_failures: u64,
    /// Finalizers whose run overran `finalizer_timeout`.
    pub finalizer_timeouts: u64,
    /// Bytes declared by registrations not yet released.
    pub tracked_bytes: u64,
    /// The most registrations ever active at once.
    pub peak_active: u64,
}

/// A snapshot of one type's statistics within a manager (the ABI's `GcsTypeStats`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TypeStats {
    /// The type name.
    pub type_name: String,
    /// Registrations of this type not yet released.
    pub live: u64,
    /// Registrations of this type ever made.
    pub registered: u64,
    /// Registrations of this type released.
    pub released: u64,
    /// Accesses of handles of this type that ran.
    pub accesses: u64,
    /// Bytes declared by this type's registrations not yet released.
    pub tracked_bytes: u64,
}

/// The live counters of one type within one manager.
#[derive(Debug)]
pub(crate) struct TypeCounters {
    pub(crate) name: Name,
    /// Registrations, releases and bytes, striped by registering thread.
    pub(crate) counts: Striped,
    /// Accesses flushed from threads' memos.
    accesses: AtomicU64,
}

impl TypeCounters {
    pub(crate) fn new(name: Name) -> Self {
        TypeCounters {
            name,
            counts: Striped::default(),
            accesses: AtomicU64::new(0),
        }
    }

    /// Accesses counted so far, including those still in threads' memos.
    pub(crate) fn accesses(self: &Arc<Self>) -> u64 {
        let key = Arc::as_ptr(self);
        let memos = memos().lock();
        let pending: u64 = memos
            .iter()
            .filter(|memo| {
                memo.key
                    .lock()
                    .as_ref()
                    .is_some_and(|k| Arc::as_ptr(k) == key)
            })
            .map(|memo| memo.count.load(Ordering::Relaxed))
            .sum();
        self.accesses.load(Ordering::Relaxed) + pending
    }

    pub(crate) fn snapshot(self: &Arc<Self>) -> TypeStats {
        let (registered, released, tracked_bytes) = self.counts.totals();
        TypeStats {
            type_name: self.name.as_str().to_owned(),
            live: registered.saturating_sub(released),
            registered,
            released,
            accesses: self.accesses(),
            tracked_bytes,
        }
    }
}

/// A borrowed reference to a manager's [`TypeCounters`]: the manager's type
/// map keeps every entry for the manager's life, and a registration keeps
/// its manager alive, so a registration's `TypeRef` stays valid as long as
/// the registration — with no reference count touched per registration.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TypeRef(core::ptr::NonNull<TypeCounters>);

// SAFETY: `TypeCounters` is `Sync` (atomics and a name); the pointer is only
// dereferenced while its manager is alive (see the type's documentation).
unsafe impl Send for TypeRef {}
// SAFETY: as above.
unsafe impl Sync for TypeRef {}

impl TypeRef {
    /// A reference to counters that `owner` keeps in its type map.
    pub(crate) fn new(counters: &Arc<TypeCounters>) -> Self {
        TypeRef(core::ptr::NonNull::from(&**counters))
    }

    /// The pointer handed to accesses for accounting (see `count_access`).
    pub(crate) fn as_ptr(self) -> *const TypeCounters {
        self.0.as_ptr()
    }
}

impl core::ops::Deref for TypeRef {
    type Target = TypeCounters;
    fn deref(&self) -> &TypeCounters {
        // SAFETY: the holder keeps the manager, and so its type map, alive
        // (see the type's documentation).
        unsafe { self.0.as_ref() }
    }
}

// ----- striped counters -----------------------------------------------------

/// How many stripes the registration counters are split into.
pub(crate) const STRIPES: usize = 16;

/// This thread's stripe: assigned round-robin at the thread's first
/// registration, so that threads registering at the same time write their
/// own cache lines (more than [`STRIPES`] threads share, correctly).
pub(crate) fn stripe() -> u8 {
    thread_local! {
        static STRIPE: Cell<u8> = const { Cell::new(u8::MAX) };
    }
    static NEXT: AtomicU64 = AtomicU64::new(0);
    STRIPE
        .try_with(|stripe| {
            if stripe.get() == u8::MAX {
                stripe.set((NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES as u64) as u8);
            }
            stripe.get()
        })
        .unwrap_or(0)
}

/// One stripe: the counts of the registrations made by its threads (their
/// releases are counted here too, by whichever thread releases), on a cache
/// line pair of its own.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Stripe {
    registered: AtomicU64,
    released: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    /// The most of this stripe's registrations ever active at once.
    peak: AtomicU64,
    /// A manager's close gate for this stripe (see `ManagerInner::gate`).
    pub(crate) gate: AtomicU64,
}

/// Registration counters split in [`STRIPES`] stripes, summed on read: a
/// register/unregister pair writes only its own stripe's line (relaxed
/// read-modify-writes: statistics synchronize nothing).
#[derive(Debug, Default)]
pub(crate) struct Striped(pub(crate) [Stripe; STRIPES]);

impl Striped {
    /// A registration of `size` bytes in stripe `stripe`; `true` when the
    /// stripe reached a new high of active registrations (then the caller
    /// may update a peak from [`active`](Self::active)).
    pub(crate) fn registered(&self, stripe: u8, size: u64) -> bool {
        let s = &self.0[stripe as usize];
        let registered = s.registered.fetch_add(1, Ordering::Relaxed) + 1;
        if size != 0 {
            s.bytes_in.fetch_add(size, Ordering::Relaxed);
        }
        let active = registered.saturating_sub(s.released.load(Ordering::Relaxed));
        if active > s.peak.load(Ordering::Relaxed) {
            s.peak.store(active, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// Undo [`registered`](Self::registered) (a registration that found no slot).
    pub(crate) fn unregistered(&self, stripe: u8, size: u64) {
        let s = &self.0[stripe as usize];
        s.registered.fetch_sub(1, Ordering::Relaxed);
        if size != 0 {
            s.bytes_out.fetch_add(size, Ordering::Relaxed);
        }
    }

    /// A release of a registration of stripe `stripe`.
    pub(crate) fn released(&self, stripe: u8, size: u64) {
        let s = &self.0[stripe as usize];
        s.released.fetch_add(1, Ordering::Relaxed);
        if size != 0 {
            s.bytes_out.fetch_add(size, Ordering::Relaxed);
        }
    }

    /// `(registered, released, tracked bytes)`, summed over the stripes.
    /// Releases are read first: a registration is counted before its
    /// release, so the difference cannot go below zero for lack of it.
    pub(crate) fn totals(&self) -> (u64, u64, u64) {
        let sum = |f: fn(&Stripe) -> &AtomicU64| -> u64 {
            self.0
                .iter()
                .map(|s| f(s).load(Ordering::Relaxed))
                .fold(0, u64::wrapping_add)
        };
        let released = sum(|s| &s.released);
        let bytes_out = sum(|s| &s.bytes_out);
        let registered = sum(|s| &s.registered);
        let bytes_in = sum(|s| &s.bytes_in);
        (registered, released, bytes_in.wrapping_sub(bytes_out))
    }

    /// Registrations active now (a snapshot).
    pub(crate) fn active(&self) -> u64 {
        let (registered, released, _) = self.totals();
        registered.saturating_sub(released)
    }

    /// Bytes tracked now (a snapshot).
    pub(crate) fn tracked_bytes(&self) -> u64 {
        self.totals().2
    }
}

/// One thread's memo of accesses not yet flushed.
#[derive(Debug, Default)]
pub(crate) struct Memo {
    /// The counters the pending count belongs to. Changed only by the owning
    /// thread, under this lock (which readers take too).
    key: Mutex<Option<Arc<TypeCounters>>>,
    /// Accesses since the last flush; written only by the owning thread.
    count: AtomicU64,
}

impl Memo {
    /// Move the pending count into its counters. Owner only.
    fn flush(&self, key: &mut Option<Arc<TypeCounters>>) {
        let pending = self.count.swap(0, Ordering::Relaxed);
        if let Some(counters) = key.as_ref() {
            counters.accesses.fetch_add(pending, Ordering::Relaxed);
        }
    }
}

fn memos() -> &'static Mutex<Vec<Arc<Memo>>> {
    static MEMOS: OnceLock<Mutex<Vec<Arc<Memo>>>> = OnceLock::new();
    MEMOS.get_or_init(Default::default)
}

/// Fork support: the registry of memos.
#[cfg(not(loom))]
pub(crate) fn fork_lock() -> &'static Mutex<Vec<Arc<Memo>>> {
    memos()
}

#[cfg(not(loom))]
/// Fork support, in the child: release memo locks that vanished threads held.
pub(crate) fn fork_child_unlock() {
    for memo in memos().lock().iter() {
        // SAFETY: in the forked child only this thread exists; a holder or
        // waiter of this lock is gone for good.
        unsafe { crate::sync::ForkLock::reset_in_child(&memo.key) };
    }
}

/// The owning thread's memo; flushed and unregistered at thread exit.
struct ThreadMemo {
    memo: Arc<Memo>,
}

impl Drop for ThreadMemo {
    fn drop(&mut self) {
        // The fast path must not use the memo any more.
        let _ = FAST.try_with(|fast| fast.set((core::ptr::null(), core::ptr::null())));
        let mut key = self.memo.key.lock();
        self.memo.flush(&mut key);
        *key = None;
        drop(key);
        memos().lock().retain(|memo| !Arc::ptr_eq(memo, &self.memo));
    }
}

thread_local! {
    /// The owning handle on this thread's memo (lazily created, with a
    /// destructor that flushes and unregisters it): slow path only.
    static MEMO: RefCell<Option<ThreadMemo>> = const { RefCell::new(None) };
    /// The fast path's view: (the memo's key, the memo's count). A const,
    /// destructor-free thread-local: no lazy-initialisation check, no borrow
    /// flag. Null until the first access on this thread.
    static FAST: Cell<(*const TypeCounters, *const AtomicU64)> =
        const { Cell::new((core::ptr::null(), core::ptr::null())) };
}

/// Count one successful access of a handle whose counters are `counters`
/// (the slot's accounting pointer; null counts nothing). The fast path: a
/// thread-local compare and a single-writer increment.
///
/// # Safety
/// `counters` is null or points at `TypeCounters` kept alive by the
/// registration being accessed (so for the duration of this call).
#[inline]
pub(crate) unsafe fn count_access(counters: *const TypeCounters) {
    if counters.is_null() {
        return;
    }
    let hit = FAST
        .try_with(|fast| {
            let (key, count) = fast.get();
            if key == counters {
                // SAFETY: `count` points into this thread's memo, kept alive
                // by `MEMO` for as long as `FAST` names it (cleared first at
                // thread exit). Single writer: a plain load and store.
                let count = unsafe { &*count };
                count.store(count.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
                true
            } else {
                false
            }
        })
        .unwrap_or(true);
    if !hit {
        // SAFETY: forwarded precondition.
        unsafe { switch_key(counters) };
    }
}

/// Flush the memo and make it count for `counters`. Cold: a thread that
/// changes the type it accesses.
#[cold]
unsafe fn switch_key(counters: *const TypeCounters) {
    let _ = MEMO.try_with(|memo| {
        let mut memo = memo.borrow_mut();
        let thread = memo.get_or_insert_with(|| {
            let memo = Arc::new(Memo::default());
            memos().lock().push(memo.clone());
            ThreadMemo { memo }
        });
        // SAFETY: the caller guarantees `counters` is alive; it came from
        // `Arc::as_ptr`, so taking a new strong count is sound.
        let new_key = unsafe {
            Arc::increment_strong_count(counters);
            Arc::from_raw(counters)
        };
        let mut key = thread.memo.key.lock();
        thread.memo.flush(&mut key);
        *key = Some(new_key);
        thread.memo.count.store(1, Ordering::Relaxed);
        let _ = FAST.try_with(|fast| fast.set((counters, &thread.memo.count as *const AtomicU64)));
    });
}

/// A manager's counters: the registration counts striped (see [`Striped`]),
/// the rest relaxed atomics bumped on slow paths.
#[derive(Debug, Default)]
pub(crate) struct ManagerCounters {
    /// Registrations, releases and tracked bytes, and the close gate.
    pub(crate) counts: Striped,
    pub(crate) invalidated: AtomicU64,
    pub(crate) access_rejected: AtomicU64,
    pub(crate) callback_failures: AtomicU64,
    pub(crate) panics_recovered: AtomicU64,
    pub(crate) cleanups_run: AtomicU64,
    pub(crate) cleanup_failures: AtomicU64,
    pub(crate) finalizers_run: AtomicU64,
    pub(crate) finalizer_failures: AtomicU64,
    pub(crate) finalizer_timeouts: AtomicU64,
    pub(crate) peak_active: AtomicU64,
}

/// Add one to a counter (relaxed: statistics synchronize nothing).
#[inline]
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl ManagerCounters {
    /// A registration of `size` bytes was made by a thread of `stripe`.
    ///
    /// `peak_active` is raised only when the stripe reaches a new high of
    /// its own active registrations (then the stripes are summed): exact
    /// when registrations come from one thread at a time (whichever threads
    /// release), and otherwise never above the true peak; no shared line is
    /// written in the steady state.
    pub(crate) fn registered(&self, stripe: u8, size: u64) {
        if self.counts.registered(stripe, size) {
            self.peak_active
                .fetch_max(self.counts.active(), Ordering::Relaxed);
        }
    }

    /// The snapshot, with the accesses counted per type.
    pub(crate) fn snapshot(&self, access_ok: u64) -> Stats {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let (total_registered, released, tracked_bytes) = self.counts.totals();
        let active = total_registered.saturating_sub(released);
        Stats {
            total_registered,
            active,
            released,
            invalidated: get(&self.invalidated),
            access_ok,
            access_rejected: get(&self.access_rejected),
            callback_failures: get(&self.callback_failures),
            panics_recovered: get(&self.panics_recovered),
            cleanups_run: get(&self.cleanups_run),
            cleanup_failures: get(&self.cleanup_failures),
            finalizers_run: get(&self.finalizers_run),
            finalizer_failures: get(&self.finalizer_failures),
            finalizer_timeouts: get(&self.finalizer_timeouts),
            tracked_bytes,
            peak_active: get(&self.peak_active).max(active),
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn accesses_are_counted_across_threads_and_type_switches() {
        let a = Arc::new(TypeCounters::new(Name::Static(c"A")));
        let b = Arc::new(TypeCounters::new(Name::Static(c"B")));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (a, b) = (a.clone(), b.clone());
                std::thread::spawn(move || {
                    for i in 0..1000 {
                        let which = if i % 3 == 0 { &b } else { &a };
                        // SAFETY: both are alive (owned by this closure).
                        unsafe { count_access(Arc::as_ptr(which)) };
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(a.accesses() + b.accesses(), 4000);
        assert_eq!(b.accesses(), 4 * 334);
        // This thread's memo, still pending, is counted too.
        // SAFETY: `a` is alive.
        unsafe { count_access(Arc::as_ptr(&a)) };
        assert_eq!(a.accesses(), 4 * 666 + 1);
    }
}
