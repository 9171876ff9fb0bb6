//! The SQLite adapters pass the crates' conformance kits, stay correct with
//! two handles (two bank processes) on one file, survive a restart, and the
//! audit chain read back from the database fails verification after a byte
//! is changed in it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;
use std::sync::{Arc, Barrier};

use fapi_consent::audit::{
    verify_chain, AuditAction, AuditEvent, AuditLog, ChainError, EntryProblem,
};
use fapi_core::replay::ReplayCache;
use fapi_core::time::UnixTime;
use fapi_examples::sqlite::SqliteDb;

fn b<F: std::future::Future>(f: F) -> F::Output {
    futures_executor::block_on(f)
}

/// A database file that is removed (with its WAL files) when dropped.
struct TempDb(PathBuf);

impl TempDb {
    fn new(name: &str) -> Self {
        let unique = format!(
            "fapi-{name}-{}-{}.db",
            std::process::id(),
            fapi_core::random::token(8).unwrap()
        );
        Self(std::env::temp_dir().join(unique))
    }
    fn open(&self) -> SqliteDb {
        SqliteDb::open(&self.0).unwrap()
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
        }
    }
}

fn at(o: i64) -> UnixTime {
    UnixTime::from_secs(1_900_000_000 + o).unwrap()
}

#[test]
fn replay_cache_passes_the_kit() {
    let db = TempDb::new("replay");
    b(fapi_core::testing::replay_cache_conformance(&db.open())).unwrap();
}

#[test]
fn idempotency_store_passes_the_kit() {
    let db = TempDb::new("idem");
    b(fapi_consent::testing::idempotency_store_conformance(
        &db.open(),
    ))
    .unwrap();
}

#[test]
fn audit_log_passes_the_kit() {
    let db = TempDb::new("audit");
    b(fapi_consent::testing::audit_log_conformance(&db.open())).unwrap();
}

/// Two handles on one file (two bank processes), 100 threads each, one jti:
/// exactly one insert wins.
#[test]
fn jti_race_across_two_database_handles() {
    let db = TempDb::new("race");
    let handles = [Arc::new(db.open()), Arc::new(db.open())];
    let barrier = Arc::new(Barrier::new(200));
    let threads: Vec<_> = (0..200)
        .map(|i| {
            let (h, barrier) = (handles[i % 2].clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                b(h.insert_if_absent("tpp-a", "jti-1", at(60), at(0))).unwrap()
            })
        })
        .collect();
    let wins = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .filter(|w| *w)
        .count();
    assert_eq!(wins, 1);
}

#[test]
fn replay_protection_survives_a_restart() {
    let db = TempDb::new("restart");
    assert!(b(db.open().insert_if_absent("tpp-a", "jti-1", at(60), at(0))).unwrap());
    // a new process opens the same file
    assert!(!b(db.open().insert_if_absent("tpp-a", "jti-1", at(60), at(1))).unwrap());
    assert!(b(db.open().insert_if_absent("tpp-a", "jti-2", at(60), at(1))).unwrap());
}

#[test]
fn audit_chain_from_the_database_fails_after_a_byte_is_changed() {
    let db = TempDb::new("tamper");
    let log = db.open();
    for i in 0..5 {
        let mut e = AuditEvent::new(AuditAction::ConsentAuthorised, at(i));
        e.client_id = Some("tpp-a".into());
        b(log.append(e)).unwrap();
    }
    let keys = fapi_core::jwk::KeySet::default();
    assert_eq!(
        verify_chain(&b(log.entries(1, 100)).unwrap(), &[], &keys, &[]).unwrap(),
        5
    );
    drop(log);
    // someone with database access edits one row: "tpp-a" -> "tpp-b"
    let conn = rusqlite::Connection::open(&db.0).unwrap();
    let changed = conn
        .execute(
            "UPDATE audit SET event = replace(event, 'tpp-a', 'tpp-b') WHERE seq = 3",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(conn);
    let entries = b(db.open().entries(1, 100)).unwrap();
    assert_eq!(
        verify_chain(&entries, &[], &keys, &[]).unwrap_err(),
        ChainError::Entry {
            seq: 3,
            problem: EntryProblem::Hash
        }
    );
}
