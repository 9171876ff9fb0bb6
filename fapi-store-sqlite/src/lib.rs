//! SQLite adapters for every store trait of the fapi crate family: one
//! database file (WAL), one connection pool, one adapter type per trait.
//!
//! ```no_run
//! # fn main() -> Result<(), fapi_core::store::StoreError> {
//! use std::sync::Arc;
//! use fapi_store_sqlite::SqliteStore;
//!
//! let store = SqliteStore::open(std::path::Path::new("bank.db"))?;
//! let consents: Arc<dyn fapi_consent::ConsentStore> = Arc::new(store.consents());
//! let audit: Arc<dyn fapi_consent::audit::AuditLog> = Arc::new(store.audit_log());
//! let replay: Arc<dyn fapi_core::replay::ReplayCache> = Arc::new(store.replay_cache());
//! # Ok(()) }
//! ```
//!
//! | trait | adapter | table |
//! |---|---|---|
//! | [`fapi_core::replay::ReplayCache`] | [`SqliteReplayCache`] | `jti` |
//! | [`fapi_core::code::AuthorizationCodeStore`] | [`SqliteCodeStore`] | `codes` (SHA-256 of the code only) |
//! | [`fapi_core::refresh::RefreshGrantStore`] | [`SqliteRefreshGrantStore`] | `refresh_tokens` (SHA-256 only) |
//! | [`fapi_core::revocation::RevokedTokenStore`] | [`SqliteRevokedTokenStore`] | `revoked_tokens` |
//! | [`fapi_consent::ConsentStore`] | [`SqliteConsentStore`] | `consents` |
//! | [`fapi_consent::audit::AuditLog`] | [`SqliteAuditLog`] | `audit` |
//! | [`fapi_consent::idempotency::IdempotencyStore`] | [`SqliteIdempotencyStore`] | `idempotency` |
//! | [`fapi_consent::payment::PaymentStore`] | [`SqlitePaymentStore`] | `payments` |
//! | [`fapi_par::PushedRequestStore`] | [`SqlitePushedRequestStore`] | `pushed_requests` (SHA-256 of the `request_uri`) |
//! | [`fapi_mtls_binding::registry::TppRegistry`] and [`fapi_mtls_binding::directory::TppDirectory`] | [`SqliteDirectory`] | `clients`, `revoked_certificates` |
//!
//! Each adapter passes its crate's conformance kit (`tests/kits.rs`),
//! including the races. Guarantees that span tables hold in one
//! transaction: a consent change and its audit entry
//! ([`SqliteConsentStore`] with this store's [`SqliteAuditLog`]), a token
//! revocation and the refresh grants it names. [`SqliteLiveReads`] answers
//! a resource call's three live reads (revoked token, directory standing,
//! consent) in one statement.
//!
//! # Threads
//! Statements never run on the task that awaits them: by default on the
//! store's own threads ([`Dispatch::Threads`]), or on the caller's
//! blocking pool ([`Dispatch::Spawn`]); [`Dispatch::Inline`] is for
//! command-line tools. Writes go through one writer connection (`BEGIN
//! IMMEDIATE` for every read-modify-write); reads through read-only
//! connections that see every committed write. Several processes may open
//! one file: SQLite's file locks order their writers (`busy_timeout`).
//!
//! # What each guarantee relies on
//! SQLite has one writer at a time per file; a `BEGIN IMMEDIATE`
//! transaction takes that lock before its first read, so a read followed
//! by a write inside one cannot interleave with another writer, in this
//! process or another. No statement relies on anything weaker.
//!
//! | guarantee | statement | relies on |
//! |---|---|---|
//! | `jti` single use | `INSERT OR IGNORE` into `jti` (after deleting that key's expired row), in an `IMMEDIATE` transaction | the primary key `(scope, jti)`: one insert wins |
//! | code single use, replay revokes | load, decide, save the code row in an `IMMEDIATE` transaction | the write lock |
//! | `request_uri` single use | `UPDATE pushed_requests SET used = 1 WHERE uri_hash = ? AND used = 0` | the row count (1 for exactly one caller) |
//! | consent compare-and-swap | `UPDATE consents ... WHERE id = ? AND version = ?`, with its audit entry in the same `IMMEDIATE` transaction | the version column and the row count |
//! | payment reservation (`PaymentPending`) | the consent compare-and-swap above | as above |
//! | one payment per consent | `INSERT OR IGNORE INTO payments` then read back by consent | the `UNIQUE` `consent_id` column |
//! | idempotency key | insert or read the key's row in an `IMMEDIATE` transaction; the outcome written `WHERE status IS NULL` | the primary key `(client_id, key)` and the write lock |
//! | audit chain | read the head and insert the next `seq` in one `IMMEDIATE` transaction | the write lock and the primary key `seq` |
//! | one certificate per client, no silent reinstatement | check and upsert `clients` in one `IMMEDIATE` transaction | the write lock, backed by the `UNIQUE` `certificate` column |
//! | live reads | one `SELECT` of sub-queries | one read transaction: one snapshot |
//!
//! # Growth
//! Every statement a request path runs is a lookup by key or a seek
//! through an index; rows that expire are deleted by
//! [`SqliteStore::sweep_expired`], in bounded batches, off the request
//! path. Consents, payments, the audit trail and the registry are never
//! swept.
//!
//! # Errors
//! Every failure is [`StoreError::Unavailable`] with the SQLite error as
//! its source: fixed text for a client, the cause for the log.

