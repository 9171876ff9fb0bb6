//! The embedded default store: one SQLite file (WAL) in the data directory,
//! holding the state the bank keeps. Each adapter implements a crate's store
//! trait and passes that crate's conformance kit (`tests/sqlite_kits.rs`).
//!
//! Here: the `jti` replay cache (fapi-core), consents, the
//! `x-idempotency-key` store and the audit trail (fapi-consent),
//! authorization codes and refresh tokens (by hash only), revoked token
//! ids, payments, and the TPP registry that is also the bank's directory
//! ([`crate::registry`]).
//!
//! Calls are synchronous inside the returned futures: SQLite is embedded
//! and local. A server on an async runtime should call it from a blocking
//! pool; a shared database (PostgreSQL) adapter would be truly async.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use fapi_consent::audit::{AuditEntry, AuditEvent, AuditLog};
use fapi_consent::idempotency::{
    decide_existing, Begin, IdempotencyError, IdempotencyKey, IdempotencyStore, StoredResponse,
    WINDOW_SECS,
};
use fapi_consent::store::{CasError, ConsentStore, CreateError};
use fapi_consent::Consent;
use fapi_core::replay::ReplayCache;
use fapi_core::store::{BoxFuture, StoreError};
use fapi_core::time::UnixTime;
use fapi_core::types::{ClientId, ConsentId};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jti (
    scope TEXT NOT NULL, jti TEXT NOT NULL, expires_at INTEGER NOT NULL,
    PRIMARY KEY (scope, jti)
) STRICT;
CREATE TABLE IF NOT EXISTS idempotency (
    client_id TEXT NOT NULL, key TEXT NOT NULL, body_hash BLOB NOT NULL, expires_at INTEGER NOT NULL,
    status INTEGER, body BLOB,
    PRIMARY KEY (client_id, key)
) STRICT;
CREATE TABLE IF NOT EXISTS consents (
    id TEXT PRIMARY KEY, customer_id TEXT, created_at INTEGER NOT NULL, version INTEGER NOT NULL, body TEXT NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS consents_by_customer_newest ON consents (customer_id, created_at, id);
CREATE TABLE IF NOT EXISTS codes (
    hash BLOB PRIMARY KEY, body TEXT NOT NULL, expires_at INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE TABLE IF NOT EXISTS clients (
    client_id TEXT PRIMARY KEY, registration TEXT NOT NULL, certificate BLOB NOT NULL UNIQUE,
    revoked INTEGER NOT NULL, onboarded_at INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS revoked_certificates (
    thumbprint BLOB PRIMARY KEY, revoked_at INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS refresh_tokens (
    hash BLOB PRIMARY KEY, id TEXT NOT NULL UNIQUE, body TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS revoked_tokens (
    jti TEXT PRIMARY KEY, revoked_at INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS payments (
    id TEXT PRIMARY KEY, client_id TEXT NOT NULL, consent_id TEXT NOT NULL UNIQUE, body TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS pushed_requests (
    uri_hash BLOB PRIMARY KEY, client_id TEXT NOT NULL, expires_at INTEGER NOT NULL,
    used INTEGER NOT NULL, source TEXT NOT NULL
) STRICT;
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
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY, prev_hash TEXT NOT NULL, hash TEXT NOT NULL, event TEXT NOT NULL
) STRICT;
";

/// Indexes the background sweeps delete by (never read on a request path,
/// which looks rows up by their keys); created after the migrations, so an
/// older database gains them too.
const SWEEP_INDEXES: &str = "
CREATE INDEX IF NOT EXISTS jti_by_expiry ON jti (expires_at);
CREATE INDEX IF NOT EXISTS idempotency_by_expiry ON idempotency (expires_at);
CREATE INDEX IF NOT EXISTS pushed_requests_by_expiry ON pushed_requests (expires_at);
CREATE INDEX IF NOT EXISTS codes_by_expiry ON codes (expires_at);
CREATE INDEX IF NOT EXISTS revoked_tokens_by_age ON revoked_tokens (revoked_at);
CREATE INDEX IF NOT EXISTS consents_payment_pending ON consents (id)
    WHERE json_extract(body, '$.status') = 'PaymentPending';
";

/// How long a used or expired authorization code is remembered past its
/// expiry, so a late replay is still recognised as a replay (and the
/// tokens issued for it revoked) rather than as an unknown code.
pub const CODE_MEMORY_SECS: i64 = 3_600;

/// How long a pushed request is remembered past its expiry (a late use
/// is told "expired", not "unknown").
pub const PUSHED_REQUEST_MEMORY_SECS: i64 = 3_600;

/// How long a revoked access-token id is kept: past the longest access
/// token lifetime plus the clock skew, a token with that id no longer
/// verifies anyway.
pub const REVOKED_TOKEN_MEMORY_SECS: i64 = 300 + 60;

/// Rows the background sweep deleted, by table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// `jti` replay entries past their expiry.
    pub jti: usize,
    /// `x-idempotency-key` entries past their window.
    pub idempotency: usize,
    /// Pushed requests [`PUSHED_REQUEST_MEMORY_SECS`] past expiry.
    pub pushed_requests: usize,
    /// Authorization codes [`CODE_MEMORY_SECS`] past expiry.
    pub codes: usize,
    /// Revoked access-token ids older than [`REVOKED_TOKEN_MEMORY_SECS`].
    pub revoked_tokens: usize,
}

impl Swept {
    /// Rows deleted in all.
    pub fn total(&self) -> usize {
        self.jti + self.idempotency + self.pushed_requests + self.codes + self.revoked_tokens
    }
}

/// Brings a database written by an earlier version up to the schema:
/// `codes.expires_at` (filled from each stored code's own expiry), the
/// consents' paging index.
fn migrate(conn: &Connection) -> Result<(), StoreError> {
    // the dashboard pages by (customer, created_at, id): the older index
    // without id is superseded
    conn.execute_batch("DROP INDEX IF EXISTS consents_by_customer;")
        .map_err(unavailable)?;
    let has_expiry: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM pragma_table_info('codes') WHERE name = 'expires_at')",
            [],
            |r| r.get(0),
        )
        .map_err(unavailable)?;
    if !has_expiry {
        conn.execute_batch(
            "BEGIN IMMEDIATE;
             ALTER TABLE codes ADD COLUMN expires_at INTEGER NOT NULL DEFAULT 0;
             UPDATE codes SET expires_at = COALESCE(json_extract(body, '$.grant.expires_at'), 0);
             COMMIT;",
        )
        .map_err(unavailable)?;
    }
    Ok(())
}

/// The statement tracer set by [`SqliteDb::trace_statements`].
static TRACE_FN: Mutex<Option<fn(&str)>> = Mutex::new(None);

fn forward(event: rusqlite::trace::TraceEvent<'_>) {
    if let rusqlite::trace::TraceEvent::Stmt(_, sql) = event {
        if let Ok(f) = TRACE_FN.lock() {
            if let Some(f) = *f {
                f(sql);
            }
        }
    }
}

/// An idempotency row: body hash, then the stored response once complete.
type IdempotencyRow = (Vec<u8>, Option<i64>, Option<Vec<u8>>);

/// The bank's SQLite database.
#[derive(Debug)]
pub struct SqliteDb {
    conn: Mutex<Connection>,
}

/// A SQLite failure as the stores report it (fail closed): the error
/// itself is the cause, for the log.
pub(crate) fn unavailable(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StoreError {
    StoreError::unavailable(e)
}

impl SqliteDb {
    /// Opens (creating if needed) the database file at `path` in WAL mode.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the file cannot be opened or migrated.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(unavailable)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(unavailable)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(unavailable)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(unavailable)?;
        conn.execute_batch(SCHEMA).map_err(unavailable)?;
        conn.execute_batch(crate::ledger::SCHEMA)
            .map_err(unavailable)?;
        migrate(&conn)?;
        conn.execute_batch(SWEEP_INDEXES).map_err(unavailable)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    /// The failed logins remembered for `key` in `scope` (`customer` or
    /// `address`).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub fn login_attempts(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<crate::bank::throttle::Attempts, StoreError> {
        let conn = self.conn()?;
        Self::read_attempts(&conn, scope, key)
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
    pub fn record_login_failure(
        &self,
        scope: &str,
        key: &str,
        rule: &crate::bank::throttle::Rule,
        now: UnixTime,
    ) -> Result<crate::bank::throttle::Attempts, StoreError> {
        let mut conn = self.conn()?;
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
    pub fn clear_login_attempts(&self, scope: &str, key: &str) -> Result<(), StoreError> {
        self.conn()?
            .execute(
                "DELETE FROM login_attempts WHERE scope = ?1 AND key = ?2",
                params![scope, key],
            )
            .map(|_| ())
            .map_err(unavailable)
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

    /// Deletes expired rows, at most `batch` per table per statement and
    /// at most `rounds` statements per table: run in the background (the
    /// request paths never delete by expiry), each statement a short
    /// transaction through the expiry index. Consents, payments, the
    /// audit trail and the registry are never swept.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub fn sweep_expired(
        &self,
        now: UnixTime,
        batch: u32,
        rounds: u32,
    ) -> Result<Swept, StoreError> {
        let now = now.as_secs();
        let mut swept = Swept::default();
        for (table, column, before, count) in [
            ("jti", "expires_at", now, &mut swept.jti),
            ("idempotency", "expires_at", now, &mut swept.idempotency),
            (
                "pushed_requests",
                "expires_at",
                now - PUSHED_REQUEST_MEMORY_SECS,
                &mut swept.pushed_requests,
            ),
            (
                "codes",
                "expires_at",
                now - CODE_MEMORY_SECS,
                &mut swept.codes,
            ),
            (
                "revoked_tokens",
                "revoked_at",
                now - REVOKED_TOKEN_MEMORY_SECS,
                &mut swept.revoked_tokens,
            ),
        ] {
            let sql = format!(
                "DELETE FROM {table} WHERE rowid IN \
                 (SELECT rowid FROM {table} WHERE {column} <= ?1 LIMIT ?2)"
            );
            for _ in 0..rounds {
                // the lock is taken per batch: requests interleave
                let n = self
                    .conn()?
                    .prepare_cached(&sql)
                    .map_err(unavailable)?
                    .execute(params![before, batch])
                    .map_err(unavailable)?;
                *count += n;
                if n < usize::try_from(batch).unwrap_or(usize::MAX) {
                    break;
                }
            }
        }
        Ok(swept)
    }

    /// Calls `f` with the text of every statement this database runs from
    /// now (`None` stops): the query-plan test records what the request
    /// paths execute.
    #[doc(hidden)]
    pub fn trace_statements(&self, f: Option<fn(&str)>) -> Result<(), StoreError> {
        let conn = self.conn()?;
        match f {
            Some(f) => {
                *TRACE_FN
                    .lock()
                    .map_err(|_| unavailable("trace lock poisoned"))? = Some(f);
                conn.trace_v2(
                    rusqlite::trace::TraceEventCodes::SQLITE_TRACE_STMT,
                    Some(forward),
                );
            }
            None => conn.trace_v2(rusqlite::trace::TraceEventCodes::empty(), None),
        }
        Ok(())
    }

    pub(crate) fn conn(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        self.conn
            .lock()
            .map_err(|_| StoreError::unavailable("sqlite connection lock poisoned"))
    }

    fn insert_jti(
        &self,
        scope: &str,
        jti: &str,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(unavailable)?;
        tx.execute(
            "DELETE FROM jti WHERE scope = ?1 AND jti = ?2 AND expires_at <= ?3",
            params![scope, jti, now.as_secs()],
        )
        .map_err(unavailable)?;
        let inserted = tx
            .execute(
                "INSERT OR IGNORE INTO jti (scope, jti, expires_at) VALUES (?1, ?2, ?3)",
                params![scope, jti, expires_at.as_secs()],
            )
            .map_err(unavailable)?;
        tx.commit().map_err(unavailable)?;
        Ok(inserted == 1)
    }

    fn begin_idempotent(
        &self,
        client: &ClientId,
        key: &IdempotencyKey,
        body_hash: [u8; 32],
        now: UnixTime,
    ) -> Result<Begin, IdempotencyError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(unavailable)?;
        // a key past its window counts as new (the background sweep
        // deletes such rows; this request only replaces its own)
        let row: Option<(IdempotencyRow, i64)> = tx
            .prepare_cached(
                "SELECT body_hash, status, body, expires_at FROM idempotency WHERE client_id = ?1 AND key = ?2",
            )
            .map_err(unavailable)?
            .query_row(params![client.as_str(), key.as_str()], |r| {
                Ok(((r.get(0)?, r.get(1)?, r.get(2)?), r.get(3)?))
            })
            .optional()
            .map_err(unavailable)?;
        let row = match row {
            Some((_, expires_at)) if expires_at <= now.as_secs() => {
                tx.execute(
                    "DELETE FROM idempotency WHERE client_id = ?1 AND key = ?2",
                    params![client.as_str(), key.as_str()],
                )
                .map_err(unavailable)?;
                None
            }
            other => other.map(|(row, _)| row),
        };
        let outcome = match row {
            None => {
                tx.execute(
                    "INSERT INTO idempotency (client_id, key, body_hash, expires_at) VALUES (?1, ?2, ?3, ?4)",
                    params![client.as_str(), key.as_str(), &body_hash[..], now.saturating_add(WINDOW_SECS).as_secs()],
                )
                .map_err(unavailable)?;
                Ok(Begin::New)
            }
            Some((stored, status, body)) => {
                let response = match (status, body) {
                    (Some(status), Some(body)) => Some(StoredResponse {
                        status: u16::try_from(status).map_err(unavailable)?,
                        body,
                    }),
                    _ => None,
                };
                decide_existing(&stored, response, &body_hash)
            }
        };
        tx.commit().map_err(unavailable)?;
        outcome
    }

    fn complete_idempotent(
        &self,
        client: &ClientId,
        key: &IdempotencyKey,
        response: &StoredResponse,
    ) -> Result<(), IdempotencyError> {
        self.conn()?
            .execute(
                "UPDATE idempotency SET status = ?3, body = ?4 WHERE client_id = ?1 AND key = ?2 AND status IS NULL",
                params![client.as_str(), key.as_str(), i64::from(response.status), &response.body],
            )
            .map_err(unavailable)?;
        Ok(())
    }

    fn abandon_idempotent(
        &self,
        client: &ClientId,
        key: &IdempotencyKey,
    ) -> Result<(), IdempotencyError> {
        self.conn()?
            .execute(
                "DELETE FROM idempotency WHERE client_id = ?1 AND key = ?2 AND status IS NULL",
                params![client.as_str(), key.as_str()],
            )
            .map_err(unavailable)?;
        Ok(())
    }

    fn append_audit(&self, event: AuditEvent) -> Result<AuditEntry, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(unavailable)?;
        let entry = Self::append_in(&tx, event)?;
        tx.commit().map_err(unavailable)?;
        Ok(entry)
    }

    /// Appends `event` inside the caller's (immediate) transaction.
    fn append_in(tx: &Connection, event: AuditEvent) -> Result<AuditEntry, StoreError> {
        let last: Option<(i64, String, String, String)> = tx
            .prepare_cached(
                "SELECT seq, prev_hash, hash, event FROM audit WHERE seq = (SELECT MAX(seq) FROM audit)",
            )
            .map_err(unavailable)?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .optional()
            .map_err(unavailable)?;
        let prev = last.map(row_to_entry).transpose()?;
        let entry = AuditEntry::following(prev.as_ref(), event)?;
        let json = serde_json::to_string(&entry.event).map_err(unavailable)?;
        let seq = i64::try_from(entry.seq).map_err(unavailable)?;
        tx.execute(
            "INSERT INTO audit (seq, prev_hash, hash, event) VALUES (?1, ?2, ?3, ?4)",
            params![seq, entry.prev_hash, entry.hash, json],
        )
        .map_err(unavailable)?;
        Ok(entry)
    }

    fn audit_entries(&self, from_seq: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare("SELECT seq, prev_hash, hash, event FROM audit WHERE seq >= ?1 ORDER BY seq LIMIT ?2")
            .map_err(unavailable)?;
        let from = i64::try_from(from_seq).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(params![from, limit], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .map_err(unavailable)?;
        rows.map(|r| r.map_err(unavailable).and_then(row_to_entry))
            .collect()
    }
}

impl SqliteDb {
    fn create_consent(&self, consent: &Consent) -> Result<(), CreateError> {
        Self::create_in(&*self.conn()?, consent)
    }

    fn create_in(conn: &Connection, consent: &Consent) -> Result<(), CreateError> {
        let body = serde_json::to_string(consent).map_err(unavailable)?;
        let version = i64::try_from(consent.version()).map_err(unavailable)?;
        let inserted = conn
            .execute(
                "INSERT OR IGNORE INTO consents (id, customer_id, created_at, version, body) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![consent.id().as_str(), consent.customer_id(), consent.created_at().as_secs(), version, body],
            )
            .map_err(unavailable)?;
        if inserted == 1 {
            Ok(())
        } else {
            Err(CreateError::AlreadyExists)
        }
    }

    fn get_consent(&self, id: &ConsentId) -> Result<Option<Consent>, StoreError> {
        let body: Option<String> = self
            .conn()?
            .prepare_cached("SELECT body FROM consents WHERE id = ?1")
            .map_err(unavailable)?
            .query_row(params![id.as_str()], |r| r.get(0))
            .optional()
            .map_err(unavailable)?;
        // a row that no longer parses (or breaks a newtype's rules) is an
        // error, never a default
        body.map(|b| serde_json::from_str(&b).map_err(unavailable))
            .transpose()
    }

    fn swap_consent(&self, expected: u64, next: &Consent) -> Result<(), CasError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(unavailable)?;
        let outcome = Self::swap_in(&tx, expected, next);
        tx.commit().map_err(unavailable)?;
        outcome
    }

    /// The consent change and its audit entry in one transaction: a lost
    /// swap writes no entry, a failed append undoes the swap.
    fn swap_consent_audited(
        &self,
        expected: u64,
        next: &Consent,
        entry: AuditEvent,
    ) -> Result<(), CasError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(unavailable)?;
        Self::swap_in(&tx, expected, next)?;
        Self::append_in(&tx, entry)?;
        tx.commit().map_err(unavailable)?;
        Ok(())
    }

    fn create_consent_audited(
        &self,
        consent: &Consent,
        entry: AuditEvent,
    ) -> Result<(), CreateError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(unavailable)?;
        Self::create_in(&tx, consent)?;
        Self::append_in(&tx, entry)?;
        tx.commit().map_err(unavailable)?;
        Ok(())
    }

    fn swap_in(tx: &Connection, expected: u64, next: &Consent) -> Result<(), CasError> {
        if next.version() != expected + 1 {
            return Err(CasError::Conflict { current: expected });
        }
        let body = serde_json::to_string(next).map_err(unavailable)?;
        let (expected, version) = (
            i64::try_from(expected).map_err(unavailable)?,
            i64::try_from(next.version()).map_err(unavailable)?,
        );
        let updated = tx
            .execute(
                "UPDATE consents SET body = ?1, version = ?2, customer_id = ?3 WHERE id = ?4 AND version = ?5",
                params![body, version, next.customer_id(), next.id().as_str(), expected],
            )
            .map_err(unavailable)?;
        let outcome = if updated == 1 {
            Ok(())
        } else {
            let current: Option<i64> = tx
                .prepare_cached("SELECT version FROM consents WHERE id = ?1")
                .map_err(unavailable)?
                .query_row(params![next.id().as_str()], |r| r.get(0))
                .optional()
                .map_err(unavailable)?;
            match current {
                Some(v) => Err(CasError::Conflict {
                    current: u64::try_from(v).unwrap_or(0),
                }),
                None => Err(CasError::NotFound),
            }
        };
        outcome
    }

    fn consents_of(&self, customer_id: &str) -> Result<Vec<Consent>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare(
                "SELECT body FROM consents WHERE customer_id = ?1 ORDER BY created_at DESC, id DESC",
            )
            .map_err(unavailable)?;
        let rows = stmt
            .query_map(params![customer_id], |r| r.get::<_, String>(0))
            .map_err(unavailable)?;
        rows.map(|r| {
            r.map_err(unavailable)
                .and_then(|b| serde_json::from_str(&b).map_err(unavailable))
        })
        .collect()
    }
}

