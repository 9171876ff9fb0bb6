//! The audit trail: append-only, hash-chained, with signed checkpoints, so a
//! payment can be proven years later and any edit is found.
//!
//! Each entry commits to the previous one:
//! `hash = SHA-256("fapi-audit/v1\n" || seq (8 bytes, big-endian) || prev_hash || canonical(event))`,
//! where `canonical(event)` is the JSON serialization of [`AuditEvent`]
//! (fields in declaration order, every field present, `null` for absent
//! values), so the same event always hashes the same. A checkpoint is a JWS
//! by the bank over the head (`seq`, `hash`). [`verify_chain`] detects any
//! changed, removed, inserted or reordered entry and names the first bad one.

use core::fmt;
use std::sync::{Arc, Mutex};

use fapi_core::claims::ClaimError;
use fapi_core::crypto::{Algorithm, AsyncSigningKey, SigningError};
use fapi_core::encoding::b64url_encode;
use fapi_core::jose::{sign_compact_async, ExpectedType, JoseError, JwsPolicy, UnverifiedJws};
use fapi_core::jwk::KeySet;
use fapi_core::store::{BoxFuture, StoreError};
use fapi_core::UnixTime;
use fapi_core::{ClientId, ConsentId};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::consent::ConsentStatus;

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum AuditAction {
    /// A consent was created.
    ConsentCreated,
    /// The customer authorised a consent.
    ConsentAuthorised,
    /// The customer rejected a consent.
    ConsentRejected,
    /// A consent was revoked.
    ConsentRevoked,
    /// A consent expired.
    ConsentExpired,
    /// A payment consent was used.
    ConsentConsumed,
    /// A payment consent was reserved by a submission sent to the core.
    ConsentReserved,
    /// A reservation ended without a booking; the consent is usable again.
    ConsentReleased,
    /// An access token was issued.
    TokenIssued,
    /// A client revoked one of its tokens (RFC 7009).
    TokenRevoked {
        /// `access_token` or `refresh_token`.
        token_type: String,
        /// The token's id (`jti`, or the refresh grant's id): never the
        /// token itself.
        token_id: String,
    },
    /// A TPP's registration changed: `registered`, `updated` or `deleted`
    /// by the TPP itself (dynamic client registration, RFC 7591/7592), or
    /// `onboarded`, `revoked`, `reinstated` or `certificate revoked` by the
    /// operator.
    RegistrationChanged {
        /// What changed (one of the words above).
        change: String,
    },
    /// A transport certificate was recorded as the TPP's: a new certificate
    /// its registration admits (a rotation), at its first use.
    CertificateAdded {
        /// The certificate's `x5t#S256`.
        thumbprint: String,
    },
    /// A resource was read.
    ResourceAccessed,
    /// A payment was initiated.
    PaymentInitiated,
    /// A change logged before it took effect did not take effect (e.g. a
    /// concurrent change won the compare-and-swap).
    ChangeAbandoned,
    /// Authentication or authorization failed.
    AuthFailure {
        /// Why (a fixed phrase).
        reason: String,
    },
}

/// One audited event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEvent {
    /// What.
    pub action: AuditAction,
    /// When (serialised as Unix seconds).
    pub at: UnixTime,
    /// The TPP.
    pub client_id: Option<ClientId>,
    /// The customer.
    pub customer_id: Option<String>,
    /// `x-fapi-interaction-id`.
    pub interaction_id: Option<String>,
    /// The consent.
    pub consent_id: Option<ConsentId>,
    /// Consent status before.
    pub status_before: Option<ConsentStatus>,
    /// Consent status after.
    pub status_after: Option<ConsentStatus>,
    /// SHA-256 (base64url) of the request that caused it.
    pub request_sha256: Option<String>,
}

impl AuditEvent {
    /// An event of `action` at `at` with every other field empty.
    pub fn new(action: AuditAction, at: UnixTime) -> Self {
        Self {
            action,
            at,
            client_id: None,
            customer_id: None,
            interaction_id: None,
            consent_id: None,
            status_before: None,
            status_after: None,
            request_sha256: None,
        }
    }
}

/// An entry of the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    /// Position, from 1, without gaps.
    pub seq: u64,
    /// The previous entry's hash (base64url; 32 zero bytes for the first).
    pub prev_hash: String,
    /// This entry's hash (base64url).
    pub hash: String,
    /// The event.
    pub event: AuditEvent,
}

/// The hash of the (virtual) entry before the first.
pub fn genesis_hash() -> String {
    b64url_encode(&[0u8; 32])
}

