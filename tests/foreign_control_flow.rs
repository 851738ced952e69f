//! Foreign control flow through the C ABI: a Rust callback written as an
//! `extern "C-unwind" fn` (what a Rust program linking libgcsafety through
//! its C header would write) that panics. The library declares its callback
//! types `extern "C-unwind"`, so the unwind into its frames is defined; it
//! catches the panic, ends the access, and reports it. Evidence: the handle's
//! in-flight count (gcs_get_info), a sync unregister that succeeds, and the
//! reference count of a real GstBuffer (the registration's reference dropped
//! exactly once). Each test uses its own manager, so that its counters are
//! its own. See docs/foreign-control-flow.md.

use core::ffi::{CStr, c_int, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};

use gcsafety::ffi::cleanup::{gcs_add_cleanup, gcs_set_finalizer};
use gcsafety::ffi::error::gcs_last_error;
use gcsafety::ffi::handle::{
    GcsHandle, GcsHandleInfo, GcsHandleState, GcsManager, GcsObjectKind, GcsRegistration,
    gcs_get_info, gcs_is_valid, gcs_register_full, gcs_safe_access, gcs_unregister_sync,
};
use gcsafety::ffi::manager::{gcs_manager_close, gcs_manager_free, gcs_manager_new};
use gcsafety::ffi::stats::gcs_get_stats;
use gcsafety::ffi::{GcsResult, GcsStats};
use gstreamer as gst;

/// A generous timeout: a correct release happens at once.
const GENEROUS_MS: u32 = 10_000;

fn init() {
    gst::init().expect("GStreamer initialises");
}

/// A manager of the test's own.
struct TestManager(*mut GcsManager);

impl TestManager {
    fn new() -> TestManager {
        let mut manager = core::ptr::null_mut();
        assert_eq!(
            gcs_manager_new(core::ptr::null(), &mut manager),
            GcsResult::GCS_OK
        );
        TestManager(manager)
    }

    fn stats(&self) -> GcsStats {
        // SAFETY: GcsStats is plain data; zeroes are a valid value.
        let mut stats: GcsStats = unsafe { core::mem::zeroed() };
        stats.struct_size = size_of::<GcsStats>() as u32;
        assert_eq!(gcs_get_stats(self.0, &mut stats), GcsResult::GCS_OK);
        stats
    }

    fn register(&self, kind: GcsObjectKind, object: *mut c_void) -> GcsHandle {
        self.register_full(GcsRegistration {
            struct_size: size_of::<GcsRegistration>() as u32,
            manager: self.0,
            kind: kind as i32,
            object,
            type_name: core::ptr::null(),
            instance_name: core::ptr::null(),
            size_bytes: 0,
            release: None,
            release_data: core::ptr::null_mut(),
            flags: 0,
        })
    }

    fn register_full(&self, registration: GcsRegistration) -> GcsHandle {
        let mut handle = 0;
        assert_eq!(
            gcs_register_full(&registration, &mut handle),
            GcsResult::GCS_OK,
            "{}",
            last_error()
        );
        handle
    }
}

impl Drop for TestManager {
    fn drop(&mut self) {
        assert_eq!(gcs_manager_close(self.0, GENEROUS_MS), GcsResult::GCS_OK);
        gcs_manager_free(self.0);
    }
}

