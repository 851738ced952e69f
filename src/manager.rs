//! Managers: configuration, statistics and the lifecycle of registrations.
//!
//! All managers share one handle table (a handle names its manager through
//! its slot), created once per load of the library with a fresh salt. The
//! default manager starts lazily, at the first registration (or call passing
//! a NULL manager), with the configuration given to [`configure`] or the
//! defaults, and the environment (`GCS_DEBUG`, `GCS_LEAKS`) read once.
//!
//! Closing a manager refuses new registrations and accesses at once
//! ([`ErrorCode::ShutDown`]), unregisters every registration (those with no
//! access in flight are released right away, with their cleanups; the others
//! when their last access ends, on that thread) and waits up to the timeout
//! for those releases. [`shutdown`] closes every open manager, joins the
//! finalizer executor's threads and forgets the default manager, so the next
//! use starts a fresh one.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

/// The closed bit of `ManagerInner::gate` and of each stripe's gate.
const CLOSED: u64 = 1 << 63;
use std::sync::{Arc, LazyLock, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

use crate::clock;
use crate::config::{Config, MEMORY_PRESSURE_INTERVAL};
use crate::error::{Error, ErrorCode, Result, human_ms};
use crate::handle::{self, HandleInfo};
use crate::names::Name;
use crate::record::Record;
use crate::release::{self, carry_out_release};
use crate::stats::{Stats, TypeCounters, TypeRef, TypeStats};
use crate::table::{Limits, Phase, Table};

/// The table of this load of the library.
#[inline]
pub(crate) fn table() -> &'static Table<Record> {
    static TABLE: LazyLock<Table<Record>> = LazyLock::new(|| {
        // SAFETY: a `static`: never dropped.
        unsafe { Table::new_process(Limits::default(), fresh_salt()) }
    });
    &TABLE
}

/// A salt no earlier load of the library can have had: OS randomness (std's
/// `RandomState` keys come from getrandom) mixed with the time and pid.
fn fresh_salt() -> u64 {
    let mut hasher = std::hash::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    if let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(now.as_nanos());
    }
    hasher.finish()
}

/// Debugging switches from `GCS_DEBUG` / `GCS_LEAKS` (default manager only).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct EnvFlags {
    pub(crate) log_state: bool,
    pub(crate) log_finalizers: bool,
    pub(crate) stacks: bool,
    pub(crate) leaks: bool,
}

impl EnvFlags {
    /// Read `GCS_DEBUG` (comma-separated: `state`, `finalizers`, `stacks`,
    /// `all`) and `GCS_LEAKS` (`1`).
    fn from_environment() -> EnvFlags {
        let mut flags = EnvFlags::default();
        if let Ok(debug) = std::env::var("GCS_DEBUG") {
            for word in debug.split([',', ' ', ':']).map(str::trim) {
                match word {
                    "state" => flags.log_state = true,
                    "finalizers" => flags.log_finalizers = true,
                    "stacks" => flags.stacks = true,
                    "all" => {
                        flags.log_state = true;
                        flags.log_finalizers = true;
                        flags.stacks = true;
                    }
                    _ => {}
                }
            }
        }
        flags.leaks = std::env::var("GCS_LEAKS").is_ok_and(|v| v == "1");
        flags
    }
}

/// The shared state of a manager.
pub(crate) struct ManagerInner {
    /// Unique for the life of the process.
    pub(crate) id: u64,
    pub(crate) config: Config,
    pub(crate) env: EnvFlags,
    pub(crate) is_default: bool,
    /// Bit 63: closed (the first close sets it; `is_closed` reads it).
    ///
    /// Register and close meet on the registering thread's stripe gate
    /// (`counters.counts`): bit 63 closed, the rest registrations entered
    /// (wrapping). Their read-modify-writes are ordered without a fence: a
    /// registration's `fetch_add` after the close's `fetch_or` of that
    /// stripe sees the closed bit; one before it synchronizes with the close
    /// (AcqRel on both), so the close's scan, which follows its `fetch_or`
    /// of every stripe, sees its slot. Each thread writes only its stripe's
    /// gate, so registrations on different threads share no written line.
    gate: AtomicU64,
    pub(crate) counters: crate::stats::ManagerCounters,
    types: Mutex<HashMap<Box<str>, Arc<TypeCounters>>>,
    /// `clock::now_ms()` of the last sweep of expired retained states.
    last_sweep_ms: AtomicU64,
    /// `clock::now_ms()` of the last memory pressure signal (0: never).
    last_pressure_ms: AtomicU64,
}

