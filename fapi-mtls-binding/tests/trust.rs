//! Chain validation, revocation and the versioned trust store, against a
//! PKI generated in code: scheme root -> issuing intermediate -> TPP leaves,
//! and CRLs from both. Each FAPI-RULES "mTLS" chain rule has its negative
//! test beside a happy twin.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::sync::{Arc, Barrier, OnceLock};

use common::{at, now, Ca};
use fapi_core::UnixTime;
use fapi_mtls_binding::trust::{
    danger, ChainPolicy, ChainPosition, RevocationPolicy, TrustBundle, TrustError, TrustStore,
    TrustStoreError,
};
use fapi_mtls_binding::ClientCertificate;
use rcgen::{date_time_ymd, ExtendedKeyUsagePurpose, KeyPair};

struct Pki {
    root: Ca,
    other_root: Ca,
    intermediate: Ca,
    good: Vec<u8>,
    good_not_after: i64,
    expired: Vec<u8>,
    not_yet_valid: Vec<u8>,
    server_only: Vec<u8>,
    no_eku: Vec<u8>,
    revoked: Vec<u8>,
    from_root: Vec<u8>,
    from_other_root: Vec<u8>,
    self_signed: Vec<u8>,
    /// The intermediate's CRL (revokes serial 14), current until 2027-06-01.
    crl: Vec<u8>,
    /// The root's CRL (covers the intermediate and leaves from the root).
    root_crl: Vec<u8>,
    other_root_crl: Vec<u8>,
    expired_crl: Vec<u8>,
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let root = common::root("Scheme Root CA");
        let intermediate =
            common::intermediate("Scheme Issuing CA", &root, (2025, 1, 1), (2035, 1, 1));
        let other_root = common::root("Next Scheme Root CA");
        let issue = |p: rcgen::CertificateParams, ca: &Ca| {
            p.signed_by(&KeyPair::generate().unwrap(), &ca.issuer)
                .unwrap()
                .der()
                .to_vec()
        };
        let dated = |cn: &str, serial, from: (i32, u8, u8), to: (i32, u8, u8)| {
            let mut p = common::leaf_params(cn, serial);
            p.not_before = date_time_ymd(from.0, from.1, from.2);
            p.not_after = date_time_ymd(to.0, to.1, to.2);
            p
        };
        let good_params = common::leaf_params("tpp-a", 10);
        let good_not_after = good_params.not_after.unix_timestamp();
        let mut server = common::leaf_params("tpp-srv", 13);
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let mut no_eku = common::leaf_params("tpp-plain", 17);
        no_eku.extended_key_usages = vec![];
        Pki {
            good: issue(good_params, &intermediate),
            good_not_after,
            expired: issue(
                dated("tpp-old", 11, (2020, 1, 1), (2021, 1, 1)),
                &intermediate,
            ),
            not_yet_valid: issue(
                dated("tpp-new", 12, (2030, 1, 1), (2031, 1, 1)),
                &intermediate,
            ),
            server_only: issue(server, &intermediate),
            no_eku: issue(no_eku, &intermediate),
            revoked: issue(common::leaf_params("tpp-rev", 14), &intermediate),
            from_root: issue(common::leaf_params("tpp-root", 15), &root),
            from_other_root: issue(common::leaf_params("tpp-b", 16), &other_root),
            self_signed: common::leaf_params("tpp-a", 10)
                .self_signed(&KeyPair::generate().unwrap())
                .unwrap()
                .der()
                .to_vec(),
            crl: common::crl(&intermediate, (2027, 6, 1), &[14]),
            root_crl: common::crl(&root, (2027, 6, 1), &[]),
            other_root_crl: common::crl(&other_root, (2027, 6, 1), &[]),
            expired_crl: common::crl(&intermediate, (2026, 12, 1), &[14]),
            root,
            other_root,
            intermediate,
        }
    })
}

fn cert(der: &[u8]) -> ClientCertificate {
    ClientCertificate::from_der(der).unwrap()
}

