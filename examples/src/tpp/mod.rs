//! A TPP client built on the crates: request objects and client assertions
//! signed with fapi-core, PAR over mutual TLS, the JARM response verified
//! with fapi-jarm, the token exchange with PKCE, resource calls with the
//! certificate-bound token, and `x-jws-signature` both ways.
//!
//! It is configured by the authorization server's discovery URL, its
//! certificate paths and its key names, so it can talk to any FAPI
//! authorization server that trusts its certificate, not only the example
//! bank. [`ScriptedCustomer`] plays the customer's browser for the demo
//! and the tests.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use fapi_core::client::AuthMethod;
use fapi_core::crypto::{Algorithm, CryptoProvider, SigningKey};
use fapi_core::jose::detached::{DetachedJwsError, ObJwsSigner, ObJwsVerifier};
use fapi_core::jose::sign_compact;
use fapi_core::jose::JoseError;
use fapi_core::jwk::{JwkSet, KeySelectionError, KeySet};
use fapi_core::{random, Profile};
use fapi_core::{ClientId, CodeVerifier, Issuer, State};
use fapi_core::{Clock, UnixTime};
use fapi_jarm::{JarmError, JarmOutcome, JarmVerifier};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::pki::KeySource;
use fapi_mtls_binding::tls::{restrict_to_fapi, FAPI_PROTOCOL_VERSIONS};

mod customer;
mod transport;

pub use customer::ScriptedCustomer;
pub use transport::browser_client;
use transport::*;

/// Why a TPP call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TppError {
    /// Transport (TLS, connection, timeout).
    #[error("transport: {0}")]
    Transport(String),
    /// The server answered with an error status.
    #[error("{status}: {body}")]
    Status {
        /// HTTP status.
        status: u16,
        /// The body (an OAuth or OB error document).
        body: String,
    },
    /// The answer is not what the protocol says.
    #[error("unexpected response: {0}")]
    Protocol(String),
    /// A local key, file or signing problem.
    #[error("local: {0}")]
    Local(String),
}

