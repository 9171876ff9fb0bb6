//! Interop oracle: `josekit` (OpenSSL). Tokens signed by our providers verify
//! in josekit, tokens signed by josekit verify in ours, for every algorithm
//! and provider; and josekit-signed tokens that break one of our rules are
//! still rejected by us.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::*;
use fapi_core::crypto::{signing_key_to_pkcs8_pem, Algorithm, SigningKey};
use fapi_core::jose::{sign_compact, ExpectedType, JoseError, JwsPolicy, UnverifiedJws};
use fapi_core::jwk::Jwk;
use josekit::jws::{EdDSA, JwsHeader, JwsSigner, JwsVerifier, ES256, HS256, PS256, RS256};
use josekit::jwt::{self, JwtPayload};
use serde_json::json;

const POLICY: JwsPolicy<'static> = JwsPolicy::new(
    &[Algorithm::Ps256, Algorithm::Es256, Algorithm::EdDsa],
    ExpectedType::Exact("at+jwt"),
);

fn claims() -> serde_json::Map<String, serde_json::Value> {
    obj(json!({ "iss": ISSUER, "sub": "alice", "exp": NOW + 60 }))
}

/// A josekit signer over one of our keys, exported as PKCS#8 PEM. (PS256 is
/// not here: josekit signs PS256 only with RSASSA-PSS-OID keys; see
/// `josekit_rsa_pss`.)
fn josekit_signer(key: &dyn SigningKey) -> Box<dyn JwsSigner> {
    let pem = signing_key_to_pkcs8_pem(key).unwrap();
    match key.algorithm() {
        Algorithm::Es256 => Box::new(ES256.signer_from_pem(pem.as_bytes()).unwrap()),
        Algorithm::EdDsa => Box::new(EdDSA.signer_from_pem(pem.as_bytes()).unwrap()),
        _ => unreachable!(),
    }
}

fn josekit_verifier(key: &dyn SigningKey) -> Box<dyn JwsVerifier> {
    let jwk = Jwk::from_public_key(key.public_key().clone(), None)
        .to_json()
        .to_string();
    let jwk = josekit::jwk::Jwk::from_bytes(jwk.as_bytes()).unwrap();
    match key.algorithm() {
        Algorithm::Ps256 => Box::new(PS256.verifier_from_jwk(&jwk).unwrap()),
        Algorithm::Es256 => Box::new(ES256.verifier_from_jwk(&jwk).unwrap()),
        Algorithm::EdDsa => Box::new(EdDSA.verifier_from_jwk(&jwk).unwrap()),
        _ => unreachable!(),
    }
}

fn josekit_token(alg: Algorithm, signer: &dyn JwsSigner, typ: &str) -> String {
    let mut header = JwsHeader::new();
    header.set_token_type(typ);
    header.set_key_id(kid(alg));
    jwt::encode_with_signer(&JwtPayload::from_map(claims()).unwrap(), &header, signer).unwrap()
}

#[test]
fn ours_verify_in_josekit_every_algorithm_and_provider() {
    for k in providers() {
        for alg in Algorithm::ALL {
            let key = k.key(alg);
            let token = sign_compact(&**key, Some(kid(alg)), Some("at+jwt"), &claims()).unwrap();
            let (payload, header) = jwt::decode_with_verifier(&token, &*josekit_verifier(&**key))
                .unwrap_or_else(|e| panic!("{} {alg}: {e}", k.name()));
            assert_eq!(payload.subject(), Some("alice"));
            assert_eq!(header.token_type(), Some("at+jwt"));
        }
    }
}

/// A josekit-generated RSASSA-PSS key: its signer, and our key set built
/// from its public JWK.
fn josekit_rsa_pss(
    provider: &dyn fapi_core::crypto::CryptoProvider,
) -> (Box<dyn JwsSigner>, fapi_core::jwk::KeySet) {
    use josekit::jwk::KeyPair as _;
    let pair = PS256.generate_key_pair(2048).unwrap();
    let signer = PS256.signer_from_jwk(&pair.to_jwk_key_pair()).unwrap();
    let mut public: serde_json::Value =
        serde_json::from_str(&pair.to_jwk_public_key().to_string()).unwrap();
    public["kid"] = json!("ps");
    let jwks =
        fapi_core::jwk::JwkSet::from_json(json!({ "keys": [public] }).to_string().as_bytes())
            .unwrap();
    let set = fapi_core::jwk::KeySet::from_jwks(
        &jwks,
        provider,
        &fapi_core::Profile::Fapi2Security.key_policy(),
    )
    .unwrap();
    (Box::new(signer), set)
}

