//! The handle table: slots addressed by handles, growing in pages.
//!
//! * A **handle** is `((generation << 32) | index) ^ salt`. The salt is a random
//!   64-bit value drawn once per table (so once per load of the library): a
//!   handle kept across `dlclose`/`dlopen` decodes to a random index and
//!   generation of the new table, and a freshly issued handle is
//!   indistinguishable from noise. `0` is never issued.
//! * **Decoding never dereferences the value**: the index selects a page and
//!   offset by arithmetic; an unallocated page or a generation mismatch is
//!   answered from the table's own memory. Any 64-bit value is safe.
//! * **Pages** double in size (`first_page_len << page`), as in sharded-slab's
//!   `page` module; they are allocated fallibly under the growth lock, published
//!   with *Release* and read with *Acquire*, and never move or shrink while the
//!   table lives, so a slot reference stays valid for the table's life.
//! * **Free slots** sit on a Treiber stack whose head packs a 32-bit tag with
//!   the slot index (the tag defeats ABA). A slot whose generation reached
//!   `max_generation` is retired instead of freed, so a handle value is never
//!   issued twice.
//! * **Released slots** keep their details (type and instance name, times) in
//!   `Retained` until their retention expires or [`Limits::max_retained`] newer
//!   releases push them out (FIFO), then are swept onto the free list.
//!
//! The slot protocol itself is in [`slot`].

pub(crate) mod slot;

use core::ffi::c_void;
use std::collections::VecDeque;

use crate::clock;
use crate::sync::{AtomicPtr, AtomicU64, Mutex, Ordering};
pub(crate) use slot::{Details, MAX_ACCESSES, Phase, Slot, Word};

/// Size limits of a table.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// log2 of the number of slots in the first page.
    pub(crate) first_page_log2: u32,
    /// Slots the table may ever create.
    pub(crate) max_slots: u32,
    /// The last generation a slot may be issued with; then it is retired.
    pub(crate) max_generation: u32,
    /// Released states kept for stale-handle reports, at most.
    pub(crate) max_retained: usize,
}

/// How many released states are kept at most, whatever their retention.
pub const MAX_RETAINED_STATES: usize = 65_536;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            first_page_log2: 6,
            max_slots: 1 << 24,
            max_generation: u32::MAX,
            max_retained: MAX_RETAINED_STATES,
        }
    }
}

const MAX_PAGES: usize = 32;

/// What a slot-level operation found wrong with a handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Never issued by this table (or 0, or forged).
    InvalidHandle,
    /// Issued once, since unregistered; `Releasing` says the release is not done yet.
    Released,
    /// Unregistered, release pending (accesses still in flight or release running).
    Releasing,
    /// Invalidated but still registered.
    Invalidated,
    /// [`MAX_ACCESSES`] accesses already in flight.
    TooManyAccesses,
    /// No access in flight to end.
    NotAccessing,
    /// The table cannot grow.
    Full,
}

/// The caller now owns the release of a slot: the slot is `Draining(g, 0)`.
/// [`Table::take_payload`] gives what to release; dropping the claim marks the
/// release done (`Retained`), even when unwinding.
#[must_use = "a claimed release must be carried out"]
pub(crate) struct Claim<'t, P> {
    table: &'t Table<P>,
    index: u32,
    generation: u32,
    /// `(released_at_ms, retention_ms)`, noted when the claimer reads the
    /// details, so completing the release needs no second look at them.
    retention: core::cell::Cell<Option<(u64, u64)>>,
}

impl<P> Claim<'_, P> {
    /// The handle whose release is claimed.
    pub(crate) fn handle(&self) -> u64 {
        self.table.encode(self.index, self.generation)
    }
}

impl<P> Drop for Claim<'_, P> {
    fn drop(&mut self) {
        self.table
            .complete_release(self.index, self.generation, self.retention.get());
    }
}

/// What `end_by_handle` returns: the ended access's stored object and upgrade
/// flag, and the release claim if it was the last access of a draining slot.
pub(crate) type Ended<'t, P> = ((*mut c_void, bool), Option<Claim<'t, P>>);

