//! The consent gate with real bound access tokens (fapi-core verify ->
//! bind), each rule's negative test next to its twin, edges with injected
//! time, revocation on the next call, and payments racing on real threads.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
use common::initiation;
use fapi_consent::Permission;
use fapi_core::testing::TokenAuthority;

use std::sync::{Arc, Barrier, OnceLock};

use fapi_consent::consent::{AccountAccessRequest, Actor, Initiation};
use fapi_consent::gate::{DetailLevel, PaymentSubmission};
use fapi_consent::store::{apply_event, ApplyError};
use fapi_consent::{
    Consent, ConsentEvent, ConsentGate, ConsentStatus, ConsentStore, EventKind, GateError,
    InMemoryConsentStore, ResourceAccess,
};
use fapi_core::access_token::{AccessTokenClaims, Confirmation, PresentedKey, ProofOfPossession};
use fapi_core::crypto::{default_provider, Algorithm, SigningKey};
use fapi_core::UnixTime;
use fapi_core::{BoundAccessToken, ErrorCode, OAuthError, Profile};
use fapi_core::{CertificateThumbprint, ClientId, ConsentId, Issuer, Scope};

const NOW: i64 = 1_900_000_000; // 2030-03-17T17:46:40Z

fn at(o: i64) -> UnixTime {
    UnixTime::from_secs(NOW + o).unwrap()
}

fn b<F: std::future::Future>(f: F) -> F::Output {
    futures_executor::block_on(f)
}

struct Cert(CertificateThumbprint);
impl ProofOfPossession for Cert {
    fn presented_key(&self) -> PresentedKey<'_> {
        PresentedKey::Certificate(&self.0)
    }
}

fn key() -> &'static Arc<dyn SigningKey> {
    static K: OnceLock<Arc<dyn SigningKey>> = OnceLock::new();
    K.get_or_init(|| {
        default_provider()
            .generate_signing_key(Algorithm::Es256)
            .unwrap()
    })
}

fn authority() -> &'static TokenAuthority {
    static A: OnceLock<TokenAuthority> = OnceLock::new();
    A.get_or_init(|| {
        TokenAuthority::new(
            key().clone(),
            Issuer::try_from("https://bank.example").unwrap(),
            fapi_core::TokenAudience::try_from("api").unwrap(),
            Profile::Fapi2Security,
            3600,
        )
        .unwrap()
    })
}

/// A token for `client` and `consent`, verified and bound the real way.
fn token(client: &str, consent: &str) -> BoundAccessToken {
    let cert = Cert(CertificateThumbprint::of_der(client.as_bytes()));
    let claims = AccessTokenClaims::new(
        "alice",
        ClientId::try_from(client).unwrap(),
        Scope::try_from("accounts payments").unwrap(),
        Confirmation::CertificateThumbprint(cert.0),
    )
    .with_consent(Some(ConsentId::try_from(consent).unwrap()));
    futures_executor::block_on(authority().verified(&claims, at(0)))
        .unwrap()
        .bind(&cert)
        .unwrap()
}

fn ev(kind: EventKind) -> ConsentEvent {
    ConsentEvent {
        kind,
        actor: Actor::Customer("alice".into()),
        reason: "test".into(),
        at: at(0),
    }
}

fn authorise(accounts: &[&str]) -> ConsentEvent {
    ev(EventKind::Authorise {
        customer_id: "alice".into(),
        accounts: accounts.iter().map(|s| s.to_string()).collect(),
    })
}

fn aac(id: &str) -> Consent {
    Consent::account_access(
        ConsentId::try_from(id).unwrap(),
        ClientId::try_from("tpp-a").unwrap(),
        &AccountAccessRequest {
            permissions: vec![
                Permission::ReadAccountsDetail,
                Permission::ReadBalances,
                Permission::ReadTransactionsBasic,
                Permission::ReadTransactionsCredits,
            ],
            expiration: Some("2030-03-18T00:00:00Z".into()),
            transaction_from: Some("2030-01-01T00:00:00Z".into()),
            transaction_to: Some("2030-03-01T00:00:00Z".into()),
        },
        at(0),
    )
    .unwrap()
}

