//! Refresh tokens under FAPI 2 (FAPI 2 SP §5.3.2.1: not rotated, bound to
//! the client and the key of the request that got them): the token a
//! secret ([`RefreshToken`]), what it stands for ([`RefreshGrant`], with
//! its binding as a typed [`Confirmation`]), the checks every refresh
//! passes ([`RefreshGrant::check`]), and the store trait
//! ([`RefreshGrantStore`]; `fapi_core::testing::refresh_grant_store_conformance`
//! with feature `testing`). Whether the grant's consent still allows it
//! is the consent layer's live read, not this module's.

use core::fmt;
use std::collections::HashMap;
use std::sync::Mutex;

use crate::access_token::{BindingError, Confirmation, ProofOfPossession};
use crate::error::{ErrorCode, OAuthError};
use crate::store::{ready, BoxFuture, StoreError};
use crate::types::{ClientId, ConsentId, JwtId, Scope};

crate::secret::secret_token!(
    /// A refresh token: 32 bytes from the OS CSPRNG, base64url, when
    /// issued; a presented one is 1-128 base64url characters.
    ///
    /// A secret: `Debug` is redacted, it is not `Clone`, equality is
    /// constant time, it is wiped on drop, and stores see only
    /// [`Self::hash`].
    RefreshToken,
    "refresh_token"
);

/// What a refresh token stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshGrant {
    /// Its id: recorded against the authorization code, so a replayed
    /// code revokes it ([`RefreshGrantStore::revoke`]).
    pub id: JwtId,
    /// The client it was issued to.
    pub client_id: ClientId,
    /// The key it is bound to (the certificate, or the DPoP key, of the
    /// token request that got it).
    pub confirmation: Confirmation,
    /// The consent it continues.
    pub consent_id: ConsentId,
    /// The customer who consented.
    pub customer_id: String,
    /// The scope each refreshed access token gets.
    pub scope: Scope,
}

/// Why a refresh token was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RefreshError {
    /// Never issued, or revoked.
    #[error("refresh token is unknown or revoked")]
    Unknown,
    /// Issued to another client.
    #[error("refresh token was issued to another client")]
    WrongClient,
    /// Bound to another key (or by another method) than the request's.
    #[error("refresh token is bound to another key of this client")]
    Binding(BindingError),
    /// The store failed (fail closed).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl OAuthError for RefreshError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::Store(_) => ErrorCode::ServerError,
            _ => ErrorCode::InvalidGrant,
        }
    }
}

impl RefreshGrant {
    /// The checks of every refresh: the grant is `client`'s and `proof`
    /// presents the key it is bound to (same method, constant-time
    /// comparison).
    ///
    /// # Errors
    /// [`RefreshError::WrongClient`], [`RefreshError::Binding`].
    pub fn check(
        &self,
        client: &ClientId,
        proof: &impl ProofOfPossession,
    ) -> Result<(), RefreshError> {
        if &self.client_id != client {
            return Err(RefreshError::WrongClient);
        }
        self.confirmation
            .check(proof)
            .map_err(RefreshError::Binding)
    }
}

/// Stores refresh grants.
///
/// # Guarantees an implementation must give
/// - Only the token's hash is stored; `grant` finds a grant by the token.
/// - After `revoke` returns `Ok` for an id, no token of that id is found
///   again, from any handle on the same store (revocation is permanent).
/// - On any failure it returns `Err`, never a grant it is unsure of.
pub trait RefreshGrantStore: Send + Sync + fmt::Debug {
    /// Stores a new token's grant.
    fn store<'a>(
        &'a self,
        token: &'a RefreshToken,
        grant: RefreshGrant,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// The grant of `token`, unless unknown or revoked.
    fn grant<'a>(
        &'a self,
        token: &'a RefreshToken,
    ) -> BoxFuture<'a, Result<Option<RefreshGrant>, StoreError>>;
    /// Revokes the grants with ids `ids` (those a replayed code issued).
    fn revoke<'a>(&'a self, ids: &'a [JwtId]) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// An in-memory [`RefreshGrantStore`].
#[derive(Default)]
pub struct InMemoryRefreshGrants {
    grants: Mutex<HashMap<[u8; 32], RefreshGrant>>,
}

impl fmt::Debug for InMemoryRefreshGrants {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryRefreshGrants")
            .finish_non_exhaustive()
    }
}

impl InMemoryRefreshGrants {
    fn with<T>(
        &self,
        f: impl FnOnce(&mut HashMap<[u8; 32], RefreshGrant>) -> T,
    ) -> Result<T, StoreError> {
        let mut m = self
            .grants
            .lock()
            .map_err(|_| StoreError::unavailable("refresh grant store lock poisoned"))?;
        Ok(f(&mut m))
    }
}

impl RefreshGrantStore for InMemoryRefreshGrants {
    fn store<'a>(
        &'a self,
        token: &'a RefreshToken,
        grant: RefreshGrant,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        ready(self.with(|m| {
            m.insert(token.hash(), grant);
        }))
    }
    fn grant<'a>(
        &'a self,
        token: &'a RefreshToken,
    ) -> BoxFuture<'a, Result<Option<RefreshGrant>, StoreError>> {
        ready(self.with(|m| m.get(&token.hash()).cloned()))
    }
    fn revoke<'a>(&'a self, ids: &'a [JwtId]) -> BoxFuture<'a, Result<(), StoreError>> {
        ready(self.with(|m| m.retain(|_, g| !ids.contains(&g.id))))
    }
}
