//! The `jti` replay cache.

use fapi_core::replay::ReplayCache;
use fapi_core::store::{BoxFuture, StoreError};
use fapi_core::UnixTime;
use rusqlite::{params, TransactionBehavior};

use crate::pool::{unavailable, Role};
use crate::SqliteStore;

/// [`ReplayCache`] in the `jti` table: insert-if-absent under an IMMEDIATE
/// transaction, so of racing inserts (from any process on the file) one
/// wins. An entry past its expiry is replaced by its own `jti`'s next use;
/// the rest go to [`SqliteStore::sweep_expired`].
#[derive(Clone, Debug)]
pub struct SqliteReplayCache {
    db: SqliteStore,
}

impl SqliteReplayCache {
    pub(crate) fn new(db: SqliteStore) -> Self {
        Self { db }
    }
}

impl ReplayCache for SqliteReplayCache {
    fn insert_if_absent<'a>(
        &'a self,
        scope: &'a str,
        jti: &'a str,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let (scope, jti) = (scope.to_owned(), jti.to_owned());
        self.db.run(Role::Write, move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            tx.prepare_cached("DELETE FROM jti WHERE scope = ?1 AND jti = ?2 AND expires_at <= ?3")
                .and_then(|mut st| st.execute(params![scope, jti, now.as_secs()]))
                .map_err(unavailable)?;
            let inserted = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO jti (scope, jti, expires_at) VALUES (?1, ?2, ?3)",
                )
                .and_then(|mut st| st.execute(params![scope, jti, expires_at.as_secs()]))
                .map_err(unavailable)?;
            tx.commit().map_err(unavailable)?;
            Ok(inserted == 1)
        })
    }
}
