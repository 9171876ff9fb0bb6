//! Compact JWS ([RFC 7515]), framed strictly and verified against a policy.
//!
//! [`UnverifiedJws::parse`] checks the framing: at most [`MAX_TOKEN_LEN`]
//! bytes, exactly three segments, strict base64url in each, a header that is
//! a strict JSON object (no duplicate members, bounded depth) with no
//! embedded key source (`jwk`, `jku`, `x5u`, `x5c`). Its contents are
//! readable only through `unverified_*` accessors.
//!
//! [`UnverifiedJws::verify`] applies a [`JwsPolicy`]: the algorithm must be
//! one the policy allows *before* any cryptography runs; `typ` must be the
//! one expected for this kind of token ([RFC 8725 §3.11]); every `crit` name
//! must be understood; then the one matching key from the configured
//! [`KeySet`] verifies the signature, and only then is the payload parsed.
//!
//! [RFC 7515]: https://www.rfc-editor.org/rfc/rfc7515
//! [RFC 8725 §3.11]: https://www.rfc-editor.org/rfc/rfc8725#section-3.11

use core::fmt;
use std::borrow::Cow;
use std::sync::OnceLock;

use serde::de::MapAccess;
use serde_json::{Map, Value};

use crate::claims::Claims;
use crate::crypto::{Algorithm, AsyncSigningKey, SigningError, SigningKey};
use crate::encoding::{b64url_decode_public, b64url_encode, B64Error};
use crate::json::{
    self, parse_object, take, JsonError, ObjectReader, SeenNames, Slot, StrList, StrSlot, Validate,
};
use crate::jwk::{KeySelectionError, KeySet};

pub mod detached;

/// Largest compact JWS accepted, in bytes (64 KiB).
pub const MAX_TOKEN_LEN: usize = 64 * 1024;

/// Header members that would name a key source. A verifier here never takes
/// a key from the token it verifies ([RFC 8725 §3.10], FAPI-RULES "JOSE").
///
/// [RFC 8725 §3.10]: https://www.rfc-editor.org/rfc/rfc8725#section-3.10
pub const KEY_SOURCE_HEADERS: [&str; 4] = ["jwk", "jku", "x5u", "x5c"];

/// A part of a compact JWS, for error reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The protected header.
    Header,
    /// The payload.
    Payload,
    /// The signature.
    Signature,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::Header => "header",
            Part::Payload => "payload",
            Part::Signature => "signature",
        })
    }
}

