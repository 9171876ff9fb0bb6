//! ID tokens (OIDC Core §2, §3.3.2.11; FAPI 1 Adv §5.2.2.1): issue, verify,
//! and every rule's negative test with its twin.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::*;
use fapi_core::claims::ClaimError;
use fapi_core::crypto::Algorithm;
use fapi_core::id_token::{
    half_hash, verify_id_token, IdTokenContent, IdTokenError, IdTokenExpectations, IdTokenIssuer,
};
use fapi_core::jose::JoseError;
use fapi_core::Profile;
use fapi_core::{ClientId, Nonce};
use serde_json::json;

/// OIDC Core Appendix A.4 (`c_hash`) and A.3 (`at_hash`), SHA-256 based.
#[test]
fn oidc_core_appendix_a_half_hashes() {
    assert_eq!(
        half_hash(
            Algorithm::Es256,
            "Qcb0Orv1zh30vL1MPRsbm-diHiMwcLyZvn1arpZv-Jxf_11jnpEX3Tgfvk"
        ),
        "LDktKdoQak3Pk0cnXxCltA"
    );
    assert_eq!(
        half_hash(
            Algorithm::Ps256,
            "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"
        ),
        "77QmUPtjPfzWtF2AnpK9RQ"
    );
    assert_eq!(half_hash(Algorithm::EdDsa, "x").len(), 43); // SHA-512 left half, 32 bytes
}

struct Case {
    client: ClientId,
    nonce: Nonce,
}

fn case() -> Case {
    Case {
        client: ClientId::try_from(CLIENT).unwrap(),
        nonce: Nonce::try_from("n".repeat(64).as_str()).unwrap(),
    }
}

fn issue(alg: Algorithm, c: &Case, code: Option<&str>, state: Option<&str>) -> String {
    futures_executor::block_on(
        IdTokenIssuer::new(keys().key(alg).clone(), kid(alg).into(), issuer(), 300).issue(
            &IdTokenContent::new("alice", &c.client, at(-5))
                .with_nonce(Some(&c.nonce))
                .with_acr("urn:openbanking:psd2:sca")
                .with_code(code)
                .with_state(state)
                .with_extra(obj(json!({ "openbanking_intent_id": "aac-1" }))),
            now(),
        ),
    )
    .unwrap()
}

fn verify(
    t: &str,
    c: &Case,
    code: Option<&str>,
    state: Option<&str>,
) -> Result<fapi_core::id_token::VerifiedIdToken, IdTokenError> {
    let iss = issuer();
    verify_id_token(
        t,
        &key_set(keys()),
        &IdTokenExpectations {
            issuer: &iss,
            client_id: &c.client,
            algorithms: Profile::Fapi1Advanced.algorithms(),
            nonce: Some(&c.nonce),
            code,
            state,
            access_token: None,
        },
        now(),
    )
}

#[test]
fn happy_hybrid_id_token_with_c_hash_and_s_hash() {
    let c = case();
    for alg in [Algorithm::Ps256, Algorithm::Es256] {
        let t = issue(alg, &c, Some("the-code"), Some("the-state"));
        let v = verify(&t, &c, Some("the-code"), Some("the-state")).unwrap();
        assert_eq!(v.subject(), "alice");
        assert_eq!(v.acr(), Some("urn:openbanking:psd2:sca"));
        assert_eq!(v.auth_time(), Some(at(-5)));
        assert_eq!(
            v.claims().string("openbanking_intent_id").unwrap(),
            Some("aac-1")
        );
    }
}

#[test]
fn id_token_code_swap_detected_by_c_hash() {
    let c = case();
    let t = issue(Algorithm::Es256, &c, Some("code-for-victim"), Some("s"));
    assert_eq!(
        verify(&t, &c, Some("code-of-attacker"), Some("s")).unwrap_err(),
        IdTokenError::HashMismatch("c_hash")
    );
}

#[test]
fn id_token_state_swap_detected_by_s_hash() {
    let c = case();
    let t = issue(Algorithm::Es256, &c, Some("code"), Some("state-1"));
    assert_eq!(
        verify(&t, &c, Some("code"), Some("state-2")).unwrap_err(),
        IdTokenError::HashMismatch("s_hash")
    );
    // and a token without s_hash fails when a state is expected
    let t = issue(Algorithm::Es256, &c, Some("code"), None);
    assert_eq!(
        verify(&t, &c, Some("code"), Some("state-1")).unwrap_err(),
        IdTokenError::HashMismatch("s_hash")
    );
}

#[test]
fn id_token_nonce_must_match() {
    let c = case();
    let t = issue(Algorithm::Es256, &c, None, None);
    let other = Case {
        client: c.client.clone(),
        nonce: Nonce::try_from("n".repeat(63).as_str()).unwrap(),
    };
    assert_eq!(
        verify(&t, &other, None, None).unwrap_err(),
        IdTokenError::NonceMismatch
    );
    assert!(verify(&t, &c, None, None).is_ok());
}

#[test]
fn id_token_audience_and_azp() {
    let c = case();
    let other = Case {
        client: ClientId::try_from("tpp-b").unwrap(),
        nonce: c.nonce.clone(),
    };
    let t = issue(Algorithm::Es256, &c, None, None);
    assert_eq!(
        verify(&t, &other, None, None).unwrap_err(),
        IdTokenError::Claim(ClaimError::WrongAudience)
    );
    let claims = json!({ "iss": ISSUER, "sub": "alice", "aud": [CLIENT, "tpp-b"], "iat": NOW, "exp": NOW + 60, "nonce": c.nonce.as_str() });
    let multi = sign(keys(), Algorithm::Es256, None, json!({}), claims.clone());
    assert_eq!(
        verify(&multi, &c, None, None).unwrap_err(),
        IdTokenError::WrongAuthorizedParty
    );
    let mut with_azp = claims;
    with_azp["azp"] = json!(CLIENT);
    assert!(verify(
        &sign(keys(), Algorithm::Es256, None, json!({}), with_azp),
        &c,
        None,
        None
    )
    .is_ok());
}

#[test]
fn id_token_issuer_and_expiry() {
    let c = case();
    let wrong_iss = sign(
        keys(),
        Algorithm::Es256,
        None,
        json!({}),
        json!({ "iss": "https://evil.example", "sub": "a", "aud": CLIENT, "iat": NOW, "exp": NOW + 60, "nonce": c.nonce.as_str() }),
    );
    assert_eq!(
        verify(&wrong_iss, &c, None, None).unwrap_err(),
        IdTokenError::Claim(ClaimError::WrongIssuer)
    );
    let expired = sign(
        keys(),
        Algorithm::Es256,
        None,
        json!({}),
        json!({ "iss": ISSUER, "sub": "a", "aud": CLIENT, "iat": NOW - 60, "exp": NOW, "nonce": c.nonce.as_str() }),
    );
    assert!(matches!(
        verify(&expired, &c, None, None).unwrap_err(),
        IdTokenError::Claim(ClaimError::Expired { .. })
    ));
}

#[test]
fn access_token_is_not_an_id_token() {
    let c = case();
    let t = sign(
        keys(),
        Algorithm::Es256,
        Some("at+jwt"),
        json!({}),
        json!({ "iss": ISSUER, "sub": "a", "aud": CLIENT, "iat": NOW, "exp": NOW + 60, "nonce": c.nonce.as_str() }),
    );
    assert_eq!(
        verify(&t, &c, None, None).unwrap_err(),
        IdTokenError::Jose(JoseError::WrongType { expected: "JWT" })
    );
}
