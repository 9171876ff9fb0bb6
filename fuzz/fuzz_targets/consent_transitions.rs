//! Consent state machine on arbitrary event sequences (structure-aware):
//! never panics, the version grows by one per applied event, a refused
//! event changes nothing, and terminal states stay terminal.
#![no_main]
use arbitrary::Arbitrary;
use fapi_consent::consent::{
    AccountAccessRequest, Actor, Amount, ConsentStatus, CreditorAccount, Initiation,
};
use fapi_consent::{Consent, ConsentEvent, EventKind, Permission};
use fapi_core::{ClientId, ConsentId};
use fapi_fuzz::*;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Kind {
    Authorise { customer: u8, accounts: Vec<u8> },
    Reject,
    Revoke,
    Expire,
    Consume,
    Reserve,
    Release,
}

#[derive(Arbitrary, Debug)]
struct Input {
    payment: bool,
    permissions: Vec<u8>,
    events: Vec<(Kind, u16)>,
}

const PERMISSIONS: [&str; 6] = [
    "ReadAccountsDetail",
    "ReadBalances",
    "ReadTransactionsDetail",
    "ReadTransactionsCredits",
    "ReadAccountsBasic",
    "ReadNothing",
];

fuzz_target!(|input: Input| {
    let id = ConsentId::try_from("c-1").unwrap();
    let client = ClientId::try_from(CLIENT).unwrap();
    let consent = if input.payment {
        Consent::domestic_payment(
            id,
            client,
            Initiation {
                instruction_identification: "i".into(),
                end_to_end_identification: "e".into(),
                instructed_amount: Amount {
                    amount: "1.00".into(),
                    currency: "GBP".into(),
                },
                creditor_account: CreditorAccount {
                    scheme_name: "UK.OBIE.SortCodeAccountNumber".into(),
                    identification: "08080021325698".into(),
                    name: "ACME".into(),
                },
                remittance_reference: None,
            },
            now(),
        )
    } else {
        let codes = input
            .permissions
            .iter()
            .map(|p| PERMISSIONS[usize::from(*p) % PERMISSIONS.len()]);
        // an unknown code is refused before the set rules, as the bank does
        let Ok(permissions) = Permission::parse_codes(codes) else {
            return;
        };
        Consent::account_access(
            id,
            client,
            &AccountAccessRequest {
                permissions,
                ..Default::default()
            },
            now(),
        )
    };
    let Ok(mut consent) = consent else { return };
    for (kind, dt) in input.events.into_iter().take(64) {
        let kind = match kind {
            Kind::Authorise { customer, accounts } => EventKind::Authorise {
                customer_id: format!("cust-{customer}"),
                accounts: accounts
                    .iter()
                    .take(4)
                    .map(|a| format!("acc-{a}"))
                    .collect(),
            },
            Kind::Reject => EventKind::Reject,
            Kind::Revoke => EventKind::Revoke,
            Kind::Expire => EventKind::Expire,
            Kind::Consume => EventKind::Consume,
            Kind::Reserve => EventKind::Reserve,
            Kind::Release => EventKind::Release,
        };
        let (reserve, release) = (
            matches!(kind, EventKind::Reserve),
            matches!(kind, EventKind::Release),
        );
        let event = ConsentEvent {
            kind,
            actor: Actor::Bank,
            reason: "fuzz".into(),
            at: now().saturating_add(i64::from(dt)),
        };
        let before = consent.clone();
        let terminal = matches!(
            before.status(),
            ConsentStatus::Rejected
                | ConsentStatus::Revoked
                | ConsentStatus::Expired
                | ConsentStatus::Consumed
        );
        match consent.clone().apply(event) {
            Ok(next) => {
                assert!(!terminal, "a terminal consent changed");
                // a payment is reserved only from Authorised, and only a
                // reservation is released
                assert_eq!(
                    next.status() == ConsentStatus::PaymentPending,
                    reserve && before.status() == ConsentStatus::Authorised
                );
                if release {
                    assert_eq!(before.status(), ConsentStatus::PaymentPending);
                    assert_eq!(next.status(), ConsentStatus::Authorised);
                }
                assert_eq!(next.version(), before.version() + 1);
                consent = next;
            }
            Err(_) => assert_eq!(consent, before),
        }
    }
});
