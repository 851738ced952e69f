//! The model-based check of the C ABI, shared by the fuzzer
//! (`fuzz/fuzz_targets/model.rs`, libFuzzer through `cargo fuzz`) and its
//! twin on stable (`tests/model.rs`, proptest inside `cargo test`).
//!
//! [`run`] decodes a byte string into operations — registrations of every
//! kind on three managers, accesses and begin/end pairs through the exported
//! functions and the header-inline ones (`include/gcsafety_inline.h`, compiled
//! into a small C shim), unregister, sync unregister, invalidate, cleanups,
//! finalizers, manager close, forged, zero and stale handles, nested
//! operations inside access callbacks, operations on two worker threads and
//! concurrent bursts of accesses racing an unregister — and runs each against
//! the library and against a reference model of what the C ABI promises
//! (`../shared/spec/c-abi.md`, the header's documentation). After every
//! operation it checks
//!
//! * the result code, exactly (a set of codes only where the contract allows
//!   several, each such place says why);
//! * every release count, from real evidence: GObject and GstMiniObject weak
//!   notifications, and pointer registrations' release functions — zero while
//!   the handle is live or an access is in flight, exactly one once released;
//! * that every access callback, cleanup and finalizer sees its object alive
//!   (its finalization not yet notified) and is the object registered;
//! * cleanups: each exactly once, newest first, before the object's release;
//!   the finalizer after them, only when the handle was never invalidated.
//!
//! Each run ends by ending every access still in flight and calling
//! `gcs_shutdown`, then checks that every object was freed exactly once and
//! that no live handle is left; handles of earlier runs are used as stale
//! handles by later ones. Everything runs on real GStreamer objects.
//!
//! A failed check panics with the operation log (outside any C callback:
//! violations seen inside callbacks are recorded and raised after the call).

#![allow(dead_code)] // each user (fuzz target, test) uses part of it

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::fmt::Write as _;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::thread;

use gcsafety::ffi::{GcsConfig, GcsHandleInfo, GcsRegistration, GcsStats};

// ----- the C ABI, as function pointers ---------------------------------------------

/// `GcsAccessFn` / `GcsCleanupFn`.
pub type Callback = Option<unsafe extern "C" fn(*mut c_void, *mut c_void) -> c_int>;
/// `GcsReleaseFn`.
pub type ReleaseFn = Option<unsafe extern "C" fn(*mut c_void, *mut c_void)>;
/// `GcsLiveHandleFn`, its argument read as an opaque pointer.
pub type LiveFn = Option<unsafe extern "C" fn(*const c_void, *mut c_void)>;

/// The functions under test: the exported ones (from the cdylib or the
/// rlib) and the header-inline twins (from the C shim).
#[derive(Clone, Copy)]
pub struct Api {
    pub register: unsafe extern "C" fn(*mut c_void, *const c_char, *mut u64) -> i32,
    pub register_full: unsafe extern "C" fn(*const GcsRegistration, *mut u64) -> i32,
    pub safe_access: unsafe extern "C" fn(u64, Callback, *mut c_void) -> i32,
    pub access_begin: unsafe extern "C" fn(u64, *mut *mut c_void) -> i32,
    pub access_end: unsafe extern "C" fn(u64) -> i32,
    pub is_valid: unsafe extern "C" fn(u64) -> bool,
    pub unregister: unsafe extern "C" fn(u64) -> i32,
    pub unregister_sync: unsafe extern "C" fn(u64, u32) -> i32,
    pub invalidate: unsafe extern "C" fn(u64) -> i32,
    pub get_info: unsafe extern "C" fn(u64, *mut GcsHandleInfo) -> i32,
    pub add_cleanup: unsafe extern "C" fn(u64, Callback, *mut c_void) -> i32,
    pub set_finalizer: unsafe extern "C" fn(u64, Callback, *mut c_void) -> i32,
    pub config_init: unsafe extern "C" fn(*mut GcsConfig),
    pub configure: unsafe extern "C" fn(*const GcsConfig) -> i32,
    pub manager_new: unsafe extern "C" fn(*const GcsConfig, *mut *mut c_void) -> i32,
    pub manager_close: unsafe extern "C" fn(*mut c_void, u32) -> i32,
    pub manager_free: unsafe extern "C" fn(*mut c_void),
    pub shutdown: unsafe extern "C" fn(u32) -> i32,
    pub get_stats: unsafe extern "C" fn(*mut c_void, *mut GcsStats) -> i32,
    pub foreach_live_handle: unsafe extern "C" fn(u32, LiveFn, *mut c_void) -> i32,
    pub last_error: unsafe extern "C" fn() -> *const c_char,
    /// `gcs_table_view` answered: the inline twins take the table path.
    /// (Without it they call the exported functions; the model is the same
    /// except for the per-thread deadlock detection, which then applies.)
    pub inline_available: bool,
    pub begin_inline: unsafe extern "C" fn(u64, *mut *mut c_void) -> i32,
    pub end_inline: unsafe extern "C" fn(u64) -> i32,
    pub is_valid_inline: unsafe extern "C" fn(u64) -> bool,
    pub safe_access_inline: unsafe extern "C" fn(u64, Callback, *mut c_void) -> i32,
}

// Result codes (GcsResult).
pub const OK: i32 = 0;
pub const INVALID_HANDLE: i32 = -1;
pub const RELEASED: i32 = -2;
pub const INVALIDATED: i32 = -3;
pub const NULL_ARGUMENT: i32 = -4;
pub const WRONG_TYPE: i32 = -5;
pub const CALLBACK_FAILED: i32 = -6;
pub const SHUT_DOWN: i32 = -9;
pub const TIMEOUT: i32 = -10;
pub const WOULD_DEADLOCK: i32 = -11;
pub const NOT_ACCESSING: i32 = -12;
pub const INVALID_ARGUMENT: i32 = -13;

const KIND_GST_OBJECT: i32 = 0;
const KIND_GOBJECT: i32 = 1;
const KIND_MINI_OBJECT: i32 = 2;
const KIND_POINTER: i32 = 3;
const KIND_WEAK_GOBJECT: i32 = 4;

const STATE_LIVE: i32 = 0;
const STATE_INVALIDATED: i32 = 1;
const STATE_RELEASING: i32 = 2;
const STATE_RELEASED: i32 = 3;

/// Waits that must end (a release the model knows can happen): generous,
/// so that a loaded machine never fails them; a hang is a failure.
const GENEROUS_MS: u32 = 60_000;
/// `gcs_unregister_sync` where the model knows an access is in flight: it
/// must time out, after however long.
const SHORT_MS: u32 = 1;

/// Threads an operation can run on: the caller of [`run`] (0) and two
/// workers.
const THREADS: usize = 3;
/// Exported accesses the library tracks per thread for deadlock detection
/// (GCS_TRACKED_ACCESSES_PER_THREAD); the model stays below it.
const TRACKED_PER_THREAD: u32 = 16;
/// At most this many registrations per run, and this many operations.
const MAX_REGISTRATIONS: usize = 48;
const MAX_OPS: usize = 256;
const MAX_DEPTH: u32 = 2;

// ----- GStreamer, GObject ------------------------------------------------------------

use glib_sys::gpointer;
use gobject_sys::{GObject, g_object_new_with_properties, g_object_unref, g_object_weak_ref};
use gstreamer_sys::{
    GstMiniObject, gst_bin_new, gst_buffer_new_allocate, gst_mini_object_weak_ref,
};

/// Real evidence of one object's life, shared with the C callbacks.
pub struct Tracker {
    /// Finalization (weak) notifications, or release-function calls.
    freed: AtomicU32,
    /// Access callbacks running on this object right now.
    in_access: AtomicU32,
    /// Cleanup and finalizer calls, in order: (cleanup id, object passed).
    cleanups: Mutex<Vec<(u32, usize)>>,
    /// Set when a callback saw something wrong (read after each operation).
    violations: Mutex<Vec<String>>,
    /// What the object is (checked by the pointer release function).
    object: usize,
}

impl Tracker {
    fn violation(&self, what: String) {
        self.violations.lock().unwrap().push(what);
    }
}

unsafe extern "C" fn weak_notify(data: gpointer, _object: *mut GObject) {
    // SAFETY: data is a Tracker the run keeps alive until every object died.
    let tracker = unsafe { &*(data as *const Tracker) };
    freed(tracker);
}

unsafe extern "C" fn mini_weak_notify(data: gpointer, _object: *mut GstMiniObject) {
    // SAFETY: as above.
    let tracker = unsafe { &*(data as *const Tracker) };
    freed(tracker);
}

fn freed(tracker: &Tracker) {
    if tracker.in_access.load(Ordering::SeqCst) != 0 {
        tracker.violation("object finalized while an access callback was using it".into());
    }
    tracker.freed.fetch_add(1, Ordering::SeqCst);
}