/// The scheme bundle of `version`: root anchor, issuing intermediate, the
/// intermediate's CRL, default policies.
fn bundle(version: u64) -> TrustBundle {
    let p = pki();
    TrustBundle::builder(version)
        .anchors(&[&p.root.der])
        .intermediates(&[&p.intermediate.der])
        .crls(&[&p.crl, &p.root_crl])
        .build(now())
        .unwrap()
}

/// Both roots (a CA migration), with every CRL.
fn both_roots(version: u64) -> TrustBundle {
    let p = pki();
    TrustBundle::builder(version)
        .anchors(&[&p.root.der, &p.other_root.der])
        .intermediates(&[&p.intermediate.der])
        .crls(&[&p.crl, &p.root_crl, &p.other_root_crl])
        .build(now())
        .unwrap()
}

fn check(der: &[u8], b: &TrustBundle) -> Result<(), TrustError> {
    b.verify(&cert(der), &[], now()).map(|_| ())
}

#[test]
fn happy_leaf_chains_through_intermediate_with_crl() {
    let t = bundle(1).verify(&cert(&pki().good), &[], now()).unwrap();
    assert_eq!(t.bundle_version(), 1);
    assert!(bundle(1).revocation().is_checked());
}

#[test]
fn intermediate_presented_by_the_client_is_used() {
    let p = pki();
    let without = TrustBundle::builder(1)
        .anchors(&[&p.root.der])
        .crls(&[&p.crl])
        .build(now())
        .unwrap();
    assert_eq!(
        check(&p.good, &without).unwrap_err(),
        TrustError::UnknownIssuer
    );
    assert!(without
        .verify(&cert(&p.good), &[&p.intermediate.der], now())
        .is_ok());
}

#[test]
fn certificate_from_an_untrusted_ca_rejected() {
    assert_eq!(
        check(&pki().from_other_root, &bundle(1)).unwrap_err(),
        TrustError::UnknownIssuer
    );
}

#[test]
fn self_signed_leaf_has_its_own_error() {
    let e = check(&pki().self_signed, &bundle(1)).unwrap_err();
    assert_eq!(e, TrustError::SelfSigned);
    assert!(e.to_string().contains("self-signed"), "{e}");
    // the twin: a leaf of an unknown CA is not called self-signed
    assert_eq!(
        check(&pki().from_other_root, &bundle(1)).unwrap_err(),
        TrustError::UnknownIssuer
    );
}

#[test]
fn expired_certificate_rejected_at_the_edge() {
    let p = pki();
    let b = bundle(1);
    assert_eq!(check(&p.expired, &b).unwrap_err(), TrustError::Expired);
    let at = |secs| {
        b.verify(&cert(&p.good), &[], UnixTime::from_secs(secs).unwrap())
            .map(|_| ())
    };
    // (the CRL is current until 2027-06-01; check the leaf's edge without it)
    let unchecked = TrustBundle::builder(1)
        .anchors(&[&p.root.der])
        .intermediates(&[&p.intermediate.der])
        .revocation(danger::revocation_not_checked())
        .build(now())
        .unwrap();
    let at_unchecked = |secs| {
        unchecked
            .verify(&cert(&p.good), &[], UnixTime::from_secs(secs).unwrap())
            .map(|_| ())
    };
    assert!(at(now().as_secs()).is_ok());
    assert!(at_unchecked(p.good_not_after).is_ok());
    assert_eq!(
        at_unchecked(p.good_not_after + 1).unwrap_err(),
        TrustError::Expired
    );
}

#[test]
fn not_yet_valid_certificate_rejected() {
    assert_eq!(
        check(&pki().not_yet_valid, &bundle(1)).unwrap_err(),
        TrustError::NotYetValid
    );
}

#[test]
fn certificate_without_client_auth_eku_rejected() {
    assert_eq!(
        check(&pki().server_only, &bundle(1)).unwrap_err(),
        TrustError::WrongKeyUsage
    );
}

