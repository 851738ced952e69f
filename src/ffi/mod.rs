//! The C ABI: `include/gcsafety.h` is generated from this module by cbindgen.
//!
//! A thin skin: each function checks its arguments, converts types, catches
//! panics and calls the safe core. Conventions (see the README):
//! * every fallible function returns a [`GcsResult`]; on error,
//!   `gcs_last_error()` has the detail for this thread;
//! * inputs are `const` and borrowed for the call (`transfer none`), strings
//!   are copied; out-parameters come last and are written only on success;
//! * structs start with `uint32_t struct_size`;
//! * callbacks take `user_data` last and run on the calling thread, with no
//!   library lock held.

// The exported functions are `extern "C" fn`, not `unsafe extern "C" fn`:
// they are called from C, where every call is unsafe alike. Each pointer
// argument is checked for NULL and its validity is the C caller's contract,
// stated in the function's documentation (and so in the header).
#![allow(clippy::not_unsafe_ptr_arg_deref)]

#[macro_use]
mod macros;

pub mod cleanup;
pub mod config;
pub mod error;
pub mod handle;
pub mod manager;
pub mod stats;
pub mod table;
pub mod version;
// Last: cbindgen emits in module order, and diag uses the others' types.
pub mod diag;

pub use config::GcsConfig;
pub use diag::{GcsLiveFlags, GcsLiveHandle};
pub use error::GcsResult;
pub use handle::{GcsHandle, GcsHandleInfo, GcsHandleState, GcsObjectKind, GcsRegistration};
pub use stats::{GcsStats, GcsTypeStats};
pub use table::GcsTableView;
