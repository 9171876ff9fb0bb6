//! Certificates for the tests, made in code: rcgen for ordinary ones, and
//! x509-cert to re-encode what rcgen cannot write (multi-valued RDNs,
//! other string types, non-canonical OIDs, SHA-1 signature identifiers,
//! weak keys), re-signed with the issuer's key.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, PublicKeyData,
    SerialNumber, SignatureAlgorithm, SigningKey,
};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::der::asn1::{BitString, ObjectIdentifier, SetOfVec};
use x509_cert::der::{Any, Decode, Encode, Tag};
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::TbsCertificate;

/// A CA: its certificate and what signs with its key.
pub struct Ca {
    pub der: Vec<u8>,
    pub issuer: Issuer<'static, KeyPair>,
    /// The same key again, for re-signing edited certificates.
    pub key: KeyPair,
}

pub fn ca_params(cn: &str, from: (i32, u8, u8), to: (i32, u8, u8)) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.distinguished_name.push(DnType::CommonName, cn);
    p.not_before = date_time_ymd(from.0, from.1, from.2);
    p.not_after = date_time_ymd(to.0, to.1, to.2);
    p
}

fn copy(key: &KeyPair) -> KeyPair {
    KeyPair::from_pem(&key.serialize_pem()).unwrap()
}

/// A self-signed root valid 2025-2035.
pub fn root(cn: &str) -> Ca {
    root_valid(cn, (2025, 1, 1), (2035, 1, 1))
}

pub fn root_valid(cn: &str, from: (i32, u8, u8), to: (i32, u8, u8)) -> Ca {
    let key = KeyPair::generate().unwrap();
    let params = ca_params(cn, from, to);
    let der = params.self_signed(&key).unwrap().der().to_vec();
    Ca {
        der,
        key: copy(&key),
        issuer: Issuer::new(params, key),
    }
}

/// An intermediate CA issued by `parent`.
pub fn intermediate(cn: &str, parent: &Ca, from: (i32, u8, u8), to: (i32, u8, u8)) -> Ca {
    let key = KeyPair::generate().unwrap();
    let params = ca_params(cn, from, to);
    let der = params
        .signed_by(&key, &parent.issuer)
        .unwrap()
        .der()
        .to_vec();
    Ca {
        der,
        key: copy(&key),
        issuer: Issuer::new(params, key),
    }
}

/// Leaf parameters: clientAuth, valid 2026-2028, `serial`.
pub fn leaf_params(cn: &str, serial: u64) -> CertificateParams {
    let mut p = CertificateParams::new(vec![format!("{cn}.example")]).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.serial_number = Some(SerialNumber::from(serial));
    p.not_before = date_time_ymd(2026, 1, 1);
    p.not_after = date_time_ymd(2028, 1, 1);
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p
}

/// A leaf for `cn` issued by `ca`.
pub fn leaf(cn: &str, serial: u64, ca: &Ca) -> Vec<u8> {
    leaf_params(cn, serial)
        .signed_by(&KeyPair::generate().unwrap(), &ca.issuer)
        .unwrap()
        .der()
        .to_vec()
}

