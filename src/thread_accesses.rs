//! Which handles the current thread is inside an access of (so that
//! `unregister_sync` can refuse to wait for itself, `WouldDeadlock`), and
//! which handles it is releasing (so that a release function or cleanup that
//! sync-unregisters its own handle is told `Released` instead of waiting).
//!
//! # Accesses
//!
//! Each thread owns a block of [`TRACKED`] entries. An access pushes its
//! handle when it begins and removes the most recent equal entry when it
//! ends on the same thread. Only the owning thread writes its entries
//! (relaxed stores: plain moves, no read-modify-write on the access path);
//! other threads only read them.
//!
//! An access may end on another thread than it began (a goroutine that moved
//! between two cgo calls). That thread finds no entry of its own, so it looks
//! for a thread whose entries hold the handle and posts the handle to that
//! thread's *mailbox* (a small mutex-guarded list: this path is rare). The
//! owner drains its mailbox, removing one entry per posted handle, at each
//! begin and end it tracks, before it answers [`contains`] and before it
//! compacts a full block. Attribution is
//! exact when one thread began accesses of that handle, best-effort when
//! several did (the note may go to the wrong one). A full block first drops
//! entries whose handle has no access in flight, then the oldest. So memory
//! is fixed, nothing leaks, and the handle's counts are never touched.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

/// How many accesses per thread are tracked for deadlock detection.
pub const TRACKED: usize = 16;

pub(crate) struct Block {
    /// Handles of accesses begun on the owning thread; written only by it.
    entries: [AtomicU64; TRACKED],
    /// How many entries are in use; written only by the owning thread.
    len: AtomicUsize,
    /// Handles whose access (begun here) was ended on another thread.
    mailbox: Mutex<Vec<u64>>,
    /// How many notes the mailbox holds (written under its lock), so that
    /// a begin or end on the owning thread can tell, without the lock, that
    /// notes wait to be applied first ([`Block::apply_posted_notes`]).
    posted: AtomicUsize,
}

/// Every live thread's block, for foreign ends to search.
fn registry() -> &'static Mutex<Vec<Arc<Block>>> {
    static REGISTRY: OnceLock<Mutex<Vec<Arc<Block>>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// Fork support: the registry of blocks.
#[cfg(not(loom))]
pub(crate) fn fork_lock() -> &'static Mutex<Vec<Arc<Block>>> {
    registry()
}

#[cfg(not(loom))]
/// Fork support, in the child: release mailbox locks that vanished threads held.
pub(crate) fn fork_child_unlock() {
    for block in registry().lock().iter() {
        // SAFETY: in the forked child only this thread exists; a holder or
        // waiter of this lock is gone for good.
        unsafe { crate::sync::ForkLock::reset_in_child(&block.mailbox) };
    }
}

/// The owning thread's handle on its block; unregisters it at thread exit.
struct Owner(Arc<Block>);

impl Owner {
    fn new() -> Owner {
        let block = Arc::new(Block {
            entries: [const { AtomicU64::new(0) }; TRACKED],
            len: AtomicUsize::new(0),
            mailbox: Mutex::new(Vec::new()),
            posted: AtomicUsize::new(0),
        });
        registry().lock().push(block.clone());
        Owner(block)
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        let mut all = registry().lock();
        all.retain(|block| !Arc::ptr_eq(block, &self.0));
    }
}

thread_local! {
    static OWNER: Owner = Owner::new();
    /// Handles whose release this thread is carrying out (nested releases:
    /// a release function or cleanup may unregister other handles).
    static RELEASING: [Cell<u64>; TRACKED] = const { [const { Cell::new(0) }; TRACKED] };
}

impl Block {
    #[inline]
    fn len(&self) -> usize {
        // Relaxed: only the owner writes `len`, and only the owner calls this.
        self.len.load(Ordering::Relaxed)
    }

    #[inline]
    fn get(&self, i: usize) -> u64 {
        self.entries[i].load(Ordering::Relaxed)
    }

    /// Remove the most recent entry equal to `handle`; owner only.
    #[inline]
    fn remove_local(&self, handle: u64) -> bool {
        let len = self.len();
        let Some(i) = (0..len).rev().find(|&i| self.get(i) == handle) else {
            return false;
        };
        for j in i..len - 1 {
            self.entries[j].store(self.get(j + 1), Ordering::Relaxed);
        }
        self.entries[len - 1].store(0, Ordering::Relaxed);
        self.len.store(len - 1, Ordering::Relaxed);
        true
    }

