//! Detached JWS (RFC 7515 App. F), unencoded payloads (RFC 7797) and the UK
//! OB `x-jws-signature` profile: each rule's negative test with its twin.
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
use fapi_core::jose::detached::{
    sign_detached, DetachedJwsError, ObJwsSigner, ObJwsVerifier, ObPayload, OB_IAT, OB_ISS, OB_TAN,
};
use fapi_core::jose::JoseError;
use serde_json::json;

const BODY: &[u8] =
    br#"{"Data":{"Initiation":{"InstructedAmount":{"Amount":"10.00","Currency":"GBP"}}}}"#;
const ORG: &str = "0015800001041RHAAY/tpp-a-software";
const TAN: &str = "openbanking.org.uk";

/// Signs `BODY` at `now()` as `iss` under `tan` with `key` (`kid`).
fn ob_sign(
    key: &std::sync::Arc<dyn fapi_core::crypto::SigningKey>,
    kid: &str,
    iss: &str,
    tan: &str,
    unencoded: bool,
) -> String {
    let payload = if unencoded {
        ObPayload::Unencoded
    } else {
        ObPayload::Encoded
    };
    let signer = ObJwsSigner::new(key.clone(), kid, iss, tan).with_payload(payload);
    futures_executor::block_on(signer.sign(BODY, now())).unwrap()
}

fn verify(sig: &str, body: &[u8]) -> Result<(), DetachedJwsError> {
    ObJwsVerifier::new(&[Algorithm::Ps256], ORG, TAN)
        .verify(sig, body, &key_set(keys()), now())
        .map(|_| ())
}

fn ob_sig(unencoded: bool) -> String {
    ob_sign(&keys().ps256, "ps", ORG, TAN, unencoded)
}

/// A header with the three OB members, overridable.
fn header(extra: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    let mut h = obj(json!({
        "alg": "PS256", "kid": "ps",
        OB_IAT: NOW, OB_ISS: ORG, OB_TAN: TAN,
        "crit": [OB_IAT, OB_ISS, OB_TAN],
    }));
    h.extend(obj(extra));
    h
}

#[test]
fn happy_encoded_and_unencoded_every_provider() {
    for k in providers() {
        for unencoded in [false, true] {
            let sig = ob_sign(&k.ps256, "ps", ORG, TAN, unencoded);
            assert_eq!(sig.split('.').nth(1), Some(""), "detached");
            ObJwsVerifier::new(&[Algorithm::Ps256], ORG, TAN)
                .verify(&sig, BODY, &key_set(k), now())
                .unwrap();
        }
    }
}

#[test]
fn changed_body_rejected() {
    for unencoded in [false, true] {
        let sig = ob_sig(unencoded);
        let mut body = BODY.to_vec();
        body[40] ^= 1;
        assert_eq!(
            verify(&sig, &body).unwrap_err(),
            DetachedJwsError::Jose(JoseError::BadSignature)
        );
        // one extra byte of whitespace counts as a change too
        let mut spaced = BODY.to_vec();
        spaced.push(b' ');
        assert_eq!(
            verify(&sig, &spaced).unwrap_err(),
            DetachedJwsError::Jose(JoseError::BadSignature)
        );
        assert!(verify(&sig, BODY).is_ok());
    }
}

#[test]
fn encoding_flag_cannot_be_flipped() {
    // a signature over the unencoded body, with the header edited to claim encoded
    let sig = ob_sig(true);
    let s = sig.split('.').nth(2).unwrap();
    let h = b64url_encode(&serde_json::to_vec(&header(json!({}))).unwrap());
    assert_eq!(
        verify(&format!("{h}..{s}"), BODY).unwrap_err(),
        DetachedJwsError::Jose(JoseError::BadSignature)
    );
}

#[test]
fn attached_payload_rejected() {
    let sig = ob_sig(false);
    let parts: Vec<&str> = sig.split('.').collect();
    let attached = format!("{}.{}.{}", parts[0], b64url_encode(BODY), parts[2]);
    assert_eq!(
        verify(&attached, BODY).unwrap_err(),
        DetachedJwsError::NotDetached
    );
}

