//! JARM: round trips for every response mode and algorithm, each rule's
//! negative test next to its happy twin, form-post escaping, expiry edges.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::{Arc, OnceLock};

use base64ct::Encoding as _;
use fapi_core::claims::ClaimError;
use fapi_core::client::{AuthMethod, ClientMetadata};
use fapi_core::crypto::{default_provider, Algorithm, SigningKey};
use fapi_core::jose::{sign_compact, JoseError};
use fapi_core::jwk::{Jwk, JwkSet, KeySet};
use fapi_core::request_object::{RequestValidator, ResponseMode, ValidatedAuthorizationRequest};
use fapi_core::UnixTime;
use fapi_core::{ClientId, CodeVerifier, Issuer, RedirectUri, State};
use fapi_core::{ErrorCode, Profile};
use fapi_jarm::{JarmError, JarmOutcome, JarmSigner, JarmVerifier, Rendered};
use serde_json::json;

const NOW: i64 = 1_900_000_000;
const ISSUER: &str = "https://bank.example";
const REDIRECT: &str = "https://tpp-a.example/cb?tenant=1&x=y";

fn at(o: i64) -> UnixTime {
    UnixTime::from_secs(NOW + o).unwrap()
}

struct Keys {
    client: Arc<dyn SigningKey>,
    bank: Vec<Arc<dyn SigningKey>>,
    attacker: Arc<dyn SigningKey>,
}

fn keys() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| {
        let p = default_provider();
        Keys {
            client: p.generate_signing_key(Algorithm::Es256).unwrap(),
            bank: Algorithm::ALL
                .iter()
                .map(|a| p.generate_signing_key(*a).unwrap())
                .collect(),
            attacker: p.generate_signing_key(Algorithm::Es256).unwrap(),
        }
    })
}

fn request(profile: Profile, extra: serde_json::Value) -> ValidatedAuthorizationRequest {
    let client = ClientMetadata::new(
        ClientId::try_from("tpp-a").unwrap(),
        AuthMethod::PrivateKeyJwt,
        vec![RedirectUri::try_from(REDIRECT).unwrap()],
        JwkSet::new(vec![Jwk::from_public_key(
            keys().client.public_key().clone(),
            Some("c".into()),
        )]),
        &*default_provider(),
        profile,
    )
    .unwrap();
    let mut claims = json!({
        "iss": "tpp-a", "aud": ISSUER, "client_id": "tpp-a", "nbf": NOW, "exp": NOW + 300,
        "response_type": "code", "redirect_uri": REDIRECT, "scope": "openid accounts", "nonce": "n-1",
        "state": "state-1", "code_challenge": CodeVerifier::generate().unwrap().challenge().as_str(), "code_challenge_method": "S256",
    });
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k); // null: leave the claim out
        } else {
            claims[k] = v.clone();
        }
    }
    let ro = sign_compact(
        &*keys().client,
        Some("c"),
        Some("oauth-authz-req+jwt"),
        claims.as_object().unwrap(),
    )
    .unwrap();
    let iss = Issuer::try_from(ISSUER).unwrap();
    RequestValidator::new(profile, iss.clone())
        .request_object(&ro, &[], &client, at(0))
        .unwrap()
}

fn bank_key(alg: Algorithm) -> Arc<dyn SigningKey> {
    keys()
        .bank
        .iter()
        .find(|k| k.algorithm() == alg)
        .unwrap()
        .clone()
}

fn signer(alg: Algorithm) -> JarmSigner {
    JarmSigner::new(
        bank_key(alg),
        format!("bank-{alg}"),
        Issuer::try_from(ISSUER).unwrap(),
    )
}

fn verifier_for(issuer: &str, client: &str) -> JarmVerifier {
    let jwks = JwkSet::new(
        keys()
            .bank
            .iter()
            .map(|k| {
                Jwk::from_public_key(
                    k.public_key().clone(),
                    Some(format!("bank-{}", k.algorithm())),
                )
            })
            .collect(),
    );
    let set = KeySet::from_jwks(
        &jwks,
        &*default_provider(),
        &Profile::Fapi2Security.key_policy(),
    )
    .unwrap();
    JarmVerifier::new(
        Arc::new(set),
        Issuer::try_from(issuer).unwrap(),
        ClientId::try_from(client).unwrap(),
        Profile::Fapi2Security.algorithms(),
    )
}

fn verifier() -> JarmVerifier {
    verifier_for(ISSUER, "tpp-a")
}

fn state() -> State {
    State::try_from("state-1").unwrap()
}

