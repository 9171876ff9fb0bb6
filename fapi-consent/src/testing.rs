//! Conformance kit for [`ConsentStore`] adapters (feature `testing`).

use futures_util::future::join_all;

use crate::consent::{Actor, Consent, ConsentEvent, ConsentStatus, EventKind};
use crate::store::{apply_event, ApplyError, CasError, ConsentStore, CreateError};

pub use fapi_core::testing::ConformanceFailure;

fn fail(case: &'static str, detail: impl core::fmt::Debug) -> ConformanceFailure {
    ConformanceFailure {
        case,
        detail: format!("{detail:?}"),
    }
}

/// A fresh account-access consent of client `tpp-a` (`ReadAccountsBasic`,
/// expiring in 2031), created at `at`: a sample for the kit and for an
/// adapter's own tests.
///
/// # Errors
/// A [`ConformanceFailure`] if `id` is not a consent id.
pub fn sample_account_access(
    id: &str,
    at: fapi_core::UnixTime,
) -> Result<Consent, ConformanceFailure> {
    use crate::consent::AccountAccessRequest;
    Consent::account_access(
        fapi_core::ConsentId::try_from(id).map_err(|e| fail("sample", e))?,
        fapi_core::ClientId::try_from("tpp-a").map_err(|e| fail("sample", e))?,
        &AccountAccessRequest {
            permissions: vec![crate::Permission::ReadAccountsBasic],
            expiration: Some("2031-01-01T00:00:00Z".into()),
            ..Default::default()
        },
        at,
    )
    .map_err(|e| fail("sample", e))
}

/// A fresh domestic-payment consent of client `tpp-a` (GBP 1.00 to a
/// sort code and account), created at `at`.
///
/// # Errors
/// A [`ConformanceFailure`] if `id` is not a consent id.
pub fn sample_domestic_payment(
    id: &str,
    at: fapi_core::UnixTime,
) -> Result<Consent, ConformanceFailure> {
    use crate::consent::{Amount, CreditorAccount, Initiation};
    Consent::domestic_payment(
        fapi_core::ConsentId::try_from(id).map_err(|e| fail("sample", e))?,
        fapi_core::ClientId::try_from("tpp-a").map_err(|e| fail("sample", e))?,
        Initiation {
            instruction_identification: "i".into(),
            end_to_end_identification: "e".into(),
            instructed_amount: Amount {
                amount: "1.00".into(),
                currency: "GBP".into(),
            },
            creditor_account: CreditorAccount {
                scheme_name: "UK.OBIE.SortCodeAccountNumber".into(),
                identification: "1".into(),
                name: "n".into(),
            },
            remittance_reference: None,
        },
        at,
    )
    .map_err(|e| fail("sample", e))
}

/// How many concurrent changes race in the kit.
pub const RACERS: usize = 1000;

