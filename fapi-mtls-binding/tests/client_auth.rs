//! Client authentication by certificate (RFC 8705 §2): subject DN matching
//! by RFC 4517 `distinguishedNameMatch` and SAN matching for
//! `tls_client_auth`, registrations validated up front, the registered key
//! for `self_signed_tls_client_auth`, directory revocation, and two
//! identities in one request. Each rule's negative test stands next to its
//! happy twin; look-alike certificates are real certificates, re-encoded
//! and re-signed by the scheme CA.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::sync::{Arc, OnceLock};

use common::{now, Ca, C, CN, O, ORG_ID, OU, P, U};
use fapi_core::client::{AuthMethod, ClientMetadata, RegistrationError, TlsClientAuthMetadata};
use fapi_core::client_auth::{CertificateAuthError, ClientAuthError};
use fapi_core::crypto::{default_provider, PublicKeyMaterial};
use fapi_core::jwk::{Jwk, JwkSet};
use fapi_core::{AuthenticatedClient, Profile};
use fapi_core::{ClientId, RedirectUri};
use fapi_mtls_binding::client_auth::{SelfSignedTlsClientAuth, TlsClientAuth};
use fapi_mtls_binding::directory::{
    authenticate_by_certificate, ensure_registered_certificate, ensure_single_identity,
    InMemoryTppDirectory,
};
use fapi_mtls_binding::trust::{TrustBundle, TrustStore, TrustedCertificate};
use fapi_mtls_binding::{ClientCertificate, PresentedCertificate, RegisteredSubject};
use rcgen::string::{Ia5String, PrintableString};
use rcgen::{CertificateParams, DnType, DnValue, KeyPair, SanType};
use x509_cert::der::asn1::ObjectIdentifier;
use x509_cert::der::{Any, Tag};
use x509_cert::name::Name;

/// A UK OB style subject, written the RFC 4514 way (most specific first).
const DN: &str =
    "CN=0015800001ZEZ3hAAH,OU=0015800001ZEZ3hAAH,organizationIdentifier=PSDGB-FCA-123456,O=Open Banking Ltd,C=GB";

struct Pki {
    root: Ca,
    /// Subject C / O / organizationIdentifier / OU / CN (X.501 order), with
    /// the SANs of the SAN tests.
    tpp_a: Vec<u8>,
    /// Another certificate for the same subject (a rotation), same CA.
    tpp_a_rotated: Vec<u8>,
    /// A certificate of the scheme CA for another subject.
    other_subject: Vec<u8>,
    other_ca_leaf: Vec<u8>,
    self_signed: Vec<u8>,
    self_signed_key: PublicKeyMaterial,
    crl: Vec<u8>,
}

fn tpp_a_params() -> CertificateParams {
    let mut p = common::leaf_params("ignored", 10);
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CountryName, "GB");
    // PrintableString here, UTF8String elsewhere: values compare as text
    p.distinguished_name.push(
        DnType::OrganizationName,
        DnValue::PrintableString(PrintableString::try_from("Open Banking Ltd").unwrap()),
    );
    p.distinguished_name
        .push(DnType::CustomDnType(vec![2, 5, 4, 97]), "PSDGB-FCA-123456");
    p.distinguished_name
        .push(DnType::OrganizationalUnitName, "0015800001ZEZ3hAAH");
    p.distinguished_name
        .push(DnType::CommonName, "0015800001ZEZ3hAAH");
    p.subject_alt_names = vec![
        SanType::DnsName(Ia5String::try_from("tpp-a.example").unwrap()),
        SanType::DnsName(Ia5String::try_from("api.tpp-a.example").unwrap()),
        SanType::URI(Ia5String::try_from("https://tpp-a.example/software/1").unwrap()),
        SanType::IpAddress("10.1.2.3".parse().unwrap()),
        SanType::Rfc822Name(Ia5String::try_from("Ops@TPP-A.example").unwrap()),
    ];
    p
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let root = common::root("Scheme CA");
        let other = common::root("Scheme CA"); // same name, different key
        let sign = |ca: &Ca| {
            tpp_a_params()
                .signed_by(&KeyPair::generate().unwrap(), &ca.issuer)
                .unwrap()
                .der()
                .to_vec()
        };
        let key = KeyPair::generate().unwrap();
        let raw = key.public_key_raw();
        let self_signed_key = PublicKeyMaterial::P256 {
            x: raw[1..33].try_into().unwrap(),
            y: raw[33..65].try_into().unwrap(),
        };
        let self_signed = tpp_a_params().self_signed(&key).unwrap().der().to_vec();
        let crl = common::crl(&root, (2027, 6, 1), &[]);
        Pki {
            tpp_a: sign(&root),
            tpp_a_rotated: sign(&root),
            other_subject: common::leaf("tpp-b", 11, &root),
            other_ca_leaf: sign(&other),
            self_signed,
            self_signed_key,
            crl,
            root,
        }
    })
}

fn bundle() -> TrustBundle {
    TrustBundle::builder(1)
        .anchors(&[&pki().root.der])
        .crls(&[&pki().crl])
        .build(now())
        .unwrap()
}

fn trusted(der: &[u8]) -> TrustedCertificate {
    bundle()
        .verify(&ClientCertificate::from_der(der).unwrap(), &[], now())
        .unwrap()
}

fn tls_client(id: &str, m: TlsClientAuthMetadata) -> ClientMetadata {
    ClientMetadata::new(
        ClientId::try_from(id).unwrap(),
        AuthMethod::TlsClientAuth,
        vec![RedirectUri::try_from("https://tpp-a.example/cb").unwrap()],
        JwkSet::default(),
        &*default_provider(),
        Profile::Fapi2Security,
    )
    .unwrap()
    .with_tls_client_auth(m)
}

