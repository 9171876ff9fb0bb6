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
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod id_token;
pub mod jose;
pub mod json;
pub mod jwk;
#[doc = include_str!("../MANUAL.md")]
pub mod manual {}
pub mod pkce;
pub mod pop;
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

// The main paths, flat (the modules stay public for everything else).

// the resource server's type chain: verify -> bind (-> the consent gate)
pub use access_token::{
    AccessTokenClaims, AccessTokenIssuer, AccessTokenVerifier, BoundAccessToken, Confirmation,
    ProofOfPossession, VerifiedAccessToken,
};
// the authorization server's checks
pub use client::ClientMetadata;
pub use client_auth::{AssertionContext, AuthenticatedClient, UnverifiedClientAssertion};
pub use request_object::{RequestValidator, ValidatedAuthorizationRequest};
// keys, signatures and the JOSE policy
pub use crypto::{
    default_provider, Algorithm, AsyncSigningKey, CryptoProvider, SigningKey, VerifyingKey,
};
pub use jose::{ExpectedType, JwsPolicy, UnverifiedJws, VerifiedJws};
pub use jwk::{Jwk, JwkSet, KeySet};
// protocol values, time, errors, stores
pub use error::{ErrorCode, ErrorResponse, OAuthError};
pub use profile::Profile;
pub use store::{BoxFuture, StoreError};
pub use time::{Clock, SystemClock, UnixTime};
pub use types::{ClientId, ConsentId, Issuer, JwtId, RedirectUri, Scope, TokenAudience};
