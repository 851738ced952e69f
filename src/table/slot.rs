//! One slot of the handle table and the protocol of its state word.
//!
//! # The state word
//!
//! Every slot has one `AtomicU64`, the *state word*, that alone decides what a
//! handle may do. It packs three fields:
//!
//! ```text
//!  63                              32 31   29 28                         0
//! +----------------------------------+-------+----------------------------+
//! |            generation            | phase |           count            |
//! +----------------------------------+-------+----------------------------+
//! ```
//!
//! * `generation` — which registration the slot holds (or last held). A handle
//!   carries the generation it was issued with; a handle whose generation is not
//!   the slot's is stale (lower) or was never issued (higher).
//! * `phase` — one of [`Phase`]:
//!
//! ```text
//!            register              unregister (count > 0)
//!   Free ───────────────▶ Live ─────────────────────────▶ Draining(count)
//!    ▲                     │  ╲ invalidate                      │ last access ends
//!    │                     │   ╲                                ▼ (count 1 → 0)
//!    │                     │    ▶ Invalidated ──unregister──▶ Draining(0) = releasing
//!    │                     │                                    │ release done
//!    │                     └──────unregister (count == 0)──────▶│
//!    │           sweep (retention over)                         ▼
//!    └──────────────────────────────────────────────────── Retained
//! ```
//!
//! * `count` — accesses in flight. It is only ever incremented in `Live`
//!   (a new access), so once a slot leaves `Live` the count can only fall.
//!
//! # Transitions and why each is correct
//!
//! * **Access begin** (`Live(g, c)` → `Live(g, c + 1)`): a compare-exchange
//!   whose first expected value is the guess `Live(g, 0)` (no load first, so
//!   an uncontended access is a single RMW); a failed exchange returns the
//!   actual word, which is checked (generation, phase, count limit) and
//!   retried. It only loops on a wrong guess or real contention, never to wait. *Acquire* on success: it synchronizes with the *Release*
//!   that published the registration, so the object pointer and the object it
//!   points to are visible; every later read-modify-write on the word continues
//!   that release sequence, so an access that starts long after registration
//!   still synchronizes with it.
//! * **Access end** (`c` → `c − 1`): a compare-exchange whose first guess is
//!   `Live(g, 1)` (one RMW when uncontended, like a `fetch_sub`) and which
//!   refuses a zero count or another generation. A plain `fetch_sub` would be
//!   enough for a correct caller, but the ABI cannot tell a caller's
//!   unmatched `gcs_access_end` (on another thread) from a real end: such a
//!   call may take the count of an access in flight, and that access's own
//!   end must then do nothing rather than wrap the count into the phase and
//!   generation bits. *AcqRel*: Release so
//!   that this access's use of the object happens-before the release that some
//!   other thread may perform; Acquire so that, if *this* thread ends the last
//!   access of a draining slot and so performs the release, it sees every other
//!   accessor's uses (Arc's `drop` uses Release + an Acquire fence for the same
//!   reason; on x86 both compile to one locked instruction). The C-level
//!   `gcs_access_end`, which may be handed anything, validates the handle
//!   with a compare-exchange of the same orderings.
//! * **Unregister** (`Live|Invalidated(g, c)` → `Draining(g, c)`): a
//!   compare-exchange (*AcqRel*). If `c == 0` the unregistering thread has
//!   claimed the release; otherwise the thread whose `fetch_sub` takes a
//!   `Draining` count from 1 to 0 has. Exactly one thread observes
//!   `Draining(g, 0)` being created, because the count never rises again after
//!   `Live`: release happens exactly once.
//! * **Invalidate** (`Live(g, c)` → `Invalidated(g, c)`): a compare-exchange
//!   (*Release*, nothing to acquire). Accesses in flight continue.
//! * **Release done** (`Draining(g, 0)` → `Retained(g, 0)`): a plain *Release*
//!   store by the claimer, the only thread allowed to write the word in that
//!   state. `gcs_unregister_sync` waits for it with an *Acquire* load, so
//!   everything the release did happens-before the waiter returns.
//! * **Sweep** (`Retained(g, 0)` → `Free(g, 0)`): a compare-exchange under the
//!   slot's detail lock, so a reader of the details (stale-handle messages,
//!   `gcs_get_info`) never sees them disappear under it. The slot then goes on
//!   the free list — unless `g` is the table's last generation, in which case
//!   the slot is *retired* for good, so a handle value is never issued twice.
//! * **Register** (`Free(g)` → `Live(g + 1, 0)`): the registering thread owns
//!   the slot exclusively (it popped it off the free list); it writes the
//!   object pointer and details, then *Release*-stores the word.
//!
//! A stale handle that reads a word of another generation never changes it:
//! every write is a compare-exchange that checks the generation, or is made
//! by a thread that provably holds a count or the release claim.
//!
//! # Cache lines
//!
//! A slot is 128-byte aligned: the word and object pointer are in its first
//! line, the slow-path details in the second, and no two slots share a line
//! (x86's adjacent-line prefetcher pairs 64-byte lines, hence 128, as in
//! crossbeam's `CachePadded`). An access of one handle therefore writes no
//! line that an access of another handle reads.

use core::ffi::c_void;
use core::ptr;

use crate::sync::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Mutex, MutexGuard, Ordering};

