#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod access_token;
pub mod claims;
pub mod client;
pub mod client_auth;
pub mod code;
pub mod crypto;
pub mod encoding;
pub mod error;
pub mod form;
/// Entry points for the targets in `fuzz/` (feature `fuzzing`); not an API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    /// The one-pass access token claim reader and the general reader
    /// (`parse_object` + `Claims`) give the same outcome for `payload`.
    ///
    /// # Errors
    /// Both outcomes, when they differ.
    pub fn access_token_readers_agree(payload: &[u8]) -> Result<(), String> {
        crate::access_token::reference::readers_agree(payload).map(|_| ())
    }
    /// The one-pass JWS header reader and the general reader give the
    /// same header or the same error for `bytes`.
    ///
    /// # Errors
    /// Both outcomes, when they differ.
    pub fn header_readers_agree(bytes: &[u8]) -> Result<(), String> {
        crate::jose::header_readers_agree(bytes).map(|_| ())
    }
}
pub mod id_token;
pub mod jose;
pub mod json;
pub mod jwk;
#[doc = include_str!("../MANUAL.md")]
pub mod manual {}
pub mod pkce;
pub mod profile;
pub mod random;
pub mod refresh;
pub mod replay;
pub mod request_object;
pub mod revocation;
mod secret;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;
pub mod types;

pub use access_token::{AccessTokenVerifier, BoundAccessToken, VerifiedAccessToken};
pub use client_auth::AuthenticatedClient;
pub use error::{ErrorCode, ErrorResponse, OAuthError};
pub use profile::Profile;
