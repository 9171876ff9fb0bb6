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

use fapi_core::crypto::{Algorithm, CryptoProvider, SigningKey};
use fapi_core::jose::detached::{DetachedJwsError, ObJwsSigner, ObJwsVerifier};
use fapi_core::jose::sign_compact;
use fapi_core::jose::JoseError;
use fapi_core::jwk::{JwkSet, KeySelectionError, KeySet};
use fapi_core::time::{Clock, UnixTime};
use fapi_core::types::{ClientId, CodeVerifier, Issuer, State};
use fapi_core::{random, Profile};
use fapi_jarm::{JarmError, JarmOutcome, JarmVerifier};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::pki::KeySource;
use fapi_mtls_binding::tls::{restrict_to_fapi, FAPI_PROTOCOL_VERSIONS};

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
}

fn roots(pem: &str) -> Result<rustls::RootCertStore, TppError> {
    use rustls_pki_types::pem::PemObject;
    let mut store = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()) {
        store.add(c.map_err(local)?).map_err(local)?;
    }
    Ok(store)
}

/// An HTTP client trusting `server_ca`, presenting a client certificate
/// when given one, never following redirects (the caller reads them).
fn http_client(
    server_ca: &str,
    identity: Option<(Vec<Vec<u8>>, rustls_pki_types::PrivateKeyDer<'static>)>,
) -> Result<reqwest::Client, TppError> {
    let provider = restrict_to_fapi(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(provider))
        .with_protocol_versions(FAPI_PROTOCOL_VERSIONS)
        .map_err(local)?
        .with_root_certificates(roots(server_ca)?);
    let tls = match identity {
        Some((chain, key)) => builder
            .with_client_auth_cert(
                chain
                    .into_iter()
                    .map(rustls_pki_types::CertificateDer::from)
                    .collect(),
                key,
            )
            .map_err(local)?,
        None => builder.with_no_client_auth(),
    };
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(local)
}

/// A client without a certificate that trusts `server_ca` (PEM) and
/// follows no redirects: the customer's browser.
///
/// # Errors
/// [`TppError::Local`] for an unusable CA bundle.
pub fn browser_client(server_ca: &str) -> Result<reqwest::Client, TppError> {
    http_client(server_ca, None)
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

fn string(v: &Value, name: &str) -> Result<String, TppError> {
    v.get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| TppError::Protocol(format!("{name} missing")))
}

/// The server's signing keys from its `jwks_uri`.
async fn fetch_jwks(
    public: &reqwest::Client,
    jwks_uri: &str,
    provider: &dyn CryptoProvider,
    config: &TppConfig,
) -> Result<KeySet, TppError> {
    let jwks = read(public.get(jwks_uri).send().await.map_err(transport)?)
        .await?
        .ok()?;
    let jwks = JwkSet::from_json(&jwks.body).map_err(local)?;
    KeySet::from_jwks(&jwks, provider, &config.profile.key_policy()).map_err(local)
}

async fn read(resp: reqwest::Response) -> Result<ApiResponse, TppError> {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.map_err(transport)?.to_vec();
    Ok(ApiResponse {
        status,
        headers,
        body,
    })
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
        let assertion = self.client_assertion()?;
        // built before any await: the serializer is not Send
        let body = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("client_id", self.id.as_str())
                .append_pair(
                    "client_assertion_type",
                    fapi_core::client_auth::JWT_BEARER_ASSERTION_TYPE,
                )
                .append_pair("client_assertion", &assertion);
            for (k, v) in params {
                form.append_pair(k, v);
            }
            form.finish()
        };
        let resp = self
            .mtls
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(transport)?;
        Ok(read(resp).await?.ok()?.json())
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
        let now = self.now().as_secs();
        let verifier = CodeVerifier::generate().map_err(local)?;
        let state = State::try_from(random::token(16).map_err(local)?).map_err(local)?;
        let claims = json!({
            "iss": self.id.as_str(), "aud": self.discovery.issuer.as_str(), "client_id": self.id.as_str(),
            "nbf": now, "exp": now + 300, "jti": random::token(16).map_err(local)?,
            "response_type": "code", "response_mode": "jwt", "redirect_uri": self.config.redirect_uri,
            "scope": scope, "state": state.as_str(), "nonce": random::token(16).map_err(local)?,
            "code_challenge": verifier.challenge().as_str(), "code_challenge_method": "S256",
            "claims": { "id_token": { "openbanking_intent_id": { "value": consent_id, "essential": true } } },
        });
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
        state: Option<&fapi_core::types::State>,
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
        let v = self
            .post_form(
                &self.discovery.token_endpoint,
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

/// Plays the customer's browser against the bank's pages: follows the
/// authorization URL, logs in, chooses accounts and approves or rejects,
/// and returns the `Location` the bank redirects to (the JARM response).
#[derive(Debug)]
pub struct ScriptedCustomer<'a> {
    /// The browser (no client certificate; trusts the bank's CA).
    pub browser: &'a reqwest::Client,
    /// Login name.
    pub username: &'a str,
    /// Password.
    pub password: &'a str,
}

/// The `name=value` of the cookie `name` a response sets, if it does.
fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|kv| {
            kv.split_once('=')
                .is_some_and(|(k, v)| k == name && !v.is_empty())
        })
        .map(str::to_owned)
}

