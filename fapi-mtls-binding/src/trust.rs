//! Chain validation against the scheme's CA bundle, revocation by CRL, and
//! the versioned [`TrustStore`] (the certificate/TPP authorizer of the
//! reference architecture, without its truststore-rotation failure modes).
//!
//! Path building and signature checks are `rustls-webpki`'s; this module
//! chooses its inputs (the trust anchors, the `clientAuth` EKU, the injected
//! time, the CRLs) and adds the FAPI-RULES "mTLS" chain rules webpki does
//! not check:
//!
//! - **Key strength**, for the leaf, every intermediate and every anchor:
//!   RSA keys of at least [`ChainPolicy`]'s minimum (2048 bits by default,
//!   only ever raised), EC keys on P-256 or P-384 only, Ed25519 only when
//!   the policy allows it ([`TrustError::WeakKey`]). webpki checks the size
//!   of a key only when it verifies a signature with it, so a weak leaf key
//!   would otherwise pass.
//! - **No SHA-1 (or MD5) signatures** on the leaf, a presented or bundled
//!   intermediate or an anchor, reported as
//!   [`TrustError::WeakSignatureAlgorithm`] rather than a generic failure.
//! - **The `clientAuth` EKU is required** by default: a leaf without an
//!   EKU extension is refused ([`TrustError::WrongKeyUsage`]). Only
//!   [`danger::without_required_client_auth_eku`] relaxes it.
//! - **Trust anchors are time-checked**, at load and at every
//!   verification: webpki never checks an anchor's validity, so a chain
//!   through an expired issuing CA configured as an anchor would pass.
//!   Expired and not-yet-valid anchors are refused
//!   ([`TrustError::AnchorExpired`], [`TrustError::AnchorNotYetValid`]);
//!   non-root anchors are allowed.
//! - **Revocation is an explicit policy** ([`RevocationPolicy`]): by
//!   default the leaf must be covered by a current CRL of its issuer in the
//!   bundle, and a bundle without CRLs cannot even be built
//!   ([`TrustError::NoRevocationList`]). A missing, stale or badly signed
//!   CRL each has its own error; not checking at all is a choice only
//!   [`danger::revocation_not_checked`] makes, and
//!   [`TrustBundle::revocation`] tells the caller so it can be logged.
//! - A self-signed leaf under `tls_client_auth` is
//!   [`TrustError::SelfSigned`], not [`TrustError::UnknownIssuer`].

use core::cell::Cell;
use core::fmt;
use std::sync::{Arc, RwLock};

use fapi_core::crypto::PublicKeyMaterial;
use fapi_core::UnixTime;
use rustls_pki_types::{CertificateDer, TrustAnchor};
use webpki::{
    CertRevocationList, EndEntityCert, ExpirationPolicy, KeyUsage, OwnedCertRevocationList,
    RevocationCheckDepth, RevocationOptionsBuilder, UnknownStatusPolicy, VerifiedPath,
};
use x509_cert::der::asn1::ObjectIdentifier;
use x509_cert::der::Decode;
use x509_cert::spki::SubjectPublicKeyInfoOwned;

use crate::certificate::ClientCertificate;

/// Most intermediates a client may present with its certificate.
pub const MAX_PRESENTED_INTERMEDIATES: usize = 8;
/// Largest certificate or CRL accepted in a bundle, in bytes.
pub const MAX_BUNDLE_ENTRY: usize = 1024 * 1024;

/// Which certificate of a chain a finding is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChainPosition {
    /// The client's own (leaf) certificate.
    EndEntity,
    /// An intermediate CA certificate (presented by the client or in the
    /// bundle).
    Intermediate,
    /// A trust anchor of the bundle.
    TrustAnchor,
}

impl fmt::Display for ChainPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::EndEntity => "client certificate",
            Self::Intermediate => "intermediate CA certificate",
            Self::TrustAnchor => "trust anchor",
        })
    }
}

