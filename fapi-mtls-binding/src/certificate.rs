//! A client certificate, parsed strictly from the forms it arrives in.

use core::fmt;

use base64::Engine as _;

use fapi_core::CertificateThumbprint;
use x509_cert::der::{Decode, Reader, SliceReader};
use x509_cert::Certificate;

/// Largest DER certificate accepted, in bytes.
pub const MAX_CERTIFICATE_DER: usize = 16 * 1024;
/// Largest PEM (or URL-encoded PEM) text accepted, in bytes.
pub const MAX_CERTIFICATE_TEXT: usize = 3 * MAX_CERTIFICATE_DER;

/// Why certificate input was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateError {
    /// The input is larger than the bounds above.
    #[error("client certificate is larger than allowed")]
    TooLarge,
    /// Not a strict PEM document with one `CERTIFICATE` block.
    #[error("client certificate is not a PEM CERTIFICATE document")]
    Pem,
    /// Not valid URL (percent) encoding of UTF-8 text: a `%` not followed
    /// by two hex digits, or escapes that decode to non-UTF-8.
    #[error("client certificate is not valid URL-encoded text")]
    UrlEncoding,
    /// Not base64 (standard alphabet, padded, no whitespace), or not an RFC
    /// 8941 byte sequence where one is expected.
    #[error("client certificate is not valid base64")]
    Base64,
    /// The bytes are not exactly one DER-encoded X.509 certificate.
    #[error("client certificate is not a DER-encoded X.509 certificate: {0}")]
    Der(DerFault),
}

/// What is wrong with bytes that should be one DER certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DerFault {
    /// No bytes at all.
    Empty,
    /// The bytes do not start with a DER certificate (BER, another
    /// structure, or garbage).
    NotACertificate,
    /// A certificate followed by bytes that are not another certificate.
    TrailingData,
    /// More than one certificate, where exactly one is expected.
    MultipleCertificates,
}

impl fmt::Display for DerFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "it is empty",
            Self::NotACertificate => "it does not start with a certificate",
            Self::TrailingData => "bytes follow the certificate",
            Self::MultipleCertificates => "it holds more than one certificate",
        })
    }
}

/// Exactly one certificate in `der`, or what else is there.
fn one_certificate(der: &[u8]) -> Result<Certificate, DerFault> {
    let mut reader = SliceReader::new(der).map_err(|_| DerFault::NotACertificate)?;
    let cert = Certificate::decode(&mut reader).map_err(|_| DerFault::NotACertificate)?;
    if reader.is_finished() {
        return Ok(cert);
    }
    let rest = der
        .get(
            der.len()
                .saturating_sub(usize::try_from(reader.remaining_len()).unwrap_or(0))..,
        )
        .unwrap_or_default();
    let mut next = SliceReader::new(rest).map_err(|_| DerFault::TrailingData)?;
    match Certificate::decode(&mut next) {
        Ok(_) => Err(DerFault::MultipleCertificates),
        Err(_) => Err(DerFault::TrailingData),
    }
}

/// An X.509 certificate with its DER bytes and `x5t#S256` thumbprint.
#[derive(Clone)]
pub struct ClientCertificate {
    der: Vec<u8>,
    cert: Certificate,
    thumbprint: CertificateThumbprint,
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("x5t#S256", &self.thumbprint.to_b64url())
            .finish_non_exhaustive()
    }
}

impl PartialEq for ClientCertificate {
    fn eq(&self, other: &Self) -> bool {
        self.thumbprint == other.thumbprint
    }
}
impl Eq for ClientCertificate {}

impl ClientCertificate {
    /// Parses a DER certificate (strict DER: no BER, no trailing bytes).
    ///
    /// # Errors
    /// [`CertificateError::TooLarge`] or [`CertificateError::Der`] with the
    /// [`DerFault`].
    pub fn from_der(der: &[u8]) -> Result<Self, CertificateError> {
        if der.is_empty() {
            return Err(CertificateError::Der(DerFault::Empty));
        }
        if der.len() > MAX_CERTIFICATE_DER {
            return Err(CertificateError::TooLarge);
        }
        let cert = one_certificate(der).map_err(CertificateError::Der)?;
        Ok(Self {
            der: der.to_vec(),
            cert,
            thumbprint: CertificateThumbprint::of_der(der),
        })
    }

