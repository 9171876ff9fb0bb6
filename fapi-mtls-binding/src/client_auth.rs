//! Client authentication by certificate ([RFC 8705 §2]), implementing
//! fapi-core's [`CertificateAuthentication`] so that
//! [`AuthenticatedClient::from_certificate`](fapi_core::AuthenticatedClient::from_certificate)
//! is the only way from a certificate to an authenticated client.
//!
//! - `tls_client_auth`: the certificate must already be a
//!   [`TrustedCertificate`] (it chains to the scheme CA), and then match the
//!   one registered `tls_client_auth_subject_dn` or `_san_dns` / `_san_uri`
//!   / `_san_ip` / `_san_email`.
//! - `self_signed_tls_client_auth`: the certificate's public key has the RFC
//!   7638 thumbprint of one of the client's registered JWKs.
//!
//! # Subject DN comparison
//! The registered RFC 4514 string is parsed (by `x509-cert`) into attribute
//! type/value pairs, after removing insignificant spaces around `,` `+` `=`
//! and reading attribute names case-insensitively (`cn`, `CN`, `OID.2.5.4.3`,
//! `2.5.4.3` are the same type; `organizationIdentifier` is 2.5.4.97).
//! The certificate's subject and the registration match when they hold the
//! same multiset of (type, value): RDN order and the grouping of
//! multi-valued RDNs do not change the answer. Values compare as strings,
//! whatever ASN.1 string type encodes them, ignoring case and runs of
//! whitespace (RFC 4518 / RFC 5280 §7.1, simplified); `#`-hex values compare
//! as DER.
//!
//! [RFC 8705 §2]: https://www.rfc-editor.org/rfc/rfc8705#section-2

use core::str::FromStr;
use std::net::IpAddr;

use fapi_core::client::{AuthMethod, ClientMetadata};
use fapi_core::client_auth::{CertificateAuthError, CertificateAuthentication};
use fapi_core::crypto::PublicKeyMaterial;
use x509_cert::der::asn1::{Ia5StringRef, PrintableStringRef, TeletexStringRef, Utf8StringRef};
use x509_cert::der::{Decode, Encode, Tag, Tagged};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::name::RdnSequence;

use crate::binding::PresentedCertificate;
use crate::trust::TrustedCertificate;

const fn reason(reason: &'static str) -> CertificateAuthError {
    CertificateAuthError { reason }
}

/// Attribute names read case-insensitively, mapped to their numeric OIDs.
const NAMES: [(&str, &str); 16] = [
    ("cn", "2.5.4.3"),
    ("commonname", "2.5.4.3"),
    ("sn", "2.5.4.4"),
    ("serialnumber", "2.5.4.5"),
    ("c", "2.5.4.6"),
    ("l", "2.5.4.7"),
    ("st", "2.5.4.8"),
    ("street", "2.5.4.9"),
    ("o", "2.5.4.10"),
    ("ou", "2.5.4.11"),
    ("title", "2.5.4.12"),
    ("organizationidentifier", "2.5.4.97"),
    ("dc", "0.9.2342.19200300.100.1.25"),
    ("uid", "0.9.2342.19200300.100.1.1"),
    ("emailaddress", "1.2.840.113549.1.9.1"),
    ("givenname", "2.5.4.42"),
];

/// Whether `s` is a dotted numeric OID the X.509 parser handles safely: 2 to
/// 20 arcs, each 1 to 8 digits, first arc 0, 1 or 2. The parser underneath
/// (const-oid 0.9) multiplies arcs without overflow checks and cannot read
/// back an arc of 2^28 or more, so longer arcs must never reach it.
fn is_numeric_oid(s: &str) -> bool {
    let arcs: Vec<&str> = s.split('.').collect();
    (2..=20).contains(&arcs.len())
        && arcs
            .iter()
            .all(|a| (1..=8).contains(&a.len()) && a.bytes().all(|b| b.is_ascii_digit()))
        && matches!(arcs.first(), Some(&"0" | &"1" | &"2"))
}