/// Why a client certificate is not trusted, or a bundle cannot be built.
/// Never carries the certificate.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// A trust anchor, intermediate or CRL in the bundle is malformed.
    #[error("trust bundle entry is malformed: {0}")]
    MalformedBundle(&'static str),
    /// The bundle has no trust anchor.
    #[error("trust bundle has no trust anchor")]
    NoTrustAnchor,
    /// The revocation policy checks CRLs and the bundle has none.
    #[error(
        "trust bundle has no certificate revocation list, and its revocation policy requires one"
    )]
    NoRevocationList,
    /// A trust anchor is past its notAfter.
    #[error("a trust anchor of the bundle has expired")]
    AnchorExpired,
    /// A trust anchor is before its notBefore.
    #[error("a trust anchor of the bundle is not valid yet")]
    AnchorNotYetValid,
    /// The certificate does not chain to a trust anchor of the bundle: no
    /// CA of the bundle has its issuer's name, or the one that does did not
    /// sign it.
    #[error("client certificate is not issued by a trusted scheme CA")]
    UnknownIssuer,
    /// The certificate is self-signed (its issuer is its own subject) and
    /// no scheme CA issued it.
    #[error("client certificate is self-signed; tls_client_auth needs a certificate issued by the scheme CA")]
    SelfSigned,
    /// The certificate (or one in its chain) has expired.
    #[error("client certificate has expired")]
    Expired,
    /// The certificate (or one in its chain) is not valid yet.
    #[error("client certificate is not valid yet")]
    NotYetValid,
    /// The certificate does not carry the clientAuth extended key usage.
    #[error("client certificate does not carry the clientAuth extended key usage")]
    WrongKeyUsage,
    /// A key of the chain is below the policy (see the module docs).
    #[error("{position} key is refused: {reason}")]
    WeakKey {
        /// Which certificate.
        position: ChainPosition,
        /// What is wrong with its key.
        reason: &'static str,
    },
    /// A certificate of the chain is signed with SHA-1 or MD5.
    #[error("{position} is signed with SHA-1 or MD5, which the scheme refuses")]
    WeakSignatureAlgorithm {
        /// Which certificate.
        position: ChainPosition,
    },
    /// The certificate is revoked by a CRL of the bundle.
    #[error("client certificate has been revoked")]
    Revoked,
    /// No CRL of the bundle is from the certificate's issuer, so its
    /// revocation status is unknown (fail closed).
    #[error("no certificate revocation list of the certificate's issuer is available")]
    CrlUnavailable,
    /// The issuer's CRL is past its nextUpdate.
    #[error("the scheme's certificate revocation list has expired")]
    CrlExpired,
    /// The issuer's CRL does not carry a valid signature of the issuer.
    #[error("the scheme's certificate revocation list has an invalid signature")]
    CrlSignatureInvalid,
    /// More intermediates presented than [`MAX_PRESENTED_INTERMEDIATES`].
    #[error("client presented more than {max} intermediate certificates")]
    TooManyIntermediates {
        /// The limit.
        max: usize,
    },
    /// Any other path-validation failure (bad signature, bad encoding,
    /// unsupported algorithm, name constraints, ...).
    #[error("client certificate chain is invalid")]
    Invalid,
}

impl TrustError {
    /// A fixed phrase naming the rule that failed, for an error a TPP sees
    /// (e.g. `invalid_client` at the token endpoint).
    pub fn rule(&self) -> &'static str {
        match self {
            Self::UnknownIssuer => "the certificate is not issued by a trusted scheme CA",
            Self::SelfSigned => "the certificate is self-signed, not issued by the scheme CA",
            Self::Expired => "the certificate (or a CA certificate of its chain) has expired",
            Self::NotYetValid => {
                "the certificate (or a CA certificate of its chain) is not valid yet"
            }
            Self::WrongKeyUsage => {
                "the certificate does not carry the clientAuth extended key usage"
            }
            Self::WeakKey { .. } => {
                "a key of the certificate chain is below the scheme's minimum strength"
            }
            Self::WeakSignatureAlgorithm { .. } => {
                "a certificate of the chain is signed with SHA-1 or MD5"
            }
            Self::Revoked => "the certificate has been revoked by the scheme",
            Self::CrlUnavailable | Self::CrlExpired | Self::CrlSignatureInvalid => {
                "the certificate's revocation status cannot be established"
            }
            Self::AnchorExpired | Self::AnchorNotYetValid => {
                "the scheme CA certificate is outside its validity period"
            }
            Self::TooManyIntermediates { .. } => "the certificate chain is too long",
            _ => "the certificate chain is invalid",
        }
    }
}

