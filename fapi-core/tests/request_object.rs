//! Request objects (RFC 9101, FAPI 1 Adv §5.2.2, FAPI 2 MS) and FAPI 2 SP
//! plain PAR parameters: every rule of FAPI-RULES "Request objects" has a
//! named negative test next to its happy twin.
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
use fapi_core::jose::JoseError;
use fapi_core::request_object::{
    AuthorizationRequestError, RequestRule, RequestValidator, ResponseMode, ResponseType,
    ValidatedAuthorizationRequest,
};
use fapi_core::CodeVerifier;
use fapi_core::{ErrorCode, OAuthError, Profile};
use serde_json::{json, Value};

const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn ro_claims(profile: Profile) -> Value {
    let mut c = json!({
        "iss": CLIENT, "aud": ISSUER, "client_id": CLIENT,
        "iat": NOW, "nbf": NOW, "exp": NOW + 300, "jti": "ro-1",
        "response_type": "code", "redirect_uri": REDIRECT,
        "scope": "openid accounts", "state": "s-1", "nonce": "n".repeat(64),
        "code_challenge": CHALLENGE, "code_challenge_method": "S256",
        "claims": { "id_token": { "openbanking_intent_id": { "value": "aac-1", "essential": true } } }
    });
    if profile == Profile::Fapi1Advanced {
        c["response_mode"] = json!("jwt");
    }
    c
}

fn ro(c: Value) -> String {
    sign(
        keys(),
        Algorithm::Es256,
        Some("oauth-authz-req+jwt"),
        json!({}),
        c,
    )
}

fn validate_at(
    token: &str,
    outer: &[(&str, &str)],
    profile: Profile,
    when: fapi_core::UnixTime,
) -> Result<ValidatedAuthorizationRequest, AuthorizationRequestError> {
    let iss = issuer();
    let ctx = RequestValidator::new(profile, iss.clone());
    let outer: Vec<(String, String)> = outer
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    ctx.request_object(token, &outer, &client(keys(), profile), when)
}

fn validate(
    c: Value,
    profile: Profile,
) -> Result<ValidatedAuthorizationRequest, AuthorizationRequestError> {
    validate_at(&ro(c), &[("client_id", CLIENT)], profile, now())
}

fn rule(c: Value, profile: Profile) -> RequestRule {
    validate(c, profile).unwrap_err().rule().clone()
}

fn without(mut c: Value, name: &str) -> Value {
    c.as_object_mut().unwrap().remove(name);
    c
}

fn with(mut c: Value, name: &str, v: Value) -> Value {
    c[name] = v;
    c
}

const ALL: [Profile; 3] = [
    Profile::Fapi1Advanced,
    Profile::Fapi2Security,
    Profile::Fapi2MessageSigning,
];

#[test]
fn happy_request_object_every_profile() {
    for p in ALL {
        let v = validate(ro_claims(p), p).unwrap();
        assert_eq!(v.client_id().as_str(), CLIENT);
        assert_eq!(v.redirect_uri().as_str(), REDIRECT);
        assert_eq!(v.response_type(), ResponseType::Code);
        assert_eq!(v.code_challenge().as_str(), CHALLENGE);
        assert_eq!(v.nonce().unwrap().as_str(), "n".repeat(64));
        assert_eq!(v.state().unwrap().as_str(), "s-1");
        assert_eq!(v.openbanking_intent_id(), Some("aac-1"));
        assert!(v.request_object_sha256().is_some());
        assert_eq!(v.request_object_expires_at(), Some(at(300)));
    }
}

#[test]
fn request_object_wrong_typ_rejected() {
    for typ in [Some("at+jwt"), Some("JWT"), None] {
        let t = sign(
            keys(),
            Algorithm::Es256,
            typ,
            json!({}),
            ro_claims(Profile::Fapi2MessageSigning),
        );
        let e = validate_at(&t, &[], Profile::Fapi2MessageSigning, now()).unwrap_err();
        assert!(
            matches!(
                e.rule(),
                RequestRule::Jose(JoseError::WrongType { .. } | JoseError::MissingType { .. })
            ),
            "{typ:?}"
        );
        assert_eq!(e.error_code(), ErrorCode::InvalidRequestObject);
    }
}

