//! TPP onboarding: a registration (from a software statement signed by the
//! scheme directory, or from a client-metadata file) plus the TPP's
//! transport certificate, kept in the bank's database. The same table is
//! the bank's `TppDirectory`: which certificate belongs to which client,
//! and what is revoked. A revocation recorded by `bank tpp revoke` is seen
//! by the running bank on the next call (every call reads the table).
//!
//! Every check is a crate call: the statement's signature, `typ`, algorithm
//! and times through `fapi-core`'s JWS verifier; the client's keys through
//! [`ClientMetadata::new`]; the certificate chain through
//! `fapi-mtls-binding`'s [`TrustBundle`](fapi_mtls_binding::trust::TrustBundle).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use fapi_core::claims::TimeRules;
use fapi_core::client::{AuthMethod, ClientMetadata, TlsClientAuthMetadata};
use fapi_core::crypto::{CryptoProvider, SigningKey};
use fapi_core::jose::{sign_compact, ExpectedType, JwsPolicy, UnverifiedJws};
use fapi_core::jwk::{JwkSet, KeySet};
use fapi_core::store::{BoxFuture, StoreError};
use fapi_core::UnixTime;
use fapi_core::{AuthenticatedClient, Profile};
use fapi_core::{CertificateThumbprint, ClientId, RedirectUri};
use fapi_mtls_binding::client_auth::{RegisteredSubject, SelfSignedTlsClientAuth};
use fapi_mtls_binding::dn::DistinguishedName;
use fapi_mtls_binding::registry::{RegisterError, TppRegistry};
use fapi_mtls_binding::trust::TrustStore;
use fapi_mtls_binding::{ClientCertificate, PresentedCertificate};
use fapi_par::CurrentRegistration;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::sqlite::unavailable;

/// The issuer name the development directory signs software statements as.
pub const DEV_DIRECTORY_ISSUER: &str = "fapi demo directory";

/// Why a TPP could not be onboarded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OnboardingError {
    /// The software statement failed verification.
    #[error("software statement rejected: {0}")]
    SoftwareStatement(String),
    /// The registration is unusable (keys, redirect URIs, method).
    #[error("registration rejected: {0}")]
    Registration(String),
    /// The certificate does not chain to the scheme CA.
    #[error("transport certificate rejected: {0}")]
    Certificate(String),
    /// The client is registered and revoked: onboarding it again would
    /// silently reinstate it.
    #[error("{0} is revoked; if the directory has reinstated it, run `bank tpp reinstate --client {0}` first")]
    Revoked(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the bank registers for a TPP.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// The client id.
    pub client_id: String,
    /// Shown to the customer on the consent screen.
    pub client_name: String,
    /// Registered redirect URIs (exact match).
    pub redirect_uris: Vec<String>,
    /// The TPP's public JWKS (`null` until fetched, for a statement that
    /// names its keys by `software_jwks_endpoint`).
    pub jwks: Value,
    /// Where the directory publishes the TPP's keys, for a statement that
    /// names them so (UK OB `software_jwks_endpoint`); dynamic registration
    /// fetches them from an allow-listed directory host
    /// ([`JwksEndpoints`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_jwks_endpoint: Option<String>,
    /// `private_key_jwt`, `tls_client_auth` or
    /// `self_signed_tls_client_auth` (RFC 8705 §2).
    pub token_endpoint_auth_method: String,
    /// Which certificates are this TPP's (RFC 8705 §2.1.2): a
    /// `tls_client_auth` client authenticates with any certificate of the
    /// scheme CA carrying it, and a `private_key_jwt` client may present
    /// one over its connection; a new certificate with the same subject
    /// (a rotation) works without onboarding again. Filled from the
    /// onboarded certificate's subject DN when none is given.
    #[serde(flatten)]
    pub certificate_subject: CertificateSubject,
    /// Roles the directory granted (`AISP`, `PISP`).
    #[serde(default)]
    pub software_roles: Vec<String>,
    /// The directory's software id, when onboarded from a statement.
    #[serde(default)]
    pub software_id: Option<String>,
    /// The directory's organisation id.
    #[serde(default)]
    pub org_id: Option<String>,
    /// SHA-256 (base64url) of the RFC 7592 registration access token, for
    /// a client registered dynamically (`POST /register`); none for one the
    /// operator onboarded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_access_token_sha256: Option<String>,
    /// The algorithms the client registered for its JWTs
    /// (`token_endpoint_auth_signing_alg`, `request_object_signing_alg`):
    /// its assertions and request objects are refused in any other. Empty:
    /// every algorithm of the profile.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signing_algorithms: Vec<String>,
}