/// Why a JWS was rejected. Each variant is one rule of FAPI-RULES "JOSE".
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoseError {
    /// Longer than [`MAX_TOKEN_LEN`].
    #[error("token is longer than {max} bytes")]
    TooLarge {
        /// The limit.
        max: usize,
    },
    /// Not exactly three `.`-separated segments.
    #[error("token is not a compact JWS of exactly three segments")]
    SegmentCount,
    /// A segment is not strict base64url (padding, whitespace, wrong alphabet
    /// or non-canonical trailing bits).
    #[error("token {0} is not strict base64url without padding")]
    Base64(Part),
    /// A JSON part is malformed.
    #[error("token {part}: {problem}")]
    Json {
        /// Which part.
        part: Part,
        /// What is wrong.
        problem: JsonError,
    },
    /// The header has no `alg`.
    #[error("token header has no alg")]
    MissingAlgorithm,
    /// A header member has the wrong JSON type.
    #[error("token header member `{0}` has the wrong type")]
    HeaderType(&'static str),
    /// `alg` is not one this crate family ever accepts (`none` in any case,
    /// `HS*`, `RS256`, anything unknown).
    #[error("token alg is not permitted; use PS256, ES256 or EdDSA")]
    AlgorithmNotPermitted,
    /// `alg` is known but not allowed by the profile in force or by the
    /// party's registration.
    #[error("token alg {0} is not allowed for this client or profile")]
    AlgorithmNotAllowed(Algorithm),
    /// The header names a key source (`jwk`, `jku`, `x5u`, `x5c`).
    #[error("token header member `{0}` is not accepted: keys come only from the registered jwks")]
    EmbeddedKeySource(&'static str),
    /// `crit` is malformed: not a non-empty array of distinct strings each
    /// present in the header.
    #[error("token header crit is malformed")]
    MalformedCritical,
    /// `crit` names an extension this verifier does not understand.
    #[error("token header crit names an extension this verifier does not understand")]
    UnknownCritical,
    /// `b64` appears where an unencoded payload is not allowed.
    #[error("token header b64 is only allowed for detached signatures")]
    UnencodedPayloadNotAllowed,
    /// `typ` is absent where explicit typing is required.
    #[error("token header has no typ; expected {expected}")]
    MissingType {
        /// The expected value.
        expected: &'static str,
    },
    /// `typ` is not the one for this kind of token.
    #[error("token typ is wrong for this kind of token; expected {expected}")]
    WrongType {
        /// The expected value.
        expected: &'static str,
    },
    /// `cty` is `JWT`: a nested JWT (RFC 7519 §5.2), which no FAPI token
    /// is. Its claims would be another token's, signed by someone else.
    #[error("token cty says it is a nested JWT; nested tokens are not accepted")]
    NestedJwt,
    /// No single key could be chosen.
    #[error(transparent)]
    Key(#[from] KeySelectionError),
    /// The signature did not verify. Deliberately opaque.
    #[error("token signature is invalid")]
    BadSignature,
}

impl JoseError {
    pub(crate) fn b64(part: Part) -> impl Fn(B64Error) -> JoseError {
        move |_| JoseError::Base64(part)
    }
    pub(crate) fn json(part: Part) -> impl Fn(JsonError) -> JoseError {
        move |e| JoseError::Json { part, problem: e }
    }
}

/// The `typ` a kind of token must carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectedType {
    /// Exactly this media type (compared per RFC 7515 §4.1.9: case-insensitive,
    /// with or without the `application/` prefix).
    Exact(&'static str),
    /// Absent or `JWT`: for tokens whose profile defines no explicit type
    /// (client assertions, ID tokens, JARM). Any other explicit type, such as
    /// `at+jwt`, is rejected so one kind of token never passes as another.
    JwtOrAbsent,
    /// Absent or `JOSE` (UK OB `x-jws-signature`).
    JoseOrAbsent,
}

fn media_type_eq(value: &str, expected: &str) -> bool {
    let v = match value.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => {
            value.get(12..).unwrap_or("")
        }
        _ => value,
    };
    v.eq_ignore_ascii_case(expected)
}

impl ExpectedType {
    fn check(self, typ: Option<&str>) -> Result<(), JoseError> {
        match (self, typ) {
            (Self::Exact(e), None) => Err(JoseError::MissingType { expected: e }),
            (Self::Exact(e), Some(t)) if media_type_eq(t, e) => Ok(()),
            (Self::Exact(e), Some(_)) => Err(JoseError::WrongType { expected: e }),
            (Self::JwtOrAbsent, None) => Ok(()),
            (Self::JwtOrAbsent, Some(t)) if media_type_eq(t, "JWT") => Ok(()),
            (Self::JwtOrAbsent, Some(_)) => Err(JoseError::WrongType { expected: "JWT" }),
            (Self::JoseOrAbsent, None) => Ok(()),
            (Self::JoseOrAbsent, Some(t)) if media_type_eq(t, "JOSE") => Ok(()),
            (Self::JoseOrAbsent, Some(_)) => Err(JoseError::WrongType { expected: "JOSE" }),
        }
    }
}

/// What a verifier accepts for one kind of token. Built with
/// [`JwsPolicy::new`] (fields may be added, e.g. for DPoP's header `jwk`).
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct JwsPolicy<'a> {
    /// Algorithms allowed (normally the profile's).
    pub algorithms: &'a [Algorithm],
    /// The `typ` this kind of token carries.
    pub typ: ExpectedType,
    /// `crit` extension names this verifier understands and checks itself.
    pub understood_critical: &'a [&'a str],
}