impl TppError {
    /// The HTTP status, if the server answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The OAuth `error` or OB `Errors[0].ErrorCode` of the answer.
    pub fn error_code(&self) -> Option<String> {
        let Self::Status { body, .. } = self else {
            return None;
        };
        let v: Value = serde_json::from_str(body).ok()?;
        v.get("error")
            .or_else(|| v.pointer("/Errors/0/ErrorCode"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    }
}

fn local(e: impl std::fmt::Display) -> TppError {
    TppError::Local(e.to_string())
}

fn transport(e: impl std::fmt::Display) -> TppError {
    TppError::Transport(e.to_string())
}

/// How to reach the authorization server and who this TPP is.
#[derive(Clone, Debug)]
pub struct TppConfig {
    /// The authorization server's discovery URL.
    pub discovery_url: String,
    /// The server's CA bundle (PEM): trust anchors for its TLS certificate.
    pub server_ca: PathBuf,
    /// This TPP's client id.
    pub client_id: String,
    /// Its transport certificate (PEM).
    pub certificate: PathBuf,
    /// Key-source name of the certificate's private key.
    pub certificate_key: String,
    /// Key-source name of its JWS signing key (also its `kid`).
    pub signing_key: String,
    /// Its registered redirect URI.
    pub redirect_uri: String,
    /// `http://openbanking.org.uk/iss` of its `x-jws-signature`s.
    pub signing_issuer: String,
    /// The profile (algorithms, lifetimes).
    pub profile: Profile,
    /// How it authenticates at the token, PAR, introspection and
    /// revocation endpoints (its registration's
    /// `token_endpoint_auth_method`): `private_key_jwt` sends an assertion;
    /// `tls_client_auth` and `self_signed_tls_client_auth` send `client_id`
    /// and let the transport certificate authenticate.
    pub auth_method: AuthMethod,
}

impl TppConfig {
    /// A configuration with the development PKI's naming conventions: the
    /// certificate key named after the client, the signing key
    /// `<client>-signing`, the redirect URI `https://<client>.example/cb`
    /// and the signing issuer `<client>-org/<client>-software`. Change any
    /// field for a TPP named otherwise.
    pub fn development(
        client_id: &str,
        discovery_url: String,
        server_ca: PathBuf,
        certificate: PathBuf,
        profile: Profile,
    ) -> Self {
        Self {
            discovery_url,
            server_ca,
            client_id: client_id.to_owned(),
            certificate,
            certificate_key: client_id.to_owned(),
            signing_key: format!("{client_id}-signing"),
            redirect_uri: format!("https://{client_id}.example/cb"),
            signing_issuer: format!("{client_id}-org/{client_id}-software"),
            profile,
            auth_method: AuthMethod::PrivateKeyJwt,
        }
    }
}

/// What a TPP keeps between pushing a request and receiving the response.
#[derive(Debug)]
pub struct PendingAuthorization {
    /// Where to send the customer.
    pub authorization_url: String,
    /// The `request_uri` returned by PAR.
    pub request_uri: String,
    /// The state sent.
    pub state: State,
    /// The PKCE verifier (secret).
    pub verifier: CodeVerifier,
}

/// The token endpoint's answer.
#[derive(Clone, Debug)]
pub struct Tokens {
    /// The access token.
    pub access_token: String,
    /// The refresh token, when issued.
    pub refresh_token: Option<String>,
    /// The ID token, when `openid` was asked for.
    pub id_token: Option<String>,
}

/// A response from a resource call.
#[derive(Clone, Debug)]
pub struct ApiResponse {
    /// Status.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl ApiResponse {
    /// The body as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The `x-fapi-interaction-id` header.
    pub fn interaction_id(&self) -> Option<&str> {
        self.headers
            .get("x-fapi-interaction-id")
            .and_then(|v| v.to_str().ok())
    }

    fn ok(self) -> Result<Self, TppError> {
        if (200..300).contains(&self.status) {
            Ok(self)
        } else {
            Err(TppError::Status {
                status: self.status,
                body: String::from_utf8_lossy(&self.body).into_owned(),
            })
        }
    }
}

/// The authorization server's metadata this client uses.
#[derive(Clone, Debug)]
pub struct Discovery {
    /// `issuer`.
    pub issuer: Issuer,
    /// `authorization_endpoint`.
    pub authorization_endpoint: String,
    /// `pushed_authorization_request_endpoint` (mTLS alias when given).
    pub par_endpoint: String,
    /// `token_endpoint` (mTLS alias when given).
    pub token_endpoint: String,
    /// The resource base for AIS (`openbanking.aisp`), if advertised.
    pub aisp: Option<String>,
    /// The resource base for PIS (`openbanking.pisp`), if advertised.
    pub pisp: Option<String>,
    /// `introspection_endpoint` (mTLS alias when given), if advertised.
    pub introspection_endpoint: Option<String>,
    /// `revocation_endpoint` (mTLS alias when given), if advertised.
    pub revocation_endpoint: Option<String>,
    /// `userinfo_endpoint` (mTLS alias when given), if advertised.
    pub userinfo_endpoint: Option<String>,
    /// `registration_endpoint` (mTLS alias when given), if advertised.
    pub registration_endpoint: Option<String>,
    /// `consent_models_supported` (the example bank's: `openbanking_intent`,
    /// `scopes`), if advertised.
    pub consent_models: Option<Vec<String>>,
    /// `token_endpoint_auth_methods_supported` (empty when not advertised).
    pub token_endpoint_auth_methods_supported: Vec<String>,
}

impl Discovery {
    /// Whether the server takes UK OB intents: it advertises the AIS
    /// resources and does not say that it takes scopes alone only.
    pub fn takes_uk_ob_intents(&self) -> bool {
        self.aisp.is_some()
            && self
                .consent_models
                .as_ref()
                .is_none_or(|m| m.iter().any(|x| x == "openbanking_intent"))
    }
}

/// A TPP.
#[derive(Debug)]
pub struct Tpp {
    config: TppConfig,
    id: ClientId,
    mtls: reqwest::Client,
    public: reqwest::Client,
    signing: Arc<dyn SigningKey>,
    discovery: Discovery,
    jwks_uri: String,
    provider: Arc<dyn CryptoProvider>,
    server_keys: std::sync::RwLock<Arc<KeySet>>,
    /// When the JWKS was last fetched again: one fetch at a time, at most
    /// one every [`JWKS_REFETCH_INTERVAL`].
    jwks_fetched: tokio::sync::Mutex<Option<std::time::Instant>>,
    clock: Arc<dyn Clock>,
}

/// The shortest interval between two fetches of the server's JWKS on an
/// unknown `kid`, so a stream of forged `kid`s cannot make the TPP hammer
/// the server.
pub const JWKS_REFETCH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// The strings of the array `name`, if it is one.
fn strings(v: &Value, name: &str) -> Option<Vec<String>> {
    v.get(name).and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    })
}

