//! Client authentication with `private_key_jwt` ([RFC 7523 §3], OIDC Core §9),
//! producing [`AuthenticatedClient`].
//!
//! The steps are types: [`UnverifiedClientAssertion::parse`] names the client
//! the assertion claims to be (so the caller can look up its registration);
//! [`UnverifiedClientAssertion::verify`] checks signature and claims and
//! yields a [`PendingReplayCheck`]; only
//! [`PendingReplayCheck::record_jti`] yields the [`AuthenticatedClient`],
//! after the `jti` was recorded as used.
//!
//! [RFC 7523 §3]: https://www.rfc-editor.org/rfc/rfc7523#section-3

use crate::claims::{ClaimError, Claims};
use crate::client::{AuthMethod, ClientMetadata, RegistrationError};
use crate::error::{ErrorCode, OAuthError};
use crate::jose::{ExpectedType, JoseError, JwsPolicy, UnverifiedJws};
use crate::profile::Profile;
use crate::replay::{ReplayCache, StoreError};
use crate::time::UnixTime;
use crate::types::{ClientId, Issuer, JwtId};
use std::sync::Arc;

/// The only `client_assertion_type` accepted.
pub const JWT_BEARER_ASSERTION_TYPE: &str =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Why client authentication failed. Maps to `invalid_client` (401), except
/// store failures (`server_error`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientAuthError {
    /// `client_assertion_type` is not the JWT bearer type.
    #[error("client_assertion_type must be {JWT_BEARER_ASSERTION_TYPE}")]
    WrongAssertionType,
    /// The assertion's JWS failed a JOSE rule.
    #[error("client assertion rejected: {0}")]
    Jose(#[from] JoseError),
    /// A claim failed.
    #[error("client assertion rejected: {0}")]
    Claim(#[from] ClaimError),
    /// `iss` is not a valid client id.
    #[error("client assertion iss is not a valid client_id")]
    InvalidIssuer,
    /// `sub` differs from `iss`.
    #[error("client assertion sub must equal iss (the client_id)")]
    SubjectNotIssuer,
    /// The request names two different clients (e.g. a `client_id`
    /// parameter and an assertion of another client).
    #[error("request carries the identities of two different clients")]
    ConflictingClientIds,
    /// The registration looked up is not the client the assertion names.
    #[error("client registration does not match the assertion")]
    RegistrationMismatch,
    /// The client is not registered for `private_key_jwt`.
    #[error("client is not registered for private_key_jwt")]
    MethodNotRegistered,
    /// `jti` is missing or invalid.
    #[error("client assertion must carry a jti")]
    MissingJti,
    /// The `jti` was used before.
    #[error("client assertion jti has been used before")]
    Replayed,
    /// The replay cache failed (fail closed).
    #[error("client assertion could not be checked for replay")]
    Store(#[from] StoreError),
    /// The client's registration cannot authenticate it: a
    /// `tls_client_auth_*` value is malformed, or not exactly one is set.
    /// The registration must be corrected; the certificate was not judged.
    #[error(transparent)]
    InvalidRegistration(#[from] RegistrationError),
    /// The presented client certificate does not authenticate this client
    /// (RFC 8705 §2).
    #[error(transparent)]
    Certificate(#[from] CertificateAuthError),
}

impl OAuthError for ClientAuthError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::Store(_) => ErrorCode::ServerError,
            _ => ErrorCode::InvalidClient,
        }
    }
}

/// Which endpoint the assertion was presented at (FAPI 1 allows the endpoint
/// URL as `aud`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint<'a> {
    /// The token endpoint, with its URL.
    Token(&'a str),
    /// The PAR endpoint, with its URL.
    PushedAuthorization(&'a str),
    /// Any other endpoint (only the issuer is an acceptable `aud`).
    Other,
}

/// The authorization server's side of the checks
/// ([`AssertionContext::new`]).
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct AssertionContext<'a> {
    /// The profile in force.
    pub profile: Profile,
    /// The authorization server's issuer identifier.
    pub issuer: &'a Issuer,
    /// The endpoint the assertion arrived at.
    pub endpoint: Endpoint<'a>,
}

impl<'a> AssertionContext<'a> {
    /// Assertions under `profile` for `issuer`, arriving at `endpoint`.
    pub const fn new(profile: Profile, issuer: &'a Issuer, endpoint: Endpoint<'a>) -> Self {
        Self {
            profile,
            issuer,
            endpoint,
        }
    }
}

/// A client assertion whose signature has not been checked.
#[derive(Debug)]
pub struct UnverifiedClientAssertion<'a> {
    jws: UnverifiedJws<'a>,
    client_id: ClientId,
}

