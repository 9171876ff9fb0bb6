//! The example core's ledger, kept in the bank's database so balances and
//! booked transactions survive a restart (an in-memory ledger gave paid
//! money back after one). Each account holds its running balance, updated
//! in the transaction that books against it, so a balance read is one row
//! whatever the history; each payment books at most once under its
//! payment reference (a unique column), which is how reconciliation finds
//! what happened to it.

use std::sync::Arc;

use fapi_core::UnixTime;
use fapi_store_sqlite::rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::core_banking::{Booking, CoreBanking, CoreError, CoreFuture, Minor, Transaction};
use crate::sqlite::SqliteDb;

/// The ledger's tables (in the bank's database).
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS core_accounts (
    id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, name TEXT NOT NULL, balance INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS core_accounts_by_customer ON core_accounts (customer_id);
CREATE TABLE IF NOT EXISTS core_transactions (
    seq INTEGER PRIMARY KEY, account TEXT NOT NULL, booked_at INTEGER NOT NULL, amount INTEGER NOT NULL,
    counterparty TEXT NOT NULL, reference TEXT NOT NULL, payment_ref TEXT UNIQUE,
    balance_after INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS core_transactions_by_account ON core_transactions (account, booked_at);
";

/// The ledger in `db`.
#[derive(Clone, Debug)]
pub struct SqliteLedger {
    db: Arc<SqliteDb>,
}

fn unavailable(e: impl std::fmt::Display) -> CoreError {
    tracing::warn!(error = %e, "ledger store failed");
    CoreError::Unavailable
}

fn time(secs: i64) -> Result<UnixTime, CoreError> {
    UnixTime::from_secs(secs).ok_or_else(|| unavailable("time out of range"))
}

impl SqliteLedger {
    /// The ledger kept in `db`.
    pub fn new(db: Arc<SqliteDb>) -> Self {
        Self { db }
    }

    /// Opens `account` with an opening credit, unless it exists (its
    /// balance and history are kept across restarts). Returns whether it
    /// was opened now.
    ///
    /// # Errors
    /// [`CoreError::Unavailable`] if the store fails.
    pub fn open(
        &self,
        account: &str,
        customer_id: &str,
        name: &str,
        opening: Minor,
        at: UnixTime,
    ) -> Result<bool, CoreError> {
        let mut conn = self.db.conn().map_err(unavailable)?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(unavailable)?;
        let opened = tx
            .execute(
                "INSERT OR IGNORE INTO core_accounts (id, customer_id, name, balance) VALUES (?1, ?2, ?3, ?4)",
                params![account, customer_id, name, opening],
            )
            .map_err(unavailable)?
            == 1;
        if opened {
            tx.execute(
                "INSERT INTO core_transactions (account, booked_at, amount, counterparty, reference, payment_ref, balance_after)
                 VALUES (?1, ?2, ?3, 'opening balance', 'OPEN', NULL, ?3)",
                params![account, at.as_secs(), opening],
            )
            .map_err(unavailable)?;
        }
        tx.commit().map_err(unavailable)?;
        Ok(opened)
    }

    /// The customer's accounts (id, name), answered at once.
    ///
    /// # Errors
    /// [`CoreError::Unavailable`].
    pub fn accounts_now(&self, customer_id: &str) -> Result<Vec<(String, String)>, CoreError> {
        Self::accounts_in(&mut *self.db.conn().map_err(unavailable)?, customer_id)
    }

    fn accounts_in(
        conn: &mut Connection,
        customer_id: &str,
    ) -> Result<Vec<(String, String)>, CoreError> {
        let mut st = conn
            .prepare_cached("SELECT id, name FROM core_accounts WHERE customer_id = ?1 ORDER BY id")
            .map_err(unavailable)?;
        let rows = st
            .query_map(params![customer_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(unavailable)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(unavailable);
        rows
    }

    /// An account's balance, answered at once.
    ///
    /// # Errors
    /// [`CoreError::UnknownAccount`].
    pub fn balance_now(&self, account: &str) -> Result<Minor, CoreError> {
        Self::balance_in(&mut *self.db.conn().map_err(unavailable)?, account)
    }

    fn balance_in(conn: &mut Connection, account: &str) -> Result<Minor, CoreError> {
        conn.prepare_cached("SELECT balance FROM core_accounts WHERE id = ?1")
            .map_err(unavailable)?
            .query_row(params![account], |r| r.get(0))
            .optional()
            .map_err(unavailable)?
            .ok_or(CoreError::UnknownAccount)
    }

    /// An account's transactions booked in `[from, to]`, answered at once.
    ///
    /// # Errors
    /// [`CoreError::UnknownAccount`].
    pub fn transactions_now(
        &self,
        account: &str,
        from: Option<UnixTime>,
        to: Option<UnixTime>,
    ) -> Result<Vec<Transaction>, CoreError> {
        Self::transactions_in(
            &mut *self.db.conn().map_err(unavailable)?,
            account,
            from,
            to,
        )
    }

    fn transactions_in(
        conn: &mut Connection,
        account: &str,
        from: Option<UnixTime>,
        to: Option<UnixTime>,
    ) -> Result<Vec<Transaction>, CoreError> {
        Self::balance_in(conn, account)?;
        let mut st = conn
            .prepare_cached(
                "SELECT booked_at, amount, counterparty, reference FROM core_transactions
                 WHERE account = ?1 AND booked_at >= ?2 AND booked_at <= ?3 ORDER BY booked_at, seq",
            )
            .map_err(unavailable)?;
        let rows = st
            .query_map(
                params![
                    account,
                    from.map_or(0, UnixTime::as_secs),
                    to.map_or(UnixTime::MAX_SECS, UnixTime::as_secs)
                ],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                },
            )
            .map_err(unavailable)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(unavailable)?;
        rows.into_iter()
            .map(|(at, amount, counterparty, reference)| {
                Ok(Transaction {
                    booked_at: time(at)?,
                    amount,
                    counterparty,
                    reference,
                })
            })
            .collect()
    }

    /// Books a payment at once (see [`CoreBanking::pay`]): the balance
    /// check, the debit and the booking's reference in one transaction.
    ///
    /// # Errors
    /// [`CoreError::InvalidAmount`], [`CoreError::UnknownAccount`],
    /// [`CoreError::InsufficientFunds`], [`CoreError::Unavailable`].
    pub fn pay_now(
        &self,
        payment_ref: &str,
        debtor: &str,
        amount: Minor,
        creditor_name: &str,
        reference: &str,
        at: UnixTime,
    ) -> Result<Booking, CoreError> {
        Self::pay_in(
            &mut *self.db.conn().map_err(unavailable)?,
            payment_ref,
            debtor,
            amount,
            creditor_name,
            reference,
            at,
        )
    }

    fn pay_in(
        conn: &mut Connection,
        payment_ref: &str,
        debtor: &str,
        amount: Minor,
        creditor_name: &str,
        reference: &str,
        at: UnixTime,
    ) -> Result<Booking, CoreError> {
        if amount <= 0 {
            return Err(CoreError::InvalidAmount);
        }
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(unavailable)?;
        if let Some(b) = Self::find(&tx, payment_ref)? {
            return Ok(b);
        }
        let balance: Minor = tx
            .prepare_cached("SELECT balance FROM core_accounts WHERE id = ?1")
            .map_err(unavailable)?
            .query_row(params![debtor], |r| r.get(0))
            .optional()
            .map_err(unavailable)?
            .ok_or(CoreError::UnknownAccount)?;
        if balance < amount {
            return Err(CoreError::InsufficientFunds);
        }
        let after = balance - amount;
        tx.execute(
            "UPDATE core_accounts SET balance = ?2 WHERE id = ?1",
            params![debtor, after],
        )
        .map_err(unavailable)?;
        tx.execute(
            "INSERT INTO core_transactions (account, booked_at, amount, counterparty, reference, payment_ref, balance_after)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![debtor, at.as_secs(), -amount, creditor_name, reference, payment_ref, after],
        )
        .map_err(unavailable)?;
        tx.commit().map_err(unavailable)?;
        Ok(Booking {
            payment_ref: payment_ref.to_owned(),
            debtor: debtor.to_owned(),
            amount,
            booked_at: at,
            balance_after: after,
        })
    }

    /// The booking of `payment_ref`, answered at once.
    ///
    /// # Errors
    /// [`CoreError::Unavailable`].
    pub fn booking_now(&self, payment_ref: &str) -> Result<Option<Booking>, CoreError> {
        Self::find(&*self.db.conn().map_err(unavailable)?, payment_ref)
    }

    /// Runs `f` on the store's threads (the async path: a request never
    /// waits on SQLite on a runtime worker).
    fn on_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, CoreError> + Send + 'static,
    ) -> CoreFuture<'static, T> {
        let answer = self
            .db
            .store()
            .write(move |conn| Ok::<_, fapi_core::store::StoreError>(f(conn)));
        Box::pin(async move { answer.await.map_err(unavailable)? })
    }

    fn find(conn: &Connection, payment_ref: &str) -> Result<Option<Booking>, CoreError> {
        let row: Option<(String, i64, i64, i64)> = conn
            .prepare_cached(
                "SELECT account, amount, booked_at, balance_after FROM core_transactions WHERE payment_ref = ?1",
            )
            .map_err(unavailable)?
            .query_row(params![payment_ref], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()
            .map_err(unavailable)?;
        row.map(|(debtor, amount, at, balance_after)| {
            Ok(Booking {
                payment_ref: payment_ref.to_owned(),
                debtor,
                amount: -amount,
                booked_at: time(at)?,
                balance_after,
            })
        })
        .transpose()
    }
}

impl CoreBanking for SqliteLedger {
    fn accounts<'a>(&'a self, customer_id: &'a str) -> CoreFuture<'a, Vec<(String, String)>> {
        let customer_id = customer_id.to_owned();
        self.on_store(move |conn| Self::accounts_in(conn, &customer_id))
    }
    fn balance<'a>(&'a self, account: &'a str) -> CoreFuture<'a, Minor> {
        let account = account.to_owned();
        self.on_store(move |conn| Self::balance_in(conn, &account))
    }
    fn transactions<'a>(
        &'a self,
        account: &'a str,
        from: Option<UnixTime>,
        to: Option<UnixTime>,
    ) -> CoreFuture<'a, Vec<Transaction>> {
        let account = account.to_owned();
        self.on_store(move |conn| Self::transactions_in(conn, &account, from, to))
    }
    fn pay<'a>(
        &'a self,
        payment_ref: &'a str,
        debtor: &'a str,
        amount: Minor,
        creditor_name: &'a str,
        reference: &'a str,
        at: UnixTime,
    ) -> CoreFuture<'a, Booking> {
        let (payment_ref, debtor, creditor_name, reference) = (
            payment_ref.to_owned(),
            debtor.to_owned(),
            creditor_name.to_owned(),
            reference.to_owned(),
        );
        self.on_store(move |conn| {
            Self::pay_in(
                conn,
                &payment_ref,
                &debtor,
                amount,
                &creditor_name,
                &reference,
                at,
            )
        })
    }
    fn booking<'a>(&'a self, payment_ref: &'a str) -> CoreFuture<'a, Option<Booking>> {
        let payment_ref = payment_ref.to_owned();
        self.on_store(move |conn| Self::find(conn, &payment_ref))
    }
}
