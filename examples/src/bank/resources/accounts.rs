//! Account information: accounts, an account, balances, transactions (a
//! consent read with the call, through the gate).

#[allow(clippy::wildcard_imports)]
use super::*;

pub(super) async fn accounts(
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

pub(super) fn account_json(id: &str, name: &str, detail: bool) -> Value {
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

pub(super) async fn account(
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

pub(super) async fn balances(
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
pub(super) struct TransactionQuery {
    from_booking_date_time: Option<String>,
    to_booking_date_time: Option<String>,
}

pub(super) async fn transactions(
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
