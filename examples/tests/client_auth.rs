//! Client authentication at the bank by the registration's
//! `token_endpoint_auth_method` (RFC 8705 §2: `tls_client_auth` beside
//! `private_key_jwt`), and transport certificates trusted by the
//! registration's subject, so a TPP rotates its certificate without being
//! onboarded again while the directory still revokes one certificate.
//!
//! The requests go through the bank's API router with the connection's
//! certificate as the accept loop hands it over; the certificate is
//! re-verified against the scheme bundle there, as after a handshake.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::TempDir;
use fapi_core::crypto::{default_provider, Algorithm, SigningKey};
use fapi_core::jose::sign_compact;
use fapi_core::jwk::{Jwk, JwkSet};
use fapi_core::{Clock, SystemClock};
use fapi_examples::bank::tls::ConnectionInfo;
use fapi_examples::bank::{build, BankApps, BankConfig};
use fapi_examples::pki::{DevPki, FileKeySource, KeySource};
use fapi_examples::registry::{onboard, verify_software_statement, Registration};
use fapi_mtls_binding::ClientCertificate;
use serde_json::{json, Value};
use tower::ServiceExt;

const ISSUER: &str = "https://localhost:9443";
const API: &str = "https://localhost:9443";

struct Fixture {
    dir: TempDir,
    apps: BankApps,
    keys: FileKeySource,
    /// tpp-a's first certificate (DER), onboarded from its statement.
    tpp_a: Vec<u8>,
    /// tpp-b's certificate (DER).
    tpp_b: Vec<u8>,
    /// tpp-t's certificate (DER): a `tls_client_auth` client.
    tpp_t: Vec<u8>,
    /// A key tpp-t registered in its JWKS (for request objects).
    tpp_t_key: Arc<dyn SigningKey>,
}

fn der_of(path: &std::path::Path) -> Vec<u8> {
    ClientCertificate::from_pem(&std::fs::read_to_string(path).unwrap())
        .unwrap()
        .der()
        .to_vec()
}

fn fixture() -> Fixture {
    let dir = TempDir::new("client-auth");
    let provider = default_provider();
    let now = SystemClock.now();
    let pki = DevPki::generate(&dir.0, &*provider, &["tpp-a", "tpp-b"], now).unwrap();
    let config = BankConfig::development(&dir.0);
    let clock = Arc::new(fapi_examples::bank::OffsetClock::default());
    let apps = build(&config, clock, ISSUER, API).unwrap();
    let profile = config.profile().unwrap();
    let directory_keys = config.directory_keys(&*provider).unwrap();
    for files in &pki.tpps {
        let registration = verify_software_statement(
            &std::fs::read_to_string(&files.software_statement).unwrap(),
            &directory_keys,
            &config.directory_issuer,
            profile,
            now,
        )
        .unwrap();
        let stored = futures_executor::block_on(onboard(
            &apps.registry(),
            &registration,
            &ClientCertificate::from_der(&der_of(&files.certificate)).unwrap(),
            &apps.trust,
            &*provider,
            profile,
            now,
        ))
        .unwrap();
        // the statement names no subject: the onboarded certificate's is kept
        assert_eq!(
            stored
                .certificate_subject
                .tls_client_auth_subject_dn
                .as_deref(),
            Some(
                format!(
                    "CN={0}-software,OU={0}-org,organizationIdentifier=PSDGB-FCA-{0},O={0} Ltd,C=GB",
                    files.client_id
                )
                .as_str()
            )
        );
    }
    // tpp-t: onboarded from a metadata document as a tls_client_auth client
    let (cert, _) = DevPki::issue_client_certificate(&dir.0, "tpp-t").unwrap();
    let tpp_t_key = provider.generate_signing_key(Algorithm::Es256).unwrap();
    let registration: Registration = serde_json::from_value(json!({
        "client_id": "tpp-t",
        "client_name": "TLS Client Auth TPP Ltd",
        "redirect_uris": ["https://tpp-t.example/cb"],
        "jwks": JwkSet::new(vec![Jwk::from_public_key(tpp_t_key.public_key().clone(), Some("tpp-t-es256".into()))]).to_json(),
        "token_endpoint_auth_method": "tls_client_auth",
        "tls_client_auth_subject_dn": "CN=tpp-t-software,OU=tpp-t-org,organizationIdentifier=PSDGB-FCA-tpp-t,O=tpp-t Ltd,C=GB",
        "software_roles": ["AISP"],
    }))
    .unwrap();
    let tpp_t = der_of(&cert);
    futures_executor::block_on(onboard(
        &apps.registry(),
        &registration,
        &ClientCertificate::from_der(&tpp_t).unwrap(),
        &apps.trust,
        &*provider,
        profile,
        now,
    ))
    .unwrap();
    Fixture {
        keys: FileKeySource::new(&dir.0, provider),
        tpp_a: der_of(&pki.tpps[0].certificate),
        tpp_b: der_of(&pki.tpps[1].certificate),
        tpp_t,
        tpp_t_key,
        apps,
        dir,
    }
}

