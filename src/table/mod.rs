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
//!   with *Release* and read with *Acquire*, and never move, shrink or unmap
//!   while the table lives, so a slot reference stays valid for the table's
//!   life. Each page has a twin of [`Cold`] entries, allocated with it: an
//!   access reads only the hot [`Slot`]s (see [`slot`]).
//! * The page directory, the salt and the slot layout are published to C and
//!   Go by [`Table::view`] (`gcs_table_view`), whose readers perform the
//!   [`Slot::begin_inline`] / [`Slot::end_inline`] transitions themselves.
//! * **Free slots**: the process's table (built with [`Table::new_process`])
//!   keeps a per-thread cache of free slots and takes fresh slots [`BLOCK`] at
//!   a time, so a thread's registrations sit together and a
//!   register/unregister pair writes no line that other threads write; what a
//!   thread does not keep (and everything of other tables) sits on a Treiber
//!   stack whose head packs a 32-bit tag with the slot index (the tag defeats
//!   ABA). A slot whose generation reached `max_generation` is retired
//!   instead of freed, so a handle value is never issued twice.
//! * **Released slots** keep their details (type and instance name, times) in
//!   `Retained` until their retention expires or [`Limits::max_retained`] newer
//!   releases by the same thread push them out (FIFO), then are swept free.
//!   The queue is per thread for the process's table (a thread that exits
//!   hands its queue to a shared one, swept by the periodic sweep).

pub(crate) mod slot;

use core::cell::RefCell;
use std::collections::VecDeque;

use crate::clock;
use crate::sync::{AtomicPtr, AtomicU64, Mutex, Ordering};
pub(crate) use slot::{BLOCK, Cold, Details, GEN_SHIFT, Phase, Published, Slot, Word};
#[cfg_attr(loom, allow(unused_imports))]
pub(crate) use slot::{COUNT_MASK, PHASE_SHIFT, SLOW_BIT};

/// Size limits of a table.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// log2 of the number of slots in the first page.
    pub(crate) first_page_log2: u32,
    /// Slots the table may ever create.
    pub(crate) max_slots: u32,
    /// The last generation a slot may be issued with; then it is retired.
    pub(crate) max_generation: u32,
    /// Released states kept for stale-handle reports, at most (per releasing
    /// thread in the process's table).
    pub(crate) max_retained: usize,
}

/// How many released states are kept at most, whatever their retention, per
/// thread that releases (a thread's oldest is dropped first).
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

/// Pages in the directory (the last ones stay unallocated with the default
/// `max_slots`).
pub(crate) const MAX_PAGES: usize = 32;

/// Free slots a thread keeps for itself at most; more go to the shared stack.
const LOCAL_FREE: usize = 64;

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
pub(crate) struct Claim<'t, P: Send + 'static> {
    table: &'t Table<P>,
    index: u32,
    generation: u32,
    /// `(released_at_ms, retention_ms)`, noted when the claimer reads the
    /// details, so completing the release needs no second look at them.
    retention: core::cell::Cell<Option<(u64, u64)>>,
}

impl<P: Send + 'static> Claim<'_, P> {
    /// The handle whose release is claimed.
    pub(crate) fn handle(&self) -> u64 {
        self.table.encode(self.index, self.generation)
    }
}

impl<P: Send + 'static> Drop for Claim<'_, P> {
    fn drop(&mut self) {
        self.table
            .complete_release(self.index, self.generation, self.retention.get());
    }
}

/// What an ended access had published (read before the count fell, while
/// the generation provably held it) and the release claim, if the end was
/// the last of a draining slot.
pub(crate) struct Ended<'t, P: Send + 'static> {
    pub(crate) published: Published,
    pub(crate) claim: Option<Claim<'t, P>>,
}

/// An access that began on a slot; end it with [`Table::end`].
pub(crate) struct Access<'t> {
    pub(crate) slot: &'t Slot,
    pub(crate) index: u32,
    pub(crate) generation: u32,
    /// What the registration published (see [`Published`]).
    pub(crate) published: Published,
}

