//! One named negative test per JOSE rule of FAPI-RULES.md "JOSE", each next
//! to a happy twin that differs only in the rule under test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::*;
use fapi_core::claims::ClaimError;
use fapi_core::crypto::Algorithm;
use fapi_core::encoding::b64url_encode;
use fapi_core::jose::{
    ExpectedType, JoseError, JwsPolicy, Part, UnverifiedJws, VerifiedJws, MAX_TOKEN_LEN,
};
use fapi_core::jwk::{Jwk, JwkSet, KeySelectionError, KeySet};
use fapi_core::Profile;
use serde_json::json;

const FAPI2: JwsPolicy<'static> = JwsPolicy::new(
    &[Algorithm::Ps256, Algorithm::Es256, Algorithm::EdDsa],
    ExpectedType::Exact("at+jwt"),
);

fn claims() -> serde_json::Value {
    json!({ "iss": ISSUER, "sub": "alice", "exp": NOW + 60, "iat": NOW })
}

fn verify(token: &str) -> Result<VerifiedJws, JoseError> {
    verify_with(token, &FAPI2)
}

fn verify_with(token: &str, policy: &JwsPolicy<'_>) -> Result<VerifiedJws, JoseError> {
    UnverifiedJws::parse(token)?.verify(&key_set(keys()), policy)
}

fn good(alg: Algorithm) -> String {
    sign(keys(), alg, Some("at+jwt"), json!({}), claims())
}

fn segments(token: &str) -> Vec<String> {
    token.split('.').map(str::to_owned).collect()
}

#[test]
fn happy_every_algorithm_and_provider_round_trips() {
    for k in providers() {
        let set = key_set(k);
        for alg in Algorithm::ALL {
            let t = sign(k, alg, Some("at+jwt"), json!({}), claims());
            let v = UnverifiedJws::parse(&t)
                .unwrap()
                .verify(&set, &FAPI2)
                .unwrap();
            assert_eq!(
                v.claims().string("sub").unwrap(),
                Some("alice"),
                "{} {alg}",
                k.name()
            );
        }
    }
}