/// An access that began on a slot; end it with [`Table::end`].
pub(crate) struct Access<'t, P> {
    pub(crate) slot: &'t Slot<P>,
    pub(crate) index: u32,
    pub(crate) generation: u32,
    pub(crate) object: *mut c_void,
    /// The registration's accounting pointer (see [`Table::insert_accounted`]).
    pub(crate) accounting: *mut c_void,
    /// Whether `object` must be upgraded for the access (a weak registration).
    pub(crate) upgrade: bool,
}

/// The handle table. `P` is what a registration holds (see `crate::object`).
pub(crate) struct Table<P> {
    salt: u64,
    limits: Limits,
    first_page_len: u64,
    pages: [AtomicPtr<Slot<P>>; MAX_PAGES],
    /// Treiber stack head: `(tag << 32) | (index + 1)`, 0 index part = empty.
    free_head: AtomicU64,
    /// Slots ever created; guarded by the lock (the growth slow path).
    created: Mutex<u32>,
    /// Released slots in release order: (index, generation, expiry in
    /// `clock::now_ms()` time).
    retained: Mutex<VecDeque<(u32, u32, u64)>>,
}

// SAFETY: the raw page pointers are owned by the table and only ever read
// through shared references to `Slot`s, whose fields are atomics and a mutex;
// the payloads inside are only touched under that mutex, so `P: Send` suffices.
unsafe impl<P: Send> Send for Table<P> {}
// SAFETY: as above.
unsafe impl<P: Send> Sync for Table<P> {}

impl<P> Table<P> {
    pub(crate) fn new(limits: Limits, salt: u64) -> Self {
        assert!(limits.first_page_log2 < 16 && limits.max_generation >= 1);
        Table {
            salt,
            limits,
            first_page_len: 1 << limits.first_page_log2,
            pages: core::array::from_fn(|_| AtomicPtr::new(core::ptr::null_mut())),
            free_head: AtomicU64::new(0),
            created: Mutex::new(0),
            retained: Mutex::new(VecDeque::new()),
        }
    }

    /// The handle of generation `generation` of slot `index`.
    #[inline]
    pub(crate) fn encode(&self, index: u32, generation: u32) -> u64 {
        (((generation as u64) << 32) | index as u64) ^ self.salt
    }

    /// `(index, generation)` of a handle value; any value decodes.
    #[inline]
    pub(crate) fn decode(&self, handle: u64) -> (u32, u32) {
        let raw = handle ^ self.salt;
        (raw as u32, (raw >> 32) as u32)
    }

    /// Page and offset of a slot index (`index + first_page_len` has its top
    /// bit at `page + first_page_log2`).
    #[inline]
    fn locate(&self, index: u32) -> (usize, usize) {
        let biased = index as u64 + self.first_page_len;
        let page = (63 - biased.leading_zeros() - self.limits.first_page_log2) as usize;
        let offset = (biased - (self.first_page_len << page)) as usize;
        (page, offset)
    }

    /// The slot at `index`, if its page exists. Never dereferences anything
    /// derived from a caller's value before this bounds check.
    #[inline]
    pub(crate) fn slot(&self, index: u32) -> Option<&Slot<P>> {
        let (page, offset) = self.locate(index);
        // Acquire: pairs with the Release that published the page, so its
        // slots' initialisation is visible.
        let base = self.pages.get(page)?.load(Ordering::Acquire);
        if base.is_null() {
            return None;
        }
        // SAFETY: a published page `page` holds `first_page_len << page`
        // initialised slots, `offset` is below that by construction of
        // `locate`, and pages are never freed while `self` lives.
        Some(unsafe { &*base.add(offset) })
    }

    /// The slot a handle names and the generation it claims.
    #[inline]
    pub(crate) fn locate_handle(&self, handle: u64) -> Option<(&Slot<P>, u32, u32)> {
        let (index, generation) = self.decode(handle);
        if generation == 0 {
            return None;
        }
        self.slot(index).map(|slot| (slot, index, generation))
    }

