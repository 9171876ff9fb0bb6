//! Compact JWT verification (framing + policy + signature + claims) against
//! the provider's raw signature verify, and a DPoP proof's verification,
//! for PS256, ES256 and EdDSA, for both providers. Run with:
//!
//! ```sh
//! cargo bench -p fapi-core --all-features --bench jws_verify
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::borrow::Cow;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use fapi_core::access_token::{AccessTokenClaims, AccessTokenIssuer, Confirmation};
use fapi_core::crypto::Algorithm;
use fapi_core::jose::{sign_compact, ExpectedType, JwsPolicy, UnverifiedJws};
use fapi_core::jwk::{Jwk, JwkSet, KeySet};
use fapi_core::testing::all_providers;
use fapi_core::UnixTime;
use fapi_core::{AccessTokenVerifier, Profile};
use fapi_core::{CertificateThumbprint, ClientId, ConsentId, Issuer, Scope};
use serde_json::json;

fn bench(c: &mut Criterion) {
    let now = UnixTime::from_secs(1_900_000_000).unwrap();
    let issuer = Issuer::try_from("https://bank.example").unwrap();
    for provider in all_providers() {
        for alg in Algorithm::ALL {
            let key = provider.generate_signing_key(alg).unwrap();
            let jwks = JwkSet::new(vec![Jwk::from_public_key(
                key.public_key().clone(),
                Some("k".into()),
            )]);
            let keys = Arc::new(
                KeySet::from_jwks(&jwks, &*provider, &Profile::Fapi2Security.key_policy()).unwrap(),
            );
            let issued = futures_executor::block_on(
                AccessTokenIssuer::new(
                    key.clone(),
                    "k".into(),
                    issuer.clone(),
                    fapi_core::TokenAudience::try_from("https://api.bank.example").unwrap(),
                    300,
                )
                .issue(
                    &AccessTokenClaims::new(
                        "alice",
                        ClientId::try_from("tpp-a").unwrap(),
                        Scope::try_from("accounts").unwrap(),
                        Confirmation::CertificateThumbprint(CertificateThumbprint::of_der(b"cert")),
                    )
                    .with_consent(Some(ConsentId::try_from("aac-1").unwrap())),
                    now,
                ),
            )
            .unwrap();
            let token = issued.token;
            let (signing_input, sig) = {
                let i = token.rfind('.').unwrap();
                let sig = {
                    use base64ct::{Base64UrlUnpadded, Encoding};
                    Base64UrlUnpadded::decode_vec(&token[i + 1..]).unwrap()
                };
                (token[..i].to_owned(), sig)
            };
            let raw_key = provider.verifying_key(key.public_key()).unwrap();
            let name = format!("{}/{}", provider.name(), alg);
            let mut g = c.benchmark_group(name);
            g.bench_function("raw_signature_verify", |b| {
                b.iter(|| {
                    raw_key
                        .verify(black_box(signing_input.as_bytes()), black_box(&sig))
                        .unwrap()
                })
            });
            // what the bank pays per token it issues (BENCHMARKS.md: the
            // signing share of a flow)
            g.bench_function("raw_sign", |b| {
                b.iter(|| key.sign(black_box(signing_input.as_bytes())).unwrap())
            });
            let policy = JwsPolicy::new(
                Profile::Fapi2Security.algorithms(),
                ExpectedType::Exact("at+jwt"),
            );
            let rules = Profile::Fapi2Security.access_token_times();
            g.bench_function("compact_jwt_verify", |b| {
                b.iter(|| {
                    let v = UnverifiedJws::parse(black_box(&token))
                        .unwrap()
                        .verify(&keys, &policy)
                        .unwrap();
                    v.claims().check_times(&rules, now).unwrap();
                    assert_eq!(
                        v.claims().string("iss").unwrap(),
                        Some("https://bank.example")
                    );
                })
            });
            let verifier = AccessTokenVerifier::new(
                keys.clone(),
                issuer.clone(),
                fapi_core::TokenAudience::try_from("https://api.bank.example").unwrap(),
                Profile::Fapi2Security.algorithms(),
            );
            let header = format!("Bearer {token}");
            g.bench_function("access_token_verify", |b| {
                b.iter(|| verifier.verify(black_box(&header), now).unwrap())
            });
            // a DPoP proof at a resource (its key parsed from the header,
            // the signature, htm/htu/iat/ath), next to the token it proves
            let url = "https://api.bank.example/accounts";
            let proof =
                fapi_core::dpop::sign_dpop_proof(&*key, "GET", url, Some(&token), None, now)
                    .unwrap();
            let dpop = fapi_core::dpop::DpopVerifier::new(provider.clone(), Profile::Fapi2Security);
            let request = fapi_core::dpop::DpopRequest {
                method: "GET",
                url,
                access_token: Some(&token),
                nonces: None,
            };
            g.bench_function("dpop_proof_verify", |b| {
                b.iter(|| dpop.verify(black_box(&proof), &request, now).unwrap())
            });
            g.bench_function("parts/parse_only", |b| {
                b.iter(|| UnverifiedJws::parse(black_box(&token)).unwrap())
            });
            let parsed = UnverifiedJws::parse(&token).unwrap();
            g.bench_function("parts/payload_json", |b| {
                b.iter(|| black_box(&parsed).unverified_claims().unwrap())
            });
            let payload_bytes = {
                use base64ct::{Base64UrlUnpadded, Encoding};
                Base64UrlUnpadded::decode_vec(token.split('.').nth(1).unwrap()).unwrap()
            };
            g.bench_function("parts/payload_json_plain_serde_floor", |b| {
                b.iter(|| {
                    serde_json::from_slice::<serde_json::Value>(black_box(&payload_bytes)).unwrap()
                })
            });
            g.bench_function("parts/b64_decode_token", |b| {
                use base64ct::{Base64UrlUnpadded, Encoding};
                b.iter(|| {
                    for seg in black_box(&token).split('.') {
                        black_box(Base64UrlUnpadded::decode_vec(seg).unwrap());
                    }
                })
            });
            g.bench_function("parts/b64_decode_token_fast_strict", |b| {
                b.iter(|| {
                    for seg in black_box(&token).split('.') {
                        black_box(fast_strict_decode(seg));
                    }
                })
            });
            // The floor under any framing built on these crates: the three
            // segments base64url-decoded by the same engine, and the header
            // and payload read by serde_json into borrowed fields, with no
            // rule at all (no duplicate or depth checks, unknown members
            // ignored, no typed values, no policy, no key selection).
            let segments: Vec<&str> = token.split('.').collect();
            let header_bytes = fast_strict_decode(segments[0]);
            g.bench_function("parts/floor_header_serde_borrowed", |b| {
                b.iter(|| {
                    serde_json::from_slice::<FloorHeader<'_>>(black_box(&header_bytes)).unwrap()
                })
            });
            g.bench_function("parts/floor_payload_serde_borrowed", |b| {
                b.iter(|| {
                    serde_json::from_slice::<FloorPayload<'_>>(black_box(&payload_bytes)).unwrap()
                })
            });
            g.bench_function("parts/floor_framing_total", |b| {
                b.iter(|| {
                    let mut it = black_box(&token).split('.');
                    let h = fast_strict_decode(it.next().unwrap());
                    let p = fast_strict_decode(it.next().unwrap());
                    let s = fast_strict_decode(it.next().unwrap());
                    let header = serde_json::from_slice::<FloorHeader<'_>>(&h).unwrap();
                    let payload = serde_json::from_slice::<FloorPayload<'_>>(&p).unwrap();
                    black_box((&header, &payload, &s));
                })
            });
            g.bench_function("parts/sha256_of_signing_input", |b| {
                use sha2::Digest;
                b.iter(|| sha2::Sha256::digest(black_box(signing_input.as_bytes())))
            });
            g.finish();
            // keep the signer honest: a freshly signed token verifies too
            let _ = sign_compact(
                &*key,
                Some("k"),
                None,
                json!({ "a": 1 }).as_object().unwrap(),
            )
            .unwrap();
        }
    }
}

