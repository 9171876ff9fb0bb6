//! Pushed requests in the bank's SQLite file, so an authorization survives
//! a restart of the bank and several bank processes can share one
//! database.
//!
//! Only the pushed parameters and the time they were validated at are
//! stored (with the SHA-256 of the `request_uri`, never the reference
//! itself). Reading a request back re-runs `fapi-par`'s validation against
//! the client's current registration ([`fapi_par::revalidate`]): a row
//! changed in the database, a registration whose keys were replaced, or a
//! revoked TPP yields [`LookupError::NoLongerValid`], never an unchecked
//! request. `take` is single use under an IMMEDIATE transaction.

use std::sync::Arc;

use fapi_core::crypto::CryptoProvider;
use fapi_core::store::{BoxFuture, StoreError};
use fapi_core::time::UnixTime;
use fapi_core::types::ClientId;
use fapi_core::Profile;
use fapi_par::{
    revalidate, LookupError, ParConfig, PushSource, PushedRequest, PushedRequestStore, RequestUri,
};
use rusqlite::{params, OptionalExtension, TransactionBehavior};
use sha2::{Digest, Sha256};

use crate::sqlite::{unavailable, SqliteDb};

/// The SQLite [`PushedRequestStore`].
#[derive(Debug)]
pub struct SqlitePushedRequestStore {
    db: Arc<SqliteDb>,
    config: ParConfig,
    provider: Arc<dyn CryptoProvider>,
    profile: Profile,
}

fn uri_hash(uri: &RequestUri) -> [u8; 32] {
    Sha256::digest(uri.as_str().as_bytes()).into()
}

impl SqlitePushedRequestStore {
    /// Pushed requests in `db`, re-validated with `config` against the
    /// registrations in `db`'s client registry.
    pub fn new(db: Arc<SqliteDb>, config: ParConfig, provider: Arc<dyn CryptoProvider>) -> Self {
        let profile = config.profile();
        Self {
            db,
            config,
            provider,
            profile,
        }
    }

    fn put_now(&self, request: &PushedRequest) -> Result<(), StoreError> {
        let source = serde_json::to_string(&*request.source).map_err(unavailable)?;
        self.db
            .conn()?
            .execute(
                "INSERT INTO pushed_requests (uri_hash, client_id, expires_at, used, source)
                 VALUES (?1, ?2, ?3, 0, ?4)",
                params![
                    &uri_hash(&request.request_uri)[..],
                    request.client_id().as_str(),
                    request.expires_at.as_secs(),
                    source
                ],
            )
            .map_err(unavailable)?;
        Ok(())
    }

    fn lookup(
        &self,
        uri: &RequestUri,
        client: &ClientId,
        now: UnixTime,
        consume: bool,
    ) -> Result<PushedRequest, LookupError> {
        let hash = uri_hash(uri);
        let source = {
            let mut conn = self.db.conn()?;
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            let row: Option<(String, i64, i64, String)> = tx
                .query_row(
                    "SELECT client_id, expires_at, used, source FROM pushed_requests WHERE uri_hash = ?1",
                    params![&hash[..]],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()
                .map_err(unavailable)?;
            let (owner, expires_at, used, source) = row.ok_or(LookupError::Unknown)?;
            if owner != client.as_str() {
                return Err(LookupError::WrongClient);
            }
            if now.as_secs() >= expires_at {
                return Err(LookupError::Expired);
            }
            if used != 0 {
                return Err(LookupError::AlreadyUsed);
            }
            if consume {
                tx.execute(
                    "UPDATE pushed_requests SET used = 1 WHERE uri_hash = ?1 AND used = 0",
                    params![&hash[..]],
                )
                .map_err(unavailable)?;
            }
            tx.commit().map_err(unavailable)?;
            let expires_at = UnixTime::from_secs(expires_at).ok_or(LookupError::NoLongerValid)?;
            (source, expires_at)
        };
        self.rebuild(uri, client, &source.0, source.1)
    }

    /// Re-validates a stored source against the client's registration now.
    fn rebuild(
        &self,
        uri: &RequestUri,
        client: &ClientId,
        source: &str,
        expires_at: UnixTime,
    ) -> Result<PushedRequest, LookupError> {
        let source: PushSource =
            serde_json::from_str(source).map_err(|_| LookupError::NoLongerValid)?;
        let registered = self
            .db
            .client(client)?
            .filter(|c| !c.revoked)
            .ok_or(LookupError::NoLongerValid)?;
        let metadata = registered
            .registration
            .metadata(&*self.provider, self.profile)
            .map_err(|_| LookupError::NoLongerValid)?;
        let request = revalidate(&source, &metadata, &self.config).map_err(|e| {
            tracing::warn!(error = %e, "stored pushed request no longer validates");
            LookupError::NoLongerValid
        })?;
        Ok(PushedRequest {
            request_uri: uri.clone(),
            request: Arc::new(request),
            expires_at,
            source: Arc::new(source),
        })
    }
}

impl PushedRequestStore for SqlitePushedRequestStore {
    fn put(&self, request: PushedRequest, _now: UnixTime) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(core::future::ready(self.put_now(&request)))
    }

    fn peek<'a>(
        &'a self,
        uri: &'a RequestUri,
        client: &'a ClientId,
        now: UnixTime,
    ) -> BoxFuture<'a, Result<PushedRequest, LookupError>> {
        Box::pin(core::future::ready(self.lookup(uri, client, now, false)))
    }

    fn take<'a>(
        &'a self,
        uri: &'a RequestUri,
        client: &'a ClientId,
        now: UnixTime,
    ) -> BoxFuture<'a, Result<PushedRequest, LookupError>> {
        Box::pin(core::future::ready(self.lookup(uri, client, now, true)))
    }
}