impl SqliteDb {
    fn load_code(
        tx: &rusqlite::Transaction<'_>,
        hash: &[u8; 32],
    ) -> Result<Option<fapi_core::code::StoredCode>, StoreError> {
        let body: Option<String> = tx
            .prepare_cached("SELECT body FROM codes WHERE hash = ?1")
            .map_err(unavailable)?
            .query_row(params![&hash[..]], |r| r.get(0))
            .optional()
            .map_err(unavailable)?;
        body.map(|b| serde_json::from_str(&b).map_err(unavailable))
            .transpose()
    }

    fn save_code(
        tx: &rusqlite::Transaction<'_>,
        hash: &[u8; 32],
        code: &fapi_core::code::StoredCode,
    ) -> Result<(), StoreError> {
        let body = serde_json::to_string(code).map_err(unavailable)?;
        tx.execute(
            "INSERT OR REPLACE INTO codes (hash, body, expires_at) VALUES (?1, ?2, ?3)",
            params![&hash[..], body, code.grant.expires_at.as_secs()],
        )
        .map_err(unavailable)?;
        Ok(())
    }

    fn redeem_code(
        &self,
        r: &fapi_core::code::Redemption<'_>,
    ) -> Result<fapi_core::code::CodeGrant, fapi_core::code::RedeemError> {
        let hash = r.code.hash();
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(unavailable)?;
        let stored = Self::load_code(&tx, &hash)?;
        let (grant, next) = fapi_core::code::decide(stored, r)?; // a refusal rolls back: nothing consumed
        Self::save_code(&tx, &hash, &next)?;
        tx.commit().map_err(unavailable)?;
        Ok(grant)
    }