impl core::fmt::Debug for ManagerInner {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Manager")
            .field("id", &self.id)
            .field("default", &self.is_default)
            .finish()
    }
}

/// Every manager not yet freed, for `shutdown` and fork handlers.
fn registry() -> &'static Mutex<Vec<Weak<ManagerInner>>> {
    static MANAGERS: Mutex<Vec<Weak<ManagerInner>>> = Mutex::new(Vec::new());
    &MANAGERS
}

impl ManagerInner {
    /// A manager owned through its `Arc` alone, as the C ABI's
    /// `GcsManager *` is (no [`Manager`] wrapper, whose Drop would close it):
    /// freed when the last strong count goes. The configuration is checked
    /// first.
    pub(crate) fn new_owned(config: Config) -> Result<Arc<ManagerInner>> {
        config.validate()?;
        Ok(ManagerInner::start(config, false))
    }

    fn start(config: Config, is_default: bool) -> Arc<ManagerInner> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        #[cfg(not(loom))]
        crate::fork::install_handlers();
        let env = if is_default {
            EnvFlags::from_environment()
        } else {
            EnvFlags::default()
        };
        let inner = Arc::new(ManagerInner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            config,
            env,
            is_default,
            gate: AtomicU64::new(0),
            counters: Default::default(),
            types: Mutex::new(HashMap::new()),
            last_sweep_ms: AtomicU64::new(clock::now_ms()),
            last_pressure_ms: AtomicU64::new(0),
        });
        crate::diag::manager_started(inner.capture_stacks(), inner.log_state_changes());
        let mut all = registry().lock();
        all.retain(|m| m.strong_count() > 0);
        all.push(Arc::downgrade(&inner));
        inner
    }

    pub(crate) fn log_state_changes(&self) -> bool {
        self.config.log_state_changes || self.env.log_state
    }

    pub(crate) fn log_finalizers(&self) -> bool {
        self.config.log_finalizers || self.env.log_finalizers
    }

    pub(crate) fn capture_stacks(&self) -> bool {
        self.env.stacks
    }

    pub(crate) fn release_context(&self) -> Option<&glib::MainContext> {
        self.config.release_context.as_ref()
    }

    pub(crate) fn is_closed(&self) -> bool {
        // Acquire: pairs with the close's fetch_or (a quick early check; the
        // decisive one is `enter_registration`).
        self.gate.load(Ordering::Acquire) & CLOSED != 0
    }

    /// Called by a registration of `stripe` after its slot is published:
    /// `false` if the manager was closed meanwhile (then the registration must
    /// be undone).
    pub(crate) fn enter_registration(&self, stripe: u8) -> bool {
        // AcqRel: see `gate`.
        self.counters.counts.0[stripe as usize]
            .gate
            .fetch_add(1, Ordering::AcqRel)
            & CLOSED
            == 0
    }

    /// The error for work on a closed manager.
    pub(crate) fn closed_error(&self, what: &str) -> Error {
        Error::new(
            ErrorCode::ShutDown,
            format!("{}: manager closed ({what})", self.describe()),
        )
    }

    fn describe(&self) -> String {
        if self.is_default {
            "the default manager".to_owned()
        } else {
            format!("manager #{}", self.id)
        }
    }

    /// The counters of a type name, created at its first registration. A
    /// one-entry thread-local memo (manager, name) spares the lock and the
    /// hash when a thread registers the same type again and again.
    pub(crate) fn type_counters(&self, name: &Name) -> TypeRef {
        thread_local! {
            /// The last (manager id, counters) this thread registered with.
            /// Ids are never reused, so an entry of a freed manager never
            /// matches (and is never dereferenced) again.
            static LAST: std::cell::Cell<Option<(u64, TypeRef)>> =
                const { std::cell::Cell::new(None) };
        }
        let hit = LAST
            .try_with(|last| {
                // The id first: only this (live) manager's counters are read.
                last.get().filter(|(id, counters)| {
                    *id == self.id && counters.name.as_c_str() == name.as_c_str()
                })
            })
            .ok()
            .flatten();
        if let Some((_, counters)) = hit {
            return counters;
        }
        let counters = TypeRef::new(&self.type_counters_locked(name));
        let _ = LAST.try_with(|last| last.set(Some((self.id, counters))));
        counters
    }

    fn type_counters_locked(&self, name: &Name) -> Arc<TypeCounters> {
        let mut types = self.types.lock();
        if let Some(counters) = types.get(name.as_str()) {
            return counters.clone();
        }
        let counters = Arc::new(TypeCounters::new(name.clone()));
        types.insert(name.as_str().into(), counters.clone());
        counters
    }

    /// Sweep expired retained states if `cleanup_interval` has passed.
    pub(crate) fn maybe_sweep(&self) {
        let now = clock::now_ms();
        // Relaxed: a timestamp; losing a race only means one thread sweeps.
        let last = self.last_sweep_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= self.config.cleanup_interval.as_millis() as u64
            && self
                .last_sweep_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            table().sweep_expired();
        }
    }

    /// Whether registrations must watch the tracked bytes (a memory limit
    /// with a pressure callback is configured).
    pub(crate) fn watches_memory(&self) -> bool {
        self.config.memory_limit_bytes != 0 && self.config.memory_pressure.is_some()
    }

    /// Bytes tracked now (a snapshot of the striped counts).
    pub(crate) fn tracked_bytes(&self) -> u64 {
        self.counters.counts.tracked_bytes()
    }

    /// After a registration took the tracked bytes from `before` to `after`:
    /// signal memory pressure when crossing the limit, then at most once per
    /// [`MEMORY_PRESSURE_INTERVAL`] while above it. Called outside all locks.
    pub(crate) fn check_memory(&self, before: u64, after: u64) {
        let limit = self.config.memory_limit_bytes;
        let Some(pressure) = self.config.memory_pressure.as_ref() else {
            return;
        };
        if limit == 0 || after <= limit {
            return;
        }
        let now = clock::now_ms().max(1);
        let last = self.last_pressure_ms.load(Ordering::Relaxed);
        let crossing = before <= limit;
        let due = now.saturating_sub(last) >= MEMORY_PRESSURE_INTERVAL.as_millis() as u64;
        if (crossing || due)
            && self
                .last_pressure_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            pressure(after);
        }
    }

    /// Every registration of this manager (live, invalidated or releasing).
    fn handles(&self) -> Vec<u64> {
        let mut handles = Vec::new();
        table().for_each_registered(|handle, _, details| {
            if details
                .payload
                .as_ref()
                .is_some_and(|r| r.manager.id == self.id)
            {
                handles.push(handle);
            }
        });
        handles
    }

    /// Registrations of this manager whose release is pending: those another
    /// thread will complete (`others`), and those only this thread can
    /// (`here`: it is releasing them, or holds an access of them).
    fn releases_pending(&self) -> (usize, usize) {
        let mut pending = Vec::new();
        table().for_each_registered(|handle, word, details| {
            if word.phase() == Phase::Draining
                && details
                    .payload
                    .as_ref()
                    .is_some_and(|r| r.manager.id == self.id)
            {
                pending.push((handle, word.count()));
            }
        });
        // Checked outside the detail locks (the tracker may take its own).
        // An access of this thread counts only while the handle has accesses
        // in flight: an entry can outlive its access (one begun through the
        // library and ended inline, which the tracker never hears of), as
        // `gcs_unregister_sync` also checks (handle.rs). Without that, a
        // stale entry made close give up at once on a release that was only
        // waiting for its finalizer (found by the model check).
        let here = pending
            .iter()
            .filter(|&&(h, in_flight)| {
                crate::thread_accesses::is_releasing(h)
                    || (in_flight > 0 && crate::thread_accesses::contains(h))
            })
            .count();
        (pending.len() - here, here)
    }

    /// Close: see the module documentation. A second close waits the same
    /// way for what is still pending.
    pub(crate) fn close(&self, timeout: Option<Duration>) -> Result<()> {
        let started = Instant::now();
        // AcqRel: either a concurrent registration's `enter_registration`
        // sees the closed bit, or the scan below sees its slot (see `gate`).
        let first = self.gate.fetch_or(CLOSED, Ordering::AcqRel) & CLOSED == 0;
        for stripe in &self.counters.counts.0 {
            stripe.gate.fetch_or(CLOSED, Ordering::AcqRel);
        }
        if first && self.env.leaks {
            report_leaks(self);
        }
        for handle in self.handles() {
            if let Ok(Some(claim)) = table().unregister(handle) {
                carry_out_release(claim);
            }
        }
        // Waiting for a release this very thread must finish (a cleanup or an
        // access callback closing its own manager) would never end: wait for
        // the others only.
        let remaining = timeout.map(|t| t.saturating_sub(started.elapsed()));
        release::wait_until(remaining, || self.releases_pending().0 == 0);
        let (others, here) = self.releases_pending();
        if others == 0 && here == 0 {
            if first {
                log_state!(
                    self,
                    crate::log::Level::Info,
                    core::ptr::null_mut(),
                    "{} closed",
                    self.describe()
                );
            }
            return Ok(());
        }
        Err(Error::new(
            ErrorCode::Timeout,
            format!(
                "{}: {} registrations were still being released after {} (accesses in flight, a \
                 finalizer or a release context; {} of them on this very thread, which cannot wait for \
                 itself); each is released when that ends",
                self.describe(),
                others + here,
                human_ms(started.elapsed().as_millis() as u64),
                here
            ),
        ))
    }

    /// Statistics snapshot.
    pub(crate) fn stats(&self) -> Stats {
        let types: Vec<Arc<TypeCounters>> = self.types.lock().values().cloned().collect();
        let access_ok = types.iter().map(|t| t.accesses()).sum();
        self.counters.snapshot(access_ok)
    }

    /// Per-type statistics, sorted by type name.
    pub(crate) fn type_stats(&self) -> Vec<TypeStats> {
        let types: Vec<Arc<TypeCounters>> = self.types.lock().values().cloned().collect();
        let mut stats: Vec<TypeStats> = types.iter().map(|t| t.snapshot()).collect();
        stats.sort_by(|a, b| a.type_name.cmp(&b.type_name));
        stats
    }

    /// What is registered now (the leak report), oldest first.
    pub(crate) fn live(&self) -> Vec<(HandleInfo, Option<Arc<std::backtrace::Backtrace>>)> {
        let mut live: Vec<_> = self
            .handles()
            .into_iter()
            .filter_map(|handle| {
                let info = handle::info(handle).ok()?;
                let (sequence, backtrace) = table()
                    .with_details(handle, |_, d| {
                        d.payload
                            .as_ref()
                            .map(|r| (r.sequence, r.backtrace().cloned()))
                    })
                    .flatten()?;
                Some((sequence, info, backtrace))
            })
            .collect();
        live.sort_by_key(|&(sequence, _, _)| sequence);
        live.into_iter()
            .map(|(_, info, backtrace)| (info, backtrace))
            .collect()
    }
}

