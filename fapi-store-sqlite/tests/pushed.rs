//! Pushed requests in SQLite: the fapi-par conformance kit, a restart in
//! the middle of an authorization, and what is refused when a stored row
//! or the client's registration changes (re-validation on read).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
use common::{registration, Registrations, TempDb, PROFILE};

use std::sync::Arc;

use fapi_core::crypto::{default_provider, Algorithm, SigningKey};
use fapi_core::UnixTime;
use fapi_core::{CertificateThumbprint, ClientId, Issuer};
use fapi_mtls_binding::registry::TppRegistry;
use fapi_par::{LookupError, ParConfig, PushedRequest, PushedRequestStore};
use fapi_store_sqlite::{SqlitePushedRequestStore, SqliteStore};

const NOW: i64 = 1_900_000_000;
const ISSUER: &str = "https://bank.example";

fn b<F: std::future::Future>(f: F) -> F::Output {
    common::b(f)
}

fn at(o: i64) -> UnixTime {
    UnixTime::from_secs(NOW + o).unwrap()
}

fn config() -> ParConfig {
    ParConfig::new(PROFILE, Issuer::try_from(ISSUER).unwrap())
}

/// Registers tpp-a and tpp-b in `db` and pushes one request of tpp-a the
/// real way; returns the stored request and tpp-a's key.
fn setup(db: &SqliteStore) -> (PushedRequest, Arc<dyn SigningKey>) {
    let provider = default_provider();
    let key = provider.generate_signing_key(Algorithm::Es256).unwrap();
    for (i, id) in ["tpp-a", "tpp-b"].iter().enumerate() {
        b(db.directory().register_client(
            &ClientId::try_from(*id).unwrap(),
            registration(id, &*key),
            &CertificateThumbprint::from_bytes([u8::try_from(i).unwrap(); 32]),
            at(0),
        ))
        .unwrap();
    }
    let metadata = b(fapi_par::CurrentRegistration::current(
        &Registrations(db.directory()),
        &ClientId::try_from("tpp-a").unwrap(),
    ))
    .unwrap()
    .unwrap();
    let sample = b(fapi_par::testing::pushed_sample(
        &config(),
        &metadata,
        &*key,
        "k",
        "https://tpp-a.example/cb",
        at(0),
    ))
    .unwrap();
    (sample, key)
}

fn store(db: &SqliteStore) -> SqlitePushedRequestStore {
    db.pushed_requests(config(), Arc::new(Registrations(db.directory())))
}

#[test]
fn sqlite_pushed_request_store_passes_the_kit() {
    let file = TempDb::new("par-kit");
    let db = file.open();
    let (sample, _) = setup(&db);
    b(fapi_par::testing::pushed_request_store_conformance(
        &store(&db),
        sample,
        &ClientId::try_from("tpp-b").unwrap(),
    ))
    .unwrap();
}

#[test]
fn a_pushed_request_survives_a_restart_and_is_single_use_across_handles() {
    let file = TempDb::new("par-restart");
    let db = file.open();
    let (sample, _) = setup(&db);
    let uri = sample.request_uri.clone();
    let a = ClientId::try_from("tpp-a").unwrap();
    b(store(&db).put(sample.clone(), at(1))).unwrap();
    drop(db);
    // a new process opens the file
    let reopened = file.open();
    let got = b(store(&reopened).peek(&uri, &a, at(2))).unwrap();
    assert_eq!(got.request.redirect_uri(), sample.request.redirect_uri());
    assert_eq!(
        got.request.code_challenge(),
        sample.request.code_challenge()
    );
    let other_handle = file.open();
    b(store(&reopened).take(&uri, &a, at(3))).unwrap();
    assert_eq!(
        b(store(&other_handle).take(&uri, &a, at(3))).unwrap_err(),
        LookupError::AlreadyUsed
    );
}

#[test]
fn a_changed_row_is_refused_not_trusted() {
    let file = TempDb::new("par-tamper");
    let db = file.open();
    let (sample, _) = setup(&db);
    let uri = sample.request_uri.clone();
    let a = ClientId::try_from("tpp-a").unwrap();
    b(store(&db).put(sample, at(1))).unwrap();
    assert!(b(store(&db).peek(&uri, &a, at(2))).is_ok());
    // someone with write access to the file changes the client_id
    // parameter stored beside the request object
    let conn = rusqlite::Connection::open(&file.0).unwrap();
    let n = conn
        .execute(
            "UPDATE pushed_requests SET source = json_set(source, '$.parameters[0][1]', 'tpp-b')",
            [],
        )
        .unwrap();
    assert_eq!(n, 1);
    drop(conn);
    assert_eq!(
        b(store(&db).peek(&uri, &a, at(2))).unwrap_err(),
        LookupError::NoLongerValid
    );
}

#[test]
fn a_replaced_key_or_a_revoked_tpp_invalidates_waiting_requests() {
    let file = TempDb::new("par-rekey");
    let db = file.open();
    let (sample, _) = setup(&db);
    let uri = sample.request_uri.clone();
    let a = ClientId::try_from("tpp-a").unwrap();
    b(store(&db).put(sample, at(1))).unwrap();
    assert!(b(store(&db).peek(&uri, &a, at(2))).is_ok());
    let new_key = default_provider()
        .generate_signing_key(Algorithm::Es256)
        .unwrap();
    b(db.directory().register_client(
        &a,
        registration("tpp-a", &*new_key),
        &CertificateThumbprint::from_bytes([0; 32]),
        at(2),
    ))
    .unwrap();
    assert_eq!(
        b(store(&db).peek(&uri, &a, at(3))).unwrap_err(),
        LookupError::NoLongerValid
    );

    let file = TempDb::new("par-revoked");
    let db = file.open();
    let (sample, _) = setup(&db);
    let uri = sample.request_uri.clone();
    b(store(&db).put(sample, at(1))).unwrap();
    assert!(b(store(&db).peek(&uri, &a, at(2))).is_ok());
    b(db.directory().revoke_client(&a)).unwrap();
    assert_eq!(
        b(store(&db).peek(&uri, &a, at(3))).unwrap_err(),
        LookupError::NoLongerValid
    );
}