mod audit;
mod code;
mod consent;
mod directory;
mod grants;
mod idempotency;
mod live;
mod payment;
mod pool;
mod pushed;
mod replay;
mod schema;
mod sweep;

use std::path::Path;
use std::sync::{Arc, Mutex};

use fapi_core::store::{BoxFuture, StoreError};

pub use audit::SqliteAuditLog;
pub use code::SqliteCodeStore;
pub use consent::SqliteConsentStore;
pub use directory::SqliteDirectory;
pub use fapi_core::store::{
    Swept, CODE_MEMORY_SECS, PUSHED_REQUEST_MEMORY_SECS, REVOKED_TOKEN_MEMORY_SECS,
};
pub use grants::{SqliteRefreshGrantStore, SqliteRevokedTokenStore};
pub use idempotency::SqliteIdempotencyStore;
pub use live::{CallState, SqliteLiveReads};
pub use payment::SqlitePaymentStore;
pub use pool::{Dispatch, Job, Options, Spawner};
pub use pushed::SqlitePushedRequestStore;
pub use replay::SqliteReplayCache;
/// The `rusqlite` these adapters are built on, for an application's own
/// tables in the same file.
pub use rusqlite;
pub use schema::SCHEMA;

use pool::{Pool, Role};

/// One SQLite database: the connection pool every adapter shares. Cheap to
/// clone (a handle).
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: Arc<Pool>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` with the default
    /// [`Options`], creating the tables and migrating an older layout.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the file cannot be opened or migrated.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, &Options::default())
    }

    /// [`SqliteStore::open`] with `options`.
    ///
    /// # Errors
    /// As [`SqliteStore::open`], or if the store's threads cannot start.
    pub fn open_with(path: &Path, options: &Options) -> Result<Self, StoreError> {
        let pool = Pool::open(path, options, schema::migrate)?;
        Ok(Self {
            pool: Arc::new(pool),
        })
    }

    /// The writer connection, on the calling thread (it blocks while
    /// another statement writes, and every write of the store waits while
    /// it is held): for an application's own tables at start-up or in a
    /// command-line tool. On an async runtime use [`SqliteStore::write`].
    pub fn connection(&self) -> std::sync::MutexGuard<'_, rusqlite::Connection> {
        self.pool.writer()
    }

    /// Runs `f` with the writer connection where the store's statements
    /// run ([`Dispatch`]): an application's own tables, from async code.
    pub fn write<T, E>(
        &self,
        f: impl FnOnce(&mut rusqlite::Connection) -> Result<T, E> + Send + 'static,
    ) -> BoxFuture<'static, Result<T, E>>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        pool::run(&self.pool, Role::Write, f)
    }

    /// [`SqliteStore::write`] with a read-only connection.
    pub fn read<T, E>(
        &self,
        f: impl FnOnce(&mut rusqlite::Connection) -> Result<T, E> + Send + 'static,
    ) -> BoxFuture<'static, Result<T, E>>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        pool::run(&self.pool, Role::Read, f)
    }

    /// The `jti` replay cache.
    pub fn replay_cache(&self) -> SqliteReplayCache {
        SqliteReplayCache::new(self.clone())
    }

    /// The consents.
    pub fn consents(&self) -> SqliteConsentStore {
        SqliteConsentStore::new(self.clone())
    }

    /// The audit trail.
    pub fn audit_log(&self) -> SqliteAuditLog {
        SqliteAuditLog::new(self.clone())
    }

    /// The `x-idempotency-key` store.
    pub fn idempotency(&self) -> SqliteIdempotencyStore {
        SqliteIdempotencyStore::new(self.clone())
    }

    /// The authorization codes.
    pub fn codes(&self) -> SqliteCodeStore {
        SqliteCodeStore::new(self.clone())
    }

    /// The refresh grants.
    pub fn refresh_grants(&self) -> SqliteRefreshGrantStore {
        SqliteRefreshGrantStore::new(self.clone())
    }

    /// The revoked access-token ids.
    pub fn revoked_tokens(&self) -> SqliteRevokedTokenStore {
        SqliteRevokedTokenStore::new(self.clone())
    }

    /// The payments.
    pub fn payments(&self) -> SqlitePaymentStore {
        SqlitePaymentStore::new(self.clone())
    }

    /// The TPP registry, which is also the directory.
    pub fn directory(&self) -> SqliteDirectory {
        SqliteDirectory::new(self.clone())
    }

    /// The per-call live reads.
    pub fn live_reads(&self) -> SqliteLiveReads {
        SqliteLiveReads::new(self.clone())
    }

    /// The pushed requests, re-validated on every read with `config`
    /// against the client's registration now (from `registrations`).
    pub fn pushed_requests(
        &self,
        config: fapi_par::ParConfig,
        registrations: Arc<dyn fapi_par::CurrentRegistration>,
    ) -> SqlitePushedRequestStore {
        SqlitePushedRequestStore::new(self.clone(), config, registrations)
    }

    /// Calls `f` with the text of every statement every connection of
    /// this store runs from now (`None` stops, for this store's
    /// connections only): a query-plan test records what a request path
    /// executes. One tracer function per process: the last `Some` is what
    /// every traced store calls.
    #[doc(hidden)]
    pub fn trace_statements(&self, f: Option<fn(&str)>) {
        if let (Some(f), Ok(mut slot)) = (f, TRACE_FN.lock()) {
            *slot = Some(f);
        }
        self.pool.each(|conn| match f {
            Some(_) => conn.trace_v2(
                rusqlite::trace::TraceEventCodes::SQLITE_TRACE_STMT,
                Some(forward),
            ),
            None => conn.trace_v2(rusqlite::trace::TraceEventCodes::empty(), None),
        });
    }

    pub(crate) fn run<T, E>(
        &self,
        role: Role,
        f: impl FnOnce(&mut rusqlite::Connection) -> Result<T, E> + Send + 'static,
    ) -> BoxFuture<'static, Result<T, E>>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        pool::run(&self.pool, role, f)
    }

    /// Whether `other` is a handle on this same pool.
    pub(crate) fn same_as(&self, other: &SqliteStore) -> bool {
        Arc::ptr_eq(&self.pool, &other.pool)
    }
}

/// The statement tracer set by [`SqliteStore::trace_statements`].
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