/// fapi-core's public-segment decoder configuration (strict, no padding).
const FAST_STRICT: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

fn fast_strict_decode(segment: &str) -> Vec<u8> {
    use base64::Engine as _;
    FAST_STRICT.decode(segment).unwrap()
}

/// The header members a verifier reads, borrowed, nothing checked.
#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct FloorHeader<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(borrow)]
    kid: Option<Cow<'a, str>>,
    #[serde(borrow)]
    typ: Option<Cow<'a, str>>,
}

/// The RFC 9068 claims of the benchmark's token, borrowed, nothing checked.
#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct FloorPayload<'a> {
    #[serde(borrow)]
    iss: Cow<'a, str>,
    #[serde(borrow)]
    sub: Cow<'a, str>,
    #[serde(borrow)]
    aud: Cow<'a, str>,
    #[serde(borrow)]
    client_id: Cow<'a, str>,
    #[serde(borrow)]
    jti: Cow<'a, str>,
    #[serde(borrow)]
    scope: Cow<'a, str>,
    #[serde(borrow)]
    consent_id: Cow<'a, str>,
    exp: i64,
    iat: i64,
    #[serde(borrow)]
    cnf: FloorCnf<'a>,
}

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct FloorCnf<'a> {
    #[serde(borrow, rename = "x5t#S256")]
    x5t_s256: Cow<'a, str>,
}

criterion_group!(benches, bench);
criterion_main!(benches);
