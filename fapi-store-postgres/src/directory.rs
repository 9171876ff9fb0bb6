//! The TPP registry, which is also the bank's directory.

use fapi_core::store::{BoxFuture, StoreError};
use fapi_core::{CertificateThumbprint, ClientId, UnixTime};
use fapi_mtls_binding::directory::{CertificateStatus, DirectoryError, Standing, TppDirectory};
use fapi_mtls_binding::registry::{RegisterError, RegisteredClient, TppRegistry};
use tokio_postgres::error::SqlState;

use crate::{unavailable, PostgresStore};

/// The registry of onboarded TPPs in `fapi_clients`, the certificates
/// each holds in `fapi_client_certificates` (the one it was registered
/// with and those added since; the thumbprint is the key, so a
/// certificate is held by one client) and `fapi_revoked_certificates`: the [`TppRegistry`] onboarding writes and
/// the [`TppDirectory`] resource calls consult. Every answer is read live:
/// a revocation through any instance stops the next call on every other.
#[derive(Clone, Debug)]
pub struct PostgresDirectory {
    db: PostgresStore,
}

/// The directory's whole answer for a client presenting a certificate, in
/// one statement (one snapshot): `$1` the client id, `$2` the thumbprint.
pub(crate) const STANDING_COLUMNS: &str =
    "EXISTS (SELECT 1 FROM fapi_revoked_certificates WHERE thumbprint = $2),
     (SELECT revoked FROM fapi_clients WHERE client_id = $1),
     (SELECT client_id FROM fapi_client_certificates WHERE thumbprint = $2)";

/// The [`Standing`] from [`STANDING_COLUMNS`] starting at column `at`.
pub(crate) fn standing_at(row: &tokio_postgres::Row, at: usize) -> Result<Standing, StoreError> {
    let cert_revoked: bool = row.try_get(at).map_err(unavailable)?;
    let client_revoked: Option<bool> = row.try_get(at + 1).map_err(unavailable)?;
    let owner: Option<&str> = row.try_get(at + 2).map_err(unavailable)?;
    let owner = owner
        .map(|o| ClientId::try_from(o).map_err(unavailable))
        .transpose()?;
    Ok(Standing::from_records(cert_revoked, client_revoked, owner))
}

fn thumbprint(bytes: &[u8]) -> Result<CertificateThumbprint, StoreError> {
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| unavailable("a stored certificate thumbprint is not 32 bytes"))?;
    Ok(CertificateThumbprint::from_bytes(bytes))
}

impl PostgresDirectory {
    pub(crate) fn new(db: PostgresStore) -> Self {
        Self { db }
    }

    async fn standing_now(
        &self,
        client: &ClientId,
        certificate: &CertificateThumbprint,
    ) -> Result<Standing, StoreError> {
        let db = self.db.client().await?;
        let st = db
            .prepare_cached(&format!("SELECT {STANDING_COLUMNS}"))
            .await
            .map_err(unavailable)?;
        let row = db
            .query_one(&st, &[&client.as_str(), &&certificate.as_bytes()[..]])
            .await
            .map_err(unavailable)?;
        standing_at(&row, 0)
    }

    async fn set_revoked(&self, id: &ClientId, revoked: bool) -> Result<bool, StoreError> {
        let db = self.db.client().await?;
        let n = db
            .execute(
                "UPDATE fapi_clients SET revoked = $2 WHERE client_id = $1",
                &[&id.as_str(), &revoked],
            )
            .await
            .map_err(unavailable)?;
        Ok(n == 1)
    }
}