    /// Why `word` does not let a handle of `generation` do what it wanted.
    fn refusal(word: Word, generation: u32) -> Refusal {
        if generation > word.generation() {
            return Refusal::InvalidHandle;
        }
        if generation < word.generation() {
            return Refusal::Released;
        }
        match word.phase() {
            Phase::Live => Refusal::TooManyAccesses,
            Phase::Invalidated => Refusal::Invalidated,
            Phase::Draining => Refusal::Releasing,
            Phase::Retained | Phase::Free => Refusal::Released,
        }
    }

    // ----- registration ---------------------------------------------------

    /// Register: reserve a free slot, fill it with what `make` returns (called
    /// only once a slot is secured, so a full table takes no reference), publish
    /// it `Live`, and return the new handle.
    #[cfg_attr(not(test), allow(dead_code))] // the unit tests and loom models use it
    pub(crate) fn insert(
        &self,
        make: impl FnOnce() -> (*mut c_void, Details<P>),
    ) -> Result<u64, Refusal> {
        self.insert_accounted(|| {
            let (object, details) = make();
            (object, core::ptr::null_mut(), false, details)
        })
    }

    /// [`insert`](Self::insert) with an accounting pointer, which every
    /// access of the registration is handed (valid as long as `object`), and
    /// whether accesses must upgrade `object` (see [`Access::upgrade`]).
    pub(crate) fn insert_accounted(
        &self,
        make: impl FnOnce() -> (*mut c_void, *mut c_void, bool, Details<P>),
    ) -> Result<u64, Refusal> {
        let (index, slot, generation) = loop {
            let index = match self.pop_free() {
                Some(index) => index,
                None => match self.create_slot() {
                    Some(index) => index,
                    None => return Err(Refusal::Full),
                },
            };
            let slot = self.slot(index).expect("allocated slot has a page");
            // Relaxed: this thread owns the Free slot; the Release store below
            // publishes everything written here. Only slots below the last
            // generation are ever freed, so this cannot pass it.
            let generation = slot.load(Ordering::Relaxed).generation() + 1;
            if self.encode(index, generation) != 0 {
                break (index, slot, generation);
            }
            // Never issue 0 (one chance in 2^64 per issue): burn this
            // generation and recycle the slot, or retire it at the last one.
            slot.state
                .store(Word::new(generation, Phase::Free, 0).0, Ordering::Relaxed);
            if generation < self.limits.max_generation {
                self.push_free(index);
            }
        };
        let (object, accounting, upgrade, details) = make();
        *slot.details() = details;
        slot.object.store(object, Ordering::Relaxed);
        slot.accounting.store(accounting, Ordering::Relaxed);
        slot.upgrade.store(upgrade, Ordering::Relaxed);
        // Release: publishes the object pointer and details to accessors.
        slot.state
            .store(Word::new(generation, Phase::Live, 0).0, Ordering::Release);
        Ok(self.encode(index, generation))
    }

    /// Pop a free slot index off the Treiber stack.
    fn pop_free(&self) -> Option<u32> {
        // Acquire: see the `next_free` written before the push that set it.
        let mut head = self.free_head.load(Ordering::Acquire);
        loop {
            let top = head as u32;
            if top == 0 {
                return None;
            }
            let next = self.slot(top - 1)?.next_free.load(Ordering::Relaxed);
            // The tag changes on every push and pop, so a head that was popped
            // and pushed back meanwhile (ABA) fails this exchange.
            let new = ((head >> 32).wrapping_add(1) << 32) | next as u64;
            match self.free_head.compare_exchange_weak(
                head,
                new,
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(top - 1),
                Err(actual) => head = actual,
            }
        }
    }

    /// Push a slot index onto the free list.
    fn push_free(&self, index: u32) {
        let slot = self.slot(index).expect("freed slot has a page");
        let mut head = self.free_head.load(Ordering::Relaxed);
        loop {
            slot.next_free.store(head as u32, Ordering::Relaxed);
            let new = ((head >> 32).wrapping_add(1) << 32) | (index as u64 + 1);
            // Release: publishes `next_free` (and the slot's Free word) to the popper.
            match self.free_head.compare_exchange_weak(
                head,
                new,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => head = actual,
            }
        }
    }

