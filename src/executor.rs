//! The finalizer executor: a small, lazily started pool of library threads
//! on which safe finalizers run, watched for timeouts.
//!
//! When a registration with a finalizer is released and its manager has
//! `enable_finalizer_safety`, the finalizer does not run on the releasing
//! thread: it becomes a [`Task`] handed to [`submit`]. A worker thread runs
//! the task's `attempt` (retrying a failed attempt up to `retries` times),
//! then its `done` continuation, which performs the object's final release.
//! A watchdog thread notices attempts that overrun their `timeout`, reports
//! them (`on_timeout`) and makes sure one hung finalizer does not hold up the
//! others.
//!
//! # Threads
//! * Workers (named `gcs-finalizer`) take tasks from one FIFO queue. A worker
//!   is in one of these states:
//!   - *starting*: spawned, not yet running its loop (it will take a task);
//!   - *idle*: waiting for a task, for at most [`IDLE_TIMEOUT`] (2 s); a
//!     worker that stays idle that long exits;
//!   - *busy*: running a task — its attempts, then `done`. While busy the
//!     worker has a deadline (start of the current attempt + `timeout`; the
//!     `done` phase is watched with the same timeout);
//!   - *stuck*: busy past its deadline. A stuck worker no longer counts as
//!     available capacity; when its attempt (or `done`) eventually returns,
//!     it is busy again (next attempt) or goes back to the queue, i.e. it is
//!     a normal worker again.
//! * The watchdog (named `gcs-watchdog`), one at most, sleeps until the
//!   earliest deadline of the busy workers (or until notified of a deadline
//!   earlier than that). When a deadline passes it marks the worker stuck
//!   and, the first time this happens for a task during an attempt, calls
//!   the task's `on_timeout` (so `Outcome::timed_out` is true exactly when
//!   `on_timeout` was called). Then, if tasks are queued and no idle worker
//!   can take them, it starts replacement workers. It exits when there are
//!   no workers.
//!
//! # Bounds
//! * At most [`MAX_ACTIVE_WORKERS`] (2) workers that are not stuck: a new
//!   worker is started (by `submit` or by the watchdog) only while queued
//!   tasks outnumber the idle and starting workers and fewer than two
//!   non-stuck workers exist. (Briefly more than two can be non-stuck, when
//!   a stuck worker recovers after its replacement was started; the extra
//!   ones exit when idle.)
//! * At most [`MAX_THREADS`] (32) executor threads in all: 31 workers (most
//!   of them stuck, if it comes to that) and the watchdog. If the cap is
//!   hit, tasks wait in the queue until a worker is free.
//! * If a thread cannot be spawned (resource exhaustion), the task stays
//!   queued; the next `submit` (or the watchdog) tries again.
//!
//! # Ordering guarantees for one task
//! `attempt` calls never overlap and happen on executor workers; `on_timeout`
//! (if called) runs on the watchdog and returns before `done` is called;
//! `done` is called exactly once, on the worker that ran the last attempt,
//! after the `attempt` closure and an unused `on_timeout` were dropped.
//! No lock of the executor is held while user code (the three closures, or
//! their destructors) runs. Panics in any of them are caught
//! (`catch_unwind`); a panicking attempt counts as failed. (With
//! `panic = "abort"` there is nothing to catch: a panic aborts.) `on_timeout`
//! should be quick: while it runs, the watchdog watches nothing else. (In a
//! fork child, tasks run on the submitting thread instead: see "Fork".)
//!
//! # Shutdown
//! [`shutdown`] puts the executor in draining mode: workers run what is
//! queued (including tasks submitted meanwhile) and exit when the queue is
//! empty, instead of idling; the watchdog exits after the last worker.
//! Exited threads are then joined. It returns true once every thread has
//! exited and been joined and the queue is empty; false if the timeout
//! passed first (a hung finalizer cannot be joined). The remaining threads are
//! left running, still part of the executor (a later `shutdown` can join
//! them). The process never hangs in `shutdown` beyond its timeout (plus
//! the time to join threads that have already left their loop). A `submit`
//! racing with `shutdown` is either run before `shutdown` returns true, or
//! starts a fresh executor afterwards: both take the same lock, and after
//! `shutdown` the executor is back in its initial, thread-less state.
//! Called from an executor thread (inside a task), `shutdown` cannot wait
//! for its own thread and returns false at once.
//!
//! # Fork
//! All state is in one [`Executor`] (one mutex, three condvars).
//! [`fork_prepare`] takes its lock (and keeps the guard in a thread-local)
//! so that no other thread holds it at fork; [`fork_parent`] releases it.
//! In the child the executor's threads do not exist, so [`fork_child`]
//! abandons the inherited executor (its lock stays taken forever: the guard
//! is forgotten) and switches to a fresh, empty one. Tasks queued in the
//! parent are abandoned in the child: their `done` is not called, and they
//! are not even dropped (forgotten), since their destructors could take
//! locks held by parent threads that do not exist in the child. Switching
//! executors rather than unlocking the inherited mutex matters: with waiters
//! recorded, parking_lot's unlock goes through its global parking table,
//! which a vanished thread may have held at the fork, and may hand the
//! mutex straight to a waiter (fair unlock) that does not exist in the
//! child. The executors form a chain ([`Executor::next`], a `OnceLock`),
//! extended only in a fork child, so no `unsafe` is needed. `fork_child`
//! only allocates.
//!
//! The child's executor starts no threads: it runs each task at once on the
//! thread that submits it (`attempt`s, then `done`), which is what the
//! library does without `enable_finalizer_safety`; `on_timeout` is then
//! called after an attempt that overran, when it returns. The reason: until
//! `exec`, POSIX allows only async-signal-safe calls in the child of a
//! multithreaded process, and threads started there inherit the parent's
//! state mid-operation: the standard library's lock for thread start and
//! exit, and parking_lot's global parking table, which a parent thread may
//! have been updating at the fork (a new thread's first wait can rebuild the
//! table, locking every bucket) and whose entries for parked parent threads
//! point into stacks that glibc hands to new threads. With threads, the
//! child's executor deadlocked in parking_lot in about one run in twenty of
//! a fork stress test (forks while other threads hammer the library).
//! `thread_count()` is 0 in a fork child, and `shutdown` returns true at
//! once. A child that only calls `exec` is not affected either way.
//!
//! For whatever threads the child starts itself, `fork_prepare` also waits
//! (at most [`FORK_QUIESCE`], 100 ms) until no executor thread is starting
//! (inside the standard library's lock; a new thread is past it once it has
//! taken the executor's), and gets the lock by polling `try_lock`, never by
//! parking: a thread that woke it would still be inside parking_lot's table
//! when it forks.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::sync::OnceLock;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

