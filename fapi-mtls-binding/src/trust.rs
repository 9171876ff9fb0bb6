//! Chain validation against the scheme's CA bundle, revocation by CRL, and
//! the versioned [`TrustStore`] (the certificate/TPP authorizer of the
//! reference architecture, without its truststore-rotation failure modes).
//!
//! Path building and signature checks are `rustls-webpki`'s; this module
//! only chooses its inputs: the trust anchors, `clientAuth` EKU, the injected
//! time, and the CRLs.

use core::fmt;
use std::sync::{Arc, RwLock};

use fapi_core::time::UnixTime;
use rustls_pki_types::{CertificateDer, TrustAnchor};
use webpki::{
    CertRevocationList, EndEntityCert, ExpirationPolicy, KeyUsage, OwnedCertRevocationList,
    RevocationCheckDepth, RevocationOptionsBuilder, UnknownStatusPolicy,
};

use crate::certificate::ClientCertificate;

/// Why a client certificate is not trusted. Never carries the certificate.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// A trust anchor, intermediate or CRL in the bundle is malformed.
    #[error("trust bundle entry is malformed: {0}")]
    MalformedBundle(&'static str),
    /// The bundle has no trust anchor.
    #[error("trust bundle has no trust anchor")]
    NoTrustAnchor,
    /// The certificate does not chain to a trust anchor of the bundle.
    #[error("client certificate is not issued by a trusted scheme CA")]
    UnknownIssuer,
    /// The certificate (or one in its chain) has expired.
    #[error("client certificate has expired")]
    Expired,
    /// The certificate (or one in its chain) is not valid yet.
    #[error("client certificate is not valid yet")]
    NotYetValid,
    /// The certificate does not allow TLS client authentication (EKU).
    #[error("client certificate is not valid for TLS client authentication")]
    WrongKeyUsage,
    /// The certificate is revoked by a CRL of the bundle.
    #[error("client certificate has been revoked")]
    Revoked,
    /// No CRL of the bundle covers the certificate (fail closed).
    #[error("client certificate revocation status is unknown")]
    UnknownRevocationStatus,
    /// A CRL of the bundle is past its nextUpdate.
    #[error("the scheme's certificate revocation list has expired")]
    CrlExpired,
    /// Any other path-validation failure (bad signature, bad encoding,
    /// unsupported algorithm, name constraints, ...).
    #[error("client certificate chain is invalid")]
    Invalid,
}

fn map_webpki(e: webpki::Error) -> TrustError {
    use webpki::Error as E;
    match e {
        E::UnknownIssuer => TrustError::UnknownIssuer,
        E::CertExpired { .. } => TrustError::Expired,
        E::CertNotValidYet { .. } => TrustError::NotYetValid,
        E::RequiredEkuNotFoundContext(_) => TrustError::WrongKeyUsage,
        E::CertRevoked => TrustError::Revoked,
        E::UnknownRevocationStatus => TrustError::UnknownRevocationStatus,
        E::CrlExpired { .. } => TrustError::CrlExpired,
        _ => TrustError::Invalid,
    }
}

/// One version of the scheme's trust material: CA certificates, optional
/// intermediates, and CRLs. Immutable once built.
pub struct TrustBundle {
    version: u64,
    anchors: Vec<TrustAnchor<'static>>,
    intermediates: Vec<CertificateDer<'static>>,
    crls: Vec<CertRevocationList<'static>>,
}

impl fmt::Debug for TrustBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustBundle")
            .field("version", &self.version)
            .field("anchors", &self.anchors.len())
            .field("intermediates", &self.intermediates.len())
            .field("crls", &self.crls.len())
            .finish()
    }
}

/// A certificate that chains to a trust anchor of a bundle, with the
/// clientAuth EKU, valid and not revoked at the time it was checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedCertificate {
    cert: ClientCertificate,
    bundle_version: u64,
}

impl TrustedCertificate {
    /// The certificate.
    pub fn certificate(&self) -> &ClientCertificate {
        &self.cert
    }
    /// The version of the bundle that vouched for it.
    pub fn bundle_version(&self) -> u64 {
        self.bundle_version
    }
}

