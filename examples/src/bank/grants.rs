//! The bank's own tables beside the crates' stores: refresh tokens (by
//! hash only), revoked token ids (a replayed authorization code revokes
//! what it issued), and payments.

use fapi_consent::payment::{PaymentStore, StoredPayment};
use fapi_core::access_token::Confirmation;
use fapi_core::refresh::{RefreshGrant, RefreshGrantStore, RefreshToken};
use fapi_core::revocation::RevokedTokenStore;
use fapi_core::store::{ready, BoxFuture, StoreError};
use fapi_core::time::UnixTime;
use fapi_core::types::{CertificateThumbprint, ClientId, ConsentId, JwtId, Scope};
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::sqlite::{unavailable, SqliteDb};

const PAYMENT_BY_ID: &str = "SELECT id, client_id, consent_id, body FROM payments WHERE id = ?1";
const PAYMENT_BY_CONSENT: &str =
    "SELECT id, client_id, consent_id, body FROM payments WHERE consent_id = ?1";

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

impl SqliteDb {
    fn store_refresh_grant(
        &self,
        token: &RefreshToken,
        grant: &RefreshGrant,
    ) -> Result<(), StoreError> {
        let body = serde_json::to_string(&GrantRow::of(grant)).map_err(unavailable)?;
        self.conn()?
            .execute(
                "INSERT INTO refresh_tokens (hash, id, body) VALUES (?1, ?2, ?3)",
                params![&token.hash()[..], grant.id.as_str(), body],
            )
            .map_err(unavailable)?;
        Ok(())
    }

    fn refresh_grant(&self, token: &RefreshToken) -> Result<Option<RefreshGrant>, StoreError> {
        let body: Option<String> = self
            .conn()?
            .prepare_cached("SELECT body FROM refresh_tokens WHERE hash = ?1")
            .map_err(unavailable)?
            .query_row(params![&token.hash()[..]], |r| r.get(0))
            .optional()
            .map_err(unavailable)?;
        body.map(|b| {
            serde_json::from_str::<GrantRow>(&b)
                .map_err(unavailable)?
                .grant()
        })
        .transpose()
    }

    fn delete_refresh_grants(&self, ids: &[JwtId]) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction().map_err(unavailable)?;
        Self::delete_refresh_in(&tx, ids)?;
        tx.commit().map_err(unavailable)
    }

    /// Deletes the refresh grants `ids` inside the caller's transaction.
    fn delete_refresh_in(tx: &rusqlite::Connection, ids: &[JwtId]) -> Result<(), StoreError> {
        for id in ids {
            tx.execute(
                "DELETE FROM refresh_tokens WHERE id = ?1",
                params![id.as_str()],
            )
            .map_err(unavailable)?;
        }
        Ok(())
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
        }
        Self::delete_refresh_in(&tx, ids)?;
        tx.commit().map_err(unavailable)
    }

    fn is_token_revoked(&self, jti: &JwtId) -> Result<bool, StoreError> {
        self.conn()?
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = ?1)")
            .map_err(unavailable)?
            .query_row(params![jti.as_str()], |r| r.get(0))
            .map_err(unavailable)
    }

    /// Stores `p` unless its consent has a payment already (a
    /// reconciliation and the submission may both finish it); returns the
    /// stored one either way. One statement each, under the connection's
    /// lock: first writer wins.
    fn save_payment_once(&self, p: &StoredPayment) -> Result<StoredPayment, StoreError> {
        let conn = self.conn()?;
        conn.execute(
            "INSERT OR IGNORE INTO payments (id, client_id, consent_id, body) VALUES (?1, ?2, ?3, ?4)",
            params![p.id, p.client_id.as_str(), p.consent_id.as_str(), p.body],
        )
        .map_err(unavailable)?;
        Self::payment_where(&conn, PAYMENT_BY_CONSENT, p.consent_id.as_str())?
            .ok_or_else(|| unavailable("a saved payment cannot be read back"))
    }

    /// The payment `query` ([`PAYMENT_BY_ID`] or [`PAYMENT_BY_CONSENT`])
    /// finds for `key`.
    fn payment_where(
        conn: &rusqlite::Connection,
        query: &'static str,
        key: &str,
    ) -> Result<Option<StoredPayment>, StoreError> {
        let row: Option<(String, String, String, String)> = conn
            .prepare_cached(query)
            .map_err(unavailable)?
            .query_row(params![key], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()
            .map_err(unavailable)?;
        row.map(|(id, client, consent, body)| {
            Ok(StoredPayment {
                id,
                client_id: ClientId::try_from(client.as_str()).map_err(unavailable)?,
                consent_id: ConsentId::try_from(consent.as_str()).map_err(unavailable)?,
                body,
            })
        })
        .transpose()
    }

    /// Payment consents reserved by a submission and not settled yet
    /// (through the partial index on `PaymentPending`).
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn pending_payment_consents(&self) -> Result<Vec<ConsentId>, StoreError> {
        let conn = self.conn()?;
        let mut st = conn
            .prepare_cached(
                "SELECT id FROM consents WHERE json_extract(body, '$.status') = 'PaymentPending'",
            )
            .map_err(unavailable)?;
        let ids = st
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(unavailable)?
            .map(|id| {
                let id = id.map_err(unavailable)?;
                ConsentId::try_from(id.as_str()).map_err(unavailable)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ids)
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

/// Refresh grants in `refresh_tokens`, by the token's hash; a revoked one
/// is deleted (so is one whose id [`RevokedTokenStore::revoke`] names, in
/// that transaction).
impl RefreshGrantStore for SqliteDb {
    fn store<'a>(
        &'a self,
        token: &'a RefreshToken,
        grant: RefreshGrant,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        ready(self.store_refresh_grant(token, &grant))
    }
    fn grant<'a>(
        &'a self,
        token: &'a RefreshToken,
    ) -> BoxFuture<'a, Result<Option<RefreshGrant>, StoreError>> {
        ready(self.refresh_grant(token))
    }
    fn revoke<'a>(&'a self, ids: &'a [JwtId]) -> BoxFuture<'a, Result<(), StoreError>> {
        ready(self.delete_refresh_grants(ids))
    }
}

/// Payments in `payments` (unique by consent).
impl PaymentStore for SqliteDb {
    fn save_once(
        &self,
        payment: StoredPayment,
    ) -> BoxFuture<'_, Result<StoredPayment, StoreError>> {
        ready(self.save_payment_once(&payment))
    }
    fn by_id<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredPayment>, StoreError>> {
        ready(
            self.conn()
                .and_then(|c| Self::payment_where(&c, PAYMENT_BY_ID, id)),
        )
    }
    fn by_consent<'a>(
        &'a self,
        consent: &'a ConsentId,
    ) -> BoxFuture<'a, Result<Option<StoredPayment>, StoreError>> {
        ready(
            self.conn()
                .and_then(|c| Self::payment_where(&c, PAYMENT_BY_CONSENT, consent.as_str())),
        )
    }
}
