//! Dynamic client registration (RFC 7591 / RFC 7592, UK OB DCR shape):
//! a TPP registers itself with a request JWT it signs, carrying the
//! software statement the scheme directory signed; every rule refused
//! beside the request that passes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::TempDir;
use fapi_core::crypto::{default_provider, Algorithm, SigningKey};
use fapi_core::jose::sign_compact;
use fapi_core::{Clock, SystemClock};
use fapi_examples::bank::tls::ConnectionInfo;
use fapi_examples::bank::{build, BankApps, BankConfig};
use fapi_examples::pki::{DevPki, FileKeySource, KeySource};
use fapi_examples::registry::{sign_software_statement, Registration, DEV_DIRECTORY_ISSUER};
use fapi_mtls_binding::ClientCertificate;
use serde_json::{json, Map, Value};
use tower::ServiceExt;

const ISSUER: &str = "https://localhost:9443";

struct Fixture {
    _dir: TempDir,
    apps: BankApps,
    keys: FileKeySource,
    pki: DevPki,
}

fn fixture() -> Fixture {
    fixture_with(|_| {})
}

fn fixture_with(adjust: impl FnOnce(&mut BankConfig)) -> Fixture {
    let dir = TempDir::new("register");
    let provider = default_provider();
    let pki = DevPki::generate(&dir.0, &*provider, &["tpp-a", "tpp-b"], SystemClock.now()).unwrap();
    let mut config = BankConfig::development(&dir.0);
    adjust(&mut config);
    let clock = Arc::new(fapi_examples::bank::OffsetClock::default());
    let apps = build(&config, clock, ISSUER, ISSUER).unwrap();
    Fixture {
        keys: FileKeySource::new(&dir.0, provider),
        _dir: dir,
        apps,
        pki,
    }
}

fn der_of(path: &std::path::Path) -> Vec<u8> {
    ClientCertificate::from_pem(&std::fs::read_to_string(path).unwrap())
        .unwrap()
        .der()
        .to_vec()
}

impl Fixture {
    fn cert(&self, i: usize) -> Vec<u8> {
        der_of(&self.pki.tpps[i].certificate)
    }

    fn statement(&self, i: usize) -> String {
        std::fs::read_to_string(&self.pki.tpps[i].software_statement).unwrap()
    }

    /// tpp-a's registration request for `statement`, with `edit` applied
    /// to its claims, signed by tpp-a's statement key.
    fn request(&self, statement: &str, edit: impl FnOnce(&mut Map<String, Value>)) -> String {
        let now = SystemClock.now().as_secs();
        let mut claims = json!({
            "iss": "tpp-a-software",
            "aud": ISSUER,
            "iat": now,
            "exp": now + 300,
            "jti": fapi_core::random::token(16).unwrap(),
            "software_statement": statement,
            "redirect_uris": ["https://tpp-a.example/cb"],
            "token_endpoint_auth_method": "private_key_jwt",
            "token_endpoint_auth_signing_alg": "PS256",
            "grant_types": ["authorization_code", "client_credentials"],
            "response_types": ["code"],
        })
        .as_object()
        .unwrap()
        .clone();
        edit(&mut claims);
        let key = self.keys.signing_key("tpp-a-signing").unwrap();
        sign_compact(&*key, Some("tpp-a-signing"), Some("JWT"), &claims).unwrap()
    }

