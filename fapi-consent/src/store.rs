//! Where consents live: the [`ConsentStore`] trait (versioned
//! compare-and-swap, so no update is ever lost) and an in-memory store.

use core::fmt;
use std::collections::HashMap;
use std::sync::Mutex;

use fapi_core::store::{BoxFuture, StoreError};
use fapi_core::ConsentId;

use crate::consent::{Consent, ConsentEvent, TransitionError};

/// Why a compare-and-swap did not happen.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CasError {
    /// The stored version is not the expected one: someone else changed the
    /// consent first. Re-read and decide again.
    #[error("consent changed concurrently (now at version {current})")]
    Conflict {
        /// The stored version.
        current: u64,
    },
    /// No consent has this id.
    #[error("consent not found")]
    NotFound,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a consent could not be created.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CreateError {
    /// A consent with this id exists.
    #[error("a consent with this id exists")]
    AlreadyExists,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The authoritative record of consents.
///
/// # Guarantees an implementation must give
/// - `get` returns the latest committed consent (no cache that could hide a
///   revocation).
/// - `compare_and_swap(expected, next)` stores `next` only if the stored
///   version is `expected`, atomically; `next.version()` is `expected + 1`.
///   Of any number of concurrent swaps from the same version, exactly one
///   succeeds and the rest get [`CasError::Conflict`].
/// - History is part of the consent, so it is swapped with it: it can never
///   disagree with the status.
///
/// `fapi_consent::testing::consent_store_conformance` (feature `testing`)
/// checks these for any adapter, races included.
pub trait ConsentStore: Send + Sync + fmt::Debug {
    /// Stores a new consent.
    fn create(&self, consent: Consent) -> BoxFuture<'_, Result<(), CreateError>>;
    /// The consent with `id`, read live.
    fn get<'a>(&'a self, id: &'a ConsentId) -> BoxFuture<'a, Result<Option<Consent>, StoreError>>;
    /// Replaces the consent if its stored version is `expected_version`.
    fn compare_and_swap(
        &self,
        expected_version: u64,
        next: Consent,
    ) -> BoxFuture<'_, Result<(), CasError>>;
    /// The consents of a customer, most recent first (by creation time,
    /// then id, both descending).
    fn list_for_customer<'a>(
        &'a self,
        customer_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Consent>, StoreError>>;

    /// The payment consents reserved by a submission and not settled yet
    /// (`PaymentPending`): what reconciliation resolves at start-up and in
    /// the background.
    fn pending_payments(&self) -> BoxFuture<'_, Result<Vec<ConsentId>, StoreError>>;

    /// [`Self::compare_and_swap`] with the change's audit entry `entry`
    /// appended to `audit`: both or neither. The default composes the two
    /// ([`compose_swap_audited`]: the entry first, a `ChangeAbandoned`
    /// entry after it if the swap loses, so a crash between the steps can
    /// leave an entry whose change did not happen, flagged by nothing); an
    /// adapter that keeps the audit trail in the same database does both in
    /// one transaction when `audit` is itself.
    fn compare_and_swap_audited<'a>(
        &'a self,
        audit: &'a dyn crate::audit::AuditLog,
        expected_version: u64,
        next: Consent,
        entry: crate::audit::AuditEvent,
    ) -> BoxFuture<'a, Result<(), CasError>> {
        Box::pin(compose_swap_audited(
            self,
            audit,
            expected_version,
            next,
            entry,
        ))
    }

    /// [`Self::create`] with its audit entry, both or neither; the default
    /// composes them like [`Self::compare_and_swap_audited`].
    fn create_audited<'a>(
        &'a self,
        audit: &'a dyn crate::audit::AuditLog,
        consent: Consent,
        entry: crate::audit::AuditEvent,
    ) -> BoxFuture<'a, Result<(), CreateError>> {
        Box::pin(compose_create_audited(self, audit, consent, entry))
    }

    /// One page of a customer's consents in the order of
    /// [`Self::list_for_customer`]: at most `limit`, those after `after`
    /// (the last of the previous page; `None`: the newest). The default
    /// lists them all and cuts; an adapter with an index on
    /// (customer, creation time, id) reads only the page.
    fn page_for_customer<'a>(
        &'a self,
        customer_id: &'a str,
        after: Option<&'a PageCursor>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Consent>, StoreError>> {
        Box::pin(async move {
            let all = self.list_for_customer(customer_id).await?;
            Ok(all
                .into_iter()
                .filter(|c| after.is_none_or(|a| a.is_before(c)))
                .take(limit)
                .collect())
        })
    }
}

