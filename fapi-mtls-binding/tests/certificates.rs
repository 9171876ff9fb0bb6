//! Certificate input forms, `x5t#S256`, proof of possession and trusted
//! forwarding, with certificates generated in code (rcgen). Each rule's
//! negative test stands next to its happy twin.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use fapi_core::testing::TokenAuthority;
use std::num::NonZeroUsize;
use std::sync::OnceLock;

use fapi_core::access_token::{AccessTokenClaims, BindingError, Confirmation};
use fapi_core::crypto::{default_provider, Algorithm};
use fapi_core::Profile;
use fapi_core::UnixTime;
use fapi_core::{CertificateThumbprint, ClientId, Issuer, Scope};
use fapi_mtls_binding::{
    CertificateError, ClientCertificate, DerFault, ForwardedError, ForwardedFormat,
    PresentedCertificate, TrustedForwarder,
};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer as CaIssuer, KeyPair};

struct Pki {
    /// The scheme CA certificate (DER).
    ca: Vec<u8>,
    tpp_a: rcgen::Certificate,
    tpp_b: rcgen::Certificate,
    attacker: rcgen::Certificate,
}

/// A scheme CA and two TPP certificates it issued, plus a self-signed
/// attacker certificate; made once per test binary.
fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "Scheme Test CA");
        let ca_der = ca.self_signed(&ca_key).unwrap().der().to_vec();
        let issuer = CaIssuer::new(ca, ca_key);
        let leaf = |name: &str| {
            let mut p = CertificateParams::new(vec![format!("{name}.example")]).unwrap();
            p.distinguished_name.push(DnType::CommonName, name);
            p.distinguished_name
                .push(DnType::OrganizationName, "TPP Ltd");
            p.signed_by(&KeyPair::generate().unwrap(), &issuer).unwrap()
        };
        let attacker = rcgen::generate_simple_self_signed(vec!["tpp-a.example".into()])
            .unwrap()
            .cert;
        Pki {
            ca: ca_der,
            tpp_a: leaf("tpp-a"),
            tpp_b: leaf("tpp-b"),
            attacker,
        }
    })
}

fn url_encoded(pem: &str) -> String {
    utf8_percent_encode(pem, NON_ALPHANUMERIC).to_string()
}

fn gateway() -> std::net::IpAddr {
    "10.0.0.5".parse().unwrap()
}

fn client_ip() -> std::net::IpAddr {
    "203.0.113.9".parse().unwrap()
}

