//! DPoP proofs (RFC 9449): every rule refused on its own, beside the proof
//! that passes; time edges exactly; nonces; single use; the binding rule
//! across methods.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use fapi_core::crypto::{default_provider, Algorithm, SigningKey};
use fapi_core::dpop::{
    access_token_hash, same_htu, sign_dpop_proof, DpopError, DpopNonces, DpopProof, DpopRequest,
    DpopVerifier, DEFAULT_MAX_AGE_SECS,
};
use fapi_core::jose::JoseError;
use fapi_core::replay::InMemoryReplayCache;
use fapi_core::testing::sign_with_header;
use fapi_core::{
    BindingError, CertificateThumbprint, Confirmation, ErrorCode, Jwk, OAuthError, Profile,
    UnixTime,
};
use serde_json::{json, Map, Value};

const TOKEN_URL: &str = "https://bank.example/token";
const NOW: i64 = 1_900_000_000;

fn now() -> UnixTime {
    UnixTime::from_secs(NOW).unwrap()
}

fn key(alg: Algorithm) -> Arc<dyn SigningKey> {
    default_provider().generate_signing_key(alg).unwrap()
}

fn verifier() -> DpopVerifier {
    DpopVerifier::new(default_provider(), Profile::Fapi2Security)
}

fn at_token() -> DpopRequest<'static> {
    DpopRequest {
        method: "POST",
        url: TOKEN_URL,
        access_token: None,
        nonces: None,
    }
}

fn claims(iat: i64) -> Map<String, Value> {
    json!({ "jti": "j-1", "htm": "POST", "htu": TOKEN_URL, "iat": iat })
        .as_object()
        .unwrap()
        .clone()
}

fn header(key: &dyn SigningKey) -> Map<String, Value> {
    json!({
        "typ": "dpop+jwt",
        "alg": key.algorithm().jose_name(),
        "jwk": Jwk::from_public_key(key.public_key().clone(), None).to_json(),
    })
    .as_object()
    .unwrap()
    .clone()
}

/// A proof by `key` with `edit_header` and `edit_claims` applied.
fn proof_with(
    key: &dyn SigningKey,
    edit_header: impl FnOnce(&mut Map<String, Value>),
    edit_claims: impl FnOnce(&mut Map<String, Value>),
) -> String {
    let mut h = header(key);
    edit_header(&mut h);
    let mut c = claims(NOW);
    edit_claims(&mut c);
    sign_with_header(key, &h, &c).unwrap()
}

fn verify(proof: &str, request: &DpopRequest<'_>) -> Result<(), DpopError> {
    verifier().verify(proof, request, now()).map(|_| ())
}

#[test]
fn a_proof_by_each_allowed_algorithm_passes_and_names_its_key() {
    for alg in [Algorithm::Ps256, Algorithm::Es256, Algorithm::EdDsa] {
        let k = key(alg);
        let proof = sign_dpop_proof(&*k, "POST", TOKEN_URL, None, None, now()).unwrap();
        let pending = verifier().verify(&proof, &at_token(), now()).unwrap();
        let cache = InMemoryReplayCache::new(100);
        let proved = futures_executor::block_on(pending.record_jti(&cache, "bank", now())).unwrap();
        assert_eq!(*proved.jkt(), k.public_key().thumbprint(), "{alg:?}");
    }
}

#[test]
fn the_header_rules_refuse_on_their_own() {
    let k = key(Algorithm::Es256);
    let ok = proof_with(&*k, |_| {}, |_| {});
    verify(&ok, &at_token()).unwrap();
    // typ
    for typ in [None, Some("JWT"), Some("at+jwt"), Some("dpop")] {
        let p = proof_with(
            &*k,
            |h| match typ {
                Some(t) => {
                    h.insert("typ".into(), json!(t));
                }
                None => {
                    h.remove("typ");
                }
            },
            |_| {},
        );
        assert!(
            matches!(verify(&p, &at_token()), Err(DpopError::Jose(_))),
            "{typ:?}"
        );
    }
    // no key, a key that is not an object, a private key
    let p = proof_with(
        &*k,
        |h| {
            h.remove("jwk");
        },
        |_| {},
    );
    assert!(matches!(
        verify(&p, &at_token()),
        Err(DpopError::MissingKey)
    ));
    let p = proof_with(
        &*k,
        |h| {
            h.insert("jwk".into(), json!("a key"));
        },
        |_| {},
    );
    assert!(matches!(
        verify(&p, &at_token()),
        Err(DpopError::MissingKey)
    ));
    let p = proof_with(
        &*k,
        |h| {
            h["jwk"]
                .as_object_mut()
                .unwrap()
                .insert("d".into(), json!("AAAA"));
        },
        |_| {},
    );
    assert!(matches!(verify(&p, &at_token()), Err(DpopError::Key(_))));
    // other key sources stay refused, even beside jwk
    for source in ["jku", "x5u", "x5c"] {
        let p = proof_with(
            &*k,
            |h| {
                h.insert(source.into(), json!("https://evil.example/keys"));
            },
            |_| {},
        );
        assert!(
            matches!(
                verify(&p, &at_token()),
                Err(DpopError::Jose(JoseError::EmbeddedKeySource(_)))
            ),
            "{source}"
        );
    }
    // an algorithm name outside the list
    for alg in ["none", "HS256", "RS256", "ES384"] {
        let p = proof_with(
            &*k,
            |h| {
                h.insert("alg".into(), json!(alg));
            },
            |_| {},
        );
        assert!(
            matches!(verify(&p, &at_token()), Err(DpopError::Jose(_))),
            "{alg}"
        );
    }
    // a header alg that does not fit the key (ES256 key named PS256)
    let p = proof_with(
        &*k,
        |h| {
            h.insert("alg".into(), json!("PS256"));
        },
        |_| {},
    );
    assert!(verify(&p, &at_token()).is_err());
}

