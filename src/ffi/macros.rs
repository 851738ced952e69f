//! The two macros every export uses: the panic boundary and argument checks
//! (after rustls-ffi's `ffi_panic_boundary!`/`try_ref_from_ptr!` and hyper's
//! `ffi_fn!`/`non_null!`).

/// Run the body of an exported function; a panic is caught, recorded as this
/// thread's last error, and `$fallback` returned instead. No panic crosses the
/// C boundary.
macro_rules! ffi_boundary {
    ($fallback:expr, $body:block) => {
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| $body)) {
            Ok(value) => value,
            Err(panic) => {
                $crate::ffi::error::record_panic(panic);
                $fallback
            }
        }
    };
}

/// `ffi_boundary!` for functions returning `GcsResult`: the body is a
/// `Result<(), Error>`; an error becomes its code and this thread's last
/// error message; a panic becomes `GCS_ERROR_PANIC`.
macro_rules! ffi_result {
    ($body:block) => {
        ffi_boundary!($crate::ffi::error::GcsResult::GCS_ERROR_PANIC, {
            // A closure, so that `?` works in the body.
            #[allow(clippy::redundant_closure_call)]
            let result: $crate::Result<()> = (|| $body)();
            $crate::ffi::error::to_gcs_result(result)
        })
    };
}

/// A pointer to a caller's struct that starts with `uint32_t struct_size`:
/// NULL is `NullArgument`; a `struct_size` below version 1's is
/// `InvalidArgument` (checked by reading only that field, before any
/// reference to the whole struct exists). Yields `*mut $ty`, now known to be
/// valid for version 1's size.
macro_rules! sized_struct {
    ($func:literal, $arg:ident, $ty:ty) => {{
        if $arg.is_null() {
            return Err($crate::Error::new(
                $crate::ErrorCode::NullArgument,
                concat!($func, ": ", stringify!($arg), " is NULL"),
            ));
        }
        // SAFETY: non-NULL, and the ABI says the struct starts with its size.
        let size = unsafe { $arg.cast::<u32>().read() } as usize;
        if size < ::core::mem::size_of::<$ty>() {
            return Err($crate::Error::new(
                $crate::ErrorCode::InvalidArgument,
                format!(
                    concat!(
                        $func,
                        ": ",
                        stringify!($arg),
                        "->struct_size is {}, smaller than sizeof(",
                        stringify!($ty),
                        ") = {} (set it to sizeof(",
                        stringify!($ty),
                        "))"
                    ),
                    size,
                    ::core::mem::size_of::<$ty>()
                ),
            ));
        }
        $arg as *mut $ty
    }};
}