/// A CRL of `ca` valid until `next`, revoking `serials`.
pub fn crl(ca: &Ca, next: (i32, u8, u8), serials: &[u64]) -> Vec<u8> {
    CertificateRevocationListParams {
        this_update: date_time_ymd(2026, 6, 1),
        next_update: date_time_ymd(next.0, next.1, next.2),
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: serials
            .iter()
            .map(|s| rcgen::RevokedCertParams {
                serial_number: SerialNumber::from(*s),
                revocation_time: date_time_ymd(2026, 6, 1),
                reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&ca.issuer)
    .unwrap()
    .der()
    .to_vec()
}

/// `der` with its TBS edited by `edit` and signed again by `issuer_key`.
pub fn resign(der: &[u8], issuer_key: &KeyPair, edit: impl FnOnce(&mut TbsCertificate)) -> Vec<u8> {
    let mut cert = x509_cert::Certificate::from_der(der).unwrap();
    edit(&mut cert.tbs_certificate);
    let tbs = cert.tbs_certificate.to_der().unwrap();
    cert.signature = BitString::from_bytes(&issuer_key.sign(&tbs).unwrap()).unwrap();
    cert.to_der().unwrap()
}

/// `der` claiming to be signed with `oid` (TBS and outer identifier; the
/// signature bytes are left as they are, so it cannot verify).
pub fn with_signature_oid(der: &[u8], oid: &str) -> Vec<u8> {
    let mut cert = x509_cert::Certificate::from_der(der).unwrap();
    let oid = ObjectIdentifier::new(oid).unwrap();
    cert.tbs_certificate.signature.oid = oid;
    cert.tbs_certificate.signature.parameters = None;
    cert.signature_algorithm.oid = oid;
    cert.signature_algorithm.parameters = None;
    cert.to_der().unwrap()
}

pub const SHA1_WITH_RSA: &str = "1.2.840.113549.1.1.5";
pub const ECDSA_WITH_SHA1: &str = "1.2.840.10045.4.1";

/// One attribute: OID arcs, string tag, value bytes.
pub type Atv<'a> = (&'a str, Tag, &'a [u8]);

pub fn atv(oid: &str, tag: Tag, value: &[u8]) -> AttributeTypeAndValue {
    AttributeTypeAndValue {
        oid: ObjectIdentifier::new(oid).unwrap(),
        value: Any::new(tag, value).unwrap(),
    }
}

/// A `Name` from RDNs in X.501 order (most significant first), each a set
/// of attributes.
pub fn name(rdns: &[&[Atv<'_>]]) -> Name {
    RdnSequence(
        rdns.iter()
            .map(|rdn| {
                RelativeDistinguishedName(
                    SetOfVec::try_from(
                        rdn.iter()
                            .map(|(oid, tag, v)| atv(oid, *tag, v))
                            .collect::<Vec<_>>(),
                    )
                    .unwrap(),
                )
            })
            .collect(),
    )
}

pub const CN: &str = "2.5.4.3";
pub const OU: &str = "2.5.4.11";
pub const O: &str = "2.5.4.10";
pub const C: &str = "2.5.4.6";
pub const ORG_ID: &str = "2.5.4.97";
pub const U: Tag = Tag::Utf8String;
pub const P: Tag = Tag::PrintableString;

/// A public key of a type and size rcgen will not generate (an RSA
/// modulus of any size, a key on another curve). Only its SPKI matters:
/// chain validation never uses a leaf's key.
pub struct FakeKey {
    pub bits: Vec<u8>,
    pub alg: &'static SignatureAlgorithm,
}

impl PublicKeyData for FakeKey {
    fn der_bytes(&self) -> &[u8] {
        &self.bits
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.alg
    }
}

/// A PKCS#1 RSAPublicKey with an odd modulus of exactly `bits` bits and
/// e = 65537.
pub fn rsa_key(bits: usize) -> FakeKey {
    let mut n = vec![0xA5u8; bits / 8];
    n[0] = 0xC3;
    *n.last_mut().unwrap() |= 1;
    let key = pkcs1::RsaPublicKey {
        modulus: pkcs1::UintRef::new(&n).unwrap(),
        public_exponent: pkcs1::UintRef::new(&[1, 0, 1]).unwrap(),
    };
    FakeKey {
        bits: key.to_der().unwrap(),
        alg: &rcgen::PKCS_RSA_SHA256,
    }
}

/// A leaf for `cn` carrying `key`, issued by `ca`.
pub fn leaf_with_key(cn: &str, serial: u64, key: &impl PublicKeyData, ca: &Ca) -> Vec<u8> {
    leaf_params(cn, serial)
        .signed_by(key, &ca.issuer)
        .unwrap()
        .der()
        .to_vec()
}

/// 2027-01-01T00:00:00Z, inside every validity above.
pub fn now() -> fapi_core::UnixTime {
    fapi_core::UnixTime::from_secs(date_time_ymd(2027, 1, 1).unix_timestamp()).unwrap()
}

pub fn at(y: i32, m: u8, d: u8) -> fapi_core::UnixTime {
    fapi_core::UnixTime::from_secs(date_time_ymd(y, m, d).unix_timestamp()).unwrap()
}