    /// Apply the notes of accesses ended elsewhere; owner only.
    #[cold]
    fn drain_mailbox(&self) {
        let posted = {
            let mut mailbox = self.mailbox.lock();
            self.posted.store(0, Ordering::Relaxed);
            std::mem::take(&mut *mailbox)
        };
        for handle in posted {
            self.remove_local(handle);
        }
    }

    /// Apply pending notes, if any, before a begin or an end is recorded;
    /// owner only. Applied only later, a note would take the entry of an
    /// access begun after the end it is about (this thread having taken
    /// that entry itself), and a sync unregister inside that access would
    /// wait for itself (found by the model check); and a thread that only
    /// begins accesses would never apply its notes, its mailbox would fill
    /// up with notes about accesses long ended, and the note of an access
    /// begun now and ended elsewhere would be dropped (found by the
    /// fuzzer). So the mailbox holds only the notes posted since this
    /// thread's last begin or end. Relaxed: the post and this thread's
    /// begin or end are ordered by whatever ordered the two ends (the drain
    /// takes the mailbox's lock); a post racing them is the documented
    /// best-effort case either way.
    #[inline]
    fn apply_posted_notes(&self) {
        if self.posted.load(Ordering::Relaxed) != 0 {
            self.drain_mailbox();
        }
    }

    /// Whether another thread may hold `handle` here (read by foreign ends).
    fn holds(&self, handle: u64) -> bool {
        self.entries
            .iter()
            .any(|entry| entry.load(Ordering::Relaxed) == handle)
    }
}

/// Record that this thread began an access of `handle`. `in_flight` tells
/// whether a recorded handle still has accesses in flight (used only when full).
#[inline]
pub(crate) fn push(handle: u64, in_flight: impl Fn(u64) -> bool) {
    // `try_with`: during thread teardown the block may be gone; tracking is
    // best-effort there, the access itself is unaffected.
    let _ = OWNER.try_with(|owner| {
        let block = &owner.0;
        block.apply_posted_notes();
        let mut len = block.len();
        if len == TRACKED {
            len = block.compact(&in_flight);
        }
        block.entries[len].store(handle, Ordering::Relaxed);
        block.len.store(len + 1, Ordering::Relaxed);
    });
}

/// Record that an access of `handle` ended on this thread.
#[inline]
pub(crate) fn remove(handle: u64) {
    let removed = OWNER
        .try_with(|owner| {
            let block = &owner.0;
            block.apply_posted_notes();
            block.remove_local(handle)
        })
        .unwrap_or(true);
    if !removed {
        post_foreign_end(handle);
    }
}

/// An access of `handle` ended on this thread but began elsewhere: tell the
/// thread that holds it.
#[cold]
fn post_foreign_end(handle: u64) {
    let all = registry().lock();
    if let Some(block) = all.iter().find(|block| block.holds(handle)) {
        let mut mailbox = block.mailbox.lock();
        if mailbox.len() < TRACKED {
            mailbox.push(handle);
            block.posted.store(mailbox.len(), Ordering::Relaxed);
        }
    }
}

/// Whether this thread is inside an access of `handle` that it began.
pub(crate) fn contains(handle: u64) -> bool {
    // 0 is never a handle (and never pushed: only live handles are).
    handle != 0
        && OWNER
            .try_with(|owner| {
                owner.0.drain_mailbox();
                (0..owner.0.len()).any(|i| owner.0.get(i) == handle)
            })
            .unwrap_or(false)
}

impl Block {
    /// Drop entries with no access in flight; if none, drop the oldest.
    /// Returns the new length (always < TRACKED). Owner only.
    #[cold]
    fn compact(&self, in_flight: &dyn Fn(u64) -> bool) -> usize {
        self.drain_mailbox();
        let mut kept = 0;
        for i in 0..self.len() {
            let handle = self.get(i);
            if in_flight(handle) {
                self.entries[kept].store(handle, Ordering::Relaxed);
                kept += 1;
            }
        }
        if kept == TRACKED {
            for i in 0..TRACKED - 1 {
                self.entries[i].store(self.get(i + 1), Ordering::Relaxed);
            }
            kept = TRACKED - 1;
        }
        for i in kept..TRACKED {
            self.entries[i].store(0, Ordering::Relaxed);
        }
        self.len.store(kept, Ordering::Relaxed);
        kept
    }
}