/// The table geometry and word layout that `gcs_table_view` publishes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct View {
    pub(crate) pages: *const AtomicPtr<Slot>,
    pub(crate) page_count: u32,
    pub(crate) first_page_log2: u32,
    pub(crate) salt: u64,
}

/// The handle table. `P` is what a registration holds (see `crate::object`).
pub(crate) struct Table<P> {
    salt: u64,
    limits: Limits,
    first_page_len: u64,
    /// Whether threads keep their own free slots and retained queue (the
    /// process's table only: see [`Table::new_process`]).
    thread_local: bool,
    pages: [AtomicPtr<Slot>; MAX_PAGES],
    cold_pages: [AtomicPtr<Cold<P>>; MAX_PAGES],
    /// Treiber stack head: `(tag << 32) | (index + 1)`, 0 index part = empty.
    free_head: AtomicU64,
    /// Slots ever created; guarded by the lock (the growth slow path).
    created: Mutex<u32>,
    /// Released slots in release order: (index, generation, expiry in
    /// `clock::now_ms()` time). All of them for other tables; those of
    /// threads that exited for the process's table.
    retained: Mutex<VecDeque<(u32, u32, u64)>>,
}

// SAFETY: the raw page pointers are owned by the table and only ever read
// through shared references to `Slot`s and `Cold`s, whose fields are atomics
// and a mutex; the payloads inside are only touched under that mutex, so
// `P: Send` suffices.
unsafe impl<P: Send> Send for Table<P> {}
// SAFETY: as above.
unsafe impl<P: Send> Sync for Table<P> {}

