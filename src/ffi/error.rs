//! Result codes, their static strings, and the per-thread last error.

use core::ffi::c_char;
use std::any::Any;
use std::cell::RefCell;
use std::ffi::CString;

use crate::error::{Error, ErrorCode, Result};

/// The result of every fallible call. Values are fixed and never reused.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum GcsResult {
    /// Success.
    GCS_OK = 0,
    /// 0, forged, or never issued by this library.
    GCS_ERROR_INVALID_HANDLE = -1,
    /// Issued once, since unregistered (stale).
    GCS_ERROR_RELEASED = -2,
    /// Invalidated: gcs_invalidate, or a failed access.
    GCS_ERROR_INVALIDATED = -3,
    /// A required pointer argument was NULL.
    GCS_ERROR_NULL_ARGUMENT = -4,
    /// The object failed validation for its kind.
    GCS_ERROR_WRONG_TYPE = -5,
    /// The access callback returned non-zero.
    GCS_ERROR_CALLBACK_FAILED = -6,
    /// A panic was caught at the boundary.
    GCS_ERROR_PANIC = -7,
    /// The handle table cannot grow.
    GCS_ERROR_TABLE_FULL = -8,
    /// Manager closed / library shut down.
    GCS_ERROR_SHUT_DOWN = -9,
    /// A wait timed out.
    GCS_ERROR_TIMEOUT = -10,
    /// The call would wait for itself (sync unregister inside its own access).
    GCS_ERROR_WOULD_DEADLOCK = -11,
    /// gcs_access_end without a matching begin.
    GCS_ERROR_NOT_ACCESSING = -12,
    /// A bad config value, struct_size, kind or flag.
    GCS_ERROR_INVALID_ARGUMENT = -13,
    /// gcs_configure after the default manager ran.
    GCS_ERROR_ALREADY_INITIALIZED = -14,
}

/// A `GcsResult` as C passes it in: any `int32_t` (the header says `GcsResult`).
pub type GcsResultValue = i32;

impl From<ErrorCode> for GcsResult {
    fn from(code: ErrorCode) -> Self {
        match code {
            ErrorCode::InvalidHandle => GcsResult::GCS_ERROR_INVALID_HANDLE,
            ErrorCode::Released => GcsResult::GCS_ERROR_RELEASED,
            ErrorCode::Invalidated => GcsResult::GCS_ERROR_INVALIDATED,
            ErrorCode::NullArgument => GcsResult::GCS_ERROR_NULL_ARGUMENT,
            ErrorCode::WrongType => GcsResult::GCS_ERROR_WRONG_TYPE,
            ErrorCode::CallbackFailed => GcsResult::GCS_ERROR_CALLBACK_FAILED,
            ErrorCode::Panic => GcsResult::GCS_ERROR_PANIC,
            ErrorCode::TableFull => GcsResult::GCS_ERROR_TABLE_FULL,
            ErrorCode::ShutDown => GcsResult::GCS_ERROR_SHUT_DOWN,
            ErrorCode::Timeout => GcsResult::GCS_ERROR_TIMEOUT,
            ErrorCode::WouldDeadlock => GcsResult::GCS_ERROR_WOULD_DEADLOCK,
            ErrorCode::NotAccessing => GcsResult::GCS_ERROR_NOT_ACCESSING,
            ErrorCode::InvalidArgument => GcsResult::GCS_ERROR_INVALID_ARGUMENT,
            ErrorCode::AlreadyInitialized => GcsResult::GCS_ERROR_ALREADY_INITIALIZED,
        }
    }
}

thread_local! {
    /// This thread's last error; `None` until the first failing call.
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

/// Record `message` as this thread's last error.
pub(crate) fn set_last_error(message: &str) {
    // An interior NUL would truncate; replace it rather than lose the message.
    let message = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    let _ = LAST_ERROR.try_with(|last| *last.borrow_mut() = Some(message));
}

/// The code of `result`, recording an error's message as the last error.
pub(crate) fn to_gcs_result(result: Result<()>) -> GcsResult {
    match result {
        Ok(()) => GcsResult::GCS_OK,
        Err(error) => record(&error),
    }
}

/// Record an error as the last error and return its code.
pub(crate) fn record(error: &Error) -> GcsResult {
    set_last_error(error.message());
    error.code().into()
}

/// Record a caught panic as the last error.
pub(crate) fn record_panic(panic: Box<dyn Any + Send>) {
    let what = crate::error::panic_message(&*panic);
    set_last_error(&format!("internal panic caught at the C boundary: {what}"));
}

/// A static, human-readable description of a result code. Never NULL; an
/// unknown value gives "unknown GcsResult value".
#[unsafe(no_mangle)]
pub extern "C" fn gcs_result_to_string(result: GcsResultValue) -> *const c_char {
    let text = match result {
        0 => c"success",
        raw => {
            ErrorCode::from_raw(raw).map_or(c"unknown GcsResult value", ErrorCode::description_c)
        }
    };
    text.as_ptr()
}

/// The detail of this thread's last failed call, "" if none. Set only by
/// calls that return an error, never changed by other calls. The string is
/// owned by the library and valid until the next failing call on this thread.
#[unsafe(no_mangle)]
pub extern "C" fn gcs_last_error() -> *const c_char {
    ffi_boundary!(c"".as_ptr(), {
        LAST_ERROR
            .try_with(|last| {
                last.borrow()
                    .as_ref()
                    .map_or(c"".as_ptr(), |message| message.as_ptr())
            })
            .unwrap_or(c"".as_ptr())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_and_has_its_text_in_c() {
        for (i, code) in ErrorCode::ALL.into_iter().enumerate() {
            // ABI order: -1, -2, ... with no gap.
            assert_eq!(code.to_raw(), -(i as i32) - 1);
            assert_eq!(ErrorCode::from_raw(code.to_raw()), Some(code));
            assert_eq!(GcsResult::from(code) as i32, code.to_raw());
            let c = gcs_result_to_string(code.to_raw());
            // SAFETY: a static NUL-terminated string.
            let c = unsafe { core::ffi::CStr::from_ptr(c) }.to_str().unwrap();
            assert_eq!(c, code.description());
            assert!(!c.is_empty());
        }
        for unknown in [1, -15, i32::MIN, i32::MAX] {
            assert_eq!(ErrorCode::from_raw(unknown), None);
            // SAFETY: as above.
            let c = unsafe { core::ffi::CStr::from_ptr(gcs_result_to_string(unknown)) };
            assert_eq!(c, c"unknown GcsResult value");
        }
        // SAFETY: as above.
        let ok = unsafe { core::ffi::CStr::from_ptr(gcs_result_to_string(0)) };
        assert_eq!(ok, c"success");
    }
}