impl<'a> UnverifiedClientAssertion<'a> {
    /// Frames the assertion and reads the client it claims to be. If the
    /// request also carries a `client_id` parameter, it must name the same
    /// client.
    ///
    /// # Errors
    /// [`ClientAuthError`].
    pub fn parse(
        assertion_type: &str,
        assertion: &'a str,
        client_id_param: Option<&str>,
    ) -> Result<Self, ClientAuthError> {
        if assertion_type != JWT_BEARER_ASSERTION_TYPE {
            return Err(ClientAuthError::WrongAssertionType);
        }
        let jws = UnverifiedJws::parse(assertion)?;
        let claims = jws.unverified_claims()?;
        let iss = claims.required_string("iss")?;
        let client_id = ClientId::try_from(iss).map_err(|_| ClientAuthError::InvalidIssuer)?;
        if client_id_param.is_some_and(|p| p != client_id.as_str()) {
            return Err(ClientAuthError::ConflictingClientIds);
        }
        Ok(Self { jws, client_id })
    }

    /// The client the assertion claims to be: look up its registration.
    pub fn unverified_client_id(&self) -> &ClientId {
        &self.client_id
    }

    /// Verifies the assertion against the client's registration.
    ///
    /// # Errors
    /// [`ClientAuthError`].
    pub fn verify(
        self,
        client: &Arc<ClientMetadata>,
        ctx: &AssertionContext<'_>,
        now: UnixTime,
    ) -> Result<PendingReplayCheck, ClientAuthError> {
        if client.client_id() != &self.client_id {
            return Err(ClientAuthError::RegistrationMismatch);
        }
        if client.auth_method() != AuthMethod::PrivateKeyJwt {
            return Err(ClientAuthError::MethodNotRegistered);
        }
        let algorithms = client.algorithms(ctx.profile);
        let policy = JwsPolicy {
            algorithms: &algorithms,
            typ: ExpectedType::JwtOrAbsent,
            understood_critical: &[],
        };
        let verified = self.jws.verify(client.keys(), &policy)?;
        let claims = verified.claims();
        let times = claims.check_times(&ctx.profile.client_assertion_times(), now)?;
        if claims.required_string("iss")? != self.client_id.as_str() {
            return Err(ClientAuthError::InvalidIssuer);
        }
        if claims.required_string("sub")? != self.client_id.as_str() {
            return Err(ClientAuthError::SubjectNotIssuer);
        }
        check_audience(claims, ctx)?;
        let jti = claims
            .string("jti")?
            .and_then(|j| JwtId::try_from(j).ok())
            .ok_or(ClientAuthError::MissingJti)?;
        Ok(PendingReplayCheck {
            registration: Arc::clone(client),
            jti,
            expires_at: times.exp,
        })
    }
}

fn check_audience(claims: &Claims, ctx: &AssertionContext<'_>) -> Result<(), ClientAuthError> {
    let aud = claims.audience()?.ok_or(ClaimError::Missing("aud"))?;
    let ok = if ctx.profile.audience_array_allowed() {
        // FAPI 1: the issuer, the token endpoint URL, or the PAR endpoint
        // URL when presented there; arrays allowed.
        let endpoint_url = match ctx.endpoint {
            Endpoint::Token(u) | Endpoint::PushedAuthorization(u) => Some(u),
            Endpoint::Other => None,
        };
        aud.contains(ctx.issuer.as_str()) || endpoint_url.is_some_and(|u| aud.contains(u))
    } else {
        // FAPI 2 SP §5.3.2.1: the issuer, as a plain string only.
        aud.is_exactly(ctx.issuer.as_str())
    };
    if ok {
        Ok(())
    } else {
        Err(ClaimError::WrongAudience.into())
    }
}

/// A verified assertion whose `jti` is not yet recorded as used.
#[derive(Debug)]
#[must_use = "the client is authenticated only after record_jti"]
pub struct PendingReplayCheck {
    registration: Arc<ClientMetadata>,
    jti: JwtId,
    expires_at: UnixTime,
}

impl PendingReplayCheck {
    /// Records the `jti` as used; a second use is refused.
    ///
    /// # Errors
    /// [`ClientAuthError::Replayed`], or [`ClientAuthError::Store`] if the
    /// cache fails (fail closed).
    pub async fn record_jti(
        self,
        cache: &dyn ReplayCache,
        now: UnixTime,
    ) -> Result<AuthenticatedClient, ClientAuthError> {
        let fresh = cache
            .insert_if_absent(
                self.registration.client_id().as_str(),
                self.jti.as_str(),
                self.expires_at,
                now,
            )
            .await?;
        if !fresh {
            return Err(ClientAuthError::Replayed);
        }
        Ok(AuthenticatedClient {
            registration: self.registration,
            method: AuthMethod::PrivateKeyJwt,
        })
    }
}

