//! Certificates forwarded by a gateway that terminated TLS in front of this
//! service: nginx (`$ssl_client_escaped_cert`), AWS API Gateway
//! (`$context.identity.clientCert.clientCertPem` mapped into a header),
//! Envoy (`x-forwarded-client-cert`), the RFC 9440 `Client-Cert` and
//! `Client-Cert-Chain` fields, and plain base64 DER (Azure App Service's
//! `X-ARR-ClientCert`, HAProxy's `ssl_c_der,base64`).
//!
//! # Security
//! Such a header is a certificate only if the gateway set it. A client can
//! send the same header itself; if the gateway passes it through (or the
//! client reaches this service around the gateway), reading it would let
//! anyone present any certificate. So a header is read only through a
//! [`TrustedForwarder`], which names the format and the gateway addresses
//! allowed to set it, and refuses the header from any other peer.

use core::fmt;
use core::num::NonZeroUsize;
use std::net::IpAddr;

use subtle::ConstantTimeEq;

use crate::binding::PresentedCertificate;
use crate::certificate::{CertificateError, ClientCertificate};

/// Largest forwarding header accepted, in bytes.
pub const MAX_HEADER_LEN: usize = 64 * 1024;
/// Most XFCC elements accepted.
pub const MAX_XFCC_ELEMENTS: usize = 16;

/// How the gateway writes the certificate into its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForwardedFormat {
    /// URL-encoded PEM (nginx `$ssl_client_escaped_cert`).
    UrlEncodedPem,
    /// PEM text (AWS API Gateway `clientCertPem` mapped into a header).
    Pem,
    /// Envoy `x-forwarded-client-cert`. `trusted_hops` is the number of
    /// Envoy proxies between the client and this service that append an
    /// element: the client's element is the `trusted_hops`-th from the
    /// right; anything to its left came from outside and is ignored.
    EnvoyXfcc {
        /// Number of trusted Envoy hops (1 = one edge proxy).
        trusted_hops: NonZeroUsize,
    },
    /// [RFC 9440]: `Client-Cert` is an RFC 8941 Item whose value is a Byte
    /// Sequence (`:base64 of DER:`); the optional `Client-Cert-Chain` is a
    /// List of Byte Sequences, the intermediates. Parameters are ignored,
    /// as RFC 9440 defines none.
    ///
    /// [RFC 9440]: https://www.rfc-editor.org/rfc/rfc9440
    Rfc9440,
    /// Standard base64 (padded, no whitespace) of the DER certificate:
    /// Azure App Service `X-ARR-ClientCert`, HAProxy `ssl_c_der,base64`.
    Base64Der,
}

/// Why a forwarded certificate was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ForwardedError {
    /// The request did not come from a configured gateway: the header may
    /// have been written by the client. Never read.
    #[error("certificate header did not come from a trusted gateway")]
    UntrustedPeer,
    /// The gateway sent no certificate header.
    #[error("no client certificate was forwarded")]
    Missing,
    /// The header is larger than [`MAX_HEADER_LEN`].
    #[error("forwarded certificate header is too large")]
    TooLarge,
    /// The XFCC header is malformed.
    #[error("x-forwarded-client-cert header is malformed")]
    MalformedXfcc,
    /// An RFC 9440 field is not the structured field it must be.
    #[error("{0} is not an RFC 9440 structured field of byte sequences")]
    MalformedRfc9440(&'static str),
    /// A certificate chain was forwarded in a format that carries none.
    #[error("this forwarding format carries no certificate chain")]
    UnexpectedChain,
    /// More intermediates than [`crate::trust::MAX_PRESENTED_INTERMEDIATES`].
    #[error("forwarded certificate chain is too long")]
    ChainTooLong,
    /// The XFCC header has fewer elements than trusted hops, or too many.
    #[error("x-forwarded-client-cert header does not have the configured number of elements")]
    XfccElementCount,
    /// The client's XFCC element carries no `Cert`.
    #[error("x-forwarded-client-cert element carries no Cert")]
    XfccNoCertificate,
    /// The XFCC `Hash` does not match the forwarded certificate.
    #[error("x-forwarded-client-cert Hash does not match its Cert")]
    XfccHashMismatch,
    /// The certificate itself is malformed.
    #[error(transparent)]
    Certificate(#[from] CertificateError),
}

/// A gateway trusted to forward client certificates in a header.
#[derive(Clone)]
pub struct TrustedForwarder {
    format: ForwardedFormat,
    gateways: Vec<IpAddr>,
}

impl fmt::Debug for TrustedForwarder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustedForwarder")
            .field("format", &self.format)
            .field("gateways", &self.gateways)
            .finish()
    }
}

