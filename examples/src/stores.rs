//! Start-up: opens the configured store (SQLite by default, PostgreSQL
//! when `store.database` is a `postgres://` URL) and hands the bank one
//! `Arc<dyn Trait>` per kind of state. With the adapters themselves
//! ([`crate::sqlite`], [`crate::ledger`], [`crate::postgres`] and the store crates) this is
//! the only code that names the database: the handlers, background tasks
//! and commands use the traits, so another backend is a new arm here and
//! in [`Backend`], not handler edits.

use std::sync::Arc;

use fapi_consent::audit::AuditLog;
use fapi_consent::idempotency::IdempotencyStore;
use fapi_consent::payment::PaymentStore;
use fapi_consent::ConsentStore;
use fapi_core::code::AuthorizationCodeStore;
use fapi_core::refresh::RefreshGrantStore;
use fapi_core::replay::ReplayCache;
use fapi_core::revocation::RevokedTokenStore;
use fapi_core::UnixTime;
use fapi_mtls_binding::registry::TppRegistry;
use fapi_par::{CurrentRegistration, ParConfig, PushedRequestStore};

use crate::bank::config::{BankConfig, CustomerConfig};
use crate::bank::live::LiveReads;
use crate::bank::tables::{CheckpointStore, Housekeeping, LoginAttemptStore, SigningKeyStore};
use crate::bank::StartError;
use crate::core_banking::CoreBanking;
use crate::ledger::SqliteLedger;
use crate::postgres::{PostgresCallReads, PostgresDb, PostgresLedger};
use crate::sqlite::SqliteDb;

/// The database behind the stores, for what only a backend can do
/// (bulk loading, statement traces); the bank itself never uses it.
#[derive(Clone, Debug)]
pub enum Backend {
    /// The embedded SQLite file `bank.db` in the data directory.
    Sqlite(SqliteDb),
    /// A PostgreSQL database several bank instances share.
    Postgres(PostgresDb),
}

/// Every kind of state the bank keeps, one trait object each.
#[derive(Clone, Debug)]
pub struct Stores {
    /// Consents.
    pub consents: Arc<dyn ConsentStore>,
    /// The audit trail.
    pub audit: Arc<dyn AuditLog>,
    /// `x-idempotency-key` outcomes.
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// `jti` replay entries.
    pub replay: Arc<dyn ReplayCache>,
    /// The TPP registry (also the directory every call consults).
    pub registry: Arc<dyn TppRegistry>,
    /// Authorization codes.
    pub codes: Arc<dyn AuthorizationCodeStore>,
    /// Revoked access-token ids.
    pub revoked: Arc<dyn RevokedTokenStore>,
    /// Refresh grants.
    pub refreshes: Arc<dyn RefreshGrantStore>,
    /// Payments.
    pub payments: Arc<dyn PaymentStore>,
    /// The per-call live reads, in one round trip.
    pub live: Arc<dyn LiveReads>,
    /// Failed logins.
    pub login_attempts: Arc<dyn LoginAttemptStore>,
    /// The signing-key schedule.
    pub signing_keys: Arc<dyn SigningKeyStore>,
    /// Audit checkpoints.
    pub checkpoints: Arc<dyn CheckpointStore>,
    /// The expiry sweep.
    pub housekeeping: Arc<dyn Housekeeping>,
    /// The mock core's ledger.
    pub ledger: Arc<dyn CoreBanking>,
    /// The database behind them.
    pub backend: Backend,
}

fn config_err(e: impl std::fmt::Display) -> StartError {
    StartError::Config(e.to_string())
}

/// Opens the configured store for a running bank (`store.dispatch`).
///
/// # Errors
/// [`StartError::Config`] if the store cannot be opened or migrated.
pub fn open(config: &BankConfig) -> Result<Stores, StartError> {
    if let Some(url) = config.store.postgres_url()? {
        return open_postgres(url, &config.store, config.store.pool_size);
    }
    let db = SqliteDb::open_with(&config.data_dir.join("bank.db"), &config.store.options()?)
        .map_err(config_err)?;
    Ok(Stores::of_sqlite(db))
}

/// Connects to PostgreSQL and applies the migrations. The pool's
/// connections run on the Tokio runtime of the caller's context (the
/// `bank` binary enters its runtime for every command).
fn open_postgres(
    url: &str,
    store: &crate::bank::config::StoreConfig,
    pool_size: usize,
) -> Result<Stores, StartError> {
    // start-up waits here for the migrations while the runtime's workers
    // drive the connections: a single-threaded runtime would wait forever
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::CurrentThread) | Err(_) => {
            return Err(StartError::Config(
                "a PostgreSQL store is opened inside a multi-threaded Tokio runtime".into(),
            ))
        }
        Ok(_) => {}
    }
    let tls = store.database_tls()?;
    let db = futures_executor::block_on(PostgresDb::connect(url, pool_size, tls.as_ref()))
        .map_err(|e| StartError::Config(format!("{}: {}", describe(url), cause_of(&e))))?;
    Ok(Stores::of_postgres(db))
}

/// The database a URL names, for a message: its name, user and hosts,
/// never the password the URL may carry.
fn describe(url: &str) -> String {
    use fapi_store_postgres::tokio_postgres::config::{Config, Host};
    let Ok(config) = url.parse::<Config>() else {
        return "the PostgreSQL URL in store.database".into();
    };
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(name) => name.clone(),
            Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    format!(
        "PostgreSQL database {} (user {}) on {}",
        config.get_dbname().unwrap_or("(default)"),
        config.get_user().unwrap_or("(default)"),
        hosts.join(",")
    )
}

