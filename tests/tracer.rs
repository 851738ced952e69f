//! The `gcsafety` GStreamer tracer (`tracers/gstgcsafety.c`), built here as
//! `libgstgcsafety.so` against the cdylib cargo just built and loaded by
//! GStreamer from `GST_PLUGIN_PATH`:
//!
//! * `gst-launch-1.0` with `GST_TRACERS="gcsafety;leaks"` on a pipeline with
//!   an element that leaks its registration (`tests/tracer/gstgcsleaky.c`):
//!   a `gcs-handle-alive` record names it, at the address the leaks
//!   tracer's `object-alive` record gives;
//! * the plugin links the one shared `libgcsafety.so.0` and has no copy of
//!   it, and a plugin that embeds a static copy instead (the mistake this
//!   guards against) sees an empty table of its own;
//! * an application (`tests/tracer/tracer_app.c`): action signals,
//!   checkpoints, the SIGUSR1 dump.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{library_dir, manifest_dir, pkg_config};

/// How the built code gets gcsafety.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Link {
    /// `-lgcsafety`: the shared library (what the project builds).
    Shared,
    /// `libgcsafety.a` inside the plugin: a second copy (the negative control).
    StaticCopy,
}

/// Compile `source` (a plugin if `shared`, else a program) into `out`.
fn compile(source: &str, out: &Path, shared: bool, link: Link) {
    let lib_dir = library_dir();
    let mut cmd = Command::new("cc");
    cmd.args([
        "-std=c11",
        "-g",
        "-O1",
        "-Wall",
        "-Wextra",
        "-Wpedantic",
        "-Werror",
        "-pthread",
    ]);
    if shared {
        cmd.args(["-shared", "-fPIC", "-fvisibility=hidden"]);
    }
    cmd.arg("-I")
        .arg(manifest_dir().join("include"))
        .args(pkg_config(&["--cflags", "gstreamer-1.0"]))
        .arg(manifest_dir().join(source))
        .arg("-o")
        .arg(out);
    match link {
        Link::Shared => {
            cmd.arg("-L")
                .arg(&lib_dir)
                .arg("-lgcsafety")
                .arg(format!("-Wl,-rpath,{}", lib_dir.display()));
        }
        Link::StaticCopy => {
            // What the staticlib needs besides GStreamer (its glib crate
            // references GIO) and std's system libraries.
            cmd.arg(lib_dir.join("libgcsafety.a"))
                .args(pkg_config(&["--libs", "gio-2.0"]))
                .args(["-lgcc_s", "-lutil", "-lrt", "-lpthread", "-lm", "-ldl"]);
        }
    }
    cmd.args(pkg_config(&["--libs", "gstreamer-1.0"]));
    let result = cmd.output().expect("cc runs");
    assert!(
        result.status.success(),
        "compiling {source} failed:\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
}

/// A fresh directory under the library dir.
fn fresh_dir(name: &str) -> PathBuf {
    let dir = library_dir().join("tracer-test").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create dir");
    dir
}

/// A plugin directory with the tracer (linked as `link`) and the leaky
/// test element (always against the shared library, as an application's
/// code would be).
fn plugin_dir(name: &str, link: Link) -> PathBuf {
    let dir = fresh_dir(name);
    compile(
        "tracers/gstgcsafety.c",
        &dir.join("libgstgcsafety.so"),
        true,
        link,
    );
    compile(
        "tests/tracer/gstgcsleaky.c",
        &dir.join("libgstgcsleaky.so"),
        true,
        Link::Shared,
    );
    dir
}

/// A GStreamer run with our plugins, its own registry, and the tracer
/// records on stderr.
fn gst_command(program: &Path, plugins: &Path, tracers: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_remove("LD_LIBRARY_PATH")
        .env("GST_PLUGIN_PATH", plugins)
        .env("GST_REGISTRY", plugins.join("registry.bin"))
        .env("GST_REGISTRY_FORK", "no")
        .env("GST_TRACERS", tracers)
        .env("GST_DEBUG", "GST_TRACER:7")
        .env("GST_DEBUG_NO_COLOR", "1")
        .env_remove("GCS_DEBUG")
        .env_remove("GCS_LEAKS");
    cmd
}

fn run(mut cmd: Command) -> (Output, String) {
    let out = cmd.output().expect("the program runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

/// The value of `field=(type)value` in a record line.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let start = line.find(&format!(" {name}=("))? + name.len() + 2;
    let rest = &line[start..];
    let rest = &rest[rest.find(')')? + 1..];
    Some(rest.split([',', ';']).next().unwrap_or(rest))
}

/// The logged records `name` (not the format strings GStreamer also logs).
fn records<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    let prefix = format!("{name}, ");
    text.lines()
        .filter_map(|l| l.find(&prefix).map(|i| &l[i..]))
        .filter(|r| !r.contains("=(string)%s") && !r.contains("%lu") && !r.contains("%p"))
        .collect()
}

fn leaky_launch(plugins: &Path) -> String {
    let mut cmd = gst_command(Path::new("gst-launch-1.0"), plugins, "gcsafety;leaks");
    cmd.args([
        "-q",
        "fakesrc",
        "num-buffers=3",
        "!",
        "fakesink",
        "gcsleaky",
    ]);
    let (out, text) = run(cmd);
    assert!(out.status.success(), "gst-launch-1.0 failed:\n{text}");
    text
}

#[test]
fn gst_launch_reports_the_leaked_registration_next_to_the_leaks_tracer() {
    let plugins = plugin_dir("shared", Link::Shared);
    let text = leaky_launch(&plugins);
    let alive = records(&text, "gcs-handle-alive");
    assert_eq!(alive.len(), 1, "one live handle expected:\n{text}");
    let record = alive[0];
    assert_eq!(field(record, "type-name"), Some("GcsLeaky"), "{record}");
    assert_eq!(
        field(record, "description"),
        Some("<gcsleaky0>"),
        "{record}"
    );
    assert_eq!(field(record, "object-name"), Some("gcsleaky0"), "{record}");
    assert_eq!(
        field(record, "instance-name"),
        Some("leaked-by-gcsleaky"),
        "{record}"
    );
    assert_eq!(field(record, "state"), Some("live"), "{record}");
    assert_eq!(field(record, "accesses-in-flight"), Some("0"), "{record}");
    let handle = field(record, "handle").expect("handle");
    assert!(handle.starts_with("0x") && handle.len() == 18, "{record}");
    // The registration backtrace (GCS_REGISTER_CAPTURE_STACK) starts in the
    // element that registered; it spans the following lines.
    let after = &text[text.find(record).unwrap()..];
    assert!(after.contains("gcs_leaky_change_state"), "{after}");
    // The registration keeps the element alive, so the leaks tracer reports
    // it too, at the same address.
    let address = field(record, "address").expect("address");
    let leaks: Vec<&str> = records(&text, "object-alive")
        .into_iter()
        .filter(|l| field(l, "type-name") == Some("GcsLeaky"))
        .collect();
    assert_eq!(leaks.len(), 1, "{text}");
    assert_eq!(field(leaks[0], "address"), Some(address), "{text}");
    // The counters.
    let counters = *records(&text, "gcs-counters")
        .first()
        .expect("a gcs-counters record");
    assert_eq!(field(counters, "registered"), Some("1"), "{counters}");
    assert_eq!(field(counters, "active"), Some("1"), "{counters}");
    assert_eq!(field(counters, "released"), Some("0"), "{counters}");
    assert!(
        text.contains("1 handles still registered at gst_deinit"),
        "{text}"
    );
}

#[test]
fn the_plugin_uses_the_one_shared_library() {
    let plugins = plugin_dir("linkage", Link::Shared);
    let plugin = plugins.join("libgstgcsafety.so");
    let dynamic = Command::new("readelf")
        .arg("-d")
        .arg(&plugin)
        .output()
        .expect("readelf");
    let dynamic = String::from_utf8_lossy(&dynamic.stdout);
    assert!(dynamic.contains("[libgcsafety.so.0]"), "{dynamic}");
    let defined = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(&plugin)
        .output()
        .expect("nm");
    let defined = String::from_utf8_lossy(&defined.stdout);
    let exports =
        std::fs::read_to_string(manifest_dir().join("gcsafety.symbols")).expect("gcsafety.symbols");
    let copied: Vec<&str> = exports
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter(|name| {
            defined
                .lines()
                .any(|l| l.split_whitespace().last() == Some(*name))
        })
        .collect();
    assert!(
        copied.is_empty(),
        "the plugin defines {copied:?} (a copy of the library):\n{defined}"
    );
    // Linked against the shared library, it defines only the plugin's entry points.
    assert!(
        defined.contains("gst_plugin_gcsafety_get_desc"),
        "{defined}"
    );

    // The negative control: the same tracer with a static copy of the
    // library inside sees its own, empty, table, not the application's.
    let copy = plugin_dir("static-copy", Link::StaticCopy);
    let text = leaky_launch(&copy);
    assert!(records(&text, "gcs-handle-alive").is_empty(), "{text}");
    let counters = *records(&text, "gcs-counters")
        .first()
        .expect("a gcs-counters record");
    assert_eq!(field(counters, "registered"), Some("0"), "{counters}");
    // ... while the leaks tracer still sees the element the registration
    // (in the shared library's table) keeps alive.
    assert!(text.contains("type-name=(string)GcsLeaky"), "{text}");
}

#[test]
fn an_application_uses_the_signals_checkpoints_and_sigusr1() {
    let plugins = plugin_dir("app", Link::Shared);
    let app = plugins.join("tracer_app");
    compile("tests/tracer/tracer_app.c", &app, false, Link::Shared);
    let cmd = gst_command(&app, &plugins, "gcsafety(dump-on-sigusr1=true)");
    let (out, text) = run(cmd);
    assert!(out.status.success(), "tracer_app failed:\n{text}");
    assert!(text.contains("tracer_app: passed"), "{text}");
    // Everything was unregistered and gcs_shutdown ran before gst_deinit:
    // the report at gst_deinit lists nothing, and the counters say so.
    let last = *records(&text, "gcs-counters")
        .last()
        .expect("gcs-counters at gst_deinit");
    assert_eq!(field(last, "active"), Some("0"), "{last}");
    assert!(!text.contains("still registered at gst_deinit"), "{text}");
}
