//! The bank's PostgreSQL backend: several bank instances on one database.
//! The crate family's state goes through the `fapi-store-postgres`
//! adapters ([`PostgresDb::store`]); the bank's own tables live beside
//! them, created by the bank's migrations ([`BANK_MIGRATIONS`], applied
//! with the family's under the component `bank`), and [`PostgresDb`]
//! implements their traits ([`crate::bank::tables`]). [`PostgresLedger`]
//! is the mock core on the same database. Only [`crate::stores`]
//! (start-up) names these types.
//!
//! # What the statements rely on
//! Row locks only (no advisory locks, no `LISTEN/NOTIFY`), as in
//! `fapi-store-postgres`: a failed login locks its counter row; the first
//! key and a rotation lock the one row of `bank_signing_key_schedule`; a
//! payment locks the debtor's account row, then looks for a booking of its
//! reference (so the second of two racing submissions finds the first's),
//! and the reference is `UNIQUE` besides.

use fapi_core::store::{BoxFuture, StoreError};
use fapi_core::{CertificateThumbprint, ClientId, ConsentId, JwtId, UnixTime};
use fapi_store_postgres::tokio_postgres::{self, Row, Transaction as PgTransaction};
use fapi_store_postgres::{DatabaseTls, PostgresLiveReads, PostgresStore};

use crate::bank::keys::KeyRecord;
use crate::bank::live::{CallState, LiveReads};
use crate::bank::tables::{
    CheckpointStore, Housekeeping, LoginAttemptStore, SigningKeyStore, Swept,
};
use crate::bank::throttle::{Attempts, Rule};
use crate::core_banking::{Booking, CoreBanking, CoreError, CoreFuture, Minor, Transaction};

/// The bank's own tables and the mock core's, as numbered migrations.
pub const BANK_MIGRATIONS: &[(i32, &str)] = &[(
    1,
    "
CREATE TABLE bank_checkpoints (seq BIGINT PRIMARY KEY, jws TEXT NOT NULL);
CREATE TABLE bank_login_attempts (
    scope TEXT NOT NULL, key TEXT NOT NULL, failures INTEGER NOT NULL, window_start BIGINT NOT NULL,
    locked_until BIGINT NOT NULL, lockouts INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE TABLE bank_signing_keys (
    kid TEXT PRIMARY KEY, alg TEXT NOT NULL, public_jwk TEXT NOT NULL, created_at BIGINT NOT NULL,
    activates_at BIGINT NOT NULL, retires_at BIGINT, publish_until BIGINT
);
CREATE TABLE bank_signing_key_schedule (one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one));
INSERT INTO bank_signing_key_schedule DEFAULT VALUES;
CREATE TABLE core_accounts (
    id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, name TEXT NOT NULL, balance BIGINT NOT NULL
);
CREATE INDEX core_accounts_by_customer ON core_accounts (customer_id);
CREATE TABLE core_transactions (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, account TEXT NOT NULL,
    booked_at BIGINT NOT NULL, amount BIGINT NOT NULL, counterparty TEXT NOT NULL,
    reference TEXT NOT NULL, payment_ref TEXT UNIQUE, balance_after BIGINT NOT NULL
);
CREATE INDEX core_transactions_by_account ON core_transactions (account, booked_at);
",
)];

/// The bank's PostgreSQL database.
#[derive(Clone, Debug)]
pub struct PostgresDb {
    store: PostgresStore,
}

