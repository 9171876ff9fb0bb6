//! Handler-level tests with `tower::ServiceExt::oneshot`: the error shapes a
//! TPP developer reads (RFC 6749 §5.2 on the OAuth endpoints, UK OB
//! `OBErrorResponse1` on the resources), the discovery metadata, and the
//! headers every answer carries. The connection's certificate is supplied
//! as the TLS accept loop would.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::TempDir;
use fapi_core::client::ClientMetadata;
use fapi_core::crypto::{default_provider, Algorithm, SigningKey};
use fapi_core::jose::sign_compact;
use fapi_core::jwk::{Jwk, JwkSet};
use fapi_core::ClientId;
use fapi_core::Profile;
use fapi_core::{Clock, SystemClock};
use fapi_examples::bank::tls::ConnectionInfo;
use fapi_examples::bank::{build, BankApps, BankConfig};
use fapi_examples::pki::{DevPki, FileKeySource, KeySource};
use fapi_examples::registry::{onboard, verify_software_statement, MetadataCache};
use fapi_mtls_binding::ClientCertificate;
use serde_json::{json, Value};
use tower::ServiceExt;

const ISSUER: &str = "https://localhost:9444";
const API: &str = "https://localhost:9443";

struct Fixture {
    _dir: TempDir,
    /// The clock the bank reads (tests move it forward).
    clock: Arc<fapi_examples::bank::OffsetClock>,
    apps: BankApps,
    pki: DevPki,
    keys: FileKeySource,
}

fn fixture() -> Fixture {
    fixture_with(|_| {})
}

fn fixture_with(adjust: impl FnOnce(&mut BankConfig)) -> Fixture {
    let dir = TempDir::new("handlers");
    let provider = default_provider();
    let pki = DevPki::generate(&dir.0, &*provider, &["tpp-a"], SystemClock.now()).unwrap();
    let mut config = BankConfig::development(&dir.0);
    adjust(&mut config);
    let clock = Arc::new(fapi_examples::bank::OffsetClock::default());
    let apps = build(&config, clock.clone(), ISSUER, API).unwrap();
    let profile = config.profile().unwrap();
    let files = &pki.tpps[0];
    let registration = verify_software_statement(
        &std::fs::read_to_string(&files.software_statement).unwrap(),
        &config.directory_keys(&*provider).unwrap(),
        &config.directory_issuer,
        profile,
        SystemClock.now(),
    )
    .unwrap();
    let cert =
        ClientCertificate::from_pem(&std::fs::read_to_string(&files.certificate).unwrap()).unwrap();
    futures_executor::block_on(onboard(
        &apps.registry(),
        &registration,
        &cert,
        &apps.trust,
        &*provider,
        profile,
        SystemClock.now(),
    ))
    .unwrap();
    let keys = FileKeySource::new(&dir.0, provider);
    Fixture {
        _dir: dir,
        clock,
        apps,
        pki,
        keys,
    }
}

impl Fixture {
    fn connection(&self, with_certificate: bool) -> ConnectionInfo {
        self.connection_from(with_certificate, "127.0.0.1:40000")
    }

    fn connection_from(&self, with_certificate: bool, remote: &str) -> ConnectionInfo {
        let cert = ClientCertificate::from_pem(
            &std::fs::read_to_string(&self.pki.tpps[0].certificate).unwrap(),
        )
        .unwrap();
        ConnectionInfo::new(
            with_certificate.then(|| Arc::new(cert.der().to_vec())),
            remote.parse().unwrap(),
        )
    }

    fn assertion(&self) -> String {
        self.assertion_by(&*self.keys.signing_key("tpp-a-signing").unwrap())
    }

    fn assertion_by(&self, key: &dyn SigningKey) -> String {
        let now = SystemClock.now().as_secs();
        let claims = json!({ "iss": "tpp-a", "sub": "tpp-a", "aud": ISSUER, "jti": fapi_core::random::token(16).unwrap(), "iat": now, "exp": now + 60 });
        sign_compact(
            key,
            Some("tpp-a-signing"),
            None,
            claims.as_object().unwrap(),
        )
        .unwrap()
    }

    fn authenticated_form(&self, extra: &[(&str, &str)]) -> String {
        form_with_assertion(&self.assertion(), extra)
    }

    /// Calls `router` with `req` as the accept loop would hand it over.
    async fn call(
        &self,
        router: &axum::Router,
        req: Request<Body>,
        with_certificate: bool,
    ) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let mut req = req;
        req.extensions_mut()
            .insert(self.connection(with_certificate));
        let r = router.clone().oneshot(req).await.unwrap();
        let status = r.status();
        let headers = r.headers().clone();
        let body = axum::body::to_bytes(r.into_body(), 1 << 20)
            .await
            .unwrap()
            .to_vec();
        (status, headers, body)
    }

    async fn api(
        &self,
        req: Request<Body>,
        with_certificate: bool,
    ) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        self.call(&self.apps.api, req, with_certificate).await
    }

    async fn customer(&self, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        self.call(&self.apps.customer, req, false).await
    }

    async fn client_credentials(&self, scope: &str) -> String {
        let (status, _, body) = self
            .api(
                form(
                    "/token",
                    self.authenticated_form(&[
                        ("grant_type", "client_credentials"),
                        ("scope", scope),
                    ]),
                ),
                true,
            )
            .await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let v: Value = serde_json::from_slice(&body).unwrap();
        v["access_token"].as_str().unwrap().to_owned()
    }
}

