//! Compiles the header-inline access path (include/gcsafety_inline.h, through
//! tests/model/inline_shim.c) into the fuzzer, so that its inline operations
//! run the code C programs run.
fn main() {
    println!("cargo:rerun-if-changed=../tests/model/inline_shim.c");
    println!("cargo:rerun-if-changed=../include/gcsafety.h");
    println!("cargo:rerun-if-changed=../include/gcsafety_inline.h");
    cc::Build::new()
        .file("../tests/model/inline_shim.c")
        .include("../include")
        .flag("-std=c11")
        .warnings_into_errors(true)
        .compile("gcs_model_shim");
}