/// The object of a pointer registration.
#[repr(C)]
struct Payload {
    magic: u64,
}
const MAGIC: u64 = 0x6763_7361_6665_7479;
const POISON: u64 = 0xdead_dead_dead_dead;

unsafe extern "C-unwind" fn release_payload(object: *mut c_void, data: *mut c_void) {
    // SAFETY: data is the payload's Tracker; object the Box<Payload>.
    let tracker = unsafe { &*(data as *const Tracker) };
    if object as usize != tracker.object {
        tracker.violation(format!("release function got {object:p}, not its object"));
        return;
    }
    let payload = object as *mut Payload;
    // SAFETY: released exactly once (checked: a second call reads POISON
    // from memory still owned by the tracker... no: freed below, so a second
    // call would be a use after free that ASan reports).
    unsafe {
        if (*payload).magic != MAGIC {
            tracker.violation("pointer released twice (poisoned payload)".into());
        }
        (*payload).magic = POISON;
        drop(Box::from_raw(payload));
    }
    freed(tracker);
}

// ----- the input -------------------------------------------------------------------

struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Input<'_> {
    fn done(&self) -> bool {
        self.pos >= self.data.len()
    }
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    fn below(&mut self, n: usize) -> usize {
        self.byte() as usize % n
    }
    fn u64(&mut self) -> u64 {
        (0..8).fold(0, |acc, _| (acc << 8) | self.byte() as u64)
    }
}

/// Which entry point an access uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    Exported,
    Inline,
}

#[derive(Debug, Clone)]
enum Op {
    Register {
        kind: u8,
        manager: usize,
    },
    RegisterWrongType {
        manager: usize,
    },
    Access {
        target: Target,
        path: Path,
        fail: bool,
        inner: Option<Box<Op>>,
    },
    Begin {
        target: Target,
        path: Path,
    },
    End {
        flight: usize,
        path: Path,
    },
    EndUnmatched {
        target: Target,
        path: Path,
    },
    Unregister {
        target: Target,
    },
    UnregisterSync {
        target: Target,
    },
    Invalidate {
        target: Target,
    },
    AddCleanup {
        target: Target,
        reenter: bool,
    },
    SetFinalizer {
        target: Target,
        fails: u8,
    },
    IsValid {
        target: Target,
        path: Path,
    },
    Info {
        target: Target,
    },
    DropStrong {
        target: Target,
    },
    CloseManager {
        manager: usize,
    },
    Burst {
        target: Target,
    },
    OnThread {
        thread: usize,
        op: Box<Op>,
    },
}

/// A handle value to operate on.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// A registration of this run (index modulo their number; live or not).
    Registration(usize),
    /// A handle of an earlier run (index modulo their number).
    Stale(usize),
    /// 0, GCS_INVALID_HANDLE.
    Zero,
    /// Any value that is no handle of this run.
    Forged(u64),
}

fn decode(input: &mut Input, depth: u32) -> Op {
    let target = |input: &mut Input| match input.below(16) {
        0 => Target::Zero,
        1 => Target::Forged(input.u64()),
        2 => Target::Stale(input.byte() as usize),
        _ => Target::Registration(input.byte() as usize),
    };
    let path = |input: &mut Input| {
        if input.byte() & 1 == 0 {
            Path::Exported
        } else {
            Path::Inline
        }
    };
    match input.below(22) {
        0..=3 => Op::Register {
            kind: input.byte() % 6,
            manager: input.below(3),
        },
        4 => Op::RegisterWrongType {
            manager: input.below(3),
        },
        5..=6 => {
            let target = target(input);
            let path = path(input);
            let flags = input.byte();
            let inner =
                (flags & 2 != 0 && depth < MAX_DEPTH).then(|| Box::new(decode(input, depth + 1)));
            Op::Access {
                target,
                path,
                fail: flags & 1 != 0,
                inner,
            }
        }
        7..=8 => Op::Begin {
            target: target(input),
            path: path(input),
        },
        9..=10 => Op::End {
            flight: input.byte() as usize,
            path: path(input),
        },
        11 => Op::EndUnmatched {
            target: target(input),
            path: path(input),
        },
        12 => Op::Unregister {
            target: target(input),
        },
        13 => Op::UnregisterSync {
            target: target(input),
        },
        14 => Op::Invalidate {
            target: target(input),
        },
        15 => Op::AddCleanup {
            target: target(input),
            reenter: input.byte() & 1 != 0,
        },
        16 => Op::SetFinalizer {
            target: target(input),
            fails: input.byte() % 3,
        },
        17 => Op::IsValid {
            target: target(input),
            path: path(input),
        },
        18 => Op::Info {
            target: target(input),
        },
        19 => {
            if input.byte() % 4 == 0 {
                Op::CloseManager {
                    manager: 1 + input.below(2),
                }
            } else {
                Op::DropStrong {
                    target: target(input),
                }
            }
        }
        20 => Op::Burst {
            target: target(input),
        },
        _ if depth < MAX_DEPTH => {
            let thread = 1 + input.below(THREADS - 1);
            Op::OnThread {
                thread,
                op: Box::new(decode(input, depth + 1)),
            }
        }
        _ => Op::Info {
            target: target(input),
        },
    }
}

// ----- the model -------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    Live,
    Invalidated,
    /// Unregistered with accesses in flight: released when the last ends.
    Draining,
    Released,
}

/// An access in flight, as the model knows it.
#[derive(Debug, Clone, Copy)]
struct Flight {
    reg: usize,
    /// The thread that began it, and whether the library tracks it there.
    thread: usize,
    tracked: bool,
    /// Begun by `Begin` (may be ended by `End`) rather than by a running
    /// access callback.
    open: bool,
}

struct Reg {
    handle: u64,
    kind: i32,
    manager: usize,
    object: usize, // index into Run::objects
    st: St,
    ever_invalidated: bool,
    /// Cleanup ids, in the order added.
    cleanups: Vec<u32>,
    finalizer: Option<u32>,
    /// When it was released: so the cleanups check runs once.
    release_checked: bool,
}

struct Object {
    ptr: usize,
    kind: i32,
    tracker: Box<Tracker>,
    /// The run still holds its own reference (weak registrations' objects,
    /// and objects whose registration failed until checked).
    strong: bool,
    /// Accesses in flight on handles of this object (keep it alive).
    accesses: u32,
}

struct Manager {
    ptr: *mut c_void, // NULL: the default manager
    closed: bool,
    invalidate_on_error: bool,
    /// Finalizers run on the library's executor (asynchronously).
    async_finalizers: bool,
}

/// What a cleanup or finalizer call needs to check itself.
struct CleanupCtx {
    tracker: *const Tracker,
    id: u32,
    /// Call back into the library from the cleanup (re-entrance).
    reenter: Option<(Api, u64)>,
    /// A finalizer: fail this many times before succeeding.
    fails: AtomicU32,
}

unsafe extern "C" fn cleanup(object: *mut c_void, data: *mut c_void) -> c_int {
    // SAFETY: data is a CleanupCtx kept by the run until it ends.
    let ctx = unsafe { &*(data as *const CleanupCtx) };
    // SAFETY: the tracker outlives the run's objects.
    let tracker = unsafe { &*ctx.tracker };
    // (A weak registration's object may be gone: then the cleanup gets NULL.)
    if !object.is_null() && tracker.freed.load(Ordering::SeqCst) != 0 {
        tracker.violation(format!("cleanup {} ran after its object was freed", ctx.id));
    }
    if let Some((api, handle)) = ctx.reenter {
        // Its own handle is being released: refused, never a deadlock.
        // SAFETY: plain calls of the C ABI.
        unsafe {
            if (api.is_valid)(handle) {
                tracker.violation("gcs_is_valid true inside the handle's own cleanup".into());
            }
            let r = (api.unregister)(handle);
            if r != RELEASED && r != SHUT_DOWN {
                tracker.violation(format!("gcs_unregister inside its own cleanup: {r}"));
            }
            let r = (api.safe_access)(handle, Some(never_called), ptr::null_mut());
            if r != RELEASED && r != SHUT_DOWN {
                tracker.violation(format!("gcs_safe_access inside its own cleanup: {r}"));
            }
        }
    }
    let failing = ctx.fails.load(Ordering::SeqCst);
    if failing > 0 {
        ctx.fails.store(failing - 1, Ordering::SeqCst);
        return 1; // retried (a finalizer) or counted (a cleanup)
    }
    tracker
        .cleanups
        .lock()
        .unwrap()
        .push((ctx.id, object as usize));
    0
}