impl TppDirectory for PostgresDirectory {
    fn status<'a>(
        &'a self,
        client: &'a ClientId,
        certificate: &'a CertificateThumbprint,
    ) -> BoxFuture<'a, Result<CertificateStatus, DirectoryError>> {
        Box::pin(async move {
            self.standing_now(client, certificate)
                .await
                .map(|s| s.status)
                .map_err(|_| DirectoryError)
        })
    }

    fn standing<'a>(
        &'a self,
        client: &'a ClientId,
        certificate: &'a CertificateThumbprint,
    ) -> BoxFuture<'a, Result<Standing, DirectoryError>> {
        Box::pin(async move {
            self.standing_now(client, certificate)
                .await
                .map_err(|_| DirectoryError)
        })
    }

    fn certificate_owner<'a>(
        &'a self,
        certificate: &'a CertificateThumbprint,
    ) -> BoxFuture<'a, Result<Option<ClientId>, DirectoryError>> {
        Box::pin(async move {
            let owner = async {
                let db = self.db.client().await?;
                let row = db
                    .query_opt(
                        "SELECT client_id FROM fapi_client_certificates WHERE thumbprint = $1",
                        &[&&certificate.as_bytes()[..]],
                    )
                    .await
                    .map_err(unavailable)?;
                row.map(|r| {
                    let id: &str = r.try_get(0).map_err(unavailable)?;
                    ClientId::try_from(id).map_err(unavailable)
                })
                .transpose()
            };
            owner.await.map_err(|_: StoreError| DirectoryError)
        })
    }
}