/// What the browser brings back to the TPP, as a URL the verifier can read.
fn delivered(r: &Rendered) -> String {
    match r {
        Rendered::Redirect { location } => location.clone(),
        Rendered::FormPost { html } => {
            let start = html.find("name=\"response\" value=\"").unwrap() + 23;
            let end = start + html[start..].find('"').unwrap();
            format!("https://tpp-a.example/cb?response={}", &html[start..end])
        }
        _ => unreachable!(),
    }
}

#[test]
fn round_trip_every_jarm_mode_and_algorithm() {
    for (mode, prefix) in [
        ("query.jwt", "?"),
        ("fragment.jwt", "#"),
        ("form_post.jwt", ""),
        ("jwt", "?"),
    ] {
        let req = request(
            Profile::Fapi2MessageSigning,
            json!({ "response_mode": mode }),
        );
        for alg in Algorithm::ALL {
            let resp =
                futures_executor::block_on(signer(alg).success(&req, "the-code", at(0))).unwrap();
            let rendered = resp.render().unwrap();
            match (&rendered, prefix) {
                (Rendered::Redirect { location }, p) => {
                    assert!(
                        location.starts_with("https://tpp-a.example/cb?tenant=1&x=y"),
                        "{location}"
                    );
                    assert!(
                        location.contains(&format!("{p}response="))
                            || location.contains("&response="),
                        "{mode}: {location}"
                    );
                }
                (Rendered::FormPost { html }, "") => assert!(html.contains("method=\"post\"")),
                other => panic!("{mode}: {other:?}"),
            }
            let out = verifier()
                .verify_redirect(&delivered(&rendered), Some(&state()), at(1))
                .unwrap();
            assert_eq!(out, JarmOutcome::Code("the-code".into()), "{mode} {alg}");
        }
    }
}

#[test]
fn jwt_mode_defaults_by_response_type() {
    let code = request(
        Profile::Fapi2MessageSigning,
        json!({ "response_mode": "jwt" }),
    );
    assert_eq!(
        futures_executor::block_on(signer(Algorithm::Es256).success(&code, "c", at(0)))
            .unwrap()
            .mode(),
        ResponseMode::QueryJwt
    );
    let hybrid = request(
        Profile::Fapi1Advanced,
        json!({ "response_type": "code id_token", "response_mode": "jwt" }),
    );
    assert_eq!(
        futures_executor::block_on(signer(Algorithm::Es256).success(&hybrid, "c", at(0)))
            .unwrap()
            .mode(),
        ResponseMode::FragmentJwt
    );
}

#[test]
fn error_response_round_trip() {
    let req = request(
        Profile::Fapi2MessageSigning,
        json!({ "response_mode": "query.jwt" }),
    );
    let resp = futures_executor::block_on(signer(Algorithm::Ps256).error(
        &req,
        ErrorCode::AccessDenied,
        "the customer declined",
        at(0),
    ))
    .unwrap();
    let out = verifier()
        .verify_redirect(&delivered(&resp.render().unwrap()), Some(&state()), at(1))
        .unwrap();
    assert_eq!(
        out,
        JarmOutcome::Error {
            error: "access_denied".into(),
            description: Some("the customer declined".into())
        }
    );
}

#[test]
fn plain_mode_carries_iss() {
    let req = request(Profile::Fapi2Security, json!({}));
    let Rendered::Redirect { location } =
        futures_executor::block_on(signer(Algorithm::Es256).success(&req, "c1", at(0)))
            .unwrap()
            .render()
            .unwrap()
    else {
        panic!()
    };
    let url = url::Url::parse(&location).unwrap();
    let q: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    for (k, v) in [
        ("code", "c1"),
        ("state", "state-1"),
        ("iss", ISSUER),
        ("tenant", "1"),
    ] {
        assert!(q.contains(&(k.into(), v.into())), "{k}");
    }
}

fn jarm_token(alg: Algorithm) -> String {
    let req = request(
        Profile::Fapi2MessageSigning,
        json!({ "response_mode": "query.jwt" }),
    );
    futures_executor::block_on(signer(alg).success(&req, "the-code", at(0)))
        .unwrap()
        .params()[0]
        .1
        .clone()
}

#[test]
fn tampered_response_rejected() {
    let t = jarm_token(Algorithm::Es256);
    let parts: Vec<&str> = t.split('.').collect();
    let forged_payload = base64ct::Base64UrlUnpadded::encode_string(
        json!({ "iss": ISSUER, "aud": "tpp-a", "exp": NOW + 300, "code": "attacker-code", "state": "state-1" }).to_string().as_bytes(),
    );
    let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    assert_eq!(
        verifier()
            .verify(&forged, Some(&state()), at(1))
            .unwrap_err(),
        JarmError::Jose(JoseError::BadSignature)
    );
    assert!(verifier().verify(&t, Some(&state()), at(1)).is_ok());
}

