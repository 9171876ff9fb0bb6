//! A client's registration: what every check reads about a TPP.

use std::sync::Arc;

use crate::crypto::{Algorithm, CryptoProvider};
use crate::jwk::{JwkError, JwkSet, KeySet};
use crate::profile::Profile;
use crate::types::{ClientId, RedirectUri};

/// Client authentication methods FAPI allows (FAPI-RULES "Client
/// authentication"). There is no client secret and no public client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthMethod {
    /// `private_key_jwt` ([RFC 7523], OIDC Core §9).
    ///
    /// [RFC 7523]: https://www.rfc-editor.org/rfc/rfc7523
    PrivateKeyJwt,
    /// `tls_client_auth` ([RFC 8705 §2.1]).
    ///
    /// [RFC 8705 §2.1]: https://www.rfc-editor.org/rfc/rfc8705#section-2.1
    TlsClientAuth,
    /// `self_signed_tls_client_auth` ([RFC 8705 §2.2]).
    ///
    /// [RFC 8705 §2.2]: https://www.rfc-editor.org/rfc/rfc8705#section-2.2
    SelfSignedTlsClientAuth,
}

impl AuthMethod {
    /// Parses a registered `token_endpoint_auth_method`; `None` for any
    /// method FAPI forbids (`client_secret_*`, `none`, ...).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "private_key_jwt" => Some(Self::PrivateKeyJwt),
            "tls_client_auth" => Some(Self::TlsClientAuth),
            "self_signed_tls_client_auth" => Some(Self::SelfSignedTlsClientAuth),
            _ => None,
        }
    }
    /// The registered name.
    pub fn name(self) -> &'static str {
        match self {
            Self::PrivateKeyJwt => "private_key_jwt",
            Self::TlsClientAuth => "tls_client_auth",
            Self::SelfSignedTlsClientAuth => "self_signed_tls_client_auth",
        }
    }
}

/// The RFC 8705 §2.1.2 certificate-matching metadata for `tls_client_auth`.
/// Exactly one must be set; `fapi-mtls-binding` enforces the match.
///
/// The values are kept as registered. Validate them when the client is
/// registered (`fapi_mtls_binding::client_auth::RegisteredSubject::parse`:
/// a strict RFC 4514 reader for the DN, the same up-front rules for each
/// SAN kind), so a malformed value is refused at onboarding; the same
/// validator runs again at every authentication and reports
/// [`crate::client_auth::ClientAuthError::InvalidRegistration`], never a
/// mismatch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsClientAuthMetadata {
    /// `tls_client_auth_subject_dn` (RFC 4514 string).
    pub subject_dn: Option<String>,
    /// `tls_client_auth_san_dns`.
    pub san_dns: Option<String>,
    /// `tls_client_auth_san_uri`.
    pub san_uri: Option<String>,
    /// `tls_client_auth_san_ip`.
    pub san_ip: Option<String>,
    /// `tls_client_auth_san_email`.
    pub san_email: Option<String>,
}

impl TlsClientAuthMetadata {
    /// Match the certificate's subject DN (RFC 4514 string).
    pub fn subject_dn(dn: impl Into<String>) -> Self {
        Self {
            subject_dn: Some(dn.into()),
            ..Self::default()
        }
    }
    /// Match a dNSName subjectAltName.
    pub fn san_dns(name: impl Into<String>) -> Self {
        Self {
            san_dns: Some(name.into()),
            ..Self::default()
        }
    }
    /// Match a uniformResourceIdentifier subjectAltName.
    pub fn san_uri(uri: impl Into<String>) -> Self {
        Self {
            san_uri: Some(uri.into()),
            ..Self::default()
        }
    }
    /// Match an iPAddress subjectAltName.
    pub fn san_ip(ip: impl Into<String>) -> Self {
        Self {
            san_ip: Some(ip.into()),
            ..Self::default()
        }
    }
    /// Match an rfc822Name subjectAltName.
    pub fn san_email(email: impl Into<String>) -> Self {
        Self {
            san_email: Some(email.into()),
            ..Self::default()
        }
    }
}

