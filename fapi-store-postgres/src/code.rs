//! Authorization codes.

use fapi_core::code::{
    decide, AuthorizationCode, AuthorizationCodeStore, CodeGrant, RedeemError, Redemption,
    StoredCode,
};
use fapi_core::store::{BoxFuture, StoreError};
use fapi_core::JwtId;
use tokio_postgres::Transaction;

use crate::{unavailable, PostgresStore};

/// [`AuthorizationCodeStore`] in `fapi_codes`, keyed by the code's SHA-256
/// (the code itself is never stored). A redemption locks the code's row
/// (`SELECT … FOR UPDATE`), decides ([`decide`]) and writes in one
/// transaction: racing redemptions from any instance queue on the lock and
/// the later ones see the first's result; a refusal rolls back and
/// consumes nothing.
#[derive(Clone, Debug)]
pub struct PostgresCodeStore {
    db: PostgresStore,
}

impl PostgresCodeStore {
    pub(crate) fn new(db: PostgresStore) -> Self {
        Self { db }
    }
}

async fn load_for_update(
    tx: &Transaction<'_>,
    hash: &[u8; 32],
) -> Result<Option<StoredCode>, StoreError> {
    let row = tx
        .query_opt(
            "SELECT body FROM fapi_codes WHERE hash = $1 FOR UPDATE",
            &[&&hash[..]],
        )
        .await
        .map_err(unavailable)?;
    row.map(|r| {
        let body: serde_json::Value = r.try_get(0).map_err(unavailable)?;
        serde_json::from_value(body).map_err(unavailable)
    })
    .transpose()
}

const SAVE: &str = "INSERT INTO fapi_codes (hash, body, expires_at) VALUES ($1, $2, $3)
     ON CONFLICT (hash) DO UPDATE SET body = EXCLUDED.body, expires_at = EXCLUDED.expires_at";

async fn save(tx: &Transaction<'_>, hash: &[u8; 32], code: &StoredCode) -> Result<(), StoreError> {
    let body = serde_json::to_value(code).map_err(unavailable)?;
    tx.execute(SAVE, &[&&hash[..], &body, &code.grant.expires_at.as_secs()])
        .await
        .map_err(unavailable)?;
    Ok(())
}

impl AuthorizationCodeStore for PostgresCodeStore {
    fn issue<'a>(
        &'a self,
        code: &'a AuthorizationCode,
        grant: CodeGrant,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let client = self.db.client().await?;
            let expires_at = grant.expires_at.as_secs();
            let body = serde_json::to_value(&StoredCode {
                grant,
                redeemed: None,
            })
            .map_err(unavailable)?;
            let st = client.prepare_cached(SAVE).await.map_err(unavailable)?;
            client
                .execute(&st, &[&&code.hash()[..], &body, &expires_at])
                .await
                .map_err(unavailable)?;
            Ok(())
        })
    }

    fn redeem<'a>(
        &'a self,
        r: &'a Redemption<'a>,
    ) -> BoxFuture<'a, Result<CodeGrant, RedeemError>> {
        Box::pin(async move {
            let hash = r.code.hash();
            let mut client = self.db.client().await?;
            let tx = client.transaction().await.map_err(unavailable)?;
            let stored = load_for_update(&tx, &hash).await?;
            // a refusal returns before the commit: the transaction rolls
            // back on drop, nothing consumed
            let (grant, next) = decide(stored, r)?;
            save(&tx, &hash, &next).await?;
            tx.commit().await.map_err(unavailable)?;
            Ok(grant)
        })
    }

    fn record_token<'a>(
        &'a self,
        code: &'a AuthorizationCode,
        jti: JwtId,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let hash = code.hash();
            let mut client = self.db.client().await?;
            let tx = client.transaction().await.map_err(unavailable)?;
            if let Some(mut stored) = load_for_update(&tx, &hash).await? {
                if let Some(issued) = stored.redeemed.as_mut() {
                    issued.push(jti);
                    save(&tx, &hash, &stored).await?;
                }
            }
            tx.commit().await.map_err(unavailable)
        })
    }
}