/// Workers that are not stuck, at most (see the module doc, "Bounds").
const MAX_ACTIVE_WORKERS: usize = 2;
/// Executor threads (workers and the watchdog), at most.
const MAX_THREADS: usize = 32;
/// Workers, at most: every thread but the watchdog.
const MAX_WORKERS: usize = MAX_THREADS - 1;
/// A worker idle this long exits.
const IDLE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long [`fork_prepare`] waits, at most, for executor threads that are
/// starting.
const FORK_QUIESCE: Duration = Duration::from_millis(100);
/// Name of the worker threads.
const WORKER_NAME: &str = "gcs-finalizer";
/// Name of the watchdog thread.
const WATCHDOG_NAME: &str = "gcs-watchdog";

/// What became of a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// An attempt returned true.
    pub(crate) succeeded: bool,
    /// Attempts made (1 + retries used).
    pub(crate) attempts: u32,
    /// Some attempt ran longer than the timeout (on_timeout was called).
    pub(crate) timed_out: bool,
}

/// A unit of work for the executor: a finalizer with its retry policy,
/// timeout report and continuation.
pub(crate) struct Task {
    /// One attempt; true = success. Called up to 1 + retries times, on an executor thread, never concurrently with itself.
    pub(crate) attempt: Box<dyn FnMut() -> bool + Send>,
    /// Retries after a failed attempt.
    pub(crate) retries: u32,
    /// An attempt running longer than this is "timed out".
    pub(crate) timeout: Duration,
    /// Called once per task, from the watchdog, as soon as an attempt has run longer than `timeout` (while it still runs).
    pub(crate) on_timeout: Box<dyn FnOnce() + Send>,
    /// Called once after the last attempt, on the executor thread that ran it.
    pub(crate) done: Box<dyn FnOnce(Outcome) + Send>,
}

/// Queue a task; starts the executor's threads lazily (none exist before the
/// first submit). In a fork child, runs the task at once on this thread
/// instead (see the module doc, "Fork").
pub(crate) fn submit(task: Task) {
    current().submit(task);
}

/// Drain the queue and join every executor thread, waiting at most `timeout`
/// in total. Returns true if all joined (then no executor thread is left
/// running). Tasks still queued are run before the workers exit, within the
/// timeout. After shutdown, a later submit starts the executor again,
/// lazily. A hung worker cannot be joined: false is returned after the
/// timeout and the worker is left running. See the module doc.
pub(crate) fn shutdown(timeout: Duration) -> bool {
    current().shutdown(timeout)
}

/// Executor threads currently alive (workers + watchdog), for tests and
/// statistics. Threads that have left their loop (and only wait to be
/// joined) are not counted.
#[cfg_attr(not(test), allow(dead_code))] // the tests' view of the executor
pub(crate) fn thread_count() -> usize {
    current().thread_count()
}

thread_local! {
    /// The executor lock, held by the forking thread between
    /// [`fork_prepare`] and [`fork_parent`] / [`fork_child`].
    static FORK_GUARD: RefCell<Option<MutexGuard<'static, State>>> =
        const { RefCell::new(None) };
    /// True on executor threads (workers and watchdog).
    static ON_EXECUTOR_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Fork support, `pthread_atfork` prepare handler: takes the executor's lock
/// so that no other thread holds it at fork. Before keeping it, it waits, at
/// most [`FORK_QUIESCE`], until no executor thread is starting (see the
/// module doc, "Fork"). It polls with `try_lock` rather than
/// blocking: a blocking lock or condvar wait would be ended by another
/// thread that is still inside parking_lot's bookkeeping when this thread
/// goes on to fork.
pub(crate) fn fork_prepare() {
    let executor = current();
    let deadline = Instant::now() + FORK_QUIESCE;
    let guard = loop {
        if let Some(guard) = executor.state.try_lock() {
            if guard.booting == 0 || Instant::now() >= deadline {
                break guard;
            }
            drop(guard);
        } else if Instant::now() >= deadline {
            break executor.state.lock();
        }
        thread::sleep(Duration::from_micros(200));
    };
    // If the thread-local is gone (fork from a thread-local destructor), the
    // guard is dropped right away: the child switches to a fresh executor
    // anyway, so the inherited lock's state does not matter.
    let _ = FORK_GUARD.try_with(|slot| *slot.borrow_mut() = Some(guard));
}

/// Fork support, `pthread_atfork` parent handler: releases the lock taken
/// by [`fork_prepare`]. The executor goes on as before.
pub(crate) fn fork_parent() {
    let guard = FORK_GUARD
        .try_with(|slot| slot.borrow_mut().take())
        .ok()
        .flatten();
    drop(guard);
}

/// Fork support, `pthread_atfork` child handler: the executor's threads do
/// not exist in the child, so the executor is reset to "no threads" by
/// switching to a fresh, empty one. Tasks queued in the parent are abandoned:
/// their `done` is NOT called and they are not dropped (leaked), because
/// their destructors could need locks held by threads that are gone. The
/// inherited lock stays taken (its guard is forgotten): nothing uses the old
/// executor any more. The fresh executor starts no threads: it runs tasks on
/// the submitting thread. See the module doc, "Fork".
pub(crate) fn fork_child() {
    if let Some(guard) = FORK_GUARD
        .try_with(|slot| slot.borrow_mut().take())
        .ok()
        .flatten()
    {
        std::mem::forget(guard);
    }
    let fresh: &'static Executor = Box::leak(Box::new(Executor::new(IDLE_TIMEOUT, true)));
    // Only a fork child extends the chain, and the child is single-threaded
    // here, so `current()` is the last link and `set` cannot fail.
    let _ = current().next.set(fresh);
}

/// The first executor; the only one unless this process is a fork child.
static ROOT: Executor = Executor::new(IDLE_TIMEOUT, false);

/// The executor in use: the last link of the chain that starts at [`ROOT`]
/// (each fork child adds one link).
fn current() -> &'static Executor {
    let mut executor: &'static Executor = &ROOT;
    while let Some(next) = executor.next.get() {
        executor = next;
    }
    executor
}

/// One executor: its state under one mutex, and the condvars that go with it.
struct Executor {
    /// Everything mutable.
    state: Mutex<State>,
    /// Idle workers wait here for tasks (and for shutdown).
    work: Condvar,
    /// The watchdog waits here for new deadlines and exiting workers.
    watch: Condvar,
    /// Threads exiting, joins finishing and `on_timeout` calls returning
    /// are announced here (to `shutdown` and to workers).
    changed: Condvar,
    /// How long a worker stays idle before it exits.
    idle_timeout: Duration,
    /// Runs tasks on the submitting thread and starts no threads (a fork
    /// child's executor).
    inline: bool,
    /// The executor that replaced this one in a fork child.
    next: OnceLock<&'static Executor>,
}

