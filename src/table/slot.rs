//! One slot of the handle table and the protocol of its state word: the
//! states, every transition, and why each memory ordering is enough.
//!
//! This protocol has three implementations that must agree word for word:
//! the Rust one below, the C one in `include/gcsafety_inline.h` (the
//! header-inline `gcs_*_inline` functions) and the Go one in
//! `bindings/go/table.go`. The C and Go code do exactly what
//! [`Slot::begin_inline`] and [`Slot::end_inline`] do, and hand every case
//! those two refuse to the exported functions; the loom models in
//! `src/table/loom.rs` run them against the exported paths.
//!
//! # The state word
//!
//! Every slot has one `AtomicU64`, the *state word*, that alone decides what a
//! handle may do. It packs four fields:
//!
//! ```text
//!  63                              32 31  29 28 27                        0
//! +----------------------------------+------+--+---------------------------+
//! |            generation            |phase |S |           count           |
//! +----------------------------------+------+--+---------------------------+
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
//! * `S` — the *slow-path* bit, fixed for a registration: its accesses must go
//!   through the library (a weak registration, which upgrades a `GWeakRef`
//!   for each access; or a manager that must see every access). Inline code
//!   never begins or ends an access of a word with `S` set.
//! * `count` — accesses in flight. It is only ever incremented in `Live`
//!   (a new access), so once a slot leaves `Live` the count can only fall.
//!
//! # The hot part and the cold part
//!
//! An access touches only the [`Slot`]: 32 bytes, two to a cache line,
//! holding the state word, the object pointer, the accounting pointer and
//! one auxiliary word. Everything else — names, payload, cleanups, times, the
//! free-list link — is in the slot's [`Cold`] twin, in a parallel page that
//! an access never reads. A thread's registrations are placed together (the
//! table hands each thread free slots in blocks of [`BLOCK`], two cache
//! lines, and two registrations in a row on different lines), so two
//! threads that each access their own handles do not write the same line.
//!
//! # Transitions and why each is correct
//!
//! * **Access begin** (`Live(g, c)` → `Live(g, c + 1)`): a compare-exchange
//!   whose first expected value is the guess `Live(g, 0)` (no load first, so
//!   an uncontended access is a single RMW); a failed exchange returns the
//!   actual word, which is checked (generation, phase, `S`, count limit) and
//!   retried. It only loops on a wrong guess or real contention, never to
//!   wait. *Acquire* on success: it synchronizes with the *Release* that
//!   published the registration, so the object pointer and the object it
//!   points to are visible; every later read-modify-write on the word
//!   continues that release sequence, so an access that starts long after
//!   registration still synchronizes with it.
//! * **Access end** (`c` → `c − 1`): a compare-exchange whose first guess is
//!   `Live(g, 1)` (one RMW when uncontended, like a `fetch_sub`) and which
//!   refuses a zero count or another generation. A plain `fetch_sub` would be
//!   enough for a correct caller, but the ABI cannot tell a caller's
//!   unmatched `gcs_access_end` (on another thread) from a real end: such a
//!   call may take the count of an access in flight, and that access's own
//!   end must then do nothing rather than wrap the count into the phase and
//!   generation bits. *AcqRel*: Release so that this access's use of the
//!   object happens-before the release that some other thread may perform;
//!   Acquire so that, if *this* thread ends the last access of a draining
//!   slot and so performs the release, it sees every other accessor's uses
//!   (Arc's `drop` uses Release + an Acquire fence for the same reason; on
//!   x86 both compile to one locked instruction).
//! * **Inline begin** ([`Slot::begin_inline`], the C and Go fast path): the
//!   access begin above, restricted to words with `S` clear; any other word
//!   (another generation, not `Live`, `S` set, count at its limit) is handed
//!   to the exported `gcs_access_begin` untouched, which re-reads it.
//! * **Inline end** ([`Slot::end_inline`]): the access end above, restricted
//!   to ends that cannot claim a release and need no upgrade to be undone:
//!   `S` clear, generation equal, and either `Live`/`Invalidated` with
//!   `count ≥ 1` or `Draining` with `count ≥ 2`. The last end of a draining
//!   slot (which must run the release) and everything else goes to the
//!   exported `gcs_access_end`, which revalidates. Because both ends are the
//!   same compare-exchange on the same word, an access begun inline may be
//!   ended by the library and the reverse.
//! * **Unregister** (`Live|Invalidated(g, c)` → `Draining(g, c)`): a
//!   compare-exchange (*AcqRel*). If `c == 0` the unregistering thread has
//!   claimed the release; otherwise the thread whose end takes a `Draining`
//!   count from 1 to 0 has. Exactly one thread observes `Draining(g, 0)`
//!   being created, because the count never rises again after `Live`:
//!   release happens exactly once.
//! * **Invalidate** (`Live(g, c)` → `Invalidated(g, c)`): a compare-exchange
//!   (*Release*, nothing to acquire). Accesses in flight continue.
//! * **Release done** (`Draining(g, 0)` → `Retained(g, 0)`): a plain *Release*
//!   store by the claimer, the only thread allowed to write the word in that
//!   state. `gcs_unregister_sync` waits for it with an *Acquire* load, so
//!   everything the release did happens-before the waiter returns.
//! * **Sweep** (`Retained(g, 0)` → `Free(g, 0)`): a compare-exchange under the
//!   slot's detail lock, so a reader of the details (stale-handle messages,
//!   `gcs_get_info`) never sees them disappear under it. The slot is then
//!   free again — unless `g` is the table's last generation, in which case
//!   the slot is *retired* for good, so a handle value is never issued twice.
//! * **Register** (`Free(g)` → `Live(g + 1, 0)`): the registering thread owns
//!   the slot exclusively (it took it off a free list); it writes the object
//!   pointer and details, then *Release*-stores the word.
//!
//! A stale handle that reads a word of another generation never changes it:
//! every write is a compare-exchange that checks the generation, or is made
//! by a thread that provably holds a count or the release claim.

