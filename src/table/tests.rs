//! Unit tests of the table with a plain payload (no GLib): these run under
//! Miri (`cargo +nightly miri test --lib table`).

use super::*;
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
    let h = table.insert(|| (fake(8), details(&released, 0))).unwrap();
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
    let h = table
        .insert(|| (fake(8), details(&released, 1000)))
        .unwrap();
    let a = table.begin(h).unwrap();
    assert_eq!(a.object as usize, 8);
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
    let h = table.insert(|| (fake(8), details(&released, 0))).unwrap();
    assert_eq!(table.end_by_handle(h).err(), Some(Refusal::NotAccessing));
    let _a = table.begin(h).unwrap();
    let ((object, _), claim) = table.end_by_handle(h).unwrap();
    assert_eq!(object as usize, 8);
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
    let h1 = table.insert(|| (fake(8), details(&released, 0))).unwrap();
    let claim = table.unregister(h1).unwrap().unwrap();
    release(&table, claim);
    // Retention 0: swept at once, so the single slot is reused.
    let h2 = table.insert(|| (fake(16), details(&released, 0))).unwrap();
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
    let _a = table.insert(|| (fake(8), details(&released, 0))).unwrap();
    let _b = table.insert(|| (fake(8), details(&released, 0))).unwrap();
    let made = std::cell::Cell::new(false);
    let full = table.insert(|| {
        made.set(true);
        (fake(8), details(&released, 0))
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
        let h = table.insert(|| (fake(8), details(&released, 0))).unwrap();
        assert!(seen.insert(h), "a handle value is never issued twice");
        release(&table, table.unregister(h).unwrap().unwrap());
    }
    assert_eq!(
        table.insert(|| (fake(8), details(&released, 0))).err(),
        Some(Refusal::Full)
    );
    assert_eq!(released.load(StdOrdering::SeqCst), 3);
}

#[test]
fn retained_states_are_capped_fifo() {
    let table = small(8, 100); // max_retained 2
    let released = Arc::new(AtomicUsize::new(0));
    let handles: Vec<u64> = (0..3)
        .map(|_| {
            let h = table
                .insert(|| (fake(8), details(&released, 60_000)))
                .unwrap();
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
    let h = table.insert(|| (fake(8), details(&released, 0))).unwrap();
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
        let h = table.insert(|| (fake(8), details(&released, 0))).unwrap();
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
