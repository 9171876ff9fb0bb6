//! Parsers never panic on arbitrary input; every input form of the same
//! certificate yields the same thumbprint.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::num::NonZeroUsize;

use fapi_mtls_binding::{ClientCertificate, ForwardedFormat, TrustedForwarder};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn certificate_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048), text in any::<String>()) {
        let _ = ClientCertificate::from_der(&bytes);
        let _ = ClientCertificate::from_pem(&text);
        let _ = ClientCertificate::from_pem(&format!("-----BEGIN CERTIFICATE-----\n{text}\n-----END CERTIFICATE-----"));
        let _ = ClientCertificate::from_url_encoded_pem(&text);
        let _ = ClientCertificate::from_base64_der(&text);
    }

    #[test]
    fn registered_dn_parser_never_panics(dn in "[A-Za-z0-9=,+ .\\#\"<>;]{0,120}", any_text in any::<String>()) {
        let _ = fapi_mtls_binding::DistinguishedName::parse(&dn);
        let _ = fapi_mtls_binding::DistinguishedName::parse(&any_text);
    }

    #[test]
    fn forwarded_header_parsers_never_panic(header in "[A-Za-z=;,\"\\\\%0-9 ]{0,300}", any_text in any::<String>()) {
        let gw = "10.0.0.5".parse().unwrap();
        for format in [
            ForwardedFormat::UrlEncodedPem,
            ForwardedFormat::Pem,
            ForwardedFormat::EnvoyXfcc { trusted_hops: NonZeroUsize::new(1).unwrap() },
            ForwardedFormat::EnvoyXfcc { trusted_hops: NonZeroUsize::new(3).unwrap() },
            ForwardedFormat::Rfc9440,
            ForwardedFormat::Base64Der,
        ] {
            let fwd = TrustedForwarder::new(format, vec![gw]).unwrap();
            let _ = fwd.presented_certificate(gw, Some(&header));
            let _ = fwd.presented_certificate(gw, Some(&any_text));
            let _ = fwd.presented_chain(gw, Some(&header), Some(&any_text));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn all_forms_of_one_certificate_share_a_thumbprint(name in "[a-z]{1,20}") {
        let c = rcgen::generate_simple_self_signed(vec![format!("{name}.example")]).unwrap().cert;
        let from_der = ClientCertificate::from_der(c.der()).unwrap();
        let from_pem = ClientCertificate::from_pem(&c.pem()).unwrap();
        let url = utf8_percent_encode(&c.pem(), NON_ALPHANUMERIC).to_string();
        let from_url = ClientCertificate::from_url_encoded_pem(&url).unwrap();
        let gw = "10.0.0.5".parse().unwrap();
        let xfcc = TrustedForwarder::new(ForwardedFormat::EnvoyXfcc { trusted_hops: NonZeroUsize::new(1).unwrap() }, vec![gw]).unwrap()
            .presented_certificate(gw, Some(&format!("Cert=\"{url}\""))).unwrap();
        prop_assert_eq!(from_der.thumbprint(), from_pem.thumbprint());
        prop_assert_eq!(from_der.thumbprint(), from_url.thumbprint());
        prop_assert_eq!(from_der.thumbprint(), xfcc.certificate().thumbprint());
    }
}
