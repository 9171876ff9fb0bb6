//! JWT access tokens ([RFC 9068]) that are always sender-constrained, and the
//! first two links of the resource-server chain:
//!
//! ```text
//! &str (Authorization header)
//!   -> AccessTokenVerifier::verify -> VerifiedAccessToken  (alg, typ at+jwt, signature, iss, aud, exp, ...)
//!   -> VerifiedAccessToken::bind   -> BoundAccessToken     (cnf == presented proof, constant time)
//!   -> ConsentGate::authorize (fapi-consent)
//! ```
//!
//! [`BoundAccessToken`] has no public constructor: [`VerifiedAccessToken::bind`]
//! is the only way to make one, and a token without `cnf` cannot be bound.
//! There is no bearer fallback.
//!
//! [RFC 9068]: https://www.rfc-editor.org/rfc/rfc9068

use core::fmt;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{json, Map};
use sha2::{Digest, Sha256};

use crate::claims::{ClaimError, TimeRules, TimeRulesError, Times};
use crate::crypto::{shared_signer, Algorithm, AsyncSigningKey, JwkThumbprint, SigningError};
use crate::error::{ErrorCode, OAuthError};
use crate::jose::{sign_compact_async, ExpectedType, JoseError, JwsPolicy, Part, UnverifiedJws};
use crate::jwk::KeySet;
use crate::random::{self, RandomError};
use crate::time::UnixTime;
use crate::types::{
    CertificateThumbprint, ClientId, ConsentId, Issuer, JwtId, Scope, TokenAudience,
};

mod payload;

pub use crate::pop::{BindingError, Confirmation, PresentedKey, ProofOfPossession};

/// The `typ` of a JWT access token.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

impl Confirmation {
    /// From the `x5t#S256` and `jkt` members of a `cnf` object: exactly
    /// one, a string of a SHA-256 thumbprint.
    fn from_members(
        x5t_s256: &payload::Slot<Cow<'_, str>>,
        jkt: &payload::Slot<Cow<'_, str>>,
    ) -> Result<Self, AccessTokenError> {
        use payload::Slot;
        match (x5t_s256, jkt) {
            (Slot::Present(s), Slot::Absent) => CertificateThumbprint::from_b64url(s)
                .map(Self::CertificateThumbprint)
                .map_err(|_| AccessTokenError::MalformedConfirmation),
            (Slot::Absent, Slot::Present(s)) => {
                let t = CertificateThumbprint::from_b64url(s)
                    .map_err(|_| AccessTokenError::MalformedConfirmation)?;
                Ok(Self::JwkThumbprint(JwkThumbprint(*t.as_bytes())))
            }
            _ => Err(AccessTokenError::MalformedConfirmation),
        }
    }
}

mod issue;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod reference;
#[cfg(test)]
mod tests;
mod verify;

pub use issue::{AccessTokenClaims, AccessTokenIssuer, IssueError, IssuedAccessToken};
pub use verify::{AccessTokenError, AccessTokenVerifier, BoundAccessToken, VerifiedAccessToken};
