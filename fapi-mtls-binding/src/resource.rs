//! The resource server's chain for a call with a certificate-bound access
//! token, as one call whose only output is the authorized value: a
//! [`BoundAccessToken`] that passed every step, in this order, and
//! whatever the caller's live read returned with it (its consent).
//!
//! 1. `verify`: the token's signature, `typ`, `iss`, `aud`, times
//!    (fapi-core's [`AccessTokenVerifier`]).
//! 2. the connection presented a client certificate;
//! 3. the live read, one round trip of the caller's store ([`LiveState`]):
//!    is the token's `jti` revoked, what does the directory say of this
//!    client presenting this certificate, and anything else read with them;
//! 4. not revoked;
//! 5. the certificate still chains to the scheme's bundle in force (once per
//!    bundle version per connection, [`CertificateConnection`]);
//! 6. `bind`: the token's `cnf.x5t#S256` is this certificate;
//! 7. the certificate is registered to the token's client and neither is
//!    revoked ([`ensure_registered_standing`]).
//!
//! A service cannot skip or reorder a step: [`ResourceChain::authorize`]
//! is the only way to a [`BoundAccessToken`] from a request here, and the
//! consent gate (`fapi-consent`) takes that type. Every refusal is one
//! [`CallError`] variant, each `invalid_token` (401) except a store that
//! could not answer.
//!
//! ```
//! use fapi_consent::{Authorized, ConsentGate, ResourceAccess};
//! use fapi_core::{AccessTokenVerifier, UnixTime};
//! use fapi_mtls_binding::resource::{CertificateConnection, LiveState, ResourceChain};
//! use fapi_mtls_binding::trust::TrustStore;
//!
//! /// One resource call: the chain, then the consent gate on the consent
//! /// the live read returned. Refusals carry their OAuth error code.
//! async fn account_list(
//!     verifier: &AccessTokenVerifier,      // built once: bank keys, issuer, audience
//!     trust: &TrustStore,                  // the scheme's CA bundle and CRLs
//!     gate: &ConsentGate,
//!     live: &dyn LiveState<Option<fapi_consent::Consent>>, // one round trip to the store
//!     authorization: &str,                 // the Authorization header
//!     connection: &CertificateConnection,  // the TLS client certificate of the connection
//!     now: UnixTime,
//! ) -> Result<Authorized, Box<dyn std::error::Error>> {
//!     let (token, consent) = ResourceChain::new(verifier, trust)
//!         .authorize(authorization, connection, live, now)
//!         .await?;
//!     Ok(gate.authorize_read(&token, consent, &ResourceAccess::Accounts, now)?)
//! }
//! ```

use core::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use fapi_core::access_token::{AccessTokenError, BindingError};
use fapi_core::client_auth::ClientAuthError;
use fapi_core::store::{BoxFuture, StoreError};
use fapi_core::CertificateThumbprint;
use fapi_core::UnixTime;
use fapi_core::{AccessTokenVerifier, BoundAccessToken, VerifiedAccessToken};
use fapi_core::{ErrorCode, OAuthError};

use crate::binding::PresentedCertificate;
use crate::directory::{ensure_registered_standing, Standing};
use crate::trust::{TrustError, TrustStore};

/// What one call's live read found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveRead<C> {
    /// Whether the token's `jti` is revoked.
    pub revoked: bool,
    /// The directory's standing of the token's client presenting the
    /// connection's certificate.
    pub standing: Standing,
    /// What else the caller read in the same round trip (e.g. the
    /// token's consent), handed back with the bound token.
    pub extra: C,
}

/// Reads a call's live state in one round trip. Read on every call, never
/// cached: a revocation recorded anywhere stops the next call.
pub trait LiveState<C>: Send + Sync {
    /// The state of a call with `token` over a connection presenting
    /// `certificate`.
    fn read<'a>(
        &'a self,
        token: &'a VerifiedAccessToken,
        certificate: &'a CertificateThumbprint,
    ) -> BoxFuture<'a, Result<LiveRead<C>, StoreError>>;
}

/// A connection's verified client certificate (as the TLS layer handed it
/// over), and the trust-bundle version it was last checked against, so a
/// rotated bundle or a new CRL applies to the next request on a
/// connection opened before it.
pub struct CertificateConnection {
    presented: Option<PresentedCertificate>,
    verified_bundle: AtomicU64,
    self_signed: bool,
}

impl fmt::Debug for CertificateConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateConnection")
            .field("has_certificate", &self.presented.is_some())
            .finish_non_exhaustive()
    }
}

impl CertificateConnection {
    /// A connection that presented `presented` (`None`: no certificate,
    /// or one that does not parse).
    pub fn new(presented: Option<PresentedCertificate>) -> Self {
        Self {
            presented,
            verified_bundle: AtomicU64::new(0),
            self_signed: false,
        }
    }