/// The store error with its cause, for a start-up message (a URL's
/// password never reaches here: tokio-postgres' errors do not echo it,
/// and [`describe`] leaves it out).
fn cause_of(e: &fapi_core::StoreError) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Opens the configured store for a one-shot command (`bank tpp`,
/// `bank keys`, `bank verify-audit`): its statements run on the calling
/// thread.
///
/// # Errors
/// As [`open`].
pub fn open_for_command(config: &BankConfig) -> Result<Stores, StartError> {
    if let Some(url) = config.store.postgres_url()? {
        return open_postgres(url, &config.store, 2);
    }
    let options =
        fapi_store_sqlite::Options::default().with_dispatch(fapi_store_sqlite::Dispatch::Inline);
    let db = SqliteDb::open_with(&config.data_dir.join("bank.db"), &options).map_err(config_err)?;
    Ok(Stores::of_sqlite(db))
}

impl Stores {
    /// Every store in one SQLite database.
    pub fn of_sqlite(db: SqliteDb) -> Self {
        let store = db.store();
        let db_arc = Arc::new(db.clone());
        Self {
            consents: Arc::new(store.consents()),
            audit: Arc::new(store.audit_log()),
            idempotency: Arc::new(store.idempotency()),
            replay: Arc::new(store.replay_cache()),
            registry: Arc::new(store.directory()),
            codes: Arc::new(store.codes()),
            revoked: Arc::new(store.revoked_tokens()),
            refreshes: Arc::new(store.refresh_grants()),
            payments: Arc::new(store.payments()),
            live: Arc::new(store.live_reads()),
            login_attempts: db_arc.clone(),
            signing_keys: db_arc.clone(),
            checkpoints: db_arc.clone(),
            housekeeping: db_arc,
            ledger: Arc::new(SqliteLedger::new(Arc::new(db.clone()))),
            backend: Backend::Sqlite(db),
        }
    }

    /// Every store in one PostgreSQL database (migrated).
    pub fn of_postgres(db: PostgresDb) -> Self {
        let store = db.store();
        let db_arc = Arc::new(db.clone());
        Self {
            consents: Arc::new(store.consents()),
            audit: Arc::new(store.audit_log()),
            idempotency: Arc::new(store.idempotency()),
            replay: Arc::new(store.replay_cache()),
            registry: Arc::new(store.directory()),
            codes: Arc::new(store.codes()),
            revoked: Arc::new(store.revoked_tokens()),
            refreshes: Arc::new(store.refresh_grants()),
            payments: Arc::new(store.payments()),
            live: Arc::new(PostgresCallReads(store.live_reads())),
            login_attempts: db_arc.clone(),
            signing_keys: db_arc.clone(),
            checkpoints: db_arc.clone(),
            housekeeping: db_arc,
            ledger: Arc::new(PostgresLedger::new(db.clone())),
            backend: Backend::Postgres(db),
        }
    }

    /// The pushed-request store, re-validating a stored request against
    /// the registration `registrations` reads now.
    pub fn pushed_requests(
        &self,
        config: ParConfig,
        registrations: Arc<dyn CurrentRegistration>,
    ) -> Arc<dyn PushedRequestStore> {
        match &self.backend {
            Backend::Sqlite(db) => Arc::new(db.store().pushed_requests(config, registrations)),
            Backend::Postgres(db) => Arc::new(db.store().pushed_requests(config, registrations)),
        }
    }

    /// Opens each configured account in the ledger with its opening
    /// balance, unless it exists (balances and bookings survive a
    /// restart).
    ///
    /// # Errors
    /// [`StartError::Config`].
    pub fn open_accounts(
        &self,
        customers: &[CustomerConfig],
        at: UnixTime,
    ) -> Result<(), StartError> {
        for c in customers {
            for a in &c.accounts {
                let minor = crate::core_banking::to_minor(&a.opening_balance).ok_or_else(|| {
                    StartError::Config(format!("opening balance of {} is not an amount", a.id))
                })?;
                match &self.backend {
                    Backend::Sqlite(db) => SqliteLedger::new(Arc::new(db.clone()))
                        .open(&a.id, &c.id, &a.name, minor, at)
                        .map_err(config_err)?,
                    // another instance may open it at the same moment: one
                    // insert wins, the other finds it open
                    Backend::Postgres(db) => futures_executor::block_on(
                        PostgresLedger::new(db.clone()).open(&a.id, &c.id, &a.name, minor, at),
                    )
                    .map_err(config_err)?,
                };
            }
        }
        Ok(())
    }

    /// The SQLite database, when that is the backend.
    pub fn sqlite(&self) -> Option<&SqliteDb> {
        match &self.backend {
            Backend::Sqlite(db) => Some(db),
            Backend::Postgres(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_up_message_names_the_database_without_its_password() {
        let text = describe("postgres://bank:s3cret-pw@db.internal:5433/ledger?sslmode=require");
        assert_eq!(
            text,
            "PostgreSQL database ledger (user bank) on db.internal"
        );
        assert!(!text.contains("s3cret-pw"));
        // an unparsable URL is not echoed either (it may hold a password)
        let text = describe("postgres://bank:s3cret-pw@db.internal:notaport/ledger");
        assert!(!text.contains("s3cret-pw"), "{text}");
    }
}