fn xfcc(hops: usize) -> TrustedForwarder {
    TrustedForwarder::new(
        ForwardedFormat::EnvoyXfcc {
            trusted_hops: NonZeroUsize::new(hops).unwrap(),
        },
        vec![gateway()],
    )
    .unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn thumbprint_is_sha256_of_der_never_of_pem_text() {
    let c = &pki().tpp_a;
    let cert = ClientCertificate::from_der(c.der()).unwrap();
    assert_eq!(cert.thumbprint(), &CertificateThumbprint::of_der(c.der()));
    assert_ne!(
        cert.thumbprint(),
        &CertificateThumbprint::of_der(c.pem().as_bytes())
    );
    assert_eq!(cert.thumbprint().to_b64url().len(), 43);
}

#[test]
fn every_input_form_yields_the_same_thumbprint() {
    let c = &pki().tpp_a;
    let want = *ClientCertificate::from_der(c.der()).unwrap().thumbprint();
    let pem = c.pem();
    let crlf = pem.replace('\n', "\r\n");
    let forms = [
        ClientCertificate::from_pem(&pem).unwrap(),
        ClientCertificate::from_pem(&format!("\n  {pem}\n")).unwrap(),
        ClientCertificate::from_pem(&crlf).unwrap(),
        ClientCertificate::from_url_encoded_pem(&url_encoded(&pem)).unwrap(),
    ];
    for f in &forms {
        assert_eq!(f.thumbprint(), &want);
    }
    let nginx = TrustedForwarder::new(ForwardedFormat::UrlEncodedPem, vec![gateway()]).unwrap();
    let aws = TrustedForwarder::new(ForwardedFormat::Pem, vec![gateway()]).unwrap();
    let envoy = format!(
        "By=spiffe://bank/api;Hash={};Cert=\"{}\";Subject=\"CN=tpp-a,O=TPP Ltd\";DNS=tpp-a.example",
        hex(want.as_bytes()),
        url_encoded(&pem)
    );
    for (fwd, header) in [
        (nginx, url_encoded(&pem)),
        (aws, pem.clone()),
        (xfcc(1), envoy),
    ] {
        let p = fwd.presented_certificate(gateway(), Some(&header)).unwrap();
        assert_eq!(p.certificate().thumbprint(), &want);
    }
}

#[test]
fn malformed_certificates_are_typed_errors() {
    let c = &pki().tpp_a;
    let der = c.der().to_vec();
    let der_fault = |bytes: &[u8]| match ClientCertificate::from_der(bytes).unwrap_err() {
        CertificateError::Der(f) => f,
        e => panic!("{e:?}"),
    };
    assert_eq!(der_fault(&[]), DerFault::Empty);
    let mut trailing = der.clone();
    trailing.push(0);
    assert_eq!(der_fault(&trailing), DerFault::TrailingData);
    let two = [der.clone(), pki().tpp_b.der().to_vec()].concat();
    assert_eq!(der_fault(&two), DerFault::MultipleCertificates);
    assert_eq!(der_fault(&der[..der.len() - 1]), DerFault::NotACertificate);
    assert_eq!(der_fault(b"not a certificate"), DerFault::NotACertificate);
    // a DER SEQUENCE that is not a certificate
    assert_eq!(
        der_fault(&[0x30, 0x03, 0x02, 0x01, 0x01]),
        DerFault::NotACertificate
    );
    assert_eq!(
        ClientCertificate::from_der(&vec![0x30; 20_000]).unwrap_err(),
        CertificateError::TooLarge
    );
    let pem = c.pem();
    assert_eq!(
        ClientCertificate::from_pem(&pem.replace("CERTIFICATE", "PUBLIC KEY")).unwrap_err(),
        CertificateError::Pem
    );
    assert_eq!(
        ClientCertificate::from_pem(&format!("{pem}{pem}")).unwrap_err(),
        CertificateError::Pem
    );
    assert_eq!(
        ClientCertificate::from_pem(&format!("{pem}trailing")).unwrap_err(),
        CertificateError::Pem
    );
    assert_eq!(
        ClientCertificate::from_pem("garbage").unwrap_err(),
        CertificateError::Pem
    );
    assert!(ClientCertificate::from_der(&der).is_ok());
}

/// A bad percent escape was reported as a PEM error (the lenient decoder
/// passed `%zz` through); it is a URL-encoding error.
#[test]
fn bad_percent_escapes_are_url_encoding_errors() {
    let good = url_encoded(&pki().tpp_a.pem());
    assert!(ClientCertificate::from_url_encoded_pem(&good).is_ok());
    for bad in [
        "%ff%fe".to_owned(),
        format!("{good}%"),
        format!("{good}%4"),
        format!("%zz{good}"),
        good.replacen("%2D", "%-D", 1),
    ] {
        assert_eq!(
            ClientCertificate::from_url_encoded_pem(&bad).unwrap_err(),
            CertificateError::UrlEncoding,
            "{bad}"
        );
    }
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn plain_base64_der_from_azure_or_haproxy() {
    let fwd = TrustedForwarder::new(ForwardedFormat::Base64Der, vec![gateway()]).unwrap();
    let der = pki().tpp_a.der();
    let p = fwd
        .presented_certificate(gateway(), Some(&base64(der)))
        .unwrap();
    assert_eq!(p.certificate().der(), der.as_ref());
    let unpadded = base64(der).trim_end_matches('=').to_owned();
    for bad in [
        format!("{}\n{}", &base64(der)[..40], &base64(der)[40..]),
        // the URL-safe alphabet (placed where it always lands: a random
        // certificate's text need not hold a '+' to replace)
        format!("{}-{}", &base64(der)[..10], &base64(der)[11..]),
        format!("{}_{}", &base64(der)[..10], &base64(der)[11..]),
        "!!!!".to_owned(),
    ] {
        assert_eq!(
            fwd.presented_certificate(gateway(), Some(&bad))
                .unwrap_err(),
            ForwardedError::Certificate(CertificateError::Base64),
            "{bad}"
        );
    }
    // unpadded is refused unless the DER length needs no padding
    if !unpadded.len().is_multiple_of(4) {
        assert!(fwd
            .presented_certificate(gateway(), Some(&unpadded))
            .is_err());
    }
    assert_eq!(
        fwd.presented_certificate(gateway(), Some(&base64(b"junk")))
            .unwrap_err(),
        ForwardedError::Certificate(CertificateError::Der(DerFault::NotACertificate))
    );
    assert_eq!(
        fwd.presented_certificate(client_ip(), Some(&base64(der)))
            .unwrap_err(),
        ForwardedError::UntrustedPeer
    );
}

#[test]
fn rfc9440_client_cert_and_chain() {
    let fwd = TrustedForwarder::new(ForwardedFormat::Rfc9440, vec![gateway()]).unwrap();
    let der = pki().tpp_a.der();
    let ca = pki().ca.as_slice();
    let cert_field = format!(":{}:", base64(der));
    let p = fwd
        .presented_chain(
            gateway(),
            Some(&cert_field),
            Some(&format!(":{}:", base64(ca))),
        )
        .unwrap();
    assert_eq!(p.certificate().der(), der.as_ref());
    assert_eq!(p.intermediates(), vec![ca]);
    // without the chain field, and with parameters (ignored, none defined)
    let p = fwd
        .presented_certificate(gateway(), Some(&format!("{cert_field};x=1")))
        .unwrap();
    assert!(p.intermediates().is_empty());
    for bad in [
        base64(der),                           // a token, not a byte sequence
        format!("\"{}\"", base64(der)),        // a string
        format!(":{}", base64(der)),           // unterminated
        format!("{cert_field}, {cert_field}"), // a list, not an item
    ] {
        assert_eq!(
            fwd.presented_certificate(gateway(), Some(&bad))
                .unwrap_err(),
            ForwardedError::MalformedRfc9440("Client-Cert"),
            "{bad}"
        );
    }
    assert_eq!(
        fwd.presented_certificate(gateway(), Some(&format!(":{}:", base64(b"junk"))))
            .unwrap_err(),
        ForwardedError::Certificate(CertificateError::Der(DerFault::NotACertificate))
    );
    for bad_chain in [
        "(:AAAA:)".to_owned(),
        "abc".to_owned(),
        format!(":{}:, 1", base64(ca)),
    ] {
        assert_eq!(
            fwd.presented_chain(gateway(), Some(&cert_field), Some(&bad_chain))
                .unwrap_err(),
            ForwardedError::MalformedRfc9440("Client-Cert-Chain"),
            "{bad_chain}"
        );
    }
    let nine = vec![format!(":{}:", base64(ca)); 9].join(", ");
    assert_eq!(
        fwd.presented_chain(gateway(), Some(&cert_field), Some(&nine))
            .unwrap_err(),
        ForwardedError::ChainTooLong
    );
    assert_eq!(
        fwd.presented_chain(client_ip(), Some(&cert_field), None)
            .unwrap_err(),
        ForwardedError::UntrustedPeer
    );
    // a chain field in a format that has none is refused, not ignored
    let pem_fwd = TrustedForwarder::new(ForwardedFormat::Pem, vec![gateway()]).unwrap();
    assert_eq!(
        pem_fwd
            .presented_chain(gateway(), Some(&pki().tpp_a.pem()), Some(&cert_field))
            .unwrap_err(),
        ForwardedError::UnexpectedChain
    );
}

fn token_bound_to(cnf: Confirmation) -> fapi_core::VerifiedAccessToken {
    static A: OnceLock<TokenAuthority> = OnceLock::new();
    let authority = A.get_or_init(|| {
        TokenAuthority::new(
            default_provider()
                .generate_signing_key(Algorithm::Es256)
                .unwrap(),
            Issuer::try_from("https://bank.example").unwrap(),
            fapi_core::TokenAudience::try_from("https://api.bank.example").unwrap(),
            Profile::Fapi2Security,
            300,
        )
        .unwrap()
    });
    let claims = AccessTokenClaims::new(
        "alice",
        ClientId::try_from("tpp-a").unwrap(),
        Scope::try_from("accounts").unwrap(),
        cnf,
    );
    let now = UnixTime::from_secs(1_900_000_000).unwrap();
    futures_executor::block_on(authority.verified(&claims, now)).unwrap()
}

#[test]
fn token_binds_to_the_certificate_it_was_issued_for() {
    let a = PresentedCertificate::from_verified_tls_peer(pki().tpp_a.der()).unwrap();
    let token = token_bound_to(a.confirmation());
    assert_eq!(token.bind(&a).unwrap().client_id().as_str(), "tpp-a");
}

#[test]
fn stolen_token_with_another_certificate_rejected() {
    let a = PresentedCertificate::from_verified_tls_peer(pki().tpp_a.der()).unwrap();
    let token = token_bound_to(a.confirmation());
    for other in [&pki().tpp_b, &pki().attacker] {
        let other = PresentedCertificate::from_verified_tls_peer(other.der()).unwrap();
        assert_eq!(
            token.clone().bind(&other).unwrap_err(),
            BindingError::KeyMismatch
        );
    }
}

#[test]
fn dpop_bound_token_does_not_bind_to_a_certificate() {
    let jkt = default_provider()
        .generate_signing_key(Algorithm::Es256)
        .unwrap()
        .public_key()
        .thumbprint();
    let token = token_bound_to(Confirmation::JwkThumbprint(jkt));
    let a = PresentedCertificate::from_verified_tls_peer(pki().tpp_a.der()).unwrap();
    assert_eq!(token.bind(&a).unwrap_err(), BindingError::MethodMismatch);
}

#[test]
fn forwarded_header_from_untrusted_peer_rejected() {
    let pem = pki().attacker.pem();
    for (format, header) in [
        (ForwardedFormat::UrlEncodedPem, url_encoded(&pem)),
        (ForwardedFormat::Pem, pem.clone()),
        (
            ForwardedFormat::EnvoyXfcc {
                trusted_hops: NonZeroUsize::new(1).unwrap(),
            },
            format!("Cert={}", url_encoded(&pem)),
        ),
    ] {
        let fwd = TrustedForwarder::new(format, vec![gateway()]).unwrap();
        // the client talks to the service directly and sets the header itself
        assert_eq!(
            fwd.presented_certificate(client_ip(), Some(&header))
                .unwrap_err(),
            ForwardedError::UntrustedPeer
        );
        // even garbage is not parsed from an untrusted peer
        assert_eq!(
            fwd.presented_certificate(client_ip(), Some("garbage"))
                .unwrap_err(),
            ForwardedError::UntrustedPeer
        );
        assert!(fwd.presented_certificate(gateway(), Some(&header)).is_ok());
    }
}

#[test]
fn forwarder_must_name_a_gateway() {
    assert_eq!(
        TrustedForwarder::new(ForwardedFormat::Pem, vec![]).unwrap_err(),
        ForwardedError::UntrustedPeer
    );
}

#[test]
fn trusted_gateway_without_certificate_rejected() {
    let fwd = TrustedForwarder::new(ForwardedFormat::UrlEncodedPem, vec![gateway()]).unwrap();
    assert_eq!(
        fwd.presented_certificate(gateway(), None).unwrap_err(),
        ForwardedError::Missing
    );
    assert_eq!(
        fwd.presented_certificate(gateway(), Some("  "))
            .unwrap_err(),
        ForwardedError::Missing
    );
    assert!(matches!(
        fwd.presented_certificate(gateway(), Some("abc"))
            .unwrap_err(),
        ForwardedError::Certificate(_)
    ));
}

#[test]
fn xfcc_client_supplied_elements_left_of_the_trusted_hop_are_ignored() {
    let real = pki().tpp_a.pem();
    let spoof = pki().attacker.pem();
    // the client sent its own XFCC; the edge Envoy (APPEND_FORWARD) appended the real one
    let header = format!("Cert={},Cert={}", url_encoded(&spoof), url_encoded(&real));
    let p = xfcc(1)
        .presented_certificate(gateway(), Some(&header))
        .unwrap();
    assert_eq!(
        p.certificate().thumbprint(),
        &CertificateThumbprint::of_der(pki().tpp_a.der())
    );
    // two trusted hops: the edge's element is second from the right
    let edge_cert = pki().tpp_b.pem();
    let header = format!(
        "Cert={},Cert={},Cert={}",
        url_encoded(&spoof),
        url_encoded(&real),
        url_encoded(&edge_cert)
    );
    let p = xfcc(2)
        .presented_certificate(gateway(), Some(&header))
        .unwrap();
    assert_eq!(
        p.certificate().thumbprint(),
        &CertificateThumbprint::of_der(pki().tpp_a.der())
    );
}

#[test]
fn xfcc_with_fewer_elements_than_trusted_hops_rejected() {
    let header = format!("Cert={}", url_encoded(&pki().tpp_a.pem()));
    assert_eq!(
        xfcc(2)
            .presented_certificate(gateway(), Some(&header))
            .unwrap_err(),
        ForwardedError::XfccElementCount
    );
    assert!(xfcc(1)
        .presented_certificate(gateway(), Some(&header))
        .is_ok());
}

#[test]
fn xfcc_hash_must_match_cert() {
    let pem = pki().tpp_a.pem();
    let wrong = CertificateThumbprint::of_der(pki().tpp_b.der());
    let header = format!("Hash={};Cert={}", hex(wrong.as_bytes()), url_encoded(&pem));
    assert_eq!(
        xfcc(1)
            .presented_certificate(gateway(), Some(&header))
            .unwrap_err(),
        ForwardedError::XfccHashMismatch
    );
    let right = CertificateThumbprint::of_der(pki().tpp_a.der());
    let header = format!(
        "Hash={};Cert={}",
        hex(right.as_bytes()).to_uppercase(),
        url_encoded(&pem)
    );
    assert!(xfcc(1)
        .presented_certificate(gateway(), Some(&header))
        .is_ok());
}

#[test]
fn xfcc_element_without_cert_rejected() {
    let header = format!(
        "Cert={},By=spiffe://edge;Hash=00",
        url_encoded(&pki().tpp_a.pem())
    );
    assert_eq!(
        xfcc(1)
            .presented_certificate(gateway(), Some(&header))
            .unwrap_err(),
        ForwardedError::XfccNoCertificate
    );
}

/// Envoy writes one `DNS` (and `URI`) pair per SAN: a TPP certificate with
/// two DNS SANs was refused behind Envoy.
#[test]
fn xfcc_repeats_dns_and_uri_but_nothing_else() {
    let cert = url_encoded(&pki().tpp_a.pem());
    let ok = format!(
        "By=spiffe://bank/api;Cert=\"{cert}\";Subject=\"CN=tpp-a,O=TPP Ltd\";URI=spiffe://tpp-a;URI=https://tpp-a.example;DNS=tpp-a.example;DNS=api.tpp-a.example"
    );
    assert!(xfcc(1).presented_certificate(gateway(), Some(&ok)).is_ok());
    let hash = hex(CertificateThumbprint::of_der(pki().tpp_a.der()).as_bytes());
    for repeated in [
        format!("Hash={hash};Hash={hash};Cert={cert}"),
        format!("Cert={cert};Cert={cert}"),
        format!("Chain={cert};Chain={cert};Cert={cert}"),
        format!("Subject=\"CN=a\";Subject=\"CN=b\";Cert={cert}"),
        format!("By=spiffe://a;By=spiffe://b;Cert={cert}"),
        format!("Cert={cert};X=1;x=2"),
    ] {
        assert_eq!(
            xfcc(1)
                .presented_certificate(gateway(), Some(&repeated))
                .unwrap_err(),
            ForwardedError::MalformedXfcc,
            "{repeated}"
        );
    }
}

#[test]
fn xfcc_value_with_a_raw_line_break_refused() {
    let cert = url_encoded(&pki().tpp_a.pem());
    for bad in [
        format!("Cert={cert};Subject=\"CN=a\nX-Injected: 1\""),
        format!("Cert={cert};DNS=a\r\n.example"),
        format!("Cert={cert};DNS=a\u{0}b"),
    ] {
        assert_eq!(
            xfcc(1)
                .presented_certificate(gateway(), Some(&bad))
                .unwrap_err(),
            ForwardedError::MalformedXfcc
        );
    }
    assert!(xfcc(1)
        .presented_certificate(gateway(), Some(&format!("Cert={cert};Subject=\"CN=a b\"")))
        .is_ok());
}