/// The value of the hidden input `name` in `html` (the scripted customer's
/// reading of a form; the bank's pages are its own, escaped, HTML).
fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html.get(start..)?.find('"')? + start;
    html.get(start..end).map(|v| v.replace("&amp;", "&"))
}

impl ScriptedCustomer<'_> {
    /// Posts the login form of `login_page` (for an authorization request,
    /// or the dashboard), with the login cookie the page came with; returns
    /// the session cookie and where the bank sends the browser next.
    async fn login(
        &self,
        base: &str,
        login_page: &str,
        login_cookie: Option<&str>,
    ) -> Result<(String, String), TppError> {
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("csrf", &hidden(login_page, "csrf").unwrap_or_default())
            .append_pair("username", self.username)
            .append_pair("password", self.password)
            .append_pair(
                "client_id",
                &hidden(login_page, "client_id").unwrap_or_default(),
            )
            .append_pair(
                "request_uri",
                &hidden(login_page, "request_uri").unwrap_or_default(),
            )
            .finish();
        let mut req = self
            .browser
            .post(format!("{base}/login"))
            .header("content-type", "application/x-www-form-urlencoded");
        if let Some(c) = login_cookie {
            req = req.header("cookie", c);
        }
        let resp = req.body(form).send().await.map_err(transport)?;
        if resp.status() != StatusCode::SEE_OTHER {
            return Err(TppError::Protocol("login failed".into()));
        }
        let cookie = set_cookie(&resp, "bank_session")
            .ok_or_else(|| TppError::Protocol("no session cookie".into()))?;
        let next = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| TppError::Protocol("no redirect after login".into()))?;
        Ok((cookie, next))
    }

    /// GETs `url` (with `cookie`); the status, the page, and the login
    /// cookie if the page set one.
    async fn follow_to_page(
        &self,
        url: &str,
        cookie: Option<&str>,
    ) -> Result<(u16, String, Option<String>), TppError> {
        let mut req = self.browser.get(url);
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status().as_u16();
        let login_cookie = set_cookie(&resp, "__Host-bank_login");
        Ok((status, resp.text().await.map_err(transport)?, login_cookie))
    }

    /// Goes through login and the consent screen; `accounts` are the
    /// accounts to tick (for a payment: the one to pay from).
    ///
    /// # Errors
    /// [`TppError`]: a page answered with an error status, or the login
    /// failed.
    pub async fn authorize(
        &self,
        authorization_url: &str,
        accounts: &[&str],
        approve: bool,
    ) -> Result<String, TppError> {
        let (status, login, login_cookie) = self.follow_to_page(authorization_url, None).await?;
        if status != 200 {
            return Err(TppError::Status {
                status,
                body: login,
            });
        }
        let base = authorization_url
            .split("/authorize")
            .next()
            .unwrap_or_default();
        let (cookie, next) = self.login(base, &login, login_cookie.as_deref()).await?;
        let (status, consent, _) = self
            .follow_to_page(&format!("{base}{next}"), Some(&cookie))
            .await?;
        if status != 200 {
            return Err(TppError::Status {
                status,
                body: consent,
            });
        }
        // built before any await: the serializer is not Send
        let decision = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            for name in ["csrf", "client_id", "request_uri"] {
                form.append_pair(name, &hidden(&consent, name).unwrap_or_default());
            }
            let payment = consent.contains("type=\"radio\"");
            for a in accounts {
                if payment {
                    form.append_pair("account", a);
                } else {
                    form.append_pair(&format!("account-{a}"), "on");
                }
            }
            form.append_pair("decision", if approve { "approve" } else { "reject" });
            form.finish()
        };
        let resp = self
            .browser
            .post(format!("{base}/authorize/decision"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", &cookie)
            .body(decision)
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status().as_u16();
        match resp.headers().get("location").and_then(|v| v.to_str().ok()) {
            Some(l) if status == 303 => Ok(l.to_owned()),
            _ => Err(TppError::Status {
                status,
                body: resp.text().await.unwrap_or_default(),
            }),
        }
    }

    /// Logs in to the dashboard and reads its pages, newest first,
    /// following its "Older consents" links (at most `max_pages`); returns
    /// the session cookie and the pages.
    ///
    /// # Errors
    /// [`TppError`].
    pub async fn dashboard_pages(
        &self,
        base: &str,
        max_pages: usize,
    ) -> Result<(String, Vec<String>), TppError> {
        let (_, login, login_cookie) = self
            .follow_to_page(&format!("{base}/dashboard"), None)
            .await?;
        let (cookie, _) = self.login(base, &login, login_cookie.as_deref()).await?;
        let mut pages = Vec::new();
        let mut next = Some(format!("{base}/dashboard"));
        while let Some(url) = next.take() {
            if pages.len() >= max_pages {
                break;
            }
            let (status, page, _) = self.follow_to_page(&url, Some(&cookie)).await?;
            if status != 200 {
                return Err(TppError::Status { status, body: page });
            }
            const OLDER: &str = "href=\"/dashboard?after=";
            next = page.find(OLDER).and_then(|i| {
                let rest = page.get(i + OLDER.len()..)?;
                let cursor = rest.get(..rest.find('"')?)?;
                Some(format!("{base}/dashboard?after={cursor}"))
            });
            pages.push(page);
        }
        Ok((cookie, pages))
    }

    /// Logs in to the dashboard, finds `consent_id` on its pages and
    /// revokes it; returns the page it was on.
    ///
    /// # Errors
    /// [`TppError`].
    pub async fn revoke_on_dashboard(
        &self,
        base: &str,
        consent_id: &str,
    ) -> Result<String, TppError> {
        let (cookie, pages) = self.dashboard_pages(base, 100).await?;
        let Some(page) = pages.into_iter().find(|p| p.contains(consent_id)) else {
            return Err(TppError::Protocol(
                "consent not listed on the dashboard".into(),
            ));
        };
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("csrf", &hidden(&page, "csrf").unwrap_or_default())
            .append_pair("consent_id", consent_id)
            .finish();
        let resp = self
            .browser
            .post(format!("{base}/dashboard/revoke"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", &cookie)
            .body(form)
            .send()
            .await
            .map_err(transport)?;
        if resp.status() != StatusCode::SEE_OTHER {
            return Err(TppError::Status {
                status: resp.status().as_u16(),
                body: resp.text().await.unwrap_or_default(),
            });
        }
        Ok(page)
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