#[test]
fn request_object_signed_by_another_key_rejected() {
    let t = sign(
        attacker(),
        Algorithm::Es256,
        Some("oauth-authz-req+jwt"),
        json!({}),
        ro_claims(Profile::Fapi2MessageSigning),
    );
    assert_eq!(
        validate_at(&t, &[], Profile::Fapi2MessageSigning, now())
            .unwrap_err()
            .rule(),
        &RequestRule::Jose(JoseError::BadSignature)
    );
}

#[test]
fn request_object_eddsa_rejected_under_fapi1() {
    let t = sign(
        keys(),
        Algorithm::EdDsa,
        Some("oauth-authz-req+jwt"),
        json!({}),
        ro_claims(Profile::Fapi1Advanced),
    );
    assert_eq!(
        validate_at(&t, &[], Profile::Fapi1Advanced, now())
            .unwrap_err()
            .rule(),
        &RequestRule::Jose(JoseError::AlgorithmNotAllowed(Algorithm::EdDsa))
    );
    let t = sign(
        keys(),
        Algorithm::EdDsa,
        Some("oauth-authz-req+jwt"),
        json!({}),
        ro_claims(Profile::Fapi2MessageSigning),
    );
    assert!(validate_at(&t, &[], Profile::Fapi2MessageSigning, now()).is_ok());
}

#[test]
fn request_object_iss_must_be_client_id() {
    assert_eq!(
        rule(
            with(
                ro_claims(Profile::Fapi2MessageSigning),
                "iss",
                json!("tpp-b")
            ),
            Profile::Fapi2MessageSigning
        ),
        RequestRule::IssuerNotClient
    );
    assert_eq!(
        rule(
            without(ro_claims(Profile::Fapi2MessageSigning), "iss"),
            Profile::Fapi2MessageSigning
        ),
        RequestRule::Claim(ClaimError::Missing("iss"))
    );
}

#[test]
fn request_object_client_id_must_be_authenticated_client() {
    let p = Profile::Fapi2MessageSigning;
    let t = ro(with(ro_claims(p), "client_id", json!("tpp-b")));
    assert_eq!(
        validate_at(&t, &[], p, now()).unwrap_err().rule(),
        &RequestRule::ClientIdMismatch
    );
    // with the outer client_id of the authenticated client, the contradiction is caught first
    assert_eq!(
        validate_at(&t, &[("client_id", CLIENT)], p, now())
            .unwrap_err()
            .rule(),
        &RequestRule::ConflictingOuterParameter("client_id")
    );
    assert_eq!(
        rule(
            without(ro_claims(Profile::Fapi2MessageSigning), "client_id"),
            Profile::Fapi2MessageSigning
        ),
        RequestRule::Missing("client_id")
    );
}

#[test]
fn request_object_aud_must_be_issuer() {
    for p in ALL {
        assert_eq!(
            rule(with(ro_claims(p), "aud", json!("https://other.example")), p),
            RequestRule::Claim(ClaimError::WrongAudience)
        );
        assert_eq!(
            rule(without(ro_claims(p), "aud"), p),
            RequestRule::Claim(ClaimError::Missing("aud"))
        );
    }
    // FAPI 1: an array containing the issuer is fine; FAPI 2 MS: string only
    assert!(validate(
        with(
            ro_claims(Profile::Fapi1Advanced),
            "aud",
            json!(["https://x.example", ISSUER])
        ),
        Profile::Fapi1Advanced
    )
    .is_ok());
    assert_eq!(
        rule(
            with(
                ro_claims(Profile::Fapi2MessageSigning),
                "aud",
                json!([ISSUER])
            ),
            Profile::Fapi2MessageSigning
        ),
        RequestRule::Claim(ClaimError::WrongAudience)
    );
}

#[test]
fn request_object_exp_and_nbf_required() {
    let p = Profile::Fapi2MessageSigning;
    assert_eq!(
        rule(without(ro_claims(p), "exp"), p),
        RequestRule::Claim(ClaimError::Missing("exp"))
    );
    assert_eq!(
        rule(without(ro_claims(p), "nbf"), p),
        RequestRule::Claim(ClaimError::Missing("nbf"))
    );
}

#[test]
fn request_object_lifetime_at_most_60_minutes() {
    let p = Profile::Fapi1Advanced;
    assert!(validate(with(ro_claims(p), "exp", json!(NOW + 3600)), p).is_ok());
    assert_eq!(
        rule(with(ro_claims(p), "exp", json!(NOW + 3601)), p),
        RequestRule::Claim(ClaimError::LifetimeTooLong {
            secs: 3601,
            max_secs: 3600
        })
    );
}