unsafe extern "C" fn never_called(_: *mut c_void, _: *mut c_void) -> c_int {
    std::process::abort() // a refused access must not call its callback
}

/// What an access callback needs.
struct AccessCtx {
    run: *mut Run,
    reg: usize,
    thread: usize,
    fail: bool,
    inner: Option<Box<Op>>,
    depth: u32,
    called: bool,
}

unsafe extern "C" fn access_callback(object: *mut c_void, data: *mut c_void) -> c_int {
    // SAFETY: data is the AccessCtx on the stack of `Run::access`, which
    // waits for this call; the Run is not touched by that frame meanwhile.
    let ctx = unsafe { &mut *(data as *mut AccessCtx) };
    ctx.called = true;
    // SAFETY: as above.
    let run = unsafe { &mut *ctx.run };
    let reg = &run.regs[ctx.reg];
    let obj = &run.objects[reg.object];
    obj.tracker.in_access.fetch_add(1, Ordering::SeqCst);
    if object as usize != obj.ptr {
        obj.tracker.violation(format!(
            "access callback got {object:p}, not {:#x}",
            obj.ptr
        ));
    }
    if obj.tracker.freed.load(Ordering::SeqCst) != 0 {
        obj.tracker
            .violation("access callback ran on a freed object".into());
    }
    if let Some(inner) = ctx.inner.take() {
        run.apply(*inner, ctx.thread, ctx.depth + 1);
    }
    let obj = &run.objects[run.regs[ctx.reg].object];
    obj.tracker.in_access.fetch_sub(1, Ordering::SeqCst);
    c_int::from(ctx.fail)
}

/// A worker thread: runs closures synchronously for the model.
struct Worker {
    jobs: mpsc::Sender<Box<dyn FnOnce() + Send>>,
    done: mpsc::Receiver<()>,
}

impl Worker {
    fn new() -> Worker {
        let (jobs, rx) = mpsc::channel::<Box<dyn FnOnce() + Send>>();
        let (tx, done) = mpsc::channel();
        thread::Builder::new()
            .name("gcs-model-worker".into())
            .spawn(move || {
                for job in rx {
                    job();
                    if tx.send(()).is_err() {
                        break;
                    }
                }
            })
            .expect("spawn a worker");
        Worker { jobs, done }
    }
    fn run(&self, job: Box<dyn FnOnce() + Send>) {
        self.jobs.send(job).expect("the worker runs");
        self.done.recv().expect("the worker finished the job");
    }
}

/// A raw pointer that may cross to a worker which runs while its owner waits.
struct SendPtr<T>(*mut T);
// SAFETY: used only for synchronous hand-offs (Worker::run blocks).
unsafe impl<T> Send for SendPtr<T> {}

thread_local! {
    static WORKERS: RefCell<Option<Vec<Worker>>> = const { RefCell::new(None) };
}

/// Handles of earlier runs (all released), used as stale handles.
static STALE: Mutex<Vec<u64>> = Mutex::new(Vec::new());

/// One run: the library's state and the model's, side by side.
pub struct Run {
    api: Api,
    regs: Vec<Reg>,
    objects: Vec<Object>,
    managers: Vec<Manager>,
    flights: Vec<Flight>,
    /// Per (thread, handle): exported accesses the library tracks there
    /// (a lower and an upper bound: an inline end may or may not go through
    /// the library, see `end`).
    tracked: HashMap<(usize, u64), (u32, u32)>,
    /// Boxed: the library keeps their addresses while the Vec grows.
    #[allow(clippy::vec_box)]
    cleanup_ctxs: Vec<Box<CleanupCtx>>,
    next_cleanup: u32,
    stale: Vec<u64>,
    log: String,
    /// Violations found outside callbacks.
    failures: Vec<String>,
}

fn code_name(code: i32) -> &'static str {
    match code {
        OK => "OK",
        INVALID_HANDLE => "INVALID_HANDLE",
        RELEASED => "RELEASED",
        INVALIDATED => "INVALIDATED",
        NULL_ARGUMENT => "NULL_ARGUMENT",
        WRONG_TYPE => "WRONG_TYPE",
        CALLBACK_FAILED => "CALLBACK_FAILED",
        SHUT_DOWN => "SHUT_DOWN",
        TIMEOUT => "TIMEOUT",
        WOULD_DEADLOCK => "WOULD_DEADLOCK",
        NOT_ACCESSING => "NOT_ACCESSING",
        INVALID_ARGUMENT => "INVALID_ARGUMENT",
        _ => "other",
    }
}

/// The handle an operation names, resolved against the run.
#[derive(Clone, Copy, Debug)]
enum Named {
    Reg(usize),
    /// A value that names no registration of this run: 0, stale, forged.
    Dead {
        value: u64,
        zero: bool,
    },
}

impl Run {
    fn new(api: Api) -> Run {
        let stale = STALE.lock().unwrap().clone();
        let mut managers = vec![Manager {
            ptr: ptr::null_mut(),
            closed: false,
            invalidate_on_error: false,
            async_finalizers: true,
        }];
        // Released states are dropped (and their slots reused, so stale
        // handles meet new generations) at the next registration: with the
        // default five minutes, every run would add its registrations to a
        // table that close and shutdown scan whole.
        let config = |api: &Api| {
            let mut config = std::mem::MaybeUninit::<GcsConfig>::zeroed();
            // SAFETY: gcs_config_init fills every field.
            let mut config = unsafe {
                (api.config_init)(config.as_mut_ptr());
                config.assume_init()
            };
            config.state_retention_ms = 0;
            config.cleanup_interval_ms = 1;
            config
        };
        // The default manager is fresh (the previous run ended with
        // gcs_shutdown), so it may be configured again.
        // SAFETY: a valid config.
        let r = unsafe { (api.configure)(&config(&api)) };
        assert_eq!(r, OK, "gcs_configure of the fresh default manager");
        for invalidate in [false, true] {
            let mut config = config(&api);
            config.enable_finalizer_safety = false;
            config.invalidate_on_callback_error = invalidate;
            config.max_finalizer_retries = 2;
            let mut manager = ptr::null_mut();
            // SAFETY: valid config and out pointer.
            let r = unsafe { (api.manager_new)(&config, &mut manager) };
            assert_eq!(r, OK, "gcs_manager_new");
            managers.push(Manager {
                ptr: manager,
                closed: false,
                invalidate_on_error: invalidate,
                async_finalizers: false,
            });
        }
        Run {
            api,
            regs: Vec::new(),
            objects: Vec::new(),
            managers,
            flights: Vec::new(),
            tracked: HashMap::new(),
            cleanup_ctxs: Vec::new(),
            next_cleanup: 0,
            stale,
            log: String::new(),
            failures: Vec::new(),
        }
    }

    fn fail(&mut self, what: String) {
        self.failures.push(what);
    }

    /// `expected` must contain `got`.
    fn expect(&mut self, what: &str, got: i32, expected: &[i32]) {
        let _ = writeln!(self.log, "    {what} -> {}", code_name(got));
        if !expected.contains(&got) {
            let want: Vec<_> = expected.iter().map(|&c| code_name(c)).collect();
            // SAFETY: gcs_last_error returns a valid string.
            let message = unsafe { CStr::from_ptr((self.api.last_error)()) }
                .to_string_lossy()
                .into_owned();
            self.fail(format!(
                "{what}: got {} ({got}), expected one of {want:?}; gcs_last_error: {message}",
                code_name(got)
            ));
        }
    }

    fn name(&self, target: Target) -> Named {
        match target {
            Target::Registration(i) if !self.regs.is_empty() => Named::Reg(i % self.regs.len()),
            Target::Registration(_) | Target::Zero => Named::Dead {
                value: 0,
                zero: true,
            },
            Target::Stale(i) if !self.stale.is_empty() => Named::Dead {
                value: self.stale[i % self.stale.len()],
                zero: false,
            },
            Target::Stale(_) => Named::Dead {
                value: 0,
                zero: true,
            },
            Target::Forged(value) => {
                if value == 0 {
                    Named::Dead { value, zero: true }
                } else if let Some(i) = self.regs.iter().position(|r| r.handle == value) {
                    Named::Reg(i) // not forged after all
                } else {
                    Named::Dead { value, zero: false }
                }
            }
        }
    }

