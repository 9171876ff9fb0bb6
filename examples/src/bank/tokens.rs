//! What a client can ask about its tokens, and the customer's identity:
//! `POST /introspect` (RFC 7662, and signed per RFC 9701 when asked),
//! `POST /revoke` (RFC 7009) and `GET|POST /userinfo` (OIDC Core §5.3),
//! all on the TPP listener over mutual TLS.
//!
//! Introspection and revocation authenticate the client exactly as `/token`
//! does (`private_key_jwt` over its registered certificate). A client
//! learns about its own tokens only: another client's token introspects as
//! `{"active": false}` (RFC 7662 §2.2 lets the server say no more) and its
//! revocation is refused. A token is active when the resource chain would
//! accept it from its own client: signature, issuer, audience and times
//! verified, not revoked, its certificate still in the directory's good
//! standing, and its consent (if any) still in force, all read live.
//!
//! Userinfo is a resource call: the token goes through the whole resource
//! chain (bound to the connection's certificate) with its consent read in
//! the same round trip, and needs the `openid` scope.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use fapi_consent::audit::{AuditAction, AuditEvent};
use fapi_consent::consent::{ConsentStatus, ConsentTerms};
use fapi_consent::Consent;
use fapi_core::access_token::Confirmation;
use fapi_core::client_auth::Endpoint;
use fapi_core::refresh::RefreshToken;
use fapi_core::{ErrorCode, UnixTime, VerifiedAccessToken};
use fapi_mtls_binding::directory::ensure_registered_standing;
use serde_json::{json, Map, Value};

use super::errors::{OAuthFailure, ObError};
use super::oauth::{
    authenticate, form_content_type, labelled, no_store, signing_failed, store_failed, Caller,
    Form, MAX_TOKEN_BODY,
};
use super::observe::{auth_failure, InteractionId};
use super::pipeline::BoundWithConsent;
use super::tls::ConnectionInfo;
use super::BankState;

/// The media type of a signed introspection response (RFC 9701 §5).
pub(crate) const INTROSPECTION_JWT: &str = "application/token-introspection+jwt";

/// Whether a consent still backs the tokens issued for it at `now`: the
/// statuses in which the resource chain serves its token (a consumed
/// payment consent still reads its payment) and, for account access, its
/// expiry not reached.
fn consent_in_force(consent: &Consent, now: UnixTime) -> bool {
    let status = matches!(
        consent.status(),
        ConsentStatus::Authorised | ConsentStatus::PaymentPending | ConsentStatus::Consumed
    );
    let unexpired = match consent.terms() {
        ConsentTerms::AccountAccess(terms) => terms.expiration.is_none_or(|e| now < e),
        _ => true,
    };
    status && unexpired
}

fn inactive() -> Value {
    json!({ "active": false })
}

/// The start of a request about a token (`/introspect`, `/revoke`): a
/// form body, its client authenticated as at `/token`.
async fn about_a_token(
    state: &BankState,
    info: &ConnectionInfo,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Caller, Form), OAuthFailure> {
    form_content_type(headers)?;
    let form = Form::parse(body, MAX_TOKEN_BODY)?;
    let caller = authenticate(state, info, |n| form.get(n), Endpoint::Other).await?;
    Ok((caller, form))
}

/// `POST /introspect`.
pub(crate) async fn introspect(
    State(state): State<Arc<BankState>>,
    Extension(info): Extension<ConnectionInfo>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthFailure> {
    let (caller, form) = about_a_token(&state, &info, &headers, &body).await?;
    let token = form.require("token")?;
    // a JWS (access token) is never a refresh token and the reverse, so
    // `token_type_hint` (RFC 7662 §2.1) only orders a search of two
    // disjoint kinds: it is not needed, and an unknown hint is ignored
    let answer = match access_token(&state, &caller, token).await? {
        Some(a) => a,
        None => refresh_token(&state, &caller, token)
            .await?
            .unwrap_or_else(inactive),
    };
    let response = if wants_signed(&headers) {
        let jwt = sign_introspection(&state, &caller, answer)?;
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(INTROSPECTION_JWT),
            )],
            jwt,
        )
            .into_response()
    } else {
        Json(answer).into_response()
    };
    Ok(labelled(no_store(response), caller.client.client_id()))
}

