//! A resource call's live reads in one statement.

use fapi_consent::Consent;
use fapi_core::store::{BoxFuture, StoreError};
use fapi_core::{CertificateThumbprint, ClientId, ConsentId, JwtId, VerifiedAccessToken};
use fapi_mtls_binding::resource::{LiveRead, LiveState};

use crate::directory::{standing_at, STANDING_COLUMNS};
use crate::{unavailable, PostgresStore};

/// The three reads FAPI-RULES require live on every resource call (the
/// token's `jti` against the revoked tokens, the directory's standing of
/// the certificate's client, the token's consent) as one statement: one
/// round trip and one snapshot, every subquery a lookup by key. It is the
/// [`LiveState`] of `fapi_mtls_binding::resource::ResourceChain`, and its
/// answers are the ones the revoked-token store, the directory and the
/// consent store give one by one. Nothing is cached: what any instance
/// wrote before the call is what the call reads.
#[derive(Clone, Debug)]
pub struct PostgresLiveReads {
    db: PostgresStore,
}

impl PostgresLiveReads {
    pub(crate) fn new(db: PostgresStore) -> Self {
        Self { db }
    }

    /// The state of a call by `client` presenting `certificate` with the
    /// access token `jti` for `consent` (what [`LiveState::read`] reads
    /// for a verified token), for a service that keeps its own pipeline.
    ///
    /// # Errors
    /// [`StoreError`], also for a consent row that does not parse.
    pub async fn read_ids(
        &self,
        jti: &JwtId,
        client: &ClientId,
        certificate: &CertificateThumbprint,
        consent: Option<&ConsentId>,
    ) -> Result<LiveRead<Option<Consent>>, StoreError> {
        let db = self.db.client().await?;
        let st = db
            .prepare_cached(&format!(
                "SELECT EXISTS (SELECT 1 FROM fapi_revoked_tokens WHERE jti = $3),
                        (SELECT body FROM fapi_consents WHERE id = $4),
                        {STANDING_COLUMNS}"
            ))
            .await
            .map_err(unavailable)?;
        let consent = consent.map(ConsentId::as_str);
        let row = db
            .query_one(
                &st,
                &[
                    &client.as_str(),
                    &&certificate.as_bytes()[..],
                    &jti.as_str(),
                    &consent,
                ],
            )
            .await
            .map_err(unavailable)?;
        let body: Option<&str> = row.try_get(1).map_err(unavailable)?;
        Ok(LiveRead {
            revoked: row.try_get(0).map_err(unavailable)?,
            standing: standing_at(&row, 2)?,
            extra: body
                .map(|b| serde_json::from_str(b).map_err(unavailable))
                .transpose()?,
        })
    }
}

impl LiveState<Option<Consent>> for PostgresLiveReads {
    fn read<'a>(
        &'a self,
        token: &'a VerifiedAccessToken,
        certificate: &'a CertificateThumbprint,
    ) -> BoxFuture<'a, Result<LiveRead<Option<Consent>>, StoreError>> {
        Box::pin(self.read_ids(
            token.jti(),
            token.client_id(),
            certificate,
            token.consent_id(),
        ))
    }
}