#[test]
fn alg_none_in_every_case_rejected_before_crypto() {
    for none in ["none", "None", "NONE", "nOnE"] {
        let h =
            b64url_encode(format!(r#"{{"alg":"{none}","typ":"at+jwt","kid":"es"}}"#).as_bytes());
        let p = b64url_encode(claims().to_string().as_bytes());
        // empty signature, as an unsecured JWS has
        let t = format!("{h}.{p}.");
        assert_eq!(
            verify(&t).unwrap_err(),
            JoseError::AlgorithmNotPermitted,
            "{none}"
        );
    }
    assert!(verify(&good(Algorithm::Es256)).is_ok());
}

#[test]
fn alg_hs256_and_rs256_rejected() {
    for alg in [
        "HS256", "HS384", "HS512", "RS256", "ps256", "es256", "EDDSA",
    ] {
        let v = segments(&good(Algorithm::Es256));
        let (p, s) = (&v[1], &v[2]);
        let h = b64url_encode(format!(r#"{{"alg":"{alg}","typ":"at+jwt","kid":"es"}}"#).as_bytes());
        assert_eq!(
            verify(&format!("{h}.{p}.{s}")).unwrap_err(),
            JoseError::AlgorithmNotPermitted,
            "{alg}"
        );
    }
}

#[test]
fn alg_not_in_profile_rejected_eddsa_under_fapi1() {
    let fapi1 = JwsPolicy::new(Profile::Fapi1Advanced.algorithms(), FAPI2.typ);
    let t = good(Algorithm::EdDsa);
    assert_eq!(
        verify_with(&t, &fapi1).unwrap_err(),
        JoseError::AlgorithmNotAllowed(Algorithm::EdDsa)
    );
    assert!(verify_with(&good(Algorithm::Es256), &fapi1).is_ok());
    assert!(verify_with(&t, &FAPI2).is_ok());
}

#[test]
fn alg_header_must_match_key_type() {
    // an ES256 signature presented as PS256 finds no PS256 key with kid "es"
    let mut h = json!({ "alg": "PS256", "typ": "at+jwt", "kid": "es" });
    let t = sign(keys(), Algorithm::Es256, None, json!({}), claims());
    let v = segments(&t);
    h["kid"] = json!("es");
    let forged = format!(
        "{}.{}.{}",
        b64url_encode(h.to_string().as_bytes()),
        v[1],
        v[2]
    );
    assert_eq!(
        verify(&forged).unwrap_err(),
        JoseError::Key(KeySelectionError::NotFound)
    );
}

#[test]
fn embedded_key_sources_rejected() {
    let attacker_jwk = Jwk::from_public_key(attacker().es256.public_key().clone(), None).to_json();
    for (name, value) in [
        ("jwk", attacker_jwk),
        ("jku", json!("https://attacker.example/jwks")),
        ("x5u", json!("https://attacker.example/cert.pem")),
        ("x5c", json!(["MIIB"])),
    ] {
        let t = sign(
            attacker(),
            Algorithm::Es256,
            Some("at+jwt"),
            json!({ name: value }),
            claims(),
        );
        assert_eq!(
            UnverifiedJws::parse(&t).unwrap_err(),
            JoseError::EmbeddedKeySource(match name {
                "jwk" => "jwk",
                "jku" => "jku",
                "x5u" => "x5u",
                _ => "x5c",
            })
        );
    }
    assert!(verify(&good(Algorithm::Es256)).is_ok());
}

#[test]
fn token_signed_by_unregistered_key_rejected() {
    let t = sign(
        attacker(),
        Algorithm::Es256,
        Some("at+jwt"),
        json!({}),
        claims(),
    );
    assert_eq!(verify(&t).unwrap_err(), JoseError::BadSignature);
}

#[test]
fn unknown_crit_rejected() {
    let t = sign(
        keys(),
        Algorithm::Es256,
        Some("at+jwt"),
        json!({ "crit": ["exp2"], "exp2": 1 }),
        claims(),
    );
    assert_eq!(verify(&t).unwrap_err(), JoseError::UnknownCritical);
    let understood = FAPI2.understanding(&["exp2"]);
    assert!(verify_with(&t, &understood).is_ok());
}

#[test]
fn malformed_crit_rejected() {
    for crit in [
        json!([]),
        json!("exp2"),
        json!(["exp2", "exp2"]),
        json!([""]),
        json!(["absent"]),
        json!([1]),
    ] {
        let t = sign(
            keys(),
            Algorithm::Es256,
            Some("at+jwt"),
            json!({ "crit": crit, "exp2": 1 }),
            claims(),
        );
        assert_eq!(
            UnverifiedJws::parse(&t).unwrap_err(),
            JoseError::MalformedCritical,
            "{crit}"
        );
    }
}

#[test]
fn b64_false_rejected_outside_detached_signatures() {
    let t = sign(
        keys(),
        Algorithm::Es256,
        Some("at+jwt"),
        json!({ "b64": false, "crit": ["b64"] }),
        claims(),
    );
    assert_eq!(verify(&t).unwrap_err(), JoseError::UnknownCritical);
    let t = sign(
        keys(),
        Algorithm::Es256,
        Some("at+jwt"),
        json!({ "b64": false }),
        claims(),
    );
    assert_eq!(
        verify(&t).unwrap_err(),
        JoseError::UnencodedPayloadNotAllowed
    );
}

#[test]
fn typ_missing_rejected_where_explicit_typing_required() {
    let t = sign(keys(), Algorithm::Es256, None, json!({}), claims());
    assert_eq!(
        verify(&t).unwrap_err(),
        JoseError::MissingType { expected: "at+jwt" }
    );
}

#[test]
fn typ_of_another_kind_rejected() {
    for other in ["oauth-authz-req+jwt", "dpop+jwt", "JWT", "at+jwt2", "at"] {
        let t = sign(keys(), Algorithm::Es256, Some(other), json!({}), claims());
        assert_eq!(
            verify(&t).unwrap_err(),
            JoseError::WrongType { expected: "at+jwt" },
            "{other}"
        );
    }
    // RFC 7515 §4.1.9: case-insensitive, `application/` prefix optional
    for same in [
        "at+jwt",
        "AT+JWT",
        "application/at+jwt",
        "Application/At+Jwt",
    ] {
        let t = sign(keys(), Algorithm::Es256, Some(same), json!({}), claims());
        assert!(verify(&t).is_ok(), "{same}");
    }
}

#[test]
fn typ_jwt_or_absent_rejects_explicit_other_kinds() {
    let policy = JwsPolicy::new(FAPI2.algorithms, ExpectedType::JwtOrAbsent);
    assert!(verify_with(
        &sign(keys(), Algorithm::Es256, None, json!({}), claims()),
        &policy
    )
    .is_ok());
    assert!(verify_with(
        &sign(keys(), Algorithm::Es256, Some("JWT"), json!({}), claims()),
        &policy
    )
    .is_ok());
    let at = sign(
        keys(),
        Algorithm::Es256,
        Some("at+jwt"),
        json!({}),
        claims(),
    );
    assert_eq!(
        verify_with(&at, &policy).unwrap_err(),
        JoseError::WrongType { expected: "JWT" }
    );
}

#[test]
fn segment_count_must_be_three() {
    let t = good(Algorithm::Es256);
    let v = segments(&t);
    for bad in [
        format!("{}.{}", v[0], v[1]),
        format!("{t}."),
        format!("{t}.{}", v[2]),
        format!("{}.{}.{}.{}.{}", v[0], v[1], v[2], v[2], v[2]), // JWE-shaped
        String::new(),
    ] {
        assert_eq!(
            UnverifiedJws::parse(&bad).unwrap_err(),
            JoseError::SegmentCount
        );
    }
    assert!(verify(&t).is_ok());
}

#[test]
fn base64_padding_whitespace_and_noncanonical_bits_rejected() {
    let t = good(Algorithm::Es256);
    let v = segments(&t);
    let parts = [Part::Header, Part::Payload, Part::Signature];
    for (i, part) in parts.iter().enumerate() {
        let mut padded = v.clone();
        padded[i].push('=');
        let mut spaced = v.clone();
        spaced[i].insert(2, ' ');
        let mut std_alphabet = v.clone();
        std_alphabet[i] = std_alphabet[i].replace('-', "+").replace('_', "/");
        for bad in [padded, spaced] {
            assert_eq!(
                UnverifiedJws::parse(&bad.join(".")).unwrap_err(),
                JoseError::Base64(*part)
            );
        }
        if std_alphabet[i] != v[i] {
            assert_eq!(
                UnverifiedJws::parse(&std_alphabet.join(".")).unwrap_err(),
                JoseError::Base64(*part)
            );
        }
    }
    // ES256 signature: 64 bytes = 86 chars with 4 spare bits; flip one
    let sig = &v[2];
    let last = sig.chars().last().unwrap();
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let idx = alphabet.find(last).unwrap();
    let noncanonical = alphabet.chars().nth(idx ^ 1).unwrap();
    let bad = format!(
        "{}.{}.{}{}",
        v[0],
        v[1],
        &sig[..sig.len() - 1],
        noncanonical
    );
    assert_eq!(
        UnverifiedJws::parse(&bad).unwrap_err(),
        JoseError::Base64(Part::Signature)
    );
}

#[test]
fn oversized_token_rejected_before_parsing() {
    let big = "a".repeat(MAX_TOKEN_LEN + 1);
    assert_eq!(
        UnverifiedJws::parse(&big).unwrap_err(),
        JoseError::TooLarge { max: MAX_TOKEN_LEN }
    );
    // a large but allowed token still verifies
    let mut c = claims();
    c["pad"] = json!("x".repeat(40_000));
    assert!(verify(&sign(
        keys(),
        Algorithm::Es256,
        Some("at+jwt"),
        json!({}),
        c
    ))
    .is_ok());
}

#[test]
fn duplicate_member_names_rejected_in_header_and_payload() {
    let dup_header = r#"{"alg":"ES256","kid":"es","typ":"at+jwt","typ":"JWT"}"#;
    let payload = claims().to_string();
    let t = sign_raw(keys(), Algorithm::Es256, dup_header, &payload);
    assert_eq!(
        UnverifiedJws::parse(&t).unwrap_err(),
        JoseError::Json {
            part: Part::Header,
            problem: fapi_core::json::JsonError::DuplicateMember
        }
    );
    let header = r#"{"alg":"ES256","kid":"es","typ":"at+jwt"}"#;
    let dup_payload = format!(r#"{{"sub":"alice","exp":{},"sub":"mallory"}}"#, NOW + 60);
    let t = sign_raw(keys(), Algorithm::Es256, header, &dup_payload);
    assert_eq!(
        verify(&t).unwrap_err(),
        JoseError::Json {
            part: Part::Payload,
            problem: fapi_core::json::JsonError::DuplicateMember
        }
    );
    let ok_payload = format!(r#"{{"sub":"alice","exp":{}}}"#, NOW + 60);
    assert!(verify(&sign_raw(keys(), Algorithm::Es256, header, &ok_payload)).is_ok());
}

#[test]
fn json_depth_is_bounded() {
    let header = r#"{"alg":"ES256","kid":"es","typ":"at+jwt"}"#;
    let deep = format!(r#"{{"x":{}1{}}}"#, "[".repeat(40), "]".repeat(40));
    let t = sign_raw(keys(), Algorithm::Es256, header, &deep);
    assert_eq!(
        verify(&t).unwrap_err(),
        JoseError::Json {
            part: Part::Payload,
            problem: fapi_core::json::JsonError::TooDeep
        }
    );
    let shallow = format!(r#"{{"x":{}1{}}}"#, "[".repeat(5), "]".repeat(5));
    assert!(verify(&sign_raw(keys(), Algorithm::Es256, header, &shallow)).is_ok());
}

#[test]
fn payload_must_be_a_json_object() {
    let header = r#"{"alg":"ES256","kid":"es","typ":"at+jwt"}"#;
    for p in ["[1]", "\"x\"", "1", "{\"a\":1} trailing"] {
        let t = sign_raw(keys(), Algorithm::Es256, header, p);
        assert!(
            matches!(
                verify(&t).unwrap_err(),
                JoseError::Json {
                    part: Part::Payload,
                    ..
                }
            ),
            "{p}"
        );
    }
}

#[test]
fn header_member_types_enforced() {
    for (h, want) in [
        (
            r#"{"kid":"es","typ":"at+jwt"}"#,
            JoseError::MissingAlgorithm,
        ),
        (
            r#"{"alg":["ES256"],"kid":"es"}"#,
            JoseError::HeaderType("alg"),
        ),
        (r#"{"alg":"ES256","kid":1}"#, JoseError::HeaderType("kid")),
        (
            r#"{"alg":"ES256","kid":"es","typ":null}"#,
            JoseError::HeaderType("typ"),
        ),
    ] {
        let t = sign_raw(keys(), Algorithm::Es256, h, &claims().to_string());
        assert_eq!(UnverifiedJws::parse(&t).unwrap_err(), want, "{h}");
    }
}

/// CVE-2022-21449 ("psychic signatures"): r = s = 0, or r, s >= n, never verify.
#[test]
fn ecdsa_signature_with_zero_or_out_of_range_scalars_rejected() {
    const N: &str = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";
    let hexb = |s: &str| {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect::<Vec<u8>>()
    };
    for k in providers() {
        let set = key_set(k);
        let t = sign(k, Algorithm::Es256, Some("at+jwt"), json!({}), claims());
        let v = segments(&t);
        let zero = vec![0u8; 64];
        let mut n_n = hexb(N);
        n_n.extend(hexb(N));
        // r = n (out of range by one), s = the genuine s
        let mut r_is_n = fapi_core_decode(&v[2]);
        r_is_n[..32].copy_from_slice(&hexb(N));
        for sig in [zero, n_n, r_is_n] {
            let forged = format!("{}.{}.{}", v[0], v[1], b64url_encode(&sig));
            let r = UnverifiedJws::parse(&forged).unwrap().verify(&set, &FAPI2);
            assert_eq!(r.unwrap_err(), JoseError::BadSignature, "{}", k.name());
        }
        assert!(UnverifiedJws::parse(&t)
            .unwrap()
            .verify(&set, &FAPI2)
            .is_ok());
    }
}

/// ES256 signatures are P1363 `r || s`, never DER.
#[test]
fn ecdsa_der_signature_rejected() {
    let t = good(Algorithm::Es256);
    let v = segments(&t);
    let raw = fapi_core_decode(&v[2]);
    let int = |b: &[u8]| {
        let mut b: Vec<u8> = b.iter().copied().skip_while(|x| *x == 0).collect();
        if b[0] & 0x80 != 0 {
            b.insert(0, 0);
        }
        let mut out = vec![0x02, b.len() as u8];
        out.extend(b);
        out
    };
    let mut body = int(&raw[..32]);
    body.extend(int(&raw[32..]));
    let mut der = vec![0x30, body.len() as u8];
    der.extend(body);
    let forged = format!("{}.{}.{}", v[0], v[1], b64url_encode(&der));
    assert_eq!(verify(&forged).unwrap_err(), JoseError::BadSignature);
    assert!(verify(&t).is_ok());
}

#[test]
fn tampered_payload_or_signature_rejected() {
    for alg in Algorithm::ALL {
        let t = good(alg);
        let v = segments(&t);
        let mut c = claims();
        c["sub"] = json!("mallory");
        let swapped = format!(
            "{}.{}.{}",
            v[0],
            b64url_encode(c.to_string().as_bytes()),
            v[2]
        );
        assert_eq!(
            verify(&swapped).unwrap_err(),
            JoseError::BadSignature,
            "{alg}"
        );
        let mut sig = fapi_core_decode(&v[2]);
        sig[10] ^= 1;
        let flipped = format!("{}.{}.{}", v[0], v[1], b64url_encode(&sig));
        assert_eq!(
            verify(&flipped).unwrap_err(),
            JoseError::BadSignature,
            "{alg}"
        );
        assert!(verify(&t).is_ok());
    }
}

#[test]
fn key_selection_by_kid_then_algorithm() {
    // kid names a key of another type: no key found
    let t = sign(
        keys(),
        Algorithm::Es256,
        Some("at+jwt"),
        json!({ "kid": "ps" }),
        claims(),
    );
    assert_eq!(
        verify(&t).unwrap_err(),
        JoseError::Key(KeySelectionError::NotFound)
    );
    // unknown kid
    let t = sign(
        keys(),
        Algorithm::Es256,
        Some("at+jwt"),
        json!({ "kid": "nope" }),
        claims(),
    );
    assert_eq!(
        verify(&t).unwrap_err(),
        JoseError::Key(KeySelectionError::NotFound)
    );
    // kid compared exactly
    let t = sign(
        keys(),
        Algorithm::Es256,
        Some("at+jwt"),
        json!({ "kid": "ES" }),
        claims(),
    );
    assert_eq!(
        verify(&t).unwrap_err(),
        JoseError::Key(KeySelectionError::NotFound)
    );
}

#[test]
fn ambiguous_key_selection_rejected() {
    let k = keys();
    let two_es = JwkSet::new(vec![
        Jwk::from_public_key(k.es256.public_key().clone(), None),
        Jwk::from_public_key(attacker().es256.public_key().clone(), None),
    ]);
    let set =
        KeySet::from_jwks(&two_es, &*k.provider, &Profile::Fapi2Security.key_policy()).unwrap();
    let no_kid = sign_raw(
        k,
        Algorithm::Es256,
        r#"{"alg":"ES256","typ":"at+jwt"}"#,
        &claims().to_string(),
    );
    assert_eq!(
        UnverifiedJws::parse(&no_kid)
            .unwrap()
            .verify(&set, &FAPI2)
            .unwrap_err(),
        JoseError::Key(KeySelectionError::Ambiguous)
    );
    // with only one candidate, no kid is needed
    let one = JwkSet::new(vec![Jwk::from_public_key(
        k.es256.public_key().clone(),
        None,
    )]);
    let set = KeySet::from_jwks(&one, &*k.provider, &Profile::Fapi2Security.key_policy()).unwrap();
    assert!(UnverifiedJws::parse(&no_kid)
        .unwrap()
        .verify(&set, &FAPI2)
        .is_ok());
}

#[test]
fn keys_whose_use_forbids_signing_are_not_used() {
    let k = keys();
    let mut enc = Jwk::from_public_key(k.es256.public_key().clone(), Some("es".into())).to_json();
    enc["use"] = json!("enc");
    let set_json = json!({ "keys": [enc] }).to_string();
    let set = KeySet::from_jwks(
        &JwkSet::from_json(set_json.as_bytes()).unwrap(),
        &*k.provider,
        &Profile::Fapi2Security.key_policy(),
    )
    .unwrap();
    let t = good(Algorithm::Es256);
    assert_eq!(
        UnverifiedJws::parse(&t)
            .unwrap()
            .verify(&set, &FAPI2)
            .unwrap_err(),
        JoseError::Key(KeySelectionError::NotFound)
    );
    let mut ops = Jwk::from_public_key(k.es256.public_key().clone(), Some("es".into())).to_json();
    ops["key_ops"] = json!(["encrypt"]);
    let set = KeySet::from_jwks(
        &JwkSet::from_json(json!({ "keys": [ops] }).to_string().as_bytes()).unwrap(),
        &*k.provider,
        &Profile::Fapi2Security.key_policy(),
    )
    .unwrap();
    assert!(set.entries().is_empty());
}

#[test]
fn numeric_dates_must_be_json_integers() {
    for bad in [
        json!("1900000060"),
        json!(1_900_000_060.5),
        json!(-1),
        json!(1e30),
        json!(null),
        json!(true),
    ] {
        let mut c = claims();
        c["exp"] = bad.clone();
        let v = verify(&sign(
            keys(),
            Algorithm::Es256,
            Some("at+jwt"),
            json!({}),
            c,
        ))
        .unwrap();
        assert_eq!(
            v.claims().numeric_date("exp").unwrap_err(),
            ClaimError::NotNumericDate("exp"),
            "{bad}"
        );
    }
    let v = verify(&good(Algorithm::Es256)).unwrap();
    assert_eq!(v.claims().numeric_date("exp").unwrap(), Some(at(60)));
    assert_eq!(v.claims().numeric_date("nbf").unwrap(), None);
}

fn fapi_core_decode(s: &str) -> Vec<u8> {
    use base64ct::{Base64UrlUnpadded, Encoding};
    Base64UrlUnpadded::decode_vec(s).unwrap()
}

/// RFC 7519 §5.2: `cty: JWT` marks a nested JWT, whose payload is another
/// token. It was refused only by accident (the payload was not a claims
/// object); now it is a named rule, checked before the signature.
#[test]
fn nested_jwt_refused_by_its_own_rule() {
    let inner = good(Algorithm::Es256);
    for cty in ["JWT", "jwt", "application/JWT"] {
        // even a payload that is a claims object is refused
        let t = sign(
            keys(),
            Algorithm::Es256,
            Some("at+jwt"),
            json!({ "cty": cty }),
            claims(),
        );
        assert_eq!(verify(&t).unwrap_err(), JoseError::NestedJwt, "{cty}");
        let nested = sign_raw(
            keys(),
            Algorithm::Es256,
            &format!(r#"{{"alg":"ES256","kid":"es","typ":"at+jwt","cty":"{cty}"}}"#),
            &inner,
        );
        assert_eq!(verify(&nested).unwrap_err(), JoseError::NestedJwt, "{cty}");
    }
    // the twins: no cty, or a content type that is not a JWT
    assert!(verify(&good(Algorithm::Es256)).is_ok());
    let json_cty = sign(
        keys(),
        Algorithm::Es256,
        Some("at+jwt"),
        json!({ "cty": "json" }),
        claims(),
    );
    assert!(verify(&json_cty).is_ok());
    // a cty that is not a string is a header type error
    let t = sign(
        keys(),
        Algorithm::Es256,
        Some("at+jwt"),
        json!({ "cty": 1 }),
        claims(),
    );
    assert_eq!(verify(&t).unwrap_err(), JoseError::HeaderType("cty"));
}
