//! Where statements run: never on the thread that awaits them (unless the
//! store was opened `Inline`), the kits pass under every dispatch, and a
//! statement whose future is dropped still runs to the end.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
use common::{at, b, TempDb};
use fapi_consent::Permission;

use std::sync::{Arc, Mutex};

use fapi_consent::consent::AccountAccessRequest;
use fapi_consent::{Consent, ConsentStore};
use fapi_core::replay::ReplayCache;
use fapi_core::{ClientId, ConsentId};
use fapi_store_sqlite::{Dispatch, Options, SqliteStore};

fn consent(id: &str) -> Consent {
    Consent::account_access(
        ConsentId::try_from(id).unwrap(),
        ClientId::try_from("tpp-a").unwrap(),
        &AccountAccessRequest {
            permissions: vec![Permission::ReadAccountsBasic],
            ..Default::default()
        },
        at(0),
    )
    .unwrap()
}

/// The threads the traced statements ran on.
static RAN_ON: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn record(_sql: &str) {
    let name = std::thread::current().name().unwrap_or("").to_owned();
    RAN_ON.lock().unwrap().push(name);
}

fn threads_of(store: &SqliteStore) -> Vec<String> {
    RAN_ON.lock().unwrap().clear();
    store.trace_statements(Some(record));
    let c = consent("aac-1");
    b(store.consents().create(c.clone())).unwrap();
    b(store.consents().get(c.id())).unwrap().unwrap();
    b(store
        .replay_cache()
        .insert_if_absent("tpp-a", "j", at(60), at(0)))
    .unwrap();
    store.trace_statements(None);
    std::mem::take(&mut *RAN_ON.lock().unwrap())
}

/// One test (the tracer is one per process): the store's threads run
/// every statement; its twin, `Inline`, runs them on the caller's thread,
/// so the tracer does tell the two apart.
#[test]
fn statements_run_on_the_store_threads_not_the_awaiting_one() {
    let tmp = TempDb::new("threads");
    let on = threads_of(&tmp.open());
    assert!(on.len() >= 3, "{on:?}");
    assert!(on.iter().all(|t| t.starts_with("fapi-sqlite-")), "{on:?}");

    let tmp = TempDb::new("inline");
    let here = std::thread::current().name().unwrap_or("").to_owned();
    let on = threads_of(&tmp.open_with(Dispatch::Inline));
    assert!(!on.is_empty());
    assert!(on.iter().all(|t| *t == here), "{on:?}");
}

fn kits(store: &SqliteStore) {
    b(fapi_core::testing::replay_cache_conformance(
        &store.replay_cache(),
    ))
    .unwrap();
    b(fapi_core::testing::authorization_code_store_conformance(
        &store.codes(),
    ))
    .unwrap();
    b(fapi_consent::testing::idempotency_store_conformance(
        &store.idempotency(),
    ))
    .unwrap();
    b(fapi_consent::testing::audit_log_conformance(
        &store.audit_log(),
    ))
    .unwrap();
    b(fapi_consent::testing::payment_store_conformance(
        &store.payments(),
    ))
    .unwrap();
    b(fapi_mtls_binding::testing::tpp_registry_conformance(
        &store.directory(),
        at(0),
    ))
    .unwrap();
}

#[test]
fn the_kits_pass_when_statements_run_inline() {
    let tmp = TempDb::new("kits-inline");
    kits(&tmp.open_with(Dispatch::Inline));
}

#[test]
fn the_kits_pass_on_a_blocking_pool_and_without_readers() {
    let spawn: fapi_store_sqlite::Spawner = Arc::new(|job| {
        std::thread::spawn(job);
    });
    let tmp = TempDb::new("kits-spawn");
    kits(&tmp.open_with(Dispatch::Spawn(spawn)));
    let tmp = TempDb::new("kits-no-readers");
    kits(&SqliteStore::open_with(&tmp.0, &Options::default().with_readers(0)).unwrap());
}

/// A client that goes away drops the future; the statement it started
/// still commits (one store thread: the read after it is queued behind).
#[test]
fn a_dropped_future_does_not_cancel_its_statement() {
    let tmp = TempDb::new("dropped");
    let store = SqliteStore::open_with(
        &tmp.0,
        &Options::default().with_dispatch(Dispatch::Threads(1)),
    )
    .unwrap();
    let c = consent("aac-dropped");
    drop(store.consents().create(c.clone()));
    assert_eq!(b(store.consents().get(c.id())).unwrap(), Some(c));
}

/// A closed store is one file again: the WAL is checkpointed and removed
/// (the writer closes last), so the file can be copied or moved alone.
#[test]
fn closing_the_store_leaves_one_file() {
    let tmp = TempDb::new("close");
    let store = tmp.open();
    b(store.consents().create(consent("aac-close"))).unwrap();
    b(store
        .consents()
        .get(&ConsentId::try_from("aac-close").unwrap()))
    .unwrap();
    let wal = format!("{}-wal", tmp.0.display());
    assert!(std::path::Path::new(&wal).exists());
    drop(store);
    assert!(!std::path::Path::new(&wal).exists());
    let reopened = tmp.open();
    assert!(b(reopened
        .consents()
        .get(&ConsentId::try_from("aac-close").unwrap()))
    .unwrap()
    .is_some());
}
