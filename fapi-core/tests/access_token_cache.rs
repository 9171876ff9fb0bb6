//! `AccessTokenVerifier::with_cache`: a remembered token skips the parse and
//! the signature, never the time rules; a token differing in any byte is
//! verified in full; rejections are never remembered; the cache is bounded
//! and shared safely by racing threads. Each negative test fails if the rule
//! it names is taken out of the cache path.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::sync::{Arc, Barrier};

use common::*;
use fapi_core::access_token::{
    AccessTokenClaims, AccessTokenError, AccessTokenIssuer, Confirmation, VerifiedAccessToken,
};
use fapi_core::claims::ClaimError;
use fapi_core::crypto::Algorithm;
use fapi_core::jose::JoseError;
use fapi_core::UnixTime;
use fapi_core::{AccessTokenVerifier, Profile};
use fapi_core::{CertificateThumbprint, ClientId, ConsentId, Scope};
use proptest::prelude::*;

const AUD: &str = "https://api.bank.example";

fn claims(subject: &str) -> AccessTokenClaims {
    AccessTokenClaims::new(
        subject,
        ClientId::try_from(CLIENT).unwrap(),
        Scope::try_from("accounts").unwrap(),
        Confirmation::CertificateThumbprint(CertificateThumbprint::of_der(
            b"TPP A certificate DER",
        )),
    )
    .with_consent(Some(ConsentId::try_from("aac-123").unwrap()))
}

fn issue_at(alg: Algorithm, subject: &str, at: UnixTime) -> String {
    let token = futures_executor::block_on(
        AccessTokenIssuer::new(
            keys().key(alg).clone(),
            kid(alg).into(),
            issuer(),
            fapi_core::TokenAudience::try_from(AUD).unwrap(),
            300,
        )
        .issue(&claims(subject), at),
    )
    .unwrap()
    .token;
    format!("Bearer {token}")
}

fn issue(subject: &str) -> String {
    issue_at(Algorithm::Es256, subject, now())
}

fn uncached() -> AccessTokenVerifier {
    AccessTokenVerifier::new(
        Arc::new(key_set(keys())),
        issuer(),
        fapi_core::TokenAudience::try_from(AUD).unwrap(),
        Profile::Fapi2Security.algorithms(),
    )
}

fn cached(capacity: usize) -> AccessTokenVerifier {
    uncached().with_cache(capacity)
}

/// The observable content of a verified token.
fn seen(t: &VerifiedAccessToken) -> String {
    format!(
        "{} {} {} {:?} {:?} {:?} {}",
        t.subject(),
        t.client_id().as_str(),
        t.jti().as_str(),
        t.scope().map(ToString::to_string),
        t.consent_id().map(ConsentId::as_str),
        t.confirmation(),
        t.expires_at().as_secs()
    )
}

fn outcome(r: Result<VerifiedAccessToken, AccessTokenError>) -> Result<String, AccessTokenError> {
    r.map(|t| seen(&t))
}

#[test]
fn a_remembered_token_gives_what_full_verification_gives() {
    for alg in Algorithm::ALL {
        let t = issue_at(alg, "alice", now());
        let v = cached(16);
        let first = outcome(v.verify(&t, now())).unwrap();
        assert_eq!(v.cached_tokens(), 1);
        let again = outcome(v.verify(&t, at(5))).unwrap();
        assert_eq!(
            v.cached_tokens(),
            1,
            "the second call is a hit, not a second entry"
        );
        assert_eq!(first, again);
        assert_eq!(first, outcome(uncached().verify(&t, at(5))).unwrap());
    }
}

#[test]
fn without_capacity_there_is_no_cache() {
    let t = issue("alice");
    let v = cached(0);
    assert!(v.verify(&t, now()).is_ok());
    assert_eq!(v.cached_tokens(), 0);
}

#[test]
fn a_remembered_token_still_expires_exactly_at_exp() {
    let t = issue("alice");
    let v = cached(16);
    assert!(v.verify(&t, now()).is_ok());
    assert!(v.verify(&t, at(299)).is_ok());
    let expected = AccessTokenError::Claim(ClaimError::Expired {
        now: at(300),
        exp: at(300),
    });
    assert_eq!(v.verify(&t, at(300)).unwrap_err(), expected);
    assert_eq!(uncached().verify(&t, at(300)).unwrap_err(), expected);
    assert_eq!(
        v.cached_tokens(),
        1,
        "the refusal came from the remembered entry"
    );
}

#[test]
fn a_remembered_token_is_held_to_the_iat_skew_when_the_clock_steps_back() {
    let t = issue("alice");
    let v = cached(16);
    assert!(v.verify(&t, now()).is_ok());
    assert!(v.verify(&t, at(-10)).is_ok());
    let refused = v.verify(&t, at(-11)).unwrap_err();
    assert!(
        matches!(
            refused,
            AccessTokenError::Claim(ClaimError::IssuedInFuture { .. })
        ),
        "{refused:?}"
    );
    assert_eq!(refused, uncached().verify(&t, at(-11)).unwrap_err());
}