fn setup() -> (Arc<InMemoryConsentStore>, ConsentGate) {
    let store = Arc::new(InMemoryConsentStore::new());
    b(store.create(aac("aac-1"))).unwrap();
    b(apply_event(
        &*store,
        &ConsentId::try_from("aac-1").unwrap(),
        authorise(&["acc-1"]),
    ))
    .unwrap();
    b(store.create(aac("aac-waiting"))).unwrap();
    let gate = ConsentGate::new(store.clone());
    (store, gate)
}

fn secs(s: &str) -> UnixTime {
    fapi_consent::consent::parse_date_time("t", s).unwrap()
}

#[test]
fn happy_account_reads() {
    let (_, gate) = setup();
    let t = token("tpp-a", "aac-1");
    let a = b(gate.authorize(&t, &ResourceAccess::Accounts, at(1))).unwrap();
    assert_eq!(a.accounts(), ["acc-1".to_string()]);
    assert_eq!(a.detail_level(), DetailLevel::Detail);
    assert!(b(gate.authorize(&t, &ResourceAccess::Balances("acc-1".into()), at(1))).is_ok());
    let tx = b(gate.authorize(
        &t,
        &ResourceAccess::Transactions {
            account: "acc-1".into(),
            from: None,
            to: None,
        },
        at(1),
    ))
    .unwrap();
    assert_eq!(tx.detail_level(), DetailLevel::Basic);
    assert_eq!(tx.transaction_directions(), (true, false));
}

#[test]
fn revocation_takes_effect_on_the_next_call() {
    let (store, gate) = setup();
    let t = token("tpp-a", "aac-1");
    assert!(b(gate.authorize(&t, &ResourceAccess::Accounts, at(1))).is_ok());
    b(apply_event(
        &*store,
        &ConsentId::try_from("aac-1").unwrap(),
        ev(EventKind::Revoke),
    ))
    .unwrap();
    let e = b(gate.authorize(&t, &ResourceAccess::Accounts, at(2))).unwrap_err();
    assert_eq!(e, GateError::NotAuthorised(ConsentStatus::Revoked));
    assert_eq!(e.error_code(), ErrorCode::AccessDenied);
}

#[test]
fn consent_of_another_client_rejected() {
    let (_, gate) = setup();
    assert_eq!(
        b(gate.authorize(&token("tpp-b", "aac-1"), &ResourceAccess::Accounts, at(1))).unwrap_err(),
        GateError::WrongClient
    );
}

#[test]
fn unknown_or_unauthorised_consent_rejected() {
    let (_, gate) = setup();
    assert_eq!(
        b(gate.authorize(&token("tpp-a", "aac-404"), &ResourceAccess::Accounts, at(1)))
            .unwrap_err(),
        GateError::UnknownConsent
    );
    assert_eq!(
        b(gate.authorize(
            &token("tpp-a", "aac-waiting"),
            &ResourceAccess::Accounts,
            at(1)
        ))
        .unwrap_err(),
        GateError::NotAuthorised(ConsentStatus::AwaitingAuthorisation)
    );
}

#[test]
fn consent_expiry_edge() {
    let (_, gate) = setup();
    let t = token("tpp-a", "aac-1");
    let expiry = secs("2030-03-18T00:00:00Z");
    assert!(b(gate.authorize(&t, &ResourceAccess::Accounts, expiry.saturating_sub(1))).is_ok());
    assert_eq!(
        b(gate.authorize(&t, &ResourceAccess::Accounts, expiry)).unwrap_err(),
        GateError::Expired
    );
}

#[test]
fn resource_without_permission_rejected() {
    let (_, gate) = setup();
    let e = b(gate.authorize(
        &token("tpp-a", "aac-1"),
        &ResourceAccess::StandingOrders("acc-1".into()),
        at(1),
    ))
    .unwrap_err();
    assert_eq!(e, GateError::MissingPermission);
    assert_eq!(e.error_code(), ErrorCode::InsufficientScope);
}