/// Runs every [`ConsentStore`] guarantee against `store`, given a fresh
/// account-access consent and a fresh payment consent (both
/// `AwaitingAuthorisation`, distinct ids, not yet stored). Races poll
/// [`RACERS`] changes concurrently on the caller's executor.
///
/// # Errors
/// The first [`ConformanceFailure`].
pub async fn consent_store_conformance(
    store: &dyn ConsentStore,
    account_access: Consent,
    payment: Consent,
) -> Result<(), ConformanceFailure> {
    let at = account_access.created_at();
    let ev = |kind: EventKind| ConsentEvent {
        kind,
        actor: Actor::Bank,
        reason: "conformance".into(),
        at,
    };
    let aac_id = account_access.id().clone();
    store
        .create(account_access.clone())
        .await
        .map_err(|e| fail("create", e))?;
    match store.create(account_access.clone()).await {
        Err(CreateError::AlreadyExists) => {}
        r => return Err(fail("duplicate id refused", r)),
    }
    let read = store.get(&aac_id).await.map_err(|e| fail("get", e))?;
    if read.as_ref() != Some(&account_access) {
        return Err(fail("get returns what was created", read));
    }
    // a stale swap loses
    let authorised = account_access
        .clone()
        .apply(ev(EventKind::Authorise {
            customer_id: "c".into(),
            accounts: vec!["a".into()],
        }))
        .map_err(|e| fail("setup", e))?;
    store
        .compare_and_swap(1, authorised.clone())
        .await
        .map_err(|e| fail("swap from the stored version", e))?;
    match store.compare_and_swap(1, authorised).await {
        Err(CasError::Conflict { current: 2 }) => {}
        r => return Err(fail("swap from a stale version is a conflict", r)),
    }
    // race: many revokes of one authorised consent, exactly one wins
    let results =
        join_all((0..RACERS).map(|_| apply_event(store, &aac_id, ev(EventKind::Revoke)))).await;
    let wins = results.iter().filter(|r| r.is_ok()).count();
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(ApplyError::Transition(_))))
        .count();
    if wins != 1 || refused != RACERS - 1 {
        return Err(fail(
            "exactly one of many concurrent revocations wins",
            (wins, refused),
        ));
    }
    let after = store
        .get(&aac_id)
        .await
        .map_err(|e| fail("get", e))?
        .ok_or_else(|| fail("get", "gone"))?;
    if after.status() != ConsentStatus::Revoked
        || after.version() != 3
        || after.history().len() != 2
    {
        return Err(fail(
            "one consistent history after the race",
            (after.status(), after.version(), after.history().len()),
        ));
    }
    // race: many consumptions of one payment consent, exactly one wins
    let pay_id = payment.id().clone();
    store
        .create(payment)
        .await
        .map_err(|e| fail("create payment", e))?;
    apply_event(
        store,
        &pay_id,
        ev(EventKind::Authorise {
            customer_id: "c".into(),
            accounts: vec!["d".into()],
        }),
    )
    .await
    .map_err(|e| fail("authorise payment", e))?;
    // a reservation is listed as pending until it is settled
    apply_event(store, &pay_id, ev(EventKind::Reserve))
        .await
        .map_err(|e| fail("reserve payment", e))?;
    let pending = store
        .pending_payments()
        .await
        .map_err(|e| fail("pending payments", e))?;
    if pending != vec![pay_id.clone()] {
        return Err(fail("a reserved payment consent is pending", pending));
    }
    apply_event(store, &pay_id, ev(EventKind::Release))
        .await
        .map_err(|e| fail("release payment", e))?;
    let pending = store
        .pending_payments()
        .await
        .map_err(|e| fail("pending payments", e))?;
    if !pending.is_empty() {
        return Err(fail("a released payment consent is not pending", pending));
    }
    let results =
        join_all((0..RACERS).map(|_| apply_event(store, &pay_id, ev(EventKind::Consume)))).await;
    let wins = results.iter().filter(|r| r.is_ok()).count();
    if wins != 1 {
        return Err(fail(
            "exactly one of many concurrent consumptions wins",
            wins,
        ));
    }
    let listed = store
        .list_for_customer("c")
        .await
        .map_err(|e| fail("list", e))?;
    if listed.len() != 2 {
        return Err(fail("a customer's consents are listed", listed.len()));
    }
    // pages of one, in the list's order, then nothing
    let first = store
        .page_for_customer("c", None, 1)
        .await
        .map_err(|e| fail("page", e))?;
    let cursor = first.first().map(crate::store::PageCursor::after);
    let second = store
        .page_for_customer("c", cursor.as_ref(), 1)
        .await
        .map_err(|e| fail("page", e))?;
    let cursor = second.first().map(crate::store::PageCursor::after);
    let third = store
        .page_for_customer("c", cursor.as_ref(), 1)
        .await
        .map_err(|e| fail("page", e))?;
    let paged: Vec<&Consent> = first.iter().chain(&second).collect();
    let listed: Vec<&Consent> = listed.iter().collect();
    if paged != listed || !third.is_empty() {
        return Err(fail(
            "pages of a customer's consents follow the list, newest first",
            (paged.len(), third.len()),
        ));
    }
    Ok(())
}

