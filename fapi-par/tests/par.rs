//! The pushed-authorization flow end to end with real keys and signed
//! request objects, each rule's negative test next to its happy twin,
//! expiry probed at the edge, and single use under 1,000 racing threads.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::{Arc, Barrier, OnceLock};

use fapi_core::client::{AuthMethod, ClientMetadata};
use fapi_core::client_auth::{
    AssertionContext, Endpoint, UnverifiedClientAssertion, JWT_BEARER_ASSERTION_TYPE,
};
use fapi_core::crypto::{default_provider, Algorithm, SigningKey};
use fapi_core::jose::sign_compact;
use fapi_core::jwk::{Jwk, JwkSet};
use fapi_core::replay::InMemoryReplayCache;
use fapi_core::request_object::RequestRule;
use fapi_core::UnixTime;
use fapi_core::{AuthenticatedClient, ErrorCode, OAuthError, Profile};
use fapi_core::{ClientId, CodeVerifier, Issuer, RedirectUri};
use fapi_par::{
    InMemoryPushedRequestStore, LookupError, ParConfig, ParError, ParResponse, PushedRequestForm,
    PushedRequestStore, RequestUri,
};
use serde_json::json;

const NOW: i64 = 1_900_000_000;
const ISSUER: &str = "https://bank.example";
const PAR_URL: &str = "https://bank.example/par";

fn at(o: i64) -> UnixTime {
    UnixTime::from_secs(NOW + o).unwrap()
}

fn key() -> &'static Arc<dyn SigningKey> {
    static K: OnceLock<Arc<dyn SigningKey>> = OnceLock::new();
    K.get_or_init(|| {
        default_provider()
            .generate_signing_key(Algorithm::Es256)
            .unwrap()
    })
}

fn registration(id: &str, profile: Profile) -> ClientMetadata {
    ClientMetadata::new(
        ClientId::try_from(id).unwrap(),
        AuthMethod::PrivateKeyJwt,
        vec![RedirectUri::try_from(format!("https://{id}.example/cb").as_str()).unwrap()],
        JwkSet::new(vec![Jwk::from_public_key(
            key().public_key().clone(),
            Some("k".into()),
        )]),
        &*default_provider(),
        profile,
    )
    .unwrap()
}

/// Authenticates `id` the real way: a signed client assertion, verified,
/// jti recorded.
fn authenticated(id: &str, profile: Profile) -> AuthenticatedClient {
    let claims = json!({ "iss": id, "sub": id, "aud": ISSUER, "jti": format!("j-{id}-{:?}", std::thread::current().id()), "iat": NOW, "exp": NOW + 60 });
    let assertion = sign_compact(&**key(), Some("k"), None, claims.as_object().unwrap()).unwrap();
    let issuer = Issuer::try_from(ISSUER).unwrap();
    let ctx = AssertionContext::new(profile, &issuer, Endpoint::PushedAuthorization(PAR_URL));
    let pending = UnverifiedClientAssertion::parse(JWT_BEARER_ASSERTION_TYPE, &assertion, Some(id))
        .unwrap()
        .verify(&Arc::new(registration(id, profile)), &ctx, at(0))
        .unwrap();
    futures_executor::block_on(pending.record_jti(&InMemoryReplayCache::new(10), at(0))).unwrap()
}

fn request_object(id: &str, exp_offset: i64) -> String {
    let claims = json!({
        "iss": id, "aud": ISSUER, "client_id": id, "nbf": NOW, "exp": NOW + exp_offset,
        "response_type": "code", "redirect_uri": format!("https://{id}.example/cb"), "scope": "openid accounts",
        "state": "s", "code_challenge": CodeVerifier::generate().unwrap().challenge().as_str(), "code_challenge_method": "S256",
    });
    sign_compact(
        &**key(),
        Some("k"),
        Some("oauth-authz-req+jwt"),
        claims.as_object().unwrap(),
    )
    .unwrap()
}

fn form_for(id: &str, exp_offset: i64) -> PushedRequestForm {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", id)
        .append_pair("request", &request_object(id, exp_offset))
        .append_pair("client_assertion_type", JWT_BEARER_ASSERTION_TYPE)
        .append_pair("client_assertion", "already-verified")
        .finish();
    PushedRequestForm::parse(body.as_bytes()).unwrap()
}

fn config(profile: Profile) -> ParConfig {
    ParConfig::new(profile, Issuer::try_from(ISSUER).unwrap())
}

