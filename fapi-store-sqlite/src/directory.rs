//! The TPP registry, which is also the bank's directory.

use fapi_core::store::{BoxFuture, StoreError};
use fapi_core::time::UnixTime;
use fapi_core::types::{CertificateThumbprint, ClientId};
use fapi_mtls_binding::directory::{CertificateStatus, DirectoryError, Standing, TppDirectory};
use rusqlite::{params, Connection, OptionalExtension};

use crate::pool::{unavailable, Role};
use crate::SqliteStore;

/// A registered client as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisteredClient {
    /// The client.
    pub client_id: ClientId,
    /// The registration, as the application serialised it (opaque here).
    pub registration: String,
    /// Its transport certificate's `x5t#S256`.
    pub certificate: CertificateThumbprint,
    /// Whether the TPP is revoked.
    pub revoked: bool,
}

/// The registry of onboarded TPPs in `clients` (one transport certificate
/// each, unique across clients) and `revoked_certificates`, and the
/// [`TppDirectory`] the resource calls consult. Every answer is read
/// live: a revocation by any process on the file stops the next call.
#[derive(Clone, Debug)]
pub struct SqliteDirectory {
    db: SqliteStore,
}

impl SqliteDirectory {
    pub(crate) fn new(db: SqliteStore) -> Self {
        Self { db }
    }

    /// Stores a registration (serialised by the application) and its
    /// certificate: a new client, or an update of an active one. `false`
    /// (nothing written) for a revoked client: only
    /// [`SqliteDirectory::reinstate_client`] makes it active again.
    ///
    /// # Errors
    /// [`StoreError`]; also when the certificate is registered to another
    /// client.
    pub fn put_client(
        &self,
        client: &ClientId,
        registration: String,
        certificate: &CertificateThumbprint,
        now: UnixTime,
    ) -> BoxFuture<'static, Result<bool, StoreError>> {
        let (client, cert) = (client.as_str().to_owned(), *certificate.as_bytes());
        self.db.run(Role::Write, move |conn| {
            let written = conn
                .execute(
                    "INSERT INTO clients (client_id, registration, certificate, revoked, onboarded_at)
                     VALUES (?1, ?2, ?3, 0, ?4)
                     ON CONFLICT (client_id) DO UPDATE SET registration = ?2, certificate = ?3
                     WHERE clients.revoked = 0",
                    params![client, registration, &cert[..], now.as_secs()],
                )
                .map_err(unavailable)?;
            Ok(written == 1)
        })
    }

    /// Makes a revoked client active again (the scheme directory
    /// reinstated it); `false` if it is not registered.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn reinstate_client(&self, id: &ClientId) -> BoxFuture<'static, Result<bool, StoreError>> {
        self.set_revoked(id, false)
    }

    /// Revokes a TPP: every call it makes is refused from the next one on.
    /// Returns whether it was registered.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn revoke_client(&self, id: &ClientId) -> BoxFuture<'static, Result<bool, StoreError>> {
        self.set_revoked(id, true)
    }

    fn set_revoked(
        &self,
        id: &ClientId,
        revoked: bool,
    ) -> BoxFuture<'static, Result<bool, StoreError>> {
        let id = id.as_str().to_owned();
        self.db.run(Role::Write, move |conn| {
            let n = conn
                .execute(
                    "UPDATE clients SET revoked = ?2 WHERE client_id = ?1",
                    params![id, i64::from(revoked)],
                )
                .map_err(unavailable)?;
            Ok(n == 1)
        })
    }

    /// Revokes one certificate (whoever holds it).
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn revoke_certificate(
        &self,
        certificate: &CertificateThumbprint,
        now: UnixTime,
    ) -> BoxFuture<'static, Result<(), StoreError>> {
        let cert = *certificate.as_bytes();
        self.db.run(Role::Write, move |conn| {
            conn.execute(
                "INSERT OR IGNORE INTO revoked_certificates (thumbprint, revoked_at) VALUES (?1, ?2)",
                params![&cert[..], now.as_secs()],
            )
            .map_err(unavailable)?;
            Ok(())
        })
    }

    /// A registered client, revoked or not.
    ///
    /// # Errors
    /// [`StoreError`], also for a row that does not parse.
    pub fn client(
        &self,
        id: &ClientId,
    ) -> BoxFuture<'static, Result<Option<RegisteredClient>, StoreError>> {
        let id = id.clone();
        self.db.run(Role::Read, move |conn| {
            let row: Option<(String, Vec<u8>, i64)> = conn
                .prepare_cached(
                    "SELECT registration, certificate, revoked FROM clients WHERE client_id = ?1",
                )
                .map_err(unavailable)?
                .query_row(params![id.as_str()], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()
                .map_err(unavailable)?;
            row.map(|(registration, cert, revoked)| {
                Ok(RegisteredClient {
                    client_id: id.clone(),
                    registration,
                    certificate: thumbprint(cert)?,
                    revoked: revoked != 0,
                })
            })
            .transpose()
        })
    }

    /// Every registered client id, in order.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn client_ids(&self) -> BoxFuture<'static, Result<Vec<ClientId>, StoreError>> {
        self.db.run(Role::Read, |conn| {
            let mut st = conn
                .prepare_cached("SELECT client_id FROM clients ORDER BY client_id")
                .map_err(unavailable)?;
            let rows = st
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(unavailable)?;
            rows.map(|r| {
                let id = r.map_err(unavailable)?;
                ClientId::try_from(id).map_err(unavailable)
            })
            .collect()
        })
    }

    fn standing_now(
        &self,
        client: &ClientId,
        certificate: &CertificateThumbprint,
    ) -> BoxFuture<'static, Result<Standing, StoreError>> {
        let (client, cert) = (client.as_str().to_owned(), *certificate.as_bytes());
        self.db
            .run(Role::Read, move |conn| standing_of(conn, &client, &cert))
    }
}

