//! Chain validation, revocation and the versioned trust store, against a
//! PKI generated in code: scheme root -> issuing intermediate -> TPP leaves,
//! and a CRL from the intermediate.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::{Arc, Barrier, OnceLock};

use fapi_core::time::UnixTime;
use fapi_mtls_binding::trust::{TrustBundle, TrustError, TrustStore, TrustStoreError};
use fapi_mtls_binding::ClientCertificate;
use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SerialNumber,
};

struct Pki {
    root: Vec<u8>,
    other_root: Vec<u8>,
    intermediate: Vec<u8>,
    good: Vec<u8>,
    good_not_after: i64,
    expired: Vec<u8>,
    not_yet_valid: Vec<u8>,
    server_only: Vec<u8>,
    revoked: Vec<u8>,
    from_root: Vec<u8>,
    from_other_root: Vec<u8>,
    self_signed: Vec<u8>,
    crl: Vec<u8>,
    expired_crl: Vec<u8>,
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.distinguished_name.push(DnType::CommonName, cn);
    p.not_before = date_time_ymd(2025, 1, 1);
    p.not_after = date_time_ymd(2035, 1, 1);
    p
}

fn leaf_params(
    cn: &str,
    serial: u64,
    from: (i32, u8, u8),
    to: (i32, u8, u8),
    eku: ExtendedKeyUsagePurpose,
) -> CertificateParams {
    let mut p = CertificateParams::new(vec![format!("{cn}.example")]).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.serial_number = Some(SerialNumber::from(serial));
    p.not_before = date_time_ymd(from.0, from.1, from.2);
    p.not_after = date_time_ymd(to.0, to.1, to.2);
    p.extended_key_usages = vec![eku];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let root_key = KeyPair::generate().unwrap();
        let root_params = ca_params("Scheme Root CA");
        let root = root_params.self_signed(&root_key).unwrap();
        let root_issuer = Issuer::new(root_params, root_key);
        let int_key = KeyPair::generate().unwrap();
        let int_params = ca_params("Scheme Issuing CA");
        let intermediate = int_params.signed_by(&int_key, &root_issuer).unwrap();
        let int_issuer = Issuer::new(int_params, int_key);
        let other_key = KeyPair::generate().unwrap();
        let other_params = ca_params("Next Scheme Root CA");
        let other_root = other_params.self_signed(&other_key).unwrap();
        let other_issuer = Issuer::new(other_params, other_key);

        let client = ExtendedKeyUsagePurpose::ClientAuth;
        let sign = |p: CertificateParams, i: &Issuer<'_, KeyPair>| {
            p.signed_by(&KeyPair::generate().unwrap(), i)
                .unwrap()
                .der()
                .to_vec()
        };
        let good_params = leaf_params("tpp-a", 10, (2026, 1, 1), (2028, 1, 1), client.clone());
        let good_not_after = good_params.not_after.unix_timestamp();
        let good = sign(good_params, &int_issuer);
        let expired = sign(
            leaf_params("tpp-old", 11, (2020, 1, 1), (2021, 1, 1), client.clone()),
            &int_issuer,
        );
        let not_yet_valid = sign(
            leaf_params("tpp-new", 12, (2030, 1, 1), (2031, 1, 1), client.clone()),
            &int_issuer,
        );
        let server_only = sign(
            leaf_params(
                "tpp-srv",
                13,
                (2026, 1, 1),
                (2028, 1, 1),
                ExtendedKeyUsagePurpose::ServerAuth,
            ),
            &int_issuer,
        );
        let revoked = sign(
            leaf_params("tpp-rev", 14, (2026, 1, 1), (2028, 1, 1), client.clone()),
            &int_issuer,
        );
        let from_root = sign(
            leaf_params("tpp-root", 15, (2026, 1, 1), (2028, 1, 1), client.clone()),
            &root_issuer,
        );
        let from_other_root = sign(
            leaf_params("tpp-b", 16, (2026, 1, 1), (2028, 1, 1), client.clone()),
            &other_issuer,
        );
        let self_signed = leaf_params("tpp-a", 10, (2026, 1, 1), (2028, 1, 1), client)
            .self_signed(&KeyPair::generate().unwrap())
            .unwrap()
            .der()
            .to_vec();

        let crl = |next: (i32, u8, u8)| {
            CertificateRevocationListParams {
                this_update: date_time_ymd(2026, 6, 1),
                next_update: date_time_ymd(next.0, next.1, next.2),
                crl_number: SerialNumber::from(1u64),
                issuing_distribution_point: None,
                revoked_certs: vec![RevokedCertParams {
                    serial_number: SerialNumber::from(14u64),
                    revocation_time: date_time_ymd(2026, 6, 1),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                }],
                key_identifier_method: KeyIdMethod::Sha256,
            }
            .signed_by(&int_issuer)
            .unwrap()
            .der()
            .to_vec()
        };
        Pki {
            root: root.der().to_vec(),
            other_root: other_root.der().to_vec(),
            intermediate: intermediate.der().to_vec(),
            good,
            good_not_after,
            expired,
            not_yet_valid,
            server_only,
            revoked,
            from_root,
            from_other_root,
            self_signed,
            crl: crl((2027, 6, 1)),
            expired_crl: crl((2026, 12, 1)),
        }
    })
}

