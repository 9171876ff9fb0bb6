//! The scheme directory: is this TPP, and this certificate, still active?
//! (The TPP-authorizer half of the reference architecture.) A certificate or
//! TPP revoked in the directory is refused on its next use, whatever its
//! chain says.

use core::fmt;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use fapi_core::client::ClientMetadata;
use fapi_core::client_auth::{CertificateAuthError, ClientAuthError};
use fapi_core::store::BoxFuture;
use fapi_core::AuthenticatedClient;
use fapi_core::UnixTime;
use fapi_core::{CertificateThumbprint, ClientId};

use crate::binding::PresentedCertificate;
use crate::client_auth::{RegisteredSubject, SelfSignedTlsClientAuth, TlsClientAuth};
use crate::registry::RegisterError;
use crate::trust::{TrustError, TrustStore};

/// What the directory says about a TPP's certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertificateStatus {
    /// Active, and registered to this client.
    Active,
    /// The TPP (organisation or software statement) is revoked.
    TppRevoked,
    /// This certificate is revoked.
    CertificateRevoked,
}

/// Everything the directory says about one client presenting one
/// certificate, read at once (see [`TppDirectory::standing`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Standing {
    /// The status of the client presenting the certificate.
    pub status: CertificateStatus,
    /// The client the certificate is registered to, if any.
    pub owner: Option<ClientId>,
}

impl Standing {
    /// The standing from what a directory store reads in one go: whether
    /// the certificate is revoked, the client's revoked flag (`None`: not
    /// onboarded) and the client the certificate is registered to. A
    /// revoked TPP outranks a revoked certificate.
    pub fn from_records(
        certificate_revoked: bool,
        client_revoked: Option<bool>,
        owner: Option<ClientId>,
    ) -> Self {
        let status = if client_revoked == Some(true) {
            CertificateStatus::TppRevoked
        } else if certificate_revoked {
            CertificateStatus::CertificateRevoked
        } else {
            CertificateStatus::Active
        };
        Self { status, owner }
    }
}

/// The directory could not answer (fail closed).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("tpp directory unavailable")]
pub struct DirectoryError;

/// The scheme directory, as a bank's adapter sees it (async: a real one is a
/// network call or a database read).
///
/// # Guarantees an implementation must give
/// - A revocation is visible to the next call after it is recorded.
/// - `certificate_owner` names the client a certificate is registered to,
///   so that a request carrying two clients' identities can be refused.
pub trait TppDirectory: Send + Sync + fmt::Debug {
    /// The status of `client` presenting `certificate`.
    fn status<'a>(
        &'a self,
        client: &'a ClientId,
        certificate: &'a CertificateThumbprint,
    ) -> BoxFuture<'a, Result<CertificateStatus, DirectoryError>>;

    /// The client a certificate is registered to, if any.
    fn certificate_owner<'a>(
        &'a self,
        certificate: &'a CertificateThumbprint,
    ) -> BoxFuture<'a, Result<Option<ClientId>, DirectoryError>>;

    /// [`TppDirectory::status`] and [`TppDirectory::certificate_owner`]
    /// together: what the checks of this module read on every request. The
    /// default asks one, then the other; an adapter over a database should
    /// answer both from one read (one query, one snapshot).
    fn standing<'a>(
        &'a self,
        client: &'a ClientId,
        certificate: &'a CertificateThumbprint,
    ) -> BoxFuture<'a, Result<Standing, DirectoryError>> {
        Box::pin(async move {
            Ok(Standing {
                status: self.status(client, certificate).await?,
                owner: self.certificate_owner(certificate).await?,
            })
        })
    }
}

#[derive(Default)]
pub(crate) struct Entries {
    pub(crate) owners: HashMap<[u8; 32], ClientId>,
    pub(crate) revoked_certificates: HashSet<[u8; 32]>,
    pub(crate) revoked_clients: HashSet<ClientId>,
    /// Registrations written through [`TppRegistry`](crate::registry::TppRegistry),
    /// with the certificate each was registered with.
    pub(crate) registrations: HashMap<ClientId, (String, [u8; 32])>,
}

impl Entries {
    /// Registered through the registry, or given a certificate.
    pub(crate) fn is_registered(&self, client: &ClientId) -> bool {
        self.registrations.contains_key(client) || self.owners.values().any(|o| o == client)
    }
}

/// An in-memory [`TppDirectory`].
#[derive(Default)]
pub struct InMemoryTppDirectory {
    entries: RwLock<Entries>,
}

impl fmt::Debug for InMemoryTppDirectory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryTppDirectory")
            .finish_non_exhaustive()
    }
}