fn thumbprint(bytes: Vec<u8>) -> Result<CertificateThumbprint, StoreError> {
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| unavailable("a stored certificate thumbprint is not 32 bytes"))?;
    Ok(CertificateThumbprint::from_bytes(bytes))
}

/// The directory's whole answer for `client` presenting `certificate`,
/// from one statement (one read transaction, one snapshot).
fn standing_of(conn: &Connection, client: &str, cert: &[u8; 32]) -> Result<Standing, StoreError> {
    let (cert_revoked, client_revoked, owner): (bool, Option<i64>, Option<String>) = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM revoked_certificates WHERE thumbprint = ?2), \
                    (SELECT revoked FROM clients WHERE client_id = ?1), \
                    (SELECT client_id FROM clients WHERE certificate = ?2)",
        )
        .map_err(unavailable)?
        .query_row(params![client, &cert[..]], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .map_err(unavailable)?;
    standing_from(cert_revoked, client_revoked, owner)
}

/// A [`Standing`] from the directory's three columns: the certificate's
/// revocation, the client's `revoked` flag (`None`: not onboarded) and the
/// certificate's registered owner. A revoked TPP outranks a revoked
/// certificate.
pub(crate) fn standing_from(
    cert_revoked: bool,
    client_revoked: Option<i64>,
    owner: Option<String>,
) -> Result<Standing, StoreError> {
    let status = if client_revoked.is_some_and(|r| r != 0) {
        CertificateStatus::TppRevoked
    } else if cert_revoked {
        CertificateStatus::CertificateRevoked
    } else {
        CertificateStatus::Active
    };
    let owner = owner
        .map(|o| ClientId::try_from(o).map_err(unavailable))
        .transpose()?;
    Ok(Standing { status, owner })
}

impl TppDirectory for SqliteDirectory {
    fn status<'a>(
        &'a self,
        client: &'a ClientId,
        certificate: &'a CertificateThumbprint,
    ) -> BoxFuture<'a, Result<CertificateStatus, DirectoryError>> {
        let standing = self.standing_now(client, certificate);
        Box::pin(async move { standing.await.map(|s| s.status).map_err(|_| DirectoryError) })
    }

    fn standing<'a>(
        &'a self,
        client: &'a ClientId,
        certificate: &'a CertificateThumbprint,
    ) -> BoxFuture<'a, Result<Standing, DirectoryError>> {
        let standing = self.standing_now(client, certificate);
        Box::pin(async move { standing.await.map_err(|_| DirectoryError) })
    }

    fn certificate_owner<'a>(
        &'a self,
        certificate: &'a CertificateThumbprint,
    ) -> BoxFuture<'a, Result<Option<ClientId>, DirectoryError>> {
        let cert = *certificate.as_bytes();
        let owner = self.db.run(Role::Read, move |conn| {
            let owner: Option<String> = conn
                .prepare_cached("SELECT client_id FROM clients WHERE certificate = ?1")
                .map_err(unavailable)?
                .query_row(params![&cert[..]], |r| r.get(0))
                .optional()
                .map_err(unavailable)?;
            owner
                .map(|o| ClientId::try_from(o).map_err(unavailable))
                .transpose()
        });
        Box::pin(async move { owner.await.map_err(|_| DirectoryError) })
    }
}