/// The mutable state of an [`Executor`].
struct State {
    /// Tasks not yet taken by a worker, in submission order.
    queue: VecDeque<Task>,
    /// Workers alive (spawned and not yet retired).
    workers: Vec<Worker>,
    /// Identifier for the next worker.
    next_id: u64,
    /// Workers waiting for a task (counted until they re-take the lock).
    idle: usize,
    /// Workers spawned that have not yet taken the lock in their loop.
    starting: usize,
    /// Threads (workers and watchdog) spawned that have not yet taken the
    /// lock: they may be in the standard library's thread start-up.
    booting: usize,
    /// The watchdog thread, while it is alive.
    watchdog: Option<JoinHandle<()>>,
    /// When the watchdog wakes up by itself: a new deadline wakes it only
    /// if earlier (fewer wake-ups, less traffic in parking_lot).
    watchdog_wake: Wake,
    /// Threads that have left their loop, to be joined (by `shutdown`) or
    /// dropped once finished (by the next spawn check).
    zombies: Vec<JoinHandle<()>>,
    /// Zombies being joined by `shutdown` calls, outside the lock.
    joining: usize,
    /// `shutdown` calls in progress: while non-zero, workers exit when the
    /// queue is empty instead of idling.
    draining: usize,
}

/// Bookkeeping for one worker thread.
struct Worker {
    /// Identifies the worker in [`State::workers`].
    id: u64,
    /// The thread (`None` only while it is being spawned).
    handle: Option<JoinHandle<()>>,
    /// When the current attempt (or `done`) overruns; `None` when the worker
    /// is not running user code, or the timeout is too long to represent.
    deadline: Option<Instant>,
    /// Past its deadline and not yet back: does not count as capacity.
    stuck: bool,
    /// The current task's `on_timeout`, until the watchdog takes it.
    on_timeout: Option<Box<dyn FnOnce() + Send>>,
    /// The watchdog took (and called or is calling) `on_timeout`.
    timed_out: bool,
    /// The watchdog is calling this worker's task's `on_timeout` right now.
    on_timeout_running: bool,
}

impl Worker {
    /// A worker that is about to be spawned.
    fn new(id: u64) -> Self {
        Worker {
            id,
            handle: None,
            deadline: None,
            stuck: false,
            on_timeout: None,
            timed_out: false,
            on_timeout_running: false,
        }
    }
}

impl State {
    /// The worker with this id; it exists while its thread runs its loop.
    fn worker(&mut self, id: u64) -> &mut Worker {
        self.workers
            .iter_mut()
            .find(|worker| worker.id == id)
            .expect("executor worker without its slot")
    }
}

/// When the watchdog wakes up by itself.
#[derive(Clone, Copy)]
enum Wake {
    /// It is awake (or about to start) and scans all deadlines before it
    /// sleeps again.
    Scanning,
    /// It sleeps until this instant.
    At(Instant),
    /// It sleeps until notified.
    Never,
}

/// What an executor thread is, for [`ExitGuard`].
#[derive(Clone, Copy)]
enum Role {
    /// A worker, with its id.
    Worker(u64),
    /// The watchdog.
    Watchdog,
}

/// Retires an executor thread whose loop unwinds (a bug in this module: user
/// code is always run under `catch_unwind`), so that the bookkeeping stays
/// right. Disarmed (`role: None`) on a normal exit, which retires the thread
/// itself, under the lock, as it decides to exit.
struct ExitGuard {
    /// The executor the thread belongs to.
    executor: &'static Executor,
    /// The thread's role; `None` once retired.
    role: Option<Role>,
}

impl Drop for ExitGuard {
    fn drop(&mut self) {
        if let Some(role) = self.role.take() {
            let mut state = self.executor.state.lock();
            self.executor.retire(&mut state, role);
        }
    }
}

