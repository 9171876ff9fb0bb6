//! The fapi-consent stores on PostgreSQL: every kit, and what two bank
//! instances (two pools on one schema) racing must still guarantee.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
use common::{at, TestDb};

use fapi_consent::audit::{
    verify_chain, AuditAction, AuditEvent, AuditLog, ChainError, EntryProblem,
};
use fapi_consent::consent::Actor;
use fapi_consent::store::apply_event_audited;
use fapi_consent::{Consent, ConsentEvent, ConsentStatus, ConsentStore, EventKind};
use fapi_core::{ClientId, ConsentId};

fn aac(id: &str) -> Consent {
    fapi_consent::testing::sample_account_access(id, at(0)).unwrap()
}

fn pdc(id: &str) -> Consent {
    fapi_consent::testing::sample_domestic_payment(id, at(0)).unwrap()
}

fn event(kind: EventKind, secs: i64) -> ConsentEvent {
    ConsentEvent {
        kind,
        actor: Actor::Customer("alice".into()),
        reason: "test".into(),
        at: at(secs),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consent_store_passes_the_kit() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    fapi_consent::testing::consent_store_conformance(
        &db.store().await.consents(),
        aac("aac-kit"),
        pdc("pdc-kit"),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audit_log_passes_the_kit() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    fapi_consent::testing::audit_log_conformance(&db.store().await.audit_log())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotency_store_passes_the_kit() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    fapi_consent::testing::idempotency_store_conformance(&db.store().await.idempotency())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn payment_store_passes_the_kit() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    fapi_consent::testing::payment_store_conformance(&db.store().await.payments())
        .await
        .unwrap();
}

/// Two instances append concurrently (200 entries through two pools): one
/// chain, every `seq` once, verified end to end.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_appending_form_one_chain() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    let (a, b) = (db.store().await.audit_log(), db.store().await.audit_log());
    let mut tasks = Vec::new();
    for i in 0..200 {
        let log = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            log.append(AuditEvent::new(AuditAction::ConsentAuthorised, at(i)))
                .await
                .unwrap()
                .seq
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=200).collect::<Vec<u64>>());
    let keys = fapi_core::jwk::KeySet::default();
    let entries = b.entries(1, 1000).await.unwrap();
    assert_eq!(verify_chain(&entries, &[], &keys, &[]).unwrap(), 200);
}

/// An append used to rewrite the one `fapi_audit_head` row. Each rewrite
/// is a new row version: under concurrent appends the versions outran
/// pruning (2,000,000 appends left 1,361 pages where autovacuum did not
/// run), and the lock statement scans every page, so each append held the
/// trail's lock ~4 ms longer after a million flows. The row is only a lock
/// now: appends from both instances lock it and never rewrite it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appends_lock_the_audit_head_without_rewriting_it() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    let store = db.store().await;
    let (a, b) = (store.audit_log(), db.store().await.audit_log());
    let client = store.pool().get().await.unwrap();
    let version = "SELECT ctid::text || ' ' || xmin::text FROM fapi_audit_head";
    let before: String = client.query_one(version, &[]).await.unwrap().get(0);
    let mut tasks = Vec::new();
    for i in 0..100 {
        let log = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            log.append(AuditEvent::new(AuditAction::ConsentAuthorised, at(i)))
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let after: String = client.query_one(version, &[]).await.unwrap().get(0);
    assert_eq!(before, after, "the head row was rewritten");
    // the twin: the appends happened, as one chain
    assert_eq!(a.head().await.unwrap().unwrap().seq, 100);
    let keys = fapi_core::jwk::KeySet::default();
    let entries = b.entries(1, 1000).await.unwrap();
    assert_eq!(verify_chain(&entries, &[], &keys, &[]).unwrap(), 100);
}

/// Someone with database access edits one row: the chain read back through
/// the store names that entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_edited_audit_row_is_detected() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    let store = db.store().await;
    let log = store.audit_log();
    for i in 0..5 {
        let mut e = AuditEvent::new(AuditAction::ConsentAuthorised, at(i));
        e.client_id = Some(ClientId::try_from("tpp-a").unwrap());
        log.append(e).await.unwrap();
    }
    let keys = fapi_core::jwk::KeySet::default();
    assert_eq!(
        verify_chain(&log.entries(1, 100).await.unwrap(), &[], &keys, &[]).unwrap(),
        5
    );
    let client = store.pool().get().await.unwrap();
    let changed = client
        .execute(
            "UPDATE fapi_audit SET event = replace(event, 'tpp-a', 'tpp-b') WHERE seq = 3",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(changed, 1);
    assert_eq!(
        verify_chain(&log.entries(1, 100).await.unwrap(), &[], &keys, &[]).unwrap_err(),
        ChainError::Entry {
            seq: 3,
            problem: EntryProblem::Hash
        }
    );
}

/// A consent created on one instance, authorised on the other while a
/// stale change races: the lost swap writes no audit entry, and each
/// instance reads what the other wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_consent_change_and_its_audit_entry_commit_together_across_instances() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    let (a, b) = (db.store().await, db.store().await);
    let id = ConsentId::try_from("aac-1").unwrap();
    a.consents()
        .create_audited(
            &a.audit_log(),
            aac("aac-1"),
            AuditEvent::new(AuditAction::ConsentCreated, at(0)),
        )
        .await
        .unwrap();
    let authorise = EventKind::Authorise {
        customer_id: "alice".into(),
        accounts: vec!["acc-1".into()],
    };
    apply_event_audited(
        &b.consents(),
        &b.audit_log(),
        &id,
        event(authorise, 1),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        a.consents().get(&id).await.unwrap().unwrap().status(),
        ConsentStatus::Authorised
    );
    // a stale swap from version 1 loses and leaves no entry
    let stale = aac("aac-1").apply(event(EventKind::Reject, 2)).unwrap();
    assert!(a
        .consents()
        .compare_and_swap_audited(
            &a.audit_log(),
            1,
            stale,
            AuditEvent::new(AuditAction::ConsentRejected, at(2))
        )
        .await
        .is_err());
    let actions: Vec<AuditAction> = a
        .audit_log()
        .entries(1, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event.action)
        .collect();
    assert_eq!(
        actions,
        vec![AuditAction::ConsentCreated, AuditAction::ConsentAuthorised]
    );
}

/// A revocation on one instance is what the other reads on its next call.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revoked_on_one_instance_is_revoked_on_the_other() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    let (a, b) = (db.store().await.consents(), db.store().await.consents());
    let id = ConsentId::try_from("aac-1").unwrap();
    a.create(aac("aac-1")).await.unwrap();
    let authorise = EventKind::Authorise {
        customer_id: "alice".into(),
        accounts: vec!["acc-1".into()],
    };
    fapi_consent::store::apply_event(&a, &id, event(authorise, 1))
        .await
        .unwrap();
    assert_eq!(
        b.get(&id).await.unwrap().unwrap().status(),
        ConsentStatus::Authorised
    );
    fapi_consent::store::apply_event(&a, &id, event(EventKind::Revoke, 2))
        .await
        .unwrap();
    assert_eq!(
        b.get(&id).await.unwrap().unwrap().status(),
        ConsentStatus::Revoked
    );
}