fn unavailable(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StoreError {
    StoreError::unavailable(e)
}

fn time(secs: i64) -> Result<UnixTime, StoreError> {
    UnixTime::from_secs(secs).ok_or_else(|| unavailable("a stored time is out of range"))
}

impl PostgresDb {
    /// Connects to `url` (a `postgres://` URL) with a pool of `max_size`
    /// connections, over TLS when `tls` is given, and applies the family's
    /// and the bank's migrations.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the URL does not parse or contradicts
    /// `tls`, the server does not answer (or its certificate is not
    /// trusted) or a migration fails.
    pub async fn connect(
        url: &str,
        max_size: usize,
        tls: Option<&DatabaseTls>,
    ) -> Result<Self, StoreError> {
        let config: tokio_postgres::Config = url.parse().map_err(unavailable)?;
        let store = match tls {
            Some(tls) => PostgresStore::connect_tls(config, max_size, tls)?,
            None => PostgresStore::connect(config, max_size)?,
        };
        store.migrate().await?;
        store.migrate_component("bank", BANK_MIGRATIONS).await?;
        Ok(Self { store })
    }

    /// The bank over `store`, whose family and bank migrations have been
    /// applied.
    pub fn from_store(store: PostgresStore) -> Self {
        Self { store }
    }

    /// The crate family's stores in this database.
    pub fn store(&self) -> &PostgresStore {
        &self.store
    }

    async fn client(&self) -> Result<fapi_store_postgres::deadpool_postgres::Object, StoreError> {
        self.store.pool().get().await.map_err(unavailable)
    }
}

fn attempts_of(row: Option<Row>) -> Result<Attempts, StoreError> {
    let Some(r) = row else {
        return Ok(Attempts::default());
    };
    let count = |i: usize| -> Result<u32, StoreError> {
        u32::try_from(r.try_get::<_, i32>(i).map_err(unavailable)?).map_err(unavailable)
    };
    Ok(Attempts {
        failures: count(0)?,
        window_start: r.try_get(1).map_err(unavailable)?,
        locked_until: r.try_get(2).map_err(unavailable)?,
        lockouts: count(3)?,
    })
}

const ATTEMPTS: &str = "SELECT failures, window_start, locked_until, lockouts
    FROM bank_login_attempts WHERE scope = $1 AND key = $2";

impl LoginAttemptStore for PostgresDb {
    fn attempts<'a>(
        &'a self,
        scope: &'static str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Attempts, StoreError>> {
        Box::pin(async move {
            let db = self.client().await?;
            let st = db.prepare_cached(ATTEMPTS).await.map_err(unavailable)?;
            attempts_of(
                db.query_opt(&st, &[&scope, &key])
                    .await
                    .map_err(unavailable)?,
            )
        })
    }

    /// The counter row is created if absent, then locked (`FOR UPDATE`)
    /// before it is read: racing failures on any instance are all counted.
    fn record_failure<'a>(
        &'a self,
        scope: &'static str,
        key: &'a str,
        rule: Rule,
        now: UnixTime,
    ) -> BoxFuture<'a, Result<Attempts, StoreError>> {
        Box::pin(async move {
            let mut db = self.client().await?;
            let tx = db.transaction().await.map_err(unavailable)?;
            tx.execute(
                "INSERT INTO bank_login_attempts (scope, key, failures, window_start, locked_until, lockouts)
                 VALUES ($1, $2, 0, 0, 0, 0) ON CONFLICT (scope, key) DO NOTHING",
                &[&scope, &key],
            )
            .await
            .map_err(unavailable)?;
            let before = attempts_of(
                tx.query_opt(&format!("{ATTEMPTS} FOR UPDATE"), &[&scope, &key])
                    .await
                    .map_err(unavailable)?,
            )?;
            let after = rule.failed(before, now.as_secs());
            let count = |n: u32| i32::try_from(n).map_err(unavailable);
            tx.execute(
                "UPDATE bank_login_attempts
                 SET failures = $3, window_start = $4, locked_until = $5, lockouts = $6
                 WHERE scope = $1 AND key = $2",
                &[
                    &scope,
                    &key,
                    &count(after.failures)?,
                    &after.window_start,
                    &after.locked_until,
                    &count(after.lockouts)?,
                ],
            )
            .await
            .map_err(unavailable)?;
            tx.commit().await.map_err(unavailable)?;
            Ok(after)
        })
    }

    fn clear<'a>(
        &'a self,
        scope: &'static str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.client()
                .await?
                .execute(
                    "DELETE FROM bank_login_attempts WHERE scope = $1 AND key = $2",
                    &[&scope, &key],
                )
                .await
                .map_err(unavailable)?;
            Ok(())
        })
    }

    fn sweep(&self, now: UnixTime) -> BoxFuture<'_, Result<usize, StoreError>> {
        let day_ago = now.as_secs().saturating_sub(24 * 60 * 60);
        Box::pin(async move {
            let n = self
                .client()
                .await?
                .execute(
                    "DELETE FROM bank_login_attempts WHERE locked_until < $1 AND window_start < $1",
                    &[&day_ago],
                )
                .await
                .map_err(unavailable)?;
            usize::try_from(n).map_err(unavailable)
        })
    }
}

/// Locks the schedule (its one row) for the rest of `tx`.
async fn lock_schedule(tx: &PgTransaction<'_>) -> Result<(), StoreError> {
    tx.execute("SELECT 1 FROM bank_signing_key_schedule FOR UPDATE", &[])
        .await
        .map_err(unavailable)?;
    Ok(())
}

