//! Client authentication by certificate (RFC 8705 §2): subject DN and SAN
//! matching for `tls_client_auth`, the registered key for
//! `self_signed_tls_client_auth`, directory revocation, and two identities
//! in one request. Each rule's negative test stands next to its twin.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::OnceLock;

use fapi_core::client::{AuthMethod, ClientMetadata, TlsClientAuthMetadata};
use fapi_core::client_auth::ClientAuthError;
use fapi_core::crypto::{default_provider, PublicKeyMaterial};
use fapi_core::jwk::{Jwk, JwkSet};
use fapi_core::time::UnixTime;
use fapi_core::types::{ClientId, RedirectUri};
use fapi_core::{AuthenticatedClient, Profile};
use fapi_mtls_binding::client_auth::{DistinguishedName, SelfSignedTlsClientAuth, TlsClientAuth};
use fapi_mtls_binding::directory::{
    authenticate_by_certificate, ensure_registered_certificate, ensure_single_identity,
    InMemoryTppDirectory,
};
use fapi_mtls_binding::trust::{TrustBundle, TrustStore};
use fapi_mtls_binding::{ClientCertificate, PresentedCertificate};
use rcgen::string::{Ia5String, PrintableString};
use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, DnValue, ExtendedKeyUsagePurpose,
    IsCa, Issuer, KeyPair, SanType,
};

const DN: &str = "CN=0015800001ZEZ3hAAH,OU=0015800001ZEZ3hAAH,O=OpenBanking,C=GB,organizationIdentifier=PSDGB-FCA-123456";

struct Pki {
    root: Vec<u8>,
    tpp_a: Vec<u8>,
    other_ca_leaf: Vec<u8>,
    self_signed: Vec<u8>,
    self_signed_key: PublicKeyMaterial,
}

fn leaf(issuer: &Issuer<'_, KeyPair>) -> Vec<u8> {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name
        .push(DnType::CommonName, "0015800001ZEZ3hAAH");
    p.distinguished_name
        .push(DnType::OrganizationalUnitName, "0015800001ZEZ3hAAH");
    // PrintableString here, UTF8String elsewhere: values compare as text
    p.distinguished_name.push(
        DnType::OrganizationName,
        DnValue::PrintableString(PrintableString::try_from("OpenBanking").unwrap()),
    );
    p.distinguished_name.push(DnType::CountryName, "GB");
    p.distinguished_name
        .push(DnType::CustomDnType(vec![2, 5, 4, 97]), "PSDGB-FCA-123456");
    p.subject_alt_names = vec![
        SanType::DnsName(Ia5String::try_from("tpp-a.example").unwrap()),
        SanType::URI(Ia5String::try_from("https://tpp-a.example/software/1").unwrap()),
        SanType::IpAddress("10.1.2.3".parse().unwrap()),
        SanType::Rfc822Name(Ia5String::try_from("ops@tpp-a.example").unwrap()),
    ];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.not_before = date_time_ymd(2026, 1, 1);
    p.not_after = date_time_ymd(2028, 1, 1);
    p.signed_by(&KeyPair::generate().unwrap(), issuer)
        .unwrap()
        .der()
        .to_vec()
}

fn ca(cn: &str) -> (Vec<u8>, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, cn);
    p.not_before = date_time_ymd(2025, 1, 1);
    p.not_after = date_time_ymd(2035, 1, 1);
    let der = p.self_signed(&key).unwrap().der().to_vec();
    (der, Issuer::new(p, key))
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let (root, issuer) = ca("Scheme CA");
        let (_, other) = ca("Scheme CA"); // same name, different key
        let key = KeyPair::generate().unwrap();
        let raw = key.public_key_raw();
        let self_signed_key = PublicKeyMaterial::P256 {
            x: raw[1..33].try_into().unwrap(),
            y: raw[33..65].try_into().unwrap(),
        };
        let mut p = CertificateParams::new(vec!["tpp-c.example".to_string()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, "tpp-c");
        let self_signed = p.self_signed(&key).unwrap().der().to_vec();
        Pki {
            root,
            tpp_a: leaf(&issuer),
            other_ca_leaf: leaf(&other),
            self_signed,
            self_signed_key,
        }
    })
}