#[test]
fn the_signature_must_be_by_the_key_in_the_header() {
    let (signer, other) = (key(Algorithm::Es256), key(Algorithm::Es256));
    // signed by `signer`, carrying `other`'s public key
    let mut h = header(&*other);
    h.insert("alg".into(), json!("ES256"));
    let p = sign_with_header(&*signer, &h, &claims(NOW)).unwrap();
    assert!(matches!(
        verify(&p, &at_token()),
        Err(DpopError::Jose(JoseError::BadSignature))
    ));
    // a changed payload
    let ok = proof_with(&*signer, |_| {}, |_| {});
    let mut parts: Vec<&str> = ok.split('.').collect();
    let other_claims = proof_with(
        &*signer,
        |_| {},
        |c| {
            c.insert("htm".into(), json!("GET"));
        },
    );
    parts[1] = other_claims.split('.').nth(1).unwrap();
    assert!(verify(&parts.join("."), &at_token()).is_err());
}

#[test]
fn the_claims_must_be_for_this_request() {
    let k = key(Algorithm::Es256);
    for (name, edit, expected) in [
        (
            "no jti",
            Box::new(|c: &mut Map<String, Value>| {
                c.remove("jti");
            }) as Box<dyn Fn(&mut Map<String, Value>)>,
            "Claim",
        ),
        (
            "empty jti",
            Box::new(|c: &mut Map<String, Value>| {
                c.insert("jti".into(), json!(""));
            }),
            "Claim",
        ),
        (
            "long jti",
            Box::new(|c: &mut Map<String, Value>| {
                c.insert("jti".into(), json!("j".repeat(257)));
            }),
            "Claim",
        ),
        (
            "no htm",
            Box::new(|c: &mut Map<String, Value>| {
                c.remove("htm");
            }),
            "Claim",
        ),
        (
            "GET",
            Box::new(|c: &mut Map<String, Value>| {
                c.insert("htm".into(), json!("GET"));
            }),
            "MethodMismatch",
        ),
        (
            "post",
            Box::new(|c: &mut Map<String, Value>| {
                c.insert("htm".into(), json!("post"));
            }),
            "MethodMismatch",
        ),
        (
            "no htu",
            Box::new(|c: &mut Map<String, Value>| {
                c.remove("htu");
            }),
            "Claim",
        ),
        (
            "other path",
            Box::new(|c: &mut Map<String, Value>| {
                c.insert("htu".into(), json!("https://bank.example/par"));
            }),
            "UrlMismatch",
        ),
        (
            "other host",
            Box::new(|c: &mut Map<String, Value>| {
                c.insert("htu".into(), json!("https://evil.example/token"));
            }),
            "UrlMismatch",
        ),
        (
            "http",
            Box::new(|c: &mut Map<String, Value>| {
                c.insert("htu".into(), json!("http://bank.example/token"));
            }),
            "UrlMismatch",
        ),
        (
            "other port",
            Box::new(|c: &mut Map<String, Value>| {
                c.insert("htu".into(), json!("https://bank.example:8443/token"));
            }),
            "UrlMismatch",
        ),
        (
            "userinfo",
            Box::new(|c: &mut Map<String, Value>| {
                c.insert("htu".into(), json!("https://u@bank.example/token"));
            }),
            "UrlMismatch",
        ),
        (
            "no iat",
            Box::new(|c: &mut Map<String, Value>| {
                c.remove("iat");
            }),
            "Claim",
        ),
        (
            "string iat",
            Box::new(|c: &mut Map<String, Value>| {
                c.insert("iat".into(), json!("1900000000"));
            }),
            "Claim",
        ),
        (
            "ath at the token endpoint",
            Box::new(|c: &mut Map<String, Value>| {
                c.insert("ath".into(), json!(access_token_hash("t")));
            }),
            "UnexpectedAccessTokenHash",
        ),
    ] {
        let p = proof_with(&*k, |_| {}, |c| edit(c));
        let e = verify(&p, &at_token()).unwrap_err();
        assert!(format!("{e:?}").starts_with(expected), "{name}: {e:?}");
        assert_eq!(e.error_code(), ErrorCode::InvalidDpopProof, "{name}");
    }
}

