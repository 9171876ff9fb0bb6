//! Published vectors: RFC 7638 §3.1 (JWK thumbprint), RFC 7515 App. A.3
//! (ES256 JWS), RFC 8037 App. A.4 (Ed25519 JWS); RFC 7636 App. B is a unit
//! test beside `pkce`. Plus JWK parsing rules and PKCS#8 PEM round trips.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::*;
use fapi_core::crypto::{
    signing_key_from_pkcs8_pem, signing_key_to_pkcs8_pem, Algorithm, KeyError, KeyPolicy,
};
use fapi_core::jose::{ExpectedType, JwsPolicy, UnverifiedJws};
use fapi_core::jwk::{Jwk, JwkError, JwkSet, KeySet};
use fapi_core::testing::all_providers;
use fapi_core::Profile;
use serde_json::json;

const RFC7638_N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";

/// RFC 7638 §3.1: the thumbprint ignores optional members (kid, use).
#[test]
fn rfc7638_section_3_1_thumbprint() {
    let jwk =
        json!({ "kty": "RSA", "n": RFC7638_N, "e": "AQAB", "kid": "2011-04-29", "use": "sig" });
    let jwk = Jwk::from_json_object(jwk.as_object().unwrap()).unwrap();
    assert_eq!(
        jwk.thumbprint().to_b64url(),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
}

/// The RFC's key is published with `"alg":"RS256"`: such a key is never used
/// for PS256, it is rejected.
#[test]
fn jwk_marked_rs256_is_rejected_not_repurposed() {
    let jwk = json!({ "kty": "RSA", "n": RFC7638_N, "e": "AQAB", "alg": "RS256" });
    assert_eq!(
        Jwk::from_json_object(jwk.as_object().unwrap()).unwrap_err(),
        JwkError::AlgMismatch
    );
    let es_marked = json!({ "kty": "RSA", "n": RFC7638_N, "e": "AQAB", "alg": "ES256" });
    assert_eq!(
        Jwk::from_json_object(es_marked.as_object().unwrap()).unwrap_err(),
        JwkError::AlgMismatch
    );
    let ps = json!({ "kty": "RSA", "n": RFC7638_N, "e": "AQAB", "alg": "PS256" });
    assert!(Jwk::from_json_object(ps.as_object().unwrap()).is_ok());
}

const A3_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
const A3_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
const A3_JWS: &str = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

/// RFC 7515 Appendix A.3: the ES256 example verifies through the full JWS path
/// in every provider, and a one-bit change does not.
#[test]
fn rfc7515_appendix_a3_es256() {
    let policy = JwsPolicy::new(&[Algorithm::Es256], ExpectedType::JwtOrAbsent);
    let jwks = JwkSet::from_json(
        json!({ "keys": [{ "kty": "EC", "crv": "P-256", "x": A3_X, "y": A3_Y }] })
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    for p in all_providers() {
        let set = KeySet::from_jwks(&jwks, &*p, &Profile::Fapi2Security.key_policy()).unwrap();
        let v = UnverifiedJws::parse(A3_JWS)
            .unwrap()
            .verify(&set, &policy)
            .unwrap();
        assert_eq!(
            v.claims().string("iss").unwrap(),
            Some("joe"),
            "{}",
            p.name()
        );
        assert_eq!(
            v.claims().get("http://example.com/is_root"),
            Some(&json!(true))
        );
        let tampered = format!("{}A", &A3_JWS[..A3_JWS.len() - 1]);
        assert!(UnverifiedJws::parse(&tampered)
            .unwrap()
            .verify(&set, &policy)
            .is_err());
    }
}

/// RFC 8037 Appendix A.4: Ed25519 over the non-JSON payload "Example of
/// Ed25519 signing", checked at the provider level (a JWT verifier refuses a
/// non-JSON payload by design).
#[test]
fn rfc8037_appendix_a4_ed25519() {
    let jwk = json!({ "kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" });
    let jwk = Jwk::from_json_object(jwk.as_object().unwrap()).unwrap();
    let input = b"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
    let sig = {
        use base64ct::{Base64UrlUnpadded, Encoding};
        Base64UrlUnpadded::decode_vec("hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg").unwrap()
    };
    for p in all_providers() {
        let k = p.verifying_key(jwk.material()).unwrap();
        assert!(k.verify(input, &sig).is_ok(), "{}", p.name());
        assert!(k
            .verify(
                b"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbme",
                &sig
            )
            .is_err());
    }
}

#[test]
fn jwk_with_private_material_rejected() {
    for member in ["d", "p", "q", "dp", "dq", "qi", "k"] {
        let mut jwk = Jwk::from_public_key(keys().es256.public_key().clone(), None).to_json();
        jwk[member] = json!("AAAA");
        let set = json!({ "keys": [jwk] }).to_string();
        assert_eq!(
            JwkSet::from_json(set.as_bytes()).unwrap_err().reason(),
            &JwkError::PrivateKeyMaterial,
            "{member}"
        );
    }
}

#[test]
fn jwk_shape_rules() {
    let ok = Jwk::from_public_key(keys().es256.public_key().clone(), None).to_json();
    assert!(Jwk::from_json_object(ok.as_object().unwrap()).is_ok());
    let mut short = ok.clone();
    short["x"] = json!("AAAA");
    assert_eq!(
        Jwk::from_json_object(short.as_object().unwrap()).unwrap_err(),
        JwkError::WrongLength("x")
    );
    let mut padded = ok.clone();
    padded["y"] = json!(format!("{}=", ok["y"].as_str().unwrap()));
    assert_eq!(
        Jwk::from_json_object(padded.as_object().unwrap()).unwrap_err(),
        JwkError::Malformed("y")
    );
    let leading_zero = json!({ "kty": "RSA", "n": format!("AA{}", &RFC7638_N[2..]), "e": "AQAB" });
    // 'AA' decodes a leading zero octet
    assert_eq!(
        Jwk::from_json_object(leading_zero.as_object().unwrap()).unwrap_err(),
        JwkError::NonMinimal("n")
    );
    // a point that is not on the curve is refused when the key set is built
    let mut off_curve = ok.clone();
    off_curve["y"] = ok["x"].clone();
    let set = JwkSet::from_json(json!({ "keys": [off_curve] }).to_string().as_bytes()).unwrap();
    for p in all_providers() {
        assert!(
            matches!(
                KeySet::from_jwks(&set, &*p, &Profile::Fapi2Security.key_policy())
                    .unwrap_err()
                    .reason(),
                JwkError::Key(KeyError::Malformed(_))
            ),
            "{}",
            p.name()
        );
    }
}

#[test]
fn jwks_skips_unsupported_key_types_but_keeps_the_rest() {
    let es = Jwk::from_public_key(keys().es256.public_key().clone(), Some("es".into())).to_json();
    let set = json!({ "keys": [
        { "kty": "EC", "crv": "P-384", "x": "AAAA", "y": "AAAA" },
        { "kty": "OKP", "crv": "X25519", "x": "AAAA" },
        { "kty": "RSA-OAEP", "n": "AQAB" },
        es
    ] });
    let set = JwkSet::from_json(set.to_string().as_bytes()).unwrap();
    assert_eq!(set.keys().len(), 1);
    // but an "oct" (HMAC) key is never a key source either
    let oct = json!({ "keys": [{ "kty": "oct", "k": "c2VjcmV0" }] });
    assert_eq!(
        JwkSet::from_json(oct.to_string().as_bytes())
            .unwrap_err()
            .reason(),
        &JwkError::PrivateKeyMaterial
    );
}

#[test]
fn jwks_size_and_count_bounded() {
    let es = Jwk::from_public_key(keys().es256.public_key().clone(), None).to_json();
    let many = json!({ "keys": vec![es.clone(); 65] });
    assert_eq!(
        JwkSet::from_json(many.to_string().as_bytes()).unwrap_err(),
        JwkError::TooManyKeys
    );
    let fine = json!({ "keys": vec![es; 64] });
    assert_eq!(
        JwkSet::from_json(fine.to_string().as_bytes())
            .unwrap()
            .keys()
            .len(),
        64
    );
    let huge = vec![b' '; 300 * 1024];
    assert!(matches!(
        JwkSet::from_json(&huge).unwrap_err(),
        JwkError::TooLarge { .. }
    ));
}

#[test]
fn rsa_key_size_policy() {
    let policy = KeyPolicy::new(2048, 224);
    let ps = keys().ps256.public_key();
    assert_eq!(ps.bits(), 2048);
    assert!(ps.check_policy(&policy).is_ok());
    let strict = KeyPolicy::new(3072, 224);
    assert_eq!(
        ps.check_policy(&strict).unwrap_err(),
        KeyError::TooSmall {
            bits: 2048,
            min: 3072
        }
    );
    // a 1024-bit key: half the RFC 7638 modulus
    let n = {
        use base64ct::{Base64UrlUnpadded, Encoding};
        Base64UrlUnpadded::encode_string(&Base64UrlUnpadded::decode_vec(RFC7638_N).unwrap()[..128])
    };
    let small = json!({ "kty": "RSA", "n": n, "e": "AQAB" });
    let jwk = Jwk::from_json_object(small.as_object().unwrap()).unwrap();
    assert!(matches!(
        jwk.material().check_policy(&policy).unwrap_err(),
        KeyError::TooSmall { min: 2048, .. }
    ));
    let set = JwkSet::new(vec![jwk]);
    assert!(KeySet::from_jwks(&set, &*keys().provider, &policy).is_err());
}

#[test]
fn pkcs8_pem_round_trip_every_algorithm_and_provider() {
    for k in providers() {
        for alg in Algorithm::ALL {
            let pem = signing_key_to_pkcs8_pem(&**k.key(alg)).unwrap();
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
            // loaded by every provider: the same public key
            for p in all_providers() {
                let loaded = signing_key_from_pkcs8_pem(&*p, &pem).unwrap();
                assert_eq!(
                    loaded.public_key(),
                    k.key(alg).public_key(),
                    "{} -> {} {alg}",
                    k.name(),
                    p.name()
                );
                assert_eq!(loaded.algorithm(), alg);
            }
        }
    }
}

#[test]
fn pem_with_wrong_label_or_garbage_rejected() {
    let pem = signing_key_to_pkcs8_pem(&*keys().es256).unwrap();
    let wrong = pem.replace("PRIVATE KEY", "PUBLIC KEY");
    assert!(matches!(
        signing_key_from_pkcs8_pem(&*keys().provider, &wrong).unwrap_err(),
        KeyError::Malformed(_)
    ));
    assert!(signing_key_from_pkcs8_pem(&*keys().provider, "not pem").is_err());
    for p in all_providers() {
        assert!(p
            .signing_key_from_pkcs8_der(b"\x30\x03\x02\x01\x00")
            .is_err());
    }
}

fn rsa_public(e: Vec<u8>) -> fapi_core::crypto::PublicKeyMaterial {
    match keys().ps256.public_key().clone() {
        fapi_core::crypto::PublicKeyMaterial::Rsa { n, .. } => {
            fapi_core::crypto::PublicKeyMaterial::Rsa { n, e }
        }
        _ => unreachable!(),
    }
}

/// AWS-LC loaded an RSA key with e = 1 (every message its own signature
/// base) while the rustcrypto provider refused it: both now apply one rule
/// at key load, with one error.
#[test]
fn rsa_public_exponent_rule_is_the_same_in_every_provider() {
    let big = |v: u64| {
        let b = v.to_be_bytes();
        b[b.iter().position(|x| *x != 0).unwrap_or(7)..].to_vec()
    };
    let refused = [
        vec![1],
        vec![3],
        vec![17],
        big(65_535),
        big(65_538), // even
        big(65_536),
        big((1 << 33) + 1), // above 2^33 - 1
        big(u64::MAX),
        vec![1, 0, 0, 0, 0, 0, 0, 0, 1],
        vec![],
        vec![0, 1, 0, 1], // not minimal: AWS-LC refused it, rustcrypto read it
    ];
    let accepted = [big(65_537), big(65_539), big((1 << 33) - 1)];
    for p in all_providers() {
        for e in &refused {
            assert_eq!(
                p.verifying_key(&rsa_public(e.clone())).unwrap_err(),
                KeyError::RsaExponent,
                "{} e={e:02x?}",
                p.name()
            );
        }
        for e in &accepted {
            assert!(
                p.verifying_key(&rsa_public(e.clone())).is_ok(),
                "{} e={e:02x?}",
                p.name()
            );
        }
    }
    // and through a client's JWKS, named
    let bad = Jwk::from_public_key(rsa_public(vec![1]), Some("e-one".into()));
    let set = JwkSet::new(vec![bad]);
    let e = KeySet::from_jwks(
        &set,
        &*all_providers()[0],
        &Profile::Fapi2Security.key_policy(),
    )
    .unwrap_err();
    assert_eq!(e.reason(), &JwkError::Key(KeyError::RsaExponent));
    assert!(e.to_string().contains("e-one"), "{e}");
}

/// A client's JWKS with one key below the policy next to good keys is
/// refused, and the error names that key, at registration and wherever a
/// key set is built for verification.
#[test]
fn one_bad_key_among_good_ones_is_named() {
    let small_n = {
        let mut n = vec![0xC5u8; 128];
        n[127] |= 1;
        n
    };
    let weak = Jwk::from_public_key(
        fapi_core::crypto::PublicKeyMaterial::Rsa {
            n: small_n,
            e: vec![1, 0, 1],
        },
        Some("legacy-1024".into()),
    );
    let good_es = Jwk::from_public_key(keys().es256.public_key().clone(), Some("es".into()));
    let good_ps = Jwk::from_public_key(keys().ps256.public_key().clone(), Some("ps".into()));
    let set = JwkSet::new(vec![good_es.clone(), weak, good_ps.clone()]);
    let expected = JwkError::InSet {
        index: 1,
        kid: Some("legacy-1024".into()),
        reason: Box::new(JwkError::Key(KeyError::TooSmall {
            bits: 1024,
            min: 2048,
        })),
    };
    for p in all_providers() {
        assert_eq!(
            KeySet::from_jwks(&set, &*p, &Profile::Fapi2Security.key_policy()).unwrap_err(),
            expected
        );
        let e = fapi_core::client::ClientMetadata::new(
            fapi_core::ClientId::try_from("tpp-a").unwrap(),
            fapi_core::client::AuthMethod::PrivateKeyJwt,
            vec![],
            set.clone(),
            &*p,
            Profile::Fapi2Security,
        )
        .unwrap_err();
        assert_eq!(e, expected);
        assert_eq!(
            e.to_string(),
            "jwk set key 1 (kid \"legacy-1024\") is refused: key of 1024 bits is below the minimum of 2048 bits"
        );
    }
    // the twin: the same set without the weak key
    let fine = JwkSet::new(vec![good_es, good_ps]);
    assert_eq!(
        KeySet::from_jwks(
            &fine,
            &*all_providers()[0],
            &Profile::Fapi2Security.key_policy()
        )
        .unwrap()
        .entries()
        .len(),
        2
    );
    // a malformed key in a JWKS document is named by its position and kid
    let doc = json!({ "keys": [
        Jwk::from_public_key(keys().es256.public_key().clone(), Some("a".into())).to_json(),
        { "kty": "EC", "crv": "P-256", "kid": "broken", "x": "AAAA", "y": "AAAA" },
    ] });
    let e = JwkSet::from_json(doc.to_string().as_bytes()).unwrap_err();
    assert_eq!(
        e,
        JwkError::InSet {
            index: 1,
            kid: Some("broken".into()),
            reason: Box::new(JwkError::WrongLength("x"))
        }
    );
    // a kid is repeated at most 64 characters long
    let long = "k".repeat(500);
    let doc =
        json!({ "keys": [{ "kty": "EC", "crv": "P-256", "kid": long, "x": "AAAA", "y": "AAAA" }] });
    let e = JwkSet::from_json(doc.to_string().as_bytes()).unwrap_err();
    assert!(e.to_string().len() < 200, "{e}");
}
