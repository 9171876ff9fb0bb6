//! PostgreSQL adapters for every store trait of the fapi crate family, for
//! a bank that runs several instances of its servers on one database.
//!
//! [`PostgresStore`] wraps a `deadpool-postgres` pool (yours, handed in with
//! [`PostgresStore::new`], or one built by [`PostgresStore::connect`]); each
//! adapter borrows a connection per operation and runs prepared statements.
//! The schema is created and upgraded only by an explicit
//! [`PostgresStore::migrate`] (versioned, idempotent, safe when several
//! instances start at once); the SQL is [`MIGRATIONS`]. TLS to the database
//! is rustls ([`PostgresStore::connect_tls`] with a [`DatabaseTls`]): the
//! certificate chain and host name are checked and a connection is never
//! downgraded to plaintext.
//!
//! ## What each guarantee relies on
//!
//! Only row locks, unique constraints and single statements, at the
//! default `READ COMMITTED` isolation: no advisory locks and no
//! `LISTEN/NOTIFY` on a correctness path, so the same SQL runs on the
//! PostgreSQL-compatible distributed engines. No statement needs
//! `SERIALIZABLE`, so none can fail with a serialization error (`40001`) and
//! nothing is retried: a read-decide-write locks the row it decides on
//! (`SELECT … FOR UPDATE`) before reading it, and an insert race is decided
//! by the conflict clause of one statement. Every adapter passes its trait's
//! conformance kit (races included) on a real server, and the races that
//! matter across instances (one jti, one code, one `request_uri`, one
//! certificate, the audit chain, a consent swap, a payment) are also run
//! with two pools, as two service instances.
//!
//! | guarantee | statement |
//! |---|---|
//! | a `jti` is used once ([`PostgresReplayCache`]) | one `INSERT … ON CONFLICT DO UPDATE … WHERE expired`: the row count says whether this call won |
//! | a code is redeemed once ([`PostgresCodeStore`]) | `SELECT … FOR UPDATE` of the code's row, the decision, the `UPDATE`, in one transaction: racing redemptions queue on the row lock and the second sees the first's result |
//! | a revoked token is refused on every instance ([`PostgresRevokedTokenStore`]) | `INSERT … ON CONFLICT DO NOTHING`, read by the next call's `SELECT` (no cache) |
//! | a revoked refresh grant is never found again ([`PostgresRefreshGrantStore`]) | `DELETE` by id, in the revocation's transaction |
//! | a consent changes only from the version read ([`PostgresConsentStore`]) | `UPDATE … WHERE id = … AND version = expected`; racing swaps queue on the row lock, the loser matches no row |
//! | a consent change and its audit entry commit together | both in one transaction when the log is this store's [`PostgresAuditLog`] |
//! | the audit trail is one chain across instances ([`PostgresAuditLog`]) | `SELECT … FOR UPDATE` of the single `fapi_audit_head` row before reading the last entry and appending |
//! | an idempotency key is claimed once ([`PostgresIdempotencyStore`]) | one `INSERT … ON CONFLICT DO UPDATE … WHERE expired` |
//! | one payment per consent ([`PostgresPaymentStore`]) | `UNIQUE (consent_id)` and `INSERT … ON CONFLICT DO NOTHING` |
//! | a `request_uri` is taken once ([`PostgresPushedRequestStore`]) | `SELECT … FOR UPDATE`, the checks, `UPDATE … SET used`, one transaction |
//! | a certificate belongs to one client; a revoked TPP is not re-registered ([`PostgresDirectory`]) | `UNIQUE (certificate)`; one `INSERT … ON CONFLICT DO UPDATE … WHERE NOT revoked` |
//! | a revocation stops every instance's next call ([`PostgresLiveReads`]) | the revoked token, the directory standing and the consent in one `SELECT`, per call, never cached |

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod audit;
mod code;
mod consent;
mod directory;
mod grants;
mod idempotency;
mod live;
mod payment;
mod pushed;
mod replay;
mod schema;
mod sweep;
#[cfg(feature = "testing")]
pub mod testing;
mod tls;

use std::sync::Arc;

use fapi_core::store::StoreError;

pub use audit::PostgresAuditLog;
pub use code::PostgresCodeStore;
pub use consent::PostgresConsentStore;
/// The `deadpool-postgres` these adapters are built on, for an
/// application's own pool and tables.
pub use deadpool_postgres;
pub use directory::PostgresDirectory;
pub use grants::{PostgresRefreshGrantStore, PostgresRevokedTokenStore};
pub use idempotency::PostgresIdempotencyStore;
pub use live::PostgresLiveReads;
pub use payment::PostgresPaymentStore;
pub use pushed::PostgresPushedRequestStore;
pub use replay::PostgresReplayCache;
pub use schema::MIGRATIONS;
pub use tls::DatabaseTls;
/// The `tokio-postgres` client.
pub use tokio_postgres;

/// One PostgreSQL database: the pool every adapter shares. Cheap to clone
/// (a handle). Every operation runs on a connection of the pool, so each
/// adapter method must be awaited inside a Tokio runtime.
#[derive(Clone)]
pub struct PostgresStore {
    pool: deadpool_postgres::Pool,
    /// Shared by the clones of one store, so an adapter can tell its own
    /// pool (one transaction can span two adapters) from another.
    identity: Arc<()>,
}

