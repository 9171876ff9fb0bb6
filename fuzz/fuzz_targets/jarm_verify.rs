//! The TPP-side JARM verifier: arbitrary responses, arbitrary claims
//! signed by the bank's key, and arbitrary redirect URLs.
#![no_main]
use fapi_core::{ClientId, State};
use fapi_fuzz::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let verifier = fapi_jarm::JarmVerifier::new(
        bank_keys().clone(),
        issuer(),
        ClientId::try_from(CLIENT).unwrap(),
        PROFILE.algorithms(),
    );
    let state = State::try_from("s").ok();
    let token = signed(&**bank_key(), br#"{"alg":"ES256","kid":"bank"}"#, data);
    let _ = verifier.verify(&token, state.as_ref(), now());
    let _ = verifier.verify_redirect(
        &format!("https://tpp-a.example/cb?response={token}"),
        state.as_ref(),
        now(),
    );
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = verifier.verify(s, state.as_ref(), now());
        let _ = verifier.verify_redirect(s, state.as_ref(), now());
    }
});
