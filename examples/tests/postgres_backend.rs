//! The bank's own tables and the mock core's ledger on PostgreSQL, with
//! two bank instances (two pools on one schema) racing where it matters.
#![allow(clippy::unwrap_used, clippy::panic)]

use fapi_core::UnixTime;
use fapi_examples::bank::tables::conformance::{
    checkpoint_store_conformance, login_attempt_store_conformance, signing_key_store_conformance,
};
use fapi_examples::core_banking::{CoreBanking, CoreError};
use fapi_examples::postgres::{PostgresDb, PostgresLedger, BANK_MIGRATIONS};
use fapi_store_postgres::testing::TestDb;

fn at(o: i64) -> UnixTime {
    UnixTime::from_secs(1_900_000_000 + o).unwrap()
}

/// One bank instance: the family's and the bank's migrations on the test
/// schema, its own pool.
async fn instance(db: &TestDb) -> PostgresDb {
    let store = db.store().await;
    store
        .migrate_component("bank", BANK_MIGRATIONS)
        .await
        .unwrap();
    PostgresDb::from_store(store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_postgres_backend_passes_the_bank_store_kits() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    let bank = instance(&db).await;
    login_attempt_store_conformance(&bank).await.unwrap();
    signing_key_store_conformance(&bank).await.unwrap();
    checkpoint_store_conformance(&bank).await.unwrap();
}

/// One payment reference submitted through two instances at once (200
/// racing tasks): one booking, one debit, every caller told that booking.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_payment_through_two_instances_is_booked_once() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    let (a, b) = (
        PostgresLedger::new(instance(&db).await),
        PostgresLedger::new(instance(&db).await),
    );
    assert!(a
        .open("acc-1", "alice", "Current", 10_000, at(0))
        .await
        .unwrap());
    // the other instance's start-up finds it open
    assert!(!b
        .open("acc-1", "alice", "Current", 10_000, at(0))
        .await
        .unwrap());
    let mut tasks = Vec::new();
    for i in 0..200 {
        let ledger = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            ledger
                .pay("pay-1", "acc-1", 1_234, "ACME", "INV-1", at(1))
                .await
                .unwrap()
        }));
    }
    let mut bookings = Vec::new();
    for t in tasks {
        bookings.push(t.await.unwrap());
    }
    assert!(bookings.iter().all(|b| b == &bookings[0]));
    assert_eq!(a.balance("acc-1").await.unwrap(), 10_000 - 1_234);
    assert_eq!(b.transactions("acc-1", None, None).await.unwrap().len(), 2);
    // the twin: another reference books again; an overdraft books nothing
    b.pay("pay-2", "acc-1", 100, "ACME", "INV-2", at(2))
        .await
        .unwrap();
    assert_eq!(
        a.pay("pay-3", "acc-1", 1_000_000, "ACME", "INV-3", at(3))
            .await
            .unwrap_err(),
        CoreError::InsufficientFunds
    );
    assert_eq!(b.balance("acc-1").await.unwrap(), 10_000 - 1_234 - 100);
    assert!(a.booking("pay-3").await.unwrap().is_none());
}

/// Many payments racing on one account through two instances never
/// overdraw it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_payments_through_two_instances_never_overdraw() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    let (a, b) = (
        PostgresLedger::new(instance(&db).await),
        PostgresLedger::new(instance(&db).await),
    );
    a.open("acc-1", "alice", "Current", 1_000, at(0))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..100 {
        let ledger = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            ledger
                .pay(&format!("p-{i}"), "acc-1", 30, "ACME", "X", at(1))
                .await
        }));
    }
    let mut booked = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => booked += 1,
            Err(CoreError::InsufficientFunds) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(booked, 1_000 / 30);
    assert_eq!(a.balance("acc-1").await.unwrap(), 1_000 - 30 * (1_000 / 30));
}

/// `bank prefill` on PostgreSQL (the growth benchmark's store): several
/// flows written at once, each flow's rows once, one chain that verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prefill_writes_each_flow_once_with_concurrent_workers() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    let stores = fapi_examples::stores::Stores::of_postgres(instance(&db).await);
    let now = at(0);
    let client = fapi_core::ClientId::try_from("tpp-a").unwrap();
    fapi_examples::bank::prefill::prefill(&stores, &client, 40, now, 8, &|_| {})
        .await
        .unwrap();
    let pg = instance(&db).await.store().pool().get().await.unwrap();
    for (table, rows) in [
        ("fapi_consents", 40),
        ("fapi_audit", 80),
        ("fapi_codes", 40),
        ("fapi_jti", 120),
        ("fapi_pushed_requests", 40),
        ("fapi_refresh_tokens", 40),
    ] {
        let n: i64 = pg
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, rows, "{table}");
    }
    let entries = fapi_examples::bank::audit::all_entries(&*stores.audit)
        .await
        .unwrap();
    let verified =
        fapi_consent::audit::verify_chain(&entries, &[], &fapi_core::jwk::KeySet::default(), &[])
            .unwrap();
    assert_eq!(verified, 80);
    // every consent was authorised: the second audit entry of each flow
    let authorised = entries
        .iter()
        .filter(|e| e.event.status_after == Some(fapi_consent::ConsentStatus::Authorised))
        .count();
    assert_eq!(authorised, 40);
}