/// What a chain must meet beyond path validation (FAPI-RULES "mTLS").
/// The default is the rule set: RSA of at least 2048 bits, EC on P-256 or
/// P-384, no Ed25519, the clientAuth EKU required.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainPolicy {
    min_rsa_bits: usize,
    ed25519: bool,
    require_client_auth_eku: bool,
}

/// The least RSA modulus size any [`ChainPolicy`] accepts.
pub const MIN_RSA_BITS: usize = 2048;

impl Default for ChainPolicy {
    fn default() -> Self {
        Self {
            min_rsa_bits: MIN_RSA_BITS,
            ed25519: false,
            require_client_auth_eku: true,
        }
    }
}

impl ChainPolicy {
    /// Raises the least RSA modulus size to `bits`. The minimum is never
    /// below [`MIN_RSA_BITS`]: a smaller value leaves it there.
    #[must_use]
    pub fn require_rsa_bits(mut self, bits: usize) -> Self {
        self.min_rsa_bits = bits.max(MIN_RSA_BITS);
        self
    }

    /// Also accepts Ed25519 keys (a scheme PKI that issues them).
    #[must_use]
    pub fn allow_ed25519(mut self) -> Self {
        self.ed25519 = true;
        self
    }

    /// The least RSA modulus size.
    pub fn min_rsa_bits(&self) -> usize {
        self.min_rsa_bits
    }

    /// Whether the clientAuth EKU must be present.
    pub fn requires_client_auth_eku(&self) -> bool {
        self.require_client_auth_eku
    }

    /// Checks a certificate's key; `Err` names what is wrong.
    fn check_key(&self, spki: &SubjectPublicKeyInfoOwned) -> Result<(), &'static str> {
        let oid = spki.algorithm.oid;
        if oid == oids::RSA || oid == oids::RSA_PSS {
            let bits = spki
                .subject_public_key
                .as_bytes()
                .and_then(|b| pkcs1::RsaPublicKey::from_der(b).ok())
                .map(|k| {
                    PublicKeyMaterial::Rsa {
                        n: k.modulus.as_bytes().to_vec(),
                        e: k.public_exponent.as_bytes().to_vec(),
                    }
                    .bits()
                })
                .ok_or("the RSA public key is malformed")?;
            if bits < self.min_rsa_bits {
                return Err("its RSA modulus is smaller than the policy's minimum");
            }
            Ok(())
        } else if oid == oids::EC {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
            match curve {
                Some(c) if c == oids::P256 || c == oids::P384 => Ok(()),
                _ => Err("its elliptic curve is not P-256 or P-384"),
            }
        } else if oid == oids::ED25519 {
            if self.ed25519 {
                Ok(())
            } else {
                Err("Ed25519 keys are not allowed by the policy")
            }
        } else {
            Err("its algorithm is not RSA or ECDSA")
        }
    }

    /// The key and signature-algorithm checks of one certificate.
    fn check_certificate(
        &self,
        cert: &x509_cert::Certificate,
        position: ChainPosition,
    ) -> Result<(), TrustError> {
        if oids::WEAK_SIGNATURES.contains(&cert.signature_algorithm.oid) {
            return Err(TrustError::WeakSignatureAlgorithm { position });
        }
        self.check_key(&cert.tbs_certificate.subject_public_key_info)
            .map_err(|reason| TrustError::WeakKey { position, reason })
    }
}

/// Whether, and how deep, revocation is checked. The default requires a
/// current CRL for the leaf ([`RevocationPolicy::end_entity`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RevocationPolicy(Depth);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Depth {
    EndEntity,
    Chain,
    NotChecked,
}

impl Default for RevocationPolicy {
    fn default() -> Self {
        Self::end_entity()
    }
}

