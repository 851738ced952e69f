//! The safe Rust API with real GStreamer objects (gstreamer-rs), with
//! reference counts and weak references as evidence.

use std::sync::mpsc;
use std::thread;

use gcsafety::{ErrorCode, HandleState, Kind, Registration};
use gstreamer as gst;
use gstreamer::prelude::*;

fn init() {
    gst::init().expect("GStreamer initialises");
}

fn element(factory: &str, name: &str) -> gst::Element {
    gst::ElementFactory::make(factory)
        .name(name)
        .build()
        .expect("element from gstreamer1.0-plugins-base/core")
}

#[test]
fn register_access_unregister_with_an_element() {
    init();
    let sink = element("fakesink", "rust-sink");
    let weak = sink.downgrade();
    let handle = gcsafety::register(&sink).unwrap();
    assert_eq!(sink.ref_count(), 2, "ours + the registration's");
    drop(sink);
    let name = handle
        .safe_access(|object| {
            // SAFETY: the access keeps this GstElement* alive for the closure.
            let element: glib::translate::Borrowed<gst::Element> =
                unsafe { glib::translate::from_glib_borrow(object as *mut gst::ffi::GstElement) };
            element.name().to_string()
        })
        .unwrap();
    assert_eq!(name, "rust-sink");
    assert!(weak.upgrade().is_some(), "the registration keeps it alive");
    handle.unregister().unwrap();
    assert!(weak.upgrade().is_none(), "released exactly at unregister");
    let err = handle.safe_access(|_| ()).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Released);
    assert!(err.message().contains("not valid for access"), "{err}");
    assert!(err.message().contains("GstFakeSink"), "{err}");
    assert_eq!(handle.unregister().unwrap_err().code(), ErrorCode::Released);
}

#[test]
fn a_panic_inside_an_access_is_caught_and_invalidates() {
    init();
    let identity = element("identity", "panicky");
    let weak = identity.downgrade();
    let handle = Registration::gst_object(&identity)
        .instance_name("panicky")
        .register()
        .unwrap();
    drop(identity);
    let err = handle
        .safe_access(|_| -> () { panic!("boom in user code") })
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Panic);
    assert!(
        err.message().contains("panic during object access"),
        "{err}"
    );
    assert!(err.message().contains("boom in user code"), "{err}");
    assert!(!handle.is_valid());
    assert_eq!(handle.info().unwrap().state, HandleState::Invalidated);
    assert_eq!(
        handle.safe_access(|_| ()).unwrap_err().code(),
        ErrorCode::Invalidated
    );
    assert!(weak.upgrade().is_some(), "invalidated, not released");
    handle.unregister().unwrap();
    assert!(weak.upgrade().is_none());
}

#[test]
fn an_access_guard_may_end_on_another_thread_and_release_there() {
    init();
    let queue = element("queue", "moved");
    let weak = queue.downgrade();
    let handle = gcsafety::register(&queue).unwrap();
    drop(queue);
    let guard = handle.access().unwrap();
    handle.unregister().unwrap();
    assert!(!handle.is_valid(), "refused at once");
    assert!(
        weak.upgrade().is_some(),
        "kept alive by the access in flight"
    );
    let (tx, rx) = mpsc::channel();
    let worker = thread::spawn(move || {
        drop(guard); // the last access ends here: the release happens on this thread
        tx.send(()).unwrap();
    });
    rx.recv().unwrap();
    worker.join().unwrap();
    assert!(weak.upgrade().is_none());
}

#[test]
fn mini_objects_keep_their_own_reference() {
    init();
    let buffer = gst::Buffer::with_size(1024).unwrap();
    let handle = Registration::mini_object(&buffer)
        .instance_name("frame-1")
        .size_bytes(1024)
        .register()
        .unwrap();
    let info = handle.info().unwrap();
    assert_eq!(info.kind, Kind::MiniObject);
    assert_eq!(info.type_name, "GstBuffer");
    assert_eq!(info.instance_name.as_deref(), Some("frame-1"));
    assert_eq!(info.size_bytes, 1024);
    // SAFETY: reading the refcount of a live mini object.
    let refcount = || unsafe { (*buffer.as_ptr()).mini_object.refcount };
    assert_eq!(refcount(), 2);
    handle.unregister().unwrap();
    assert_eq!(refcount(), 1);
}