impl<'a> JwsPolicy<'a> {
    /// Tokens of `typ` signed with one of `algorithms`, no `crit`
    /// extension understood.
    pub const fn new(algorithms: &'a [Algorithm], typ: ExpectedType) -> Self {
        Self {
            algorithms,
            typ,
            understood_critical: &[],
        }
    }

    /// The same policy, understanding the `crit` extensions `names` (the
    /// caller checks them itself).
    #[must_use]
    pub const fn understanding(mut self, names: &'a [&'a str]) -> Self {
        self.understood_critical = names;
        self
    }
}

/// The protected header of a JWS.
#[derive(Clone, Debug)]
pub struct Header {
    alg: String,
    kid: Option<String>,
    typ: Option<String>,
    cty: Option<String>,
    crit: Option<Vec<String>>,
    has_b64: bool,
    /// The decoded header, for [`Header::get`] (already checked).
    bytes: Vec<u8>,
    members: OnceLock<Map<String, Value>>,
}

/// The header members the verifier reads, as found in one strict pass,
/// and the names of all members.
#[derive(Default)]
struct HeaderMembers<'a> {
    alg: Slot<Cow<'a, str>>,
    kid: Slot<Cow<'a, str>>,
    typ: Slot<Cow<'a, str>>,
    cty: Slot<Cow<'a, str>>,
    crit: Slot<Vec<Slot<Cow<'a, str>>>>,
    names: SeenNames<'a>,
}

impl<'de> ObjectReader<'de> for HeaderMembers<'de> {
    fn member<A: MapAccess<'de>>(
        &mut self,
        name: Cow<'de, str>,
        map: &mut A,
        child: Validate<'_>,
    ) -> Result<(), A::Error> {
        let kind = child.kind;
        if !self.names.insert(name.clone()) {
            return Err(json::fail(kind, JsonError::DuplicateMember));
        }
        match &*name {
            "alg" => take(map, &mut self.alg, StrSlot(child), kind),
            "kid" => take(map, &mut self.kid, StrSlot(child), kind),
            "typ" => take(map, &mut self.typ, StrSlot(child), kind),
            "cty" => take(map, &mut self.cty, StrSlot(child), kind),
            "crit" => take(map, &mut self.crit, StrList(child), kind),
            _ => map.next_value_seed(child),
        }
    }
}

fn header_string(
    slot: &Slot<Cow<'_, str>>,
    name: &'static str,
) -> Result<Option<String>, JoseError> {
    match slot {
        Slot::Absent => Ok(None),
        Slot::Present(s) => Ok(Some(s.to_string())),
        Slot::WrongType => Err(JoseError::HeaderType(name)),
    }
}

