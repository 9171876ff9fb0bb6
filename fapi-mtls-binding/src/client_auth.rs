//! Client authentication by certificate ([RFC 8705 §2]), implementing
//! fapi-core's [`CertificateAuthentication`] so that
//! [`AuthenticatedClient::from_certificate`](fapi_core::AuthenticatedClient::from_certificate)
//! is the only way from a certificate to an authenticated client.
//!
//! - `tls_client_auth`: the certificate must already be a
//!   [`TrustedCertificate`] (it chains to the scheme CA), and then match the
//!   one registered `tls_client_auth_subject_dn` or `_san_dns` / `_san_uri`
//!   / `_san_ip` / `_san_email` ([`RegisteredSubject`]).
//! - `self_signed_tls_client_auth`: the certificate's public key has the RFC
//!   7638 thumbprint of one of the client's registered JWKs.
//!
//! # Registration
//! [`RegisteredSubject::parse`] validates the `tls_client_auth_*` metadata:
//! exactly one value set; a subject DN read by the strict RFC 4514 reader of
//! [`crate::dn`]; a `dNSName` that is a valid DNS name (no wildcard, no
//! trailing dot); a URI that is an absolute URI; an IP address literal; an
//! email address `local@domain` with a valid DNS domain. Call it when the
//! client registers; [`TlsClientAuth`] calls it again at every
//! authentication and reports a malformed registration as
//! [`ClientAuthError::InvalidRegistration`], never as a mismatch.
//!
//! # Matching
//! - Subject DN: RFC 4517 `distinguishedNameMatch` ([`crate::dn`]): RDN
//!   order and grouping are significant. A registration that would match
//!   with its RDNs reversed (a DN written in OpenSSL's one-line order) is
//!   reported as such ([`CertificateAuthError::SubjectDnMismatch`]).
//! - `dNSName`: ASCII case-insensitive equality with one SAN entry.
//! - URI: exact string equality with one SAN entry.
//! - IP: equality of the address (4 or 16 octets).
//! - Email: the local part exactly, the domain ASCII case-insensitively
//!   (RFC 5280 §7.5).
//!
//! [RFC 8705 §2]: https://www.rfc-editor.org/rfc/rfc8705#section-2

use std::net::IpAddr;

use fapi_core::client::{AuthMethod, ClientMetadata, RegistrationError, TlsClientAuthMetadata};
use fapi_core::client_auth::{CertificateAuthError, CertificateAuthentication, ClientAuthError};
use fapi_core::crypto::PublicKeyMaterial;
use x509_cert::der::Decode;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;

use crate::binding::PresentedCertificate;
use crate::dn::DistinguishedName;
use crate::trust::TrustedCertificate;

/// Longest registered SAN value accepted, in bytes.
pub const MAX_SAN_LEN: usize = 2048;

/// A validated `tls_client_auth_*` registration: the one subject DN or
/// subjectAltName a client's certificate must carry (RFC 8705 §2.1.2).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegisteredSubject {
    /// `tls_client_auth_subject_dn`.
    SubjectDn(DistinguishedName),
    /// `tls_client_auth_san_dns`.
    SanDns(String),
    /// `tls_client_auth_san_uri`.
    SanUri(String),
    /// `tls_client_auth_san_ip`.
    SanIp(IpAddr),
    /// `tls_client_auth_san_email`.
    SanEmail(String),
}

fn malformed(field: &'static str, problem: impl Into<String>) -> RegistrationError {
    RegistrationError::Malformed {
        field,
        problem: problem.into(),
    }
}

fn san_text(field: &'static str, value: &str) -> Result<(), RegistrationError> {
    if value.is_empty() {
        return Err(malformed(field, "it is empty"));
    }
    if value.len() > MAX_SAN_LEN {
        return Err(malformed(field, "it is longer than 2048 bytes"));
    }
    if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(malformed(
            field,
            "it holds whitespace or a control character",
        ));
    }
    Ok(())
}

fn dns_name(field: &'static str, name: &str) -> Result<(), RegistrationError> {
    san_text(field, name)?;
    if name.ends_with('.') {
        return Err(malformed(
            field,
            "a trailing dot never matches a certificate's dNSName",
        ));
    }
    rustls_pki_types::DnsName::try_from(name)
        .map(|_| ())
        .map_err(|_| malformed(field, "it is not a DNS name (letters, digits, `-` and `_` in dot-separated labels, no wildcard)"))
}

