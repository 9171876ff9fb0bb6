//! The bank's own stores (`bank::tables`): the SQLite backend passes each
//! kit, and each kit refuses a store that breaks its guarantee.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;
use common::TempDb;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use fapi_core::store::{BoxFuture, StoreError};
use fapi_core::UnixTime;
use fapi_examples::bank::keys::KeyRecord;
use fapi_examples::bank::tables::conformance::{
    checkpoint_store_conformance, login_attempt_store_conformance, signing_key_store_conformance,
};
use fapi_examples::bank::tables::{CheckpointStore, LoginAttemptStore, SigningKeyStore};
use fapi_examples::bank::throttle::{Attempts, Rule};
use futures_executor::block_on;

#[test]
fn the_sqlite_backend_passes_the_bank_store_kits() {
    let tmp = TempDb::new("bank-tables");
    let db = tmp.open();
    block_on(login_attempt_store_conformance(&db)).unwrap();
    block_on(signing_key_store_conformance(&db)).unwrap();
    block_on(checkpoint_store_conformance(&db)).unwrap();
}

/// Returns `Pending` once, so that racing futures interleave at this
/// point (a store that reads, waits for the network, then writes).
async fn yield_once() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await;
}

/// In-memory stores, each either right or with one flaw.
#[derive(Debug, Default)]
struct Memory {
    /// Reads the count, waits, writes it back (a lost update).
    read_then_write: bool,
    /// Seeds whatever the schedule holds.
    seeds_always: bool,
    /// Keeps every checkpoint written, even of the same entry.
    appends_checkpoints: bool,
    attempts: Mutex<HashMap<(String, String), Attempts>>,
    keys: Mutex<Vec<KeyRecord>>,
    checkpoints: Mutex<BTreeMap<(u64, usize), String>>,
}

impl LoginAttemptStore for Memory {
    fn attempts<'a>(
        &'a self,
        scope: &'static str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Attempts, StoreError>> {
        let a = self
            .attempts
            .lock()
            .unwrap()
            .get(&(scope.to_owned(), key.to_owned()))
            .copied()
            .unwrap_or_default();
        Box::pin(async move { Ok(a) })
    }

    fn record_failure<'a>(
        &'a self,
        scope: &'static str,
        key: &'a str,
        rule: Rule,
        now: UnixTime,
    ) -> BoxFuture<'a, Result<Attempts, StoreError>> {
        Box::pin(async move {
            let k = (scope.to_owned(), key.to_owned());
            if self.read_then_write {
                let before = self.attempts(scope, key).await?;
                yield_once().await;
                let after = rule.failed(before, now.as_secs());
                self.attempts.lock().unwrap().insert(k, after);
                return Ok(after);
            }
            let mut all = self.attempts.lock().unwrap();
            let after = rule.failed(all.get(&k).copied().unwrap_or_default(), now.as_secs());
            all.insert(k, after);
            Ok(after)
        })
    }

    fn clear<'a>(
        &'a self,
        scope: &'static str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.attempts
            .lock()
            .unwrap()
            .remove(&(scope.to_owned(), key.to_owned()));
        Box::pin(async { Ok(()) })
    }

    fn sweep(&self, now: UnixTime) -> BoxFuture<'_, Result<usize, StoreError>> {
        let day_ago = now.as_secs() - 24 * 60 * 60;
        let mut all = self.attempts.lock().unwrap();
        let before = all.len();
        all.retain(|_, a| a.locked_until >= day_ago || a.window_start >= day_ago);
        let n = before - all.len();
        Box::pin(async move { Ok(n) })
    }
}

impl SigningKeyStore for Memory {
    fn keys(&self) -> BoxFuture<'_, Result<Vec<KeyRecord>, StoreError>> {
        let mut keys = self.keys.lock().unwrap().clone();
        keys.sort_by_key(|k| (k.activates_at, k.created_at));
        Box::pin(async move { Ok(keys) })
    }

    fn seed<'a>(&'a self, first: &'a KeyRecord) -> BoxFuture<'a, Result<(), StoreError>> {
        let mut keys = self.keys.lock().unwrap();
        if keys.is_empty() || self.seeds_always {
            keys.push(first.clone());
        }
        Box::pin(async { Ok(()) })
    }

    fn schedule<'a>(
        &'a self,
        new: &'a KeyRecord,
        old: &'a str,
        old_published_until: UnixTime,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let mut keys = self.keys.lock().unwrap();
        let r = if keys.iter().any(|k| k.activates_at > new.created_at) {
            Err(StoreError::unavailable("a rotation is already pending"))
        } else if let Some(k) = keys
            .iter_mut()
            .find(|k| k.kid == old && k.retires_at.is_none())
        {
            k.retires_at = Some(new.activates_at);
            k.publish_until = Some(old_published_until);
            keys.push(new.clone());
            Ok(())
        } else {
            Err(StoreError::unavailable("not the key in force"))
        };
        Box::pin(async move { r })
    }
}

impl CheckpointStore for Memory {
    fn put<'a>(&'a self, seq: u64, jws: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        let mut all = self.checkpoints.lock().unwrap();
        let copy = if self.appends_checkpoints {
            all.range((seq, 0)..=(seq, usize::MAX)).count()
        } else {
            0
        };
        all.insert((seq, copy), jws.to_owned());
        Box::pin(async { Ok(()) })
    }

    fn all(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        let all = self.checkpoints.lock().unwrap().values().cloned().collect();
        Box::pin(async move { Ok(all) })
    }
}

/// The kits' happy twin: a right in-memory store passes all three.
#[test]
fn a_right_in_memory_store_passes_the_kits() {
    let m = Memory::default();
    block_on(login_attempt_store_conformance(&m)).unwrap();
    block_on(signing_key_store_conformance(&m)).unwrap();
    block_on(checkpoint_store_conformance(&m)).unwrap();
}

#[test]
fn the_kits_refuse_a_store_that_breaks_a_guarantee() {
    let lost_updates = Memory {
        read_then_write: true,
        ..Memory::default()
    };
    let e = block_on(login_attempt_store_conformance(&lost_updates)).unwrap_err();
    assert!(e.starts_with("every racing failure is counted"), "{e}");

    let reseeds = Memory {
        seeds_always: true,
        ..Memory::default()
    };
    let e = block_on(signing_key_store_conformance(&reseeds)).unwrap_err();
    assert!(e.starts_with("racing seeds leave one first key"), "{e}");

    let appends = Memory {
        appends_checkpoints: true,
        ..Memory::default()
    };
    let e = block_on(checkpoint_store_conformance(&appends)).unwrap_err();
    assert!(
        e.starts_with("a checkpoint of the same entry replaces the earlier one"),
        "{e}"
    );
}