/// RFC 9449 §4.3: query and fragment are not compared; the URL Standard's
/// normalisation applies (host case, default port, dot segments).
#[test]
fn htu_is_compared_without_query_or_fragment_after_normalisation() {
    for same in [
        "https://bank.example/token",
        "https://bank.example/token?x=1",
        "https://bank.example/token#f",
        "https://BANK.example/token",
        "HTTPS://bank.example/token",
        "https://bank.example:443/token",
        "https://bank.example/a/../token",
    ] {
        assert!(same_htu(same, TOKEN_URL), "{same}");
    }
    for other in [
        "https://bank.example/Token",
        "https://bank.example/token/",
        "https://bank.example./token",
        "https://bank.example:444/token",
        "http://bank.example/token",
        "https://u:p@bank.example/token",
        "/token",
        "not a url",
    ] {
        assert!(!same_htu(other, TOKEN_URL), "{other}");
    }
}

#[test]
fn iat_is_accepted_exactly_within_the_window() {
    let k = key(Algorithm::Es256);
    let at = |iat: i64| {
        proof_with(
            &*k,
            |_| {},
            |c| {
                c.insert("iat".into(), json!(iat));
            },
        )
    };
    let max_age = DEFAULT_MAX_AGE_SECS;
    verify(&at(NOW - max_age), &at_token()).unwrap();
    assert!(matches!(
        verify(&at(NOW - max_age - 1), &at_token()),
        Err(DpopError::TooOld)
    ));
    verify(&at(NOW + 10), &at_token()).unwrap();
    assert!(matches!(
        verify(&at(NOW + 11), &at_token()),
        Err(DpopError::IssuedInTheFuture)
    ));
    // a verifier with a shorter window
    let short = verifier().with_max_age(5);
    assert!(short.verify(&at(NOW - 5), &at_token(), now()).is_ok());
    assert!(matches!(
        short.verify(&at(NOW - 6), &at_token(), now()),
        Err(DpopError::TooOld)
    ));
}

#[test]
fn at_a_resource_ath_binds_the_proof_to_the_access_token() {
    let k = key(Algorithm::Es256);
    let url = "https://api.bank.example/accounts";
    let request = DpopRequest {
        method: "GET",
        url,
        access_token: Some("the-access-token"),
        nonces: None,
    };
    let ok = sign_dpop_proof(&*k, "GET", url, Some("the-access-token"), None, now()).unwrap();
    verify(&ok, &request).unwrap();
    let other = sign_dpop_proof(&*k, "GET", url, Some("another-token"), None, now()).unwrap();
    assert!(matches!(
        verify(&other, &request),
        Err(DpopError::AccessTokenHashMismatch)
    ));
    let none = sign_dpop_proof(&*k, "GET", url, None, None, now()).unwrap();
    assert!(matches!(
        verify(&none, &request),
        Err(DpopError::MissingAccessTokenHash)
    ));
    let number = proof_with(
        &*k,
        |_| {},
        |c| {
            c.insert("htm".into(), json!("GET"));
            c.insert("htu".into(), json!(url));
            c.insert("ath".into(), json!(7));
        },
    );
    assert!(matches!(
        verify(&number, &request),
        Err(DpopError::Claim("ath"))
    ));
}

#[test]
fn a_server_nonce_is_required_when_demanded_and_rotates() {
    let k = key(Algorithm::Es256);
    let nonces = DpopNonces::new([7; 32], 300);
    let request = DpopRequest {
        nonces: Some(&nonces),
        ..at_token()
    };
    let with =
        |nonce: Option<&str>| sign_dpop_proof(&*k, "POST", TOKEN_URL, None, nonce, now()).unwrap();
    let e = verify(&with(None), &request).unwrap_err();
    assert!(matches!(e, DpopError::UseNonce));
    assert_eq!(e.error_code(), ErrorCode::UseDpopNonce);
    let current = nonces.issue(now());
    verify(&with(Some(&current)), &request).unwrap();
    // the previous period's nonce still works; two periods back does not
    let previous = nonces.issue(UnixTime::from_secs(NOW - 300).unwrap());
    verify(&with(Some(&previous)), &request).unwrap();
    let stale = nonces.issue(UnixTime::from_secs(NOW - 600).unwrap());
    assert!(matches!(
        verify(&with(Some(&stale)), &request),
        Err(DpopError::UseNonce)
    ));
    // another server's nonce, a made-up one, a future one
    let other = DpopNonces::new([8; 32], 300).issue(now());
    assert!(matches!(
        verify(&with(Some(&other)), &request),
        Err(DpopError::UseNonce)
    ));
    assert!(matches!(
        verify(&with(Some("nonce")), &request),
        Err(DpopError::UseNonce)
    ));
    let ahead = nonces.issue(UnixTime::from_secs(NOW + 300).unwrap());
    assert!(matches!(
        verify(&with(Some(&ahead)), &request),
        Err(DpopError::UseNonce)
    ));
    // instances sharing the secret agree
    assert!(DpopNonces::new([7; 32], 300).accepts(&current, now()));
}