fn now() -> UnixTime {
    UnixTime::from_secs(date_time_ymd(2027, 1, 1).unix_timestamp()).unwrap()
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

fn trusted(der: &[u8]) -> fapi_mtls_binding::trust::TrustedCertificate {
    TrustBundle::new(1, &[&pki().root], &[], &[])
        .unwrap()
        .verify(&ClientCertificate::from_der(der).unwrap(), &[], now())
        .unwrap()
}

fn auth(m: TlsClientAuthMetadata) -> Result<AuthenticatedClient, ClientAuthError> {
    AuthenticatedClient::from_certificate(
        &tls_client("tpp-a", m),
        &TlsClientAuth(&trusted(&pki().tpp_a)),
    )
}

#[test]
fn happy_subject_dn_in_every_spelling() {
    for dn in [
        DN,
        // reversed RDN order (openssl style), spaces, lower-case names, OID forms
        "organizationIdentifier=PSDGB-FCA-123456, C=GB, O=OpenBanking, OU=0015800001ZEZ3hAAH, CN=0015800001ZEZ3hAAH",
        "cn = 0015800001ZEZ3hAAH , ou=0015800001ZEZ3hAAH,o=OpenBanking,c=GB,OID.2.5.4.97=PSDGB-FCA-123456",
        "2.5.4.3=0015800001ZEZ3hAAH,2.5.4.11=0015800001ZEZ3hAAH,2.5.4.10=openbanking,2.5.4.6=GB,2.5.4.97=PSDGB-FCA-123456",
        // a multi-valued RDN holding the same attributes
        "CN=0015800001ZEZ3hAAH+OU=0015800001ZEZ3hAAH,O=OpenBanking,C=GB,organizationIdentifier=PSDGB-FCA-123456",
    ] {
        let c = auth(TlsClientAuthMetadata::subject_dn(dn)).unwrap_or_else(|e| panic!("{dn}: {e}"));
        assert_eq!(c.client_id().as_str(), "tpp-a");
        assert_eq!(c.method(), AuthMethod::TlsClientAuth);
    }
}

#[test]
fn subject_dn_mismatch_rejected() {
    for dn in [
        "CN=0015800001ZEZ3hAAX,OU=0015800001ZEZ3hAAH,O=OpenBanking,C=GB,organizationIdentifier=PSDGB-FCA-123456",
        // an attribute missing, or one extra
        "CN=0015800001ZEZ3hAAH,OU=0015800001ZEZ3hAAH,O=OpenBanking,C=GB",
        "CN=0015800001ZEZ3hAAH,OU=0015800001ZEZ3hAAH,O=OpenBanking,C=GB,organizationIdentifier=PSDGB-FCA-123456,L=London",
        // the same value under another attribute type
        "CN=0015800001ZEZ3hAAH,OU=0015800001ZEZ3hAAH,OU=OpenBanking,C=GB,organizationIdentifier=PSDGB-FCA-123456",
    ] {
        assert!(matches!(auth(TlsClientAuthMetadata::subject_dn(dn)).unwrap_err(), ClientAuthError::Certificate(_)), "{dn}");
    }
}

#[test]
fn malformed_registered_dn_rejected() {
    for dn in ["", "CN", "nonsense=1", "CN=a\\"] {
        assert!(DistinguishedName::parse(dn).is_err(), "{dn}");
    }
    assert_eq!(
        DistinguishedName::parse("CN=a+OU=b").unwrap(),
        DistinguishedName::parse("ou=b, cn=a").unwrap()
    );
}

/// Regression (fuzz target `certificate`, 2026-11-24): a numeric attribute
/// type with an arc too large for 32 bits reached const-oid's unchecked
/// arithmetic and panicked on overflow. It is now refused as an unknown
/// attribute type; numeric types of ordinary size still parse.
#[test]
fn oversized_numeric_attribute_type_rejected_without_panic() {
    let crash = "CN=tpp-a,O=tpp-a'Lptp-a'td,C=GB,organizationIdentifier=PSDGB-FCtd,C=GB,33313333333333333333333333333333333=3333333333333333333organizationIdentifier=PSDGBpB-FCA-tpp*\x01\x11\x00-a";
    for dn in [
        crash,
        "3333333333=x",
        "2.5.4.4294967296=x",
        "2.5.4.9999999999=x",
        "2.5.4.999999999=x",
        "2.5.4.268435456=x",
        "OID.2.5.4.3.=x",
        "2..5=x",
        "7.5.4.3=x",
        "2=x",
    ] {
        assert!(DistinguishedName::parse(dn).is_err(), "{dn}");
    }
    // the happy twins: numeric types at the limits still parse
    assert_eq!(
        DistinguishedName::parse("2.5.4.3=a").unwrap(),
        DistinguishedName::parse("CN=a").unwrap()
    );
    assert!(DistinguishedName::parse("1.2.99999999=x").is_ok());
    // the second arc under 0 or 1 is bounded by X.660: refused, not a panic
    let _ = DistinguishedName::parse("1.99.3=x");
}

#[test]
fn san_matching() {
    assert!(auth(TlsClientAuthMetadata::san_dns("tpp-a.example")).is_ok());
    assert!(auth(TlsClientAuthMetadata::san_dns("TPP-A.example")).is_ok());
    assert!(auth(TlsClientAuthMetadata::san_dns("tpp-b.example")).is_err());
    assert!(auth(TlsClientAuthMetadata::san_dns("example")).is_err());
    assert!(auth(TlsClientAuthMetadata::san_uri(
        "https://tpp-a.example/software/1"
    ))
    .is_ok());
    assert!(auth(TlsClientAuthMetadata::san_uri(
        "https://tpp-a.example/software/2"
    ))
    .is_err());
    assert!(auth(TlsClientAuthMetadata::san_ip("10.1.2.3")).is_ok());
    assert!(auth(TlsClientAuthMetadata::san_ip("10.1.2.4")).is_err());
    assert!(auth(TlsClientAuthMetadata::san_email("ops@tpp-a.example")).is_ok());
    assert!(auth(TlsClientAuthMetadata::san_email("ceo@tpp-a.example")).is_err());
}

#[test]
fn registration_without_a_matching_rule_rejected() {
    assert!(matches!(
        auth(TlsClientAuthMetadata::default()).unwrap_err(),
        ClientAuthError::Certificate(_)
    ));
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
        AuthenticatedClient::from_certificate(&jwt_client, &TlsClientAuth(&t)).unwrap_err(),
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
    let c = AuthenticatedClient::from_certificate(&client, &SelfSignedTlsClientAuth(&presented))
        .unwrap();
    assert_eq!(c.method(), AuthMethod::SelfSignedTlsClientAuth);
}

#[test]
fn self_signed_certificate_with_unregistered_key_rejected() {
    let presented = PresentedCertificate::from_verified_tls_peer(&pki().self_signed).unwrap();
    let other = default_provider()
        .generate_signing_key(fapi_core::crypto::Algorithm::Es256)
        .unwrap();
    let client = self_signed_client(other.public_key().clone());
    assert!(matches!(
        AuthenticatedClient::from_certificate(&client, &SelfSignedTlsClientAuth(&presented))
            .unwrap_err(),
        ClientAuthError::Certificate(_)
    ));
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    futures_executor::block_on(f)
}

fn store() -> TrustStore {
    TrustStore::new(TrustBundle::new(1, &[&pki().root], &[], &[]).unwrap())
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
        &client,
        &store(),
        &dir,
        now()
    ))
    .is_ok());
    // revoked in the directory: refused on the very next use
    dir.revoke_certificate(presented.certificate().thumbprint());
    assert!(matches!(
        block_on(authenticate_by_certificate(
            &presented,
            &client,
            &store(),
            &dir,
            now()
        ))
        .unwrap_err(),
        ClientAuthError::Certificate(_)
    ));
}

