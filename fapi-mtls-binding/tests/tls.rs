//! The rustls TLS policy (feature `rustls`): the handshake's client
//! certificate check is the trust store's, and the provider keeps only the
//! FAPI suites. Each refusal beside its accepted twin.
#![cfg(feature = "rustls")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::sync::{Arc, Mutex};

use common::{crl, leaf, now, root};
use fapi_mtls_binding::tls::{restrict_to_fapi, TrustStoreClientVerifier, FAPI_TLS12_SUITES};
use fapi_mtls_binding::trust::{TrustBundle, TrustError, TrustStore};
use rustls::server::danger::ClientCertVerifier;
use rustls::{CertificateError, SupportedCipherSuite};
use rustls_pki_types::{CertificateDer, UnixTime};

fn handshake_time() -> UnixTime {
    UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        u64::try_from(now().as_secs()).unwrap(),
    ))
}

fn provider() -> rustls::crypto::CryptoProvider {
    restrict_to_fapi(rustls::crypto::aws_lc_rs::default_provider())
}

#[test]
fn the_handshake_verifies_the_client_certificate_with_the_trust_store() {
    let ca = root("Scheme CA");
    let revoked_serial = 2;
    let bundle = TrustBundle::builder(1)
        .anchors(&[&ca.der])
        .crls(&[&crl(&ca, (2028, 1, 1), &[revoked_serial])])
        .build(now())
        .unwrap();
    let refused = Arc::new(Mutex::new(Vec::new()));
    let seen = refused.clone();
    let verifier = TrustStoreClientVerifier::new(
        Arc::new(TrustStore::new(bundle)),
        provider().signature_verification_algorithms,
    )
    .on_refusal(Arc::new(move |e: &TrustError| {
        seen.lock().unwrap().push(e.clone())
    }));
    assert!(verifier.client_auth_mandatory());
    let check = |der: &[u8]| {
        verifier.verify_client_cert(&CertificateDer::from(der.to_vec()), &[], handshake_time())
    };

    // a TPP certificate of the scheme: accepted
    assert!(check(&leaf("tpp-a", 1, &ca)).is_ok());
    // revoked by the scheme's CRL
    assert_eq!(
        check(&leaf("tpp-b", revoked_serial, &ca)).unwrap_err(),
        rustls::Error::InvalidCertificate(CertificateError::Revoked)
    );
    // issued by another CA
    let other = root("Look-alike CA");
    assert_eq!(
        check(&leaf("tpp-a", 1, &other)).unwrap_err(),
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
    );
    // not a certificate
    assert_eq!(
        check(b"not DER").unwrap_err(),
        rustls::Error::InvalidCertificate(CertificateError::BadEncoding)
    );
    // the two trust-store refusals reached the hook (the bad encoding
    // never got to the trust store)
    assert_eq!(
        *refused.lock().unwrap(),
        vec![TrustError::Revoked, TrustError::UnknownIssuer]
    );
}

#[test]
fn the_provider_keeps_tls13_and_only_the_fapi_tls12_suites() {
    let all = rustls::crypto::aws_lc_rs::default_provider();
    let kept = provider();
    // the default provider offers a TLS 1.2 suite FAPI does not allow
    assert!(all
        .cipher_suites
        .iter()
        .any(|s| matches!(s, SupportedCipherSuite::Tls12(_))
            && !FAPI_TLS12_SUITES.contains(&s.suite())));
    for s in &kept.cipher_suites {
        if let SupportedCipherSuite::Tls12(_) = s {
            assert!(FAPI_TLS12_SUITES.contains(&s.suite()), "{:?}", s.suite());
        }
    }
    // every TLS 1.3 suite and every allowed TLS 1.2 suite is kept
    let tls13 = |p: &rustls::crypto::CryptoProvider| {
        p.cipher_suites
            .iter()
            .filter(|s| matches!(s, SupportedCipherSuite::Tls13(_)))
            .count()
    };
    assert_eq!(tls13(&kept), tls13(&all));
    for suite in FAPI_TLS12_SUITES {
        assert!(
            kept.cipher_suites.iter().any(|s| s.suite() == suite),
            "{suite:?}"
        );
    }
}

/// `self_signed_tls_client_auth` (RFC 8705 §2.2): only a verifier told so
/// accepts a self-signed certificate sent alone; it still refuses a
/// certificate of another CA, a self-signed one with intermediates and an
/// expired one.
#[test]
fn a_self_signed_certificate_passes_the_handshake_only_when_allowed() {
    let ca = root("Scheme CA");
    let bundle = TrustBundle::builder(1)
        .anchors(&[&ca.der])
        .crls(&[&crl(&ca, (2028, 1, 1), &[])])
        .build(now())
        .unwrap();
    let trust = Arc::new(TrustStore::new(bundle));
    let strict =
        TrustStoreClientVerifier::new(trust.clone(), provider().signature_verification_algorithms);
    let allowing =
        TrustStoreClientVerifier::new(trust, provider().signature_verification_algorithms)
            .allow_self_signed();
    let key = rcgen::KeyPair::generate().unwrap();
    let self_signed = common::leaf_params("tpp-c", 7)
        .self_signed(&key)
        .unwrap()
        .der()
        .to_vec();
    let der = |d: &[u8]| CertificateDer::from(d.to_vec());

    assert!(allowing
        .verify_client_cert(&der(&self_signed), &[], handshake_time())
        .is_ok());
    assert!(strict
        .verify_client_cert(&der(&self_signed), &[], handshake_time())
        .is_err());
    // a scheme certificate passes both
    let scheme = leaf("tpp-a", 1, &ca);
    assert!(strict
        .verify_client_cert(&der(&scheme), &[], handshake_time())
        .is_ok());
    assert!(allowing
        .verify_client_cert(&der(&scheme), &[], handshake_time())
        .is_ok());
    // issued by another CA: not self-signed, refused
    let other = root("Look-alike CA");
    assert_eq!(
        allowing
            .verify_client_cert(&der(&leaf("tpp-a", 1, &other)), &[], handshake_time())
            .unwrap_err(),
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
    );
    // self-signed but sent with an intermediate
    assert!(allowing
        .verify_client_cert(&der(&self_signed), &[der(&other.der)], handshake_time())
        .is_err());
    // self-signed and expired
    let mut old = common::leaf_params("tpp-c", 8);
    old.not_before = rcgen::date_time_ymd(2001, 1, 1);
    old.not_after = rcgen::date_time_ymd(2002, 1, 1);
    let expired = old.self_signed(&key).unwrap().der().to_vec();
    assert!(allowing
        .verify_client_cert(&der(&expired), &[], handshake_time())
        .is_err());
}