/// Runs every [`IdempotencyStore`](crate::idempotency::IdempotencyStore)
/// guarantee against `store` (empty at the start), racing [`RACERS`] first
/// requests on the caller's executor.
///
/// # Errors
/// The first [`ConformanceFailure`].
pub async fn idempotency_store_conformance(
    store: &dyn crate::idempotency::IdempotencyStore,
) -> Result<(), ConformanceFailure> {
    use crate::idempotency::{
        body_hash, Begin, IdempotencyError, IdempotencyKey, StoredResponse, WINDOW_SECS,
    };
    use fapi_core::ClientId;
    use fapi_core::UnixTime;
    let t0 = UnixTime::from_secs(1_900_000_000).ok_or_else(|| fail("setup", "time"))?;
    let a = ClientId::try_from("kit-a").map_err(|e| fail("setup", e))?;
    let b = ClientId::try_from("kit-b").map_err(|e| fail("setup", e))?;
    let key = IdempotencyKey::parse("kit-key").map_err(|e| fail("setup", e))?;
    let h = body_hash(b"body");
    let resp = StoredResponse {
        status: 201,
        body: b"{}".to_vec(),
    };
    match store.begin(&a, &key, h, t0).await {
        Ok(Begin::New) => {}
        r => return Err(fail("first request is new", r)),
    }
    match store.begin(&a, &key, h, t0).await {
        Err(IdempotencyError::InProgress) => {}
        r => return Err(fail("retry while in progress is refused", r)),
    }
    store
        .complete(&a, &key, resp.clone())
        .await
        .map_err(|e| fail("complete", e))?;
    match store
        .begin(&a, &key, h, t0.saturating_add(WINDOW_SECS - 1))
        .await
    {
        Ok(Begin::Replay(r)) if r == resp => {}
        r => return Err(fail("retry replays the first response within 24 h", r)),
    }
    match store.begin(&a, &key, body_hash(b"other"), t0).await {
        Err(IdempotencyError::BodyMismatch) => {}
        r => return Err(fail("same key with another body is refused", r)),
    }
    match store.begin(&b, &key, h, t0).await {
        Ok(Begin::New) => {}
        r => return Err(fail("keys are scoped per client", r)),
    }
    let race = IdempotencyKey::parse("kit-race").map_err(|e| fail("setup", e))?;
    let results = join_all((0..RACERS).map(|_| store.begin(&a, &race, h, t0))).await;
    let new = results
        .iter()
        .filter(|r| matches!(r, Ok(Begin::New)))
        .count();
    if new != 1 {
        return Err(fail(
            "exactly one of many concurrent first requests acts",
            new,
        ));
    }
    Ok(())
}

/// Runs every [`AuditLog`](crate::audit::AuditLog) guarantee against `log`
/// (empty at the start): sequence from 1 without gaps, chaining, and
/// [`RACERS`] concurrent appends that never share a `seq`; the result must
/// pass [`verify_chain`](crate::audit::verify_chain); `head` is the last
/// entry (none when empty).
///
/// # Errors
/// The first [`ConformanceFailure`].
pub async fn audit_log_conformance(
    log: &dyn crate::audit::AuditLog,
) -> Result<(), ConformanceFailure> {
    use crate::audit::{verify_chain, AuditAction, AuditEvent};
    use fapi_core::UnixTime;
    let t0 = UnixTime::from_secs(1_900_000_000).ok_or_else(|| fail("setup", "time"))?;
    if let Some(head) = log.head().await.map_err(|e| fail("head", e))? {
        return Err(fail("an empty log has no head", head.seq));
    }
    let first = log
        .append(AuditEvent::new(AuditAction::ConsentCreated, t0))
        .await
        .map_err(|e| fail("append", e))?;
    if first.seq != 1 {
        return Err(fail("the first entry is seq 1", first.seq));
    }
    if log.head().await.map_err(|e| fail("head", e))?.as_ref() != Some(&first) {
        return Err(fail("the head is the entry just appended", first.seq));
    }
    let appended = join_all((0..RACERS).map(|i| {
        let mut e = AuditEvent::new(AuditAction::ResourceAccessed, t0);
        e.interaction_id = Some(format!("race-{i}"));
        log.append(e)
    }))
    .await;
    if appended.iter().any(Result::is_err) {
        return Err(fail(
            "concurrent appends succeed",
            appended.iter().filter(|r| r.is_err()).count(),
        ));
    }
    let entries = log
        .entries(1, RACERS + 10)
        .await
        .map_err(|e| fail("entries", e))?;
    if entries.len() != RACERS + 1 {
        return Err(fail("every append is kept", entries.len()));
    }
    verify_chain(&entries, &[], &fapi_core::jwk::KeySet::default(), &[])
        .map_err(|e| fail("the chain verifies", e))?;
    if log.head().await.map_err(|e| fail("head", e))?.as_ref() != entries.last() {
        return Err(fail(
            "the head is the last entry after racing appends",
            entries.len(),
        ));
    }
    let tail = log
        .entries(RACERS as u64, 10)
        .await
        .map_err(|e| fail("entries from a seq", e))?;
    if tail.first().map(|e| e.seq) != Some(RACERS as u64) || tail.len() != 2 {
        return Err(fail("entries(from, limit) starts at from", tail.len()));
    }
    Ok(())
}

