//! Consents.

use fapi_consent::audit::{AuditEvent, AuditLog};
use fapi_consent::store::{CasError, ConsentStore, CreateError, PageCursor};
use fapi_consent::Consent;
use fapi_core::store::{BoxFuture, StoreError};
use fapi_core::ConsentId;
use tokio_postgres::types::ToSql;
use tokio_postgres::Transaction;

use crate::audit::{append_in, PostgresAuditLog};
use crate::{unavailable, PostgresStore};

/// [`ConsentStore`] in `fapi_consents`: the consent as its JSON text with
/// its version beside it; a compare-and-swap is one `UPDATE … WHERE
/// version = expected` (the row lock makes racing swaps from any instance
/// queue, and the loser sees the new version and changes nothing). With
/// this store's [`PostgresAuditLog`] as the log, a change and its audit
/// entry commit in one transaction.
#[derive(Clone, Debug)]
pub struct PostgresConsentStore {
    db: PostgresStore,
}

impl PostgresConsentStore {
    pub(crate) fn new(db: PostgresStore) -> Self {
        Self { db }
    }

    /// Whether `audit` is an audit log over this store's own pool, so one
    /// transaction can hold both writes.
    fn own_log(&self, audit: &dyn AuditLog) -> bool {
        audit
            .as_any()
            .and_then(|a| a.downcast_ref::<PostgresAuditLog>())
            .is_some_and(|log| log.db.same_as(&self.db))
    }
}

/// A stored consent body: a row that no longer parses (or breaks a
/// newtype's rules) is an error, never a default.
fn parse(body: &str) -> Result<Consent, StoreError> {
    serde_json::from_str(body).map_err(unavailable)
}

async fn create_in(tx: &Transaction<'_>, consent: &Consent) -> Result<(), CreateError> {
    let body = serde_json::to_string(consent).map_err(unavailable)?;
    let version = i64::try_from(consent.version()).map_err(unavailable)?;
    let inserted = tx
        .execute(
            "INSERT INTO fapi_consents (id, customer_id, created_at, version, status, body)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
            &[
                &consent.id().as_str(),
                &consent.customer_id(),
                &consent.created_at().as_secs(),
                &version,
                &status_of(consent)?,
                &body,
            ],
        )
        .await
        .map_err(unavailable)?;
    if inserted == 1 {
        Ok(())
    } else {
        Err(CreateError::AlreadyExists)
    }
}

/// The status as the body spells it, kept in its own column for the
/// pending-payments index.
fn status_of(consent: &Consent) -> Result<String, StoreError> {
    match serde_json::to_value(consent.status()).map_err(unavailable)? {
        serde_json::Value::String(s) => Ok(s),
        _ => Err(unavailable("consent status does not serialize as a string")),
    }
}

async fn swap_in(tx: &Transaction<'_>, expected: u64, next: &Consent) -> Result<(), CasError> {
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
            "UPDATE fapi_consents SET body = $1, version = $2, customer_id = $3, status = $4
             WHERE id = $5 AND version = $6",
            &[
                &body,
                &version,
                &next.customer_id(),
                &status_of(next)?,
                &next.id().as_str(),
                &expected,
            ],
        )
        .await
        .map_err(unavailable)?;
    if updated == 1 {
        return Ok(());
    }
    let current = tx
        .query_opt(
            "SELECT version FROM fapi_consents WHERE id = $1",
            &[&next.id().as_str()],
        )
        .await
        .map_err(unavailable)?;
    match current {
        Some(row) => Err(CasError::Conflict {
            current: u64::try_from(row.try_get::<_, i64>(0).map_err(unavailable)?).unwrap_or(0),
        }),
        None => Err(CasError::NotFound),
    }
}