/// The hash of an entry. An event that cannot be serialized has no hash
/// (it is never replaced by the hash of nothing): appending it fails, and
/// a stored one fails verification.
fn entry_hash(seq: u64, prev_hash: &str, event: &AuditEvent) -> Result<String, StoreError> {
    let body = serde_json::to_vec(event)
        .map_err(|e| StoreError::unavailable(format!("audit event cannot be serialized: {e}")))?;
    let mut h = Sha256::new();
    h.update(b"fapi-audit/v1\n");
    h.update(seq.to_be_bytes());
    h.update(prev_hash.as_bytes());
    h.update(body);
    Ok(b64url_encode(&h.finalize()))
}

impl AuditEntry {
    /// The entry that follows `prev` (`None`: the first entry) for `event`:
    /// the next `seq`, chained to `prev`'s hash. Every [`AuditLog`]
    /// implementation builds its entries with this, so all chains hash alike.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the event cannot be serialized.
    pub fn following(prev: Option<&AuditEntry>, event: AuditEvent) -> Result<Self, StoreError> {
        let (seq, prev_hash) = match prev {
            Some(last) => (last.seq + 1, last.hash.clone()),
            None => (1, genesis_hash()),
        };
        let hash = entry_hash(seq, &prev_hash, &event)?;
        Ok(Self {
            seq,
            prev_hash,
            hash,
            event,
        })
    }
}

/// The append-only audit log.
///
/// # Guarantees an implementation must give
/// - `append` assigns the next `seq` and chains to the current head
///   atomically: concurrent appends never share a `seq` or a `prev_hash`.
/// - Entries are never changed or removed.
pub trait AuditLog: Send + Sync + fmt::Debug {
    /// Appends `event` and returns its entry.
    fn append(&self, event: AuditEvent) -> BoxFuture<'_, Result<AuditEntry, StoreError>>;
    /// The latest entry (`None` for an empty log), read without reading
    /// the rest: a checkpoint is signed over it every minute, so its cost
    /// must not grow with the trail.
    fn head(&self) -> BoxFuture<'_, Result<Option<AuditEntry>, StoreError>>;
    /// Up to `limit` entries from `from_seq` on.
    fn entries(
        &self,
        from_seq: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<AuditEntry>, StoreError>>;
    /// This log as [`Any`](core::any::Any), so a consent store can
    /// recognise a log of its own database and write a consent change
    /// with its entry in one transaction
    /// ([`ConsentStore::compare_and_swap_audited`](crate::ConsentStore::compare_and_swap_audited)).
    /// `None` (the default): the store composes the two calls.
    fn as_any(&self) -> Option<&dyn core::any::Any> {
        None
    }
}

/// An in-memory [`AuditLog`].
#[derive(Default)]
pub struct InMemoryAuditLog {
    entries: Mutex<Vec<AuditEntry>>,
}

impl fmt::Debug for InMemoryAuditLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryAuditLog").finish_non_exhaustive()
    }
}

impl InMemoryAuditLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }
}

impl AuditLog for InMemoryAuditLog {
    fn append(&self, event: AuditEvent) -> BoxFuture<'_, Result<AuditEntry, StoreError>> {
        let r = self
            .entries
            .lock()
            .map_err(|_| StoreError::unavailable("audit log lock poisoned"))
            .and_then(|mut v| {
                let entry = AuditEntry::following(v.last(), event)?;
                v.push(entry.clone());
                Ok(entry)
            });
        Box::pin(core::future::ready(r))
    }

    fn head(&self) -> BoxFuture<'_, Result<Option<AuditEntry>, StoreError>> {
        let r = self
            .entries
            .lock()
            .map_err(|_| StoreError::unavailable("audit log lock poisoned"))
            .map(|v| v.last().cloned());
        Box::pin(core::future::ready(r))
    }

    fn entries(
        &self,
        from_seq: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<AuditEntry>, StoreError>> {
        let r = self
            .entries
            .lock()
            .map_err(|_| StoreError::unavailable("audit log lock poisoned"))
            .map(|v| {
                v.iter()
                    .filter(|e| e.seq >= from_seq)
                    .take(limit)
                    .cloned()
                    .collect()
            });
        Box::pin(core::future::ready(r))
    }
}

/// The `typ` of a checkpoint JWS.
pub const CHECKPOINT_TYP: &str = "audit-checkpoint+jwt";

/// Signs a checkpoint over `head` (the latest entry) with the bank's key.
///
/// # Errors
/// [`SigningError`].
pub async fn sign_checkpoint<K: AsyncSigningKey + ?Sized>(
    key: &K,
    kid: &str,
    head: &AuditEntry,
    now: UnixTime,
) -> Result<String, SigningError> {
    let claims = json!({ "seq": head.seq, "head": head.hash, "iat": now.as_secs() });
    let claims = claims.as_object().cloned().unwrap_or_default();
    sign_compact_async(key, Some(kid), Some(CHECKPOINT_TYP), &claims).await
}

