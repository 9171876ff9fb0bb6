//! Detached JWS ([RFC 7515 App. F]) with optionally unencoded payloads
//! ([RFC 7797], `b64: false`), and the UK Open Banking `x-jws-signature`
//! profile on top: `PS256`, `kid`, and the critical headers
//! `http://openbanking.org.uk/iat`, `.../iss` and `.../tan`, each validated.
//!
//! [RFC 7515 App. F]: https://www.rfc-editor.org/rfc/rfc7515#appendix-F
//! [RFC 7797]: https://www.rfc-editor.org/rfc/rfc7797

use serde_json::{json, Map, Value};

use super::{Header, JoseError, JwsPolicy, Part, MAX_TOKEN_LEN};
use crate::claims::ClaimError;
use crate::crypto::{Algorithm, SigningError, SigningKey};
use crate::encoding::{b64url_decode_public, b64url_encode};
use crate::error::{ErrorCode, OAuthError};
use crate::jwk::KeySet;
use crate::time::UnixTime;

/// UK OB critical header: signing time (NumericDate).
pub const OB_IAT: &str = "http://openbanking.org.uk/iat";
/// UK OB critical header: the signer (`{org-id}` or `{org-id}/{software-statement-id}`).
pub const OB_ISS: &str = "http://openbanking.org.uk/iss";
/// UK OB critical header: the trust anchor (e.g. `openbanking.org.uk`).
pub const OB_TAN: &str = "http://openbanking.org.uk/tan";
/// The three UK OB critical header names.
pub const OB_CRITICAL: [&str; 3] = [OB_IAT, OB_ISS, OB_TAN];

/// Largest detached payload (an HTTP body) accepted, in bytes.
pub const MAX_DETACHED_PAYLOAD: usize = 1024 * 1024;

/// Why a detached signature was rejected. Maps to `invalid_request`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DetachedJwsError {
    /// A JOSE rule failed (framing, algorithm, key, signature, `crit`).
    #[error(transparent)]
    Jose(#[from] JoseError),
    /// The payload segment is not empty: this is not a detached JWS.
    #[error("signature must be a detached JWS (empty payload segment)")]
    NotDetached,
    /// The payload is larger than [`MAX_DETACHED_PAYLOAD`].
    #[error("signed payload is larger than {MAX_DETACHED_PAYLOAD} bytes")]
    PayloadTooLarge,
    /// `b64` is present but not a boolean, or not listed in `crit` (RFC 7797 §6).
    #[error("header b64 must be a boolean listed in crit")]
    MalformedB64,
    /// A UK OB header is missing or not listed in `crit`.
    #[error("header `{0}` is required and must be listed in crit")]
    MissingCritical(&'static str),
    /// A UK OB header has the wrong type.
    #[error("header `{0}` has the wrong type")]
    HeaderType(&'static str),
    /// The signing time is unacceptable.
    #[error("signature {0}")]
    Time(ClaimError),
    /// `http://openbanking.org.uk/iss` is not the expected signer.
    #[error("signature issuer is not the expected party")]
    WrongIssuer,
    /// `http://openbanking.org.uk/tan` is not the expected trust anchor.
    #[error("signature trust anchor is not the expected one")]
    WrongTrustAnchor,
}

impl OAuthError for DetachedJwsError {
    fn error_code(&self) -> ErrorCode {
        ErrorCode::InvalidRequest
    }
}

fn signing_input(header_b64: &str, payload: &[u8], encoded: bool) -> Vec<u8> {
    let mut input = Vec::with_capacity(header_b64.len() + 1 + payload.len() * 4 / 3 + 4);
    input.extend_from_slice(header_b64.as_bytes());
    input.push(b'.');
    if encoded {
        input.extend_from_slice(b64url_encode(payload).as_bytes());
    } else {
        input.extend_from_slice(payload);
    }
    input
}

/// Signs `payload` as a detached JWS (`header..signature`) under `header`,
/// which must carry `alg` matching the key. With `b64: false` in the header
/// (and in `crit`), the payload is signed unencoded (RFC 7797).
///
/// # Errors
/// [`SigningError`] if the provider fails.
pub fn sign_detached(
    key: &dyn SigningKey,
    header: &Map<String, Value>,
    payload: &[u8],
) -> Result<String, SigningError> {
    let encoded = header.get("b64") != Some(&Value::Bool(false));
    let h = b64url_encode(&serde_json::to_vec(header).map_err(|_| SigningError)?);
    let sig = key.sign(&signing_input(&h, payload, encoded))?;
    Ok(format!("{h}..{}", b64url_encode(&sig)))
}

/// A verified detached signature.
#[derive(Clone, Debug)]
pub struct VerifiedDetachedJws {
    header: Header,
}

impl VerifiedDetachedJws {
    /// The protected header.
    pub fn header(&self) -> &Header {
        &self.header
    }
}

/// Verifies a detached JWS over `payload` with the one matching key from
/// `keys`. `policy.understood_critical` names the extensions the caller
/// checks itself; `b64` is understood here.
///
/// # Errors
/// [`DetachedJwsError`].
pub fn verify_detached(
    signature: &str,
    payload: &[u8],
    keys: &KeySet,
    policy: &JwsPolicy<'_>,
) -> Result<VerifiedDetachedJws, DetachedJwsError> {
    if signature.len() > MAX_TOKEN_LEN {
        return Err(JoseError::TooLarge { max: MAX_TOKEN_LEN }.into());
    }
    if payload.len() > MAX_DETACHED_PAYLOAD {
        return Err(DetachedJwsError::PayloadTooLarge);
    }
    let mut parts = signature.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JoseError::SegmentCount.into());
    };
    if !p.is_empty() {
        return Err(DetachedJwsError::NotDetached);
    }
    let header_bytes =
        b64url_decode_public(h, MAX_TOKEN_LEN).map_err(JoseError::b64(Part::Header))?;
    let header = Header::parse(header_bytes)?;
    let sig = b64url_decode_public(s, MAX_TOKEN_LEN).map_err(JoseError::b64(Part::Signature))?;
    let encoded = match header.get("b64") {
        None => true,
        Some(Value::Bool(b)) if header.crit().iter().any(|c| c == "b64") => *b,
        Some(_) => return Err(DetachedJwsError::MalformedB64),
    };
    let alg = header.check(policy, true)?;
    let entry = keys.select(alg, header.kid()).map_err(JoseError::from)?;
    entry
        .key()
        .verify(&signing_input(h, payload, encoded), &sig)
        .map_err(|_| JoseError::BadSignature)?;
    Ok(VerifiedDetachedJws { header })
}

