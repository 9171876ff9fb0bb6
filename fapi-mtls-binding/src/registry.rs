//! The bank's register of onboarded TPPs: the writes behind the
//! [`TppDirectory`] answers (who is registered with which transport
//! certificate, who is revoked). Onboarding, revocation and reinstatement
//! go through [`TppRegistry`]; every resource call reads the same state
//! through [`TppDirectory`], so a revocation recorded by one process stops
//! the next call served by any other.

use core::fmt;

use fapi_core::store::{BoxFuture, StoreError};
use fapi_core::UnixTime;
use fapi_core::{CertificateThumbprint, ClientId};

use crate::directory::{InMemoryTppDirectory, TppDirectory};

/// A registered client as the registry holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisteredClient {
    /// The client.
    pub client_id: ClientId,
    /// The registration as the application serialised it (opaque to the
    /// registry: the bank's client metadata document).
    pub registration: String,
    /// The `x5t#S256` of the transport certificate it was registered
    /// with (certificates added since, by
    /// [`TppRegistry::add_certificate`], are owned too; see
    /// [`TppDirectory::certificate_owner`]).
    pub certificate: CertificateThumbprint,
    /// Whether the TPP is revoked.
    pub revoked: bool,
}

/// Why a registration was not written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    /// The client is registered and revoked: registering it again would
    /// silently reinstate it. Only [`TppRegistry::reinstate_client`] makes
    /// it active again.
    #[error("the client is revoked; it must be reinstated before it is registered again")]
    Revoked,
    /// The certificate is registered to another client (a certificate
    /// identifies one TPP).
    #[error("the transport certificate is registered to another client")]
    CertificateTaken,
    /// The client is not registered (a certificate is only added to a
    /// registered client).
    #[error("the client is not registered")]
    NotRegistered,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The register of onboarded TPPs, over the state a [`TppDirectory`]
/// reads.
///
/// # Guarantees an implementation must give
/// - A certificate belongs to at most one client:
///   [`TppRegistry::register_client`] and [`TppRegistry::add_certificate`]
///   refuse a certificate another client holds
///   ([`RegisterError::CertificateTaken`]), also when several writes race.
/// - A client holds the certificate it was registered with and those added
///   since (a TPP rotating its transport certificate under a registration
///   that trusts certificates by subject, RFC 8705 §2.1.2, keeps both
///   working until the old one expires or is revoked); re-registering a
///   client replaces all of them with the one given (the others are no
///   longer owned).
/// - A revoked client is never made active by a registration
///   ([`RegisterError::Revoked`], nothing written); only
///   [`TppRegistry::reinstate_client`] does.
/// - Every write is visible to the next [`TppDirectory`] read, by any
///   process sharing the store. A revoked TPP reads as
///   [`TppRevoked`](crate::directory::CertificateStatus::TppRevoked) whatever
///   its certificate's state.
pub trait TppRegistry: TppDirectory {
    /// Registers `client` with `registration` and `certificate` at `now`:
    /// a new client, or an update of an active one.
    fn register_client<'a>(
        &'a self,
        client: &'a ClientId,
        registration: String,
        certificate: &'a CertificateThumbprint,
        now: UnixTime,
    ) -> BoxFuture<'a, Result<(), RegisterError>>;

    /// Adds `certificate` to the certificates `client` holds, at `now`
    /// (idempotent for a certificate it already holds). The caller has
    /// decided the certificate is the client's (it chains to the scheme CA
    /// and matches the registration); the registry records the ownership,
    /// so the directory names the owner and can revoke the certificate on
    /// its own.
    ///
    /// # Errors
    /// [`RegisterError::CertificateTaken`] (another client holds it),
    /// [`RegisterError::Revoked`], [`RegisterError::NotRegistered`],
    /// [`RegisterError::Store`]; nothing is written on an error.
    fn add_certificate<'a>(
        &'a self,
        client: &'a ClientId,
        certificate: &'a CertificateThumbprint,
        now: UnixTime,
    ) -> BoxFuture<'a, Result<(), RegisterError>>;

    /// Revokes a TPP: every call it makes is refused from the next one on.
    /// Returns whether it is registered.
    fn revoke_client<'a>(&'a self, client: &'a ClientId)
        -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Makes a revoked TPP active again (the scheme directory reinstated
    /// it). Returns whether it is registered.
    fn reinstate_client<'a>(
        &'a self,
        client: &'a ClientId,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Revokes one certificate, whoever holds it (idempotent).
    fn revoke_certificate<'a>(
        &'a self,
        certificate: &'a CertificateThumbprint,
        now: UnixTime,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// A registered client, revoked or not.
    fn client<'a>(
        &'a self,
        client: &'a ClientId,
    ) -> BoxFuture<'a, Result<Option<RegisteredClient>, StoreError>>;

    /// Every registered client id, in order.
    fn client_ids(&self) -> BoxFuture<'_, Result<Vec<ClientId>, StoreError>>;
}