/// The RFC 8705 §2.1.2 `tls_client_auth_*` values of a registration; at
/// most one is set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateSubject {
    /// `tls_client_auth_subject_dn` (RFC 4514).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_subject_dn: Option<String>,
    /// `tls_client_auth_san_dns`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_dns: Option<String>,
    /// `tls_client_auth_san_uri`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_uri: Option<String>,
    /// `tls_client_auth_san_ip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_ip: Option<String>,
    /// `tls_client_auth_san_email`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_email: Option<String>,
}

impl CertificateSubject {
    /// The values as the crates read them.
    pub fn metadata(&self) -> TlsClientAuthMetadata {
        let mut m = TlsClientAuthMetadata::default();
        m.subject_dn.clone_from(&self.tls_client_auth_subject_dn);
        m.san_dns.clone_from(&self.tls_client_auth_san_dns);
        m.san_uri.clone_from(&self.tls_client_auth_san_uri);
        m.san_ip.clone_from(&self.tls_client_auth_san_ip);
        m.san_email.clone_from(&self.tls_client_auth_san_email);
        m
    }

    /// Whether any value is set.
    pub fn is_set(&self) -> bool {
        *self != Self::default()
    }
}

impl Registration {
    /// The registration as every check reads it. Refuses unsupported
    /// methods, malformed redirect URIs and unusable keys.
    ///
    /// # Errors
    /// [`OnboardingError::Registration`].
    pub fn metadata(
        &self,
        provider: &dyn CryptoProvider,
        profile: Profile,
    ) -> Result<ClientMetadata, OnboardingError> {
        let bad = |e: &dyn std::fmt::Display| OnboardingError::Registration(e.to_string());
        let method = AuthMethod::from_name(&self.token_endpoint_auth_method).ok_or_else(|| {
            OnboardingError::Registration(
                "token_endpoint_auth_method must be private_key_jwt, tls_client_auth or \
                 self_signed_tls_client_auth"
                    .into(),
            )
        })?;
        let tls = self.certificate_subject.metadata();
        match method {
            AuthMethod::SelfSignedTlsClientAuth if self.certificate_subject.is_set() => {
                return Err(OnboardingError::Registration(
                    "a self_signed_tls_client_auth client is recognised by its registered keys; \
                     tls_client_auth_* values do not apply"
                        .into(),
                ))
            }
            AuthMethod::SelfSignedTlsClientAuth => {}
            // tls_client_auth needs exactly one; private_key_jwt may have one
            _ if method == AuthMethod::TlsClientAuth || self.certificate_subject.is_set() => {
                RegisteredSubject::parse(&tls).map_err(|e| bad(&e))?;
            }
            _ => {}
        }
        let id = ClientId::try_from(self.client_id.as_str()).map_err(|e| bad(&e))?;
        let redirects = self
            .redirect_uris
            .iter()
            .map(|u| RedirectUri::try_from(u.as_str()).map_err(|e| bad(&e)))
            .collect::<Result<Vec<_>, _>>()?;
        if redirects.is_empty() {
            return Err(OnboardingError::Registration(
                "at least one redirect URI is required".into(),
            ));
        }
        if self.jwks.is_null() && self.software_jwks_endpoint.is_some() {
            return Err(OnboardingError::Registration(
                "the statement names the TPP's keys by software_jwks_endpoint: the TPP registers \
                 itself (POST /register, which fetches them from an allow-listed directory host), \
                 or the operator onboards it with --metadata giving them by value"
                    .into(),
            ));
        }
        let jwks = JwkSet::from_json(self.jwks.to_string().as_bytes()).map_err(|e| bad(&e))?;
        let metadata = ClientMetadata::new(id, method, redirects, jwks, provider, profile)
            .map_err(|e| bad(&e))?
            .with_tls_client_auth(tls);
        if self.signing_algorithms.is_empty() {
            return Ok(metadata);
        }
        let algorithms = self
            .signing_algorithms
            .iter()
            .map(|name| {
                profile
                    .algorithms()
                    .iter()
                    .copied()
                    .find(|a| a.jose_name() == name)
                    .ok_or_else(|| {
                        OnboardingError::Registration(format!(
                            "signing algorithm {name:?} is not one the profile allows"
                        ))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(metadata.with_allowed_algorithms(algorithms))
    }

    /// The registered authentication method (`None` for one this bank
    /// does not offer).
    pub fn auth_method(&self) -> Option<AuthMethod> {
        AuthMethod::from_name(&self.token_endpoint_auth_method)
    }

    /// The `http://openbanking.org.uk/iss` the TPP's `x-jws-signature`s
    /// must carry: `{org_id}/{software_id}` (the client id stands in for
    /// missing parts).
    pub fn signing_issuer(&self) -> String {
        format!(
            "{}/{}",
            self.org_id.as_deref().unwrap_or(&self.client_id),
            self.software_id.as_deref().unwrap_or(&self.client_id)
        )
    }

    /// Whether the directory granted `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.software_roles.iter().any(|r| r == role)
    }
}

/// Verifies a software statement signed by the scheme directory and
/// returns the registration it carries: signature by a key of
/// `directory_keys` with the profile's algorithms, `typ` JWT or absent, `iss`
/// exactly `directory_issuer`, `exp` required and not past, `iat` not in
/// the future.
///
/// # Errors
/// [`OnboardingError::SoftwareStatement`].
pub fn verify_software_statement(
    statement: &str,
    directory_keys: &KeySet,
    directory_issuer: &str,
    profile: Profile,
    now: UnixTime,
) -> Result<Registration, OnboardingError> {
    let bad = |e: &dyn std::fmt::Display| OnboardingError::SoftwareStatement(e.to_string());
    let verified = UnverifiedJws::parse(statement.trim())
        .map_err(|e| bad(&e))?
        .verify(
            directory_keys,
            &JwsPolicy::new(profile.algorithms(), ExpectedType::JwtOrAbsent),
        )
        .map_err(|e| bad(&e))?;
    let claims = verified.claims();
    claims
        .check_times(&TimeRules::issued_token(true), now)
        .map_err(|e| bad(&e))?;
    if claims.required_string("iss").map_err(|e| bad(&e))? != directory_issuer {
        return Err(OnboardingError::SoftwareStatement(
            "iss is not the scheme directory".into(),
        ));
    }
    let string_list = |name: &'static str| -> Result<Vec<String>, OnboardingError> {
        claims
            .get(name)
            .and_then(Value::as_array)
            .ok_or_else(|| OnboardingError::SoftwareStatement(format!("{name} must be an array")))?
            .iter()
            .map(|v| {
                v.as_str().map(str::to_owned).ok_or_else(|| {
                    OnboardingError::SoftwareStatement(format!("{name} must hold strings"))
                })
            })
            .collect()
    };
    // the TPP's keys: by value, or where the directory publishes them
    let (jwks, endpoint) = match (
        claims.get("software_jwks"),
        claims.get("software_jwks_endpoint"),
    ) {
        (Some(v), None) if v.is_object() => (v.clone(), None),
        (None, Some(Value::String(url))) => (Value::Null, Some(url.clone())),
        _ => {
            return Err(OnboardingError::SoftwareStatement(
                "the TPP's keys must be given by value (software_jwks, a JWKS object) or by \
                 software_jwks_endpoint, one of the two"
                    .into(),
            ))
        }
    };
    Ok(Registration {
        client_id: claims
            .required_string("software_client_id")
            .map_err(|e| bad(&e))?
            .to_owned(),
        client_name: claims
            .required_string("software_client_name")
            .map_err(|e| bad(&e))?
            .to_owned(),
        redirect_uris: string_list("software_redirect_uris")?,
        jwks: jwks.clone(),
        software_jwks_endpoint: endpoint,
        token_endpoint_auth_method: "private_key_jwt".into(),
        certificate_subject: CertificateSubject::default(),
        registration_access_token_sha256: None,
        signing_algorithms: Vec::new(),
        software_roles: string_list("software_roles")?,
        software_id: Some(
            claims
                .required_string("software_id")
                .map_err(|e| bad(&e))?
                .to_owned(),
        ),
        org_id: Some(
            claims
                .required_string("org_id")
                .map_err(|e| bad(&e))?
                .to_owned(),
        ),
    })
}

/// Signs a software statement as the development directory (for the
/// demo's PKI; a real scheme's directory issues these).
///
/// # Errors
/// The signing error, as text.
pub fn sign_software_statement(
    directory_key: &dyn SigningKey,
    kid: &str,
    registration: &Registration,
    now: UnixTime,
) -> Result<String, String> {
    let claims = json!({
        "iss": DEV_DIRECTORY_ISSUER,
        "iat": now.as_secs(),
        "exp": now.saturating_add(365 * 24 * 3600).as_secs(),
        "jti": fapi_core::random::token(16).map_err(|e| e.to_string())?,
        "software_id": registration.software_id.clone().unwrap_or_else(|| registration.client_id.clone()),
        "software_client_id": registration.client_id,
        "software_client_name": registration.client_name,
        "software_redirect_uris": registration.redirect_uris,
        "software_roles": registration.software_roles,
        "software_jwks": registration.jwks,
        "org_id": registration.org_id.clone().unwrap_or_else(|| registration.client_id.clone()),
    });
    let mut claims = claims;
    if let (Some(map), Some(endpoint)) = (
        claims.as_object_mut(),
        registration.software_jwks_endpoint.as_ref(),
    ) {
        map.remove("software_jwks");
        map.insert("software_jwks_endpoint".into(), json!(endpoint));
    }
    let map = claims.as_object().ok_or("claims are an object")?;
    sign_compact(directory_key, Some(kid), Some("JWT"), map).map_err(|e| e.to_string())
}

/// Largest JWKS fetched from a directory.
const MAX_JWKS_BYTES: usize = 64 * 1024;

/// Fetches a TPP's keys from where its statement says the directory
/// publishes them (`software_jwks_endpoint`), only from the allow-listed
/// directory hosts, over HTTPS with the configured trust anchors: a
/// statement cannot make the bank fetch from anywhere else.
#[derive(Clone, Debug)]
pub struct JwksEndpoints {
    hosts: Vec<String>,
    client: Option<reqwest::Client>,
}

impl JwksEndpoints {
    /// No host allowed: only statements carrying their keys by value.
    pub fn none() -> Self {
        Self {
            hosts: Vec::new(),
            client: None,
        }
    }

    /// `hosts` (exact host names, compared without case) reached over
    /// HTTPS trusting the CA certificates in `ca_pem`.
    ///
    /// # Errors
    /// The CA bundle does not parse.
    pub fn new(hosts: Vec<String>, ca_pem: &str) -> Result<Self, crate::tpp::TppError> {
        Ok(Self {
            hosts,
            client: Some(crate::tpp::browser_client(ca_pem)?),
        })
    }

    /// Fills `registration.jwks` from its `software_jwks_endpoint` when the
    /// statement gave no keys by value (a no-op otherwise).
    ///
    /// # Errors
    /// [`OnboardingError::SoftwareStatement`]: the endpoint is not HTTPS on
    /// an allow-listed host, or does not answer a JWKS.
    pub async fn resolve(&self, registration: &mut Registration) -> Result<(), OnboardingError> {
        if !registration.jwks.is_null() {
            return Ok(());
        }
        let refused = |why: &str| {
            OnboardingError::SoftwareStatement(format!("software_jwks_endpoint: {why}"))
        };
        let endpoint = registration
            .software_jwks_endpoint
            .as_deref()
            .ok_or_else(|| refused("missing"))?;
        let url = url::Url::parse(endpoint).map_err(|_| refused("not a URL"))?;
        let allowed = url.scheme() == "https"
            && url.username().is_empty()
            && url.password().is_none()
            && url
                .host_str()
                .is_some_and(|h| self.hosts.iter().any(|a| a.eq_ignore_ascii_case(h)));
        let client = self
            .client
            .as_ref()
            .filter(|_| allowed)
            .ok_or_else(|| refused("not an https URL on an allow-listed directory host"))?;
        let response = client
            .get(url)
            .timeout(std::time::Duration::from_secs(10))
            .send()
            .await
            .map_err(|_| refused("the directory did not answer"))?;
        if !response.status().is_success() {
            return Err(refused(&format!(
                "the directory answered {}",
                response.status().as_u16()
            )));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
        {
            return Err(refused("the JWKS is too large"));
        }
        let body = response
            .bytes()
            .await
            .map_err(|_| refused("the directory's answer was cut"))?;
        if body.len() > MAX_JWKS_BYTES {
            return Err(refused("the JWKS is too large"));
        }
        let jwks: Value =
            serde_json::from_slice(&body).map_err(|_| refused("the answer is not JSON"))?;
        if !jwks.get("keys").is_some_and(Value::is_array) {
            return Err(refused("the answer is not a JWKS"));
        }
        registration.jwks = jwks;
        Ok(())
    }
}

/// A registered TPP as read from the registry.
#[derive(Clone, Debug)]
pub struct RegisteredClient {
    /// The registration.
    pub registration: Registration,
    /// Its certificate's `x5t#S256`.
    pub certificate: CertificateThumbprint,
    /// Revoked in the directory.
    pub revoked: bool,
}

/// Each registered client's [`ClientMetadata`], built once per registration:
/// the keys in its JWKS are parsed once (as fapi-core's [`KeySet`] is meant
/// to be used), not again on every `/par`, `/token` and signed payment.
///
/// The registration itself is still read from the database on every call,
/// so a revocation or a re-onboarding is seen at once: metadata is reused
/// only while the registration just read is equal to the one it was built
/// from, and rebuilt (replacing the old entry) when it differs, e.g. after
/// a key rotation. One entry per client id the bank has served, so the
/// cache is bounded by the registry.
pub struct MetadataCache {
    provider: Arc<dyn CryptoProvider>,
    profile: Profile,
    entries: Mutex<HashMap<String, (Registration, Arc<ClientMetadata>)>>,
}

impl core::fmt::Debug for MetadataCache {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MetadataCache")
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

impl MetadataCache {
    /// An empty cache building metadata with `provider` under `profile`.
    pub fn new(provider: Arc<dyn CryptoProvider>, profile: Profile) -> Self {
        Self {
            provider,
            profile,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The metadata of `registration` (as [`Registration::metadata`]).
    ///
    /// # Errors
    /// [`OnboardingError::Registration`] if the registration is unusable
    /// (never remembered).
    pub fn metadata(
        &self,
        registration: &Registration,
    ) -> Result<Arc<ClientMetadata>, OnboardingError> {
        // a poisoned lock only costs the reuse, never an answer
        if let Ok(entries) = self.entries.lock() {
            if let Some((built_from, metadata)) = entries.get(&registration.client_id) {
                if built_from == registration {
                    return Ok(metadata.clone());
                }
            }
        }
        let metadata = Arc::new(registration.metadata(&*self.provider, self.profile)?);
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(
                registration.client_id.clone(),
                (registration.clone(), metadata.clone()),
            );
        }
        Ok(metadata)
    }
}

/// Onboards a TPP with its transport certificate and stores both
/// (replacing an earlier registration of the same client):
/// - `self_signed_tls_client_auth`: the certificate's key must be one of the
///   registered JWKs;
/// - otherwise the certificate must chain to the scheme CA (clientAuth) at
///   `now` and carry the registration's `tls_client_auth_*` subject; a
///   `private_key_jwt` registration without one is given the certificate's
///   subject DN, so a later certificate with the same subject (a rotation)
///   is the TPP's without onboarding again.
///
/// Returns the registration as stored.
///
/// # Errors
/// [`OnboardingError`].
pub async fn onboard(
    registry: &Registry,
    registration: &Registration,
    certificate: &ClientCertificate,
    trust: &TrustStore,
    provider: &dyn CryptoProvider,
    profile: Profile,
    now: UnixTime,
) -> Result<Registration, OnboardingError> {
    let mut registration = registration.clone();
    let certificate_refused =
        |e: &dyn std::fmt::Display| OnboardingError::Certificate(e.to_string());
    if registration.auth_method() == Some(AuthMethod::SelfSignedTlsClientAuth) {
        let metadata = Arc::new(registration.metadata(provider, profile)?);
        let presented = PresentedCertificate::from_verified_tls_peer(certificate.der())
            .map_err(|e| certificate_refused(&e))?;
        AuthenticatedClient::from_certificate(&metadata, &SelfSignedTlsClientAuth(&presented))
            .map_err(|e| certificate_refused(&e))?;
    } else {
        let trusted = trust
            .current()
            .verify(certificate, &[], now)
            .map_err(|e| certificate_refused(&e))?;
        if !registration.certificate_subject.is_set() {
            let dn = DistinguishedName::of_subject(trusted.certificate().certificate());
            // a subject that cannot be matched (no text values) pins the
            // certificate instead
            if dn
                .rdns()
                .iter()
                .flat_map(|r| r.attributes())
                .all(|a| a.is_matchable())
            {
                registration.certificate_subject.tls_client_auth_subject_dn = Some(dn.to_string());
            }
        }
        let metadata = registration.metadata(provider, profile)?;
        if registration.certificate_subject.is_set() {
            RegisteredSubject::parse(metadata.tls_client_auth())
                .map_err(|e| OnboardingError::Registration(e.to_string()))?
                .check(trusted.certificate().certificate())
                .map_err(|e| certificate_refused(&e))?;
        }
    }
    registry
        .register(&registration, certificate.thumbprint(), now)
        .await
        .map_err(|e| match e {
            RegisterError::Revoked => OnboardingError::Revoked(registration.client_id.clone()),
            RegisterError::CertificateTaken => OnboardingError::Certificate(format!(
                "it is registered to another client than {}",
                registration.client_id
            )),
            RegisterError::Store(e) => OnboardingError::Store(e),
            e => OnboardingError::Store(unavailable(e)),
        })?;
    Ok(registration)
}

/// The bank's TPP registry: [`Registration`]s kept by a [`TppRegistry`]
/// (whose state is also the [`TppDirectory`] every call consults). The
/// store behind it is chosen at start-up.
///
/// [`TppDirectory`]: fapi_mtls_binding::directory::TppDirectory
#[derive(Clone, Debug)]
pub struct Registry {
    registry: Arc<dyn TppRegistry>,
}

impl Registry {
    /// The registry kept by `registry`.
    pub fn new(registry: Arc<dyn TppRegistry>) -> Self {
        Self { registry }
    }

    /// Stores a registration and its certificate: a new client, or an
    /// update of an active one.
    ///
    /// # Errors
    /// [`RegisterError::Revoked`] for a revoked client (only
    /// [`Registry::reinstate_client`] makes it active again),
    /// [`RegisterError::CertificateTaken`], [`RegisterError::Store`].
    pub async fn register(
        &self,
        registration: &Registration,
        certificate: &CertificateThumbprint,
        now: UnixTime,
    ) -> Result<(), RegisterError> {
        let id = ClientId::try_from(registration.client_id.as_str()).map_err(unavailable)?;
        let body = serde_json::to_string(registration).map_err(unavailable)?;
        self.registry
            .register_client(&id, body, certificate, now)
            .await
    }

    /// The store's registry, as the crates' checks take it.
    pub fn tpp_registry(&self) -> &dyn TppRegistry {
        &*self.registry
    }

    /// Makes a revoked client active again (the directory reinstated it);
    /// `false` if it is not registered.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn reinstate_client(&self, id: &ClientId) -> Result<bool, StoreError> {
        self.registry.reinstate_client(id).await
    }

    /// Revokes a TPP: every call it makes is refused from the next one on.
    /// Returns whether it was registered.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn revoke_client(&self, id: &ClientId) -> Result<bool, StoreError> {
        self.registry.revoke_client(id).await
    }

    /// Revokes one certificate (whoever holds it).
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn revoke_certificate(
        &self,
        certificate: &CertificateThumbprint,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        self.registry.revoke_certificate(certificate, now).await
    }

    /// The id of the client registered with `certificate`, revoked or not.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn client_id_by_certificate(
        &self,
        certificate: &CertificateThumbprint,
    ) -> Result<Option<ClientId>, StoreError> {
        self.registry
            .certificate_owner(certificate)
            .await
            .map_err(unavailable)
    }

    /// A registered client.
    ///
    /// # Errors
    /// [`StoreError`], also for a registration that does not parse.
    pub async fn client(&self, id: &ClientId) -> Result<Option<RegisteredClient>, StoreError> {
        let Some(row) = self.registry.client(id).await? else {
            return Ok(None);
        };
        Ok(Some(RegisteredClient {
            registration: serde_json::from_str(&row.registration).map_err(unavailable)?,
            certificate: row.certificate,
            revoked: row.revoked,
        }))
    }

    /// All registered client ids.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn client_ids(&self) -> Result<Vec<ClientId>, StoreError> {
        self.registry.client_ids().await
    }
}

/// What a stored pushed request is re-validated against: the client's
/// registration read now (revoked: none), its metadata built once per
/// registration.
#[derive(Debug)]
pub struct CurrentRegistrations {
    /// The registry.
    pub registry: Registry,
    /// The metadata built from it.
    pub metadata: Arc<MetadataCache>,
}

impl CurrentRegistration for CurrentRegistrations {
    fn current<'a>(
        &'a self,
        client: &'a ClientId,
    ) -> BoxFuture<'a, Result<Option<Arc<ClientMetadata>>, StoreError>> {
        Box::pin(async move {
            let Some(registered) = self.registry.client(client).await?.filter(|c| !c.revoked)
            else {
                return Ok(None);
            };
            // an unusable registration validates nothing
            Ok(self.metadata.metadata(&registered.registration).ok())
        })
    }
}
