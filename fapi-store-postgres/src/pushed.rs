//! Pushed authorization requests.

use std::sync::Arc;

use fapi_core::store::{BoxFuture, StoreError};
use fapi_core::{ClientId, UnixTime};
use fapi_par::{
    CurrentRegistration, LookupError, ParConfig, PushedRequest, PushedRequestStore, RequestUri,
};
use sha2::{Digest, Sha256};
use tokio_postgres::Row;

use crate::{unavailable, PostgresStore};

/// [`PushedRequestStore`] in `fapi_pushed_requests`.
///
/// Only the pushed parameters and the time they were validated at are
/// stored, under the SHA-256 of the `request_uri` (never the reference
/// itself). Reading a request back re-runs `fapi-par`'s validation against
/// the client's registration now ([`fapi_par::store::restore`]): a row
/// changed in the database, replaced keys or a revoked TPP yields
/// [`LookupError::NoLongerValid`]. `take` locks the row (`SELECT … FOR
/// UPDATE`), checks and marks it used in one transaction, so of takes
/// racing on any instances one succeeds.
#[derive(Clone, Debug)]
pub struct PostgresPushedRequestStore {
    db: PostgresStore,
    config: ParConfig,
    registrations: Arc<dyn CurrentRegistration>,
}

fn uri_hash(uri: &RequestUri) -> [u8; 32] {
    Sha256::digest(uri.as_str().as_bytes()).into()
}

/// The row's checks, in the order every store gives them.
fn check(row: Option<Row>, owner: &ClientId, now: UnixTime) -> Result<(String, i64), LookupError> {
    let row = row.ok_or(LookupError::Unknown)?;
    let stored_owner: &str = row.try_get(0).map_err(unavailable)?;
    let expires_at: i64 = row.try_get(1).map_err(unavailable)?;
    let used: bool = row.try_get(2).map_err(unavailable)?;
    if stored_owner != owner.as_str() {
        return Err(LookupError::WrongClient);
    }
    if now.as_secs() >= expires_at {
        return Err(LookupError::Expired);
    }
    if used {
        return Err(LookupError::AlreadyUsed);
    }
    Ok((row.try_get(3).map_err(unavailable)?, expires_at))
}

const SELECT: &str =
    "SELECT client_id, expires_at, used, source FROM fapi_pushed_requests WHERE uri_hash = $1";

impl PostgresPushedRequestStore {
    pub(crate) fn new(
        db: PostgresStore,
        config: ParConfig,
        registrations: Arc<dyn CurrentRegistration>,
    ) -> Self {
        Self {
            db,
            config,
            registrations,
        }
    }

    async fn restore(
        &self,
        uri: &RequestUri,
        client: &ClientId,
        (source, expires_at): (String, i64),
    ) -> Result<PushedRequest, LookupError> {
        let expires_at = UnixTime::from_secs(expires_at).ok_or(LookupError::NoLongerValid)?;
        fapi_par::store::restore(
            &self.config,
            &*self.registrations,
            uri,
            client,
            &source,
            expires_at,
        )
        .await
    }
}

impl PushedRequestStore for PostgresPushedRequestStore {
    fn put(&self, request: PushedRequest, _now: UnixTime) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let source = serde_json::to_string(&*request.source).map_err(unavailable)?;
            let db = self.db.client().await?;
            let st = db
                .prepare_cached(
                    "INSERT INTO fapi_pushed_requests (uri_hash, client_id, expires_at, used, source)
                     VALUES ($1, $2, $3, FALSE, $4)",
                )
                .await
                .map_err(unavailable)?;
            db.execute(
                &st,
                &[
                    &&uri_hash(&request.request_uri)[..],
                    &request.client_id().as_str(),
                    &request.expires_at.as_secs(),
                    &source,
                ],
            )
            .await
            .map_err(unavailable)?;
            Ok(())
        })
    }

    fn peek<'a>(
        &'a self,
        uri: &'a RequestUri,
        client: &'a ClientId,
        now: UnixTime,
    ) -> BoxFuture<'a, Result<PushedRequest, LookupError>> {
        Box::pin(async move {
            let found = {
                let db = self.db.client().await?;
                let st = db.prepare_cached(SELECT).await.map_err(unavailable)?;
                let row = db
                    .query_opt(&st, &[&&uri_hash(uri)[..]])
                    .await
                    .map_err(unavailable)?;
                check(row, client, now)?
            };
            self.restore(uri, client, found).await
        })
    }

    fn take<'a>(
        &'a self,
        uri: &'a RequestUri,
        client: &'a ClientId,
        now: UnixTime,
    ) -> BoxFuture<'a, Result<PushedRequest, LookupError>> {
        Box::pin(async move {
            let found = {
                let hash = uri_hash(uri);
                let mut db = self.db.client().await?;
                let tx = db.transaction().await.map_err(unavailable)?;
                let row = tx
                    .query_opt(&format!("{SELECT} FOR UPDATE"), &[&&hash[..]])
                    .await
                    .map_err(unavailable)?;
                // a refusal returns before the commit: nothing marked
                let found = check(row, client, now)?;
                // the row is locked; the condition and the count are a
                // second line of defence, not the mechanism
                let marked = tx
                    .execute(
                        "UPDATE fapi_pushed_requests SET used = TRUE WHERE uri_hash = $1 AND NOT used",
                        &[&&hash[..]],
                    )
                    .await
                    .map_err(unavailable)?;
                if marked != 1 {
                    return Err(LookupError::AlreadyUsed);
                }
                tx.commit().await.map_err(unavailable)?;
                found
            };
            self.restore(uri, client, found).await
        })
    }
}
