//! Access-path and registration benchmarks of gcsafety against baselines.
//!
//! One `cargo bench --bench access` run measures, with criterion (medians):
//!
//! * groups `access_1thread`, `access_2threads_shared` (both threads on ONE
//!   handle/key/object) and `access_2threads_distinct` (each thread on its
//!   own), each with the functions
//!   - `gcsafety_safe_access`: `gcs_safe_access(handle, callback, user_data)`
//!     on a live handle of a registered `fakesink` (GCS_KIND_GST_OBJECT);
//!   - `gcsafety_begin_end`: `gcs_access_begin`, the callback, `gcs_access_end`;
//!   - `floor`: the callback called through a function pointer between a
//!     `fetch_add(1, Acquire)` and a `fetch_sub(1, Release)` on one `AtomicU64`
//!     (the least any "count accesses in flight" design can do);
//!   - `rwlock_hashmap`: the original Go design in Rust: read-lock a
//!     `std::sync::RwLock<HashMap<u64, Arc<State>>>`, look up, clone the Arc,
//!     unlock, check the `AtomicI32` validity flag, call the callback, drop
//!     the Arc. Also `rwlock_hashmap_fxhash` (the same with a multiplicative
//!     hash, closer to Go's AES map hash than SipHash) and
//!     `parking_lot_rwlock_hashmap` (parking_lot's RwLock, SipHash);
//!   - `sharded_slab_get`: `sharded_slab::Slab::get`, the guard held across the
//!     callback;
//!   - `g_weak_ref_get`: `g_weak_ref_get`, the callback, `g_object_unref` on a
//!     real GObject (a `fakesink`);
//!   - (1 thread only) `gcsafety_rust_safe_access`: the Rust API,
//!     `Handle::safe_access`, for the cost of the C boundary.
//! * group `register_unregister`: `gcs_register_full` of a GCS_KIND_POINTER
//!   with a no-op release function + `gcs_unregister` (`gcsafety_pointer`),
//!   `sharded_slab::Slab::insert` + `remove` (`sharded_slab_insert_remove`),
//!   and `gcs_register` + `gcs_unregister` of a `fakesink`
//!   (`gcsafety_gst_object`, for information).
//!
//! Every state a thread touches (baselines included) sits alone on a 128-byte
//! aligned line, as gcsafety's slots do, so "distinct" never false-shares.
//!
//! Every benchmark runs the same loop through `iter_custom`: on one thread,
//! or, for two threads, per sample two threads are spawned, meet at a
//! spinning barrier, and each runs `iters` operations; the sample's time is
//! from the first thread's start to the last thread's end, so criterion
//! reports wall time / `iters` = the time of one operation as one thread
//! sees it. Every function of a group is measured the same way.
//!
//! Environment:
//! * `GCS_BENCH_CLOCK=cpu` times samples with the threads' CPU time
//!   (`CLOCK_THREAD_CPUTIME_ID`) instead of wall time: on a busy machine,
//!   time spent descheduled is then not counted. For two threads it is the
//!   slower thread's CPU time, a lower bound: contention costs only count
//!   while both threads really run at once.
//! * `GCS_BENCH_STATE_RETENTION_MS=<ms>` configures the default manager's
//!   `state_retention` before the first registration (the default is 300 s);
//!   the registration benchmark is then named
//!   `gcsafety_pointer_retention<ms>ms`.
//!
//! Each group also writes `target/criterion/<group>/gcsafety-run.json`: the
//! clock, the retention, and how much CPU other processes (and the
//! hypervisor, as steal) used while the group ran, so a report can tell a
//! clean run from a disturbed one.
//!
//! `python3 scripts/bench-report.py` turns the results into a table.

// criterion_group! generates an undocumented pub fn.
#![allow(missing_docs)]

