//! The resource-server chain: `AccessTokenVerifier::verify` ->
//! `VerifiedAccessToken::bind`, with each rule's negative test and twin, and
//! expiry probed exactly at its edges with an injected clock.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::sync::Arc;

use common::*;
use fapi_core::access_token::{
    AccessTokenClaims, AccessTokenError, AccessTokenIssuer, BindingError, Confirmation,
    PresentedKey, ProofOfPossession,
};
use fapi_core::claims::ClaimError;
use fapi_core::crypto::{Algorithm, JwkThumbprint};
use fapi_core::jose::JoseError;
use fapi_core::{AccessTokenVerifier, ErrorCode, OAuthError, Profile};
use fapi_core::{CertificateThumbprint, ClientId, ConsentId, Issuer, Scope};
use serde_json::json;

const AUD: &str = "https://api.bank.example";

struct Cert(CertificateThumbprint);
impl ProofOfPossession for Cert {
    fn presented_key(&self) -> PresentedKey<'_> {
        PresentedKey::Certificate(&self.0)
    }
}
struct Dpop(JwkThumbprint);
impl ProofOfPossession for Dpop {
    fn presented_key(&self) -> PresentedKey<'_> {
        PresentedKey::DpopKey(&self.0)
    }
}

fn tpp_a_cert() -> Cert {
    Cert(CertificateThumbprint::of_der(b"TPP A certificate DER"))
}
fn tpp_b_cert() -> Cert {
    Cert(CertificateThumbprint::of_der(b"TPP B certificate DER"))
}

fn token_claims(cnf: Confirmation) -> AccessTokenClaims {
    AccessTokenClaims::new(
        "alice",
        ClientId::try_from(CLIENT).unwrap(),
        Scope::try_from("accounts").unwrap(),
        cnf,
    )
    .with_consent(Some(ConsentId::try_from("aac-123").unwrap()))
}

fn issuer_with(alg: Algorithm, lifetime: i64) -> AccessTokenIssuer {
    AccessTokenIssuer::new(
        keys().key(alg).clone(),
        kid(alg).into(),
        issuer(),
        fapi_core::TokenAudience::try_from(AUD).unwrap(),
        lifetime,
    )
}

fn verifier() -> AccessTokenVerifier {
    AccessTokenVerifier::new(
        Arc::new(key_set(keys())),
        issuer(),
        fapi_core::TokenAudience::try_from(AUD).unwrap(),
        Profile::Fapi2Security.algorithms(),
    )
}

