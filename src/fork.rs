//! What a forked child may do, and the `pthread_atfork` handlers that make
//! it so.
//!
//! In the child only the forking thread exists. Any lock another parent
//! thread held at the fork would stay held forever, so:
//! * `prepare` (in the parent, before the fork) takes every global lock of
//!   the library, in one fixed order (the order normal code nests them), so
//!   no other thread is inside those critical sections at the fork;
//! * `parent` releases them; `child` releases them too, then force-unlocks
//!   the small per-slot, per-thread-memo and per-thread-tracker locks that a
//!   vanished thread may have held (their critical sections are a few plain
//!   writes with no user code, so the data is consistent unless the fork hit
//!   mid-write of that one slot), and resets the finalizer executor, whose
//!   threads do not exist in the child (finalizers queued in the parent are
//!   not run in the child).
//!
//! So a child can register and use new handles, and use handles inherited
//! from the parent (its copies of the objects and references), from the
//! forking thread, without deadlock. Accesses that parent threads had in
//! flight at the fork stay counted in the child, so those handles are
//! released in the child only if it ends the accesses itself.

use std::sync::Once;

use crate::manager::{self, table};
use crate::sync::ForkLock;
use crate::{executor, names, release, stats, thread_accesses};

/// Install the handlers once per load of the library (the first manager start).
pub(crate) fn install_handlers() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        // SAFETY: the three handlers are `extern "C"` functions that never
        // unwind; pthread_atfork has no other precondition.
        unsafe {
            libc::pthread_atfork(Some(prepare), Some(parent), Some(child));
        }
    });
}

extern "C" fn prepare() {
    let (default, registry) = manager::fork_locks();
    default.lock_across_fork();
    registry.lock_across_fork();
    // The registry lock is held: walk the managers without taking it again.
    manager::for_each_manager_locked(|m| m.types_lock().lock_across_fork());
    names::fork_lock().lock_across_fork();
    table()
        .fork_locks()
        .iter()
        .for_each(|lock| lock.lock_across_fork());
    stats::fork_lock().lock_across_fork();
    thread_accesses::fork_lock().lock_across_fork();
    release::epoch_lock().lock_across_fork();
    executor::fork_prepare();
}

/// Release what `prepare` took, in reverse order: `force_unlock` in the
/// parent, `reset_in_child` in the child.
fn release_prepared(child: bool) {
    let release = |lock: &dyn ForkLock| {
        // SAFETY: `prepare` took the lock and forgot its guard; in the child
        // only this thread exists.
        unsafe {
            if child {
                lock.reset_in_child()
            } else {
                lock.force_unlock()
            }
        }
    };
    let (default, registry) = manager::fork_locks();
    release(release::epoch_lock());
    release(thread_accesses::fork_lock());
    release(stats::fork_lock());
    table().fork_locks().iter().for_each(|lock| release(*lock));
    release(names::fork_lock());
    manager::for_each_manager_locked(|m| release(m.types_lock()));
    release(registry);
    release(default);
}

extern "C" fn parent() {
    executor::fork_parent();
    release_prepared(false);
}

extern "C" fn child() {
    executor::fork_child();
    release_prepared(true);
    table().fork_child_unlock_slots();
    stats::fork_child_unlock();
    thread_accesses::fork_child_unlock();
}