/// rustls-webpki's `KeyUsage::client_auth()` accepts a leaf without an EKU
/// extension; the scheme requires clientAuth to be present.
#[test]
fn client_auth_eku_is_required_to_be_present() {
    let p = pki();
    assert_eq!(
        check(&p.no_eku, &bundle(1)).unwrap_err(),
        TrustError::WrongKeyUsage
    );
    assert!(bundle(1).policy().requires_client_auth_eku());
    // only the danger module relaxes it, and a wrong EKU stays refused
    let relaxed = TrustBundle::builder(1)
        .anchors(&[&p.root.der])
        .intermediates(&[&p.intermediate.der])
        .crls(&[&p.crl])
        .policy(danger::without_required_client_auth_eku(
            ChainPolicy::default(),
        ))
        .build(now())
        .unwrap();
    assert!(check(&p.no_eku, &relaxed).is_ok());
    assert_eq!(
        check(&p.server_only, &relaxed).unwrap_err(),
        TrustError::WrongKeyUsage
    );
}

fn leaf_with(key: &impl rcgen::PublicKeyData) -> Vec<u8> {
    common::leaf_with_key("tpp-k", 20, key, &pki().intermediate)
}

/// rustls-webpki checks a key's size only when it verifies a signature
/// with it, so a weak leaf key passed.
#[test]
fn weak_leaf_keys_refused() {
    let b = bundle(1);
    let weak = |reason_part: &str, der: &[u8]| match check(der, &b).unwrap_err() {
        TrustError::WeakKey {
            position: ChainPosition::EndEntity,
            reason,
        } => assert!(reason.contains(reason_part), "{reason}"),
        e => panic!("{e:?}"),
    };
    weak("RSA modulus", &leaf_with(&common::rsa_key(1024)));
    weak("RSA modulus", &leaf_with(&common::rsa_key(2040)));
    weak(
        "P-256 or P-384",
        &leaf_with(&common::FakeKey {
            bits: vec![4; 133],
            alg: &rcgen::PKCS_ECDSA_P521_SHA512,
        }),
    );
    let ed25519 = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    weak("Ed25519", &leaf_with(&ed25519));
    // the happy twins: RSA 2048, P-256, P-384; Ed25519 when the policy allows
    assert!(check(&leaf_with(&common::rsa_key(2048)), &b).is_ok());
    assert!(check(&pki().good, &b).is_ok());
    let p384 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    assert!(check(&leaf_with(&p384), &b).is_ok());
    let p = pki();
    let with_ed = TrustBundle::builder(1)
        .anchors(&[&p.root.der])
        .intermediates(&[&p.intermediate.der])
        .crls(&[&p.crl])
        .policy(ChainPolicy::default().allow_ed25519())
        .build(now())
        .unwrap();
    assert!(check(&leaf_with(&ed25519), &with_ed).is_ok());
}

#[test]
fn the_rsa_minimum_can_be_raised_never_lowered() {
    let p = pki();
    let with = |policy: ChainPolicy| {
        TrustBundle::builder(1)
            .anchors(&[&p.root.der])
            .intermediates(&[&p.intermediate.der])
            .crls(&[&p.crl])
            .policy(policy)
            .build(now())
            .unwrap()
    };
    let rsa2048 = leaf_with(&common::rsa_key(2048));
    let strict = with(ChainPolicy::default().require_rsa_bits(3072));
    assert!(matches!(
        check(&rsa2048, &strict).unwrap_err(),
        TrustError::WeakKey { .. }
    ));
    assert!(check(&leaf_with(&common::rsa_key(3072)), &strict).is_ok());
    let lowered = ChainPolicy::default().require_rsa_bits(1024);
    assert_eq!(lowered.min_rsa_bits(), 2048);
    assert!(check(&leaf_with(&common::rsa_key(1024)), &with(lowered)).is_err());
}