    /// Parses a PEM document holding exactly one `CERTIFICATE`
    /// ([RFC 7468 §5](https://www.rfc-editor.org/rfc/rfc7468#section-5)).
    /// Surrounding whitespace is allowed; anything else is not.
    ///
    /// # Errors
    /// [`CertificateError`].
    pub fn from_pem(pem: &str) -> Result<Self, CertificateError> {
        if pem.len() > MAX_CERTIFICATE_TEXT {
            return Err(CertificateError::TooLarge);
        }
        let trimmed = pem.trim();
        let (label, der) =
            pem_rfc7468::decode_vec(trimmed.as_bytes()).map_err(|_| CertificateError::Pem)?;
        if label != "CERTIFICATE" {
            return Err(CertificateError::Pem);
        }
        // decode_vec stops at the first END line: a second block is extra data
        let end = format!("-----END {label}-----");
        if !trimmed.ends_with(&end) || trimmed.matches("-----BEGIN").count() != 1 {
            return Err(CertificateError::Pem);
        }
        Self::from_der(&der)
    }

    /// Parses URL-encoded PEM: nginx `$ssl_client_escaped_cert`, Envoy XFCC
    /// `Cert=`, or an AWS API Gateway `clientCertPem` mapped into a header.
    ///
    /// # Errors
    /// [`CertificateError`].
    pub fn from_url_encoded_pem(text: &str) -> Result<Self, CertificateError> {
        if text.len() > MAX_CERTIFICATE_TEXT {
            return Err(CertificateError::TooLarge);
        }
        let mut escapes = text.split('%').skip(1);
        if !escapes
            .all(|rest| rest.len() >= 2 && rest.bytes().take(2).all(|b| b.is_ascii_hexdigit()))
        {
            return Err(CertificateError::UrlEncoding);
        }
        let pem = percent_encoding::percent_decode_str(text)
            .decode_utf8()
            .map_err(|_| CertificateError::UrlEncoding)?;
        Self::from_pem(&pem)
    }

    /// Parses standard base64 (with padding, no whitespace) of a DER
    /// certificate: Azure App Service's `X-ARR-ClientCert`, HAProxy's
    /// `ssl_c_der,base64`.
    ///
    /// # Errors
    /// [`CertificateError`].
    pub fn from_base64_der(text: &str) -> Result<Self, CertificateError> {
        if text.len() > MAX_CERTIFICATE_TEXT {
            return Err(CertificateError::TooLarge);
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| CertificateError::Base64)?;
        Self::from_der(&der)
    }

    /// The DER bytes.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The parsed certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.cert
    }

    /// Whether the issuer is the subject (a self-signed certificate, as
    /// RFC 8705 §2.2 `self_signed_tls_client_auth` clients present). The
    /// signature is not checked: such a certificate proves nothing but
    /// possession of its key, which the TLS handshake does.
    pub fn is_self_issued(&self) -> bool {
        self.cert.tbs_certificate.issuer == self.cert.tbs_certificate.subject
    }

    /// Whether `now` is within the certificate's validity period.
    pub fn is_valid_at(&self, now: fapi_core::UnixTime) -> bool {
        let seconds = |t: &x509_cert::time::Time| {
            i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
        };
        let validity = &self.cert.tbs_certificate.validity;
        seconds(&validity.not_before) <= now.as_secs()
            && now.as_secs() <= seconds(&validity.not_after)
    }

    /// `x5t#S256`: SHA-256 over the DER bytes (never over PEM text),
    /// [RFC 8705 §3.1](https://www.rfc-editor.org/rfc/rfc8705#section-3.1).
    pub fn thumbprint(&self) -> &CertificateThumbprint {
        &self.thumbprint
    }
}