use std::collections::HashMap;
use std::ffi::{c_int, c_void};
use std::hash::{BuildHasherDefault, Hasher};
use std::hint::black_box;
use std::ptr;
use std::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{Bencher, BenchmarkGroup, Criterion, criterion_group, criterion_main};
use gcsafety::ffi::error::GcsResult;
use gcsafety::ffi::handle::{
    GcsHandle, GcsObjectKind, GcsRegistration, gcs_access_begin, gcs_access_end, gcs_register,
    gcs_register_full, gcs_safe_access, gcs_unregister,
};
use gobject_sys::{GObject, GWeakRef};
use gstreamer::glib::translate::ToGlibPtr;
use sharded_slab::Slab;

// ----- the callback every design calls --------------------------------------

type Callback = unsafe extern "C-unwind" fn(object: *mut c_void, user_data: *mut c_void) -> c_int;

/// The access callback: a trivial, opaque use of its arguments.
extern "C-unwind" fn callback(object: *mut c_void, user_data: *mut c_void) -> c_int {
    black_box(object);
    black_box(user_data);
    0
}

/// The callback as an opaque function pointer: every call is indirect.
fn opaque_callback() -> Callback {
    black_box(callback as Callback)
}

/// Padding to a 128-byte line pair (x86's adjacent-line prefetch), as
/// gcsafety's slots and crossbeam's `CachePadded`.
#[repr(C, align(128))]
struct Padded<T>(T);

// ----- baseline 1: the floor ---------------------------------------------------

#[inline(always)]
fn floor_op(
    counter: &AtomicU64,
    cb: Callback,
    object: *mut c_void,
    user_data: *mut c_void,
) -> c_int {
    counter.fetch_add(1, Ordering::Acquire);
    // SAFETY: `callback` accepts any arguments.
    let status = unsafe { cb(object, user_data) };
    counter.fetch_sub(1, Ordering::Release);
    status
}

// ----- baseline 2: the Go design (RwLock<HashMap<u64, Arc<State>>>) ------------

/// What the Go design keeps per handle.
struct GoState {
    valid: AtomicI32,
    object: usize,
}

/// FxHash's multiplicative hash (one multiply per u64), standing in for Go's
/// AES-based map hash; std's SipHash-1-3 costs more.
#[derive(Default)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type GoMap<S> = HashMap<u64, Arc<Padded<GoState>>, S>;

/// The Go design's registry, over any lock and hasher.
trait GoRegistry: Sync {
    fn with_map<R>(&self, f: impl FnOnce(&GoMap<Self::Hasher>) -> R) -> R;
    type Hasher: std::hash::BuildHasher;
}

struct StdRwLock<S>(RwLock<GoMap<S>>);
struct PlRwLock<S>(parking_lot::RwLock<GoMap<S>>);

impl<S: std::hash::BuildHasher + Send + Sync> GoRegistry for StdRwLock<S> {
    type Hasher = S;
    #[inline(always)]
    fn with_map<R>(&self, f: impl FnOnce(&GoMap<S>) -> R) -> R {
        f(&self.0.read().unwrap())
    }
}

impl<S: std::hash::BuildHasher + Send + Sync> GoRegistry for PlRwLock<S> {
    type Hasher = S;
    #[inline(always)]
    fn with_map<R>(&self, f: impl FnOnce(&GoMap<S>) -> R) -> R {
        f(&self.0.read())
    }
}

fn go_map<S: std::hash::BuildHasher + Default>(keys: &[(u64, *mut c_void)]) -> GoMap<S> {
    let mut map = GoMap::<S>::default();
    for &(key, object) in keys {
        map.insert(
            key,
            Arc::new(Padded(GoState {
                valid: AtomicI32::new(1),
                object: object as usize,
            })),
        );
    }
    map
}

/// `safeAccess` of the Go design: lock, look up, clone, unlock, check, call.
#[inline(never)]
fn go_access<R: GoRegistry>(registry: &R, key: u64, cb: Callback, user_data: *mut c_void) -> c_int {
    let Some(state) = registry.with_map(|map| map.get(&key).cloned()) else {
        return -1;
    };
    if state.0.valid.load(Ordering::Acquire) != 1 {
        return -3;
    }
    // SAFETY: `callback` accepts any arguments.
    unsafe { cb(state.0.object as *mut c_void, user_data) }
}

// ----- baseline 3: sharded_slab ------------------------------------------------

