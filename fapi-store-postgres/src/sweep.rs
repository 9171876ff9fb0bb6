//! The background expiry sweep.

use fapi_core::store::{
    StoreError, Swept, CODE_MEMORY_SECS, PUSHED_REQUEST_MEMORY_SECS, REVOKED_TOKEN_MEMORY_SECS,
};
use fapi_core::UnixTime;

use crate::{unavailable, PostgresStore};

/// The tables with expiring rows: name, primary key, time column, how long
/// past that time a row is kept.
const SWEPT: [(&str, &str, &str, i64); 5] = [
    ("fapi_jti", "scope, jti", "expires_at", 0),
    ("fapi_idempotency", "client_id, key", "expires_at", 0),
    (
        "fapi_pushed_requests",
        "uri_hash",
        "expires_at",
        PUSHED_REQUEST_MEMORY_SECS,
    ),
    ("fapi_codes", "hash", "expires_at", CODE_MEMORY_SECS),
    (
        "fapi_revoked_tokens",
        "jti",
        "revoked_at",
        REVOKED_TOKEN_MEMORY_SECS,
    ),
];

impl PostgresStore {
    /// Deletes expired rows, at most `batch` per table per statement and at
    /// most `rounds` statements per table: run in the background (request
    /// paths never delete by expiry), each statement a short transaction
    /// through the expiry index, selecting rows by primary key (portable to
    /// the PostgreSQL-compatible engines). Several instances may sweep at
    /// once: a row is deleted once. Consents, payments, the audit trail and
    /// the registry are never swept.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the database refuses.
    pub async fn sweep_expired(
        &self,
        now: UnixTime,
        batch: u32,
        rounds: u32,
    ) -> Result<Swept, StoreError> {
        let client = self.client().await?;
        let mut counts = [0usize; SWEPT.len()];
        for ((table, key, column, keep), count) in SWEPT.iter().zip(counts.iter_mut()) {
            let st = client
                .prepare_cached(&format!(
                    "DELETE FROM {table} WHERE ({key}) IN \
                     (SELECT {key} FROM {table} WHERE {column} <= $1 LIMIT $2)"
                ))
                .await
                .map_err(unavailable)?;
            let before = now.as_secs().saturating_sub(*keep);
            for _ in 0..rounds {
                let n = client
                    .execute(&st, &[&before, &i64::from(batch)])
                    .await
                    .map_err(unavailable)?;
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                *count = count.saturating_add(n);
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
    }
}