impl TrustedForwarder {
    /// Trusts headers in `format` from requests whose TCP peer is one of
    /// `gateways` (the gateway's address as this service sees it).
    ///
    /// # Errors
    /// [`ForwardedError::UntrustedPeer`] if `gateways` is empty: a
    /// forwarder that trusts nobody would be a configuration mistake.
    pub fn new(format: ForwardedFormat, gateways: Vec<IpAddr>) -> Result<Self, ForwardedError> {
        if gateways.is_empty() {
            return Err(ForwardedError::UntrustedPeer);
        }
        Ok(Self { format, gateways })
    }

    /// The certificate the gateway verified, read from `header` of a
    /// request whose TCP peer is `peer`.
    ///
    /// # Errors
    /// [`ForwardedError::UntrustedPeer`] if `peer` is not a configured
    /// gateway (the header is then not even parsed); otherwise as the format
    /// requires.
    pub fn presented_certificate(
        &self,
        peer: IpAddr,
        header: Option<&str>,
    ) -> Result<PresentedCertificate, ForwardedError> {
        self.presented_chain(peer, header, None)
    }

    /// As [`TrustedForwarder::presented_certificate`], with the
    /// intermediates the gateway forwarded in `chain_header`
    /// (`Client-Cert-Chain` for [`ForwardedFormat::Rfc9440`]); they are
    /// kept for chain validation
    /// ([`PresentedCertificate::intermediates`]).
    ///
    /// # Errors
    /// As [`TrustedForwarder::presented_certificate`];
    /// [`ForwardedError::UnexpectedChain`] for a chain in a format that has
    /// none, [`ForwardedError::ChainTooLong`] for too many intermediates.
    pub fn presented_chain(
        &self,
        peer: IpAddr,
        header: Option<&str>,
        chain_header: Option<&str>,
    ) -> Result<PresentedCertificate, ForwardedError> {
        if !self.gateways.contains(&peer) {
            return Err(ForwardedError::UntrustedPeer);
        }
        let value = header.ok_or(ForwardedError::Missing)?;
        if value.len() > MAX_HEADER_LEN || chain_header.is_some_and(|c| c.len() > MAX_HEADER_LEN) {
            return Err(ForwardedError::TooLarge);
        }
        if value.trim().is_empty() {
            return Err(ForwardedError::Missing);
        }
        if chain_header.is_some() && self.format != ForwardedFormat::Rfc9440 {
            return Err(ForwardedError::UnexpectedChain);
        }
        let mut intermediates = Vec::new();
        let cert = match self.format {
            ForwardedFormat::UrlEncodedPem => {
                ClientCertificate::from_url_encoded_pem(value.trim())?
            }
            ForwardedFormat::Pem => ClientCertificate::from_pem(value)?,
            ForwardedFormat::EnvoyXfcc { trusted_hops } => xfcc_certificate(value, trusted_hops)?,
            ForwardedFormat::Base64Der => ClientCertificate::from_base64_der(value.trim())?,
            ForwardedFormat::Rfc9440 => {
                if let Some(chain) = chain_header {
                    intermediates = rfc9440_chain(chain)?;
                }
                rfc9440_certificate(value)?
            }
        };
        Ok(PresentedCertificate::from_trusted_gateway(
            cert,
            intermediates,
        ))
    }
}

/// RFC 9440 §2.2 `Client-Cert`: one Byte Sequence Item.
fn rfc9440_certificate(value: &str) -> Result<ClientCertificate, ForwardedError> {
    let item: sfv::Item = sfv::Parser::new(value)
        .parse()
        .map_err(|_| ForwardedError::MalformedRfc9440("Client-Cert"))?;
    let der = item
        .bare_item
        .as_byte_sequence()
        .ok_or(ForwardedError::MalformedRfc9440("Client-Cert"))?;
    Ok(ClientCertificate::from_der(der)?)
}

/// RFC 9440 §2.3 `Client-Cert-Chain`: a List of Byte Sequence Items, each
/// one DER certificate.
fn rfc9440_chain(value: &str) -> Result<Vec<Vec<u8>>, ForwardedError> {
    let malformed = ForwardedError::MalformedRfc9440("Client-Cert-Chain");
    let list: sfv::List = sfv::Parser::new(value)
        .parse()
        .map_err(|_| malformed.clone())?;
    if list.len() > crate::trust::MAX_PRESENTED_INTERMEDIATES {
        return Err(ForwardedError::ChainTooLong);
    }
    list.iter()
        .map(|entry| match entry {
            sfv::ListEntry::Item(item) => {
                let der = item.bare_item.as_byte_sequence().ok_or(malformed.clone())?;
                // each member is one certificate: parse it now so a bad
                // member is reported as such, not later as a bad chain
                ClientCertificate::from_der(der)?;
                Ok(der.to_vec())
            }
            sfv::ListEntry::InnerList(_) => Err(malformed.clone()),
        })
        .collect()
}