#[inline(never)]
fn slab_access(
    slab: &Slab<Padded<usize>>,
    key: usize,
    cb: Callback,
    user_data: *mut c_void,
) -> c_int {
    let Some(entry) = slab.get(key) else {
        return -1;
    };
    // SAFETY: `callback` accepts any arguments.
    let status = unsafe { cb(entry.0 as *mut c_void, user_data) };
    drop(entry);
    status
}

// ----- baseline 4: GWeakRef ------------------------------------------------------

/// A `GWeakRef` on a line of its own; boxed, as it must not move.
struct WeakRef(Box<Padded<GWeakRef>>);

// SAFETY: GWeakRef is made to be used from any thread.
unsafe impl Sync for WeakRef {}
unsafe impl Send for WeakRef {}

impl WeakRef {
    fn new(object: *mut GObject) -> Self {
        // SAFETY: a zeroed GWeakRef is what g_weak_ref_init expects (G_WEAK_REF_INIT).
        let mut weak = Box::new(Padded(unsafe { std::mem::zeroed::<GWeakRef>() }));
        // SAFETY: `object` is a live GObject; `weak` does not move until cleared.
        unsafe { gobject_sys::g_weak_ref_init(&mut weak.0, object.cast()) };
        WeakRef(weak)
    }

    fn as_ptr(&self) -> *mut GWeakRef {
        ptr::from_ref(&self.0.0).cast_mut()
    }
}

impl Drop for WeakRef {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, cleared once.
        unsafe { gobject_sys::g_weak_ref_clear(&mut self.0.0) }
    }
}

#[inline(never)]
fn weak_access(weak: &WeakRef, cb: Callback, user_data: *mut c_void) -> c_int {
    // SAFETY: an initialised GWeakRef.
    let object = unsafe { gobject_sys::g_weak_ref_get(weak.as_ptr()) };
    if object.is_null() {
        return -2;
    }
    // SAFETY: `callback` accepts any arguments.
    let status = unsafe { cb(object.cast(), user_data) };
    // SAFETY: g_weak_ref_get returned a strong reference.
    unsafe { gobject_sys::g_object_unref(object.cast()) };
    status
}

// ----- gcsafety ops --------------------------------------------------------------

#[inline(always)]
fn gcs_safe_access_op(handle: GcsHandle, cb: Callback, user_data: *mut c_void) -> GcsResult {
    gcs_safe_access(handle, Some(cb), user_data)
}

#[inline(always)]
fn gcs_begin_end_op(handle: GcsHandle, cb: Callback, user_data: *mut c_void) -> c_int {
    let mut object = ptr::null_mut();
    let begun = gcs_access_begin(handle, &mut object);
    // SAFETY: `callback` accepts any arguments.
    let status = unsafe { cb(object, user_data) };
    let ended = gcs_access_end(handle);
    status + begun as c_int + ended as c_int
}

// ----- the two-thread harness ----------------------------------------------------

/// Both threads arrive, then go together. Spins briefly, then yields (the
/// machine may be shared).
fn rendezvous(arrived: &AtomicUsize, parties: usize) {
    arrived.fetch_add(1, Ordering::AcqRel);
    let mut spins = 0u32;
    while arrived.load(Ordering::Acquire) < parties {
        if spins < 10_000 {
            std::hint::spin_loop();
            spins += 1;
        } else {
            std::thread::yield_now();
        }
    }
}

/// What a sample's time is measured with (`GCS_BENCH_CLOCK`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Clock {
    /// Wall time (`Instant`), the default: what a caller waits.
    Wall,
    /// The measuring thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`): time
    /// while descheduled is not counted, so other processes on a busy
    /// machine disturb the figures less; for two threads, the CPU time of
    /// the slower thread (a lower bound of the wall time: contention counts
    /// only while both threads actually run).
    ThreadCpu,
}

