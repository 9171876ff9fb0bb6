//! The background expiry sweep.

use fapi_core::store::{
    BoxFuture, StoreError, Swept, CODE_MEMORY_SECS, PUSHED_REQUEST_MEMORY_SECS,
    REVOKED_TOKEN_MEMORY_SECS,
};
use fapi_core::UnixTime;
use rusqlite::params;

use crate::pool::{unavailable, Role};
use crate::SqliteStore;

/// The tables with expiring rows: name, time column, how long past that
/// time a row is kept.
const SWEPT: [(&str, &str, i64); 5] = [
    ("jti", "expires_at", 0),
    ("idempotency", "expires_at", 0),
    ("pushed_requests", "expires_at", PUSHED_REQUEST_MEMORY_SECS),
    ("codes", "expires_at", CODE_MEMORY_SECS),
    ("revoked_tokens", "revoked_at", REVOKED_TOKEN_MEMORY_SECS),
];

impl SqliteStore {
    /// Deletes expired rows, at most `batch` per table per statement and
    /// at most `rounds` statements per table: run in the background (the
    /// request paths never delete by expiry), each statement a short
    /// transaction through the expiry index, so requests interleave with
    /// the batches. Consents, payments, the audit trail and the registry
    /// are never swept.
    pub fn sweep_expired(
        &self,
        now: UnixTime,
        batch: u32,
        rounds: u32,
    ) -> BoxFuture<'static, Result<Swept, StoreError>> {
        let store = self.clone();
        Box::pin(async move {
            let now = now.as_secs();
            let mut counts = [0usize; SWEPT.len()];
            for ((table, column, keep), count) in SWEPT.iter().zip(counts.iter_mut()) {
                let sql = format!(
                    "DELETE FROM {table} WHERE rowid IN \
                     (SELECT rowid FROM {table} WHERE {column} <= ?1 LIMIT ?2)"
                );
                let before = now.saturating_sub(*keep);
                for _ in 0..rounds {
                    let sql = sql.clone();
                    let n = store
                        .run(Role::Write, move |conn| {
                            conn.prepare_cached(&sql)
                                .and_then(|mut st| st.execute(params![before, batch]))
                                .map_err(unavailable)
                        })
                        .await?;
                    *count += n;
                    if n < usize::try_from(batch).unwrap_or(usize::MAX) {
                        break;
                    }
                }
            }
            let [jti, idempotency, pushed_requests, codes, revoked_tokens] = counts;
            Ok(Swept {
                jti,
                idempotency,
                pushed_requests,
                codes,
                revoked_tokens,
            })
        })
    }
}