/// Authenticates tpp-a, registered with `m`, by the certificate `der`.
fn auth_with(der: &[u8], m: TlsClientAuthMetadata) -> Result<AuthenticatedClient, ClientAuthError> {
    AuthenticatedClient::from_certificate(
        &Arc::new(tls_client("tpp-a", m)),
        &TlsClientAuth(&trusted(der)),
    )
}

fn auth(m: TlsClientAuthMetadata) -> Result<AuthenticatedClient, ClientAuthError> {
    auth_with(&pki().tpp_a, m)
}

fn dn_auth(der: &[u8], dn: &str) -> Result<AuthenticatedClient, ClientAuthError> {
    auth_with(der, TlsClientAuthMetadata::subject_dn(dn))
}

/// tpp-a's certificate with its subject replaced by `subject`, signed
/// again by the scheme CA: what a scheme CA issues to another organisation
/// that asked for a look-alike subject.
fn with_subject(subject: Name) -> Vec<u8> {
    common::resign(&pki().tpp_a, &pki().root.key, |tbs| tbs.subject = subject)
}

const MISMATCH: ClientAuthError =
    ClientAuthError::Certificate(CertificateAuthError::SubjectDnMismatch {
        reversed_would_match: false,
    });

#[test]
fn subject_dn_matches_with_case_and_insignificant_space_differences() {
    for dn in [
        DN,
        // attribute names in any case, spaces around separators
        "cn = 0015800001ZEZ3hAAH , ou=0015800001ZEZ3hAAH,ORGANIZATIONIDENTIFIER=PSDGB-FCA-123456,o=Open Banking Ltd,c=GB",
        // value case, and runs of spaces within a value (caseIgnoreMatch after RFC 4518)
        "CN=0015800001zez3haah,OU=0015800001ZEZ3HAAH,organizationIdentifier=psdgb-fca-123456,O=OPEN   banking  LTD,C=gb",
        // numeric types and the OID. prefix
        "2.5.4.3=0015800001ZEZ3hAAH,OID.2.5.4.11=0015800001ZEZ3hAAH,2.5.4.97=PSDGB-FCA-123456,O=Open Banking Ltd,C=GB",
        // a value written as the DER it is (UTF8String "GB")
        "CN=0015800001ZEZ3hAAH,OU=0015800001ZEZ3hAAH,organizationIdentifier=PSDGB-FCA-123456,O=Open Banking Ltd,C=#0c024742",
    ] {
        let c = dn_auth(&pki().tpp_a, dn).unwrap_or_else(|e| panic!("{dn}: {e}"));
        assert_eq!(c.client_id().as_str(), "tpp-a");
        assert_eq!(c.method(), AuthMethod::TlsClientAuth);
    }
}

#[test]
fn subject_dn_mismatch_rejected() {
    for dn in [
        // one value differs
        "CN=0015800001ZEZ3hAAX,OU=0015800001ZEZ3hAAH,organizationIdentifier=PSDGB-FCA-123456,O=Open Banking Ltd,C=GB",
        // an RDN missing, or one extra
        "CN=0015800001ZEZ3hAAH,OU=0015800001ZEZ3hAAH,organizationIdentifier=PSDGB-FCA-123456,O=Open Banking Ltd",
        "L=London,CN=0015800001ZEZ3hAAH,OU=0015800001ZEZ3hAAH,organizationIdentifier=PSDGB-FCA-123456,O=Open Banking Ltd,C=GB",
        // the same value under another attribute type
        "CN=0015800001ZEZ3hAAH,OU=0015800001ZEZ3hAAH,organizationIdentifier=PSDGB-FCA-123456,OU=Open Banking Ltd,C=GB",
        // spaces inside a word are significant
        "CN=0015800001ZEZ3hAAH,OU=0015800001ZEZ3hAAH,organizationIdentifier=PSDGB-FCA-123456,O=OpenBanking Ltd,C=GB",
    ] {
        assert_eq!(dn_auth(&pki().tpp_a, dn).unwrap_err(), MISMATCH, "{dn}");
    }
}

/// The defect of the outside run: the same attributes in another RDN order
/// or grouping authenticated as the registered client. Each look-alike is a
/// real certificate from the scheme CA; each must be refused, and its exact
/// twin (the grouping the certificate really has) must be accepted.
#[test]
fn look_alike_subjects_reordered_regrouped_split_or_merged_rejected() {
    let (c, o, oid, ou, cn) = (
        (C, P, b"GB".as_slice()),
        (O, U, b"Z Ltd".as_slice()),
        (ORG_ID, U, b"PSDGB-FCA-1".as_slice()),
        (OU, U, b"X".as_slice()),
        (CN, U, b"Y".as_slice()),
    );
    let registered = "CN=Y,OU=X,organizationIdentifier=PSDGB-FCA-1,O=Z Ltd,C=GB";
    let exact = with_subject(common::name(&[&[c], &[o], &[oid], &[ou], &[cn]]));
    assert!(dn_auth(&exact, registered).is_ok());
    let cases = [
        // reordered: CN and OU swapped
        (
            "reordered",
            common::name(&[&[c], &[o], &[oid], &[cn], &[ou]]),
            "OU=X,CN=Y,organizationIdentifier=PSDGB-FCA-1,O=Z Ltd,C=GB",
        ),
        // regrouped: OU and CN in one multi-valued RDN (the example)
        (
            "regrouped",
            common::name(&[&[c], &[o], &[oid], &[ou, cn]]),
            "CN=Y+OU=X,organizationIdentifier=PSDGB-FCA-1,O=Z Ltd,C=GB",
        ),
        // merged: O and organizationIdentifier in one RDN
        (
            "merged",
            common::name(&[&[c], &[o, oid], &[ou], &[cn]]),
            "CN=Y,OU=X,O=Z Ltd+organizationIdentifier=PSDGB-FCA-1,C=GB",
        ),
        // everything in one RDN
        (
            "one rdn",
            common::name(&[&[c, o, oid, ou, cn]]),
            "C=GB+O=Z Ltd+organizationIdentifier=PSDGB-FCA-1+OU=X+CN=Y",
        ),
    ];
    for (what, subject, its_own_dn) in cases {
        let look_alike = with_subject(subject);
        assert_eq!(
            dn_auth(&look_alike, registered).unwrap_err(),
            MISMATCH,
            "{what}"
        );
        // the twin: the registration of the subject it really has matches
        dn_auth(&look_alike, its_own_dn).unwrap_or_else(|e| panic!("{what}: {e}"));
    }
    // split: the registration groups OU and CN, the certificate does not
    assert_eq!(
        dn_auth(
            &exact,
            "OU=X+CN=Y,organizationIdentifier=PSDGB-FCA-1,O=Z Ltd,C=GB"
        )
        .unwrap_err(),
        MISMATCH
    );
}