impl<P: Send + 'static> Table<P> {
    pub(crate) fn new(limits: Limits, salt: u64) -> Self {
        assert!(limits.first_page_log2 < 16 && limits.max_generation >= 1);
        Table {
            salt,
            limits,
            first_page_len: 1 << limits.first_page_log2,
            thread_local: false,
            pages: core::array::from_fn(|_| AtomicPtr::new(core::ptr::null_mut())),
            cold_pages: core::array::from_fn(|_| AtomicPtr::new(core::ptr::null_mut())),
            free_head: AtomicU64::new(0),
            created: Mutex::new(0),
            retained: Mutex::new(VecDeque::new()),
        }
    }

    /// The handle of generation `generation` of slot `index`.
    #[inline]
    pub(crate) fn encode(&self, index: u32, generation: u32) -> u64 {
        (((generation as u64) << GEN_SHIFT) | index as u64) ^ self.salt
    }

    /// `(index, generation)` of a handle value; any value decodes.
    #[inline]
    pub(crate) fn decode(&self, handle: u64) -> (u32, u32) {
        let raw = handle ^ self.salt;
        (raw as u32, (raw >> GEN_SHIFT) as u32)
    }

    /// What `gcs_table_view` publishes.
    pub(crate) fn view(&self) -> View {
        View {
            pages: self.pages.as_ptr(),
            page_count: MAX_PAGES as u32,
            first_page_log2: self.limits.first_page_log2,
            salt: self.salt,
        }
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

    /// The hot slot at `index`, if its page exists. Never dereferences
    /// anything derived from a caller's value before this bounds check.
    #[inline]
    pub(crate) fn slot(&self, index: u32) -> Option<&Slot> {
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

    /// The cold twin of the slot at `index`, if its page exists.
    #[inline]
    pub(crate) fn cold(&self, index: u32) -> Option<&Cold<P>> {
        let (page, offset) = self.locate(index);
        // Acquire: as in `slot`.
        let base = self.cold_pages.get(page)?.load(Ordering::Acquire);
        if base.is_null() {
            return None;
        }
        // SAFETY: as in `slot`, for the cold page published with it.
        Some(unsafe { &*base.add(offset) })
    }

    /// The slot a handle names and the generation it claims.
    #[inline]
    pub(crate) fn locate_handle(&self, handle: u64) -> Option<(&Slot, u32, u32)> {
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

    fn claim(&self, index: u32, generation: u32) -> Claim<'_, P> {
        Claim {
            table: self,
            index,
            generation,
            retention: Default::default(),
        }
    }

    // ----- registration ---------------------------------------------------

    /// Register: reserve a free slot, fill it with what `make` returns (called
    /// only once a slot is secured, so a full table takes no reference), publish
    /// it `Live`, and return the new handle.
    pub(crate) fn insert(
        &self,
        make: impl FnOnce() -> (Published, Details<P>),
    ) -> Result<u64, Refusal> {
        let (index, slot, generation) = loop {
            let index = self.take_free().ok_or(Refusal::Full)?;
            let slot = self.slot(index).expect("allocated slot has a page");
            // Relaxed: this thread owns the Free slot; the Release store in
            // `publish` publishes everything written here. Only slots below
            // the last generation are ever freed, so this cannot pass it.
            let generation = slot.load(Ordering::Relaxed).generation() + 1;
            if self.encode(index, generation) != 0 {
                break (index, slot, generation);
            }
            // Never issue 0 (one chance in 2^64 per issue): burn this
            // generation and recycle the slot, or retire it at the last one.
            slot.state
                .store(Word::new(generation, Phase::Free, 0).0, Ordering::Relaxed);
            if generation < self.limits.max_generation {
                self.give_free(index);
            }
        };
        let (published, details) = make();
        *self
            .cold(index)
            .expect("a slot has its cold twin")
            .details() = details;
        slot.publish(generation, published);
        Ok(self.encode(index, generation))
    }

    /// A free slot this thread now owns: its own cache, the shared stack,
    /// or fresh ones. `None` when the table is full.
    fn take_free(&self) -> Option<u32> {
        let cached = if self.thread_local {
            local::pop_free()
        } else {
            None
        };
        cached
            .or_else(|| self.pop_free())
            .or_else(|| self.create_slots())
    }

    /// Hand a freed slot back: to this thread's cache (the process's table),
    /// else to the shared stack.
    fn give_free(&self, index: u32) {
        if !(self.thread_local && local::push_free(self.process(), index)) {
            self.push_free(index);
        }
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
            let next = self.cold(top - 1)?.next_free.load(Ordering::Relaxed);
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

    /// Push a slot index onto the shared free stack.
    fn push_free(&self, index: u32) {
        let cold = self.cold(index).expect("freed slot has a page");
        let mut head = self.free_head.load(Ordering::Relaxed);
        loop {
            cold.next_free.store(head as u32, Ordering::Relaxed);
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

    /// Create never-used slots, allocating their page if needed, and return
    /// one: [`BLOCK`] of them for the process's table (the others go to this
    /// thread's cache), one for other tables. `None` when the table is at
    /// `max_slots` or memory for a page cannot be had.
    #[cold]
    fn create_slots(&self) -> Option<u32> {
        let mut created = self.created.lock();
        let first = *created;
        if first >= self.limits.max_slots {
            return None;
        }
        let wanted = if self.thread_local { BLOCK } else { 1 };
        let count = wanted.min(self.limits.max_slots - first);
        // A block never straddles two pages: pages hold a multiple of BLOCK.
        for index in first..first + count {
            self.ensure_page(index)?;
        }
        *created = first + count;
        drop(created);
        // The rest of the block, pushed so that this thread's next
        // registrations come out as first + 2, first + 1, first + 3: two
        // registrations in a row sit on different cache lines (two slots to
        // a line), so the common "register two objects, hand them to two
        // threads" does not share a line between those threads.
        for index in [first + 3, first + 1, first + 2] {
            if index < first + count {
                self.give_free(index);
            }
        }
        Some(first)
    }

    /// Allocate the page (hot and cold) holding `index`, if it is not there.
    /// Under the growth lock.
    fn ensure_page(&self, index: u32) -> Option<()> {
        let (page, _) = self.locate(index);
        let hot = self.pages.get(page)?;
        if !hot.load(Ordering::Relaxed).is_null() {
            return Some(());
        }
        let len = (self.first_page_len as usize) << page;
        let cold = allocate_page(len, Cold::new)?;
        let Some(slots) = allocate_page(len, Slot::new) else {
            // SAFETY: `cold` came from `allocate_page` with `len` entries and
            // was never published.
            unsafe { free_page(cold, len) };
            return None;
        };
        // Release: the entries' initialisation happens-before any Acquire
        // load that sees these pointers. Cold first, so that whoever sees the
        // hot page finds its cold twin.
        self.cold_pages[page].store(cold, Ordering::Release);
        hot.store(slots, Ordering::Release);
        Some(())
    }

    /// Slots created so far (for statistics and tests).
    pub(crate) fn capacity(&self) -> u32 {
        *self.created.lock()
    }

    // ----- access ---------------------------------------------------------

    /// Begin an access: the fast path. Lock-free, allocation-free, one CAS on
    /// the slot's own line when uncontended.
    #[inline]
    pub(crate) fn begin(&self, handle: u64) -> Result<Access<'_>, Refusal> {
        let Some((slot, index, generation)) = self.locate_handle(handle) else {
            return Err(Refusal::InvalidHandle);
        };
        let word = slot
            .begin(generation)
            .map_err(|word| Self::refusal(word, generation))?;
        Ok(Access {
            slot,
            index,
            generation,
            published: Self::published(slot, word),
        })
    }

    /// What a registration published, read while a count of it is held.
    #[inline]
    fn published(slot: &Slot, word: Word) -> Published {
        // Relaxed: ordered by the Acquire that took (or checked) the count;
        // stable while a count of the generation is held.
        Published {
            object: slot.object.load(Ordering::Relaxed),
            accounting: slot.accounting.load(Ordering::Relaxed),
            aux: slot.aux.load(Ordering::Relaxed),
            slow: word.slow(),
        }
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
    pub(crate) fn end(&self, access: Access<'_>) -> Option<Claim<'_, P>> {
        self.end_of(access.slot, access.index, access.generation)
    }

    /// [`end`](Self::end) for what an access kept of its [`Access`]: the
    /// slot, its index and the generation.
    #[inline]
    pub(crate) fn end_of(&self, slot: &Slot, index: u32, generation: u32) -> Option<Claim<'_, P>> {
        let word = slot.end(generation).ok()?;
        (word.phase() == Phase::Draining && word.count() == 1)
            .then(|| self.claim(index, generation))
    }

    /// End an access by handle value, validating everything first (the
    /// C-level `gcs_access_end`, which may be handed anything).
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
            // the CAS that checks the word is unchanged: the pointers are fixed
            // for a generation while any count is held, so if the CAS succeeds
            // they are those of the access we end.
            let published = Self::published(slot, word);
            // AcqRel: as `Slot::end`.
            match slot.state.compare_exchange_weak(
                word.0,
                word.0 - 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    let claim = (word.phase() == Phase::Draining && word.count() == 1)
                        .then(|| self.claim(index, generation));
                    return Ok(Ended { published, claim });
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
        self.locate_handle(handle)
            .is_some_and(|(slot, _, generation)| {
                // Relaxed: a snapshot; it synchronizes nothing.
                slot.load(Ordering::Relaxed).is_live(generation)
            })
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
        match slot.unregister(generation) {
            Ok(word) if word.count() == 0 => Ok(Some(self.claim(index, generation))),
            Ok(_) => Ok(None),
            Err(word) => Err(match Self::refusal(word, generation) {
                Refusal::Releasing | Refusal::Invalidated | Refusal::TooManyAccesses => {
                    Refusal::Released
                }
                other => other,
            }),
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
        let Some((slot, index, generation)) = self.locate_handle(handle) else {
            return Err(Refusal::InvalidHandle);
        };
        let mut details = self
            .cold(index)
            .expect("a slot has its cold twin")
            .details();
        match slot.invalidate(generation) {
            Ok(()) => {
                f(&mut details);
                Ok(())
            }
            Err(word) => Err(match Self::refusal(word, generation) {
                Refusal::Releasing => Refusal::Released,
                other => other,
            }),
        }
    }

    /// Take the payload of a claimed slot (once), stamping the release time.
    #[cfg_attr(not(test), allow(dead_code))] // the unit tests and loom models use it
    pub(crate) fn take_payload(&self, claim: &Claim<'_, P>) -> Option<P> {
        self.claimed_details(claim, |details| details.payload.take())
    }

    /// Run `f` on the details of a claimed slot (the claimer owns the release).
    pub(crate) fn claimed_details<R>(
        &self,
        claim: &Claim<'_, P>,
        f: impl FnOnce(&mut Details<P>) -> R,
    ) -> R {
        let cold = self.cold(claim.index).expect("a claimed slot exists");
        let mut details = cold.details();
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
        let (Some(slot), Some(cold)) = (self.slot(index), self.cold(index)) else {
            return;
        };
        let (released_at_ms, retention_ms) = retention.unwrap_or_else(|| {
            let details = cold.details();
            (details.released_at_ms, details.retention_ms)
        });
        slot.complete_release(generation);
        if retention_ms == 0 || self.limits.max_retained == 0 {
            self.sweep(index, generation);
            return;
        }
        let entry = (
            index,
            generation,
            released_at_ms.saturating_add(retention_ms),
        );
        let now = clock::now_ms();
        let mut expired = [(0u32, 0u32); 4];
        let kept = if self.thread_local {
            local::retain(
                self.process(),
                entry,
                self.limits.max_retained,
                now,
                &mut expired,
            )
        } else {
            None
        };
        let n = kept.unwrap_or_else(|| {
            retain_in(
                &mut self.retained.lock(),
                entry,
                self.limits.max_retained,
                now,
                &mut expired,
            )
        });
        for &(old_index, old_generation) in &expired[..n] {
            self.sweep(old_index, old_generation);
        }
    }

    /// `Retained(g)` → `Free(g)`: drop the details and recycle (or retire) the slot.
    fn sweep(&self, index: u32, generation: u32) {
        let (Some(slot), Some(cold)) = (self.slot(index), self.cold(index)) else {
            return;
        };
        let dropped = {
            let mut details = cold.details();
            // Under the detail lock, so no reader sees the details vanish.
            if !slot.sweep(generation) {
                return;
            }
            core::mem::replace(&mut *details, Details::empty())
        };
        drop(dropped);
        if generation < self.limits.max_generation {
            self.give_free(index);
        }
        // else: retired; its handles can never be issued again.
    }

    /// Sweep every retained state whose retention is over (the periodic
    /// sweep): this thread's, and the shared queue's.
    pub(crate) fn sweep_expired(&self) {
        let now = clock::now_ms();
        if self.thread_local {
            while let Some((index, generation)) = local::pop_expired(now) {
                self.sweep(index, generation);
            }
        }
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
        self.with_details_mut(handle, |word, details| f(word, details))
    }

    /// Run `f` on the details of the slot a handle names, mutably, if that
    /// slot still holds the handle's generation (in any phase but `Free`).
    pub(crate) fn with_details_mut<R>(
        &self,
        handle: u64,
        f: impl FnOnce(Word, &mut Details<P>) -> R,
    ) -> Option<R> {
        let (slot, index, generation) = self.locate_handle(handle)?;
        let mut details = self.cold(index)?.details();
        // Under the lock the word cannot leave Retained for Free.
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
            let (Some(slot), Some(cold)) = (self.slot(index), self.cold(index)) else {
                continue;
            };
            let details = cold.details();
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

impl<P: Send + 'static> Table<P> {
    /// This table as the process's table, for the exit handler of threads
    /// that cache its slots. Only for a table made by `new_process`.
    fn process(&self) -> &'static dyn local::Adopt {
        debug_assert!(self.thread_local);
        // SAFETY: `thread_local` tables come from `new_process`, whose
        // contract is that the table is never dropped: it lives for the rest
        // of the process, which is what `'static` promises.
        unsafe { &*(self as *const Self) }
    }
}

impl<P: Send + 'static> Table<P> {
    /// The process's table: like [`new`](Self::new), with per-thread free
    /// slots and retained queues (see the module documentation).
    ///
    /// # Safety
    /// The table must never be dropped (a `static`): threads hand their free
    /// slots back to it when they exit, whenever that is.
    pub(crate) unsafe fn new_process(limits: Limits, salt: u64) -> Self {
        let mut table = Table::new(limits, salt);
        table.thread_local = true;
        table
    }
}

/// Push a retained entry on a queue capped at `max`, and pop into `expired`
/// (at most its length) those over the cap or past their expiry; their count.
fn retain_in(
    queue: &mut VecDeque<(u32, u32, u64)>,
    entry: (u32, u32, u64),
    max: usize,
    now: u64,
    expired: &mut [(u32, u32)],
) -> usize {
    queue.push_back(entry);
    let mut n = 0;
    while n < expired.len() {
        let Some(&(index, generation, expires)) = queue.front() else {
            break;
        };
        if queue.len() <= max && now < expires {
            break;
        }
        queue.pop_front();
        expired[n] = (index, generation);
        n += 1;
    }
    n
}

/// Pages from this size up are aligned to it and asked to be backed by
/// transparent huge pages: a random access among a million handles then
/// walks no page table and misses no TLB entry of its own (and the page
/// directory's pages stay few).
const HUGE_PAGE: usize = 2 << 20;

/// The layout of a page of `len` entries of `T`.
fn page_layout<T>(len: usize) -> Option<std::alloc::Layout> {
    let layout = std::alloc::Layout::array::<T>(len).ok()?;
    if layout.size() >= HUGE_PAGE {
        layout.align_to(HUGE_PAGE).ok()
    } else {
        Some(layout)
    }
}

/// Allocate a page of `len` entries made by `make`, fallibly (`None` when
/// memory cannot be had). Free it with [`free_page`].
fn allocate_page<T>(len: usize, make: impl Fn() -> T) -> Option<*mut T> {
    let layout = page_layout::<T>(len)?;
    assert!(layout.size() > 0, "pages are never empty");
    // SAFETY: the layout has a non-zero size (asserted).
    let base = unsafe { std::alloc::alloc(layout) }.cast::<T>();
    if base.is_null() {
        return None;
    }
    #[cfg(all(target_os = "linux", not(miri)))]
    if layout.size() >= HUGE_PAGE {
        // SAFETY: the range is this fresh allocation; the advice changes
        // only how the kernel backs it (and fails harmlessly if it cannot).
        unsafe { libc::madvise(base.cast(), layout.size(), libc::MADV_HUGEPAGE) };
    }
    for i in 0..len {
        // SAFETY: `i < len`, within the allocation, written once.
        unsafe { base.add(i).write(make()) };
    }
    Some(base)
}

/// Drop and free a page made by [`allocate_page`] with the same `len`.
///
/// # Safety
/// `base` came from `allocate_page::<T>(len, ..)` and is freed once, with
/// no reference into it left.
unsafe fn free_page<T>(base: *mut T, len: usize) {
    let layout = page_layout::<T>(len).expect("the page was allocated with this layout");
    // SAFETY: forwarded: `len` initialised entries, owned, freed once.
    unsafe {
        core::ptr::drop_in_place(core::ptr::slice_from_raw_parts_mut(base, len));
        std::alloc::dealloc(base.cast(), layout);
    }
}

/// The per-thread part of the process's table: free slots this thread owns
/// and the releases it retains. One process table exists, so these need no
/// key; a thread that exits hands them to it.
mod local {
    use super::*;

    /// What a thread keeps.
    #[derive(Default)]
    pub(super) struct Local {
        free: Vec<u32>,
        retained: VecDeque<(u32, u32, u64)>,
    }

    /// The process's table, as the exit handler of a thread sees it.
    pub(super) trait Adopt: Sync {
        /// Take back a thread's free slots and retained releases.
        fn adopt(&self, local: Local);
    }

    /// Hands the thread's part back at thread exit.
    struct Owner(Local);

    impl Drop for Owner {
        fn drop(&mut self) {
            if let Some(table) = PROCESS.get() {
                table.adopt(core::mem::take(&mut self.0));
            }
        }
    }

    /// The table whose slots threads cache: the first that asked (there is
    /// one per process).
    static PROCESS: std::sync::OnceLock<&'static dyn Adopt> = std::sync::OnceLock::new();

    fn adopter(table: &'static dyn Adopt) {
        if PROCESS.get().is_none() {
            let _ = PROCESS.set(table);
        }
    }

    std::thread_local! {
        static LOCAL: RefCell<Owner> = RefCell::new(Owner(Local::default()));
    }

    /// Run `f` on this thread's part; `None` during thread exit or re-entry.
    fn with<R>(f: impl FnOnce(&mut Local) -> R) -> Option<R> {
        LOCAL
            .try_with(|local| local.try_borrow_mut().ok().map(|mut owner| f(&mut owner.0)))
            .ok()
            .flatten()
    }

    pub(super) fn pop_free() -> Option<u32> {
        with(|local| local.free.pop()).flatten()
    }

    /// Keep a free slot; `false` if this thread keeps enough already.
    pub(super) fn push_free(table: &'static dyn Adopt, index: u32) -> bool {
        adopter(table);
        with(|local| {
            let keep = local.free.len() < LOCAL_FREE;
            if keep {
                local.free.push(index);
            }
            keep
        })
        .unwrap_or(false)
    }

    pub(super) fn retain(
        table: &'static dyn Adopt,
        entry: (u32, u32, u64),
        max: usize,
        now: u64,
        expired: &mut [(u32, u32)],
    ) -> Option<usize> {
        adopter(table);
        with(|local| retain_in(&mut local.retained, entry, max, now, expired))
    }

    pub(super) fn pop_expired(now: u64) -> Option<(u32, u32)> {
        with(|local| match local.retained.front() {
            Some(&(index, generation, expires)) if now >= expires => {
                local.retained.pop_front();
                Some((index, generation))
            }
            _ => None,
        })
        .flatten()
    }

    impl<P: Send + 'static> Adopt for Table<P> {
        fn adopt(&self, local: Local) {
            for index in local.free {
                self.push_free(index);
            }
            self.retained.lock().extend(local.retained);
        }
    }
}

#[cfg(not(loom))]
impl<P: Send + 'static> Table<P> {
    /// Fork support: the table's global locks, in their nesting order.
    pub(crate) fn fork_locks(&self) -> [&dyn crate::sync::ForkLock; 2] {
        [&self.created, &self.retained]
    }

    /// Fork support, in the child: release every slot's detail lock that a
    /// thread of the parent held at the fork (it does not exist here).
    pub(crate) fn fork_child_unlock_slots(&self) {
        // `capacity()` takes `created`, which the child handler released.
        for index in 0..self.capacity() {
            if let Some(cold) = self.cold(index) {
                // SAFETY: in the forked child only this thread exists: a
                // holder or waiter of this lock is gone for good.
                unsafe { cold.details_lock().reset_in_child() };
            }
        }
    }
}

impl<P> Drop for Table<P> {
    fn drop(&mut self) {
        for page in 0..MAX_PAGES {
            let len = (self.first_page_len as usize) << page;
            let hot = self.pages[page].load(Ordering::Acquire);
            if !hot.is_null() {
                // SAFETY: `hot` came from `allocate_page` with exactly `len`
                // slots in `ensure_page`, and is freed once (`&mut self`).
                unsafe { free_page(hot, len) };
            }
            let cold = self.cold_pages[page].load(Ordering::Acquire);
            if !cold.is_null() {
                // SAFETY: as above, for the cold page.
                unsafe { free_page(cold, len) };
            }
        }
    }
}

#[cfg(all(test, loom))]
mod loom;
#[cfg(all(test, not(loom)))]
mod tests;
