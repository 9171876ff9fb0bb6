//! The audit trail: chain verification finds every changed, removed,
//! inserted or reordered entry and names the first bad one; checkpoints
//! catch re-hashed forgeries and truncation; state changes are logged
//! before they take effect, also under contention; payment-authorisation
//! records verify with the bank's public key alone.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
use common::initiation;
use fapi_consent::Permission;

use std::sync::{Arc, Barrier, OnceLock};

use fapi_consent::audit::{
    parse_chain, serialize_chain, sign_checkpoint, verify_chain, AuditAction, AuditEntry,
    AuditEvent, AuditLog, ChainError, CheckpointProblem, EntryProblem, InMemoryAuditLog,
};
use fapi_consent::consent::{AccountAccessRequest, Actor};
use fapi_consent::record::{PaymentAuthorisationRecord, RecordError};
use fapi_consent::store::apply_event_audited;
use fapi_consent::{Consent, ConsentEvent, ConsentStore, EventKind, InMemoryConsentStore};
use fapi_core::crypto::{default_provider, Algorithm, SigningKey};
use fapi_core::jose::{sign_compact, JoseError};
use fapi_core::jwk::{Jwk, JwkSet, KeySet};
use fapi_core::Profile;
use fapi_core::UnixTime;
use fapi_core::{ClientId, ConsentId};
use proptest::prelude::*;

fn at(o: i64) -> UnixTime {
    UnixTime::from_secs(1_900_000_000 + o).unwrap()
}
fn b<F: std::future::Future>(f: F) -> F::Output {
    futures_executor::block_on(f)
}

struct Bank {
    key: Arc<dyn SigningKey>,
    keys: KeySet,
    attacker: Arc<dyn SigningKey>,
}

fn bank() -> &'static Bank {
    static B: OnceLock<Bank> = OnceLock::new();
    B.get_or_init(|| {
        let p = default_provider();
        let key = p.generate_signing_key(Algorithm::Ps256).unwrap();
        let jwks = JwkSet::new(vec![Jwk::from_public_key(
            key.public_key().clone(),
            Some("bank".into()),
        )]);
        let keys = KeySet::from_jwks(&jwks, &*p, &Profile::Fapi2Security.key_policy()).unwrap();
        Bank {
            key,
            keys,
            attacker: p.generate_signing_key(Algorithm::Ps256).unwrap(),
        }
    })
}

const ALGS: &[Algorithm] = &[Algorithm::Ps256, Algorithm::Es256, Algorithm::EdDsa];

fn chain(n: usize) -> (Vec<AuditEntry>, String) {
    let log = InMemoryAuditLog::new();
    for i in 0..n {
        let mut e = AuditEvent::new(AuditAction::ResourceAccessed, at(i as i64));
        e.client_id = Some(fapi_core::ClientId::try_from("tpp-a").unwrap());
        e.consent_id = Some(fapi_core::ConsentId::try_from(format!("aac-{i}")).unwrap());
        b(log.append(e)).unwrap();
    }
    let entries = b(log.entries(1, 1000)).unwrap();
    let cp = futures_executor::block_on(sign_checkpoint(
        &*bank().key,
        "bank",
        entries.last().unwrap(),
        at(100),
    ))
    .unwrap();
    (entries, cp)
}

fn verify(entries: &[AuditEntry], cp: &str) -> Result<u64, ChainError> {
    verify_chain(entries, &[cp.to_owned()], &bank().keys, ALGS)
}

#[test]
fn happy_chain_and_checkpoint_verify() {
    let (entries, cp) = chain(5);
    assert_eq!(verify(&entries, &cp).unwrap(), 5);
    assert_eq!(entries[0].prev_hash, fapi_consent::audit::genesis_hash());
    assert_eq!(entries[1].prev_hash, entries[0].hash);
}

#[test]
fn changed_entry_detected_and_named() {
    let (mut entries, cp) = chain(5);
    entries[2].event.client_id = Some(fapi_core::ClientId::try_from("tpp-b").unwrap());
    assert_eq!(
        verify(&entries, &cp).unwrap_err(),
        ChainError::Entry {
            seq: 3,
            problem: EntryProblem::Hash
        }
    );
}

