//! Request-object validation (RFC 9101 + FAPI rules) on arbitrary claims
//! signed by the client's registered key, and on arbitrary strings; the
//! outer parameters come from the same bytes.
#![no_main]
use fapi_core::request_object::RequestValidator;
use fapi_fuzz::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ctx = RequestValidator::new(PROFILE, issuer());
    let (outer_bytes, object_bytes) = data.split_at(
        data.len()
            .min(usize::from(data.first().copied().unwrap_or(0)) % 64),
    );
    let outer: Vec<(String, String)> = std::str::from_utf8(outer_bytes)
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let token = signed(
        &**client_key(),
        br#"{"alg":"ES256","kid":"k","typ":"oauth-authz-req+jwt"}"#,
        object_bytes,
    );
    let _ = ctx.request_object(&token, &outer, registration(), now());
    if let Ok(s) = std::str::from_utf8(object_bytes) {
        let _ = ctx.request_object(s, &outer, registration(), now());
    }
});