impl RegisteredSubject {
    /// Validates a client's `tls_client_auth_*` metadata (see the module
    /// docs).
    ///
    /// # Errors
    /// [`RegistrationError::TlsClientAuthCount`] unless exactly one value
    /// is set; [`RegistrationError::Malformed`] naming the field and what is
    /// wrong with it.
    pub fn parse(m: &TlsClientAuthMetadata) -> Result<Self, RegistrationError> {
        let found = [
            m.subject_dn.is_some(),
            m.san_dns.is_some(),
            m.san_uri.is_some(),
            m.san_ip.is_some(),
            m.san_email.is_some(),
        ]
        .iter()
        .filter(|s| **s)
        .count();
        if found != 1 {
            return Err(RegistrationError::TlsClientAuthCount { found });
        }
        if let Some(dn) = &m.subject_dn {
            return DistinguishedName::parse(dn)
                .map(Self::SubjectDn)
                .map_err(|e| malformed("tls_client_auth_subject_dn", e.to_string()));
        }
        if let Some(dns) = &m.san_dns {
            dns_name("tls_client_auth_san_dns", dns)?;
            return Ok(Self::SanDns(dns.clone()));
        }
        if let Some(uri) = &m.san_uri {
            let field = "tls_client_auth_san_uri";
            san_text(field, uri)?;
            url::Url::parse(uri).map_err(|_| malformed(field, "it is not an absolute URI"))?;
            return Ok(Self::SanUri(uri.clone()));
        }
        if let Some(ip) = &m.san_ip {
            return ip.parse().map(Self::SanIp).map_err(|_| {
                malformed(
                    "tls_client_auth_san_ip",
                    "it is not an IPv4 or IPv6 address",
                )
            });
        }
        let email = m.san_email.as_deref().unwrap_or_default();
        let field = "tls_client_auth_san_email";
        san_text(field, email)?;
        let (local, domain) = email
            .rsplit_once('@')
            .ok_or(malformed(field, "it is not local@domain"))?;
        if local.is_empty()
            || local.len() > 64
            || local.contains(['@', '"', '\\'])
            || !local.is_ascii()
        {
            return Err(malformed(
                field,
                "its local part is not 1 to 64 unquoted ASCII characters",
            ));
        }
        dns_name(field, domain)?;
        Ok(Self::SanEmail(email.to_owned()))
    }

    /// Checks that `cert` carries this subject DN or subjectAltName.
    ///
    /// # Errors
    /// [`CertificateAuthError::SubjectDnMismatch`],
    /// [`CertificateAuthError::SanMismatch`] or
    /// [`CertificateAuthError::MalformedSubjectAltName`].
    pub fn check(&self, cert: &x509_cert::Certificate) -> Result<(), CertificateAuthError> {
        let (found, kind) = match self {
            Self::SubjectDn(registered) => {
                let subject = DistinguishedName::of_subject(cert);
                if registered.matches(&subject) {
                    return Ok(());
                }
                return Err(CertificateAuthError::SubjectDnMismatch {
                    reversed_would_match: registered.matches_reversed(&subject),
                });
            }
            Self::SanDns(dns) => (
                subject_alt_names(cert)?.iter().any(|n| {
                    matches!(n, GeneralName::DnsName(d) if d.as_str().eq_ignore_ascii_case(dns))
                }),
                "dns",
            ),
            Self::SanUri(uri) => (
                subject_alt_names(cert)?.iter().any(|n| {
                    matches!(n, GeneralName::UniformResourceIdentifier(u) if u.as_str() == uri)
                }),
                "uri",
            ),
            Self::SanIp(want) => (
                subject_alt_names(cert)?.iter().any(|n| match n {
                    GeneralName::IpAddress(o) => ip_of(o.as_bytes()) == Some(*want),
                    _ => false,
                }),
                "ip",
            ),
            Self::SanEmail(email) => (
                subject_alt_names(cert)?.iter().any(|n| {
                    matches!(n, GeneralName::Rfc822Name(e) if same_email(e.as_str(), email))
                }),
                "email",
            ),
        };
        if found {
            Ok(())
        } else {
            Err(CertificateAuthError::SanMismatch { kind })
        }
    }
}

fn ip_of(octets: &[u8]) -> Option<IpAddr> {
    match octets.len() {
        4 => <[u8; 4]>::try_from(octets).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(octets).ok().map(IpAddr::from),
        _ => None,
    }
}

