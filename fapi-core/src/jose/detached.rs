//! Detached JWS ([RFC 7515 App. F]) with optionally unencoded payloads
//! ([RFC 7797], `b64: false`), and the UK Open Banking `x-jws-signature`
//! profile on top: `PS256`, `kid`, and the critical headers
//! `http://openbanking.org.uk/iat`, `.../iss` and `.../tan`, each validated.
//!
//! [RFC 7515 App. F]: https://www.rfc-editor.org/rfc/rfc7515#appendix-F
//! [RFC 7797]: https://www.rfc-editor.org/rfc/rfc7797

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::{Header, JoseError, JwsPolicy, Part, MAX_TOKEN_LEN};
use crate::claims::ClaimError;
use crate::crypto::{shared_signer, Algorithm, AsyncSigningKey, SigningError};
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
pub async fn sign_detached<K: AsyncSigningKey + ?Sized>(
    key: &K,
    header: &Map<String, Value>,
    payload: &[u8],
) -> Result<String, SigningError> {
    let encoded = header.get("b64") != Some(&Value::Bool(false));
    let h = b64url_encode(&serde_json::to_vec(header).map_err(|_| SigningError)?);
    let sig = key.sign_async(&signing_input(&h, payload, encoded)).await?;
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

/// How the body travels in an `x-jws-signature` ([RFC 7797]).
///
/// [RFC 7797]: https://www.rfc-editor.org/rfc/rfc7797
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ObPayload {
    /// Base64url-encoded in the signing input (OB 3.1.4 and later).
    #[default]
    Encoded,
    /// Signed as is, `b64: false` in the header and in `crit` (OB 3.1.3
    /// and earlier).
    Unencoded,
}

/// Signs HTTP bodies as UK Open Banking `x-jws-signature` values for one
/// signer: its key (a file key or an HSM's, see [`AsyncSigningKey`]),
/// `kid`, `http://openbanking.org.uk/iss` and trust anchor. Build once,
/// sign every response.
#[derive(Clone, Debug)]
pub struct ObJwsSigner {
    key: Arc<dyn AsyncSigningKey>,
    kid: String,
    issuer: String,
    trust_anchor: String,
    payload: ObPayload,
}

impl ObJwsSigner {
    /// A signer with `key` published under `kid`, naming itself `issuer`
    /// under `trust_anchor`; the body [`ObPayload::Encoded`].
    pub fn new<K: AsyncSigningKey + ?Sized + 'static>(
        key: Arc<K>,
        kid: impl Into<String>,
        issuer: impl Into<String>,
        trust_anchor: impl Into<String>,
    ) -> Self {
        Self {
            key: shared_signer(key),
            kid: kid.into(),
            issuer: issuer.into(),
            trust_anchor: trust_anchor.into(),
            payload: ObPayload::Encoded,
        }
    }

    /// How the body travels.
    #[must_use]
    pub fn with_payload(mut self, payload: ObPayload) -> Self {
        self.payload = payload;
        self
    }

    /// The `x-jws-signature` of `body` at `now`: the key's algorithm,
    /// `kid`, `typ: JOSE`, and the three critical OB headers.
    ///
    /// # Errors
    /// [`SigningError`] if the signer fails.
    pub async fn sign(&self, body: &[u8], now: UnixTime) -> Result<String, SigningError> {
        let mut crit: Vec<&str> = OB_CRITICAL.to_vec();
        let mut header = Map::new();
        header.insert("alg".into(), json!(self.key.algorithm().jose_name()));
        header.insert("kid".into(), json!(self.kid));
        header.insert("typ".into(), json!("JOSE"));
        header.insert("cty".into(), json!("application/json"));
        header.insert(OB_IAT.into(), json!(now.as_secs()));
        header.insert(OB_ISS.into(), json!(self.issuer));
        header.insert(OB_TAN.into(), json!(self.trust_anchor));
        if self.payload == ObPayload::Unencoded {
            header.insert("b64".into(), json!(false));
            crit.push("b64");
        }
        header.insert("crit".into(), json!(crit));
        sign_detached(&*self.key, &header, body).await
    }
}

/// How old an `x-jws-signature` may be by default.
pub const DEFAULT_OB_MAX_AGE_SECS: i64 = 300;
/// How far in the future its signing time may be by default (clock skew).
pub const DEFAULT_OB_MAX_FUTURE_SKEW_SECS: i64 = 10;

/// Verifies UK Open Banking `x-jws-signature` values from one signer: the
/// algorithms allowed, the expected `http://openbanking.org.uk/iss` and
/// trust anchor, and the window the signing time must fall in. Build once
/// per signer; the signer's keys are given with each signature (they come
/// from its registration, read live).
#[derive(Clone, Debug)]
pub struct ObJwsVerifier {
    algorithms: Vec<Algorithm>,
    issuer: String,
    trust_anchor: String,
    max_future_skew_secs: i64,
    max_age_secs: i64,
}

impl ObJwsVerifier {
    /// Signatures by `issuer` under `trust_anchor` with one of
    /// `algorithms`, signed at most [`DEFAULT_OB_MAX_AGE_SECS`] ago and at
    /// most [`DEFAULT_OB_MAX_FUTURE_SKEW_SECS`] ahead.
    pub fn new(
        algorithms: &[Algorithm],
        issuer: impl Into<String>,
        trust_anchor: impl Into<String>,
    ) -> Self {
        Self {
            algorithms: algorithms.to_vec(),
            issuer: issuer.into(),
            trust_anchor: trust_anchor.into(),
            max_future_skew_secs: DEFAULT_OB_MAX_FUTURE_SKEW_SECS,
            max_age_secs: DEFAULT_OB_MAX_AGE_SECS,
        }
    }

    /// Another window: at most `max_age_secs` old, `max_future_skew_secs`
    /// ahead.
    #[must_use]
    pub fn with_window(mut self, max_future_skew_secs: i64, max_age_secs: i64) -> Self {
        self.max_future_skew_secs = max_future_skew_secs;
        self.max_age_secs = max_age_secs;
        self
    }

    /// Verifies `signature` over `body` with one of the signer's `keys` at
    /// `now`.
    ///
    /// # Errors
    /// [`DetachedJwsError`] naming the rule broken.
    pub fn verify(
        &self,
        signature: &str,
        body: &[u8],
        keys: &KeySet,
        now: UnixTime,
    ) -> Result<VerifiedDetachedJws, DetachedJwsError> {
        let expect = self;
        let policy = JwsPolicy::new(&self.algorithms, super::ExpectedType::JoseOrAbsent)
            .understanding(&OB_CRITICAL);
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
            Some(Value::String(s)) if *s == expect.issuer => {}
            Some(Value::String(_)) => return Err(DetachedJwsError::WrongIssuer),
            _ => return Err(DetachedJwsError::HeaderType(OB_ISS)),
        }
        match h.get(OB_TAN) {
            Some(Value::String(s)) if *s == expect.trust_anchor => {}
            Some(Value::String(_)) => return Err(DetachedJwsError::WrongTrustAnchor),
            _ => return Err(DetachedJwsError::HeaderType(OB_TAN)),
        }
        Ok(verified)
    }
}
