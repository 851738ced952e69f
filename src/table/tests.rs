//! Unit tests of the table with a plain payload (no GLib): these run under
//! Miri (`cargo +nightly miri test --lib table`).

use super::slot::BLOCK;
use super::*;
use core::ffi::c_void;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering as StdOrdering};

/// A payload that counts its releases.
struct Counted(Arc<AtomicUsize>);

fn details(released: &Arc<AtomicUsize>, retention_ms: u64) -> Details<Counted> {
    Details {
        payload: Some(Counted(released.clone())),
        retention_ms,
        ..Details::empty()
    }
}

fn release(table: &Table<Counted>, claim: Claim<'_, Counted>) {
    if let Some(Counted(count)) = table.take_payload(&claim) {
        count.fetch_add(1, StdOrdering::SeqCst);
    }
}

/// A stand-in object pointer (never dereferenced), with no provenance so
/// that Miri's `-Zmiri-strict-provenance` accepts it.
fn fake(address: usize) -> *mut c_void {
    core::ptr::without_provenance_mut(address)
}

/// Register the stand-in object at `address`, its release counted in
/// `released`.
fn register(
    table: &Table<Counted>,
    address: usize,
    released: &Arc<AtomicUsize>,
    retention_ms: u64,
) -> Result<u64, Refusal> {
    table.insert(|| {
        (
            Published::object(fake(address)),
            details(released, retention_ms),
        )
    })
}

fn small(max_slots: u32, max_generation: u32) -> Table<Counted> {
    Table::new(
        Limits {
            first_page_log2: 1,
            max_slots,
            max_generation,
            max_retained: 2,
        },
        0x5eed_5a17_dead_beef,
    )
}

#[test]
fn handles_are_never_zero_and_decode_back() {
    let table = small(8, 100);
    let released = Arc::new(AtomicUsize::new(0));
    let h = register(&table, 8, &released, 0).unwrap();
    assert_ne!(h, 0);
    let (index, generation) = table.decode(h);
    assert_eq!((index, generation), (0, 1));
    assert_eq!(table.encode(index, generation), h);
    assert!(table.is_live(h));
}

#[test]
fn access_unregister_release_exactly_once() {
    let table = small(8, 100);
    let released = Arc::new(AtomicUsize::new(0));
    let h = register(&table, 8, &released, 1000).unwrap();
    let a = table.begin(h).unwrap();
    assert_eq!(a.published.object as usize, 8);
    let b = table.begin(h).unwrap();
    assert!(
        table.unregister(h).unwrap().is_none(),
        "accesses in flight: no claim yet"
    );
    assert_eq!(table.begin(h).err(), Some(Refusal::Releasing));
    assert_eq!(table.unregister(h).err(), Some(Refusal::Released));
    assert!(table.end(a).is_none());
    let claim = table.end(b).expect("last access claims");
    release(&table, claim);
    assert_eq!(released.load(StdOrdering::SeqCst), 1);
    assert_eq!(table.begin(h).err(), Some(Refusal::Released));
    assert_eq!(table.check(h).err(), Some(Refusal::Released));
    assert!(
        table
            .with_details(h, |w, _| w.phase() == Phase::Retained)
            .unwrap()
    );
}

#[test]
fn end_by_handle_refuses_without_begin_and_changes_nothing() {
    let table = small(8, 100);
    let released = Arc::new(AtomicUsize::new(0));
    let h = register(&table, 8, &released, 0).unwrap();
    assert_eq!(table.end_by_handle(h).err(), Some(Refusal::NotAccessing));
    let _a = table.begin(h).unwrap();
    let Ended { published, claim } = table.end_by_handle(h).unwrap();
    assert_eq!(published.object as usize, 8);
    assert!(claim.is_none());
    assert_eq!(table.end_by_handle(h).err(), Some(Refusal::NotAccessing));
    assert!(table.is_live(h));
}

#[test]
fn forged_values_are_refused_without_touching_memory() {
    let table = small(8, 100);
    for value in [
        0u64,
        1,
        u64::MAX,
        0x8000_0000_0000_0000,
        0x5eed_5a17_dead_beef,
        0x0000_0001_ffff_ffff,
    ] {
        assert!(table.begin(value).is_err(), "{value:#x}");
        assert!(table.unregister(value).is_err());
        assert!(table.end_by_handle(value).is_err());
        assert!(!table.is_live(value));
    }
}

