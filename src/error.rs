//! Errors: a fixed code (the ABI's `GcsResult`) plus a message that names the
//! handle, its type and instance, and what was wrong.

use std::fmt;

/// What went wrong. One to one with the ABI's `GcsResult` error values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// 0, forged, or never issued by this library.
    InvalidHandle,
    /// Issued once, since unregistered (stale).
    Released,
    /// Invalidated (`invalidate`, or a failed or panicking access).
    Invalidated,
    /// A required pointer argument was NULL.
    NullArgument,
    /// The object failed validation for its kind.
    WrongType,
    /// The access callback returned non-zero.
    CallbackFailed,
    /// A panic was caught.
    Panic,
    /// The handle table cannot grow.
    TableFull,
    /// The manager is closed or the library shut down.
    ShutDown,
    /// A wait timed out.
    Timeout,
    /// The call would wait for itself (sync unregister inside its own access).
    WouldDeadlock,
    /// An access end without a matching begin.
    NotAccessing,
    /// A bad configuration value, struct size, kind or flag.
    InvalidArgument,
    /// `configure` after the default manager started.
    AlreadyInitialized,
}

impl ErrorCode {
    /// The ABI's numeric `GcsResult` value.
    pub const fn to_raw(self) -> i32 {
        match self {
            ErrorCode::InvalidHandle => -1,
            ErrorCode::Released => -2,
            ErrorCode::Invalidated => -3,
            ErrorCode::NullArgument => -4,
            ErrorCode::WrongType => -5,
            ErrorCode::CallbackFailed => -6,
            ErrorCode::Panic => -7,
            ErrorCode::TableFull => -8,
            ErrorCode::ShutDown => -9,
            ErrorCode::Timeout => -10,
            ErrorCode::WouldDeadlock => -11,
            ErrorCode::NotAccessing => -12,
            ErrorCode::InvalidArgument => -13,
            ErrorCode::AlreadyInitialized => -14,
        }
    }

    /// Every code, in ABI order (-1, -2, ...).
    pub(crate) const ALL: [ErrorCode; 14] = [
        ErrorCode::InvalidHandle,
        ErrorCode::Released,
        ErrorCode::Invalidated,
        ErrorCode::NullArgument,
        ErrorCode::WrongType,
        ErrorCode::CallbackFailed,
        ErrorCode::Panic,
        ErrorCode::TableFull,
        ErrorCode::ShutDown,
        ErrorCode::Timeout,
        ErrorCode::WouldDeadlock,
        ErrorCode::NotAccessing,
        ErrorCode::InvalidArgument,
        ErrorCode::AlreadyInitialized,
    ];

    /// The code of an ABI `GcsResult` error value (`None` for 0 and
    /// unknown values).
    pub fn from_raw(raw: i32) -> Option<ErrorCode> {
        Self::ALL.into_iter().find(|code| code.to_raw() == raw)
    }

    /// A static description; `gcs_result_to_string` returns this text.
    pub const fn description(self) -> &'static str {
        match self.description_c().to_str() {
            Ok(text) => text,
            Err(_) => panic!("descriptions are ASCII"),
        }
    }

    /// [`description`](Self::description) as a C string: the one table of
    /// these texts.
    pub(crate) const fn description_c(self) -> &'static core::ffi::CStr {
        match self {
            ErrorCode::InvalidHandle => c"invalid handle (0, forged, or never issued)",
            ErrorCode::Released => c"handle released (stale)",
            ErrorCode::Invalidated => c"handle invalidated",
            ErrorCode::NullArgument => c"NULL argument",
            ErrorCode::WrongType => c"object has the wrong type for its kind",
            ErrorCode::CallbackFailed => c"access callback failed",
            ErrorCode::Panic => c"panic caught",
            ErrorCode::TableFull => c"handle table full",
            ErrorCode::ShutDown => c"manager closed or library shut down",
            ErrorCode::Timeout => c"timed out",
            ErrorCode::WouldDeadlock => c"would deadlock",
            ErrorCode::NotAccessing => c"no access in flight on this handle",
            ErrorCode::InvalidArgument => c"invalid argument",
            ErrorCode::AlreadyInitialized => c"default manager already initialized",
        }
    }
}

/// An error with its code and a message for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    code: ErrorCode,
    message: String,
}

impl Error {
    /// An error with a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
        }
    }

    /// The code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// "1.2 s", "340 ms", "3 min 5 s": a short human duration.
pub(crate) fn human_ms(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms} ms"),
        1000..=59_999 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

/// The message of a caught panic's payload (`panic!` with a literal or a
/// formatted message), or "(no message)".
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}