impl PostgresConsentStore {
    /// The bodies `query` returns for `params`, parsed.
    async fn consents(
        &self,
        query: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Consent>, StoreError> {
        let client = self.db.client().await?;
        let st = client.prepare_cached(query).await.map_err(unavailable)?;
        client
            .query(&st, params)
            .await
            .map_err(unavailable)?
            .iter()
            .map(|r| parse(r.try_get::<_, &str>(0).map_err(unavailable)?))
            .collect()
    }
}

impl ConsentStore for PostgresConsentStore {
    fn create(&self, consent: Consent) -> BoxFuture<'_, Result<(), CreateError>> {
        Box::pin(async move {
            let mut client = self.db.client().await?;
            let tx = client.transaction().await.map_err(unavailable)?;
            create_in(&tx, &consent).await?;
            tx.commit().await.map_err(unavailable)?;
            Ok(())
        })
    }

    fn get<'a>(&'a self, id: &'a ConsentId) -> BoxFuture<'a, Result<Option<Consent>, StoreError>> {
        Box::pin(async move {
            let client = self.db.client().await?;
            let st = client
                .prepare_cached("SELECT body FROM fapi_consents WHERE id = $1")
                .await
                .map_err(unavailable)?;
            let row = client
                .query_opt(&st, &[&id.as_str()])
                .await
                .map_err(unavailable)?;
            row.map(|r| parse(r.try_get::<_, &str>(0).map_err(unavailable)?))
                .transpose()
        })
    }

    fn compare_and_swap(
        &self,
        expected_version: u64,
        next: Consent,
    ) -> BoxFuture<'_, Result<(), CasError>> {
        Box::pin(async move {
            let mut client = self.db.client().await?;
            let tx = client.transaction().await.map_err(unavailable)?;
            swap_in(&tx, expected_version, &next).await?;
            tx.commit().await.map_err(unavailable)?;
            Ok(())
        })
    }

    /// Through the partial index on `PaymentPending`.
    fn pending_payments(&self) -> BoxFuture<'_, Result<Vec<ConsentId>, StoreError>> {
        Box::pin(async move {
            let client = self.db.client().await?;
            let st = client
                .prepare_cached("SELECT id FROM fapi_consents WHERE status = 'PaymentPending'")
                .await
                .map_err(unavailable)?;
            client
                .query(&st, &[])
                .await
                .map_err(unavailable)?
                .iter()
                .map(|r| {
                    let id: &str = r.try_get(0).map_err(unavailable)?;
                    ConsentId::try_from(id).map_err(unavailable)
                })
                .collect()
        })
    }

    fn list_for_customer<'a>(
        &'a self,
        customer_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Consent>, StoreError>> {
        Box::pin(async move {
            self.consents(
                "SELECT body FROM fapi_consents WHERE customer_id = $1
                 ORDER BY created_at DESC, id DESC",
                &[&customer_id],
            )
            .await
        })
    }

    /// One transaction when `audit` is this store's log; the composed
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
        Box::pin(async move {
            let mut client = self.db.client().await?;
            let tx = client.transaction().await.map_err(unavailable)?;
            swap_in(&tx, expected_version, &next).await?;
            append_in(&tx, entry).await?;
            tx.commit().await.map_err(unavailable)?;
            Ok(())
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
        Box::pin(async move {
            let mut client = self.db.client().await?;
            let tx = client.transaction().await.map_err(unavailable)?;
            create_in(&tx, &consent).await?;
            append_in(&tx, entry).await?;
            tx.commit().await.map_err(unavailable)?;
            Ok(())
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
        Box::pin(async move {
            match after {
                None => {
                    self.consents(
                        "SELECT body FROM fapi_consents WHERE customer_id = $1
                         ORDER BY created_at DESC, id DESC LIMIT $2",
                        &[&customer_id, &limit],
                    )
                    .await
                }
                Some(c) => {
                    self.consents(
                        "SELECT body FROM fapi_consents
                         WHERE customer_id = $1 AND (created_at, id) < ($2, $3)
                         ORDER BY created_at DESC, id DESC LIMIT $4",
                        &[
                            &customer_id,
                            &c.created_at.as_secs(),
                            &c.id.as_str(),
                            &limit,
                        ],
                    )
                    .await
                }
            }
        })
    }
}