impl TrustBundle {
    /// Builds bundle `version` from DER CA certificates, DER intermediates
    /// and DER CRLs. With CRLs, every end-entity certificate must be covered
    /// by one (unknown status is refused) and expired CRLs are refused.
    ///
    /// # Errors
    /// [`TrustError::MalformedBundle`] or [`TrustError::NoTrustAnchor`].
    pub fn new(
        version: u64,
        anchors: &[&[u8]],
        intermediates: &[&[u8]],
        crls: &[&[u8]],
    ) -> Result<Self, TrustError> {
        if anchors.is_empty() {
            return Err(TrustError::NoTrustAnchor);
        }
        let anchors = anchors
            .iter()
            .map(|der| {
                let der = CertificateDer::from(*der);
                webpki::anchor_from_trusted_cert(&der)
                    .map(|a| a.to_owned())
                    .map_err(|_| TrustError::MalformedBundle("trust anchor"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let intermediates = intermediates
            .iter()
            .map(|der| CertificateDer::from(der.to_vec()))
            .collect();
        let crls = crls
            .iter()
            .map(|der| {
                OwnedCertRevocationList::from_der(der)
                    .map(CertRevocationList::from)
                    .map_err(|_| TrustError::MalformedBundle("certificate revocation list"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            version,
            anchors,
            intermediates,
            crls,
        })
    }

    /// This bundle's version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Validates `cert` at `now`: a path to a trust anchor (using the
    /// bundle's intermediates and those the client sent), the `clientAuth`
    /// EKU, validity periods, and revocation when the bundle has CRLs.
    ///
    /// # Errors
    /// [`TrustError`].
    pub fn verify(
        &self,
        cert: &ClientCertificate,
        presented_intermediates: &[&[u8]],
        now: UnixTime,
    ) -> Result<TrustedCertificate, TrustError> {
        let der = CertificateDer::from(cert.der());
        let ee = EndEntityCert::try_from(&der).map_err(map_webpki)?;
        let mut intermediates: Vec<CertificateDer<'_>> = self.intermediates.clone();
        intermediates.extend(
            presented_intermediates
                .iter()
                .map(|d| CertificateDer::from(*d)),
        );
        let secs = u64::try_from(now.as_secs()).map_err(|_| TrustError::Invalid)?;
        let time =
            rustls_pki_types::UnixTime::since_unix_epoch(core::time::Duration::from_secs(secs));
        let crl_refs: Vec<&CertRevocationList<'_>> = self.crls.iter().collect();
        let revocation = match RevocationOptionsBuilder::new(&crl_refs) {
            Ok(b) => Some(
                b.with_depth(RevocationCheckDepth::EndEntity)
                    .with_status_policy(UnknownStatusPolicy::Deny)
                    .with_expiration_policy(ExpirationPolicy::Enforce)
                    .build(),
            ),
            Err(_) => None, // no CRLs configured
        };
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &self.anchors,
            &intermediates,
            time,
            KeyUsage::client_auth(),
            revocation,
            None,
        )
        .map_err(map_webpki)?;
        Ok(TrustedCertificate {
            cert: cert.clone(),
            bundle_version: self.version,
        })
    }
}

/// Why a trust-store change was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrustStoreError {
    /// A known-good client certificate does not validate against the
    /// candidate bundle: activating it would lock that TPP out.
    #[error("{failed} of {checked} known-good client certificates fail against bundle {version}: first failure {first}")]
    SyntheticHandshakeFailed {
        /// Candidate version.
        version: u64,
        /// How many were checked.
        checked: usize,
        /// How many failed.
        failed: usize,
        /// The first failure.
        first: TrustError,
    },
    /// The candidate's version is not newer than the current one.
    #[error("bundle version {candidate} is not newer than the active version {active}")]
    StaleVersion {
        /// Candidate version.
        candidate: u64,
        /// Active version.
        active: u64,
    },
    /// There is no previous version to roll back to.
    #[error("no previous trust bundle to roll back to")]
    NothingToRollBack,
}

struct Versions {
    current: Arc<TrustBundle>,
    previous: Option<Arc<TrustBundle>>,
}

/// The active [`TrustBundle`] and the one before it. Readers take an
/// `Arc` snapshot, so a swap is atomic for them: a request validates against
/// exactly one version.
pub struct TrustStore {
    versions: RwLock<Versions>,
}

impl fmt::Debug for TrustStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.read();
        f.debug_struct("TrustStore")
            .field("current", &v.current.version)
            .field("previous", &v.previous.as_ref().map(|p| p.version))
            .finish()
    }
}

impl TrustStore {
    /// A store whose first active bundle is `initial`.
    pub fn new(initial: TrustBundle) -> Self {
        Self {
            versions: RwLock::new(Versions {
                current: Arc::new(initial),
                previous: None,
            }),
        }
    }

    // A writer here only assigns Arcs and cannot leave the state half
    // changed, so a poisoned lock still holds a consistent value.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Versions> {
        self.versions.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Versions> {
        self.versions.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The active bundle.
    pub fn current(&self) -> Arc<TrustBundle> {
        self.read().current.clone()
    }

    /// Activates `candidate` after the synthetic-handshake check: every
    /// certificate in `known_good` must validate against it at `now`. On
    /// success the active bundle becomes the previous one (for rollback).
    ///
    /// # Errors
    /// [`TrustStoreError::SyntheticHandshakeFailed`] (nothing changes) or
    /// [`TrustStoreError::StaleVersion`].
    pub fn activate(
        &self,
        candidate: TrustBundle,
        known_good: &[ClientCertificate],
        now: UnixTime,
    ) -> Result<u64, TrustStoreError> {
        let failures: Vec<TrustError> = known_good
            .iter()
            .filter_map(|c| candidate.verify(c, &[], now).err())
            .collect();
        if let Some(first) = failures.first() {
            return Err(TrustStoreError::SyntheticHandshakeFailed {
                version: candidate.version,
                checked: known_good.len(),
                failed: failures.len(),
                first: first.clone(),
            });
        }
        let mut v = self.write();
        if candidate.version <= v.current.version {
            return Err(TrustStoreError::StaleVersion {
                candidate: candidate.version,
                active: v.current.version,
            });
        }
        let version = candidate.version;
        let old = core::mem::replace(&mut v.current, Arc::new(candidate));
        v.previous = Some(old);
        Ok(version)
    }

    /// Makes the previous bundle active again (and the current one the
    /// previous), e.g. when a rotation broke clients the check did not cover.
    ///
    /// # Errors
    /// [`TrustStoreError::NothingToRollBack`].
    pub fn rollback(&self) -> Result<u64, TrustStoreError> {
        let mut v = self.write();
        let previous = v
            .previous
            .take()
            .ok_or(TrustStoreError::NothingToRollBack)?;
        let version = previous.version;
        let current = core::mem::replace(&mut v.current, previous);
        v.previous = Some(current);
        Ok(version)
    }
}
