//! Client certificates in every input form: DER, PEM, URL-encoded PEM
//! (nginx, API Gateway) and Envoy XFCC from a trusted hop; and the
//! RFC 4514 DN parser.
#![no_main]
use fapi_mtls_binding::forwarded::{ForwardedFormat, TrustedForwarder};
use fapi_mtls_binding::ClientCertificate;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(cert) = ClientCertificate::from_der(data) {
        let _ = fapi_mtls_binding::client_auth::DistinguishedName::of_subject(cert.certificate());
    }
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(cert) = ClientCertificate::from_pem(s) {
            let _ =
                fapi_mtls_binding::client_auth::DistinguishedName::of_subject(cert.certificate());
        }
        let _ = ClientCertificate::from_url_encoded_pem(s);
        let _ = fapi_mtls_binding::client_auth::DistinguishedName::parse(s);
        let gateway = std::net::IpAddr::from([10, 0, 0, 1]);
        let hops = |n| std::num::NonZeroUsize::new(n).unwrap_or(std::num::NonZeroUsize::MIN);
        for format in [
            ForwardedFormat::UrlEncodedPem,
            ForwardedFormat::Pem,
            ForwardedFormat::EnvoyXfcc {
                trusted_hops: hops(1),
            },
            ForwardedFormat::EnvoyXfcc {
                trusted_hops: hops(2),
            },
        ] {
            if let Ok(f) = TrustedForwarder::new(format, vec![gateway]) {
                let _ = f.presented_certificate(gateway, Some(s));
            }
        }
    }
});
