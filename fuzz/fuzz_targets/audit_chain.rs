//! Audit-chain parsing and verification (JSON lines, arbitrary
//! checkpoints): never panics, and never accepts a chain it cannot read.
#![no_main]
use fapi_consent::audit::{parse_chain, verify_chain};
use fapi_fuzz::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (chain, checkpoints) = text.split_once("\n\n").unwrap_or((text, ""));
    let checkpoints: Vec<String> = checkpoints.lines().map(str::to_owned).collect();
    if let Ok(entries) = parse_chain(chain) {
        let _ = verify_chain(&entries, &checkpoints, bank_keys(), PROFILE.algorithms());
    }
});