#[test]
fn dn_registered_in_openssl_order_does_not_match_and_says_it_would_reversed() {
    let openssl_order =
        "C=GB, O=Open Banking Ltd, organizationIdentifier=PSDGB-FCA-123456, OU=0015800001ZEZ3hAAH, CN=0015800001ZEZ3hAAH";
    let e = dn_auth(&pki().tpp_a, openssl_order).unwrap_err();
    assert_eq!(
        e,
        ClientAuthError::Certificate(CertificateAuthError::SubjectDnMismatch {
            reversed_would_match: true
        })
    );
    assert!(e.to_string().contains("reverse order"), "{e}");
    // a DN that is wrong whichever way round carries no such hint
    let e = dn_auth(&pki().tpp_a, "C=GB,CN=someone else").unwrap_err();
    assert_eq!(e, MISMATCH);
    assert!(!e.to_string().contains("reverse"), "{e}");
}

/// const-oid 0.9 reads a non-minimal subidentifier (`80 03`) and a
/// five-octet arc above 2^32 - 1 as the plain arc 3: such an attribute
/// type is not CN, whatever it displays as.
#[test]
fn noncanonical_oid_encodings_do_not_pass_for_the_attribute_they_read_as() {
    let typed = |oid_bytes: &[u8]| {
        let mut rdns = common::name(&[&[(C, P, b"GB")], &[(O, U, b"Z Ltd")]]);
        rdns.0.push(x509_cert::name::RelativeDistinguishedName(
            x509_cert::der::asn1::SetOfVec::try_from(vec![
                x509_cert::attr::AttributeTypeAndValue {
                    oid: ObjectIdentifier::from_bytes(oid_bytes).unwrap(),
                    value: Any::new(Tag::Utf8String, b"Y".as_slice()).unwrap(),
                },
            ])
            .unwrap(),
        ));
        with_subject(rdns)
    };
    let registered = "CN=Y,O=Z Ltd,C=GB";
    assert!(dn_auth(&typed(&[0x55, 0x04, 0x03]), registered).is_ok());
    for bytes in [
        [0x55, 0x04, 0x80, 0x03].as_slice(),
        [0x55, 0x04, 0x90, 0x80, 0x80, 0x80, 0x03].as_slice(),
    ] {
        let cert = typed(bytes);
        assert_eq!(
            dn_auth(&cert, registered).unwrap_err(),
            MISMATCH,
            "{bytes:02x?}"
        );
        // and the subject does not pretend, when logged
        let subject = fapi_mtls_binding::DistinguishedName::of_subject(
            ClientCertificate::from_der(&cert).unwrap().certificate(),
        );
        assert!(
            subject.to_string().starts_with("noncanonical-oid-"),
            "{subject}"
        );
    }
}

#[test]
fn values_compare_as_text_whatever_string_type_encodes_them() {
    let registered = "CN=Y,O=Zed Ltd,C=GB";
    let bmp: Vec<u8> = "Zed Ltd"
        .encode_utf16()
        .flat_map(u16::to_be_bytes)
        .collect();
    for (tag, value) in [
        (Tag::Utf8String, b"Zed Ltd".to_vec()),
        (Tag::PrintableString, b"ZED LTD".to_vec()),
        (Tag::TeletexString, b"Zed Ltd".to_vec()),
        (Tag::BmpString, bmp),
    ] {
        let cert = with_subject(common::name(&[
            &[(C, P, b"GB")],
            &[(O, tag, &value)],
            &[(CN, U, b"Y")],
        ]));
        dn_auth(&cert, registered).unwrap_or_else(|e| panic!("{tag:?}: {e}"));
    }
    // a TeletexString outside the repertoire T.61 and ASCII share is not
    // read as text, so it cannot match a string registration
    let cert = with_subject(common::name(&[
        &[(C, P, b"GB")],
        &[(O, Tag::TeletexString, b"Zed Ltd {x}")],
        &[(CN, U, b"Y")],
    ]));
    assert_eq!(
        dn_auth(&cert, "CN=Y,O=Zed Ltd {x},C=GB").unwrap_err(),
        MISMATCH
    );
}

/// Stricter than RFC 4518 §2.2, which maps invisible characters to
/// nothing: a value holding one is a look-alike, not the same value.
#[test]
fn invisible_characters_make_a_look_alike_not_a_match() {
    let registered = "CN=Y,O=OpenBanking,C=GB";
    let plain = with_subject(common::name(&[
        &[(C, P, b"GB")],
        &[(O, U, b"OpenBanking")],
        &[(CN, U, b"Y")],
    ]));
    assert!(dn_auth(&plain, registered).is_ok());
    for hidden in [
        "Open\u{200B}Banking",
        "Open\u{00AD}Banking",
        "OpenBanking\u{FEFF}",
        "Open\tBanking",
    ] {
        let cert = with_subject(common::name(&[
            &[(C, P, b"GB")],
            &[(O, U, hidden.as_bytes())],
            &[(CN, U, b"Y")],
        ]));
        assert_eq!(
            dn_auth(&cert, registered).unwrap_err(),
            MISMATCH,
            "{hidden:?}"
        );
    }
    // a no-break space is a space (RFC 4518 maps separators to SPACE)
    let nbsp = with_subject(common::name(&[
        &[(C, P, b"GB")],
        &[(O, U, "Open\u{00A0}Banking".as_bytes())],
        &[(CN, U, b"Y")],
    ]));
    assert!(dn_auth(&nbsp, "CN=Y,O=Open Banking,C=GB").is_ok());
}