#[test]
fn retention_then_reuse_with_a_new_generation() {
    let table = small(1, 100);
    let released = Arc::new(AtomicUsize::new(0));
    let h1 = register(&table, 8, &released, 0).unwrap();
    let claim = table.unregister(h1).unwrap().unwrap();
    release(&table, claim);
    // Retention 0: swept at once, so the single slot is reused.
    let h2 = register(&table, 16, &released, 0).unwrap();
    assert_ne!(h1, h2);
    assert_eq!(table.decode(h1).0, table.decode(h2).0);
    assert_eq!(table.begin(h1).err(), Some(Refusal::Released));
    assert!(table.is_live(h2));
    // A generation beyond the slot's was never issued.
    let (index, generation) = table.decode(h2);
    assert_eq!(
        table.begin(table.encode(index, generation + 1)).err(),
        Some(Refusal::InvalidHandle)
    );
}

#[test]
fn full_table_refuses_and_calls_nothing() {
    let table = small(2, 100);
    let released = Arc::new(AtomicUsize::new(0));
    let _a = register(&table, 8, &released, 0).unwrap();
    let _b = register(&table, 8, &released, 0).unwrap();
    let made = std::cell::Cell::new(false);
    let full = table.insert(|| {
        made.set(true);
        (Published::object(fake(8)), details(&released, 0))
    });
    assert_eq!(full.err(), Some(Refusal::Full));
    assert!(!made.get(), "no reference is taken when no slot is free");
}

#[test]
fn slots_retire_at_the_last_generation() {
    let table = small(1, 3);
    let released = Arc::new(AtomicUsize::new(0));
    let mut seen = std::collections::HashSet::new();
    for _ in 0..3 {
        let h = register(&table, 8, &released, 0).unwrap();
        assert!(seen.insert(h), "a handle value is never issued twice");
        release(&table, table.unregister(h).unwrap().unwrap());
    }
    assert_eq!(register(&table, 8, &released, 0).err(), Some(Refusal::Full));
    assert_eq!(released.load(StdOrdering::SeqCst), 3);
}

#[test]
fn retained_states_are_capped_fifo() {
    let table = small(8, 100); // max_retained 2
    let released = Arc::new(AtomicUsize::new(0));
    let handles: Vec<u64> = (0..3)
        .map(|_| {
            let h = register(&table, 8, &released, 60_000).unwrap();
            release(&table, table.unregister(h).unwrap().unwrap());
            h
        })
        .collect();
    assert!(
        table.with_details(handles[0], |_, _| ()).is_none(),
        "oldest pushed out"
    );
    assert!(table.with_details(handles[2], |_, _| ()).is_some());
}

#[test]
fn invalidate_keeps_registration_until_unregister() {
    let table = small(8, 100);
    let released = Arc::new(AtomicUsize::new(0));
    let h = register(&table, 8, &released, 0).unwrap();
    table.invalidate(h).unwrap();
    assert_eq!(table.invalidate(h).err(), Some(Refusal::Invalidated));
    assert_eq!(table.begin(h).err(), Some(Refusal::Invalidated));
    assert_eq!(released.load(StdOrdering::SeqCst), 0);
    release(&table, table.unregister(h).unwrap().unwrap());
    assert_eq!(released.load(StdOrdering::SeqCst), 1);
}

#[test]
fn threads_race_access_against_unregister() {
    let table = Arc::new(small(64, u32::MAX));
    for _ in 0..if cfg!(miri) { 2 } else { 200 } {
        let released = Arc::new(AtomicUsize::new(0));
        let h = register(&table, 8, &released, 0).unwrap();
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (table, released) = (table.clone(), released.clone());
                std::thread::spawn(move || {
                    for _ in 0..10 {
                        if let Ok(a) = table.begin(h) {
                            assert_eq!(
                                released.load(StdOrdering::SeqCst),
                                0,
                                "object alive during access"
                            );
                            if let Some(claim) = table.end(a) {
                                release(&table, claim);
                            }
                        }
                    }
                })
            })
            .collect();
        if let Some(claim) = table.unregister(h).unwrap() {
            release(&table, claim);
        }
        for r in readers {
            r.join().unwrap();
        }
        assert_eq!(released.load(StdOrdering::SeqCst), 1);
    }
}

