//! Pushed authorization requests.

use std::sync::Arc;

use fapi_core::store::{BoxFuture, StoreError};
use fapi_core::ClientId;
use fapi_core::UnixTime;
use fapi_par::{
    CurrentRegistration, LookupError, ParConfig, PushedRequest, PushedRequestStore, RequestUri,
};
use rusqlite::{params, OptionalExtension, TransactionBehavior};
use sha2::{Digest, Sha256};

use crate::pool::{unavailable, Role};
use crate::SqliteStore;

/// [`PushedRequestStore`] in `pushed_requests`: a request survives a
/// restart and is shared by every process on the file.
///
/// Only the pushed parameters and the time they were validated at are
/// stored, under the SHA-256 of the `request_uri` (never the reference
/// itself). Reading a request back re-runs `fapi-par`'s validation against
/// the client's registration now ([`ParConfig::revalidate`], [`CurrentRegistration`]):
/// a row changed in the database, a registration whose keys were
/// replaced, or a revoked TPP yields [`LookupError::NoLongerValid`], never
/// an unchecked request. `take` is single use under an IMMEDIATE
/// transaction.
#[derive(Clone, Debug)]
pub struct SqlitePushedRequestStore {
    db: SqliteStore,
    config: ParConfig,
    registrations: Arc<dyn CurrentRegistration>,
}

fn uri_hash(uri: &RequestUri) -> [u8; 32] {
    Sha256::digest(uri.as_str().as_bytes()).into()
}

impl SqlitePushedRequestStore {
    pub(crate) fn new(
        db: SqliteStore,
        config: ParConfig,
        registrations: Arc<dyn CurrentRegistration>,
    ) -> Self {
        Self {
            db,
            config,
            registrations,
        }
    }

    fn lookup<'a>(
        &'a self,
        uri: &'a RequestUri,
        client: &'a ClientId,
        now: UnixTime,
        consume: bool,
    ) -> BoxFuture<'a, Result<PushedRequest, LookupError>> {
        let hash = uri_hash(uri);
        let owner = client.as_str().to_owned();
        // a peek only reads; a take reads and marks in one transaction
        let role = if consume { Role::Write } else { Role::Read };
        let row = self.db.run(role, move |conn| {
            let tx = if consume {
                conn.transaction_with_behavior(TransactionBehavior::Immediate)
            } else {
                conn.transaction_with_behavior(TransactionBehavior::Deferred)
            }
            .map_err(unavailable)?;
            let row: Option<(String, i64, i64, String)> = tx
                .prepare_cached(
                    "SELECT client_id, expires_at, used, source FROM pushed_requests WHERE uri_hash = ?1",
                )
                .map_err(unavailable)?
                .query_row(params![&hash[..]], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()
                .map_err(unavailable)?;
            let (stored_owner, expires_at, used, source) = row.ok_or(LookupError::Unknown)?;
            if stored_owner != owner {
                return Err(LookupError::WrongClient);
            }
            if now.as_secs() >= expires_at {
                return Err(LookupError::Expired);
            }
            if used != 0 {
                return Err(LookupError::AlreadyUsed);
            }
            if consume {
                tx.prepare_cached(
                    "UPDATE pushed_requests SET used = 1 WHERE uri_hash = ?1 AND used = 0",
                )
                .and_then(|mut st| st.execute(params![&hash[..]]))
                .map_err(unavailable)?;
            }
            tx.commit().map_err(unavailable)?;
            let expires_at = UnixTime::from_secs(expires_at).ok_or(LookupError::NoLongerValid)?;
            Ok((source, expires_at))
        });
        Box::pin(async move {
            let (source, expires_at) = row.await?;
            fapi_par::store::restore(
                &self.config,
                &*self.registrations,
                uri,
                client,
                &source,
                expires_at,
            )
            .await
        })
    }
}

impl PushedRequestStore for SqlitePushedRequestStore {
    fn put(&self, request: PushedRequest, _now: UnixTime) -> BoxFuture<'_, Result<(), StoreError>> {
        let hash = uri_hash(&request.request_uri);
        let client = request.client_id().as_str().to_owned();
        let expires_at = request.expires_at.as_secs();
        let source = serde_json::to_string(&*request.source).map_err(unavailable);
        self.db.run(Role::Write, move |conn| {
            let source = source?;
            conn.prepare_cached(
                "INSERT INTO pushed_requests (uri_hash, client_id, expires_at, used, source)
                 VALUES (?1, ?2, ?3, 0, ?4)",
            )
            .and_then(|mut st| st.execute(params![&hash[..], client, expires_at, source]))
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
        self.lookup(uri, client, now, false)
    }

    fn take<'a>(
        &'a self,
        uri: &'a RequestUri,
        client: &'a ClientId,
        now: UnixTime,
    ) -> BoxFuture<'a, Result<PushedRequest, LookupError>> {
        self.lookup(uri, client, now, true)
    }
}