    async fn send(&self, mut req: Request<Body>, cert: Option<&[u8]>) -> (StatusCode, Value) {
        req.extensions_mut().insert(ConnectionInfo::new(
            cert.map(|c| Arc::new(c.to_vec())),
            "127.0.0.1:40000".parse().unwrap(),
        ));
        let r = self.apps.api.clone().oneshot(req).await.unwrap();
        let status = r.status();
        assert_eq!(r.headers()["cache-control"], "no-store");
        let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    async fn post(&self, body: String, cert: Option<&[u8]>) -> (StatusCode, Value) {
        let req = Request::post("/register")
            .header("content-type", "application/jwt")
            .body(Body::from(body))
            .unwrap();
        self.send(req, cert).await
    }

    async fn manage(
        &self,
        method: &str,
        client: &str,
        token: &str,
        body: Option<String>,
        cert: &[u8],
    ) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("/register/{client}"))
            .header("authorization", format!("Bearer {token}"));
        if body.is_some() {
            req = req.header("content-type", "application/jwt");
        }
        let req = req.body(body.map(Body::from).unwrap_or_default()).unwrap();
        self.send(req, Some(cert)).await
    }

    /// A client-credentials token for tpp-a by `private_key_jwt`.
    async fn token_a(&self) -> StatusCode {
        let now = SystemClock.now().as_secs();
        let claims = json!({ "iss": "tpp-a", "sub": "tpp-a", "aud": ISSUER, "jti": fapi_core::random::token(16).unwrap(), "iat": now, "exp": now + 60 });
        let key = self.keys.signing_key("tpp-a-signing").unwrap();
        let assertion = sign_compact(
            &*key,
            Some("tpp-a-signing"),
            None,
            claims.as_object().unwrap(),
        )
        .unwrap();
        let mut f = url::form_urlencoded::Serializer::new(String::new());
        f.append_pair("client_id", "tpp-a")
            .append_pair(
                "client_assertion_type",
                fapi_core::client_auth::JWT_BEARER_ASSERTION_TYPE,
            )
            .append_pair("client_assertion", &assertion)
            .append_pair("grant_type", "client_credentials")
            .append_pair("scope", "accounts");
        let req = Request::post("/token")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(f.finish()))
            .unwrap();
        self.send(req, Some(&self.cert(0))).await.0
    }

    /// A statement for tpp-a's registration signed by `key` as `issuer`,
    /// issued at `at`.
    fn statement_by(&self, key: &dyn SigningKey, issuer: &str, at: fapi_core::UnixTime) -> String {
        let registration: Registration = fapi_examples::registry::verify_software_statement(
            &self.statement(0),
            &BankConfig::development(&self.pki.dir)
                .directory_keys(&*default_provider())
                .unwrap(),
            DEV_DIRECTORY_ISSUER,
            fapi_core::Profile::Fapi2MessageSigning,
            SystemClock.now(),
        )
        .unwrap();
        let signed = sign_software_statement(key, "directory-signing", &registration, at).unwrap();
        if issuer == DEV_DIRECTORY_ISSUER {
            return signed;
        }
        // the same claims under another issuer
        let claims = fapi_core::jose::UnverifiedJws::parse(&signed)
            .unwrap()
            .unverified_claims()
            .unwrap();
        let mut map = claims.as_map().clone();
        map.insert("iss".into(), json!(issuer));
        sign_compact(key, Some("directory-signing"), Some("JWT"), &map).unwrap()
    }
}

fn assert_error(got: &(StatusCode, Value), status: u16, code: &str, says: &str) {
    assert_eq!(got.0.as_u16(), status, "{}", got.1);
    assert_eq!(got.1["error"], code, "{}", got.1);
    let description = got.1["error_description"].as_str().unwrap_or_default();
    assert!(
        description.contains(says),
        "{description:?} should say {says:?}"
    );
}

