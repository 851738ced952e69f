//! Managers, cleanups, finalizers and statistics through the Rust API, with
//! real GStreamer objects (weak references as evidence).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gcsafety::{Config, ErrorCode, Manager, Registration};
use gstreamer as gst;
use gstreamer::prelude::*;

/// Long enough never to be reached by a correct library, even on a loaded
/// machine: the timeout of every wait expected to succeed.
const LONG: Duration = Duration::from_secs(30);

fn element(factory: &str) -> gst::Element {
    gst::init().unwrap();
    gst::ElementFactory::make(factory).build().unwrap()
}

#[test]
fn close_releases_everything_and_refuses_new_work() {
    let manager = Manager::new(Config::default()).unwrap();
    let elements: Vec<gst::Element> = (0..3).map(|_| element("fakesink")).collect();
    let weaks: Vec<_> = elements.iter().map(|e| e.downgrade()).collect();
    let handles: Vec<_> = elements
        .iter()
        .map(|e| Registration::gst_object(e).register_with(&manager).unwrap())
        .collect();
    drop(elements);
    assert_eq!(manager.stats().active, 3);
    manager.close(Some(LONG)).unwrap();
    assert!(
        weaks.iter().all(|w| w.upgrade().is_none()),
        "all released by close"
    );
    for handle in handles {
        let err = handle.safe_access(|_| ()).unwrap_err();
        assert_eq!(err.code(), ErrorCode::ShutDown, "{err}");
    }
    let err = Registration::gst_object(&element("fakesink"))
        .register_with(&manager)
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::ShutDown);
    let stats = manager.stats();
    assert_eq!(
        (stats.active, stats.released, stats.total_registered),
        (0, 3, 3)
    );
}

#[test]
fn close_with_an_access_in_flight_times_out_and_releases_when_it_ends() {
    let manager = Manager::new(Config::default()).unwrap();
    let sink = element("fakesink");
    let weak = sink.downgrade();
    let handle = Registration::gst_object(&sink)
        .register_with(&manager)
        .unwrap();
    drop(sink);
    let guard = handle.access().unwrap();
    let err = manager.close(Some(Duration::from_millis(50))).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Timeout);
    assert!(weak.upgrade().is_some(), "kept alive by the access");
    std::thread::spawn(move || drop(guard)).join().unwrap();
    assert!(weak.upgrade().is_none(), "released when the access ended");
    manager.close(Some(Duration::ZERO)).unwrap();
}

#[test]
fn cleanups_run_once_newest_first_with_the_object_alive() {
    let manager = Manager::new(Config::default()).unwrap();
    let sink = element("fakesink");
    let weak = sink.downgrade();
    let handle = Registration::gst_object(&sink)
        .register_with(&manager)
        .unwrap();
    drop(sink);
    let order = Arc::new(Mutex::new(Vec::new()));
    for i in 0..3 {
        let (order, weak) = (order.clone(), weak.clone());
        handle
            .add_cleanup(move |object| {
                assert!(!object.is_null());
                assert!(weak.upgrade().is_some(), "alive inside the cleanup");
                order.lock().unwrap().push(i);
            })
            .unwrap();
    }
    handle.unregister().unwrap();
    assert_eq!(*order.lock().unwrap(), [2, 1, 0]);
    assert!(weak.upgrade().is_none());
    assert_eq!(
        handle.add_cleanup(|_| ()).unwrap_err().code(),
        ErrorCode::Released
    );
    assert_eq!(manager.stats().cleanups_run, 3);
}

#[test]
fn a_cycle_of_cleanups_terminates() {
    let manager = Manager::new(Config::default()).unwrap();
    let a = Registration::gst_object(&element("queue"))
        .register_with(&manager)
        .unwrap();
    let b = Registration::gst_object(&element("queue"))
        .register_with(&manager)
        .unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    for (me, other) in [(a, b), (b, a)] {
        let runs = runs.clone();
        me.add_cleanup(move |_| {
            runs.fetch_add(1, Ordering::SeqCst);
            let _ = other.unregister();
        })
        .unwrap();
    }
    a.unregister().unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert!(!a.is_valid() && !b.is_valid());
}

