//! The pushed request body parser (bounded, every parameter once, no
//! `request_uri`) and the `request_uri` parser.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(form) = fapi_par::PushedRequestForm::parse(data) {
        let _ = form.get("request");
        let _ = form.authorization_parameters();
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = fapi_par::RequestUri::parse(s);
    }
});