fn string(v: &Value, name: &str) -> Result<String, TppError> {
    v.get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| TppError::Protocol(format!("{name} missing")))
}

impl Tpp {
    /// Reads the TPP's certificate and keys, fetches the server's
    /// discovery document and JWKS.
    ///
    /// # Errors
    /// [`TppError`].
    pub async fn connect(
        config: TppConfig,
        keys: &dyn KeySource,
        provider: Arc<dyn CryptoProvider>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, TppError> {
        use rustls_pki_types::pem::PemObject;
        let server_ca = std::fs::read_to_string(&config.server_ca).map_err(local)?;
        let chain_pem = std::fs::read_to_string(&config.certificate).map_err(local)?;
        let chain = rustls_pki_types::CertificateDer::pem_slice_iter(chain_pem.as_bytes())
            .map(|c| c.map(|c| c.to_vec()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(local)?;
        let key = keys
            .tls_private_key(&config.certificate_key)
            .map_err(local)?;
        let mtls = http_client(&server_ca, Some((chain, key)))?;
        let public = http_client(&server_ca, None)?;
        let signing = keys.signing_key(&config.signing_key).map_err(local)?;
        let meta = read(
            public
                .get(&config.discovery_url)
                .send()
                .await
                .map_err(transport)?,
        )
        .await?
        .ok()?
        .json();
        let aliases = meta
            .get("mtls_endpoint_aliases")
            .cloned()
            .unwrap_or_default();
        let endpoint = |name: &str| {
            aliases
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .map_or_else(|| string(&meta, name), Ok)
        };
        let discovery = Discovery {
            issuer: Issuer::try_from(string(&meta, "issuer")?.as_str()).map_err(local)?,
            authorization_endpoint: string(&meta, "authorization_endpoint")?,
            par_endpoint: endpoint("pushed_authorization_request_endpoint")?,
            token_endpoint: endpoint("token_endpoint")?,
            aisp: meta
                .pointer("/openbanking/aisp")
                .and_then(Value::as_str)
                .map(str::to_owned),
            pisp: meta
                .pointer("/openbanking/pisp")
                .and_then(Value::as_str)
                .map(str::to_owned),
            introspection_endpoint: endpoint("introspection_endpoint").ok(),
            revocation_endpoint: endpoint("revocation_endpoint").ok(),
            userinfo_endpoint: endpoint("userinfo_endpoint").ok(),
            registration_endpoint: endpoint("registration_endpoint").ok(),
            consent_models: strings(&meta, "consent_models_supported"),
            token_endpoint_auth_methods_supported: strings(
                &meta,
                "token_endpoint_auth_methods_supported",
            )
            .unwrap_or_default(),
        };
        let jwks_uri = string(&meta, "jwks_uri")?;
        let server_keys = fetch_jwks(&public, &jwks_uri, &*provider, &config).await?;
        Ok(Self {
            id: ClientId::try_from(config.client_id.as_str()).map_err(local)?,
            config,
            mtls,
            public,
            signing,
            discovery,
            jwks_uri,
            provider,
            server_keys: std::sync::RwLock::new(Arc::new(server_keys)),
            jwks_fetched: tokio::sync::Mutex::new(None),
            clock,
        })
    }

    /// The server's signing keys as last fetched.
    pub fn server_keys(&self) -> Arc<KeySet> {
        self.server_keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Runs `verify` with the server's keys; if it fails because no key
    /// has the response's `kid` (the server rotated its signing key), fetches
    /// the JWKS again (at most once per [`JWKS_REFETCH_INTERVAL`]) and runs
    /// it once more.
    async fn with_server_keys<T, E>(
        &self,
        verify: impl Fn(&Arc<KeySet>) -> Result<T, E>,
        unknown_key: impl Fn(&E) -> bool,
    ) -> Result<Result<T, E>, TppError> {
        let before = self.server_keys();
        let first = verify(&before);
        match &first {
            Err(e) if unknown_key(e) => {}
            _ => return Ok(first),
        }
        {
            let mut fetched = self.jwks_fetched.lock().await;
            // another call may have fetched meanwhile
            if Arc::ptr_eq(&before, &self.server_keys()) {
                if fetched.is_some_and(|at| at.elapsed() < JWKS_REFETCH_INTERVAL) {
                    return Ok(first);
                }
                let keys =
                    fetch_jwks(&self.public, &self.jwks_uri, &*self.provider, &self.config).await?;
                *fetched = Some(std::time::Instant::now());
                *self
                    .server_keys
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(keys);
            }
        }
        Ok(verify(&self.server_keys()))
    }

    /// The server's metadata.
    pub fn discovery(&self) -> &Discovery {
        &self.discovery
    }

    /// What it was connected with.
    pub fn config(&self) -> &TppConfig {
        &self.config
    }

    /// This TPP's client id.
    pub fn client_id(&self) -> &ClientId {
        &self.id
    }

    fn now(&self) -> UnixTime {
        self.clock.now()
    }

    /// A fresh `private_key_jwt` assertion for the server's issuer.
    ///
    /// # Errors
    /// [`TppError::Local`].
    pub fn client_assertion(&self) -> Result<String, TppError> {
        let now = self.now().as_secs();
        let claims = json!({
            "iss": self.id.as_str(), "sub": self.id.as_str(), "aud": self.discovery.issuer.as_str(),
            "jti": random::token(16).map_err(local)?, "iat": now, "exp": now + 60,
        });
        sign_compact(
            &*self.signing,
            Some(&self.config.signing_key),
            None,
            claims.as_object().ok_or_else(|| local("claims"))?,
        )
        .map_err(local)
    }

    async fn post_form(&self, url: &str, params: &[(&str, &str)]) -> Result<Value, TppError> {
        Ok(self.post_form_as(url, params, None).await?.ok()?.json())
    }

    /// A form POST authenticated by the configured method, with `accept`
    /// as its `Accept` header when given; the answer as it came.
    async fn post_form_as(
        &self,
        url: &str,
        params: &[(&str, &str)],
        accept: Option<&str>,
    ) -> Result<ApiResponse, TppError> {
        let assertion = match self.config.auth_method {
            AuthMethod::PrivateKeyJwt => Some(self.client_assertion()?),
            // RFC 8705 §2: the certificate authenticates; client_id names it
            _ => None,
        };
        // built before any await: the serializer is not Send
        let body = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("client_id", self.id.as_str());
            if let Some(assertion) = &assertion {
                form.append_pair(
                    "client_assertion_type",
                    fapi_core::client_auth::JWT_BEARER_ASSERTION_TYPE,
                )
                .append_pair("client_assertion", assertion);
            }
            for (k, v) in params {
                form.append_pair(k, v);
            }
            form.finish()
        };
        let mut req = self
            .mtls
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded");
        if let Some(accept) = accept {
            req = req.header("accept", accept);
        }
        let resp = req.body(body).send().await.map_err(transport)?;
        read(resp).await
    }

    fn advertised<'a>(
        &self,
        endpoint: &'a Option<String>,
        name: &str,
    ) -> Result<&'a str, TppError> {
        endpoint
            .as_deref()
            .ok_or_else(|| TppError::Protocol(format!("discovery does not advertise {name}")))
    }

    /// What the server says of `token` (RFC 7662): the answer's JSON,
    /// `{"active": false}` for a token that is not this client's live one.
    ///
    /// # Errors
    /// [`TppError`].
    pub async fn introspect(&self, token: &str) -> Result<Value, TppError> {
        let url = self.advertised(
            &self.discovery.introspection_endpoint,
            "introspection_endpoint",
        )?;
        self.post_form(url, &[("token", token)]).await
    }

    /// [`Self::introspect`] asking for the signed answer (RFC 9701): the
    /// JWT's signature by the server's keys, `typ`, `iss`, `aud` (this
    /// client) and `iat` are verified, and its `token_introspection`
    /// returned.
    ///
    /// # Errors
    /// [`TppError::Protocol`] when the answer is not a valid signed
    /// introspection response.
    pub async fn introspect_signed(&self, token: &str) -> Result<Value, TppError> {
        use fapi_core::jose::{ExpectedType, JwsPolicy, UnverifiedJws};
        const MEDIA: &str = "application/token-introspection+jwt";
        let url = self.advertised(
            &self.discovery.introspection_endpoint,
            "introspection_endpoint",
        )?;
        let r = self
            .post_form_as(url, &[("token", token)], Some(MEDIA))
            .await?
            .ok()?;
        let media = r
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !media.eq_ignore_ascii_case(MEDIA) {
            return Err(TppError::Protocol(format!(
                "introspection answered {media}, not {MEDIA}"
            )));
        }
        let jwt = std::str::from_utf8(&r.body)
            .map_err(|_| TppError::Protocol("introspection JWT is not UTF-8".into()))?;
        let algorithms = self.config.profile.algorithms();
        let policy = JwsPolicy::new(algorithms, ExpectedType::Exact("token-introspection+jwt"));
        let verified = self
            .with_server_keys(
                |keys| UnverifiedJws::parse(jwt).and_then(|j| j.verify(keys, &policy)),
                |e| matches!(e, JoseError::Key(KeySelectionError::NotFound)),
            )
            .await?
            .map_err(|e| TppError::Protocol(format!("introspection JWT rejected: {e}")))?;
        let claims = verified.claims();
        let bad = |what: &str| TppError::Protocol(format!("introspection JWT: {what}"));
        if claims.string("iss").ok().flatten() != Some(self.discovery.issuer.as_str()) {
            return Err(bad("iss is not the server's issuer"));
        }
        if claims.string("aud").ok().flatten() != Some(self.id.as_str()) {
            return Err(bad("aud is not this client"));
        }
        let iat = claims
            .numeric_date("iat")
            .ok()
            .flatten()
            .ok_or_else(|| bad("iat is missing"))?;
        if iat.as_secs().abs_diff(self.now().as_secs()) > 60 {
            return Err(bad("iat is not within a minute of now"));
        }
        claims
            .get("token_introspection")
            .filter(|v| v.is_object())
            .cloned()
            .ok_or_else(|| bad("token_introspection is missing"))
    }

    /// Revokes one of this client's tokens (RFC 7009).
    ///
    /// # Errors
    /// [`TppError`].
    pub async fn revoke_token(&self, token: &str) -> Result<(), TppError> {
        let url = self.advertised(&self.discovery.revocation_endpoint, "revocation_endpoint")?;
        self.post_form_as(url, &[("token", token)], None)
            .await?
            .ok()
            .map(|_| ())
    }

    /// `GET` the userinfo endpoint with `token`; the answer as it came.
    ///
    /// # Errors
    /// [`TppError`].
    pub async fn userinfo(&self, token: &str) -> Result<ApiResponse, TppError> {
        let url = self.advertised(&self.discovery.userinfo_endpoint, "userinfo_endpoint")?;
        self.get(url, token).await
    }

    /// Registers this TPP with the server (RFC 7591, UK OB DCR): a request
    /// JWT signed with its signing key, carrying `software_statement` (the
    /// directory-signed statement), its redirect URI and auth method, sent
    /// over its transport certificate. The answer's JSON (it holds
    /// `registration_access_token` and `registration_client_uri`).
    ///
    /// # Errors
    /// [`TppError`] (`Status` with the server's error body).
    pub async fn register(&self, software_statement: &str) -> Result<Value, TppError> {
        let url = self.advertised(
            &self.discovery.registration_endpoint,
            "registration_endpoint",
        )?;
        let body = self.registration_request(software_statement)?;
        self.send_registration(self.mtls.post(url), body).await
    }

    /// Updates the registration at `uri` (RFC 7592 §2.2) with a new signed
    /// request, authorized by `token`.
    ///
    /// # Errors
    /// [`TppError`].
    pub async fn update_registration(
        &self,
        uri: &str,
        token: &str,
        software_statement: &str,
    ) -> Result<Value, TppError> {
        let body = self.registration_request(software_statement)?;
        self.send_registration(self.mtls.put(uri).bearer_auth(token), body)
            .await
    }

    /// The signed registration request for `software_statement`.
    ///
    /// # Errors
    /// [`TppError::Local`].
    pub fn registration_request(&self, software_statement: &str) -> Result<String, TppError> {
        use fapi_core::jose::UnverifiedJws;
        // the TPP's own statement: it names the software id the request is from
        let statement = UnverifiedJws::parse(software_statement.trim())
            .and_then(|s| s.unverified_claims())
            .map_err(local)?;
        let software_id = statement
            .required_string("software_id")
            .map_err(local)?
            .to_owned();
        let now = self.now().as_secs();
        let alg = self.signing.algorithm().jose_name();
        let claims = json!({
            "iss": software_id,
            "aud": self.discovery.issuer.as_str(),
            "iat": now,
            "exp": now + 300,
            "jti": random::token(16).map_err(local)?,
            "software_statement": software_statement.trim(),
            "redirect_uris": [self.config.redirect_uri],
            "token_endpoint_auth_method": self.config.auth_method.name(),
            "token_endpoint_auth_signing_alg": alg,
            "request_object_signing_alg": alg,
            "grant_types": ["authorization_code", "client_credentials", "refresh_token"],
            "response_types": ["code"],
            "application_type": "web",
        });
        sign_compact(
            &*self.signing,
            Some(&self.config.signing_key),
            Some("JWT"),
            claims.as_object().ok_or_else(|| local("claims"))?,
        )
        .map_err(local)
    }

    async fn send_registration(
        &self,
        request: reqwest::RequestBuilder,
        body: String,
    ) -> Result<Value, TppError> {
        let resp = request
            .header("content-type", "application/jwt")
            .body(body)
            .send()
            .await
            .map_err(transport)?;
        Ok(read(resp).await?.ok()?.json())
    }

    /// The registration at `uri` (RFC 7592 §2.1), read with `token`.
    ///
    /// # Errors
    /// [`TppError::Transport`].
    pub async fn read_registration(&self, uri: &str, token: &str) -> Result<ApiResponse, TppError> {
        let resp = self
            .mtls
            .get(uri)
            .bearer_auth(token)
            .send()
            .await
            .map_err(transport)?;
        read(resp).await
    }

    /// Deletes the registration at `uri` (RFC 7592 §2.3) with `token`.
    ///
    /// # Errors
    /// [`TppError`].
    pub async fn delete_registration(&self, uri: &str, token: &str) -> Result<(), TppError> {
        let resp = self
            .mtls
            .delete(uri)
            .bearer_auth(token)
            .send()
            .await
            .map_err(transport)?;
        read(resp).await?.ok().map(|_| ())
    }

    /// A client-credentials token for `scope` (consent creation).
    ///
    /// # Errors
    /// [`TppError`].
    pub async fn client_credentials(&self, scope: &str) -> Result<String, TppError> {
        let v = self
            .post_form(
                &self.discovery.token_endpoint,
                &[("grant_type", "client_credentials"), ("scope", scope)],
            )
            .await?;
        string(&v, "access_token")
    }

    /// Pushes a signed request object for `consent_id` and returns where to
    /// send the customer.
    ///
    /// # Errors
    /// [`TppError`].
    pub async fn push_authorization(
        &self,
        consent_id: &str,
        scope: &str,
    ) -> Result<PendingAuthorization, TppError> {
        self.push(Some(consent_id), scope).await
    }

    /// Pushes a signed request object that asks by `scope` alone (plain
    /// FAPI 2: no UK OB intent) and returns where to send the customer.
    ///
    /// # Errors
    /// [`TppError`].
    pub async fn push_authorization_by_scope(
        &self,
        scope: &str,
    ) -> Result<PendingAuthorization, TppError> {
        self.push(None, scope).await
    }

    async fn push(
        &self,
        consent_id: Option<&str>,
        scope: &str,
    ) -> Result<PendingAuthorization, TppError> {
        let now = self.now().as_secs();
        let verifier = CodeVerifier::generate().map_err(local)?;
        let state = State::try_from(random::token(16).map_err(local)?).map_err(local)?;
        let mut claims = json!({
            "iss": self.id.as_str(), "aud": self.discovery.issuer.as_str(), "client_id": self.id.as_str(),
            "nbf": now, "exp": now + 300, "jti": random::token(16).map_err(local)?,
            "response_type": "code", "response_mode": "jwt", "redirect_uri": self.config.redirect_uri,
            "scope": scope, "state": state.as_str(), "nonce": random::token(16).map_err(local)?,
            "code_challenge": verifier.challenge().as_str(), "code_challenge_method": "S256",
        });
        if let (Some(id), Some(obj)) = (consent_id, claims.as_object_mut()) {
            obj.insert(
                "claims".into(),
                json!({ "id_token": { "openbanking_intent_id": { "value": id, "essential": true } } }),
            );
        }
        let request = sign_compact(
            &*self.signing,
            Some(&self.config.signing_key),
            Some("oauth-authz-req+jwt"),
            claims.as_object().ok_or_else(|| local("claims"))?,
        )
        .map_err(local)?;
        let v = self
            .post_form(&self.discovery.par_endpoint, &[("request", &request)])
            .await?;
        let request_uri = string(&v, "request_uri")?;
        let q = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", self.id.as_str())
            .append_pair("request_uri", &request_uri)
            .finish();
        Ok(PendingAuthorization {
            authorization_url: format!("{}?{q}", self.discovery.authorization_endpoint),
            request_uri,
            state,
            verifier,
        })
    }

    /// Verifies the JARM response at the redirect `location` and exchanges
    /// its code (with the PKCE verifier) for tokens.
    ///
    /// # Errors
    /// [`TppError`]; a JARM error response (e.g. `access_denied`) is
    /// [`TppError::Protocol`].
    pub async fn complete(
        &self,
        pending: &PendingAuthorization,
        location: &str,
    ) -> Result<Tokens, TppError> {
        let code = self.verify_response(pending, location).await?;
        self.exchange_code(&code, &pending.verifier).await
    }

    /// Verifies the JARM response and returns the code.
    ///
    /// # Errors
    /// [`TppError::Protocol`].
    pub async fn verify_response(
        &self,
        pending: &PendingAuthorization,
        location: &str,
    ) -> Result<String, TppError> {
        match self.verify_jarm(location, Some(&pending.state)).await? {
            JarmOutcome::Code(code) => Ok(code),
            JarmOutcome::Error { error, .. } => Err(TppError::Protocol(format!(
                "authorization refused: {error}"
            ))),
            _ => Err(TppError::Protocol("unexpected JARM outcome".into())),
        }
    }

    /// Verifies a signed authorization response that carries no `state`:
    /// the bank's error for a request it can no longer read (a reused or
    /// expired `request_uri`), sent to the client's registered redirect URI.
    ///
    /// # Errors
    /// [`TppError::Protocol`] if the response is not the bank's, signed for
    /// this client.
    pub async fn verify_stateless_response(&self, location: &str) -> Result<JarmOutcome, TppError> {
        self.verify_jarm(location, None).await
    }

    async fn verify_jarm(
        &self,
        location: &str,
        state: Option<&fapi_core::State>,
    ) -> Result<JarmOutcome, TppError> {
        let now = self.now();
        self.with_server_keys(
            |keys| {
                JarmVerifier::new(
                    keys.clone(),
                    self.discovery.issuer.clone(),
                    self.id.clone(),
                    self.config.profile.algorithms(),
                )
                .verify_redirect(location, state, now)
            },
            |e| {
                matches!(
                    e,
                    JarmError::Jose(JoseError::Key(KeySelectionError::NotFound))
                )
            },
        )
        .await?
        .map_err(|e| TppError::Protocol(format!("JARM response rejected: {e}")))
    }

    /// Exchanges a code for tokens.
    ///
    /// # Errors
    /// [`TppError`].
    pub async fn exchange_code(
        &self,
        code: &str,
        verifier: &CodeVerifier,
    ) -> Result<Tokens, TppError> {
        self.exchange_code_at(&self.discovery.token_endpoint, code, verifier)
            .await
    }

    /// Exchanges a code at `token_endpoint` rather than the discovered one
    /// (one instance of several behind a load balancer, addressed
    /// directly).
    ///
    /// # Errors
    /// [`TppError`].
    pub async fn exchange_code_at(
        &self,
        token_endpoint: &str,
        code: &str,
        verifier: &CodeVerifier,
    ) -> Result<Tokens, TppError> {
        let v = self
            .post_form(
                token_endpoint,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", code),
                    ("redirect_uri", &self.config.redirect_uri),
                    ("code_verifier", verifier.secret()),
                ],
            )
            .await?;
        Ok(Tokens {
            access_token: string(&v, "access_token")?,
            refresh_token: v
                .get("refresh_token")
                .and_then(Value::as_str)
                .map(str::to_owned),
            id_token: v.get("id_token").and_then(Value::as_str).map(str::to_owned),
        })
    }

