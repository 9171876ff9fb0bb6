//! Authorization codes.

use fapi_core::code::{
    decide, AuthorizationCode, AuthorizationCodeStore, CodeGrant, RedeemError, Redemption,
    StoredCode,
};
use fapi_core::store::{BoxFuture, StoreError};
use fapi_core::{ClientId, CodeVerifier, JwtId};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::pool::{unavailable, Role};
use crate::SqliteStore;

/// [`AuthorizationCodeStore`] in the `codes` table, keyed by the code's
/// SHA-256 (the code itself is never stored). A redemption reads, decides
/// ([`decide`]) and writes in one IMMEDIATE transaction: of racing
/// redemptions one wins, a refusal consumes nothing.
#[derive(Clone, Debug)]
pub struct SqliteCodeStore {
    db: SqliteStore,
}

impl SqliteCodeStore {
    pub(crate) fn new(db: SqliteStore) -> Self {
        Self { db }
    }
}

fn load(conn: &Connection, hash: &[u8; 32]) -> Result<Option<StoredCode>, StoreError> {
    let body: Option<String> = conn
        .prepare_cached("SELECT body FROM codes WHERE hash = ?1")
        .map_err(unavailable)?
        .query_row(params![&hash[..]], |r| r.get(0))
        .optional()
        .map_err(unavailable)?;
    body.map(|b| serde_json::from_str(&b).map_err(unavailable))
        .transpose()
}

fn save(conn: &Connection, hash: &[u8; 32], code: &StoredCode) -> Result<(), StoreError> {
    let body = serde_json::to_string(code).map_err(unavailable)?;
    conn.prepare_cached(
        "INSERT OR REPLACE INTO codes (hash, body, expires_at) VALUES (?1, ?2, ?3)",
    )
    .and_then(|mut st| st.execute(params![&hash[..], body, code.grant.expires_at.as_secs()]))
    .map_err(unavailable)?;
    Ok(())
}

/// A redemption's inputs, owned, for the store thread (the secrets are
/// copied into their own wiping types).
struct OwnedRedemption {
    code: AuthorizationCode,
    client_id: ClientId,
    redirect_uri: String,
    code_verifier: Option<CodeVerifier>,
    dpop_jkt: Option<fapi_core::crypto::JwkThumbprint>,
    now: fapi_core::UnixTime,
}

impl OwnedRedemption {
    fn of(r: &Redemption<'_>) -> Result<Self, StoreError> {
        Ok(Self {
            code: AuthorizationCode::try_from(r.code.secret()).map_err(unavailable)?,
            client_id: r.client_id.clone(),
            redirect_uri: r.redirect_uri.to_owned(),
            code_verifier: r
                .code_verifier
                .map(|v| CodeVerifier::try_from(v.secret().to_owned()))
                .transpose()
                .map_err(unavailable)?,
            dpop_jkt: r.dpop_jkt.copied(),
            now: r.now,
        })
    }

    fn as_redemption(&self) -> Redemption<'_> {
        Redemption {
            code: &self.code,
            client_id: &self.client_id,
            redirect_uri: &self.redirect_uri,
            code_verifier: self.code_verifier.as_ref(),
            dpop_jkt: self.dpop_jkt.as_ref(),
            now: self.now,
        }
    }
}

impl AuthorizationCodeStore for SqliteCodeStore {
    fn issue<'a>(
        &'a self,
        code: &'a AuthorizationCode,
        grant: CodeGrant,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let hash = code.hash();
        self.db.run(Role::Write, move |conn| {
            save(
                conn,
                &hash,
                &StoredCode {
                    grant,
                    redeemed: None,
                },
            )
        })
    }

    fn redeem<'a>(
        &'a self,
        r: &'a Redemption<'a>,
    ) -> BoxFuture<'a, Result<CodeGrant, RedeemError>> {
        let owned = match OwnedRedemption::of(r) {
            Ok(owned) => owned,
            Err(e) => return Box::pin(core::future::ready(Err(e.into()))),
        };
        let hash = r.code.hash();
        self.db.run(Role::Write, move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            let stored = load(&tx, &hash)?;
            // a refusal returns before the commit: nothing consumed
            let (grant, next) = decide(stored, &owned.as_redemption())?;
            save(&tx, &hash, &next)?;
            tx.commit().map_err(unavailable)?;
            Ok(grant)
        })
    }

    fn record_token<'a>(
        &'a self,
        code: &'a AuthorizationCode,
        jti: JwtId,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let hash = code.hash();
        self.db.run(Role::Write, move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            if let Some(mut stored) = load(&tx, &hash)? {
                if let Some(issued) = stored.redeemed.as_mut() {
                    issued.push(jti);
                    save(&tx, &hash, &stored)?;
                }
            }
            tx.commit().map_err(unavailable)
        })
    }
}
