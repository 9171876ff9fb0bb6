//! Differential testing: the two crypto providers must agree on every
//! input. The same keys and inputs go to aws-lc-rs and the pure-Rust
//! provider (raw signatures, real signatures with a byte changed, and whole
//! tokens through the JWS verifier); any disagreement in accept/reject
//! fails. `fuzz/` has the same check as a fuzz target.
#![cfg(all(feature = "aws-lc-rs", feature = "rustcrypto"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::{Arc, OnceLock};

use fapi_core::crypto::aws_lc::AwsLcProvider;
use fapi_core::crypto::rustcrypto::RustCryptoProvider;
use fapi_core::crypto::{Algorithm, CryptoProvider, SigningKey, VerifyingKey};
use fapi_core::jose::{sign_compact, ExpectedType, JwsPolicy, UnverifiedJws};
use fapi_core::jwk::{Jwk, JwkSet, KeySet};
use fapi_core::Profile;
use proptest::prelude::*;
use serde_json::json;

struct Pair {
    key: Arc<dyn SigningKey>,
    aws: Arc<dyn VerifyingKey>,
    rc: Arc<dyn VerifyingKey>,
    aws_set: KeySet,
    rc_set: KeySet,
}

const ALGS: [Algorithm; 3] = [Algorithm::Es256, Algorithm::Ps256, Algorithm::EdDsa];

/// One key per algorithm, each signed by either provider (both directions
/// of interop are covered), verified by both.
fn pairs() -> &'static Vec<Pair> {
    static P: OnceLock<Vec<Pair>> = OnceLock::new();
    P.get_or_init(|| {
        ALGS.iter()
            .enumerate()
            .map(|(i, alg)| {
                let signer: &dyn CryptoProvider = if i % 2 == 0 {
                    &AwsLcProvider
                } else {
                    &RustCryptoProvider
                };
                let key = signer.generate_signing_key(*alg).unwrap();
                let jwks = JwkSet::new(vec![Jwk::from_public_key(
                    key.public_key().clone(),
                    Some("k".into()),
                )]);
                let policy = Profile::Fapi2MessageSigning.key_policy();
                Pair {
                    aws: AwsLcProvider.verifying_key(key.public_key()).unwrap(),
                    rc: RustCryptoProvider.verifying_key(key.public_key()).unwrap(),
                    aws_set: KeySet::from_jwks(&jwks, &AwsLcProvider, &policy).unwrap(),
                    rc_set: KeySet::from_jwks(&jwks, &RustCryptoProvider, &policy).unwrap(),
                    key,
                }
            })
            .collect()
    })
}

fn agree_raw(p: &Pair, message: &[u8], signature: &[u8]) -> bool {
    let a = p.aws.verify(message, signature).is_ok();
    let r = p.rc.verify(message, signature).is_ok();
    assert_eq!(a, r, "{:?}: providers disagree", p.key.algorithm());
    a
}

fn agree_token(p: &Pair, token: &str) -> bool {
    let policy = JwsPolicy::new(
        Profile::Fapi2MessageSigning.algorithms(),
        ExpectedType::JwtOrAbsent,
    );
    let a = UnverifiedJws::parse(token)
        .and_then(|j| j.verify(&p.aws_set, &policy))
        .is_ok();
    let r = UnverifiedJws::parse(token)
        .and_then(|j| j.verify(&p.rc_set, &policy))
        .is_ok();
    assert_eq!(
        a,
        r,
        "{:?}: providers disagree on {token}",
        p.key.algorithm()
    );
    a
}

#[test]
fn both_providers_accept_every_genuine_signature_and_token() {
    for p in pairs() {
        for message in [&b""[..], b"x", &[0u8; 1000]] {
            let sig = p.key.sign(message).unwrap();
            assert!(agree_raw(p, message, &sig), "{:?}", p.key.algorithm());
        }
        let token = sign_compact(
            &*p.key,
            Some("k"),
            None,
            json!({ "iss": "a", "exp": 1 }).as_object().unwrap(),
        )
        .unwrap();
        assert!(agree_token(p, &token));
    }
}

#[test]
fn both_providers_reject_every_single_bit_change_of_a_signature() {
    for p in pairs() {
        let message = b"the signing input";
        let sig = p.key.sign(message).unwrap();
        for i in 0..sig.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = sig.clone();
                bad[i] ^= bit;
                assert!(
                    !agree_raw(p, message, &bad),
                    "{:?} byte {i}",
                    p.key.algorithm()
                );
            }
        }
        // and the message changed under a genuine signature
        assert!(!agree_raw(p, b"the signing inpuT", &sig));
    }
}

#[test]
fn both_providers_reject_degenerate_signatures() {
    for p in pairs() {
        let len = p.key.sign(b"m").unwrap().len();
        for sig in [
            vec![],
            vec![0u8; len],
            vec![0xff; len],
            vec![0u8; len + 1],
            vec![0u8; len - 1],
        ] {
            assert!(!agree_raw(p, b"m", &sig), "{:?}", p.key.algorithm());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn providers_agree_on_arbitrary_signatures(alg in 0usize..3, message in proptest::collection::vec(any::<u8>(), 0..64), signature in proptest::collection::vec(any::<u8>(), 0..300)) {
        agree_raw(&pairs()[alg], &message, &signature);
    }

    #[test]
    fn providers_agree_on_mutated_tokens(alg in 0usize..3, position in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let p = &pairs()[alg];
        let token = sign_compact(&*p.key, Some("k"), None, json!({ "iss": "a", "exp": 1 }).as_object().unwrap()).unwrap();
        let mut bytes = token.into_bytes();
        let i = position.index(bytes.len());
        bytes[i] = byte;
        if let Ok(s) = String::from_utf8(bytes) {
            agree_token(p, &s);
        }
    }
}