#[test]
fn inline_twins_take_only_the_plain_success_path() {
    use super::slot::NotInline;
    let table = small(8, 100);
    let released = Arc::new(AtomicUsize::new(0));
    let h = register(&table, 8, &released, 0).unwrap();
    let (slot, _, generation) = table.locate_handle(h).unwrap();
    // Begun inline twice, ended once inline and once by handle value.
    assert_eq!(slot.begin_inline(generation).unwrap() as usize, 8);
    assert_eq!(slot.begin_inline(generation).unwrap() as usize, 8);
    assert_eq!(table.word(h).unwrap().0.count(), 2);
    assert_eq!(slot.end_inline(generation), Ok(()));
    // Another generation's handle is refused without a write.
    assert_eq!(slot.begin_inline(generation + 1), Err(NotInline));
    assert_eq!(slot.end_inline(generation + 1), Err(NotInline));
    // Unregistered with one access in flight: the inline end refuses to end
    // it (it would have to release); the library's end claims the release.
    assert!(table.unregister(h).unwrap().is_none());
    assert_eq!(slot.begin_inline(generation), Err(NotInline));
    assert_eq!(slot.end_inline(generation), Err(NotInline));
    let ended = table.end_by_handle(h).unwrap();
    release(&table, ended.claim.expect("the last end claims"));
    assert_eq!(released.load(StdOrdering::SeqCst), 1);
    // Nothing in flight: the inline end refuses (and changes nothing).
    assert_eq!(slot.end_inline(generation), Err(NotInline));
    assert_eq!(table.begin(h).err(), Some(Refusal::Released));
}

#[test]
fn inline_twins_leave_slow_registrations_and_full_counts_to_the_library() {
    use super::slot::{MAX_ACCESSES, NotInline};
    let table = small(8, 100);
    let released = Arc::new(AtomicUsize::new(0));
    let slow = table
        .insert(|| {
            (
                Published {
                    slow: true,
                    ..Published::object(fake(8))
                },
                details(&released, 0),
            )
        })
        .unwrap();
    let (slot, _, generation) = table.locate_handle(slow).unwrap();
    assert_eq!(slot.begin_inline(generation), Err(NotInline));
    assert!(
        table.is_live(slow),
        "the slow bit does not make a handle invalid"
    );
    let access = table.begin(slow).unwrap();
    assert!(access.published.slow);
    assert_eq!(slot.end_inline(generation), Err(NotInline));
    assert!(table.end(access).is_none());

    let h = register(&table, 16, &released, 0).unwrap();
    let (slot, _, generation) = table.locate_handle(h).unwrap();
    // At the count limit, the inline begin hands over (the library refuses).
    slot.state
        .fetch_add(MAX_ACCESSES as u64, StdOrdering::SeqCst);
    assert_eq!(slot.begin_inline(generation), Err(NotInline));
    assert_eq!(table.begin(h).err(), Some(Refusal::TooManyAccesses));
    slot.state
        .fetch_sub(MAX_ACCESSES as u64, StdOrdering::SeqCst);
}