#[test]
fn request_object_nbf_at_most_60_minutes_old() {
    let p = Profile::Fapi1Advanced;
    // (with exp - nbf <= 60 min and exp in the future, nbf can be at most
    // just under 60 min old)
    let c = with(
        with(ro_claims(p), "nbf", json!(NOW - 3590)),
        "exp",
        json!(NOW + 10),
    );
    assert!(validate(c, p).is_ok());
    let c = with(
        with(ro_claims(p), "nbf", json!(NOW - 3601)),
        "exp",
        json!(NOW + 10),
    );
    assert_eq!(
        rule(c, p),
        RequestRule::Claim(ClaimError::NotBeforeTooOld { max_secs: 3600 })
    );
}

#[test]
fn request_object_expiry_edge() {
    let t = ro(ro_claims(Profile::Fapi2MessageSigning));
    assert!(validate_at(&t, &[], Profile::Fapi2MessageSigning, at(299)).is_ok());
    assert_eq!(
        validate_at(&t, &[], Profile::Fapi2MessageSigning, at(300))
            .unwrap_err()
            .rule(),
        &RequestRule::Claim(ClaimError::Expired {
            now: at(300),
            exp: at(300)
        })
    );
}

#[test]
fn request_object_future_nbf_skew_edge() {
    let p = Profile::Fapi2MessageSigning;
    let c = with(
        with(ro_claims(p), "nbf", json!(NOW + 10)),
        "iat",
        json!(NOW + 10),
    );
    assert!(validate(c, p).is_ok());
    let c = with(ro_claims(p), "nbf", json!(NOW + 11));
    assert!(matches!(
        rule(c, p),
        RequestRule::Claim(ClaimError::NotYetValid { .. })
    ));
}

#[test]
fn request_object_nested_request_uri_rejected() {
    let p = Profile::Fapi2MessageSigning;
    assert_eq!(
        rule(with(ro_claims(p), "request_uri", json!("urn:x")), p),
        RequestRule::NestedRequestReference
    );
    assert_eq!(
        rule(with(ro_claims(p), "request", json!("a.b.c")), p),
        RequestRule::NestedRequestReference
    );
}

#[test]
fn response_type_rules_per_profile() {
    let p2 = Profile::Fapi2MessageSigning;
    for bad in [
        "token",
        "code token",
        "id_token",
        "code id_token",
        "CODE",
        "",
    ] {
        let e = validate(with(ro_claims(p2), "response_type", json!(bad)), p2).unwrap_err();
        assert_eq!(e.rule(), &RequestRule::UnsupportedResponseType, "{bad}");
        assert_eq!(e.error_code(), ErrorCode::UnsupportedResponseType);
    }
    let p1 = Profile::Fapi1Advanced;
    // FAPI 1: `code id_token`, or `code` with JARM
    let v = validate(
        without(
            with(ro_claims(p1), "response_type", json!("code id_token")),
            "response_mode",
        ),
        p1,
    )
    .unwrap();
    assert_eq!(v.response_type(), ResponseType::CodeIdToken);
    assert_eq!(
        rule(without(ro_claims(p1), "response_mode"), p1),
        RequestRule::UnsupportedResponseType
    );
    assert_eq!(
        rule(with(ro_claims(p1), "response_mode", json!("query")), p1),
        RequestRule::UnsupportedResponseType
    );
    for jarm in ["jwt", "query.jwt", "fragment.jwt", "form_post.jwt"] {
        let v = validate(with(ro_claims(p1), "response_mode", json!(jarm)), p1).unwrap();
        assert!(v.response_mode().unwrap().is_jarm());
    }
    assert_eq!(
        rule(with(ro_claims(p1), "response_mode", json!("query.JWT")), p1),
        RequestRule::UnsupportedResponseMode
    );
    // hybrid responses never go into a query string
    let c = with(
        with(ro_claims(p1), "response_type", json!("code id_token")),
        "response_mode",
        json!("query"),
    );
    assert_eq!(rule(c, p1), RequestRule::UnsupportedResponseMode);
    let c = with(
        with(ro_claims(p1), "response_type", json!("code id_token")),
        "response_mode",
        json!("fragment"),
    );
    assert_eq!(
        validate(c, p1).unwrap().response_mode(),
        Some(ResponseMode::Fragment)
    );
}

