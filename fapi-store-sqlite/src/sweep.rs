//! The background expiry sweep.

use fapi_core::store::{BoxFuture, StoreError};
use fapi_core::UnixTime;
use rusqlite::params;

use crate::pool::{unavailable, Role};
use crate::SqliteStore;

/// How long a used or expired authorization code is remembered past its
/// expiry, so a late replay is still recognised as a replay (and the
/// tokens issued for it revoked) rather than as an unknown code.
pub const CODE_MEMORY_SECS: i64 = 3_600;

/// How long a pushed request is remembered past its expiry (a late use
/// is told "expired", not "unknown").
pub const PUSHED_REQUEST_MEMORY_SECS: i64 = 3_600;

/// How long a revoked access-token id is kept: past the longest access
/// token lifetime plus the clock skew, a token with that id no longer
/// verifies anyway.
pub const REVOKED_TOKEN_MEMORY_SECS: i64 = 300 + 60;

/// Rows the background sweep deleted, by table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// `jti` replay entries past their expiry.
    pub jti: usize,
    /// `x-idempotency-key` entries past their window.
    pub idempotency: usize,
    /// Pushed requests [`PUSHED_REQUEST_MEMORY_SECS`] past expiry.
    pub pushed_requests: usize,
    /// Authorization codes [`CODE_MEMORY_SECS`] past expiry.
    pub codes: usize,
    /// Revoked access-token ids older than [`REVOKED_TOKEN_MEMORY_SECS`].
    pub revoked_tokens: usize,
}

impl Swept {
    /// Rows deleted in all.
    pub fn total(&self) -> usize {
        self.jti + self.idempotency + self.pushed_requests + self.codes + self.revoked_tokens
    }
}

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