/// The default of [`ConsentStore::compare_and_swap_audited`] for a store
/// and an audit log that do not share a transaction: the entry is appended
/// before the swap, and a `ChangeAbandoned` entry follows if it loses.
///
/// # Errors
/// [`CasError`]; an audit failure is [`CasError::Store`].
pub async fn compose_swap_audited<S: ConsentStore + ?Sized>(
    store: &S,
    audit: &dyn crate::audit::AuditLog,
    expected_version: u64,
    next: Consent,
    entry: crate::audit::AuditEvent,
) -> Result<(), CasError> {
    audit.append(entry.clone()).await.map_err(CasError::Store)?;
    match store.compare_and_swap(expected_version, next).await {
        Ok(()) => Ok(()),
        Err(e) => {
            let mut abandoned = entry;
            abandoned.action = crate::audit::AuditAction::ChangeAbandoned;
            audit.append(abandoned).await.map_err(CasError::Store)?;
            Err(e)
        }
    }
}

/// The default of [`ConsentStore::create_audited`] (see
/// [`compose_swap_audited`]).
///
/// # Errors
/// [`CreateError`]; an audit failure is [`CreateError::Store`].
pub async fn compose_create_audited<S: ConsentStore + ?Sized>(
    store: &S,
    audit: &dyn crate::audit::AuditLog,
    consent: Consent,
    entry: crate::audit::AuditEvent,
) -> Result<(), CreateError> {
    audit.append(entry.clone()).await?;
    match store.create(consent).await {
        Ok(()) => Ok(()),
        Err(e) => {
            let mut abandoned = entry;
            abandoned.action = crate::audit::AuditAction::ChangeAbandoned;
            audit.append(abandoned).await?;
            Err(e)
        }
    }
}

/// Where a page of a customer's consents ends: the next page holds the
/// consents older than it (by creation time, then id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageCursor {
    /// The last consent's creation time.
    pub created_at: fapi_core::UnixTime,
    /// The last consent's id.
    pub id: ConsentId,
}

impl PageCursor {
    /// The cursor after `c`.
    pub fn after(c: &Consent) -> Self {
        Self {
            created_at: c.created_at(),
            id: c.id().clone(),
        }
    }

    /// Whether `c` comes after this cursor in newest-first order.
    pub fn is_before(&self, c: &Consent) -> bool {
        (c.created_at(), c.id().as_str()) < (self.created_at, self.id.as_str())
    }
}

/// An in-memory [`ConsentStore`].
#[derive(Default)]
pub struct InMemoryConsentStore {
    consents: Mutex<HashMap<String, Consent>>,
}

impl fmt::Debug for InMemoryConsentStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryConsentStore")
            .finish_non_exhaustive()
    }
}

impl InMemoryConsentStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, Consent>>, StoreError> {
        self.consents
            .lock()
            .map_err(|_| StoreError::unavailable("consent store lock poisoned"))
    }
}

impl ConsentStore for InMemoryConsentStore {
    fn create(&self, consent: Consent) -> BoxFuture<'_, Result<(), CreateError>> {
        let r = self.lock().map_err(CreateError::from).and_then(|mut m| {
            if m.contains_key(consent.id().as_str()) {
                return Err(CreateError::AlreadyExists);
            }
            m.insert(consent.id().as_str().to_owned(), consent);
            Ok(())
        });
        Box::pin(core::future::ready(r))
    }

    fn get<'a>(&'a self, id: &'a ConsentId) -> BoxFuture<'a, Result<Option<Consent>, StoreError>> {
        let r = self.lock().map(|m| m.get(id.as_str()).cloned());
        Box::pin(core::future::ready(r))
    }

    fn compare_and_swap(
        &self,
        expected_version: u64,
        next: Consent,
    ) -> BoxFuture<'_, Result<(), CasError>> {
        let r = self.lock().map_err(CasError::from).and_then(|mut m| {
            let current = m.get_mut(next.id().as_str()).ok_or(CasError::NotFound)?;
            if current.version() != expected_version || next.version() != expected_version + 1 {
                return Err(CasError::Conflict {
                    current: current.version(),
                });
            }
            *current = next;
            Ok(())
        });
        Box::pin(core::future::ready(r))
    }

    fn pending_payments(&self) -> BoxFuture<'_, Result<Vec<ConsentId>, StoreError>> {
        let r = self.lock().map(|m| {
            m.values()
                .filter(|c| c.status() == crate::consent::ConsentStatus::PaymentPending)
                .map(|c| c.id().clone())
                .collect()
        });
        Box::pin(core::future::ready(r))
    }
    fn list_for_customer<'a>(
        &'a self,
        customer_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Consent>, StoreError>> {
        let r = self.lock().map(|m| {
            let mut v: Vec<Consent> = m
                .values()
                .filter(|c| c.customer_id() == Some(customer_id))
                .cloned()
                .collect();
            v.sort_by(|a, b| {
                b.created_at()
                    .cmp(&a.created_at())
                    .then_with(|| b.id().as_str().cmp(a.id().as_str()))
            });
            v
        });
        Box::pin(core::future::ready(r))
    }
}