impl Clock {
    fn from_env() -> Clock {
        match std::env::var("GCS_BENCH_CLOCK").as_deref() {
            Err(_) | Ok("") | Ok("wall") => Clock::Wall,
            Ok("cpu") => Clock::ThreadCpu,
            Ok(other) => panic!("GCS_BENCH_CLOCK={other}: expected wall or cpu"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Clock::Wall => "wall",
            Clock::ThreadCpu => "cpu",
        }
    }

    /// A reading of this clock, as time since an arbitrary origin.
    #[inline(never)]
    fn now(self) -> Duration {
        let id = match self {
            Clock::Wall => libc::CLOCK_MONOTONIC,
            Clock::ThreadCpu => libc::CLOCK_THREAD_CPUTIME_ID,
        };
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid clock id and a writable timespec.
        let rc = unsafe { libc::clock_gettime(id, &mut ts) };
        assert_eq!(rc, 0, "clock_gettime");
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }
}

/// A sample whose threads were descheduled for more than a tenth of it is
/// measured again, up to [`ATTEMPTS`] times in all, keeping the sample whose
/// threads ran the most: on a shared machine a two-thread sample whose
/// threads did not really run at once measures the scheduler, not contention.
const MIN_RUNNING: f64 = 0.9;
const ATTEMPTS: usize = 3;
/// Shorter samples (criterion's first warm-up steps) are not judged: the
/// clock reads themselves are a visible share of them.
const JUDGED_SAMPLE: Duration = Duration::from_millis(1);

/// Running fractions of the kept samples of the benchmark being run.
static SAMPLES: std::sync::Mutex<Vec<f64>> = std::sync::Mutex::new(Vec::new());
/// Samples measured again because their threads were descheduled.
static RETRIES: AtomicU64 = AtomicU64::new(0);

/// One sample: `body(thread, iters)` on `threads` threads (1 or 2) at once.
/// Returns its time by `clock`, and its *running fraction*: the least, over
/// the threads, of (thread CPU time ÷ wall time) across the thread's own loop
/// (1.0 = ran throughout; less = descheduled part of the time). Wall clock:
/// from the first thread's start to the last one's end; CPU clock: the
/// larger of the threads' CPU times.
fn sample_once<F>(threads: usize, iters: u64, clock: Clock, body: &F) -> (Duration, f64, Duration)
where
    F: Fn(usize, u64) + Sync,
{
    let arrived = AtomicUsize::new(0);
    let run = |thread: usize| {
        rendezvous(&arrived, threads);
        let wall_start = Clock::Wall.now();
        let cpu_start = Clock::ThreadCpu.now();
        body(thread, iters);
        let cpu = Clock::ThreadCpu.now() - cpu_start;
        (wall_start, Clock::Wall.now(), cpu)
    };
    let times: Vec<(Duration, Duration, Duration)> = if threads == 1 {
        vec![run(0)]
    } else {
        std::thread::scope(|scope| {
            let runs: Vec<_> = (0..threads)
                .map(|thread| scope.spawn(move || run(thread)))
                .collect();
            runs.into_iter().map(|run| run.join().unwrap()).collect()
        })
    };
    let start = times.iter().map(|t| t.0).min().unwrap();
    let wall = times.iter().map(|t| t.1).max().unwrap() - start;
    let running = times
        .iter()
        .map(|&(begin, end, cpu)| cpu.as_secs_f64() / (end - begin).as_secs_f64().max(1e-9))
        .fold(1.0_f64, f64::min);
    let time = match clock {
        Clock::Wall => wall,
        Clock::ThreadCpu => times.iter().map(|t| t.2).max().unwrap(),
    };
    (time, running, wall)
}

/// One sample as criterion gets it: measured again (see [`MIN_RUNNING`]) if
/// its threads were descheduled; its running fraction is recorded.
fn sample<F>(threads: usize, iters: u64, clock: Clock, body: &F) -> Duration
where
    F: Fn(usize, u64) + Sync,
{
    let (mut time, mut running, wall) = sample_once(threads, iters, clock, body);
    if wall < JUDGED_SAMPLE {
        return time;
    }
    // One thread timed by its own CPU time: being descheduled costs nothing.
    if threads == 1 && clock == Clock::ThreadCpu {
        SAMPLES.lock().unwrap().push(running);
        return time;
    }
    for _ in 1..ATTEMPTS {
        if running >= MIN_RUNNING {
            break;
        }
        RETRIES.fetch_add(1, Ordering::Relaxed);
        let (again, again_running, _) = sample_once(threads, iters, clock, body);
        if again_running > running {
            (time, running) = (again, again_running);
        }
    }
    SAMPLES.lock().unwrap().push(running);
    time
}

// ----- provenance: how busy the machine was -----------------------------------

/// CPU use of this process and of the whole machine, from /proc (Linux).
#[derive(Clone, Copy)]
struct CpuSnapshot {
    at: Instant,
    /// All CPUs' busy jiffies (user, nice, system, irq, softirq).
    machine_busy: u64,
    /// All CPUs' steal jiffies (the hypervisor ran something else).
    steal: u64,
    /// This process's jiffies (utime + stime, all threads).
    own: u64,
}

impl CpuSnapshot {
    fn take() -> Option<CpuSnapshot> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        let own_stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the ")" that closes the command name: state is the
        // first, utime the 12th, stime the 13th.
        let own: Vec<&str> = own_stat.rsplit_once(')')?.1.split_whitespace().collect();
        Some(CpuSnapshot {
            at: Instant::now(),
            machine_busy: cpu.first()? + cpu.get(1)? + cpu.get(2)? + cpu.get(5)? + cpu.get(6)?,
            steal: *cpu.get(7).unwrap_or(&0),
            own: own.get(11)?.parse::<u64>().ok()? + own.get(12)?.parse::<u64>().ok()?,
        })
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Where criterion writes (set explicitly, so this file lands beside it).
fn criterion_home() -> std::path::PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return home.into();
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return std::path::PathBuf::from(target).join("criterion");
    }
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("criterion")
}

