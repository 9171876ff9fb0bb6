//! `private_key_jwt` client authentication (RFC 7523, FAPI-RULES "Client
//! authentication"): one negative test per rule with its happy twin, and the
//! jti single-use guarantee under 1,000 racing threads.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::sync::{Arc, Barrier};

use common::*;
use fapi_core::claims::ClaimError;
use fapi_core::client::AuthMethod;
use fapi_core::client_auth::{
    AssertionContext, ClientAuthError, Endpoint, UnverifiedClientAssertion,
    JWT_BEARER_ASSERTION_TYPE,
};
use fapi_core::crypto::Algorithm;
use fapi_core::jose::JoseError;
use fapi_core::replay::{InMemoryReplayCache, ReplayCache};
use fapi_core::Issuer;
use fapi_core::{AuthenticatedClient, ErrorCode, OAuthError, Profile};
use serde_json::{json, Value};

const TOKEN_EP: &str = "https://bank.example/token";
const PAR_EP: &str = "https://bank.example/par";

fn assertion_claims(jti: &str) -> Value {
    json!({ "iss": CLIENT, "sub": CLIENT, "aud": ISSUER, "jti": jti, "iat": NOW, "exp": NOW + 60 })
}

fn assertion(c: Value) -> String {
    sign(keys(), Algorithm::Es256, None, json!({}), c)
}

fn authenticate(
    token: &str,
    profile: Profile,
    endpoint: Endpoint<'_>,
    cache: &dyn ReplayCache,
    when: fapi_core::UnixTime,
) -> Result<AuthenticatedClient, ClientAuthError> {
    let iss = issuer();
    let ctx = AssertionContext::new(profile, &iss, endpoint);
    let pending = UnverifiedClientAssertion::parse(JWT_BEARER_ASSERTION_TYPE, token, Some(CLIENT))?
        .verify(&Arc::new(client(keys(), profile)), &ctx, when)?;
    block_on(pending.record_jti(cache, when))
}

fn auth(token: &str, profile: Profile) -> Result<AuthenticatedClient, ClientAuthError> {
    authenticate(
        token,
        profile,
        Endpoint::Token(TOKEN_EP),
        &InMemoryReplayCache::new(100),
        now(),
    )
}

#[test]
fn happy_private_key_jwt_every_profile_and_alg() {
    for profile in [
        Profile::Fapi1Advanced,
        Profile::Fapi2Security,
        Profile::Fapi2MessageSigning,
    ] {
        for alg in profile.algorithms() {
            let t = sign(keys(), *alg, Some("JWT"), json!({}), assertion_claims("j1"));
            let c = auth(&t, profile).unwrap();
            assert_eq!(c.client_id().as_str(), CLIENT);
            assert_eq!(c.method(), AuthMethod::PrivateKeyJwt);
        }
    }
}

#[test]
fn assertion_jti_replay_rejected() {
    let cache = InMemoryReplayCache::new(100);
    let t = assertion(assertion_claims("once"));
    authenticate(
        &t,
        Profile::Fapi2Security,
        Endpoint::Token(TOKEN_EP),
        &cache,
        now(),
    )
    .unwrap();
    let e = authenticate(
        &t,
        Profile::Fapi2Security,
        Endpoint::Token(TOKEN_EP),
        &cache,
        at(1),
    )
    .unwrap_err();
    assert_eq!(e, ClientAuthError::Replayed);
    assert_eq!(e.error_code(), ErrorCode::InvalidClient);
    // another jti from the same client is fine
    let t2 = assertion(assertion_claims("twice"));
    assert!(authenticate(
        &t2,
        Profile::Fapi2Security,
        Endpoint::Token(TOKEN_EP),
        &cache,
        at(1)
    )
    .is_ok());
}