fn malformed_dn(dn: &str) -> bool {
    matches!(
        RegisteredSubject::parse(&TlsClientAuthMetadata::subject_dn(dn)),
        Err(RegistrationError::Malformed {
            field: "tls_client_auth_subject_dn",
            ..
        })
    )
}

/// Registered DNs are read by a strict RFC 4514 grammar when registered,
/// and a malformed one is its own error at authentication, never a
/// mismatch.
#[test]
fn malformed_registered_dns_refused_as_registration_errors() {
    for dn in [
        "",
        "CN",
        "nonsense=1",
        "CN=a\\",
        "CN=a,2.5.4.03=x", // OID arc with a leading zero
        "CN=a,02.5.4.3=x",
        "CN=\\C3\\28", // escapes that are not UTF-8
        "CN=\\ff",
        "CN=a\u{0}b", // raw NUL
        "CN=a\\00b",  // escaped NUL
        "CN=a\\0Ab",  // escaped LF
        "CN=a\tb",    // raw control character
        "CN=a;b",     // unescaped specials
        "CN=a\"b",
        "CN=a<b",
        "CN=a>b",
        "CN=a\\qb", // not an escape
        "CN=a\\4",
        "CN=#", // # must start hex pairs of one DER value
        "CN=#0c",
        "CN=#zz",
        "CN=#0c0161ff",
        "CN=#0c02",
        "CN=", // empty values
        "CN=\\ ",
        "CN=a+CN=b", // a type twice in one RDN
        "CN=a,,O=b",
        "CN=a,",
        "=a",
        "CN=\u{200B}",        // prepared to nothing RFC 4518 lets match
        "CN=\u{E000}",        // private use
        "CN=\u{0301}a",       // leading combining mark
        "3.5.4.3=x",          // first arc above 2
        "2.40.3=x",           // second arc above 39
        "2.5.4.4294967296=x", // arc above 2^32 - 1
        "1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20.21=x",
        "CN=a, O=b ;C=GB",
    ] {
        assert!(malformed_dn(dn), "{dn:?}");
        let e = dn_auth(&pki().tpp_a, dn).unwrap_err();
        assert!(
            matches!(e, ClientAuthError::InvalidRegistration(_)),
            "{dn:?}: {e}"
        );
    }
    let long = format!("CN={}", "a".repeat(4100));
    assert!(malformed_dn(&long));
    let many = vec!["O=a"; 33].join(",");
    assert!(malformed_dn(&many));
    // the happy twins: escapes, #hex, numeric types at the limits
    for dn in [
        "CN=a\\,b\\+c\\;d\\<e\\>f\\\"g\\\\h\\=i",
        "CN=\\#a,O=a#b",
        "CN=caf\\C3\\A9",
        "CN=\\ padded\\ ",
        "CN=#0c0161",
        "2.5.4.4294967295=x",
        "1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20=x",
        "2.39.3=x",
        "CN=a=b",
    ] {
        RegisteredSubject::parse(&TlsClientAuthMetadata::subject_dn(dn))
            .unwrap_or_else(|e| panic!("{dn:?}: {e}"));
    }
}

/// Regression (outside run, fuzz target `certificate`, 90 s): this
/// registered DN reached `x509_cert::Name::from_str` -> const-oid's OID
/// parser, which panicked with "attempt to multiply with overflow". It is
/// now refused by the crate's own grammar before anything else reads it.
#[test]
fn registered_dn_that_crashed_the_oid_parser_is_refused() {
    use base64::Engine as _;
    // the input as the issue gives it (cargo fuzz run certificate FILE)
    let crash = base64::engine::general_purpose::STANDARD
        .decode("Q049TUJTZjBKd1xcXCwyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyYWllRl1GVEVCcj1EUUMlRwAyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjJhaWVGXUZURUJyPURRVEVC")
        .unwrap();
    let crash = String::from_utf8(crash).unwrap();
    assert!(crash.starts_with("CN=MBSf0Jw\\\\\\,2222"));
    assert_eq!(
        fapi_mtls_binding::DistinguishedName::parse(&crash).unwrap_err(),
        fapi_mtls_binding::dn::DnError::Character {
            at: 3,
            problem: "a NUL character"
        }
    );
    // the earlier crash (2026-11-24): a numeric type with a huge arc
    let oversized = "CN=tpp-a,O=x,C=GB,33313333333333333333333333333333333=3";
    assert!(matches!(
        fapi_mtls_binding::DistinguishedName::parse(oversized).unwrap_err(),
        fapi_mtls_binding::dn::DnError::Oid { .. }
    ));
}

#[test]
fn registration_must_set_exactly_one_tls_client_auth_value() {
    assert_eq!(
        auth(TlsClientAuthMetadata::default()).unwrap_err(),
        ClientAuthError::InvalidRegistration(RegistrationError::TlsClientAuthCount { found: 0 })
    );
    let mut two = TlsClientAuthMetadata::subject_dn(DN);
    two.san_dns = Some("tpp-a.example".into());
    assert_eq!(
        auth(two).unwrap_err(),
        ClientAuthError::InvalidRegistration(RegistrationError::TlsClientAuthCount { found: 2 })
    );
    assert!(auth(TlsClientAuthMetadata::subject_dn(DN)).is_ok());
}

