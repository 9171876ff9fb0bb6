//! Property tests: every parser and validator that sees untrusted input
//! returns an error instead of panicking, and sign -> verify round-trips for
//! every algorithm and provider.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::sync::Arc;

use common::*;
use fapi_core::client_auth::{UnverifiedClientAssertion, JWT_BEARER_ASSERTION_TYPE};
use fapi_core::crypto::Algorithm;
use fapi_core::encoding::b64url_encode;
use fapi_core::jose::{sign_compact, ExpectedType, JwsPolicy, UnverifiedJws};
use fapi_core::jwk::JwkSet;
use fapi_core::request_object::RequestValidator;
use fapi_core::{AccessTokenVerifier, Profile};
use proptest::prelude::*;
use serde_json::json;

const POLICY: JwsPolicy<'static> = JwsPolicy::new(
    &[Algorithm::Ps256, Algorithm::Es256, Algorithm::EdDsa],
    ExpectedType::JwtOrAbsent,
);

/// Three segments whose header and payload are arbitrary JSON-ish text.
fn jws_shaped() -> impl Strategy<Value = String> {
    let json_ish = prop_oneof![
        any::<String>(),
        "\\{(\"[a-z]{1,4}\":(\"[A-Za-z0-9+ ]{0,8}\"|[0-9]{1,12}|true|null|\\[\\]|\\{\\}),?){0,6}\\}",
        Just(r#"{"alg":"ES256","kid":"es"}"#.to_string()),
        Just(r#"{"alg":"none"}"#.to_string()),
    ];
    (
        json_ish.clone(),
        json_ish,
        proptest::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(h, p, s)| {
            format!(
                "{}.{}.{}",
                b64url_encode(h.as_bytes()),
                b64url_encode(p.as_bytes()),
                b64url_encode(&s)
            )
        })
}

fn token_input() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[A-Za-z0-9_.=+/ -]{0,400}",
        jws_shaped(),
        proptest::collection::vec(any::<u8>(), 0..500)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn jws_parser_and_verifier_never_panic(t in token_input()) {
        if let Ok(jws) = UnverifiedJws::parse(&t) {
            let _ = jws.unverified_claims();
            let _ = jws.verify(&key_set(keys()), &POLICY);
        }
    }

    #[test]
    fn request_object_validator_never_panics(t in token_input(), outer in proptest::collection::vec(("[a-z_]{1,12}", any::<String>()), 0..4)) {
        let iss = issuer();
        for profile in [Profile::Fapi1Advanced, Profile::Fapi2MessageSigning] {
            let c = client(keys(), profile);
            let _ = RequestValidator::new(profile, iss.clone()).request_object(&t, &outer, &c, now());
        }
    }

    #[test]
    fn client_assertion_parser_never_panics(t in token_input(), id in proptest::option::of(any::<String>())) {
        let _ = UnverifiedClientAssertion::parse(JWT_BEARER_ASSERTION_TYPE, &t, id.as_deref());
    }

    #[test]
    fn access_token_verifier_never_panics(t in token_input()) {
        let v = AccessTokenVerifier::new(Arc::new(key_set(keys())), issuer(), fapi_core::TokenAudience::try_from("aud").unwrap(), Profile::Fapi2Security.algorithms());
        let _ = v.verify(&t, now());
        let _ = v.verify(&format!("Bearer {t}"), now());
    }

    #[test]
    fn jwks_parser_never_panics(b in proptest::collection::vec(any::<u8>(), 0..600), s in "\\{\"keys\":\\[\\{(\"(kty|crv|x|y|n|e|kid|use|alg)\":\"[A-Za-z0-9_-]{0,50}\",?){0,8}\\}\\]\\}") {
        let _ = JwkSet::from_json(&b);
        if let Ok(set) = JwkSet::from_json(s.as_bytes()) {
            for p in fapi_core::testing::all_providers() {
                let _ = fapi_core::jwk::KeySet::from_jwks(&set, &*p, &Profile::Fapi2Security.key_policy());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn sign_verify_round_trip_every_algorithm_and_provider(sub in any::<String>(), n in any::<i64>(), extra in proptest::collection::btree_map("[a-z]{1,6}", any::<String>(), 0..4)) {
        let claims = obj(json!({ "sub": sub, "n": n, "extra": extra }));
        for k in providers() {
            let set = key_set(k);
            for alg in Algorithm::ALL {
                let t = sign_compact(&**k.key(alg), Some(kid(alg)), None, &claims).unwrap();
                let v = UnverifiedJws::parse(&t).unwrap().verify(&set, &POLICY).unwrap();
                prop_assert_eq!(v.claims().as_map(), &claims);
            }
        }
    }
}
