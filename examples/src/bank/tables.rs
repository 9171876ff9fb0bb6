//! The bank's own state, beside the crate family's: one trait per kind, so
//! the handlers and background tasks hold `Arc<dyn Trait>` and never name
//! the database. [`crate::stores`] opens the configured backend at
//! start-up; [`crate::sqlite`] is the SQLite implementation.
//!
//! # What each implementation must guarantee
//! - [`LoginAttemptStore::record_failure`] reads the count and writes the
//!   new one atomically: failures racing on one key (many instances, many
//!   requests) are all counted.
//! - [`SigningKeyStore::seed`] writes the first key only into an empty
//!   schedule, and [`SigningKeyStore::schedule`] adds a key and retires the
//!   one in force atomically, refusing when another rotation is pending or
//!   the named key is not the one in force: two operators rotating at once
//!   leave one schedule.
//! - Checkpoints are kept by the chain's sequence number (writing one
//!   again replaces it) and are never swept.
//! - [`Housekeeping::sweep_expired`] deletes only rows past their expiry,
//!   in bounded batches, and never consents, payments or the audit trail.

use core::fmt;

use fapi_core::store::{BoxFuture, StoreError};
use fapi_core::UnixTime;

use super::keys::KeyRecord;
use super::throttle::{Attempts, Rule};

/// Failed logins on the customer pages, counted per key within a scope
/// (`customer` or `address`; see [`super::throttle`]).
pub trait LoginAttemptStore: Send + Sync + fmt::Debug {
    /// What is remembered of `key`'s failed logins in `scope` (the default
    /// when nothing is).
    fn attempts<'a>(
        &'a self,
        scope: &'static str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Attempts, StoreError>>;

    /// Counts one failed login for `key` in `scope` under `rule` at `now`
    /// (read and write atomically) and returns the new count.
    fn record_failure<'a>(
        &'a self,
        scope: &'static str,
        key: &'a str,
        rule: Rule,
        now: UnixTime,
    ) -> BoxFuture<'a, Result<Attempts, StoreError>>;

    /// Forgets `key`'s failed logins in `scope` (a successful login).
    fn clear<'a>(
        &'a self,
        scope: &'static str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Forgets keys idle for a day (no lock, no failure since); run in the
    /// background, never on a login. Returns how many were forgotten.
    fn sweep(&self, now: UnixTime) -> BoxFuture<'_, Result<usize, StoreError>>;
}

/// The schedule of the bank's signing keys (public parts and times; the
/// private keys stay in the key source).
pub trait SigningKeyStore: Send + Sync + fmt::Debug {
    /// Every key, oldest first.
    fn keys(&self) -> BoxFuture<'_, Result<Vec<KeyRecord>, StoreError>>;