#[test]
fn removed_entry_detected() {
    let (mut entries, cp) = chain(5);
    entries.remove(1);
    assert_eq!(
        verify(&entries, &cp).unwrap_err(),
        ChainError::Entry {
            seq: 2,
            problem: EntryProblem::Sequence { expected: 2 }
        }
    );
}

#[test]
fn inserted_entry_detected() {
    let (mut entries, cp) = chain(5);
    let copy = entries[1].clone();
    entries.insert(2, copy);
    assert_eq!(
        verify(&entries, &cp).unwrap_err(),
        ChainError::Entry {
            seq: 3,
            problem: EntryProblem::Sequence { expected: 3 }
        }
    );
}

#[test]
fn reordered_entries_detected() {
    let (mut entries, cp) = chain(5);
    entries.swap(1, 2);
    assert_eq!(
        verify(&entries, &cp).unwrap_err(),
        ChainError::Entry {
            seq: 2,
            problem: EntryProblem::Sequence { expected: 2 }
        }
    );
}

#[test]
fn rehashed_forgery_caught_by_the_signed_checkpoint() {
    let (entries, cp) = chain(5);
    // rewrite entry 3 and recompute every hash after it, as an insider with
    // database access could: the chain alone verifies again...
    let log = InMemoryAuditLog::new();
    for (i, e) in entries.iter().enumerate() {
        let mut ev = e.event.clone();
        if i == 2 {
            ev.client_id = Some(fapi_core::ClientId::try_from("tpp-b").unwrap());
        }
        b(log.append(ev)).unwrap();
    }
    let forged = b(log.entries(1, 100)).unwrap();
    assert_eq!(verify_chain(&forged, &[], &bank().keys, ALGS).unwrap(), 5);
    // ...but not against the bank's signed checkpoint
    assert_eq!(
        verify(&forged, &cp).unwrap_err(),
        ChainError::Checkpoint {
            index: 0,
            problem: CheckpointProblem::HeadMismatch
        }
    );
}

#[test]
fn truncated_chain_caught_by_the_checkpoint() {
    let (mut entries, cp) = chain(5);
    entries.truncate(3);
    assert_eq!(
        verify(&entries, &cp).unwrap_err(),
        ChainError::Checkpoint {
            index: 0,
            problem: CheckpointProblem::BeyondChain
        }
    );
}

#[test]
fn checkpoint_not_signed_by_the_bank_rejected() {
    let (entries, _) = chain(3);
    let forged = futures_executor::block_on(sign_checkpoint(
        &*bank().attacker,
        "bank",
        entries.last().unwrap(),
        at(1),
    ))
    .unwrap();
    assert_eq!(
        verify(&entries, &forged).unwrap_err(),
        ChainError::Checkpoint {
            index: 0,
            problem: CheckpointProblem::Signature(JoseError::BadSignature)
        }
    );
}

