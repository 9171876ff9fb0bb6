//! The bank's SQLite backend: one file (WAL) in the data directory. The
//! crate family's state goes through the `fapi-store-sqlite` adapters
//! ([`SqliteDb::store`]); the bank's own tables live beside them in the
//! same file, and [`SqliteDb`] implements their traits
//! ([`crate::bank::tables`]): failed logins, the signing-key schedule,
//! audit checkpoints and the sweep. The mock core's ledger is
//! [`crate::ledger`]. Only [`crate::stores`] (start-up) names this type.
//!
//! # What the statements rely on
//! SQLite serialises writers: every write runs on the store's one writer
//! connection, and a read-then-write (a failed login, a key rotation, a
//! first key) is one `IMMEDIATE` transaction, which takes the file's write
//! lock first, so processes sharing the file are serialised too.

use std::path::Path;
use std::sync::MutexGuard;

use fapi_core::store::BoxFuture;

use fapi_core::store::StoreError;
use fapi_core::UnixTime;
use fapi_core::{CertificateThumbprint, ClientId, ConsentId, JwtId};
use fapi_store_sqlite::rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use fapi_store_sqlite::{SqliteLiveReads, SqliteStore};

use crate::bank::live::{CallState, LiveReads};

use crate::bank::keys::KeyRecord;
use crate::bank::tables::{
    CheckpointStore, Housekeeping, LoginAttemptStore, SigningKeyStore, Swept,
};
use crate::bank::throttle::{Attempts, Rule};