    /// A connection whose TLS layer accepted `presented` as a self-signed
    /// certificate outside the scheme
    /// ([`TrustStoreClientVerifier::allow_self_signed`](crate::tls::TrustStoreClientVerifier::allow_self_signed)).
    /// [`ResourceChain::authorize`] does not chain-check it: it is trusted
    /// only as a certificate the directory says the token's client holds
    /// (which, for a `self_signed_tls_client_auth` client, only a key in
    /// its registered JWKS makes it; see
    /// [`ensure_client_certificate`](crate::directory::ensure_client_certificate)).
    /// Mark a connection so only when its certificate is self-issued and
    /// sent alone: anything else must chain.
    pub fn self_signed(presented: PresentedCertificate) -> Self {
        let self_signed =
            presented.certificate().is_self_issued() && presented.intermediates().is_empty();
        Self {
            presented: Some(presented),
            verified_bundle: AtomicU64::new(0),
            self_signed,
        }
    }

    /// Whether the TLS layer accepted the certificate as self-signed.
    pub fn is_self_signed(&self) -> bool {
        self.self_signed
    }

    /// The certificate, as the proof of possession the calls present.
    pub fn presented(&self) -> Option<&PresentedCertificate> {
        self.presented.as_ref()
    }

    /// Verifies the certificate (and the intermediates sent with it)
    /// against the bundle now in force in `trust`, once per bundle
    /// version.
    ///
    /// # Errors
    /// [`TrustError`]; no certificate is [`TrustError::Invalid`].
    pub fn check_trust(&self, trust: &TrustStore, now: UnixTime) -> Result<(), TrustError> {
        let bundle = trust.current();
        if self.verified_bundle.load(Ordering::Acquire) == bundle.version() {
            return Ok(());
        }
        let cert = self.presented().ok_or(TrustError::Invalid)?;
        bundle.verify(cert.certificate(), &cert.intermediates(), now)?;
        self.verified_bundle
            .store(bundle.version(), Ordering::Release);
        Ok(())
    }
}

/// Why a call was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The access token failed verification.
    #[error(transparent)]
    Token(#[from] AccessTokenError),
    /// The connection presented no client certificate.
    #[error("a client certificate is required")]
    NoCertificate,
    /// The token has been revoked.
    #[error("access token has been revoked")]
    Revoked,
    /// The certificate no longer chains to the scheme's bundle in force.
    #[error("client certificate is no longer trusted: {0}")]
    Untrusted(TrustError),
    /// The token is not bound to this certificate.
    #[error(transparent)]
    Binding(#[from] BindingError),
    /// The directory refuses the client with this certificate (not
    /// registered to it, or revoked).
    #[error(transparent)]
    Directory(ClientAuthError),
    /// The live read failed (fail closed).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl OAuthError for CallError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::Store(_) => ErrorCode::ServerError,
            _ => ErrorCode::InvalidToken,
        }
    }
}

/// The chain, configured with the server's verifier and the scheme's
/// trust store.
#[derive(Clone, Copy, Debug)]
pub struct ResourceChain<'a> {
    verifier: &'a AccessTokenVerifier,
    trust: &'a TrustStore,
}

impl<'a> ResourceChain<'a> {
    /// A chain verifying tokens with `verifier` and certificates with
    /// `trust`.
    pub fn new(verifier: &'a AccessTokenVerifier, trust: &'a TrustStore) -> Self {
        Self { verifier, trust }
    }

    /// Runs every step (see the module docs) for a call carrying the
    /// `Authorization` header `authorization` over `connection` at `now`,
    /// reading its live state through `live`. Returns the bound token and
    /// what the live read returned with it.
    ///
    /// # Errors
    /// The first step that refuses, as [`CallError`].
    pub async fn authorize<C>(
        &self,
        authorization: &str,
        connection: &CertificateConnection,
        live: &dyn LiveState<C>,
        now: UnixTime,
    ) -> Result<(BoundAccessToken, C), CallError> {
        let verified = self.verifier.verify(authorization, now)?;
        let certificate = connection.presented().ok_or(CallError::NoCertificate)?;
        let read = live
            .read(&verified, certificate.certificate().thumbprint())
            .await?;
        if read.revoked {
            return Err(CallError::Revoked);
        }
        // a self-signed connection has no chain: the standing below (the
        // token's client holds this certificate) is what trusts it
        if !connection.is_self_signed() {
            connection
                .check_trust(self.trust, now)
                .map_err(CallError::Untrusted)?;
        }
        let bound = verified.bind(certificate)?;
        ensure_registered_standing(bound.client_id(), read.standing)
            .map_err(CallError::Directory)?;
        Ok((bound, read.extra))
    }
}
