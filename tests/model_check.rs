//! The model check of the C ABI on stable, inside `cargo test`: the twin of
//! the fuzzer `fuzz/fuzz_targets/model.rs` (see `tests/model/mod.rs` for
//! what it checks). It drives the cdylib cargo built for this test run,
//! loaded with `dlopen`, and the header-inline path compiled into a shared
//! object linked against that same library: what C programs run.
//!
//! * `model_corpus`: every input of the fuzzer's committed corpus
//!   (`fuzz/corpus/model/`), so what the fuzzer learnt stays checked;
//! * `model_random`: proptest's random inputs (`PROPTEST_CASES`, default
//!   128), shrunk to a minimal operation sequence on failure.
//!
//! Runs are serialized (each ends with `gcs_shutdown`).

#[allow(dead_code)] // pkg_config: used by the tests that build C programs
mod support;

#[path = "model/mod.rs"]
mod model;

use std::ffi::{CString, c_void};
use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use proptest::prelude::*;

use support::{library_dir, manifest_dir};

/// `dlopen` with RTLD_NOW | RTLD_GLOBAL; the handle is never closed.
fn open(path: &Path) -> *mut c_void {
    let name = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid C string.
    let lib = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    if lib.is_null() {
        // SAFETY: dlerror's message.
        let error = unsafe { std::ffi::CStr::from_ptr(libc::dlerror()) };
        panic!("dlopen {}: {}", path.display(), error.to_string_lossy());
    }
    lib
}

/// The function `name` of `lib`, as the function pointer type `F`.
fn sym<F: Copy>(lib: *mut c_void, name: &str) -> F {
    assert_eq!(size_of::<F>(), size_of::<*mut c_void>());
    let cname = CString::new(name).unwrap();
    // SAFETY: lib is open.
    let f = unsafe { libc::dlsym(lib, cname.as_ptr()) };
    assert!(!f.is_null(), "{name} not found");
    // SAFETY: F is the function pointer type of the C declaration of `name`
    // (the fields of model::Api mirror include/gcsafety.h).
    unsafe { std::mem::transmute_copy(&f) }
}

/// Builds the inline shim against the cdylib of this test run.
fn build_shim(lib_dir: &Path) -> std::path::PathBuf {
    let out = std::env::temp_dir().join(format!("gcs-model-shim-{}.so", std::process::id()));
    let status = Command::new("cc")
        .args([
            "-std=c11",
            "-O2",
            "-Wall",
            "-Wextra",
            "-Wpedantic",
            "-Werror",
            "-shared",
            "-fPIC",
        ])
        .arg("-I")
        .arg(manifest_dir().join("include"))
        .arg(manifest_dir().join("tests/model/inline_shim.c"))
        .arg("-o")
        .arg(&out)
        .arg("-L")
        .arg(lib_dir)
        .arg("-lgcsafety")
        .status()
        .expect("cc runs");
    assert!(status.success(), "building the inline shim failed");
    out
}

fn api() -> model::Api {
    static API: OnceLock<model::Api> = OnceLock::new();
    *API.get_or_init(|| {
        let dir = library_dir();
        let lib = open(&dir.join("libgcsafety.so.0"));
        let shim_path = build_shim(&dir);
        let shim = open(&shim_path);
        let _ = std::fs::remove_file(&shim_path);
        // SAFETY: GStreamer initialised once, before any object is made.
        unsafe { gstreamer_sys::gst_init(std::ptr::null_mut(), std::ptr::null_mut()) };
        let available: unsafe extern "C" fn() -> bool = sym(shim, "gcs_model_inline_available");
        model::Api {
            register: sym(lib, "gcs_register"),
            register_full: sym(lib, "gcs_register_full"),
            safe_access: sym(lib, "gcs_safe_access"),
            access_begin: sym(lib, "gcs_access_begin"),
            access_end: sym(lib, "gcs_access_end"),
            is_valid: sym(lib, "gcs_is_valid"),
            unregister: sym(lib, "gcs_unregister"),
            unregister_sync: sym(lib, "gcs_unregister_sync"),
            invalidate: sym(lib, "gcs_invalidate"),
            get_info: sym(lib, "gcs_get_info"),
            add_cleanup: sym(lib, "gcs_add_cleanup"),
            set_finalizer: sym(lib, "gcs_set_finalizer"),
            config_init: sym(lib, "gcs_config_init"),
            configure: sym(lib, "gcs_configure"),
            manager_new: sym(lib, "gcs_manager_new"),
            manager_close: sym(lib, "gcs_manager_close"),
            manager_free: sym(lib, "gcs_manager_free"),
            shutdown: sym(lib, "gcs_shutdown"),
            get_stats: sym(lib, "gcs_get_stats"),
            foreach_live_handle: sym(lib, "gcs_foreach_live_handle"),
            last_error: sym(lib, "gcs_last_error"),
            // SAFETY: a plain call of the shim.
            inline_available: unsafe { available() },
            begin_inline: sym(shim, "gcs_model_begin_inline"),
            end_inline: sym(shim, "gcs_model_end_inline"),
            is_valid_inline: sym(shim, "gcs_model_is_valid_inline"),
            safe_access_inline: sym(shim, "gcs_model_safe_access_inline"),
        }
    })
}

/// One run at a time: each ends with gcs_shutdown.
static SERIAL: Mutex<()> = Mutex::new(());

fn run(data: &[u8]) {
    let api = api();
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    model::run(api, data);
}

#[test]
fn model_corpus() {
    let dir = manifest_dir().join("fuzz/corpus/model");
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    inputs.sort();
    assert!(
        inputs.len() >= 16,
        "the committed corpus has {} inputs",
        inputs.len()
    );
    for input in inputs {
        let data = std::fs::read(&input).unwrap();
        eprintln!("{}", input.display());
        run(&data);
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn model_random(data in proptest::collection::vec(any::<u8>(), 0..1024)) {
        run(&data);
    }
}
