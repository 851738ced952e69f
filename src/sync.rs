//! One switch between the standard library's synchronisation primitives and
//! [loom]'s model-checked ones (`RUSTFLAGS="--cfg loom"`), after sharded-slab's
//! `src/sync.rs`. Everything in the table that is shared between threads goes
//! through this module, so the loom models in `src/table/loom.rs` exercise the
//! real code, not a copy of it.
//!
//! [loom]: https://docs.rs/loom

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};

/// A mutex for the slow paths (registration details, growth, retention).
/// parking_lot's outside loom; loom's inside it. Never held while user code runs.
#[derive(Debug, Default)]
pub(crate) struct Mutex<T>(
    #[cfg(loom)] loom::sync::Mutex<T>,
    #[cfg(not(loom))] parking_lot::Mutex<T>,
);

#[cfg(not(loom))]
pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;
#[cfg(loom)]
pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Self {
        #[cfg(loom)]
        return Self(loom::sync::Mutex::new(value));
        #[cfg(not(loom))]
        return Self(parking_lot::Mutex::new(value));
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        #[cfg(loom)]
        // A panic while the lock is held is a bug in a model; propagate it.
        return self.0.lock().unwrap();
        #[cfg(not(loom))]
        return self.0.lock();
    }
}

#[cfg(not(loom))]
impl<T> Mutex<T> {
    /// Fork support: take the lock and keep it past this call.
    pub(crate) fn lock_across_fork(&self) {
        core::mem::forget(self.0.lock());
    }

    /// Fork support, in a forked child: the lock unlocked with no waiters.
    ///
    /// # Safety
    /// Only in a forked child (no other thread exists); no guard used again.
    pub(crate) unsafe fn reset_in_child(&self) {
        // SAFETY: forwarded.
        unsafe { crate::fork::ForkLock::reset_in_child(&self.0) }
    }

    /// Fork support: release a lock taken by `lock_across_fork`.
    ///
    /// # Safety
    /// The lock must be held, and its holder must not use its guard again.
    pub(crate) unsafe fn force_unlock(&self) {
        // SAFETY: forwarded.
        unsafe { self.0.force_unlock() }
    }
}