/// A `private_key_jwt` form for `tpp-a` carrying `assertion`, plus `extra`.
fn form_with_assertion(assertion: &str, extra: &[(&str, &str)]) -> String {
    let mut f = url::form_urlencoded::Serializer::new(String::new());
    f.append_pair("client_id", "tpp-a")
        .append_pair(
            "client_assertion_type",
            fapi_core::client_auth::JWT_BEARER_ASSERTION_TYPE,
        )
        .append_pair("client_assertion", assertion);
    for (k, v) in extra {
        f.append_pair(k, v);
    }
    f.finish()
}

fn form(path: &str, body: String) -> Request<Body> {
    Request::post(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap()
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap()
}

fn assert_ob_error(body: &[u8], code: &str) {
    let v = json_of(body);
    assert!(v["Code"].is_string(), "{v}");
    assert_eq!(v["Id"].as_str().unwrap().len(), 36, "{v}");
    assert!(v["Message"].is_string(), "{v}");
    assert_eq!(v["Errors"][0]["ErrorCode"], code, "{v}");
    assert!(v["Errors"][0]["Message"].is_string(), "{v}");
}

#[tokio::test]
async fn token_endpoint_errors_are_rfc6749_bodies_and_never_cached() {
    let f = fixture();
    // no certificate on the connection
    let (status, headers, body) = f
        .api(
            form(
                "/token",
                f.authenticated_form(&[
                    ("grant_type", "client_credentials"),
                    ("scope", "accounts"),
                ]),
            ),
            false,
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(headers["cache-control"], "no-store");
    let v = json_of(&body);
    assert_eq!(v["error"], "invalid_client");
    assert!(v["error_description"]
        .as_str()
        .unwrap()
        .contains("certificate"));
    // no client authentication at all
    let (status, _, body) = f
        .api(
            form(
                "/token",
                "grant_type=client_credentials&scope=accounts".into(),
            ),
            true,
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(json_of(&body)["error"], "invalid_client");
    // an unknown grant type, after authenticating
    let (status, _, body) = f
        .api(
            form(
                "/token",
                f.authenticated_form(&[("grant_type", "password")]),
            ),
            true,
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(json_of(&body)["error"], "unsupported_grant_type");
    // a repeated parameter
    let (status, _, body) = f
        .api(
            form(
                "/token",
                f.authenticated_form(&[
                    ("grant_type", "client_credentials"),
                    ("grant_type", "client_credentials"),
                ]),
            ),
            true,
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(json_of(&body)["error"], "invalid_request");
    // a scope outside the directory roles
    let (status, _, body) = f
        .api(
            form(
                "/token",
                f.authenticated_form(&[("grant_type", "client_credentials"), ("scope", "admin")]),
            ),
            true,
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(json_of(&body)["error"], "invalid_scope");
    // the happy twin
    assert!(!f.client_credentials("accounts payments").await.is_empty());
}

#[tokio::test]
async fn client_assertion_replay_is_refused() {
    let f = fixture();
    let body = f.authenticated_form(&[("grant_type", "client_credentials"), ("scope", "accounts")]);
    let (first, _, _) = f.api(form("/token", body.clone()), true).await;
    assert_eq!(first, 200);
    let (second, _, b) = f.api(form("/token", body), true).await;
    assert_eq!(second, 401);
    assert_eq!(json_of(&b)["error"], "invalid_client");
}

#[tokio::test]
async fn a_rotated_client_key_replaces_the_old_one_on_the_next_call() {
    let f = fixture();
    let old_key = f.keys.signing_key("tpp-a-signing").unwrap();
    let client_credentials = |assertion: &str| {
        form(
            "/token",
            form_with_assertion(
                assertion,
                &[("grant_type", "client_credentials"), ("scope", "accounts")],
            ),
        )
    };
    // the registered key authenticates (and the client's metadata is built)
    let (status, _, _) = f.api(client_credentials(&f.assertion()), true).await;
    assert_eq!(status, 200);
    // re-registration with a new key under the same kid
    let new_key = default_provider()
        .generate_signing_key(Algorithm::Ps256)
        .unwrap();
    let mut current = f
        .apps
        .registry()
        .client(&ClientId::try_from("tpp-a").unwrap())
        .await
        .unwrap()
        .unwrap();
    current.registration.jwks = JwkSet::new(vec![Jwk::from_public_key(
        new_key.public_key().clone(),
        Some("tpp-a-signing".into()),
    )])
    .to_json();
    f.apps
        .registry()
        .register(
            &current.registration,
            &current.certificate,
            SystemClock.now(),
        )
        .await
        .unwrap();
    // the old key is refused on the very next call
    let (status, _, body) = f
        .api(client_credentials(&f.assertion_by(&*old_key)), true)
        .await;
    assert_eq!(status, 401);
    assert_eq!(json_of(&body)["error"], "invalid_client");
    // the happy twin: the new key is accepted
    let (status, _, body) = f
        .api(client_credentials(&f.assertion_by(&*new_key)), true)
        .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
}

#[test]
fn client_metadata_is_built_once_per_registration() {
    let provider = default_provider();
    let cache = MetadataCache::new(provider.clone(), Profile::Fapi2MessageSigning);
    let key_a = provider.generate_signing_key(Algorithm::Es256).unwrap();
    let key_b = provider.generate_signing_key(Algorithm::Es256).unwrap();
    let registered = common::registration("tpp-a", &*key_a);
    let first = cache.metadata(&registered).unwrap();
    // an equal registration (as read again from the database) reuses it
    assert!(Arc::ptr_eq(
        &first,
        &cache.metadata(&registered.clone()).unwrap()
    ));
    // a changed registration is built anew, with its own keys
    let rotated = common::registration("tpp-a", &*key_b);
    let second = cache.metadata(&rotated).unwrap();
    assert!(!Arc::ptr_eq(&first, &second));
    let thumbprints = |m: &ClientMetadata| -> Vec<_> {
        m.keys().entries().iter().map(|e| e.thumbprint()).collect()
    };
    assert_ne!(thumbprints(&first), thumbprints(&second));
    // an unusable registration is an error and is not remembered
    let mut unusable = rotated.clone();
    unusable.redirect_uris.clear();
    assert!(cache.metadata(&unusable).is_err());
    assert!(Arc::ptr_eq(&second, &cache.metadata(&rotated).unwrap()));
}

#[tokio::test]
async fn par_errors_are_rfc6749_bodies() {
    let f = fixture();
    let (status, headers, body) = f
        .api(
            form(
                "/par",
                f.authenticated_form(&[("response_type", "code"), ("response_type", "code")]),
            ),
            true,
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(json_of(&body)["error"], "invalid_request");
    // no request object under FAPI 2 message signing
    let (status, _, body) = f
        .api(
            form(
                "/par",
                f.authenticated_form(&[("response_type", "code"), ("scope", "openid")]),
            ),
            true,
        )
        .await;
    assert_eq!(status, 400);
    assert!(json_of(&body)["error"]
        .as_str()
        .unwrap()
        .starts_with("invalid_request"));
}

#[tokio::test]
async fn resource_errors_are_ob_error_responses_with_a_bearer_challenge() {
    let f = fixture();
    let (status, headers, body) = f
        .api(
            Request::get("/open-banking/v3.1/aisp/accounts")
                .body(Body::empty())
                .unwrap(),
            true,
        )
        .await;
    assert_eq!(status, 401);
    assert!(headers["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer error=\"invalid_token\""));
    assert_ob_error(&body, "UK.OBIE.Unauthorized");
    assert_eq!(json_of(&body)["Code"], "401 Unauthorized");

    // a client-credentials token has no consent: the gate refuses it
    let cc = f.client_credentials("accounts").await;
    let (status, _, body) = f
        .api(
            Request::get("/open-banking/v3.1/aisp/accounts")
                .header("authorization", format!("Bearer {cc}"))
                .body(Body::empty())
                .unwrap(),
            true,
        )
        .await;
    assert_eq!(status, 403);
    assert_ob_error(&body, "UK.OBIE.Resource.InvalidConsentStatus");

    // the same token without the certificate it is bound to
    let (status, _, body) = f
        .api(
            Request::get("/open-banking/v3.1/aisp/accounts")
                .header("authorization", format!("Bearer {cc}"))
                .body(Body::empty())
                .unwrap(),
            false,
        )
        .await;
    assert_eq!(status, 401);
    assert_ob_error(&body, "UK.OBIE.Unauthorized");
}

#[tokio::test]
async fn consent_creation_validates_the_body_and_payment_calls_need_a_signature() {
    let f = fixture();
    let cc = f.client_credentials("accounts payments").await;
    let post = |path: &str, body: &str| {
        Request::post(path)
            .header("authorization", format!("Bearer {cc}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap()
    };
    let (status, _, body) = f
        .api(
            post(
                "/open-banking/v3.1/aisp/account-access-consents",
                r#"{"Data":{"Permissions":["ReadEverything"]},"Risk":{}}"#,
            ),
            true,
        )
        .await;
    assert_eq!(status, 400);
    assert_ob_error(&body, "UK.OBIE.Field.Invalid");
    let (status, _, body) = f
        .api(
            post(
                "/open-banking/v3.1/aisp/account-access-consents",
                r#"{"Data":{"Permissions":["ReadBalances"]},"Data":{}}"#,
            ),
            true,
        )
        .await;
    assert_eq!(status, 400, "duplicate members are refused");
    assert_ob_error(&body, "UK.OBIE.Resource.InvalidFormat");
    let (status, _, body) = f
        .api(
            post(
                "/open-banking/v3.1/aisp/account-access-consents",
                r#"{"Data":{"Permissions":["ReadAccountsBasic"]},"Risk":{}}"#,
            ),
            true,
        )
        .await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    assert_eq!(json_of(&body)["Data"]["Status"], "AwaitingAuthorisation");

    let (status, _, body) = f
        .api(
            post(
                "/open-banking/v3.1/pisp/domestic-payment-consents",
                r#"{"Data":{"Initiation":{}},"Risk":{}}"#,
            ),
            true,
        )
        .await;
    assert_eq!(status, 400);
    assert_ob_error(&body, "UK.OBIE.Signature.Missing");
}

#[tokio::test]
async fn discovery_advertises_the_fapi_metadata() {
    let f = fixture();
    let (status, _, body) = f
        .customer(
            Request::get("/.well-known/openid-configuration")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, 200);
    let d = json_of(&body);
    assert_eq!(d["issuer"], ISSUER);
    assert_eq!(d["require_pushed_authorization_requests"], true);
    assert_eq!(d["tls_client_certificate_bound_access_tokens"], true);
    assert_eq!(d["authorization_response_iss_parameter_supported"], true);
    assert_eq!(
        d["pushed_authorization_request_endpoint"],
        format!("{API}/par")
    );
    assert_eq!(d["token_endpoint"], format!("{API}/token"));
    for (name, path) in [
        ("introspection_endpoint", "/introspect"),
        ("revocation_endpoint", "/revoke"),
        ("userinfo_endpoint", "/userinfo"),
    ] {
        assert_eq!(d[name], format!("{API}{path}"), "{name}");
        assert_eq!(d["mtls_endpoint_aliases"][name], format!("{API}{path}"));
    }
    assert_eq!(
        d["introspection_endpoint_auth_methods_supported"],
        json!(["private_key_jwt", "tls_client_auth"])
    );
    assert_eq!(d["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(
        d["token_endpoint_auth_methods_supported"],
        json!(["private_key_jwt", "tls_client_auth"])
    );
    assert!(d["response_modes_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("jwt")));
    let algs = d["request_object_signing_alg_values_supported"]
        .as_array()
        .unwrap();
    assert!(
        algs.contains(&json!("PS256"))
            && !algs.contains(&json!("RS256"))
            && !algs.contains(&json!("none"))
    );
    let (status, _, body) = f
        .customer(Request::get("/jwks").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, 200);
    assert_eq!(json_of(&body)["keys"][0]["kid"], "bank-signing");
    assert!(
        json_of(&body)["keys"][0].get("d").is_none(),
        "no private part"
    );
}

/// No open redirect: an unknown `request_uri` under an unknown client is
/// an error page; under a registered client it is a signed error to that
/// client's registered redirect URI, and nowhere else.
#[tokio::test]
async fn authorize_errors_redirect_only_to_a_registered_client() {
    let f = fixture();
    let uri =
        "request_uri=urn:ietf:params:oauth:request_uri:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let (status, headers, body) = f
        .customer(
            Request::get(format!(
                "/authorize?client_id=nobody&{uri}&redirect_uri=https://evil.example/"
            ))
            .body(Body::empty())
            .unwrap(),
        )
        .await;
    assert_eq!(status, 400);
    assert!(headers.get("location").is_none());
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
    assert!(String::from_utf8_lossy(&body).contains("cannot be completed"));
    let (status, headers, _) = f
        .customer(
            Request::get(format!(
                "/authorize?client_id=tpp-a&{uri}&redirect_uri=https://evil.example/"
            ))
            .body(Body::empty())
            .unwrap(),
        )
        .await;
    assert_eq!(status, 303);
    let location = headers["location"].to_str().unwrap();
    assert!(
        location.starts_with("https://tpp-a.example/cb?response="),
        "{location}"
    );
}

#[tokio::test]
async fn interaction_id_is_echoed_when_a_uuid_and_minted_otherwise() {
    let f = fixture();
    let sent = "0b9d5f3a-1c2e-4f6a-8b7c-9d0e1f2a3b4c";
    let (_, headers, _) = f
        .api(
            Request::get("/jwks")
                .header("x-fapi-interaction-id", sent)
                .body(Body::empty())
                .unwrap(),
            true,
        )
        .await;
    assert_eq!(headers["x-fapi-interaction-id"], sent);
    let (_, headers, _) = f
        .api(
            Request::get("/jwks")
                .header("x-fapi-interaction-id", "<script>")
                .body(Body::empty())
                .unwrap(),
            true,
        )
        .await;
    let minted = headers["x-fapi-interaction-id"].to_str().unwrap();
    assert_ne!(minted, "<script>");
    assert_eq!(minted.len(), 36);
}

fn assert_oauth_error(headers: &axum::http::HeaderMap, body: &[u8], code: &str) {
    assert_eq!(headers["content-type"], "application/json", "{headers:?}");
    assert_eq!(headers["cache-control"], "no-store");
    let v = json_of(body);
    assert_eq!(v["error"], code, "{v}");
    assert!(
        v["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{v}"
    );
}

fn assert_html(headers: &axum::http::HeaderMap, body: &[u8]) {
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "{headers:?}"
    );
    assert!(String::from_utf8_lossy(body).starts_with("<!doctype html>"));
}

/// Answers the framework gives (an oversized body, a bad query, an
/// unknown path, a wrong method) were plain text. Every error now has the
/// shape of its endpoint: RFC 6749 JSON on `/par` and `/token`,
/// `OBErrorResponse1` on the resources, an HTML page on the customer pages.
#[tokio::test]
async fn every_error_has_the_shape_of_its_endpoint() {
    let f = fixture();
    let huge = "x=".to_owned() + &"a".repeat(300 * 1024);
    // OAuth endpoints: RFC 6749 bodies
    for path in ["/par", "/token"] {
        let (status, headers, body) = f.api(form(path, huge.clone()), true).await;
        assert_eq!(status, 413, "{path}");
        assert_oauth_error(&headers, &body, "invalid_request");
        let (status, headers, body) = f
            .api(Request::get(path).body(Body::empty()).unwrap(), true)
            .await;
        assert_eq!(status, 405, "{path}");
        assert_oauth_error(&headers, &body, "invalid_request");
    }
    // resources: OBErrorResponse1. The resource chain runs before the
    // body is read: an oversized body from a caller without a token is
    // refused as unauthenticated, unread
    let (status, headers, body) = f
        .api(
            Request::post("/open-banking/v3.1/aisp/account-access-consents")
                .header("content-type", "application/json")
                .body(Body::from(huge.clone()))
                .unwrap(),
            true,
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(headers["content-type"], "application/json");
    assert_ob_error(&body, "UK.OBIE.Unauthorized");
    // ... and from an authenticated caller it is too large
    let cc = f.client_credentials("accounts").await;
    let (status, headers, body) = f
        .api(
            Request::post("/open-banking/v3.1/aisp/account-access-consents")
                .header("content-type", "application/json")
                .header("authorization", format!("Bearer {cc}"))
                .body(Body::from(huge.clone()))
                .unwrap(),
            true,
        )
        .await;
    assert_eq!(status, 413);
    assert_eq!(headers["content-type"], "application/json");
    assert_ob_error(&body, "UK.OBIE.Resource.InvalidFormat");
    let (status, _, body) = f
        .api(
            Request::get("/open-banking/v3.1/aisp/nothing-here")
                .body(Body::empty())
                .unwrap(),
            true,
        )
        .await;
    assert_eq!(status, 404);
    assert_ob_error(&body, "UK.OBIE.Resource.NotFound");
    // customer pages: HTML
    let (status, headers, body) = f
        .customer(
            Request::get("/authorize?client_id=tpp-a&client_id=tpp-b&request_uri=x")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, 400);
    assert_html(&headers, &body);
    let (status, headers, body) = f
        .customer(
            Request::post("/login")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(huge))
                .unwrap(),
        )
        .await;
    assert_eq!(status, 413);
    assert_html(&headers, &body);
    let (status, headers, body) = f
        .customer(Request::get("/nowhere").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, 404);
    assert_html(&headers, &body);
}

/// `/token` accepted a body with no or the wrong `Content-Type`.
#[tokio::test]
async fn par_and_token_require_a_form_content_type() {
    let f = fixture();
    for path in ["/par", "/token"] {
        for content_type in [
            None,
            Some("application/json"),
            Some("text/plain"),
            Some("application/x-www-form-urlencodedx"),
        ] {
            let mut req = Request::post(path);
            if let Some(ct) = content_type {
                req = req.header("content-type", ct);
            }
            let body = f
                .authenticated_form(&[("grant_type", "client_credentials"), ("scope", "accounts")]);
            let (status, headers, body) = f.api(req.body(Body::from(body)).unwrap(), true).await;
            assert_eq!(status, 400, "{path} {content_type:?}");
            assert_oauth_error(&headers, &body, "invalid_request");
            assert!(
                String::from_utf8_lossy(&body).contains("application/x-www-form-urlencoded"),
                "{}",
                String::from_utf8_lossy(&body)
            );
        }
    }
    // the twin: the form type, with a charset parameter, is accepted
    let (status, _, body) = f
        .api(
            Request::post("/token")
                .header(
                    "content-type",
                    "application/x-www-form-urlencoded; charset=UTF-8",
                )
                .body(Body::from(f.authenticated_form(&[
                    ("grant_type", "client_credentials"),
                    ("scope", "accounts"),
                ])))
                .unwrap(),
            true,
        )
        .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
}

/// The API listener's rate limit answered `/token` with a UK OB body, and
/// the customer listener had none. `/par` and `/token` now answer 429 with
/// an RFC 6749 body, resources with `OBErrorResponse1`, the customer pages
/// (limited per peer address) with an HTML page; all with `Retry-After`.
#[tokio::test]
async fn rate_limited_answers_have_the_shape_of_their_endpoint() {
    let f = fixture_with(|c| {
        c.rate_limit_per_second = 2;
        c.customer_rate_limit_per_second = 2;
    });
    let token_form = || {
        form(
            "/token",
            f.authenticated_form(&[("grant_type", "client_credentials"), ("scope", "accounts")]),
        )
    };
    let mut limited = None;
    for _ in 0..6 {
        let (status, headers, body) = f.api(token_form(), true).await;
        if status == 429 {
            limited = Some((headers, body));
            break;
        }
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    }
    let (headers, body) = limited.expect("the token endpoint is rate-limited");
    assert_oauth_error(&headers, &body, "temporarily_unavailable");
    assert!(headers.contains_key("retry-after"));
    // the same client's next resource call: an OB body
    let (status, headers, body) = f
        .api(
            Request::get("/open-banking/v3.1/aisp/accounts")
                .header("authorization", "Bearer x")
                .body(Body::empty())
                .unwrap(),
            true,
        )
        .await;
    assert_eq!(status, 429);
    assert!(headers.contains_key("retry-after"));
    assert_ob_error(&body, "UK.OBIE.UnexpectedError");
    // the customer pages, per address
    let discovery = || {
        Request::get("/.well-known/openid-configuration")
            .body(Body::empty())
            .unwrap()
    };
    let mut statuses = Vec::new();
    let mut page = None;
    for _ in 0..6 {
        let (status, headers, body) = f.customer(discovery()).await;
        if status == 429 {
            page = Some((headers, body));
        }
        statuses.push(status);
    }
    assert_eq!(statuses[0], 200);
    let (headers, body) = page.unwrap_or_else(|| panic!("{statuses:?}"));
    assert_html(&headers, &body);
    assert!(headers.contains_key("retry-after"));
}

fn hidden_input(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap() + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_owned()
}

fn set_cookie_value(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|kv| kv.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

fn customer_form(path: &str, cookie: Option<&str>, fields: &[(&str, &str)]) -> Request<Body> {
    let mut f = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields {
        f.append_pair(k, v);
    }
    let mut req = Request::post(path).header("content-type", "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    req.body(Body::from(f.finish())).unwrap()
}

/// The login form had no CSRF token (the consent form and revoke did), so
/// a cross-site page could log a customer into someone else's session; and
/// there was no logout.
#[tokio::test]
async fn login_needs_its_forms_csrf_token_and_logout_ends_the_session() {
    let f = fixture();
    let (status, headers, body) = f
        .customer(Request::get("/dashboard").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, 200);
    let login_cookie = set_cookie_value(&headers, "__Host-bank_login").unwrap();
    let cookie_header = headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("__Host-bank_login="))
        .unwrap();
    assert!(
        cookie_header.contains("SameSite=Strict")
            && cookie_header.contains("Secure")
            && cookie_header.contains("HttpOnly")
    );
    let csrf = hidden_input(&String::from_utf8_lossy(&body), "csrf");
    let post = |cookie: Option<&str>, token: &str| {
        customer_form(
            "/login",
            cookie,
            &[
                ("username", "alice"),
                ("password", "alice-password"),
                ("csrf", token),
            ],
        )
    };
    // the right password, but the form did not come with this browser's
    // cookie (a cross-site post: SameSite=Strict keeps the cookie out)
    let (status, headers, _) = f.customer(post(None, &csrf)).await;
    assert_eq!(status, 403);
    assert!(set_cookie_value(&headers, "bank_session").is_none());
    // the cookie, but another form's token
    let (status, headers, _) = f.customer(post(Some(&login_cookie), "00")).await;
    assert_eq!(status, 403);
    assert!(set_cookie_value(&headers, "bank_session").is_none());
    // the twin: the page's own form
    let (status, headers, _) = f.customer(post(Some(&login_cookie), &csrf)).await;
    assert_eq!(status, 303);
    let session = set_cookie_value(&headers, "bank_session").unwrap();

    let (status, _, body) = f
        .customer(
            Request::get("/dashboard")
                .header("cookie", &session)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, 200);
    let page = String::from_utf8_lossy(&body).into_owned();
    assert!(page.contains("action=\"/logout\""), "{page}");
    let session_csrf = hidden_input(&page, "csrf");
    // logout needs the session's token too
    let (status, _, _) = f
        .customer(customer_form("/logout", Some(&session), &[("csrf", "00")]))
        .await;
    assert_eq!(status, 403);
    let (status, headers, _) = f
        .customer(customer_form(
            "/logout",
            Some(&session),
            &[("csrf", &session_csrf)],
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        set_cookie_value(&headers, "bank_session").unwrap(),
        "bank_session="
    );
    // the old cookie opens nothing any more
    let (status, _, body) = f
        .customer(
            Request::get("/dashboard")
                .header("cookie", &session)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("Log in to your bank"));
}

/// Logs in (page, then form) as `username` from `remote`; the status.
async fn try_login(
    f: &Fixture,
    remote: &str,
    username: &str,
    password: &str,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let call = |req: Request<Body>| {
        let mut req = req;
        req.extensions_mut()
            .insert(f.connection_from(false, remote));
        f.apps.customer.clone().oneshot(req)
    };
    let page = call(Request::get("/dashboard").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let cookie = set_cookie_value(page.headers(), "__Host-bank_login").unwrap();
    let html = String::from_utf8_lossy(
        &axum::body::to_bytes(page.into_body(), 1 << 20)
            .await
            .unwrap(),
    )
    .into_owned();
    let csrf = hidden_input(&html, "csrf");
    let r = call(customer_form(
        "/login",
        Some(&cookie),
        &[
            ("username", username),
            ("password", password),
            ("csrf", &csrf),
        ],
    ))
    .await
    .unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let body =
        String::from_utf8_lossy(&axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap())
            .into_owned();
    (status, headers, body)
}

/// 300 wrong passwords for one customer all got a normal page, then the
/// right password logged in. Now 5 failures lock the id for a minute (the
/// right password too), and 20 from one address lock the address.
#[tokio::test]
async fn repeated_wrong_passwords_lock_the_customer_then_the_address() {
    // (the per-address request rate limit is a separate rule: off here)
    let f = fixture_with(|c| c.customer_rate_limit_per_second = 0);
    let attacker = "198.51.100.7:5000";
    for i in 0..4 {
        let (status, _, page) = try_login(&f, attacker, "alice", "guess").await;
        assert_eq!(status, 200, "attempt {i}");
        assert!(page.contains("Customer id or password is wrong."));
    }
    let (status, headers, page) = try_login(&f, attacker, "alice", "guess").await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "60");
    assert!(page.contains("Too many attempts"), "{page}");
    // locked: the right password is refused too, from anywhere
    let (status, _, _) = try_login(&f, "203.0.113.1:1", "alice", "alice-password").await;
    assert_eq!(status, 429);
    // another customer is not locked
    let (status, _, _) = try_login(&f, "203.0.113.1:1", "bob", "bob-password").await;
    assert_eq!(status, 303);
    // the minute passes, to the second
    f.clock.advance(59);
    assert_eq!(
        try_login(&f, "203.0.113.1:1", "alice", "alice-password")
            .await
            .0,
        429
    );
    f.clock.advance(1);
    assert_eq!(
        try_login(&f, "203.0.113.1:1", "alice", "alice-password")
            .await
            .0,
        303
    );

    // credential stuffing: one address, many ids; its 20th failure locks it
    for i in 0..14 {
        let (status, _, _) = try_login(&f, attacker, &format!("user{i}"), "guess").await;
        assert_eq!(status, 200, "id {i}");
    }
    let (status, headers, _) = try_login(&f, attacker, "user14", "guess").await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "600");
    let (status, _, page) = try_login(&f, attacker, "bob", "bob-password").await;
    assert_eq!(status, 429, "{page}");
    // the same customer from elsewhere is fine
    assert_eq!(
        try_login(&f, "203.0.113.1:1", "bob", "bob-password")
            .await
            .0,
        303
    );
}

impl Fixture {
    /// tpp-a's signed request object naming `intent` (or none).
    fn request_object(&self, intent: Option<&str>) -> String {
        let now = SystemClock.now().as_secs();
        let mut claims = json!({
            "iss": "tpp-a", "aud": ISSUER, "client_id": "tpp-a", "nbf": now, "exp": now + 300,
            "response_type": "code", "response_mode": "jwt", "redirect_uri": "https://tpp-a.example/cb",
            "scope": "openid accounts", "state": "s-1", "nonce": "n-1",
            "code_challenge": fapi_core::CodeVerifier::generate().unwrap().challenge().as_str(),
            "code_challenge_method": "S256",
        });
        if let Some(i) = intent {
            claims["claims"] = json!({ "id_token": { "openbanking_intent_id": { "value": i, "essential": true } } });
        }
        sign_compact(
            &*self.keys.signing_key("tpp-a-signing").unwrap(),
            Some("tpp-a-signing"),
            Some("oauth-authz-req+jwt"),
            claims.as_object().unwrap(),
        )
        .unwrap()
    }
}

/// A request object naming no consent was accepted at /par and refused
/// only after the customer had logged in. Under the UK OB consent model
/// /par now requires the intent: a consent of this client that awaits
/// authorisation. (Under the default model scopes alone are a plain FAPI 2
/// request: the twin at the end.)
#[tokio::test]
async fn par_requires_an_intent_awaiting_authorisation() {
    let f = fixture_with(|c| {
        c.consent_model = fapi_examples::bank::config::ConsentModel::OpenbankingIntent;
    });
    let push = |ro: String| form("/par", f.authenticated_form(&[("request", &ro)]));
    let refused = |body: &[u8], part: &str| {
        let v = json_of(body);
        assert_eq!(v["error"], "invalid_request_object", "{v}");
        assert!(
            v["error_description"].as_str().unwrap().contains(part),
            "{v}"
        );
    };
    let (status, _, body) = f.api(push(f.request_object(None)), true).await;
    assert_eq!(status, 400);
    refused(&body, "openbanking_intent_id");
    let (status, _, body) = f
        .api(push(f.request_object(Some("aac-nonexistent"))), true)
        .await;
    assert_eq!(status, 400);
    refused(&body, "does not exist");
    // the twin: a consent tpp-a created
    let cc = f.client_credentials("accounts").await;
    let (status, _, body) = f
        .api(
            Request::post("/open-banking/v3.1/aisp/account-access-consents")
                .header("authorization", format!("Bearer {cc}"))
                .header("content-type", "application/json")
                .body(Body::from(
                    json!({ "Data": { "Permissions": ["ReadAccountsBasic"] }, "Risk": {} })
                        .to_string(),
                ))
                .unwrap(),
            true,
        )
        .await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let consent = json_of(&body)["Data"]["ConsentId"]
        .as_str()
        .unwrap()
        .to_owned();
    // a request binding the code to a DPoP key: this bank binds by mTLS
    let mut claims = fapi_core::jose::UnverifiedJws::parse(&f.request_object(Some(&consent)))
        .unwrap()
        .unverified_claims()
        .unwrap()
        .as_map()
        .clone();
    claims.insert(
        "dpop_jkt".into(),
        json!("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"),
    );
    let with_jkt = sign_compact(
        &*f.keys.signing_key("tpp-a-signing").unwrap(),
        Some("tpp-a-signing"),
        Some("oauth-authz-req+jwt"),
        &claims,
    )
    .unwrap();
    let (status, _, body) = f.api(push(with_jkt), true).await;
    assert_eq!(status, 400);
    let v = json_of(&body);
    assert_eq!(v["error"], "invalid_request", "{v}");
    assert!(
        v["error_description"]
            .as_str()
            .unwrap()
            .contains("dpop_jkt"),
        "{v}"
    );
    let (status, _, body) = f.api(push(f.request_object(Some(&consent))), true).await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    // the default model takes the request without an intent by its scopes
    let any = fixture();
    let (status, _, body) = any
        .api(
            form(
                "/par",
                any.authenticated_form(&[("request", &any.request_object(None))]),
            ),
            true,
        )
        .await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
}

/// `/introspect` and `/revoke` authenticate the client as `/token` does
/// (a certificate, a `private_key_jwt` assertion used once), and answer
/// in RFC 6749 shapes; each refusal stands next to the same request
/// succeeding.
#[tokio::test]
async fn introspection_and_revocation_authenticate_like_the_token_endpoint() {
    let f = fixture();
    let token = f.client_credentials("accounts").await;
    for path in ["/introspect", "/revoke"] {
        // no client assertion
        let (status, headers, body) = f
            .api(form(path, format!("client_id=tpp-a&token={token}")), true)
            .await;
        assert_eq!(status, 401, "{path}");
        assert_oauth_error(&headers, &body, "invalid_client");
        // no certificate
        let (status, headers, body) = f
            .api(
                form(path, f.authenticated_form(&[("token", &token)])),
                false,
            )
            .await;
        assert_eq!(status, 401, "{path}");
        assert_oauth_error(&headers, &body, "invalid_client");
        // no token
        let (status, headers, body) = f.api(form(path, f.authenticated_form(&[])), true).await;
        assert_eq!(status, 400, "{path}");
        assert_oauth_error(&headers, &body, "invalid_request");
        // not a form
        let mut req = form(path, f.authenticated_form(&[("token", &token)]));
        req.headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        let (status, headers, body) = f.api(req, true).await;
        assert_eq!(status, 400, "{path}");
        assert_oauth_error(&headers, &body, "invalid_request");
        // a replayed assertion
        let assertion = f.assertion();
        let replayed = form_with_assertion(&assertion, &[("token", "not-a-token")]);
        let (status, _, _) = f.api(form(path, replayed.clone()), true).await;
        assert_eq!(status, 200, "{path}: the first use");
        let (status, headers, body) = f.api(form(path, replayed), true).await;
        assert_eq!(status, 401, "{path}: the replay");
        assert_oauth_error(&headers, &body, "invalid_client");
    }

    // the happy twin: the client's own token, active and bound
    let (status, headers, body) = f
        .api(
            form("/introspect", f.authenticated_form(&[("token", &token)])),
            true,
        )
        .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["cache-control"], "no-store");
    let v = json_of(&body);
    assert_eq!(v["active"], true, "{v}");
    assert_eq!(v["client_id"], "tpp-a");
    assert_eq!(v["scope"], "accounts");
    assert!(v["cnf"]["x5t#S256"].is_string(), "{v}");
    assert!(v.get("openbanking_intent_id").is_none(), "{v}");

    // signed on request (RFC 9701): a JWT typed token-introspection+jwt
    let mut req = form("/introspect", f.authenticated_form(&[("token", &token)]));
    req.headers_mut().insert(
        "accept",
        "application/token-introspection+jwt".parse().unwrap(),
    );
    let (status, headers, body) = f.api(req, true).await;
    assert_eq!(status, 200);
    assert_eq!(
        headers["content-type"],
        "application/token-introspection+jwt"
    );
    let jwt = fapi_core::jose::UnverifiedJws::parse(std::str::from_utf8(&body).unwrap()).unwrap();
    assert_eq!(
        jwt.unverified_header().typ(),
        Some("token-introspection+jwt")
    );
    let claims = jwt.unverified_claims().unwrap();
    assert_eq!(claims.get("aud").unwrap(), "tpp-a");
    assert_eq!(claims.get("token_introspection").unwrap()["active"], true);

    // revoked: inactive from the next request
    let (status, _, _) = f
        .api(
            form("/revoke", f.authenticated_form(&[("token", &token)])),
            true,
        )
        .await;
    assert_eq!(status, 200);
    let (_, _, body) = f
        .api(
            form("/introspect", f.authenticated_form(&[("token", &token)])),
            true,
        )
        .await;
    assert_eq!(json_of(&body), json!({ "active": false }));
}