/// The bank's own tables.
const BANK_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS checkpoints (
    seq INTEGER PRIMARY KEY, jws TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS login_attempts (
    scope TEXT NOT NULL, key TEXT NOT NULL, failures INTEGER NOT NULL, window_start INTEGER NOT NULL,
    locked_until INTEGER NOT NULL, lockouts INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) STRICT;
CREATE TABLE IF NOT EXISTS signing_keys (
    kid TEXT PRIMARY KEY, alg TEXT NOT NULL, public_jwk TEXT NOT NULL, created_at INTEGER NOT NULL,
    activates_at INTEGER NOT NULL, retires_at INTEGER, publish_until INTEGER
) STRICT;
";

/// The bank's SQLite database.
#[derive(Clone, Debug)]
pub struct SqliteDb {
    store: SqliteStore,
}

/// A SQLite failure as the stores report it (fail closed): the error
/// itself is the cause, for the log.
pub(crate) fn unavailable(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StoreError {
    StoreError::unavailable(e)
}

impl SqliteDb {
    /// Opens (creating if needed) the database file at `path`: the
    /// crate family's tables ([`SqliteStore::open`]) and the bank's own.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the file cannot be opened or migrated.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, &fapi_store_sqlite::Options::default())
    }

    /// [`SqliteDb::open`] with the store's `options`.
    ///
    /// # Errors
    /// As [`SqliteDb::open`].
    pub fn open_with(
        path: &Path,
        options: &fapi_store_sqlite::Options,
    ) -> Result<Self, StoreError> {
        let store = SqliteStore::open_with(path, options)?;
        {
            let conn = store.connection();
            conn.execute_batch(BANK_SCHEMA).map_err(unavailable)?;
            conn.execute_batch(crate::ledger::SCHEMA)
                .map_err(unavailable)?;
        }
        Ok(Self { store })
    }

    /// The crate family's stores in this file.
    pub fn store(&self) -> &SqliteStore {
        &self.store
    }

    /// The writer connection, for the bank's own tables (blocks the
    /// calling thread while another statement writes).
    pub(crate) fn conn(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        Ok(self.store.connection())
    }

    fn read_attempts(conn: &Connection, scope: &str, key: &str) -> Result<Attempts, StoreError> {
        conn.prepare_cached(
            "SELECT failures, window_start, locked_until, lockouts FROM login_attempts WHERE scope = ?1 AND key = ?2",
        )
        .and_then(|mut st| {
            st.query_row(params![scope, key], |r| {
                Ok(Attempts {
                    failures: r.get(0)?,
                    window_start: r.get(1)?,
                    locked_until: r.get(2)?,
                    lockouts: r.get(3)?,
                })
            })
            .optional()
        })
        .map(Option::unwrap_or_default)
        .map_err(unavailable)
    }

    fn record_failure_in(
        conn: &mut Connection,
        scope: &str,
        key: &str,
        rule: &Rule,
        now: UnixTime,
    ) -> Result<Attempts, StoreError> {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(unavailable)?;
        let before = Self::read_attempts(&tx, scope, key)?;
        let after = rule.failed(before, now.as_secs());
        tx.execute(
            "INSERT INTO login_attempts (scope, key, failures, window_start, locked_until, lockouts)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (scope, key) DO UPDATE SET failures = ?3, window_start = ?4, locked_until = ?5, lockouts = ?6",
            params![scope, key, after.failures, after.window_start, after.locked_until, after.lockouts],
        )
        .map_err(unavailable)?;
        tx.commit().map_err(unavailable)?;
        Ok(after)
    }

    fn signing_keys_in(conn: &Connection) -> Result<Vec<KeyRecord>, StoreError> {
        let mut st = conn
            .prepare_cached(
                "SELECT kid, alg, public_jwk, created_at, activates_at, retires_at, publish_until
                 FROM signing_keys ORDER BY activates_at, created_at",
            )
            .map_err(unavailable)?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, Option<i64>>(5)?,
                    r.get::<_, Option<i64>>(6)?,
                ))
            })
            .map_err(unavailable)?;
        let time = |secs: i64| {
            UnixTime::from_secs(secs).ok_or_else(|| unavailable("signing_keys: time out of range"))
        };
        let mut out = Vec::new();
        for row in rows {
            let (kid, alg, jwk, created, activates, retires, until) = row.map_err(unavailable)?;
            out.push(KeyRecord {
                alg: fapi_core::crypto::Algorithm::from_jose_name(&alg).ok_or_else(|| {
                    unavailable(format!("signing_keys: {kid} has algorithm {alg}"))
                })?,
                public_jwk: serde_json::from_str(&jwk).map_err(unavailable)?,
                created_at: time(created)?,
                activates_at: time(activates)?,
                retires_at: retires.map(time).transpose()?,
                publish_until: until.map(time).transpose()?,
                kid,
            });
        }
        Ok(out)
    }

    fn seed_in(conn: &mut Connection, first: &KeyRecord) -> Result<(), StoreError> {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(unavailable)?;
        let any: i64 = tx
            .query_row("SELECT COUNT(*) FROM signing_keys", [], |r| r.get(0))
            .map_err(unavailable)?;
        if any == 0 {
            Self::insert_signing_key(&tx, first)?;
        }
        tx.commit().map_err(unavailable)
    }

    fn schedule_in(
        conn: &mut Connection,
        new: &KeyRecord,
        old: &str,
        old_published_until: UnixTime,
    ) -> Result<(), StoreError> {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(unavailable)?;
        let pending: i64 = tx
            .query_row(
                "SELECT COUNT(*) FROM signing_keys WHERE activates_at > ?1",
                params![new.created_at.as_secs()],
                |r| r.get(0),
            )
            .map_err(unavailable)?;
        if pending != 0 {
            return Err(unavailable("a rotation is already pending"));
        }
        let retired = tx
            .execute(
                "UPDATE signing_keys SET retires_at = ?2, publish_until = ?3
                 WHERE kid = ?1 AND retires_at IS NULL",
                params![
                    old,
                    new.activates_at.as_secs(),
                    old_published_until.as_secs()
                ],
            )
            .map_err(unavailable)?;
        if retired != 1 {
            return Err(unavailable(format!(
                "{old} is not the signing key in force"
            )));
        }
        Self::insert_signing_key(&tx, new)?;
        tx.commit().map_err(unavailable)
    }

    fn insert_signing_key(conn: &Connection, r: &KeyRecord) -> Result<(), StoreError> {
        conn.execute(
            "INSERT INTO signing_keys (kid, alg, public_jwk, created_at, activates_at, retires_at, publish_until)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                r.kid,
                r.alg.jose_name(),
                r.public_jwk.to_string(),
                r.created_at.as_secs(),
                r.activates_at.as_secs(),
                r.retires_at.map(UnixTime::as_secs),
                r.publish_until.map(UnixTime::as_secs),
            ],
        )
        .map(|_| ())
        .map_err(unavailable)
    }
}

