//! TPP onboarding: a registration (from a software statement signed by the
//! scheme directory, or from a client-metadata file) plus the TPP's
//! transport certificate, kept in the bank's database. The same table is
//! the bank's [`TppDirectory`]: which certificate belongs to which client,
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
use fapi_core::client::{AuthMethod, ClientMetadata};
use fapi_core::crypto::{CryptoProvider, SigningKey};
use fapi_core::jose::{sign_compact, ExpectedType, JwsPolicy, UnverifiedJws};
use fapi_core::jwk::{JwkSet, KeySet};
use fapi_core::store::{BoxFuture, StoreError};
use fapi_core::time::UnixTime;
use fapi_core::types::{CertificateThumbprint, ClientId, RedirectUri};
use fapi_core::Profile;
use fapi_mtls_binding::directory::{CertificateStatus, DirectoryError, Standing, TppDirectory};
use fapi_mtls_binding::trust::TrustStore;
use fapi_mtls_binding::ClientCertificate;
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::sqlite::{unavailable, SqliteDb};

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
    /// The TPP's public JWKS.
    pub jwks: Value,
    /// Only `private_key_jwt` in this bank.
    pub token_endpoint_auth_method: String,
    /// Roles the directory granted (`AISP`, `PISP`).
    #[serde(default)]
    pub software_roles: Vec<String>,
    /// The directory's software id, when onboarded from a statement.
    #[serde(default)]
    pub software_id: Option<String>,
    /// The directory's organisation id.
    #[serde(default)]
    pub org_id: Option<String>,
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
        if self.token_endpoint_auth_method != "private_key_jwt" {
            return Err(OnboardingError::Registration(
                "token_endpoint_auth_method must be private_key_jwt".into(),
            ));
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
        let jwks = JwkSet::from_json(self.jwks.to_string().as_bytes()).map_err(|e| bad(&e))?;
        ClientMetadata::new(
            id,
            AuthMethod::PrivateKeyJwt,
            redirects,
            jwks,
            provider,
            profile,
        )
        .map_err(|e| bad(&e))
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
            &JwsPolicy {
                algorithms: profile.algorithms(),
                typ: ExpectedType::JwtOrAbsent,
                understood_critical: &[],
            },
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
        jwks: claims
            .get("software_jwks")
            .filter(|v| v.is_object())
            .cloned()
            .ok_or_else(|| {
                OnboardingError::SoftwareStatement("software_jwks must be a JWKS object".into())
            })?,
        token_endpoint_auth_method: "private_key_jwt".into(),
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
    let map = claims.as_object().ok_or("claims are an object")?;
    sign_compact(directory_key, Some(kid), Some("JWT"), map).map_err(|e| e.to_string())
}

/// A registered TPP as read from the database.
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

/// Onboards a TPP: the transport certificate must chain to the scheme CA
/// (clientAuth) at `now` and the registration must be usable; then both are
/// stored (replacing an earlier registration of the same client).
///
/// # Errors
/// [`OnboardingError`].
pub fn onboard(
    db: &SqliteDb,
    registration: &Registration,
    certificate: &ClientCertificate,
    trust: &TrustStore,
    provider: &dyn CryptoProvider,
    profile: Profile,
    now: UnixTime,
) -> Result<ClientMetadata, OnboardingError> {
    let metadata = registration.metadata(provider, profile)?;
    trust
        .current()
        .verify(certificate, &[], now)
        .map_err(|e| OnboardingError::Certificate(e.to_string()))?;
    if !db.put_client(registration, certificate.thumbprint(), now)? {
        return Err(OnboardingError::Revoked(registration.client_id.clone()));
    }
    Ok(metadata)
}

impl SqliteDb {
    /// Stores a registration and its certificate: a new client, or an
    /// update of an active one. `false` (nothing written) for a revoked
    /// client: only [`SqliteDb::reinstate_client`] makes it active again.
    ///
    /// # Errors
    /// [`StoreError`]; also when the certificate is registered to another
    /// client.
    pub fn put_client(
        &self,
        registration: &Registration,
        certificate: &CertificateThumbprint,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let body = serde_json::to_string(registration).map_err(unavailable)?;
        let conn = self.conn()?;
        let written = conn
            .execute(
                "INSERT INTO clients (client_id, registration, certificate, revoked, onboarded_at)
             VALUES (?1, ?2, ?3, 0, ?4)
             ON CONFLICT (client_id) DO UPDATE SET registration = ?2, certificate = ?3
             WHERE clients.revoked = 0",
                params![
                    registration.client_id,
                    body,
                    &certificate.as_bytes()[..],
                    now.as_secs()
                ],
            )
            .map_err(unavailable)?;
        Ok(written == 1)
    }