/// Rewrites an RFC 4514 string so that spacing and attribute-name case are
/// insignificant: names become numeric OIDs, unescaped spaces around `,`,
/// `+` and `=` are dropped. Escapes (`\,`, `\2C`, ...) are kept verbatim for
/// the parser.
fn normalise(dn: &str) -> Result<String, CertificateAuthError> {
    let invalid = reason("registered subject DN is not a valid RFC 4514 string");
    let mut out = String::with_capacity(dn.len());
    // Split into ATVs on unescaped ',' and '+', remembering the separator.
    let mut atvs: Vec<(String, Option<char>)> = Vec::new();
    let mut current = String::new();
    let mut chars = dn.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                current.push(c);
                current.push(chars.next().ok_or(invalid)?);
            }
            ',' | '+' => atvs.push((core::mem::take(&mut current), Some(c))),
            _ => current.push(c),
        }
    }
    atvs.push((current, None));
    for (atv, sep) in atvs {
        let (name, value) = atv.split_once('=').ok_or(invalid)?;
        let name = name.trim();
        let lower = name.to_ascii_lowercase();
        let oid = match NAMES.iter().find(|(n, _)| *n == lower) {
            Some((_, oid)) => (*oid).to_owned(),
            None => {
                let numeric = lower.strip_prefix("oid.").unwrap_or(&lower);
                if !is_numeric_oid(numeric) {
                    return Err(reason(
                        "registered subject DN names an unknown attribute type",
                    ));
                }
                numeric.to_owned()
            }
        };
        // unescaped leading spaces are insignificant; a trailing space that is
        // escaped ("\ ") is kept
        let value = value.trim_start();
        let value = match value.strip_suffix(' ') {
            Some(_) if !value.ends_with("\\ ") => value.trim_end(),
            _ => value,
        };
        out.push_str(&oid);
        out.push('=');
        out.push_str(value);
        if let Some(s) = sep {
            out.push(s);
        }
    }
    Ok(out)
}

/// A value in comparable form.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Value {
    /// A character string: case-folded, whitespace runs collapsed.
    Text(String),
    /// Anything else: its DER.
    Der(Vec<u8>),
}

fn comparable(any: &x509_cert::der::Any) -> Value {
    let text = match any.tag() {
        Tag::Utf8String => any
            .decode_as::<Utf8StringRef<'_>>()
            .ok()
            .map(|s| s.as_str().to_owned()),
        Tag::PrintableString => any
            .decode_as::<PrintableStringRef<'_>>()
            .ok()
            .map(|s| s.as_str().to_owned()),
        Tag::Ia5String => any
            .decode_as::<Ia5StringRef<'_>>()
            .ok()
            .map(|s| s.as_str().to_owned()),
        Tag::TeletexString => any
            .decode_as::<TeletexStringRef<'_>>()
            .ok()
            .map(|s| s.as_str().to_owned()),
        _ => None,
    };
    match text {
        Some(t) => Value::Text(
            t.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_lowercase(),
        ),
        None => Value::Der(any.to_der().unwrap_or_default()),
    }
}

/// A distinguished name as a sorted multiset of (type, value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DistinguishedName(Vec<(String, Value)>);

impl DistinguishedName {
    fn from_rdns(rdns: &RdnSequence) -> Self {
        let mut atvs: Vec<(String, Value)> = rdns
            .0
            .iter()
            .flat_map(|rdn| rdn.0.iter())
            .map(|atv| (atv.oid.to_string(), comparable(&atv.value)))
            .collect();
        atvs.sort();
        Self(atvs)
    }

    /// Parses a registered `tls_client_auth_subject_dn` (RFC 4514).
    ///
    /// # Errors
    /// [`CertificateAuthError`] for a string that is not RFC 4514.
    pub fn parse(rfc4514: &str) -> Result<Self, CertificateAuthError> {
        if rfc4514.trim().is_empty() || rfc4514.len() > 4096 {
            return Err(reason("registered subject DN is empty or too long"));
        }
        let normalised = normalise(rfc4514)?;
        let rdns = RdnSequence::from_str(&normalised)
            .map_err(|_| reason("registered subject DN is not a valid RFC 4514 string"))?;
        Ok(Self::from_rdns(&rdns))
    }

    /// The subject of a certificate.
    pub fn of_subject(cert: &x509_cert::Certificate) -> Self {
        Self::from_rdns(&cert.tbs_certificate.subject)
    }
}

fn subject_alt_names(
    cert: &x509_cert::Certificate,
) -> Result<Vec<GeneralName>, CertificateAuthError> {
    match cert.tbs_certificate.get::<SubjectAltName>() {
        Ok(Some((_, san))) => Ok(san.0),
        Ok(None) => Ok(Vec::new()),
        Err(_) => Err(reason("certificate subjectAltName is malformed")),
    }
}

