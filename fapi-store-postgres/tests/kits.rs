//! Every adapter against its trait's conformance kit (races included) on a
//! real PostgreSQL server; two pools on one schema stand for two bank
//! instances.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
use common::TestDb;

use fapi_core::replay::ReplayCache;
use fapi_core::revocation::RevokedTokenStore;
use fapi_core::JwtId;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replay_cache_passes_the_kit() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    fapi_core::testing::replay_cache_conformance(&db.store().await.replay_cache())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn code_store_passes_the_kit() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    fapi_core::testing::authorization_code_store_conformance(&db.store().await.codes())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revoked_token_store_passes_the_kit() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    fapi_core::testing::revoked_token_store_conformance(&db.store().await.revoked_tokens())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refresh_grant_store_passes_the_kit() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    fapi_core::testing::refresh_grant_store_conformance(&db.store().await.refresh_grants())
        .await
        .unwrap();
}

/// Two instances (two pools) racing one `jti`: exactly one wins, and the
/// other instance's next use is refused too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_jti_raced_through_two_instances_wins_once() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    let (a, b) = (
        db.store().await.replay_cache(),
        db.store().await.replay_cache(),
    );
    let mut tasks = Vec::new();
    for i in 0..200 {
        let cache = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            cache
                .insert_if_absent("tpp-a", "j-raced", common::at(60), common::at(0))
                .await
                .unwrap()
        }));
    }
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.unwrap());
    }
    assert_eq!(won, 1);
    assert!(!a
        .insert_if_absent("tpp-a", "j-raced", common::at(60), common::at(1))
        .await
        .unwrap());
    // the twin: another jti is fresh on either instance
    assert!(b
        .insert_if_absent("tpp-a", "j-other", common::at(60), common::at(1))
        .await
        .unwrap());
}

/// A token revoked through one instance is refused by the other's next
/// read: nothing is cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revocation_through_one_instance_is_seen_by_the_other() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    let (a, b) = (
        db.store().await.revoked_tokens(),
        db.store().await.revoked_tokens(),
    );
    let id = JwtId::try_from("at-1").unwrap();
    assert!(!b.is_revoked(&id).await.unwrap());
    a.revoke(std::slice::from_ref(&id), common::at(0))
        .await
        .unwrap();
    assert!(b.is_revoked(&id).await.unwrap());
}

/// `migrate` is idempotent and safe when instances start together.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrations_apply_once_when_instances_start_together() {
    // several rounds, each on an empty schema: creating the version table
    // races in the catalog in more than one way, and a round catches one
    // of them only some of the time
    for _ in 0..8 {
        migrations_race_once().await;
    }
}

async fn migrations_race_once() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    let stores: Vec<_> = (0..8).map(|_| db.store_unmigrated(2)).collect();
    let runs: Vec<_> = stores
        .iter()
        .cloned()
        .map(|s| tokio::spawn(async move { s.migrate().await }))
        .collect();
    for r in runs {
        r.await.unwrap().unwrap();
    }
    stores[0].migrate().await.unwrap();
    let client = stores[0].pool().get().await.unwrap();
    let versions: Vec<i32> = client
        .query(
            "SELECT version FROM fapi_schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let expected: Vec<i32> = fapi_store_postgres::MIGRATIONS
        .iter()
        .map(|(v, _)| *v)
        .collect();
    assert_eq!(versions, expected);
}

/// The sweep deletes what has expired (in batches) and nothing else; two
/// instances sweeping at once delete each row once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sweep_deletes_expired_rows_once_and_keeps_the_rest() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    let (a, b) = (db.store().await, db.store().await);
    let cache = a.replay_cache();
    for i in 0..25 {
        // 25 expired at t = 10, 5 expiring later
        let exp = if i < 20 {
            common::at(10)
        } else {
            common::at(1_000)
        };
        assert!(cache
            .insert_if_absent("tpp-a", &format!("j-{i}"), exp, common::at(0))
            .await
            .unwrap());
    }
    let revoked = a.revoked_tokens();
    revoked
        .revoke(&[JwtId::try_from("old").unwrap()], common::at(0))
        .await
        .unwrap();
    let now = common::at(
        20 + fapi_core::store::REVOKED_TOKEN_MEMORY_SECS, // "old" is past its memory
    );
    revoked
        .revoke(&[JwtId::try_from("new").unwrap()], now)
        .await
        .unwrap();
    let (sa, sb) = tokio::join!(a.sweep_expired(now, 3, 100), b.sweep_expired(now, 3, 100));
    let (sa, sb) = (sa.unwrap(), sb.unwrap());
    assert_eq!(sa.jti + sb.jti, 20);
    assert_eq!(sa.revoked_tokens + sb.revoked_tokens, 1);
    // the twin: what has not expired is still there
    assert!(!cache
        .insert_if_absent("tpp-a", "j-24", common::at(1_000), now)
        .await
        .unwrap());
    assert!(revoked
        .is_revoked(&JwtId::try_from("new").unwrap())
        .await
        .unwrap());
    assert!(!revoked
        .is_revoked(&JwtId::try_from("old").unwrap())
        .await
        .unwrap());
    // a second sweep finds nothing
    assert_eq!(a.sweep_expired(now, 3, 100).await.unwrap().total(), 0);
}
