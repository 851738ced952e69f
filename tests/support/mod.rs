//! What the integration tests that build C programs share: where the
//! sources are, where cargo put the cdylib for this test run, and
//! pkg-config's flags.

use std::path::PathBuf;
use std::process::Command;

/// The crate's directory.
pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The directory holding the cdylib cargo built for this test run:
/// `target/<profile>/deps`, next to this test binary. (Not the uplifted
/// `target/<profile>/libgcsafety.so`, which only `cargo build` refreshes:
/// `cargo test` rebuilds the copy in `deps/`.)
pub fn library_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/c_tests-<hash>
    let dir = exe.parent().expect("target/<profile>/deps").to_path_buf();
    assert!(
        dir.join("libgcsafety.so").exists(),
        "libgcsafety.so not found in {} (cargo builds the cdylib for integration tests)",
        dir.display()
    );
    // The library's soname is libgcsafety.so.0 (see build.rs): programs
    // linked against it look for that name, as after an install.
    let soname = dir.join("libgcsafety.so.0");
    if std::fs::read_link(&soname).is_err() {
        let _ = std::fs::remove_file(&soname);
        let _ = std::os::unix::fs::symlink("libgcsafety.so", &soname);
    }
    dir
}

pub fn pkg_config(args: &[&str]) -> Vec<String> {
    let out = Command::new("pkg-config")
        .args(args)
        .output()
        .expect("pkg-config runs");
    assert!(
        out.status.success(),
        "pkg-config {args:?} failed: {}\n(install libgstreamer1.0-dev: scripts/setup.sh)",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}