impl RevocationPolicy {
    /// The leaf must be covered by a current CRL of its issuer in the
    /// bundle (a missing or stale CRL refuses the certificate).
    pub const fn end_entity() -> Self {
        Self(Depth::EndEntity)
    }

    /// Every certificate of the chain below the anchor must be covered by
    /// a current CRL of its issuer.
    pub const fn full_chain() -> Self {
        Self(Depth::Chain)
    }

    /// Whether revocation is checked at all.
    pub fn is_checked(&self) -> bool {
        self.0 != Depth::NotChecked
    }
}

/// Choices that weaken a FAPI-RULES chain rule. A bank that makes one
/// should log it where its operators see it; the examples make none.
pub mod danger {
    use super::{ChainPolicy, Depth, RevocationPolicy};

    /// Revocation is not checked: no CRL is needed and none is consulted.
    /// [`super::TrustBundle::revocation`] reports it.
    pub const fn revocation_not_checked() -> RevocationPolicy {
        RevocationPolicy(Depth::NotChecked)
    }

    /// A leaf without an EKU extension is accepted (one with an EKU must
    /// still list clientAuth).
    pub fn without_required_client_auth_eku(policy: ChainPolicy) -> ChainPolicy {
        ChainPolicy {
            require_client_auth_eku: false,
            ..policy
        }
    }
}

mod oids {
    use x509_cert::der::asn1::ObjectIdentifier;

    pub(super) const RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
    pub(super) const RSA_PSS: ObjectIdentifier =
        ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
    pub(super) const EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
    pub(super) const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
    pub(super) const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
    pub(super) const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
    pub(super) const EXTENDED_KEY_USAGE: ObjectIdentifier =
        ObjectIdentifier::new_unwrap("2.5.29.37");
    /// md2WithRSA, md5WithRSA, sha1WithRSA, dsa-with-sha1, ecdsa-with-SHA1.
    pub(super) const WEAK_SIGNATURES: [ObjectIdentifier; 5] = [
        ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.2"),
        ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.4"),
        ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.5"),
        ObjectIdentifier::new_unwrap("1.2.840.10040.4.3"),
        ObjectIdentifier::new_unwrap("1.2.840.10045.4.1"),
    ];
}

/// Whether the certificate carries an extended key usage extension (whose
/// content webpki has checked lists clientAuth).
fn has_eku_extension(cert: &x509_cert::Certificate) -> bool {
    cert.tbs_certificate
        .extensions
        .as_ref()
        .is_some_and(|exts| exts.iter().any(|e| e.extn_id == oids::EXTENDED_KEY_USAGE))
}

fn to_webpki_time(now: UnixTime) -> Result<rustls_pki_types::UnixTime, TrustError> {
    let secs = u64::try_from(now.as_secs()).map_err(|_| TrustError::Invalid)?;
    Ok(rustls_pki_types::UnixTime::since_unix_epoch(
        core::time::Duration::from_secs(secs),
    ))
}

fn seconds(t: &x509_cert::time::Time) -> i64 {
    i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
}

/// A validity period in seconds since the epoch (`notBefore`, `notAfter`).
#[derive(Clone, Copy, Debug)]
struct Validity {
    not_before: i64,
    not_after: i64,
}

impl Validity {
    fn of(cert: &x509_cert::Certificate) -> Self {
        Self {
            not_before: seconds(&cert.tbs_certificate.validity.not_before),
            not_after: seconds(&cert.tbs_certificate.validity.not_after),
        }
    }

    fn check(&self, now: UnixTime) -> Result<(), TrustError> {
        if now.as_secs() < self.not_before {
            Err(TrustError::AnchorNotYetValid)
        } else if now.as_secs() > self.not_after {
            Err(TrustError::AnchorExpired)
        } else {
            Ok(())
        }
    }
}

fn parse_entry(der: &[u8], what: &'static str) -> Result<x509_cert::Certificate, TrustError> {
    if der.len() > MAX_BUNDLE_ENTRY {
        return Err(TrustError::MalformedBundle(what));
    }
    x509_cert::Certificate::from_der(der).map_err(|_| TrustError::MalformedBundle(what))
}

