//! The form parser never panics on arbitrary bytes, and a parsed form never
//! holds a repeated parameter or a `request_uri`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use fapi_par::{PushedRequestForm, RequestUri};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn form_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048), text in "[a-z_=&%0-9A-F+]{0,400}") {
        for input in [bytes.as_slice(), text.as_bytes()] {
            if let Ok(f) = PushedRequestForm::parse(input) {
                prop_assert!(f.get("request_uri").is_none());
                let params = f.authorization_parameters();
                for (i, (k, _)) in params.iter().enumerate() {
                    prop_assert!(params.iter().skip(i + 1).all(|(k2, _)| k2 != k));
                }
            }
        }
    }

    #[test]
    fn request_uri_parser_never_panics(s in any::<String>()) {
        let _ = RequestUri::parse(&s);
    }
}