#[test]
fn the_process_table_places_a_threads_slots_together() {
    // A process table lives for ever: leak it, as its contract asks.
    // SAFETY: never dropped.
    let table: &'static Table<Counted> = Box::leak(Box::new(unsafe {
        Table::new_process(Limits::default(), 7)
    }));
    let released = Arc::new(AtomicUsize::new(0));
    let register_a_block = |table: &'static Table<Counted>| {
        let released = released.clone();
        move || {
            (0..BLOCK)
                .map(|_| {
                    let h = register(table, 8, &released, 0).unwrap();
                    table.decode(h).0
                })
                .collect::<Vec<u32>>()
        }
    };
    let mine = register_a_block(table)();
    let theirs = std::thread::spawn(register_a_block(table)).join().unwrap();
    // Each thread got one whole block of adjacent slots, two registrations
    // in a row never on one cache line (two 32-byte slots to a line).
    for indices in [&mine, &theirs] {
        let mut sorted = indices.clone();
        sorted.sort();
        assert_eq!(sorted[0] % BLOCK, 0, "{indices:?}");
        assert!(sorted.windows(2).all(|w| w[1] == w[0] + 1), "{indices:?}");
        assert!(
            indices.windows(2).all(|w| w[0] / 2 != w[1] / 2),
            "{indices:?}"
        );
    }
    assert_ne!(mine[0] / BLOCK, theirs[0] / BLOCK);
    // The other thread exited: its free slots went back to the shared stack,
    // and released slots come back to the thread that released them.
    let h = table.encode(mine[0], 1);
    release(table, table.unregister(h).unwrap().unwrap());
    let again = register(table, 8, &released, 0).unwrap();
    assert_eq!(
        table.decode(again),
        (mine[0], 2),
        "reused by its own thread"
    );
}

// ----- misuse cases of issue 11 (docs/reliability.md) ---------------------

#[test]
fn misuse_generation_exhaustion_retires_the_slot() {
    // Two slots, three generations each: the first slot is cycled through
    // all of its generations while the second stays registered.
    let table = small(2, 3);
    let released = Arc::new(AtomicUsize::new(0));
    let first = register(&table, 8, &released, 0).unwrap();
    let kept = register(&table, 16, &released, 0).unwrap();
    let (index, _) = table.decode(first);
    release(&table, table.unregister(first).unwrap().unwrap());
    let mut issued = vec![first];
    for generation in 2..=3 {
        let h = register(&table, 8, &released, 0).unwrap();
        assert_eq!(
            table.decode(h),
            (index, generation),
            "the same slot, reused"
        );
        release(&table, table.unregister(h).unwrap().unwrap());
        issued.push(h);
    }
    // Generation 3 was the last: the slot is retired, not freed, so the
    // table (its other slot taken) is full rather than reissuing a value.
    let made = std::cell::Cell::new(false);
    let refused = table.insert(|| {
        made.set(true);
        (Published::object(fake(8)), details(&released, 0))
    });
    assert_eq!(refused.err(), Some(Refusal::Full));
    assert!(!made.get(), "no reference taken for a refused registration");
    // Every handle the slot ever issued stays dead; the generation after
    // the last was never issued.
    for &h in &issued {
        assert_eq!(table.begin(h).err(), Some(Refusal::Released));
        assert_eq!(table.unregister(h).err(), Some(Refusal::Released));
        assert_eq!(table.end_by_handle(h).err(), Some(Refusal::Released));
    }
    assert_eq!(
        table.begin(table.encode(index, 4)).err(),
        Some(Refusal::InvalidHandle)
    );
    assert_eq!(table.word(issued[2]).unwrap().0.phase(), Phase::Free);
    // The other slot is unaffected, and once it is released, the table has
    // a slot to give again.
    assert!(table.is_live(kept));
    release(&table, table.unregister(kept).unwrap().unwrap());
    let again = register(&table, 8, &released, 0).unwrap();
    assert_ne!(table.decode(again).0, index);
    assert_eq!(released.load(StdOrdering::SeqCst), 4);
}