impl Executor {
    /// An executor with no threads and an empty queue.
    const fn new(idle_timeout: Duration, inline: bool) -> Self {
        Executor {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                workers: Vec::new(),
                next_id: 0,
                idle: 0,
                starting: 0,
                booting: 0,
                watchdog: None,
                watchdog_wake: Wake::Scanning,
                zombies: Vec::new(),
                joining: 0,
                draining: 0,
            }),
            work: Condvar::new(),
            watch: Condvar::new(),
            changed: Condvar::new(),
            idle_timeout,
            inline,
            next: OnceLock::new(),
        }
    }

    /// See [`submit`].
    fn submit(&'static self, task: Task) {
        if self.inline {
            return run_inline(task);
        }
        let mut state = self.state.lock();
        state.queue.push_back(task);
        if state.idle > 0 {
            self.work.notify_one();
        }
        self.ensure_capacity(&mut state);
    }

    /// See [`thread_count`].
    #[cfg_attr(not(test), allow(dead_code))]
    fn thread_count(&self) -> usize {
        let state = self.state.lock();
        state.workers.len() + usize::from(state.watchdog.is_some())
    }

    /// See [`shutdown`].
    fn shutdown(&'static self, timeout: Duration) -> bool {
        if ON_EXECUTOR_THREAD.try_with(Cell::get).unwrap_or(false) {
            // This thread would wait for itself.
            return false;
        }
        let deadline = Instant::now().checked_add(timeout);
        let mut state = self.state.lock();
        state.draining += 1;
        self.work.notify_all();
        self.watch.notify_all();
        // Queued tasks need a worker to drain them.
        self.ensure_capacity(&mut state);
        let all_joined = loop {
            if state.workers.is_empty() && state.watchdog.is_none() && state.queue.is_empty() {
                if !state.zombies.is_empty() {
                    // They have left their loops; joining them is quick.
                    let zombies = std::mem::take(&mut state.zombies);
                    let count = zombies.len();
                    state.joining += count;
                    MutexGuard::unlocked(&mut state, || {
                        for zombie in zombies {
                            let _ = zombie.join();
                        }
                    });
                    state.joining -= count;
                    self.changed.notify_all();
                    continue;
                }
                if state.joining == 0 {
                    break true;
                }
            }
            match deadline {
                Some(deadline) => {
                    if Instant::now() >= deadline {
                        break false;
                    }
                    self.changed.wait_until(&mut state, deadline);
                }
                None => self.changed.wait(&mut state),
            }
        };
        state.draining -= 1;
        all_joined
    }

    /// Start workers while queued tasks outnumber the workers that will take
    /// them (idle or starting), within the bounds; start the watchdog if
    /// there are workers and none. Also drops the handles of finished
    /// zombies (which detaches threads that have already ended).
    fn ensure_capacity(&'static self, state: &mut State) {
        state.zombies.retain(|zombie| !zombie.is_finished());
        while state.queue.len() > state.idle + state.starting
            && state.workers.len() < MAX_WORKERS
            && state.workers.iter().filter(|worker| !worker.stuck).count() < MAX_ACTIVE_WORKERS
        {
            if !self.spawn_worker(state) {
                break;
            }
        }
        if !state.workers.is_empty() && state.watchdog.is_none() {
            let spawned = thread::Builder::new()
                .name(WATCHDOG_NAME.into())
                .spawn(move || self.watchdog_main());
            // On failure, the workers run unwatched until the next try.
            state.watchdog = spawned.ok();
            state.watchdog_wake = Wake::Scanning;
            state.booting += usize::from(state.watchdog.is_some());
        }
    }

    /// Spawn one worker (under the lock, so it finds its slot). False if the
    /// thread could not be created.
    fn spawn_worker(&'static self, state: &mut State) -> bool {
        let id = state.next_id;
        state.next_id += 1;
        let spawned = thread::Builder::new()
            .name(WORKER_NAME.into())
            .spawn(move || self.worker_main(id));
        match spawned {
            Ok(handle) => {
                let mut worker = Worker::new(id);
                worker.handle = Some(handle);
                state.workers.push(worker);
                state.starting += 1;
                state.booting += 1;
                true
            }
            Err(_) => false,
        }
    }

    /// Remove an exiting thread from the bookkeeping, keeping its handle to
    /// be joined, and tell whoever waits for that.
    fn retire(&self, state: &mut State, role: Role) {
        let handle = match role {
            Role::Worker(id) => {
                let index = state.workers.iter().position(|worker| worker.id == id);
                index.and_then(|index| state.workers.swap_remove(index).handle)
            }
            Role::Watchdog => state.watchdog.take(),
        };
        state.zombies.extend(handle);
        self.watch.notify_all();
        self.changed.notify_all();
    }

    /// A worker thread: take tasks, run them; idle at most `idle_timeout`.
    fn worker_main(&'static self, id: u64) {
        ON_EXECUTOR_THREAD.with(|flag| flag.set(true));
        let mut guard = ExitGuard {
            executor: self,
            role: Some(Role::Worker(id)),
        };
        let mut state = self.state.lock();
        state.starting -= 1;
        Self::booted(&mut state);
        loop {
            if let Some(task) = state.queue.pop_front() {
                state = self.run_task(state, id, task);
                continue;
            }
            if state.draining > 0 {
                break;
            }
            let idle_deadline = Instant::now().checked_add(self.idle_timeout);
            state.idle += 1;
            let mut expired = false;
            while state.queue.is_empty() && state.draining == 0 && !expired {
                expired = match idle_deadline {
                    Some(deadline) => self.work.wait_until(&mut state, deadline).timed_out(),
                    None => {
                        self.work.wait(&mut state);
                        false
                    }
                };
            }
            state.idle -= 1;
            if expired && state.queue.is_empty() {
                break;
            }
        }
        guard.role = None;
        self.retire(&mut state, Role::Worker(id));
    }

    /// A new thread has taken the lock: it is past its start-up.
    fn booted(state: &mut State) {
        state.booting -= 1;
    }

    /// Set the worker's deadline for a phase of user code starting now, and
    /// let the watchdog know.
    fn arm(&self, state: &mut State, id: u64, timeout: Duration) {
        let deadline = Instant::now().checked_add(timeout);
        let worker = state.worker(id);
        worker.deadline = deadline;
        worker.stuck = false;
        let earlier = match (deadline, state.watchdog_wake) {
            (None, _) | (_, Wake::Scanning) => false,
            (Some(_), Wake::Never) => true,
            (Some(deadline), Wake::At(wake)) => deadline < wake,
        };
        if earlier {
            state.watchdog_wake = Wake::Scanning;
            self.watch.notify_one();
        }
    }

    /// The worker is out of user code: no deadline, not stuck.
    fn disarm(state: &mut State, id: u64) {
        let worker = state.worker(id);
        worker.deadline = None;
        worker.stuck = false;
    }

    /// Run one task on worker `id`: its attempts, then `done`. Takes and
    /// returns the lock; releases it around user code.
    fn run_task(
        &'static self,
        mut state: MutexGuard<'static, State>,
        id: u64,
        task: Task,
    ) -> MutexGuard<'static, State> {
        let Task {
            mut attempt,
            retries,
            timeout,
            on_timeout,
            done,
        } = task;
        {
            let worker = state.worker(id);
            worker.on_timeout = Some(on_timeout);
            worker.timed_out = false;
        }
        let mut attempts: u32 = 0;
        let mut retries_used: u32 = 0;
        let succeeded = loop {
            self.arm(&mut state, id, timeout);
            let ok = MutexGuard::unlocked(&mut state, || {
                panic::catch_unwind(AssertUnwindSafe(&mut attempt)).unwrap_or(false)
            });
            Self::disarm(&mut state, id);
            attempts = attempts.saturating_add(1);
            if ok {
                break true;
            }
            if retries_used >= retries {
                break false;
            }
            retries_used += 1;
        };
        // `on_timeout`, if called, returns before `done` is called.
        while state.worker(id).on_timeout_running {
            self.changed.wait(&mut state);
        }
        let worker = state.worker(id);
        let unused_on_timeout = worker.on_timeout.take();
        let outcome = Outcome {
            succeeded,
            attempts,
            timed_out: worker.timed_out,
        };
        worker.timed_out = false;
        // The final phase is watched too (a hung `done` marks the worker
        // stuck), but `on_timeout` is for attempts only: it is gone by now.
        self.arm(&mut state, id, timeout);
        MutexGuard::unlocked(&mut state, move || {
            let _ = panic::catch_unwind(AssertUnwindSafe(move || {
                drop(attempt);
                drop(unused_on_timeout);
            }));
            let _ = panic::catch_unwind(AssertUnwindSafe(move || done(outcome)));
        });
        Self::disarm(&mut state, id);
        state
    }

    /// The watchdog thread: mark overrunning workers stuck, call
    /// `on_timeout`, start replacement workers; exit when no worker is left.
    fn watchdog_main(&'static self) {
        ON_EXECUTOR_THREAD.with(|flag| flag.set(true));
        let mut guard = ExitGuard {
            executor: self,
            role: Some(Role::Watchdog),
        };
        let mut state = self.state.lock();
        Self::booted(&mut state);
        loop {
            if state.workers.is_empty() {
                break;
            }
            let now = Instant::now();
            let mut next_deadline: Option<Instant> = None;
            let mut calls: Vec<(u64, Box<dyn FnOnce() + Send>)> = Vec::new();
            for worker in state.workers.iter_mut().filter(|worker| !worker.stuck) {
                let Some(deadline) = worker.deadline else {
                    continue;
                };
                if deadline <= now {
                    worker.stuck = true;
                    if let Some(on_timeout) = worker.on_timeout.take() {
                        worker.timed_out = true;
                        worker.on_timeout_running = true;
                        calls.push((worker.id, on_timeout));
                    }
                } else {
                    next_deadline = Some(next_deadline.map_or(deadline, |next| next.min(deadline)));
                }
            }
            self.ensure_capacity(&mut state);
            if !calls.is_empty() {
                let ids: Vec<u64> = calls.iter().map(|(id, _)| *id).collect();
                MutexGuard::unlocked(&mut state, move || {
                    for (_, on_timeout) in calls {
                        let _ = panic::catch_unwind(AssertUnwindSafe(on_timeout));
                    }
                });
                for id in ids {
                    // The worker waits for this flag before it finishes the
                    // task, so its slot is still there (barring a bug).
                    if let Some(worker) = state.workers.iter_mut().find(|worker| worker.id == id) {
                        worker.on_timeout_running = false;
                    }
                }
                self.changed.notify_all();
                continue;
            }
            match next_deadline {
                Some(deadline) => {
                    state.watchdog_wake = Wake::At(deadline);
                    self.watch.wait_until(&mut state, deadline);
                }
                None => {
                    state.watchdog_wake = Wake::Never;
                    self.watch.wait(&mut state);
                }
            }
            state.watchdog_wake = Wake::Scanning;
        }
        guard.role = None;
        self.retire(&mut state, Role::Watchdog);
    }
}

