//! One switch between the standard library's synchronisation primitives and
//! [loom]'s model-checked ones (`RUSTFLAGS="--cfg loom"`), after sharded-slab's
//! `src/sync.rs`. Everything in the table that is shared between threads goes
//! through this module, so the loom models in `src/table/loom.rs` exercise the
//! real code, not a copy of it.
//!
//! [loom]: https://docs.rs/loom

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};

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
        unsafe { ForkLock::reset_in_child(&self.0) }
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

// ----- fork support ------------------------------------------------------
// What `src/fork.rs`'s `pthread_atfork` handlers do to a lock, here so that
// the modules owning locks depend on this module, not on the handlers.

#[cfg(not(loom))]
/// A lock the fork handlers can hold across `fork` and release after.
pub(crate) trait ForkLock {
    /// Take the lock (exclusively) and keep it past this call.
    fn lock_across_fork(&self);
    /// Release a lock held by `lock_across_fork` (in the parent).
    ///
    /// # Safety
    /// The lock must be held exclusively, and its holder must never use its
    /// guard again.
    unsafe fn force_unlock(&self);
    /// In a forked child: make the lock unlocked with no waiters, whoever
    /// held or waited for it. Not `force_unlock`: with waiters recorded that
    /// would go through parking_lot's global queue, which a vanished parent
    /// thread may hold.
    ///
    /// # Safety
    /// Only in a forked child, where no other thread exists, and with no
    /// guard of this lock used again.
    unsafe fn reset_in_child(&self);
}

#[cfg(not(loom))]
impl<T> ForkLock for parking_lot::Mutex<T> {
    fn lock_across_fork(&self) {
        std::mem::forget(self.lock());
    }
    unsafe fn force_unlock(&self) {
        // SAFETY: forwarded.
        unsafe { parking_lot::Mutex::force_unlock(self) }
    }
    unsafe fn reset_in_child(&self) {
        // SAFETY: forwarded.
        unsafe { reset_raw(self.raw()) }
    }
}

#[cfg(not(loom))]
/// Overwrite a parking_lot raw lock with its initial (unlocked) state.
///
/// # Safety
/// As `ForkLock::reset_in_child`.
unsafe fn reset_raw<R: parking_lot::lock_api::RawMutex>(raw: &R) {
    let raw = raw as *const R as *mut R;
    // SAFETY: the raw lock is atomics (interior mutability), and in the child
    // nothing else can touch it.
    unsafe { raw.write(R::INIT) }
}

#[cfg(not(loom))]
impl<T> ForkLock for parking_lot::RwLock<T> {
    fn lock_across_fork(&self) {
        std::mem::forget(self.write());
    }
    unsafe fn force_unlock(&self) {
        // SAFETY: forwarded.
        unsafe { self.force_unlock_write() }
    }
    unsafe fn reset_in_child(&self) {
        // SAFETY: only the address of the raw lock is taken.
        let raw =
            unsafe { self.raw() } as *const parking_lot::RawRwLock as *mut parking_lot::RawRwLock;
        // SAFETY: forwarded; as in `reset_raw`.
        unsafe { raw.write(<parking_lot::RawRwLock as parking_lot::lock_api::RawRwLock>::INIT) }
    }
}

#[cfg(not(loom))]
impl<T> ForkLock for Mutex<T> {
    fn lock_across_fork(&self) {
        Mutex::lock_across_fork(self)
    }
    unsafe fn force_unlock(&self) {
        // SAFETY: forwarded.
        unsafe { Mutex::force_unlock(self) }
    }
    unsafe fn reset_in_child(&self) {
        // SAFETY: forwarded.
        unsafe { Mutex::reset_in_child(self) }
    }
}
