//! Which handles the current thread is inside an access of, so that
//! `unregister_sync` can refuse to wait for itself (`WouldDeadlock`).
//!
//! Each thread keeps a fixed array of [`TRACKED`] handle values: an access
//! pushes its handle when it begins and removes the most recent equal entry
//! when it ends. An access ended on another thread than it began (a goroutine
//! that moved between two cgo calls) leaves its entry behind; when the array
//! is full, entries whose handle has no access in flight any more are purged,
//! and failing that the oldest entry is dropped. So detection is exact for
//! accesses begun and ended on one thread and nested at most [`TRACKED`]
//! deep, best-effort otherwise, and the memory is fixed: nothing grows, leaks,
//! or touches the handle's counts. No allocation, no lock, no atomic: only
//! this thread reads or writes its array.

use std::cell::Cell;

/// How many accesses per thread are tracked for deadlock detection.
pub const TRACKED: usize = 16;

struct Tracker {
    handles: [Cell<u64>; TRACKED],
    len: Cell<usize>,
}

thread_local! {
    static TRACKER: Tracker = const {
        Tracker { handles: [const { Cell::new(0) }; TRACKED], len: Cell::new(0) }
    };
}

/// Record that this thread began an access of `handle`. `in_flight` tells
/// whether a recorded handle still has accesses in flight (used only when full).
#[inline]
pub(crate) fn push(handle: u64, in_flight: impl Fn(u64) -> bool) {
    // `try_with`: during thread teardown the tracker may be gone; tracking is
    // best-effort, the access itself is unaffected.
    let _ = TRACKER.try_with(|t| {
        let mut len = t.len.get();
        if len == TRACKED {
            len = t.compact(&in_flight);
        }
        t.handles[len].set(handle);
        t.len.set(len + 1);
    });
}

/// Record that this thread ended an access of `handle` (if it began it).
#[inline]
pub(crate) fn remove(handle: u64) {
    let _ = TRACKER.try_with(|t| {
        let len = t.len.get();
        // Most recent first: accesses nest, so this is usually the last entry.
        if let Some(i) = (0..len).rev().find(|&i| t.handles[i].get() == handle) {
            for j in i..len - 1 {
                t.handles[j].set(t.handles[j + 1].get());
            }
            t.len.set(len - 1);
        }
    });
}

/// Whether this thread is inside an access of `handle` that it began.
pub(crate) fn contains(handle: u64) -> bool {
    TRACKER
        .try_with(|t| (0..t.len.get()).any(|i| t.handles[i].get() == handle))
        .unwrap_or(false)
}

impl Tracker {
    /// Drop entries with no access in flight; if none, drop the oldest.
    /// Returns the new length (always < TRACKED).
    #[cold]
    fn compact(&self, in_flight: &dyn Fn(u64) -> bool) -> usize {
        let mut kept = 0;
        for i in 0..TRACKED {
            let handle = self.handles[i].get();
            if in_flight(handle) {
                self.handles[kept].set(handle);
                kept += 1;
            }
        }
        if kept == TRACKED {
            for i in 0..TRACKED - 1 {
                self.handles[i].set(self.handles[i + 1].get());
            }
            kept = TRACKED - 1;
        }
        kept
    }
}