/// Run a task at once on this thread: a fork child's executor (see the
/// module doc, "Fork"). As on a worker, except that `on_timeout` is called
/// after an attempt that overran, once it has returned.
fn run_inline(task: Task) {
    let Task {
        mut attempt,
        retries,
        timeout,
        on_timeout,
        done,
    } = task;
    let mut on_timeout = Some(on_timeout);
    let mut attempts: u32 = 0;
    let mut retries_used: u32 = 0;
    let mut timed_out = false;
    let succeeded = loop {
        let started = Instant::now();
        let ok = panic::catch_unwind(AssertUnwindSafe(&mut attempt)).unwrap_or(false);
        attempts = attempts.saturating_add(1);
        let overran = started.elapsed() > timeout;
        if let Some(on_timeout) = on_timeout.take_if(|_| overran) {
            timed_out = true;
            let _ = panic::catch_unwind(AssertUnwindSafe(on_timeout));
        }
        if ok {
            break true;
        }
        if retries_used >= retries {
            break false;
        }
        retries_used += 1;
    };
    let _ = panic::catch_unwind(AssertUnwindSafe(move || {
        drop(attempt);
        drop(on_timeout);
    }));
    let outcome = Outcome {
        succeeded,
        attempts,
        timed_out,
    };
    let _ = panic::catch_unwind(AssertUnwindSafe(move || done(outcome)));
}

#[cfg(test)]
mod tests {
    //! Most scenarios use private executors (leaked, so that their threads
    //! can borrow them for `'static`), so that they can run in parallel
    //! without sharing the global one; `global_api` and `fork_child_resets`
    //! go through the module's functions.

    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
    use std::sync::mpsc;

    /// A gate that attempts wait at until the test opens it: an attempt that
    /// must still be running at some point (hung, overrunning its timeout)
    /// is held there by the test, not by a sleep that a loaded machine
    /// could outlast.
    struct Gate {
        open: Mutex<bool>,
        opened: Condvar,
    }

    impl Gate {
        fn new() -> Arc<Gate> {
            Arc::new(Gate {
                open: Mutex::new(false),
                opened: Condvar::new(),
            })
        }

        fn open(&self) {
            *self.open.lock() = true;
            self.opened.notify_all();
        }

        fn wait(&self) {
            let mut open = self.open.lock();
            while !*open {
                self.opened.wait(&mut open);
            }
        }
    }