    /// What refuses an access of a value that names no registration of the
    /// run: 0 and never-issued values are INVALID_HANDLE; a stale value, or a
    /// forged one that happens to hit a retained slot, RELEASED ("a forged
    /// value that hits a retained released slot may get RELEASED"); a stale
    /// handle of an earlier run's closed manager may report the close.
    fn dead_codes(zero: bool) -> &'static [i32] {
        if zero {
            &[INVALID_HANDLE]
        } else {
            &[INVALID_HANDLE, RELEASED, SHUT_DOWN]
        }
    }

    fn handle(&self, named: Named) -> u64 {
        match named {
            Named::Reg(i) => self.regs[i].handle,
            Named::Dead { value, .. } => value,
        }
    }

    fn in_flight(&self, reg: usize) -> usize {
        self.flights.iter().filter(|f| f.reg == reg).count()
    }

    fn closed(&self, reg: usize) -> bool {
        self.managers[self.regs[reg].manager].closed
    }

    /// The codes refusing a registration that is not live.
    fn refusal(&self, reg: usize) -> &'static [i32] {
        let r = &self.regs[reg];
        if self.closed(reg) {
            // Unregistered by its manager's close: reports the close (or,
            // once the retained details are gone, the release).
            return &[SHUT_DOWN, RELEASED];
        }
        match r.st {
            St::Live => &[OK],
            St::Invalidated => &[INVALIDATED],
            St::Draining | St::Released => &[RELEASED],
        }
    }

    /// Whether an access of a live registration finds its object: a weak
    /// registration's object may be gone.
    fn weak_dead(&self, reg: usize) -> bool {
        let r = &self.regs[reg];
        r.kind == KIND_WEAK_GOBJECT
            && self.objects[r.object].tracker.freed.load(Ordering::SeqCst) != 0
    }

    /// A live weak registration whose object died elsewhere may already
    /// count as released (the library finds out at its next look).
    fn loosen(&self, reg: usize, expected: &[i32]) -> Vec<i32> {
        let mut codes = expected.to_vec();
        if self.regs[reg].st == St::Live && !self.closed(reg) && self.weak_dead(reg) {
            codes.push(RELEASED);
        }
        codes
    }

    /// The library said RELEASED about a live weak registration whose
    /// object died: released then.
    fn follow_weak_death(&mut self, reg: usize, code: i32) {
        if code == RELEASED && self.regs[reg].st == St::Live && self.weak_dead(reg) {
            self.released(reg);
        }
    }

    fn track(&mut self, thread: usize, handle: u64, lo: i32, hi: i32) {
        let e = self.tracked.entry((thread, handle)).or_insert((0, 0));
        e.0 = e.0.saturating_add_signed(lo);
        e.1 = e.1.saturating_add_signed(hi);
    }

    /// The deadlock tracking after an end of `handle` on `thread`
    /// (src/thread_accesses.rs): the library forgets one entry of the
    /// handle on the ending thread if it has one, else posts the end to a
    /// thread that holds one (exact with one holder, "best-effort" with
    /// several: any of them). An inline end goes through the library only
    /// sometimes (the last end of an unregistered handle): `certain` false.
    fn end_tracking(&mut self, thread: usize, handle: u64, certain: bool) {
        let own = self
            .tracked
            .get(&(thread, handle))
            .copied()
            .unwrap_or((0, 0));
        let holders: Vec<usize> = (0..THREADS)
            .filter(|&t| t != thread && self.tracked.get(&(t, handle)).is_some_and(|e| e.1 > 0))
            .collect();
        if certain && own.0 > 0 {
            self.track(thread, handle, -1, -1);
            return;
        }
        // Maybe our own entry, maybe (if we have none) a holder's.
        self.track(thread, handle, -1, 0);
        let exact = certain && own.1 == 0 && holders.len() == 1;
        for t in holders {
            if exact {
                self.track(t, handle, -1, -1);
            } else {
                self.track(t, handle, -1, 0);
            }
        }
    }

    fn tracked_on(&self, thread: usize) -> u32 {
        self.tracked
            .iter()
            .filter(|((t, _), _)| *t == thread)
            .map(|(_, (_, hi))| hi)
            .sum()
    }

    /// An inline access is a table access unless the registration is weak
    /// (those always go through the library) or the view is unavailable.
    fn goes_inline(&self, path: Path, reg: Option<usize>) -> bool {
        path == Path::Inline
            && self.api.inline_available
            && reg.is_none_or(|r| self.regs[r].kind != KIND_WEAK_GOBJECT)
    }

    // ----- the operations --------------------------------------------------------

    fn apply(&mut self, op: Op, thread: usize, depth: u32) {
        let _ = writeln!(
            self.log,
            "{}[t{thread}] {op:?}",
            "  ".repeat(depth as usize)
        );
        match op {
            Op::Register { kind, manager } => self.register(kind, manager),
            Op::RegisterWrongType { manager } => self.register_wrong_type(manager),
            Op::Access {
                target,
                path,
                fail,
                inner,
            } => self.access(target, path, fail, inner, thread, depth),
            Op::Begin { target, path } => self.begin(target, path, thread),
            Op::End { flight, path } => self.end(flight, path, thread),
            Op::EndUnmatched { target, path } => self.end_unmatched(target, path),
            Op::Unregister { target } => self.unregister(target),
            Op::UnregisterSync { target } => self.unregister_sync(target, thread),
            Op::Invalidate { target } => self.invalidate(target),
            Op::AddCleanup { target, reenter } => self.add_cleanup(target, reenter),
            Op::SetFinalizer { target, fails } => self.set_finalizer(target, fails),
            Op::IsValid { target, path } => self.is_valid(target, path),
            Op::Info { target } => self.info(target),
            Op::DropStrong { target } => self.drop_strong(target),
            Op::CloseManager { manager } => self.close_manager(manager),
            Op::Burst { target } => {
                if depth == 0 {
                    self.burst(target)
                }
            }
            Op::OnThread { thread: worker, op } => {
                if thread == 0 {
                    self.on_thread(worker, *op, depth)
                } else {
                    self.apply(*op, thread, depth) // already on a worker
                }
            }
        }
    }

    fn on_thread(&mut self, worker: usize, op: Op, depth: u32) {
        let run = SendPtr(self as *mut Run);
        let job: Box<dyn FnOnce() + Send> = Box::new(move || {
            let run = run;
            // SAFETY: the owner blocks in Worker::run until this returns.
            unsafe { (*run.0).apply(op, worker, depth + 1) };
        });
        WORKERS.with(|w| {
            let mut w = w.borrow_mut();
            let workers = w.get_or_insert_with(|| (1..THREADS).map(|_| Worker::new()).collect());
            workers[worker - 1].run(job);
        });
    }

    fn new_object(&mut self, kind: u8) -> usize {
        let tracker = Box::new(Tracker {
            freed: AtomicU32::new(0),
            in_access: AtomicU32::new(0),
            cleanups: Mutex::new(Vec::new()),
            violations: Mutex::new(Vec::new()),
            object: 0,
        });
        let mut tracker = tracker;
        let data = &*tracker as *const Tracker as gpointer;
        // SAFETY: GStreamer/GObject constructors; weak notifications keep a
        // pointer to the boxed tracker, which lives until the run ends.
        let (ptr, kind) = unsafe {
            match kind {
                // A floating GstObject (the registration sinks it).
                0 | 5 => {
                    let bin = gst_bin_new(ptr::null()) as *mut GObject;
                    g_object_weak_ref(bin, Some(weak_notify), data);
                    if kind == 5 {
                        gstreamer_sys::gst_object_ref_sink(bin as *mut _); // not floating
                    }
                    (bin as usize, KIND_GST_OBJECT)
                }
                1 | 4 => {
                    let object = g_object_new_with_properties(
                        gobject_sys::g_object_get_type(),
                        0,
                        ptr::null_mut(),
                        ptr::null(),
                    );
                    g_object_weak_ref(object, Some(weak_notify), data);
                    (
                        object as usize,
                        if kind == 1 {
                            KIND_GOBJECT
                        } else {
                            KIND_WEAK_GOBJECT
                        },
                    )
                }
                2 => {
                    let buffer = gst_buffer_new_allocate(ptr::null_mut(), 64, ptr::null_mut());
                    gst_mini_object_weak_ref(
                        buffer as *mut GstMiniObject,
                        Some(mini_weak_notify),
                        data,
                    );
                    (buffer as usize, KIND_MINI_OBJECT)
                }
                _ => (
                    Box::into_raw(Box::new(Payload { magic: MAGIC })) as usize,
                    KIND_POINTER,
                ),
            }
        };
        tracker.object = ptr;
        // Floating GstObjects are owned by their registration; the others
        // hold the run's reference until the registration took its own.
        self.objects.push(Object {
            ptr,
            kind,
            tracker,
            strong: true,
            accesses: 0,
        });
        self.objects.len() - 1
    }

    /// Drop the run's own reference to an object.
    fn unref(&mut self, object: usize) {
        let o = &mut self.objects[object];
        if !o.strong {
            return;
        }
        o.strong = false;
        // SAFETY: the run's reference, dropped once.
        unsafe {
            match o.kind {
                KIND_GST_OBJECT | KIND_GOBJECT | KIND_WEAK_GOBJECT => {
                    g_object_unref(o.ptr as *mut GObject)
                }
                KIND_MINI_OBJECT => {
                    gstreamer_sys::gst_mini_object_unref(o.ptr as *mut GstMiniObject)
                }
                _ => release_payload(
                    o.ptr as *mut c_void,
                    &*o.tracker as *const Tracker as *mut c_void,
                ),
            }
        }
    }

    fn register(&mut self, kind: u8, manager: usize) {
        if self.regs.len() >= MAX_REGISTRATIONS {
            return;
        }
        let object = self.new_object(kind);
        let floating = kind == 0;
        let (ptr, okind) = (self.objects[object].ptr, self.objects[object].kind);
        let tracker = &*self.objects[object].tracker as *const Tracker as *mut c_void;
        let mut handle = 0u64;
        let r = if okind == KIND_GST_OBJECT && manager == 0 && kind == 0 {
            // gcs_register: the default manager, a GstObject.
            // SAFETY: a live GstObject, a valid out pointer.
            unsafe { (self.api.register)(ptr as *mut c_void, ptr::null(), &mut handle) }
        } else {
            let registration = GcsRegistration {
                struct_size: size_of::<GcsRegistration>() as u32,
                manager: self.managers[manager].ptr.cast(),
                kind: okind,
                object: ptr as *mut c_void,
                type_name: ptr::null(),
                instance_name: c"model".as_ptr(),
                size_bytes: 64,
                release: if okind == KIND_POINTER {
                    Some(release_payload)
                } else {
                    None
                },
                release_data: if okind == KIND_POINTER {
                    tracker
                } else {
                    ptr::null_mut()
                },
                flags: 0,
            };
            // SAFETY: a valid registration and out pointer.
            unsafe { (self.api.register_full)(&registration, &mut handle) }
        };
        let closed = self.managers[manager].closed;
        self.expect("register", r, if closed { &[SHUT_DOWN] } else { &[OK] });
        if r != OK {
            // Nothing registered, no reference kept: ours is the last.
            if floating {
                // SAFETY: a floating object nobody sank: sink and drop it.
                unsafe { gstreamer_sys::gst_object_ref_sink(ptr as *mut _) };
            }
            self.unref(object);
            self.check_freed(object, 1, "a refused registration's object");
            return;
        }
        if floating || okind == KIND_POINTER {
            // Sunk, or handed over: the registration's now.
            self.objects[object].strong = false;
        } else if okind != KIND_WEAK_GOBJECT {
            self.unref(object); // the registration holds its own
        }
        let _ = writeln!(self.log, "    handle {handle:#018x}");
        self.regs.push(Reg {
            handle,
            kind: okind,
            manager,
            object,
            st: St::Live,
            ever_invalidated: false,
            cleanups: Vec::new(),
            finalizer: None,
            release_checked: false,
        });
    }

    /// A GstBuffer registered as a GstObject: refused before any reference
    /// is taken (state checking is on by default).
    fn register_wrong_type(&mut self, manager: usize) {
        let object = self.new_object(2);
        let registration = GcsRegistration {
            struct_size: size_of::<GcsRegistration>() as u32,
            manager: self.managers[manager].ptr.cast(),
            kind: KIND_GST_OBJECT,
            object: self.objects[object].ptr as *mut c_void,
            type_name: ptr::null(),
            instance_name: ptr::null(),
            size_bytes: 0,
            release: None,
            release_data: ptr::null_mut(),
            flags: 0,
        };
        let mut handle = 0xfeed_u64;
        // SAFETY: valid pointers.
        let r = unsafe { (self.api.register_full)(&registration, &mut handle) };
        let closed = self.managers[manager].closed;
        self.expect(
            "register a buffer as a GstObject",
            r,
            if closed {
                &[SHUT_DOWN, WRONG_TYPE]
            } else {
                &[WRONG_TYPE]
            },
        );
        if handle != 0xfeed {
            self.fail("a refused registration wrote *handle_out".into());
        }
        self.unref(object);
        self.check_freed(object, 1, "a wrongly typed registration's object");
    }

    fn access(
        &mut self,
        target: Target,
        path: Path,
        fail: bool,
        inner: Option<Box<Op>>,
        thread: usize,
        depth: u32,
    ) {
        let named = self.name(target);
        let handle = self.handle(named);
        let Named::Reg(reg) = named else {
            let Named::Dead { zero, .. } = named else {
                unreachable!()
            };
            let f = if path == Path::Inline {
                self.api.safe_access_inline
            } else {
                self.api.safe_access
            };
            // SAFETY: the callback must not be called.
            let r = unsafe { f(handle, Some(never_called), ptr::null_mut()) };
            self.expect("safe_access of a dead value", r, Self::dead_codes(zero));
            return;
        };
        let live = self.regs[reg].st == St::Live && !self.closed(reg);
        let inline = self.goes_inline(path, Some(reg));
        if live && !inline && self.tracked_on(thread) + 1 >= TRACKED_PER_THREAD {
            return; // the model stays within the library's tracking
        }
        let object = self.regs[reg].object;
        let weak_dead = self.weak_dead(reg);
        let expected: &[i32] = if !live {
            self.refusal(reg)
        } else if weak_dead {
            &[RELEASED]
        } else if fail {
            &[CALLBACK_FAILED]
        } else {
            &[OK]
        };
        // The access is in flight while the callback runs.
        if live && !weak_dead {
            self.flights.push(Flight {
                reg,
                thread,
                tracked: !inline,
                open: false,
            });
            self.objects[object].accesses += 1;
            if !inline {
                self.track(thread, handle, 1, 1);
            }
        }
        let mut ctx = AccessCtx {
            run: self as *mut Run,
            reg,
            thread,
            fail,
            inner,
            depth,
            called: false,
        };
        let f = if path == Path::Inline {
            self.api.safe_access_inline
        } else {
            self.api.safe_access
        };
        // SAFETY: ctx lives across the call; the callback is the only user of
        // the run meanwhile.
        let r = unsafe {
            f(
                handle,
                Some(access_callback),
                &mut ctx as *mut AccessCtx as *mut c_void,
            )
        };
        let called = ctx.called;
        if live && !weak_dead {
            let i = self
                .flights
                .iter()
                .rposition(|f| f.reg == reg && !f.open && f.thread == thread)
                .expect("the flight");
            self.flights.remove(i);
            self.objects[object].accesses -= 1;
            if !inline {
                // The same end as gcs_access_end's: the library cannot tell
                // which access of the handle ended, so if a gcs_access_end
                // inside the callback took this thread's entry (ending an
                // access begun elsewhere), this end posts to that thread.
                self.end_tracking(thread, handle, true);
            }
        }
        self.expect("safe_access", r, expected);
        self.follow_weak_death(reg, r);
        if called != (r == OK || r == CALLBACK_FAILED) {
            self.fail(format!(
                "safe_access returned {} but the callback was called: {called}",
                code_name(r)
            ));
        }
        if r == CALLBACK_FAILED
            && self.managers[self.regs[reg].manager].invalidate_on_error
            && self.regs[reg].st == St::Live
        {
            self.regs[reg].st = St::Invalidated;
            self.regs[reg].ever_invalidated = true;
        }
        if live && !weak_dead {
            self.ended(reg);
        }
    }

    /// After an access of `reg` ended: the release happens if it was the
    /// last of an unregistered handle.
    fn ended(&mut self, reg: usize) {
        if self.regs[reg].st == St::Draining && self.in_flight(reg) == 0 {
            self.released(reg);
        }
    }

    /// The model's registration was released now (on the calling thread).
    fn released(&mut self, reg: usize) {
        self.regs[reg].st = St::Released;
        let object = self.regs[reg].object;
        let weak = self.regs[reg].kind == KIND_WEAK_GOBJECT;
        if self.async_release(reg) {
            return; // checked at the end of the run
        }
        self.check_cleanups(reg);
        if !weak && self.objects[object].accesses == 0 && !self.objects[object].strong {
            // Several registrations of one object are not made by the
            // model: its only reference was this registration's.
            self.check_freed(object, 1, "a released registration's object");
        }
    }

    /// Released on the default manager's finalizer executor, asynchronously.
    fn async_release(&self, reg: usize) -> bool {
        let r = &self.regs[reg];
        self.managers[r.manager].async_finalizers && r.finalizer.is_some() && !r.ever_invalidated
    }

    fn check_freed(&mut self, object: usize, expected: u32, what: &str) {
        let got = self.objects[object].tracker.freed.load(Ordering::SeqCst);
        if got != expected {
            self.fail(format!("{what}: freed {got} times, expected {expected}"));
        }
    }

    /// Each cleanup exactly once, newest first, then the finalizer (only if
    /// never invalidated), each with the object (NULL for a weak handle's
    /// object gone).
    fn check_cleanups(&mut self, reg: usize) {
        if self.regs[reg].release_checked {
            return;
        }
        self.regs[reg].release_checked = true;
        let r = &self.regs[reg];
        let mut expected: Vec<u32> = r.cleanups.iter().rev().copied().collect();
        if let Some(f) = r.finalizer
            && !r.ever_invalidated
        {
            expected.push(f);
        }
        let object = &self.objects[r.object];
        let calls = object.tracker.cleanups.lock().unwrap().clone();
        // Only this registration's cleanups are in this object's tracker.
        let ids: Vec<u32> = calls.iter().map(|c| c.0).collect();
        let weak = r.kind == KIND_WEAK_GOBJECT;
        let bad_object = calls
            .iter()
            .any(|&(_, o)| o != object.ptr && !(weak && o == 0));
        let handle = r.handle;
        if ids != expected {
            self.fail(format!(
                "handle {handle:#x}: cleanups ran {ids:?}, expected {expected:?}"
            ));
        }
        if bad_object {
            self.fail(format!(
                "handle {handle:#x}: a cleanup got another object: {calls:x?}"
            ));
        }
    }

    fn begin(&mut self, target: Target, path: Path, thread: usize) {
        let named = self.name(target);
        let handle = self.handle(named);
        let f = if path == Path::Inline {
            self.api.begin_inline
        } else {
            self.api.access_begin
        };
        let Named::Reg(reg) = named else {
            let Named::Dead { zero, .. } = named else {
                unreachable!()
            };
            let sentinel = ptr::dangling_mut::<c_void>();
            let mut object = sentinel;
            // SAFETY: valid out pointer.
            let r = unsafe { f(handle, &mut object) };
            self.expect("begin of a dead value", r, Self::dead_codes(zero));
            if object != sentinel {
                self.fail("a refused begin wrote *object_out".into());
            }
            return;
        };
        let inline = self.goes_inline(path, Some(reg));
        if self.flights.len() >= 24
            || (!inline && self.tracked_on(thread) + 1 >= TRACKED_PER_THREAD)
        {
            return;
        }
        let live = self.regs[reg].st == St::Live && !self.closed(reg);
        let expected: &[i32] = if !live {
            self.refusal(reg)
        } else if self.weak_dead(reg) {
            &[RELEASED]
        } else {
            &[OK]
        };
        let mut object = ptr::null_mut();
        // SAFETY: valid out pointer.
        let r = unsafe { f(handle, &mut object) };
        self.expect("begin", r, expected);
        self.follow_weak_death(reg, r);
        if r == OK {
            let o = self.regs[reg].object;
            if object as usize != self.objects[o].ptr {
                self.fail(format!("begin gave {object:p}, not the object"));
            }
            self.objects[o].accesses += 1;
            self.flights.push(Flight {
                reg,
                thread,
                tracked: !inline,
                open: true,
            });
            if !inline {
                self.track(thread, handle, 1, 1);
            }
        }
    }

    fn end(&mut self, flight: usize, path: Path, thread: usize) {
        let open: Vec<usize> = (0..self.flights.len())
            .filter(|&i| self.flights[i].open)
            .collect();
        if open.is_empty() {
            return;
        }
        let i = open[flight % open.len()];
        let Flight { reg, .. } = self.flights[i];
        let handle = self.regs[reg].handle;
        let inline = self.goes_inline(path, Some(reg));
        let f = if path == Path::Inline {
            self.api.end_inline
        } else {
            self.api.access_end
        };
        // The flight ends before the call: the release may run inside it.
        self.flights.remove(i);
        let object = self.regs[reg].object;
        self.objects[object].accesses -= 1;
        // SAFETY: plain call.
        let r = unsafe { f(handle) };
        self.expect("end", r, &[OK]);
        self.end_tracking(thread, handle, !inline);
        self.ended(reg);
    }

    /// An end with nothing in flight: NOT_ACCESSING, nothing changes.
    fn end_unmatched(&mut self, target: Target, path: Path) {
        let named = self.name(target);
        let handle = self.handle(named);
        let f = if path == Path::Inline {
            self.api.end_inline
        } else {
            self.api.access_end
        };
        let expected: &[i32] = match named {
            Named::Dead { zero, .. } => Self::dead_codes(zero),
            Named::Reg(reg) if self.in_flight(reg) > 0 => return, // it would end one
            Named::Reg(reg) if self.weak_dead(reg) => &[NOT_ACCESSING, RELEASED, SHUT_DOWN],
            Named::Reg(reg) => match self.regs[reg].st {
                // The end of a handle that has none in flight.
                St::Live | St::Invalidated => &[NOT_ACCESSING],
                St::Draining | St::Released => &[NOT_ACCESSING, RELEASED, SHUT_DOWN],
            },
        };
        // SAFETY: plain call.
        let r = unsafe { f(handle) };
        self.expect("unmatched end", r, expected);
    }

    fn unregister(&mut self, target: Target) {
        let named = self.name(target);
        let handle = self.handle(named);
        // SAFETY: plain call.
        let r = unsafe { (self.api.unregister)(handle) };
        let Named::Reg(reg) = named else {
            let Named::Dead { zero, .. } = named else {
                unreachable!()
            };
            self.expect("unregister of a dead value", r, Self::dead_codes(zero));
            return;
        };
        let expected: &[i32] = match self.regs[reg].st {
            _ if self.closed(reg) => &[SHUT_DOWN, RELEASED],
            St::Live | St::Invalidated => &[OK],
            St::Draining | St::Released => &[RELEASED],
        };
        let expected = self.loosen(reg, expected);
        self.expect("unregister", r, &expected);
        if r == OK {
            self.unregistered(reg);
        }
        self.follow_weak_death(reg, r);
    }

    fn unregistered(&mut self, reg: usize) {
        if self.in_flight(reg) > 0 {
            self.regs[reg].st = St::Draining;
        } else {
            self.released(reg);
        }
    }

    fn unregister_sync(&mut self, target: Target, thread: usize) {
        let named = self.name(target);
        let handle = self.handle(named);
        let Named::Reg(reg) = named else {
            // SAFETY: plain call.
            let r = unsafe { (self.api.unregister_sync)(handle, SHORT_MS) };
            let Named::Dead { zero, .. } = named else {
                unreachable!()
            };
            self.expect("unregister_sync of a dead value", r, Self::dead_codes(zero));
            return;
        };
        let flights = self.in_flight(reg);
        let (lo, hi) = self
            .tracked
            .get(&(thread, handle))
            .copied()
            .unwrap_or((0, 0));
        let timeout = if flights > 0 { SHORT_MS } else { GENEROUS_MS };
        // SAFETY: plain call.
        let r = unsafe { (self.api.unregister_sync)(handle, timeout) };
        let st = self.regs[reg].st;
        // Deadlock detection comes first: an access of the handle that this
        // thread began (through the library) and the library still tracks.
        let mut expected: Vec<i32> = match st {
            St::Live | St::Invalidated | St::Draining if lo > 0 && flights > 0 => {
                vec![WOULD_DEADLOCK]
            }
            _ if self.closed(reg) => vec![SHUT_DOWN, RELEASED, TIMEOUT],
            // Someone else unregistered it: waits for the release.
            St::Draining => vec![TIMEOUT],
            St::Released => vec![RELEASED],
            St::Live | St::Invalidated if flights > 0 => vec![TIMEOUT],
            St::Live | St::Invalidated => vec![OK],
        };
        if st != St::Released && hi > 0 && flights > 0 {
            expected.push(WOULD_DEADLOCK); // an inline end may have left the tracking
        }
        let expected = self.loosen(reg, &expected);
        self.expect("unregister_sync", r, &expected);
        self.follow_weak_death(reg, r);
        if matches!(st, St::Live | St::Invalidated)
            && (r == OK || r == TIMEOUT)
            && !self.closed(reg)
        {
            self.unregistered(reg);
            if r == OK && self.async_release(reg) {
                // Waited for the finalizer executor: released now.
                self.regs[reg].release_checked = false;
                self.check_cleanups(reg);
            }
        }
    }

    fn invalidate(&mut self, target: Target) {
        let named = self.name(target);
        let handle = self.handle(named);
        // SAFETY: plain call.
        let r = unsafe { (self.api.invalidate)(handle) };
        let Named::Reg(reg) = named else {
            let Named::Dead { zero, .. } = named else {
                unreachable!()
            };
            self.expect("invalidate of a dead value", r, Self::dead_codes(zero));
            return;
        };
        let expected: &[i32] = match self.regs[reg].st {
            _ if self.closed(reg) => &[SHUT_DOWN, RELEASED],
            St::Live => &[OK],
            St::Invalidated => &[INVALIDATED],
            St::Draining | St::Released => &[RELEASED],
        };
        let expected = self.loosen(reg, expected);
        self.expect("invalidate", r, &expected);
        self.follow_weak_death(reg, r);
        if r == OK {
            self.regs[reg].st = St::Invalidated;
            self.regs[reg].ever_invalidated = true;
        }
    }

    fn cleanup_ctx(&mut self, reg: usize, reenter: bool, fails: u8) -> (*mut c_void, u32) {
        let id = self.next_cleanup;
        self.next_cleanup += 1;
        let r = &self.regs[reg];
        let ctx = Box::new(CleanupCtx {
            tracker: &*self.objects[r.object].tracker,
            id,
            reenter: reenter.then_some((self.api, r.handle)),
            fails: AtomicU32::new(fails as u32),
        });
        let p = &*ctx as *const CleanupCtx as *mut c_void;
        self.cleanup_ctxs.push(ctx);
        (p, id)
    }

    fn add_cleanup(&mut self, target: Target, reenter: bool) {
        let named = self.name(target);
        let handle = self.handle(named);
        let Named::Reg(reg) = named else {
            // SAFETY: the cleanup is not kept.
            let r = unsafe { (self.api.add_cleanup)(handle, Some(never_called), ptr::null_mut()) };
            let Named::Dead { zero, .. } = named else {
                unreachable!()
            };
            self.expect("add_cleanup on a dead value", r, Self::dead_codes(zero));
            return;
        };
        let (data, id) = self.cleanup_ctx(reg, reenter, 0);
        // SAFETY: data lives until the run ends.
        let r = unsafe { (self.api.add_cleanup)(handle, Some(cleanup), data) };
        let expected: &[i32] = match self.regs[reg].st {
            _ if self.closed(reg) => &[SHUT_DOWN, RELEASED],
            St::Live | St::Invalidated => &[OK],
            St::Draining | St::Released => &[RELEASED],
        };
        let expected = self.loosen(reg, expected);
        self.expect("add_cleanup", r, &expected);
        self.follow_weak_death(reg, r);
        if r == OK {
            self.regs[reg].cleanups.push(id);
        }
    }

    fn set_finalizer(&mut self, target: Target, fails: u8) {
        let named = self.name(target);
        let handle = self.handle(named);
        let Named::Reg(reg) = named else {
            // SAFETY: the finalizer is not kept.
            let r =
                unsafe { (self.api.set_finalizer)(handle, Some(never_called), ptr::null_mut()) };
            let Named::Dead { zero, .. } = named else {
                unreachable!()
            };
            self.expect("set_finalizer on a dead value", r, Self::dead_codes(zero));
            return;
        };
        // Fails at most max_finalizer_retries (2 on the model's managers,
        // 3 on the default) times: then it succeeds and is recorded.
        let (data, id) = self.cleanup_ctx(reg, false, fails);
        // SAFETY: data lives until the run ends.
        let r = unsafe { (self.api.set_finalizer)(handle, Some(cleanup), data) };
        let expected: &[i32] = match self.regs[reg].st {
            _ if self.closed(reg) => &[SHUT_DOWN, RELEASED],
            St::Live | St::Invalidated if self.regs[reg].finalizer.is_some() => &[INVALID_ARGUMENT],
            St::Live | St::Invalidated => &[OK],
            St::Draining | St::Released => &[RELEASED],
        };
        let expected = self.loosen(reg, expected);
        self.expect("set_finalizer", r, &expected);
        self.follow_weak_death(reg, r);
        if r == OK {
            self.regs[reg].finalizer = Some(id);
        }
    }

    fn is_valid(&mut self, target: Target, path: Path) {
        let named = self.name(target);
        let handle = self.handle(named);
        let f = if path == Path::Inline {
            self.api.is_valid_inline
        } else {
            self.api.is_valid
        };
        // SAFETY: plain call.
        let valid = unsafe { f(handle) };
        let expected = match named {
            Named::Dead { .. } => Some(false),
            Named::Reg(reg) if self.closed(reg) => Some(false),
            // A weak registration whose object is gone: a snapshot that may
            // not know yet.
            Named::Reg(reg) if self.weak_dead(reg) => None,
            Named::Reg(reg) => Some(self.regs[reg].st == St::Live),
        };
        let _ = writeln!(self.log, "    is_valid -> {valid}");
        if expected.is_some_and(|e| e != valid) {
            self.fail(format!(
                "is_valid({handle:#x}) = {valid}, expected {expected:?}"
            ));
        }
    }

    fn info(&mut self, target: Target) {
        let named = self.name(target);
        let handle = self.handle(named);
        // SAFETY: all zeroes is a valid GcsHandleInfo (its enums' first
        // values are 0, its pointers NULL).
        let mut info: GcsHandleInfo = unsafe { std::mem::zeroed() };
        info.struct_size = size_of::<GcsHandleInfo>() as u32;
        // SAFETY: valid out pointer.
        let r = unsafe { (self.api.get_info)(handle, &mut info) };
        let Named::Reg(reg) = named else {
            let Named::Dead { zero, .. } = named else {
                unreachable!()
            };
            // A stale handle within its retention is described.
            let codes: &[i32] = if zero {
                &[INVALID_HANDLE]
            } else {
                &[INVALID_HANDLE, RELEASED, OK]
            };
            self.expect("get_info of a dead value", r, codes);
            if r == OK && info.state as i32 != STATE_RELEASED {
                self.fail(format!(
                    "get_info of a dead value: state {}",
                    info.state as i32
                ));
            }
            return;
        };
        let st = self.regs[reg].st;
        let weak_dead = st == St::Live && self.weak_dead(reg);
        let expected_codes: &[i32] = if st == St::Released || weak_dead {
            &[OK, RELEASED, SHUT_DOWN]
        } else {
            &[OK]
        };
        self.expect("get_info", r, expected_codes);
        if r != OK || weak_dead {
            return;
        }
        let state = info.state as i32;
        let want = match st {
            St::Live if self.closed(reg) => STATE_RELEASING,
            St::Live => STATE_LIVE,
            St::Invalidated => STATE_INVALIDATED,
            St::Draining => STATE_RELEASING,
            St::Released => STATE_RELEASED,
        };
        let flights = self.in_flight(reg) as u32;
        // A release on the finalizer executor is "releasing" until it ran.
        let pending =
            st == St::Released && self.async_release(reg) && !self.regs[reg].release_checked;
        let state_ok = state == want || (pending && state == STATE_RELEASING);
        if !state_ok
            || (st != St::Released && info.accesses_in_flight != flights)
            || info.handle != handle
        {
            self.fail(format!(
                "get_info({handle:#x}): state {state}, {} in flight; expected state {want}, {flights} in flight",
                info.accesses_in_flight
            ));
        }
    }

    /// The run drops its strong reference to a weak registration's object:
    /// unless an access holds it, it dies, and the handle reports RELEASED.
    fn drop_strong(&mut self, target: Target) {
        let Named::Reg(reg) = self.name(target) else {
            return;
        };
        if self.regs[reg].kind != KIND_WEAK_GOBJECT {
            return;
        }
        let object = self.regs[reg].object;
        if !self.objects[object].strong {
            return;
        }
        self.unref(object);
        // A release running on the finalizer executor holds the object
        // (upgraded) until the finalizer returned.
        if self.regs[reg].st == St::Released
            && self.async_release(reg)
            && !self.regs[reg].release_checked
        {
            return;
        }
        let expected = u32::from(self.objects[object].accesses == 0);
        self.check_freed(
            object,
            expected,
            "a weakly registered object after its last strong reference",
        );
    }

    fn close_manager(&mut self, manager: usize) {
        if self.managers[manager].closed {
            return;
        }
        let ptr = self.managers[manager].ptr;
        // SAFETY: a manager of the run.
        let r = unsafe { (self.api.manager_close)(ptr, 0) };
        self.managers[manager].closed = true;
        let regs: Vec<usize> = (0..self.regs.len())
            .filter(|&i| self.regs[i].manager == manager)
            .collect();
        let pending = regs
            .iter()
            .any(|&i| self.in_flight(i) > 0 && self.regs[i].st != St::Released);
        self.expect("manager_close", r, if pending { &[TIMEOUT] } else { &[OK] });
        for i in regs {
            if matches!(self.regs[i].st, St::Live | St::Invalidated) {
                self.unregistered(i);
            }
        }
    }

    /// Two threads access one handle as fast as they can while this thread
    /// unregisters it: every access before the unregister runs on the live
    /// object, every one after it is refused, and the object is released
    /// exactly once, after the last callback returned.
    fn burst(&mut self, target: Target) {
        let Named::Reg(reg) = self.name(target) else {
            return;
        };
        let r = &self.regs[reg];
        if r.st != St::Live
            || self.closed(reg)
            || self.in_flight(reg) > 0
            || r.kind == KIND_WEAK_GOBJECT
            || self.async_release(reg)
        {
            return;
        }
        let handle = r.handle;
        let object = &self.objects[r.object];
        let tracker = &*object.tracker as *const Tracker as usize;
        let expected_ptr = object.ptr;
        let api = self.api;
        let barrier = Arc::new(Barrier::new(3));
        let stop = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::new();
        for w in 0..2 {
            let barrier = barrier.clone();
            let stop = stop.clone();
            workers.push(thread::spawn(move || {
                // (ok count, callbacks run, the codes after the first refusal)
                let (mut ok, mut seen, mut after) = (0u32, 0u32, Vec::new());
                barrier.wait();
                let mut i = w;
                while after.len() < 8 {
                    let ctx = BurstCtx {
                        tracker: tracker as *const Tracker,
                        expected: expected_ptr,
                        seen: &mut seen,
                    };
                    let f = if i % 2 == 0 {
                        api.safe_access
                    } else {
                        api.safe_access_inline
                    };
                    i += 1;
                    // SAFETY: ctx lives across the call.
                    let r = unsafe {
                        f(
                            handle,
                            Some(burst_callback),
                            &ctx as *const BurstCtx as *mut c_void,
                        )
                    };
                    if r == OK && after.is_empty() {
                        ok += 1;
                    } else {
                        after.push(r);
                    }
                    if !stop.load(Ordering::Relaxed) {
                        thread::yield_now();
                    }
                }
                (ok, seen, after)
            }));
        }
        barrier.wait();
        thread::yield_now();
        // SAFETY: plain call.
        let r = unsafe { (api.unregister)(handle) };
        stop.store(true, Ordering::Relaxed);
        let mut total = 0;
        for w in workers {
            let (ok, seen, after) = w.join().expect("a burst worker");
            total += seen;
            // OK* then refusals: once refused, never accepted again.
            if after.iter().any(|&r| r != RELEASED) {
                self.fail(format!("burst: after the first refusal: {after:?}"));
            }
            if ok != seen {
                self.fail(format!("burst: {ok} OK results but {seen} callbacks ran"));
            }
        }
        let _ = writeln!(
            self.log,
            "    burst: {total} accesses ran, unregister -> {}",
            code_name(r)
        );
        self.expect("unregister during a burst", r, &[OK]);
        self.released(reg);
    }

    /// Violations the C callbacks recorded.
    fn collect(&mut self) {
        let mut found = Vec::new();
        for o in &self.objects {
            found.append(&mut o.tracker.violations.lock().unwrap());
        }
        self.failures.append(&mut found);
    }

    /// Raise every failure with the log of the run so far.
    fn raise(&mut self) {
        self.collect();
        if !self.failures.is_empty() {
            panic!(
                "model check failed:\n  {}\n\noperations:\n{}",
                self.failures.join("\n  "),
                self.log
            );
        }
    }

    /// Live objects must be alive; every check after each operation.
    fn check_alive(&mut self) {
        for i in 0..self.regs.len() {
            let r = &self.regs[i];
            let o = &self.objects[r.object];
            let freed = o.tracker.freed.load(Ordering::SeqCst);
            let must_live = matches!(r.st, St::Live | St::Invalidated | St::Draining)
                && r.kind != KIND_WEAK_GOBJECT;
            if must_live && freed != 0 {
                let what = format!(
                    "handle {:#x} ({:?}): its object was freed while not released",
                    r.handle, r.st
                );
                self.fail(what);
            }
        }
    }

    /// End every access, shut the library down, check every release.
    fn finish(&mut self) {
        let _ = writeln!(self.log, "[t0] finish");
        // Each on the thread that began it (so the library's per-thread
        // tracking is left clean), newest first.
        while let Some(flight) = self.flights.last() {
            let (i, thread) = (self.flights.len() - 1, flight.thread);
            let op = Op::End {
                flight: i,
                path: Path::Exported,
            };
            if thread == 0 {
                self.apply(op, 0, 0)
            } else {
                self.on_thread(thread, op, 0)
            }
        }
        assert!(self.flights.is_empty(), "every access ended");
        // SAFETY: plain call; closes every manager, joins the executor.
        let r = unsafe { (self.api.shutdown)(GENEROUS_MS) };
        self.expect("shutdown", r, &[OK]);
        if r != OK {
            for i in 0..self.regs.len() {
                // SAFETY: as in info().
                let mut info: GcsHandleInfo = unsafe { std::mem::zeroed() };
                info.struct_size = size_of::<GcsHandleInfo>() as u32;
                let code = unsafe { (self.api.get_info)(self.regs[i].handle, &mut info) };
                let _ = writeln!(
                    self.log,
                    "    after shutdown: {:#x} model {:?} kind {} finalizer {:?}: get_info {} state {} in flight {}",
                    self.regs[i].handle,
                    self.regs[i].st,
                    self.regs[i].kind,
                    self.regs[i].finalizer,
                    code_name(code),
                    info.state as i32,
                    info.accesses_in_flight
                );
            }
        }
        for i in 0..self.regs.len() {
            if self.regs[i].st != St::Released {
                self.regs[i].st = St::Released;
            }
            self.check_cleanups(i);
        }
        for o in 0..self.objects.len() {
            self.unref(o);
            self.check_freed(o, 1, "at the end of the run, an object");
        }
        let mut live = 0u32;
        // SAFETY: counts the callbacks.
        let r = unsafe {
            (self.api.foreach_live_handle)(
                0,
                Some(count_live),
                &mut live as *mut u32 as *mut c_void,
            )
        };
        self.expect("foreach_live_handle", r, &[OK]);
        if live != 0 {
            self.fail(format!("{live} live handles after gcs_shutdown"));
        }
        for m in &self.managers {
            if !m.ptr.is_null() {
                // SAFETY: ours, freed once.
                unsafe { (self.api.manager_free)(m.ptr) };
            }
        }
        // Handles of this run stay dead: accesses are refused from now on.
        for r in &self.regs {
            // SAFETY: the callback must not run.
            let code =
                unsafe { (self.api.safe_access)(r.handle, Some(never_called), ptr::null_mut()) };
            if code == OK {
                self.failures
                    .push(format!("handle {:#x} accepted after shutdown", r.handle));
            }
        }
        let mut stale = STALE.lock().unwrap();
        stale.extend(self.regs.iter().map(|r| r.handle));
        let excess = stale.len().saturating_sub(256);
        stale.drain(..excess);
    }
}