use core::ffi::c_void;
use core::ptr;

use crate::sync::{AtomicPtr, AtomicU32, AtomicU64, Mutex, MutexGuard, Ordering};

/// What a slot is doing; see the module documentation for the transitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Phase {
    /// On a free list (or retired); holds nothing.
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

pub(crate) const COUNT_BITS: u32 = 28;
pub(crate) const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
/// The slow-path bit (`S` in the module documentation).
pub(crate) const SLOW_BIT: u64 = 1 << COUNT_BITS;
pub(crate) const PHASE_SHIFT: u32 = COUNT_BITS + 1;
const PHASE_MASK: u64 = 0b111 << PHASE_SHIFT;
pub(crate) const GEN_SHIFT: u32 = 32;

/// The largest number of accesses that may be in flight on one handle.
pub(crate) const MAX_ACCESSES: u32 = COUNT_MASK as u32;

/// Slots a thread takes at once (one 128-byte pair of cache lines of [`Slot`]s):
/// see "The hot part and the cold part" in the module documentation. The
/// table hands a block's slots out in the order 0, 2, 1, 3 (`create_slots`).
pub(crate) const BLOCK: u32 = 4;

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
    /// Whether accesses must go through the library (the `S` bit).
    #[inline]
    pub(crate) const fn slow(self) -> bool {
        self.0 & SLOW_BIT != 0
    }
    #[inline]
    pub(crate) const fn with_slow(self, slow: bool) -> Self {
        if slow {
            Word(self.0 | SLOW_BIT)
        } else {
            Word(self.0 & !SLOW_BIT)
        }
    }
    /// Whether the word is `Live` for `generation` (any `S`, any count).
    #[inline]
    pub(crate) const fn is_live(self, generation: u32) -> bool {
        // Generation and phase compared in one go: mask off count and `S`.
        (self.0 & !(COUNT_MASK | SLOW_BIT)) == Word::new(generation, Phase::Live, 0).0
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
            "{:?}{}(gen {}, count {})",
            self.phase(),
            if self.slow() { "+S" } else { "" },
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

/// What a registration publishes in its hot [`Slot`] for accesses.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Published {
    /// The pointer accesses see: the object, or for a weak registration
    /// (`slow`) the `GWeakRef *` to upgrade.
    pub(crate) object: *mut c_void,
    /// An opaque pointer handed to accessors for accounting (the owner's
    /// per-type counters).
    pub(crate) accounting: *mut c_void,
    /// A second pointer for slow-path accesses (a weak registration's
    /// object address, which ends of upgraded accesses unref).
    pub(crate) aux: *mut c_void,
    /// Whether accesses must go through the library (the `S` bit).
    pub(crate) slow: bool,
}

impl Published {
    /// A registration with nothing but an object (tests and models).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn object(object: *mut c_void) -> Self {
        Published {
            object,
            accounting: ptr::null_mut(),
            aux: ptr::null_mut(),
            slow: false,
        }
    }
}

