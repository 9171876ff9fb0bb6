//! The TPP registry, which is also the bank's directory.

use fapi_core::store::{BoxFuture, StoreError};
use fapi_core::UnixTime;
use fapi_core::{CertificateThumbprint, ClientId};
use fapi_mtls_binding::directory::{CertificateStatus, DirectoryError, Standing, TppDirectory};
use fapi_mtls_binding::registry::{RegisterError, RegisteredClient, TppRegistry};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::pool::{unavailable, Role};
use crate::SqliteStore;

/// The registry of onboarded TPPs in `clients`, the certificates each
/// holds in `client_certificates` (the one it was registered with and
/// those added since; a certificate is held by one client) and
/// `revoked_certificates`: the
/// [`TppRegistry`] onboarding writes and the [`TppDirectory`] the resource
/// calls consult. Every answer is read live: a revocation by any process
/// on the file stops the next call.
#[derive(Clone, Debug)]
pub struct SqliteDirectory {
    db: SqliteStore,
}

impl SqliteDirectory {
    pub(crate) fn new(db: SqliteStore) -> Self {
        Self { db }
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
                    (SELECT client_id FROM client_certificates WHERE thumbprint = ?2)",
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
/// certificate's registered owner.
pub(crate) fn standing_from(
    cert_revoked: bool,
    client_revoked: Option<i64>,
    owner: Option<String>,
) -> Result<Standing, StoreError> {
    let owner = owner
        .map(|o| ClientId::try_from(o).map_err(unavailable))
        .transpose()?;
    Ok(Standing::from_records(
        cert_revoked,
        client_revoked.map(|r| r != 0),
        owner,
    ))
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
                .prepare_cached("SELECT client_id FROM client_certificates WHERE thumbprint = ?1")
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

/// The client's `revoked` flag (`None`: not registered) and the client
/// holding `cert` (`None`: nobody), read in the caller's transaction.
fn client_and_owner(
    tx: &rusqlite::Transaction<'_>,
    client: &str,
    cert: &[u8; 32],
) -> Result<(Option<i64>, Option<String>), StoreError> {
    tx.prepare_cached(
        "SELECT (SELECT revoked FROM clients WHERE client_id = ?1), \
                (SELECT client_id FROM client_certificates WHERE thumbprint = ?2)",
    )
    .map_err(unavailable)?
    .query_row(params![client, &cert[..]], |r| Ok((r.get(0)?, r.get(1)?)))
    .map_err(unavailable)
}

/// A write refused by a `UNIQUE` or primary-key constraint is a
/// certificate another client holds; anything else is the store failing.
fn taken_or_unavailable(e: rusqlite::Error) -> RegisterError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::ConstraintViolation) => RegisterError::CertificateTaken,
        _ => unavailable(e).into(),
    }
}

/// Registration checks and writes in one `IMMEDIATE` transaction (the
/// file's write lock): two processes registering the same certificate are
/// serialised, and the column's `UNIQUE` constraint backs the check.
fn register_in(
    conn: &mut Connection,
    client: &str,
    registration: &str,
    cert: &[u8; 32],
    now: UnixTime,
) -> Result<(), RegisterError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(unavailable)?;
    let (revoked, owner) = client_and_owner(&tx, client, cert)?;
    if revoked.is_some_and(|r| r != 0) {
        return Err(RegisterError::Revoked);
    }
    if owner.is_some_and(|o| o != client) {
        return Err(RegisterError::CertificateTaken);
    }
    tx.execute(
        "INSERT INTO clients (client_id, registration, certificate, revoked, onboarded_at)
         VALUES (?1, ?2, ?3, 0, ?4)
         ON CONFLICT (client_id) DO UPDATE SET registration = ?2, certificate = ?3",
        params![client, registration, &cert[..], now.as_secs()],
    )
    .map_err(taken_or_unavailable)?;
    // the registration replaces every certificate the client held
    tx.execute(
        "DELETE FROM client_certificates WHERE client_id = ?1",
        params![client],
    )
    .map_err(unavailable)?;
    tx.execute(
        "INSERT INTO client_certificates (thumbprint, client_id, added_at) VALUES (?1, ?2, ?3)",
        params![&cert[..], client, now.as_secs()],
    )
    .map_err(taken_or_unavailable)?;
    tx.commit().map_err(unavailable)?;
    Ok(())
}

/// [`TppRegistry::add_certificate`] in one `IMMEDIATE` transaction: the
/// client's state and the certificate's owner are read under the file's
/// write lock, and the table's primary key backs the ownership check.
fn add_certificate_in(
    conn: &mut Connection,
    client: &str,
    cert: &[u8; 32],
    now: UnixTime,
) -> Result<(), RegisterError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(unavailable)?;
    let (revoked, owner) = client_and_owner(&tx, client, cert)?;
    match (revoked, owner) {
        (None, _) => return Err(RegisterError::NotRegistered),
        (Some(r), _) if r != 0 => return Err(RegisterError::Revoked),
        (_, Some(owner)) if owner != client => return Err(RegisterError::CertificateTaken),
        (_, Some(_)) => return Ok(()),
        (_, None) => {}
    }
    tx.execute(
        "INSERT INTO client_certificates (thumbprint, client_id, added_at) VALUES (?1, ?2, ?3)",
        params![&cert[..], client, now.as_secs()],
    )
    .map_err(taken_or_unavailable)?;
    tx.commit().map_err(unavailable)?;
    Ok(())
}

impl TppRegistry for SqliteDirectory {
    fn register_client<'a>(
        &'a self,
        client: &'a ClientId,
        registration: String,
        certificate: &'a CertificateThumbprint,
        now: UnixTime,
    ) -> BoxFuture<'a, Result<(), RegisterError>> {
        let (client, cert) = (client.as_str().to_owned(), *certificate.as_bytes());
        self.db.run(Role::Write, move |conn| {
            register_in(conn, &client, &registration, &cert, now)
        })
    }

    fn add_certificate<'a>(
        &'a self,
        client: &'a ClientId,
        certificate: &'a CertificateThumbprint,
        now: UnixTime,
    ) -> BoxFuture<'a, Result<(), RegisterError>> {
        let (client, cert) = (client.as_str().to_owned(), *certificate.as_bytes());
        self.db.run(Role::Write, move |conn| {
            add_certificate_in(conn, &client, &cert, now)
        })
    }

    fn revoke_client<'a>(
        &'a self,
        client: &'a ClientId,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        self.set_revoked(client, true)
    }

    fn reinstate_client<'a>(
        &'a self,
        client: &'a ClientId,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        self.set_revoked(client, false)
    }

    fn revoke_certificate<'a>(
        &'a self,
        certificate: &'a CertificateThumbprint,
        now: UnixTime,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
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

    fn client<'a>(
        &'a self,
        client: &'a ClientId,
    ) -> BoxFuture<'a, Result<Option<RegisteredClient>, StoreError>> {
        let id = client.clone();
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

    fn client_ids(&self) -> BoxFuture<'_, Result<Vec<ClientId>, StoreError>> {
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
}