#[test]
fn misuse_in_flight_counter_saturation_is_an_error_and_leaves_the_other_bits() {
    use super::slot::{MAX_ACCESSES, NotInline};
    // 2^28 real begins take seconds in a debug build: the count is set
    // through the word (a test hook) to two below the limit, and the last
    // two accesses are real ones.
    let table = small(8, 100);
    let released = Arc::new(AtomicUsize::new(0));
    let h = register(&table, 8, &released, 0).unwrap();
    let (slot, _, generation) = table.locate_handle(h).unwrap();
    slot.state
        .fetch_add(MAX_ACCESSES as u64 - 2, StdOrdering::SeqCst);
    let a = table.begin(h).unwrap();
    assert_eq!(slot.begin_inline(generation).unwrap() as usize, 8);
    let full = slot.load(Ordering::SeqCst);
    assert_eq!(full, Word::new(generation, Phase::Live, MAX_ACCESSES));
    // Past the maximum: refused (GCS_ERROR_INVALID_ARGUMENT at the C
    // boundary, "too many accesses in flight"), by the exported and the
    // inline begin alike, and the word is exactly what it was: the count
    // never carries into the slow bit, the phase or the generation.
    for _ in 0..3 {
        assert_eq!(table.begin(h).err(), Some(Refusal::TooManyAccesses));
        assert_eq!(slot.begin_inline(generation), Err(NotInline));
        assert_eq!(slot.load(Ordering::SeqCst), full);
    }
    assert_eq!(table.check(h).map(|w| w.count()), Ok(MAX_ACCESSES));
    assert!(table.is_live(h));
    // The handle is still an ordinary live handle: an end makes room for
    // one begin, and unregistering it drains the counts down to a release.
    assert!(table.end(a).is_none());
    let b = table.begin(h).unwrap();
    assert_eq!(table.begin(h).err(), Some(Refusal::TooManyAccesses));
    assert!(table.unregister(h).unwrap().is_none());
    assert_eq!(
        slot.load(Ordering::SeqCst),
        Word::new(generation, Phase::Draining, MAX_ACCESSES)
    );
    assert_eq!(table.begin(h).err(), Some(Refusal::Releasing));
    assert!(table.end(b).is_none());
    assert_eq!(slot.end_inline(generation), Ok(()));
    // Hand the hook's counts back, down to the last access.
    slot.state
        .fetch_sub(MAX_ACCESSES as u64 - 3, StdOrdering::SeqCst);
    assert_eq!(
        slot.load(Ordering::SeqCst),
        Word::new(generation, Phase::Draining, 1)
    );
    release(&table, table.end_by_handle(h).unwrap().claim.unwrap());
    assert_eq!(released.load(StdOrdering::SeqCst), 1);
    assert_eq!(table.begin(h).err(), Some(Refusal::Released));
}

#[test]
fn misuse_register_and_unregister_inside_an_access_on_a_tiny_table() {
    // Pages of 2, 4, 8 slots: the table grows twice, then fills, while an
    // access of the first handle is in flight; handles registered inside
    // are accessed and unregistered (one of them with an access in flight
    // too), and a full table refuses without taking a reference.
    let table = small(14, 100);
    let released = Arc::new(AtomicUsize::new(0));
    let outer = register(&table, 8, &released, 0).unwrap();
    let access = table.begin(outer).unwrap();
    let outer_slot: *const Slot = access.slot;
    assert_eq!(table.capacity(), 1);
    let inner: Vec<u64> = (0..13)
        .map(|i| {
            table
                .insert(|| (Published::object(fake(16 + 8 * i)), details(&released, 0)))
                .unwrap()
        })
        .collect();
    assert_eq!(table.capacity(), 14, "grew into the third page");
    let made = std::cell::Cell::new(false);
    let full = table.insert(|| {
        made.set(true);
        (Published::object(fake(8)), details(&released, 0))
    });
    assert_eq!(full.err(), Some(Refusal::Full));
    assert!(!made.get());
    // Nested accesses of the new handles; half unregistered while accessed.
    for (i, &h) in inner.iter().enumerate() {
        let nested = table.begin(h).unwrap();
        assert_eq!(nested.published.object as usize, 16 + 8 * i);
        if i % 2 == 0 {
            assert!(table.unregister(h).unwrap().is_none());
            release(&table, table.end(nested).expect("the last end releases"));
        } else {
            assert!(table.end(nested).is_none());
            release(&table, table.unregister(h).unwrap().unwrap());
        }
    }
    assert_eq!(released.load(StdOrdering::SeqCst), 13);
    // The outer access is untouched by the growth: its slot did not move.
    assert!(core::ptr::eq(
        table.locate_handle(outer).unwrap().0,
        outer_slot
    ));
    assert_eq!(table.word(outer).unwrap().0.count(), 1);
    // Freed slots are reused while the outer access is still in flight.
    let reused = register(&table, 8, &released, 0).unwrap();
    assert!(!inner.contains(&reused));
    release(&table, table.unregister(reused).unwrap().unwrap());
    assert!(table.end(access).is_none());
    release(&table, table.unregister(outer).unwrap().unwrap());
    assert_eq!(released.load(StdOrdering::SeqCst), 15);
}
