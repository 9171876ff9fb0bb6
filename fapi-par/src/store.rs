//! Where pushed requests wait for the browser: the [`PushedRequestStore`]
//! trait and an in-memory implementation.

use core::fmt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use fapi_core::request_object::ValidatedAuthorizationRequest;
use fapi_core::store::{BoxFuture, StoreError};
use fapi_core::ClientId;
use fapi_core::UnixTime;

use crate::request_uri::RequestUri;

/// Where a store that keeps pushed requests outside the process (a
/// database row can be changed, a registration replaced or revoked after
/// the push) finds a client's registration as it is now, to re-validate a
/// stored request against it with [`ParConfig::revalidate`](crate::ParConfig::revalidate).
pub trait CurrentRegistration: Send + Sync + fmt::Debug {
    /// The metadata of `client` if it is registered and not revoked.
    fn current<'a>(
        &'a self,
        client: &'a ClientId,
    ) -> BoxFuture<'a, Result<Option<Arc<fapi_core::client::ClientMetadata>>, StoreError>>;
}

/// Rebuilds a pushed request a durable store read back: `source` (the
/// [`PushSource`] as the JSON the store kept) is re-validated with `config`
/// against `client`'s registration now. A row that does not parse, a
/// client no longer registered (or revoked), or a request that no longer
/// validates is [`LookupError::NoLongerValid`]: nothing read from storage
/// is trusted without the checks of the push.
///
/// # Errors
/// [`LookupError::NoLongerValid`], or [`LookupError::Store`] if the
/// registration cannot be read.
pub async fn restore(
    config: &crate::ParConfig,
    registrations: &dyn CurrentRegistration,
    uri: &RequestUri,
    client: &ClientId,
    source: &str,
    expires_at: UnixTime,
) -> Result<PushedRequest, LookupError> {
    let source: PushSource =
        serde_json::from_str(source).map_err(|_| LookupError::NoLongerValid)?;
    let metadata = registrations
        .current(client)
        .await?
        .ok_or(LookupError::NoLongerValid)?;
    let request = config
        .revalidate(&source, &metadata)
        .map_err(|_| LookupError::NoLongerValid)?;
    Ok(PushedRequest {
        request_uri: uri.clone(),
        request: Arc::new(request),
        expires_at,
        source: Arc::new(source),
    })
}

/// A validated authorization request waiting under its `request_uri`.
#[derive(Clone, Debug)]
pub struct PushedRequest {
    /// The reference.
    pub request_uri: RequestUri,
    /// The request, validated when it was pushed.
    pub request: Arc<ValidatedAuthorizationRequest>,
    /// When the reference stops working.
    pub expires_at: UnixTime,
    /// What was pushed, and when: what a durable store keeps, and
    /// re-validates with [`crate::ParConfig::revalidate`] when reading it back.
    pub source: Arc<PushSource>,
}

/// The authorization parameters as pushed (client authentication removed)
/// and the time they were validated at.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PushSource {
    /// The parameters, including `request` when a request object was sent.
    pub parameters: Vec<(String, String)>,
    /// When they were pushed and validated.
    pub pushed_at: UnixTime,
}

impl PushedRequest {
    /// The client that pushed it.
    pub fn client_id(&self) -> &ClientId {
        self.request.client_id()
    }
}

/// Why a `request_uri` cannot be used. All map to `invalid_request_uri`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    /// No pushed request has this reference.
    #[error("request_uri is unknown")]
    Unknown,
    /// The reference has expired.
    #[error("request_uri has expired")]
    Expired,
    /// The reference belongs to another client.
    #[error("request_uri was not issued to this client")]
    WrongClient,
    /// The authorization it started has completed already.
    #[error("request_uri has already been used")]
    AlreadyUsed,
    /// Read back from storage, the request no longer validates (the row
    /// changed, or the client's registration did).
    #[error("the pushed request no longer validates; push it again")]
    NoLongerValid,
    /// The store failed (fail closed; `server_error`).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Stores pushed requests until the browser leg uses them.