#[test]
fn response_from_another_issuer_rejected() {
    let t = jarm_token(Algorithm::Es256);
    assert_eq!(
        verifier_for("https://other-bank.example", "tpp-a")
            .verify(&t, Some(&state()), at(1))
            .unwrap_err(),
        JarmError::Claim(ClaimError::WrongIssuer)
    );
}

#[test]
fn response_for_another_client_rejected() {
    let t = jarm_token(Algorithm::Es256);
    assert_eq!(
        verifier_for(ISSUER, "tpp-b")
            .verify(&t, Some(&state()), at(1))
            .unwrap_err(),
        JarmError::Claim(ClaimError::WrongAudience)
    );
}

#[test]
fn expired_response_rejected_at_the_edge() {
    let t = jarm_token(Algorithm::Es256);
    assert!(verifier().verify(&t, Some(&state()), at(299)).is_ok());
    assert_eq!(
        verifier().verify(&t, Some(&state()), at(300)).unwrap_err(),
        JarmError::Claim(ClaimError::Expired {
            now: at(300),
            exp: at(300)
        })
    );
}

#[test]
fn unsigned_response_rejected() {
    let h = base64ct::Base64UrlUnpadded::encode_string(br#"{"alg":"none"}"#);
    let p = base64ct::Base64UrlUnpadded::encode_string(
        json!({ "iss": ISSUER, "aud": "tpp-a", "exp": NOW + 300, "code": "c", "state": "state-1" })
            .to_string()
            .as_bytes(),
    );
    assert_eq!(
        verifier()
            .verify(&format!("{h}.{p}."), Some(&state()), at(1))
            .unwrap_err(),
        JarmError::Jose(JoseError::AlgorithmNotPermitted)
    );
}

#[test]
fn response_signed_with_another_key_rejected() {
    let claims =
        json!({ "iss": ISSUER, "aud": "tpp-a", "exp": NOW + 300, "code": "c", "state": "state-1" });
    let t = sign_compact(
        &*keys().attacker,
        Some("bank-ES256"),
        None,
        claims.as_object().unwrap(),
    )
    .unwrap();
    assert_eq!(
        verifier().verify(&t, Some(&state()), at(1)).unwrap_err(),
        JarmError::Jose(JoseError::BadSignature)
    );
}

#[test]
fn swapped_or_missing_state_rejected() {
    let t = jarm_token(Algorithm::Es256);
    assert_eq!(
        verifier()
            .verify(&t, Some(&State::try_from("state-2").unwrap()), at(1))
            .unwrap_err(),
        JarmError::StateMismatch
    );
    assert_eq!(
        verifier().verify(&t, None, at(1)).unwrap_err(),
        JarmError::StateMismatch
    );
    // a request without state: the response has none, and one is not invented
    let stateless = request(
        Profile::Fapi2MessageSigning,
        json!({ "response_mode": "query.jwt", "state": null }),
    );
    let t = futures_executor::block_on(signer(Algorithm::Es256).success(&stateless, "c", at(0)))
        .unwrap()
        .params()[0]
        .1
        .clone();
    assert!(verifier().verify(&t, None, at(1)).is_ok());
    assert_eq!(
        verifier().verify(&t, Some(&state()), at(1)).unwrap_err(),
        JarmError::StateMismatch
    );
}

#[test]
fn response_with_both_or_neither_code_and_error_rejected() {
    for c in [
        json!({ "iss": ISSUER, "aud": "tpp-a", "exp": NOW + 300, "state": "state-1" }),
        json!({ "iss": ISSUER, "aud": "tpp-a", "exp": NOW + 300, "state": "state-1", "code": "c", "error": "access_denied" }),
    ] {
        let t = sign_compact(
            &*bank_key(Algorithm::Es256),
            Some("bank-ES256"),
            None,
            c.as_object().unwrap(),
        )
        .unwrap();
        assert_eq!(
            verifier().verify(&t, Some(&state()), at(1)).unwrap_err(),
            JarmError::Malformed
        );
    }
}

#[test]
fn redirect_without_exactly_one_response_rejected() {
    let t = jarm_token(Algorithm::Es256);
    for url in [
        "https://tpp-a.example/cb?code=abc&state=state-1".to_string(),
        format!("https://tpp-a.example/cb?response={t}#response={t}"),
        "not a url".to_string(),
    ] {
        assert_eq!(
            verifier()
                .verify_redirect(&url, Some(&state()), at(1))
                .unwrap_err(),
            JarmError::MissingResponse
        );
    }
    assert!(verifier()
        .verify_redirect(
            &format!("https://tpp-a.example/cb?response={t}"),
            Some(&state()),
            at(1)
        )
        .is_ok());
}

#[test]
fn form_post_escapes_everything_it_writes() {
    let req = request(
        Profile::Fapi2MessageSigning,
        json!({ "response_mode": "form_post", "state": "\"><script>alert(1)</script>" }),
    );
    let Rendered::FormPost { html } =
        futures_executor::block_on(signer(Algorithm::Es256).success(&req, "c", at(0)))
            .unwrap()
            .render()
            .unwrap()
    else {
        panic!()
    };
    assert!(!html.contains("<script>alert"));
    assert!(html.contains("&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("action=\"https://tpp-a.example/cb?tenant=1&amp;x=y\""));
    assert_eq!(
        html.matches("<script>").count(),
        1,
        "one inline script only"
    );
    assert!(html.contains("<noscript>"), "works without JavaScript");
    assert!(fapi_jarm::response::form_post_script_hash().starts_with("'sha256-"));
}

/// The escaper the form-post page uses (and servers reuse for their own
/// pages) turns each of the five characters HTML gives meaning to into an
/// entity, and leaves other text alone.
#[test]
fn html_escape_neutralises_markup_and_keeps_text() {
    assert_eq!(
        fapi_jarm::html_escape("<a href=\"x\" title='y'>&amp;</a>"),
        "&lt;a href=&quot;x&quot; title=&#x27;y&#x27;&gt;&amp;amp;&lt;/a&gt;"
    );
    assert_eq!(fapi_jarm::html_escape("Zürich 100 €"), "Zürich 100 €");
}

#[test]
fn lifetime_bounds() {
    assert!(signer(Algorithm::Es256).with_lifetime(9).is_none());
    assert!(signer(Algorithm::Es256).with_lifetime(601).is_none());
    let s = signer(Algorithm::Es256).with_lifetime(600).unwrap();
    let req = request(
        Profile::Fapi2MessageSigning,
        json!({ "response_mode": "query.jwt" }),
    );
    let t = futures_executor::block_on(s.success(&req, "c", at(0)))
        .unwrap()
        .params()[0]
        .1
        .clone();
    assert!(verifier().verify(&t, Some(&state()), at(599)).is_ok());
    assert!(verifier().verify(&t, Some(&state()), at(600)).is_err());
}

fn registered(redirects: &[&str]) -> ClientMetadata {
    ClientMetadata::new(
        ClientId::try_from("tpp-a").unwrap(),
        AuthMethod::PrivateKeyJwt,
        redirects
            .iter()
            .map(|r| RedirectUri::try_from(*r).unwrap())
            .collect(),
        JwkSet::default(),
        &*default_provider(),
        Profile::Fapi2MessageSigning,
    )
    .unwrap()
}

/// A used or expired `request_uri` beside a registered `client_id`: the
/// request is gone, the client is not. The error goes, signed, to the one
/// redirect URI the client registered (RFC 6749 §4.1.2.1), never to one
/// the request could have named.
#[test]
fn error_for_a_client_whose_request_is_gone_goes_to_its_one_registered_uri() {
    let resp = futures_executor::block_on(signer(Algorithm::Es256).error_for_client(
        &registered(&[REDIRECT]),
        ErrorCode::InvalidRequestUri,
        "the request_uri has already been used",
        at(0),
    ))
    .unwrap()
    .unwrap();
    let location = delivered(&resp.render().unwrap());
    assert!(
        location.starts_with(REDIRECT) && location.contains("&response="),
        "{location}"
    );
    // the TPP verifies it like any response; there is no state to match
    let out = verifier().verify_redirect(&location, None, at(1)).unwrap();
    assert_eq!(
        out,
        JarmOutcome::Error {
            error: "invalid_request_uri".into(),
            description: Some("the request_uri has already been used".into())
        }
    );
    // several registered URIs: which one is unknown, so no response
    assert!(
        futures_executor::block_on(signer(Algorithm::Es256).error_for_client(
            &registered(&[REDIRECT, "https://tpp-a.example/other"]),
            ErrorCode::InvalidRequestUri,
            "x",
            at(0),
        ))
        .unwrap()
        .is_none()
    );
    assert!(
        futures_executor::block_on(signer(Algorithm::Es256).error_for_client(
            &registered(&[]),
            ErrorCode::AccessDenied,
            "x",
            at(0)
        ))
        .unwrap()
        .is_none()
    );
}