impl Fixture {
    /// A new certificate of the scheme CA for `subject_of` (the development
    /// PKI's DN for that name), with its own key.
    fn issue(&self, subject_of: &str) -> Vec<u8> {
        // issued into a directory of its own, so the fixture's files stay
        let other = self
            .dir
            .0
            .join(format!("issued-{}", fapi_core::random::token(4).unwrap()));
        std::fs::create_dir(&other).unwrap();
        for f in ["scheme-ca.pem", "scheme-ca.key.pem"] {
            std::fs::copy(self.dir.0.join(f), other.join(f)).unwrap();
        }
        let (cert, _) = DevPki::issue_client_certificate(&other, subject_of).unwrap();
        der_of(&cert)
    }

    /// `POST path` with `form`, over a connection that presented `cert`.
    async fn post(&self, path: &str, form: String, cert: &[u8]) -> (StatusCode, Value) {
        let mut req = Request::post(path)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(form))
            .unwrap();
        req.extensions_mut().insert(ConnectionInfo::new(
            Some(Arc::new(cert.to_vec())),
            "127.0.0.1:40000".parse().unwrap(),
        ));
        self.send(req).await
    }

    async fn send(&self, req: Request<Body>) -> (StatusCode, Value) {
        let r = self.apps.api.clone().oneshot(req).await.unwrap();
        let status = r.status();
        let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
        (status, v)
    }

    /// tpp-a's `private_key_jwt` assertion.
    fn assertion(&self) -> String {
        let now = SystemClock.now().as_secs();
        let claims = json!({ "iss": "tpp-a", "sub": "tpp-a", "aud": ISSUER, "jti": fapi_core::random::token(16).unwrap(), "iat": now, "exp": now + 60 });
        let key = self.keys.signing_key("tpp-a-signing").unwrap();
        sign_compact(
            &*key,
            Some("tpp-a-signing"),
            None,
            claims.as_object().unwrap(),
        )
        .unwrap()
    }

    /// A `client_credentials` token for tpp-a over `cert`.
    async fn token_a(&self, cert: &[u8]) -> (StatusCode, Value) {
        self.token_a_with(&self.assertion(), cert).await
    }

    /// The same, with `assertion`.
    async fn token_a_with(&self, assertion: &str, cert: &[u8]) -> (StatusCode, Value) {
        let form = form(&[
            ("client_id", "tpp-a"),
            (
                "client_assertion_type",
                fapi_core::client_auth::JWT_BEARER_ASSERTION_TYPE,
            ),
            ("client_assertion", assertion),
            ("grant_type", "client_credentials"),
            ("scope", "accounts"),
        ]);
        self.post("/token", form, cert).await
    }

    /// A `client_credentials` token for tpp-t (`tls_client_auth`) over
    /// `cert`.
    async fn token_t(&self, cert: &[u8]) -> (StatusCode, Value) {
        let form = form(&[
            ("client_id", "tpp-t"),
            ("grant_type", "client_credentials"),
            ("scope", "accounts"),
        ]);
        self.post("/token", form, cert).await
    }

    /// An account-access consent created with `token` over `cert`: the
    /// resource chain (binding and the directory's live standing).
    async fn create_consent(&self, token: &str, cert: &[u8]) -> StatusCode {
        let mut req = Request::post("/open-banking/v3.1/aisp/account-access-consents")
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::from(
                json!({ "Data": { "Permissions": ["ReadAccountsBasic"] }, "Risk": {} }).to_string(),
            ))
            .unwrap();
        req.extensions_mut().insert(ConnectionInfo::new(
            Some(Arc::new(cert.to_vec())),
            "127.0.0.1:40000".parse().unwrap(),
        ));
        self.send(req).await.0
    }

    /// The `x5t#S256` tpp-t's introspection says `token` is bound to.
    async fn bound_to(&self, token: &str) -> String {
        let (status, v) = self
            .post(
                "/introspect",
                form(&[("client_id", "tpp-t"), ("token", token)]),
                &self.tpp_t,
            )
            .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["active"], true, "{v}");
        v["cnf"]["x5t#S256"].as_str().unwrap().to_owned()
    }
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut f = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        f.append_pair(k, v);
    }
    f.finish()
}

