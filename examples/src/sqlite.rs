//! The bank's database: one SQLite file (WAL) in the data directory. The
//! crate family's state goes through the `fapi-store-sqlite` adapters
//! ([`SqliteDb::store`]; the bank holds each as an `Arc<dyn Trait>`); the
//! bank's own tables live beside them in the same file: failed logins,
//! the signing-key schedule, audit checkpoints and the mock core's ledger
//! ([`crate::ledger`]).

use std::path::Path;
use std::sync::MutexGuard;

use fapi_core::store::StoreError;
use fapi_core::time::UnixTime;
use fapi_store_sqlite::rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use fapi_store_sqlite::SqliteStore;

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

    /// The failed logins remembered for `key` in `scope` (`customer` or
    /// `address`).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub async fn login_attempts(
        &self,
        scope: &'static str,
        key: &str,
    ) -> Result<crate::bank::throttle::Attempts, StoreError> {
        let key = key.to_owned();
        self.store
            .read(move |conn| Self::read_attempts(conn, scope, &key))
            .await
    }

    fn read_attempts(
        conn: &Connection,
        scope: &str,
        key: &str,
    ) -> Result<crate::bank::throttle::Attempts, StoreError> {
        conn.prepare_cached(
            "SELECT failures, window_start, locked_until, lockouts FROM login_attempts WHERE scope = ?1 AND key = ?2",
        )
        .and_then(|mut st| {
            st.query_row(params![scope, key], |r| {
                Ok(crate::bank::throttle::Attempts {
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

    /// Records one failed login for `key` in `scope` under `rule` at `now`
    /// (read and write in one transaction) and returns the new count.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub async fn record_login_failure(
        &self,
        scope: &'static str,
        key: &str,
        rule: crate::bank::throttle::Rule,
        now: UnixTime,
    ) -> Result<crate::bank::throttle::Attempts, StoreError> {
        let key = key.to_owned();
        self.store
            .write(move |conn| Self::record_failure_in(conn, scope, &key, &rule, now))
            .await
    }

    fn record_failure_in(
        conn: &mut Connection,
        scope: &str,
        key: &str,
        rule: &crate::bank::throttle::Rule,
        now: UnixTime,
    ) -> Result<crate::bank::throttle::Attempts, StoreError> {
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

    /// Forgets failed-login rows idle for a day (no lock, no failure since):
    /// run in the background, never on a login.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub fn sweep_login_attempts(&self, now: UnixTime) -> Result<usize, StoreError> {
        let day_ago = now.as_secs().saturating_sub(24 * 60 * 60);
        self.conn()?
            .execute(
                "DELETE FROM login_attempts WHERE locked_until < ?1 AND window_start < ?1",
                params![day_ago],
            )
            .map_err(unavailable)
    }

    /// Forgets the failed logins of `key` in `scope` (a successful login).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub async fn clear_login_attempts(
        &self,
        scope: &'static str,
        key: &str,
    ) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.store
            .write(move |conn| {
                conn.execute(
                    "DELETE FROM login_attempts WHERE scope = ?1 AND key = ?2",
                    params![scope, key],
                )
                .map(|_| ())
                .map_err(unavailable)
            })
            .await
    }

    /// The bank's signing keys and their schedule, oldest first (see
    /// [`crate::bank::keys`]).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`], also for a row that does not parse.
    pub fn signing_keys(&self) -> Result<Vec<crate::bank::keys::KeyRecord>, StoreError> {
        let conn = self.conn()?;
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
            out.push(crate::bank::keys::KeyRecord {
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

    /// Writes `first` as the first signing key, unless the schedule
    /// already holds one (another instance seeded it).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub fn seed_signing_key(&self, first: &crate::bank::keys::KeyRecord) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
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

    /// Adds `new` to the schedule and retires `old` at `new`'s activation,
    /// published until `old_published_until`, in one transaction that
    /// fails if another rotation is pending (a key not yet active) or
    /// `old` is not the key in force.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub fn schedule_signing_key(
        &self,
        new: &crate::bank::keys::KeyRecord,
        old: &str,
        old_published_until: UnixTime,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
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

    fn insert_signing_key(
        conn: &Connection,
        r: &crate::bank::keys::KeyRecord,
    ) -> Result<(), StoreError> {
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