    fn update_code(
        &self,
        code: &fapi_core::code::AuthorizationCode,
        f: impl FnOnce(&mut fapi_core::code::StoredCode),
    ) -> Result<(), StoreError> {
        let hash = code.hash();
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(unavailable)?;
        if let Some(mut stored) = Self::load_code(&tx, &hash)? {
            f(&mut stored);
            Self::save_code(&tx, &hash, &stored)?;
        }
        tx.commit().map_err(unavailable)
    }
}

impl fapi_core::code::AuthorizationCodeStore for SqliteDb {
    fn issue<'a>(
        &'a self,
        code: &'a fapi_core::code::AuthorizationCode,
        grant: fapi_core::code::CodeGrant,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let r = (|| {
            let hash = code.hash();
            let mut conn = self.conn()?;
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            Self::save_code(
                &tx,
                &hash,
                &fapi_core::code::StoredCode {
                    grant,
                    redeemed: None,
                },
            )?;
            tx.commit().map_err(unavailable)
        })();
        Box::pin(core::future::ready(r))
    }
    fn redeem<'a>(
        &'a self,
        r: &'a fapi_core::code::Redemption<'a>,
    ) -> BoxFuture<'a, Result<fapi_core::code::CodeGrant, fapi_core::code::RedeemError>> {
        Box::pin(core::future::ready(self.redeem_code(r)))
    }
    fn record_token<'a>(
        &'a self,
        code: &'a fapi_core::code::AuthorizationCode,
        jti: fapi_core::types::JwtId,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let r = self.update_code(code, |stored| {
            if let Some(issued) = stored.redeemed.as_mut() {
                issued.push(jti);
            }
        });
        Box::pin(core::future::ready(r))
    }
}