    /// Makes a revoked client active again (the directory reinstated it);
    /// `false` if it is not registered.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn reinstate_client(&self, id: &ClientId) -> Result<bool, StoreError> {
        let n = self
            .conn()?
            .execute(
                "UPDATE clients SET revoked = 0 WHERE client_id = ?1",
                params![id.as_str()],
            )
            .map_err(unavailable)?;
        Ok(n == 1)
    }

    /// The id of the client registered with the certificate of
    /// `thumbprint` (x5t#S256), revoked or not.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn client_id_by_certificate(
        &self,
        thumbprint: &[u8; 32],
    ) -> Result<Option<String>, StoreError> {
        self.conn()?
            .prepare_cached("SELECT client_id FROM clients WHERE certificate = ?1")
            .map_err(unavailable)?
            .query_row(params![&thumbprint[..]], |r| r.get(0))
            .optional()
            .map_err(unavailable)
    }

    /// A registered client.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn client(&self, id: &ClientId) -> Result<Option<RegisteredClient>, StoreError> {
        let conn = self.conn()?;
        let row: Option<(String, Vec<u8>, i64)> = conn
            .prepare_cached(
                "SELECT registration, certificate, revoked FROM clients WHERE client_id = ?1",
            )
            .map_err(unavailable)?
            .query_row(params![id.as_str()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()
            .map_err(unavailable)?;
        row.map(|(body, cert, revoked)| {
            Ok(RegisteredClient {
                registration: serde_json::from_str(&body).map_err(unavailable)?,
                certificate: CertificateThumbprint::from_bytes(
                    cert.try_into()
                        .map_err(|_| unavailable("thumbprint is not 32 bytes"))?,
                ),
                revoked: revoked != 0,
            })
        })
        .transpose()
    }

    /// All registered client ids.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn client_ids(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare("SELECT client_id FROM clients ORDER BY client_id")
            .map_err(unavailable)?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(unavailable)?;
        rows.map(|r| r.map_err(unavailable)).collect()
    }

    /// Revokes a TPP: every call it makes is refused from the next one on.
    /// Returns whether it was registered.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn revoke_client(&self, id: &ClientId) -> Result<bool, StoreError> {
        let conn = self.conn()?;
        let n = conn
            .execute(
                "UPDATE clients SET revoked = 1 WHERE client_id = ?1",
                params![id.as_str()],
            )
            .map_err(unavailable)?;
        Ok(n == 1)
    }

    /// Revokes one certificate (whoever holds it).
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn revoke_certificate(
        &self,
        certificate: &CertificateThumbprint,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        let conn = self.conn()?;
        conn.execute(
            "INSERT OR IGNORE INTO revoked_certificates (thumbprint, revoked_at) VALUES (?1, ?2)",
            params![&certificate.as_bytes()[..], now.as_secs()],
        )
        .map_err(unavailable)?;
        Ok(())
    }

    /// The directory's whole answer for `client` presenting `certificate`,
    /// from one statement (one read transaction, one snapshot).
    fn standing_of(
        &self,
        client: &ClientId,
        certificate: &CertificateThumbprint,
    ) -> Result<Standing, StoreError> {
        let (cert_revoked, client_revoked, owner): (bool, Option<i64>, Option<String>) = self
            .conn()?
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM revoked_certificates WHERE thumbprint = ?2), \
                        (SELECT revoked FROM clients WHERE client_id = ?1), \
                        (SELECT client_id FROM clients WHERE certificate = ?2)",
            )
            .map_err(unavailable)?
            .query_row(params![client.as_str(), &certificate.as_bytes()[..]], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(unavailable)?;
        standing_from(cert_revoked, client_revoked, owner)
    }

    fn owner_of(
        &self,
        certificate: &CertificateThumbprint,
    ) -> Result<Option<ClientId>, StoreError> {
        let conn = self.conn()?;
        let owner: Option<String> = conn
            .prepare_cached("SELECT client_id FROM clients WHERE certificate = ?1")
            .map_err(unavailable)?
            .query_row(params![&certificate.as_bytes()[..]], |r| r.get(0))
            .optional()
            .map_err(unavailable)?;
        owner
            .map(|o| ClientId::try_from(o).map_err(unavailable))
            .transpose()
    }
}

impl TppDirectory for SqliteDb {
    fn status<'a>(
        &'a self,
        client: &'a ClientId,
        certificate: &'a CertificateThumbprint,
    ) -> BoxFuture<'a, Result<CertificateStatus, DirectoryError>> {
        let r = self
            .standing_of(client, certificate)
            .map(|s| s.status)
            .map_err(|_| DirectoryError);
        Box::pin(core::future::ready(r))
    }

    fn standing<'a>(
        &'a self,
        client: &'a ClientId,
        certificate: &'a CertificateThumbprint,
    ) -> BoxFuture<'a, Result<Standing, DirectoryError>> {
        let r = self
            .standing_of(client, certificate)
            .map_err(|_| DirectoryError);
        Box::pin(core::future::ready(r))
    }

    fn certificate_owner<'a>(
        &'a self,
        certificate: &'a CertificateThumbprint,
    ) -> BoxFuture<'a, Result<Option<ClientId>, DirectoryError>> {
        let r = self.owner_of(certificate).map_err(|_| DirectoryError);
        Box::pin(core::future::ready(r))
    }
}

/// A [`Standing`] from the directory's three columns: the certificate's
/// revocation, the client's `revoked` flag (`None`: not onboarded) and the
/// certificate's registered owner. A revoked TPP outranks a revoked
/// certificate.
pub(crate) fn standing_from(
    cert_revoked: bool,
    client_revoked: Option<i64>,
    owner: Option<String>,
) -> Result<Standing, StoreError> {
    let status = if client_revoked.is_some_and(|r| r != 0) {
        CertificateStatus::TppRevoked
    } else if cert_revoked {
        CertificateStatus::CertificateRevoked
    } else {
        CertificateStatus::Active
    };
    let owner = owner
        .map(|o| ClientId::try_from(o).map_err(unavailable))
        .transpose()?;
    Ok(Standing { status, owner })
}