/// A CA that issues with an RSA-1024 key: refused in a bundle at load, and
/// when a client presents it.
#[test]
fn weak_intermediate_and_anchor_keys_refused() {
    let p = pki();
    let weak_ca = common::leaf_params("Weak Issuing CA", 30);
    let mut weak_ca = weak_ca;
    weak_ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    weak_ca.extended_key_usages = vec![];
    weak_ca.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
    let weak_ca = weak_ca
        .signed_by(&common::rsa_key(1024), &p.root.issuer)
        .unwrap()
        .der()
        .to_vec();
    assert_eq!(
        TrustBundle::builder(1)
            .anchors(&[&p.root.der])
            .intermediates(&[&weak_ca])
            .crls(&[&p.crl])
            .build(now())
            .unwrap_err(),
        TrustError::WeakKey {
            position: ChainPosition::Intermediate,
            reason: "its RSA modulus is smaller than the policy's minimum"
        }
    );
    assert!(matches!(
        bundle(1)
            .verify(&cert(&p.good), &[&weak_ca], now())
            .unwrap_err(),
        TrustError::WeakKey {
            position: ChainPosition::Intermediate,
            ..
        }
    ));
    assert!(matches!(
        TrustBundle::builder(1)
            .anchors(&[&weak_ca])
            .crls(&[&p.crl])
            .build(now())
            .unwrap_err(),
        TrustError::WeakKey {
            position: ChainPosition::TrustAnchor,
            ..
        }
    ));
    // the twin: the strong intermediate, presented, is accepted
    assert!(bundle(1)
        .verify(&cert(&p.good), &[&p.intermediate.der], now())
        .is_ok());
}

#[test]
fn sha1_signatures_have_their_own_error() {
    let p = pki();
    for oid in [common::SHA1_WITH_RSA, common::ECDSA_WITH_SHA1] {
        let leaf = common::with_signature_oid(&p.good, oid);
        assert_eq!(
            check(&leaf, &bundle(1)).unwrap_err(),
            TrustError::WeakSignatureAlgorithm {
                position: ChainPosition::EndEntity
            }
        );
        let int = common::with_signature_oid(&p.intermediate.der, oid);
        assert_eq!(
            bundle(1)
                .verify(&cert(&p.good), &[&int], now())
                .unwrap_err(),
            TrustError::WeakSignatureAlgorithm {
                position: ChainPosition::Intermediate
            }
        );
        let anchor = common::with_signature_oid(&p.root.der, oid);
        assert_eq!(
            TrustBundle::builder(1)
                .anchors(&[&anchor])
                .crls(&[&p.crl])
                .build(now())
                .unwrap_err(),
            TrustError::WeakSignatureAlgorithm {
                position: ChainPosition::TrustAnchor
            }
        );
    }
    assert!(check(&p.good, &bundle(1)).is_ok());
}

#[test]
fn revoked_certificate_rejected() {
    let b = bundle(1);
    assert_eq!(check(&pki().revoked, &b).unwrap_err(), TrustError::Revoked);
    assert!(check(&pki().good, &b).is_ok());
}

/// An empty CRL list turned revocation checking off; now a bundle whose
/// policy checks cannot be built without one, and not checking is a
/// visible, explicit choice.
#[test]
fn revocation_never_fails_open_by_accident() {
    let p = pki();
    let no_crl = || {
        TrustBundle::builder(1)
            .anchors(&[&p.root.der])
            .intermediates(&[&p.intermediate.der])
    };
    assert_eq!(
        no_crl().build(now()).unwrap_err(),
        TrustError::NoRevocationList
    );
    assert_eq!(
        no_crl()
            .revocation(RevocationPolicy::full_chain())
            .build(now())
            .unwrap_err(),
        TrustError::NoRevocationList
    );
    let unchecked = no_crl()
        .revocation(danger::revocation_not_checked())
        .build(now())
        .unwrap();
    assert!(!unchecked.revocation().is_checked());
    // what the operator chose: the chain alone does not know
    assert!(check(&p.revoked, &unchecked).is_ok());
}