impl ConsentStore for SqliteDb {
    fn create(&self, consent: Consent) -> BoxFuture<'_, Result<(), CreateError>> {
        Box::pin(core::future::ready(self.create_consent(&consent)))
    }
    fn get<'a>(&'a self, id: &'a ConsentId) -> BoxFuture<'a, Result<Option<Consent>, StoreError>> {
        Box::pin(core::future::ready(self.get_consent(id)))
    }
    fn compare_and_swap(
        &self,
        expected_version: u64,
        next: Consent,
    ) -> BoxFuture<'_, Result<(), CasError>> {
        Box::pin(core::future::ready(
            self.swap_consent(expected_version, &next),
        ))
    }
    fn pending_payments(&self) -> BoxFuture<'_, Result<Vec<ConsentId>, StoreError>> {
        Box::pin(core::future::ready(self.pending_payment_consents()))
    }
    fn list_for_customer<'a>(
        &'a self,
        customer_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Consent>, StoreError>> {
        Box::pin(core::future::ready(self.consents_of(customer_id)))
    }

    /// One transaction when `audit` is this database (the bank's case);
    /// the composed default otherwise.
    fn compare_and_swap_audited<'a>(
        &'a self,
        audit: &'a dyn AuditLog,
        expected_version: u64,
        next: Consent,
        entry: AuditEvent,
    ) -> BoxFuture<'a, Result<(), CasError>> {
        if core::ptr::addr_eq(audit, self) {
            Box::pin(core::future::ready(self.swap_consent_audited(
                expected_version,
                &next,
                entry,
            )))
        } else {
            Box::pin(fapi_consent::store::compose_swap_audited(
                self,
                audit,
                expected_version,
                next,
                entry,
            ))
        }
    }

    fn create_audited<'a>(
        &'a self,
        audit: &'a dyn AuditLog,
        consent: Consent,
        entry: AuditEvent,
    ) -> BoxFuture<'a, Result<(), CreateError>> {
        if core::ptr::addr_eq(audit, self) {
            Box::pin(core::future::ready(
                self.create_consent_audited(&consent, entry),
            ))
        } else {
            Box::pin(fapi_consent::store::compose_create_audited(
                self, audit, consent, entry,
            ))
        }
    }

    fn page_for_customer<'a>(
        &'a self,
        customer_id: &'a str,
        after: Option<&'a fapi_consent::store::PageCursor>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Consent>, StoreError>> {
        Box::pin(core::future::ready(self.consent_page(
            customer_id,
            after,
            limit,
        )))
    }
}

