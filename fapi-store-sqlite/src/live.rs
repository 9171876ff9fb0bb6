//! A resource call's live reads in one statement.

use fapi_consent::Consent;
use fapi_core::store::{BoxFuture, StoreError};
use fapi_core::{CertificateThumbprint, ClientId, ConsentId, JwtId};
use fapi_mtls_binding::directory::Standing;
use rusqlite::{params, OptionalExtension};

use crate::directory::standing_from;
use crate::pool::{unavailable, Role};
use crate::SqliteStore;

/// What one call's live reads found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallState {
    /// Whether the access token's `jti` is revoked.
    pub revoked: bool,
    /// The directory's standing of the client presenting the certificate.
    pub standing: Standing,
    /// The token's consent as stored now (`None`: none asked for, or no
    /// such consent).
    pub consent: Option<Consent>,
}

/// The three reads FAPI-RULES require live on every resource call (the
/// token's `jti` against the revoked tokens, the directory's standing of
/// the certificate's client, the token's consent), as one statement: one
/// snapshot, every subquery a lookup by key. The answers are the ones
/// [`SqliteRevokedTokenStore`](crate::SqliteRevokedTokenStore),
/// [`SqliteDirectory`](crate::SqliteDirectory) and
/// [`SqliteConsentStore`](crate::SqliteConsentStore) give one by one.
#[derive(Clone, Debug)]
pub struct SqliteLiveReads {
    db: SqliteStore,
}

type Row = (bool, bool, Option<i64>, Option<String>, Option<String>);

impl SqliteLiveReads {
    pub(crate) fn new(db: SqliteStore) -> Self {
        Self { db }
    }

    /// The state of a call by `client` presenting `certificate` with the
    /// access token `jti` for `consent`.
    ///
    /// # Errors
    /// [`StoreError`], also for a consent row that does not parse.
    pub fn read(
        &self,
        jti: &JwtId,
        client: &ClientId,
        certificate: &CertificateThumbprint,
        consent: Option<&ConsentId>,
    ) -> BoxFuture<'static, Result<CallState, StoreError>> {
        let (jti, client, cert) = (
            jti.as_str().to_owned(),
            client.as_str().to_owned(),
            *certificate.as_bytes(),
        );
        let consent = consent.map(|c| c.as_str().to_owned());
        self.db.run(Role::Read, move |conn| {
            let (revoked, cert_revoked, client_revoked, owner, body): Row = conn
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = ?1), \
                            EXISTS (SELECT 1 FROM revoked_certificates WHERE thumbprint = ?3), \
                            (SELECT revoked FROM clients WHERE client_id = ?2), \
                            (SELECT client_id FROM client_certificates WHERE thumbprint = ?3), \
                            (SELECT body FROM consents WHERE id = ?4)",
                )
                .map_err(unavailable)?
                .query_row(params![jti, client, &cert[..], consent], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })
                .optional()
                .map_err(unavailable)?
                .ok_or_else(|| unavailable("the per-call read returned no row"))?;
            let standing = standing_from(cert_revoked, client_revoked, owner)?;
            let consent = body.as_deref().map(crate::consent::parse).transpose()?;
            Ok(CallState {
                revoked,
                standing,
                consent,
            })
        })
    }
}
