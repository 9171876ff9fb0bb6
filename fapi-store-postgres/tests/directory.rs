//! Pushed requests, the TPP registry and the per-call live read on
//! PostgreSQL, with two bank instances (two pools on one schema).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
use common::{at, registration, Registrations, TestDb, PROFILE};

use std::sync::Arc;

use fapi_core::crypto::{default_provider, Algorithm};
use fapi_core::revocation::RevokedTokenStore;
use fapi_core::testing::TokenAuthority;
use fapi_core::{AccessTokenClaims, CertificateThumbprint, ClientId, Confirmation, Issuer, Scope};
use fapi_mtls_binding::directory::{CertificateStatus, TppDirectory};
use fapi_mtls_binding::registry::TppRegistry;
use fapi_mtls_binding::resource::LiveState;
use fapi_par::{CurrentRegistration, LookupError, ParConfig, PushedRequestStore};
use fapi_store_postgres::{PostgresPushedRequestStore, PostgresStore};

fn config() -> ParConfig {
    ParConfig::new(PROFILE, Issuer::try_from("https://bank.example").unwrap())
}

fn pushed(db: &PostgresStore) -> PostgresPushedRequestStore {
    db.pushed_requests(config(), Arc::new(Registrations(db.directory())))
}

/// Registers tpp-a and tpp-b (certificates [0; 32] and [1; 32]) and builds
/// a request of tpp-a pushed the real way.
async fn setup(db: &PostgresStore) -> fapi_par::PushedRequest {
    let key = default_provider()
        .generate_signing_key(Algorithm::Es256)
        .unwrap();
    for (i, id) in ["tpp-a", "tpp-b"].iter().enumerate() {
        db.directory()
            .register_client(
                &ClientId::try_from(*id).unwrap(),
                registration(id, &*key),
                &CertificateThumbprint::from_bytes([u8::try_from(i).unwrap(); 32]),
                at(0),
            )
            .await
            .unwrap();
    }
    let a = ClientId::try_from("tpp-a").unwrap();
    let metadata = Registrations(db.directory())
        .current(&a)
        .await
        .unwrap()
        .unwrap();
    fapi_par::testing::pushed_sample(
        &config(),
        &metadata,
        &*key,
        "k",
        "https://tpp-a.example/cb",
        at(0),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn registry_passes_the_kit() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    fapi_mtls_binding::testing::tpp_registry_conformance(&db.store().await.directory(), at(0))
        .await
        .unwrap();
}

/// Migration 3 gives each client registered before it the certificate it
/// was registered with, so its calls keep working; certificates added
/// later sit beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migration_3_keeps_each_clients_registered_certificate() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    let store = db.store().await;
    let (a, cert) = (
        ClientId::try_from("tpp-a").unwrap(),
        CertificateThumbprint::from_bytes([1; 32]),
    );
    store
        .directory()
        .register_client(&a, "a".into(), &cert, at(0))
        .await
        .unwrap();
    // the schema as migration 2 left it, with the client in it
    let client = store.pool().get().await.unwrap();
    client
        .batch_execute(
            "DROP TABLE fapi_client_certificates;
             DELETE FROM fapi_schema_migrations WHERE version = 3;",
        )
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let directory = store.directory();
    let standing = directory.standing(&a, &cert).await.unwrap();
    assert_eq!(
        (standing.status, standing.owner),
        (CertificateStatus::Active, Some(a.clone()))
    );
    let added = CertificateThumbprint::from_bytes([2; 32]);
    directory.add_certificate(&a, &added, at(1)).await.unwrap();
    assert_eq!(
        directory.certificate_owner(&added).await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(directory.certificate_owner(&cert).await.unwrap(), Some(a));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pushed_request_store_passes_the_kit() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    let store = db.store().await;
    let sample = setup(&store).await;
    fapi_par::testing::pushed_request_store_conformance(
        &pushed(&store),
        sample,
        &ClientId::try_from("tpp-b").unwrap(),
    )
    .await
    .unwrap();
}

/// One `request_uri` taken concurrently through two instances (200
/// racing tasks): exactly one succeeds, the rest are `AlreadyUsed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_request_uri_taken_through_two_instances_succeeds_once() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    let (a, b) = (db.store().await, db.store().await);
    let sample = setup(&a).await;
    let uri = sample.request_uri.clone();
    pushed(&a).put(sample, at(1)).await.unwrap();
    let (pa, pb) = (Arc::new(pushed(&a)), Arc::new(pushed(&b)));
    let mut tasks = Vec::new();
    for i in 0..200 {
        let (store, uri) = (
            if i % 2 == 0 { pa.clone() } else { pb.clone() },
            uri.clone(),
        );
        tasks.push(tokio::spawn(async move {
            store
                .take(&uri, &ClientId::try_from("tpp-a").unwrap(), at(2))
                .await
        }));
    }
    let (mut won, mut used) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => won += 1,
            Err(LookupError::AlreadyUsed) => used += 1,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!((won, used), (1, 199));
}

