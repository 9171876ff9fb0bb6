//! The resource server's pipeline as axum extractors: a handler that
//! needs an access token takes [`Bound`], [`BoundWithConsent`] or
//! [`ClientToken`] as an argument, and there is no other way to get one
//! ([`pipeline`] is private to this module). Each runs fapi-mtls-binding's
//! [`ResourceChain`] (verify, the three live reads in one round trip, not
//! revoked, certificate still trusted, bind, directory standing) with the
//! bank's live read ([`CallReads`]).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use fapi_consent::Consent;
use fapi_core::store::{BoxFuture, StoreError};
use fapi_core::CertificateThumbprint;
use fapi_core::{BoundAccessToken, VerifiedAccessToken};
use fapi_mtls_binding::resource::{CallError, LiveRead, LiveState, ResourceChain};

use super::errors::ObError;
use super::observe::auth_failure;
use super::tls::ConnectionInfo;
use super::BankState;

/// A token through the whole chain; no consent read (the handler decides
/// by another read, e.g. a payment's reservation, or needs none).
pub(crate) struct Bound(pub(crate) BoundAccessToken);

/// A token through the whole chain, and its consent read in the same
/// round trip, for `ConsentGate::authorize_read`.
pub(crate) struct BoundWithConsent {
    pub(crate) token: BoundAccessToken,
    pub(crate) consent: Option<Consent>,
}

/// A token through the whole chain that must be a client-credentials
/// token (no consent) of a scope the handler names
/// ([`ClientToken::scoped`]).
pub(crate) struct ClientToken(BoundAccessToken);

impl ClientToken {
    /// The token, if it has no consent and carries `scope`.
    pub(crate) fn scoped(self, scope: &str) -> Result<BoundAccessToken, ObError> {
        let token = self.0;
        if token.consent_id().is_some() || !token.scope().is_some_and(|s| s.contains(scope)) {
            auth_failure("wrong_token_kind");
            return Err(ObError::new(
                StatusCode::FORBIDDEN,
                "UK.OBIE.Unauthorized",
                format!("this endpoint needs a client_credentials token with scope {scope}"),
            ));
        }
        Ok(token)
    }
}

fn connection(parts: &Parts) -> Result<&ConnectionInfo, ObError> {
    // every request on the TPP listener carries its connection; one
    // without it is a wiring fault, refused
    parts
        .extensions
        .get::<ConnectionInfo>()
        .ok_or_else(ObError::internal)
}

impl FromRequestParts<Arc<BankState>> for Bound {
    type Rejection = ObError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<BankState>,
    ) -> Result<Self, Self::Rejection> {
        let info = connection(parts)?;
        let (token, _) = pipeline(state, &parts.headers, info, false).await?;
        Ok(Self(token))
    }
}

impl FromRequestParts<Arc<BankState>> for BoundWithConsent {
    type Rejection = ObError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<BankState>,
    ) -> Result<Self, Self::Rejection> {
        let info = connection(parts)?;
        let (token, consent) = pipeline(state, &parts.headers, info, true).await?;
        Ok(Self { token, consent })
    }
}

impl FromRequestParts<Arc<BankState>> for ClientToken {
    type Rejection = ObError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<BankState>,
    ) -> Result<Self, Self::Rejection> {
        let info = connection(parts)?;
        let (token, _) = pipeline(state, &parts.headers, info, false).await?;
        Ok(Self(token))
    }
}

/// The pipeline every resource call runs: fapi-mtls-binding's
/// [`ResourceChain`] (verify, the three live reads in one round trip,
/// not revoked, certificate still trusted, bind, directory standing), with
/// the bank's live read ([`CallReads`]). Returns the bound token and, with
/// `read_consent`, its consent as read. Each refusal is counted by reason.
async fn pipeline(
    state: &BankState,
    headers: &HeaderMap,
    info: &ConnectionInfo,
    read_consent: bool,
) -> Result<(BoundAccessToken, Option<Consent>), ObError> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let ring = state.ring();
    let reads = CallReads {
        state,
        read_consent,
    };
    ResourceChain::new(&ring.verifier, &state.trust)
        .authorize(authorization, info.certificate(), &reads, state.now())
        .await
        .map_err(|e| {
            let reason = match &e {
                CallError::Token(_) => "access_token",
                CallError::NoCertificate => "no_client_certificate",
                CallError::Revoked => "revoked_token",
                CallError::Untrusted(_) => "certificate_untrusted",
                CallError::Binding(_) => "cnf_mismatch",
                CallError::Directory(_) => "certificate_revoked",
                CallError::Store(e) => {
                    tracing::error!(error = %fapi_core::store::ErrorChain(e), "per-call state could not be read");
                    return ObError::internal();
                }
                _ => "access_token",
            };
            auth_failure(reason);
            ObError::token(&e)
        })
}

/// The bank's live read for the resource chain: the token's revoked `jti`,
/// the directory standing and (when asked) the token's consent, in one
/// round trip ([`super::live::LiveReads`]). A verified token's client
/// names the request's span and joins its consent flow's trace here.
struct CallReads<'s> {
    state: &'s BankState,
    read_consent: bool,
}

impl LiveState<Option<Consent>> for CallReads<'_> {
    fn read<'a>(
        &'a self,
        token: &'a VerifiedAccessToken,
        certificate: &'a CertificateThumbprint,
    ) -> BoxFuture<'a, Result<LiveRead<Option<Consent>>, StoreError>> {
        tracing::Span::current().record("client_id", token.client_id().as_str());
        if let Some(c) = token.consent_id() {
            super::telemetry::join_flow(c.as_str(), token.client_id().as_str());
        }
        Box::pin(async move {
            let live = self
                .state
                .live
                .read(
                    token.jti(),
                    token.client_id(),
                    certificate,
                    token.consent_id().filter(|_| self.read_consent),
                )
                .await?;
            Ok(LiveRead {
                revoked: live.revoked,
                standing: live.standing,
                extra: live.consent,
            })
        })
    }
}
