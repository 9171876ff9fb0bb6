//! The FAPI TLS policy for servers (and clients) terminating TLS in rustls
//! (feature `rustls`): every bank's TPP listener needs the same three
//! pieces, so they live here rather than in each bank.
//!
//! - [`restrict_to_fapi`]: a rustls `CryptoProvider` cut down to TLS 1.3
//!   and the four TLS 1.2 suites the FAPI profiles allow
//!   ([`FAPI_TLS12_SUITES`]); [`FAPI_PROTOCOL_VERSIONS`] to build with.
//! - [`TrustStoreClientVerifier`]: a rustls `ClientCertVerifier` that
//!   requires a client certificate and verifies it in the handshake with
//!   this crate's [`TrustStore`] (the scheme CA bundle in force at that
//!   handshake, the clientAuth EKU, CRLs). Each refusal maps to the
//!   closest rustls `CertificateError`, so the TLS alert says why.
//!
//! ```
//! use std::sync::Arc;
//! use fapi_mtls_binding::tls::{restrict_to_fapi, TrustStoreClientVerifier, FAPI_PROTOCOL_VERSIONS};
//! # fn build(trust: Arc<fapi_mtls_binding::trust::TrustStore>) -> Result<(), rustls::Error> {
//! let provider = Arc::new(restrict_to_fapi(rustls::crypto::aws_lc_rs::default_provider()));
//! let verifier = TrustStoreClientVerifier::new(trust, provider.signature_verification_algorithms);
//! let builder = rustls::ServerConfig::builder_with_provider(provider)
//!     .with_protocol_versions(FAPI_PROTOCOL_VERSIONS)?
//!     .with_client_cert_verifier(Arc::new(verifier));
//! # let _ = builder; Ok(()) }
//! ```

use core::fmt;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, CipherSuite, DigitallySignedStruct, DistinguishedName, SignatureScheme,
    SupportedCipherSuite, SupportedProtocolVersion,
};
use rustls_pki_types::{CertificateDer, UnixTime};

use crate::certificate::ClientCertificate;
use crate::trust::{TrustError, TrustStore};

/// The four TLS 1.2 suites the FAPI profiles allow (ECDHE with AES-GCM).
pub const FAPI_TLS12_SUITES: [CipherSuite; 4] = [
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
];

/// TLS 1.3 and TLS 1.2 (the latter only with [`FAPI_TLS12_SUITES`], once
/// the provider is [`restrict_to_fapi`]).
pub static FAPI_PROTOCOL_VERSIONS: &[&SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// `provider` with its cipher suites cut to every TLS 1.3 suite and the
/// [`FAPI_TLS12_SUITES`] it has.
pub fn restrict_to_fapi(mut provider: CryptoProvider) -> CryptoProvider {
    provider.cipher_suites.retain(|s| match s {
        SupportedCipherSuite::Tls13(_) => true,
        SupportedCipherSuite::Tls12(_) => FAPI_TLS12_SUITES.contains(&s.suite()),
    });
    provider
}

/// The rustls certificate error closest to a [`TrustError`].
pub fn certificate_error(e: &TrustError) -> CertificateError {
    match e {
        TrustError::Revoked => CertificateError::Revoked,
        TrustError::Expired => CertificateError::Expired,
        TrustError::NotYetValid => CertificateError::NotValidYet,
        TrustError::UnknownIssuer => CertificateError::UnknownIssuer,
        TrustError::WrongKeyUsage => CertificateError::InvalidPurpose,
        TrustError::CrlUnavailable | TrustError::CrlExpired | TrustError::CrlSignatureInvalid => {
            CertificateError::UnknownRevocationStatus
        }
        _ => CertificateError::ApplicationVerificationFailure,
    }
}

/// Called with the reason of each certificate refused in a handshake (for
/// the server's log).
pub type RefusalHook = Arc<dyn Fn(&TrustError) + Send + Sync>;

/// Requires a client certificate and verifies it against the
/// [`TrustStore`]'s bundle in force at each handshake.
pub struct TrustStoreClientVerifier {
    trust: Arc<TrustStore>,
    algorithms: WebPkiSupportedAlgorithms,
    on_refusal: Option<RefusalHook>,
    self_signed: bool,
}

impl fmt::Debug for TrustStoreClientVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustStoreClientVerifier")
            .field("bundle_version", &self.trust.current().version())
            .finish_non_exhaustive()
    }
}

impl TrustStoreClientVerifier {
    /// Verifies chains with `trust` and handshake signatures with
    /// `algorithms` (the provider's `signature_verification_algorithms`).
    pub fn new(trust: Arc<TrustStore>, algorithms: WebPkiSupportedAlgorithms) -> Self {
        Self {
            trust,
            algorithms,
            on_refusal: None,
            self_signed: false,
        }
    }

    /// Also accepts a self-signed certificate sent alone (issuer = subject,
    /// within its validity period) that does not chain to the bundle, for
    /// `self_signed_tls_client_auth` clients (RFC 8705 §2.2). Such a
    /// certificate authenticates no one by itself: mark the connection
    /// [`CertificateConnection::self_signed`](crate::resource::CertificateConnection::self_signed)
    /// and let the application match its key against a registration
    /// ([`ensure_client_certificate`](crate::directory::ensure_client_certificate)).
    /// Off by default: without it the handshake refuses every certificate
    /// outside the scheme.
    #[must_use]
    pub fn allow_self_signed(mut self) -> Self {
        self.self_signed = true;
        self
    }

    /// Calls `hook` with the reason of each refused certificate.
    #[must_use]
    pub fn on_refusal(mut self, hook: RefusalHook) -> Self {
        self.on_refusal = Some(hook);
        self
    }
}

impl ClientCertVerifier for TrustStoreClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let cert = ClientCertificate::from_der(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let now = i64::try_from(now.as_secs())
            .ok()
            .and_then(fapi_core::UnixTime::from_secs)
            .ok_or(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))?;
        let chain: Vec<&[u8]> = intermediates.iter().map(|c| c.as_ref()).collect();
        match self.trust.current().verify(&cert, &chain, now) {
            Ok(_) => Ok(ClientCertVerified::assertion()),
            Err(_)
                if self.self_signed
                    && intermediates.is_empty()
                    && cert.is_self_issued()
                    && cert.is_valid_at(now) =>
            {
                Ok(ClientCertVerified::assertion())
            }
            Err(e) => {
                if let Some(hook) = &self.on_refusal {
                    hook(&e);
                }
                Err(rustls::Error::InvalidCertificate(certificate_error(&e)))
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
