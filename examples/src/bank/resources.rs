//! The TPP listener: `/par`, `/token`, and the UK Open Banking resources.
//!
//! Every resource call runs the one pipeline: `AccessTokenVerifier::verify`
//! -> revoked-`jti` check -> `bind` to this connection's certificate ->
//! `ConsentGate` (read live) -> the core, behind a timeout and a circuit
//! breaker. Payment requests also need `x-idempotency-key` and a valid
//! `x-jws-signature` by the TPP; payment responses are signed by the bank.

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
use fapi_core::error::OAuthError;
use fapi_core::jose::detached::ObJwsVerifier;
use fapi_core::types::ConsentId;
use fapi_core::BoundAccessToken;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tracing::Instrument;

use super::errors::ObError;
use super::observe::{self, auth_failure, ClientLabel, InteractionId};
use super::pipeline::{Bound, BoundWithConsent, ClientToken};
use super::{BankState, Lane};
use crate::core_banking::{CoreBanking, CoreError, CoreFuture, Minor};
use crate::registry::Registration;

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

fn iso(t: fapi_core::time::UnixTime) -> String {
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

// ------------------------------------------------------ OB request shapes

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ObReadConsent {
    data: ObReadConsentData,
    #[serde(default)]
    #[allow(dead_code)]
    risk: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ObReadConsentData {
    permissions: Vec<String>,
    expiration_date_time: Option<String>,
    transaction_from_date_time: Option<String>,
    transaction_to_date_time: Option<String>,
}

/// OB `Initiation` for domestic payments (wire shape).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ObInitiation {
    /// `InstructionIdentification`.
    pub instruction_identification: String,
    /// `EndToEndIdentification`.
    pub end_to_end_identification: String,
    /// `InstructedAmount`.
    pub instructed_amount: ObAmount,
    /// `CreditorAccount`.
    pub creditor_account: ObAccount,
    /// `RemittanceInformation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remittance_information: Option<ObRemittance>,
}

/// OB `InstructedAmount`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ObAmount {
    /// `Amount`.
    pub amount: String,
    /// `Currency`.
    pub currency: String,
}

/// OB `CreditorAccount`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ObAccount {
    /// `SchemeName`.
    pub scheme_name: String,
    /// `Identification`.
    pub identification: String,
    /// `Name`.
    pub name: String,
}

/// OB `RemittanceInformation`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ObRemittance {
    /// `Reference`.
    pub reference: Option<String>,
}

impl From<ObInitiation> for Initiation {
    fn from(i: ObInitiation) -> Self {
        Self {
            instruction_identification: i.instruction_identification,
            end_to_end_identification: i.end_to_end_identification,
            instructed_amount: Amount {
                amount: i.instructed_amount.amount,
                currency: i.instructed_amount.currency,
            },
            creditor_account: CreditorAccount {
                scheme_name: i.creditor_account.scheme_name,
                identification: i.creditor_account.identification,
                name: i.creditor_account.name,
            },
            remittance_reference: i.remittance_information.and_then(|r| r.reference),
        }
    }
}