///
/// # Guarantees an implementation must give
/// - `peek` returns the request to its own client while it is unexpired and
///   not taken, as often as asked (a reload of the consent page works), and
///   changes nothing.
/// - `take` is atomic single use: of any number of concurrent `take`s of one
///   reference by its client, exactly one succeeds; later ones fail with
///   [`LookupError::AlreadyUsed`] (until expiry, then [`LookupError::Expired`]
///   or [`LookupError::Unknown`]).
/// - Another client's `peek` or `take` fails with [`LookupError::WrongClient`]
///   and does not consume the request.
/// - At or after `expires_at`, both fail with [`LookupError::Expired`] (or
///   `Unknown` once forgotten).
///
/// `fapi_par::testing::pushed_request_store_conformance` (feature `testing`)
/// checks these for any adapter.
pub trait PushedRequestStore: Send + Sync + fmt::Debug {
    /// Stores a freshly pushed request.
    fn put(&self, request: PushedRequest, now: UnixTime) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Reads the request without consuming it (the consent page).
    fn peek<'a>(
        &'a self,
        request_uri: &'a RequestUri,
        client_id: &'a ClientId,
        now: UnixTime,
    ) -> BoxFuture<'a, Result<PushedRequest, LookupError>>;

    /// Consumes the request (the authorization completes).
    fn take<'a>(
        &'a self,
        request_uri: &'a RequestUri,
        client_id: &'a ClientId,
        now: UnixTime,
    ) -> BoxFuture<'a, Result<PushedRequest, LookupError>>;
}

enum Entry {
    Pending(PushedRequest),
    /// Kept until expiry so a reuse is reported as such.
    Taken {
        client_id: ClientId,
        expires_at: UnixTime,
    },
}

impl Entry {
    fn expires_at(&self) -> UnixTime {
        match self {
            Entry::Pending(p) => p.expires_at,
            Entry::Taken { expires_at, .. } => *expires_at,
        }
    }
}

/// An in-memory [`PushedRequestStore`] with a capacity bound; expired
/// entries are swept when it fills up.
pub struct InMemoryPushedRequestStore {
    entries: Mutex<HashMap<String, Entry>>,
    capacity: usize,
}

impl fmt::Debug for InMemoryPushedRequestStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryPushedRequestStore")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl InMemoryPushedRequestStore {
    /// A store holding at most `capacity` live entries.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, Entry>>, StoreError> {
        self.entries
            .lock()
            .map_err(|_| StoreError::unavailable("pushed request store lock poisoned"))
    }

    fn put_now(&self, request: PushedRequest, now: UnixTime) -> Result<(), StoreError> {
        let mut map = self.lock()?;
        if map.len() >= self.capacity {
            map.retain(|_, e| e.expires_at() > now);
            if map.len() >= self.capacity {
                return Err(StoreError::CapacityExceeded);
            }
        }
        map.insert(
            request.request_uri.as_str().to_owned(),
            Entry::Pending(request),
        );
        Ok(())
    }

    fn lookup(
        &self,
        uri: &RequestUri,
        client: &ClientId,
        now: UnixTime,
        consume: bool,
    ) -> Result<PushedRequest, LookupError> {
        let mut map = self.lock()?;
        let entry = map.get_mut(uri.as_str()).ok_or(LookupError::Unknown)?;
        let (owner, expires_at) = match &*entry {
            Entry::Pending(p) => (p.client_id(), p.expires_at),
            Entry::Taken {
                client_id,
                expires_at,
            } => (client_id, *expires_at),
        };
        if owner != client {
            return Err(LookupError::WrongClient);
        }
        if now >= expires_at {
            return Err(LookupError::Expired);
        }
        match entry {
            Entry::Taken { .. } => Err(LookupError::AlreadyUsed),
            Entry::Pending(p) if !consume => Ok(p.clone()),
            Entry::Pending(p) => {
                let taken = Entry::Taken {
                    client_id: p.client_id().clone(),
                    expires_at,
                };
                match core::mem::replace(entry, taken) {
                    Entry::Pending(p) => Ok(p),
                    Entry::Taken { .. } => Err(LookupError::AlreadyUsed),
                }
            }
        }
    }
}

impl PushedRequestStore for InMemoryPushedRequestStore {
    fn put(&self, request: PushedRequest, now: UnixTime) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(core::future::ready(self.put_now(request, now)))
    }

    fn peek<'a>(
        &'a self,
        uri: &'a RequestUri,
        client: &'a ClientId,
        now: UnixTime,
    ) -> BoxFuture<'a, Result<PushedRequest, LookupError>> {
        Box::pin(core::future::ready(self.lookup(uri, client, now, false)))
    }

    fn take<'a>(
        &'a self,
        uri: &'a RequestUri,
        client: &'a ClientId,
        now: UnixTime,
    ) -> BoxFuture<'a, Result<PushedRequest, LookupError>> {
        Box::pin(core::future::ready(self.lookup(uri, client, now, true)))
    }
}
