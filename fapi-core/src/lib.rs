#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod access_token;
pub mod claims;
pub mod client;
pub mod client_auth;
pub mod crypto;
pub mod encoding;
pub mod error;
pub mod id_token;
pub mod jose;
pub mod json;
pub mod jwk;
#[doc = include_str!("../MANUAL.md")]
pub mod manual {}
pub mod pkce;
pub mod profile;
pub mod random;
pub mod replay;
pub mod request_object;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;
pub mod types;

pub use access_token::{AccessTokenVerifier, BoundAccessToken, VerifiedAccessToken};
pub use client_auth::AuthenticatedClient;
pub use error::{ErrorCode, ErrorResponse, OAuthError};
pub use profile::Profile;