/// What a slot is doing; see the module documentation for the transitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Phase {
    /// On the free list (or retired); holds nothing.
    Free = 0,
    /// Registered; accesses are allowed.
    Live = 1,
    /// Registered but refusing accesses (`gcs_invalidate`, a failed access).
    Invalidated = 2,
    /// Unregistered: waiting for `count` accesses to end; with count 0, the
    /// claimer is releasing the object.
    Draining = 3,
    /// Released; only the details are kept, for stale-handle reports.
    Retained = 4,
}

const COUNT_BITS: u32 = 29;
const PHASE_SHIFT: u32 = COUNT_BITS;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
const PHASE_MASK: u64 = 0b111 << PHASE_SHIFT;
const GEN_SHIFT: u32 = 32;

/// The largest number of accesses that may be in flight on one handle.
pub(crate) const MAX_ACCESSES: u32 = COUNT_MASK as u32;

/// A decoded copy of a state word.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Word(pub(crate) u64);

impl Word {
    #[inline]
    pub(crate) const fn new(generation: u32, phase: Phase, count: u32) -> Self {
        Word(((generation as u64) << GEN_SHIFT) | ((phase as u64) << PHASE_SHIFT) | count as u64)
    }
    #[inline]
    pub(crate) const fn generation(self) -> u32 {
        (self.0 >> GEN_SHIFT) as u32
    }
    #[inline]
    pub(crate) fn phase(self) -> Phase {
        match (self.0 & PHASE_MASK) >> PHASE_SHIFT {
            0 => Phase::Free,
            1 => Phase::Live,
            2 => Phase::Invalidated,
            3 => Phase::Draining,
            _ => Phase::Retained,
        }
    }
    #[inline]
    pub(crate) const fn count(self) -> u32 {
        (self.0 & COUNT_MASK) as u32
    }
    /// The word that is `Live` for `generation` with no access in flight.
    #[inline]
    pub(crate) const fn is_live(self, generation: u32) -> bool {
        // Generation and phase compared in one go: mask off the count.
        (self.0 & !COUNT_MASK) == Word::new(generation, Phase::Live, 0).0
    }
    #[inline]
    pub(crate) const fn with_phase(self, phase: Phase) -> Self {
        Word((self.0 & !PHASE_MASK) | ((phase as u64) << PHASE_SHIFT))
    }
}

impl core::fmt::Debug for Word {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{:?}(gen {}, count {})",
            self.phase(),
            self.generation(),
            self.count()
        )
    }
}

/// Details kept with a registration for diagnostics and for the release.
/// Read and written only under the slot's detail lock, never on the access path.
#[derive(Debug)]
pub(crate) struct Details<P> {
    /// What to release; `None` once released (or while free).
    pub(crate) payload: Option<P>,
    /// Type name for messages and statistics.
    pub(crate) type_name: crate::names::Name,
    /// Instance name, if the registration gave one.
    pub(crate) instance_name: Option<Box<core::ffi::CStr>>,
    /// Kind code of the registration (opaque to the table).
    pub(crate) kind: u32,
    /// Caller-declared size, for accounting.
    pub(crate) size_bytes: u64,
    /// `clock::now_ms()` at registration.
    pub(crate) registered_at_ms: u64,
    /// `clock::now_ms()` at release (0 while not released).
    pub(crate) released_at_ms: u64,
    /// How long the details stay after release.
    pub(crate) retention_ms: u64,
}

impl<P> Details<P> {
    pub(crate) const fn empty() -> Self {
        Details {
            payload: None,
            type_name: crate::names::Name::Static(c""),
            instance_name: None,
            kind: 0,
            size_bytes: 0,
            registered_at_ms: 0,
            released_at_ms: 0,
            retention_ms: 0,
        }
    }
}

/// One entry of the table. See the module documentation.
#[repr(C, align(128))]
pub(crate) struct Slot<P> {
    /// The state word.
    pub(crate) state: AtomicU64,
    /// The object handed to accessors (null for payloads that are upgraded
    /// per access, such as weak references). Written by the registering
    /// thread before the `Live` word is published, cleared by the releaser.
    pub(crate) object: AtomicPtr<c_void>,
    /// An opaque pointer handed to accessors for accounting (the owner's
    /// per-type counters); same lifetime rules as `object`.
    pub(crate) accounting: AtomicPtr<c_void>,
    /// Whether accesses must upgrade `object` through the payload (a weakly
    /// held object) rather than use it directly; same lifetime rules.
    pub(crate) upgrade: AtomicBool,
    /// Free-list link: index + 1 of the next free slot, 0 for none.
    pub(crate) next_free: AtomicU32,
    /// Slow-path details, on the slot's second cache line.
    details: Mutex<Details<P>>,
}

impl<P> Slot<P> {
    pub(crate) fn new() -> Self {
        Slot {
            state: AtomicU64::new(Word::new(0, Phase::Free, 0).0),
            object: AtomicPtr::new(ptr::null_mut()),
            accounting: AtomicPtr::new(ptr::null_mut()),
            upgrade: AtomicBool::new(false),
            next_free: AtomicU32::new(0),
            details: Mutex::new(Details::empty()),
        }
    }

    #[inline]
    pub(crate) fn load(&self, order: Ordering) -> Word {
        Word(self.state.load(order))
    }

    /// The detail lock itself (fork support).
    #[cfg(not(loom))]
    pub(crate) fn details_lock(&self) -> &Mutex<Details<P>> {
        &self.details
    }

    /// Lock the details. Never on the access path; never while user code runs.
    pub(crate) fn details(&self) -> MutexGuard<'_, Details<P>> {
        self.details.lock()
    }
}