/// Print every live handle of `manager` to stderr, in the spirit of
/// GStreamer's `leaks` tracer (`GCS_LEAKS=1`).
pub(crate) fn report_leaks(manager: &ManagerInner) {
    let live = manager.live();
    if live.is_empty() {
        eprintln!("gcsafety: {}: no leaks", manager.describe());
        return;
    }
    eprintln!(
        "gcsafety: {}: {} live handles (leaks):",
        manager.describe(),
        live.len()
    );
    for (info, backtrace) in live {
        let instance = info
            .instance_name
            .as_deref()
            .map(|n| format!(" '{n}'"))
            .unwrap_or_default();
        eprintln!(
            "gcsafety: leak: handle {:#018x} {}{instance} ({}, {:?}, {} bytes, {} accesses in flight), alive {}",
            info.handle.as_raw(),
            info.type_name,
            info.kind.name(),
            info.state,
            info.size_bytes,
            info.accesses_in_flight,
            human_ms(info.age_ms),
        );
        if let Some(backtrace) = backtrace {
            eprintln!(
                "gcsafety: registered at:\n{}",
                callers_frames(&backtrace.to_string())
            );
        }
    }
}

/// The frames of a registration backtrace from the caller of the library
/// on: std's text, without the frames up to the registration entry point
/// (`gcs_register*` or `Registration::register*`).
pub(crate) fn callers_frames(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let is_frame = |line: &str| {
        let t = line.trim_start();
        t.split(':')
            .next()
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
    };
    let entry = lines.iter().rposition(|line| {
        is_frame(line)
            && (line.contains(" gcs_register") || line.contains("Registration::register"))
    });
    let start = match entry {
        Some(entry) => (entry + 1..lines.len())
            .find(|&i| is_frame(lines[i]))
            .unwrap_or(lines.len()),
        None => 0,
    };
    lines[start..].join("\n")
}

