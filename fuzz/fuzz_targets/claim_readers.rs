//! Differential: the one-pass readers (JWS header, access token claims)
//! against the general strict reader they replaced. Any difference in the
//! header read, the claims taken or the error reported is a crash.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(disagreement) = fapi_core::fuzzing::header_readers_agree(data) {
        panic!("{disagreement}");
    }
    if let Err(disagreement) = fapi_core::fuzzing::access_token_readers_agree(data) {
        panic!("{disagreement}");
    }
});
