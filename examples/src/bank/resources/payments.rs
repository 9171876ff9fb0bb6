//! Payments: submission under `x-idempotency-key` and `x-jws-signature`,
//! the reservation state machine, reconciliation, the signed authorisation
//! record.

#[allow(clippy::wildcard_imports)]
use super::*;

/// The TPP's `x-jws-signature` over `body`, verified with its registered
/// keys and expected issuer.
pub(super) async fn verify_tpp_signature(
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
pub(super) async fn signed(
    state: &BankState,
    status: StatusCode,
    body: Vec<u8>,
) -> Result<Response, ObError> {
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

pub(super) fn idempotency_key(headers: &HeaderMap) -> Result<IdempotencyKey, ObError> {
    let v = headers
        .get(&X_IDEMPOTENCY_KEY)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ObError::bad_request("UK.OBIE.Header.Missing", "x-idempotency-key is required")
        })?;
    IdempotencyKey::parse(v)
        .map_err(|e| ObError::bad_request("UK.OBIE.Header.Invalid", e.to_string()))
}

pub(super) fn idempotency_error(e: &fapi_consent::idempotency::IdempotencyError) -> ObError {
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
pub(super) async fn idempotent(
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

pub(super) async fn create_payment_consent(
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
        crate::bank::telemetry::join_flow(consent.id().as_str(), consent.client_id().as_str());
        let view = consent_view(&st, &consent, &format!("{PISP}/domestic-payment-consents"));
        Ok((StatusCode::CREATED, view.to_string().into_bytes()))
    })
    .await?;
    Ok(labelled(r, &token))
}

pub(super) async fn get_payment_consent(
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
pub(super) async fn create_payment(
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
pub(super) async fn replayed(
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
pub(crate) async fn submit_payment(
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

pub(super) fn in_progress() -> ObError {
    ObError::new(
        StatusCode::CONFLICT,
        "UK.OBIE.Resource.Conflict",
        "a payment of this consent is in progress; retry with the same x-idempotency-key",
    )
    .with_retry_after(crate::bank::errors::CORE_RETRY_AFTER_SECS)
}

/// Stores `status`/`body` as the key's outcome.
pub(super) async fn complete(
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
pub(super) async fn refuse(
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

pub(super) fn payment_response(stored: &str) -> Result<(StatusCode, Vec<u8>), ObError> {
    let v: Value = serde_json::from_str(stored).map_err(|_| ObError::internal())?;
    let view = v.get("view").ok_or_else(ObError::internal)?;
    Ok((StatusCode::CREATED, view.to_string().into_bytes()))
}

pub(super) async fn execute_payment(
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
pub(super) async fn release(st: &BankState, consent: &ConsentId, why: &str) -> Result<(), ObError> {
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
pub(super) async fn finish_booked(
    st: &BankState,
    reserved: &Consent,
    client: &fapi_core::ClientId,
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
pub(super) async fn store_payment(
    st: &BankState,
    reserved: &Consent,
    client: &fapi_core::ClientId,
    now: fapi_core::UnixTime,
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
        .map_or(fapi_core::UnixTime::EPOCH, |h| h.event.at);
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

pub(super) async fn load_payment(
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

pub(super) async fn get_payment(
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
pub(super) async fn payment_record(
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