/// A row changed in the database is refused, not trusted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_changed_pushed_request_row_is_refused() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    let store = db.store().await;
    let sample = setup(&store).await;
    let uri = sample.request_uri.clone();
    let a = ClientId::try_from("tpp-a").unwrap();
    pushed(&store).put(sample, at(1)).await.unwrap();
    assert!(pushed(&store).peek(&uri, &a, at(2)).await.is_ok());
    // someone with write access changes the client_id parameter stored
    // beside the request object
    let client = store.pool().get().await.unwrap();
    let n = client
        .execute(
            "UPDATE fapi_pushed_requests
             SET source = replace(source, '[\"client_id\",\"tpp-a\"]', '[\"client_id\",\"tpp-b\"]')
             WHERE source LIKE '%[\"client_id\",\"tpp-a\"]%'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(
        pushed(&store).peek(&uri, &a, at(2)).await.unwrap_err(),
        LookupError::NoLongerValid
    );
}

/// Two instances register one certificate for two clients at the same
/// moment: one wins, the other is told the certificate is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_certificate_registered_through_two_instances_goes_to_one_client() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    let (a, b) = (db.store().await.directory(), db.store().await.directory());
    let cert = CertificateThumbprint::from_bytes([7; 32]);
    let mut tasks = Vec::new();
    for i in 0..100 {
        let dir = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let id = ClientId::try_from(format!("tpp-{i}")).unwrap();
            dir.register_client(&id, "{}".into(), &cert, at(0)).await
        }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => won += 1,
            Err(fapi_mtls_binding::registry::RegisterError::CertificateTaken) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(won, 1);
}

/// The one-statement live read answers what the three stores answer one by
/// one, and sees writes made through another instance at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_live_read_equals_the_three_reads_and_sees_the_other_instance() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    let (a, b) = (db.store().await, db.store().await);
    let cert = CertificateThumbprint::from_bytes([0; 32]);
    let tpp = ClientId::try_from("tpp-a").unwrap();
    a.directory()
        .register_client(&tpp, "{}".into(), &cert, at(0))
        .await
        .unwrap();
    let authority = TokenAuthority::new(
        default_provider()
            .generate_signing_key(Algorithm::Es256)
            .unwrap(),
        Issuer::try_from("https://bank.example").unwrap(),
        fapi_core::TokenAudience::try_from("api").unwrap(),
        fapi_core::Profile::Fapi2Security,
        300,
    )
    .unwrap();
    let token = authority
        .verified(
            &AccessTokenClaims::new(
                "alice",
                tpp.clone(),
                Scope::try_from("accounts").unwrap(),
                Confirmation::CertificateThumbprint(cert),
            ),
            at(0),
        )
        .await
        .unwrap();
    let live = b.live_reads();
    let first = live.read(&token, &cert).await.unwrap();
    assert!(!first.revoked);
    assert_eq!(first.standing.status, CertificateStatus::Active);
    assert_eq!(first.standing.owner.as_ref(), Some(&tpp));
    assert_eq!(first.extra, None);
    assert_eq!(
        first.standing,
        b.directory().standing(&tpp, &cert).await.unwrap()
    );
    // revoked through instance A: instance B's next read says so
    a.revoked_tokens()
        .revoke(std::slice::from_ref(token.jti()), at(1))
        .await
        .unwrap();
    a.directory().revoke_client(&tpp).await.unwrap();
    let after = live.read(&token, &cert).await.unwrap();
    assert!(after.revoked);
    assert_eq!(after.standing.status, CertificateStatus::TppRevoked);
    assert_eq!(
        after.standing,
        b.directory().standing(&tpp, &cert).await.unwrap()
    );
}