/// Why an event could not be applied through a store.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// No consent has this id.
    #[error("consent not found")]
    NotFound,
    /// The state machine refused the event (possibly because a concurrent
    /// change got there first).
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// Too many concurrent changes in a row.
    #[error("consent is changing too often; try again")]
    Contended,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How often [`apply_event`] re-reads after a conflict before giving up.
pub const MAX_CAS_ATTEMPTS: usize = 16;

/// Applies `event` to the stored consent `id`: read, apply, compare-and-swap;
/// on a conflict, re-read and re-decide (the event may no longer be allowed).
///
/// # Errors
/// [`ApplyError`].
pub async fn apply_event(
    store: &dyn ConsentStore,
    id: &ConsentId,
    event: ConsentEvent,
) -> Result<Consent, ApplyError> {
    for _ in 0..MAX_CAS_ATTEMPTS {
        let current = store.get(id).await?.ok_or(ApplyError::NotFound)?;
        let version = current.version();
        let next = current.apply(event.clone())?;
        match store.compare_and_swap(version, next.clone()).await {
            Ok(()) => return Ok(next),
            Err(CasError::Conflict { .. }) => continue,
            Err(CasError::NotFound) => return Err(ApplyError::NotFound),
            Err(CasError::Store(e)) => return Err(ApplyError::Store(e)),
        }
    }
    Err(ApplyError::Contended)
}

/// The audit action for a consent event.
pub fn audit_action(kind: &crate::consent::EventKind) -> crate::audit::AuditAction {
    use crate::audit::AuditAction as A;
    use crate::consent::EventKind as K;
    match kind {
        K::Authorise { .. } => A::ConsentAuthorised,
        K::Reject => A::ConsentRejected,
        K::Revoke => A::ConsentRevoked,
        K::Expire => A::ConsentExpired,
        K::Consume => A::ConsentConsumed,
        K::Reserve => A::ConsentReserved,
        K::Release => A::ConsentReleased,
    }
}

/// [`apply_event`] with the audit trail, through
/// [`ConsentStore::compare_and_swap_audited`]: a store that keeps the
/// trail itself commits the change and its entry together; otherwise the
/// entry is appended *before* the change and, if the compare-and-swap
/// loses, a `ChangeAbandoned` entry follows, so the trail never claims a
/// change that did not happen without saying so.
///
/// # Errors
/// [`ApplyError`]; an audit failure is [`ApplyError::Store`] and nothing
/// changes.
pub async fn apply_event_audited(
    store: &dyn ConsentStore,
    audit: &dyn crate::audit::AuditLog,
    id: &ConsentId,
    event: ConsentEvent,
    interaction_id: Option<&str>,
) -> Result<Consent, ApplyError> {
    use crate::audit::AuditEvent;
    for _ in 0..MAX_CAS_ATTEMPTS {
        let current = store.get(id).await?.ok_or(ApplyError::NotFound)?;
        let version = current.version();
        let before = current.status();
        let next = current.apply(event.clone())?;
        let mut entry = AuditEvent::new(audit_action(&event.kind), event.at);
        entry.client_id = Some(next.client_id().clone());
        entry.customer_id = next.customer_id().map(str::to_owned);
        entry.interaction_id = interaction_id.map(str::to_owned);
        entry.consent_id = Some(id.clone());
        entry.status_before = Some(before);
        entry.status_after = Some(next.status());
        match store
            .compare_and_swap_audited(audit, version, next.clone(), entry)
            .await
        {
            Ok(()) => return Ok(next),
            Err(CasError::Conflict { .. }) => continue,
            Err(CasError::NotFound) => return Err(ApplyError::NotFound),
            Err(CasError::Store(e)) => return Err(ApplyError::Store(e)),
        }
    }
    Err(ApplyError::Contended)
}

/// Creates a consent, writing `ConsentCreated` to the audit trail first.
///
/// # Errors
/// [`CreateError`]; an audit failure is [`CreateError::Store`] and nothing
/// is created.
pub async fn create_audited(
    store: &dyn ConsentStore,
    audit: &dyn crate::audit::AuditLog,
    consent: Consent,
    interaction_id: Option<&str>,
    request_sha256: Option<String>,
) -> Result<(), CreateError> {
    use crate::audit::{AuditAction, AuditEvent};
    let mut entry = AuditEvent::new(AuditAction::ConsentCreated, consent.created_at());
    entry.client_id = Some(consent.client_id().clone());
    entry.interaction_id = interaction_id.map(str::to_owned);
    entry.consent_id = Some(consent.id().clone());
    entry.status_after = Some(consent.status());
    entry.request_sha256 = request_sha256;
    store.create_audited(audit, consent, entry).await
}