/// Runs every [`PaymentStore`](crate::payment::PaymentStore) guarantee
/// against `store` (empty at the start): a saved payment reads back by id
/// and by consent, a second save for the consent keeps the first, unknown
/// ids and consents find nothing, and of [`RACERS`] concurrent saves of
/// different payments for one consent exactly one is stored and every call
/// returns it.
///
/// # Errors
/// The first [`ConformanceFailure`].
pub async fn payment_store_conformance(
    store: &dyn crate::payment::PaymentStore,
) -> Result<(), ConformanceFailure> {
    use crate::payment::StoredPayment;
    use fapi_core::{ClientId, ConsentId};
    let client = ClientId::try_from("tpp-a").map_err(|e| fail("setup", e))?;
    let consent = |s: &str| ConsentId::try_from(s).map_err(|e| fail("setup", e));
    let payment = |id: &str, c: &ConsentId| StoredPayment {
        id: id.into(),
        client_id: client.clone(),
        consent_id: c.clone(),
        body: format!("{{\"payment\":\"{id}\"}}"),
    };
    let (c1, c2) = (consent("pdc-1")?, consent("pdc-2")?);
    let first = payment("dp-1", &c1);
    let saved = store
        .save_once(first.clone())
        .await
        .map_err(|e| fail("save", e))?;
    if saved != first {
        return Err(fail("the first save is stored", saved));
    }
    let again = store
        .save_once(payment("dp-1b", &c1))
        .await
        .map_err(|e| fail("save again", e))?;
    if again != first {
        return Err(fail("a second save for a consent keeps the first", again));
    }
    let by_id = store.by_id("dp-1").await.map_err(|e| fail("by id", e))?;
    if by_id.as_ref() != Some(&first) {
        return Err(fail("a payment reads back by id", by_id));
    }
    let lost = store.by_id("dp-1b").await.map_err(|e| fail("by id", e))?;
    if lost.is_some() {
        return Err(fail("the losing save left nothing", lost));
    }
    let by_consent = store
        .by_consent(&c1)
        .await
        .map_err(|e| fail("by consent", e))?;
    if by_consent.as_ref() != Some(&first) {
        return Err(fail("a payment reads back by consent", by_consent));
    }
    let none = store
        .by_consent(&c2)
        .await
        .map_err(|e| fail("by consent", e))?;
    if none.is_some() {
        return Err(fail("a consent without a payment has none", none));
    }

    let ids: Vec<String> = (0..RACERS).map(|i| format!("dp-race-{i}")).collect();
    let results = join_all(ids.iter().map(|id| store.save_once(payment(id, &c2)))).await;
    let stored: Vec<&StoredPayment> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    let winner = stored.first().map(|p| p.id.clone());
    if stored.len() != RACERS || stored.iter().any(|p| Some(&p.id) != winner.as_ref()) {
        return Err(fail(
            "of concurrent saves for one consent exactly one is stored and returned to all",
            (stored.len(), winner),
        ));
    }
    let read = store
        .by_consent(&c2)
        .await
        .map_err(|e| fail("by consent", e))?;
    if read.map(|p| p.id) != winner {
        return Err(fail("the raced consent reads back its one payment", ()));
    }
    Ok(())
}