async fn insert_signing_key(tx: &PgTransaction<'_>, r: &KeyRecord) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO bank_signing_keys (kid, alg, public_jwk, created_at, activates_at, retires_at, publish_until)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &r.kid,
            &r.alg.jose_name(),
            &r.public_jwk.to_string(),
            &r.created_at.as_secs(),
            &r.activates_at.as_secs(),
            &r.retires_at.map(UnixTime::as_secs),
            &r.publish_until.map(UnixTime::as_secs),
        ],
    )
    .await
    .map_err(unavailable)?;
    Ok(())
}

impl SigningKeyStore for PostgresDb {
    fn keys(&self) -> BoxFuture<'_, Result<Vec<KeyRecord>, StoreError>> {
        Box::pin(async move {
            let db = self.client().await?;
            let rows = db
                .query(
                    "SELECT kid, alg, public_jwk, created_at, activates_at, retires_at, publish_until
                     FROM bank_signing_keys ORDER BY activates_at, created_at",
                    &[],
                )
                .await
                .map_err(unavailable)?;
            rows.iter()
                .map(|r| {
                    let kid: String = r.try_get(0).map_err(unavailable)?;
                    let alg: &str = r.try_get(1).map_err(unavailable)?;
                    let jwk: &str = r.try_get(2).map_err(unavailable)?;
                    let optional = |i: usize| -> Result<Option<UnixTime>, StoreError> {
                        r.try_get::<_, Option<i64>>(i)
                            .map_err(unavailable)?
                            .map(time)
                            .transpose()
                    };
                    Ok(KeyRecord {
                        alg: fapi_core::crypto::Algorithm::from_jose_name(alg).ok_or_else(
                            || unavailable(format!("signing key {kid} has algorithm {alg}")),
                        )?,
                        public_jwk: serde_json::from_str(jwk).map_err(unavailable)?,
                        created_at: time(r.try_get(3).map_err(unavailable)?)?,
                        activates_at: time(r.try_get(4).map_err(unavailable)?)?,
                        retires_at: optional(5)?,
                        publish_until: optional(6)?,
                        kid,
                    })
                })
                .collect()
        })
    }

    fn seed<'a>(&'a self, first: &'a KeyRecord) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut db = self.client().await?;
            let tx = db.transaction().await.map_err(unavailable)?;
            lock_schedule(&tx).await?;
            let any: bool = tx
                .query_one("SELECT EXISTS (SELECT 1 FROM bank_signing_keys)", &[])
                .await
                .map_err(unavailable)?
                .try_get(0)
                .map_err(unavailable)?;
            if !any {
                insert_signing_key(&tx, first).await?;
            }
            tx.commit().await.map_err(unavailable)
        })
    }

    fn schedule<'a>(
        &'a self,
        new: &'a KeyRecord,
        old: &'a str,
        old_published_until: UnixTime,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut db = self.client().await?;
            let tx = db.transaction().await.map_err(unavailable)?;
            lock_schedule(&tx).await?;
            let pending: bool = tx
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM bank_signing_keys WHERE activates_at > $1)",
                    &[&new.created_at.as_secs()],
                )
                .await
                .map_err(unavailable)?
                .try_get(0)
                .map_err(unavailable)?;
            if pending {
                return Err(unavailable("a rotation is already pending"));
            }
            let retired = tx
                .execute(
                    "UPDATE bank_signing_keys SET retires_at = $2, publish_until = $3
                     WHERE kid = $1 AND retires_at IS NULL",
                    &[
                        &old,
                        &new.activates_at.as_secs(),
                        &old_published_until.as_secs(),
                    ],
                )
                .await
                .map_err(unavailable)?;
            if retired != 1 {
                return Err(unavailable(format!(
                    "{old} is not the signing key in force"
                )));
            }
            insert_signing_key(&tx, new).await?;
            tx.commit().await.map_err(unavailable)
        })
    }
}

impl CheckpointStore for PostgresDb {
    fn put<'a>(&'a self, seq: u64, jws: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let seq = i64::try_from(seq).map_err(unavailable)?;
            self.client()
                .await?
                .execute(
                    "INSERT INTO bank_checkpoints (seq, jws) VALUES ($1, $2)
                     ON CONFLICT (seq) DO UPDATE SET jws = EXCLUDED.jws",
                    &[&seq, &jws],
                )
                .await
                .map_err(unavailable)?;
            Ok(())
        })
    }

    fn all(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        Box::pin(async move {
            self.client()
                .await?
                .query("SELECT jws FROM bank_checkpoints ORDER BY seq", &[])
                .await
                .map_err(unavailable)?
                .iter()
                .map(|r| r.try_get(0).map_err(unavailable))
                .collect()
        })
    }
}

