//! Consents.

use fapi_consent::audit::{AuditEvent, AuditLog};
use fapi_consent::store::{CasError, ConsentStore, CreateError, PageCursor};
use fapi_consent::Consent;
use fapi_core::store::{BoxFuture, StoreError};
use fapi_core::ConsentId;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::audit::{append_in, SqliteAuditLog};
use crate::pool::{unavailable, Role};
use crate::SqliteStore;

/// [`ConsentStore`] in the `consents` table: the consent as JSON with its
/// version beside it; a compare-and-swap is one `UPDATE ... WHERE version
/// = expected`. With this database's [`SqliteAuditLog`] as the log, a
/// change and its audit entry commit in one transaction.
#[derive(Clone, Debug)]
pub struct SqliteConsentStore {
    db: SqliteStore,
}

impl SqliteConsentStore {
    pub(crate) fn new(db: SqliteStore) -> Self {
        Self { db }
    }

    /// Whether `audit` is an audit log of this same database.
    fn own_log(&self, audit: &dyn AuditLog) -> bool {
        audit
            .as_any()
            .and_then(|a| a.downcast_ref::<SqliteAuditLog>())
            .is_some_and(|log| log.db.same_as(&self.db))
    }
}

/// A stored consent body: a row that no longer parses (or breaks a
/// newtype's rules) is an error, never a default.
pub(crate) fn parse(body: &str) -> Result<Consent, StoreError> {
    serde_json::from_str(body).map_err(unavailable)
}

fn create_in(conn: &Connection, consent: &Consent) -> Result<(), CreateError> {
    let body = serde_json::to_string(consent).map_err(unavailable)?;
    let version = i64::try_from(consent.version()).map_err(unavailable)?;
    let inserted = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO consents (id, customer_id, created_at, version, body) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .and_then(|mut st| {
            st.execute(params![
                consent.id().as_str(),
                consent.customer_id(),
                consent.created_at().as_secs(),
                version,
                body
            ])
        })
        .map_err(unavailable)?;
    if inserted == 1 {
        Ok(())
    } else {
        Err(CreateError::AlreadyExists)
    }
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
        .prepare_cached(
            "UPDATE consents SET body = ?1, version = ?2, customer_id = ?3 WHERE id = ?4 AND version = ?5",
        )
        .and_then(|mut st| {
            st.execute(params![
                body,
                version,
                next.customer_id(),
                next.id().as_str(),
                expected
            ])
        })
        .map_err(unavailable)?;
    if updated == 1 {
        return Ok(());
    }
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
}

/// Runs `f` in an IMMEDIATE transaction, committed only if `f` succeeds.
fn immediate<T, E: From<StoreError>>(
    conn: &mut Connection,
    f: impl FnOnce(&Connection) -> Result<T, E>,
) -> Result<T, E> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(unavailable)?;
    let value = f(&tx)?;
    tx.commit().map_err(unavailable)?;
    Ok(value)
}