/// 2027-01-01T00:00:00Z
fn now() -> UnixTime {
    UnixTime::from_secs(date_time_ymd(2027, 1, 1).unix_timestamp()).unwrap()
}

fn cert(der: &[u8]) -> ClientCertificate {
    ClientCertificate::from_der(der).unwrap()
}

fn bundle(version: u64, crls: &[&[u8]]) -> TrustBundle {
    let p = pki();
    TrustBundle::new(version, &[&p.root], &[&p.intermediate], crls).unwrap()
}

fn check(der: &[u8], b: &TrustBundle) -> Result<(), TrustError> {
    b.verify(&cert(der), &[], now()).map(|_| ())
}

#[test]
fn happy_leaf_chains_through_intermediate_with_crl() {
    let t = bundle(1, &[&pki().crl])
        .verify(&cert(&pki().good), &[], now())
        .unwrap();
    assert_eq!(t.bundle_version(), 1);
}

#[test]
fn intermediate_presented_by_the_client_is_used() {
    let p = pki();
    let without = TrustBundle::new(1, &[&p.root], &[], &[]).unwrap();
    assert_eq!(
        check(&p.good, &without).unwrap_err(),
        TrustError::UnknownIssuer
    );
    assert!(without
        .verify(&cert(&p.good), &[&p.intermediate], now())
        .is_ok());
}

#[test]
fn certificate_from_an_untrusted_ca_rejected() {
    assert_eq!(
        check(&pki().from_other_root, &bundle(1, &[])).unwrap_err(),
        TrustError::UnknownIssuer
    );
    assert_eq!(
        check(&pki().self_signed, &bundle(1, &[])).unwrap_err(),
        TrustError::UnknownIssuer
    );
}

#[test]
fn expired_certificate_rejected_at_the_edge() {
    let p = pki();
    let b = bundle(1, &[]);
    assert_eq!(check(&p.expired, &b).unwrap_err(), TrustError::Expired);
    let at = |secs| {
        b.verify(&cert(&p.good), &[], UnixTime::from_secs(secs).unwrap())
            .map(|_| ())
    };
    assert!(at(p.good_not_after).is_ok());
    assert_eq!(at(p.good_not_after + 1).unwrap_err(), TrustError::Expired);
}

#[test]
fn not_yet_valid_certificate_rejected() {
    assert_eq!(
        check(&pki().not_yet_valid, &bundle(1, &[])).unwrap_err(),
        TrustError::NotYetValid
    );
}

#[test]
fn certificate_without_client_auth_eku_rejected() {
    assert_eq!(
        check(&pki().server_only, &bundle(1, &[])).unwrap_err(),
        TrustError::WrongKeyUsage
    );
}

#[test]
fn revoked_certificate_rejected() {
    let b = bundle(1, &[&pki().crl]);
    assert_eq!(check(&pki().revoked, &b).unwrap_err(), TrustError::Revoked);
    assert!(check(&pki().good, &b).is_ok());
    // without the CRL the chain alone does not know
    assert!(check(&pki().revoked, &bundle(1, &[])).is_ok());
}

#[test]
fn certificate_not_covered_by_any_crl_rejected_when_crls_are_configured() {
    // issued by the root, whose CRL the bundle does not have: fail closed
    assert_eq!(
        check(&pki().from_root, &bundle(1, &[&pki().crl])).unwrap_err(),
        TrustError::UnknownRevocationStatus
    );
    assert!(check(&pki().from_root, &bundle(1, &[])).is_ok());
}

