//! The per-call live reads of the resource pipeline, in one round trip.
//!
//! FAPI-RULES require a revoked access token, a revoked TPP or certificate
//! and a revoked consent to stop the *next* call, including one recorded
//! by another process, so every resource call reads all three live: the
//! token's `jti` against the revoked tokens, the directory's standing of
//! the client presenting the connection's certificate, and the token's
//! consent. [`LiveReads`] answers the three at once; the decisions stay in
//! the crates (`ensure_registered_standing`, `ConsentGate::authorize_read`),
//! which take what was read instead of reading again.

use std::sync::Arc;

use fapi_consent::{Consent, ConsentStore};
use fapi_core::revocation::RevokedTokenStore;
use fapi_core::store::{BoxFuture, StoreError};
use fapi_core::{CertificateThumbprint, ClientId, ConsentId, JwtId};
use fapi_mtls_binding::directory::{Standing, TppDirectory};

/// What one call's live reads found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallState {
    /// Whether the access token's `jti` is revoked.
    pub revoked: bool,
    /// The directory's standing of the client presenting the certificate.
    pub standing: Standing,
    /// The token's consent as stored now (`None`: the token has none, or
    /// no such consent exists).
    pub consent: Option<Consent>,
}

/// The three per-call reads at once.
pub trait LiveReads: Send + Sync + std::fmt::Debug {
    /// The state of a call by `client` presenting `certificate` with the
    /// access token `jti` for `consent`.
    fn read<'a>(
        &'a self,
        jti: &'a JwtId,
        client: &'a ClientId,
        certificate: &'a CertificateThumbprint,
        consent: Option<&'a ConsentId>,
    ) -> BoxFuture<'a, Result<CallState, StoreError>>;
}

/// The three reads one after the other, through each crate's trait: for
/// stores that cannot answer them together.
#[derive(Debug)]
pub struct Composed {
    /// The revoked tokens.
    pub revoked: Arc<dyn RevokedTokenStore>,
    /// The TPP directory.
    pub directory: Arc<dyn TppDirectory>,
    /// The consents.
    pub consents: Arc<dyn ConsentStore>,
}

impl LiveReads for Composed {
    fn read<'a>(
        &'a self,
        jti: &'a JwtId,
        client: &'a ClientId,
        certificate: &'a CertificateThumbprint,
        consent: Option<&'a ConsentId>,
    ) -> BoxFuture<'a, Result<CallState, StoreError>> {
        Box::pin(async move {
            let revoked = self.revoked.is_revoked(jti).await?;
            let standing = self
                .directory
                .standing(client, certificate)
                .await
                .map_err(StoreError::unavailable)?;
            let consent = match consent {
                Some(id) => self.consents.get(id).await?,
                None => None,
            };
            Ok(CallState {
                revoked,
                standing,
                consent,
            })
        })
    }
}
