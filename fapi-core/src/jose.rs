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
mod framing;
mod header;
#[cfg(any(test, feature = "fuzzing"))]
mod reference;
mod signing;
#[cfg(test)]
mod tests;

pub use framing::{UnverifiedJws, VerifiedJws};
pub use header::{ExpectedType, Header, JwsPolicy};
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use reference::header_readers_agree;
pub(crate) use signing::sign_dpop;
pub use signing::{sign_compact, sign_compact_async};
#[cfg(feature = "testing")]
pub(crate) use signing::{sign_raw_parts, sign_with_header};

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