    /// A private executor with the given idle timeout.
    fn private(idle_timeout: Duration) -> &'static Executor {
        Box::leak(Box::new(Executor::new(idle_timeout, false)))
    }

    /// A task whose `done` sends its outcome (and the name of its thread)
    /// to the returned receiver, with a no-op `on_timeout`.
    fn task(
        attempt: impl FnMut() -> bool + Send + 'static,
        retries: u32,
        timeout: Duration,
    ) -> (Task, mpsc::Receiver<(Outcome, Option<String>)>) {
        let (tx, rx) = mpsc::channel();
        let task = Task {
            attempt: Box::new(attempt),
            retries,
            timeout,
            on_timeout: Box::new(|| ()),
            done: Box::new(move |outcome| {
                let name = thread::current().name().map(str::to_owned);
                let _ = tx.send((outcome, name));
            }),
        };
        (task, rx)
    }

    /// Receive a `done` result, with a generous timeout, and check that
    /// `done` is not called again (the sender is gone after the call).
    fn outcome(rx: &mpsc::Receiver<(Outcome, Option<String>)>) -> Outcome {
        let (outcome, name) = rx.recv_timeout(LONG).expect("done not called");
        assert_eq!(name.as_deref(), Some(WORKER_NAME));
        assert!(rx.recv_timeout(Duration::from_millis(1)).is_err());
        outcome
    }

    /// Long enough never to be reached by a correct executor, even on a
    /// loaded machine: the timeout of every wait expected to succeed, and
    /// the task timeout of every attempt expected not to time out.
    const LONG: Duration = Duration::from_secs(30);

    #[test]
    fn executor_lazy_start_and_retries() {
        let ex = private(IDLE_TIMEOUT);
        assert_eq!(ex.thread_count(), 0, "no thread before the first submit");

        // Retries, then success.
        let calls = Arc::new(AtomicU32::new(0));
        let counter = calls.clone();
        let (t, rx) = task(
            move || {
                assert_eq!(thread::current().name(), Some(WORKER_NAME));
                counter.fetch_add(1, Ordering::SeqCst) + 1 == 3
            },
            5,
            LONG,
        );
        ex.submit(t);
        assert_eq!(ex.thread_count(), 2, "one worker and the watchdog");
        assert_eq!(
            outcome(&rx),
            Outcome {
                succeeded: true,
                attempts: 3,
                timed_out: false
            }
        );
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        // Retries exhausted.
        let calls = Arc::new(AtomicU32::new(0));
        let counter = calls.clone();
        let (t, rx) = task(
            move || {
                counter.fetch_add(1, Ordering::SeqCst);
                false
            },
            4,
            LONG,
        );
        ex.submit(t);
        assert_eq!(
            outcome(&rx),
            Outcome {
                succeeded: false,
                attempts: 5,
                timed_out: false
            }
        );
        assert_eq!(calls.load(Ordering::SeqCst), 5);

        // No retries.
        let (t, rx) = task(|| false, 0, LONG);
        ex.submit(t);
        assert_eq!(
            outcome(&rx),
            Outcome {
                succeeded: false,
                attempts: 1,
                timed_out: false
            }
        );

        // Panicking attempts count as failures.
        let mut first = true;
        let (t, rx) = task(
            move || {
                if std::mem::take(&mut first) {
                    panic!("test panic in attempt (expected)");
                }
                true
            },
            1,
            LONG,
        );
        ex.submit(t);
        assert_eq!(
            outcome(&rx),
            Outcome {
                succeeded: true,
                attempts: 2,
                timed_out: false
            }
        );
        let (t, rx) = task(|| panic!("test panic in attempt (expected)"), 2, LONG);
        ex.submit(t);
        assert_eq!(
            outcome(&rx),
            Outcome {
                succeeded: false,
                attempts: 3,
                timed_out: false
            }
        );

        // A panicking `done` does not kill the executor.
        ex.submit(Task {
            attempt: Box::new(|| true),
            retries: 0,
            timeout: LONG,
            on_timeout: Box::new(|| ()),
            done: Box::new(|_| panic!("test panic in done (expected)")),
        });
        let (t, rx) = task(|| true, 0, LONG);
        ex.submit(t);
        assert_eq!(
            outcome(&rx),
            Outcome {
                succeeded: true,
                attempts: 1,
                timed_out: false
            }
        );
        // Still alive (a second worker may have been started for the burst).
        assert!((2..=MAX_ACTIVE_WORKERS + 1).contains(&ex.thread_count()));

        // A burst: every task completes, on at most two workers.
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..20).map(|_| task(|| true, 0, LONG)).unzip();
        for t in txs {
            ex.submit(t);
        }
        for rx in &rxs {
            assert!(outcome(rx).succeeded);
        }
        assert!(ex.thread_count() <= MAX_ACTIVE_WORKERS + 1);
        assert!(ex.shutdown(LONG));
        assert_eq!(ex.thread_count(), 0);
    }

    #[test]
    fn executor_hung_attempt_does_not_hold_up_others() {
        let ex = private(IDLE_TIMEOUT);
        let hang = Gate::new();
        let start = Instant::now();
        let (timeout_tx, timeout_rx) = mpsc::channel();
        let timeout_seen = Arc::new(AtomicBool::new(false));
        let (hung_tx, hung_rx) = mpsc::channel();
        let seen = timeout_seen.clone();
        let seen_in_done = timeout_seen.clone();
        let held = hang.clone();
        ex.submit(Task {
            attempt: Box::new(move || {
                held.wait();
                true
            }),
            retries: 3,
            timeout: Duration::from_millis(100),
            on_timeout: Box::new(move || {
                assert_eq!(thread::current().name(), Some(WATCHDOG_NAME));
                seen.store(true, Ordering::SeqCst);
                timeout_tx.send(Instant::now()).unwrap();
            }),
            done: Box::new(move |outcome| {
                // on_timeout returned before done was called.
                assert!(seen_in_done.load(Ordering::SeqCst));
                hung_tx.send((outcome, Instant::now())).unwrap();
            }),
        });
        // Not before its timeout; the upper bound is only "at all".
        let fired = timeout_rx
            .recv_timeout(LONG)
            .expect("on_timeout not called");
        assert!(fired - start >= Duration::from_millis(100));

        // Fill the two non-stuck slots with more hung tasks, then a quick one.
        // Each says when its timeout fired: the gate opens only after that,
        // so they are certain to have overrun (on a loaded machine the quick
        // task may be done before 100 ms have passed).
        let (overran_tx, overran_rx) = mpsc::channel();
        let hung: Vec<_> = (0..2)
            .map(|_| {
                let held = hang.clone();
                let overran = overran_tx.clone();
                let (mut t, rx) = task(
                    move || {
                        held.wait();
                        true
                    },
                    0,
                    Duration::from_millis(100),
                );
                t.on_timeout = Box::new(move || {
                    let _ = overran.send(());
                });
                (t, rx)
            })
            .collect();
        let (hung, hung_rxs): (Vec<_>, Vec<_>) = hung.into_iter().unzip();
        for t in hung {
            ex.submit(t);
        }
        // The quick one completes while all three hung ones are still held:
        // it was not held up by them.
        let (quick, quick_rx) = task(|| true, 0, LONG);
        ex.submit(quick);
        let quick_outcome = outcome(&quick_rx);
        assert_eq!(
            quick_outcome,
            Outcome {
                succeeded: true,
                attempts: 1,
                timed_out: false
            }
        );
        assert!(ex.thread_count() <= MAX_THREADS);
        assert!(hung_rx.try_recv().is_err(), "done of a held attempt");

        // Released once all three overran: the hung ones finish, reported
        // as timed out.
        for _ in 0..2 {
            overran_rx
                .recv_timeout(LONG)
                .expect("on_timeout of a held attempt");
        }
        let released = Instant::now();
        hang.open();
        let (hung_outcome, hung_done) = hung_rx.recv_timeout(LONG).expect("done not called");
        assert_eq!(
            hung_outcome,
            Outcome {
                succeeded: true,
                attempts: 1,
                timed_out: true
            }
        );
        assert!(
            hung_done >= released,
            "done called before the attempt returned"
        );
        assert!(
            hung_rx.recv_timeout(Duration::from_millis(1)).is_err(),
            "done called twice"
        );
        assert!(
            timeout_rx.recv_timeout(Duration::from_millis(1)).is_err(),
            "on_timeout twice"
        );
        for rx in &hung_rxs {
            assert_eq!(
                outcome(rx),
                Outcome {
                    succeeded: true,
                    attempts: 1,
                    timed_out: true
                }
            );
        }
        assert!(ex.shutdown(LONG));
        assert_eq!(ex.thread_count(), 0);
    }

    #[test]
    fn executor_timeouts_on_every_retry_report_once_and_panics_are_caught() {
        let ex = private(IDLE_TIMEOUT);
        let timeouts = Arc::new(AtomicUsize::new(0));
        let count = timeouts.clone();
        let attempts = Arc::new(AtomicU32::new(0));
        let count_attempts = attempts.clone();
        let (tx, rx) = mpsc::channel();
        ex.submit(Task {
            attempt: Box::new(move || {
                count_attempts.fetch_add(1, Ordering::SeqCst);
                thread::sleep(Duration::from_millis(150));
                false
            }),
            retries: 2,
            timeout: Duration::from_millis(30),
            on_timeout: Box::new(move || {
                count.fetch_add(1, Ordering::SeqCst);
                panic!("test panic in on_timeout (expected)");
            }),
            done: Box::new(move |outcome| {
                tx.send(outcome).unwrap();
                panic!("test panic in done (expected)");
            }),
        });
        let got = rx.recv_timeout(LONG).expect("done not called");
        assert_eq!(
            got,
            Outcome {
                succeeded: false,
                attempts: 3,
                timed_out: true
            }
        );
        assert_eq!(timeouts.load(Ordering::SeqCst), 1);
        assert_eq!(attempts.load(Ordering::SeqCst), 3);
        // The executor (watchdog included) survived the panics.
        let (t, rx) = task(
            || {
                thread::sleep(Duration::from_millis(100));
                true
            },
            0,
            Duration::from_millis(20),
        );
        ex.submit(t);
        assert_eq!(
            outcome(&rx),
            Outcome {
                succeeded: true,
                attempts: 1,
                timed_out: true
            }
        );
        assert!(ex.shutdown(LONG));
        assert_eq!(ex.thread_count(), 0);
    }

    #[test]
    fn executor_thread_cap() {
        let ex = private(Duration::from_millis(200));
        const TASKS: usize = 45;
        let hold = Gate::new();
        let running = Arc::new(AtomicUsize::new(0));
        let max_running = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(AtomicUsize::new(0));
        let mut rxs = Vec::new();
        for _ in 0..TASKS {
            let running = running.clone();
            let max_running = max_running.clone();
            let finished = finished.clone();
            let held = hold.clone();
            let (t, rx) = task(
                move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    max_running.fetch_max(now, Ordering::SeqCst);
                    held.wait();
                    running.fetch_sub(1, Ordering::SeqCst);
                    finished.fetch_add(1, Ordering::SeqCst);
                    true
                },
                0,
                Duration::from_millis(10),
            );
            ex.submit(t);
            rxs.push(rx);
        }
        // All held: the stuck workers are replaced, up to the cap.
        let mut max_threads = 0;
        let deadline = Instant::now() + LONG;
        while running.load(Ordering::SeqCst) < MAX_WORKERS {
            max_threads = max_threads.max(ex.thread_count());
            assert!(
                Instant::now() < deadline,
                "only {} attempts at once",
                running.load(Ordering::SeqCst)
            );
            thread::sleep(Duration::from_millis(5));
        }
        hold.open();
        let deadline = Instant::now() + LONG;
        while finished.load(Ordering::SeqCst) < TASKS {
            max_threads = max_threads.max(ex.thread_count());
            assert!(Instant::now() < deadline, "tasks did not finish");
            thread::sleep(Duration::from_millis(5));
        }
        for rx in &rxs {
            assert!(outcome(rx).succeeded);
        }
        assert!(max_threads <= MAX_THREADS, "{max_threads} threads");
        let max_running = max_running.load(Ordering::SeqCst);
        assert!(max_running <= MAX_WORKERS, "{max_running} attempts at once");
        assert!(
            max_running > MAX_ACTIVE_WORKERS,
            "stuck workers were not replaced"
        );
        // Idle workers exit, and the watchdog after them.
        let deadline = Instant::now() + LONG;
        while ex.thread_count() > 0 {
            assert!(Instant::now() < deadline, "threads linger");
            thread::sleep(Duration::from_millis(20));
        }
        // Exited threads are joined by shutdown.
        assert!(ex.shutdown(LONG));
        // And it starts again.
        let (t, rx) = task(|| true, 0, LONG);
        ex.submit(t);
        assert!(outcome(&rx).succeeded);
        assert!(ex.shutdown(LONG));
        assert_eq!(ex.thread_count(), 0);
    }

    #[test]
    fn executor_shutdown_drains_joins_and_restarts() {
        let ex = private(IDLE_TIMEOUT);
        // Shutdown of a never-started executor.
        assert!(ex.shutdown(Duration::ZERO));
        let ran = Arc::new(AtomicUsize::new(0));
        let mut rxs = Vec::new();
        for _ in 0..10 {
            let ran = ran.clone();
            let (t, rx) = task(
                move || {
                    thread::sleep(Duration::from_millis(10));
                    ran.fetch_add(1, Ordering::SeqCst);
                    true
                },
                0,
                LONG,
            );
            ex.submit(t);
            rxs.push(rx);
        }
        assert!(ex.shutdown(LONG));
        assert_eq!(ex.thread_count(), 0);
        assert_eq!(ran.load(Ordering::SeqCst), 10, "shutdown drains the queue");
        for rx in &rxs {
            assert!(outcome(rx).succeeded);
        }
        // A later submit starts it again.
        let (t, rx) = task(|| true, 0, LONG);
        ex.submit(t);
        assert!(ex.thread_count() > 0);
        assert!(outcome(&rx).succeeded);

        // A hung worker cannot be joined: false after the timeout.
        let hang = Gate::new();
        let held = hang.clone();
        let (t, hung_rx) = task(
            move || {
                held.wait();
                true
            },
            0,
            Duration::from_millis(50),
        );
        ex.submit(t);
        let (t, rx) = task(|| true, 0, LONG);
        ex.submit(t);
        let start = Instant::now();
        assert!(!ex.shutdown(Duration::from_millis(200)));
        let took = start.elapsed();
        // Not before its timeout; the upper bound is only "it returned".
        assert!(took >= Duration::from_millis(200), "{took:?}");
        assert!(outcome(&rx).succeeded, "queued work still drained");
        assert!(ex.thread_count() >= 1);
        assert!(hung_rx.try_recv().is_err(), "done of a held attempt");
        hang.open();
        assert_eq!(
            outcome(&hung_rx),
            Outcome {
                succeeded: true,
                attempts: 1,
                timed_out: true
            }
        );
        assert!(ex.shutdown(LONG));
        assert_eq!(ex.thread_count(), 0);
    }

    #[test]
    fn executor_shutdown_races_submit() {
        let ex = private(Duration::from_millis(50));
        let done = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        const PER_THREAD: usize = 300;
        let submitters: Vec<_> = (0..4)
            .map(|_| {
                let done = done.clone();
                thread::spawn(move || {
                    for i in 0..PER_THREAD {
                        let done = done.clone();
                        ex.submit(Task {
                            attempt: Box::new(|| true),
                            retries: 0,
                            timeout: LONG,
                            on_timeout: Box::new(|| ()),
                            done: Box::new(move |_| {
                                done.fetch_add(1, Ordering::SeqCst);
                            }),
                        });
                        if i % 64 == 0 {
                            thread::sleep(Duration::from_millis(1));
                        }
                    }
                })
            })
            .collect();
        let shutter = {
            let stop = stop.clone();
            thread::spawn(move || {
                let mut rounds = 0;
                while !stop.load(Ordering::SeqCst) {
                    ex.shutdown(Duration::from_millis(100));
                    rounds += 1;
                }
                rounds
            })
        };
        for submitter in submitters {
            submitter.join().unwrap();
        }
        stop.store(true, Ordering::SeqCst);
        assert!(shutter.join().unwrap() > 0);
        assert!(ex.shutdown(LONG));
        assert_eq!(ex.thread_count(), 0);
        assert_eq!(done.load(Ordering::SeqCst), 4 * PER_THREAD, "no task lost");
    }

    #[test]
    fn executor_shutdown_from_a_task_returns_false() {
        let ex = private(IDLE_TIMEOUT);
        let (tx, rx) = mpsc::channel();
        ex.submit(Task {
            attempt: Box::new(|| true),
            retries: 0,
            timeout: LONG,
            on_timeout: Box::new(|| ()),
            done: Box::new(move |_| tx.send(ex.shutdown(LONG)).unwrap()),
        });
        assert_eq!(rx.recv_timeout(LONG), Ok(false));
        assert!(ex.shutdown(LONG));
    }

    #[test]
    fn executor_inline_mode_of_a_fork_child() {
        let ex: &'static Executor = Box::leak(Box::new(Executor::new(IDLE_TIMEOUT, true)));
        let me = thread::current().name().map(str::to_owned);
        let run = |t: Task, rx: mpsc::Receiver<(Outcome, Option<String>)>| {
            ex.submit(t);
            // Done before `submit` returned, on this thread.
            let (outcome, name) = rx.try_recv().expect("done not called");
            assert_eq!(name, me);
            outcome
        };
        let mut calls = 0;
        let (t, rx) = task(
            move || {
                calls += 1;
                calls == 2
            },
            3,
            LONG,
        );
        assert_eq!(
            run(t, rx),
            Outcome {
                succeeded: true,
                attempts: 2,
                timed_out: false
            }
        );
        let (t, rx) = task(|| panic!("test panic in attempt (expected)"), 1, LONG);
        assert_eq!(
            run(t, rx),
            Outcome {
                succeeded: false,
                attempts: 2,
                timed_out: false
            }
        );
        // An overrun is reported once the attempt has returned.
        let timeouts = Arc::new(AtomicUsize::new(0));
        let count = timeouts.clone();
        let (tx, rx) = mpsc::channel();
        ex.submit(Task {
            attempt: Box::new(|| {
                thread::sleep(Duration::from_millis(30));
                false
            }),
            retries: 1,
            timeout: Duration::from_millis(5),
            on_timeout: Box::new(move || {
                count.fetch_add(1, Ordering::SeqCst);
            }),
            done: Box::new(move |outcome| tx.send(outcome).unwrap()),
        });
        assert_eq!(
            rx.try_recv(),
            Ok(Outcome {
                succeeded: false,
                attempts: 2,
                timed_out: true
            })
        );
        assert_eq!(timeouts.load(Ordering::SeqCst), 1);
        assert_eq!(ex.thread_count(), 0);
        assert!(ex.shutdown(Duration::ZERO));
    }

    #[test]
    fn executor_global_api() {
        // Other tests of the crate may use the global executor concurrently:
        // only check what holds regardless.
        let (t, rx) = task(|| true, 0, LONG);
        submit(t);
        assert!(outcome(&rx).succeeded);
        fork_prepare();
        fork_parent();
        let (t, rx) = task(|| false, 1, LONG);
        submit(t);
        assert_eq!(
            outcome(&rx),
            Outcome {
                succeeded: false,
                attempts: 2,
                timed_out: false
            }
        );
        let _ = thread_count();
    }

    /// Set in the environment of the process that runs
    /// `executor_fork_scenario` for real.
    #[cfg(target_os = "linux")]
    const FORK_SCENARIO_ENV: &str = "GCS_EXECUTOR_FORK_SCENARIO";

    /// Runs `executor_fork_scenario` in a fresh test process of its own: a
    /// fork while other tests start and end threads could leave the child
    /// unable to spawn any (see the module doc, "Fork"), which is not what
    /// is tested here.
    #[cfg(target_os = "linux")]
    #[test]
    fn executor_fork_child_resets() {
        let path = module_path!();
        let path = path.split_once("::").map_or(path, |(_crate, rest)| rest);
        let name = format!("{path}::executor_fork_scenario");
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", &name, "--nocapture", "--test-threads=1"])
            .env(FORK_SCENARIO_ENV, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stdout}\n{stderr}");
        assert!(
            stdout.contains("1 passed"),
            "scenario did not run:\n{stdout}\n{stderr}"
        );
    }

    /// The fork scenario proper; does nothing unless run by
    /// `executor_fork_child_resets`.
    #[cfg(target_os = "linux")]
    #[test]
    fn executor_fork_scenario() {
        unsafe extern "C" {
            fn fork() -> i32;
            fn waitpid(pid: i32, status: *mut i32, options: i32) -> i32;
            fn _exit(status: i32) -> !;
        }
        if std::env::var_os(FORK_SCENARIO_ENV).is_none() {
            return;
        }
        // A busy executor in the parent: two workers in their attempts, one
        // task queued, at fork.
        let (started_tx, started_rx) = mpsc::channel();
        let hold = Gate::new();
        let parent_rxs: Vec<_> = (0..3)
            .map(|_| {
                let started_tx = started_tx.clone();
                let held = hold.clone();
                let (t, rx) = task(
                    move || {
                        let _ = started_tx.send(());
                        held.wait();
                        true
                    },
                    0,
                    LONG,
                );
                submit(t);
                rx
            })
            .collect();
        for _ in 0..2 {
            started_rx.recv_timeout(LONG).unwrap();
        }
        assert_eq!(thread_count(), 3);
        fork_prepare();
        // SAFETY: `fork` has no preconditions. The child runs only the code
        // below (under `catch_unwind`) and then `_exit`s, never returning
        // into the test harness.
        let pid = unsafe { fork() };
        if pid == 0 {
            fork_child();
            let code = panic::catch_unwind(|| {
                if thread_count() != 0 {
                    return 2;
                }
                // Run at once, on this thread, with no thread started.
                let me = thread::current().name().map(str::to_owned);
                let (t, rx) = task(|| false, 1, LONG);
                submit(t);
                match rx.try_recv() {
                    Ok((outcome, name)) if name == me => {
                        if outcome
                            != (Outcome {
                                succeeded: false,
                                attempts: 2,
                                timed_out: false,
                            })
                        {
                            return 3;
                        }
                    }
                    _ => return 4,
                }
                if thread_count() != 0 {
                    return 5;
                }
                // The parent's tasks were abandoned: no `done` here.
                if parent_rxs.iter().any(|rx| rx.try_recv().is_ok()) {
                    return 6;
                }
                if !shutdown(Duration::ZERO) {
                    return 8;
                }
                0
            })
            .unwrap_or(7);
            // SAFETY: ends the child at once, without running the parent's
            // exit handlers or returning into the test harness.
            unsafe { _exit(code) };
        }
        fork_parent();
        assert!(pid > 0, "fork failed");
        let mut status = 0;
        // SAFETY: `pid` is our child and `status` a valid out-pointer.
        let waited = unsafe { waitpid(pid, &raw mut status, 0) };
        assert_eq!(waited, pid);
        // WIFEXITED && WEXITSTATUS == 0.
        assert_eq!(status & 0x7f, 0, "child killed by signal {}", status & 0x7f);
        assert_eq!(
            (status >> 8) & 0xff,
            0,
            "child failed at step {}",
            (status >> 8) & 0xff
        );
        // The parent's executor goes on.
        hold.open();
        for rx in &parent_rxs {
            assert!(outcome(rx).succeeded);
        }
        assert!(shutdown(LONG));
    }
}
