#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod form;
#[doc = include_str!("../MANUAL.md")]
pub mod manual {}
pub mod request_uri;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;

use fapi_core::client::ClientMetadata;
use fapi_core::random::RandomError;
use fapi_core::request_object::{
    AuthorizationRequestError, RequestValidator, ValidatedAuthorizationRequest,
};
use fapi_core::store::StoreError;
use fapi_core::Issuer;
use fapi_core::UnixTime;
use fapi_core::{AuthenticatedClient, Profile};
use fapi_core::{ErrorCode, OAuthError};
use serde::Serialize;
use std::sync::Arc;

pub use form::{FormError, PushedRequestForm};
pub use request_uri::RequestUri;
pub use store::{
    CurrentRegistration, InMemoryPushedRequestStore, LookupError, PushSource, PushedRequest,
    PushedRequestStore,
};

/// Why a pushed authorization request was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParError {
    /// The body is malformed (`invalid_request`).
    #[error(transparent)]
    Form(#[from] FormError),
    /// The `client_id` parameter names another client than the one that
    /// authenticated (`invalid_client`).
    #[error("client_id does not match the authenticated client")]
    ConflictingClientIds,
    /// The authorization request breaks a rule of the profile.
    #[error(transparent)]
    Request(#[from] AuthorizationRequestError),
    /// The store failed (`server_error`).
    #[error("pushed request could not be stored")]
    Store(#[from] StoreError),
    /// The OS CSPRNG failed (`server_error`).
    #[error(transparent)]
    Random(#[from] RandomError),
}

impl OAuthError for ParError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::Form(_) => ErrorCode::InvalidRequest,
            Self::ConflictingClientIds => ErrorCode::InvalidClient,
            Self::Request(e) => e.error_code(),
            Self::Store(_) | Self::Random(_) => ErrorCode::ServerError,
        }
    }
}

impl OAuthError for LookupError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::Store(_) => ErrorCode::ServerError,
            _ => ErrorCode::InvalidRequestUri,
        }
    }
}

/// The `201 Created` body of [RFC 9126 §2.2](https://www.rfc-editor.org/rfc/rfc9126#section-2.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ParResponse {
    /// The reference for the authorization request.
    pub request_uri: String,
    /// Seconds until it expires.
    pub expires_in: i64,
}

impl ParResponse {
    /// The HTTP status of a successful push.
    pub const STATUS: u16 = 201;
}

/// The PAR endpoint's settings.
#[derive(Clone, Debug)]
pub struct ParConfig {
    requests: RequestValidator,
    expires_in_secs: i64,
}

impl ParConfig {
    /// Settings for `profile` and the authorization server `issuer`, with
    /// the profile's default lifetime (60 s).
    pub fn new(profile: Profile, issuer: Issuer) -> Self {
        Self {
            requests: RequestValidator::new(profile, issuer),
            expires_in_secs: profile.par_expires_in().0,
        }
    }

    /// A custom lifetime: at least 5 s and under the profile's maximum
    /// (600 s); `None` outside that range.
    pub fn with_expires_in(mut self, secs: i64) -> Option<Self> {
        (5..self.profile().par_expires_in().1)
            .contains(&secs)
            .then(|| {
                self.expires_in_secs = secs;
                self
            })
    }

    /// The profile.
    pub fn profile(&self) -> Profile {
        self.requests.profile()
    }

    /// The authorization server's issuer identifier (the `aud` a request
    /// object must name).
    pub fn issuer(&self) -> &Issuer {
        self.requests.issuer()
    }