/// Why a client certificate does not authenticate a client. Each variant
/// is one check; none echoes certificate or registration data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateAuthError {
    /// The certificate check does not fit the client's registered method
    /// (a `tls_client_auth` check for a `self_signed_tls_client_auth`
    /// client, or the reverse).
    #[error("client certificate does not authenticate this client: the check does not fit the registered token_endpoint_auth_method")]
    WrongMethod,
    /// The subject DN is not the registered `tls_client_auth_subject_dn`
    /// under RFC 4517 `distinguishedNameMatch`. `reversed_would_match`:
    /// the registered DN lists the same RDNs in the opposite order (the
    /// likely mistake is a DN written in OpenSSL's one-line order).
    #[error("{}", subject_dn_mismatch(*reversed_would_match))]
    SubjectDnMismatch {
        /// Whether the registration, with its RDNs reversed, would match.
        reversed_would_match: bool,
    },
    /// No subjectAltName of the registered kind has the registered value.
    #[error("client certificate does not authenticate this client: no {kind} subjectAltName matches the registered tls_client_auth_san_{kind}")]
    SanMismatch {
        /// `dns`, `uri`, `ip` or `email`.
        kind: &'static str,
    },
    /// The certificate's subjectAltName extension cannot be read.
    #[error("client certificate does not authenticate this client: its subjectAltName extension is malformed")]
    MalformedSubjectAltName,
    /// `self_signed_tls_client_auth`: the certificate's key is not one of
    /// the client's registered JWKs.
    #[error("client certificate does not authenticate this client: its key is not one of the client's registered keys")]
    KeyNotRegistered,
    /// `self_signed_tls_client_auth`: the certificate's key type cannot be
    /// compared with a JWK.
    #[error("client certificate does not authenticate this client: its key type is not RSA, P-256 or Ed25519")]
    UnsupportedKeyType,
    /// `tls_client_auth`: the certificate chain was refused.
    #[error("client certificate does not authenticate this client: {reason}")]
    ChainRejected {
        /// A fixed phrase naming the chain rule that failed.
        reason: &'static str,
    },
    /// The directory says the TPP is revoked.
    #[error("client certificate does not authenticate this client: the TPP has been revoked in the directory")]
    TppRevoked,
    /// The directory says this certificate is revoked.
    #[error("client certificate does not authenticate this client: the certificate has been revoked in the directory")]
    CertificateRevoked,
    /// The directory does not register this certificate to the client.
    #[error("client certificate does not authenticate this client: the certificate is not registered to this client in the directory")]
    NotRegistered,
}

fn subject_dn_mismatch(reversed_would_match: bool) -> &'static str {
    if reversed_would_match {
        "client certificate does not authenticate this client: its subject DN does not match the registered tls_client_auth_subject_dn, which lists the same RDNs in reverse order; register the DN in RFC 4514 order, most specific RDN first (CN=...,O=...,C=GB)"
    } else {
        "client certificate does not authenticate this client: its subject DN does not match the registered tls_client_auth_subject_dn"
    }
}

/// A certificate-based client-authentication check ([RFC 8705 §2]):
/// `tls_client_auth` (trusted chain, then subject DN or SAN match) or
/// `self_signed_tls_client_auth` (certificate key equals a registered JWK).
/// Implemented by `fapi-mtls-binding`; [`AuthenticatedClient::from_certificate`]
/// is the only way from a certificate to an [`AuthenticatedClient`].
///
/// [RFC 8705 §2]: https://www.rfc-editor.org/rfc/rfc8705#section-2
pub trait CertificateAuthentication {
    /// Checks that the certificate authenticates `client` under the
    /// client's registered method.
    ///
    /// # Errors
    /// [`ClientAuthError::Certificate`] naming the failed check, or
    /// [`ClientAuthError::InvalidRegistration`] when the client's
    /// registration itself is unusable.
    fn authenticate(&self, client: &ClientMetadata) -> Result<(), ClientAuthError>;
}

/// A client whose identity was proven by one of the FAPI methods, carrying
/// the registration it was proven against: what comes after client
/// authentication (PAR, the token endpoint) takes the registration from
/// here, so it cannot be handed another client's. No public constructor:
/// it comes from [`PendingReplayCheck::record_jti`], or from a certificate
/// check (`fapi-mtls-binding`) through [`AuthenticatedClient::from_certificate`].
#[derive(Clone, Debug)]
pub struct AuthenticatedClient {
    registration: Arc<ClientMetadata>,
    method: AuthMethod,
}

impl AuthenticatedClient {
    /// Authenticates `client` by the certificate check `proof`, if the
    /// client is registered for a certificate method.
    ///
    /// # Errors
    /// [`ClientAuthError::MethodNotRegistered`] for a `private_key_jwt`
    /// client; [`ClientAuthError::Certificate`] if the check fails.
    pub fn from_certificate(
        client: &Arc<ClientMetadata>,
        proof: &dyn CertificateAuthentication,
    ) -> Result<Self, ClientAuthError> {
        match client.auth_method() {
            AuthMethod::TlsClientAuth | AuthMethod::SelfSignedTlsClientAuth => {
                proof.authenticate(client)?;
                Ok(Self {
                    registration: Arc::clone(client),
                    method: client.auth_method(),
                })
            }
            _ => Err(ClientAuthError::MethodNotRegistered),
        }
    }

    /// The authenticated client id.
    pub fn client_id(&self) -> &ClientId {
        self.registration.client_id()
    }
    /// The registration the client authenticated against.
    pub fn registration(&self) -> &ClientMetadata {
        &self.registration
    }
    /// How it authenticated.
    pub fn method(&self) -> AuthMethod {
        self.method
    }
}