/// The whole life of a registration: registered by its own signed request,
/// usable at once, read and updated with its registration access token,
/// deleted (its calls refused from then on).
#[tokio::test]
async fn a_tpp_registers_itself_and_manages_its_registration() {
    let f = fixture();
    assert_eq!(f.token_a().await, 401, "not registered yet");
    let (status, v) = f
        .post(f.request(&f.statement(0), |_| {}), Some(&f.cert(0)))
        .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["client_id"], "tpp-a");
    assert_eq!(v["token_endpoint_auth_method"], "private_key_jwt");
    assert_eq!(v["redirect_uris"], json!(["https://tpp-a.example/cb"]));
    assert_eq!(
        v["tls_client_auth_subject_dn"],
        "CN=tpp-a-software,OU=tpp-a-org,organizationIdentifier=PSDGB-FCA-tpp-a,O=tpp-a Ltd,C=GB"
    );
    assert_eq!(v["token_endpoint_auth_signing_alg"], "PS256");
    let token = v["registration_access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        v["registration_client_uri"],
        format!("{ISSUER}/register/tpp-a")
    );
    assert_eq!(f.token_a().await, 200, "registered: its calls are served");

    let read = f.manage("GET", "tpp-a", &token, None, &f.cert(0)).await;
    assert_eq!(read.0, 200, "{}", read.1);
    assert_eq!(read.1["client_id"], "tpp-a");
    assert!(read.1.get("registration_access_token").is_none());

    // an update: the same statement, now tls_client_auth
    let update = f.request(&f.statement(0), |c| {
        c.insert(
            "token_endpoint_auth_method".into(),
            json!("tls_client_auth"),
        );
    });
    let updated = f
        .manage("PUT", "tpp-a", &token, Some(update), &f.cert(0))
        .await;
    assert_eq!(updated.0, 200, "{}", updated.1);
    assert_eq!(updated.1["token_endpoint_auth_method"], "tls_client_auth");
    let again = f.manage("GET", "tpp-a", &token, None, &f.cert(0)).await;
    assert_eq!(again.1["token_endpoint_auth_method"], "tls_client_auth");

    let deleted = f.manage("DELETE", "tpp-a", &token, None, &f.cert(0)).await;
    assert_eq!(deleted.0, 204);
    let gone = f.manage("GET", "tpp-a", &token, None, &f.cert(0)).await;
    assert_error(&gone, 401, "invalid_token", "not valid");
    assert_eq!(f.token_a().await, 401, "deleted: its calls are refused");

    // each change is in the audit trail, with the hash of the request that
    // made it (the refused ones are not changes)
    let changes: Vec<(String, Option<String>, bool)> = f
        .apps
        .stores
        .audit
        .entries(1, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.event.action {
            fapi_consent::audit::AuditAction::RegistrationChanged { change } => Some((
                change,
                e.event.client_id.map(|c| c.as_str().to_owned()),
                e.event.request_sha256.is_some(),
            )),
            _ => None,
        })
        .collect();
    let a = Some("tpp-a".to_owned());
    assert_eq!(
        changes,
        vec![
            ("registered".into(), a.clone(), true),
            ("updated".into(), a.clone(), true),
            ("deleted".into(), a, false),
        ]
    );
}

