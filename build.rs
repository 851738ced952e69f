//! Generates the C header with cbindgen.
//!
//! The header `include/gcsafety.h` is committed. A normal build writes the
//! freshly generated header to `$OUT_DIR/gcsafety.h` only, and exposes its
//! path as `GCS_GENERATED_HEADER` to the tests, which fail if the committed
//! header differs (so a stale header breaks CI, and a build of a dependent or
//! `cargo publish`'s verification never writes into the source tree).
//! `GCS_REGENERATE_HEADER=1 cargo build` (or the `regenerate-header`
//! feature) writes `include/gcsafety.h` too.

use std::env;
use std::path::PathBuf;

fn main() {
    let crate_dir =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=GCS_REGENERATE_HEADER");

    // An soname, so that installed programs link libgcsafety.so.0, as
    // cargo-c would (the ABI version is the soname's major).
    if env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libgcsafety.so.0");
        // Never unloaded (DF_1_NODELETE), as libgobject: after a dlclose
        // without gcs_shutdown, GLib and other threads may still hold
        // pointers into the library (a release queued on a GMainContext, a
        // finalizer thread mid-call, the fork handlers), and unmapping it
        // would turn each into a crash. With the flag, a dlclose with live
        // handles is harmless and a later dlopen finds the same table
        // (c-tests/dlopen_live_handles.c checks the flag and both cases).
        println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    }

    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is valid");
    let generated = out_dir.join("gcsafety.h");
    match cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
    {
        Ok(bindings) => {
            bindings.write_to_file(&generated);
            let wanted = env::var_os("GCS_REGENERATE_HEADER").is_some_and(|v| v == "1")
                || env::var_os("CARGO_FEATURE_REGENERATE_HEADER").is_some();
            if wanted {
                bindings.write_to_file(crate_dir.join("include/gcsafety.h"));
            }
        }
        // A syntax error mid-edit: let rustc report it properly.
        Err(error) => println!("cargo:warning=cbindgen could not generate the header: {error}"),
    }
    println!(
        "cargo:rustc-env=GCS_GENERATED_HEADER={}",
        generated.display()
    );
}