/// What is wrong with a chain.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// Entry `seq` (the first bad one) does not verify.
    #[error("audit entry {seq} is invalid: {problem}")]
    Entry {
        /// The first bad entry's position (by order in the input).
        seq: u64,
        /// What is wrong.
        problem: EntryProblem,
    },
    /// A serialized line is not an entry.
    #[error("audit line {line} is not an entry")]
    Unparseable {
        /// 1-based line number.
        line: usize,
    },
    /// Checkpoint `index` does not verify against the chain.
    #[error("audit checkpoint {index} is invalid: {problem}")]
    Checkpoint {
        /// 0-based index in the checkpoints given.
        index: usize,
        /// What is wrong.
        problem: CheckpointProblem,
    },
}

/// An entry-level failure.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EntryProblem {
    /// `seq` is not the next number (removed, inserted or reordered).
    #[error("expected sequence number {expected}")]
    Sequence {
        /// What it should be.
        expected: u64,
    },
    /// `prev_hash` is not the previous entry's hash.
    #[error("does not chain to the previous entry")]
    Chain,
    /// The stored hash is not the hash of the entry (it was changed).
    #[error("content does not match its hash")]
    Hash,
}

/// A checkpoint-level failure.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointProblem {
    /// The JWS does not verify with the bank's keys.
    #[error("signature: {0}")]
    Signature(JoseError),
    /// Its claims are malformed.
    #[error("claims: {0}")]
    Claims(ClaimError),
    /// It covers an entry the chain does not have (the chain was truncated).
    #[error("covers an entry missing from the chain")]
    BeyondChain,
    /// The entry it covers has another hash.
    #[error("head hash differs from the chain")]
    HeadMismatch,
}

/// Parses a chain serialized as JSON lines (one [`AuditEntry`] a line).
///
/// # Errors
/// [`ChainError::Unparseable`] naming the first bad line.
pub fn parse_chain(text: &str) -> Result<Vec<AuditEntry>, ChainError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|_| ChainError::Unparseable { line: i + 1 }))
        .collect()
}

/// Serializes a chain as JSON lines.
pub fn serialize_chain(entries: &[AuditEntry]) -> String {
    entries
        .iter()
        .filter_map(|e| serde_json::to_string(e).ok())
        .map(|l| l + "\n")
        .collect()
}

/// Verifies a whole chain from its first entry, and each checkpoint against
/// it with the bank's `keys`. Returns the number of entries verified.
///
/// # Errors
/// [`ChainError`] naming the first bad entry or checkpoint.
pub fn verify_chain(
    entries: &[AuditEntry],
    checkpoints: &[String],
    keys: &KeySet,
    algorithms: &[Algorithm],
) -> Result<u64, ChainError> {
    let mut prev = genesis_hash();
    for (i, e) in entries.iter().enumerate() {
        let expected = i as u64 + 1;
        let bad = |problem| ChainError::Entry {
            seq: expected,
            problem,
        };
        if e.seq != expected {
            return Err(bad(EntryProblem::Sequence { expected }));
        }
        if e.prev_hash != prev {
            return Err(bad(EntryProblem::Chain));
        }
        if entry_hash(e.seq, &e.prev_hash, &e.event).ok().as_ref() != Some(&e.hash) {
            return Err(bad(EntryProblem::Hash));
        }
        prev = e.hash.clone();
    }
    let policy = JwsPolicy::new(algorithms, ExpectedType::Exact(CHECKPOINT_TYP));
    for (index, cp) in checkpoints.iter().enumerate() {
        let fail = |problem| ChainError::Checkpoint { index, problem };
        let claims = UnverifiedJws::parse(cp)
            .and_then(|j| j.verify(keys, &policy))
            .map_err(|e| fail(CheckpointProblem::Signature(e)))?
            .into_parts()
            .1;
        let seq = claims
            .get("seq")
            .and_then(serde_json::Value::as_u64)
            .ok_or(fail(CheckpointProblem::Claims(ClaimError::WrongType(
                "seq",
            ))))?;
        let head = claims
            .required_string("head")
            .map_err(|e| fail(CheckpointProblem::Claims(e)))?;
        let entry = usize::try_from(seq)
            .ok()
            .and_then(|s| s.checked_sub(1))
            .and_then(|i| entries.get(i))
            .ok_or(fail(CheckpointProblem::BeyondChain))?;
        if entry.hash != head {
            return Err(fail(CheckpointProblem::HeadMismatch));
        }
    }
    Ok(entries.len() as u64)
}

/// An audit log shared by the components that write to it.
pub type SharedAuditLog = Arc<dyn AuditLog>;
