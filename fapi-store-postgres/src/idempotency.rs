//! The `x-idempotency-key` store.

use fapi_consent::idempotency::{
    decide_existing, Begin, IdempotencyError, IdempotencyKey, IdempotencyStore, StoredResponse,
    WINDOW_SECS,
};
use fapi_core::store::BoxFuture;
use fapi_core::{ClientId, UnixTime};

use crate::{unavailable, PostgresStore};

/// [`IdempotencyStore`] in `fapi_idempotency`, keyed by (client, key).
/// `begin` is one `INSERT … ON CONFLICT DO UPDATE … WHERE expired`: a new
/// key (or one past its window) is claimed by exactly one of any racing
/// requests, on any instance; the others read the row that won and get a
/// replay, `InProgress` or a body mismatch from [`decide_existing`].
#[derive(Clone, Debug)]
pub struct PostgresIdempotencyStore {
    db: PostgresStore,
}

impl PostgresIdempotencyStore {
    pub(crate) fn new(db: PostgresStore) -> Self {
        Self { db }
    }
}

impl IdempotencyStore for PostgresIdempotencyStore {
    fn begin<'a>(
        &'a self,
        client: &'a ClientId,
        key: &'a IdempotencyKey,
        body_hash: [u8; 32],
        now: UnixTime,
    ) -> BoxFuture<'a, Result<Begin, IdempotencyError>> {
        Box::pin(async move {
            let mut db = self.db.client().await?;
            let tx = db.transaction().await.map_err(unavailable)?;
            let expires_at = now.saturating_add(WINDOW_SECS).as_secs();
            let claimed = tx
                .execute(
                    "INSERT INTO fapi_idempotency (client_id, key, body_hash, expires_at)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (client_id, key) DO UPDATE
                     SET body_hash = EXCLUDED.body_hash, expires_at = EXCLUDED.expires_at,
                         status = NULL, body = NULL
                     WHERE fapi_idempotency.expires_at <= $5",
                    &[
                        &client.as_str(),
                        &key.as_str(),
                        &&body_hash[..],
                        &expires_at,
                        &now.as_secs(),
                    ],
                )
                .await
                .map_err(unavailable)?;
            let outcome = if claimed == 1 {
                Ok(Begin::New)
            } else {
                let row = tx
                    .query_one(
                        "SELECT body_hash, status, body FROM fapi_idempotency
                         WHERE client_id = $1 AND key = $2",
                        &[&client.as_str(), &key.as_str()],
                    )
                    .await
                    .map_err(unavailable)?;
                let stored: Vec<u8> = row.try_get(0).map_err(unavailable)?;
                let status: Option<i32> = row.try_get(1).map_err(unavailable)?;
                let body: Option<Vec<u8>> = row.try_get(2).map_err(unavailable)?;
                let response = match (status, body) {
                    (Some(status), Some(body)) => Some(StoredResponse {
                        status: u16::try_from(status).map_err(unavailable)?,
                        body,
                    }),
                    _ => None,
                };
                decide_existing(&stored, response, &body_hash)
            };
            tx.commit().await.map_err(unavailable)?;
            outcome
        })
    }

    fn complete<'a>(
        &'a self,
        client: &'a ClientId,
        key: &'a IdempotencyKey,
        response: StoredResponse,
    ) -> BoxFuture<'a, Result<(), IdempotencyError>> {
        Box::pin(async move {
            let db = self.db.client().await?;
            db.execute(
                "UPDATE fapi_idempotency SET status = $3, body = $4
                 WHERE client_id = $1 AND key = $2 AND status IS NULL",
                &[
                    &client.as_str(),
                    &key.as_str(),
                    &i32::from(response.status),
                    &response.body,
                ],
            )
            .await
            .map_err(unavailable)?;
            Ok(())
        })
    }

    fn abandon<'a>(
        &'a self,
        client: &'a ClientId,
        key: &'a IdempotencyKey,
    ) -> BoxFuture<'a, Result<(), IdempotencyError>> {
        Box::pin(async move {
            let db = self.db.client().await?;
            db.execute(
                "DELETE FROM fapi_idempotency WHERE client_id = $1 AND key = $2 AND status IS NULL",
                &[&client.as_str(), &key.as_str()],
            )
            .await
            .map_err(unavailable)?;
            Ok(())
        })
    }
}