fn do_push(
    id: &str,
    form: &PushedRequestForm,
    profile: Profile,
    store: &dyn PushedRequestStore,
) -> Result<ParResponse, ParError> {
    futures_executor::block_on(config(profile).push(
        form,
        &authenticated(id, profile),
        store,
        at(0),
    ))
}

fn b<F: std::future::Future>(f: F) -> F::Output {
    futures_executor::block_on(f)
}

fn client(id: &str) -> ClientId {
    ClientId::try_from(id).unwrap()
}

#[test]
fn happy_push_peek_reload_take() {
    let store = InMemoryPushedRequestStore::new(100);
    let r = do_push(
        "tpp-a",
        &form_for("tpp-a", 300),
        Profile::Fapi2MessageSigning,
        &store,
    )
    .unwrap();
    assert_eq!(r.expires_in, 60);
    assert_eq!(
        serde_json::to_string(&r).unwrap(),
        format!(r#"{{"request_uri":"{}","expires_in":60}}"#, r.request_uri)
    );
    assert_eq!(ParResponse::STATUS, 201);
    let uri = RequestUri::parse(&r.request_uri).unwrap();
    for _ in 0..3 {
        let p = b(store.peek(&uri, &client("tpp-a"), at(10))).unwrap();
        assert_eq!(
            p.request.redirect_uri().as_str(),
            "https://tpp-a.example/cb"
        );
    }
    assert!(b(store.take(&uri, &client("tpp-a"), at(20))).is_ok());
}

#[test]
fn request_uri_reuse_after_completion_rejected() {
    let store = InMemoryPushedRequestStore::new(100);
    let r = do_push(
        "tpp-a",
        &form_for("tpp-a", 300),
        Profile::Fapi2MessageSigning,
        &store,
    )
    .unwrap();
    let uri = RequestUri::parse(&r.request_uri).unwrap();
    b(store.take(&uri, &client("tpp-a"), at(1))).unwrap();
    let e = b(store.take(&uri, &client("tpp-a"), at(2))).unwrap_err();
    assert_eq!(e, LookupError::AlreadyUsed);
    assert_eq!(e.error_code(), ErrorCode::InvalidRequestUri);
}

#[test]
fn request_uri_of_another_client_rejected() {
    let store = InMemoryPushedRequestStore::new(100);
    let r = do_push(
        "tpp-a",
        &form_for("tpp-a", 300),
        Profile::Fapi2MessageSigning,
        &store,
    )
    .unwrap();
    let uri = RequestUri::parse(&r.request_uri).unwrap();
    assert_eq!(
        b(store.peek(&uri, &client("tpp-b"), at(1))).unwrap_err(),
        LookupError::WrongClient
    );
    assert_eq!(
        b(store.take(&uri, &client("tpp-b"), at(1))).unwrap_err(),
        LookupError::WrongClient
    );
    // the attempt consumed nothing
    assert!(b(store.take(&uri, &client("tpp-a"), at(1))).is_ok());
}

#[test]
fn request_uri_expiry_edge() {
    let store = InMemoryPushedRequestStore::new(100);
    let r = do_push(
        "tpp-a",
        &form_for("tpp-a", 300),
        Profile::Fapi2MessageSigning,
        &store,
    )
    .unwrap();
    let uri = RequestUri::parse(&r.request_uri).unwrap();
    assert!(b(store.peek(&uri, &client("tpp-a"), at(59))).is_ok());
    assert_eq!(
        b(store.take(&uri, &client("tpp-a"), at(60))).unwrap_err(),
        LookupError::Expired
    );
}

#[test]
fn lifetime_never_outlives_the_request_object() {
    let store = InMemoryPushedRequestStore::new(100);
    let r = do_push(
        "tpp-a",
        &form_for("tpp-a", 30),
        Profile::Fapi2MessageSigning,
        &store,
    )
    .unwrap();
    assert_eq!(r.expires_in, 30);
}

#[test]
fn lifetime_configurable_only_below_600_seconds() {
    assert!(config(Profile::Fapi2Security)
        .with_expires_in(599)
        .is_some());
    assert!(config(Profile::Fapi2Security)
        .with_expires_in(600)
        .is_none());
    assert!(config(Profile::Fapi2Security).with_expires_in(4).is_none());
}

#[test]
fn unknown_request_uri_rejected() {
    let store = InMemoryPushedRequestStore::new(100);
    let uri = RequestUri::generate().unwrap();
    assert_eq!(
        b(store.peek(&uri, &client("tpp-a"), at(0))).unwrap_err(),
        LookupError::Unknown
    );
}

#[test]
fn client_id_of_another_client_rejected() {
    let store = InMemoryPushedRequestStore::new(100);
    let form = form_for("tpp-a", 300);
    let e = b(config(Profile::Fapi2MessageSigning).push(
        &form,
        &authenticated("tpp-b", Profile::Fapi2MessageSigning),
        &store,
        at(0),
    ))
    .unwrap_err();
    assert_eq!(e, ParError::ConflictingClientIds);
    assert_eq!(e.error_code(), ErrorCode::InvalidClient);
}

/// The registration that validates the request is the one the client
/// authenticated against: a request object signed for another client is
/// refused even when the body names no `client_id` to compare.
#[test]
fn request_of_another_client_rejected_without_client_id_parameter() {
    let store = InMemoryPushedRequestStore::new(100);
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("request", &request_object("tpp-b", 300))
        .finish();
    let form = PushedRequestForm::parse(body.as_bytes()).unwrap();
    let e = b(config(Profile::Fapi2MessageSigning).push(
        &form,
        &authenticated("tpp-a", Profile::Fapi2MessageSigning),
        &store,
        at(0),
    ))
    .unwrap_err();
    assert!(
        matches!(&e, ParError::Request(r) if r.rule() == &RequestRule::IssuerNotClient),
        "{e:?}"
    );
    // the twin: the same body pushed by the client it was signed for
    let ok = b(config(Profile::Fapi2MessageSigning).push(
        &form,
        &authenticated("tpp-b", Profile::Fapi2MessageSigning),
        &store,
        at(0),
    ));
    assert!(ok.is_ok(), "{ok:?}");
}

#[test]
fn invalid_request_object_rejected_with_its_code() {
    let store = InMemoryPushedRequestStore::new(100);
    // a request object claiming a redirect_uri that is not registered
    let claims = json!({ "iss": "tpp-a", "aud": ISSUER, "client_id": "tpp-a", "nbf": NOW, "exp": NOW + 300,
        "response_type": "code", "redirect_uri": "https://attacker.example/cb",
        "code_challenge": CodeVerifier::generate().unwrap().challenge().as_str(), "code_challenge_method": "S256" });
    let ro = sign_compact(
        &**key(),
        Some("k"),
        Some("oauth-authz-req+jwt"),
        claims.as_object().unwrap(),
    )
    .unwrap();
    let body = format!("client_id=tpp-a&request={ro}");
    let e = do_push(
        "tpp-a",
        &PushedRequestForm::parse(body.as_bytes()).unwrap(),
        Profile::Fapi2MessageSigning,
        &store,
    )
    .unwrap_err();
    assert!(
        matches!(&e, ParError::Request(r) if r.rule() == &RequestRule::UnregisteredRedirectUri)
    );
    assert_eq!(e.error_code(), ErrorCode::InvalidRequest);
}

fn plain_form() -> PushedRequestForm {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", "tpp-a")
        .append_pair("response_type", "code")
        .append_pair("redirect_uri", "https://tpp-a.example/cb")
        .append_pair(
            "code_challenge",
            CodeVerifier::generate().unwrap().challenge().as_str(),
        )
        .append_pair("code_challenge_method", "S256")
        .finish();
    PushedRequestForm::parse(body.as_bytes()).unwrap()
}

#[test]
fn plain_parameters_allowed_only_in_fapi2_security_profile() {
    let store = InMemoryPushedRequestStore::new(100);
    assert!(do_push("tpp-a", &plain_form(), Profile::Fapi2Security, &store).is_ok());
    for p in [Profile::Fapi1Advanced, Profile::Fapi2MessageSigning] {
        let e = do_push("tpp-a", &plain_form(), p, &store).unwrap_err();
        assert!(
            matches!(&e, ParError::Request(r) if r.rule() == &RequestRule::SignedRequestObjectRequired),
            "{p:?}"
        );
    }
}

#[test]
fn in_memory_store_passes_the_conformance_kit() {
    let store = InMemoryPushedRequestStore::new(10_000);
    let sample = {
        let staging = InMemoryPushedRequestStore::new(10);
        let r = do_push(
            "tpp-a",
            &form_for("tpp-a", 300),
            Profile::Fapi2MessageSigning,
            &staging,
        )
        .unwrap();
        let uri = RequestUri::parse(&r.request_uri).unwrap();
        b(staging.take(&uri, &client("tpp-a"), at(0))).unwrap()
    };
    b(fapi_par::testing::pushed_request_store_conformance(
        &store,
        sample,
        &client("tpp-b"),
    ))
    .unwrap();
}

#[test]
fn take_race_1000_threads_exactly_one_wins() {
    let store = Arc::new(InMemoryPushedRequestStore::new(100));
    let r = do_push(
        "tpp-a",
        &form_for("tpp-a", 300),
        Profile::Fapi2MessageSigning,
        &*store,
    )
    .unwrap();
    let uri = Arc::new(RequestUri::parse(&r.request_uri).unwrap());
    let barrier = Arc::new(Barrier::new(1000));
    let handles: Vec<_> = (0..1000)
        .map(|_| {
            let (store, uri, barrier) = (store.clone(), uri.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                b(store.take(&uri, &client("tpp-a"), at(1)))
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert_eq!(
        results
            .iter()
            .filter(|r| matches!(r, Err(LookupError::AlreadyUsed)))
            .count(),
        999
    );
}

#[test]
fn store_capacity_fails_closed() {
    let store = InMemoryPushedRequestStore::new(1);
    do_push(
        "tpp-a",
        &form_for("tpp-a", 300),
        Profile::Fapi2MessageSigning,
        &store,
    )
    .unwrap();
    let e = do_push(
        "tpp-a",
        &form_for("tpp-a", 300),
        Profile::Fapi2MessageSigning,
        &store,
    )
    .unwrap_err();
    assert!(matches!(e, ParError::Store(_)));
    assert_eq!(e.error_code(), ErrorCode::ServerError);
}

fn pushed_sample() -> fapi_par::PushedRequest {
    let staging = InMemoryPushedRequestStore::new(10);
    let r = do_push(
        "tpp-a",
        &form_for("tpp-a", 300),
        Profile::Fapi2MessageSigning,
        &staging,
    )
    .unwrap();
    let uri = RequestUri::parse(&r.request_uri).unwrap();
    b(staging.take(&uri, &client("tpp-a"), at(0))).unwrap()
}

#[test]
fn source_revalidates_to_the_same_request() {
    let pushed = pushed_sample();
    assert_eq!(pushed.source.pushed_at, at(0));
    let again = config(Profile::Fapi2MessageSigning)
        .revalidate(
            &pushed.source,
            &registration("tpp-a", Profile::Fapi2MessageSigning),
        )
        .unwrap();
    assert_eq!(again.client_id(), pushed.request.client_id());
    assert_eq!(again.redirect_uri(), pushed.request.redirect_uri());
    assert_eq!(again.code_challenge(), pushed.request.code_challenge());
    assert_eq!(
        again.request_object_sha256(),
        pushed.request.request_object_sha256()
    );
}

#[test]
fn altered_source_does_not_revalidate() {
    let pushed = pushed_sample();
    let mut source = (*pushed.source).clone();
    for (k, v) in &mut source.parameters {
        if k == "request" {
            // one character of the signature changed
            let last = v.pop().unwrap();
            v.push(if last == 'A' { 'B' } else { 'A' });
        }
    }
    assert!(config(Profile::Fapi2MessageSigning)
        .revalidate(
            &source,
            &registration("tpp-a", Profile::Fapi2MessageSigning)
        )
        .is_err());
}

#[test]
fn source_does_not_revalidate_against_another_clients_registration() {
    let pushed = pushed_sample();
    // same key, other client: the request object names tpp-a
    assert!(config(Profile::Fapi2MessageSigning)
        .revalidate(
            &pushed.source,
            &registration("tpp-b", Profile::Fapi2MessageSigning)
        )
        .is_err());
}

/// `ParConfig::validate` then `store` is `ParConfig::push`, with room for the caller's own
/// policy on the validated request in between.
#[test]
fn validation_and_storage_are_separable() {
    let store = InMemoryPushedRequestStore::new(100);
    let validated = config(Profile::Fapi2MessageSigning)
        .validate(
            &form_for("tpp-a", 300),
            &authenticated("tpp-a", Profile::Fapi2MessageSigning),
            at(0),
        )
        .unwrap();
    assert_eq!(validated.request().client_id().as_str(), "tpp-a");
    let r = b(validated.store(&store, at(0))).unwrap();
    assert_eq!(r.expires_in, 60);
    let uri = RequestUri::parse(&r.request_uri).unwrap();
    assert!(b(store.peek(&uri, &client("tpp-a"), at(1))).is_ok());
    // the same rules as push: a client_id naming another client is refused
    assert_eq!(
        config(Profile::Fapi2MessageSigning)
            .validate(
                &form_for("tpp-a", 300),
                &authenticated("tpp-b", Profile::Fapi2MessageSigning),
                at(0)
            )
            .unwrap_err(),
        fapi_par::ParError::ConflictingClientIds
    );
}
