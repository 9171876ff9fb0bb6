//! JWS verification of an arbitrary token against fixed keys, and of
//! arbitrary header/payload bytes correctly signed (policy, `typ`, `crit`,
//! key selection, strict payload JSON, time claims after the signature).
#![no_main]
use fapi_core::claims::TimeRules;
use fapi_core::jose::{ExpectedType, JwsPolicy, UnverifiedJws};
use fapi_fuzz::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let policy = JwsPolicy::new(PROFILE.algorithms(), ExpectedType::JwtOrAbsent);
    let check = |token: &str| {
        if let Ok(jws) = UnverifiedJws::parse(token) {
            if let Ok(v) = jws.verify(bank_keys(), &policy) {
                let _ = v
                    .claims()
                    .check_times(&TimeRules::issued_token(true), now());
                let _ = v.claims().audience();
            }
        }
    };
    if let Ok(s) = std::str::from_utf8(data) {
        check(s);
    }
    check(&signed(
        &**bank_key(),
        br#"{"alg":"ES256","kid":"bank"}"#,
        data,
    ));
});
