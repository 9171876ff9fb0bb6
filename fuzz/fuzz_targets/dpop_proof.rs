//! DPoP proof verification (RFC 9449): arbitrary proofs, and arbitrary
//! claims signed by the fixed client key under a header carrying that key
//! as `jwk` (or under fuzzed header bytes), checked at the token endpoint,
//! at a resource with an access token, and with server nonces demanded.
#![no_main]
use std::sync::OnceLock;

use fapi_core::dpop::{DpopNonces, DpopRequest, DpopVerifier};
use fapi_core::crypto::default_provider;
use fapi_core::Jwk;
use fapi_fuzz::*;
use libfuzzer_sys::fuzz_target;

fn dpop_header() -> &'static [u8] {
    static H: OnceLock<Vec<u8>> = OnceLock::new();
    H.get_or_init(|| {
        let key = client_key();
        serde_json::to_vec(&serde_json::json!({
            "typ": "dpop+jwt",
            "alg": key.algorithm().jose_name(),
            "jwk": Jwk::from_public_key(key.public_key().clone(), None).to_json(),
        }))
        .unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let verifier = DpopVerifier::new(default_provider(), PROFILE);
    let nonces = DpopNonces::new([9; 32], 300);
    let requests = [
        DpopRequest { method: "POST", url: "https://bank.example/token", access_token: None, nonces: None },
        DpopRequest { method: "GET", url: "https://bank.example/accounts", access_token: Some("at"), nonces: None },
        DpopRequest { method: "POST", url: "https://bank.example/token", access_token: None, nonces: Some(&nonces) },
    ];
    let check = |proof: &str| {
        for request in &requests {
            let _ = verifier.verify(proof, request, now());
        }
    };
    if let Ok(s) = std::str::from_utf8(data) {
        check(s);
        let _ = nonces.accepts(s, now());
    }
    check(&signed(&**client_key(), dpop_header(), data));
});
