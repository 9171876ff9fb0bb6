//! Revoked tokens: what makes a revocation stop the *next* call (RFC 7009
//! semantics, FAPI-RULES "revocation takes effect on the next call"). An
//! access token is revoked by its `jti` and checked live on every
//! resource call; a refresh token by the id recorded for it.
//!
//! [`RevokedTokenStore`] is the store trait;
//! `fapi_core::testing::revoked_token_store_conformance` (feature
//! `testing`) checks an adapter keeps its guarantees.

use core::fmt;
use std::collections::HashMap;
use std::sync::Mutex;

use crate::store::{ready, BoxFuture, StoreError};
use crate::time::UnixTime;
use crate::types::JwtId;

/// Remembers revoked token ids.
///
/// # Guarantees an implementation must give
/// - After `revoke` returns `Ok`, `is_revoked` answers `true` for each id,
///   from every handle on the same store (another process included), until
///   at least the longest token lifetime plus clock skew has passed.
/// - `revoke` is idempotent and all-or-nothing for its list.
/// - An id never revoked answers `false`; on any failure `is_revoked`
///   answers `Err`, never `Ok(false)` (fail closed).
pub trait RevokedTokenStore: Send + Sync + fmt::Debug {
    /// Revokes the tokens `ids` at `now`.
    fn revoke<'a>(
        &'a self,
        ids: &'a [JwtId],
        now: UnixTime,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Whether the token `id` is revoked.
    fn is_revoked<'a>(&'a self, id: &'a JwtId) -> BoxFuture<'a, Result<bool, StoreError>>;
}

/// An in-memory [`RevokedTokenStore`] (one process; tests and single-node
/// demos). Entries are kept until [`Self::forget_before`] drops them.
#[derive(Default)]
pub struct InMemoryRevokedTokens {
    revoked: Mutex<HashMap<String, UnixTime>>,
}

impl fmt::Debug for InMemoryRevokedTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryRevokedTokens")
            .finish_non_exhaustive()
    }
}

impl InMemoryRevokedTokens {
    fn with<T>(
        &self,
        f: impl FnOnce(&mut HashMap<String, UnixTime>) -> T,
    ) -> Result<T, StoreError> {
        let mut m = self
            .revoked
            .lock()
            .map_err(|_| StoreError::unavailable("revoked token store lock poisoned"))?;
        Ok(f(&mut m))
    }

    /// Forgets revocations made before `cutoff` (call with `now` minus
    /// the longest token lifetime plus skew).
    ///
    /// # Errors
    /// [`StoreError`] if the lock is poisoned.
    pub fn forget_before(&self, cutoff: UnixTime) -> Result<usize, StoreError> {
        self.with(|m| {
            let before = m.len();
            m.retain(|_, at| *at >= cutoff);
            before - m.len()
        })
    }
}

impl RevokedTokenStore for InMemoryRevokedTokens {
    fn revoke<'a>(
        &'a self,
        ids: &'a [JwtId],
        now: UnixTime,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        ready(self.with(|m| {
            for id in ids {
                m.entry(id.as_str().to_owned()).or_insert(now);
            }
        }))
    }
    fn is_revoked<'a>(&'a self, id: &'a JwtId) -> BoxFuture<'a, Result<bool, StoreError>> {
        ready(self.with(|m| m.contains_key(id.as_str())))
    }
}
