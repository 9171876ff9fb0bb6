//! The authorization server's endpoints on the TPP listener (`/par`,
//! `/token`; `/introspect` and `/revoke` in [`super::tokens`]) and the
//! public ones (discovery, `/jwks`).
//!
//! Client authentication is `private_key_jwt` (fapi-core) or
//! `tls_client_auth` / `self_signed_tls_client_auth` (fapi-mtls-binding),
//! by the registration, always over the mTLS connection, whose certificate
//! must be one the client holds or its registration admits (see
//! [`authenticate`]). Tokens are bound to that certificate.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use fapi_consent::audit::{AuditAction, AuditEvent};
use fapi_core::access_token::AccessTokenClaims;
use fapi_core::client::AuthMethod;
use fapi_core::client_auth::{AssertionContext, Endpoint, UnverifiedClientAssertion};
use fapi_core::id_token::{IdTokenContent, IdTokenIssuer};
use fapi_core::AuthenticatedClient;
use fapi_core::ErrorCode;
use fapi_core::UnixTime;
use fapi_core::{ClientId, CodeVerifier, Scope};
use fapi_mtls_binding::directory::{
    authenticate_by_certificate, ensure_client_certificate, Holding,
};
use fapi_mtls_binding::PresentedCertificate;
use fapi_par::PushedRequestForm;
use serde_json::{json, Value};

use super::errors::OAuthFailure;
use super::observe::{auth_failure, ClientLabel};
use super::tls::ConnectionInfo;
use super::BankState;
use crate::registry::Registration;
use fapi_core::code::{AuthorizationCode, RedeemError, Redemption};
use fapi_core::form::{FormLimits, StrictForm};
use fapi_core::refresh::{RefreshError, RefreshGrant, RefreshToken};

/// The client authentication methods of every authenticated endpoint
/// (see [`authenticate`]): `self_signed_tls_client_auth` only where the
/// listener lets self-signed certificates through its handshake.
fn auth_methods(state: &BankState) -> Vec<&'static str> {
    let mut methods = vec!["private_key_jwt", "tls_client_auth"];
    if state.self_signed_clients {
        methods.push("self_signed_tls_client_auth");
    }
    methods
}

/// Largest token request body.
pub(crate) const MAX_TOKEN_BODY: usize = 16 * 1024;

/// The certificate of this request's connection, as a proof of possession.
pub(crate) fn presented(info: &ConnectionInfo) -> Option<&PresentedCertificate> {
    info.presented()
}

/// A form body with every parameter at most once (RFC 6749 §3.2), read
/// by fapi-core's one strict form parser.
pub(crate) struct Form(StrictForm);

/// Most parameters a token request or a customer page's form carries.
const MAX_FORM_PARAMETERS: usize = 32;

impl Form {
    pub(crate) fn parse(body: &[u8], max: usize) -> Result<Self, OAuthFailure> {
        StrictForm::parse(body, FormLimits::new(max, MAX_FORM_PARAMETERS))
            .map(Self)
            .map_err(|e| OAuthFailure::new(ErrorCode::InvalidRequest, e.to_string()))
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name)
    }

    /// The parameter names, in order.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.0.names()
    }

    pub(crate) fn require(&self, name: &'static str) -> Result<&str, OAuthFailure> {
        self.get(name).ok_or_else(|| {
            OAuthFailure::new(ErrorCode::InvalidRequest, format!("{name} is required"))
        })
    }
}

/// A client that authenticated at an endpoint.
pub(crate) struct Caller {
    pub(crate) client: AuthenticatedClient,
    pub(crate) registration: Registration,
    pub(crate) certificate: PresentedCertificate,
}