impl LoginAttemptStore for SqliteDb {
    fn attempts<'a>(
        &'a self,
        scope: &'static str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Attempts, StoreError>> {
        let key = key.to_owned();
        self.store
            .read(move |conn| Self::read_attempts(conn, scope, &key))
    }

    fn record_failure<'a>(
        &'a self,
        scope: &'static str,
        key: &'a str,
        rule: Rule,
        now: UnixTime,
    ) -> BoxFuture<'a, Result<Attempts, StoreError>> {
        let key = key.to_owned();
        self.store
            .write(move |conn| Self::record_failure_in(conn, scope, &key, &rule, now))
    }

    fn clear<'a>(
        &'a self,
        scope: &'static str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let key = key.to_owned();
        self.store.write(move |conn| {
            conn.execute(
                "DELETE FROM login_attempts WHERE scope = ?1 AND key = ?2",
                params![scope, key],
            )
            .map(|_| ())
            .map_err(unavailable)
        })
    }

    fn sweep(&self, now: UnixTime) -> BoxFuture<'_, Result<usize, StoreError>> {
        let day_ago = now.as_secs().saturating_sub(24 * 60 * 60);
        self.store.write(move |conn| {
            conn.execute(
                "DELETE FROM login_attempts WHERE locked_until < ?1 AND window_start < ?1",
                params![day_ago],
            )
            .map_err(unavailable)
        })
    }
}

impl SigningKeyStore for SqliteDb {
    fn keys(&self) -> BoxFuture<'_, Result<Vec<KeyRecord>, StoreError>> {
        self.store.read(|conn| Self::signing_keys_in(conn))
    }

    fn seed<'a>(&'a self, first: &'a KeyRecord) -> BoxFuture<'a, Result<(), StoreError>> {
        let first = first.clone();
        self.store.write(move |conn| Self::seed_in(conn, &first))
    }

    fn schedule<'a>(
        &'a self,
        new: &'a KeyRecord,
        old: &'a str,
        old_published_until: UnixTime,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let (new, old) = (new.clone(), old.to_owned());
        self.store
            .write(move |conn| Self::schedule_in(conn, &new, &old, old_published_until))
    }
}

impl CheckpointStore for SqliteDb {
    fn put<'a>(&'a self, seq: u64, jws: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        let jws = jws.to_owned();
        self.store.write(move |conn| {
            let seq = i64::try_from(seq).map_err(unavailable)?;
            conn.execute(
                "INSERT OR REPLACE INTO checkpoints (seq, jws) VALUES (?1, ?2)",
                params![seq, jws],
            )
            .map(|_| ())
            .map_err(unavailable)
        })
    }

    fn all(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        self.store.read(|conn| {
            let mut stmt = conn
                .prepare("SELECT jws FROM checkpoints ORDER BY seq")
                .map_err(unavailable)?;
            let rows = stmt.query_map([], |r| r.get(0)).map_err(unavailable)?;
            rows.map(|r| r.map_err(unavailable)).collect()
        })
    }
}

impl Housekeeping for SqliteDb {
    fn sweep_expired(
        &self,
        now: UnixTime,
        batch: u32,
        rounds: u32,
    ) -> BoxFuture<'_, Result<Swept, StoreError>> {
        let swept = self.store.sweep_expired(now, batch, rounds);
        Box::pin(async move {
            let s = swept.await?;
            Ok(vec![
                ("jti", s.jti),
                ("idempotency", s.idempotency),
                ("pushed_requests", s.pushed_requests),
                ("codes", s.codes),
                ("revoked_tokens", s.revoked_tokens),
            ])
        })
    }
}

/// The bank's per-call reads: one statement, one snapshot.
impl LiveReads for SqliteLiveReads {
    fn read<'a>(
        &'a self,
        jti: &'a JwtId,
        client: &'a ClientId,
        certificate: &'a CertificateThumbprint,
        consent: Option<&'a ConsentId>,
    ) -> BoxFuture<'a, Result<CallState, StoreError>> {
        let read = SqliteLiveReads::read(self, jti, client, certificate, consent);
        Box::pin(async move {
            let state = read.await?;
            Ok(CallState {
                revoked: state.revoked,
                standing: state.standing,
                consent: state.consent,
            })
        })
    }
}
