//! Builds every C test in `c-tests/` against the generated header and the
//! cdylib cargo just built, and runs it — plainly, under AddressSanitizer +
//! UBSan, and under valgrind memcheck (with GLib's suppressions); and, when
//! `scripts/tsan.sh` asks, under ThreadSanitizer against a library built
//! with the Rust side instrumented too (see `Variant::Tsan`).
//!
//! * `c-tests/test_*.c` link `-lgcsafety` and GStreamer.
//! * `c-tests/dlopen_*.c` link only GStreamer and libdl; they get the path of
//!   the library in `GCS_LIBRARY_PATH` and `dlopen` it themselves.
//!
//! Every file is compiled with `-std=c11 -Wall -Wextra -Wpedantic -Werror`.
//! The sanitizer and valgrind runs are `#[ignore]`d in a plain `cargo test`
//! (they need clang's runtime and valgrind, and take minutes); the README's
//! test command, `scripts/test.sh`, runs them with `--include-ignored`.
//! `GCS_C_TEST=name` runs only the test whose file stem is `name`. The
//! ThreadSanitizer run is `#[ignore]`d too and does nothing unless
//! `GCS_TSAN_LIB_DIR` is set, so that `--include-ignored` does not build the
//! library a second time: `scripts/tsan.sh` builds it and sets the variables.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

/// How a test binary is built and run.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Variant {
    Plain,
    Sanitized,
    Valgrind,
    /// ThreadSanitizer, with one TSan runtime in the process: the Rust
    /// toolchain's (`GCS_TSAN_RUNTIME`, `librustc-nightly_rt.tsan.a`), linked
    /// whole-archive into the test program and exported (`-rdynamic`) so
    /// that the library (`GCS_TSAN_LIB_DIR`, built by `scripts/tsan.sh` with
    /// `-Zsanitizer=thread -Zbuild-std`, which leaves the runtime to the
    /// executable) binds to it. The C sources are instrumented by clang
    /// (`-fsanitize=thread`) without clang's own runtime, which could differ
    /// in version from the one the library was instrumented for.
    /// `c-tests/tsan_glib_locks.c` is linked in to show GLib's locks to TSan;
    /// `c-tests/tsan.supp` names the uninstrumented libraries.
    Tsan,
}

/// The C tests not run under ThreadSanitizer, with the reason.
const NOT_UNDER_TSAN: &[(&str, &str)] = &[
    (
        "test_fatal",
        "each case runs the program again as a child process, to test single-threaded \
         diagnostics; under TSan every child starts the runtime and symbolizes \
         stacks, a minute in all",
    ),
    (
        "test_leaks",
        "each case runs the program again as a child process, to test the leak \
         report's output; under TSan every child starts the runtime, half a minute in all",
    ),
];

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

/// The directory of the libgcsafety.so the variant's programs link:
/// `GCS_TSAN_LIB_DIR` for TSan, else the one cargo built for this run.
fn lib_dir(variant: Variant) -> PathBuf {
    match variant {
        Variant::Tsan => PathBuf::from(
            std::env::var_os("GCS_TSAN_LIB_DIR").expect("scripts/tsan.sh sets GCS_TSAN_LIB_DIR"),
        ),
        _ => library_dir(),
    }
}

fn compile(source: &Path, variant: Variant, out_dir: &Path) -> PathBuf {
    let stem = source.file_stem().unwrap().to_string_lossy().into_owned();
    let lib_dir = lib_dir(variant);
    let binary = out_dir.join(&stem);
    let compiler = if matches!(variant, Variant::Sanitized | Variant::Tsan) {
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
    if variant == Variant::Tsan {
        let runtime = std::env::var_os("GCS_TSAN_RUNTIME")
            .expect("scripts/tsan.sh sets GCS_TSAN_RUNTIME (the toolchain's TSan runtime)");
        cmd.args([
            "-fsanitize=thread",
            "-fno-sanitize-link-runtime",
            "-fno-omit-frame-pointer",
        ])
        .arg(manifest_dir().join("c-tests/tsan_glib_locks.c"))
        .arg("-Wl,--whole-archive")
        .arg(runtime)
        .args(["-Wl,--no-whole-archive", "-rdynamic", "-lm", "-lrt"]);
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
    let lsan_suppressions = "c-tests/lsan.supp";
    let mut cmd = match variant {
        // A hang must not stall the run: TSan makes waits long, not endless.
        Variant::Tsan => {
            let mut cmd = Command::new("timeout");
            cmd.args(["--kill-after=10", "300"]).arg(binary);
            cmd
        }
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
            cmd.arg(binary);
            cmd
        }
        _ => Command::new(binary),
    };
    // cargo runs tests with LD_LIBRARY_PATH naming target/<profile>, where a
    // stale uplifted libgcsafety.so may be found before the binary's RUNPATH
    // (the fresh library in deps/): the C programs must not inherit it.
    cmd.env_remove("LD_LIBRARY_PATH");
    cmd.env("GCS_LIBRARY_PATH", lib_dir(variant).join("libgcsafety.so"))
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
        .env(
            "TSAN_OPTIONS",
            format!(
                "halt_on_error=1:second_deadlock_stack=1:suppressions={}",
                manifest_dir().join("c-tests/tsan.supp").display()
            ),
        )
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
    let mut sources = sources();
    if variant == Variant::Tsan {
        sources.retain(|source| {
            let stem = source.file_stem().unwrap().to_string_lossy();
            let skipped = NOT_UNDER_TSAN.iter().find(|(name, _)| *name == stem);
            if let Some((name, why)) = skipped {
                eprintln!("c-test {name} (Tsan): not run: {why}");
            }
            skipped.is_none()
        });
        assert!(!sources.is_empty(), "no C test left to run under TSan");
    }
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

#[test]
#[ignore = "needs the library built with -Zsanitizer=thread; run by scripts/tsan.sh"]
fn c_tests_tsan() {
    if std::env::var_os("GCS_TSAN_LIB_DIR").is_none() {
        eprintln!("c_tests_tsan: skipped: GCS_TSAN_LIB_DIR is not set (scripts/tsan.sh sets it)");
        return;
    }
    run_all(Variant::Tsan);
}