/// Client authentication at `/par`, `/token`, `/introspect` and
/// `/revoke`, by the registration's `token_endpoint_auth_method`, always
/// over the mTLS connection:
/// - `private_key_jwt`: the assertion is verified against the registration
///   (fapi-core) and its `jti` recorded;
/// - `tls_client_auth` / `self_signed_tls_client_auth` (RFC 8705 §2): the
///   request names `client_id` and carries no assertion; the connection's
///   certificate is checked against the registration (chain and subject,
///   or registered key) and the directory (fapi-mtls-binding).
///
/// Either way the certificate must be one the client holds, or one its
/// registration admits (a rotated certificate with the registered
/// subject), then recorded as held; neither it nor the TPP revoked.
pub(crate) async fn authenticate<'f>(
    state: &BankState,
    info: &ConnectionInfo,
    param: impl Fn(&str) -> Option<&'f str>,
    endpoint: Endpoint<'_>,
) -> Result<Caller, OAuthFailure> {
    let certificate = presented(info).ok_or_else(|| {
        auth_failure("no_client_certificate");
        OAuthFailure::new(
            ErrorCode::InvalidClient,
            "a client certificate is required on this endpoint",
        )
    })?;
    // a self-signed certificate has no chain: the method's own check below
    // decides (its key in a self_signed_tls_client_auth registration; any
    // other method verifies the chain and refuses it)
    if !info.certificate().is_self_signed() {
        info.check_trust(&state.trust, state.now()).map_err(|e| {
            auth_failure("certificate_untrusted");
            OAuthFailure::new(
                ErrorCode::InvalidClient,
                format!("client certificate is no longer trusted: {e}"),
            )
        })?;
    }
    let fail = |reason: &'static str| {
        move |e: fapi_core::client_auth::ClientAuthError| {
            auth_failure(reason);
            OAuthFailure::from_error(&e)
        }
    };
    let now = state.now();
    let (client, registration) = match (param("client_assertion_type"), param("client_assertion")) {
        (Some(kind), Some(assertion)) => {
            let unverified = UnverifiedClientAssertion::parse(kind, assertion, param("client_id"))
                .map_err(fail("client_assertion"))?;
            let (registration, metadata) =
                registered(state, unverified.unverified_client_id()).await?;
            let ctx = AssertionContext::new(state.profile, &state.issuer, endpoint);
            let pending = unverified
                .verify(&metadata, &ctx, now)
                .map_err(fail("client_assertion"))?;
            self_signed_only_for_its_method(info, &metadata)?;
            // the client id is verified now (the assertion's signature is by
            // this client's key) and the assertion used up: only then may
            // the registration admit a new certificate
            let client = pending
                .record_jti(&*state.replay, now)
                .await
                .map_err(fail("client_assertion_replay"))?;
            hold_certificate(
                state,
                certificate,
                &metadata,
                "certificate_not_registered",
                now,
            )
            .await?;
            (client, registration)
        }
        (None, None) => {
            let id = param("client_id")
                .and_then(|id| ClientId::try_from(id).ok())
                .ok_or_else(|| {
                    auth_failure("no_client_authentication");
                    OAuthFailure::new(
                        ErrorCode::InvalidClient,
                        "client authentication is required: client_assertion (private_key_jwt), \
                         or client_id with the client's certificate (tls_client_auth, \
                         self_signed_tls_client_auth)",
                    )
                })?;
            let (registration, metadata) = registered(state, &id).await?;
            if metadata.auth_method() == AuthMethod::PrivateKeyJwt {
                auth_failure("no_client_assertion");
                return Err(OAuthFailure::new(
                    ErrorCode::InvalidClient,
                    "this client is registered for private_key_jwt: send client_assertion_type \
                     and client_assertion",
                ));
            }
            self_signed_only_for_its_method(info, &metadata)?;
            let client = authenticate_by_certificate(
                certificate,
                &metadata,
                &state.trust,
                &*state.directory,
                now,
            )
            .await
            .map_err(fail("client_certificate"))?;
            hold_certificate(
                state,
                certificate,
                &metadata,
                "certificate_not_registered",
                now,
            )
            .await?;
            (client, registration)
        }
        _ => {
            auth_failure("client_assertion");
            return Err(OAuthFailure::new(
                ErrorCode::InvalidClient,
                "client_assertion_type and client_assertion are sent together",
            ));
        }
    };
    tracing::Span::current().record("client_id", client.client_id().as_str());
    Ok(Caller {
        client,
        registration,
        certificate: certificate.clone(),
    })
}