impl Header {
    /// Reads the header in one strict pass (the rules of `parse_object`,
    /// without building the object), then applies the header rules.
    pub(crate) fn parse(bytes: Vec<u8>) -> Result<Self, JoseError> {
        let h: HeaderMembers<'_> =
            json::read_object(&bytes).map_err(JoseError::json(Part::Header))?;
        if let Some(name) = KEY_SOURCE_HEADERS.iter().find(|n| h.names.contains(n)) {
            return Err(JoseError::EmbeddedKeySource(name));
        }
        let alg = header_string(&h.alg, "alg")?.ok_or(JoseError::MissingAlgorithm)?;
        let kid = header_string(&h.kid, "kid")?;
        let typ = header_string(&h.typ, "typ")?;
        let cty = header_string(&h.cty, "cty")?;
        let crit = match &h.crit {
            Slot::Absent => None,
            Slot::WrongType => return Err(JoseError::MalformedCritical),
            Slot::Present(items) => {
                let mut names: Vec<String> = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Slot::Present(s)
                            if !s.is_empty()
                                && !names.iter().any(|n| n == s)
                                && h.names.contains(s) =>
                        {
                            names.push(s.to_string());
                        }
                        _ => return Err(JoseError::MalformedCritical),
                    }
                }
                if names.is_empty() {
                    return Err(JoseError::MalformedCritical);
                }
                Some(names)
            }
        };
        let has_b64 = h.names.contains("b64");
        drop(h);
        Ok(Self {
            alg,
            kid,
            typ,
            cty,
            crit,
            has_b64,
            bytes,
            members: OnceLock::new(),
        })
    }

    /// `alg` as written.
    pub fn alg(&self) -> &str {
        &self.alg
    }
    /// `kid`.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }
    /// `typ`.
    pub fn typ(&self) -> Option<&str> {
        self.typ.as_deref()
    }
    /// `cty`.
    pub fn cty(&self) -> Option<&str> {
        self.cty.as_deref()
    }
    /// `crit` names.
    pub fn crit(&self) -> &[String] {
        self.crit.as_deref().unwrap_or_default()
    }
    /// Any member (the header's JSON object is built on first use).
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.members
            // the bytes passed the same strict rules in `parse`, so this
            // cannot fail; an empty map would only hide members, never add
            .get_or_init(|| parse_object(&self.bytes).unwrap_or_default())
            .get(name)
    }

    /// The policy checks that run before any cryptography. Returns the
    /// algorithm to verify with.
    pub(crate) fn check(
        &self,
        policy: &JwsPolicy<'_>,
        detached: bool,
    ) -> Result<Algorithm, JoseError> {
        let alg = Algorithm::from_jose_name(&self.alg).ok_or(JoseError::AlgorithmNotPermitted)?;
        if !policy.algorithms.contains(&alg) {
            return Err(JoseError::AlgorithmNotAllowed(alg));
        }
        policy.typ.check(self.typ())?;
        if self.cty().is_some_and(|c| media_type_eq(c, "JWT")) {
            return Err(JoseError::NestedJwt);
        }
        for name in self.crit() {
            let understood =
                policy.understood_critical.contains(&name.as_str()) || (detached && name == "b64");
            if !understood {
                return Err(JoseError::UnknownCritical);
            }
        }
        if self.has_b64 && !detached {
            return Err(JoseError::UnencodedPayloadNotAllowed);
        }
        Ok(alg)
    }
}

/// A compact JWS whose signature has not been checked.
///
/// Nothing in it may be trusted; the accessors say so in their names.
#[derive(Clone)]
pub struct UnverifiedJws<'a> {
    signing_input: &'a str,
    header: Header,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

impl fmt::Debug for UnverifiedJws<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnverifiedJws")
            .field("alg", &self.header.alg)
            .field("kid", &self.header.kid)
            .finish_non_exhaustive()
    }
}