/// The hot part of one table entry: what an access reads and writes. Its
/// layout is published to C and Go through `gcs_table_view` (offsets of
/// `state` and `object`, and the stride): changing it is a new
/// `GCS_TABLE_LAYOUT_VERSION`.
#[repr(C, align(32))]
pub(crate) struct Slot {
    /// The state word.
    pub(crate) state: AtomicU64,
    /// See [`Published::object`]. Written by the registering thread before the
    /// `Live` word is published, cleared by the releaser; stable while a
    /// count of its generation is held.
    pub(crate) object: AtomicPtr<c_void>,
    /// See [`Published::accounting`]; same lifetime rules as `object`.
    pub(crate) accounting: AtomicPtr<c_void>,
    /// See [`Published::aux`]; same lifetime rules as `object`.
    pub(crate) aux: AtomicPtr<c_void>,
}

// Two slots to a 64-byte line, and the layout `gcs_table_view` publishes
// (loom's atomics are its own, of another size).
#[cfg(not(loom))]
const _: () = assert!(core::mem::size_of::<Slot>() == 32);

/// What an inline access must leave to the exported functions.
#[cfg_attr(not(test), allow(dead_code))] // the Rust model of the C and Go code
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NotInline;

impl Slot {
    pub(crate) fn new() -> Self {
        Slot {
            state: AtomicU64::new(Word::new(0, Phase::Free, 0).0),
            object: AtomicPtr::new(ptr::null_mut()),
            accounting: AtomicPtr::new(ptr::null_mut()),
            aux: AtomicPtr::new(ptr::null_mut()),
        }
    }

    #[inline]
    pub(crate) fn load(&self, order: Ordering) -> Word {
        Word(self.state.load(order))
    }

    /// Access begin: `Live(g, c)` → `Live(g, c + 1)`, any `S`. On refusal,
    /// the word that refused.
    #[inline]
    pub(crate) fn begin(&self, generation: u32) -> Result<Word, Word> {
        // No load first: guess "live, no access in flight", the common case,
        // so an uncontended access is one CAS (a load would first pull the
        // line in shared state, then the CAS upgrade it: two transitions when
        // another core had it). A wrong guess costs one failed CAS, which
        // returns the actual word to check and retry with.
        let mut word = Word::new(generation, Phase::Live, 0);
        loop {
            if !word.is_live(generation) || word.count() == MAX_ACCESSES {
                return Err(word);
            }
            // Acquire on success: see the registration's writes (module doc).
            // Relaxed on failure: we only retry.
            match self.state.compare_exchange_weak(
                word.0,
                word.0 + 1,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(word),
                Err(actual) => word = Word(actual),
            }
        }
    }

    /// Access end of generation `generation`: `c` → `c − 1` in `Live`,
    /// `Invalidated` or `Draining`, refusing a zero count. Returns the word
    /// before the decrement (`Draining` with count 1: the caller claimed the
    /// release), or the word that refused.
    #[inline]
    pub(crate) fn end(&self, generation: u32) -> Result<Word, Word> {
        // Guess the uncontended word (live, ours the only access): one RMW,
        // no load first, as in `begin`.
        let mut word = Word::new(generation, Phase::Live, 1);
        loop {
            let accessible = matches!(
                word.phase(),
                Phase::Live | Phase::Invalidated | Phase::Draining
            );
            if word.generation() != generation || !accessible || word.count() == 0 {
                return Err(word);
            }
            // AcqRel: see the module doc.
            match self.state.compare_exchange_weak(
                word.0,
                word.0 - 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(word),
                Err(actual) => word = Word(actual),
            }
        }
    }

    /// The inline begin, as the C header and the Go binding perform it: the
    /// [`begin`](Self::begin) transition for words with `S` clear, else
    /// nothing (the caller then calls the exported function). On success, the
    /// object pointer.
    #[cfg_attr(not(test), allow(dead_code))] // the Rust model of the C and Go code
    #[inline]
    pub(crate) fn begin_inline(&self, generation: u32) -> Result<*mut c_void, NotInline> {
        let live = Word::new(generation, Phase::Live, 0).0;
        let mut expected = live;
        loop {
            // Generation, phase and `S` in one compare; the count below its limit.
            if expected & !COUNT_MASK != live || expected & COUNT_MASK == COUNT_MASK {
                return Err(NotInline);
            }
            match self.state.compare_exchange_weak(
                expected,
                expected + 1,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                // Relaxed: ordered by the Acquire above; stable while counted.
                Ok(_) => return Ok(self.object.load(Ordering::Relaxed)),
                Err(actual) => expected = actual,
            }
        }
    }