/// Each rule of the request, the statement and the certificate, refused
/// with its own error; the unchanged request passes at the end.
#[tokio::test]
async fn each_registration_rule_refuses_on_its_own() {
    let f = fixture();
    let statement = f.statement(0);
    let a = f.cert(0);
    let directory = f.keys.signing_key("directory-signing").unwrap();
    let now = SystemClock.now();

    // no mTLS
    let got = f.post(f.request(&statement, |_| {}), None).await;
    assert_error(&got, 401, "invalid_client", "transport certificate");
    // not a JWT
    let req = Request::post("/register")
        .header("content-type", "application/json")
        .body(Body::from(
            json!({ "software_statement": statement }).to_string(),
        ))
        .unwrap();
    let got = f.send(req, Some(&a)).await;
    assert_error(&got, 400, "invalid_client_metadata", "application/jwt");
    // an unsigned statement
    let payload = fapi_core::jose::UnverifiedJws::parse(&statement)
        .unwrap()
        .unverified_claims()
        .unwrap();
    let unsigned = format!(
        "{}.{}.",
        fapi_core::encoding::b64url_encode(br#"{"alg":"none","typ":"JWT"}"#),
        fapi_core::encoding::b64url_encode(&serde_json::to_vec(payload.as_map()).unwrap())
    );
    let got = f.post(f.request(&unsigned, |_| {}), Some(&a)).await;
    assert_error(&got, 400, "invalid_software_statement", "");
    // signed by a key that is not the directory's
    let forger = default_provider()
        .generate_signing_key(Algorithm::Es256)
        .unwrap();
    let forged = f.statement_by(&*forger, DEV_DIRECTORY_ISSUER, now);
    let got = f.post(f.request(&forged, |_| {}), Some(&a)).await;
    assert_error(&got, 400, "invalid_software_statement", "");
    // from a directory the bank does not accept
    let foreign = f.statement_by(&*directory, "another directory", now);
    let got = f.post(f.request(&foreign, |_| {}), Some(&a)).await;
    assert_error(&got, 400, "unapproved_software_statement", "directory");
    // expired (issued two years ago, valid for one)
    let expired = f.statement_by(
        &*directory,
        DEV_DIRECTORY_ISSUER,
        now.saturating_add(-2 * 365 * 24 * 3600),
    );
    let got = f.post(f.request(&expired, |_| {}), Some(&a)).await;
    assert_error(&got, 400, "invalid_software_statement", "expired");
    // a redirect URI the statement does not hold
    let got = f
        .post(
            f.request(&statement, |c| {
                c.insert(
                    "redirect_uris".into(),
                    json!(["https://tpp-a.example/cb", "https://evil.example/cb"]),
                );
            }),
            Some(&a),
        )
        .await;
    assert_error(&got, 400, "invalid_redirect_uri", "evil.example");
    // another TPP's certificate
    let got = f
        .post(f.request(&statement, |_| {}), Some(&f.cert(1)))
        .await;
    assert_error(&got, 400, "invalid_client_metadata", "subject");
    // the request signed by a key outside the statement
    let mut claims = fapi_core::jose::UnverifiedJws::parse(&f.request(&statement, |_| {}))
        .unwrap()
        .unverified_claims()
        .unwrap()
        .as_map()
        .clone();
    claims.insert("jti".into(), json!("other-key"));
    let other_key = sign_compact(&*forger, Some("tpp-a-signing"), Some("JWT"), &claims).unwrap();
    let got = f.post(other_key, Some(&a)).await;
    assert_error(
        &got,
        400,
        "invalid_client_metadata",
        "not signed by a key of the software statement",
    );
    // for another server
    let got = f
        .post(
            f.request(&statement, |c| {
                c.insert("aud".into(), json!("https://other-bank.example"));
            }),
            Some(&a),
        )
        .await;
    assert_error(&got, 400, "invalid_client_metadata", "aud");
    // from another software id
    let got = f
        .post(
            f.request(&statement, |c| {
                c.insert("iss".into(), json!("tpp-b-software"));
            }),
            Some(&a),
        )
        .await;
    assert_error(&got, 400, "invalid_client_metadata", "iss");
    // a method FAPI forbids, an algorithm the profile does not allow
    let got = f
        .post(
            f.request(&statement, |c| {
                c.insert(
                    "token_endpoint_auth_method".into(),
                    json!("client_secret_basic"),
                );
            }),
            Some(&a),
        )
        .await;
    assert_error(
        &got,
        400,
        "invalid_client_metadata",
        "token_endpoint_auth_method",
    );
    let got = f
        .post(
            f.request(&statement, |c| {
                c.insert("token_endpoint_auth_signing_alg".into(), json!("RS256"));
            }),
            Some(&a),
        )
        .await;
    assert_error(&got, 400, "invalid_client_metadata", "RS256");
    // valid for too long
    let got = f
        .post(
            f.request(&statement, |c| {
                c.insert("exp".into(), json!(now.as_secs() + 2 * 3600));
            }),
            Some(&a),
        )
        .await;
    assert_error(&got, 400, "invalid_client_metadata", "within an hour");

    // the happy twin, then its replay and a second registration
    let request = f.request(&statement, |_| {});
    let got = f.post(request.clone(), Some(&a)).await;
    assert_eq!(got.0, 201, "{}", got.1);
    let got = f.post(request, Some(&a)).await;
    assert_error(&got, 400, "invalid_client_metadata", "jti");
    let got = f.post(f.request(&statement, |_| {}), Some(&a)).await;
    assert_error(&got, 400, "invalid_client_metadata", "already registered");
}

/// The registration access token works only for its client, only over a
/// certificate that client holds; a client the operator onboarded has none.
#[tokio::test]
async fn the_registration_access_token_is_its_clients_alone() {
    let f = fixture();
    let registered = f
        .post(f.request(&f.statement(0), |_| {}), Some(&f.cert(0)))
        .await;
    assert_eq!(registered.0, 201, "{}", registered.1);
    let token = registered.1["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // tpp-b onboarded by the operator
    let config = BankConfig::development(&f.pki.dir);
    let provider = default_provider();
    let b = fapi_examples::registry::verify_software_statement(
        &f.statement(1),
        &config.directory_keys(&*provider).unwrap(),
        &config.directory_issuer,
        config.profile().unwrap(),
        SystemClock.now(),
    )
    .unwrap();
    fapi_examples::registry::onboard(
        &f.apps.registry(),
        &b,
        &ClientCertificate::from_der(&f.cert(1)).unwrap(),
        &f.apps.trust,
        &*provider,
        config.profile().unwrap(),
        SystemClock.now(),
    )
    .await
    .unwrap();

    let ok = f.manage("GET", "tpp-a", &token, None, &f.cert(0)).await;
    assert_eq!(ok.0, 200, "{}", ok.1);
    let wrong = f
        .manage("GET", "tpp-a", "not-the-token", None, &f.cert(0))
        .await;
    assert_error(&wrong, 401, "invalid_token", "not valid");
    let other_client = f.manage("GET", "tpp-b", &token, None, &f.cert(1)).await;
    assert_error(&other_client, 401, "invalid_token", "not valid");
    let unknown = f.manage("GET", "tpp-z", &token, None, &f.cert(0)).await;
    assert_error(&unknown, 401, "invalid_token", "not valid");
    let other_certificate = f.manage("GET", "tpp-a", &token, None, &f.cert(1)).await;
    assert_error(
        &other_certificate,
        401,
        "invalid_client",
        "two different clients",
    );
    let update_for_b = f.manage("DELETE", "tpp-a", &token, None, &f.cert(1)).await;
    assert_eq!(update_for_b.0, 401);
    // a PUT carrying another client's statement
    let put = f.request(&f.statement(1), |c| {
        c.insert("iss".into(), json!("tpp-b-software"));
    });
    let got = f
        .manage("PUT", "tpp-a", &token, Some(put), &f.cert(0))
        .await;
    assert_eq!(got.0, 400, "{}", got.1);
    // the registration is as it was
    let still = f.manage("GET", "tpp-a", &token, None, &f.cert(0)).await;
    assert_eq!(still.1["client_id"], "tpp-a");
}

/// A directory host serving tpp-a's JWKS over HTTPS (the development
/// server certificate, for localhost, from the scheme CA) at `/tpp-a.jwks`
/// and nothing elsewhere; its port.
async fn directory_host(f: &Fixture) -> (u16, tokio::sync::watch::Sender<bool>) {
    use rustls_pki_types::pem::PemObject;
    let jwks = std::fs::read_to_string(&f.pki.tpps[0].jwks).unwrap();
    let app = axum::Router::new().route(
        "/tpp-a.jwks",
        axum::routing::get(move || async move { jwks }),
    );
    let chain = fapi_examples::bank::pem_certificates(
        &std::fs::read_to_string(&f.pki.server_certificate).unwrap(),
    )
    .unwrap();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(&f.pki.server_key).unwrap();
    let tls = fapi_examples::bank::tls::customer_server_config(chain, key).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(fapi_examples::bank::tls::serve(
        listener,
        Some(tls),
        app,
        fapi_examples::bank::listener::ListenersConfig::default().customer,
        "directory",
        std::time::Duration::from_secs(1),
        stopped,
    ));
    (port, stop)
}

/// tpp-a's statement naming its keys by `software_jwks_endpoint`, signed by
/// the directory.
fn statement_with_endpoint(f: &Fixture, endpoint: &str) -> String {
    let mut registration: Registration = fapi_examples::registry::verify_software_statement(
        &f.statement(0),
        &BankConfig::development(&f.pki.dir)
            .directory_keys(&*default_provider())
            .unwrap(),
        DEV_DIRECTORY_ISSUER,
        fapi_core::Profile::Fapi2MessageSigning,
        SystemClock.now(),
    )
    .unwrap();
    registration.jwks = Value::Null;
    registration.software_jwks_endpoint = Some(endpoint.to_owned());
    let directory = f.keys.signing_key("directory-signing").unwrap();
    sign_software_statement(
        &*directory,
        "directory-signing",
        &registration,
        SystemClock.now(),
    )
    .unwrap()
}

/// A statement that names the TPP's keys by `software_jwks_endpoint`: the
/// bank fetches them from an allow-listed directory host only, over HTTPS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_named_by_endpoint_are_fetched_from_an_allow_listed_directory_host_only() {
    let f = fixture_with(|c| c.directory_jwks_hosts = vec!["localhost".into()]);
    let (port, _stop) = directory_host(&f).await;
    let a = f.cert(0);
    for (endpoint, says) in [
        // a host the bank was not told about (the same server by address)
        (
            format!("https://127.0.0.1:{port}/tpp-a.jwks"),
            "allow-listed",
        ),
        // not HTTPS
        (
            format!("http://localhost:{port}/tpp-a.jwks"),
            "allow-listed",
        ),
        // credentials in the URL
        (
            format!("https://user:pw@localhost:{port}/tpp-a.jwks"),
            "allow-listed",
        ),
        // nothing there
        (
            format!("https://localhost:{port}/tpp-z.jwks"),
            "answered 404",
        ),
    ] {
        let statement = statement_with_endpoint(&f, &endpoint);
        let got = f.post(f.request(&statement, |_| {}), Some(&a)).await;
        assert_error(&got, 400, "invalid_software_statement", says);
    }
    let statement = statement_with_endpoint(&f, &format!("https://localhost:{port}/tpp-a.jwks"));
    let got = f.post(f.request(&statement, |_| {}), Some(&a)).await;
    assert_eq!(got.0, 201, "{}", got.1);
    assert_eq!(
        got.1["jwks"]["keys"][0]["kid"], "tpp-a-signing",
        "{}",
        got.1
    );
    assert_eq!(
        f.token_a().await,
        200,
        "the fetched keys verify its assertions"
    );
}

/// Without `directory_jwks_hosts`, a statement with keys by endpoint is
/// refused; the operator's onboarding says how to proceed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_by_endpoint_need_an_allow_listed_host() {
    let f = fixture();
    let (port, _stop) = directory_host(&f).await;
    let statement = statement_with_endpoint(&f, &format!("https://localhost:{port}/tpp-a.jwks"));
    let got = f
        .post(f.request(&statement, |_| {}), Some(&f.cert(0)))
        .await;
    assert_error(&got, 400, "invalid_software_statement", "allow-listed");
    let config = BankConfig::development(&f.pki.dir);
    let registration = fapi_examples::registry::verify_software_statement(
        &statement,
        &config.directory_keys(&*default_provider()).unwrap(),
        DEV_DIRECTORY_ISSUER,
        config.profile().unwrap(),
        SystemClock.now(),
    )
    .unwrap();
    let e = registration
        .metadata(&*default_provider(), config.profile().unwrap())
        .unwrap_err();
    assert!(e.to_string().contains("POST /register"), "{e}");
}