#[test]
fn expired_crl_rejected() {
    assert_eq!(
        check(&pki().good, &bundle(1, &[&pki().expired_crl])).unwrap_err(),
        TrustError::CrlExpired
    );
}

#[test]
fn malformed_bundle_rejected() {
    let p = pki();
    assert_eq!(
        TrustBundle::new(1, &[], &[], &[]).unwrap_err(),
        TrustError::NoTrustAnchor
    );
    assert_eq!(
        TrustBundle::new(1, &[b"junk"], &[], &[]).unwrap_err(),
        TrustError::MalformedBundle("trust anchor")
    );
    assert_eq!(
        TrustBundle::new(1, &[&p.root], &[], &[b"junk"]).unwrap_err(),
        TrustError::MalformedBundle("certificate revocation list")
    );
}

fn known_good() -> Vec<ClientCertificate> {
    vec![cert(&pki().good)]
}

#[test]
fn activation_refused_when_a_known_good_certificate_fails() {
    let p = pki();
    let store = TrustStore::new(bundle(1, &[]));
    // the next bundle forgets the current root: every TPP would be locked out
    let broken = TrustBundle::new(2, &[&p.other_root], &[], &[]).unwrap();
    let e = store.activate(broken, &known_good(), now()).unwrap_err();
    assert!(matches!(
        e,
        TrustStoreError::SyntheticHandshakeFailed {
            version: 2,
            checked: 1,
            failed: 1,
            first: TrustError::UnknownIssuer
        }
    ));
    assert_eq!(store.current().version(), 1);
    // the twin: both roots during the migration
    let both = TrustBundle::new(2, &[&p.root, &p.other_root], &[&p.intermediate], &[]).unwrap();
    assert_eq!(store.activate(both, &known_good(), now()).unwrap(), 2);
    assert!(check(&p.from_other_root, &store.current()).is_ok());
}

#[test]
fn rollback_restores_the_previous_bundle() {
    let p = pki();
    let store = TrustStore::new(bundle(1, &[]));
    assert_eq!(
        store.rollback().unwrap_err(),
        TrustStoreError::NothingToRollBack
    );
    let both = TrustBundle::new(2, &[&p.root, &p.other_root], &[&p.intermediate], &[]).unwrap();
    store.activate(both, &known_good(), now()).unwrap();
    assert_eq!(store.rollback().unwrap(), 1);
    assert_eq!(store.current().version(), 1);
    assert_eq!(
        check(&p.from_other_root, &store.current()).unwrap_err(),
        TrustError::UnknownIssuer
    );
    // and forward again
    assert_eq!(store.rollback().unwrap(), 2);
}

#[test]
fn stale_version_refused() {
    let store = TrustStore::new(bundle(5, &[]));
    assert_eq!(
        store
            .activate(bundle(5, &[]), &known_good(), now())
            .unwrap_err(),
        TrustStoreError::StaleVersion {
            candidate: 5,
            active: 5
        }
    );
    assert_eq!(
        store
            .activate(bundle(6, &[]), &known_good(), now())
            .unwrap(),
        6
    );
}

/// Readers on 8 threads validate against snapshots while a writer rotates
/// and rolls back: every reader sees exactly one version, never a mix.
#[test]
fn swaps_are_atomic_for_concurrent_readers() {
    let p = pki();
    let store = Arc::new(TrustStore::new(bundle(1, &[])));
    let b_cert = Arc::new(cert(&p.from_other_root));
    let start = Arc::new(Barrier::new(9));
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let (store, b_cert, start) = (store.clone(), b_cert.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let mut seen = [0usize; 2];
                for _ in 0..1000 {
                    let snapshot = store.current();
                    let accepted = snapshot.verify(&b_cert, &[], now()).is_ok();
                    // version 1 trusts only the old root; every later one trusts both
                    assert_eq!(
                        accepted,
                        snapshot.version() != 1,
                        "version {}",
                        snapshot.version()
                    );
                    seen[usize::from(accepted)] += 1;
                }
                seen
            })
        })
        .collect();
    start.wait();
    for v in 2..40u64 {
        let both = TrustBundle::new(v, &[&p.root, &p.other_root], &[&p.intermediate], &[]).unwrap();
        store.activate(both, &known_good(), now()).unwrap();
        store.rollback().unwrap();
    }
    let total: usize = readers
        .into_iter()
        .map(|r| r.join().unwrap().iter().sum::<usize>())
        .sum();
    assert_eq!(total, 8 * 1000);
}
