//! # gcsafety
//!
//! Handle-based lifetime safety for GStreamer and GObject objects that are
//! shared between threads and languages (Go through cgo, C plugins, Rust).
//!
//! Every registered object gets an opaque 64-bit [`Handle`] — an index and a
//! generation in a lock-free table, never a pointer. Registration takes a
//! reference; [`Handle::safe_access`] (or [`Handle::access`]) runs code only
//! while the handle is live and keeps the object alive meanwhile;
//! [`Handle::unregister`] invalidates at once and drops the reference exactly
//! once, when the last access in flight ends. Any handle value, stale,
//! forged or zero, gives an error, never a crash.
//!
//! ```no_run
//! # fn main() -> gcsafety::Result<()> {
//! gstreamer::init().unwrap();
//! let pipeline = gstreamer::Pipeline::new();
//! let handle = gcsafety::Registration::gst_object(&pipeline).register()?;
//! drop(pipeline); // the registration keeps it alive
//! handle.safe_access(|object| {
//!     // `object` is the GstPipeline*, alive for the whole closure.
//!     assert!(!object.is_null());
//! })?;
//! handle.unregister()?; // the reference drops here (no access in flight)
//! assert!(handle.safe_access(|_| ()).is_err());
//! # Ok(()) }
//! ```
//!
//! ## Layout
//! * `table` (private): the lock-free handle table and its
//!   slot state machine (`src/table/slot.rs` documents the protocol, every
//!   memory ordering, and the inline transitions that C and Go perform on
//!   the published table). It knows nothing of GLib.
//! * `sync`: loom or std atomics and locks, and what fork does to a lock.
//! * `object`: GLib/GStreamer kinds — validation, references, weak upgrades.
//! * `handle`, `manager`, `config`, `error`: the safe Rust API;
//!   `registration`, `record`, `release`, `executor`: registering and
//!   releasing; `stats`, `prometheus`: statistics (striped per thread);
//!   `log`, `diag`: GStreamer debug logging, the debug mode, leak checkpoints.
//! * `ffi`: the C ABI (`include/gcsafety.h`, and the table view behind
//!   `include/gcsafety_inline.h`), a thin skin over the above.

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

#[macro_use]
mod log;

mod clock;
mod config;
mod diag;
mod error;
mod executor;
pub mod ffi;
#[cfg(not(loom))]
mod fork;
mod handle;
mod manager;
mod names;
mod object;
mod prometheus;
mod record;
mod registration;
mod release;
mod stats;
mod sync;
mod table;
mod thread_accesses;

pub use config::{Config, MAX_FINALIZER_RETRIES, MEMORY_PRESSURE_INTERVAL, MemoryPressure};
pub use diag::{LiveHandle, leaks_checkpoint, live_handles, total_stats};
pub use error::{Error, ErrorCode, Result};
pub use handle::{AccessGuard, Handle, HandleInfo, HandleState};
pub use manager::{Manager, configure, default_manager_started, default_stats, shutdown};
pub use names::MAX_INTERNED;
pub use object::{Kind, ReleaseFn};
pub use record::CleanupFn;
pub use registration::Registration;
pub use stats::{Stats, TypeStats};
pub use table::MAX_RETAINED_STATES;
pub use thread_accesses::TRACKED as TRACKED_ACCESSES_PER_THREAD;

/// Register a `GstObject` with the default manager (see [`Registration`] for
/// the other kinds and options). The registration takes its own reference;
/// a floating reference is sunk.
pub fn register<T: glib::prelude::IsA<gstreamer::Object>>(object: &T) -> Result<Handle> {
    Registration::gst_object(object).register()
}

/// The README's Rust code blocks, compiled and run as doctests by `cargo
/// test` (its example is a complete program; fragments are `rust,ignore`).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
