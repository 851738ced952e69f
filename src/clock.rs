//! A cheap monotonic millisecond clock for ages and retention.
//!
//! Registration and release stamp times; `Instant::now()` costs a full
//! `clock_gettime(CLOCK_MONOTONIC)`, while `CLOCK_MONOTONIC_COARSE` is a vDSO
//! read of the last tick (a few ns, 1–4 ms resolution), which is plenty for
//! "released 1.2 s ago" and for retention deadlines.

/// Milliseconds on a monotonic clock with an arbitrary origin.
pub(crate) fn now_ms() -> u64 {
    #[cfg(all(target_os = "linux", not(miri), not(loom)))]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC_COARSE
        // exists on every Linux since 2.6.32 and cannot fail with a valid pointer.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
        debug_assert_eq!(rc, 0);
        (ts.tv_sec as u64) * 1000 + (ts.tv_nsec as u64) / 1_000_000
    }
    #[cfg(not(all(target_os = "linux", not(miri), not(loom))))]
    {
        use std::sync::OnceLock;
        use std::time::Instant;
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        ORIGIN.get_or_init(Instant::now).elapsed().as_millis() as u64
    }
}

/// A registration sequence number: nanoseconds on the monotonic clock,
/// strictly increasing on each thread (registrations of one thread are
/// ordered; those of different threads by time). Orders the leak report with
/// no counter shared between threads.
pub(crate) fn sequence() -> u64 {
    use std::cell::Cell;
    use std::sync::OnceLock;
    use std::time::Instant;
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    std::thread_local! {
        static LAST: Cell<u64> = const { Cell::new(0) };
    }
    let now = ORIGIN.get_or_init(Instant::now).elapsed().as_nanos() as u64;
    LAST.try_with(|last| {
        let next = now.max(last.get() + 1);
        last.set(next);
        next
    })
    .unwrap_or(now)
}
