//! The TPP listener: `/par`, `/token`, `/introspect`, `/revoke`,
//! `/userinfo`, and the UK Open Banking resources.
//!
//! Every resource handler gets its token from the resource chain through
//! an extractor (`super::pipeline`: verify -> live read -> not revoked ->
//! certificate trusted -> bind -> directory standing), then the
//! `ConsentGate` on the consent read with it, then the core behind a
//! timeout and a circuit breaker. Payment requests also need
//! `x-idempotency-key` and a valid `x-jws-signature` by the TPP; payment
//! responses are signed by the bank.
//!
//! Here: the router and what every handler shares; [`ob`] the UK OB
//! shapes; [`consents`], [`accounts`] and [`payments`] the handlers.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use fapi_consent::consent::{
    parse_date_time, AccountAccessRequest, Actor, Amount, ConsentTerms, CreditorAccount, Initiation,
};
use fapi_consent::gate::{DetailLevel, PaymentSubmission};
use fapi_consent::idempotency::{body_hash, Begin, IdempotencyKey, StoredResponse};
use fapi_consent::payment::StoredPayment;
use fapi_consent::record::PaymentAuthorisationRecord;
use fapi_consent::store::{apply_event_audited, create_audited};
use fapi_consent::{Consent, ConsentEvent, EventKind, ResourceAccess};
use fapi_core::jose::detached::ObJwsVerifier;
use fapi_core::BoundAccessToken;
use fapi_core::ConsentId;
use fapi_core::OAuthError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tracing::Instrument;

use super::errors::ObError;
use super::observe::{self, auth_failure, ClientLabel, InteractionId};
use super::pipeline::{Bound, BoundWithConsent, ClientToken};
use super::{BankState, Lane};
use crate::core_banking::{CoreBanking, CoreError, CoreFuture, Minor};
use crate::registry::Registration;

mod accounts;
mod consents;
mod ob;
mod payments;

use accounts::*;
use consents::*;
use ob::*;
pub(crate) use payments::reconcile;
#[cfg(test)]
pub(crate) use payments::submit_payment;
use payments::*;

const AISP: &str = "/open-banking/v3.1/aisp";
const PISP: &str = "/open-banking/v3.1/pisp";
const X_JWS_SIGNATURE: HeaderName = HeaderName::from_static("x-jws-signature");
const X_IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("x-idempotency-key");
/// UK OB trust anchor in `x-jws-signature` headers.
pub(crate) const TRUST_ANCHOR: &str = "openbanking.org.uk";

pub(crate) fn api_router(state: Arc<BankState>, request_timeout: std::time::Duration) -> Router {
    // each kind of resource call in flight within its own budget
    let aisp = Router::new()
        .route(
            &format!("{AISP}/account-access-consents"),
            post(create_account_access_consent),
        )
        .route(
            &format!("{AISP}/account-access-consents/{{id}}"),
            get(get_account_access_consent).delete(delete_account_access_consent),
        )
        .route(&format!("{AISP}/accounts"), get(accounts))
        .route(&format!("{AISP}/accounts/{{id}}"), get(account))
        .route(&format!("{AISP}/accounts/{{id}}/balances"), get(balances))
        .route(
            &format!("{AISP}/accounts/{{id}}/transactions"),
            get(transactions),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            (state.aisp_bulkhead.clone(), "accounts"),
            observe::bulkhead,
        ));
    let pisp = Router::new()
        .route(
            &format!("{PISP}/domestic-payment-consents"),
            post(create_payment_consent),
        )
        .route(
            &format!("{PISP}/domestic-payment-consents/{{id}}"),
            get(get_payment_consent),
        )
        .route(&format!("{PISP}/domestic-payments"), post(create_payment))
        .route(
            &format!("{PISP}/domestic-payments/{{id}}"),
            get(get_payment),
        )
        .route(
            &format!("{PISP}/domestic-payments/{{id}}/authorisation-record"),
            get(payment_record),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            (state.pisp_bulkhead.clone(), "payments"),
            observe::bulkhead,
        ));
    Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(super::oauth::discovery),
        )
        .route("/jwks", get(super::oauth::jwks))
        .route("/par", post(super::oauth::par))
        .route("/token", post(super::oauth::token))
        .route("/introspect", post(super::tokens::introspect))
        .route("/revoke", post(super::tokens::revoke))
        .route(
            "/register",
            post(super::register::register).layer(axum::extract::DefaultBodyLimit::max(
                super::register::MAX_REGISTRATION_BODY,
            )),
        )
        .route(
            "/register/{client_id}",
            get(super::register::read)
                .put(super::register::update)
                .delete(super::register::delete)
                .layer(axum::extract::DefaultBodyLimit::max(
                    super::register::MAX_REGISTRATION_BODY,
                )),
        )
        .route(
            "/userinfo",
            get(super::tokens::userinfo).post(super::tokens::userinfo),
        )
        .merge(aisp)
        .merge(pisp)
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(axum::extract::DefaultBodyLimit::max(192 * 1024))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            observe::rate_limit,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        .layer(axum::middleware::from_fn(super::errors::shape_api))
        .layer(axum::middleware::from_fn(observe::observe))
        .with_state(state)
}

fn gate_error(e: &fapi_consent::gate::GateError) -> ObError {
    auth_failure("consent");
    use fapi_consent::gate::GateError as G;
    let status =
        StatusCode::from_u16(e.error_code().http_status()).unwrap_or(StatusCode::FORBIDDEN);
    let code = match e {
        G::ConsentMismatch | G::InitiationMismatch(_) => "UK.OBIE.Resource.ConsentMismatch",
        G::AccountNotSelected | G::UnknownConsent => "UK.OBIE.Resource.NotFound",
        G::OutsideTransactionWindow => "UK.OBIE.Field.Invalid",
        G::Store(_) => "UK.OBIE.UnexpectedError",
        _ => "UK.OBIE.Resource.InvalidConsentStatus",
    };
    ObError::new(status, code, e.to_string())
}

/// A core call (timeout, breaker) with its failures as OB errors.
async fn core<'a, T>(
    state: &'a BankState,
    lane: super::Lane,
    f: impl FnOnce(&'a dyn CoreBanking) -> CoreFuture<'a, T>,
) -> Result<T, ObError> {
    state.core_call(lane, f).await.map_err(|e| match e {
        CoreError::Unavailable => ObError::core_unavailable(),
        CoreError::Timeout => ObError::core_timeout("retry later"),
        CoreError::UnknownAccount => ObError::not_found(),
        CoreError::InsufficientFunds => ObError::bad_request(
            "UK.OBIE.Rules.InsufficientFunds",
            "the debtor account cannot cover the payment",
        ),
        _ => ObError::bad_request("UK.OBIE.Field.Invalid", e.to_string()),
    })
}

fn labelled(mut r: Response, token: &BoundAccessToken) -> Response {
    r.extensions_mut()
        .insert(ClientLabel(token.client_id().as_str().to_owned()));
    r
}

fn iso(t: fapi_core::UnixTime) -> String {
    super::rfc3339(t).unwrap_or_default()
}

fn amount(minor: Minor) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let m = minor.unsigned_abs();
    format!("{sign}{}.{:02}", m / 100, m % 100)
}

fn links(state: &BankState, path: &str) -> Value {
    json!({ "Self": format!("{}{path}", state.api_base) })
}

fn ob_body(data: Value, state: &BankState, path: &str) -> Value {
    json!({ "Data": data, "Links": links(state, path), "Meta": { "TotalPages": 1 } })
}
