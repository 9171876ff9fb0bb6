//! The audit trail.

use fapi_consent::audit::{AuditEntry, AuditEvent, AuditLog};
use fapi_core::store::{BoxFuture, StoreError};
use tokio_postgres::{Row, Transaction};

use crate::{unavailable, PostgresStore};

/// [`AuditLog`] in `fapi_audit`: one hash chain for every instance. An
/// append locks the one row of `fapi_audit_head` (`SELECT … FOR UPDATE`),
/// reads the last entry and writes the next, in one transaction:
/// concurrent appends from any instance queue on that lock, so no two
/// share a `seq` or a `prev_hash`. The row is only locked, never
/// rewritten, so its table stays one page however long the trail grows
/// (a rewrite per append left thousands of dead row versions for the lock
/// statement to scan). The event is kept as the text it was hashed from.
#[derive(Clone, Debug)]
pub struct PostgresAuditLog {
    pub(crate) db: PostgresStore,
}

impl PostgresAuditLog {
    pub(crate) fn new(db: PostgresStore) -> Self {
        Self { db }
    }
}

/// Appends `event` inside the caller's transaction.
pub(crate) async fn append_in(
    tx: &Transaction<'_>,
    event: AuditEvent,
) -> Result<AuditEntry, StoreError> {
    tx.execute("SELECT 1 FROM fapi_audit_head FOR UPDATE", &[])
        .await
        .map_err(unavailable)?;
    let last = tx
        .query_opt(
            "SELECT seq, prev_hash, hash, event FROM fapi_audit ORDER BY seq DESC LIMIT 1",
            &[],
        )
        .await
        .map_err(unavailable)?;
    let prev = last.as_ref().map(entry_of).transpose()?;
    let entry = AuditEntry::following(prev.as_ref(), event)?;
    let json = serde_json::to_string(&entry.event).map_err(unavailable)?;
    let seq = i64::try_from(entry.seq).map_err(unavailable)?;
    tx.execute(
        "INSERT INTO fapi_audit (seq, prev_hash, hash, event) VALUES ($1, $2, $3, $4)",
        &[&seq, &entry.prev_hash, &entry.hash, &json],
    )
    .await
    .map_err(unavailable)?;
    Ok(entry)
}

/// An entry as stored. The event is read back exactly as written; if the
/// row was altered, verification of the chain says so.
fn entry_of(r: &Row) -> Result<AuditEntry, StoreError> {
    let seq: i64 = r.try_get(0).map_err(unavailable)?;
    let event: String = r.try_get(3).map_err(unavailable)?;
    Ok(AuditEntry {
        seq: u64::try_from(seq).map_err(unavailable)?,
        prev_hash: r.try_get(1).map_err(unavailable)?,
        hash: r.try_get(2).map_err(unavailable)?,
        event: serde_json::from_str(&event).map_err(unavailable)?,
    })
}

impl AuditLog for PostgresAuditLog {
    fn append(&self, event: AuditEvent) -> BoxFuture<'_, Result<AuditEntry, StoreError>> {
        Box::pin(async move {
            let mut client = self.db.client().await?;
            let tx = client.transaction().await.map_err(unavailable)?;
            let entry = append_in(&tx, event).await?;
            tx.commit().await.map_err(unavailable)?;
            Ok(entry)
        })
    }

    fn head(&self) -> BoxFuture<'_, Result<Option<AuditEntry>, StoreError>> {
        Box::pin(async move {
            let client = self.db.client().await?;
            let st = client
                .prepare_cached(
                    "SELECT seq, prev_hash, hash, event FROM fapi_audit ORDER BY seq DESC LIMIT 1",
                )
                .await
                .map_err(unavailable)?;
            client
                .query_opt(&st, &[])
                .await
                .map_err(unavailable)?
                .as_ref()
                .map(entry_of)
                .transpose()
        })
    }

    fn entries(
        &self,
        from_seq: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<AuditEntry>, StoreError>> {
        let from = i64::try_from(from_seq).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        Box::pin(async move {
            let client = self.db.client().await?;
            let st = client
                .prepare_cached(
                    "SELECT seq, prev_hash, hash, event FROM fapi_audit WHERE seq >= $1
                     ORDER BY seq LIMIT $2",
                )
                .await
                .map_err(unavailable)?;
            client
                .query(&st, &[&from, &limit])
                .await
                .map_err(unavailable)?
                .iter()
                .map(entry_of)
                .collect()
        })
    }

    fn as_any(&self) -> Option<&dyn core::any::Any> {
        Some(self)
    }
}