/// The bodies `query` returns for `params`, parsed.
fn consents(
    conn: &Connection,
    query: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Consent>, StoreError> {
    let mut st = conn.prepare_cached(query).map_err(unavailable)?;
    let rows = st
        .query_map(params, |r| r.get::<_, String>(0))
        .map_err(unavailable)?;
    rows.map(|r| r.map_err(unavailable).and_then(|b| parse(&b)))
        .collect()
}

impl ConsentStore for SqliteConsentStore {
    fn create(&self, consent: Consent) -> BoxFuture<'_, Result<(), CreateError>> {
        self.db
            .run(Role::Write, move |conn| create_in(conn, &consent))
    }

    fn get<'a>(&'a self, id: &'a ConsentId) -> BoxFuture<'a, Result<Option<Consent>, StoreError>> {
        let id = id.as_str().to_owned();
        self.db.run(Role::Read, move |conn| {
            let body: Option<String> = conn
                .prepare_cached("SELECT body FROM consents WHERE id = ?1")
                .map_err(unavailable)?
                .query_row(params![id], |r| r.get(0))
                .optional()
                .map_err(unavailable)?;
            body.as_deref().map(parse).transpose()
        })
    }

    fn compare_and_swap(
        &self,
        expected_version: u64,
        next: Consent,
    ) -> BoxFuture<'_, Result<(), CasError>> {
        self.db.run(Role::Write, move |conn| {
            immediate(conn, |tx| swap_in(tx, expected_version, &next))
        })
    }

    /// Through the partial index on `PaymentPending`.
    fn pending_payments(&self) -> BoxFuture<'_, Result<Vec<ConsentId>, StoreError>> {
        self.db.run(Role::Read, |conn| {
            let mut st = conn
                .prepare_cached(
                    "SELECT id FROM consents WHERE json_extract(body, '$.status') = 'PaymentPending'",
                )
                .map_err(unavailable)?;
            let ids = st
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(unavailable)?;
            ids.map(|id| {
                let id = id.map_err(unavailable)?;
                ConsentId::try_from(id.as_str()).map_err(unavailable)
            })
            .collect()
        })
    }

    fn list_for_customer<'a>(
        &'a self,
        customer_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Consent>, StoreError>> {
        let customer = customer_id.to_owned();
        self.db.run(Role::Read, move |conn| {
            consents(
                conn,
                "SELECT body FROM consents WHERE customer_id = ?1 ORDER BY created_at DESC, id DESC",
                params![customer],
            )
        })
    }

    /// One transaction when `audit` is this database's log; the composed
    /// default otherwise.
    fn compare_and_swap_audited<'a>(
        &'a self,
        audit: &'a dyn AuditLog,
        expected_version: u64,
        next: Consent,
        entry: AuditEvent,
    ) -> BoxFuture<'a, Result<(), CasError>> {
        if !self.own_log(audit) {
            return Box::pin(fapi_consent::store::compose_swap_audited(
                self,
                audit,
                expected_version,
                next,
                entry,
            ));
        }
        // a lost swap writes no entry; a failed append undoes the swap
        self.db.run(Role::Write, move |conn| {
            immediate(conn, |tx| {
                swap_in(tx, expected_version, &next)?;
                append_in(tx, entry)?;
                Ok(())
            })
        })
    }

    fn create_audited<'a>(
        &'a self,
        audit: &'a dyn AuditLog,
        consent: Consent,
        entry: AuditEvent,
    ) -> BoxFuture<'a, Result<(), CreateError>> {
        if !self.own_log(audit) {
            return Box::pin(fapi_consent::store::compose_create_audited(
                self, audit, consent, entry,
            ));
        }
        self.db.run(Role::Write, move |conn| {
            immediate(conn, |tx| {
                create_in(tx, &consent)?;
                append_in(tx, entry)?;
                Ok(())
            })
        })
    }

    /// One page through the (customer, created_at, id) index: a seek to
    /// the cursor, never a scan of the customer's older consents.
    fn page_for_customer<'a>(
        &'a self,
        customer_id: &'a str,
        after: Option<&'a PageCursor>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Consent>, StoreError>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let customer = customer_id.to_owned();
        let after = after.map(|c| (c.created_at.as_secs(), c.id.as_str().to_owned()));
        self.db.run(Role::Read, move |conn| match after {
            None => consents(
                conn,
                "SELECT body FROM consents WHERE customer_id = ?1
                 ORDER BY created_at DESC, id DESC LIMIT ?2",
                params![customer, limit],
            ),
            Some((created_at, id)) => consents(
                conn,
                "SELECT body FROM consents WHERE customer_id = ?1 AND (created_at, id) < (?2, ?3)
                 ORDER BY created_at DESC, id DESC LIMIT ?4",
                params![customer, created_at, id, limit],
            ),
        })
    }
}
