//! The bank's own tables beside the crates' stores: refresh tokens (by
//! hash only), revoked token ids (a replayed authorization code revokes
//! what it issued), and payments.

use fapi_core::revocation::RevokedTokenStore;
use fapi_core::store::{ready, BoxFuture, StoreError};
use fapi_core::time::UnixTime;
use fapi_core::types::{ClientId, ConsentId, JwtId, Scope};
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::sqlite::{unavailable, SqliteDb};

/// What a refresh token stands for. Under FAPI 2 it is not rotated: it is
/// bound to the client and its certificate, and lives as long as its
/// consent is authorised.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct RefreshGrant {
    /// Id recorded against the authorization code (revocation on replay).
    pub(crate) id: String,
    pub(crate) client_id: ClientId,
    /// `x5t#S256` of the certificate the token was issued over.
    pub(crate) certificate: String,
    pub(crate) consent_id: ConsentId,
    pub(crate) customer_id: String,
    pub(crate) scope: Scope,
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl SqliteDb {
    pub(crate) fn store_refresh_token(
        &self,
        token: &str,
        grant: &RefreshGrant,
    ) -> Result<(), StoreError> {
        let body = serde_json::to_string(grant).map_err(unavailable)?;
        self.conn()?
            .execute(
                "INSERT INTO refresh_tokens (hash, id, body) VALUES (?1, ?2, ?3)",
                params![&hash(token)[..], grant.id, body],
            )
            .map_err(unavailable)?;
        Ok(())
    }

    pub(crate) fn refresh_grant(&self, token: &str) -> Result<Option<RefreshGrant>, StoreError> {
        let body: Option<String> = self
            .conn()?
            .prepare_cached("SELECT body FROM refresh_tokens WHERE hash = ?1")
            .map_err(unavailable)?
            .query_row(params![&hash(token)[..]], |r| r.get(0))
            .optional()
            .map_err(unavailable)?;
        body.map(|b| serde_json::from_str(&b).map_err(unavailable))
            .transpose()
    }

    /// Revokes tokens by id: access tokens by `jti` (checked on every
    /// resource call), refresh tokens by their recorded id (deleted), in
    /// one transaction.
    fn revoke_tokens(&self, ids: &[JwtId], now: UnixTime) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction().map_err(unavailable)?;
        for id in ids {
            tx.execute(
                "INSERT OR IGNORE INTO revoked_tokens (jti, revoked_at) VALUES (?1, ?2)",
                params![id.as_str(), now.as_secs()],
            )
            .map_err(unavailable)?;
            tx.execute(
                "DELETE FROM refresh_tokens WHERE id = ?1",
                params![id.as_str()],
            )
            .map_err(unavailable)?;
        }
        tx.commit().map_err(unavailable)
    }

    fn is_token_revoked(&self, jti: &JwtId) -> Result<bool, StoreError> {
        self.conn()?
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = ?1)")
            .map_err(unavailable)?
            .query_row(params![jti.as_str()], |r| r.get(0))
            .map_err(unavailable)
    }

    /// Stores the payment of `consent` unless one is stored already (a
    /// reconciliation and the submission may both finish it); returns the
    /// stored one's body either way.
    pub(crate) fn save_payment(
        &self,
        id: &str,
        client: &ClientId,
        consent: &ConsentId,
        body: &str,
    ) -> Result<String, StoreError> {
        let conn = self.conn()?;
        conn.execute(
            "INSERT OR IGNORE INTO payments (id, client_id, consent_id, body) VALUES (?1, ?2, ?3, ?4)",
            params![id, client.as_str(), consent.as_str(), body],
        )
        .map_err(unavailable)?;
        let body = conn
            .prepare_cached("SELECT body FROM payments WHERE consent_id = ?1")
            .map_err(unavailable)?
            .query_row(params![consent.as_str()], |r| r.get(0))
            .map_err(unavailable);
        body
    }

    /// The body of the payment made with `consent`, if any.
    pub(crate) fn payment_of_consent(
        &self,
        consent: &ConsentId,
    ) -> Result<Option<String>, StoreError> {
        self.conn()?
            .prepare_cached("SELECT body FROM payments WHERE consent_id = ?1")
            .map_err(unavailable)?
            .query_row(params![consent.as_str()], |r| r.get(0))
            .optional()
            .map_err(unavailable)
    }

    /// Payment consents reserved by a submission and not settled yet.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub fn pending_payment_consents(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.conn()?;
        let mut st = conn
            .prepare_cached(
                "SELECT id FROM consents WHERE json_extract(body, '$.status') = 'PaymentPending'",
            )
            .map_err(unavailable)?;
        let ids = st
            .query_map([], |r| r.get(0))
            .map_err(unavailable)?
            .collect::<Result<Vec<String>, _>>()
            .map_err(unavailable)?;
        Ok(ids)
    }

    /// A payment's client and body.
    pub(crate) fn payment(&self, id: &str) -> Result<Option<(String, String)>, StoreError> {
        self.conn()?
            .prepare_cached("SELECT client_id, body FROM payments WHERE id = ?1")
            .map_err(unavailable)?
            .query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(unavailable)
    }
}

/// Revoked tokens in `revoked_tokens` (kept [`REVOKED_TOKEN_MEMORY_SECS`]
/// by the background sweep); a revoked refresh token is deleted.
///
/// [`REVOKED_TOKEN_MEMORY_SECS`]: crate::sqlite::REVOKED_TOKEN_MEMORY_SECS
impl RevokedTokenStore for SqliteDb {
    fn revoke<'a>(
        &'a self,
        ids: &'a [JwtId],
        now: UnixTime,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        ready(self.revoke_tokens(ids, now))
    }
    fn is_revoked<'a>(&'a self, id: &'a JwtId) -> BoxFuture<'a, Result<bool, StoreError>> {
        ready(self.is_token_revoked(id))
    }
}