/// One version of the scheme's trust material: CA certificates,
/// intermediates, CRLs, the chain policy and the revocation policy.
/// Immutable once built ([`TrustBundle::builder`]).
pub struct TrustBundle {
    version: u64,
    anchors: Vec<TrustAnchor<'static>>,
    /// The validity of `anchors[i]`.
    anchor_validity: Vec<Validity>,
    intermediates: Vec<CertificateDer<'static>>,
    crls: Vec<CertRevocationList<'static>>,
    /// The soonest nextUpdate of the CRLs.
    crl_next_update: Option<UnixTime>,
    policy: ChainPolicy,
    revocation: RevocationPolicy,
}

impl fmt::Debug for TrustBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustBundle")
            .field("version", &self.version)
            .field("anchors", &self.anchors.len())
            .field("intermediates", &self.intermediates.len())
            .field("crls", &self.crls.len())
            .field("policy", &self.policy)
            .field("revocation", &self.revocation)
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

/// Builds a [`TrustBundle`]; every input is checked by
/// [`TrustBundleBuilder::build`].
#[derive(Clone, Debug)]
pub struct TrustBundleBuilder {
    version: u64,
    anchors: Vec<Vec<u8>>,
    intermediates: Vec<Vec<u8>>,
    crls: Vec<Vec<u8>>,
    policy: ChainPolicy,
    revocation: RevocationPolicy,
}

impl TrustBundleBuilder {
    /// The scheme's CA certificates (DER) to trust. A non-root (issuing)
    /// CA may be an anchor; its validity is checked like any other.
    #[must_use]
    pub fn anchors(mut self, ders: &[&[u8]]) -> Self {
        self.anchors.extend(ders.iter().map(|d| d.to_vec()));
        self
    }

    /// Intermediate CA certificates (DER) to build paths with.
    #[must_use]
    pub fn intermediates(mut self, ders: &[&[u8]]) -> Self {
        self.intermediates.extend(ders.iter().map(|d| d.to_vec()));
        self
    }

    /// The scheme's CRLs (DER).
    #[must_use]
    pub fn crls(mut self, ders: &[&[u8]]) -> Self {
        self.crls.extend(ders.iter().map(|d| d.to_vec()));
        self
    }