/// Records how a group was run in `<criterion>/<group>/gcsafety-run.json`,
/// for `scripts/bench-report.py`: the clock, the retention, and how much
/// CPU other processes (and the hypervisor) took meanwhile.
struct GroupRun {
    group: &'static str,
    clock: Clock,
    retention_ms: Option<u64>,
    loadavg_start: String,
    start: Option<CpuSnapshot>,
    /// Per benchmark that ran: name, running fractions of its samples, retries.
    benchmarks: Vec<(String, Vec<f64>, u64)>,
}

impl GroupRun {
    fn start(group: &'static str, clock: Clock, retention_ms: Option<u64>) -> GroupRun {
        GroupRun {
            group,
            clock,
            retention_ms,
            loadavg_start: loadavg(),
            start: CpuSnapshot::take(),
            benchmarks: Vec::new(),
        }
    }

    /// `group.bench_function(name, f)`, recording how its samples ran.
    fn bench(
        &mut self,
        group: &mut BenchmarkGroup<'_, WallTime>,
        name: &str,
        f: impl FnMut(&mut Bencher<'_>),
    ) {
        SAMPLES.lock().unwrap().clear();
        RETRIES.store(0, Ordering::Relaxed);
        group.bench_function(name, f);
        let samples = std::mem::take(&mut *SAMPLES.lock().unwrap());
        // Empty when a command-line filter skipped it.
        if !samples.is_empty() {
            self.benchmarks
                .push((name.to_owned(), samples, RETRIES.load(Ordering::Relaxed)));
        }
    }

    fn finish(self) {
        // Only for real measurements: not `cargo test`'s one-iteration run
        // (no --bench), `--test`, `--list` or `--profile-time`.
        let args: Vec<String> = std::env::args().collect();
        let has = |flag: &str| {
            args.iter()
                .any(|arg| arg == flag || arg.starts_with(&format!("{flag}=")))
        };
        if !has("--bench") || has("--test") || has("--list") || has("--profile-time") {
            return;
        }
        // Nothing of this group ran (filtered out): keep its earlier record.
        if self.benchmarks.is_empty() {
            return;
        }
        let (other, steal) = match (self.start, CpuSnapshot::take()) {
            (Some(a), Some(b)) => {
                // USER_HZ is 100 on Linux: one jiffy is 10 ms.
                let seconds = (b.at - a.at).as_secs_f64().max(1e-3);
                let percent = |jiffies: u64| jiffies as f64 * 10e-3 / seconds * 100.0;
                let other = (b.machine_busy - a.machine_busy).saturating_sub(b.own - a.own);
                (
                    format!("{:.1}", percent(other)),
                    format!("{:.1}", percent(b.steal - a.steal)),
                )
            }
            _ => ("null".into(), "null".into()),
        };
        let retention = self
            .retention_ms
            .map_or("null".to_owned(), |ms| ms.to_string());
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let benchmarks: Vec<String> = self
            .benchmarks
            .iter()
            .map(|(name, samples, retries)| {
                let mean = samples.iter().sum::<f64>() / samples.len() as f64;
                let min = samples.iter().copied().fold(1.0_f64, f64::min);
                format!(
                    "\"{name}\": {{\"running_mean\": {mean:.3}, \"running_min\": {min:.3}, \"samples\": {}, \"retried\": {retries}}}",
                    samples.len()
                )
            })
            .collect();
        let json = format!(
            "{{\"group\": \"{}\", \"clock\": \"{}\", \"state_retention_ms\": {}, \"other_cpu_percent\": {}, \
             \"steal_percent\": {}, \"loadavg_start\": \"{}\", \"loadavg_end\": \"{}\", \"finished_unix\": {}, \
             \"min_running\": {MIN_RUNNING}, \"benchmarks\": {{{}}}}}\n",
            self.group,
            self.clock.name(),
            retention,
            other,
            steal,
            self.loadavg_start,
            loadavg(),
            unix,
            benchmarks.join(", ")
        );
        let dir = criterion_home().join(self.group);
        if std::fs::create_dir_all(&dir).is_ok() {
            let _ = std::fs::write(dir.join("gcsafety-run.json"), json);
        }
    }
}

/// How a group's functions are run.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    OneThread,
    Shared,
    Distinct,
}

