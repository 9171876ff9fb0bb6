//! Compact JWS parsing: size bound, three segments, strict base64url,
//! strict header JSON, key-source headers. Must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(jws) = fapi_core::jose::UnverifiedJws::parse(s) {
            let _ = jws.unverified_header().alg();
            let _ = jws.unverified_claims();
        }
    }
});