    /// Handles a pushed authorization request ([RFC 9126 §2]): the client
    /// has already authenticated (`client`, which carries its registration);
    /// the body is validated per profile (a signed request object, or plain
    /// parameters where the profile allows), stored under a fresh
    /// `request_uri`, and the 201 body returned. The reference expires at
    /// the configured lifetime or the request object's `exp`, whichever is
    /// sooner.
    ///
    /// It is [`ParConfig::validate`] then [`ValidatedPush::store`]; call
    /// those two to apply a policy of your own to the validated request in
    /// between.
    ///
    /// [RFC 9126 §2]: https://www.rfc-editor.org/rfc/rfc9126#section-2
    ///
    /// # Errors
    /// [`ParError`], mapped to its OAuth error code.
    pub async fn push(
        &self,
        form: &PushedRequestForm,
        client: &AuthenticatedClient,
        store: &dyn PushedRequestStore,
        now: UnixTime,
    ) -> Result<ParResponse, ParError> {
        self.validate(form, client, now)?.store(store, now).await
    }

    /// The validation half of [`ParConfig::push`].
    ///
    /// # Errors
    /// [`ParError`].
    pub fn validate(
        &self,
        form: &PushedRequestForm,
        client: &AuthenticatedClient,
        now: UnixTime,
    ) -> Result<ValidatedPush, ParError> {
        if form
            .get("client_id")
            .is_some_and(|c| c != client.client_id().as_str())
        {
            return Err(ParError::ConflictingClientIds);
        }
        let source = PushSource {
            parameters: form.authorization_parameters(),
            pushed_at: now,
        };
        let request = self.revalidate(&source, client.registration())?;
        let mut expires_at = now.saturating_add(self.expires_in_secs);
        if let Some(exp) = request.request_object_expires_at() {
            expires_at = expires_at.min(exp);
        }
        Ok(ValidatedPush {
            source,
            request,
            expires_at,
        })
    }

    /// Validates a pushed request from its `source` exactly as
    /// [`ParConfig::push`] did at `source.pushed_at`: a signed request
    /// object (signature by a key of `registration`, claims, profile rules)
    /// or plain parameters where the profile allows. A durable store keeps
    /// only the source and calls this when it reads a request back, so
    /// nothing read from storage is trusted without the same checks (a
    /// changed row, or a registration whose keys were replaced or that
    /// belongs to another client, fails).
    ///
    /// # Errors
    /// [`ParError::Request`].
    pub fn revalidate(
        &self,
        source: &PushSource,
        registration: &ClientMetadata,
    ) -> Result<ValidatedAuthorizationRequest, ParError> {
        let params = &source.parameters;
        let request = params
            .iter()
            .find(|(k, _)| k == "request")
            .map(|(_, v)| v.as_str());
        Ok(match request {
            Some(request) => {
                self.requests
                    .request_object(request, params, registration, source.pushed_at)?
            }
            None => self.requests.plain_parameters(params, registration)?,
        })
    }
}

/// A pushed request that passed every rule of [`ParConfig::push`] and is not stored
/// yet: no `request_uri` exists for it until [`ValidatedPush::store`].
#[derive(Debug)]
pub struct ValidatedPush {
    source: PushSource,
    request: ValidatedAuthorizationRequest,
    expires_at: UnixTime,
}

impl ValidatedPush {
    /// The validated request, for the caller's own checks.
    pub fn request(&self) -> &ValidatedAuthorizationRequest {
        &self.request
    }

    /// Stores the request under a fresh 256-bit `request_uri` and returns
    /// the 201 body.
    ///
    /// # Errors
    /// [`ParError`] if the CSPRNG or the store fails.
    pub async fn store(
        self,
        store: &dyn PushedRequestStore,
        now: UnixTime,
    ) -> Result<ParResponse, ParError> {
        let request_uri = RequestUri::generate()?;
        let response = ParResponse {
            request_uri: request_uri.as_str().to_owned(),
            expires_in: self.expires_at.secs_since(now),
        };
        store
            .put(
                PushedRequest {
                    request_uri,
                    request: Arc::new(self.request),
                    expires_at: self.expires_at,
                    source: Arc::new(self.source),
                },
                now,
            )
            .await?;
        Ok(response)
    }
}
