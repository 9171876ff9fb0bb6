//! The `x-idempotency-key` store.

use fapi_consent::idempotency::{
    decide_existing, Begin, IdempotencyError, IdempotencyKey, IdempotencyStore, StoredResponse,
    WINDOW_SECS,
};
use fapi_core::store::BoxFuture;
use fapi_core::ClientId;
use fapi_core::UnixTime;
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use crate::pool::{unavailable, Role};
use crate::SqliteStore;

/// An idempotency row: body hash, then the stored response once complete.
type IdempotencyRow = (Vec<u8>, Option<i64>, Option<Vec<u8>>);

/// [`IdempotencyStore`] in the `idempotency` table, keyed by (client, key);
/// `begin` reads and writes in one IMMEDIATE transaction.
#[derive(Clone, Debug)]
pub struct SqliteIdempotencyStore {
    db: SqliteStore,
}

impl SqliteIdempotencyStore {
    pub(crate) fn new(db: SqliteStore) -> Self {
        Self { db }
    }
}

impl IdempotencyStore for SqliteIdempotencyStore {
    fn begin<'a>(
        &'a self,
        client: &'a ClientId,
        key: &'a IdempotencyKey,
        body_hash: [u8; 32],
        now: UnixTime,
    ) -> BoxFuture<'a, Result<Begin, IdempotencyError>> {
        let (client, key) = (client.as_str().to_owned(), key.as_str().to_owned());
        self.db.run(Role::Write, move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            // a key past its window counts as new (the background sweep
            // deletes such rows; this request only replaces its own)
            let row: Option<(IdempotencyRow, i64)> = tx
                .prepare_cached(
                    "SELECT body_hash, status, body, expires_at FROM idempotency WHERE client_id = ?1 AND key = ?2",
                )
                .map_err(unavailable)?
                .query_row(params![client, key], |r| {
                    Ok(((r.get(0)?, r.get(1)?, r.get(2)?), r.get(3)?))
                })
                .optional()
                .map_err(unavailable)?;
            let row = match row {
                Some((_, expires_at)) if expires_at <= now.as_secs() => {
                    tx.execute(
                        "DELETE FROM idempotency WHERE client_id = ?1 AND key = ?2",
                        params![client, key],
                    )
                    .map_err(unavailable)?;
                    None
                }
                other => other.map(|(row, _)| row),
            };
            let outcome = match row {
                None => {
                    tx.execute(
                        "INSERT INTO idempotency (client_id, key, body_hash, expires_at) VALUES (?1, ?2, ?3, ?4)",
                        params![client, key, &body_hash[..], now.saturating_add(WINDOW_SECS).as_secs()],
                    )
                    .map_err(unavailable)?;
                    Ok(Begin::New)
                }
                Some((stored, status, body)) => {
                    let response = match (status, body) {
                        (Some(status), Some(body)) => Some(StoredResponse {
                            status: u16::try_from(status).map_err(unavailable)?,
                            body,
                        }),
                        _ => None,
                    };
                    decide_existing(&stored, response, &body_hash)
                }
            };
            tx.commit().map_err(unavailable)?;
            outcome
        })
    }

    fn complete<'a>(
        &'a self,
        client: &'a ClientId,
        key: &'a IdempotencyKey,
        response: StoredResponse,
    ) -> BoxFuture<'a, Result<(), IdempotencyError>> {
        let (client, key) = (client.as_str().to_owned(), key.as_str().to_owned());
        self.db.run(Role::Write, move |conn| {
            conn.execute(
                "UPDATE idempotency SET status = ?3, body = ?4 WHERE client_id = ?1 AND key = ?2 AND status IS NULL",
                params![client, key, i64::from(response.status), response.body],
            )
            .map_err(unavailable)?;
            Ok(())
        })
    }

    fn abandon<'a>(
        &'a self,
        client: &'a ClientId,
        key: &'a IdempotencyKey,
    ) -> BoxFuture<'a, Result<(), IdempotencyError>> {
        let (client, key) = (client.as_str().to_owned(), key.as_str().to_owned());
        self.db.run(Role::Write, move |conn| {
            conn.execute(
                "DELETE FROM idempotency WHERE client_id = ?1 AND key = ?2 AND status IS NULL",
                params![client, key],
            )
            .map_err(unavailable)?;
            Ok(())
        })
    }
}