fn thumbprint(der: &[u8]) -> String {
    ClientCertificate::from_der(der)
        .unwrap()
        .thumbprint()
        .to_b64url()
}

fn assert_invalid_client(status: StatusCode, v: &Value, says: &str) {
    assert_eq!(status, 401, "{v}");
    assert_eq!(v["error"], "invalid_client", "{v}");
    let description = v["error_description"].as_str().unwrap_or_default();
    assert!(
        description.contains(says),
        "{description:?} should say {says:?}"
    );
}

/// A `tls_client_auth` client authenticates by its certificate alone: the
/// token is bound to it, and the resource chain serves it.
#[tokio::test]
async fn a_tls_client_auth_client_gets_a_token_bound_to_its_certificate() {
    let f = fixture();
    let (status, v) = f.token_t(&f.tpp_t).await;
    assert_eq!(status, 200, "{v}");
    let token = v["access_token"].as_str().unwrap();
    assert_eq!(f.bound_to(token).await, thumbprint(&f.tpp_t));
    assert_eq!(f.create_consent(token, &f.tpp_t).await, 201);
}

/// What a `tls_client_auth` client is refused, each next to the request
/// above that succeeds.
#[tokio::test]
async fn a_tls_client_auth_client_is_refused_without_its_own_certificate() {
    let f = fixture();
    // no client_id: nothing names the client
    let (status, v) = f
        .post(
            "/token",
            form(&[("grant_type", "client_credentials"), ("scope", "accounts")]),
            &f.tpp_t,
        )
        .await;
    assert_invalid_client(status, &v, "client authentication is required");
    // a certificate of the scheme CA for another subject
    let (status, v) = f.token_t(&f.issue("tpp-z")).await;
    assert_invalid_client(status, &v, "subject DN");
    // another TPP's certificate
    let (status, v) = f.token_t(&f.tpp_b).await;
    assert_invalid_client(status, &v, "two different clients");
    // its own subject on a certificate from another CA
    let outside = TempDir::new("client-auth-other-ca");
    let other = DevPki::generate(
        &outside.0,
        &*default_provider(),
        &["tpp-t"],
        SystemClock.now(),
    )
    .unwrap();
    let (status, v) = f.token_t(&der_of(&other.tpps[0].certificate)).await;
    assert_invalid_client(status, &v, "no longer trusted");
    // an assertion where the registration says tls_client_auth
    let now = SystemClock.now().as_secs();
    let claims = json!({ "iss": "tpp-t", "sub": "tpp-t", "aud": ISSUER, "jti": "j-1", "iat": now, "exp": now + 60 });
    let assertion = sign_compact(
        &*f.tpp_t_key,
        Some("tpp-t-es256"),
        None,
        claims.as_object().unwrap(),
    )
    .unwrap();
    let (status, v) = f
        .post(
            "/token",
            form(&[
                ("client_id", "tpp-t"),
                (
                    "client_assertion_type",
                    fapi_core::client_auth::JWT_BEARER_ASSERTION_TYPE,
                ),
                ("client_assertion", &assertion),
                ("grant_type", "client_credentials"),
                ("scope", "accounts"),
            ]),
            &f.tpp_t,
        )
        .await;
    assert_eq!(
        (status, &v["error"]),
        (StatusCode::UNAUTHORIZED, &json!("invalid_client")),
        "{v}"
    );
    // half an assertion
    let (status, v) = f
        .post(
            "/token",
            form(&[
                ("client_id", "tpp-t"),
                (
                    "client_assertion_type",
                    fapi_core::client_auth::JWT_BEARER_ASSERTION_TYPE,
                ),
                ("grant_type", "client_credentials"),
            ]),
            &f.tpp_t,
        )
        .await;
    assert_invalid_client(status, &v, "together");
    // the happy twin, after all of that
    assert_eq!(f.token_t(&f.tpp_t).await.0, 200);
}

