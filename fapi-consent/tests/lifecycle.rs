//! The consent state machine and creation rules: every transition, allowed
//! and refused, each rule with its twin; arbitrary event sequences never
//! leave the machine or panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
use common::initiation;
use fapi_consent::Permission;

use fapi_consent::consent::{
    AccountAccessRequest, Actor, ConsentRequestError, ConsentTerms, Initiation,
};
use fapi_consent::permission::PermissionError;
use fapi_consent::{Consent, ConsentEvent, ConsentStatus, EventKind, TransitionError};
use fapi_core::UnixTime;
use fapi_core::{ClientId, ConsentId};
use proptest::prelude::*;

const NOW: i64 = 1_900_000_000; // 2030-03-17T17:46:40Z

fn now() -> UnixTime {
    UnixTime::from_secs(NOW).unwrap()
}

fn aac() -> Consent {
    Consent::account_access(
        ConsentId::try_from("aac-1").unwrap(),
        ClientId::try_from("tpp-a").unwrap(),
        &AccountAccessRequest {
            permissions: vec![
                Permission::ReadAccountsDetail,
                Permission::ReadBalances,
                Permission::ReadTransactionsDetail,
                Permission::ReadTransactionsCredits,
            ],
            expiration: Some("2030-06-01T00:00:00+00:00".into()),
            transaction_from: Some("2030-01-01T00:00:00Z".into()),
            transaction_to: Some("2030-03-01T00:00:00Z".into()),
        },
        now(),
    )
    .unwrap()
}

fn pdc() -> Consent {
    Consent::domestic_payment(
        ConsentId::try_from("pdc-1").unwrap(),
        ClientId::try_from("tpp-a").unwrap(),
        initiation(),
        now(),
    )
    .unwrap()
}

fn ev(kind: EventKind) -> ConsentEvent {
    ConsentEvent {
        kind,
        actor: Actor::Customer("alice".into()),
        reason: "test".into(),
        at: now(),
    }
}

fn authorise(accounts: &[&str]) -> ConsentEvent {
    ev(EventKind::Authorise {
        customer_id: "alice".into(),
        accounts: accounts.iter().map(|s| s.to_string()).collect(),
    })
}

#[test]
fn account_access_authorise_then_revoke() {
    let c = aac().apply(authorise(&["acc-1", "acc-2"])).unwrap();
    assert_eq!(
        (c.status(), c.version(), c.customer_id()),
        (ConsentStatus::Authorised, 2, Some("alice"))
    );
    let ConsentTerms::AccountAccess(t) = c.terms() else {
        panic!()
    };
    assert_eq!(t.accounts, vec!["acc-1", "acc-2"]);
    let c = c.apply(ev(EventKind::Revoke)).unwrap();
    assert_eq!((c.status(), c.version()), (ConsentStatus::Revoked, 3));
    assert_eq!(c.history().len(), 2);
    assert_eq!(c.history()[1].from, ConsentStatus::Authorised);
}

#[test]
fn account_access_reject_and_expire() {
    assert_eq!(
        aac().apply(ev(EventKind::Reject)).unwrap().status(),
        ConsentStatus::Rejected
    );
    assert_eq!(
        aac()
            .apply(authorise(&["a"]))
            .unwrap()
            .apply(ev(EventKind::Expire))
            .unwrap()
            .status(),
        ConsentStatus::Expired
    );
}

#[test]
fn account_access_refused_transitions_change_nothing() {
    let refused = |c: Consent, e: ConsentEvent| {
        let before = c.clone();
        let err = c.clone().apply(e).unwrap_err();
        assert_eq!(c, before);
        err
    };
    assert_eq!(
        refused(aac(), ev(EventKind::Revoke)),
        TransitionError {
            from: ConsentStatus::AwaitingAuthorisation,
            event: "revoke"
        }
    );
    assert_eq!(refused(aac(), ev(EventKind::Consume)).event, "consume");
    assert_eq!(refused(aac(), authorise(&[])).event, "authorise");
    let revoked = aac()
        .apply(authorise(&["a"]))
        .unwrap()
        .apply(ev(EventKind::Revoke))
        .unwrap();
    for e in [
        authorise(&["a"]),
        ev(EventKind::Revoke),
        ev(EventKind::Expire),
        ev(EventKind::Reject),
    ] {
        assert_eq!(refused(revoked.clone(), e).from, ConsentStatus::Revoked);
    }
    let rejected = aac().apply(ev(EventKind::Reject)).unwrap();
    assert_eq!(
        refused(rejected, authorise(&["a"])).from,
        ConsentStatus::Rejected
    );
    let authorised = aac().apply(authorise(&["a"])).unwrap();
    assert_eq!(
        refused(authorised, authorise(&["b"])).from,
        ConsentStatus::Authorised
    );
}

#[test]
fn payment_authorise_then_consume_once() {
    let c = pdc().apply(authorise(&["debtor-1"])).unwrap();
    let ConsentTerms::DomesticPayment(t) = c.terms() else {
        panic!()
    };
    assert_eq!(t.debtor_account.as_deref(), Some("debtor-1"));
    let c = c.apply(ev(EventKind::Consume)).unwrap();
    assert_eq!(c.status(), ConsentStatus::Consumed);
    assert_eq!(
        c.apply(ev(EventKind::Consume)).unwrap_err().from,
        ConsentStatus::Consumed
    );
}