impl TppRegistry for PostgresDirectory {
    /// One transaction: insert the client, or update its registration only
    /// if it is not revoked (a revoked TPP is not re-registered without a
    /// reinstatement: no row changes), then replace the certificates it
    /// holds with `certificate`. A certificate another client holds
    /// violates `fapi_clients.certificate`'s `UNIQUE` constraint or finds
    /// its `fapi_client_certificates` row owned by that client (the
    /// transaction rolls back), also when two instances register it at the
    /// same moment.
    fn register_client<'a>(
        &'a self,
        client: &'a ClientId,
        registration: String,
        certificate: &'a CertificateThumbprint,
        now: UnixTime,
    ) -> BoxFuture<'a, Result<(), RegisterError>> {
        Box::pin(async move {
            let mut db = self.db.client().await?;
            let tx = db.transaction().await.map_err(unavailable)?;
            let taken = |e: tokio_postgres::Error| {
                if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
                    RegisterError::CertificateTaken
                } else {
                    RegisterError::from(unavailable(e))
                }
            };
            let cert = &certificate.as_bytes()[..];
            let written = tx
                .execute(
                    "INSERT INTO fapi_clients (client_id, registration, certificate, revoked, onboarded_at)
                     VALUES ($1, $2, $3, FALSE, $4)
                     ON CONFLICT (client_id) DO UPDATE
                     SET registration = EXCLUDED.registration, certificate = EXCLUDED.certificate
                     WHERE NOT fapi_clients.revoked",
                    &[&client.as_str(), &registration, &cert, &now.as_secs()],
                )
                .await
                .map_err(taken)?;
            if written != 1 {
                return Err(RegisterError::Revoked);
            }
            tx.execute(
                "DELETE FROM fapi_client_certificates WHERE client_id = $1 AND thumbprint <> $2",
                &[&client.as_str(), &cert],
            )
            .await
            .map_err(unavailable)?;
            // a row another client holds is left alone: nothing written
            let held = tx
                .execute(
                    "INSERT INTO fapi_client_certificates (thumbprint, client_id, added_at)
                     VALUES ($1, $2, $3)
                     ON CONFLICT (thumbprint) DO UPDATE SET client_id = EXCLUDED.client_id
                     WHERE fapi_client_certificates.client_id = EXCLUDED.client_id",
                    &[&cert, &client.as_str(), &now.as_secs()],
                )
                .await
                .map_err(taken)?;
            if held != 1 {
                return Err(RegisterError::CertificateTaken);
            }
            tx.commit().await.map_err(unavailable)?;
            Ok(())
        })
    }

    /// An insert that only an active client's certificate makes (the
    /// thumbprint key decides a race between clients); when it inserts
    /// nothing, one read says why.
    fn add_certificate<'a>(
        &'a self,
        client: &'a ClientId,
        certificate: &'a CertificateThumbprint,
        now: UnixTime,
    ) -> BoxFuture<'a, Result<(), RegisterError>> {
        Box::pin(async move {
            let db = self.db.client().await?;
            let cert = &certificate.as_bytes()[..];
            // a row deleted by a concurrent re-registration between the
            // insert and the read is tried again, a bounded number of times
            for _ in 0..3 {
                let inserted = db
                    .execute(
                        "INSERT INTO fapi_client_certificates (thumbprint, client_id, added_at)
                         SELECT $1, $2, $3 WHERE EXISTS
                             (SELECT 1 FROM fapi_clients WHERE client_id = $2 AND NOT revoked)
                         ON CONFLICT (thumbprint) DO NOTHING",
                        &[&cert, &client.as_str(), &now.as_secs()],
                    )
                    .await
                    .map_err(unavailable)?;
                if inserted == 1 {
                    return Ok(());
                }
                let row = db
                    .query_one(
                        "SELECT (SELECT revoked FROM fapi_clients WHERE client_id = $2),
                                (SELECT client_id FROM fapi_client_certificates WHERE thumbprint = $1)",
                        &[&cert, &client.as_str()],
                    )
                    .await
                    .map_err(unavailable)?;
                let revoked: Option<bool> = row.try_get(0).map_err(unavailable)?;
                let owner: Option<&str> = row.try_get(1).map_err(unavailable)?;
                match (revoked, owner) {
                    (None, _) => return Err(RegisterError::NotRegistered),
                    (Some(true), _) => return Err(RegisterError::Revoked),
                    (Some(false), Some(o)) if o == client.as_str() => return Ok(()),
                    (Some(false), Some(_)) => return Err(RegisterError::CertificateTaken),
                    (Some(false), None) => {}
                }
            }
            Err(RegisterError::Store(unavailable(
                "the certificate's ownership kept changing while it was added",
            )))
        })
    }

    fn revoke_client<'a>(
        &'a self,
        client: &'a ClientId,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.set_revoked(client, true))
    }

    fn reinstate_client<'a>(
        &'a self,
        client: &'a ClientId,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.set_revoked(client, false))
    }

    fn revoke_certificate<'a>(
        &'a self,
        certificate: &'a CertificateThumbprint,
        now: UnixTime,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let db = self.db.client().await?;
            db.execute(
                "INSERT INTO fapi_revoked_certificates (thumbprint, revoked_at) VALUES ($1, $2)
                 ON CONFLICT (thumbprint) DO NOTHING",
                &[&&certificate.as_bytes()[..], &now.as_secs()],
            )
            .await
            .map_err(unavailable)?;
            Ok(())
        })
    }

    fn client<'a>(
        &'a self,
        client: &'a ClientId,
    ) -> BoxFuture<'a, Result<Option<RegisteredClient>, StoreError>> {
        Box::pin(async move {
            let db = self.db.client().await?;
            let st = db
                .prepare_cached(
                    "SELECT registration, certificate, revoked FROM fapi_clients WHERE client_id = $1",
                )
                .await
                .map_err(unavailable)?;
            let row = db
                .query_opt(&st, &[&client.as_str()])
                .await
                .map_err(unavailable)?;
            row.map(|r| {
                Ok(RegisteredClient {
                    client_id: client.clone(),
                    registration: r.try_get(0).map_err(unavailable)?,
                    certificate: thumbprint(r.try_get(1).map_err(unavailable)?)?,
                    revoked: r.try_get(2).map_err(unavailable)?,
                })
            })
            .transpose()
        })
    }

    fn client_ids(&self) -> BoxFuture<'_, Result<Vec<ClientId>, StoreError>> {
        Box::pin(async move {
            let db = self.db.client().await?;
            db.query("SELECT client_id FROM fapi_clients ORDER BY client_id", &[])
                .await
                .map_err(unavailable)?
                .iter()
                .map(|r| {
                    let id: &str = r.try_get(0).map_err(unavailable)?;
                    ClientId::try_from(id).map_err(unavailable)
                })
                .collect()
        })
    }
}