#[test]
fn account_not_selected_rejected() {
    let (_, gate) = setup();
    assert_eq!(
        b(gate.authorize(
            &token("tpp-a", "aac-1"),
            &ResourceAccess::Balances("acc-9".into()),
            at(1)
        ))
        .unwrap_err(),
        GateError::AccountNotSelected
    );
}

#[test]
fn transaction_window_edges() {
    let (_, gate) = setup();
    let t = token("tpp-a", "aac-1");
    let from = secs("2030-01-01T00:00:00Z");
    let to = secs("2030-03-01T00:00:00Z");
    let ask = |f: UnixTime, t2: UnixTime| {
        b(gate.authorize(
            &t,
            &ResourceAccess::Transactions {
                account: "acc-1".into(),
                from: Some(f),
                to: Some(t2),
            },
            at(1),
        ))
    };
    assert!(ask(from, to).is_ok());
    assert_eq!(
        ask(from.saturating_sub(1), to).unwrap_err(),
        GateError::OutsideTransactionWindow
    );
    assert_eq!(
        ask(from, to.saturating_add(1)).unwrap_err(),
        GateError::OutsideTransactionWindow
    );
    assert_eq!(
        ask(to, from).unwrap_err(),
        GateError::OutsideTransactionWindow
    );
}

/// A request without dates gets the consented period, never more; a
/// narrower request keeps its own.
#[test]
fn transaction_window_handed_to_the_resource_server() {
    let (_, gate) = setup();
    let t = token("tpp-a", "aac-1");
    let (from, to) = (secs("2030-01-01T00:00:00Z"), secs("2030-03-01T00:00:00Z"));
    let ask = |f: Option<UnixTime>, t2: Option<UnixTime>| {
        b(gate.authorize(
            &t,
            &ResourceAccess::Transactions {
                account: "acc-1".into(),
                from: f,
                to: t2,
            },
            at(1),
        ))
        .unwrap()
    };
    assert_eq!(ask(None, None).transaction_window(), (Some(from), Some(to)));
    let narrow = (secs("2030-02-01T00:00:00Z"), secs("2030-02-10T00:00:00Z"));
    assert_eq!(
        ask(Some(narrow.0), None).transaction_window(),
        (Some(narrow.0), Some(to))
    );
    assert_eq!(
        ask(Some(narrow.0), Some(narrow.1)).transaction_window(),
        (Some(narrow.0), Some(narrow.1))
    );
}

/// A consent the caller read itself (one round trip with its other
/// per-call reads) is decided by the same rules as one the gate reads.
#[test]
fn a_consent_read_by_the_caller_is_decided_like_one_the_gate_reads() {
    let (store, gate) = setup();
    let t = token("tpp-a", "aac-1");
    let id = ConsentId::try_from("aac-1").unwrap();
    let read = b(store.get(&id)).unwrap();
    let a = gate
        .authorize_read(&t, read, &ResourceAccess::Accounts, at(1))
        .unwrap();
    assert_eq!(a.accounts(), ["acc-1".to_string()]);
    // revoked, as read
    b(apply_event(&*store, &id, ev(EventKind::Revoke))).unwrap();
    let read = b(store.get(&id)).unwrap();
    assert_eq!(
        gate.authorize_read(&t, read, &ResourceAccess::Accounts, at(2))
            .unwrap_err(),
        GateError::NotAuthorised(ConsentStatus::Revoked)
    );
}