#[test]
fn finalizers_retry_then_count_and_are_skipped_after_invalidation() {
    let config = Config {
        max_finalizer_retries: 2,
        ..Config::default()
    };
    let manager = Manager::new(config).unwrap();

    let attempts = Arc::new(AtomicUsize::new(0));
    let handle = Registration::gst_object(&element("fakesink"))
        .register_with(&manager)
        .unwrap();
    let counted = attempts.clone();
    handle
        .set_finalizer(move |_| counted.fetch_add(1, Ordering::SeqCst) == 1) // fails once
        .unwrap();
    handle.unregister_sync(Some(LONG)).unwrap();
    assert_eq!(attempts.load(Ordering::SeqCst), 2);

    let always_failing = Registration::gst_object(&element("fakesink"))
        .register_with(&manager)
        .unwrap();
    let failed = Arc::new(AtomicUsize::new(0));
    let counted = failed.clone();
    always_failing
        .set_finalizer(move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
            false
        })
        .unwrap();
    always_failing.unregister_sync(Some(LONG)).unwrap();
    assert_eq!(
        failed.load(Ordering::SeqCst),
        3,
        "1 + max_finalizer_retries attempts"
    );

    let skipped = Registration::gst_object(&element("fakesink"))
        .register_with(&manager)
        .unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let counted = ran.clone();
    skipped
        .set_finalizer(move |_| counted.fetch_add(1, Ordering::SeqCst) < usize::MAX)
        .unwrap();
    skipped.invalidate().unwrap();
    skipped.unregister_sync(Some(LONG)).unwrap();
    assert_eq!(
        ran.load(Ordering::SeqCst),
        0,
        "skipped: the handle was invalidated"
    );

    let stats = manager.stats();
    assert_eq!((stats.finalizers_run, stats.finalizer_failures), (2, 1));
}