impl<'a> UnverifiedJws<'a> {
    /// Frames a compact JWS strictly (see the module docs).
    ///
    /// # Errors
    /// [`JoseError`] for any framing or header rule.
    pub fn parse(token: &'a str) -> Result<Self, JoseError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(JoseError::TooLarge { max: MAX_TOKEN_LEN });
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JoseError::SegmentCount);
        };
        let header_bytes =
            b64url_decode_public(h, MAX_TOKEN_LEN).map_err(JoseError::b64(Part::Header))?;
        let header = Header::parse(header_bytes)?;
        let payload =
            b64url_decode_public(p, MAX_TOKEN_LEN).map_err(JoseError::b64(Part::Payload))?;
        let signature =
            b64url_decode_public(s, MAX_TOKEN_LEN).map_err(JoseError::b64(Part::Signature))?;
        let signing_input = token
            .get(..h.len() + 1 + p.len())
            .ok_or(JoseError::SegmentCount)?;
        Ok(Self {
            signing_input,
            header,
            payload,
            signature,
        })
    }

    /// The unverified header.
    pub fn unverified_header(&self) -> &Header {
        &self.header
    }

    /// The unverified payload parsed as claims, e.g. to find `iss` and look up
    /// the party whose keys must verify the token.
    ///
    /// # Errors
    /// [`JoseError::Json`] if the payload is not a strict JSON object.
    pub fn unverified_claims(&self) -> Result<Claims, JoseError> {
        parse_object(&self.payload)
            .map(Claims::new)
            .map_err(JoseError::json(Part::Payload))
    }

    /// Checks the policy, then the signature with the one matching key from
    /// `keys`, then parses the payload.
    ///
    /// # Errors
    /// [`JoseError`]; a bad signature is the opaque [`JoseError::BadSignature`].
    pub fn verify(self, keys: &KeySet, policy: &JwsPolicy<'_>) -> Result<VerifiedJws, JoseError> {
        let (header, payload, key_thumbprint) = self.verify_signature(keys, policy)?;
        let claims = parse_object(&payload).map_err(JoseError::json(Part::Payload))?;
        Ok(VerifiedJws {
            header,
            claims: Claims::new(claims),
            key_thumbprint,
        })
    }

    /// [`UnverifiedJws::verify`] up to the signature: the payload bytes are
    /// returned unparsed, for a reader of one kind of token that applies the
    /// same JSON rules itself.
    pub(crate) fn verify_signature(
        self,
        keys: &KeySet,
        policy: &JwsPolicy<'_>,
    ) -> Result<(Header, Vec<u8>, crate::crypto::JwkThumbprint), JoseError> {
        let alg = self.header.check(policy, false)?;
        let entry = keys.select(alg, self.header.kid())?;
        entry
            .key()
            .verify(self.signing_input.as_bytes(), &self.signature)
            .map_err(|_| JoseError::BadSignature)?;
        Ok((self.header, self.payload, entry.thumbprint()))
    }
}

/// A JWS whose algorithm, type and signature have been checked. Its claims
/// still need the checks of the token kind (time, issuer, audience, ...).
#[derive(Clone, Debug)]
pub struct VerifiedJws {
    header: Header,
    claims: Claims,
    key_thumbprint: crate::crypto::JwkThumbprint,
}

impl VerifiedJws {
    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }
    /// The claims.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }
    /// The thumbprint of the key that verified the signature.
    pub fn key_thumbprint(&self) -> crate::crypto::JwkThumbprint {
        self.key_thumbprint
    }
    /// Splits into header and claims.
    pub fn into_parts(self) -> (Header, Claims) {
        (self.header, self.claims)
    }
}

/// Signs `claims` as a compact JWS with `alg` from the key, and `kid`/`typ`
/// when given.
///
/// # Errors
/// [`SigningError`] if the provider fails.
pub fn sign_compact(
    key: &dyn SigningKey,
    kid: Option<&str>,
    typ: Option<&str>,
    claims: &Map<String, Value>,
) -> Result<String, SigningError> {
    let input = compact_signing_input(key.algorithm(), kid, typ, claims)?;
    let sig = key.sign(input.as_bytes())?;
    Ok(compact_with_signature(input, &sig))
}

/// [`sign_compact`] with a key that may answer later (an HSM, a KMS): what
/// every signer of the family uses.
///
/// # Errors
/// [`SigningError`] if the signer fails.
pub async fn sign_compact_async<K: AsyncSigningKey + ?Sized>(
    key: &K,
    kid: Option<&str>,
    typ: Option<&str>,
    claims: &Map<String, Value>,
) -> Result<String, SigningError> {
    let input = compact_signing_input(key.algorithm(), kid, typ, claims)?;
    let sig = key.sign_async(input.as_bytes()).await?;
    Ok(compact_with_signature(input, &sig))
}

/// `header.payload` of a compact JWS of `claims` under `alg`, `kid`, `typ`.
fn compact_signing_input(
    alg: Algorithm,
    kid: Option<&str>,
    typ: Option<&str>,
    claims: &Map<String, Value>,
) -> Result<String, SigningError> {
    let mut header = Map::new();
    header.insert("alg".into(), Value::String(alg.jose_name().into()));
    if let Some(kid) = kid {
        header.insert("kid".into(), Value::String(kid.into()));
    }
    if let Some(typ) = typ {
        header.insert("typ".into(), Value::String(typ.into()));
    }
    let h = serde_json::to_vec(&header).map_err(|_| SigningError)?;
    let p = serde_json::to_vec(claims).map_err(|_| SigningError)?;
    let mut out = b64url_encode(&h);
    out.push('.');
    out.push_str(&b64url_encode(&p));
    Ok(out)
}