#[test]
fn josekit_tokens_verify_in_ours_every_algorithm_and_provider() {
    for k in providers() {
        let (pss_signer, pss_set) = josekit_rsa_pss(&*k.provider);
        let token = josekit_token(Algorithm::Ps256, &*pss_signer, "at+jwt");
        let v = UnverifiedJws::parse(&token)
            .and_then(|j| j.verify(&pss_set, &POLICY))
            .unwrap();
        assert_eq!(
            v.claims().string("sub").unwrap(),
            Some("alice"),
            "{} PS256",
            k.name()
        );
        let set = key_set(k);
        for alg in [Algorithm::Es256, Algorithm::EdDsa] {
            let token = josekit_token(alg, &*josekit_signer(&**k.key(alg)), "at+jwt");
            let v = UnverifiedJws::parse(&token)
                .and_then(|j| j.verify(&set, &POLICY))
                .unwrap_or_else(|e| panic!("{} {alg}: {e}", k.name()));
            assert_eq!(v.claims().string("sub").unwrap(), Some("alice"));
        }
    }
}

#[test]
fn josekit_token_breaking_our_rules_still_rejected() {
    let k = keys();
    let set = key_set(k);
    let verify = |t: &str| UnverifiedJws::parse(t).and_then(|j| j.verify(&set, &POLICY));

    // RS256 with the client's own, registered RSA key
    let pem = signing_key_to_pkcs8_pem(&*k.ps256).unwrap();
    let rs = RS256.signer_from_pem(pem.as_bytes()).unwrap();
    let mut h = JwsHeader::new();
    h.set_token_type("at+jwt");
    h.set_key_id("ps");
    let t = jwt::encode_with_signer(&JwtPayload::from_map(claims()).unwrap(), &h, &rs).unwrap();
    assert_eq!(verify(&t).unwrap_err(), JoseError::AlgorithmNotPermitted);

    // HS256 keyed with the public JWK (the classic algorithm-confusion attack)
    let public = Jwk::from_public_key(k.es256.public_key().clone(), None)
        .to_json()
        .to_string();
    let hs = HS256.signer_from_bytes(public.as_bytes()).unwrap();
    let mut h = JwsHeader::new();
    h.set_token_type("at+jwt");
    h.set_key_id("es");
    let t = jwt::encode_with_signer(&JwtPayload::from_map(claims()).unwrap(), &h, &hs).unwrap();
    assert_eq!(verify(&t).unwrap_err(), JoseError::AlgorithmNotPermitted);

    // unsecured (alg none)
    let mut h = JwsHeader::new();
    h.set_token_type("at+jwt");
    let t = jwt::encode_unsecured(&JwtPayload::from_map(claims()).unwrap(), &h).unwrap();
    assert_eq!(verify(&t).unwrap_err(), JoseError::AlgorithmNotPermitted);

    // an attacker's key embedded in the header
    let attacker_key = &attacker().es256;
    let mut h = JwsHeader::new();
    h.set_token_type("at+jwt");
    let ajwk = Jwk::from_public_key(attacker_key.public_key().clone(), None)
        .to_json()
        .to_string();
    h.set_jwk(josekit::jwk::Jwk::from_bytes(ajwk.as_bytes()).unwrap());
    let t = jwt::encode_with_signer(
        &JwtPayload::from_map(claims()).unwrap(),
        &h,
        &*josekit_signer(&**attacker_key),
    )
    .unwrap();
    assert_eq!(
        UnverifiedJws::parse(&t).unwrap_err(),
        JoseError::EmbeddedKeySource("jwk")
    );

    // the right key and algorithm, but the wrong kind of token
    let t = josekit_token(Algorithm::Es256, &*josekit_signer(&*k.es256), "JWT");
    assert_eq!(
        verify(&t).unwrap_err(),
        JoseError::WrongType { expected: "at+jwt" }
    );

    // the happy twin: the same josekit signer with the right typ
    assert!(verify(&josekit_token(
        Algorithm::Es256,
        &*josekit_signer(&*k.es256),
        "at+jwt"
    ))
    .is_ok());
}
