//! The TPP-side verifier never panics on arbitrary input.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use fapi_core::jwk::KeySet;
use fapi_core::UnixTime;
use fapi_core::{ClientId, Issuer, State};
use fapi_jarm::JarmVerifier;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn jarm_verifier_never_panics(s in any::<String>(), t in "[A-Za-z0-9_.=&?#:/-]{0,300}") {
        let v = JarmVerifier::new(Arc::new(KeySet::default()), Issuer::try_from("https://bank.example").unwrap(), ClientId::try_from("tpp-a").unwrap(), fapi_core::Profile::Fapi2Security.algorithms());
        let now = UnixTime::from_secs(1_900_000_000).unwrap();
        let state = State::try_from("s").unwrap();
        for input in [s.as_str(), t.as_str()] {
            let _ = v.verify(input, Some(&state), now);
            let _ = v.verify_redirect(input, None, now);
            let _ = v.verify_redirect(&format!("https://tpp-a.example/cb?response={input}"), Some(&state), now);
        }
    }
}