impl Mode {
    fn group(self) -> &'static str {
        match self {
            Mode::OneThread => "access_1thread",
            Mode::Shared => "access_2threads_shared",
            Mode::Distinct => "access_2threads_distinct",
        }
    }

    /// Which of the two keys thread `thread` uses.
    #[inline(always)]
    fn pick(self, thread: usize) -> usize {
        if self == Mode::Distinct { thread } else { 0 }
    }

    /// Measure `op(key_index)` in this mode: the same loop on one thread or
    /// on two, timed by `clock`.
    fn run<F, R>(self, b: &mut Bencher<'_>, clock: Clock, op: F)
    where
        F: Fn(usize) -> R + Sync,
    {
        let body = |thread: usize, iters: u64| {
            let key = self.pick(thread);
            for _ in 0..iters {
                black_box(op(key));
            }
        };
        let threads = if self == Mode::OneThread { 1 } else { 2 };
        b.iter_custom(|iters| sample(threads, iters, clock, &body));
    }
}

/// A raw pointer that may be shared between the benchmark threads.
#[derive(Clone, Copy)]
struct SendPtr(*mut c_void);
// SAFETY: only passed through, never dereferenced by the benchmark.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The pointer (a method, so closures capture the whole `SendPtr`).
    #[inline(always)]
    fn get(self) -> *mut c_void {
        self.0
    }
}

// ----- fixtures --------------------------------------------------------------------

struct Fixture {
    /// Two fakesinks (index 1 only for "distinct").
    elements: [gstreamer::Element; 2],
    /// Their gcsafety handles (GCS_KIND_GST_OBJECT).
    handles: [GcsHandle; 2],
    rust_handle: gcsafety::Handle,
}

fn element_ptr(element: &gstreamer::Element) -> *mut c_void {
    let raw: *mut gstreamer::ffi::GstElement = element.to_glib_none().0;
    raw.cast()
}