/// Whether the request's `Accept` asks for the signed form (RFC 9701 §4).
fn wants_signed(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|media| {
            media
                .split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case(INTROSPECTION_JWT))
        })
}

/// The RFC 9701 §5 JWT: the bank's issuer, the requesting client as
/// audience, and the RFC 7662 answer under `token_introspection`.
fn sign_introspection(
    state: &BankState,
    caller: &Caller,
    answer: Value,
) -> Result<String, OAuthFailure> {
    let ring = state.ring();
    let mut claims = Map::new();
    claims.insert("iss".into(), json!(state.issuer.as_str()));
    claims.insert("aud".into(), json!(caller.client.client_id().as_str()));
    claims.insert("iat".into(), json!(state.now().as_secs()));
    claims.insert("token_introspection".into(), answer);
    fapi_core::jose::sign_compact(
        &*ring.key,
        Some(&ring.kid),
        Some("token-introspection+jwt"),
        &claims,
    )
    .map_err(signing_failed)
}

/// The answer for `token` if it is one of the bank's access tokens whose
/// signature and times verify (`None`: it is not, so it may be a refresh
/// token). Another client's token is inactive to the caller.
async fn access_token(
    state: &BankState,
    caller: &Caller,
    token: &str,
) -> Result<Option<Value>, OAuthFailure> {
    let now = state.now();
    let Ok(t) = state.ring().verifier.verify_value(token, now) else {
        return Ok(None);
    };
    if t.client_id() != caller.client.client_id() {
        auth_failure("introspect_wrong_client");
        return Ok(Some(inactive()));
    }
    // the bank binds every token it issues to a certificate
    let Some(Confirmation::CertificateThumbprint(certificate)) = t.confirmation() else {
        return Ok(Some(inactive()));
    };
    let live = state
        .live
        .read(t.jti(), t.client_id(), certificate, t.consent_id())
        .await
        .map_err(store_failed)?;
    let consent_ok = match t.consent_id() {
        None => true,
        Some(id) => live.consent.as_ref().is_some_and(|c| {
            c.id() == id && c.client_id() == t.client_id() && consent_in_force(c, now)
        }),
    };
    if live.revoked
        || ensure_registered_standing(t.client_id(), live.standing).is_err()
        || !consent_ok
    {
        return Ok(Some(inactive()));
    }
    Ok(Some(describe_access_token(state, &t)))
}

fn describe_access_token(state: &BankState, t: &VerifiedAccessToken) -> Value {
    let mut v = json!({
        "active": true,
        "token_type": "Bearer",
        "client_id": t.client_id().as_str(),
        "sub": t.subject(),
        "iss": state.issuer.as_str(),
        "aud": state.api_base,
        "exp": t.expires_at().as_secs(),
        "jti": t.jti().as_str(),
    });
    if let Some(obj) = v.as_object_mut() {
        if let Some(scope) = t.scope() {
            obj.insert("scope".into(), json!(scope.to_string()));
        }
        if let Some(c) = t.confirmation() {
            obj.insert("cnf".into(), c.to_json());
        }
        if let Some(id) = t.consent_id() {
            obj.insert("openbanking_intent_id".into(), json!(id.as_str()));
        }
    }
    v
}

/// The answer for `token` as a refresh token (`None`: no such live grant).
async fn refresh_token(
    state: &BankState,
    caller: &Caller,
    token: &str,
) -> Result<Option<Value>, OAuthFailure> {
    let Ok(token) = RefreshToken::try_from(token) else {
        return Ok(None);
    };
    let Some(grant) = state.refreshes.grant(&token).await.map_err(store_failed)? else {
        return Ok(None);
    };
    if &grant.client_id != caller.client.client_id() {
        auth_failure("introspect_wrong_client");
        return Ok(Some(inactive()));
    }
    if state
        .gate
        .check_grant(&grant.consent_id, &grant.client_id, state.now())
        .await
        .is_err()
    {
        return Ok(Some(inactive()));
    }
    Ok(Some(json!({
        "active": true,
        "token_type": "refresh_token",
        "client_id": grant.client_id.as_str(),
        "sub": grant.customer_id,
        "iss": state.issuer.as_str(),
        "scope": grant.scope.to_string(),
        "cnf": grant.confirmation.to_json(),
        "openbanking_intent_id": grant.consent_id.as_str(),
    })))
}