impl InMemoryTppDirectory {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Entries> {
        self.entries.write().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Entries> {
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the entries, locked for writing.
    pub(crate) fn with_entries<T>(&self, f: impl FnOnce(&mut Entries) -> T) -> T {
        f(&mut self.write())
    }

    /// Registers `certificate` to `client`.
    pub fn register(&self, client: ClientId, certificate: &CertificateThumbprint) {
        self.write().owners.insert(*certificate.as_bytes(), client);
    }

    /// Revokes one certificate.
    pub fn revoke_certificate(&self, certificate: &CertificateThumbprint) {
        self.write()
            .revoked_certificates
            .insert(*certificate.as_bytes());
    }

    /// Revokes a TPP: every certificate of it stops working.
    pub fn revoke_client(&self, client: ClientId) {
        self.write().revoked_clients.insert(client);
    }
}

impl TppDirectory for InMemoryTppDirectory {
    fn status<'a>(
        &'a self,
        client: &'a ClientId,
        certificate: &'a CertificateThumbprint,
    ) -> BoxFuture<'a, Result<CertificateStatus, DirectoryError>> {
        let e = self.read();
        let status = if e.revoked_clients.contains(client) {
            CertificateStatus::TppRevoked
        } else if e.revoked_certificates.contains(certificate.as_bytes()) {
            CertificateStatus::CertificateRevoked
        } else {
            CertificateStatus::Active
        };
        Box::pin(core::future::ready(Ok(status)))
    }

    fn certificate_owner<'a>(
        &'a self,
        certificate: &'a CertificateThumbprint,
    ) -> BoxFuture<'a, Result<Option<ClientId>, DirectoryError>> {
        let owner = self.read().owners.get(certificate.as_bytes()).cloned();
        Box::pin(core::future::ready(Ok(owner)))
    }
}

fn chain_rejected(e: &TrustError) -> ClientAuthError {
    ClientAuthError::Certificate(CertificateAuthError::ChainRejected { reason: e.rule() })
}

/// Authenticates `client` by the certificate of this request: for
/// `tls_client_auth`, the chain against the active bundle of `trust`, the
/// directory, and the registered DN/SAN; for `self_signed_tls_client_auth`,
/// the directory and the registered JWKS.
///
/// # Errors
/// [`ClientAuthError`] (`invalid_client`; `server_error` if the directory
/// is unavailable).
pub async fn authenticate_by_certificate(
    presented: &PresentedCertificate,
    client: &Arc<ClientMetadata>,
    trust: &TrustStore,
    directory: &dyn TppDirectory,
    now: UnixTime,
) -> Result<AuthenticatedClient, ClientAuthError> {
    let thumbprint = presented.certificate().thumbprint();
    check_directory(client.client_id(), thumbprint, directory).await?;
    match client.auth_method() {
        fapi_core::client::AuthMethod::TlsClientAuth => {
            let trusted = trust
                .current()
                .verify(presented.certificate(), &presented.intermediates(), now)
                .map_err(|e| chain_rejected(&e))?;
            AuthenticatedClient::from_certificate(client, &TlsClientAuth(&trusted))
        }
        _ => AuthenticatedClient::from_certificate(client, &SelfSignedTlsClientAuth(presented)),
    }
}

fn directory_unavailable(e: DirectoryError) -> ClientAuthError {
    ClientAuthError::Store(fapi_core::store::StoreError::unavailable(e))
}

/// The directory checks every certificate use passes: neither the TPP nor
/// the certificate revoked, and the certificate not registered to another
/// client. Returns the registered owner (`None`: unregistered).
async fn check_directory(
    client: &ClientId,
    certificate: &CertificateThumbprint,
    directory: &dyn TppDirectory,
) -> Result<Option<ClientId>, ClientAuthError> {
    let standing = directory
        .standing(client, certificate)
        .await
        .map_err(directory_unavailable)?;
    decide_standing(client, standing)
}

fn decide_standing(
    client: &ClientId,
    standing: Standing,
) -> Result<Option<ClientId>, ClientAuthError> {
    match standing.status {
        CertificateStatus::Active => {}
        CertificateStatus::TppRevoked => return Err(CertificateAuthError::TppRevoked.into()),
        CertificateStatus::CertificateRevoked => {
            return Err(CertificateAuthError::CertificateRevoked.into())
        }
    }
    single_identity(client, standing.owner)
}

fn single_identity(
    client: &ClientId,
    owner: Option<ClientId>,
) -> Result<Option<ClientId>, ClientAuthError> {
    match owner {
        Some(owner) if &owner != client => Err(ClientAuthError::ConflictingClientIds),
        owner => Ok(owner),
    }
}

/// For a client that authenticated another way (`private_key_jwt`) over a
/// connection with `certificate`: the certificate must be the one the
/// directory registers to this client, neither it nor the TPP revoked. An
/// unregistered certificate (even one the scheme CA issued) is refused, as
/// is another client's. One [`TppDirectory::standing`] read.
///
/// # Errors
/// [`ClientAuthError::Certificate`] (unregistered or revoked),
/// [`ClientAuthError::ConflictingClientIds`] (registered to another client),
/// [`ClientAuthError::Store`] if the directory cannot answer (fail closed).
pub async fn ensure_registered_certificate(
    client: &ClientId,
    certificate: &CertificateThumbprint,
    directory: &dyn TppDirectory,
) -> Result<(), ClientAuthError> {
    match check_directory(client, certificate, directory).await? {
        Some(_) => Ok(()),
        None => Err(CertificateAuthError::NotRegistered.into()),
    }
}