fn fixture() -> Fixture {
    gstreamer::init().expect("gstreamer::init");
    let make = || {
        gstreamer::ElementFactory::make("fakesink")
            .build()
            .expect("fakesink")
    };
    let elements = [make(), make()];
    let mut handles = [0; 2];
    for (element, handle) in elements.iter().zip(&mut handles) {
        let result = gcs_register(element_ptr(element), ptr::null(), handle);
        assert_eq!(result, GcsResult::GCS_OK, "gcs_register");
    }
    let rust_handle = gcsafety::Handle::from_raw(handles[0]).unwrap();
    // Sanity: every op succeeds before it is timed.
    let cb = opaque_callback();
    for &handle in &handles {
        assert_eq!(
            gcs_safe_access_op(handle, cb, ptr::null_mut()),
            GcsResult::GCS_OK
        );
        assert_eq!(gcs_begin_end_op(handle, cb, ptr::null_mut()), 0);
    }
    Fixture {
        elements,
        handles,
        rust_handle,
    }
}

// ----- the benchmarks --------------------------------------------------------------

fn access_group(c: &mut Criterion, fx: &Fixture, mode: Mode, clock: Clock) {
    let mut run = GroupRun::start(mode.group(), clock, None);
    let mut group = c.benchmark_group(mode.group());
    let cb = opaque_callback();
    let user_data = SendPtr(black_box(ptr::null_mut()));
    let objects = [
        SendPtr(element_ptr(&fx.elements[0])),
        SendPtr(element_ptr(&fx.elements[1])),
    ];
    let handles = fx.handles;

    run.bench(&mut group, "gcsafety_safe_access", |b| {
        mode.run(b, clock, |k| {
            gcs_safe_access_op(handles[k], cb, user_data.get())
        });
    });
    run.bench(&mut group, "gcsafety_begin_end", |b| {
        mode.run(b, clock, |k| {
            gcs_begin_end_op(handles[k], cb, user_data.get())
        });
    });
    if mode == Mode::OneThread {
        let handle = fx.rust_handle;
        run.bench(&mut group, "gcsafety_rust_safe_access", |b| {
            mode.run(b, clock, |_| {
                // SAFETY: `callback` accepts any arguments.
                handle.safe_access(|object| unsafe { cb(object, user_data.get()) })
            });
        });
    }

    let counters = [Padded(AtomicU64::new(0)), Padded(AtomicU64::new(0))];
    run.bench(&mut group, "floor", |b| {
        mode.run(b, clock, |k| {
            floor_op(&counters[k].0, cb, objects[k].get(), user_data.get())
        });
    });

    let entries = [
        (0x1234_5678_9abc_def1_u64, objects[0].get()),
        (0x0fed_cba9_8765_4321_u64, objects[1].get()),
    ];
    let keys = entries.map(|(key, _)| key);
    let std_sip = StdRwLock(RwLock::new(go_map::<std::hash::RandomState>(&entries)));
    run.bench(&mut group, "rwlock_hashmap", |b| {
        mode.run(b, clock, |k| {
            go_access(&std_sip, keys[k], cb, user_data.get())
        });
    });
    let std_fx = StdRwLock(RwLock::new(go_map::<BuildHasherDefault<FxHasher>>(
        &entries,
    )));
    run.bench(&mut group, "rwlock_hashmap_fxhash", |b| {
        mode.run(b, clock, |k| {
            go_access(&std_fx, keys[k], cb, user_data.get())
        });
    });
    let pl_sip = PlRwLock(parking_lot::RwLock::new(go_map::<std::hash::RandomState>(
        &entries,
    )));
    run.bench(&mut group, "parking_lot_rwlock_hashmap", |b| {
        mode.run(b, clock, |k| {
            go_access(&pl_sip, keys[k], cb, user_data.get())
        });
    });

    let slab: Slab<Padded<usize>> = Slab::new();
    let slab_keys = [
        slab.insert(Padded(objects[0].get() as usize)).unwrap(),
        slab.insert(Padded(objects[1].get() as usize)).unwrap(),
    ];
    run.bench(&mut group, "sharded_slab_get", |b| {
        mode.run(b, clock, |k| {
            slab_access(&slab, slab_keys[k], cb, user_data.get())
        });
    });

    let weak_refs = [
        WeakRef::new(objects[0].get().cast()),
        WeakRef::new(objects[1].get().cast()),
    ];
    run.bench(&mut group, "g_weak_ref_get", |b| {
        mode.run(b, clock, |k| {
            weak_access(&weak_refs[k], cb, user_data.get())
        });
    });

    group.finish();
    run.finish();
}