#[test]
fn malformed_san_registrations_refused_up_front() {
    let cases: [(TlsClientAuthMetadata, &str); 13] = [
        (
            TlsClientAuthMetadata::san_dns("*.tpp-a.example"),
            "tls_client_auth_san_dns",
        ),
        (
            TlsClientAuthMetadata::san_dns("tpp-a..example"),
            "tls_client_auth_san_dns",
        ),
        (
            TlsClientAuthMetadata::san_dns("tpp-a.example."),
            "tls_client_auth_san_dns",
        ),
        (
            TlsClientAuthMetadata::san_dns(""),
            "tls_client_auth_san_dns",
        ),
        (
            TlsClientAuthMetadata::san_dns("tpp a.example"),
            "tls_client_auth_san_dns",
        ),
        (
            TlsClientAuthMetadata::san_uri("not a uri"),
            "tls_client_auth_san_uri",
        ),
        (
            TlsClientAuthMetadata::san_uri("/relative/path"),
            "tls_client_auth_san_uri",
        ),
        (
            TlsClientAuthMetadata::san_uri("https://tpp-a.example/\n"),
            "tls_client_auth_san_uri",
        ),
        (
            TlsClientAuthMetadata::san_ip("10.1.2"),
            "tls_client_auth_san_ip",
        ),
        (
            TlsClientAuthMetadata::san_ip("10.1.2.3 "),
            "tls_client_auth_san_ip",
        ),
        (
            TlsClientAuthMetadata::san_email("ops.tpp-a.example"),
            "tls_client_auth_san_email",
        ),
        (
            TlsClientAuthMetadata::san_email("@tpp-a.example"),
            "tls_client_auth_san_email",
        ),
        (
            TlsClientAuthMetadata::san_email("ops@-bad-.example"),
            "tls_client_auth_san_email",
        ),
    ];
    for (m, field) in cases {
        let e = RegisteredSubject::parse(&m).unwrap_err();
        assert!(
            matches!(&e, RegistrationError::Malformed { field: f, .. } if *f == field),
            "{m:?}: {e}"
        );
        assert_eq!(
            auth(m).unwrap_err(),
            ClientAuthError::InvalidRegistration(e)
        );
    }
}

#[test]
fn san_matching() {
    // dNSName: any of the certificate's entries, ASCII case-insensitive
    assert!(auth(TlsClientAuthMetadata::san_dns("tpp-a.example")).is_ok());
    assert!(auth(TlsClientAuthMetadata::san_dns("API.tpp-a.example")).is_ok());
    let dns_mismatch =
        ClientAuthError::Certificate(CertificateAuthError::SanMismatch { kind: "dns" });
    assert_eq!(
        auth(TlsClientAuthMetadata::san_dns("tpp-b.example")).unwrap_err(),
        dns_mismatch
    );
    assert_eq!(
        auth(TlsClientAuthMetadata::san_dns("example")).unwrap_err(),
        dns_mismatch
    );
    // URI: exact
    assert!(auth(TlsClientAuthMetadata::san_uri(
        "https://tpp-a.example/software/1"
    ))
    .is_ok());
    assert!(auth(TlsClientAuthMetadata::san_uri(
        "https://tpp-a.example/software/2"
    ))
    .is_err());
    assert!(auth(TlsClientAuthMetadata::san_uri(
        "https://TPP-A.example/software/1"
    ))
    .is_err());
    // IP: the address
    assert!(auth(TlsClientAuthMetadata::san_ip("10.1.2.3")).is_ok());
    assert!(auth(TlsClientAuthMetadata::san_ip("::ffff:10.1.2.3")).is_err());
    assert!(auth(TlsClientAuthMetadata::san_ip("10.1.2.4")).is_err());
    // email: local part exact, domain case-insensitive (RFC 5280 §7.5)
    assert!(auth(TlsClientAuthMetadata::san_email("Ops@tpp-a.example")).is_ok());
    assert_eq!(
        auth(TlsClientAuthMetadata::san_email("ops@tpp-a.example")).unwrap_err(),
        ClientAuthError::Certificate(CertificateAuthError::SanMismatch { kind: "email" })
    );
    assert!(auth(TlsClientAuthMetadata::san_email("ceo@tpp-a.example")).is_err());
}

#[test]
fn private_key_jwt_client_cannot_authenticate_by_certificate() {
    let jwt_client = ClientMetadata::new(
        ClientId::try_from("tpp-a").unwrap(),
        AuthMethod::PrivateKeyJwt,
        vec![],
        JwkSet::default(),
        &*default_provider(),
        Profile::Fapi2Security,
    )
    .unwrap();
    let t = trusted(&pki().tpp_a);
    assert_eq!(
        AuthenticatedClient::from_certificate(&Arc::new(jwt_client.clone()), &TlsClientAuth(&t))
            .unwrap_err(),
        ClientAuthError::MethodNotRegistered
    );
}

fn self_signed_client(key: PublicKeyMaterial) -> ClientMetadata {
    ClientMetadata::new(
        ClientId::try_from("tpp-c").unwrap(),
        AuthMethod::SelfSignedTlsClientAuth,
        vec![],
        JwkSet::new(vec![Jwk::from_public_key(key, Some("c".into()))]),
        &*default_provider(),
        Profile::Fapi2Security,
    )
    .unwrap()
}