#[test]
fn certificate_not_covered_by_any_crl_is_crl_unavailable() {
    let p = pki();
    // issued by the root, whose CRL this bundle does not have: fail closed
    let only_intermediate = TrustBundle::builder(1)
        .anchors(&[&p.root.der])
        .intermediates(&[&p.intermediate.der])
        .crls(&[&p.crl])
        .build(now())
        .unwrap();
    assert_eq!(
        check(&p.from_root, &only_intermediate).unwrap_err(),
        TrustError::CrlUnavailable
    );
    assert!(check(&p.from_root, &bundle(1)).is_ok());
}

#[test]
fn full_chain_revocation_needs_a_crl_for_every_ca_below_the_anchor() {
    let p = pki();
    let full = |crls: &[&[u8]]| {
        TrustBundle::builder(1)
            .anchors(&[&p.root.der])
            .intermediates(&[&p.intermediate.der])
            .crls(crls)
            .revocation(RevocationPolicy::full_chain())
            .build(now())
            .unwrap()
    };
    // the intermediate is not covered by a CRL of the root
    assert_eq!(
        check(&p.good, &full(&[&p.crl])).unwrap_err(),
        TrustError::CrlUnavailable
    );
    assert!(check(&p.good, &full(&[&p.crl, &p.root_crl])).is_ok());
}

#[test]
fn expired_crl_rejected_at_load_and_at_verification() {
    let p = pki();
    assert_eq!(
        TrustBundle::builder(1)
            .anchors(&[&p.root.der])
            .intermediates(&[&p.intermediate.der])
            .crls(&[&p.expired_crl])
            .build(now())
            .unwrap_err(),
        TrustError::CrlExpired
    );
    // current when the bundle was built, stale when the client calls
    let b = bundle(1);
    // the soonest nextUpdate of its CRLs, for an operator's alert
    assert_eq!(b.crl_next_update(), Some(at(2027, 6, 1)));
    assert_eq!(
        b.verify(&cert(&p.good), &[], at(2027, 6, 2)).unwrap_err(),
        TrustError::CrlExpired
    );
    assert!(b.verify(&cert(&p.good), &[], at(2027, 5, 31)).is_ok());
}

#[test]
fn crl_with_a_bad_signature_has_its_own_error() {
    let p = pki();
    // a CA with the intermediate's name but another key signs a CRL that
    // claims to be the intermediate's
    let impostor = common::intermediate("Scheme Issuing CA", &p.root, (2025, 1, 1), (2035, 1, 1));
    let forged_crl = common::crl(&impostor, (2027, 6, 1), &[]);
    let b = TrustBundle::builder(1)
        .anchors(&[&p.root.der])
        .intermediates(&[&p.intermediate.der])
        .crls(&[&forged_crl])
        .build(now())
        .unwrap();
    assert_eq!(
        check(&p.good, &b).unwrap_err(),
        TrustError::CrlSignatureInvalid
    );
    assert!(check(&p.good, &bundle(1)).is_ok());
}