/// What the receiver of an `x-jws-signature` expects of it.
#[derive(Clone, Copy, Debug)]
pub struct ObSignatureExpectations<'a> {
    /// The signer's expected `http://openbanking.org.uk/iss`.
    pub issuer: &'a str,
    /// The expected trust anchor.
    pub trust_anchor: &'a str,
    /// How far in the future the signing time may be (clock skew).
    pub max_future_skew_secs: i64,
    /// How old the signing time may be.
    pub max_age_secs: i64,
}

/// Signs an HTTP body as a UK Open Banking `x-jws-signature`: PS256 (or the
/// key's algorithm), `kid`, the three critical OB headers; unencoded payload
/// when `unencoded` (OB 3.1.3 and earlier), encoded otherwise.
///
/// # Errors
/// [`SigningError`] if the provider fails.
pub fn sign_ob_jws_signature(
    key: &dyn SigningKey,
    kid: &str,
    issuer: &str,
    trust_anchor: &str,
    now: UnixTime,
    body: &[u8],
    unencoded: bool,
) -> Result<String, SigningError> {
    let mut crit: Vec<&str> = OB_CRITICAL.to_vec();
    let mut header = Map::new();
    header.insert("alg".into(), json!(key.algorithm().jose_name()));
    header.insert("kid".into(), json!(kid));
    header.insert("typ".into(), json!("JOSE"));
    header.insert("cty".into(), json!("application/json"));
    header.insert(OB_IAT.into(), json!(now.as_secs()));
    header.insert(OB_ISS.into(), json!(issuer));
    header.insert(OB_TAN.into(), json!(trust_anchor));
    if unencoded {
        header.insert("b64".into(), json!(false));
        crit.push("b64");
    }
    header.insert("crit".into(), json!(crit));
    sign_detached(key, &header, body)
}

/// Verifies a UK Open Banking `x-jws-signature` over an HTTP body.
///
/// # Errors
/// [`DetachedJwsError`] naming the rule broken.
pub fn verify_ob_jws_signature(
    signature: &str,
    body: &[u8],
    keys: &KeySet,
    algorithms: &[Algorithm],
    expect: &ObSignatureExpectations<'_>,
    now: UnixTime,
) -> Result<VerifiedDetachedJws, DetachedJwsError> {
    let policy = JwsPolicy {
        algorithms,
        typ: super::ExpectedType::JoseOrAbsent,
        understood_critical: &OB_CRITICAL,
    };
    let verified = verify_detached(signature, body, keys, &policy)?;
    let h = &verified.header;
    for name in OB_CRITICAL {
        if h.get(name).is_none() || !h.crit().iter().any(|c| c == name) {
            return Err(DetachedJwsError::MissingCritical(name));
        }
    }
    let iat = h
        .get(OB_IAT)
        .and_then(Value::as_i64)
        .and_then(UnixTime::from_secs)
        .ok_or(DetachedJwsError::HeaderType(OB_IAT))?;
    if iat > now.saturating_add(expect.max_future_skew_secs) {
        return Err(DetachedJwsError::Time(ClaimError::IssuedInFuture {
            now,
            iat,
        }));
    }
    if now.secs_since(iat) > expect.max_age_secs {
        return Err(DetachedJwsError::Time(ClaimError::Expired {
            now,
            exp: iat.saturating_add(expect.max_age_secs),
        }));
    }
    match h.get(OB_ISS) {
        Some(Value::String(s)) if s == expect.issuer => {}
        Some(Value::String(_)) => return Err(DetachedJwsError::WrongIssuer),
        _ => return Err(DetachedJwsError::HeaderType(OB_ISS)),
    }
    match h.get(OB_TAN) {
        Some(Value::String(s)) if s == expect.trust_anchor => {}
        Some(Value::String(_)) => return Err(DetachedJwsError::WrongTrustAnchor),
        _ => return Err(DetachedJwsError::HeaderType(OB_TAN)),
    }
    Ok(verified)
}
