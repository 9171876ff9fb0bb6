//! Proof of possession: the vocabulary every sender-constrained token and
//! grant of the family shares, whichever way the key is proven. A token's
//! [`Confirmation`] (its `cnf`) names a key by thumbprint; a request
//! presents a key through [`ProofOfPossession`] (the mTLS client
//! certificate in `fapi-mtls-binding`, a DPoP proof); [`Confirmation::check`]
//! is the one binding rule: the same method and the same thumbprint,
//! compared in constant time. A token bound one way never binds the other.
//!
//! The two thumbprint types are the family's key names:
//! [`CertificateThumbprint`] (`x5t#S256`, RFC 8705) and [`JwkThumbprint`]
//! (`jkt`, RFC 7638 / RFC 9449).

use serde_json::{json, Value};

use crate::access_token::AccessTokenError;
use crate::error::{ErrorCode, OAuthError};

use crate::crypto::JwkThumbprint;
use crate::types::CertificateThumbprint;

/// A token's confirmation claim (`cnf`): the key the token is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Confirmation {
    /// `x5t#S256`: bound to a client certificate ([RFC 8705 §3.1]).
    ///
    /// [RFC 8705 §3.1]: https://www.rfc-editor.org/rfc/rfc8705#section-3.1
    CertificateThumbprint(CertificateThumbprint),
    /// `jkt`: bound to a DPoP key ([RFC 9449 §6.1]).
    ///
    /// [RFC 9449 §6.1]: https://www.rfc-editor.org/rfc/rfc9449#section-6.1
    JwkThumbprint(JwkThumbprint),
}

impl Confirmation {
    /// The `cnf` claim value.
    pub fn to_json(&self) -> Value {
        match self {
            Self::CertificateThumbprint(t) => json!({ "x5t#S256": t.to_b64url() }),
            Self::JwkThumbprint(t) => json!({ "jkt": t.to_b64url() }),
        }
    }

    /// From a `cnf` object: exactly one of `x5t#S256` and `jkt`, a string
    /// of a SHA-256 thumbprint (how a store reads back a binding it kept
    /// as [`Self::to_json`]).
    ///
    /// # Errors
    /// [`AccessTokenError::MalformedConfirmation`].
    pub fn from_json(v: &Value) -> Result<Self, AccessTokenError> {
        let Value::Object(m) = v else {
            return Err(AccessTokenError::MalformedConfirmation);
        };
        match (m.get("x5t#S256"), m.get("jkt")) {
            (Some(Value::String(s)), None) => CertificateThumbprint::from_b64url(s)
                .map(Self::CertificateThumbprint)
                .map_err(|_| AccessTokenError::MalformedConfirmation),
            (None, Some(Value::String(s))) => {
                let t = CertificateThumbprint::from_b64url(s)
                    .map_err(|_| AccessTokenError::MalformedConfirmation)?;
                Ok(Self::JwkThumbprint(JwkThumbprint(*t.as_bytes())))
            }
            _ => Err(AccessTokenError::MalformedConfirmation),
        }
    }
}

impl Confirmation {
    /// Whether `proof` presents the key this binding names: the same
    /// method, and the same thumbprint (constant-time comparison). The one
    /// binding rule for access tokens and refresh grants.
    ///
    /// # Errors
    /// [`BindingError::MethodMismatch`], [`BindingError::KeyMismatch`].
    pub fn check(&self, proof: &impl ProofOfPossession) -> Result<(), BindingError> {
        let matches = match (self, proof.presented_key()) {
            (Self::CertificateThumbprint(bound), PresentedKey::Certificate(shown)) => {
                bound == shown
            }
            (Self::JwkThumbprint(bound), PresentedKey::DpopKey(shown)) => {
                subtle::ConstantTimeEq::ct_eq(&bound.0[..], &shown.0[..]).into()
            }
            _ => return Err(BindingError::MethodMismatch),
        };
        if matches {
            Ok(())
        } else {
            Err(BindingError::KeyMismatch)
        }
    }
}

/// What a request proves it holds: the certificate of its mTLS connection,
/// or the key of its DPoP proof.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum PresentedKey<'a> {
    /// The thumbprint of the client certificate this request came with.
    Certificate(&'a CertificateThumbprint),
    /// The thumbprint of the key that signed this request's DPoP proof.
    DpopKey(&'a JwkThumbprint),
}

/// Proof of possession presented with a request: implemented by
/// `fapi-mtls-binding` for the verified client certificate of the TLS
/// connection, and later by a DPoP proof verifier.
///
/// # Security
/// An implementation must report only a key the request *proved* it holds
/// (the certificate the TLS handshake verified, never a header a client sent).
pub trait ProofOfPossession {
    /// The key presented with this request.
    fn presented_key(&self) -> PresentedKey<'_>;
}

/// Why a verified token could not be bound to the request. Every variant
/// maps to `invalid_token` (HTTP 401).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BindingError {
    /// The token has no `cnf`: it is a bearer token, and bearer tokens are
    /// never accepted.
    #[error("access token is not sender-constrained (no cnf)")]
    NoConfirmation,
    /// The token is bound by another method than the one presented (e.g.
    /// `jkt` while the request presented a certificate).
    #[error(
        "access token is bound by a different proof-of-possession method than the one presented"
    )]
    MethodMismatch,
    /// The presented key is not the one the token is bound to.
    #[error("access token is bound to a different key than the one presented")]
    KeyMismatch,
}

impl OAuthError for BindingError {
    fn error_code(&self) -> ErrorCode {
        ErrorCode::InvalidToken
    }
}