/// Mark that this thread carries out the release of `handle` until the
/// returned guard drops. Deeper nesting than [`TRACKED`] is not recorded.
pub(crate) fn releasing(handle: u64) -> ReleasingGuard {
    let recorded = RELEASING
        .try_with(|slots| match slots.iter().find(|slot| slot.get() == 0) {
            Some(slot) => {
                slot.set(handle);
                true
            }
            None => false,
        })
        .unwrap_or(false);
    ReleasingGuard { handle, recorded }
}

/// Whether this thread is carrying out the release of `handle`.
pub(crate) fn is_releasing(handle: u64) -> bool {
    // 0 marks a free mark slot, and is never a handle.
    handle != 0
        && RELEASING
            .try_with(|slots| slots.iter().any(|slot| slot.get() == handle))
            .unwrap_or(false)
}

/// Ends a [`releasing`] mark.
pub(crate) struct ReleasingGuard {
    handle: u64,
    recorded: bool,
}

impl Drop for ReleasingGuard {
    fn drop(&mut self) {
        if self.recorded {
            let _ = RELEASING.try_with(|slots| {
                if let Some(slot) = slots.iter().rev().find(|slot| slot.get() == self.handle) {
                    slot.set(0);
                }
            });
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn nested_accesses_are_tracked_and_removed() {
        push(7, |_| true);
        push(9, |_| true);
        assert!(contains(7) && contains(9));
        remove(9);
        assert!(contains(7) && !contains(9));
        remove(7);
        assert!(!contains(7));
    }

    #[test]
    fn an_end_on_another_thread_clears_the_beginning_threads_entry() {
        let handle = 0xabcd_0001;
        push(handle, |_| true);
        assert!(contains(handle));
        std::thread::spawn(move || remove(handle)).join().unwrap();
        assert!(
            !contains(handle),
            "the foreign end was posted to this thread"
        );
    }

    /// Two accesses begun here, one ended on another thread (a note in the
    /// mailbox), then one ended here that was begun without tracking (an
    /// inline begin): the note and this end account for both entries, so a
    /// new access is tracked. (Applied late, the note took the new access's
    /// entry: found by the model check, tests/model.)
    #[test]
    fn a_note_from_another_thread_is_applied_before_an_end_here() {
        let handle = 0xabcd_0002;
        push(handle, |_| true);
        push(handle, |_| true);
        remove(handle);
        std::thread::spawn(move || remove(handle)).join().unwrap();
        remove(handle); // the access this thread began inline
        push(handle, |_| true); // a new access
        assert!(contains(handle), "the new access is tracked");
        remove(handle);
        assert!(!contains(handle));
    }

    #[test]
    fn a_mailbox_full_of_old_notes_does_not_lose_a_new_one() {
        let (old, new) = (0xabcd_0003, 0xabcd_0004);
        // An access of `old` begun here, and as many ends of it elsewhere
        // as the mailbox holds: this thread applies none of those notes.
        push(old, |_| true);
        for _ in 0..TRACKED {
            std::thread::spawn(move || remove(old)).join().unwrap();
        }
        // An access begun here and ended elsewhere: its note must arrive.
        push(new, |_| true);
        std::thread::spawn(move || remove(new)).join().unwrap();
        assert!(
            !contains(new),
            "an access ended elsewhere is still tracked here"
        );
        assert!(!contains(old));
    }

    #[test]
    fn a_full_block_drops_entries_without_accesses_first() {
        for h in 1..=TRACKED as u64 {
            push(0x1000 + h, |_| true);
        }
        // Only 0x1001 still has an access in flight.
        push(0x2000, |h| h == 0x1001);
        assert!(contains(0x1001) && contains(0x2000));
        assert!(!contains(0x1002));
        remove(0x2000);
        remove(0x1001);
    }

    #[test]
    fn releasing_marks_nest_and_clear() {
        let a = releasing(5);
        {
            let _b = releasing(6);
            assert!(is_releasing(5) && is_releasing(6));
        }
        assert!(is_releasing(5) && !is_releasing(6));
        drop(a);
        assert!(!is_releasing(5));
    }
}