    /// A new access token from a refresh token.
    ///
    /// # Errors
    /// [`TppError`].
    pub async fn refresh(&self, refresh_token: &str) -> Result<String, TppError> {
        let v = self
            .post_form(
                &self.discovery.token_endpoint,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh_token),
                ],
            )
            .await?;
        string(&v, "access_token")
    }

    /// `GET` a resource with `token`. Non-2xx answers are returned, not
    /// errors, so callers can inspect refusals.
    ///
    /// # Errors
    /// [`TppError::Transport`].
    pub async fn get(&self, url: &str, token: &str) -> Result<ApiResponse, TppError> {
        let resp = self
            .mtls
            .get(url)
            .bearer_auth(token)
            .header("x-fapi-interaction-id", random::uuid_v4().map_err(local)?)
            .send()
            .await
            .map_err(transport)?;
        read(resp).await
    }

    /// `DELETE` a resource with `token`.
    ///
    /// # Errors
    /// [`TppError::Transport`].
    pub async fn delete(&self, url: &str, token: &str) -> Result<ApiResponse, TppError> {
        let resp = self
            .mtls
            .delete(url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(transport)?;
        read(resp).await
    }

    /// `POST` a JSON body with `token`; with `idempotency_key`, also signs
    /// the body (`x-jws-signature`) as UK OB payment calls require.
    ///
    /// # Errors
    /// [`TppError::Transport`] or [`TppError::Local`].
    pub async fn post_json(
        &self,
        url: &str,
        token: &str,
        body: &Value,
        idempotency_key: Option<&str>,
    ) -> Result<ApiResponse, TppError> {
        let bytes = body.to_string().into_bytes();
        let mut req = self
            .mtls
            .post(url)
            .bearer_auth(token)
            .header("content-type", "application/json")
            .header("x-fapi-interaction-id", random::uuid_v4().map_err(local)?);
        if let Some(key) = idempotency_key {
            let signature = ObJwsSigner::new(
                self.signing.clone(),
                self.config.signing_key.as_str(),
                self.config.signing_issuer.as_str(),
                "openbanking.org.uk",
            )
            .sign(&bytes, self.now())
            .await
            .map_err(local)?;
            req = req
                .header("x-idempotency-key", key)
                .header("x-jws-signature", signature);
        }
        let resp = req.body(bytes).send().await.map_err(transport)?;
        read(resp).await
    }

    /// Verifies the bank's `x-jws-signature` on a response.
    ///
    /// # Errors
    /// [`TppError::Protocol`].
    pub async fn verify_response_signature(&self, response: &ApiResponse) -> Result<(), TppError> {
        let signature = response
            .headers
            .get("x-jws-signature")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| TppError::Protocol("response has no x-jws-signature".into()))?;
        let now = self.now();
        self.with_server_keys(
            |keys| {
                ObJwsVerifier::new(
                    &[Algorithm::Ps256, Algorithm::Es256, Algorithm::EdDsa],
                    self.discovery.issuer.as_str(),
                    "openbanking.org.uk",
                )
                .verify(signature, &response.body, keys, now)
            },
            |e| {
                matches!(
                    e,
                    DetachedJwsError::Jose(JoseError::Key(KeySelectionError::NotFound))
                )
            },
        )
        .await?
        .map(|_| ())
        .map_err(|e| TppError::Protocol(format!("response signature rejected: {e}")))
    }

    /// The HTTP client without a client certificate (the customer's side).
    pub fn public_client(&self) -> &reqwest::Client {
        &self.public
    }
}

/// A UK OB `Initiation` body for a domestic payment.
pub fn initiation(
    instruction: &str,
    amount: &str,
    creditor: &str,
    sort_code_account: &str,
    reference: &str,
) -> Value {
    json!({
        "InstructionIdentification": instruction,
        "EndToEndIdentification": format!("e2e-{instruction}"),
        "InstructedAmount": { "Amount": amount, "Currency": "GBP" },
        "CreditorAccount": { "SchemeName": "UK.OBIE.SortCodeAccountNumber", "Identification": sort_code_account, "Name": creditor },
        "RemittanceInformation": { "Reference": reference },
    })
}
