//! The certificate a request presented, as proof of possession for
//! certificate-bound access tokens ([RFC 8705 §3]).
//!
//! [RFC 8705 §3]: https://www.rfc-editor.org/rfc/rfc8705#section-3

use fapi_core::access_token::{Confirmation, PresentedKey, ProofOfPossession};

use crate::certificate::{CertificateError, ClientCertificate};

/// How the certificate reached this service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertificateOrigin {
    /// The TLS handshake on this connection verified it.
    TlsPeer,
    /// A configured, trusted gateway forwarded it (see [`crate::forwarded`]).
    TrustedGateway,
}

/// The client certificate a request *proved* it holds. Only two ways make
/// one: [`PresentedCertificate::from_verified_tls_peer`], for the certificate
/// your TLS stack verified on this connection, and
/// [`crate::forwarded::TrustedForwarder::presented_certificate`], for a
/// header set by a gateway you configured as trusted. A header value can
/// therefore never become a `PresentedCertificate` by accident.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresentedCertificate {
    cert: ClientCertificate,
    origin: CertificateOrigin,
    /// The intermediate CA certificates (DER) sent with it, leaf excluded.
    intermediates: Vec<Vec<u8>>,
}

impl PresentedCertificate {
    /// The end-entity certificate of this connection, as verified by the
    /// TLS handshake (rustls: `ServerConnection::peer_certificates()`, first
    /// entry). Never pass anything the client sent in a header.
    ///
    /// # Errors
    /// [`CertificateError`] if the bytes are not a DER certificate.
    pub fn from_verified_tls_peer(der: &[u8]) -> Result<Self, CertificateError> {
        Self::from_verified_tls_peer_chain(der, &[])
    }

    /// As [`PresentedCertificate::from_verified_tls_peer`], keeping the
    /// intermediates the client sent in the handshake (rustls:
    /// `peer_certificates()` after the first entry), so that a later
    /// re-validation ([`crate::trust::TrustBundle::verify`] with
    /// [`PresentedCertificate::intermediates`]) can build the same path.
    ///
    /// # Errors
    /// [`CertificateError`] if the leaf is not a DER certificate, or
    /// [`CertificateError::TooLarge`] for more than
    /// [`crate::trust::MAX_PRESENTED_INTERMEDIATES`] intermediates.
    pub fn from_verified_tls_peer_chain(
        der: &[u8],
        intermediates: &[&[u8]],
    ) -> Result<Self, CertificateError> {
        if intermediates.len() > crate::trust::MAX_PRESENTED_INTERMEDIATES {
            return Err(CertificateError::TooLarge);
        }
        Ok(Self {
            cert: ClientCertificate::from_der(der)?,
            origin: CertificateOrigin::TlsPeer,
            intermediates: intermediates.iter().map(|d| d.to_vec()).collect(),
        })
    }

    pub(crate) fn from_trusted_gateway(
        cert: ClientCertificate,
        intermediates: Vec<Vec<u8>>,
    ) -> Self {
        Self {
            cert,
            origin: CertificateOrigin::TrustedGateway,
            intermediates,
        }
    }

    /// The intermediate CA certificates (DER) that came with the
    /// certificate, for chain validation.
    pub fn intermediates(&self) -> Vec<&[u8]> {
        self.intermediates.iter().map(Vec::as_slice).collect()
    }

    /// The certificate.
    pub fn certificate(&self) -> &ClientCertificate {
        &self.cert
    }

    /// How it arrived.
    pub fn origin(&self) -> CertificateOrigin {
        self.origin
    }

    /// The `cnf` to put into an access token issued to this client
    /// (`{"x5t#S256": ...}`).
    pub fn confirmation(&self) -> Confirmation {
        Confirmation::CertificateThumbprint(*self.cert.thumbprint())
    }
}

impl ProofOfPossession for PresentedCertificate {
    fn presented_key(&self) -> PresentedKey<'_> {
        PresentedKey::Certificate(self.cert.thumbprint())
    }
}