#[test]
fn stats_are_consistent_after_a_multi_thread_churn() {
    let manager = Arc::new(Manager::new(Config::default()).unwrap());
    let accesses = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (manager, accesses) = (manager.clone(), accesses.clone());
            std::thread::spawn(move || {
                for i in 0..200u64 {
                    let name = if i % 2 == 0 { "Even" } else { "Odd" };
                    let h = Registration::gst_object(&element("identity"))
                        .type_name(name)
                        .size_bytes(10 + t)
                        .register_with(&manager)
                        .unwrap();
                    for _ in 0..3 {
                        h.safe_access(|_| ()).unwrap();
                        accesses.fetch_add(1, Ordering::Relaxed);
                    }
                    h.unregister().unwrap();
                    assert!(h.safe_access(|_| ()).is_err());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let stats = manager.stats();
    assert_eq!(stats.total_registered, 800);
    assert_eq!(stats.released, 800);
    assert_eq!(stats.active, 0);
    assert_eq!(stats.tracked_bytes, 0);
    assert_eq!(stats.access_ok, accesses.load(Ordering::Relaxed) as u64);
    assert_eq!(stats.access_rejected, 800);
    let types = manager.type_stats();
    assert_eq!(
        types
            .iter()
            .map(|t| t.type_name.as_str())
            .collect::<Vec<_>>(),
        ["Even", "Odd"]
    );
    assert!(
        types
            .iter()
            .all(|t| t.registered == 400 && t.released == 400 && t.accesses == 1200)
    );
    let text = manager.prometheus();
    assert!(text.contains("gcs_registrations_total 800\n"), "{text}");
    assert!(
        text.contains("gcs_type_accesses_total{type=\"Odd\"} 1200\n"),
        "{text}"
    );
}

#[test]
fn memory_pressure_is_signalled_when_crossing_the_limit_not_on_every_registration() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let config = Config {
        memory_limit_bytes: 1000,
        memory_pressure: Some(Arc::new(move |tracked| {
            assert!(tracked > 1000);
            counted.fetch_add(1, Ordering::SeqCst);
        })),
        ..Config::default()
    };
    let manager = Manager::new(config).unwrap();
    let buffer = gst::Buffer::with_size(16).unwrap();
    let mut handles = Vec::new();
    for _ in 0..9 {
        handles.push(
            Registration::mini_object(&buffer)
                .size_bytes(100)
                .register_with(&manager)
                .unwrap(),
        );
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "900 bytes: below the limit"
    );
    let burst_started = Instant::now();
    for _ in 0..50 {
        handles.push(
            Registration::mini_object(&buffer)
                .size_bytes(100)
                .register_with(&manager)
                .unwrap(),
        );
    }
    let burst_took = burst_started.elapsed();
    let after_burst = calls.load(Ordering::SeqCst);
    // At most once per interval of the burst's duration, however long a
    // loaded machine made it (10 ms: the library's coarse clock).
    let intervals = (burst_took + Duration::from_millis(10)).as_millis()
        / gcsafety::MEMORY_PRESSURE_INTERVAL.as_millis();
    assert!(
        after_burst >= 1 && after_burst as u128 <= intervals + 1,
        "crossing signals once per interval, not per registration: \
         {after_burst} calls in {burst_took:?}"
    );
    std::thread::sleep(gcsafety::MEMORY_PRESSURE_INTERVAL + Duration::from_millis(20));
    handles.push(
        Registration::mini_object(&buffer)
            .size_bytes(100)
            .register_with(&manager)
            .unwrap(),
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        after_burst + 1,
        "again after the interval"
    );
    assert_eq!(manager.stats().tracked_bytes, 6000);
    for h in handles {
        h.unregister().unwrap();
    }
    assert_eq!(manager.stats().tracked_bytes, 0);
}

#[test]
fn release_context_releases_on_the_thread_iterating_it() {
    let context = glib::MainContext::new();
    let config = Config {
        release_context: Some(context.clone()),
        ..Config::default()
    };
    let manager = Manager::new(config).unwrap();
    let sink = element("fakesink");
    let weak = sink.downgrade();
    let handle = Registration::gst_object(&sink)
        .register_with(&manager)
        .unwrap();
    drop(sink);
    let released_on = Arc::new(Mutex::new(None));
    let record = released_on.clone();
    handle
        .add_cleanup(move |_| *record.lock().unwrap() = Some(std::thread::current().id()))
        .unwrap();
    std::thread::spawn(move || handle.unregister().unwrap())
        .join()
        .unwrap();
    assert!(
        weak.upgrade().is_some(),
        "not released until the context runs"
    );
    while context.iteration(false) {}
    assert!(weak.upgrade().is_none());
    assert_eq!(
        *released_on.lock().unwrap(),
        Some(std::thread::current().id())
    );
    manager.close(Some(LONG)).unwrap();
}

#[test]
fn a_cleanup_may_close_its_own_manager_without_deadlock() {
    let manager = Arc::new(Manager::new(Config::default()).unwrap());
    let handle = Registration::gst_object(&element("fakesink"))
        .register_with(&manager)
        .unwrap();
    let other = Registration::gst_object(&element("fakesink"))
        .register_with(&manager)
        .unwrap();
    let closer = manager.clone();
    let result = Arc::new(Mutex::new(None));
    let record = result.clone();
    handle
        .add_cleanup(move |_| {
            *record.lock().unwrap() = Some(closer.close(None).map_err(|e| e.code()));
        })
        .unwrap();
    handle.unregister().unwrap(); // runs the cleanup, which closes the manager
    let outcome = result.lock().unwrap().take().expect("the cleanup ran");
    assert_eq!(
        outcome,
        Err(ErrorCode::Timeout),
        "its own release was still running"
    );
    assert!(manager.is_closed());
    assert!(!other.is_valid(), "the close released the others");
    assert_eq!(manager.stats().active, 0);
}

#[test]
fn the_leak_report_lists_registrations_oldest_first_even_within_a_millisecond() {
    let manager = Manager::new(Config::default()).unwrap();
    let buffers: Vec<gst::Buffer> = {
        gst::init().unwrap();
        (0..64).map(|_| gst::Buffer::new()).collect()
    };
    // Recycle slots so that these registrations get slot indexes in the
    // reverse of their order (the free list is LIFO): an order by slot
    // would be wrong.
    let recycler = Manager::new(Config {
        state_retention: Duration::ZERO,
        ..Config::default()
    })
    .unwrap();
    let placeholders: Vec<_> = buffers
        .iter()
        .map(|b| {
            Registration::mini_object(b)
                .register_with(&recycler)
                .unwrap()
        })
        .collect();
    for handle in placeholders {
        handle.unregister().unwrap();
    }
    // Registered within a few microseconds: the coarse clock sees them all
    // at the same millisecond, so only registration order can sort them.
    let handles: Vec<_> = buffers
        .iter()
        .enumerate()
        .map(|(i, b)| {
            Registration::mini_object(b)
                .instance_name(format!("buffer-{i}"))
                .register_with(&manager)
                .unwrap()
        })
        .collect();
    // Unregister every third: the rest keep their order.
    for handle in handles.iter().step_by(3) {
        handle.unregister().unwrap();
    }
    let expected: Vec<_> = (0..64)
        .filter(|i| i % 3 != 0)
        .map(|i| format!("buffer-{i}"))
        .collect();
    let listed: Vec<_> = manager
        .live()
        .into_iter()
        .map(|info| info.instance_name.unwrap())
        .collect();
    assert_eq!(listed, expected);
    manager.close(Some(LONG)).unwrap();
    assert!(manager.live().is_empty());
}
