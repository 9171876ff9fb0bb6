//! UK Open Banking `x-idempotency-key`: a retried POST with the same key and
//! body returns the first result instead of acting twice; the same key with
//! another body is refused. Keys are scoped per client and kept 24 hours.

use core::fmt;
use std::collections::HashMap;
use std::sync::Mutex;

use fapi_core::store::{BoxFuture, StoreError};
use fapi_core::ClientId;
use fapi_core::UnixTime;
use fapi_core::{ErrorCode, OAuthError};
use sha2::{Digest, Sha256};

/// How long a key is remembered (UK OB: 24 hours).
pub const WINDOW_SECS: i64 = 24 * 60 * 60;

/// An `x-idempotency-key`: 1 to 40 printable ASCII characters, no
/// surrounding whitespace (UK OB `Max40Text`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Checks the header value.
    ///
    /// # Errors
    /// [`IdempotencyError::InvalidKey`].
    pub fn parse(s: &str) -> Result<Self, IdempotencyError> {
        let ok = (1..=40).contains(&s.len())
            && s.bytes().all(|b| (0x20..=0x7e).contains(&b))
            && s.trim() == s;
        ok.then(|| Self(s.to_owned()))
            .ok_or(IdempotencyError::InvalidKey)
    }
    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The first response to a request, kept for replays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredResponse {
    /// HTTP status.
    pub status: u16,
    /// Body bytes.
    pub body: Vec<u8>,
}

/// What to do with a request.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Begin {
    /// First time: act, then [`IdempotencyStore::complete`] (or
    /// [`IdempotencyStore::abandon`] on failure).
    New,
    /// A retry of a completed request: return this, do nothing.
    Replay(StoredResponse),
}

/// Why a request was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdempotencyError {
    /// The header value is not a valid key.
    #[error("x-idempotency-key must be 1 to 40 printable characters without surrounding spaces")]
    InvalidKey,
    /// The key was used with a different body.
    #[error("x-idempotency-key was already used with a different request body")]
    BodyMismatch,
    /// The first request with this key is still being processed.
    #[error("a request with this x-idempotency-key is still in progress")]
    InProgress,
    /// The store failed (fail closed).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl OAuthError for IdempotencyError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::Store(_) => ErrorCode::ServerError,
            _ => ErrorCode::InvalidRequest,
        }
    }
}

/// SHA-256 of a request body, as the stores compare it.
pub fn body_hash(body: &[u8]) -> [u8; 32] {
    Sha256::digest(body).into()
}

/// Decides a request whose key is already stored (unexpired) with
/// `stored_hash` and, once complete, `response`: another body is
/// [`IdempotencyError::BodyMismatch`], a completed one is replayed, one
/// still running is [`IdempotencyError::InProgress`]. Every
/// [`IdempotencyStore`] uses this, so the rules live in one place.
///
/// # Errors
/// As above.
pub fn decide_existing(
    stored_hash: &[u8],
    response: Option<StoredResponse>,
    body_hash: &[u8; 32],
) -> Result<Begin, IdempotencyError> {
    if stored_hash != body_hash.as_slice() {
        return Err(IdempotencyError::BodyMismatch);
    }
    response
        .map(Begin::Replay)
        .ok_or(IdempotencyError::InProgress)
}

/// Remembers idempotency keys.
///
/// # Guarantees an implementation must give
/// - `begin` is atomic: of concurrent `begin`s with one client and key,
///   exactly one gets [`Begin::New`]; the others get
///   [`IdempotencyError::InProgress`] until `complete`, then
///   [`Begin::Replay`] with the stored response.
/// - The same key with another body hash is [`IdempotencyError::BodyMismatch`].
/// - Keys are scoped per client and remembered [`WINDOW_SECS`] from `begin`.
pub trait IdempotencyStore: Send + Sync + fmt::Debug {
    /// Starts (or replays) a request.
    fn begin<'a>(
        &'a self,
        client: &'a ClientId,
        key: &'a IdempotencyKey,
        body_hash: [u8; 32],
        now: UnixTime,
    ) -> BoxFuture<'a, Result<Begin, IdempotencyError>>;
    /// Records the first response.
    fn complete<'a>(
        &'a self,
        client: &'a ClientId,
        key: &'a IdempotencyKey,
        response: StoredResponse,
    ) -> BoxFuture<'a, Result<(), IdempotencyError>>;
    /// Forgets an in-progress request that failed, so a retry can act.
    fn abandon<'a>(
        &'a self,
        client: &'a ClientId,
        key: &'a IdempotencyKey,
    ) -> BoxFuture<'a, Result<(), IdempotencyError>>;
}

#[derive(Clone)]
struct Entry {
    body_hash: [u8; 32],
    expires_at: UnixTime,
    response: Option<StoredResponse>,
}

/// An in-memory [`IdempotencyStore`].
#[derive(Default)]
pub struct InMemoryIdempotencyStore {
    entries: Mutex<HashMap<(String, String), Entry>>,
}

impl fmt::Debug for InMemoryIdempotencyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryIdempotencyStore")
            .finish_non_exhaustive()
    }
}

impl InMemoryIdempotencyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut HashMap<(String, String), Entry>) -> Result<T, IdempotencyError>,
    ) -> Result<T, IdempotencyError> {
        let mut m = self
            .entries
            .lock()
            .map_err(|_| StoreError::unavailable("idempotency store lock poisoned"))?;
        f(&mut m)
    }
}

fn k(client: &ClientId, key: &IdempotencyKey) -> (String, String) {
    (client.as_str().to_owned(), key.as_str().to_owned())
}

impl IdempotencyStore for InMemoryIdempotencyStore {
    fn begin<'a>(
        &'a self,
        client: &'a ClientId,
        key: &'a IdempotencyKey,
        body_hash: [u8; 32],
        now: UnixTime,
    ) -> BoxFuture<'a, Result<Begin, IdempotencyError>> {
        let r = self.with(|m| {
            m.retain(|_, e| e.expires_at > now);
            match m.get(&k(client, key)) {
                None => {
                    m.insert(
                        k(client, key),
                        Entry {
                            body_hash,
                            expires_at: now.saturating_add(WINDOW_SECS),
                            response: None,
                        },
                    );
                    Ok(Begin::New)
                }
                Some(e) => decide_existing(&e.body_hash, e.response.clone(), &body_hash),
            }
        });
        Box::pin(core::future::ready(r))
    }

    fn complete<'a>(
        &'a self,
        client: &'a ClientId,
        key: &'a IdempotencyKey,
        response: StoredResponse,
    ) -> BoxFuture<'a, Result<(), IdempotencyError>> {
        let r = self.with(|m| {
            if let Some(e) = m.get_mut(&k(client, key)) {
                e.response.get_or_insert(response);
            }
            Ok(())
        });
        Box::pin(core::future::ready(r))
    }

    fn abandon<'a>(
        &'a self,
        client: &'a ClientId,
        key: &'a IdempotencyKey,
    ) -> BoxFuture<'a, Result<(), IdempotencyError>> {
        let r = self.with(|m| {
            if m.get(&k(client, key)).is_some_and(|e| e.response.is_none()) {
                m.remove(&k(client, key));
            }
            Ok(())
        });
        Box::pin(core::future::ready(r))
    }
}
