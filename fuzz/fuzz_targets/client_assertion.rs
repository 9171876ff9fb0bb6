//! Client assertion (`private_key_jwt`) validation on arbitrary claims
//! signed by the registered key, and on arbitrary strings.
#![no_main]
use fapi_core::client_auth::{
    AssertionContext, Endpoint, UnverifiedClientAssertion, JWT_BEARER_ASSERTION_TYPE,
};
use fapi_fuzz::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let issuer = issuer();
    let ctx = AssertionContext::new(
        PROFILE,
        &issuer,
        Endpoint::Token("https://bank.example/token"),
    );
    let token = signed(&**client_key(), br#"{"alg":"ES256","kid":"k"}"#, data);
    let mut inputs = vec![token];
    if let Ok(s) = std::str::from_utf8(data) {
        inputs.push(s.to_owned());
    }
    for t in &inputs {
        for client_id in [Some(CLIENT), None] {
            if let Ok(a) = UnverifiedClientAssertion::parse(JWT_BEARER_ASSERTION_TYPE, t, client_id)
            {
                let _ = a.verify(registration(), &ctx, now());
            }
        }
    }
});
