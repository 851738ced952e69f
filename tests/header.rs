//! The committed header must be exactly what cbindgen generates from the
//! sources (build.rs writes the fresh one to `$OUT_DIR`). Regenerate with
//! `GCS_REGENERATE_HEADER=1 cargo build`.

#[test]
fn committed_header_is_up_to_date() {
    let generated = std::fs::read_to_string(env!("GCS_GENERATED_HEADER"))
        .expect("build.rs generated the header");
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/gcsafety.h"))
            .expect("include/gcsafety.h is committed");
    assert!(
        generated == committed,
        "include/gcsafety.h is stale: run `GCS_REGENERATE_HEADER=1 cargo build` and commit it"
    );
}

#[test]
fn header_includes_only_standard_headers() {
    let header =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/gcsafety.h"))
            .unwrap();
    let includes: Vec<&str> = header
        .lines()
        .filter(|l| l.trim_start().starts_with("#include"))
        .collect();
    assert_eq!(
        includes,
        [
            "#include <stdint.h>",
            "#include <stddef.h>",
            "#include <stdbool.h>",
            // The hand-written header-inline table functions, which include nothing.
            "#include \"gcsafety_inline.h\"",
        ]
    );
    let inline = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/include/gcsafety_inline.h"
    ))
    .unwrap();
    assert!(
        !inline
            .lines()
            .any(|l| l.trim_start().starts_with("#include")),
        "gcsafety_inline.h includes nothing"
    );
    // It is written for one table layout, and says so to the compiler: a
    // layout change in the sources makes it fail to compile until updated.
    assert!(inline.contains(&format!(
        "#if GCS_TABLE_LAYOUT_VERSION != {}",
        gcsafety::ffi::table::GCS_TABLE_LAYOUT_VERSION
    )));
    for required in [
        "#define GCS_ABI_VERSION 1",
        "#define GCS_INVALID_HANDLE 0",
        "#ifndef GCSAFETY_H",
        "extern \"C\"",
    ] {
        assert!(header.contains(required), "header lacks {required}");
    }
}
