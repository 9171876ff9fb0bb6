//! The development PKI: owner-only key files, TPP certificates that
//! authenticate through fapi-mtls-binding against the generated scheme CA,
//! and a key source that refuses readable-by-others files and odd names.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use fapi_core::client::{AuthMethod, ClientMetadata, TlsClientAuthMetadata};
use fapi_core::crypto::default_provider;
use fapi_core::jwk::JwkSet;
use fapi_core::ClientId;
use fapi_core::{AuthenticatedClient, Profile};
use fapi_core::{Clock, SystemClock};
use fapi_examples::pki::{DevPki, FileKeySource, KeySource, PkiError};
use fapi_mtls_binding::client_auth::TlsClientAuth;
use fapi_mtls_binding::trust::{TrustBundle, TrustError};
use fapi_mtls_binding::ClientCertificate;

struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn generate() -> (TempDir, DevPki) {
    let dir = std::env::temp_dir().join(format!(
        "fapi-pki-{}-{}",
        std::process::id(),
        fapi_core::random::token(8).unwrap()
    ));
    let pki = DevPki::generate(
        &dir,
        &*default_provider(),
        &["tpp-a", "tpp-b"],
        fapi_core::UnixTime::from_secs(1_800_000_000).unwrap(),
    )
    .unwrap();
    (TempDir(dir), pki)
}

fn cert(path: &std::path::Path) -> ClientCertificate {
    ClientCertificate::from_pem(&fs::read_to_string(path).unwrap()).unwrap()
}

fn mode(path: &std::path::Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn private_keys_are_owner_only() {
    let (_t, pki) = generate();
    assert_eq!(mode(&pki.dir), 0o700);
    assert_eq!(mode(&pki.server_key), 0o600);
    for tpp in &pki.tpps {
        assert_eq!(mode(&tpp.certificate_key), 0o600);
        assert_eq!(
            mode(&pki.dir.join(format!("{}.key.pem", tpp.signing_key))),
            0o600
        );
    }
    for name in ["bank-signing", "directory-signing", "scheme-ca"] {
        assert_eq!(mode(&pki.dir.join(format!("{name}.key.pem"))), 0o600);
    }
}

/// The development scheme's trust bundle: its CA and the CRL `generate`
/// wrote (the default policy requires a current CRL).
fn scheme_bundle(pki: &DevPki) -> TrustBundle {
    use rustls_pki_types::pem::PemObject;
    let crl = rustls_pki_types::CertificateRevocationListDer::from_pem_slice(
        fs::read_to_string(&pki.crl).unwrap().as_bytes(),
    )
    .unwrap();
    TrustBundle::builder(1)
        .anchors(&[cert(&pki.scheme_ca).der()])
        .crls(&[crl.as_ref()])
        .build(SystemClock.now())
        .unwrap()
}

#[test]
fn tpp_certificates_authenticate_against_the_scheme_ca() {
    let (_t, pki) = generate();
    let now = SystemClock.now();
    let bundle = scheme_bundle(&pki);
    for tpp in &pki.tpps {
        let trusted = bundle.verify(&cert(&tpp.certificate), &[], now).unwrap();
        let dn = format!(
            "CN={0}-software,OU={0}-org,organizationIdentifier=PSDGB-FCA-{0},O={0} Ltd,C=GB",
            tpp.client_id
        );
        let registration = ClientMetadata::new(
            ClientId::try_from(tpp.client_id.as_str()).unwrap(),
            AuthMethod::TlsClientAuth,
            vec![],
            JwkSet::default(),
            &*default_provider(),
            Profile::Fapi2Security,
        )
        .unwrap()
        .with_tls_client_auth(TlsClientAuthMetadata::subject_dn(dn));
        let client = AuthenticatedClient::from_certificate(
            &std::sync::Arc::new(registration.clone()),
            &TlsClientAuth(&trusted),
        )
        .unwrap();
        assert_eq!(client.client_id().as_str(), tpp.client_id);
        // the same DN in OpenSSL's one-line order is another subject
        let openssl_order = format!(
            "C=GB, O={0} Ltd, organizationIdentifier=PSDGB-FCA-{0}, OU={0}-org, CN={0}-software",
            tpp.client_id
        );
        let reversed = registration
            .clone()
            .with_tls_client_auth(TlsClientAuthMetadata::subject_dn(openssl_order));
        assert_eq!(
            AuthenticatedClient::from_certificate(
                &std::sync::Arc::new(reversed),
                &TlsClientAuth(&trusted)
            )
            .unwrap_err(),
            fapi_core::client_auth::ClientAuthError::Certificate(
                fapi_core::client_auth::CertificateAuthError::SubjectDnMismatch {
                    reversed_would_match: true
                }
            )
        );
    }
}

#[test]
fn server_certificate_is_not_a_client_certificate() {
    let (_t, pki) = generate();
    let bundle = scheme_bundle(&pki);
    assert_eq!(
        bundle
            .verify(&cert(&pki.server_certificate), &[], SystemClock.now())
            .unwrap_err(),
        TrustError::WrongKeyUsage
    );
}

#[test]
fn key_source_loads_keys_matching_the_published_jwks() {
    let (_t, pki) = generate();
    let keys = FileKeySource::new(&pki.dir, default_provider());
    for tpp in &pki.tpps {
        let key = keys.signing_key(&tpp.signing_key).unwrap();
        let jwks = JwkSet::from_json(&fs::read(&tpp.jwks).unwrap()).unwrap();
        assert_eq!(jwks.keys()[0].thumbprint(), key.public_key().thumbprint());
        assert_eq!(jwks.keys()[0].kid(), Some(tpp.signing_key.as_str()));
    }
    assert!(keys.signing_key("bank-signing").is_ok());
    assert!(!format!("{keys:?}").contains("PRIVATE"));
}

#[test]
fn key_source_refuses_keys_readable_by_others() {
    let (_t, pki) = generate();
    let path = pki.dir.join("bank-signing.key.pem");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let keys = FileKeySource::new(&pki.dir, default_provider());
    assert!(matches!(
        keys.signing_key("bank-signing").unwrap_err(),
        PkiError::KeyFilePermissions(_)
    ));
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    assert!(keys.signing_key("bank-signing").is_ok());
}

#[test]
fn key_source_refuses_path_like_names() {
    let (_t, pki) = generate();
    let keys = FileKeySource::new(&pki.dir, default_provider());
    for name in [
        "../bank-signing",
        "bank-signing/..",
        "",
        "a b",
        "/etc/passwd",
    ] {
        assert!(keys.signing_key(name).is_err(), "{name}");
    }
}
