//! The library exports exactly the `gcs_` functions listed in
//! `gcsafety.symbols` (the ABI contract), nothing more or less — compared with
//! `nm -D --defined-only` on the built cdylib, as librsvg checks its
//! `librsvg.symbols`.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn exported_symbols_match_the_checked_in_list() {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/libgcsafety.so: the cdylib `cargo test` rebuilt.
    let library: PathBuf = exe.parent().unwrap().join("libgcsafety.so");
    let out = Command::new("nm")
        .args(["-D", "--defined-only", "--format=posix"])
        .arg(&library)
        .output();
    let out = out.expect("nm (binutils) is installed");
    assert!(out.status.success(), "nm failed on {}", library.display());
    let mut exported: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| name.starts_with("gcs_"))
        .map(str::to_owned)
        .collect();
    exported.sort();
    let listed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/gcsafety.symbols")).unwrap();
    let mut listed: Vec<String> = listed
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    listed.sort();
    assert_eq!(
        exported, listed,
        "exported gcs_ symbols differ from gcsafety.symbols"
    );
    // Every listed symbol is declared in the header.
    let header =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/gcsafety.h"))
            .unwrap();
    for symbol in &listed {
        let declared =
            header.contains(&format!(" {symbol}(")) || header.contains(&format!("*{symbol}("));
        assert!(declared, "{symbol} is not declared in include/gcsafety.h");
    }
}
