//! The atomic state table, published: `gcs_table_view` describes the live
//! table so that the header-inline functions (`include/gcsafety_inline.h`)
//! and the Go binding can begin and end accesses with their own atomics on
//! the table's words, calling into the library only off the success path.
//! The protocol they follow is documented once, in `src/table/slot.rs`.

use core::ffi::{c_int, c_void};
use core::mem::offset_of;

use crate::error::{Error, ErrorCode};
use crate::ffi::error::GcsResult;
use crate::ffi::handle::GcsHandle;
use crate::table::{COUNT_MASK, GEN_SHIFT, PHASE_SHIFT, Phase, SLOW_BIT, Slot};

/// The layout of the table that `GcsTableView` describes. Bumped whenever any
/// field of the view, or the meaning of a word it points at, changes; inline
/// code built for another version must call the exported functions instead.
pub const GCS_TABLE_LAYOUT_VERSION: u32 = 1;

/// What code outside the library needs to find and interpret a handle's
/// state word (layout version 1). Filled by `gcs_table_view`.
///
/// Decoding a handle: `raw = handle ^ salt`; `index = raw & index_mask`;
/// `generation = raw >> generation_shift` (0 is never a live generation).
/// The slot's page: `biased = index + (1 << first_page_log2)`;
/// `page = floor(log2(biased)) - first_page_log2` (must be below
/// `page_count`); `base = pages[page]`, read with an acquire load (NULL: no
/// such slot); the slot is at `base + (biased - (1 << (first_page_log2 +
/// page))) * slot_stride`. Its state word (a 64-bit atomic) is at
/// `state_offset`, the object pointer (read after a successful begin) at
/// `object_offset`.
///
/// A state word is `generation << generation_shift | phase << phase_shift |
/// S | count`, where `count = word & count_mask` is the number of accesses
/// in flight and `S = word & slow_bit` says that accesses must go through
/// the exported functions. The transitions inline code may perform, and
/// nothing else, are those of `src/table/slot.rs` ("Inline begin", "Inline
/// end").
///
/// Pages never move, shrink or unmap while the library is loaded; after
/// `dlclose` of the library, inline code must not be called (as for any of
/// its functions).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct GcsTableView {
    /// In: `sizeof(GcsTableView)`.
    pub struct_size: u32,
    /// The library's `GCS_TABLE_LAYOUT_VERSION`.
    pub layout_version: u32,
    /// The page directory: `page_count` pointers to pages of slots (64-bit
    /// atomics; NULL until allocated), read with acquire loads.
    pub pages: *const *mut c_void,
    /// Entries in `pages`.
    pub page_count: u32,
    /// log2 of the number of slots in page 0; page `p` has `1 <<
    /// (first_page_log2 + p)` slots.
    pub first_page_log2: u32,
    /// Bytes from one slot to the next.
    pub slot_stride: u32,
    /// Offset of the 64-bit state word in a slot.
    pub state_offset: u32,
    /// Offset of the object pointer in a slot.
    pub object_offset: u32,
    /// Shift of the generation in a handle (after the salt) and in a state word.
    pub generation_shift: u32,
    /// The salt of this load of the library: handles are xor-ed with it.
    pub salt: u64,
    /// Mask of the slot index in a handle (after the salt).
    pub index_mask: u64,
    /// Mask of the in-flight access count in a state word.
    pub count_mask: u64,
    /// The slow-path bit of a state word.
    pub slow_bit: u64,
    /// Shift of the phase in a state word.
    pub phase_shift: u32,
    /// Phase value: live (accesses allowed).
    pub phase_live: u32,
    /// Phase value: invalidated (accesses refused, still registered).
    pub phase_invalidated: u32,
    /// Phase value: unregistered, waiting for the accesses in flight.
    pub phase_draining: u32,
}

/// Describe the live table for header-inline and Go access (`*view` is
/// written on success only; `view->struct_size` must be set). The pointers
/// in it stay valid while the library is loaded. Returns
/// GCS_ERROR_INVALID_ARGUMENT, with a message, where the inline path does
/// not apply: the environment variable `GCS_INLINE=0` was set when the
/// library loaded (every access then goes through the exported functions,
/// e.g. to have every access counted or tracked while debugging). Callers
/// then use the exported functions, as the inline functions do.
#[unsafe(no_mangle)]
pub extern "C" fn gcs_table_view(view: *mut GcsTableView) -> GcsResult {
    ffi_result!({
        let view = sized_struct!("gcs_table_view", view, GcsTableView);
        if inline_disabled() {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                "gcs_table_view: the inline table path is disabled (GCS_INLINE=0): use the exported functions",
            ));
        }
        let table = crate::manager::table().view();
        let published = GcsTableView {
            struct_size: core::mem::size_of::<GcsTableView>() as u32,
            layout_version: GCS_TABLE_LAYOUT_VERSION,
            pages: table.pages.cast(),
            page_count: table.page_count,
            first_page_log2: table.first_page_log2,
            slot_stride: core::mem::size_of::<Slot>() as u32,
            state_offset: offset_of!(Slot, state) as u32,
            object_offset: offset_of!(Slot, object) as u32,
            generation_shift: GEN_SHIFT,
            salt: table.salt,
            index_mask: u32::MAX as u64,
            count_mask: COUNT_MASK,
            slow_bit: SLOW_BIT,
            phase_shift: PHASE_SHIFT,
            phase_live: Phase::Live as u32,
            phase_invalidated: Phase::Invalidated as u32,
            phase_draining: Phase::Draining as u32,
        };
        // SAFETY: `sized_struct!` checked non-NULL and the caller's size.
        unsafe { view.write(published) };
        Ok(())
    })
}

/// Whether `GCS_INLINE=0` was set (read once).
fn inline_disabled() -> bool {
    static DISABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DISABLED.get_or_init(|| std::env::var_os("GCS_INLINE").is_some_and(|v| v == "0"))
}

/// What `gcs_safe_access` does when its callback returned non-zero, for
/// callers that ran the callback inside an access of their own (the
/// header-inline `gcs_safe_access_inline`, bindings): counts the failure in
/// the handle's manager, invalidates the handle when that manager has
/// `invalidate_on_callback_error`, sets gcs_last_error() ("access callback
/// returned N") and returns GCS_ERROR_CALLBACK_FAILED. Call it after the
/// access ended. A `status` of 0 is GCS_ERROR_INVALID_ARGUMENT.
#[unsafe(no_mangle)]
pub extern "C" fn gcs_callback_failed(handle: GcsHandle, status: c_int) -> GcsResult {
    ffi_result!({
        if status == 0 {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                "gcs_callback_failed: status is 0 (success)",
            ));
        }
        Err(crate::handle::callback_failed(handle, status))
    })
}