#[test]
fn a_token_with_another_signature_is_not_a_hit() {
    let t = issue("alice");
    let v = cached(16);
    assert!(v.verify(&t, now()).is_ok());
    // same header and payload, one signature character changed (to a value
    // that keeps the base64url canonical)
    let mut forged = t.clone().into_bytes();
    let i = t.rfind('.').unwrap() + 5;
    forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    assert_eq!(
        v.verify(&forged, now()).unwrap_err(),
        AccessTokenError::Jose(JoseError::BadSignature)
    );
    // and the genuine one is still accepted from the cache
    assert!(v.verify(&t, now()).is_ok());
    assert_eq!(v.cached_tokens(), 1);
}

#[test]
fn a_token_with_another_payload_is_not_a_hit() {
    let t = issue("alice");
    let v = cached(16);
    assert!(v.verify(&t, now()).is_ok());
    // the payload of another token (another subject) under this signature
    let other = issue("mallory");
    let (t_head, t_rest) = t.split_once('.').unwrap();
    let (_, t_sig) = t_rest.split_once('.').unwrap();
    let o_payload = other.split('.').nth(1).unwrap();
    let spliced = format!("{t_head}.{o_payload}.{t_sig}");
    assert_eq!(
        v.verify(&spliced, now()).unwrap_err(),
        AccessTokenError::Jose(JoseError::BadSignature)
    );
}

#[test]
fn rejections_are_never_remembered() {
    let t = issue("alice");
    let v = cached(16);
    // refused while the verifier's clock is 11 s behind the issuer's ...
    assert!(v.verify(&t, at(-11)).is_err());
    assert_eq!(v.cached_tokens(), 0);
    // ... and judged afresh, and accepted, once the clock is right
    assert!(v.verify(&t, now()).is_ok());
    assert_eq!(v.cached_tokens(), 1);
    // junk never takes a place
    for junk in ["Bearer a.b.c", "Bearer eyJhbGciOiJub25lIn0.e30."] {
        assert!(v.verify(junk, now()).is_err());
    }
    assert_eq!(v.cached_tokens(), 1);
}

#[test]
fn the_cache_is_bounded_and_sweeps_expired_entries_when_full() {
    let v = cached(2);
    let tokens: Vec<String> = (0..3).map(|i| issue(&format!("customer-{i}"))).collect();
    for t in &tokens {
        assert!(v.verify(t, now()).is_ok());
    }
    assert_eq!(
        v.cached_tokens(),
        2,
        "the third was verified but not remembered"
    );
    // each is still accepted, remembered or not
    for t in &tokens {
        assert!(v.verify(t, at(1)).is_ok());
    }
    // once the first two have expired, a newcomer takes a swept place
    let late = issue_at(Algorithm::Es256, "late", at(300));
    assert!(v.verify(&late, at(300)).is_ok());
    assert_eq!(v.cached_tokens(), 1);
}

#[test]
fn racing_threads_share_one_cache() {
    const THREADS: usize = 32;
    let v = cached(64);
    let tokens: Vec<String> = (0..4).map(|i| issue(&format!("customer-{i}"))).collect();
    let expected: Vec<String> = tokens
        .iter()
        .map(|t| outcome(uncached().verify(t, now())).unwrap())
        .collect();
    let barrier = Arc::new(Barrier::new(THREADS));
    let results: Vec<Vec<Result<String, AccessTokenError>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let (v, tokens, barrier) = (v.clone(), &tokens, barrier.clone());
                s.spawn(move || {
                    barrier.wait();
                    (0..20)
                        .flat_map(|_| tokens.iter().map(|t| outcome(v.verify(t, now()))))
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for per_thread in results {
        for (i, r) in per_thread.into_iter().enumerate() {
            assert_eq!(r.as_ref().ok(), expected.get(i % tokens.len()));
        }
    }
    assert_eq!(v.cached_tokens(), tokens.len());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Whatever is done to a remembered token, and whenever it is presented,
    /// the caching verifier answers exactly what a fresh verifier answers.
    #[test]
    fn cached_and_uncached_verifiers_always_agree(
        position in 0usize..2000,
        replacement in proptest::sample::select(b"AQgw_-.xyz019".to_vec()),
        offset in -20i64..320,
    ) {
        let t = issue("alice");
        let v = cached(16);
        prop_assert!(v.verify(&t, now()).is_ok());
        let mut mutated = t.clone().into_bytes();
        let i = 7 + position % (t.len() - 7);
        mutated[i] = replacement;
        let mutated = String::from_utf8(mutated).unwrap();
        for presented in [&t, &mutated] {
            prop_assert_eq!(
                outcome(v.verify(presented, at(offset))),
                outcome(uncached().verify(presented, at(offset)))
            );
        }
    }
}