#[test]
fn redirect_uri_required_and_exactly_registered() {
    let p = Profile::Fapi2MessageSigning;
    assert_eq!(
        rule(without(ro_claims(p), "redirect_uri"), p),
        RequestRule::Missing("redirect_uri")
    );
    for near in [
        "https://tpp-a.example/cb/",
        "https://TPP-A.example/cb",
        "https://tpp-a.example:443/cb",
        "https://tpp-a.example/cb?x=1",
        "http://tpp-a.example/cb",
    ] {
        let e = validate(with(ro_claims(p), "redirect_uri", json!(near)), p).unwrap_err();
        assert_eq!(e.rule(), &RequestRule::UnregisteredRedirectUri, "{near}");
        assert_eq!(e.error_code(), ErrorCode::InvalidRequest);
    }
}

#[test]
fn pkce_challenge_required() {
    let p = Profile::Fapi2MessageSigning;
    assert_eq!(
        rule(without(ro_claims(p), "code_challenge"), p),
        RequestRule::PkceChallengeRequired
    );
}

#[test]
fn pkce_plain_and_missing_method_rejected() {
    let p = Profile::Fapi2MessageSigning;
    assert_eq!(
        rule(
            with(ro_claims(p), "code_challenge_method", json!("plain")),
            p
        ),
        RequestRule::PkceMethodNotS256
    );
    assert_eq!(
        rule(
            with(ro_claims(p), "code_challenge_method", json!("s256")),
            p
        ),
        RequestRule::PkceMethodNotS256
    );
    assert_eq!(
        rule(without(ro_claims(p), "code_challenge_method"), p),
        RequestRule::PkceMethodNotS256
    );
    assert_eq!(
        rule(with(ro_claims(p), "code_challenge", json!("short")), p),
        RequestRule::Invalid("code_challenge")
    );
    let fresh = CodeVerifier::generate().unwrap().challenge();
    assert!(validate(
        with(ro_claims(p), "code_challenge", json!(fresh.as_str())),
        p
    )
    .is_ok());
}

#[test]
fn nonce_required_with_openid_in_fapi1() {
    let p1 = Profile::Fapi1Advanced;
    assert_eq!(
        rule(without(ro_claims(p1), "nonce"), p1),
        RequestRule::NonceRequired
    );
    assert!(validate(
        with(without(ro_claims(p1), "nonce"), "scope", json!("accounts")),
        p1
    )
    .is_ok());
    // FAPI 2 relies on PKCE; nonce optional
    let p2 = Profile::Fapi2MessageSigning;
    assert!(validate(without(ro_claims(p2), "nonce"), p2).is_ok());
}

#[test]
fn state_optional_and_returned_verbatim() {
    let p = Profile::Fapi2MessageSigning;
    let v = validate(with(ro_claims(p), "state", json!("a b/c?d=e&f")), p).unwrap();
    assert_eq!(v.state().unwrap().as_str(), "a b/c?d=e&f");
    assert!(validate(without(ro_claims(p), "state"), p)
        .unwrap()
        .state()
        .is_none());
}

#[test]
fn parameter_of_wrong_json_type_rejected() {
    let p = Profile::Fapi2MessageSigning;
    assert_eq!(
        rule(with(ro_claims(p), "scope", json!(["openid"])), p),
        RequestRule::Invalid("scope")
    );
    assert_eq!(
        rule(with(ro_claims(p), "claims", json!("x")), p),
        RequestRule::Invalid("claims")
    );
    assert_eq!(
        rule(with(ro_claims(p), "redirect_uri", json!(1)), p),
        RequestRule::Invalid("redirect_uri")
    );
}

#[test]
fn outer_parameter_conflicting_with_inner_rejected() {
    let p = Profile::Fapi2MessageSigning;
    let t = ro(ro_claims(p));
    let e = validate_at(
        &t,
        &[
            ("client_id", CLIENT),
            ("redirect_uri", "https://attacker.example/cb"),
        ],
        p,
        now(),
    )
    .unwrap_err();
    assert_eq!(
        e.rule(),
        &RequestRule::ConflictingOuterParameter("redirect_uri")
    );
    assert_eq!(e.error_code(), ErrorCode::InvalidRequest);
    // equal duplicates are fine
    assert!(validate_at(
        &t,
        &[
            ("client_id", CLIENT),
            ("redirect_uri", REDIRECT),
            ("scope", "openid accounts")
        ],
        p,
        now()
    )
    .is_ok());
}