#[test]
fn a_caller_read_of_another_consent_or_none_never_authorizes() {
    let (store, gate) = setup();
    let waiting = b(store.get(&ConsentId::try_from("aac-waiting").unwrap())).unwrap();
    // another (authorised) consent than the token's: refused as a mismatch
    b(store.create(aac("aac-2"))).unwrap();
    let other_id = ConsentId::try_from("aac-2").unwrap();
    b(apply_event(&*store, &other_id, authorise(&["acc-1"]))).unwrap();
    let other = b(store.get(&other_id)).unwrap();
    let t = token("tpp-a", "aac-waiting");
    assert_eq!(
        gate.authorize_read(&t, other, &ResourceAccess::Accounts, at(1))
            .unwrap_err(),
        GateError::ConsentMismatch
    );
    assert_eq!(
        gate.authorize_read(&t, None, &ResourceAccess::Accounts, at(1))
            .unwrap_err(),
        GateError::UnknownConsent
    );
    assert_eq!(
        gate.authorize_read(&t, waiting, &ResourceAccess::Accounts, at(1))
            .unwrap_err(),
        GateError::NotAuthorised(ConsentStatus::AwaitingAuthorisation)
    );
    // the token's consent, read for another client's token
    let mine = b(store.get(&ConsentId::try_from("aac-1").unwrap())).unwrap();
    assert_eq!(
        gate.authorize_read(
            &token("tpp-b", "aac-1"),
            mine,
            &ResourceAccess::Accounts,
            at(1)
        )
        .unwrap_err(),
        GateError::WrongClient
    );
}

fn payment_setup(id: &str) -> (Arc<InMemoryConsentStore>, ConsentGate) {
    let store = Arc::new(InMemoryConsentStore::new());
    let c = Consent::domestic_payment(
        ConsentId::try_from(id).unwrap(),
        ClientId::try_from("tpp-a").unwrap(),
        initiation(),
        at(0),
    )
    .unwrap();
    b(store.create(c)).unwrap();
    b(apply_event(
        &*store,
        &ConsentId::try_from(id).unwrap(),
        authorise(&["debtor-1"]),
    ))
    .unwrap();
    let gate = ConsentGate::new(store.clone());
    (store, gate)
}

/// One change to an initiation.
type Change = fn(&mut Initiation);

fn submission(id: &str, i: Initiation) -> PaymentSubmission {
    PaymentSubmission {
        consent_id: ConsentId::try_from(id).unwrap(),
        initiation: i,
    }
}

#[test]
fn exact_payment_consumes_the_consent_once() {
    let (store, gate) = payment_setup("pdc-1");
    let t = token("tpp-a", "pdc-1");
    let p = b(gate.consume_payment(&t, &submission("pdc-1", initiation()), at(1))).unwrap();
    assert_eq!(p.debtor_account, "debtor-1");
    assert_eq!(p.consent.status(), ConsentStatus::Consumed);
    assert_eq!(
        b(gate.consume_payment(&t, &submission("pdc-1", initiation()), at(2))).unwrap_err(),
        GateError::AlreadyConsumed
    );
    let stored = b(store.get(&ConsentId::try_from("pdc-1").unwrap()))
        .unwrap()
        .unwrap();
    assert_eq!(stored.status(), ConsentStatus::Consumed);
}

#[test]
fn payment_mismatch_moves_nothing() {
    let (store, gate) = payment_setup("pdc-1");
    let t = token("tpp-a", "pdc-1");
    let cases: [(&str, Change); 6] = [
        ("InstructedAmount.Amount", |i| {
            i.instructed_amount.amount = "10.51".into()
        }),
        ("InstructedAmount.Amount", |i| {
            i.instructed_amount.amount = "10.500".into()
        }),
        ("InstructedAmount.Currency", |i| {
            i.instructed_amount.currency = "EUR".into()
        }),
        ("CreditorAccount", |i| {
            i.creditor_account.identification = "08080021325699".into()
        }),
        ("RemittanceInformation.Reference", |i| {
            i.remittance_reference = None
        }),
        ("EndToEndIdentification", |i| {
            i.end_to_end_identification = "e2e-2".into()
        }),
    ];
    for (field, change) in cases {
        let mut i = initiation();
        change(&mut i);
        let e = b(gate.consume_payment(&t, &submission("pdc-1", i), at(1))).unwrap_err();
        assert_eq!(e, GateError::InitiationMismatch(field));
        let stored = b(store.get(&ConsentId::try_from("pdc-1").unwrap()))
            .unwrap()
            .unwrap();
        assert_eq!(
            (stored.status(), stored.version()),
            (ConsentStatus::Authorised, 2),
            "{field}"
        );
    }
    assert!(b(gate.consume_payment(&t, &submission("pdc-1", initiation()), at(1))).is_ok());
}