/// RFC 5280 §7.5: the local part exactly, the domain case-insensitively.
fn same_email(presented: &str, registered: &str) -> bool {
    match (presented.rsplit_once('@'), registered.rsplit_once('@')) {
        (Some((pl, pd)), Some((rl, rd))) => pl == rl && pd.eq_ignore_ascii_case(rd),
        _ => false,
    }
}

fn subject_alt_names(
    cert: &x509_cert::Certificate,
) -> Result<Vec<GeneralName>, CertificateAuthError> {
    match cert.tbs_certificate.get::<SubjectAltName>() {
        Ok(Some((_, san))) => Ok(san.0),
        Ok(None) => Ok(Vec::new()),
        Err(_) => Err(CertificateAuthError::MalformedSubjectAltName),
    }
}

fn matches_tls_client_auth(
    cert: &x509_cert::Certificate,
    client: &ClientMetadata,
) -> Result<(), ClientAuthError> {
    let registered = RegisteredSubject::parse(client.tls_client_auth())?;
    registered.check(cert)?;
    Ok(())
}

/// The certificate's public key as JWK material.
fn public_key_material(
    cert: &x509_cert::Certificate,
) -> Result<PublicKeyMaterial, CertificateAuthError> {
    const RSA: &str = "1.2.840.113549.1.1.1";
    const EC: &str = "1.2.840.10045.2.1";
    const P256: &str = "1.2.840.10045.3.1.7";
    const ED25519: &str = "1.3.101.112";
    let unsupported = CertificateAuthError::UnsupportedKeyType;
    let spki = &cert.tbs_certificate.subject_public_key_info;
    let bits = spki.subject_public_key.as_bytes().ok_or(unsupported)?;
    match spki.algorithm.oid.to_string().as_str() {
        RSA => {
            let key = pkcs1::RsaPublicKey::from_der(bits).map_err(|_| unsupported)?;
            Ok(PublicKeyMaterial::Rsa {
                n: key.modulus.as_bytes().to_vec(),
                e: key.public_exponent.as_bytes().to_vec(),
            })
        }
        EC => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<x509_cert::der::asn1::ObjectIdentifier>().ok())
                .ok_or(unsupported)?;
            if curve.to_string() != P256 {
                return Err(unsupported);
            }
            match bits {
                [0x04, rest @ ..] if rest.len() == 64 => {
                    let (x, y) = rest.split_at(32);
                    Ok(PublicKeyMaterial::P256 {
                        x: x.try_into().map_err(|_| unsupported)?,
                        y: y.try_into().map_err(|_| unsupported)?,
                    })
                }
                _ => Err(unsupported),
            }
        }
        ED25519 => Ok(PublicKeyMaterial::Ed25519 {
            x: bits.try_into().map_err(|_| unsupported)?,
        }),
        _ => Err(unsupported),
    }
}

pub(crate) fn matches_registered_key(
    cert: &x509_cert::Certificate,
    client: &ClientMetadata,
) -> Result<(), CertificateAuthError> {
    let thumbprint = public_key_material(cert)?.thumbprint();
    if client
        .jwks()
        .keys()
        .iter()
        .any(|k| k.thumbprint() == thumbprint)
    {
        Ok(())
    } else {
        Err(CertificateAuthError::KeyNotRegistered)
    }
}

/// `tls_client_auth`: a certificate that chains to the scheme CA, checked
/// against the client's registered subject DN or SAN.
#[derive(Clone, Debug)]
pub struct TlsClientAuth<'a>(pub &'a TrustedCertificate);

impl CertificateAuthentication for TlsClientAuth<'_> {
    fn authenticate(&self, client: &ClientMetadata) -> Result<(), ClientAuthError> {
        if client.auth_method() != AuthMethod::TlsClientAuth {
            return Err(CertificateAuthError::WrongMethod.into());
        }
        matches_tls_client_auth(self.0.certificate().certificate(), client)
    }
}

/// `self_signed_tls_client_auth`: the presented certificate's key checked
/// against the client's registered JWKS.
#[derive(Clone, Debug)]
pub struct SelfSignedTlsClientAuth<'a>(pub &'a PresentedCertificate);

impl CertificateAuthentication for SelfSignedTlsClientAuth<'_> {
    fn authenticate(&self, client: &ClientMetadata) -> Result<(), ClientAuthError> {
        if client.auth_method() != AuthMethod::SelfSignedTlsClientAuth {
            return Err(CertificateAuthError::WrongMethod.into());
        }
        matches_registered_key(self.0.certificate().certificate(), client).map_err(Into::into)
    }
}
