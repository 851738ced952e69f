//! Statistics: per manager, and per type name within a manager.
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
    pub(crate) registered: AtomicU64,
    pub(crate) released: AtomicU64,
    pub(crate) tracked_bytes: AtomicU64,
    /// Accesses flushed from threads' memos.
    accesses: AtomicU64,
}

impl TypeCounters {
    pub(crate) fn new(name: Name) -> Self {
        TypeCounters {
            name,
            registered: AtomicU64::new(0),
            released: AtomicU64::new(0),
            tracked_bytes: AtomicU64::new(0),
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
        let registered = self.registered.load(Ordering::Relaxed);
        let released = self.released.load(Ordering::Relaxed);
        TypeStats {
            type_name: self.name.as_str().to_owned(),
            live: registered.saturating_sub(released),
            registered,
            released,
            accesses: self.accesses(),
            tracked_bytes: self.tracked_bytes.load(Ordering::Relaxed),
        }
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

/// A manager's slow-path counters.
#[derive(Debug, Default)]
pub(crate) struct ManagerCounters {
    pub(crate) total_registered: AtomicU64,
    // No `active` counter: it is `total_registered - released`, which spares
    // a shared RMW at each registration and each release.
    pub(crate) released: AtomicU64,
    pub(crate) invalidated: AtomicU64,
    pub(crate) access_rejected: AtomicU64,
    pub(crate) callback_failures: AtomicU64,
    pub(crate) panics_recovered: AtomicU64,
    pub(crate) cleanups_run: AtomicU64,
    pub(crate) cleanup_failures: AtomicU64,
    pub(crate) finalizers_run: AtomicU64,
    pub(crate) finalizer_failures: AtomicU64,
    pub(crate) finalizer_timeouts: AtomicU64,
    pub(crate) tracked_bytes: AtomicU64,
    pub(crate) peak_active: AtomicU64,
}

/// Add one to a counter (relaxed: statistics synchronize nothing).
#[inline]
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Add `size` to a byte count and return the new total; no RMW for 0.
#[inline]
pub(crate) fn add_bytes(counter: &AtomicU64, size: u64) -> u64 {
    if size == 0 {
        counter.load(Ordering::Relaxed)
    } else {
        counter.fetch_add(size, Ordering::Relaxed) + size
    }
}

/// Subtract `size` from a byte count; no RMW for 0.
#[inline]
pub(crate) fn sub_bytes(counter: &AtomicU64, size: u64) {
    if size != 0 {
        counter.fetch_sub(size, Ordering::Relaxed);
    }
}

impl ManagerCounters {
    /// A registration of `size` bytes was made; returns its sequence number
    /// in this manager (1, 2, ...: the order of the leak report) and the
    /// tracked bytes after it.
    ///
    /// One shared RMW when `size` is 0 and the peak is not exceeded (the
    /// common case): the peak is raised only when the active count passes
    /// it (a `fetch_max` is a CAS loop on x86), and nothing is added for no
    /// bytes.
    pub(crate) fn registered(&self, size: u64) -> (u64, u64) {
        let total = self.total_registered.fetch_add(1, Ordering::Relaxed) + 1;
        let active = total.saturating_sub(self.released.load(Ordering::Relaxed));
        if active > self.peak_active.load(Ordering::Relaxed) {
            self.peak_active.fetch_max(active, Ordering::Relaxed);
        }
        (total, add_bytes(&self.tracked_bytes, size))
    }

    /// Undo [`registered`](Self::registered) for a registration that found
    /// no slot.
    pub(crate) fn unregistered(&self, size: u64) {
        self.total_registered.fetch_sub(1, Ordering::Relaxed);
        sub_bytes(&self.tracked_bytes, size);
    }

    /// A registration of `size` bytes was released.
    pub(crate) fn released(&self, size: u64) {
        bump(&self.released);
        sub_bytes(&self.tracked_bytes, size);
    }

    /// The snapshot, with the accesses counted per type.
    pub(crate) fn snapshot(&self, access_ok: u64) -> Stats {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        // `released` first: a registration is counted before its release, so
        // `active` cannot go below 0 by a release seen without its
        // registration (saturating anyway: relaxed loads of two counters).
        let released = get(&self.released);
        let total_registered = get(&self.total_registered);
        Stats {
            total_registered,
            active: total_registered.saturating_sub(released),
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
            tracked_bytes: get(&self.tracked_bytes),
            peak_active: get(&self.peak_active),
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
