//! Refresh grants and revoked access-token ids.

use fapi_core::access_token::Confirmation;
use fapi_core::refresh::{RefreshGrant, RefreshGrantStore, RefreshToken};
use fapi_core::revocation::RevokedTokenStore;
use fapi_core::store::{BoxFuture, StoreError};
use fapi_core::UnixTime;
use fapi_core::{CertificateThumbprint, ClientId, ConsentId, JwtId, Scope};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::pool::{unavailable, Role};
use crate::SqliteStore;

/// A refresh grant as its row's JSON body: the binding as the `cnf`
/// object it would be in a token. Rows written before the binding was
/// typed hold `certificate` (an `x5t#S256`) instead; they read the same.
#[derive(Serialize, Deserialize)]
struct GrantRow {
    id: String,
    client_id: ClientId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cnf: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    certificate: Option<String>,
    consent_id: ConsentId,
    customer_id: String,
    scope: Scope,
}

impl GrantRow {
    fn of(g: &RefreshGrant) -> Self {
        Self {
            id: g.id.as_str().to_owned(),
            client_id: g.client_id.clone(),
            cnf: Some(g.confirmation.to_json()),
            certificate: None,
            consent_id: g.consent_id.clone(),
            customer_id: g.customer_id.clone(),
            scope: g.scope.clone(),
        }
    }

    fn grant(self) -> Result<RefreshGrant, StoreError> {
        let confirmation = match (self.cnf, self.certificate) {
            (Some(cnf), None) => Confirmation::from_json(&cnf).map_err(unavailable)?,
            (None, Some(x5t)) => Confirmation::CertificateThumbprint(
                CertificateThumbprint::from_b64url(&x5t).map_err(unavailable)?,
            ),
            _ => return Err(unavailable("refresh grant row has no single binding")),
        };
        Ok(RefreshGrant {
            id: JwtId::try_from(self.id.as_str()).map_err(unavailable)?,
            client_id: self.client_id,
            confirmation,
            consent_id: self.consent_id,
            customer_id: self.customer_id,
            scope: self.scope,
        })
    }
}

/// Deletes the refresh grants `ids` inside the caller's transaction.
fn delete_refresh_in(tx: &Connection, ids: &[JwtId]) -> Result<(), StoreError> {
    let mut st = tx
        .prepare_cached("DELETE FROM refresh_tokens WHERE id = ?1")
        .map_err(unavailable)?;
    for id in ids {
        st.execute(params![id.as_str()]).map_err(unavailable)?;
    }
    Ok(())
}

/// [`RefreshGrantStore`] in `refresh_tokens`, by the token's SHA-256; a
/// revoked grant is deleted (so is one whose id
/// [`RevokedTokenStore::revoke`] names, in that transaction).
#[derive(Clone, Debug)]
pub struct SqliteRefreshGrantStore {
    db: SqliteStore,
}

impl SqliteRefreshGrantStore {
    pub(crate) fn new(db: SqliteStore) -> Self {
        Self { db }
    }
}

impl RefreshGrantStore for SqliteRefreshGrantStore {
    fn store<'a>(
        &'a self,
        token: &'a RefreshToken,
        grant: RefreshGrant,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let hash = token.hash();
        self.db.run(Role::Write, move |conn| {
            let body = serde_json::to_string(&GrantRow::of(&grant)).map_err(unavailable)?;
            conn.prepare_cached("INSERT INTO refresh_tokens (hash, id, body) VALUES (?1, ?2, ?3)")
                .and_then(|mut st| st.execute(params![&hash[..], grant.id.as_str(), body]))
                .map_err(unavailable)?;
            Ok(())
        })
    }

    fn grant<'a>(
        &'a self,
        token: &'a RefreshToken,
    ) -> BoxFuture<'a, Result<Option<RefreshGrant>, StoreError>> {
        let hash = token.hash();
        self.db.run(Role::Read, move |conn| {
            let body: Option<String> = conn
                .prepare_cached("SELECT body FROM refresh_tokens WHERE hash = ?1")
                .map_err(unavailable)?
                .query_row(params![&hash[..]], |r| r.get(0))
                .optional()
                .map_err(unavailable)?;
            body.map(|b| {
                serde_json::from_str::<GrantRow>(&b)
                    .map_err(unavailable)?
                    .grant()
            })
            .transpose()
        })
    }

    fn revoke<'a>(&'a self, ids: &'a [JwtId]) -> BoxFuture<'a, Result<(), StoreError>> {
        let ids = ids.to_vec();
        self.db.run(Role::Write, move |conn| {
            let tx = conn.transaction().map_err(unavailable)?;
            delete_refresh_in(&tx, &ids)?;
            tx.commit().map_err(unavailable)
        })
    }
}

/// [`RevokedTokenStore`] in `revoked_tokens` (kept
/// [`REVOKED_TOKEN_MEMORY_SECS`](crate::REVOKED_TOKEN_MEMORY_SECS) by the
/// background sweep); revoking an id also deletes the refresh grant of
/// that id, in the same transaction.
#[derive(Clone, Debug)]
pub struct SqliteRevokedTokenStore {
    db: SqliteStore,
}

impl SqliteRevokedTokenStore {
    pub(crate) fn new(db: SqliteStore) -> Self {
        Self { db }
    }
}

impl RevokedTokenStore for SqliteRevokedTokenStore {
    fn revoke<'a>(
        &'a self,
        ids: &'a [JwtId],
        now: UnixTime,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let ids = ids.to_vec();
        self.db.run(Role::Write, move |conn| {
            let tx = conn.transaction().map_err(unavailable)?;
            {
                let mut st = tx
                    .prepare_cached(
                        "INSERT OR IGNORE INTO revoked_tokens (jti, revoked_at) VALUES (?1, ?2)",
                    )
                    .map_err(unavailable)?;
                for id in &ids {
                    st.execute(params![id.as_str(), now.as_secs()])
                        .map_err(unavailable)?;
                }
            }
            delete_refresh_in(&tx, &ids)?;
            tx.commit().map_err(unavailable)
        })
    }

    fn is_revoked<'a>(&'a self, id: &'a JwtId) -> BoxFuture<'a, Result<bool, StoreError>> {
        let id = id.as_str().to_owned();
        self.db.run(Role::Read, move |conn| {
            conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = ?1)")
                .map_err(unavailable)?
                .query_row(params![id], |r| r.get(0))
                .map_err(unavailable)
        })
    }
}