/// The connection's certificate must be one the client holds or one its
/// registration admits ([`ensure_client_certificate`], which records an
/// admitted one); an admission (a rotation) is audited. A refusal is
/// counted under `reason`.
///
/// If the audit record fails, the request fails (`server_error`) though
/// the certificate stays the client's: its first use is then missing from
/// the trail, which says so by its absence rather than by a false entry.
pub(crate) async fn hold_certificate(
    state: &BankState,
    certificate: &PresentedCertificate,
    metadata: &fapi_core::client::ClientMetadata,
    reason: &'static str,
    now: UnixTime,
) -> Result<(), OAuthFailure> {
    let holding = ensure_client_certificate(
        certificate,
        metadata,
        &state.trust,
        state.registry.tpp_registry(),
        now,
    )
    .await
    .map_err(|e| {
        auth_failure(reason);
        OAuthFailure::from_error(&e)
    })?;
    if holding != Holding::Added {
        return Ok(());
    }
    let mut event = AuditEvent::new(
        AuditAction::CertificateAdded {
            thumbprint: certificate.certificate().thumbprint().to_b64url(),
        },
        now,
    );
    event.client_id = Some(metadata.client_id().clone());
    append_audit(state, event).await
}

/// Appends `event` for a change that has taken effect; if it cannot be
/// recorded the client is told to retry (`server_error`).
pub(crate) async fn append_audit(state: &BankState, event: AuditEvent) -> Result<(), OAuthFailure> {
    state
        .audit
        .append(event)
        .await
        .map(|_| ())
        .map_err(|_| OAuthFailure::new(ErrorCode::ServerError, "audit trail unavailable"))
}

/// A self-signed certificate (no chain) authenticates only a
/// `self_signed_tls_client_auth` client: refused to any other method here,
/// before its own checks, whatever the registry holds.
fn self_signed_only_for_its_method(
    info: &ConnectionInfo,
    metadata: &fapi_core::client::ClientMetadata,
) -> Result<(), OAuthFailure> {
    if info.certificate().is_self_signed()
        && metadata.auth_method() != AuthMethod::SelfSignedTlsClientAuth
    {
        auth_failure("certificate_untrusted");
        return Err(OAuthFailure::new(
            ErrorCode::InvalidClient,
            "client certificate is self-signed: this client is registered for a certificate of \
             the scheme CA",
        ));
    }
    Ok(())
}

/// The client's registration (read now) and its metadata.
async fn registered(
    state: &BankState,
    id: &ClientId,
) -> Result<(Registration, Arc<fapi_core::client::ClientMetadata>), OAuthFailure> {
    let registered = state
        .registry
        .client(id)
        .await
        .map_err(|_| OAuthFailure::new(ErrorCode::ServerError, "client registry unavailable"))?
        .ok_or_else(|| {
            auth_failure("unknown_client");
            OAuthFailure::new(ErrorCode::InvalidClient, "client is not registered")
        })?;
    let metadata = state
        .clients
        .metadata(&registered.registration)
        .map_err(|_| OAuthFailure::new(ErrorCode::ServerError, "client registration unusable"))?;
    Ok((registered.registration, metadata))
}