/// A replayed assertion admits no certificate: the rotation happens only
/// once the client is fully authenticated.
#[tokio::test]
async fn a_replayed_assertion_admits_no_rotated_certificate() {
    let f = fixture();
    let assertion = f.assertion();
    assert_eq!(f.token_a_with(&assertion, &f.tpp_a).await.0, 200);
    let rotated = f.issue("tpp-a");
    let (status, v) = f.token_a_with(&assertion, &rotated).await;
    assert_eq!(
        (status, &v["error"]),
        (StatusCode::UNAUTHORIZED, &json!("invalid_client")),
        "{v}"
    );
    let owner = f
        .apps
        .registry()
        .client_id_by_certificate(ClientCertificate::from_der(&rotated).unwrap().thumbprint())
        .await
        .unwrap();
    assert_eq!(owner, None);
    assert_eq!(
        f.token_a(&rotated).await.0,
        200,
        "the twin with a fresh assertion"
    );
}

/// A `private_key_jwt` client must send its assertion: its certificate
/// alone does not authenticate it.
#[tokio::test]
async fn a_private_key_jwt_client_is_not_authenticated_by_its_certificate_alone() {
    let f = fixture();
    let (status, v) = f
        .post(
            "/token",
            form(&[
                ("client_id", "tpp-a"),
                ("grant_type", "client_credentials"),
                ("scope", "accounts"),
            ]),
            &f.tpp_a,
        )
        .await;
    assert_invalid_client(status, &v, "registered for private_key_jwt");
    assert_eq!(f.token_a(&f.tpp_a).await.0, 200);
}

