#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod access_token;
pub mod claims;
pub mod client;
pub mod client_auth;
pub mod code;
pub mod crypto;
pub mod dpop;
pub mod encoding;
mod error;
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
mod pop;
mod profile;
pub mod random;
pub mod refresh;
pub mod replay;
pub mod request_object;
pub mod revocation;
mod secret;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod time;
mod types;

// The main paths, flat. The vocabulary modules (errors, profile, time,
// protocol types, proof of possession) are private: their items live here.
// The modules that group a job (access_token, jose, crypto, ...) stay public
// for what is not listed.

// the resource server's type chain: verify -> bind (-> the consent gate)
pub use access_token::{
    AccessTokenClaims, AccessTokenIssuer, AccessTokenVerifier, BoundAccessToken,
    VerifiedAccessToken,
};
// proof of possession: what mTLS (and DPoP) implement to bind a token
pub use pop::{BindingError, Confirmation, PresentedKey, ProofOfPossession};
// the authorization server's checks
pub use client::ClientMetadata;
pub use client_auth::{AssertionContext, AuthenticatedClient, UnverifiedClientAssertion};
pub use request_object::{RequestValidator, ValidatedAuthorizationRequest};
// keys, signatures and the JOSE policy
pub use crypto::{
    default_provider, Algorithm, AsyncSigningKey, CryptoProvider, JwkThumbprint, SigningKey,
    VerifyingKey,
};
pub use jose::{ExpectedType, JwsPolicy, UnverifiedJws, VerifiedJws};
pub use jwk::{Jwk, JwkSet, KeySet};
// protocol values, time, errors, stores
pub use error::{ErrorCode, ErrorResponse, OAuthError};
pub use profile::{
    Profile, MAX_CLIENT_ASSERTION_LIFETIME_SECS, MAX_CLOCK_SKEW_SECS, MAX_FUTURE_SKEW_SECS,
    MAX_REQUEST_OBJECT_LIFETIME_SECS, MAX_REQUEST_OBJECT_NBF_AGE_SECS,
};
pub use store::{BoxFuture, StoreError};
pub use time::{Clock, FixedClock, SystemClock, UnixTime};
pub use types::{
    CertificateThumbprint, ClientId, CodeChallenge, CodeVerifier, ConsentId, InvalidValue, Issuer,
    JwtId, Nonce, RedirectUri, Scope, State, TokenAudience,
};