/// The signing input with its signature appended.
fn compact_with_signature(mut input: String, sig: &[u8]) -> String {
    input.push('.');
    input.push_str(&b64url_encode(sig));
    input
}

/// Signs `claims` under a caller-built header (which must carry `alg`
/// matching the key). Public only through `testing::sign_with_header`.
#[cfg(feature = "testing")]
pub(crate) fn sign_with_header(
    key: &dyn SigningKey,
    header: &Map<String, Value>,
    claims: &Map<String, Value>,
) -> Result<String, SigningError> {
    let h = serde_json::to_vec(header).map_err(|_| SigningError)?;
    let p = serde_json::to_vec(claims).map_err(|_| SigningError)?;
    sign_raw_parts(key, &h, &p)
}

/// Signs raw header and payload bytes (already serialized JSON). Public
/// only through `testing::sign_raw_parts`.
#[cfg(feature = "testing")]
pub(crate) fn sign_raw_parts(
    key: &dyn SigningKey,
    header: &[u8],
    payload: &[u8],
) -> Result<String, SigningError> {
    let mut input = b64url_encode(header);
    input.push('.');
    input.push_str(&b64url_encode(payload));
    let sig = key.sign(input.as_bytes())?;
    Ok(compact_with_signature(input, &sig))
}

/// The header rules as they were before the one-pass reader
/// (`parse_object`, then the same rules in the same order), kept as the
/// reference the tests and the `claim_readers` fuzz target hold
/// [`Header::parse`] to: the common outcome, or both if they differ.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn header_readers_agree(bytes: &[u8]) -> Result<String, String> {
    fn general(bytes: &[u8]) -> Result<String, JoseError> {
        let members = parse_object(bytes).map_err(JoseError::json(Part::Header))?;
        if let Some(name) = KEY_SOURCE_HEADERS
            .iter()
            .find(|n| members.contains_key(**n))
        {
            return Err(JoseError::EmbeddedKeySource(name));
        }
        let opt_str = |name: &'static str| match members.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(JoseError::HeaderType(name)),
        };
        let alg = opt_str("alg")?.ok_or(JoseError::MissingAlgorithm)?;
        let kid = opt_str("kid")?;
        let typ = opt_str("typ")?;
        let cty = opt_str("cty")?;
        let crit = match members.get("crit") {
            None => None,
            Some(Value::Array(items)) => {
                let mut names: Vec<String> = Vec::new();
                for item in items {
                    match item {
                        Value::String(s)
                            if !s.is_empty()
                                && !names.contains(s)
                                && members.contains_key(s.as_str()) =>
                        {
                            names.push(s.clone());
                        }
                        _ => return Err(JoseError::MalformedCritical),
                    }
                }
                if names.is_empty() {
                    return Err(JoseError::MalformedCritical);
                }
                Some(names)
            }
            Some(_) => return Err(JoseError::MalformedCritical),
        };
        Ok(format!(
            "{alg:?} {kid:?} {typ:?} {cty:?} {crit:?} {} {:?} {:?}",
            members.contains_key("b64"),
            members.get("b64"),
            members.get("http://openbanking.org.uk/iat")
        ))
    }
    fn one_pass(bytes: &[u8]) -> Result<String, JoseError> {
        let h = Header::parse(bytes.to_vec())?;
        Ok(format!(
            "{:?} {:?} {:?} {:?} {:?} {} {:?} {:?}",
            h.alg,
            h.kid,
            h.typ,
            h.cty,
            h.crit,
            h.has_b64,
            h.get("b64"),
            h.get("http://openbanking.org.uk/iat")
        ))
    }
    json::same_outcome(
        "header",
        bytes,
        format!("{:?}", one_pass(bytes)),
        format!("{:?}", general(bytes)),
    )
}