/// `POST /revoke` (RFC 7009): the client's own access or refresh token
/// stops working on its next use, on every instance (the revoked `jti` is
/// read live by the resource chain; the refresh grant is deleted). An
/// unknown, malformed or expired token is answered 200 (§2.2: there is
/// nothing left to revoke); another client's token is refused. Each
/// revocation is audited by the token's id, never the token.
///
/// Revoking a refresh token does not reach the access tokens already
/// refreshed from it (the bank does not record which they are): they end
/// at their expiry, within minutes, or at once with the consent's
/// revocation.
pub(crate) async fn revoke(
    State(state): State<Arc<BankState>>,
    Extension(info): Extension<ConnectionInfo>,
    interaction: Option<Extension<InteractionId>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthFailure> {
    let (caller, form) = about_a_token(&state, &info, &headers, &body).await?;
    let token = form.require("token")?;
    let now = state.now();
    let other_client = || {
        auth_failure("revoke_wrong_client");
        OAuthFailure::new(
            ErrorCode::UnauthorizedClient,
            "the token was issued to another client",
        )
    };
    let revoked = if let Ok(t) = state.ring().verifier.verify_value(token, now) {
        if t.client_id() != caller.client.client_id() {
            return Err(other_client());
        }
        let already = state
            .revoked
            .is_revoked(t.jti())
            .await
            .map_err(store_failed)?;
        state
            .revoked
            .revoke(std::slice::from_ref(t.jti()), now)
            .await
            .map_err(store_failed)?;
        // a repeated revocation changes nothing and is not recorded again
        (!already).then(|| {
            (
                "access_token",
                t.jti().as_str().to_owned(),
                t.subject().to_owned(),
                t.consent_id().cloned(),
            )
        })
    } else if let Ok(rt) = RefreshToken::try_from(token) {
        match state.refreshes.grant(&rt).await.map_err(store_failed)? {
            Some(grant) if &grant.client_id != caller.client.client_id() => {
                return Err(other_client())
            }
            Some(grant) => {
                state
                    .refreshes
                    .revoke(std::slice::from_ref(&grant.id))
                    .await
                    .map_err(store_failed)?;
                Some((
                    "refresh_token",
                    grant.id.as_str().to_owned(),
                    grant.customer_id,
                    Some(grant.consent_id),
                ))
            }
            None => None,
        }
    } else {
        None
    };
    if let Some((kind, id, customer, consent)) = revoked {
        let mut event = AuditEvent::new(
            AuditAction::TokenRevoked {
                token_type: kind.into(),
                token_id: id,
            },
            now,
        );
        event.client_id = Some(caller.client.client_id().clone());
        // a client-credentials token's subject is the client itself
        event.customer_id = consent.as_ref().map(|_| customer);
        event.consent_id = consent;
        event.interaction_id = interaction.map(|Extension(i)| i.0);
        // the revocation took effect; if it cannot be recorded the client
        // is told to retry, which revokes again (idempotent) and records it
        state.audit.append(event).await.map_err(store_failed)?;
    }
    Ok(labelled(
        no_store(StatusCode::OK.into_response()),
        caller.client.client_id(),
    ))
}

/// `GET|POST /userinfo`: the customer's `sub`, for a bound access token
/// with the `openid` scope whose consent is still in force.
pub(crate) async fn userinfo(
    State(state): State<Arc<BankState>>,
    BoundWithConsent { token, consent }: BoundWithConsent,
) -> Result<Response, ObError> {
    if !token.scope().is_some_and(|s| s.contains("openid")) {
        auth_failure("insufficient_scope");
        return Err(ObError::bearer(
            StatusCode::FORBIDDEN,
            ErrorCode::InsufficientScope,
            "userinfo needs an access token granted with the openid scope",
        ));
    }
    let in_force = match (token.consent_id(), &consent) {
        (Some(id), Some(c)) => {
            c.id() == id && c.client_id() == token.client_id() && consent_in_force(c, state.now())
        }
        _ => false,
    };
    if !in_force {
        auth_failure("consent");
        return Err(ObError::bearer(
            StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidToken,
            "the consent this token was issued for is no longer in force",
        ));
    }
    let mut r = Json(json!({ "sub": token.subject() })).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}