#[test]
fn assertion_jti_race_1000_threads_exactly_one_wins() {
    let cache = Arc::new(InMemoryReplayCache::new(10_000));
    let t = Arc::new(assertion(assertion_claims("raced")));
    let barrier = Arc::new(Barrier::new(1000));
    let handles: Vec<_> = (0..1000)
        .map(|_| {
            let (cache, t, barrier) = (cache.clone(), t.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                authenticate(
                    &t,
                    Profile::Fapi2Security,
                    Endpoint::Token(TOKEN_EP),
                    &*cache,
                    now(),
                )
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let wins = results.iter().filter(|r| r.is_ok()).count();
    let replays = results
        .iter()
        .filter(|r| matches!(r, Err(ClientAuthError::Replayed)))
        .count();
    assert_eq!((wins, replays), (1, 999));
}

#[test]
fn assertion_missing_jti_rejected() {
    let mut c = assertion_claims("x");
    c.as_object_mut().unwrap().remove("jti");
    assert_eq!(
        auth(&assertion(c), Profile::Fapi2Security).unwrap_err(),
        ClientAuthError::MissingJti
    );
}

#[test]
fn assertion_sub_must_equal_iss() {
    let mut c = assertion_claims("j");
    c["sub"] = json!("tpp-b");
    assert_eq!(
        auth(&assertion(c), Profile::Fapi2Security).unwrap_err(),
        ClientAuthError::SubjectNotIssuer
    );
}

#[test]
fn assertion_exp_required_and_edges() {
    let mut c = assertion_claims("j");
    c.as_object_mut().unwrap().remove("exp");
    assert_eq!(
        auth(&assertion(c), Profile::Fapi2Security).unwrap_err(),
        ClientAuthError::Claim(ClaimError::Missing("exp"))
    );
    let t = assertion(assertion_claims("edge"));
    let cache = InMemoryReplayCache::new(10);
    assert!(authenticate(
        &t,
        Profile::Fapi2Security,
        Endpoint::Token(TOKEN_EP),
        &cache,
        at(59)
    )
    .is_ok());
    let t = assertion(assertion_claims("edge2"));
    assert_eq!(
        authenticate(
            &t,
            Profile::Fapi2Security,
            Endpoint::Token(TOKEN_EP),
            &cache,
            at(60)
        )
        .unwrap_err(),
        ClientAuthError::Claim(ClaimError::Expired {
            now: at(60),
            exp: at(60)
        })
    );
}

#[test]
fn assertion_exp_as_string_is_an_error_not_absent() {
    let mut c = assertion_claims("j");
    c["exp"] = json!((NOW + 60).to_string());
    assert_eq!(
        auth(&assertion(c), Profile::Fapi2Security).unwrap_err(),
        ClientAuthError::Claim(ClaimError::NotNumericDate("exp"))
    );
}

#[test]
fn assertion_iat_in_future_beyond_skew_rejected() {
    let mut c = assertion_claims("j");
    c["iat"] = json!(NOW + 11);
    assert!(matches!(
        auth(&assertion(c), Profile::Fapi2Security).unwrap_err(),
        ClientAuthError::Claim(ClaimError::IssuedInFuture { .. })
    ));
    let mut c = assertion_claims("j");
    c["iat"] = json!(NOW + 10);
    assert!(auth(&assertion(c), Profile::Fapi2Security).is_ok());
}

#[test]
fn assertion_lifetime_bounded() {
    let mut c = assertion_claims("j");
    c["exp"] = json!(NOW + 3601);
    assert!(matches!(
        auth(&assertion(c), Profile::Fapi2Security).unwrap_err(),
        ClientAuthError::Claim(ClaimError::LifetimeTooLong { .. })
    ));
}

#[test]
fn fapi2_audience_must_be_issuer_string_only() {
    for aud in [
        json!([ISSUER]),
        json!(TOKEN_EP),
        json!([ISSUER, TOKEN_EP]),
        json!("https://bank.example/"),
        json!("HTTPS://BANK.EXAMPLE"),
    ] {
        let mut c = assertion_claims("j");
        c["aud"] = aud.clone();
        assert_eq!(
            auth(&assertion(c), Profile::Fapi2Security).unwrap_err(),
            ClientAuthError::Claim(ClaimError::WrongAudience),
            "{aud}"
        );
    }
    assert!(auth(&assertion(assertion_claims("j")), Profile::Fapi2Security).is_ok());
}

#[test]
fn fapi1_audience_issuer_or_endpoint_arrays_allowed() {
    let cache = InMemoryReplayCache::new(100);
    for (i, (aud, endpoint)) in [
        (json!(ISSUER), Endpoint::Token(TOKEN_EP)),
        (json!([ISSUER]), Endpoint::Token(TOKEN_EP)),
        (json!(TOKEN_EP), Endpoint::Token(TOKEN_EP)),
        (
            json!(["https://x.example", TOKEN_EP]),
            Endpoint::Token(TOKEN_EP),
        ),
        (json!(PAR_EP), Endpoint::PushedAuthorization(PAR_EP)),
    ]
    .into_iter()
    .enumerate()
    {
        let mut c = assertion_claims(&format!("j{i}"));
        c["aud"] = aud.clone();
        assert!(
            authenticate(
                &assertion(c),
                Profile::Fapi1Advanced,
                endpoint,
                &cache,
                now()
            )
            .is_ok(),
            "{aud}"
        );
    }
    // the PAR URL is not an audience at the token endpoint, nor the token URL elsewhere
    for (aud, endpoint) in [
        (json!(PAR_EP), Endpoint::Token(TOKEN_EP)),
        (json!(TOKEN_EP), Endpoint::Other),
        (json!(["https://x.example"]), Endpoint::Token(TOKEN_EP)),
    ] {
        let mut c = assertion_claims("k");
        c["aud"] = aud.clone();
        assert_eq!(
            authenticate(
                &assertion(c),
                Profile::Fapi1Advanced,
                endpoint,
                &cache,
                now()
            )
            .unwrap_err(),
            ClientAuthError::Claim(ClaimError::WrongAudience),
            "{aud}"
        );
    }
}

#[test]
fn two_client_identities_in_one_request_rejected() {
    let t = assertion(assertion_claims("j"));
    let e =
        UnverifiedClientAssertion::parse(JWT_BEARER_ASSERTION_TYPE, &t, Some("tpp-b")).unwrap_err();
    assert_eq!(e, ClientAuthError::ConflictingClientIds);
    assert_eq!(e.error_code(), ErrorCode::InvalidClient);
    assert!(UnverifiedClientAssertion::parse(JWT_BEARER_ASSERTION_TYPE, &t, None).is_ok());
}

#[test]
fn assertion_checked_against_another_registration_rejected() {
    let t = assertion(assertion_claims("j"));
    let iss = issuer();
    let ctx = AssertionContext::new(Profile::Fapi2Security, &iss, Endpoint::Token(TOKEN_EP));
    let other = fapi_core::client::ClientMetadata::new(
        fapi_core::ClientId::try_from("tpp-b").unwrap(),
        AuthMethod::PrivateKeyJwt,
        vec![],
        jwks(keys()),
        &*keys().provider,
        Profile::Fapi2Security,
    )
    .unwrap();
    let parsed = UnverifiedClientAssertion::parse(JWT_BEARER_ASSERTION_TYPE, &t, None).unwrap();
    assert_eq!(
        parsed
            .verify(&Arc::new(other.clone()), &ctx, now())
            .unwrap_err(),
        ClientAuthError::RegistrationMismatch
    );
}

#[test]
fn client_registered_for_mtls_cannot_use_private_key_jwt() {
    let t = assertion(assertion_claims("j"));
    let iss = issuer();
    let ctx = AssertionContext::new(Profile::Fapi2Security, &iss, Endpoint::Token(TOKEN_EP));
    let mtls = client_with(keys(), AuthMethod::TlsClientAuth, Profile::Fapi2Security);
    let parsed = UnverifiedClientAssertion::parse(JWT_BEARER_ASSERTION_TYPE, &t, None).unwrap();
    assert_eq!(
        parsed
            .verify(&Arc::new(mtls.clone()), &ctx, now())
            .unwrap_err(),
        ClientAuthError::MethodNotRegistered
    );
}

#[test]
fn wrong_assertion_type_rejected() {
    let t = assertion(assertion_claims("j"));
    for ty in [
        "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
        "",
        "URN:IETF:PARAMS:OAUTH:CLIENT-ASSERTION-TYPE:JWT-BEARER",
    ] {
        assert_eq!(
            UnverifiedClientAssertion::parse(ty, &t, None).unwrap_err(),
            ClientAuthError::WrongAssertionType
        );
    }
}

#[test]
fn assertion_signed_by_unregistered_key_rejected() {
    let t = sign(
        attacker(),
        Algorithm::Es256,
        None,
        json!({}),
        assertion_claims("j"),
    );
    assert_eq!(
        auth(&t, Profile::Fapi2Security).unwrap_err(),
        ClientAuthError::Jose(JoseError::BadSignature)
    );
}

#[test]
fn access_token_is_not_a_client_assertion() {
    let t = sign(
        keys(),
        Algorithm::Es256,
        Some("at+jwt"),
        json!({}),
        assertion_claims("j"),
    );
    assert_eq!(
        auth(&t, Profile::Fapi2Security).unwrap_err(),
        ClientAuthError::Jose(JoseError::WrongType { expected: "JWT" })
    );
}

#[test]
fn replay_cache_failure_fails_closed() {
    let full = InMemoryReplayCache::new(1);
    let t1 = assertion(assertion_claims("a"));
    authenticate(
        &t1,
        Profile::Fapi2Security,
        Endpoint::Token(TOKEN_EP),
        &full,
        now(),
    )
    .unwrap();
    let t2 = assertion(assertion_claims("b"));
    let e = authenticate(
        &t2,
        Profile::Fapi2Security,
        Endpoint::Token(TOKEN_EP),
        &full,
        now(),
    )
    .unwrap_err();
    assert!(matches!(e, ClientAuthError::Store(_)));
    assert_eq!(e.error_code(), ErrorCode::ServerError);
    // once the first entry expires, capacity frees up
    let t3 = assertion(
        json!({ "iss": CLIENT, "sub": CLIENT, "aud": ISSUER, "jti": "c", "iat": NOW + 60, "exp": NOW + 120 }),
    );
    assert!(authenticate(
        &t3,
        Profile::Fapi2Security,
        Endpoint::Token(TOKEN_EP),
        &full,
        at(60)
    )
    .is_ok());
}

#[test]
fn issuer_compared_exactly() {
    let other = Issuer::try_from("https://bank.example/").unwrap();
    let ctx = AssertionContext::new(Profile::Fapi2Security, &other, Endpoint::Token(TOKEN_EP));
    let t = assertion(assertion_claims("j"));
    let parsed = UnverifiedClientAssertion::parse(JWT_BEARER_ASSERTION_TYPE, &t, None).unwrap();
    assert_eq!(
        parsed
            .verify(
                &Arc::new(client(keys(), Profile::Fapi2Security)),
                &ctx,
                now()
            )
            .unwrap_err(),
        ClientAuthError::Claim(ClaimError::WrongAudience)
    );
}

#[test]
fn algorithm_outside_client_registration_rejected() {
    let iss = issuer();
    let ctx = AssertionContext::new(Profile::Fapi2Security, &iss, Endpoint::Token(TOKEN_EP));
    let ps_only =
        client(keys(), Profile::Fapi2Security).with_allowed_algorithms(vec![Algorithm::Ps256]);
    let es = assertion(assertion_claims("j"));
    let parsed = UnverifiedClientAssertion::parse(JWT_BEARER_ASSERTION_TYPE, &es, None).unwrap();
    assert_eq!(
        parsed
            .verify(&Arc::new(ps_only.clone()), &ctx, now())
            .unwrap_err(),
        ClientAuthError::Jose(JoseError::AlgorithmNotAllowed(Algorithm::Es256))
    );
    let ps = sign(
        keys(),
        Algorithm::Ps256,
        None,
        json!({}),
        assertion_claims("j"),
    );
    let parsed = UnverifiedClientAssertion::parse(JWT_BEARER_ASSERTION_TYPE, &ps, None).unwrap();
    assert!(parsed
        .verify(&Arc::new(ps_only.clone()), &ctx, now())
        .is_ok());
}