#[test]
fn b64_must_be_boolean_and_critical() {
    let sig = futures_executor::block_on(sign_detached(
        &*keys().ps256,
        &header(json!({ "b64": false })),
        BODY,
    ))
    .unwrap();
    assert_eq!(
        verify(&sig, BODY).unwrap_err(),
        DetachedJwsError::MalformedB64
    );
    let sig = futures_executor::block_on(sign_detached(
        &*keys().ps256,
        &header(json!({ "b64": "false", "crit": [OB_IAT, OB_ISS, OB_TAN, "b64"] })),
        BODY,
    ))
    .unwrap();
    assert_eq!(
        verify(&sig, BODY).unwrap_err(),
        DetachedJwsError::MalformedB64
    );
    let sig = futures_executor::block_on(sign_detached(
        &*keys().ps256,
        &header(json!({ "b64": false, "crit": [OB_IAT, OB_ISS, OB_TAN, "b64"] })),
        BODY,
    ))
    .unwrap();
    assert!(verify(&sig, BODY).is_ok());
}

#[test]
fn ob_headers_required_and_critical() {
    for name in [OB_IAT, OB_ISS, OB_TAN] {
        // missing from the header (and from crit)
        let mut h = header(json!({}));
        h.remove(name);
        let others: Vec<&str> = [OB_IAT, OB_ISS, OB_TAN]
            .into_iter()
            .filter(|n| *n != name)
            .collect();
        h.insert("crit".into(), json!(others));
        let sig = futures_executor::block_on(sign_detached(&*keys().ps256, &h, BODY)).unwrap();
        assert_eq!(
            verify(&sig, BODY).unwrap_err(),
            DetachedJwsError::MissingCritical(name)
        );
        // present but not critical
        let mut h = header(json!({}));
        h.insert("crit".into(), json!(others));
        let sig = futures_executor::block_on(sign_detached(&*keys().ps256, &h, BODY)).unwrap();
        assert_eq!(
            verify(&sig, BODY).unwrap_err(),
            DetachedJwsError::MissingCritical(name)
        );
    }
}

#[test]
fn unknown_critical_header_rejected() {
    let sig = futures_executor::block_on(sign_detached(
        &*keys().ps256,
        &header(json!({ "x-extra": 1, "crit": [OB_IAT, OB_ISS, OB_TAN, "x-extra"] })),
        BODY,
    ))
    .unwrap();
    assert_eq!(
        verify(&sig, BODY).unwrap_err(),
        DetachedJwsError::Jose(JoseError::UnknownCritical)
    );
}

#[test]
fn ob_issuer_and_trust_anchor_must_match() {
    let sig = ob_sign(&keys().ps256, "ps", "other-org/other-ss", TAN, false);
    assert_eq!(
        verify(&sig, BODY).unwrap_err(),
        DetachedJwsError::WrongIssuer
    );
    let sig = ob_sign(&keys().ps256, "ps", ORG, "attacker.example", false);
    assert_eq!(
        verify(&sig, BODY).unwrap_err(),
        DetachedJwsError::WrongTrustAnchor
    );
    let sig = futures_executor::block_on(sign_detached(
        &*keys().ps256,
        &header(json!({ OB_ISS: 7 })),
        BODY,
    ))
    .unwrap();
    assert_eq!(
        verify(&sig, BODY).unwrap_err(),
        DetachedJwsError::HeaderType(OB_ISS)
    );
}

#[test]
fn ob_iat_type_and_time_edges() {
    let sig = futures_executor::block_on(sign_detached(
        &*keys().ps256,
        &header(json!({ OB_IAT: NOW.to_string() })),
        BODY,
    ))
    .unwrap();
    assert_eq!(
        verify(&sig, BODY).unwrap_err(),
        DetachedJwsError::HeaderType(OB_IAT)
    );
    let sig = ob_sig(false);
    let check = |when| {
        ObJwsVerifier::new(&[Algorithm::Ps256], ORG, TAN).verify(&sig, BODY, &key_set(keys()), when)
    };
    assert!(check(at(300)).is_ok());
    assert!(matches!(
        check(at(301)).unwrap_err(),
        DetachedJwsError::Time(ClaimError::Expired { .. })
    ));
    assert!(check(at(-10)).is_ok());
    assert!(matches!(
        check(at(-11)).unwrap_err(),
        DetachedJwsError::Time(ClaimError::IssuedInFuture { .. })
    ));
}

#[test]
fn ob_signature_algorithm_restricted() {
    let sig = ob_sign(&keys().es256, "es", ORG, TAN, false);
    assert_eq!(
        verify(&sig, BODY).unwrap_err(),
        DetachedJwsError::Jose(JoseError::AlgorithmNotAllowed(Algorithm::Es256))
    );
    let wider = ObJwsVerifier::new(&[Algorithm::Ps256, Algorithm::Es256], ORG, TAN).verify(
        &sig,
        BODY,
        &key_set(keys()),
        now(),
    );
    assert!(wider.is_ok());
}