/// webpki never checks a trust anchor's validity: an issuing CA configured
/// as an anchor kept vouching for leaves after it expired.
#[test]
fn anchors_outside_their_validity_refused_at_load_and_at_verification() {
    let p = pki();
    let expired_root = common::root_valid("Old Root", (2015, 1, 1), (2025, 1, 1));
    let future_root = common::root_valid("New Root", (2030, 1, 1), (2040, 1, 1));
    let build = |anchor: &[u8]| {
        TrustBundle::builder(1)
            .anchors(&[anchor])
            .crls(&[&p.crl])
            .build(now())
    };
    assert_eq!(
        build(&expired_root.der).unwrap_err(),
        TrustError::AnchorExpired
    );
    assert_eq!(
        build(&future_root.der).unwrap_err(),
        TrustError::AnchorNotYetValid
    );
    // an issuing CA as an anchor, valid until 2027-06-01
    let issuing = common::intermediate("Short Issuing CA", &p.root, (2025, 1, 1), (2027, 6, 1));
    let leaf = common::leaf("tpp-s", 40, &issuing);
    let issuing_crl = common::crl(&issuing, (2028, 1, 1), &[]);
    let b = TrustBundle::builder(1)
        .anchors(&[&issuing.der])
        .crls(&[&issuing_crl])
        .build(now())
        .unwrap();
    assert!(b.verify(&cert(&leaf), &[], at(2027, 5, 1)).is_ok());
    assert_eq!(
        b.verify(&cert(&leaf), &[], at(2027, 7, 1)).unwrap_err(),
        TrustError::AnchorExpired
    );
}

#[test]
fn too_many_presented_intermediates_refused() {
    let p = pki();
    let nine: Vec<&[u8]> = (0..9).map(|_| p.intermediate.der.as_slice()).collect();
    assert_eq!(
        bundle(1).verify(&cert(&p.good), &nine, now()).unwrap_err(),
        TrustError::TooManyIntermediates { max: 8 }
    );
    assert!(bundle(1).verify(&cert(&p.good), &nine[..8], now()).is_ok());
}

#[test]
fn malformed_bundle_rejected() {
    let p = pki();
    assert_eq!(
        TrustBundle::builder(1).build(now()).unwrap_err(),
        TrustError::NoTrustAnchor
    );
    assert_eq!(
        TrustBundle::builder(1)
            .anchors(&[b"junk"])
            .crls(&[&p.crl])
            .build(now())
            .unwrap_err(),
        TrustError::MalformedBundle("trust anchor")
    );
    assert_eq!(
        TrustBundle::builder(1)
            .anchors(&[&p.root.der])
            .crls(&[b"junk"])
            .build(now())
            .unwrap_err(),
        TrustError::MalformedBundle("certificate revocation list")
    );
}

fn known_good() -> Vec<ClientCertificate> {
    vec![cert(&pki().good)]
}

#[test]
fn activation_refused_when_a_known_good_certificate_fails() {
    let p = pki();
    let store = TrustStore::new(bundle(1));
    // the next bundle forgets the current root: every TPP would be locked out
    let broken = TrustBundle::builder(2)
        .anchors(&[&p.other_root.der])
        .crls(&[&p.other_root_crl])
        .build(now())
        .unwrap();
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
    assert_eq!(
        store.activate(both_roots(2), &known_good(), now()).unwrap(),
        2
    );
    assert!(check(&p.from_other_root, &store.current()).is_ok());
}

#[test]
fn rollback_restores_the_previous_bundle() {
    let p = pki();
    let store = TrustStore::new(bundle(1));
    assert_eq!(
        store.rollback().unwrap_err(),
        TrustStoreError::NothingToRollBack
    );
    store.activate(both_roots(2), &known_good(), now()).unwrap();
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
    let store = TrustStore::new(bundle(5));
    assert_eq!(
        store.activate(bundle(5), &known_good(), now()).unwrap_err(),
        TrustStoreError::StaleVersion {
            candidate: 5,
            active: 5
        }
    );
    assert_eq!(store.activate(bundle(6), &known_good(), now()).unwrap(), 6);
}

/// Readers on 8 threads validate against snapshots while a writer rotates
/// and rolls back: every reader sees exactly one version, never a mix.
#[test]
fn swaps_are_atomic_for_concurrent_readers() {
    let p = pki();
    let store = Arc::new(TrustStore::new(bundle(1)));
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
        store.activate(both_roots(v), &known_good(), now()).unwrap();
        store.rollback().unwrap();
    }
    let total: usize = readers
        .into_iter()
        .map(|r| r.join().unwrap().iter().sum::<usize>())
        .sum();
    assert_eq!(total, 8 * 1000);
}