#[test]
fn self_signed_certificate_with_registered_key_authenticates() {
    let presented = PresentedCertificate::from_verified_tls_peer(&pki().self_signed).unwrap();
    let client = self_signed_client(pki().self_signed_key.clone());
    let c = AuthenticatedClient::from_certificate(
        &Arc::new(client.clone()),
        &SelfSignedTlsClientAuth(&presented),
    )
    .unwrap();
    assert_eq!(c.method(), AuthMethod::SelfSignedTlsClientAuth);
    // a tls_client_auth check does not fit this client
    assert_eq!(
        AuthenticatedClient::from_certificate(
            &Arc::new(client.clone()),
            &TlsClientAuth(&trusted(&pki().tpp_a))
        )
        .unwrap_err(),
        ClientAuthError::Certificate(CertificateAuthError::WrongMethod)
    );
}

#[test]
fn self_signed_certificate_with_unregistered_key_rejected() {
    let presented = PresentedCertificate::from_verified_tls_peer(&pki().self_signed).unwrap();
    let other = default_provider()
        .generate_signing_key(fapi_core::crypto::Algorithm::Es256)
        .unwrap();
    let client = self_signed_client(other.public_key().clone());
    assert_eq!(
        AuthenticatedClient::from_certificate(
            &Arc::new(client.clone()),
            &SelfSignedTlsClientAuth(&presented)
        )
        .unwrap_err(),
        ClientAuthError::Certificate(CertificateAuthError::KeyNotRegistered)
    );
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    futures_executor::block_on(f)
}

fn store() -> TrustStore {
    TrustStore::new(bundle())
}

#[test]
fn end_to_end_tls_client_auth_and_directory_revocation() {
    let dir = InMemoryTppDirectory::new();
    let client = tls_client("tpp-a", TlsClientAuthMetadata::subject_dn(DN));
    let presented = PresentedCertificate::from_verified_tls_peer(&pki().tpp_a).unwrap();
    dir.register(
        client.client_id().clone(),
        presented.certificate().thumbprint(),
    );
    assert!(block_on(authenticate_by_certificate(
        &presented,
        &Arc::new(client.clone()),
        &store(),
        &dir,
        now()
    ))
    .is_ok());
    // revoked in the directory: refused on the very next use
    dir.revoke_certificate(presented.certificate().thumbprint());
    assert_eq!(
        block_on(authenticate_by_certificate(
            &presented,
            &Arc::new(client.clone()),
            &store(),
            &dir,
            now()
        ))
        .unwrap_err(),
        ClientAuthError::Certificate(CertificateAuthError::CertificateRevoked)
    );
}

#[test]
fn revoked_tpp_refused_whatever_its_certificate() {
    let dir = InMemoryTppDirectory::new();
    let client = tls_client("tpp-a", TlsClientAuthMetadata::subject_dn(DN));
    let presented = PresentedCertificate::from_verified_tls_peer(&pki().tpp_a).unwrap();
    dir.revoke_client(client.client_id().clone());
    assert_eq!(
        block_on(authenticate_by_certificate(
            &presented,
            &Arc::new(client.clone()),
            &store(),
            &dir,
            now()
        ))
        .unwrap_err(),
        ClientAuthError::Certificate(CertificateAuthError::TppRevoked)
    );
}

#[test]
fn certificate_with_the_right_dn_from_another_ca_rejected() {
    let dir = InMemoryTppDirectory::new();
    let client = tls_client("tpp-a", TlsClientAuthMetadata::subject_dn(DN));
    let forged = PresentedCertificate::from_verified_tls_peer(&pki().other_ca_leaf).unwrap();
    assert_eq!(
        block_on(authenticate_by_certificate(
            &forged,
            &Arc::new(client.clone()),
            &store(),
            &dir,
            now()
        ))
        .unwrap_err(),
        ClientAuthError::Certificate(CertificateAuthError::ChainRejected {
            reason: "the certificate is not issued by a trusted scheme CA"
        })
    );
}

#[test]
fn two_client_identities_in_one_request_rejected() {
    let dir = InMemoryTppDirectory::new();
    let cert_b = PresentedCertificate::from_verified_tls_peer(&pki().tpp_a).unwrap();
    dir.register(
        ClientId::try_from("tpp-b").unwrap(),
        cert_b.certificate().thumbprint(),
    );
    // client A (e.g. authenticated by private_key_jwt) presents B's certificate
    let a = ClientId::try_from("tpp-a").unwrap();
    let e = block_on(ensure_single_identity(
        &a,
        cert_b.certificate().thumbprint(),
        &dir,
    ))
    .unwrap_err();
    assert_eq!(e, ClientAuthError::ConflictingClientIds);
    assert_eq!(
        fapi_core::OAuthError::error_code(&e),
        fapi_core::ErrorCode::InvalidClient
    );
    let b = ClientId::try_from("tpp-b").unwrap();
    assert!(block_on(ensure_single_identity(
        &b,
        cert_b.certificate().thumbprint(),
        &dir
    ))
    .is_ok());
    // and through the full path: B's certificate cannot authenticate A
    let client_a = tls_client("tpp-a", TlsClientAuthMetadata::subject_dn(DN));
    assert_eq!(
        block_on(authenticate_by_certificate(
            &cert_b,
            &Arc::new(client_a.clone()),
            &store(),
            &dir,
            now()
        ))
        .unwrap_err(),
        ClientAuthError::ConflictingClientIds
    );
}

#[test]
fn registered_certificate_accepted_for_its_client() {
    let dir = InMemoryTppDirectory::new();
    let a = ClientId::try_from("tpp-a").unwrap();
    let presented = PresentedCertificate::from_verified_tls_peer(&pki().tpp_a).unwrap();
    dir.register(a.clone(), presented.certificate().thumbprint());
    block_on(ensure_registered_certificate(
        &a,
        presented.certificate().thumbprint(),
        &dir,
    ))
    .unwrap();
}