/// How [`ensure_client_certificate`] found the certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Holding {
    /// The client held it already.
    Held,
    /// The registration admitted it and it is now recorded as the client's
    /// (worth an audit event).
    Added,
}

/// For a client authenticated by any method over a connection with
/// `presented`: the certificate must be one the client holds in
/// `registry`, or one its registration admits, which is then recorded as
/// held. A registration admits a certificate no client holds yet when
/// - `tls_client_auth` or `private_key_jwt` with a `tls_client_auth_*`
///   value (RFC 8705 §2.1.2): the chain verifies against the active bundle
///   of `trust` at `now` and the certificate carries the registered subject
///   DN or subjectAltName;
/// - `self_signed_tls_client_auth`: its key is one of the registered JWKs.
///
/// This is how a TPP rotates its transport certificate without being
/// onboarded again; the directory then names the new certificate's owner
/// and can revoke it on its own. Neither the TPP nor the certificate may be
/// revoked, and a certificate another client holds is refused, whatever
/// the registration says. A `private_key_jwt` registration without a
/// `tls_client_auth_*` value admits nothing: only the certificate it was
/// registered with works. Returns whether the certificate was held or has
/// just been added.
///
/// # Errors
/// [`ClientAuthError::Certificate`] (revoked, chain refused, subject or
/// key mismatch, not admitted), [`ClientAuthError::ConflictingClientIds`]
/// (another client holds it), [`ClientAuthError::InvalidRegistration`]
/// for a malformed `tls_client_auth_*` value, [`ClientAuthError::Store`]
/// if the registry cannot answer (fail closed).
pub async fn ensure_client_certificate(
    presented: &PresentedCertificate,
    client: &ClientMetadata,
    trust: &TrustStore,
    registry: &dyn crate::registry::TppRegistry,
    now: UnixTime,
) -> Result<Holding, ClientAuthError> {
    let id = client.client_id();
    let thumbprint = presented.certificate().thumbprint();
    if check_directory(id, thumbprint, registry).await?.is_some() {
        return Ok(Holding::Held);
    }
    match client.auth_method() {
        fapi_core::client::AuthMethod::SelfSignedTlsClientAuth => {
            crate::client_auth::matches_registered_key(
                presented.certificate().certificate(),
                client,
            )?;
        }
        _ => {
            let tls = client.tls_client_auth();
            let registered = [
                &tls.subject_dn,
                &tls.san_dns,
                &tls.san_uri,
                &tls.san_ip,
                &tls.san_email,
            ];
            if registered.iter().all(|v| v.is_none()) {
                return Err(CertificateAuthError::NotRegistered.into());
            }
            let subject = RegisteredSubject::parse(tls)?;
            let trusted = trust
                .current()
                .verify(presented.certificate(), &presented.intermediates(), now)
                .map_err(|e| chain_rejected(&e))?;
            subject.check(trusted.certificate().certificate())?;
        }
    }
    registry
        .add_certificate(id, thumbprint, now)
        .await
        .map_err(|e| match e {
            RegisterError::CertificateTaken => ClientAuthError::ConflictingClientIds,
            RegisterError::Revoked => CertificateAuthError::TppRevoked.into(),
            RegisterError::NotRegistered => CertificateAuthError::NotRegistered.into(),
            RegisterError::Store(e) => ClientAuthError::Store(e),
        })?;
    Ok(Holding::Added)
}

/// [`ensure_registered_certificate`] on a [`Standing`] the caller read
/// itself (in one round trip with its other per-call reads) for `client`
/// presenting the connection's certificate: the same decision, no read.
///
/// # Errors
/// As [`ensure_registered_certificate`], without the store failure.
pub fn ensure_registered_standing(
    client: &ClientId,
    standing: Standing,
) -> Result<(), ClientAuthError> {
    match decide_standing(client, standing)? {
        Some(_) => Ok(()),
        None => Err(CertificateAuthError::NotRegistered.into()),
    }
}

/// Refuses a request that carries two clients' identities: a client
/// authenticated one way (e.g. `private_key_jwt` as A) presenting a
/// certificate the directory registers to another client (B).
///
/// # Errors
/// [`ClientAuthError::ConflictingClientIds`].
pub async fn ensure_single_identity(
    client: &ClientId,
    certificate: &CertificateThumbprint,
    directory: &dyn TppDirectory,
) -> Result<(), ClientAuthError> {
    let owner = directory
        .certificate_owner(certificate)
        .await
        .map_err(directory_unavailable)?;
    single_identity(client, owner).map(|_| ())
}