    /// The chain policy (default: [`ChainPolicy::default`]).
    #[must_use]
    pub fn policy(mut self, policy: ChainPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The revocation policy (default: [`RevocationPolicy::end_entity`]).
    #[must_use]
    pub fn revocation(mut self, revocation: RevocationPolicy) -> Self {
        self.revocation = revocation;
        self
    }

    /// Checks every input at `now` and builds the bundle: each anchor is
    /// within its validity and meets the chain policy, each intermediate
    /// meets it, each CRL parses, carries a nextUpdate and is current, and
    /// a revocation policy that checks has at least one CRL.
    ///
    /// # Errors
    /// [`TrustError::NoTrustAnchor`], [`TrustError::MalformedBundle`],
    /// [`TrustError::AnchorExpired`] / [`TrustError::AnchorNotYetValid`],
    /// [`TrustError::WeakKey`] / [`TrustError::WeakSignatureAlgorithm`],
    /// [`TrustError::CrlExpired`] or [`TrustError::NoRevocationList`].
    pub fn build(self, now: UnixTime) -> Result<TrustBundle, TrustError> {
        if self.anchors.is_empty() {
            return Err(TrustError::NoTrustAnchor);
        }
        let mut anchors = Vec::with_capacity(self.anchors.len());
        let mut anchor_validity = Vec::with_capacity(self.anchors.len());
        for der in &self.anchors {
            let cert = parse_entry(der, "trust anchor")?;
            let validity = Validity::of(&cert);
            validity.check(now)?;
            self.policy
                .check_certificate(&cert, ChainPosition::TrustAnchor)?;
            let anchor = webpki::anchor_from_trusted_cert(&CertificateDer::from(der.as_slice()))
                .map(|a| a.to_owned())
                .map_err(|_| TrustError::MalformedBundle("trust anchor"))?;
            anchors.push(anchor);
            anchor_validity.push(validity);
        }
        let mut intermediates = Vec::with_capacity(self.intermediates.len());
        for der in self.intermediates {
            let cert = parse_entry(&der, "intermediate")?;
            self.policy
                .check_certificate(&cert, ChainPosition::Intermediate)?;
            intermediates.push(CertificateDer::from(der));
        }
        if self.revocation.is_checked() && self.crls.is_empty() {
            return Err(TrustError::NoRevocationList);
        }
        let mut crls = Vec::with_capacity(self.crls.len());
        let mut crl_next_update: Option<UnixTime> = None;
        for der in &self.crls {
            let malformed = TrustError::MalformedBundle("certificate revocation list");
            if der.len() > MAX_BUNDLE_ENTRY {
                return Err(malformed);
            }
            let parsed =
                x509_cert::crl::CertificateList::from_der(der).map_err(|_| malformed.clone())?;
            let next_update =
                parsed
                    .tbs_cert_list
                    .next_update
                    .as_ref()
                    .ok_or(TrustError::MalformedBundle(
                        "certificate revocation list without nextUpdate",
                    ))?;
            if now.as_secs() > seconds(next_update) {
                return Err(TrustError::CrlExpired);
            }
            let next = UnixTime::from_secs(seconds(next_update));
            crl_next_update = match (crl_next_update, next) {
                (Some(a), Some(b)) => Some(if a < b { a } else { b }),
                (a, b) => a.or(b),
            };
            let crl = OwnedCertRevocationList::from_der(der).map_err(|_| malformed)?;
            crls.push(CertRevocationList::from(crl));
        }
        Ok(TrustBundle {
            version: self.version,
            anchors,
            anchor_validity,
            intermediates,
            crls,
            crl_next_update,
            policy: self.policy,
            revocation: self.revocation,
        })
    }
}

fn map_webpki(e: webpki::Error) -> TrustError {
    use webpki::Error as E;
    match e {
        // a CA of the bundle has the issuer's name but did not sign it
        E::UnknownIssuer | E::InvalidSignatureForPublicKey => TrustError::UnknownIssuer,
        E::CertExpired { .. } => TrustError::Expired,
        E::CertNotValidYet { .. } => TrustError::NotYetValid,
        E::RequiredEkuNotFoundContext(_) | E::EmptyEkuExtension => TrustError::WrongKeyUsage,
        E::CertRevoked => TrustError::Revoked,
        E::UnknownRevocationStatus => TrustError::CrlUnavailable,
        E::CrlExpired { .. } => TrustError::CrlExpired,
        E::InvalidCrlSignatureForPublicKey
        | E::UnsupportedCrlSignatureAlgorithmContext(_)
        | E::UnsupportedCrlSignatureAlgorithmForPublicKeyContext(_) => {
            TrustError::CrlSignatureInvalid
        }
        _ => TrustError::Invalid,
    }
}

impl TrustBundle {
    /// Starts a bundle of `version`: add anchors (and intermediates and
    /// CRLs), then [`TrustBundleBuilder::build`] it.
    pub fn builder(version: u64) -> TrustBundleBuilder {
        TrustBundleBuilder {
            version,
            anchors: Vec::new(),
            intermediates: Vec::new(),
            crls: Vec::new(),
            policy: ChainPolicy::default(),
            revocation: RevocationPolicy::default(),
        }
    }

    /// This bundle's version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The revocation policy in force (log it when it does not check).
    pub fn revocation(&self) -> RevocationPolicy {
        self.revocation
    }

    /// The soonest `nextUpdate` among the bundle's CRLs (`None` without
    /// CRLs): past it, verification answers [`TrustError::CrlExpired`] for
    /// that issuer's certificates, so an operator alerts well before.
    pub fn crl_next_update(&self) -> Option<UnixTime> {
        self.crl_next_update
    }

    /// The chain policy in force.
    pub fn policy(&self) -> ChainPolicy {
        self.policy
    }

