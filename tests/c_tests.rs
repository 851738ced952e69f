//! Builds every C test in `c-tests/` against the generated header and the
//! cdylib cargo just built, and runs it — plainly, under AddressSanitizer +
//! UBSan, and under valgrind memcheck (with GLib's suppressions).
//!
//! * `c-tests/test_*.c` link `-lgcsafety` and GStreamer.
//! * `c-tests/dlopen_*.c` link only GStreamer and libdl; they get the path of
//!   the library in `GCS_LIBRARY_PATH` and `dlopen` it themselves.
//!
//! Every file is compiled with `-std=c11 -Wall -Wextra -Wpedantic -Werror`.
//! The sanitizer and valgrind runs are `#[ignore]`d in a plain `cargo test`
//! (they need clang's runtime and valgrind, and take minutes); the README's
//! test command, `scripts/test.sh`, runs them with `--include-ignored`.
//! `GCS_C_TEST=name` runs only the test whose file stem is `name`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

/// How a test binary is built and run.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Variant {
    Plain,
    Sanitized,
    Valgrind,
}

use support::{library_dir, manifest_dir, pkg_config};

fn sources() -> Vec<PathBuf> {
    let only = std::env::var("GCS_C_TEST").ok();
    let mut files: Vec<PathBuf> = std::fs::read_dir(manifest_dir().join("c-tests"))
        .expect("c-tests/ exists")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "c"))
        .filter(|path| {
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            (stem.starts_with("test_") || stem.starts_with("dlopen_"))
                && only.as_ref().is_none_or(|o| *o == stem)
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no C tests found");
    files
}

fn compile(source: &Path, variant: Variant, out_dir: &Path) -> PathBuf {
    let stem = source.file_stem().unwrap().to_string_lossy().into_owned();
    let lib_dir = library_dir();
    let binary = out_dir.join(&stem);
    let compiler = if variant == Variant::Sanitized {
        "clang"
    } else {
        "cc"
    };
    let mut cmd = Command::new(compiler);
    cmd.args([
        "-std=c11",
        "-g",
        "-O1",
        "-Wall",
        "-Wextra",
        "-Wpedantic",
        "-Werror",
        "-pthread",
    ])
    .arg("-I")
    .arg(manifest_dir().join("include"))
    .arg("-I")
    .arg(manifest_dir().join("c-tests"))
    .args(pkg_config(&[
        "--cflags",
        "gstreamer-1.0",
        "gstreamer-app-1.0",
    ]))
    .arg(source)
    .arg("-o")
    .arg(&binary);
    if variant == Variant::Sanitized {
        cmd.args([
            "-fsanitize=address,undefined",
            "-fno-omit-frame-pointer",
            "-fno-sanitize-recover=undefined",
        ]);
    }
    if stem.starts_with("dlopen_") {
        cmd.arg("-ldl");
    } else {
        cmd.arg("-L")
            .arg(&lib_dir)
            .arg("-lgcsafety")
            .arg(format!("-Wl,-rpath,{}", lib_dir.display()));
    }
    cmd.args(pkg_config(&[
        "--libs",
        "gstreamer-1.0",
        "gstreamer-app-1.0",
    ]));
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {compiler}: {e} (scripts/setup.sh installs it)"));
    assert!(
        out.status.success(),
        "compiling {} failed:\n{}{}",
        source.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    binary
}

fn run(binary: &Path, variant: Variant) -> Result<(), String> {
    // dlopen tests unload the library without gcs_shutdown (not in this
    // version), leaving its statics unreachable: see the .supp file.
    let dlopen = binary
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("dlopen_"));
    let lsan_suppressions = if dlopen {
        "c-tests/dlclose-without-shutdown.lsan"
    } else {
        "c-tests/lsan.supp"
    };
    let mut cmd = match variant {
        Variant::Valgrind => {
            let mut cmd = Command::new("valgrind");
            cmd.args([
                "--error-exitcode=99",
                "--leak-check=full",
                "--errors-for-leak-kinds=definite",
                "--show-leak-kinds=definite",
                "--track-origins=yes",
                "--suppressions=/usr/share/glib-2.0/valgrind/glib.supp",
            ])
            .arg(format!(
                "--suppressions={}",
                manifest_dir().join("c-tests/gstreamer.supp").display()
            ));
            if dlopen {
                let extra = manifest_dir().join("c-tests/dlclose-without-shutdown.supp");
                cmd.arg(format!("--suppressions={}", extra.display()));
            }
            cmd.arg(binary);
            cmd
        }
        _ => Command::new(binary),
    };
    // cargo runs tests with LD_LIBRARY_PATH naming target/<profile>, where a
    // stale uplifted libgcsafety.so may be found before the binary's RUNPATH
    // (the fresh library in deps/): the C programs must not inherit it.
    cmd.env_remove("LD_LIBRARY_PATH");
    cmd.env("GCS_LIBRARY_PATH", library_dir().join("libgcsafety.so"))
        .env("GCS_SYMBOLS_FILE", manifest_dir().join("gcsafety.symbols"))
        .env("GST_REGISTRY_FORK", "no")
        .env(
            "ASAN_OPTIONS",
            "detect_leaks=1:abort_on_error=0:halt_on_error=1",
        )
        .env(
            "LSAN_OPTIONS",
            format!(
                "suppressions={}",
                manifest_dir().join(lsan_suppressions).display()
            ),
        )
        .env("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        .env("G_SLICE", "always-malloc")
        .env("G_DEBUG", "gc-friendly");
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} ({variant:?}) failed with {}:\n--- stdout\n{}--- stderr\n{}",
            binary.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn run_all(variant: Variant) {
    let out_dir = library_dir()
        .join("c-tests")
        .join(format!("{variant:?}").to_lowercase());
    std::fs::create_dir_all(&out_dir).expect("create output dir");
    let mut failures = Vec::new();
    let sources = sources();
    for source in &sources {
        let binary = compile(source, variant, &out_dir);
        match run(&binary, variant) {
            Ok(()) => eprintln!(
                "c-test {} ({variant:?}): ok",
                source.file_stem().unwrap().to_string_lossy()
            ),
            Err(failure) => failures.push(failure),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} C tests failed:\n{}",
        failures.len(),
        sources.len(),
        failures.join("\n")
    );
}

#[test]
fn c_tests() {
    run_all(Variant::Plain);
}

#[test]
#[ignore = "needs clang's sanitizer runtime; run by scripts/test.sh"]
fn c_tests_asan_ubsan() {
    run_all(Variant::Sanitized);
}

#[test]
#[ignore = "needs valgrind and takes minutes; run by scripts/test.sh"]
fn c_tests_valgrind() {
    run_all(Variant::Valgrind);
}