#[test]
fn serialized_chain_round_trips() {
    let (entries, cp) = chain(4);
    let text = serialize_chain(&entries);
    assert_eq!(parse_chain(&text).unwrap(), entries);
    assert!(verify(&parse_chain(&text).unwrap(), &cp).is_ok());
    assert_eq!(
        parse_chain("{\"seq\":1}\n").unwrap_err(),
        ChainError::Unparseable { line: 1 }
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any single-byte change to a serialized chain fails verification.
    #[test]
    fn any_single_byte_change_fails(index in any::<prop::sample::Index>(), replacement in any::<u8>()) {
        static CHAIN: OnceLock<(String, String)> = OnceLock::new();
        let (text, cp) = CHAIN.get_or_init(|| {
            let (entries, cp) = chain(4);
            (serialize_chain(&entries), cp)
        });
        let mut bytes = text.clone().into_bytes();
        let i = index.index(bytes.len());
        prop_assume!(bytes[i] != replacement);
        bytes[i] = replacement;
        let outcome = String::from_utf8(bytes)
            .map_err(|_| ())
            .and_then(|t| parse_chain(&t).map_err(|_| ()))
            .and_then(|e| verify(&e, cp).map_err(|_| ()));
        prop_assert!(outcome.is_err(), "byte {} changed to {} still verifies", i, replacement);
    }
}

fn ev(kind: EventKind) -> ConsentEvent {
    ConsentEvent {
        kind,
        actor: Actor::Customer("alice".into()),
        reason: "dashboard".into(),
        at: at(0),
    }
}

#[test]
fn state_change_is_logged_before_it_takes_effect() {
    let store = InMemoryConsentStore::new();
    let log = InMemoryAuditLog::new();
    let id = ConsentId::try_from("aac-1").unwrap();
    let c = Consent::account_access(
        id.clone(),
        ClientId::try_from("tpp-a").unwrap(),
        &AccountAccessRequest {
            permissions: vec![Permission::ReadAccountsBasic],
            ..Default::default()
        },
        at(0),
    )
    .unwrap();
    b(store.create(c)).unwrap();
    b(apply_event_audited(
        &store,
        &log,
        &id,
        ev(EventKind::Authorise {
            customer_id: "alice".into(),
            accounts: vec!["a".into()],
        }),
        Some("i-1"),
    ))
    .unwrap();
    let entries = b(log.entries(1, 10)).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].event.action, AuditAction::ConsentAuthorised);
    assert_eq!(entries[0].event.interaction_id.as_deref(), Some("i-1"));
    assert_eq!(
        entries[0].event.status_after,
        Some(fapi_consent::ConsentStatus::Authorised)
    );
    // a refused transition writes nothing
    assert!(b(apply_event_audited(
        &store,
        &log,
        &id,
        ev(EventKind::Consume),
        None
    ))
    .is_err());
    assert_eq!(b(log.entries(1, 10)).unwrap().len(), 1);
}

/// 200 threads revoke one consent through the audited path: the trail has
/// exactly one revocation that took effect, every other logged attempt is
/// followed by its abandonment, and the chain verifies.
#[test]
fn audited_changes_under_contention_stay_truthful() {
    let store = Arc::new(InMemoryConsentStore::new());
    let log = Arc::new(InMemoryAuditLog::new());
    let id = ConsentId::try_from("aac-1").unwrap();
    let c = Consent::account_access(
        id.clone(),
        ClientId::try_from("tpp-a").unwrap(),
        &AccountAccessRequest {
            permissions: vec![Permission::ReadAccountsBasic],
            ..Default::default()
        },
        at(0),
    )
    .unwrap();
    b(store.create(c)).unwrap();
    b(apply_event_audited(
        &*store,
        &*log,
        &id,
        ev(EventKind::Authorise {
            customer_id: "alice".into(),
            accounts: vec!["a".into()],
        }),
        None,
    ))
    .unwrap();
    let barrier = Arc::new(Barrier::new(200));
    let handles: Vec<_> = (0..200)
        .map(|_| {
            let (store, log, id, barrier) =
                (store.clone(), log.clone(), id.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                b(apply_event_audited(
                    &*store,
                    &*log,
                    &id,
                    ev(EventKind::Revoke),
                    None,
                ))
                .is_ok()
            })
        })
        .collect();
    let wins = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|w| *w)
        .count();
    assert_eq!(wins, 1);
    let entries = b(log.entries(1, 10_000)).unwrap();
    let revoked = entries
        .iter()
        .filter(|e| e.event.action == AuditAction::ConsentRevoked)
        .count();
    let abandoned = entries
        .iter()
        .filter(|e| e.event.action == AuditAction::ChangeAbandoned)
        .count();
    assert_eq!(revoked, 1 + abandoned);
    assert_eq!(
        verify_chain(&entries, &[], &bank().keys, ALGS).unwrap(),
        entries.len() as u64
    );
}

fn record() -> PaymentAuthorisationRecord {
    PaymentAuthorisationRecord::new(
        "pdc-1",
        "alice",
        "tpp-a",
        initiation(),
        "debtor-1",
        "urn:openbanking:psd2:sca",
        at(0),
        Some(&[7u8; 32]),
    )
}