impl SqliteDb {
    /// One page through the (customer, created_at, id) index: a seek to
    /// the cursor, never a scan of the customer's older consents.
    fn consent_page(
        &self,
        customer_id: &str,
        after: Option<&fapi_consent::store::PageCursor>,
        limit: usize,
    ) -> Result<Vec<Consent>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let conn = self.conn()?;
        let rows: Vec<String> = match after {
            None => conn
                .prepare_cached(
                    "SELECT body FROM consents WHERE customer_id = ?1
                     ORDER BY created_at DESC, id DESC LIMIT ?2",
                )
                .map_err(unavailable)?
                .query_map(params![customer_id, limit], |r| r.get(0))
                .map_err(unavailable)?
                .collect::<Result<_, _>>()
                .map_err(unavailable)?,
            Some(c) => conn
                .prepare_cached(
                    "SELECT body FROM consents WHERE customer_id = ?1 AND (created_at, id) < (?2, ?3)
                     ORDER BY created_at DESC, id DESC LIMIT ?4",
                )
                .map_err(unavailable)?
                .query_map(
                    params![customer_id, c.created_at.as_secs(), c.id.as_str(), limit],
                    |r| r.get(0),
                )
                .map_err(unavailable)?
                .collect::<Result<_, _>>()
                .map_err(unavailable)?,
        };
        rows.iter()
            .map(|b| serde_json::from_str(b).map_err(unavailable))
            .collect()
    }
}

