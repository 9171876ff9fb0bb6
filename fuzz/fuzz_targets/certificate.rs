//! Client certificates in every input form: DER, PEM, URL-encoded PEM
//! (nginx, API Gateway), base64 DER (Azure, HAProxy), Envoy XFCC and RFC
//! 9440 fields from a trusted hop; the strict RFC 4514 DN reader and
//! `distinguishedNameMatch` against certificate subjects.
//!
//! Must hold: no panic; a DN the reader accepts writes back to a string it
//! reads to the same name (which matches it); a parsed subject is printable.
#![no_main]
use fapi_mtls_binding::forwarded::{ForwardedFormat, TrustedForwarder};
use fapi_mtls_binding::{ClientCertificate, DistinguishedName};
use libfuzzer_sys::fuzz_target;

fn registered_dn(s: &str, subject: Option<&DistinguishedName>) {
    let Ok(dn) = DistinguishedName::parse(s) else {
        return;
    };
    let written = dn.to_string();
    let again = DistinguishedName::parse(&written)
        .unwrap_or_else(|e| panic!("{s:?} was accepted, but its form {written:?} is not: {e}"));
    assert_eq!(again, dn, "{s:?} does not round-trip through {written:?}");
    assert!(again.matches(&dn), "{s:?} does not match itself");
    if let Some(subject) = subject {
        let _ = dn.matches(subject);
    }
}

fn subject(cert: &ClientCertificate) -> DistinguishedName {
    let s = DistinguishedName::of_subject(cert.certificate());
    let _ = s.to_string();
    s
}

fuzz_target!(|data: &[u8]| {
    let mut from_der = None;
    if let Ok(cert) = ClientCertificate::from_der(data) {
        from_der = Some(subject(&cert));
    }
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(cert) = ClientCertificate::from_pem(s) {
            from_der = Some(subject(&cert));
        }
        let _ = ClientCertificate::from_url_encoded_pem(s);
        let _ = ClientCertificate::from_base64_der(s);
        registered_dn(s, from_der.as_ref());
        let gateway = std::net::IpAddr::from([10, 0, 0, 1]);
        let hops = |n| std::num::NonZeroUsize::new(n).unwrap_or(std::num::NonZeroUsize::MIN);
        // a second field (Client-Cert-Chain) after the first newline
        let (first, second) = match s.split_once('\n') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        for format in [
            ForwardedFormat::UrlEncodedPem,
            ForwardedFormat::Pem,
            ForwardedFormat::EnvoyXfcc {
                trusted_hops: hops(1),
            },
            ForwardedFormat::EnvoyXfcc {
                trusted_hops: hops(2),
            },
            ForwardedFormat::Rfc9440,
            ForwardedFormat::Base64Der,
        ] {
            if let Ok(f) = TrustedForwarder::new(format, vec![gateway]) {
                let _ = f.presented_certificate(gateway, Some(s));
                let _ = f.presented_chain(gateway, Some(first), second);
            }
        }
    }
});