// ----- the default manager ------------------------------------------------------

pub(crate) struct DefaultState {
    running: Option<Arc<ManagerInner>>,
    /// Set by `configure` before the default manager starts.
    pending: Option<Config>,
}

static DEFAULT: RwLock<DefaultState> = RwLock::new(DefaultState {
    running: None,
    pending: None,
});

/// Changes whenever `DEFAULT.running` does (under its write lock): a
/// thread's cached default manager is current while the epoch it was cached
/// at is.
static DEFAULT_EPOCH: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's copy of the running default manager, with the epoch it
    /// was read at: registrations find the default manager without the
    /// `RwLock` and without an `Arc` clone.
    static CACHED_DEFAULT: RefCell<Option<(u64, Arc<ManagerInner>)>> =
        const { RefCell::new(None) };
}

/// Run `f` with the default manager, started with its configuration (from
/// [`configure`], else the defaults) at its first use.
///
/// Usually no RMW: a thread-local copy, valid while [`DEFAULT_EPOCH`] is
/// unchanged. Acquire on the epoch pairs with the Release bump in
/// [`set_running`], so a thread that sees the new epoch refreshes from
/// `DEFAULT`; a thread that read the old epoch just before a shutdown uses
/// the manager being closed, which refuses it (`enter_registration`),
/// exactly as if it had read `DEFAULT` a moment earlier. A stale copy keeps
/// a closed manager's memory alive until the thread's next use or exit.
pub(crate) fn with_default_manager<R>(f: impl FnOnce(&Arc<ManagerInner>) -> R) -> R {
    let epoch = DEFAULT_EPOCH.load(Ordering::Acquire);
    let mut f = Some(f);
    // Borrowed, not cloned: `f` runs inside the shared borrow (a nested
    // call borrows again; only a refresh, below, needs it exclusively).
    let fast = CACHED_DEFAULT
        .try_with(|cached| {
            let cached = cached.try_borrow().ok()?;
            match &*cached {
                Some((at, manager)) if *at == epoch => f.take().map(|f| f(manager)),
                _ => None,
            }
        })
        .ok()
        .flatten();
    if let Some(result) = fast {
        return result;
    }
    let f = f.expect("not called on the fast path");
    let (epoch, manager) = running_default();
    let _ = CACHED_DEFAULT.try_with(|cached| {
        if let Ok(mut cached) = cached.try_borrow_mut() {
            *cached = Some((epoch, manager.clone()));
        }
    });
    f(&manager)
}