#[test]
fn unregistered_certificate_refused_even_from_the_scheme_ca() {
    let dir = InMemoryTppDirectory::new();
    let a = ClientId::try_from("tpp-a").unwrap();
    let presented = PresentedCertificate::from_verified_tls_peer(&pki().tpp_a).unwrap();
    assert_eq!(
        block_on(ensure_registered_certificate(
            &a,
            presented.certificate().thumbprint(),
            &dir
        ))
        .unwrap_err(),
        ClientAuthError::Certificate(CertificateAuthError::NotRegistered)
    );
}

#[test]
fn another_clients_certificate_refused_as_a_second_identity() {
    let dir = InMemoryTppDirectory::new();
    let a = ClientId::try_from("tpp-a").unwrap();
    let b = ClientId::try_from("tpp-b").unwrap();
    let presented = PresentedCertificate::from_verified_tls_peer(&pki().tpp_a).unwrap();
    dir.register(a, presented.certificate().thumbprint());
    assert_eq!(
        block_on(ensure_registered_certificate(
            &b,
            presented.certificate().thumbprint(),
            &dir
        ))
        .unwrap_err(),
        ClientAuthError::ConflictingClientIds
    );
}

#[test]
fn registered_but_revoked_certificate_refused() {
    let dir = InMemoryTppDirectory::new();
    let a = ClientId::try_from("tpp-a").unwrap();
    let presented = PresentedCertificate::from_verified_tls_peer(&pki().tpp_a).unwrap();
    dir.register(a.clone(), presented.certificate().thumbprint());
    dir.revoke_certificate(presented.certificate().thumbprint());
    assert_eq!(
        block_on(ensure_registered_certificate(
            &a,
            presented.certificate().thumbprint(),
            &dir
        ))
        .unwrap_err(),
        ClientAuthError::Certificate(CertificateAuthError::CertificateRevoked)
    );
}

/// A standing the caller read itself (one round trip with its other
/// per-call reads) is decided exactly as when the check reads it: the
/// registered certificate passes, an unregistered one, another client's,
/// a revoked certificate and a revoked TPP are refused the same way.
#[test]
fn a_standing_read_by_the_caller_is_decided_like_one_the_check_reads() {
    use fapi_mtls_binding::directory::{ensure_registered_standing, TppDirectory};
    let a = ClientId::try_from("tpp-a").unwrap();
    let b = ClientId::try_from("tpp-b").unwrap();
    let presented = PresentedCertificate::from_verified_tls_peer(&pki().tpp_a).unwrap();
    let thumb = presented.certificate().thumbprint();
    let registered = || {
        let dir = InMemoryTppDirectory::new();
        dir.register(a.clone(), thumb);
        dir
    };
    let cert_revoked = registered();
    cert_revoked.revoke_certificate(thumb);
    let tpp_revoked = registered();
    tpp_revoked.revoke_client(a.clone());
    let cases: Vec<(&str, InMemoryTppDirectory, &ClientId, bool)> = vec![
        ("registered", registered(), &a, true),
        ("unregistered", InMemoryTppDirectory::new(), &a, false),
        ("another client's", registered(), &b, false),
        ("certificate revoked", cert_revoked, &a, false),
        ("tpp revoked", tpp_revoked, &a, false),
    ];
    for (case, dir, client, passes) in cases {
        let read = block_on(dir.standing(client, thumb)).unwrap();
        let decided = ensure_registered_standing(client, read);
        let checked = block_on(ensure_registered_certificate(client, thumb, &dir));
        assert_eq!(decided, checked, "{case}");
        assert_eq!(decided.is_ok(), passes, "{case}");
    }
}

// ---- a certificate the registration admits (a rotation) ----

use fapi_mtls_binding::directory::{ensure_client_certificate, Holding, TppDirectory};
use fapi_mtls_binding::registry::TppRegistry;

fn private_key_jwt_client(m: Option<TlsClientAuthMetadata>) -> ClientMetadata {
    let c = ClientMetadata::new(
        ClientId::try_from("tpp-a").unwrap(),
        AuthMethod::PrivateKeyJwt,
        vec![RedirectUri::try_from("https://tpp-a.example/cb").unwrap()],
        JwkSet::default(),
        &*default_provider(),
        Profile::Fapi2Security,
    )
    .unwrap();
    match m {
        Some(m) => c.with_tls_client_auth(m),
        None => c,
    }
}

/// A registry where `client` is registered with the `tpp_a` certificate.
fn registered(client: &ClientMetadata) -> InMemoryTppDirectory {
    let dir = InMemoryTppDirectory::new();
    let first = PresentedCertificate::from_verified_tls_peer(&pki().tpp_a).unwrap();
    block_on(dir.register_client(
        client.client_id(),
        "registration".into(),
        first.certificate().thumbprint(),
        now(),
    ))
    .unwrap();
    dir
}

fn admit(
    der: &[u8],
    client: &ClientMetadata,
    dir: &InMemoryTppDirectory,
) -> Result<Holding, ClientAuthError> {
    let presented = PresentedCertificate::from_verified_tls_peer(der).unwrap();
    block_on(ensure_client_certificate(
        &presented,
        client,
        &store(),
        dir,
        now(),
    ))
}

fn owner(der: &[u8], dir: &InMemoryTppDirectory) -> Option<ClientId> {
    let presented = PresentedCertificate::from_verified_tls_peer(der).unwrap();
    block_on(dir.certificate_owner(presented.certificate().thumbprint())).unwrap()
}