/// One XFCC element: its key/value pairs (keys lower-cased).
type Element = Vec<(String, String)>;

/// Keys an XFCC element may repeat: one `DNS` or `URI` pair per SAN, as
/// Envoy writes them. Any other repeated key is malformed.
const XFCC_REPEATABLE: [&str; 2] = ["dns", "uri"];

/// Splits an XFCC header into elements (`,`) of pairs (`;`) of `key=value`,
/// where a value may be a double-quoted string with `\"` escapes
/// (Envoy's `x-forwarded-client-cert` format). A control character (CR,
/// LF, NUL, ...) anywhere is malformed.
fn parse_xfcc(value: &str) -> Result<Vec<Element>, ForwardedError> {
    if value.chars().any(char::is_control) {
        return Err(ForwardedError::MalformedXfcc);
    }
    let mut elements: Vec<Element> = Vec::new();
    let mut pairs: Element = Vec::new();
    let mut chars = value.chars().peekable();
    loop {
        // key
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            if c == ',' || c == ';' || c == '"' {
                return Err(ForwardedError::MalformedXfcc);
            }
            key.push(c);
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(ForwardedError::MalformedXfcc);
        }
        let key = key.trim().to_ascii_lowercase();
        if key.is_empty() {
            return Err(ForwardedError::MalformedXfcc);
        }
        // value
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('\\') => match chars.next() {
                        Some(c) => val.push(c),
                        None => return Err(ForwardedError::MalformedXfcc),
                    },
                    Some('"') => break,
                    Some(c) => val.push(c),
                    None => return Err(ForwardedError::MalformedXfcc),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ';' || c == ',' {
                    break;
                }
                if c == '"' {
                    return Err(ForwardedError::MalformedXfcc);
                }
                val.push(c);
                chars.next();
            }
        }
        if pairs.iter().any(|(k, _)| *k == key) && !XFCC_REPEATABLE.contains(&key.as_str()) {
            return Err(ForwardedError::MalformedXfcc);
        }
        pairs.push((key, val));
        match chars.next() {
            Some(';') => {}
            Some(',') => {
                elements.push(core::mem::take(&mut pairs));
                if elements.len() >= MAX_XFCC_ELEMENTS {
                    return Err(ForwardedError::XfccElementCount);
                }
            }
            None => {
                elements.push(pairs);
                return Ok(elements);
            }
            Some(_) => return Err(ForwardedError::MalformedXfcc),
        }
    }
}

fn xfcc_certificate(
    value: &str,
    trusted_hops: NonZeroUsize,
) -> Result<ClientCertificate, ForwardedError> {
    let elements = parse_xfcc(value)?;
    let index = elements
        .len()
        .checked_sub(trusted_hops.get())
        .ok_or(ForwardedError::XfccElementCount)?;
    let element = elements
        .get(index)
        .ok_or(ForwardedError::XfccElementCount)?;
    let get = |k: &str| {
        element
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let cert = ClientCertificate::from_url_encoded_pem(
        get("cert").ok_or(ForwardedError::XfccNoCertificate)?,
    )?;
    if let Some(hash) = get("hash") {
        let mut digest = [0u8; 32];
        let decoded = base16ct::mixed::decode(hash.as_bytes(), &mut digest)
            .map_err(|_| ForwardedError::MalformedXfcc)?;
        // the thumbprint is SHA-256 over the DER, the digest XFCC's Hash carries
        if !bool::from(decoded.ct_eq(cert.thumbprint().as_bytes())) {
            return Err(ForwardedError::XfccHashMismatch);
        }
    }
    Ok(cert)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xfcc_grammar() {
        let e = parse_xfcc(r#"By=spiffe://a;Hash=ab;Subject="CN=x,O=y;z";URI=u,Hash=cd"#).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0][2], ("subject".to_string(), "CN=x,O=y;z".to_string()));
        assert_eq!(e[1][0], ("hash".to_string(), "cd".to_string()));
        let e = parse_xfcc(r#"Subject="a\"b""#).unwrap();
        assert_eq!(e[0][0].1, "a\"b");
        let e = parse_xfcc("Cert=c;DNS=a.example;DNS=b.example;URI=x;URI=y").unwrap();
        assert_eq!(e[0].len(), 5);
        for bad in [
            "",
            "x",
            "=v",
            "a=b;",
            "a=b,",
            "a=\"unterminated",
            "a=b\"c",
            "a=b;a=c",
            "a=\"x\"y",
            "Hash=a;Hash=a",
            "a=b\nc",
            "a=\"b\r\"",
        ] {
            assert!(parse_xfcc(bad).is_err(), "{bad}");
        }
    }
}