pub(crate) fn no_store(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

pub(crate) fn labelled(mut r: Response, client: &ClientId) -> Response {
    r.extensions_mut()
        .insert(ClientLabel(client.as_str().to_owned()));
    r
}

/// `POST /par` (RFC 9126).
/// RFC 6749 §3.2 / RFC 9126 §2.1: the body of `/token` and `/par` is
/// `application/x-www-form-urlencoded` (one `Content-Type` header; the only
/// parameter allowed is `charset=utf-8`).
pub(crate) fn form_content_type(headers: &axum::http::HeaderMap) -> Result<(), OAuthFailure> {
    let mut values = headers.get_all(axum::http::header::CONTENT_TYPE).iter();
    let ok = match (values.next().and_then(|v| v.to_str().ok()), values.next()) {
        (Some(ct), None) => {
            let mut parts = ct.split(';');
            let media = parts.next().unwrap_or_default().trim();
            media.eq_ignore_ascii_case("application/x-www-form-urlencoded")
                && parts.all(|p| {
                    p.split_once('=').is_some_and(|(k, v)| {
                        k.trim().eq_ignore_ascii_case("charset")
                            && v.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
                    })
                })
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(OAuthFailure::new(
            ErrorCode::InvalidRequest,
            "the request body must be sent with Content-Type: application/x-www-form-urlencoded",
        ))
    }
}

pub(crate) async fn par(
    State(state): State<Arc<BankState>>,
    Extension(info): Extension<ConnectionInfo>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthFailure> {
    form_content_type(&headers)?;
    let form = PushedRequestForm::parse(&body)
        .map_err(|e| OAuthFailure::new(ErrorCode::InvalidRequest, e.to_string()))?;
    let endpoint = state.endpoint("/par");
    let caller = authenticate(
        &state,
        &info,
        |n| form.get(n),
        Endpoint::PushedAuthorization(&endpoint),
    )
    .await?;
    let refused = |e: fapi_par::ParError| {
        auth_failure("pushed_request");
        OAuthFailure::from_error(&e)
    };
    let validated = state
        .par_config
        .validate(&form, &caller.client, state.now())
        .map_err(refused)?;
    if validated.request().dpop_jkt().is_some() {
        // a code bound to a DPoP key could never be redeemed here: say so
        // now rather than at the token endpoint
        auth_failure("pushed_request");
        return Err(OAuthFailure::new(
            ErrorCode::InvalidRequest,
            "this server issues certificate-bound tokens (mTLS); it does not take dpop_jkt",
        ));
    }
    // what the customer is asked for must be something the bank can
    // grant: refused here rather than after the customer has logged in
    consent_can_be_asked(&state, &caller, validated.request()).await?;
    let pushed = validated
        .store(&*state.par, state.now())
        .await
        .map_err(refused)?;
    Ok(labelled(
        no_store((StatusCode::CREATED, Json(pushed)).into_response()),
        caller.client.client_id(),
    ))
}

/// Whether the deployment's consent model accepts what `request` asks
/// for: an `openbanking_intent_id` naming a consent of its client awaiting
/// authorisation, or scopes alone the client may be granted
/// ([`super::scopes`]).
async fn consent_can_be_asked(
    state: &BankState,
    caller: &Caller,
    request: &fapi_core::request_object::ValidatedAuthorizationRequest,
) -> Result<(), OAuthFailure> {
    let code = if state.profile.requires_signed_request_object() {
        ErrorCode::InvalidRequestObject
    } else {
        ErrorCode::InvalidRequest
    };
    let refused = |why: &str| {
        auth_failure("pushed_request");
        Err(OAuthFailure::new(code, why))
    };
    let model = state.consent_model;
    let Some(named) = request.openbanking_intent_id() else {
        if !model.allows_scopes() {
            return refused("the request must name, in openbanking_intent_id, a consent created with a client_credentials token");
        }
        return match super::scopes::refusal(request.scope(), caller.registration.has_role("AISP")) {
            Some(why) => refused(why),
            None => Ok(()),
        };
    };
    if !model.allows_intent() {
        return refused("this bank takes scopes alone: openbanking_intent_id is not accepted");
    }
    let Ok(id) = fapi_core::ConsentId::try_from(named) else {
        return refused("the openbanking_intent_id consent does not exist for this client");
    };
    let consent = state
        .consents
        .get(&id)
        .await
        .map_err(|_| OAuthFailure::new(ErrorCode::ServerError, "consents are unavailable"))?;
    match consent {
        Some(c) if c.client_id() == request.client_id() => {
            // only the consent's own client puts a span into its trace
            super::telemetry::join_flow(c.id().as_str(), c.client_id().as_str());
            if c.status() == fapi_consent::consent::ConsentStatus::AwaitingAuthorisation {
                Ok(())
            } else {
                refused("the openbanking_intent_id consent does not await authorisation")
            }
        }
        _ => refused("the openbanking_intent_id consent does not exist for this client"),
    }
}

/// `POST /token`: `authorization_code` (PKCE), `client_credentials`,
/// `refresh_token`.
pub(crate) async fn token(
    State(state): State<Arc<BankState>>,
    Extension(info): Extension<ConnectionInfo>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthFailure> {
    form_content_type(&headers)?;
    let form = Form::parse(&body, MAX_TOKEN_BODY)?;
    let endpoint = state.endpoint("/token");
    let caller = authenticate(&state, &info, |n| form.get(n), Endpoint::Token(&endpoint)).await?;
    let body = match form.require("grant_type")? {
        "authorization_code" => authorization_code(&state, &caller, &form).await?,
        "client_credentials" => client_credentials(&state, &caller, &form).await?,
        "refresh_token" => refresh(&state, &caller, &form).await?,
        _ => {
            return Err(OAuthFailure::new(
                ErrorCode::UnsupportedGrantType,
                "grant_type must be authorization_code, client_credentials or refresh_token",
            ))
        }
    };
    Ok(labelled(
        no_store(Json(body).into_response()),
        caller.client.client_id(),
    ))
}

/// The RFC 6749 §5.1 body for an access token.
fn token_body(issued: &fapi_core::access_token::IssuedAccessToken, scope: &Scope) -> Value {
    json!({
        "access_token": issued.token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "scope": scope.to_string(),
    })
}

pub(crate) fn signing_failed<E>(_: E) -> OAuthFailure {
    OAuthFailure::new(ErrorCode::ServerError, "token could not be issued")
}

pub(crate) fn store_failed<E: std::error::Error + 'static>(e: E) -> OAuthFailure {
    tracing::error!(error = %fapi_core::store::ErrorChain(&e), "token store failed");
    OAuthFailure::new(ErrorCode::ServerError, "token store unavailable")
}

async fn authorization_code(
    state: &BankState,
    caller: &Caller,
    form: &Form,
) -> Result<Value, OAuthFailure> {
    let now = state.now();
    let code = AuthorizationCode::try_from(form.require("code")?)
        .map_err(|_| OAuthFailure::new(ErrorCode::InvalidGrant, "code is malformed"))?;
    let verifier = form
        .get("code_verifier")
        .map(|v| CodeVerifier::try_from(v.to_owned()))
        .transpose()
        .map_err(|_| OAuthFailure::new(ErrorCode::InvalidGrant, "code_verifier is malformed"))?;
    let redemption = Redemption {
        code: &code,
        client_id: caller.client.client_id(),
        redirect_uri: form.require("redirect_uri")?,
        code_verifier: verifier.as_ref(),
        // the bank binds tokens by mTLS (DPoP at the bank is still to come)
        dpop_jkt: None,
        now,
    };
    let grant = match state.codes.redeem(&redemption).await {
        Ok(g) => g,
        Err(RedeemError::Replayed { issued }) => {
            // RFC 6749 §4.1.2: a replayed code revokes what it issued
            state
                .revoked
                .revoke(&issued, now)
                .await
                .map_err(store_failed)?;
            state
                .refreshes
                .revoke(&issued)
                .await
                .map_err(store_failed)?;
            auth_failure("code_replay");
            tracing::warn!(
                revoked = issued.len(),
                "authorization code replayed; its tokens are revoked"
            );
            return Err(OAuthFailure::from_error(&RedeemError::Replayed { issued }));
        }
        Err(e) => {
            auth_failure("code");
            return Err(OAuthFailure::from_error(&e));
        }
    };
    super::telemetry::join_flow(
        grant.consent_id.as_str(),
        caller.client.client_id().as_str(),
    );
    let consent = state
        .gate
        .check_grant(&grant.consent_id, caller.client.client_id(), now)
        .await
        .map_err(|e| OAuthFailure::new(ErrorCode::InvalidGrant, e.to_string()))?;
    let is_account_access = matches!(
        consent.terms(),
        fapi_consent::consent::ConsentTerms::AccountAccess(_)
    );
    let scope = match grant.scope.clone() {
        Some(s) => s,
        None => Scope::try_from(if is_account_access {
            "accounts"
        } else {
            "payments"
        })
        .map_err(signing_failed)?,
    };
    let claims = AccessTokenClaims::new(
        grant.customer_id.clone(),
        caller.client.client_id().clone(),
        scope.clone(),
        caller.certificate.confirmation(),
    )
    .with_consent(Some(grant.consent_id.clone()));
    let issued = state
        .ring()
        .tokens
        .issue(&claims, now)
        .await
        .map_err(signing_failed)?;
    state
        .codes
        .record_token(&code, issued.jti.clone())
        .await
        .map_err(store_failed)?;
    let mut body = token_body(&issued, &scope);
    if is_account_access {
        let refresh = RefreshToken::generate().map_err(signing_failed)?;
        let id = fapi_core::JwtId::try_from(format!(
            "rt-{}",
            fapi_core::random::token(16).map_err(signing_failed)?
        ))
        .map_err(signing_failed)?;
        state
            .refreshes
            .store(
                &refresh,
                RefreshGrant {
                    id: id.clone(),
                    client_id: caller.client.client_id().clone(),
                    confirmation: caller.certificate.confirmation(),
                    consent_id: grant.consent_id.clone(),
                    customer_id: grant.customer_id.clone(),
                    scope: scope.clone(),
                },
            )
            .await
            .map_err(store_failed)?;
        state
            .codes
            .record_token(&code, id)
            .await
            .map_err(store_failed)?;
        if let Some(obj) = body.as_object_mut() {
            obj.insert("refresh_token".into(), json!(refresh.secret()));
        }
    }
    if scope.contains("openid") {
        let ring = state.ring();
        let id_tokens = IdTokenIssuer::new(
            ring.key.clone(),
            ring.kid.clone(),
            state.issuer.clone(),
            super::keys::TOKEN_LIFETIME_SECS,
        );
        let mut extra = serde_json::Map::new();
        extra.insert(
            "openbanking_intent_id".into(),
            json!(grant.consent_id.as_str()),
        );
        let id_token = id_tokens
            .issue(
                &IdTokenContent::new(
                    &grant.customer_id,
                    caller.client.client_id(),
                    grant
                        .expires_at
                        .saturating_sub(state.profile.authorization_code_lifetime_secs()),
                )
                .with_nonce(grant.nonce.as_ref())
                .with_acr("urn:openbanking:psd2:sca")
                .with_extra(extra),
                now,
            )
            .await
            .map_err(signing_failed)?;
        if let Some(obj) = body.as_object_mut() {
            obj.insert("id_token".into(), json!(id_token));
        }
    }
    Ok(body)
}

/// Client credentials: a certificate-bound token with no consent, for
/// creating consents. The scope is limited to the directory's roles.
async fn client_credentials(
    state: &BankState,
    caller: &Caller,
    form: &Form,
) -> Result<Value, OAuthFailure> {
    let requested = form.require("scope")?;
    let scope = Scope::try_from(requested)
        .map_err(|_| OAuthFailure::new(ErrorCode::InvalidScope, "scope is malformed"))?;
    for s in scope.tokens() {
        let allowed = match s {
            "accounts" => caller.registration.has_role("AISP"),
            "payments" => caller.registration.has_role("PISP"),
            _ => false,
        };
        if !allowed {
            return Err(OAuthFailure::new(
                ErrorCode::InvalidScope,
                "client_credentials scope must be accounts and/or payments, within the client's directory roles",
            ));
        }
    }
    let claims = AccessTokenClaims::new(
        caller.client.client_id().as_str().to_owned(),
        caller.client.client_id().clone(),
        scope.clone(),
        caller.certificate.confirmation(),
    );
    let issued = state
        .ring()
        .tokens
        .issue(&claims, state.now())
        .await
        .map_err(signing_failed)?;
    Ok(token_body(&issued, &scope))
}

/// Refresh: the grant must be this client's, presented over the same
/// certificate, and its consent still authorised (read live). Not rotated.
async fn refresh(state: &BankState, caller: &Caller, form: &Form) -> Result<Value, OAuthFailure> {
    let now = state.now();
    let invalid = |d: &str| OAuthFailure::new(ErrorCode::InvalidGrant, d);
    let token = RefreshToken::try_from(form.require("refresh_token")?)
        .map_err(|_| invalid("refresh_token is malformed"))?;
    let grant = state
        .refreshes
        .grant(&token)
        .await
        .map_err(store_failed)?
        .ok_or_else(|| invalid("refresh token is unknown or revoked"))?;
    match grant.check(caller.client.client_id(), &caller.certificate) {
        Ok(()) => {}
        Err(RefreshError::WrongClient) => {
            auth_failure("refresh_wrong_client");
            return Err(invalid("refresh token was issued to another client"));
        }
        Err(RefreshError::Binding(_)) => {
            auth_failure("cnf_mismatch");
            return Err(invalid(
                "refresh token is bound to another certificate of this client",
            ));
        }
        Err(e) => return Err(OAuthFailure::from_error(&e)),
    }
    super::telemetry::join_flow(
        grant.consent_id.as_str(),
        caller.client.client_id().as_str(),
    );
    state
        .gate
        .check_grant(&grant.consent_id, caller.client.client_id(), now)
        .await
        .map_err(|e| {
            auth_failure("refresh_consent");
            invalid(&e.to_string())
        })?;
    let claims = AccessTokenClaims::new(
        grant.customer_id.clone(),
        caller.client.client_id().clone(),
        grant.scope.clone(),
        caller.certificate.confirmation(),
    )
    .with_consent(Some(grant.consent_id.clone()));
    let issued = state
        .ring()
        .tokens
        .issue(&claims, now)
        .await
        .map_err(signing_failed)?;
    Ok(token_body(&issued, &grant.scope))
}

/// `GET /.well-known/openid-configuration`.
pub(crate) async fn discovery(State(state): State<Arc<BankState>>) -> Response {
    let algs: Vec<String> = state
        .profile
        .algorithms()
        .iter()
        .map(ToString::to_string)
        .collect();
    let issuer = state.issuer.as_str();
    let model = state.consent_model;
    let mut models = Vec::new();
    if model.allows_intent() {
        models.push("openbanking_intent");
    }
    if model.allows_scopes() {
        models.push("scopes");
    }
    // a payment is authorised only through an intent
    let scopes: &[&str] = if model.allows_intent() {
        &["openid", "accounts", "payments"]
    } else {
        &["openid", "accounts"]
    };
    let body = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "pushed_authorization_request_endpoint": state.endpoint("/par"),
        "require_pushed_authorization_requests": true,
        "token_endpoint": state.endpoint("/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "introspection_endpoint": state.endpoint("/introspect"),
        "revocation_endpoint": state.endpoint("/revoke"),
        "userinfo_endpoint": state.endpoint("/userinfo"),
        "registration_endpoint": state.endpoint("/register"),
        "mtls_endpoint_aliases": {
            "token_endpoint": state.endpoint("/token"),
            "pushed_authorization_request_endpoint": state.endpoint("/par"),
            "introspection_endpoint": state.endpoint("/introspect"),
            "revocation_endpoint": state.endpoint("/revoke"),
            "userinfo_endpoint": state.endpoint("/userinfo"),
            "registration_endpoint": state.endpoint("/register"),
        },
        "scopes_supported": scopes,
        // what an authorization request may carry to say what the customer
        // is asked for (not registered metadata: `openbanking_intent` is a
        // UK OB `openbanking_intent_id` consent, `scopes` is scopes alone)
        "consent_models_supported": models,
        "response_types_supported": ["code"],
        "response_modes_supported": ["jwt", "query.jwt", "fragment.jwt", "form_post.jwt"],
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": auth_methods(&state),
        "token_endpoint_auth_signing_alg_values_supported": algs,
        "introspection_endpoint_auth_methods_supported": auth_methods(&state),
        "introspection_endpoint_auth_signing_alg_values_supported": algs,
        "introspection_signing_alg_values_supported": algs,
        "revocation_endpoint_auth_methods_supported": auth_methods(&state),
        "revocation_endpoint_auth_signing_alg_values_supported": algs,
        "request_object_signing_alg_values_supported": algs,
        "authorization_signing_alg_values_supported": algs,
        "id_token_signing_alg_values_supported": algs,
        "request_parameter_supported": true,
        "require_signed_request_object": state.profile.requires_signed_request_object(),
        "tls_client_certificate_bound_access_tokens": true,
        "authorization_response_iss_parameter_supported": true,
        "subject_types_supported": ["public"],
        "claims_parameter_supported": true,
        "acr_values_supported": ["urn:openbanking:psd2:sca"],
        "openbanking": {
            "aisp": format!("{}/open-banking/v3.1/aisp", state.api_base),
            "pisp": format!("{}/open-banking/v3.1/pisp", state.api_base),
        },
    });
    Json(body).into_response()
}

/// `GET /jwks`: the bank's public signing keys.
pub(crate) async fn jwks(State(state): State<Arc<BankState>>) -> Response {
    Json(state.ring().jwks.clone()).into_response()
}