fn matches_tls_client_auth(
    cert: &x509_cert::Certificate,
    client: &ClientMetadata,
) -> Result<(), CertificateAuthError> {
    let m = client.tls_client_auth();
    let set = [
        m.subject_dn.is_some(),
        m.san_dns.is_some(),
        m.san_uri.is_some(),
        m.san_ip.is_some(),
        m.san_email.is_some(),
    ];
    if set.iter().filter(|s| **s).count() != 1 {
        return Err(reason(
            "registration must set exactly one tls_client_auth_* value",
        ));
    }
    if let Some(dn) = &m.subject_dn {
        return if DistinguishedName::parse(dn)? == DistinguishedName::of_subject(cert) {
            Ok(())
        } else {
            Err(reason("subject DN does not match the registration"))
        };
    }
    let sans = subject_alt_names(cert)?;
    let found = if let Some(dns) = &m.san_dns {
        sans.iter()
            .any(|n| matches!(n, GeneralName::DnsName(d) if d.as_str().eq_ignore_ascii_case(dns)))
    } else if let Some(uri) = &m.san_uri {
        sans.iter()
            .any(|n| matches!(n, GeneralName::UniformResourceIdentifier(u) if u.as_str() == uri))
    } else if let Some(ip) = &m.san_ip {
        let want: IpAddr = ip
            .parse()
            .map_err(|_| reason("registered tls_client_auth_san_ip is not an IP address"))?;
        sans.iter().any(|n| match n {
            GeneralName::IpAddress(o) => match o.as_bytes().len() {
                4 => <[u8; 4]>::try_from(o.as_bytes()).is_ok_and(|b| IpAddr::from(b) == want),
                16 => <[u8; 16]>::try_from(o.as_bytes()).is_ok_and(|b| IpAddr::from(b) == want),
                _ => false,
            },
            _ => false,
        })
    } else if let Some(email) = &m.san_email {
        sans.iter()
            .any(|n| matches!(n, GeneralName::Rfc822Name(e) if e.as_str() == email))
    } else {
        false
    };
    if found {
        Ok(())
    } else {
        Err(reason("no subjectAltName matches the registration"))
    }
}

/// The certificate's public key as JWK material.
fn public_key_material(
    cert: &x509_cert::Certificate,
) -> Result<PublicKeyMaterial, CertificateAuthError> {
    const RSA: &str = "1.2.840.113549.1.1.1";
    const EC: &str = "1.2.840.10045.2.1";
    const P256: &str = "1.2.840.10045.3.1.7";
    const ED25519: &str = "1.3.101.112";
    let unsupported = reason("certificate key type is not RSA, P-256 or Ed25519");
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

fn matches_registered_key(
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
        Err(reason(
            "certificate key is not one of the client's registered keys",
        ))
    }
}

/// `tls_client_auth`: a certificate that chains to the scheme CA, checked
/// against the client's registered subject DN or SAN.
#[derive(Clone, Debug)]
pub struct TlsClientAuth<'a>(pub &'a TrustedCertificate);

impl CertificateAuthentication for TlsClientAuth<'_> {
    fn authenticate(&self, client: &ClientMetadata) -> Result<(), CertificateAuthError> {
        if client.auth_method() != AuthMethod::TlsClientAuth {
            return Err(reason("client is not registered for tls_client_auth"));
        }
        matches_tls_client_auth(self.0.certificate().certificate(), client)
    }
}

/// `self_signed_tls_client_auth`: the presented certificate's key checked
/// against the client's registered JWKS.
#[derive(Clone, Debug)]
pub struct SelfSignedTlsClientAuth<'a>(pub &'a PresentedCertificate);

impl CertificateAuthentication for SelfSignedTlsClientAuth<'_> {
    fn authenticate(&self, client: &ClientMetadata) -> Result<(), CertificateAuthError> {
        if client.auth_method() != AuthMethod::SelfSignedTlsClientAuth {
            return Err(reason(
                "client is not registered for self_signed_tls_client_auth",
            ));
        }
        matches_registered_key(self.0.certificate().certificate(), client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation() {
        assert_eq!(normalise("CN=a, O = b").unwrap(), "2.5.4.3=a,2.5.4.10=b");
        assert_eq!(normalise("cn=a+ou=x").unwrap(), "2.5.4.3=a+2.5.4.11=x");
        assert_eq!(
            normalise("OID.2.5.4.97=PSDGB-FCA-123").unwrap(),
            "2.5.4.97=PSDGB-FCA-123"
        );
        assert_eq!(
            normalise(r"CN=a\, b,O=c").unwrap(),
            r"2.5.4.3=a\, b,2.5.4.10=c"
        );
        assert_eq!(normalise(r"CN=x\ ").unwrap(), r"2.5.4.3=x\ ");
        assert!(normalise("bogus=a").is_err());
        assert!(normalise("CN").is_err());
        assert!(normalise("CN=a\\").is_err());
    }
}