#[test]
fn payment_record_verifies_with_the_bank_public_key_alone() {
    let signed = futures_executor::block_on(record().sign(&*bank().key, "bank")).unwrap();
    // years later: only the bank's published key and the record
    let jwks = JwkSet::from_json(
        JwkSet::new(vec![Jwk::from_public_key(
            bank().key.public_key().clone(),
            Some("bank".into()),
        )])
        .to_json()
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    let keys = KeySet::from_jwks(
        &jwks,
        &*default_provider(),
        &Profile::Fapi2Security.key_policy(),
    )
    .unwrap();
    assert_eq!(
        PaymentAuthorisationRecord::verify(&signed, &keys, ALGS).unwrap(),
        record()
    );
}

#[test]
fn tampered_or_foreign_payment_record_rejected() {
    let signed = futures_executor::block_on(record().sign(&*bank().key, "bank")).unwrap();
    let parts: Vec<&str> = signed.split('.').collect();
    let mut altered = record();
    altered.initiation.instructed_amount.amount = "1050.00".into();
    let altered_payload =
        fapi_core::encoding::b64url_encode(serde_json::to_string(&altered).unwrap().as_bytes());
    let forged = format!("{}.{}.{}", parts[0], altered_payload, parts[2]);
    assert_eq!(
        PaymentAuthorisationRecord::verify(&forged, &bank().keys, ALGS).unwrap_err(),
        RecordError::Signature(JoseError::BadSignature)
    );
    let by_attacker = futures_executor::block_on(record().sign(&*bank().attacker, "bank")).unwrap();
    assert!(PaymentAuthorisationRecord::verify(&by_attacker, &bank().keys, ALGS).is_err());
    // a token of another kind, signed by the bank, is not a record
    let claims = serde_json::to_value(record()).unwrap();
    let other = sign_compact(
        &*bank().key,
        Some("bank"),
        Some("at+jwt"),
        claims.as_object().unwrap(),
    )
    .unwrap();
    assert!(matches!(
        PaymentAuthorisationRecord::verify(&other, &bank().keys, ALGS).unwrap_err(),
        RecordError::Signature(JoseError::WrongType { .. })
    ));
}

#[test]
fn consent_creation_is_audited_first_and_a_duplicate_is_marked_abandoned() {
    use fapi_consent::store::create_audited;
    let store = InMemoryConsentStore::new();
    let log = InMemoryAuditLog::new();
    let c = Consent::account_access(
        ConsentId::try_from("aac-9").unwrap(),
        ClientId::try_from("tpp-a").unwrap(),
        &AccountAccessRequest {
            permissions: vec![Permission::ReadAccountsBasic],
            ..Default::default()
        },
        at(0),
    )
    .unwrap();
    b(create_audited(
        &store,
        &log,
        c.clone(),
        Some("i-9"),
        Some("h".into()),
    ))
    .unwrap();
    assert!(b(create_audited(&store, &log, c, None, None)).is_err());
    let actions: Vec<AuditAction> = b(log.entries(1, 10))
        .unwrap()
        .into_iter()
        .map(|e| e.event.action)
        .collect();
    assert_eq!(
        actions,
        vec![
            AuditAction::ConsentCreated,
            AuditAction::ConsentCreated,
            AuditAction::ChangeAbandoned
        ]
    );
}

#[test]
fn in_memory_log_passes_the_conformance_kit() {
    b(fapi_consent::testing::audit_log_conformance(
        &InMemoryAuditLog::new(),
    ))
    .unwrap();
}

/// The event's typed ids and time are written exactly as the strings and
/// number they replaced (so chains written before verify unchanged), and
/// a stored event whose id is not a valid id does not read back as one.
#[test]
fn typed_event_fields_keep_the_stored_form() {
    let mut e = AuditEvent::new(AuditAction::ConsentCreated, at(0));
    e.client_id = Some(ClientId::try_from("tpp-a").unwrap());
    e.consent_id = Some(ConsentId::try_from("aac-1").unwrap());
    let v = serde_json::to_value(&e).unwrap();
    assert_eq!(v["at"], serde_json::json!(at(0).as_secs()));
    assert_eq!(v["client_id"], "tpp-a");
    assert_eq!(v["consent_id"], "aac-1");
    let back: AuditEvent = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(back, e);
    let mut bad = v;
    bad["client_id"] = serde_json::json!("");
    assert!(serde_json::from_value::<AuditEvent>(bad).is_err());
}