/// `tls_client_auth` and `private_key_jwt` with a registered subject: a new
/// certificate of the scheme CA with the registered subject is admitted,
/// recorded as the client's, and the first one keeps working.
#[test]
fn a_rotated_certificate_with_the_registered_subject_is_admitted_and_held() {
    for client in [
        tls_client("tpp-a", TlsClientAuthMetadata::subject_dn(DN)),
        private_key_jwt_client(Some(TlsClientAuthMetadata::subject_dn(DN))),
        private_key_jwt_client(Some(TlsClientAuthMetadata::san_dns("tpp-a.example"))),
    ] {
        let dir = registered(&client);
        assert_eq!(owner(&pki().tpp_a_rotated, &dir), None);
        assert_eq!(
            admit(&pki().tpp_a_rotated, &client, &dir),
            Ok(Holding::Added)
        );
        assert_eq!(
            owner(&pki().tpp_a_rotated, &dir).as_ref(),
            Some(client.client_id())
        );
        assert_eq!(admit(&pki().tpp_a, &client, &dir), Ok(Holding::Held));
        assert_eq!(
            admit(&pki().tpp_a_rotated, &client, &dir),
            Ok(Holding::Held)
        );
        assert_eq!(owner(&pki().tpp_a, &dir).as_ref(), Some(client.client_id()));
    }
}

/// `private_key_jwt` without a `tls_client_auth_*` value admits nothing:
/// only the certificate it was registered with works.
#[test]
fn a_registration_without_a_subject_admits_no_other_certificate() {
    let client = private_key_jwt_client(None);
    let dir = registered(&client);
    admit(&pki().tpp_a, &client, &dir).unwrap();
    assert_eq!(
        admit(&pki().tpp_a_rotated, &client, &dir).unwrap_err(),
        ClientAuthError::Certificate(CertificateAuthError::NotRegistered)
    );
    assert_eq!(owner(&pki().tpp_a_rotated, &dir), None);
}

#[test]
fn a_certificate_with_another_subject_is_not_admitted() {
    let client = tls_client("tpp-a", TlsClientAuthMetadata::subject_dn(DN));
    let dir = registered(&client);
    assert!(matches!(
        admit(&pki().other_subject, &client, &dir).unwrap_err(),
        ClientAuthError::Certificate(CertificateAuthError::SubjectDnMismatch { .. })
    ));
    assert_eq!(owner(&pki().other_subject, &dir), None);
}

#[test]
fn the_registered_subject_from_another_ca_is_not_admitted() {
    let client = private_key_jwt_client(Some(TlsClientAuthMetadata::subject_dn(DN)));
    let dir = registered(&client);
    assert_eq!(
        admit(&pki().other_ca_leaf, &client, &dir).unwrap_err(),
        ClientAuthError::Certificate(CertificateAuthError::ChainRejected {
            reason: "the certificate is not issued by a trusted scheme CA"
        })
    );
    assert_eq!(owner(&pki().other_ca_leaf, &dir), None);
}

/// Another client holds the certificate: refused as a second identity,
/// even though its subject is the one this client registered.
#[test]
fn a_certificate_another_client_holds_is_not_admitted() {
    let client = tls_client("tpp-a", TlsClientAuthMetadata::subject_dn(DN));
    let dir = registered(&client);
    let b = ClientId::try_from("tpp-b").unwrap();
    let rotated = PresentedCertificate::from_verified_tls_peer(&pki().tpp_a_rotated).unwrap();
    block_on(dir.register_client(&b, "b".into(), rotated.certificate().thumbprint(), now()))
        .unwrap();
    assert_eq!(
        admit(&pki().tpp_a_rotated, &client, &dir).unwrap_err(),
        ClientAuthError::ConflictingClientIds
    );
    assert_eq!(owner(&pki().tpp_a_rotated, &dir), Some(b));
}

/// The directory still revokes one certificate: a revoked certificate is
/// never admitted, and revoking the admitted one leaves the first working.
#[test]
fn the_directory_revokes_an_admitted_certificate_on_its_own() {
    let client = tls_client("tpp-a", TlsClientAuthMetadata::subject_dn(DN));
    let dir = registered(&client);
    let rotated = PresentedCertificate::from_verified_tls_peer(&pki().tpp_a_rotated).unwrap();
    dir.revoke_certificate(rotated.certificate().thumbprint());
    assert_eq!(
        admit(&pki().tpp_a_rotated, &client, &dir).unwrap_err(),
        ClientAuthError::Certificate(CertificateAuthError::CertificateRevoked)
    );

    let dir = registered(&client);
    admit(&pki().tpp_a_rotated, &client, &dir).unwrap();
    dir.revoke_certificate(rotated.certificate().thumbprint());
    assert_eq!(
        admit(&pki().tpp_a_rotated, &client, &dir).unwrap_err(),
        ClientAuthError::Certificate(CertificateAuthError::CertificateRevoked)
    );
    admit(&pki().tpp_a, &client, &dir).unwrap();
}

#[test]
fn a_revoked_tpp_has_no_certificate_admitted() {
    let client = tls_client("tpp-a", TlsClientAuthMetadata::subject_dn(DN));
    let dir = registered(&client);
    block_on(TppRegistry::revoke_client(&dir, client.client_id())).unwrap();
    assert_eq!(
        admit(&pki().tpp_a_rotated, &client, &dir).unwrap_err(),
        ClientAuthError::Certificate(CertificateAuthError::TppRevoked)
    );
    assert_eq!(owner(&pki().tpp_a_rotated, &dir), None);
}

/// `self_signed_tls_client_auth`: a certificate whose key is registered is
/// admitted; one with another key is not.
#[test]
fn a_self_signed_certificate_is_admitted_by_its_registered_key() {
    let client = self_signed_client(pki().self_signed_key.clone());
    let dir = registered(&client);
    admit(&pki().self_signed, &client, &dir).unwrap();
    let other = default_provider()
        .generate_signing_key(fapi_core::crypto::Algorithm::Es256)
        .unwrap();
    let client = self_signed_client(other.public_key().clone());
    let dir = registered(&client);
    assert_eq!(
        admit(&pki().self_signed, &client, &dir).unwrap_err(),
        ClientAuthError::Certificate(CertificateAuthError::KeyNotRegistered)
    );
    assert_eq!(owner(&pki().self_signed, &dir), None);
}