#[test]
fn a_proof_is_used_once_per_server() {
    let k = key(Algorithm::Es256);
    let cache = InMemoryReplayCache::new(100);
    let proof = sign_dpop_proof(&*k, "POST", TOKEN_URL, None, None, now()).unwrap();
    let record = |scope: &str| {
        let pending = verifier().verify(&proof, &at_token(), now()).unwrap();
        futures_executor::block_on(pending.record_jti(&cache, scope, now()))
    };
    record("bank").unwrap();
    assert!(matches!(record("bank"), Err(DpopError::Replay)));
    // a separate server keeps its own record
    record("another-bank").unwrap();
}

/// Many tasks racing one proof: exactly one records it.
#[test]
fn racing_uses_of_one_proof_succeed_once() {
    let k = key(Algorithm::Es256);
    let cache = Arc::new(InMemoryReplayCache::new(1000));
    let proof = Arc::new(sign_dpop_proof(&*k, "POST", TOKEN_URL, None, None, now()).unwrap());
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let (cache, proof) = (cache.clone(), proof.clone());
            std::thread::spawn(move || {
                let pending = verifier().verify(&proof, &at_token(), now()).unwrap();
                futures_executor::block_on(pending.record_jti(&*cache, "bank", now())).is_ok()
            })
        })
        .collect();
    let wins = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|won| *won)
        .count();
    assert_eq!(wins, 1);
}

#[test]
fn a_jkt_bound_token_binds_only_to_a_dpop_proof_of_its_key() {
    let (k, other) = (key(Algorithm::Es256), key(Algorithm::Es256));
    let cache = InMemoryReplayCache::new(100);
    let prove = |key: &dyn SigningKey| -> DpopProof {
        let p = sign_dpop_proof(key, "POST", TOKEN_URL, None, None, now()).unwrap();
        let pending = verifier().verify(&p, &at_token(), now()).unwrap();
        futures_executor::block_on(pending.record_jti(&cache, "bank", now())).unwrap()
    };
    let proof = prove(&*k);
    let bound = Confirmation::JwkThumbprint(*proof.jkt());
    bound.check(&proof).unwrap();
    assert_eq!(bound.check(&prove(&*other)), Err(BindingError::KeyMismatch));
    // a certificate-bound token never binds to a DPoP proof
    let by_certificate = Confirmation::CertificateThumbprint(CertificateThumbprint::from_bytes(
        *proof.jkt().as_bytes(),
    ));
    assert_eq!(
        by_certificate.check(&proof),
        Err(BindingError::MethodMismatch)
    );
}

#[test]
fn an_oversized_proof_is_refused_before_parsing() {
    // within the JOSE layer's bound for other tokens, beyond a proof's
    let huge = format!("{}.{}.{}", "a".repeat(5_000), "b".repeat(5_000), "c");
    assert!(matches!(
        verify(&huge, &at_token()),
        Err(DpopError::Jose(JoseError::TooLarge { max: 8192 }))
    ));
}

/// `dpop_jkt` / `cnf.jkt` text: exactly 43 base64url characters of a
/// SHA-256 digest; a store reads back what it wrote.
#[test]
fn jwk_thumbprints_read_back_strictly() {
    let jkt = key(Algorithm::Es256).public_key().thumbprint();
    let text = jkt.to_b64url();
    assert_eq!(
        fapi_core::crypto::JwkThumbprint::from_b64url(&text),
        Some(jkt)
    );
    let json = serde_json::to_value(jkt).unwrap();
    assert_eq!(json, json!(text));
    assert_eq!(
        serde_json::from_value::<fapi_core::crypto::JwkThumbprint>(json).unwrap(),
        jkt
    );
    for bad in [
        format!("{text}="),
        text[..42].to_owned(),
        format!("{text}A"),
        text.replace(|c: char| c.is_ascii_alphabetic(), "+"),
        String::new(),
    ] {
        assert_eq!(
            fapi_core::crypto::JwkThumbprint::from_b64url(&bad),
            None,
            "{bad}"
        );
        assert!(serde_json::from_value::<fapi_core::crypto::JwkThumbprint>(json!(bad)).is_err());
    }
}