fn last_error() -> String {
    // SAFETY: gcs_last_error returns a NUL-terminated string valid until the
    // next gcs_ call on this thread; it is copied at once.
    unsafe { CStr::from_ptr(gcs_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn info(handle: GcsHandle) -> GcsHandleInfo {
    // SAFETY: GcsHandleInfo is plain data (NULL names); zeroes are valid.
    let mut info: GcsHandleInfo = unsafe { core::mem::zeroed() };
    info.struct_size = size_of::<GcsHandleInfo>() as u32;
    assert_eq!(gcs_get_info(handle, &mut info), GcsResult::GCS_OK);
    info
}

/// A buffer of ours (one reference) and its raw pointer.
fn buffer() -> (gst::Buffer, *mut c_void) {
    let buffer = gst::Buffer::with_size(64).expect("a buffer");
    let raw = buffer.as_ptr() as *mut c_void;
    (buffer, raw)
}

/// The reference count of a live buffer.
fn refcount(buffer: &gst::Buffer) -> i32 {
    // SAFETY: reading the refcount of a mini object we hold a reference to.
    unsafe { (*buffer.as_ptr()).mini_object.refcount }
}

/// Counts its calls in `*user_data` (an AtomicUsize), then panics.
unsafe extern "C-unwind" fn panicking_access(
    _object: *mut c_void,
    user_data: *mut c_void,
) -> c_int {
    // SAFETY: the tests pass an AtomicUsize that outlives the call.
    let calls = unsafe { &*(user_data as *const AtomicUsize) };
    calls.fetch_add(1, Ordering::SeqCst);
    panic!("the access callback panics on purpose");
}

/// Counts its calls in `*user_data`, then panics (cleanup or finalizer).
unsafe extern "C-unwind" fn panicking_cleanup(
    _object: *mut c_void,
    user_data: *mut c_void,
) -> c_int {
    // SAFETY: as above.
    let calls = unsafe { &*(user_data as *const AtomicUsize) };
    calls.fetch_add(1, Ordering::SeqCst);
    panic!("the cleanup panics on purpose");
}

/// Counts its calls in `*user_data` and succeeds.
unsafe extern "C-unwind" fn counting_cleanup(
    _object: *mut c_void,
    user_data: *mut c_void,
) -> c_int {
    // SAFETY: as above.
    let calls = unsafe { &*(user_data as *const AtomicUsize) };
    calls.fetch_add(1, Ordering::SeqCst);
    0
}

/// A GCS_KIND_POINTER release function: counts, then panics.
unsafe extern "C-unwind" fn panicking_release(_object: *mut c_void, user_data: *mut c_void) {
    // SAFETY: as above.
    let calls = unsafe { &*(user_data as *const AtomicUsize) };
    calls.fetch_add(1, Ordering::SeqCst);
    panic!("the release function panics on purpose");
}

#[test]
fn a_panicking_access_callback_ends_its_access_and_reports_gcs_error_panic() {
    init();
    let manager = TestManager::new();
    let (buffer, raw) = buffer();
    let handle = manager.register(GcsObjectKind::GCS_KIND_MINI_OBJECT, raw);
    assert_eq!(refcount(&buffer), 2, "ours + the registration's");
    let calls = AtomicUsize::new(0);

    let result = gcs_safe_access(
        handle,
        Some(panicking_access),
        &calls as *const AtomicUsize as *mut c_void,
    );

    assert_eq!(result, GcsResult::GCS_ERROR_PANIC);
    let message = last_error();
    assert!(
        message.contains("panic during object access")
            && message.contains("the access callback panics on purpose"),
        "{message}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(manager.stats().panics_recovered, 1);
    let after = info(handle);
    assert_eq!(
        after.accesses_in_flight, 0,
        "the panic did not leak the access"
    );
    assert_eq!(after.state, GcsHandleState::GCS_STATE_INVALIDATED);
    assert!(!gcs_is_valid(handle));
    assert_eq!(refcount(&buffer), 2, "invalidated, not yet released");

    assert_eq!(gcs_unregister_sync(handle, GENEROUS_MS), GcsResult::GCS_OK);
    assert_eq!(
        refcount(&buffer),
        1,
        "the registration's reference, dropped once"
    );
}

#[test]
fn the_table_keeps_working_after_a_panicking_callback() {
    init();
    let manager = TestManager::new();
    let (first, first_raw) = buffer();
    let (second, second_raw) = buffer();
    let panicked = manager.register(GcsObjectKind::GCS_KIND_MINI_OBJECT, first_raw);
    let bystander = manager.register(GcsObjectKind::GCS_KIND_MINI_OBJECT, second_raw);
    let calls = AtomicUsize::new(0);
    let user_data = &calls as *const AtomicUsize as *mut c_void;
    for _ in 0..3 {
        // Once for the panic, then refused: the handle is invalidated.
        let _ = gcs_safe_access(panicked, Some(panicking_access), user_data);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(manager.stats().panics_recovered, 1);

    assert_eq!(
        gcs_safe_access(bystander, Some(counting_cleanup), user_data),
        GcsResult::GCS_OK
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let (third, third_raw) = buffer();
    let fresh = manager.register(GcsObjectKind::GCS_KIND_MINI_OBJECT, third_raw);
    assert!(gcs_is_valid(fresh) && gcs_is_valid(bystander));
    for handle in [panicked, bystander, fresh] {
        assert_eq!(gcs_unregister_sync(handle, GENEROUS_MS), GcsResult::GCS_OK);
    }
    for buffer in [&first, &second, &third] {
        assert_eq!(refcount(buffer), 1);
    }
}

#[test]
fn a_panicking_cleanup_is_a_failure_and_the_release_completes() {
    init();
    let manager = TestManager::new();
    let (buffer, raw) = buffer();
    let handle = manager.register(GcsObjectKind::GCS_KIND_MINI_OBJECT, raw);
    let panics = AtomicUsize::new(0);
    let runs = AtomicUsize::new(0);
    let data = |counter: &AtomicUsize| counter as *const AtomicUsize as *mut c_void;
    // Cleanups run newest first: the panicking one, then the counting one.
    assert_eq!(
        gcs_add_cleanup(handle, Some(counting_cleanup), data(&runs)),
        GcsResult::GCS_OK
    );
    assert_eq!(
        gcs_add_cleanup(handle, Some(panicking_cleanup), data(&panics)),
        GcsResult::GCS_OK
    );

    assert_eq!(gcs_unregister_sync(handle, GENEROUS_MS), GcsResult::GCS_OK);

    assert_eq!(panics.load(Ordering::SeqCst), 1);
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the next cleanup still ran");
    let stats = manager.stats();
    assert_eq!((stats.cleanups_run, stats.cleanup_failures), (2, 1));
    assert_eq!(refcount(&buffer), 1, "released exactly once");
}

#[test]
fn a_panicking_finalizer_is_a_failure_and_the_release_completes() {
    init();
    let manager = TestManager::new();
    let (buffer, raw) = buffer();
    let handle = manager.register(GcsObjectKind::GCS_KIND_MINI_OBJECT, raw);
    let calls = AtomicUsize::new(0);
    assert_eq!(
        gcs_set_finalizer(
            handle,
            Some(panicking_cleanup),
            &calls as *const AtomicUsize as *mut c_void
        ),
        GcsResult::GCS_OK
    );

    assert_eq!(gcs_unregister_sync(handle, GENEROUS_MS), GcsResult::GCS_OK);

    // Tried, failed every time (a panic is a failure), given up: counted once.
    assert!(calls.load(Ordering::SeqCst) >= 1);
    assert_eq!(manager.stats().finalizer_failures, 1);
    assert_eq!(refcount(&buffer), 1, "released exactly once");
}

#[test]
fn a_panicking_release_function_is_counted_and_called_once() {
    init();
    let manager = TestManager::new();
    let calls = AtomicUsize::new(0);
    let mut object = 0u64;
    let handle = manager.register_full(GcsRegistration {
        struct_size: size_of::<GcsRegistration>() as u32,
        manager: manager.0,
        kind: GcsObjectKind::GCS_KIND_POINTER as i32,
        object: &mut object as *mut u64 as *mut c_void,
        type_name: core::ptr::null(),
        instance_name: core::ptr::null(),
        size_bytes: 0,
        release: Some(panicking_release),
        release_data: &calls as *const AtomicUsize as *mut c_void,
        flags: 0,
    });

    assert_eq!(gcs_unregister_sync(handle, GENEROUS_MS), GcsResult::GCS_OK);

    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(manager.stats().panics_recovered, 1);
    assert_eq!(info(handle).state, GcsHandleState::GCS_STATE_RELEASED);
}