#[test]
fn weak_handles_do_not_keep_objects_alive() {
    init();
    let object = glib::Object::new::<glib::Object>();
    let handle = Registration::weak_gobject(&object).register().unwrap();
    assert_eq!(object.ref_count(), 1, "no strong reference taken");
    handle
        .safe_access(|_| assert_eq!(object.ref_count(), 2, "upgraded for the access"))
        .unwrap();
    assert_eq!(object.ref_count(), 1);
    drop(object);
    let err = handle.safe_access(|_| ()).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Released);
    assert!(!handle.is_valid());
}

#[test]
fn unregister_inside_an_access_releases_when_it_ends() {
    init();
    let element = element("fakesrc", "self-unregistering");
    let weak = element.downgrade();
    let handle = gcsafety::register(&element).unwrap();
    drop(element);
    handle
        .safe_access(|_| {
            handle.unregister().unwrap();
            assert!(weak.upgrade().is_some(), "alive until the access ends");
            // Its release waits for this very access: waiting would never end.
            assert_eq!(
                handle.unregister_sync(None).unwrap_err().code(),
                ErrorCode::WouldDeadlock
            );
            assert_eq!(handle.unregister().unwrap_err().code(), ErrorCode::Released);
        })
        .unwrap();
    assert!(weak.upgrade().is_none());
}

#[test]
fn unregister_sync_inside_its_own_access_would_deadlock_and_changes_nothing() {
    init();
    let element = element("fakesink", "deadlock-probe");
    let handle = gcsafety::register(&element).unwrap();
    handle
        .safe_access(|_| {
            let err = handle.unregister_sync(None).unwrap_err();
            assert_eq!(err.code(), ErrorCode::WouldDeadlock);
            assert!(handle.is_valid());
        })
        .unwrap();
    handle
        .unregister_sync(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    assert_eq!(element.ref_count(), 1);
}

#[test]
fn from_raw_accepts_any_value_and_refuses_garbage() {
    assert!(gcsafety::Handle::from_raw(0).is_none());
    for value in [1u64, u64::MAX, 0xdead_beef, 1 << 63] {
        let handle = gcsafety::Handle::from_raw(value).unwrap();
        assert!(!handle.is_valid());
        assert!(handle.safe_access(|_| ()).is_err());
        assert!(handle.unregister().is_err());
        assert!(handle.info().is_err());
    }
}

unsafe extern "C-unwind" fn count_release(
    object: *mut core::ffi::c_void,
    data: *mut core::ffi::c_void,
) {
    // SAFETY: `data` is the AtomicUsize of the test below, alive throughout.
    let counter = unsafe { &*(data as *const std::sync::atomic::AtomicUsize) };
    counter.fetch_add(object as usize, std::sync::atomic::Ordering::SeqCst);
}

#[test]
fn any_pointer_value_can_be_registered_as_a_pointer() {
    // Odd values (such as cgo.Handle numbers) are objects like any other.
    let released = std::sync::atomic::AtomicUsize::new(0);
    for value in [1usize, 3, 7, 0x1001, usize::MAX] {
        let handle = Registration::from_raw(Kind::Pointer, value as *mut core::ffi::c_void)
            .release(
                count_release,
                &released as *const _ as *mut core::ffi::c_void,
            )
            .register()
            .unwrap();
        let seen = handle.safe_access(|object| object as usize).unwrap();
        assert_eq!(seen, value);
        let guard = handle.access().unwrap();
        assert_eq!(guard.as_ptr() as usize, value);
        drop(guard);
        assert!(
            handle.is_valid(),
            "an odd pointer is not a dead weak reference"
        );
        let before = released.load(std::sync::atomic::Ordering::SeqCst);
        handle.unregister().unwrap();
        assert_eq!(
            released.load(std::sync::atomic::Ordering::SeqCst),
            before.wrapping_add(value)
        );
    }
}
