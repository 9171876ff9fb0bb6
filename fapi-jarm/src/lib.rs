#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[doc = include_str!("../MANUAL.md")]
pub mod manual {}
pub mod response;
pub mod verifier;

pub use response::{html_escape, AuthorizationResponse, JarmSigner, Rendered};
pub use verifier::{JarmOutcome, JarmVerifier};

use fapi_core::claims::ClaimError;
use fapi_core::crypto::SigningError;
use fapi_core::jose::JoseError;
use fapi_core::{ErrorCode, OAuthError};

/// Why a JARM response could not be made or was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JarmError {
    /// Signing failed (bank side, `server_error`).
    #[error(transparent)]
    Signing(#[from] SigningError),
    /// The redirect URI could not carry the response (bank side).
    #[error("redirect_uri cannot carry the response")]
    RedirectUri,
    /// The response JWT failed a JOSE rule (TPP side).
    #[error("authorization response rejected: {0}")]
    Jose(#[from] JoseError),
    /// A claim failed: wrong `iss`, `aud`, expired, wrong type (TPP side).
    #[error("authorization response rejected: {0}")]
    Claim(#[from] ClaimError),
    /// `state` differs from the one the TPP sent, or is missing or extra.
    #[error("authorization response state does not match the request")]
    StateMismatch,
    /// The response carries neither a `code` nor an `error`, or both.
    #[error("authorization response must carry exactly one of code or error")]
    Malformed,
    /// The redirect carries no `response` parameter, or more than one.
    #[error("redirect does not carry exactly one response parameter")]
    MissingResponse,
}

impl OAuthError for JarmError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::Signing(_) | Self::RedirectUri => ErrorCode::ServerError,
            _ => ErrorCode::InvalidRequest,
        }
    }
}