/// Why a registered value cannot be used: the registration is malformed
/// (a distinct outcome from a certificate that does not match it).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistrationError {
    /// Not exactly one `tls_client_auth_*` value is set (RFC 8705 §2.1.2).
    #[error("client registration must set exactly one tls_client_auth_* value; {found} are set")]
    TlsClientAuthCount {
        /// How many are set.
        found: usize,
    },
    /// A registered value is malformed.
    #[error("client registration {field} is malformed: {problem}")]
    Malformed {
        /// The registration field, e.g. `tls_client_auth_subject_dn`.
        field: &'static str,
        /// What is wrong, for the operator or the TPP that registered it.
        problem: String,
    },
}

/// A registered client, with its signature keys parsed once.
#[derive(Clone, Debug)]
pub struct ClientMetadata {
    client_id: ClientId,
    auth_method: AuthMethod,
    redirect_uris: Vec<RedirectUri>,
    jwks: JwkSet,
    keys: Arc<KeySet>,
    tls: TlsClientAuthMetadata,
    algorithms: Option<Vec<Algorithm>>,
}

impl ClientMetadata {
    /// Registers a client under `profile`: its JWKS is parsed through
    /// `provider` and checked against the profile's key-size policy now.
    ///
    /// # Errors
    /// [`JwkError`] when a signature key is too small or invalid.
    pub fn new(
        client_id: ClientId,
        auth_method: AuthMethod,
        redirect_uris: Vec<RedirectUri>,
        jwks: JwkSet,
        provider: &dyn CryptoProvider,
        profile: Profile,
    ) -> Result<Self, JwkError> {
        let keys = KeySet::from_jwks(&jwks, provider, &profile.key_policy())?;
        Ok(Self {
            client_id,
            auth_method,
            redirect_uris,
            jwks,
            keys: Arc::new(keys),
            tls: TlsClientAuthMetadata::default(),
            algorithms: None,
        })
    }

    /// Adds the `tls_client_auth_*` matching metadata.
    pub fn with_tls_client_auth(mut self, tls: TlsClientAuthMetadata) -> Self {
        self.tls = tls;
        self
    }

    /// Restricts the client to the algorithms it registered
    /// (`token_endpoint_auth_signing_alg`, `request_object_signing_alg`).
    pub fn with_allowed_algorithms(mut self, algorithms: Vec<Algorithm>) -> Self {
        self.algorithms = Some(algorithms);
        self
    }

    /// The algorithms this client's JWTs may use under `profile`: the
    /// profile's set, narrowed to the client's registration if it has one.
    pub fn algorithms(&self, profile: Profile) -> Vec<Algorithm> {
        profile
            .algorithms()
            .iter()
            .copied()
            .filter(|a| self.algorithms.as_ref().is_none_or(|r| r.contains(a)))
            .collect()
    }

    /// The client id.
    pub fn client_id(&self) -> &ClientId {
        &self.client_id
    }
    /// The registered authentication method.
    pub fn auth_method(&self) -> AuthMethod {
        self.auth_method
    }
    /// The registered redirect URIs.
    pub fn redirect_uris(&self) -> &[RedirectUri] {
        &self.redirect_uris
    }
    /// Whether `uri` is registered, by exact string comparison.
    pub fn has_redirect_uri(&self, uri: &str) -> bool {
        self.redirect_uris.iter().any(|r| r.as_str() == uri)
    }
    /// The registered JWKS.
    pub fn jwks(&self) -> &JwkSet {
        &self.jwks
    }
    /// The client's signature keys, parsed.
    pub fn keys(&self) -> &KeySet {
        &self.keys
    }
    /// `tls_client_auth_*` metadata.
    pub fn tls_client_auth(&self) -> &TlsClientAuthMetadata {
        &self.tls
    }
    /// Algorithms this client's keys can verify.
    pub fn key_algorithms(&self) -> Vec<Algorithm> {
        let mut algs: Vec<Algorithm> = self
            .keys
            .entries()
            .iter()
            .map(|e| e.key().algorithm())
            .collect();
        algs.dedup();
        algs
    }
}
