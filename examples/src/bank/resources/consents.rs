//! Account-access and payment consents: create, read, delete (client-
//! credentials tokens).

use super::*;
#[allow(clippy::wildcard_imports)]
use fapi_consent::consent::ConsentRequestError;
use fapi_consent::Permission;

pub(super) fn consent_view(state: &BankState, consent: &Consent, path: &str) -> Value {
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

pub(super) async fn own_consent(
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

pub(super) fn interaction(ext: &Option<Extension<InteractionId>>) -> Option<&str> {
    ext.as_ref().map(|Extension(i)| i.0.as_str())
}

pub(super) async fn create_account_access_consent(
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
            permissions: Permission::parse_codes(&req.data.permissions).map_err(|e| {
                let e = ConsentRequestError::Permissions(e);
                ObError::bad_request("UK.OBIE.Field.Invalid", e.to_string())
            })?,
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
    crate::bank::telemetry::join_flow(consent.id().as_str(), consent.client_id().as_str());
    let view = consent_view(&state, &consent, &format!("{AISP}/account-access-consents"));
    Ok(labelled(
        (StatusCode::CREATED, Json(view)).into_response(),
        &token,
    ))
}

/// `GET` of one of the client's own consents of the kind `payment` says,
/// with a client-credentials token of `scope`.
pub(super) async fn read_consent(
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

pub(super) async fn get_account_access_consent(
    State(state): State<Arc<BankState>>,
    client: ClientToken,
    Path(id): Path<String>,
) -> Result<Response, ObError> {
    read_consent(&state, client, &id, false).await
}

pub(super) async fn delete_account_access_consent(
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
