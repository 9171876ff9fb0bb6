//! Refresh grants and revoked access-token ids.

use fapi_core::access_token::Confirmation;
use fapi_core::refresh::{RefreshGrant, RefreshGrantStore, RefreshToken};
use fapi_core::revocation::RevokedTokenStore;
use fapi_core::store::{BoxFuture, StoreError};
use fapi_core::UnixTime;
use fapi_core::{ClientId, ConsentId, JwtId, Scope};
use serde::{Deserialize, Serialize};
use tokio_postgres::Transaction;

use crate::{unavailable, PostgresStore};

/// A refresh grant as its row's JSON body, the binding as the `cnf` object
/// it would be in a token.
#[derive(Serialize, Deserialize)]
struct GrantRow {
    id: String,
    client_id: ClientId,
    cnf: serde_json::Value,
    consent_id: ConsentId,
    customer_id: String,
    scope: Scope,
}

impl GrantRow {
    fn of(g: &RefreshGrant) -> Self {
        Self {
            id: g.id.as_str().to_owned(),
            client_id: g.client_id.clone(),
            cnf: g.confirmation.to_json(),
            consent_id: g.consent_id.clone(),
            customer_id: g.customer_id.clone(),
            scope: g.scope.clone(),
        }
    }

    fn grant(self) -> Result<RefreshGrant, StoreError> {
        Ok(RefreshGrant {
            id: JwtId::try_from(self.id.as_str()).map_err(unavailable)?,
            client_id: self.client_id,
            confirmation: Confirmation::from_json(&self.cnf).map_err(unavailable)?,
            consent_id: self.consent_id,
            customer_id: self.customer_id,
            scope: self.scope,
        })
    }
}

fn ids_of(ids: &[JwtId]) -> Vec<&str> {
    ids.iter().map(JwtId::as_str).collect()
}

/// Deletes the refresh grants `ids` inside the caller's transaction.
async fn delete_refresh_in(tx: &Transaction<'_>, ids: &[JwtId]) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM fapi_refresh_tokens WHERE id = ANY($1)",
        &[&ids_of(ids)],
    )
    .await
    .map_err(unavailable)?;
    Ok(())
}

/// [`RefreshGrantStore`] in `fapi_refresh_tokens`, by the token's SHA-256; a
/// revoked grant is deleted (so is one whose id
/// [`RevokedTokenStore::revoke`] names, in that transaction).
#[derive(Clone, Debug)]
pub struct PostgresRefreshGrantStore {
    db: PostgresStore,
}

impl PostgresRefreshGrantStore {
    pub(crate) fn new(db: PostgresStore) -> Self {
        Self { db }
    }
}

impl RefreshGrantStore for PostgresRefreshGrantStore {
    fn store<'a>(
        &'a self,
        token: &'a RefreshToken,
        grant: RefreshGrant,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let body = serde_json::to_value(GrantRow::of(&grant)).map_err(unavailable)?;
            let client = self.db.client().await?;
            let st = client
                .prepare_cached(
                    "INSERT INTO fapi_refresh_tokens (hash, id, body) VALUES ($1, $2, $3)",
                )
                .await
                .map_err(unavailable)?;
            client
                .execute(&st, &[&&token.hash()[..], &grant.id.as_str(), &body])
                .await
                .map_err(unavailable)?;
            Ok(())
        })
    }

    fn grant<'a>(
        &'a self,
        token: &'a RefreshToken,
    ) -> BoxFuture<'a, Result<Option<RefreshGrant>, StoreError>> {
        Box::pin(async move {
            let client = self.db.client().await?;
            let st = client
                .prepare_cached("SELECT body FROM fapi_refresh_tokens WHERE hash = $1")
                .await
                .map_err(unavailable)?;
            let row = client
                .query_opt(&st, &[&&token.hash()[..]])
                .await
                .map_err(unavailable)?;
            row.map(|r| {
                let body: serde_json::Value = r.try_get(0).map_err(unavailable)?;
                serde_json::from_value::<GrantRow>(body)
                    .map_err(unavailable)?
                    .grant()
            })
            .transpose()
        })
    }

    fn revoke<'a>(&'a self, ids: &'a [JwtId]) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut client = self.db.client().await?;
            let tx = client.transaction().await.map_err(unavailable)?;
            delete_refresh_in(&tx, ids).await?;
            tx.commit().await.map_err(unavailable)
        })
    }
}

/// [`RevokedTokenStore`] in `fapi_revoked_tokens`; revoking an id also
/// deletes the refresh grant of that id, in the same transaction. Read by
/// every instance's next call: nothing is cached.
#[derive(Clone, Debug)]
pub struct PostgresRevokedTokenStore {
    db: PostgresStore,
}

impl PostgresRevokedTokenStore {
    pub(crate) fn new(db: PostgresStore) -> Self {
        Self { db }
    }
}

impl RevokedTokenStore for PostgresRevokedTokenStore {
    fn revoke<'a>(
        &'a self,
        ids: &'a [JwtId],
        now: UnixTime,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut client = self.db.client().await?;
            let tx = client.transaction().await.map_err(unavailable)?;
            tx.execute(
                "INSERT INTO fapi_revoked_tokens (jti, revoked_at)
                 SELECT unnest($1::text[]), $2 ON CONFLICT (jti) DO NOTHING",
                &[&ids_of(ids), &now.as_secs()],
            )
            .await
            .map_err(unavailable)?;
            delete_refresh_in(&tx, ids).await?;
            tx.commit().await.map_err(unavailable)
        })
    }

    fn is_revoked<'a>(&'a self, id: &'a JwtId) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let client = self.db.client().await?;
            let st = client
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM fapi_revoked_tokens WHERE jti = $1)")
                .await
                .map_err(unavailable)?;
            client
                .query_one(&st, &[&id.as_str()])
                .await
                .map_err(unavailable)?
                .try_get(0)
                .map_err(unavailable)
        })
    }
}