#[test]
fn revoked_tpp_refused_whatever_its_certificate() {
    let dir = InMemoryTppDirectory::new();
    let client = tls_client("tpp-a", TlsClientAuthMetadata::subject_dn(DN));
    let presented = PresentedCertificate::from_verified_tls_peer(&pki().tpp_a).unwrap();
    dir.revoke_client(client.client_id().clone());
    assert!(matches!(
        block_on(authenticate_by_certificate(
            &presented,
            &client,
            &store(),
            &dir,
            now()
        ))
        .unwrap_err(),
        ClientAuthError::Certificate(_)
    ));
}

#[test]
fn certificate_with_the_right_dn_from_another_ca_rejected() {
    let dir = InMemoryTppDirectory::new();
    let client = tls_client("tpp-a", TlsClientAuthMetadata::subject_dn(DN));
    let forged = PresentedCertificate::from_verified_tls_peer(&pki().other_ca_leaf).unwrap();
    assert!(matches!(
        block_on(authenticate_by_certificate(
            &forged,
            &client,
            &store(),
            &dir,
            now()
        ))
        .unwrap_err(),
        ClientAuthError::Certificate(_)
    ));
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
            &client_a,
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
    assert!(matches!(
        block_on(ensure_registered_certificate(
            &a,
            presented.certificate().thumbprint(),
            &dir
        ))
        .unwrap_err(),
        ClientAuthError::Certificate(_)
    ));
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
    assert!(matches!(
        block_on(ensure_registered_certificate(
            &a,
            presented.certificate().thumbprint(),
            &dir
        ))
        .unwrap_err(),
        ClientAuthError::Certificate(_)
    ));
}