    /// Create a never-used slot, allocating its page if needed. `None` when
    /// the table is at `max_slots` or memory for a page cannot be had.
    #[cold]
    fn create_slot(&self) -> Option<u32> {
        let mut created = self.created.lock();
        let index = *created;
        if index >= self.limits.max_slots {
            return None;
        }
        let (page, _) = self.locate(index);
        let cell = self.pages.get(page)?;
        if cell.load(Ordering::Relaxed).is_null() {
            let len = (self.first_page_len as usize) << page;
            let mut slots: Vec<Slot<P>> = Vec::new();
            slots.try_reserve_exact(len).ok()?;
            slots.extend((0..len).map(|_| Slot::new()));
            let base = Box::into_raw(slots.into_boxed_slice()) as *mut Slot<P>;
            // Release: the slots' initialisation happens-before any Acquire
            // load that sees this pointer.
            cell.store(base, Ordering::Release);
        }
        *created = index + 1;
        Some(index)
    }

    /// Slots created so far (for statistics and tests).
    pub(crate) fn capacity(&self) -> u32 {
        *self.created.lock()
    }

    // ----- access ---------------------------------------------------------

    /// Begin an access: the fast path. Lock-free, allocation-free, one CAS on
    /// the slot's own line when uncontended.
    #[inline]
    pub(crate) fn begin(&self, handle: u64) -> Result<Access<'_, P>, Refusal> {
        let Some((slot, index, generation)) = self.locate_handle(handle) else {
            return Err(Refusal::InvalidHandle);
        };
        // No load first: guess "live, no access in flight", the common case,
        // so an uncontended access is one CAS (a load would first pull the
        // line in shared state, then the CAS upgrade it: two transitions when
        // another core had it). A wrong guess costs one failed CAS, which
        // returns the actual word to check and retry with.
        let mut word = Word::new(generation, Phase::Live, 0);
        loop {
            if !word.is_live(generation) || word.count() == MAX_ACCESSES {
                return Err(Self::refusal(word, generation));
            }
            // Acquire on success: see the registration's writes (module doc of
            // `slot`). Relaxed on failure: we only retry.
            match slot.state.compare_exchange_weak(
                word.0,
                word.0 + 1,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => word = Word(actual),
            }
        }
        // Relaxed: ordered by the Acquire above; stable while we hold a count.
        let object = slot.object.load(Ordering::Relaxed);
        let accounting = slot.accounting.load(Ordering::Relaxed);
        let upgrade = slot.upgrade.load(Ordering::Relaxed);
        Ok(Access {
            slot,
            index,
            generation,
            object,
            accounting,
            upgrade,
        })
    }

    /// End an access begun by [`begin`](Self::begin). Returns the release
    /// claim when this was the last access of a draining slot.
    ///
    /// A compare-exchange that refuses a zero count, not a plain `fetch_sub`:
    /// the ABI cannot tell an unmatched `gcs_access_end` on another thread
    /// from this access's own end, so such a caller may already have taken
    /// "our" count; then this does nothing rather than wrap the count into
    /// the phase and generation bits (which would reissue a handle value).
    #[inline]
    pub(crate) fn end(&self, access: Access<'_, P>) -> Option<Claim<'_, P>> {
        let generation = access.generation;
        // Guess the uncontended word (live, ours the only access): one RMW,
        // no load first, as in `begin`.
        let mut word = Word::new(generation, Phase::Live, 1);
        loop {
            if word.generation() != generation || word.count() == 0 {
                return None; // our count was taken by an unmatched end
            }
            // AcqRel: see the module doc of `slot`.
            match access.slot.state.compare_exchange_weak(
                word.0,
                word.0 - 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => word = Word(actual),
            }
        }
        if word.phase() == Phase::Draining && word.count() == 1 {
            return Some(Claim {
                table: self,
                index: access.index,
                generation,
                retention: Default::default(),
            });
        }
        None
    }

    /// End an access by handle value, validating everything first (the
    /// C-level `gcs_access_end`, which may be handed anything). Returns the
    /// stored object pointer and upgrade flag of the ended access (read
    /// before the count fell, while the generation provably held them) and
    /// the release claim, if any.
    pub(crate) fn end_by_handle(&self, handle: u64) -> Result<Ended<'_, P>, Refusal> {
        let Some((slot, index, generation)) = self.locate_handle(handle) else {
            return Err(Refusal::InvalidHandle);
        };
        let mut word = slot.load(Ordering::Relaxed);
        loop {
            let accessible = matches!(
                word.phase(),
                Phase::Live | Phase::Invalidated | Phase::Draining
            );
            if word.generation() != generation || !accessible {
                return Err(match Self::refusal(word, generation) {
                    Refusal::Releasing => Refusal::NotAccessing,
                    other => other,
                });
            }
            if word.count() == 0 {
                return Err(Refusal::NotAccessing);
            }
            // Read between the load that saw count > 0 for this generation and
            // the CAS that checks the word is unchanged: the pointer is fixed
            // for a generation while any count is held, so if the CAS succeeds
            // this is the pointer of the access we end.
            let object = slot.object.load(Ordering::Relaxed);
            let upgrade = slot.upgrade.load(Ordering::Relaxed);
            // AcqRel: as `end`.
            match slot.state.compare_exchange_weak(
                word.0,
                word.0 - 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    let claim =
                        (word.phase() == Phase::Draining && word.count() == 1).then(|| Claim {
                            table: self,
                            index,
                            generation,
                            retention: Default::default(),
                        });
                    return Ok(((object, upgrade), claim));
                }
                Err(actual) => word = Word(actual),
            }
        }
    }

    /// The word of a handle's slot, if the handle decodes to a slot.
    pub(crate) fn word(&self, handle: u64) -> Option<(Word, u32)> {
        self.locate_handle(handle)
            .map(|(slot, _, generation)| (slot.load(Ordering::Acquire), generation))
    }

    /// Whether the handle is live (accesses would be accepted now).
    #[inline]
    pub(crate) fn is_live(&self, handle: u64) -> bool {
        // Relaxed: a snapshot; it synchronizes nothing.
        self.word(handle)
            .is_some_and(|(word, generation)| word.is_live(generation))
    }

    /// Why a handle cannot be accessed now (`Ok` if it can).
    pub(crate) fn check(&self, handle: u64) -> Result<Word, Refusal> {
        match self.word(handle) {
            None => Err(Refusal::InvalidHandle),
            Some((word, generation)) if word.is_live(generation) => Ok(word),
            Some((word, generation)) => Err(Self::refusal(word, generation)),
        }
    }

    // ----- release --------------------------------------------------------

    /// Unregister: refuse new accesses at once; the release is claimed now if
    /// no access is in flight, else by whoever ends the last one.
    pub(crate) fn unregister(&self, handle: u64) -> Result<Option<Claim<'_, P>>, Refusal> {
        let Some((slot, index, generation)) = self.locate_handle(handle) else {
            return Err(Refusal::InvalidHandle);
        };
        let mut word = slot.load(Ordering::Relaxed);
        loop {
            let registered = matches!(word.phase(), Phase::Live | Phase::Invalidated);
            if word.generation() != generation || !registered {
                return Err(match Self::refusal(word, generation) {
                    Refusal::Releasing | Refusal::Invalidated | Refusal::TooManyAccesses => {
                        Refusal::Released
                    }
                    other => other,
                });
            }
            let draining = word.with_phase(Phase::Draining);
            // AcqRel: Acquire so that a claimer (count 0) sees all accessors'
            // Release decrements; Release so that a later claimer (the last
            // accessor) sees what this thread did before unregistering.
            match slot.state.compare_exchange_weak(
                word.0,
                draining.0,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) if word.count() == 0 => {
                    return Ok(Some(Claim {
                        table: self,
                        index,
                        generation,
                        retention: Default::default(),
                    }));
                }
                Ok(_) => return Ok(None),
                Err(actual) => word = Word(actual),
            }
        }
    }

    /// Invalidate: refuse new accesses but keep the registration.
    #[cfg_attr(not(test), allow(dead_code))] // the unit tests and loom models use it
    pub(crate) fn invalidate(&self, handle: u64) -> Result<(), Refusal> {
        self.invalidate_with(handle, |_| ())
    }

    /// Invalidate, and run `f` on the details under their lock in the same
    /// critical section as the transition, so that a release (which reads
    /// the details under that lock, after the transition) sees what `f` did.
    pub(crate) fn invalidate_with(
        &self,
        handle: u64,
        f: impl FnOnce(&mut Details<P>),
    ) -> Result<(), Refusal> {
        let Some((slot, _, generation)) = self.locate_handle(handle) else {
            return Err(Refusal::InvalidHandle);
        };
        let mut details = slot.details();
        let mut word = slot.load(Ordering::Relaxed);
        loop {
            if word.generation() != generation || word.phase() != Phase::Live {
                return Err(match Self::refusal(word, generation) {
                    Refusal::Releasing => Refusal::Released,
                    other => other,
                });
            }
            // Release: nothing to acquire; orders earlier writes before the refusal.
            match slot.state.compare_exchange_weak(
                word.0,
                word.with_phase(Phase::Invalidated).0,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    f(&mut details);
                    return Ok(());
                }
                Err(actual) => word = Word(actual),
            }
        }
    }

    /// Take the payload of a claimed slot (once), stamping the release time.
    #[cfg_attr(not(test), allow(dead_code))] // the unit tests and loom models use it
    pub(crate) fn take_payload(&self, claim: &Claim<'_, P>) -> Option<P> {
        let slot = self.slot(claim.index)?;
        // Relaxed: the claim already ordered us after every accessor.
        slot.object.store(core::ptr::null_mut(), Ordering::Relaxed);
        let mut details = slot.details();
        details.released_at_ms = clock::now_ms();
        claim
            .retention
            .set(Some((details.released_at_ms, details.retention_ms)));
        details.payload.take()
    }

    /// Run `f` on the details of a claimed slot (the claimer owns the release).
    pub(crate) fn claimed_details<R>(
        &self,
        claim: &Claim<'_, P>,
        f: impl FnOnce(&mut Details<P>) -> R,
    ) -> R {
        let slot = self.slot(claim.index).expect("a claimed slot exists");
        // Relaxed: the claim already ordered us after every accessor.
        slot.object.store(core::ptr::null_mut(), Ordering::Relaxed);
        let mut details = slot.details();
        if details.released_at_ms == 0 {
            details.released_at_ms = clock::now_ms();
        }
        claim
            .retention
            .set(Some((details.released_at_ms, details.retention_ms)));
        f(&mut details)
    }

    /// `Draining(g, 0)` → `Retained(g, 0)`, then sweep old retained states.
    fn complete_release(&self, index: u32, generation: u32, retention: Option<(u64, u64)>) {
        let Some(slot) = self.slot(index) else { return };
        let (released_at_ms, retention_ms) = retention.unwrap_or_else(|| {
            let details = slot.details();
            (details.released_at_ms, details.retention_ms)
        });
        // Release: everything the release did happens-before an Acquire load
        // that sees Retained (`gcs_unregister_sync`).
        slot.state.store(
            Word::new(generation, Phase::Retained, 0).0,
            Ordering::Release,
        );
        if retention_ms == 0 || self.limits.max_retained == 0 {
            self.sweep(index, generation);
            return;
        }
        let mut expired = [(0u32, 0u32); 4];
        let mut n = 0;
        {
            let mut queue = self.retained.lock();
            queue.push_back((
                index,
                generation,
                released_at_ms.saturating_add(retention_ms),
            ));
            let now = clock::now_ms();
            while n < expired.len() {
                let Some(&(old_index, old_generation, expires)) = queue.front() else {
                    break;
                };
                if queue.len() <= self.limits.max_retained && now < expires {
                    break;
                }
                queue.pop_front();
                expired[n] = (old_index, old_generation);
                n += 1;
            }
        }
        for &(old_index, old_generation) in &expired[..n] {
            self.sweep(old_index, old_generation);
        }
    }

    /// `Retained(g)` → `Free(g)`: drop the details and recycle (or retire) the slot.
    fn sweep(&self, index: u32, generation: u32) {
        let Some(slot) = self.slot(index) else { return };
        let dropped = {
            let mut details = slot.details();
            let retained = Word::new(generation, Phase::Retained, 0);
            // Under the detail lock, so no reader sees the details vanish.
            // Relaxed: the lock orders the details; the free-list push publishes.
            if slot
                .state
                .compare_exchange(
                    retained.0,
                    Word::new(generation, Phase::Free, 0).0,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_err()
            {
                return;
            }
            core::mem::replace(&mut *details, Details::empty())
        };
        drop(dropped);
        if generation < self.limits.max_generation {
            self.push_free(index);
        }
        // else: retired; its handles can never be issued again.
    }

    /// Sweep every retained state whose retention is over (the periodic sweep).
    pub(crate) fn sweep_expired(&self) {
        let now = clock::now_ms();
        loop {
            let next = {
                let mut queue = self.retained.lock();
                match queue.front() {
                    Some(&(_, _, expires)) if now >= expires => queue.pop_front(),
                    _ => None,
                }
            };
            match next {
                // `sweep` checks the slot still holds that released generation.
                Some((index, generation, _)) => self.sweep(index, generation),
                None => return,
            }
        }
    }

    /// Run `f` on the details of the slot a handle names, if that slot still
    /// holds the handle's generation (in any phase but `Free`).
    pub(crate) fn with_details<R>(
        &self,
        handle: u64,
        f: impl FnOnce(Word, &Details<P>) -> R,
    ) -> Option<R> {
        let (slot, _, generation) = self.locate_handle(handle)?;
        let details = slot.details();
        // Under the lock the word cannot leave Retained for Free.
        let word = slot.load(Ordering::Acquire);
        if word.generation() != generation || word.phase() == Phase::Free {
            return None;
        }
        Some(f(word, &details))
    }
}