    /// Validates `cert` at `now`: the chain policy on the leaf and on every
    /// intermediate the client presented; then a path to a trust anchor
    /// that is itself valid at `now` (using the bundle's intermediates and
    /// those presented), the `clientAuth` EKU, validity periods, and
    /// revocation per the bundle's policy.
    ///
    /// # Errors
    /// [`TrustError`].
    pub fn verify(
        &self,
        cert: &ClientCertificate,
        presented_intermediates: &[&[u8]],
        now: UnixTime,
    ) -> Result<TrustedCertificate, TrustError> {
        if presented_intermediates.len() > MAX_PRESENTED_INTERMEDIATES {
            return Err(TrustError::TooManyIntermediates {
                max: MAX_PRESENTED_INTERMEDIATES,
            });
        }
        let leaf = cert.certificate();
        self.policy
            .check_certificate(leaf, ChainPosition::EndEntity)?;
        for der in presented_intermediates {
            let parsed = x509_cert::Certificate::from_der(der).map_err(|_| TrustError::Invalid)?;
            self.policy
                .check_certificate(&parsed, ChainPosition::Intermediate)?;
        }
        let der = CertificateDer::from(cert.der());
        let ee = EndEntityCert::try_from(&der).map_err(map_webpki)?;
        let mut intermediates: Vec<CertificateDer<'_>> = self.intermediates.clone();
        intermediates.extend(
            presented_intermediates
                .iter()
                .map(|d| CertificateDer::from(*d)),
        );
        let crl_refs: Vec<&CertRevocationList<'_>> = self.crls.iter().collect();
        let revocation = match self.revocation.0 {
            Depth::NotChecked => None,
            depth => RevocationOptionsBuilder::new(&crl_refs).ok().map(|b| {
                b.with_depth(match depth {
                    Depth::Chain => RevocationCheckDepth::Chain,
                    _ => RevocationCheckDepth::EndEntity,
                })
                .with_status_policy(UnknownStatusPolicy::Deny)
                .with_expiration_policy(ExpirationPolicy::Enforce)
                .build()
            }),
        };
        if self.revocation.is_checked() && revocation.is_none() {
            // unreachable by construction (build refuses a checking policy
            // without CRLs); fail closed all the same
            return Err(TrustError::NoRevocationList);
        }
        // webpki applies one EKU rule to every certificate of the path, and
        // CA certificates rarely carry an EKU: it checks "clientAuth if an
        // EKU is present" throughout, and the presence on the leaf is
        // checked below
        let usage = KeyUsage::client_auth();
        // webpki never checks an anchor's validity: refuse a path through
        // an anchor outside its period here, so that path building goes on
        // to another anchor if there is one
        let anchor_fault: Cell<Option<TrustError>> = Cell::new(None);
        let anchor_valid = |path: &VerifiedPath<'_>| -> Result<(), webpki::Error> {
            let index = self
                .anchors
                .iter()
                .position(|a| core::ptr::eq(a, path.anchor()));
            match index.and_then(|i| self.anchor_validity.get(i)) {
                Some(v) => v.check(now).map_err(|e| {
                    anchor_fault.set(Some(e));
                    webpki::Error::UnknownIssuer
                }),
                None => Err(webpki::Error::UnknownIssuer),
            }
        };
        let result = ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &self.anchors,
            &intermediates,
            to_webpki_time(now)?,
            usage,
            revocation,
            Some(&anchor_valid),
        );
        match result {
            Ok(_) => {
                if self.policy.require_client_auth_eku && !has_eku_extension(leaf) {
                    return Err(TrustError::WrongKeyUsage);
                }
                Ok(TrustedCertificate {
                    cert: cert.clone(),
                    bundle_version: self.version,
                })
            }
            Err(e) => Err(match (anchor_fault.take(), map_webpki(e)) {
                (Some(fault), _) => fault,
                (None, TrustError::UnknownIssuer)
                    if leaf.tbs_certificate.issuer == leaf.tbs_certificate.subject =>
                {
                    TrustError::SelfSigned
                }
                (None, other) => other,
            }),
        }
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