#[test]
fn payment_refused_transitions() {
    assert!(
        pdc().apply(authorise(&["a", "b"])).is_err(),
        "one debtor account"
    );
    assert!(
        pdc().apply(ev(EventKind::Consume)).is_err(),
        "not before authorisation"
    );
    let authorised = pdc().apply(authorise(&["a"])).unwrap();
    assert!(
        authorised.clone().apply(ev(EventKind::Revoke)).is_err(),
        "payments are consumed, not revoked"
    );
    assert!(authorised.apply(ev(EventKind::Expire)).is_err());
    assert_eq!(
        pdc().apply(ev(EventKind::Reject)).unwrap().status(),
        ConsentStatus::Rejected
    );
}

fn req(perms: &[&str]) -> AccountAccessRequest {
    AccountAccessRequest {
        permissions: Permission::parse_codes(perms).unwrap(),
        ..Default::default()
    }
}

fn create(r: &AccountAccessRequest) -> Result<Consent, ConsentRequestError> {
    Consent::account_access(
        ConsentId::try_from("x").unwrap(),
        ClientId::try_from("tpp-a").unwrap(),
        r,
        now(),
    )
}

#[test]
fn account_access_request_rules() {
    assert!(create(&req(&["ReadAccountsBasic"])).is_ok());
    assert_eq!(
        create(&req(&["ReadBalances"])).unwrap_err(),
        ConsentRequestError::Permissions(PermissionError::NoAccountsPermission)
    );
    let mut r = req(&["ReadAccountsBasic"]);
    r.expiration = Some("2030-03-17T17:46:40Z".into()); // exactly now
    assert_eq!(
        create(&r).unwrap_err(),
        ConsentRequestError::ExpirationInPast
    );
    r.expiration = Some("2030-03-17T17:46:41Z".into());
    assert!(create(&r).is_ok());
    r.expiration = Some("17/03/2030".into());
    assert_eq!(
        create(&r).unwrap_err(),
        ConsentRequestError::DateTime("ExpirationDateTime")
    );
    let mut r = req(&["ReadAccountsBasic"]);
    r.transaction_from = Some("2030-02-01T00:00:00Z".into());
    r.transaction_to = Some("2030-01-01T00:00:00Z".into());
    assert_eq!(create(&r).unwrap_err(), ConsentRequestError::InvertedWindow);
}

#[test]
fn payment_initiation_rules() {
    let pay = |f: &dyn Fn(&mut Initiation)| {
        let mut i = initiation();
        f(&mut i);
        Consent::domestic_payment(
            ConsentId::try_from("p").unwrap(),
            ClientId::try_from("tpp-a").unwrap(),
            i,
            now(),
        )
    };
    assert!(pay(&|_| {}).is_ok());
    for amount in ["10", "0.01", "1234567890123.12345"] {
        assert!(
            pay(&|i| i.instructed_amount.amount = amount.into()).is_ok(),
            "{amount}"
        );
    }
    for amount in [
        "",
        "0",
        "0.00",
        "-1",
        "1e3",
        "1.",
        ".5",
        "1.123456",
        "12345678901234",
        "١٢",
        " 1",
        "1,00",
    ] {
        assert_eq!(
            pay(&|i| i.instructed_amount.amount = amount.into()).unwrap_err(),
            ConsentRequestError::Amount,
            "{amount}"
        );
    }
    for currency in ["gbp", "GB", "GBPX", "£"] {
        assert_eq!(
            pay(&|i| i.instructed_amount.currency = currency.into()).unwrap_err(),
            ConsentRequestError::Currency,
            "{currency}"
        );
    }
    assert!(matches!(
        pay(&|i| i.instruction_identification = "x".repeat(36)).unwrap_err(),
        ConsentRequestError::Text("InstructionIdentification", 35)
    ));
    assert!(matches!(
        pay(&|i| i.creditor_account.name = " ".into()).unwrap_err(),
        ConsentRequestError::Text(..)
    ));
}

fn arb_event() -> impl Strategy<Value = ConsentEvent> {
    let kind = prop_oneof![
        proptest::collection::vec("[a-z]{1,4}", 0..3).prop_map(|accounts| EventKind::Authorise {
            customer_id: "c".into(),
            accounts
        }),
        Just(EventKind::Reject),
        Just(EventKind::Revoke),
        Just(EventKind::Expire),
        Just(EventKind::Consume),
    ];
    kind.prop_map(ev)
}

proptest! {
    #[test]
    fn arbitrary_event_sequences_stay_inside_the_machine(payment in any::<bool>(), events in proptest::collection::vec(arb_event(), 0..12)) {
        let mut c = if payment { pdc() } else { aac() };
        for e in events {
            let before = c.clone();
            match c.clone().apply(e) {
                Ok(next) => {
                    prop_assert_eq!(next.version(), before.version() + 1);
                    let allowed = matches!(
                        (payment, before.status(), next.status()),
                        (_, ConsentStatus::AwaitingAuthorisation, ConsentStatus::Authorised | ConsentStatus::Rejected)
                            | (false, ConsentStatus::Authorised, ConsentStatus::Revoked | ConsentStatus::Expired)
                            | (true, ConsentStatus::Authorised, ConsentStatus::Consumed)
                    );
                    prop_assert!(allowed, "{:?} -> {:?}", before.status(), next.status());
                    c = next;
                }
                Err(_) => prop_assert_eq!(&c, &before),
            }
        }
        prop_assert_eq!(c.history().len() as u64, c.version() - 1);
    }
}