impl<P> Table<P> {
    /// Run `f` on the details of the slot a handle names, mutably, if that
    /// slot still holds the handle's generation (in any phase but `Free`).
    pub(crate) fn with_details_mut<R>(
        &self,
        handle: u64,
        f: impl FnOnce(Word, &mut Details<P>) -> R,
    ) -> Option<R> {
        let (slot, _, generation) = self.locate_handle(handle)?;
        let mut details = slot.details();
        let word = slot.load(Ordering::Acquire);
        if word.generation() != generation || word.phase() == Phase::Free {
            return None;
        }
        Some(f(word, &mut details))
    }

    /// Call `f` with every slot that holds a registration (Live, Invalidated
    /// or Draining), under that slot's detail lock: `f` must not run user code.
    pub(crate) fn for_each_registered(&self, mut f: impl FnMut(u64, Word, &Details<P>)) {
        for index in 0..self.capacity() {
            let Some(slot) = self.slot(index) else {
                continue;
            };
            let details = slot.details();
            let word = slot.load(Ordering::Acquire);
            if matches!(
                word.phase(),
                Phase::Live | Phase::Invalidated | Phase::Draining
            ) {
                f(self.encode(index, word.generation()), word, &details);
            }
        }
    }
}

#[cfg(not(loom))]
impl<P> Table<P> {
    /// Fork support: the table's global locks, in their nesting order.
    pub(crate) fn fork_locks(&self) -> [&dyn crate::fork::ForkLock; 2] {
        [&self.created, &self.retained]
    }

    /// Fork support, in the child: release every slot's detail lock that a
    /// thread of the parent held at the fork (it does not exist here).
    pub(crate) fn fork_child_unlock_slots(&self) {
        // `capacity()` takes `created`, which the child handler released.
        for index in 0..self.capacity() {
            if let Some(slot) = self.slot(index) {
                // SAFETY: in the forked child only this thread exists: a
                // holder or waiter of this lock is gone for good.
                unsafe { slot.details_lock().reset_in_child() };
            }
        }
    }
}

impl<P> Drop for Table<P> {
    fn drop(&mut self) {
        for (page, cell) in self.pages.iter().enumerate() {
            let base = cell.load(Ordering::Acquire);
            if !base.is_null() {
                let len = (self.first_page_len as usize) << page;
                // SAFETY: `base` came from `Box::<[Slot<P>]>::into_raw` of a
                // slice of exactly `len` slots in `create_slot`, and is freed once.
                drop(unsafe { Box::from_raw(core::ptr::slice_from_raw_parts_mut(base, len)) });
            }
        }
    }
}

#[cfg(all(test, loom))]
mod loom;
#[cfg(all(test, not(loom)))]
mod tests;