/// The running default manager (started if needed) and the epoch it
/// belongs to.
#[cold]
fn running_default() -> (u64, Arc<ManagerInner>) {
    {
        let state = DEFAULT.read();
        if let Some(running) = &state.running {
            return (DEFAULT_EPOCH.load(Ordering::Relaxed), running.clone());
        }
    }
    let mut state = DEFAULT.write();
    if let Some(running) = &state.running {
        return (DEFAULT_EPOCH.load(Ordering::Relaxed), running.clone());
    }
    let config = state.pending.take().unwrap_or_default();
    let inner = ManagerInner::start(config, true);
    let epoch = set_running(&mut state, Some(inner.clone()));
    (epoch, inner)
}

/// Replace the running default manager (under `DEFAULT`'s write lock) and
/// move to a new epoch, which it returns.
fn set_running(state: &mut DefaultState, running: Option<Arc<ManagerInner>>) -> u64 {
    state.running = running;
    // Release: see `with_default_manager`. (Under the write lock, so readers
    // of `DEFAULT` see the epoch that goes with `running`.)
    DEFAULT_EPOCH.fetch_add(1, Ordering::Release) + 1
}

/// The default manager: started with its configuration (from
/// [`configure`], else the defaults) at its first use.
pub(crate) fn default_manager() -> Arc<ManagerInner> {
    with_default_manager(Arc::clone)
}

/// The default manager if it has started (calls that only take a handle
/// never start it).
pub(crate) fn default_manager_if_started() -> Option<Arc<ManagerInner>> {
    DEFAULT.read().running.clone()
}

/// Whether the default manager has started.
pub fn default_manager_started() -> bool {
    DEFAULT.read().running.is_some()
}

/// Configure the default manager. Only before its first use: afterwards
/// [`ErrorCode::AlreadyInitialized`]. A bad value is refused and changes nothing.
pub fn configure(config: &Config) -> Result<()> {
    config.validate()?;
    let mut state = DEFAULT.write();
    if state.running.is_some() {
        return Err(Error::new(
            ErrorCode::AlreadyInitialized,
            "gcs_configure: the default manager has already started (configure before the first registration)",
        ));
    }
    state.pending = Some(config.clone());
    Ok(())
}

