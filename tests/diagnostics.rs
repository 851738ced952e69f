//! Leak checkpoints and the live-handle report from Rust (the C side is
//! `tests/tracer/tracer_app.c`), with real GStreamer elements. One test: the
//! checkpoint is process-wide.

use gstreamer as gst;
use gstreamer::prelude::*;

#[test]
fn checkpoints_and_the_live_handle_report() {
    gst::init().unwrap();
    let manager = gcsafety::Manager::new(gcsafety::Config::default()).unwrap();
    let early = gst::ElementFactory::make("fakesink")
        .name("early-sink")
        .build()
        .unwrap();
    let early_handle = gcsafety::Registration::gst_object(&early)
        .instance_name("early")
        .register_with(&manager)
        .unwrap();

    gcsafety::leaks_checkpoint();
    let late = gst::ElementFactory::make("fakesink")
        .name("late-sink")
        .build()
        .unwrap();
    let late_handle = gcsafety::Registration::gst_object(&late)
        .register_with(&manager)
        .unwrap();
    let buffer = gst::Buffer::with_size(64).unwrap();
    let buffer_handle = gcsafety::Registration::mini_object(&buffer)
        .register_with(&manager)
        .unwrap();

    // Since the checkpoint: the two later ones, oldest first.
    let since = gcsafety::live_handles(true);
    assert_eq!(since.len(), 2, "{since:?}");
    assert_eq!(since[0].info.handle, late_handle);
    assert_eq!(since[0].object_name.as_deref(), Some("late-sink"));
    assert_eq!(since[0].address, late.as_ptr() as usize);
    assert!(since.iter().all(|l| l.since_checkpoint));
    assert_eq!(since[1].info.handle, buffer_handle);
    assert_eq!(since[1].object_name, None); // a mini object has no GstObject name
    assert_eq!(since[1].info.type_name, "GstBuffer");

    // Everything live: the early one too, not since the checkpoint.
    let all = gcsafety::live_handles(false);
    assert_eq!(all.len(), 3, "{all:?}");
    assert_eq!(all[0].info.handle, early_handle);
    assert_eq!(all[0].info.instance_name.as_deref(), Some("early"));
    assert!(!all[0].since_checkpoint);

    // A released handle leaves the report; the counters follow.
    late_handle.unregister().unwrap();
    let since = gcsafety::live_handles(true);
    assert_eq!(since.len(), 1);
    assert_eq!(since[0].info.handle, buffer_handle);
    let total = gcsafety::total_stats();
    assert!(
        total.total_registered >= 3 && total.released >= 1,
        "{total:?}"
    );
    assert_eq!(
        total.active,
        manager.stats().active + other_active(&manager)
    );

    // A new checkpoint: nothing since.
    gcsafety::leaks_checkpoint();
    assert!(gcsafety::live_handles(true).is_empty());
    manager.close(None).unwrap();
    assert!(gcsafety::live_handles(false).is_empty());
}

/// Live handles of managers other than `manager` (the default one, if a
/// test started it): the total is the sum.
fn other_active(manager: &gcsafety::Manager) -> u64 {
    let ours = manager.live().len() as u64;
    gcsafety::live_handles(false).len() as u64 - ours
}