    /// The inline end, as the C header and the Go binding perform it: the
    /// [`end`](Self::end) transition where it cannot claim a release (see
    /// the module doc), else nothing (the caller calls `gcs_access_end`).
    #[cfg_attr(not(test), allow(dead_code))] // the Rust model of the C and Go code
    #[inline]
    pub(crate) fn end_inline(&self, generation: u32) -> Result<(), NotInline> {
        let mut expected = Word::new(generation, Phase::Live, 1).0;
        loop {
            let word = Word(expected);
            let fast = word.generation() == generation
                && !word.slow()
                && match word.phase() {
                    Phase::Live | Phase::Invalidated => word.count() >= 1,
                    Phase::Draining => word.count() >= 2,
                    Phase::Free | Phase::Retained => false,
                };
            if !fast {
                return Err(NotInline);
            }
            match self.state.compare_exchange_weak(
                expected,
                expected - 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(actual) => expected = actual,
            }
        }
    }

    /// Unregister: `Live|Invalidated(g, c)` → `Draining(g, c)`. Returns the
    /// word before (count 0: the caller claimed the release), or the word
    /// that refused.
    pub(crate) fn unregister(&self, generation: u32) -> Result<Word, Word> {
        let mut word = self.load(Ordering::Relaxed);
        loop {
            let registered = matches!(word.phase(), Phase::Live | Phase::Invalidated);
            if word.generation() != generation || !registered {
                return Err(word);
            }
            // AcqRel: Acquire so that a claimer (count 0) sees all accessors'
            // Release decrements; Release so that a later claimer (the last
            // accessor) sees what this thread did before unregistering.
            match self.state.compare_exchange_weak(
                word.0,
                word.with_phase(Phase::Draining).0,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(word),
                Err(actual) => word = Word(actual),
            }
        }
    }

    /// Invalidate: `Live(g, c)` → `Invalidated(g, c)`, or the word that refused.
    pub(crate) fn invalidate(&self, generation: u32) -> Result<(), Word> {
        let mut word = self.load(Ordering::Relaxed);
        loop {
            if word.generation() != generation || word.phase() != Phase::Live {
                return Err(word);
            }
            // Release: nothing to acquire; orders earlier writes before the refusal.
            match self.state.compare_exchange_weak(
                word.0,
                word.with_phase(Phase::Invalidated).0,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(actual) => word = Word(actual),
            }
        }
    }

    /// Release done: `Draining(g, 0)` → `Retained(g, 0)` (claimer only).
    pub(crate) fn complete_release(&self, generation: u32) {
        // Relaxed: the claim already ordered us after every accessor.
        self.object.store(ptr::null_mut(), Ordering::Relaxed);
        self.aux.store(ptr::null_mut(), Ordering::Relaxed);
        // Release: everything the release did happens-before an Acquire load
        // that sees Retained (`gcs_unregister_sync`).
        self.state.store(
            Word::new(generation, Phase::Retained, 0).0,
            Ordering::Release,
        );
    }

    /// Sweep: `Retained(g, 0)` → `Free(g, 0)`; the caller holds the slot's
    /// detail lock. Whether the slot held that retained generation.
    pub(crate) fn sweep(&self, generation: u32) -> bool {
        // Relaxed: the detail lock orders the details; the free-list push
        // publishes the slot to its next owner.
        self.state
            .compare_exchange(
                Word::new(generation, Phase::Retained, 0).0,
                Word::new(generation, Phase::Free, 0).0,
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// Register (the owner of a `Free` slot): publish `published` as
    /// `Live(generation, 0)`.
    pub(crate) fn publish(&self, generation: u32, published: Published) {
        // Relaxed: the Release store below publishes them.
        self.object.store(published.object, Ordering::Relaxed);
        self.accounting
            .store(published.accounting, Ordering::Relaxed);
        self.aux.store(published.aux, Ordering::Relaxed);
        // Release: publishes the pointers and details to accessors.
        self.state.store(
            Word::new(generation, Phase::Live, 0)
                .with_slow(published.slow)
                .0,
            Ordering::Release,
        );
    }
}

/// The cold part of one table entry, in a page parallel to the slot's:
/// never read by an access.
pub(crate) struct Cold<P> {
    /// Free-list link: index + 1 of the next free slot, 0 for none.
    pub(crate) next_free: AtomicU32,
    /// Slow-path details.
    details: Mutex<Details<P>>,
}

impl<P> Cold<P> {
    pub(crate) fn new() -> Self {
        Cold {
            next_free: AtomicU32::new(0),
            details: Mutex::new(Details::empty()),
        }
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
