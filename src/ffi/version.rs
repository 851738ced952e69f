//! Versions of the ABI and of the library.

use core::ffi::c_char;

/// The ABI version this header describes; `gcs_abi_version()` returns the
/// library's. A program should check they are equal at start-up.
pub const GCS_ABI_VERSION: u32 = 1;
/// The library's major version (the crate's semver major).
pub const GCS_VERSION_MAJOR: u32 = 0;
/// The library's minor version.
pub const GCS_VERSION_MINOR: u32 = 1;
/// The library's patch version.
pub const GCS_VERSION_PATCH: u32 = 0;

/// The ABI version of the loaded library; equals `GCS_ABI_VERSION` for a
/// matching header.
#[unsafe(no_mangle)]
pub extern "C" fn gcs_abi_version() -> u32 {
    GCS_ABI_VERSION
}

/// The library's version, "MAJOR.MINOR.PATCH" (static string, transfer none).
#[unsafe(no_mangle)]
pub extern "C" fn gcs_version_string() -> *const c_char {
    const VERSION: &core::ffi::CStr = match core::ffi::CStr::from_bytes_with_nul(
        concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes(),
    ) {
        Ok(version) => version,
        Err(_) => panic!("crate version contains no NUL"),
    };
    VERSION.as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_macros_match_the_crate_version() {
        let expected = format!("{GCS_VERSION_MAJOR}.{GCS_VERSION_MINOR}.{GCS_VERSION_PATCH}");
        assert_eq!(expected, env!("CARGO_PKG_VERSION"));
        // SAFETY: a static NUL-terminated string.
        let from_c = unsafe { core::ffi::CStr::from_ptr(gcs_version_string()) };
        assert_eq!(from_c.to_str().unwrap(), expected);
        assert_eq!(gcs_abi_version(), GCS_ABI_VERSION);
    }
}