impl Housekeeping for PostgresDb {
    fn sweep_expired(
        &self,
        now: UnixTime,
        batch: u32,
        rounds: u32,
    ) -> BoxFuture<'_, Result<Swept, StoreError>> {
        Box::pin(async move {
            let s = self.store.sweep_expired(now, batch, rounds).await?;
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

/// The bank's per-call reads on PostgreSQL: one statement.
#[derive(Clone, Debug)]
pub struct PostgresCallReads(pub PostgresLiveReads);

impl LiveReads for PostgresCallReads {
    fn read<'a>(
        &'a self,
        jti: &'a JwtId,
        client: &'a ClientId,
        certificate: &'a CertificateThumbprint,
        consent: Option<&'a ConsentId>,
    ) -> BoxFuture<'a, Result<CallState, StoreError>> {
        Box::pin(async move {
            let read = self.0.read_ids(jti, client, certificate, consent).await?;
            Ok(CallState {
                revoked: read.revoked,
                standing: read.standing,
                consent: read.extra,
            })
        })
    }
}

/// The mock core's ledger on PostgreSQL.
#[derive(Clone, Debug)]
pub struct PostgresLedger {
    db: PostgresDb,
}

fn core_unavailable(e: impl std::fmt::Display) -> CoreError {
    tracing::warn!(error = %e, "ledger store failed");
    CoreError::Unavailable
}

fn booking_of(payment_ref: &str, r: &Row) -> Result<Booking, CoreError> {
    let amount: i64 = r.try_get(1).map_err(core_unavailable)?;
    let at: i64 = r.try_get(2).map_err(core_unavailable)?;
    Ok(Booking {
        payment_ref: payment_ref.to_owned(),
        debtor: r.try_get(0).map_err(core_unavailable)?,
        amount: -amount,
        booked_at: UnixTime::from_secs(at).ok_or_else(|| core_unavailable("time out of range"))?,
        balance_after: r.try_get(3).map_err(core_unavailable)?,
    })
}

const BOOKING: &str = "SELECT account, amount, booked_at, balance_after
    FROM core_transactions WHERE payment_ref = $1";

impl PostgresLedger {
    /// The ledger in `db`.
    pub fn new(db: PostgresDb) -> Self {
        Self { db }
    }

    /// Opens `account` for `customer_id` with an opening credit, unless
    /// it exists (another instance opened it, or an earlier start).
    ///
    /// # Errors
    /// [`CoreError::Unavailable`].
    pub async fn open(
        &self,
        account: &str,
        customer_id: &str,
        name: &str,
        opening: Minor,
        at: UnixTime,
    ) -> Result<bool, CoreError> {
        let mut db = self.db.client().await.map_err(core_unavailable)?;
        let tx = db.transaction().await.map_err(core_unavailable)?;
        let opened = tx
            .execute(
                "INSERT INTO core_accounts (id, customer_id, name, balance) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (id) DO NOTHING",
                &[&account, &customer_id, &name, &opening],
            )
            .await
            .map_err(core_unavailable)?
            == 1;
        if opened {
            tx.execute(
                "INSERT INTO core_transactions (account, booked_at, amount, counterparty, reference, payment_ref, balance_after)
                 VALUES ($1, $2, $3, 'opening balance', 'OPEN', NULL, $3)",
                &[&account, &at.as_secs(), &opening],
            )
            .await
            .map_err(core_unavailable)?;
        }
        tx.commit().await.map_err(core_unavailable)?;
        Ok(opened)
    }

    async fn balance_of(&self, account: &str) -> Result<Minor, CoreError> {
        let db = self.db.client().await.map_err(core_unavailable)?;
        db.query_opt(
            "SELECT balance FROM core_accounts WHERE id = $1 FOR UPDATE",
            &[&account],
        )
        .await
        .map_err(core_unavailable)?
        .ok_or(CoreError::UnknownAccount)?
        .try_get(0)
        .map_err(core_unavailable)
    }
}

impl CoreBanking for PostgresLedger {
    fn accounts<'a>(&'a self, customer_id: &'a str) -> CoreFuture<'a, Vec<(String, String)>> {
        Box::pin(async move {
            let db = self.db.client().await.map_err(core_unavailable)?;
            db.query(
                "SELECT id, name FROM core_accounts WHERE customer_id = $1 ORDER BY id",
                &[&customer_id],
            )
            .await
            .map_err(core_unavailable)?
            .iter()
            .map(|r| {
                Ok((
                    r.try_get(0).map_err(core_unavailable)?,
                    r.try_get(1).map_err(core_unavailable)?,
                ))
            })
            .collect()
        })
    }