fn issue(cnf: Confirmation) -> String {
    futures_executor::block_on(issuer_with(Algorithm::Es256, 300).issue(&token_claims(cnf), now()))
        .unwrap()
        .token
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

#[test]
fn happy_verify_then_bind_to_presented_certificate() {
    for alg in Algorithm::ALL {
        let issued = futures_executor::block_on(issuer_with(alg, 300).issue(
            &token_claims(Confirmation::CertificateThumbprint(tpp_a_cert().0)),
            now(),
        ))
        .unwrap();
        assert_eq!(issued.expires_in, 300);
        let verified = verifier().verify(&bearer(&issued.token), now()).unwrap();
        assert_eq!(verified.jti(), &issued.jti);
        let bound = verified.bind(&tpp_a_cert()).unwrap();
        assert_eq!(bound.client_id().as_str(), CLIENT);
        assert_eq!(bound.consent_id().unwrap().as_str(), "aac-123");
        assert_eq!(bound.subject(), "alice");
    }
}

#[test]
fn bind_rejects_certificate_of_another_client() {
    let t = issue(Confirmation::CertificateThumbprint(tpp_a_cert().0));
    let v = verifier().verify(&bearer(&t), now()).unwrap();
    let e = v.clone().bind(&tpp_b_cert()).unwrap_err();
    assert_eq!(e, BindingError::KeyMismatch);
    assert_eq!(e.error_code(), ErrorCode::InvalidToken);
    assert!(v.bind(&tpp_a_cert()).is_ok());
}

#[test]
fn bind_rejects_token_without_cnf_no_bearer_fallback() {
    // a token the bank did not issue through AccessTokenIssuer: no cnf
    let t = sign(
        keys(),
        Algorithm::Es256,
        Some("at+jwt"),
        json!({}),
        json!({ "iss": ISSUER, "aud": AUD, "sub": "alice", "client_id": CLIENT, "jti": "j1", "iat": NOW, "exp": NOW + 60 }),
    );
    let v = verifier().verify(&bearer(&t), now()).unwrap();
    assert!(v.confirmation().is_none());
    assert_eq!(
        v.bind(&tpp_a_cert()).unwrap_err(),
        BindingError::NoConfirmation
    );
}

#[test]
fn bind_rejects_other_proof_method() {
    let jkt = keys().es256.public_key().thumbprint();
    let dpop_bound = issue(Confirmation::JwkThumbprint(jkt));
    // RFC 9449 §7.2: a DPoP-bound token is never accepted as a bearer one
    assert_eq!(
        verifier().verify(&bearer(&dpop_bound), now()).unwrap_err(),
        AccessTokenError::DpopBoundAsBearer
    );
    // the DPoP scheme, compared without case
    for scheme in ["DPoP", "dpop", "DPOP"] {
        let v = verifier()
            .verify_dpop(&format!("{scheme} {dpop_bound}"), now())
            .unwrap();
        assert_eq!(
            v.clone().bind(&tpp_a_cert()).unwrap_err(),
            BindingError::MethodMismatch
        );
        assert!(v.bind(&Dpop(jkt)).is_ok());
    }
    let cert_bound = issue(Confirmation::CertificateThumbprint(tpp_a_cert().0));
    let v = verifier().verify(&bearer(&cert_bound), now()).unwrap();
    assert_eq!(
        v.bind(&Dpop(jkt)).unwrap_err(),
        BindingError::MethodMismatch
    );
    // and the reverse: a certificate-bound token is not sent as DPoP
    assert_eq!(
        verifier()
            .verify_dpop(&format!("DPoP {cert_bound}"), now())
            .unwrap_err(),
        AccessTokenError::NotDpopBound
    );
    for malformed in [
        format!("Bearer {dpop_bound}"),
        format!("DPoP{dpop_bound}"),
        "DPoP ".to_owned(),
        format!("DPoP {dpop_bound} x"),
    ] {
        assert!(
            verifier().verify_dpop(&malformed, now()).is_err(),
            "{malformed}"
        );
    }
}

#[test]
fn malformed_cnf_rejected() {
    for cnf in [
        json!("abc"),
        json!({ "x5t#S256": "short" }),
        json!({ "x5t#S256": 1 }),
        json!({}),
        json!({ "x5t#S256": tpp_a_cert().0.to_b64url(), "jkt": "x" }),
    ] {
        let t = sign(
            keys(),
            Algorithm::Es256,
            Some("at+jwt"),
            json!({}),
            json!({ "iss": ISSUER, "aud": AUD, "sub": "alice", "client_id": CLIENT, "jti": "j1", "iat": NOW, "exp": NOW + 60, "cnf": cnf }),
        );
        assert_eq!(
            verifier().verify(&bearer(&t), now()).unwrap_err(),
            AccessTokenError::MalformedConfirmation,
            "{cnf}"
        );
    }
}

#[test]
fn access_token_expiry_edges() {
    let t = futures_executor::block_on(issuer_with(Algorithm::Es256, 300).issue(
        &token_claims(Confirmation::CertificateThumbprint(tpp_a_cert().0)),
        now(),
    ))
    .unwrap()
    .token;
    assert!(verifier().verify(&bearer(&t), at(299)).is_ok());
    assert_eq!(
        verifier().verify(&bearer(&t), at(300)).unwrap_err(),
        AccessTokenError::Claim(ClaimError::Expired {
            now: at(300),
            exp: at(300)
        })
    );
}

#[test]
fn access_token_iat_future_skew_edges() {
    let t = issue(Confirmation::CertificateThumbprint(tpp_a_cert().0));
    // issued at NOW: a verifier 10 s behind accepts, 11 s behind rejects
    assert!(verifier().verify(&bearer(&t), at(-10)).is_ok());
    assert!(matches!(
        verifier().verify(&bearer(&t), at(-11)).unwrap_err(),
        AccessTokenError::Claim(ClaimError::IssuedInFuture { .. })
    ));
}

#[test]
fn access_token_wrong_issuer_rejected() {
    let other = AccessTokenVerifier::new(
        Arc::new(key_set(keys())),
        Issuer::try_from("https://bank.example/other").unwrap(),
        fapi_core::TokenAudience::try_from(AUD).unwrap(),
        Profile::Fapi2Security.algorithms(),
    );
    let t = issue(Confirmation::CertificateThumbprint(tpp_a_cert().0));
    assert_eq!(
        other.verify(&bearer(&t), now()).unwrap_err(),
        AccessTokenError::Claim(ClaimError::WrongIssuer)
    );
    assert!(verifier().verify(&bearer(&t), now()).is_ok());
}

#[test]
fn access_token_wrong_audience_rejected() {
    let other = AccessTokenVerifier::new(
        Arc::new(key_set(keys())),
        issuer(),
        fapi_core::TokenAudience::try_from("https://api.bank.example/v2").unwrap(),
        Profile::Fapi2Security.algorithms(),
    );
    let t = issue(Confirmation::CertificateThumbprint(tpp_a_cert().0));
    assert_eq!(
        other.verify(&bearer(&t), now()).unwrap_err(),
        AccessTokenError::Claim(ClaimError::WrongAudience)
    );
}

#[test]
fn request_object_is_not_an_access_token() {
    let t = sign(
        keys(),
        Algorithm::Es256,
        Some("oauth-authz-req+jwt"),
        json!({}),
        json!({ "iss": ISSUER, "aud": AUD, "sub": "alice", "client_id": CLIENT, "jti": "j1", "iat": NOW, "exp": NOW + 60,
                "cnf": { "x5t#S256": tpp_a_cert().0.to_b64url() } }),
    );
    assert_eq!(
        verifier().verify(&bearer(&t), now()).unwrap_err(),
        AccessTokenError::Jose(JoseError::WrongType { expected: "at+jwt" })
    );
}

#[test]
fn access_token_required_claims() {
    for missing in ["iss", "aud", "sub", "client_id", "jti", "iat", "exp"] {
        let mut c = json!({ "iss": ISSUER, "aud": AUD, "sub": "alice", "client_id": CLIENT, "jti": "j1", "iat": NOW, "exp": NOW + 60,
                            "cnf": { "x5t#S256": tpp_a_cert().0.to_b64url() } });
        c.as_object_mut().unwrap().remove(missing);
        let t = sign(keys(), Algorithm::Es256, Some("at+jwt"), json!({}), c);
        assert_eq!(
            verifier().verify(&bearer(&t), now()).unwrap_err(),
            AccessTokenError::Claim(ClaimError::Missing(match missing {
                "iss" => "iss",
                "aud" => "aud",
                "sub" => "sub",
                "client_id" => "client_id",
                "jti" => "jti",
                "iat" => "iat",
                _ => "exp",
            })),
            "{missing}"
        );
    }
}

#[test]
fn authorization_header_forms() {
    let t = issue(Confirmation::CertificateThumbprint(tpp_a_cert().0));
    for ok in [
        format!("Bearer {t}"),
        format!("bearer {t}"),
        format!("BEARER {t}"),
    ] {
        assert!(verifier().verify(&ok, now()).is_ok());
    }
    for bad in [
        t.clone(),
        format!("Basic {t}"),
        format!("Bearer  {t}"),
        format!("Bearer {t} "),
        "Bearer ".into(),
        format!("DPoP{t}"),
    ] {
        assert_eq!(
            verifier().verify(&bad, now()).unwrap_err(),
            AccessTokenError::MalformedAuthorization,
            "{bad:.20}"
        );
    }
}

#[test]
fn access_token_error_descriptions_do_not_echo_the_token() {
    let t = issue(Confirmation::CertificateThumbprint(tpp_a_cert().0));
    let e = verifier().verify(&format!("Basic {t}"), now()).unwrap_err();
    let body = serde_json::to_string(&e.to_response()).unwrap();
    assert!(body.contains("invalid_token") && !body.contains(&t[..20]));
}

fn rules(skew: i64, leeway: i64) -> fapi_core::claims::TimeRules {
    Profile::Fapi2Security
        .access_token_times()
        .with_max_future_skew(skew)
        .with_exp_leeway(leeway)
}

/// The clock allowances were fixed (10 s ahead, no leeway after `exp`);
/// they are a setting now, checked exactly at their edges, also for a
/// token the verifier remembers.
#[test]
fn time_rules_are_configurable_and_hold_at_their_edges() {
    let t = issue(Confirmation::CertificateThumbprint(tpp_a_cert().0)); // iat NOW, exp NOW + 300
    for v in [
        verifier().with_time_rules(rules(30, 5)).unwrap(),
        verifier()
            .with_cache(8)
            .with_time_rules(rules(30, 5))
            .unwrap(),
    ] {
        // exp + leeway: accepted one second before, refused at it
        assert!(v.verify(&bearer(&t), at(304)).is_ok());
        assert_eq!(
            v.verify(&bearer(&t), at(305)).unwrap_err(),
            AccessTokenError::Claim(ClaimError::Expired {
                now: at(305),
                exp: at(300)
            })
        );
        // iat up to 30 s ahead of the verifier's clock
        assert!(v.verify(&bearer(&t), at(-30)).is_ok());
        assert!(matches!(
            v.verify(&bearer(&t), at(-31)).unwrap_err(),
            AccessTokenError::Claim(ClaimError::IssuedInFuture { .. })
        ));
    }
    // the default: no leeway, 10 s skew
    assert_eq!(
        verifier().time_rules(),
        &Profile::Fapi2Security.access_token_times()
    );
    assert_eq!(verifier().time_rules().exp_leeway_secs, 0);
    assert!(verifier().verify(&bearer(&t), at(300)).is_err());
    assert!(verifier().verify(&bearer(&t), at(-11)).is_err());
}

#[test]
fn time_rules_out_of_fapi_bounds_refused() {
    use fapi_core::claims::TimeRulesError;
    assert_eq!(
        verifier().with_time_rules(rules(61, 0)).unwrap_err(),
        TimeRulesError::FutureSkew { secs: 61, max: 60 }
    );
    assert_eq!(
        verifier().with_time_rules(rules(-1, 0)).unwrap_err(),
        TimeRulesError::FutureSkew { secs: -1, max: 60 }
    );
    assert_eq!(
        verifier().with_time_rules(rules(10, 61)).unwrap_err(),
        TimeRulesError::ExpLeeway { secs: 61, max: 60 }
    );
    assert_eq!(
        verifier().with_time_rules(rules(10, -5)).unwrap_err(),
        TimeRulesError::ExpLeeway { secs: -5, max: 60 }
    );
    assert!(verifier().with_time_rules(rules(60, 60)).is_ok());
    // iat stays required whatever the rules say
    let lax = rules(10, 0).with_iat_required(false);
    let v = verifier().with_time_rules(lax).unwrap();
    let no_iat = sign(
        keys(),
        Algorithm::Es256,
        Some("at+jwt"),
        json!({}),
        json!({ "iss": ISSUER, "aud": AUD, "sub": "alice", "client_id": CLIENT, "jti": "j1", "exp": NOW + 60,
                "cnf": { "x5t#S256": tpp_a_cert().0.to_b64url() } }),
    );
    assert_eq!(
        v.verify(&bearer(&no_iat), now()).unwrap_err(),
        AccessTokenError::Claim(ClaimError::Missing("iat"))
    );
}

/// A header of the right shape (`Bearer` and an RFC 6750 b64token) whose
/// token is not a compact JWS now says what is wrong with it.
#[test]
fn bearer_shaped_header_reports_the_framing_fault() {
    use fapi_core::jose::Part;
    let t = issue(Confirmation::CertificateThumbprint(tpp_a_cert().0));
    let parts: Vec<&str> = t.split('.').collect();
    for (token, fault) in [
        (
            format!("{}+.{}.{}", parts[0], parts[1], parts[2]),
            JoseError::Base64(Part::Header),
        ),
        (
            format!("{}.{}/x.{}", parts[0], parts[1], parts[2]),
            JoseError::Base64(Part::Payload),
        ),
        (
            format!("{}.{}.{}==", parts[0], parts[1], parts[2]),
            JoseError::Base64(Part::Signature),
        ),
        (
            format!("{}~.{}", parts[0], parts[1]),
            JoseError::SegmentCount,
        ),
    ] {
        assert_eq!(
            verifier().verify(&bearer(&token), now()).unwrap_err(),
            AccessTokenError::Jose(fault.clone()),
            "{token:.30}"
        );
        assert!(fault.to_string().contains("token"));
    }
    // not a b64token at all: still the header's shape that is wrong
    for bad in [
        format!("Bearer {t},x"),
        format!("Bearer \"{t}\""),
        "Bearer =abc".into(),
    ] {
        assert_eq!(
            verifier().verify(&bad, now()).unwrap_err(),
            AccessTokenError::MalformedAuthorization,
            "{bad:.20}"
        );
    }
    assert!(verifier().verify(&bearer(&t), now()).is_ok());
}

/// `verify_value` (introspection and revocation receive the bare token):
/// the same checks as `verify`, and no `Bearer` scheme accepted in place
/// of a token.
#[test]
fn a_bare_token_verifies_with_the_same_checks() {
    let t = issue(Confirmation::CertificateThumbprint(tpp_a_cert().0));
    let v = verifier().verify_value(&t, now()).unwrap();
    assert_eq!(v.client_id().as_str(), CLIENT);
    assert_eq!(v.consent_id().unwrap().as_str(), "aac-123");
    // the header form is not a token
    assert!(verifier().verify_value(&bearer(&t), now()).is_err());
    // a changed signature byte is refused
    let mut forged = t.clone().into_bytes();
    let last = forged.len() - 2;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    assert!(verifier().verify_value(&forged, now()).is_err());
    // expired: the same time rules as `verify` (exp is now + 300)
    let late = fapi_core::UnixTime::from_secs(NOW + 300 + 3600).unwrap();
    assert!(verifier().verify(&bearer(&t), late).is_err());
    assert!(verifier().verify_value(&t, late).is_err());
}
