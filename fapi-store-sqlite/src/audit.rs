//! The audit trail.

use fapi_consent::audit::{AuditEntry, AuditEvent, AuditLog};
use fapi_core::store::{BoxFuture, StoreError};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::pool::{unavailable, Role};
use crate::SqliteStore;

/// [`AuditLog`] in the `audit` table: each append reads the head and
/// writes the next entry in one IMMEDIATE transaction, so concurrent
/// appends (from any process on the file) form one chain.
#[derive(Clone, Debug)]
pub struct SqliteAuditLog {
    pub(crate) db: SqliteStore,
}

impl SqliteAuditLog {
    pub(crate) fn new(db: SqliteStore) -> Self {
        Self { db }
    }
}

/// Appends `event` inside the caller's (immediate) transaction.
pub(crate) fn append_in(tx: &Connection, event: AuditEvent) -> Result<AuditEntry, StoreError> {
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
    tx.prepare_cached("INSERT INTO audit (seq, prev_hash, hash, event) VALUES (?1, ?2, ?3, ?4)")
        .and_then(|mut st| st.execute(params![seq, entry.prev_hash, entry.hash, json]))
        .map_err(unavailable)?;
    Ok(entry)
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

impl AuditLog for SqliteAuditLog {
    fn append(&self, event: AuditEvent) -> BoxFuture<'_, Result<AuditEntry, StoreError>> {
        self.db.run(Role::Write, move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            let entry = append_in(&tx, event)?;
            tx.commit().map_err(unavailable)?;
            Ok(entry)
        })
    }

    fn head(&self) -> BoxFuture<'_, Result<Option<AuditEntry>, StoreError>> {
        self.db.run(Role::Read, |conn| {
            // MAX(seq) is one step down the primary key
            conn.prepare_cached(
                "SELECT seq, prev_hash, hash, event FROM audit WHERE seq = (SELECT MAX(seq) FROM audit)",
            )
            .map_err(unavailable)?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .optional()
            .map_err(unavailable)?
            .map(row_to_entry)
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
        self.db.run(Role::Read, move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT seq, prev_hash, hash, event FROM audit WHERE seq >= ?1 ORDER BY seq LIMIT ?2",
                )
                .map_err(unavailable)?;
            let rows = stmt
                .query_map(params![from, limit], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .map_err(unavailable)?;
            rows.map(|r| r.map_err(unavailable).and_then(row_to_entry))
                .collect()
        })
    }

    fn as_any(&self) -> Option<&dyn core::any::Any> {
        Some(self)
    }
}