/// The rotation: a new certificate with the registered subject works for
/// tpp-a without onboarding again (token, binding, resource call) and the
/// first keeps working; the directory revokes the new one on its own.
#[tokio::test]
async fn a_rotated_certificate_works_without_onboarding_and_is_revoked_on_its_own() {
    let f = fixture();
    let (status, v) = f.token_a(&f.tpp_a).await;
    assert_eq!(status, 200, "{v}");
    let first_token = v["access_token"].as_str().unwrap().to_owned();

    let rotated = f.issue("tpp-a");
    let (status, v) = f.token_a(&rotated).await;
    assert_eq!(status, 200, "{v}");
    let rotated_token = v["access_token"].as_str().unwrap().to_owned();
    assert_eq!(f.create_consent(&rotated_token, &rotated).await, 201);
    // each token stays bound to its own certificate
    assert_eq!(f.create_consent(&first_token, &f.tpp_a).await, 201);
    assert_eq!(f.create_consent(&rotated_token, &f.tpp_a).await, 401);
    // the registry now names tpp-a the rotated certificate's owner, and
    // the audit trail says when it became tpp-a's (once)
    let owner = f
        .apps
        .registry()
        .client_id_by_certificate(ClientCertificate::from_der(&rotated).unwrap().thumbprint())
        .await
        .unwrap();
    assert_eq!(owner.as_ref().map(|c| c.as_str()), Some("tpp-a"));
    assert_eq!(f.token_a(&rotated).await.0, 200);
    let added: Vec<(String, Option<String>)> = f
        .apps
        .stores
        .audit
        .entries(1, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.event.action {
            fapi_consent::audit::AuditAction::CertificateAdded { thumbprint } => {
                Some((thumbprint, e.event.client_id.map(|c| c.as_str().to_owned())))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        added,
        vec![(thumbprint(&rotated), Some("tpp-a".to_owned()))]
    );

    // revoked in the directory: the rotated certificate is refused at once,
    // the first one is not
    f.apps
        .registry()
        .revoke_certificate(
            ClientCertificate::from_der(&rotated).unwrap().thumbprint(),
            SystemClock.now(),
        )
        .await
        .unwrap();
    assert_eq!(f.create_consent(&rotated_token, &rotated).await, 401);
    let (status, v) = f.token_a(&rotated).await;
    assert_invalid_client(status, &v, "revoked");
    assert_eq!(f.create_consent(&first_token, &f.tpp_a).await, 201);
    assert_eq!(f.token_a(&f.tpp_a).await.0, 200);
}

/// What a rotation does not open: a certificate for another subject, or
/// one another TPP holds, is refused to tpp-a, and nothing is recorded.
#[tokio::test]
async fn a_certificate_of_another_subject_or_tpp_is_not_taken_for_a_rotation() {
    let f = fixture();
    let stranger = f.issue("tpp-z");
    let (status, v) = f.token_a(&stranger).await;
    assert_invalid_client(status, &v, "subject DN");
    let owner = f
        .apps
        .registry()
        .client_id_by_certificate(ClientCertificate::from_der(&stranger).unwrap().thumbprint())
        .await
        .unwrap();
    assert_eq!(owner, None);
    let (status, v) = f.token_a(&f.tpp_b).await;
    assert_eq!(
        (status, &v["error"]),
        (StatusCode::UNAUTHORIZED, &json!("invalid_client")),
        "{v}"
    );
    assert_eq!(f.token_a(&f.tpp_a).await.0, 200);
}

/// A registration stored before subjects were kept (no
/// `tls_client_auth_*` value) still pins its one certificate: a rotated
/// certificate is refused until the TPP is onboarded again.
#[tokio::test]
async fn a_registration_without_a_subject_pins_its_certificate() {
    let f = fixture();
    let registry = f.apps.registry();
    let id = fapi_core::ClientId::try_from("tpp-a").unwrap();
    let mut registration = registry.client(&id).await.unwrap().unwrap().registration;
    registration.certificate_subject = Default::default();
    registry
        .register(
            &registration,
            ClientCertificate::from_der(&f.tpp_a).unwrap().thumbprint(),
            SystemClock.now(),
        )
        .await
        .unwrap();
    let (status, v) = f.token_a(&f.issue("tpp-a")).await;
    assert_invalid_client(status, &v, "not registered");
    assert_eq!(f.token_a(&f.tpp_a).await.0, 200);
}

// ---- self_signed_tls_client_auth (RFC 8705 §2.2) ----

/// A self-signed certificate of `key`, with the development PKI's subject
/// for `name` (so it looks like that TPP's scheme certificate).
fn self_signed(key: &dyn SigningKey, name: &str) -> Vec<u8> {
    let pem = fapi_core::crypto::signing_key_to_pkcs8_pem(key).unwrap();
    let pair = rcgen::KeyPair::from_pem(&pem).unwrap();
    let mut p = rcgen::CertificateParams::new(vec![format!("{name}.example")]).unwrap();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(rcgen::DnType::CountryName, "GB");
    p.distinguished_name
        .push(rcgen::DnType::OrganizationName, format!("{name} Ltd"));
    p.distinguished_name.push(
        rcgen::DnType::CustomDnType(vec![2, 5, 4, 97]),
        format!("PSDGB-FCA-{name}"),
    );
    p.distinguished_name
        .push(rcgen::DnType::OrganizationalUnitName, format!("{name}-org"));
    p.distinguished_name
        .push(rcgen::DnType::CommonName, format!("{name}-software"));
    p.self_signed(&pair).unwrap().der().to_vec()
}

fn es256() -> Arc<dyn SigningKey> {
    default_provider()
        .generate_signing_key(Algorithm::Es256)
        .unwrap()
}

/// tpp-s, registered for `self_signed_tls_client_auth` with `key`, onboarded
/// with `certificate`.
async fn onboard_self_signed(
    f: &Fixture,
    key: &dyn SigningKey,
    certificate: &[u8],
) -> Result<Registration, fapi_examples::registry::OnboardingError> {
    let registration: Registration = serde_json::from_value(json!({
        "client_id": "tpp-s",
        "client_name": "Self-signed TPP Ltd",
        "redirect_uris": ["https://tpp-s.example/cb"],
        "jwks": JwkSet::new(vec![Jwk::from_public_key(key.public_key().clone(), Some("tpp-s".into()))]).to_json(),
        "token_endpoint_auth_method": "self_signed_tls_client_auth",
        "software_roles": ["AISP"],
    }))
    .unwrap();
    let config = BankConfig::development(&f.dir.0);
    onboard(
        &f.apps.registry(),
        &registration,
        &ClientCertificate::from_der(certificate).unwrap(),
        &f.apps.trust,
        &*default_provider(),
        config.profile().unwrap(),
        SystemClock.now(),
    )
    .await
}

async fn token_as(f: &Fixture, client: &str, cert: &[u8]) -> (StatusCode, Value) {
    let form = form(&[
        ("client_id", client),
        ("grant_type", "client_credentials"),
        ("scope", "accounts"),
    ]);
    f.post("/token", form, cert).await
}

/// A `self_signed_tls_client_auth` client is known by the key its JWKS
/// registers: its certificate needs no chain, a new certificate of the same
/// key works, one of another key does not.
#[tokio::test]
async fn a_self_signed_client_is_known_by_its_registered_key() {
    let f = fixture();
    let key = es256();
    let first = self_signed(&*key, "tpp-s");
    let stored = onboard_self_signed(&f, &*key, &first).await.unwrap();
    assert!(!stored.certificate_subject.is_set());
    let (status, v) = token_as(&f, "tpp-s", &first).await;
    assert_eq!(status, 200, "{v}");
    let token = v["access_token"].as_str().unwrap().to_owned();
    assert_eq!(f.create_consent(&token, &first).await, 201);
    // a new certificate of the registered key: admitted and bound
    let renewed = self_signed(&*key, "tpp-s-renewed");
    let (status, v) = token_as(&f, "tpp-s", &renewed).await;
    assert_eq!(status, 200, "{v}");
    let renewed_token = v["access_token"].as_str().unwrap().to_owned();
    assert_eq!(f.create_consent(&renewed_token, &renewed).await, 201);
    assert_eq!(f.create_consent(&renewed_token, &first).await, 401);
    // another key, even with the same subject
    let (status, v) = token_as(&f, "tpp-s", &self_signed(&*es256(), "tpp-s")).await;
    assert_invalid_client(status, &v, "registered keys");
}

/// A self-signed certificate never stands in for a scheme certificate:
/// refused to a `tls_client_auth` client whose subject it copies, to a
/// `private_key_jwt` client whose subject it copies, and to one that
/// presents the self-signed client's certificate.
#[tokio::test]
async fn a_self_signed_certificate_does_not_authenticate_a_scheme_client() {
    let f = fixture();
    let key = es256();
    let tpp_s = self_signed(&*key, "tpp-s");
    onboard_self_signed(&f, &*key, &tpp_s).await.unwrap();
    let (status, v) = f.token_t(&self_signed(&*es256(), "tpp-t")).await;
    assert_invalid_client(status, &v, "self-signed");
    let (status, v) = f.token_a(&self_signed(&*es256(), "tpp-a")).await;
    assert_invalid_client(status, &v, "self-signed");
    let (status, v) = f.token_a(&tpp_s).await;
    assert_invalid_client(status, &v, "self-signed");
    // the twins
    assert_eq!(f.token_t(&f.tpp_t).await.0, 200);
    assert_eq!(f.token_a(&f.tpp_a).await.0, 200);
    assert_eq!(token_as(&f, "tpp-s", &tpp_s).await.0, 200);
}

/// Onboarding a self-signed client checks the certificate's key against
/// the registered JWKS; `tls_client_auth_*` values do not apply to it.
#[tokio::test]
async fn onboarding_a_self_signed_client_checks_its_key() {
    let f = fixture();
    let key = es256();
    let e = onboard_self_signed(&f, &*key, &self_signed(&*es256(), "tpp-s"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("registered keys"), "{e}");
    let id = fapi_core::ClientId::try_from("tpp-s").unwrap();
    assert!(f.apps.registry().client(&id).await.unwrap().is_none());
    let mut registration: Registration = serde_json::from_value(json!({
        "client_id": "tpp-s",
        "client_name": "Self-signed TPP Ltd",
        "redirect_uris": ["https://tpp-s.example/cb"],
        "jwks": JwkSet::new(vec![Jwk::from_public_key(key.public_key().clone(), Some("tpp-s".into()))]).to_json(),
        "token_endpoint_auth_method": "self_signed_tls_client_auth",
    }))
    .unwrap();
    registration.certificate_subject.tls_client_auth_san_dns = Some("tpp-s.example".into());
    let e = registration
        .metadata(&*default_provider(), fapi_core::Profile::Fapi2Security)
        .unwrap_err();
    assert!(e.to_string().contains("do not apply"), "{e}");
    onboard_self_signed(&f, &*key, &self_signed(&*key, "tpp-s"))
        .await
        .unwrap();
}