extern "C-unwind" fn noop_release(_object: *mut c_void, _user_data: *mut c_void) {}

/// Measure `op` on this thread with `clock` (the one-thread loop of `Mode::run`).
fn run_single<R>(b: &mut Bencher<'_>, clock: Clock, op: impl Fn() -> R + Sync) {
    Mode::OneThread.run(b, clock, |_| op());
}

fn register_group(c: &mut Criterion, fx: &Fixture, clock: Clock, retention_ms: Option<u64>) {
    let mut run = GroupRun::start("register_unregister", clock, retention_ms);
    let mut group = c.benchmark_group("register_unregister");

    static POINTEE: u8 = 0;
    let registration = GcsRegistration {
        struct_size: size_of::<GcsRegistration>() as u32,
        manager: ptr::null_mut(),
        kind: GcsObjectKind::GCS_KIND_POINTER as i32,
        object: ptr::from_ref(&POINTEE).cast_mut().cast(),
        type_name: ptr::null(),
        instance_name: ptr::null(),
        size_bytes: 0,
        release: Some(noop_release),
        release_data: ptr::null_mut(),
        flags: 0,
    };
    let registration = SendRegistration(registration);
    let register_pointer = || {
        let mut handle = 0;
        let registered = gcs_register_full(registration.get(), &mut handle);
        let unregistered = gcs_unregister(handle);
        registered as c_int + unregistered as c_int
    };
    assert_eq!(register_pointer(), 0);
    let name = match retention_ms {
        None => "gcsafety_pointer".to_owned(),
        Some(ms) => format!("gcsafety_pointer_retention{ms}ms"),
    };
    run.bench(&mut group, &name, |b| {
        run_single(b, clock, register_pointer)
    });

    let slab: Slab<Padded<usize>> = Slab::new();
    run.bench(&mut group, "sharded_slab_insert_remove", |b| {
        run_single(b, clock, || {
            let key = slab
                .insert(Padded(black_box(&POINTEE as *const u8 as usize)))
                .unwrap();
            slab.remove(key)
        })
    });

    let element = SendPtr(element_ptr(&fx.elements[0]));
    let register_element = || {
        let mut handle = 0;
        let registered = gcs_register(element.get(), ptr::null(), &mut handle);
        let unregistered = gcs_unregister(handle);
        registered as c_int + unregistered as c_int
    };
    assert_eq!(register_element(), 0);
    run.bench(&mut group, "gcsafety_gst_object", |b| {
        run_single(b, clock, register_element)
    });

    group.finish();
    run.finish();
}

/// The registration struct, shareable (its pointers are never written through).
struct SendRegistration(GcsRegistration);
// SAFETY: read-only; the pointers in it are a static and NULLs.
unsafe impl Sync for SendRegistration {}

impl SendRegistration {
    fn get(&self) -> &GcsRegistration {
        &self.0
    }
}

fn benches(c: &mut Criterion) {
    let clock = Clock::from_env();
    let retention_ms = std::env::var("GCS_BENCH_STATE_RETENTION_MS")
        .ok()
        .map(|ms| {
            let ms: u64 = ms
                .parse()
                .expect("GCS_BENCH_STATE_RETENTION_MS: milliseconds");
            let config = gcsafety::Config {
                state_retention: Duration::from_millis(ms),
                ..Default::default()
            };
            gcsafety::configure(&config).expect("gcsafety::configure");
            ms
        });
    let fx = fixture();
    for mode in [Mode::OneThread, Mode::Shared, Mode::Distinct] {
        access_group(c, &fx, mode, clock);
    }
    register_group(c, &fx, clock, retention_ms);
    for handle in fx.handles {
        assert_eq!(gcs_unregister(handle), GcsResult::GCS_OK);
    }
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_millis(2500))
        .sample_size(30)
        .without_plots()
        .output_directory(&criterion_home())
}

criterion_group! {
    name = access;
    config = config();
    targets = benches
}
criterion_main!(access);
