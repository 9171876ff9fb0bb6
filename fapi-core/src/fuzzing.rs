//! Entry points for the targets in `fuzz/` (feature `fuzzing`); not an
//! API: they expose internal readers to the differential fuzz targets.

/// The one-pass access token claim reader and the general reader
/// (`parse_object` + `Claims`) give the same outcome for `payload`.
///
/// # Errors
/// Both outcomes, when they differ.
pub fn access_token_readers_agree(payload: &[u8]) -> Result<(), String> {
    crate::access_token::reference::readers_agree(payload).map(|_| ())
}

/// The one-pass JWS header reader and the general reader give the
/// same header or the same error for `bytes`.
///
/// # Errors
/// Both outcomes, when they differ.
pub fn header_readers_agree(bytes: &[u8]) -> Result<(), String> {
    crate::jose::header_readers_agree(bytes).map(|_| ())
}