#[test]
fn outer_only_parameters_are_ignored_never_used() {
    let p = Profile::Fapi2MessageSigning;
    let t = ro(without(ro_claims(p), "state"));
    let v = validate_at(&t, &[("state", "outer-state"), ("request", &t)], p, now()).unwrap();
    assert!(v.state().is_none());
}

#[test]
fn repeated_outer_parameter_rejected() {
    let p = Profile::Fapi2MessageSigning;
    let t = ro(ro_claims(p));
    assert_eq!(
        validate_at(
            &t,
            &[("client_id", CLIENT), ("client_id", CLIENT)],
            p,
            now()
        )
        .unwrap_err()
        .rule(),
        &RequestRule::RepeatedParameter
    );
}

fn form(c: &Value) -> Vec<(String, String)> {
    c.as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| !["iss", "aud", "iat", "nbf", "exp", "jti"].contains(&k.as_str()))
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string()),
            )
        })
        .collect()
}

#[test]
fn fapi2_sp_plain_parameters_happy() {
    let p = Profile::Fapi2Security;
    let iss = issuer();
    let v = RequestValidator::new(p, iss.clone())
        .plain_parameters(&form(&ro_claims(p)), &client(keys(), p))
        .unwrap();
    assert_eq!(v.openbanking_intent_id(), Some("aac-1"));
    assert!(v.request_object_sha256().is_none());
}

#[test]
fn signed_request_object_required_by_fapi1_and_fapi2_ms() {
    let iss = issuer();
    for p in [Profile::Fapi1Advanced, Profile::Fapi2MessageSigning] {
        let e = RequestValidator::new(p, iss.clone())
            .plain_parameters(&form(&ro_claims(p)), &client(keys(), p))
            .unwrap_err();
        assert_eq!(e.rule(), &RequestRule::SignedRequestObjectRequired);
    }
}

#[test]
fn plain_parameters_follow_the_same_rules() {
    let p = Profile::Fapi2Security;
    let iss = issuer();
    let ctx = RequestValidator::new(p, iss.clone());
    let c = client(keys(), p);
    let e = ctx
        .plain_parameters(
            &form(&with(ro_claims(p), "code_challenge_method", json!("plain"))),
            &c,
        )
        .unwrap_err();
    assert_eq!(e.rule(), &RequestRule::PkceMethodNotS256);
    assert_eq!(e.error_code(), ErrorCode::InvalidRequest);
    let mut f = form(&ro_claims(p));
    f.push(("request_uri".into(), "urn:x".into()));
    assert_eq!(
        ctx.plain_parameters(&f, &c).unwrap_err().rule(),
        &RequestRule::NestedRequestReference
    );
}

/// RFC 9449 §10: `dpop_jkt` binds the code to a DPoP key; it is read
/// strictly (a base64url SHA-256 thumbprint), signed values win over outer
/// ones only if equal, and an outer-only one is ignored like any other.
#[test]
fn dpop_jkt_is_read_strictly_and_signed() {
    let p = Profile::Fapi2MessageSigning;
    let jkt = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";
    let v = validate(with(ro_claims(p), "dpop_jkt", json!(jkt)), p).unwrap();
    assert_eq!(v.dpop_jkt().map(|t| t.to_b64url()).as_deref(), Some(jkt));
    assert!(validate(ro_claims(p), p).unwrap().dpop_jkt().is_none());
    for bad in [
        json!(format!("{jkt}=")),
        json!(&jkt[..42]),
        json!("not-a-thumbprint"),
        json!(""),
    ] {
        assert_eq!(
            rule(with(ro_claims(p), "dpop_jkt", bad.clone()), p),
            RequestRule::Invalid("dpop_jkt"),
            "{bad}"
        );
    }
    assert!(validate(with(ro_claims(p), "dpop_jkt", json!(7)), p).is_err());
    // an outer dpop_jkt that differs from the signed one
    let t = ro(with(ro_claims(p), "dpop_jkt", json!(jkt)));
    let other = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let e = validate_at(&t, &[("client_id", CLIENT), ("dpop_jkt", other)], p, now()).unwrap_err();
    assert_eq!(
        e.rule(),
        &RequestRule::ConflictingOuterParameter("dpop_jkt")
    );
    // outer-only: ignored
    let t = ro(ro_claims(p));
    let v = validate_at(&t, &[("client_id", CLIENT), ("dpop_jkt", other)], p, now()).unwrap();
    assert!(v.dpop_jkt().is_none());
}