#[test]
fn payment_for_another_consent_rejected() {
    let (_, gate) = payment_setup("pdc-1");
    assert_eq!(
        b(gate.consume_payment(
            &token("tpp-a", "pdc-1"),
            &submission("pdc-2", initiation()),
            at(1)
        ))
        .unwrap_err(),
        GateError::ConsentMismatch
    );
    assert_eq!(
        b(gate.consume_payment(
            &token("tpp-b", "pdc-1"),
            &submission("pdc-1", initiation()),
            at(1)
        ))
        .unwrap_err(),
        GateError::WrongClient
    );
}

#[test]
fn account_access_consent_cannot_pay_and_payment_consent_cannot_read() {
    let (_, gate) = setup();
    assert_eq!(
        b(gate.consume_payment(
            &token("tpp-a", "aac-1"),
            &submission("aac-1", initiation()),
            at(1)
        ))
        .unwrap_err(),
        GateError::WrongKind
    );
    let (_, pgate) = payment_setup("pdc-1");
    assert_eq!(
        b(pgate.authorize(&token("tpp-a", "pdc-1"), &ResourceAccess::Accounts, at(1))).unwrap_err(),
        GateError::WrongKind
    );
}

/// 1,000 threads submit the same payment at once: exactly one passes.
#[test]
fn concurrent_payment_submissions_exactly_one_passes() {
    let (store, gate) = payment_setup("pdc-race");
    let t = Arc::new(token("tpp-a", "pdc-race"));
    let gate = Arc::new(gate);
    let barrier = Arc::new(Barrier::new(1000));
    let handles: Vec<_> = (0..1000)
        .map(|_| {
            let (gate, t, barrier) = (gate.clone(), t.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                b(gate.consume_payment(&t, &submission("pdc-race", initiation()), at(1)))
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(results
        .iter()
        .all(|r| r.is_ok() || matches!(r, Err(GateError::AlreadyConsumed))));
    let stored = b(store.get(&ConsentId::try_from("pdc-race").unwrap()))
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.status(), stored.version(), stored.history().len()),
        (ConsentStatus::Consumed, 3, 2)
    );
}

/// 1,000 threads revoke and re-authorise one consent: one history, no lost update.
#[test]
fn concurrent_revocations_leave_one_consistent_history() {
    let (store, _) = setup();
    let id = Arc::new(ConsentId::try_from("aac-1").unwrap());
    let barrier = Arc::new(Barrier::new(1000));
    let handles: Vec<_> = (0..1000)
        .map(|i| {
            let (store, id, barrier) = (store.clone(), id.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let e = if i % 2 == 0 {
                    ev(EventKind::Revoke)
                } else {
                    ev(EventKind::Expire)
                };
                b(apply_event(&*store, &id, e))
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(results
        .iter()
        .all(|r| r.is_ok() || matches!(r, Err(ApplyError::Transition(_)))));
    let c = b(store.get(&id)).unwrap().unwrap();
    assert_eq!((c.version(), c.history().len()), (3, 2));
    assert!(matches!(
        c.status(),
        ConsentStatus::Revoked | ConsentStatus::Expired
    ));
}

#[test]
fn in_memory_store_passes_the_conformance_kit() {
    let store = InMemoryConsentStore::new();
    let pay = Consent::domestic_payment(
        ConsentId::try_from("pdc-kit").unwrap(),
        ClientId::try_from("tpp-a").unwrap(),
        initiation(),
        at(0),
    )
    .unwrap();
    b(fapi_consent::testing::consent_store_conformance(
        &store,
        aac("aac-kit"),
        pay,
    ))
    .unwrap();
}

/// With an audit trail attached, the payment race leaves exactly one
/// effective consumption in the trail, and the chain verifies.
#[test]
fn audited_payment_race_leaves_a_truthful_trail() {
    use fapi_consent::audit::{AuditAction, AuditLog, InMemoryAuditLog};
    let (_, gate) = payment_setup("pdc-audit");
    let log = Arc::new(InMemoryAuditLog::new());
    let gate = Arc::new(gate.with_audit(log.clone()));
    let t = Arc::new(token("tpp-a", "pdc-audit"));
    let barrier = Arc::new(Barrier::new(500));
    let handles: Vec<_> = (0..500)
        .map(|_| {
            let (gate, t, barrier) = (gate.clone(), t.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                b(gate.consume_payment(&t, &submission("pdc-audit", initiation()), at(1))).is_ok()
            })
        })
        .collect();
    assert_eq!(
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|ok| *ok)
            .count(),
        1
    );
    let entries = b(log.entries(1, 100_000)).unwrap();
    let consumed = entries
        .iter()
        .filter(|e| e.event.action == AuditAction::ConsentConsumed)
        .count();
    let abandoned = entries
        .iter()
        .filter(|e| e.event.action == AuditAction::ChangeAbandoned)
        .count();
    assert_eq!(consumed, 1 + abandoned);
    assert!(consumed >= 1);
}

#[test]
fn grant_check_passes_for_the_live_authorised_consent() {
    let (_, gate) = setup();
    let c = b(gate.check_grant(
        &ConsentId::try_from("aac-1").unwrap(),
        &ClientId::try_from("tpp-a").unwrap(),
        at(1),
    ))
    .unwrap();
    assert_eq!(c.status(), ConsentStatus::Authorised);
}

#[test]
fn grant_check_refuses_after_revocation_on_the_next_call() {
    let (store, gate) = setup();
    let id = ConsentId::try_from("aac-1").unwrap();
    let client = ClientId::try_from("tpp-a").unwrap();
    assert!(b(gate.check_grant(&id, &client, at(1))).is_ok());
    b(apply_event(&*store, &id, ev(EventKind::Revoke))).unwrap();
    assert_eq!(
        b(gate.check_grant(&id, &client, at(2))).unwrap_err(),
        GateError::NotAuthorised(ConsentStatus::Revoked)
    );
}

#[test]
fn grant_check_refuses_another_client_unknown_and_waiting_consents() {
    let (_, gate) = setup();
    let a = ClientId::try_from("tpp-a").unwrap();
    assert_eq!(
        b(gate.check_grant(
            &ConsentId::try_from("aac-1").unwrap(),
            &ClientId::try_from("tpp-b").unwrap(),
            at(1)
        ))
        .unwrap_err(),
        GateError::WrongClient
    );
    assert_eq!(
        b(gate.check_grant(&ConsentId::try_from("aac-404").unwrap(), &a, at(1))).unwrap_err(),
        GateError::UnknownConsent
    );
    assert_eq!(
        b(gate.check_grant(&ConsentId::try_from("aac-waiting").unwrap(), &a, at(1))).unwrap_err(),
        GateError::NotAuthorised(ConsentStatus::AwaitingAuthorisation)
    );
}

#[test]
fn grant_check_expiry_edge() {
    let (_, gate) = setup();
    let id = ConsentId::try_from("aac-1").unwrap();
    let client = ClientId::try_from("tpp-a").unwrap();
    let expiry = secs("2030-03-18T00:00:00Z");
    assert!(b(gate.check_grant(&id, &client, expiry.saturating_sub(1))).is_ok());
    assert_eq!(
        b(gate.check_grant(&id, &client, expiry)).unwrap_err(),
        GateError::Expired
    );
}

fn pdc(id: &str) -> ConsentId {
    ConsentId::try_from(id).unwrap()
}

fn stored_status(store: &InMemoryConsentStore, id: &str) -> ConsentStatus {
    b(store.get(&pdc(id))).unwrap().unwrap().status()
}

/// Reserve, then the core books it: `Consumed`; the reservation is the
/// only way in while it is pending.
#[test]
fn a_reserved_payment_settled_as_booked_is_consumed() {
    use fapi_consent::gate::Settlement;
    let (store, gate) = payment_setup("pdc-1");
    let t = token("tpp-a", "pdc-1");
    let r = b(gate.reserve_payment(&t, &submission("pdc-1", initiation()), at(1))).unwrap();
    assert_eq!(r.consent.status(), ConsentStatus::PaymentPending);
    assert_eq!(r.debtor_account, "debtor-1");
    // the TPP sees Authorised while the core works
    assert_eq!(ConsentStatus::PaymentPending.ob_status(), "Authorised");
    // a second submission while pending: in progress, not consumed
    assert_eq!(
        b(gate.reserve_payment(&t, &submission("pdc-1", initiation()), at(1))).unwrap_err(),
        GateError::PaymentInProgress
    );
    assert_eq!(
        b(gate.consume_payment(&t, &submission("pdc-1", initiation()), at(1))).unwrap_err(),
        GateError::PaymentInProgress
    );
    let c = b(gate.settle_payment(&pdc("pdc-1"), Actor::Bank, Settlement::Booked, at(2))).unwrap();
    assert_eq!(c.status(), ConsentStatus::Consumed);
    assert_eq!(stored_status(&store, "pdc-1"), ConsentStatus::Consumed);
    // settled once: a second settlement finds nothing reserved
    assert_eq!(
        b(gate.settle_payment(&pdc("pdc-1"), Actor::Bank, Settlement::Booked, at(3))).unwrap_err(),
        GateError::NotReserved
    );
}

/// Reserve, then the core refuses: back to `Authorised`, usable again.
#[test]
fn a_reserved_payment_not_booked_is_released_and_usable_again() {
    use fapi_consent::gate::Settlement;
    let (store, gate) = payment_setup("pdc-1");
    let t = token("tpp-a", "pdc-1");
    b(gate.reserve_payment(&t, &submission("pdc-1", initiation()), at(1))).unwrap();
    let c = b(gate.settle_payment(
        &pdc("pdc-1"),
        Actor::Bank,
        Settlement::NotBooked("insufficient funds".into()),
        at(2),
    ))
    .unwrap();
    assert_eq!(c.status(), ConsentStatus::Authorised);
    let last = c.history().last().unwrap();
    assert_eq!(last.event.kind, EventKind::Release);
    assert_eq!(last.event.reason, "insufficient funds");
    assert_eq!(stored_status(&store, "pdc-1"), ConsentStatus::Authorised);
    // the twin of the refusal: the next submission reserves it again
    b(gate.reserve_payment(&t, &submission("pdc-1", initiation()), at(3))).unwrap();
    // an authorised consent that was never reserved cannot be settled
    let (_, other) = payment_setup("pdc-2");
    assert_eq!(
        b(other.settle_payment(&pdc("pdc-2"), Actor::Bank, Settlement::Booked, at(1))).unwrap_err(),
        GateError::NotReserved
    );
}

/// A reservation checks what consumption checks: nothing moves on a
/// mismatch.
#[test]
fn a_mismatched_submission_reserves_nothing() {
    let (store, gate) = payment_setup("pdc-1");
    let t = token("tpp-a", "pdc-1");
    let mut i = initiation();
    i.instructed_amount.amount = "10.51".into();
    assert_eq!(
        b(gate.reserve_payment(&t, &submission("pdc-1", i), at(1))).unwrap_err(),
        GateError::InitiationMismatch("InstructedAmount.Amount")
    );
    assert_eq!(stored_status(&store, "pdc-1"), ConsentStatus::Authorised);
}

/// 1,000 threads reserve the same consent at once: exactly one holds it,
/// the rest are told it is in progress.
#[test]
fn concurrent_reservations_exactly_one_holds_the_consent() {
    let (store, gate) = payment_setup("pdc-race");
    let t = Arc::new(token("tpp-a", "pdc-race"));
    let gate = Arc::new(gate);
    let barrier = Arc::new(Barrier::new(1000));
    let handles: Vec<_> = (0..1000)
        .map(|_| {
            let (gate, t, barrier) = (gate.clone(), t.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                b(gate.reserve_payment(&t, &submission("pdc-race", initiation()), at(1)))
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(results
        .iter()
        .all(|r| r.is_ok() || matches!(r, Err(GateError::PaymentInProgress))));
    assert_eq!(
        stored_status(&store, "pdc-race"),
        ConsentStatus::PaymentPending
    );
}