    fn balance<'a>(&'a self, account: &'a str) -> CoreFuture<'a, Minor> {
        Box::pin(self.balance_of(account))
    }

    fn transactions<'a>(
        &'a self,
        account: &'a str,
        from: Option<UnixTime>,
        to: Option<UnixTime>,
    ) -> CoreFuture<'a, Vec<Transaction>> {
        Box::pin(async move {
            self.balance_of(account).await?;
            let db = self.db.client().await.map_err(core_unavailable)?;
            db.query(
                "SELECT booked_at, amount, counterparty, reference FROM core_transactions
                 WHERE account = $1 AND booked_at >= $2 AND booked_at <= $3 ORDER BY booked_at, seq",
                &[
                    &account,
                    &from.map_or(0, UnixTime::as_secs),
                    &to.map_or(UnixTime::MAX_SECS, UnixTime::as_secs),
                ],
            )
            .await
            .map_err(core_unavailable)?
            .iter()
            .map(|r| {
                let at: i64 = r.try_get(0).map_err(core_unavailable)?;
                Ok(Transaction {
                    booked_at: UnixTime::from_secs(at)
                        .ok_or_else(|| core_unavailable("time out of range"))?,
                    amount: r.try_get(1).map_err(core_unavailable)?,
                    counterparty: r.try_get(2).map_err(core_unavailable)?,
                    reference: r.try_get(3).map_err(core_unavailable)?,
                })
            })
            .collect()
        })
    }

    /// Locks the debtor's account row first, then looks for a booking of
    /// `payment_ref`: of two submissions racing on any instances, the
    /// second finds the first's booking and books nothing.
    fn pay<'a>(
        &'a self,
        payment_ref: &'a str,
        debtor: &'a str,
        amount: Minor,
        creditor_name: &'a str,
        reference: &'a str,
        at: UnixTime,
    ) -> CoreFuture<'a, Booking> {
        Box::pin(async move {
            if amount <= 0 {
                return Err(CoreError::InvalidAmount);
            }
            let mut db = self.db.client().await.map_err(core_unavailable)?;
            let tx = db.transaction().await.map_err(core_unavailable)?;
            let balance: Option<Minor> = tx
                .query_opt(
                    "SELECT balance FROM core_accounts WHERE id = $1 FOR UPDATE",
                    &[&debtor],
                )
                .await
                .map_err(core_unavailable)?
                .map(|r| r.try_get(0))
                .transpose()
                .map_err(core_unavailable)?;
            if let Some(r) = tx
                .query_opt(BOOKING, &[&payment_ref])
                .await
                .map_err(core_unavailable)?
            {
                return booking_of(payment_ref, &r);
            }
            let balance = balance.ok_or(CoreError::UnknownAccount)?;
            if balance < amount {
                return Err(CoreError::InsufficientFunds);
            }
            let after = balance - amount;
            tx.execute(
                "UPDATE core_accounts SET balance = $2 WHERE id = $1",
                &[&debtor, &after],
            )
            .await
            .map_err(core_unavailable)?;
            tx.execute(
                "INSERT INTO core_transactions (account, booked_at, amount, counterparty, reference, payment_ref, balance_after)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[&debtor, &at.as_secs(), &-amount, &creditor_name, &reference, &payment_ref, &after],
            )
            .await
            .map_err(core_unavailable)?;
            tx.commit().await.map_err(core_unavailable)?;
            Ok(Booking {
                payment_ref: payment_ref.to_owned(),
                debtor: debtor.to_owned(),
                amount,
                booked_at: at,
                balance_after: after,
            })
        })
    }

    fn booking<'a>(&'a self, payment_ref: &'a str) -> CoreFuture<'a, Option<Booking>> {
        Box::pin(async move {
            let db = self.db.client().await.map_err(core_unavailable)?;
            db.query_opt(BOOKING, &[&payment_ref])
                .await
                .map_err(core_unavailable)?
                .map(|r| booking_of(payment_ref, &r))
                .transpose()
        })
    }
}