/// An entry as stored. The event is read back exactly as written; if the
/// row was altered, verification of the chain says so.
fn row_to_entry(
    (seq, prev_hash, hash, event): (i64, String, String, String),
) -> Result<AuditEntry, StoreError> {
    Ok(AuditEntry {
        seq: u64::try_from(seq).map_err(unavailable)?,
        prev_hash,
        hash,
        event: serde_json::from_str(&event).map_err(unavailable)?,
    })
}

impl ReplayCache for SqliteDb {
    fn insert_if_absent<'a>(
        &'a self,
        scope: &'a str,
        jti: &'a str,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(core::future::ready(
            self.insert_jti(scope, jti, expires_at, now),
        ))
    }
}

impl IdempotencyStore for SqliteDb {
    fn begin<'a>(
        &'a self,
        client: &'a ClientId,
        key: &'a IdempotencyKey,
        body_hash: [u8; 32],
        now: UnixTime,
    ) -> BoxFuture<'a, Result<Begin, IdempotencyError>> {
        Box::pin(core::future::ready(
            self.begin_idempotent(client, key, body_hash, now),
        ))
    }
    fn complete<'a>(
        &'a self,
        client: &'a ClientId,
        key: &'a IdempotencyKey,
        response: StoredResponse,
    ) -> BoxFuture<'a, Result<(), IdempotencyError>> {
        Box::pin(core::future::ready(
            self.complete_idempotent(client, key, &response),
        ))
    }
    fn abandon<'a>(
        &'a self,
        client: &'a ClientId,
        key: &'a IdempotencyKey,
    ) -> BoxFuture<'a, Result<(), IdempotencyError>> {
        Box::pin(core::future::ready(self.abandon_idempotent(client, key)))
    }
}

impl AuditLog for SqliteDb {
    fn append(&self, event: AuditEvent) -> BoxFuture<'_, Result<AuditEntry, StoreError>> {
        Box::pin(core::future::ready(self.append_audit(event)))
    }
    fn entries(
        &self,
        from_seq: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<AuditEntry>, StoreError>> {
        Box::pin(core::future::ready(self.audit_entries(from_seq, limit)))
    }
}