#[cfg(test)]
mod header_reader_equivalence {
    //! The one-pass header reader against the reader it replaced (see
    //! [`header_readers_agree`]): same header or same error on every
    //! document.
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use proptest::prelude::*;

    fn agree(bytes: &[u8]) {
        if let Err(disagreement) = super::header_readers_agree(bytes) {
            panic!("{disagreement}");
        }
    }

    #[test]
    fn hand_picked_headers_read_the_same() {
        for h in [
            r#"{"alg":"PS256","kid":"k","typ":"at+jwt"}"#,
            r#"{"alg":"PS256","b64":false,"crit":["b64"],"http://openbanking.org.uk/iat":1}"#,
            r#"{"alg":"PS256","crit":["b64"]}"#,
            r#"{"alg":"PS256","crit":[]}"#,
            r#"{"alg":"PS256","crit":"b64","b64":false}"#,
            r#"{"alg":"PS256","crit":["x","x"],"x":1}"#,
            r#"{"alg":"PS256","crit":[""],"":1}"#,
            r#"{"alg":"PS256","crit":[1]}"#,
            r#"{"alg":"PS256","crit":["crit"]}"#,
            r#"{"alg":"PS256","alg":"none"}"#,
            r#"{"alg":"PS256","\u0061lg":"none"}"#,
            r#"{"alg":5}"#,
            r#"{"kid":"k"}"#,
            r#"{"alg":"PS256","kid":7}"#,
            r#"{"alg":"PS256","typ":null}"#,
            r#"{"alg":"PS256","cty":"JWT"}"#,
            r#"{"alg":"PS256","cty":7}"#,
            r#"{"alg":"PS256","cty":"json","cty":"JWT"}"#,
            r#"{"alg":"PS256","x5c":["a"],"jwk":{}}"#,
            r#"{"jku":"https://x","alg":7}"#,
            r#"{"alg":"PS256","x":{"y":1,"y":2}}"#,
            r#"{"alg":"PS256","x":[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]}"#,
            r#"{"alg":"PS256","x":[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]}"#,
            r#"{"alg":"PS256","crit":[[[[[[[[[[[[[[["x"]]]]]]]]]]]]]]]}"#,
            "[]",
            "[{\"a\":1,\"a\":1}]",
            "{} x",
            "",
            "{\"alg\":\"PS\\u0032\"}",
        ] {
            agree(h.as_bytes());
        }
        let many: Vec<String> = (0..40).map(|i| format!("\"m{i}\":{i}")).collect();
        agree(format!("{{\"alg\":\"ES256\",{}}}", many.join(",")).as_bytes());
        agree(format!("{{\"alg\":\"ES256\",{},\"m7\":1}}", many.join(",")).as_bytes());
        agree(
            format!(
                "{{\"alg\":\"ES256\",\"crit\":[\"m39\"],{}}}",
                many.join(",")
            )
            .as_bytes(),
        );
    }

    fn name() -> impl Strategy<Value = String> {
        proptest::sample::select(vec![
            "alg",
            "kid",
            "typ",
            "cty",
            "crit",
            "b64",
            "jwk",
            "x5c",
            "http://openbanking.org.uk/iat",
            "x",
            "",
        ])
        .prop_map(str::to_owned)
    }

    fn value() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("\"PS256\"".to_owned()),
            Just("\"b64\"".to_owned()),
            Just("\"x\"".to_owned()),
            Just("\"\"".to_owned()),
            Just("false".to_owned()),
            Just("1".to_owned()),
            Just("null".to_owned()),
        ];
        leaf.prop_recursive(17, 64, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                proptest::collection::vec((name(), inner), 0..3).prop_map(|m| {
                    let m: Vec<String> =
                        m.into_iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                    format!("{{{}}}", m.join(","))
                }),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn readers_agree_on_generated_headers(
            members in proptest::collection::vec((name(), value()), 0..8)
        ) {
            let m: Vec<String> = members.into_iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            agree(format!("{{{}}}", m.join(",")).as_bytes());
        }
    }
}