    /// Writes `first` as the first key, unless the schedule holds one
    /// (another instance seeded it).
    fn seed<'a>(&'a self, first: &'a KeyRecord) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Adds `new` and retires `old` at `new`'s activation, published until
    /// `old_published_until`, atomically; refused (nothing written) if a
    /// rotation is pending or `old` is not the key in force.
    fn schedule<'a>(
        &'a self,
        new: &'a KeyRecord,
        old: &'a str,
        old_published_until: UnixTime,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// Signed checkpoints of the audit chain's head.
pub trait CheckpointStore: Send + Sync + fmt::Debug {
    /// Keeps `jws`, the checkpoint of the entry `seq` (replacing one of the
    /// same entry).
    fn put<'a>(&'a self, seq: u64, jws: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Every checkpoint, oldest first.
    fn all(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>>;
}

/// Rows deleted by one sweep, by table.
pub type Swept = Vec<(&'static str, usize)>;

/// Deletes the crate family's expired rows (replay entries, idempotency
/// keys, pushed requests, used codes, revoked token ids) off the request
/// path.
pub trait Housekeeping: Send + Sync + fmt::Debug {
    /// At most `rounds` statements of `batch` rows per table, for rows
    /// expired at `now`.
    fn sweep_expired(
        &self,
        now: UnixTime,
        batch: u32,
        rounds: u32,
    ) -> BoxFuture<'_, Result<Swept, StoreError>>;
}

/// Conformance kits for the traits above: an implementation (SQLite
/// today, PostgreSQL next) runs them against itself in its tests. Each
/// returns the first broken guarantee as `case: detail`.
pub mod conformance {
    use futures_util::future::join_all;
    use serde_json::json;

    use super::{CheckpointStore, LoginAttemptStore, SigningKeyStore};
    use crate::bank::keys::KeyRecord;
    use crate::bank::throttle::{Attempts, Rule};
    use fapi_core::crypto::Algorithm;
    use fapi_core::UnixTime;

    /// How many callers race in the kits.
    pub const RACERS: usize = 200;

    fn expect<T: PartialEq + core::fmt::Debug>(case: &str, got: T, want: T) -> Result<(), String> {
        if got == want {
            Ok(())
        } else {
            Err(format!("{case}: got {got:?}, expected {want:?}"))
        }
    }

    fn at(secs: i64) -> Result<UnixTime, String> {
        UnixTime::from_secs(secs).ok_or_else(|| format!("{secs} is not a time"))
    }

    async fn read(
        store: &dyn LoginAttemptStore,
        scope: &'static str,
        key: &str,
    ) -> Result<Attempts, String> {
        store
            .attempts(scope, key)
            .await
            .map_err(|e| format!("attempts: {e}"))
    }

    /// [`LoginAttemptStore`]: counts per scope and key, clearing, the
    /// sweep of idle keys, and [`RACERS`] failures racing on one key all
    /// counted. `store` must start empty.
    ///
    /// # Errors
    /// The first broken guarantee.
    pub async fn login_attempt_store_conformance(
        store: &dyn LoginAttemptStore,
    ) -> Result<(), String> {
        let day = 24 * 60 * 60;
        let now = at(1_700_000_000)?;
        // a rule that never locks in the kit: every failure is counted
        let counting = Rule {
            max_failures: u32::MAX,
            window_secs: day,
            first_lock_secs: 60,
            max_lock_secs: 60,
        };
        let err = |case: &'static str| move |e| format!("{case}: {e}");
        expect(
            "an unknown key has no failures",
            read(store, "customer", "alice").await?,
            Attempts::default(),
        )?;
        for n in 1..=3 {
            let a = store
                .record_failure("customer", "alice", counting, now)
                .await
                .map_err(err("record_failure"))?;
            expect("each failure is counted", a.failures, n)?;
        }
        expect(
            "a recorded count reads back",
            read(store, "customer", "alice").await?.failures,
            3,
        )?;
        expect(
            "scopes are counted apart",
            read(store, "address", "alice").await?,
            Attempts::default(),
        )?;
        expect(
            "keys are counted apart",
            read(store, "customer", "bob").await?,
            Attempts::default(),
        )?;
        // a failure that locks is stored with its lock
        let locking = Rule {
            max_failures: 1,
            ..counting
        };
        let locked = store
            .record_failure("address", "192.0.2.1", locking, now)
            .await
            .map_err(err("record_failure"))?;
        expect(
            "a lock is stored",
            read(store, "address", "192.0.2.1").await?,
            locked,
        )?;
        store
            .clear("customer", "alice")
            .await
            .map_err(err("clear"))?;
        expect(
            "clearing forgets the key",
            read(store, "customer", "alice").await?,
            Attempts::default(),
        )?;
        expect(
            "clearing one key leaves the others",
            read(store, "address", "192.0.2.1").await?,
            locked,
        )?;

        // racing failures on one key are all counted (no lost update)
        let raced =
            join_all((0..RACERS).map(|_| store.record_failure("customer", "raced", counting, now)))
                .await;
        if let Some(e) = raced.iter().find_map(|r| r.as_ref().err()) {
            return Err(format!("racing failures: {e}"));
        }
        expect(
            "every racing failure is counted",
            read(store, "customer", "raced").await?.failures,
            u32::try_from(RACERS).map_err(|e| e.to_string())?,
        )?;

        // the sweep forgets keys idle for a day, and only those
        store
            .record_failure("customer", "idle", counting, now)
            .await
            .map_err(err("record_failure"))?;
        let later = now.saturating_add(day + 1);
        store
            .record_failure("customer", "recent", counting, later)
            .await
            .map_err(err("record_failure"))?;
        let swept = store
            .sweep(later.saturating_add(day - 2))
            .await
            .map_err(err("sweep"))?;
        if swept == 0 {
            return Err("the sweep forgets idle keys: nothing was swept".into());
        }
        expect(
            "an idle key is swept",
            read(store, "customer", "idle").await?,
            Attempts::default(),
        )?;
        expect(
            "a recent key is kept",
            read(store, "customer", "recent").await?.failures,
            1,
        )?;
        Ok(())
    }

    fn key(kid: &str, created: i64, activates: i64) -> Result<KeyRecord, String> {
        Ok(KeyRecord {
            kid: kid.to_owned(),
            alg: Algorithm::Es256,
            public_jwk: json!({ "kty": "EC", "crv": "P-256", "kid": kid, "x": "x", "y": "y" }),
            created_at: at(created)?,
            activates_at: at(activates)?,
            retires_at: None,
            publish_until: None,
        })
    }

    /// [`SigningKeyStore`]: seeding only an empty schedule (also when
    /// [`RACERS`] instances seed at once), a rotation retiring the key in
    /// force, and the refusals (a pending rotation, a key not in force)
    /// writing nothing. `store` must start empty.
    ///
    /// # Errors
    /// The first broken guarantee.
    pub async fn signing_key_store_conformance(store: &dyn SigningKeyStore) -> Result<(), String> {
        let err = |case: &'static str| move |e| format!("{case}: {e}");
        expect(
            "an empty schedule",
            store.keys().await.map_err(err("keys"))?,
            vec![],
        )?;
        let candidates = (0..RACERS)
            .map(|i| key(&format!("seed-{i:03}"), 0, 0))
            .collect::<Result<Vec<_>, _>>()?;
        let seeded = join_all(candidates.iter().map(|k| store.seed(k))).await;
        if let Some(e) = seeded.iter().find_map(|r| r.as_ref().err()) {
            return Err(format!("racing seeds: {e}"));
        }
        let keys = store.keys().await.map_err(err("keys"))?;
        let [first] = keys.as_slice() else {
            return Err(format!(
                "racing seeds leave one first key: {} keys",
                keys.len()
            ));
        };
        let first = first.clone();
        let ignored = key("late-seed", 0, 0)?;
        store.seed(&ignored).await.map_err(err("seed"))?;
        expect(
            "a seeded schedule is not seeded again",
            store.keys().await.map_err(err("keys"))?,
            vec![first.clone()],
        )?;

        let second = key("second", 100, 200)?;
        store
            .schedule(&second, &first.kid, at(500)?)
            .await
            .map_err(err("schedule"))?;
        let retired = KeyRecord {
            retires_at: Some(at(200)?),
            publish_until: Some(at(500)?),
            ..first.clone()
        };
        expect(
            "a rotation adds the key and retires the one in force",
            store.keys().await.map_err(err("keys"))?,
            vec![retired.clone(), second.clone()],
        )?;
        let third = key("third", 150, 300)?;
        if store.schedule(&third, &second.kid, at(600)?).await.is_ok() {
            return Err("a rotation while another is pending is refused".into());
        }
        let fourth = key("fourth", 250, 400)?;
        if store.schedule(&fourth, &first.kid, at(700)?).await.is_ok() {
            return Err("a rotation of a key not in force is refused".into());
        }
        expect(
            "a refused rotation writes nothing",
            store.keys().await.map_err(err("keys"))?,
            vec![retired, second.clone()],
        )?;
        store
            .schedule(&fourth, &second.kid, at(700)?)
            .await
            .map_err(err("a rotation of the key in force"))?;
        expect(
            "keys are listed oldest first",
            store
                .keys()
                .await
                .map_err(err("keys"))?
                .iter()
                .map(|k| k.kid.clone())
                .collect::<Vec<_>>(),
            vec![first.kid, second.kid, fourth.kid],
        )?;
        Ok(())
    }

    /// [`CheckpointStore`]: checkpoints listed by sequence number whatever
    /// the order they were written in, and one written again replaced.
    /// `store` must start empty.
    ///
    /// # Errors
    /// The first broken guarantee.
    pub async fn checkpoint_store_conformance(store: &dyn CheckpointStore) -> Result<(), String> {
        let err = |case: &'static str| move |e| format!("{case}: {e}");
        expect(
            "no checkpoints",
            store.all().await.map_err(err("all"))?,
            vec![],
        )?;
        for (seq, jws) in [(10, "c10"), (2, "c2"), (5, "c5")] {
            store.put(seq, jws).await.map_err(err("put"))?;
        }
        expect(
            "checkpoints are listed by sequence number",
            store.all().await.map_err(err("all"))?,
            vec!["c2".to_owned(), "c5".into(), "c10".into()],
        )?;
        store.put(5, "c5-again").await.map_err(err("put"))?;
        expect(
            "a checkpoint of the same entry replaces the earlier one",
            store.all().await.map_err(err("all"))?,
            vec!["c2".to_owned(), "c5-again".into(), "c10".into()],
        )?;
        Ok(())
    }
}
