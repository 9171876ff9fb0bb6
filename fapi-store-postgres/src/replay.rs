//! The `jti` replay cache.

use fapi_core::replay::ReplayCache;
use fapi_core::store::{BoxFuture, StoreError};
use fapi_core::UnixTime;

use crate::{unavailable, PostgresStore};

/// [`ReplayCache`] in `fapi_jti`, one statement: insert the `jti`, or take
/// over its row only if that row has expired. The row count says whether
/// this call won; of racing inserts from any instance, one does (the
/// conflict waits on the row's lock).
#[derive(Clone, Debug)]
pub struct PostgresReplayCache {
    db: PostgresStore,
}

impl PostgresReplayCache {
    pub(crate) fn new(db: PostgresStore) -> Self {
        Self { db }
    }
}

impl ReplayCache for PostgresReplayCache {
    fn insert_if_absent<'a>(
        &'a self,
        scope: &'a str,
        jti: &'a str,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let client = self.db.client().await?;
            let st = client
                .prepare_cached(
                    "INSERT INTO fapi_jti (scope, jti, expires_at) VALUES ($1, $2, $3)
                     ON CONFLICT (scope, jti) DO UPDATE SET expires_at = EXCLUDED.expires_at
                     WHERE fapi_jti.expires_at <= $4",
                )
                .await
                .map_err(unavailable)?;
            let n = client
                .execute(&st, &[&scope, &jti, &expires_at.as_secs(), &now.as_secs()])
                .await
                .map_err(unavailable)?;
            Ok(n == 1)
        })
    }
}