impl core::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let status = self.pool.status();
        f.debug_struct("PostgresStore")
            .field("max_size", &status.max_size)
            .field("size", &status.size)
            .finish()
    }
}

impl PostgresStore {
    /// The adapters over `pool` (the service's own pool: its size, TLS and
    /// timeouts are the service's choice).
    pub fn new(pool: deadpool_postgres::Pool) -> Self {
        Self {
            pool,
            identity: Arc::new(()),
        }
    }

    /// A pool of at most `max_size` connections to `config`, without TLS
    /// (a database on the same host or a private network). For TLS to the
    /// database use [`PostgresStore::connect_tls`], or build the pool with
    /// your own `MakeTlsConnect` and use [`PostgresStore::new`].
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if `config` says `sslmode=require` (this
    /// pool has no TLS to offer) or the pool cannot be built.
    pub fn connect(config: tokio_postgres::Config, max_size: usize) -> Result<Self, StoreError> {
        if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
            return Err(unavailable(
                "sslmode=require needs TLS to the database: use connect_tls with the database's CA",
            ));
        }
        Self::with_manager(config, tokio_postgres::NoTls, max_size)
    }

    fn with_manager<T>(
        config: tokio_postgres::Config,
        tls: T,
        max_size: usize,
    ) -> Result<Self, StoreError>
    where
        T: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>
            + Clone
            + Send
            + Sync
            + 'static,
        T::Stream: Sync + Send,
        T::TlsConnect: Sync + Send,
        <T::TlsConnect as tokio_postgres::tls::TlsConnect<tokio_postgres::Socket>>::Future: Send,
    {
        let manager = deadpool_postgres::Manager::from_config(
            config,
            tls,
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        let pool = deadpool_postgres::Pool::builder(manager)
            .max_size(max_size)
            .build()
            .map_err(unavailable)?;
        Ok(Self::new(pool))
    }

    /// Creates the tables and applies every migration not applied yet, in
    /// order, each in its own transaction with its version recorded. Safe
    /// to call from every instance at start-up: concurrent callers queue on
    /// a lock of the version table and each migration runs once.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the database refuses.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        schema::migrate(&mut client, "fapi", MIGRATIONS).await
    }

    /// Applies an application's own `migrations` (its tables beside the
    /// family's, in the same database) the way [`PostgresStore::migrate`]
    /// applies [`MIGRATIONS`]: each once, in order, recorded under
    /// `component` in `fapi_schema_migrations`.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the database refuses.
    pub async fn migrate_component(
        &self,
        component: &str,
        migrations: &[(i32, &str)],
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        schema::migrate(&mut client, component, migrations).await
    }

    /// The pool.
    pub fn pool(&self) -> &deadpool_postgres::Pool {
        &self.pool
    }

    /// Whether `other` is a clone of this store (the same pool).
    pub(crate) fn same_as(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.identity, &other.identity)
    }

    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(unavailable)
    }

    /// The `jti` replay cache.
    pub fn replay_cache(&self) -> PostgresReplayCache {
        PostgresReplayCache::new(self.clone())
    }

    /// The authorization codes.
    pub fn codes(&self) -> PostgresCodeStore {
        PostgresCodeStore::new(self.clone())
    }

    /// The refresh grants.
    pub fn refresh_grants(&self) -> PostgresRefreshGrantStore {
        PostgresRefreshGrantStore::new(self.clone())
    }

    /// The revoked access-token ids.
    pub fn revoked_tokens(&self) -> PostgresRevokedTokenStore {
        PostgresRevokedTokenStore::new(self.clone())
    }

    /// The consents.
    pub fn consents(&self) -> PostgresConsentStore {
        PostgresConsentStore::new(self.clone())
    }

    /// The audit trail.
    pub fn audit_log(&self) -> PostgresAuditLog {
        PostgresAuditLog::new(self.clone())
    }

    /// The `x-idempotency-key` store.
    pub fn idempotency(&self) -> PostgresIdempotencyStore {
        PostgresIdempotencyStore::new(self.clone())
    }

    /// The payments.
    pub fn payments(&self) -> PostgresPaymentStore {
        PostgresPaymentStore::new(self.clone())
    }

    /// The TPP registry, which is also the directory.
    pub fn directory(&self) -> PostgresDirectory {
        PostgresDirectory::new(self.clone())
    }

    /// The per-call live reads, one statement per call.
    pub fn live_reads(&self) -> PostgresLiveReads {
        PostgresLiveReads::new(self.clone())
    }

    /// The pushed requests, re-validated on every read with `config`
    /// against the client's registration now (from `registrations`).
    pub fn pushed_requests(
        &self,
        config: fapi_par::ParConfig,
        registrations: Arc<dyn fapi_par::CurrentRegistration>,
    ) -> PostgresPushedRequestStore {
        PostgresPushedRequestStore::new(self.clone(), config, registrations)
    }
}

pub(crate) fn unavailable(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StoreError {
    StoreError::unavailable(e)
}