impl fmt::Display for RegisteredClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.revoked { "revoked" } else { "active" };
        write!(f, "{} ({state})", self.client_id.as_str())
    }
}

/// The in-memory directory keeps registrations too (for tests and demos).
impl TppRegistry for InMemoryTppDirectory {
    fn register_client<'a>(
        &'a self,
        client: &'a ClientId,
        registration: String,
        certificate: &'a CertificateThumbprint,
        _now: UnixTime,
    ) -> BoxFuture<'a, Result<(), RegisterError>> {
        let r = self.with_entries(|e| {
            if e.revoked_clients.contains(client) && e.is_registered(client) {
                return Err(RegisterError::Revoked);
            }
            let cert = *certificate.as_bytes();
            if e.owners.get(&cert).is_some_and(|owner| owner != client) {
                return Err(RegisterError::CertificateTaken);
            }
            e.owners.retain(|_, owner| owner != client);
            e.owners.insert(cert, client.clone());
            e.registrations.insert(client.clone(), (registration, cert));
            Ok(())
        });
        Box::pin(core::future::ready(r))
    }

    fn add_certificate<'a>(
        &'a self,
        client: &'a ClientId,
        certificate: &'a CertificateThumbprint,
        _now: UnixTime,
    ) -> BoxFuture<'a, Result<(), RegisterError>> {
        let r = self.with_entries(|e| {
            if !e.registrations.contains_key(client) {
                return Err(RegisterError::NotRegistered);
            }
            if e.revoked_clients.contains(client) {
                return Err(RegisterError::Revoked);
            }
            let cert = *certificate.as_bytes();
            match e.owners.get(&cert) {
                Some(owner) if owner != client => Err(RegisterError::CertificateTaken),
                _ => {
                    e.owners.insert(cert, client.clone());
                    Ok(())
                }
            }
        });
        Box::pin(core::future::ready(r))
    }

    fn revoke_client<'a>(
        &'a self,
        client: &'a ClientId,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let r = self.with_entries(|e| {
            let known = e.is_registered(client);
            if known {
                e.revoked_clients.insert(client.clone());
            }
            known
        });
        Box::pin(core::future::ready(Ok(r)))
    }

    fn reinstate_client<'a>(
        &'a self,
        client: &'a ClientId,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let r = self.with_entries(|e| {
            e.revoked_clients.remove(client);
            e.is_registered(client)
        });
        Box::pin(core::future::ready(Ok(r)))
    }

    fn revoke_certificate<'a>(
        &'a self,
        certificate: &'a CertificateThumbprint,
        _now: UnixTime,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.with_entries(|e| e.revoked_certificates.insert(*certificate.as_bytes()));
        Box::pin(core::future::ready(Ok(())))
    }

    fn client<'a>(
        &'a self,
        client: &'a ClientId,
    ) -> BoxFuture<'a, Result<Option<RegisteredClient>, StoreError>> {
        let r = self.with_entries(|e| {
            let (registration, certificate) = e.registrations.get(client)?.clone();
            Some(RegisteredClient {
                client_id: client.clone(),
                registration,
                certificate: CertificateThumbprint::from_bytes(certificate),
                revoked: e.revoked_clients.contains(client),
            })
        });
        Box::pin(core::future::ready(Ok(r)))
    }

    fn client_ids(&self) -> BoxFuture<'_, Result<Vec<ClientId>, StoreError>> {
        let mut ids: Vec<ClientId> =
            self.with_entries(|e| e.registrations.keys().cloned().collect());
        ids.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        Box::pin(core::future::ready(Ok(ids)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::{CertificateStatus, DirectoryError};
    use crate::testing::tpp_registry_conformance;

    fn now() -> UnixTime {
        UnixTime::from_secs(1_700_000_000).unwrap()
    }

    #[test]
    fn the_in_memory_registry_passes_the_kit() {
        futures_executor::block_on(tpp_registry_conformance(
            &InMemoryTppDirectory::new(),
            now(),
        ))
        .unwrap();
    }

    /// A registry that breaks one guarantee.
    #[derive(Debug)]
    enum Flaw {
        /// Registering a revoked client quietly reinstates it.
        ReRegistersRevoked,
        /// A taken certificate is reported as registered.
        SharesCertificates,
        /// Revoking answers as if done and records nothing.
        ForgetsRevocations,
        /// Adding a certificate takes it from the client that holds it.
        StealsOnAdd,
        /// Re-registering keeps the certificates added before.
        KeepsAddedCertificates,
    }

    #[derive(Debug)]
    struct Flawed(InMemoryTppDirectory, Flaw);

    impl TppDirectory for Flawed {
        fn status<'a>(
            &'a self,
            client: &'a ClientId,
            certificate: &'a CertificateThumbprint,
        ) -> BoxFuture<'a, Result<CertificateStatus, DirectoryError>> {
            self.0.status(client, certificate)
        }

        fn certificate_owner<'a>(
            &'a self,
            certificate: &'a CertificateThumbprint,
        ) -> BoxFuture<'a, Result<Option<ClientId>, DirectoryError>> {
            self.0.certificate_owner(certificate)
        }
    }

    impl TppRegistry for Flawed {
        fn register_client<'a>(
            &'a self,
            client: &'a ClientId,
            registration: String,
            certificate: &'a CertificateThumbprint,
            now: UnixTime,
        ) -> BoxFuture<'a, Result<(), RegisterError>> {
            Box::pin(async move {
                if matches!(self.1, Flaw::ReRegistersRevoked) {
                    TppRegistry::reinstate_client(&self.0, client).await?;
                }
                let kept: Vec<[u8; 32]> = self.0.with_entries(|e| {
                    e.owners
                        .iter()
                        .filter(|(cert, owner)| {
                            *owner == client
                                && e.registrations.get(client).map(|r| &r.1) != Some(*cert)
                        })
                        .map(|(cert, _)| *cert)
                        .collect()
                });
                let r = self
                    .0
                    .register_client(client, registration, certificate, now)
                    .await;
                let r = match (r, &self.1) {
                    (Err(RegisterError::CertificateTaken), Flaw::SharesCertificates) => Ok(()),
                    (r, _) => r,
                };
                if matches!(self.1, Flaw::KeepsAddedCertificates) {
                    self.0.with_entries(|e| {
                        for cert in kept {
                            e.owners.insert(cert, client.clone());
                        }
                    });
                }
                r
            })
        }

        fn add_certificate<'a>(
            &'a self,
            client: &'a ClientId,
            certificate: &'a CertificateThumbprint,
            now: UnixTime,
        ) -> BoxFuture<'a, Result<(), RegisterError>> {
            if matches!(self.1, Flaw::StealsOnAdd) {
                self.0.with_entries(|e| {
                    e.owners.remove(certificate.as_bytes());
                });
            }
            self.0.add_certificate(client, certificate, now)
        }

        fn revoke_client<'a>(
            &'a self,
            client: &'a ClientId,
        ) -> BoxFuture<'a, Result<bool, StoreError>> {
            match self.1 {
                Flaw::ForgetsRevocations => {
                    Box::pin(async move { Ok(self.0.client(client).await?.is_some()) })
                }
                _ => TppRegistry::revoke_client(&self.0, client),
            }
        }

        fn reinstate_client<'a>(
            &'a self,
            client: &'a ClientId,
        ) -> BoxFuture<'a, Result<bool, StoreError>> {
            TppRegistry::reinstate_client(&self.0, client)
        }

        fn revoke_certificate<'a>(
            &'a self,
            certificate: &'a CertificateThumbprint,
            now: UnixTime,
        ) -> BoxFuture<'a, Result<(), StoreError>> {
            TppRegistry::revoke_certificate(&self.0, certificate, now)
        }

        fn client<'a>(
            &'a self,
            client: &'a ClientId,
        ) -> BoxFuture<'a, Result<Option<RegisteredClient>, StoreError>> {
            self.0.client(client)
        }

        fn client_ids(&self) -> BoxFuture<'_, Result<Vec<ClientId>, StoreError>> {
            self.0.client_ids()
        }
    }

    /// The kit fails each registry that breaks one guarantee, at the case
    /// that names it.
    #[test]
    fn the_kit_catches_a_registry_that_breaks_a_guarantee() {
        for (flaw, case) in [
            (
                Flaw::ReRegistersRevoked,
                "registering a revoked client is refused",
            ),
            (
                Flaw::SharesCertificates,
                "another client's certificate is refused",
            ),
            (
                Flaw::ForgetsRevocations,
                "a revoked client reads as revoked",
            ),
            (
                Flaw::StealsOnAdd,
                "adding another client's certificate is refused",
            ),
            (
                Flaw::KeepsAddedCertificates,
                "re-registering drops the added certificates",
            ),
        ] {
            let flawed = Flawed(InMemoryTppDirectory::new(), flaw);
            let failure = futures_executor::block_on(tpp_registry_conformance(&flawed, now()))
                .expect_err("the kit must refuse a flawed registry");
            assert_eq!(failure.case, case, "{flawed:?}: {failure}");
        }
    }
}
