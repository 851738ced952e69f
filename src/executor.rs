//! TEMPORARY stub of the finalizer executor (the real one replaces this
//! file): runs each task on a thread of its own.

use std::time::{Duration, Instant};

/// What became of a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub(crate) succeeded: bool,
    pub(crate) attempts: u32,
    pub(crate) timed_out: bool,
}

/// A finalizer to run.
pub(crate) struct Task {
    pub(crate) attempt: Box<dyn FnMut() -> bool + Send>,
    pub(crate) retries: u32,
    pub(crate) timeout: Duration,
    pub(crate) on_timeout: Box<dyn FnOnce() + Send>,
    pub(crate) done: Box<dyn FnOnce(Outcome) + Send>,
}

pub(crate) fn submit(mut task: Task) {
    std::thread::spawn(move || {
        let started = Instant::now();
        let mut attempts = 0;
        let mut succeeded = false;
        while !succeeded && attempts <= task.retries {
            attempts += 1;
            succeeded = (task.attempt)();
        }
        let timed_out = started.elapsed() > task.timeout;
        if timed_out {
            (task.on_timeout)();
        }
        (task.done)(Outcome {
            succeeded,
            attempts,
            timed_out,
        });
    });
}

pub(crate) fn shutdown(_timeout: Duration) -> bool {
    true
}

pub(crate) fn fork_prepare() {}
pub(crate) fn fork_parent() {}
pub(crate) fn fork_child() {}