unsafe extern "C" fn count_live(_: *const c_void, data: *mut c_void) {
    // SAFETY: data is a u32 of finish().
    unsafe { *(data as *mut u32) += 1 };
}

struct BurstCtx {
    tracker: *const Tracker,
    expected: usize,
    seen: *mut u32,
}

unsafe extern "C" fn burst_callback(object: *mut c_void, data: *mut c_void) -> c_int {
    // SAFETY: data is a BurstCtx on the worker's stack.
    let ctx = unsafe { &*(data as *const BurstCtx) };
    // SAFETY: the tracker outlives the burst.
    let tracker = unsafe { &*ctx.tracker };
    tracker.in_access.fetch_add(1, Ordering::SeqCst);
    if object as usize != ctx.expected || tracker.freed.load(Ordering::SeqCst) != 0 {
        tracker.violation("burst: an access saw a freed or wrong object".into());
    }
    // SAFETY: the worker's counter.
    unsafe { *ctx.seen += 1 };
    tracker.in_access.fetch_sub(1, Ordering::SeqCst);
    0
}

/// Run one operation sequence (the fuzz input) against the library and the
/// model; panics with the operation log on any difference.
pub fn run(api: Api, data: &[u8]) {
    let mut run = Run::new(api);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut input = Input { data, pos: 0 };
        let mut ops = 0;
        while !input.done() && ops < MAX_OPS {
            let op = decode(&mut input, 0);
            run.apply(op, 0, 0);
            run.check_alive();
            run.raise();
            ops += 1;
        }
        run.finish();
        run.raise();
    }));
    if let Err(panic) = outcome {
        // Leave the library clean for the next run (proptest shrinks in
        // this process): end what is still in flight, shut down.
        for f in std::mem::take(&mut run.flights) {
            // SAFETY: plain calls; results do not matter any more.
            unsafe { (api.access_end)(run.regs[f.reg].handle) };
        }
        // SAFETY: plain call.
        unsafe { (api.shutdown)(GENEROUS_MS) };
        std::panic::resume_unwind(panic);
    }
}