impl From<&Initiation> for ObInitiation {
    fn from(i: &Initiation) -> Self {
        Self {
            instruction_identification: i.instruction_identification.clone(),
            end_to_end_identification: i.end_to_end_identification.clone(),
            instructed_amount: ObAmount {
                amount: i.instructed_amount.amount.clone(),
                currency: i.instructed_amount.currency.clone(),
            },
            creditor_account: ObAccount {
                scheme_name: i.creditor_account.scheme_name.clone(),
                identification: i.creditor_account.identification.clone(),
                name: i.creditor_account.name.clone(),
            },
            remittance_information: i
                .remittance_reference
                .clone()
                .map(|r| ObRemittance { reference: Some(r) }),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ObPaymentConsentRequest {
    data: ObPaymentConsentData,
    #[serde(default)]
    #[allow(dead_code)]
    risk: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ObPaymentConsentData {
    initiation: ObInitiation,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ObPaymentRequest {
    data: ObPaymentData,
    #[serde(default)]
    #[allow(dead_code)]
    risk: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ObPaymentData {
    consent_id: String,
    initiation: ObInitiation,
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ObError> {
    // strict JSON first (duplicate members, depth), then the typed shape
    fapi_core::json::parse_object(body).map_err(|e| {
        ObError::bad_request(
            "UK.OBIE.Resource.InvalidFormat",
            format!("body is not valid JSON: {e}"),
        )
    })?;
    serde_json::from_slice(body).map_err(|e| {
        ObError::bad_request(
            "UK.OBIE.Field.Invalid",
            format!(
                "body does not have the expected shape: {}",
                e.to_string().chars().take(160).collect::<String>()
            ),
        )
    })
}

// -------------------------------------------------------------- consents

fn consent_view(state: &BankState, consent: &Consent, path: &str) -> Value {
    let status_updated = consent
        .history()
        .last()
        .map_or(consent.created_at(), |h| h.event.at);
    let mut data = json!({
        "ConsentId": consent.id().as_str(),
        "CreationDateTime": iso(consent.created_at()),
        "Status": consent.status().ob_status(),
        "StatusUpdateDateTime": iso(status_updated),
    });
    if let Some(obj) = data.as_object_mut() {
        match consent.terms() {
            ConsentTerms::AccountAccess(t) => {
                obj.insert(
                    "Permissions".into(),
                    json!(t
                        .permissions
                        .iter()
                        .map(|p| format!("{p:?}"))
                        .collect::<Vec<_>>()),
                );
                if let Some(e) = t.expiration {
                    obj.insert("ExpirationDateTime".into(), json!(iso(e)));
                }
                if let Some(f) = t.transaction_from {
                    obj.insert("TransactionFromDateTime".into(), json!(iso(f)));
                }
                if let Some(to) = t.transaction_to {
                    obj.insert("TransactionToDateTime".into(), json!(iso(to)));
                }
            }
            ConsentTerms::DomesticPayment(t) => {
                obj.insert(
                    "Initiation".into(),
                    serde_json::to_value(ObInitiation::from(&t.initiation)).unwrap_or_default(),
                );
            }
            _ => {}
        }
    }
    let mut body = ob_body(data, state, &format!("{path}/{}", consent.id().as_str()));
    if let Some(obj) = body.as_object_mut() {
        obj.insert("Risk".into(), json!({}));
    }
    body
}

async fn own_consent(
    state: &BankState,
    token: &BoundAccessToken,
    id: &str,
) -> Result<Consent, ObError> {
    let id = ConsentId::try_from(id).map_err(|_| ObError::not_found())?;
    state
        .consents
        .get(&id)
        .await
        .map_err(|_| ObError::internal())?
        .filter(|c| c.client_id() == token.client_id())
        .ok_or_else(ObError::not_found)
}

fn interaction(ext: &Option<Extension<InteractionId>>) -> Option<&str> {
    ext.as_ref().map(|Extension(i)| i.0.as_str())
}

async fn create_account_access_consent(
    State(state): State<Arc<BankState>>,
    client: ClientToken,
    interaction_id: Option<Extension<InteractionId>>,
    body: Bytes,
) -> Result<Response, ObError> {
    let token = client.scoped("accounts")?;
    let req: ObReadConsent = parse_json(&body)?;
    let id = ConsentId::try_from(format!(
        "aac-{}",
        fapi_core::random::uuid_v4().map_err(|_| ObError::internal())?
    ))
    .map_err(|_| ObError::internal())?;
    let consent = Consent::account_access(
        id,
        token.client_id().clone(),
        &AccountAccessRequest {
            permissions: req.data.permissions,
            expiration: req.data.expiration_date_time,
            transaction_from: req.data.transaction_from_date_time,
            transaction_to: req.data.transaction_to_date_time,
        },
        state.now(),
    )
    .map_err(|e| ObError::bad_request("UK.OBIE.Field.Invalid", e.to_string()))?;
    create_audited(
        &*state.consents,
        &*state.audit,
        consent.clone(),
        interaction(&interaction_id),
        Some(base16ct::lower::encode_string(&body_hash(&body))),
    )
    .await
    .map_err(|_| ObError::internal())?;
    super::telemetry::join_flow(consent.id().as_str(), consent.client_id().as_str());
    let view = consent_view(&state, &consent, &format!("{AISP}/account-access-consents"));
    Ok(labelled(
        (StatusCode::CREATED, Json(view)).into_response(),
        &token,
    ))
}

/// `GET` of one of the client's own consents of the kind `payment` says,
/// with a client-credentials token of `scope`.
async fn read_consent(
    state: &BankState,
    client: ClientToken,
    id: &str,
    payment: bool,
) -> Result<Response, ObError> {
    let (scope, base) = if payment {
        ("payments", format!("{PISP}/domestic-payment-consents"))
    } else {
        ("accounts", format!("{AISP}/account-access-consents"))
    };
    let token = client.scoped(scope)?;
    let consent = own_consent(state, &token, id).await?;
    if payment != matches!(consent.terms(), ConsentTerms::DomesticPayment(_)) {
        return Err(ObError::not_found());
    }
    let view = consent_view(state, &consent, &base);
    Ok(labelled(Json(view).into_response(), &token))
}

async fn get_account_access_consent(
    State(state): State<Arc<BankState>>,
    client: ClientToken,
    Path(id): Path<String>,
) -> Result<Response, ObError> {
    read_consent(&state, client, &id, false).await
}

async fn delete_account_access_consent(
    State(state): State<Arc<BankState>>,
    client: ClientToken,
    interaction_id: Option<Extension<InteractionId>>,
    Path(id): Path<String>,
) -> Result<Response, ObError> {
    let token = client.scoped("accounts")?;
    let consent = own_consent(&state, &token, &id).await?;
    let event = ConsentEvent {
        kind: EventKind::Revoke,
        actor: Actor::Tpp(token.client_id().as_str().to_owned()),
        reason: "deleted by the TPP".into(),
        at: state.now(),
    };
    apply_event_audited(
        &*state.consents,
        &*state.audit,
        consent.id(),
        event,
        interaction(&interaction_id),
    )
    .await
    .map_err(|e| ObError::bad_request("UK.OBIE.Resource.InvalidConsentStatus", e.to_string()))?;
    observe::consent_event("revoked");
    Ok(labelled(StatusCode::NO_CONTENT.into_response(), &token))
}

// -------------------------------------------------------------- accounts

async fn accounts(
    State(state): State<Arc<BankState>>,
    BoundWithConsent { token, consent }: BoundWithConsent,
) -> Result<Response, ObError> {
    let authorized = state
        .gate
        .authorize_read(&token, consent, &ResourceAccess::Accounts, state.now())
        .map_err(|e| gate_error(&e))?;
    let customer = authorized.customer_id().unwrap_or_default().to_owned();
    let selected = authorized.accounts().to_vec();
    let detail = authorized.detail_level() == DetailLevel::Detail;
    let all = core(&state, Lane::Accounts, |c| c.accounts(&customer)).await?;
    let list: Vec<Value> = all
        .into_iter()
        .filter(|(id, _)| selected.contains(id))
        .map(|(id, name)| account_json(&id, &name, detail))
        .collect();
    let body = ob_body(
        json!({ "Account": list }),
        &state,
        &format!("{AISP}/accounts"),
    );
    Ok(labelled(Json(body).into_response(), &token))
}

fn account_json(id: &str, name: &str, detail: bool) -> Value {
    let mut a = json!({ "AccountId": id, "Currency": "GBP", "AccountType": "Personal", "AccountSubType": "CurrentAccount", "Nickname": name });
    if detail {
        if let Some(obj) = a.as_object_mut() {
            obj.insert(
                "Account".into(),
                json!([{ "SchemeName": "UK.OBIE.BBAN", "Identification": id, "Name": name }]),
            );
        }
    }
    a
}

async fn account(
    State(state): State<Arc<BankState>>,
    BoundWithConsent { token, consent }: BoundWithConsent,
    Path(id): Path<String>,
) -> Result<Response, ObError> {
    let authorized = state
        .gate
        .authorize_read(
            &token,
            consent,
            &ResourceAccess::Account(id.clone()),
            state.now(),
        )
        .map_err(|e| gate_error(&e))?;
    let customer = authorized.customer_id().unwrap_or_default().to_owned();
    let detail = authorized.detail_level() == DetailLevel::Detail;
    let all = core(&state, Lane::Accounts, |c| c.accounts(&customer)).await?;
    let (_, name) = all
        .into_iter()
        .find(|(a, _)| *a == id)
        .ok_or_else(ObError::not_found)?;
    let body = ob_body(
        json!({ "Account": [account_json(&id, &name, detail)] }),
        &state,
        &format!("{AISP}/accounts/{id}"),
    );
    Ok(labelled(Json(body).into_response(), &token))
}

async fn balances(
    State(state): State<Arc<BankState>>,
    BoundWithConsent { token, consent }: BoundWithConsent,
    Path(id): Path<String>,
) -> Result<Response, ObError> {
    state
        .gate
        .authorize_read(
            &token,
            consent,
            &ResourceAccess::Balances(id.clone()),
            state.now(),
        )
        .map_err(|e| gate_error(&e))?;
    let account = id.clone();
    let balance = core(&state, Lane::Accounts, |c| c.balance(&account)).await?;
    let body = ob_body(
        json!({ "Balance": [{
            "AccountId": id,
            "Amount": { "Amount": amount(balance.abs()), "Currency": "GBP" },
            "CreditDebitIndicator": if balance < 0 { "Debit" } else { "Credit" },
            "Type": "InterimAvailable",
            "DateTime": iso(state.now()),
        }] }),
        &state,
        &format!("{AISP}/accounts/{id}/balances"),
    );
    Ok(labelled(Json(body).into_response(), &token))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TransactionQuery {
    from_booking_date_time: Option<String>,
    to_booking_date_time: Option<String>,
}

async fn transactions(
    State(state): State<Arc<BankState>>,
    BoundWithConsent { token, consent }: BoundWithConsent,
    Path(id): Path<String>,
    Query(q): Query<TransactionQuery>,
) -> Result<Response, ObError> {
    let parse = |field: &'static str, v: Option<String>| {
        v.map(|s| parse_date_time(field, &s))
            .transpose()
            .map_err(|e| ObError::bad_request("UK.OBIE.Field.InvalidDate", e.to_string()))
    };
    let from = parse("fromBookingDateTime", q.from_booking_date_time)?;
    let to = parse("toBookingDateTime", q.to_booking_date_time)?;
    let authorized = state
        .gate
        .authorize_read(
            &token,
            consent,
            &ResourceAccess::Transactions {
                account: id.clone(),
                from,
                to,
            },
            state.now(),
        )
        .map_err(|e| gate_error(&e))?;
    let (from, to) = authorized.transaction_window();
    let (credits, debits) = authorized.transaction_directions();
    let detail = authorized.detail_level() == DetailLevel::Detail;
    let account = id.clone();
    let booked = core(&state, Lane::Accounts, |c| {
        c.transactions(&account, from, to)
    })
    .await?;
    let list: Vec<Value> = booked
        .into_iter()
        .filter(|t| if t.amount < 0 { debits } else { credits })
        .map(|t| {
            let mut v = json!({
                "AccountId": id,
                "CreditDebitIndicator": if t.amount < 0 { "Debit" } else { "Credit" },
                "Status": "Booked",
                "BookingDateTime": iso(t.booked_at),
                "Amount": { "Amount": amount(t.amount.abs()), "Currency": "GBP" },
            });
            if detail {
                if let Some(obj) = v.as_object_mut() {
                    obj.insert("TransactionInformation".into(), json!(t.reference));
                    obj.insert("CreditorAccount".into(), json!({ "Name": t.counterparty }));
                }
            }
            v
        })
        .collect();
    let body = ob_body(
        json!({ "Transaction": list }),
        &state,
        &format!("{AISP}/accounts/{id}/transactions"),
    );
    Ok(labelled(Json(body).into_response(), &token))
}

// -------------------------------------------------------------- payments

/// The TPP's `x-jws-signature` over `body`, verified with its registered
/// keys and expected issuer.
async fn verify_tpp_signature(
    state: &BankState,
    token: &BoundAccessToken,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Registration, ObError> {
    let signature = headers
        .get(&X_JWS_SIGNATURE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ObError::bad_request("UK.OBIE.Signature.Missing", "x-jws-signature is required")
        })?;
    let registered = state
        .registry
        .client(token.client_id())
        .await
        .map_err(|_| ObError::internal())?
        .ok_or_else(ObError::internal)?;
    let metadata = state
        .clients
        .metadata(&registered.registration)
        .map_err(|_| ObError::internal())?;
    let issuer = registered.registration.signing_issuer();
    ObJwsVerifier::new(state.profile.algorithms(), issuer, TRUST_ANCHOR)
        .verify(signature, body, metadata.keys(), state.now())
        .map_err(|e| {
            auth_failure("jws_signature");
            ObError::bad_request("UK.OBIE.Signature.Invalid", e.to_string())
        })?;
    Ok(registered.registration)
}

/// A response signed by the bank (`x-jws-signature`).
async fn signed(state: &BankState, status: StatusCode, body: Vec<u8>) -> Result<Response, ObError> {
    let ring = state.ring();
    let signature = ring
        .responses
        .sign(&body, state.now())
        .await
        .map_err(|_| ObError::internal())?;
    let signature = HeaderValue::from_str(&signature).map_err(|_| ObError::internal())?;
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(X_JWS_SIGNATURE, signature);
    Ok(r)
}

fn idempotency_key(headers: &HeaderMap) -> Result<IdempotencyKey, ObError> {
    let v = headers
        .get(&X_IDEMPOTENCY_KEY)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ObError::bad_request("UK.OBIE.Header.Missing", "x-idempotency-key is required")
        })?;
    IdempotencyKey::parse(v)
        .map_err(|e| ObError::bad_request("UK.OBIE.Header.Invalid", e.to_string()))
}

fn idempotency_error(e: &fapi_consent::idempotency::IdempotencyError) -> ObError {
    use fapi_consent::idempotency::IdempotencyError as I;
    match e {
        I::InProgress => ObError::new(
            StatusCode::CONFLICT,
            "UK.OBIE.Resource.Conflict",
            e.to_string(),
        ),
        I::Store(_) => ObError::internal(),
        _ => ObError::bad_request("UK.OBIE.Header.Invalid", e.to_string()),
    }
}

/// Runs `act` once per (client, key, body); a retry gets the first
/// response back, a different body under the same key is refused.
async fn idempotent(
    state: &Arc<BankState>,
    token: &BoundAccessToken,
    headers: &HeaderMap,
    body: &[u8],
    act: impl std::future::Future<Output = Result<(StatusCode, Vec<u8>), ObError>>,
) -> Result<Response, ObError> {
    let key = idempotency_key(headers)?;
    let now = state.now();
    match state
        .idempotency
        .begin(token.client_id(), &key, body_hash(body), now)
        .await
        .map_err(|e| idempotency_error(&e))?
    {
        Begin::Replay(r) => {
            let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK);
            signed(state, status, r.body).await
        }
        _ => match act.await {
            Ok((status, out)) => {
                state
                    .idempotency
                    .complete(
                        token.client_id(),
                        &key,
                        StoredResponse {
                            status: status.as_u16(),
                            body: out.clone(),
                        },
                    )
                    .await
                    .map_err(|_| ObError::internal())?;
                signed(state, status, out).await
            }
            Err(e) => {
                let _ = state.idempotency.abandon(token.client_id(), &key).await;
                Err(e)
            }
        },
    }
}

async fn create_payment_consent(
    State(state): State<Arc<BankState>>,
    client: ClientToken,
    interaction_id: Option<Extension<InteractionId>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ObError> {
    let token = client.scoped("payments")?;
    verify_tpp_signature(&state, &token, &headers, &body).await?;
    let req: ObPaymentConsentRequest = parse_json(&body)?;
    let st = state.clone();
    let client = token.client_id().clone();
    let iid = interaction(&interaction_id).map(str::to_owned);
    let digest = base16ct::lower::encode_string(&body_hash(&body));
    let r = idempotent(&state, &token, &headers, &body, async move {
        let id = ConsentId::try_from(format!(
            "pdc-{}",
            fapi_core::random::uuid_v4().map_err(|_| ObError::internal())?
        ))
        .map_err(|_| ObError::internal())?;
        let consent = Consent::domestic_payment(id, client, req.data.initiation.into(), st.now())
            .map_err(|e| ObError::bad_request("UK.OBIE.Field.Invalid", e.to_string()))?;
        create_audited(
            &*st.consents,
            &*st.audit,
            consent.clone(),
            iid.as_deref(),
            Some(digest),
        )
        .await
        .map_err(|_| ObError::internal())?;
        super::telemetry::join_flow(consent.id().as_str(), consent.client_id().as_str());
        let view = consent_view(&st, &consent, &format!("{PISP}/domestic-payment-consents"));
        Ok((StatusCode::CREATED, view.to_string().into_bytes()))
    })
    .await?;
    Ok(labelled(r, &token))
}

async fn get_payment_consent(
    State(state): State<Arc<BankState>>,
    client: ClientToken,
    Path(id): Path<String>,
) -> Result<Response, ObError> {
    read_consent(&state, client, &id, true).await
}

/// `POST /domestic-payments`. The payment is a state machine that loses
/// neither money nor consent: the consent is reserved (`PaymentPending`),
/// the core is asked to book it under the consent id as its payment
/// reference (at most one booking per consent), and the reservation ends
/// `Consumed` when booked or back in `Authorised` when refused or never
/// executed. An unknown outcome (the core's timeout, a crash) stays
/// pending until [`reconcile`] asks the core what happened. The work runs
/// in its own task: a client that gives up does not cancel it.
async fn create_payment(
    State(state): State<Arc<BankState>>,
    Bound(token): Bound,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ObError> {
    verify_tpp_signature(&state, &token, &headers, &body).await?;
    let req: ObPaymentRequest = parse_json(&body)?;
    let consent_id = ConsentId::try_from(req.data.consent_id.as_str())
        .map_err(|_| ObError::bad_request("UK.OBIE.Field.Invalid", "ConsentId is malformed"))?;
    let submission = PaymentSubmission {
        consent_id,
        initiation: req.data.initiation.into(),
    };
    let key = idempotency_key(&headers)?;
    let hash = body_hash(&body);
    let (st, tok) = (state.clone(), token.clone());
    let span = tracing::Span::current();
    let work = tokio::spawn(
        async move {
            let outcome = submit_payment(&st, &tok, &submission, &key, hash).await;
            if let Err(e) = &outcome {
                tracing::info!(
                    status = e.status().as_u16(),
                    "payment submission ended without a payment"
                );
            }
            outcome
        }
        .instrument(span),
    );
    let r = match work.await.map_err(|_| ObError::internal())? {
        Ok((status, body)) => replayed(&state, status, body).await?,
        Err(e) => e.into_response(),
    };
    Ok(labelled(r, &token))
}

/// A stored outcome as the TPP gets it: a success signed
/// (`x-jws-signature`), an error as it was first answered.
async fn replayed(
    state: &BankState,
    status: StatusCode,
    body: Vec<u8>,
) -> Result<Response, ObError> {
    if status.is_success() {
        return signed(state, status, body).await;
    }
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

/// One submission under its idempotency key, to the end.
pub(super) async fn submit_payment(
    st: &Arc<BankState>,
    tok: &BoundAccessToken,
    submission: &PaymentSubmission,
    key: &IdempotencyKey,
    hash: [u8; 32],
) -> Result<(StatusCode, Vec<u8>), ObError> {
    let client = tok.client_id();
    for _ in 0..2 {
        match st.idempotency.begin(client, key, hash, st.now()).await {
            Ok(Begin::Replay(r)) => {
                return Ok((
                    StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK),
                    r.body,
                ))
            }
            Ok(_) => return execute_payment(st, tok, submission, key).await,
            Err(fapi_consent::idempotency::IdempotencyError::InProgress) => {
                // a submission under this key is running, or was cut off:
                // resolve it if its time is up, then look again
                if !reconcile(st, &submission.consent_id).await? {
                    return Err(in_progress());
                }
                if let Some(stored) = st
                    .payments
                    .by_consent(&submission.consent_id)
                    .await
                    .map_err(|_| ObError::internal())?
                {
                    let (status, body) = payment_response(&stored.body)?;
                    complete(st, tok, key, status, &body).await?;
                    return Ok((status, body));
                }
                // never booked: this key starts again
                let _ = st.idempotency.abandon(client, key).await;
            }
            Err(e) => return Err(idempotency_error(&e)),
        }
    }
    Err(in_progress())
}

fn in_progress() -> ObError {
    ObError::new(
        StatusCode::CONFLICT,
        "UK.OBIE.Resource.Conflict",
        "a payment of this consent is in progress; retry with the same x-idempotency-key",
    )
    .with_retry_after(super::errors::CORE_RETRY_AFTER_SECS)
}

/// Stores `status`/`body` as the key's outcome.
async fn complete(
    st: &BankState,
    tok: &BoundAccessToken,
    key: &IdempotencyKey,
    status: StatusCode,
    body: &[u8],
) -> Result<(), ObError> {
    match st
        .idempotency
        .complete(
            tok.client_id(),
            key,
            StoredResponse {
                status: status.as_u16(),
                body: body.to_vec(),
            },
        )
        .await
    {
        Ok(()) => Ok(()),
        // completed meanwhile (a reconciliation raced this submission)
        Err(fapi_consent::idempotency::IdempotencyError::InProgress) => Ok(()),
        Err(_) => Err(ObError::internal()),
    }
}

/// Ends the key with `e` as its outcome: this answer and every retry's
/// are the same bytes.
async fn refuse(
    st: &BankState,
    tok: &BoundAccessToken,
    key: &IdempotencyKey,
    e: ObError,
) -> Result<(StatusCode, Vec<u8>), ObError> {
    let (status, body) = e.to_stored();
    tracing::info!(status = status.as_u16(), "payment refused");
    complete(st, tok, key, status, &body).await?;
    Ok((status, body))
}

fn payment_response(stored: &str) -> Result<(StatusCode, Vec<u8>), ObError> {
    let v: Value = serde_json::from_str(stored).map_err(|_| ObError::internal())?;
    let view = v.get("view").ok_or_else(ObError::internal)?;
    Ok((StatusCode::CREATED, view.to_string().into_bytes()))
}

async fn execute_payment(
    st: &Arc<BankState>,
    tok: &BoundAccessToken,
    submission: &PaymentSubmission,
    key: &IdempotencyKey,
) -> Result<(StatusCode, Vec<u8>), ObError> {
    use fapi_consent::gate::GateError;
    let now = st.now();
    let i = &submission.initiation;
    let Some(minor) = crate::core_banking::to_minor(&i.instructed_amount.amount) else {
        let e = ObError::bad_request(
            "UK.OBIE.Field.Invalid",
            "InstructedAmount.Amount is not payable",
        );
        return refuse(st, tok, key, e).await;
    };
    let reserved = match st.gate.reserve_payment(tok, submission, now).await {
        Ok(r) => r,
        Err(GateError::PaymentInProgress) => {
            // another key holds the consent: its outcome decides
            let _ = st.idempotency.abandon(tok.client_id(), key).await;
            let _ = reconcile(st, &submission.consent_id).await;
            return Err(in_progress());
        }
        Err(GateError::Store(_)) => {
            let _ = st.idempotency.abandon(tok.client_id(), key).await;
            return Err(ObError::internal());
        }
        Err(e) => {
            observe::payment("refused");
            return refuse(st, tok, key, gate_error(&e)).await;
        }
    };
    let (debtor, creditor, reference) = (
        reserved.debtor_account.clone(),
        i.creditor_account.name.clone(),
        i.remittance_reference.clone().unwrap_or_default(),
    );
    let payment_ref = submission.consent_id.as_str().to_owned();
    let moved = st
        .core_call(Lane::Payments, |c| {
            c.pay(&payment_ref, &debtor, minor, &creditor, &reference, now)
        })
        .await;
    match moved {
        Ok(_booking) => {
            observe::payment("accepted");
            let stored = finish_booked(st, &reserved.consent, tok.client_id()).await?;
            let (status, body) = payment_response(&stored)?;
            complete(st, tok, key, status, &body).await?;
            Ok((status, body))
        }
        Err(CoreError::Timeout) => {
            // the outcome is unknown: the consent stays reserved, the key
            // in progress, until reconciliation asks the core
            observe::payment("timeout");
            Err(ObError::core_timeout(
                "the payment's outcome is being established; retry with the same x-idempotency-key",
            ))
        }
        Err(CoreError::Unavailable) => {
            // nothing was executed: the consent is usable again
            observe::payment("core_unavailable");
            release(st, &submission.consent_id, "core banking unavailable").await?;
            let _ = st.idempotency.abandon(tok.client_id(), key).await;
            Err(ObError::core_unavailable())
        }
        Err(e) => {
            observe::payment("refused");
            release(
                st,
                &submission.consent_id,
                &format!("refused by core banking: {e}"),
            )
            .await?;
            let refused = match e {
                CoreError::InsufficientFunds => ObError::bad_request(
                    "UK.OBIE.Rules.InsufficientFunds",
                    "the debtor account cannot cover the payment",
                ),
                other => {
                    ObError::bad_request("UK.OBIE.Rules.FailsControlParameters", other.to_string())
                }
            };
            refuse(st, tok, key, refused).await
        }
    }
}

/// Returns a reserved consent to `Authorised` (no booking exists).
async fn release(st: &BankState, consent: &ConsentId, why: &str) -> Result<(), ObError> {
    match st
        .gate
        .settle_payment(
            consent,
            Actor::Bank,
            fapi_consent::gate::Settlement::NotBooked(why.into()),
            st.now(),
        )
        .await
    {
        Ok(_) | Err(fapi_consent::gate::GateError::NotReserved) => Ok(()),
        Err(_) => Err(ObError::internal()),
    }
}

/// The consent's payment was booked: the payment (with its signed
/// authorisation record) is stored, once, whoever gets here first; then
/// the consent becomes `Consumed`. In this order a store failure between
/// the two leaves a reserved consent that has its payment (reconciliation
/// or the next same-key retry finishes it), never a used consent without
/// its payment. Returns the stored payment.
async fn finish_booked(
    st: &BankState,
    reserved: &Consent,
    client: &fapi_core::types::ClientId,
) -> Result<String, ObError> {
    let now = st.now();
    let stored = match st
        .payments
        .by_consent(reserved.id())
        .await
        .map_err(|_| ObError::internal())?
    {
        Some(stored) => stored.body,
        None => store_payment(st, reserved, client, now).await?,
    };
    match st
        .gate
        .settle_payment(
            reserved.id(),
            Actor::Bank,
            fapi_consent::gate::Settlement::Booked,
            now,
        )
        .await
    {
        // settled now, or by whoever got here first
        Ok(_) | Err(fapi_consent::gate::GateError::NotReserved) => Ok(stored),
        Err(_) => Err(ObError::internal()),
    }
}

/// Stores the payment of the booked consent `reserved` (first writer
/// wins) and returns the stored body.
async fn store_payment(
    st: &BankState,
    reserved: &Consent,
    client: &fapi_core::types::ClientId,
    now: fapi_core::time::UnixTime,
) -> Result<String, ObError> {
    let ConsentTerms::DomesticPayment(terms) = reserved.terms() else {
        return Err(ObError::internal());
    };
    let debtor = terms.debtor_account.clone().unwrap_or_default();
    let ring = st.ring();
    let id = format!(
        "dp-{}",
        fapi_core::random::uuid_v4().map_err(|_| ObError::internal())?
    );
    let authorised_at = reserved
        .history()
        .iter()
        .rev()
        .find(|h| matches!(h.event.kind, EventKind::Authorise { .. }))
        .map_or(now, |h| h.event.at);
    let record = PaymentAuthorisationRecord::new(
        reserved.id().as_str(),
        reserved.customer_id().unwrap_or_default(),
        client.as_str(),
        terms.initiation.clone(),
        &debtor,
        "urn:openbanking:psd2:sca",
        authorised_at,
        None,
    )
    .sign(&*ring.key, &ring.kid)
    .await
    .map_err(|_| ObError::internal())?;
    let view = json!({
        "Data": {
            "DomesticPaymentId": id,
            "ConsentId": reserved.id().as_str(),
            "CreationDateTime": iso(now),
            "Status": "AcceptedSettlementInProcess",
            "StatusUpdateDateTime": iso(now),
            "Initiation": ObInitiation::from(&terms.initiation),
        },
        "Links": links(st, &format!("{PISP}/domestic-payments/{id}")),
        "Meta": {},
    });
    let body = json!({ "view": view, "record": record }).to_string();
    st.payments
        .save_once(StoredPayment {
            id,
            client_id: client.clone(),
            consent_id: reserved.id().clone(),
            body,
        })
        .await
        .map(|stored| stored.body)
        .map_err(|_| ObError::internal())
}

/// Resolves a reservation whose submission can no longer be running (its
/// core call's deadline has passed, or the process that made it is gone):
/// asks the core what happened to the payment and settles the consent by
/// the answer. Returns whether the consent is settled now (`false`: still
/// within its submission's time, or the core cannot be asked).
///
/// # Errors
/// [`ObError::internal`] when the store fails.
pub(crate) async fn reconcile(st: &BankState, consent_id: &ConsentId) -> Result<bool, ObError> {
    let Some(consent) = st
        .consents
        .get(consent_id)
        .await
        .map_err(|_| ObError::internal())?
    else {
        return Ok(true);
    };
    if consent.status() != fapi_consent::consent::ConsentStatus::PaymentPending {
        return Ok(true);
    }
    let reserved_at = consent
        .history()
        .iter()
        .rev()
        .find(|h| matches!(h.event.kind, EventKind::Reserve))
        .map_or(fapi_core::time::UnixTime::EPOCH, |h| h.event.at);
    let deadline = i64::try_from(st.core_timeout.as_secs())
        .unwrap_or(i64::MAX)
        .saturating_add(1);
    if st.now().secs_since(reserved_at) < deadline {
        return Ok(false);
    }
    let payment_ref = consent_id.as_str().to_owned();
    match st
        .core_call(Lane::Payments, |c| c.booking(&payment_ref))
        .await
    {
        Ok(Some(_)) => {
            observe::payment("reconciled_booked");
            let client = consent.client_id().clone();
            finish_booked(st, &consent, &client).await?;
            Ok(true)
        }
        Ok(None) => {
            observe::payment("reconciled_not_booked");
            release(st, consent_id, "no booking at the core (reconciled)").await?;
            Ok(true)
        }
        Err(_) => Ok(false),
    }
}

async fn load_payment(
    state: &BankState,
    token: &BoundAccessToken,
    id: &str,
) -> Result<Value, ObError> {
    let stored = state
        .payments
        .by_id(id)
        .await
        .map_err(|_| ObError::internal())?
        .ok_or_else(ObError::not_found)?;
    if &stored.client_id != token.client_id() {
        return Err(ObError::not_found());
    }
    serde_json::from_str(&stored.body).map_err(|_| ObError::internal())
}

async fn get_payment(
    State(state): State<Arc<BankState>>,
    Bound(token): Bound,
    Path(id): Path<String>,
) -> Result<Response, ObError> {
    let stored = load_payment(&state, &token, &id).await?;
    let view = stored.get("view").cloned().unwrap_or_default();
    Ok(labelled(
        signed(&state, StatusCode::OK, view.to_string().into_bytes()).await?,
        &token,
    ))
}

/// The bank's signed payment-authorisation record (`application/jwt`),
/// verifiable with the bank's public keys alone.
async fn payment_record(
    State(state): State<Arc<BankState>>,
    Bound(token): Bound,
    Path(id): Path<String>,
) -> Result<Response, ObError> {
    let stored = load_payment(&state, &token, &id).await?;
    let record = stored
        .get("record")
        .and_then(Value::as_str)
        .ok_or_else(ObError::internal)?
        .to_owned();
    let mut r = (StatusCode::OK, record).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwt"),
    );
    Ok(labelled(r, &token))
}