/// Close the default manager and every manager still open, then join the
/// library's threads. The next use starts a fresh default manager; handles
/// from before stay dead. With `GCS_LEAKS=1`, live handles are reported first.
pub fn shutdown(timeout: Option<Duration>) -> Result<()> {
    let started = Instant::now();
    let remaining = || timeout.map(|t| t.saturating_sub(started.elapsed()));
    let default = {
        let mut state = DEFAULT.write();
        let default = state.running.take();
        set_running(&mut state, None);
        default
    };
    let mut open: Vec<Arc<ManagerInner>> = registry()
        .lock()
        .iter()
        .filter_map(Weak::upgrade)
        .filter(|m| !m.is_closed())
        .collect();
    if let Some(default) = default {
        if !open.iter().any(|m| Arc::ptr_eq(m, &default)) {
            open.push(default);
        }
    }
    let mut result = Ok(());
    for manager in open {
        if let Err(error) = manager.close(remaining()) {
            result = result.and(Err(error));
        }
    }
    if !crate::executor::shutdown(remaining().unwrap_or(Duration::from_secs(3600))) {
        result = result.and(Err(Error::new(
            ErrorCode::Timeout,
            "gcs_shutdown: a finalizer thread is still running a finalizer; it was left to finish",
        )));
    }
    result
}

/// Every manager not yet freed (open or closed).
pub(crate) fn all_managers() -> Vec<Arc<ManagerInner>> {
    registry().lock().iter().filter_map(Weak::upgrade).collect()
}

/// Fork support: call `f` for every manager while the fork handlers hold
/// the registry lock (so it is not taken again here).
#[cfg(not(loom))]
pub(crate) fn for_each_manager_locked(mut f: impl FnMut(&ManagerInner)) {
    // SAFETY: only called by the fork handlers between taking and releasing
    // the registry lock on this thread, so no other thread can change it.
    let all = unsafe { &*registry().data_ptr() };
    for manager in all.iter().filter_map(Weak::upgrade) {
        f(&manager);
    }
}

/// Fork support: the global locks of this module.
#[cfg(not(loom))]
pub(crate) fn fork_locks() -> (
    &'static RwLock<DefaultState>,
    &'static Mutex<Vec<Weak<ManagerInner>>>,
) {
    (&DEFAULT, registry())
}

impl ManagerInner {
    /// Fork support: the per-manager lock.
    #[cfg(not(loom))]
    pub(crate) fn types_lock(&self) -> &Mutex<HashMap<Box<str>, Arc<TypeCounters>>> {
        &self.types
    }
}

// ----- the public manager type -------------------------------------------------------

/// A manager with its own configuration and statistics. Dropping it closes
/// it (waiting as long as accesses take); see [`Manager::close`].
#[derive(Debug)]
pub struct Manager {
    pub(crate) inner: Arc<ManagerInner>,
}

impl Manager {
    /// A new manager. The configuration is checked first.
    pub fn new(config: Config) -> Result<Manager> {
        config.validate()?;
        Ok(Manager {
            inner: ManagerInner::start(config, false),
        })
    }

    /// Refuse new registrations and accesses, release every registration
    /// (running cleanups), and wait up to `timeout` (`None`: as long as it
    /// takes) for registrations whose accesses are still in flight; those are
    /// released when their last access ends ([`ErrorCode::Timeout`] then).
    pub fn close(&self, timeout: Option<Duration>) -> Result<()> {
        self.inner.close(timeout)
    }

    /// Whether it is closed.
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Statistics.
    pub fn stats(&self) -> Stats {
        self.inner.stats()
    }

    /// Statistics per type name.
    pub fn type_stats(&self) -> Vec<TypeStats> {
        self.inner.type_stats()
    }

    /// Every registration not yet released, oldest first (the leak report).
    pub fn live(&self) -> Vec<HandleInfo> {
        self.inner
            .live()
            .into_iter()
            .map(|(info, _)| info)
            .collect()
    }

    /// The statistics in the Prometheus text exposition format.
    pub fn prometheus(&self) -> String {
        crate::prometheus::render(&self.inner.stats(), &self.inner.type_stats())
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        let _ = self.inner.close(None);
    }
}

/// Statistics of the default manager (starting it if needed).
pub fn default_stats() -> Stats {
    default_manager().stats()
}

/// Names as static C strings for the C ABI's foreach callbacks.
pub(crate) fn c_name(name: &str) -> std::ffi::CString {
    std::ffi::CString::new(name).unwrap_or_else(|_| c"?".to_owned())
}
