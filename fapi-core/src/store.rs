//! What every store trait of the family shares: the boxed future the
//! async traits return (so they stay usable as `Arc<dyn Trait>` without
//! this crate starting a runtime), [`ready`] for stores that answer at
//! once, and [`StoreError`].
//!
//! A store failure is shown outside (to a TPP, on a customer's page) only
//! as the fixed phrase of [`StoreError`]'s `Display`; the backend's own
//! error travels as its [`source`](std::error::Error::source), for the
//! log ([`ErrorChain`]), and never in a response.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use std::error::Error;
use std::sync::Arc;

/// A boxed, `Send` future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// `value`, as a future that is ready at once (stores that answer without
/// waiting: in-memory ones, an embedded database behind a mutex).
pub fn ready<'a, T: Send + 'a>(value: T) -> BoxFuture<'a, T> {
    Box::pin(core::future::ready(value))
}

/// A store failed; the request must be refused (fail closed).
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store is full of unexpired entries.
    #[error("replay cache is full")]
    CapacityExceeded,
    /// The backing store failed. `Display` is a fixed phrase; the backend's
    /// error is the [`source`](std::error::Error::source).
    #[error("store unavailable")]
    Unavailable(#[source] StoreCause),
}

impl StoreError {
    /// The backing store failed with `cause` (its error, or a description
    /// for the log).
    pub fn unavailable(cause: impl Into<Box<dyn Error + Send + Sync>>) -> Self {
        Self::Unavailable(StoreCause(Arc::from(cause.into())))
    }
}

/// Two failures are the same when they are the same kind with causes that
/// read the same (for tests and conformance kits).
impl PartialEq for StoreError {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::CapacityExceeded, Self::CapacityExceeded) => true,
            (Self::Unavailable(a), Self::Unavailable(b)) => a.0.to_string() == b.0.to_string(),
            _ => false,
        }
    }
}

impl Eq for StoreError {}

/// The backend's error inside [`StoreError::Unavailable`] (cheap to clone).
#[derive(Clone)]
pub struct StoreCause(Arc<dyn Error + Send + Sync>);

impl fmt::Debug for StoreCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for StoreCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl Error for StoreCause {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0.source()
    }
}

/// An error and every source under it, `: `-separated: for logs, where
/// the cause of a [`StoreError`] belongs (never for a response).
#[derive(Debug)]
pub struct ErrorChain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut next = self.0.source();
        while let Some(e) = next {
            write!(f, ": {e}")?;
            next = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_cause_stays_out_of_display_and_in_the_chain() {
        let io = std::io::Error::other("disk I/O error at /var/lib/bank.db");
        let e = StoreError::unavailable(io);
        assert_eq!(e.to_string(), "store unavailable");
        assert_eq!(
            ErrorChain(&e).to_string(),
            "store unavailable: disk I/O error at /var/lib/bank.db"
        );
        assert_eq!(
            e.source().unwrap().to_string(),
            "disk I/O error at /var/lib/bank.db"
        );
    }

    #[test]
    fn failures_compare_by_kind_and_cause() {
        assert_eq!(StoreError::unavailable("a"), StoreError::unavailable("a"));
        assert_ne!(StoreError::unavailable("a"), StoreError::unavailable("b"));
        assert_ne!(StoreError::unavailable("a"), StoreError::CapacityExceeded);
        assert_eq!(StoreError::CapacityExceeded, StoreError::CapacityExceeded);
    }
}

// What the store adapters' background sweeps keep, and what they report.

/// How long a used or expired authorization code is remembered past its
/// expiry, so a late replay is still recognised as a replay (and the
/// tokens issued for it revoked) rather than as an unknown code.
pub const CODE_MEMORY_SECS: i64 = 3_600;

/// How long a pushed request is remembered past its expiry (a late use
/// is told "expired", not "unknown").
pub const PUSHED_REQUEST_MEMORY_SECS: i64 = 3_600;

/// How long a revoked access-token id is kept: past the longest access
/// token lifetime plus the clock skew, a token with that id no longer
/// verifies anyway.
pub const REVOKED_TOKEN_MEMORY_SECS: i64 = 300 + 60;

/// Rows a store adapter's background sweep deleted, by table (the same
/// tables in every adapter: SQLite, PostgreSQL).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// `jti` replay entries past their expiry.
    pub jti: usize,
    /// `x-idempotency-key` entries past their window.
    pub idempotency: usize,
    /// Pushed requests [`PUSHED_REQUEST_MEMORY_SECS`] past expiry.
    pub pushed_requests: usize,
    /// Authorization codes [`CODE_MEMORY_SECS`] past expiry.
    pub codes: usize,
    /// Revoked access-token ids older than [`REVOKED_TOKEN_MEMORY_SECS`].
    pub revoked_tokens: usize,
}

impl Swept {
    /// Rows deleted in all.
    pub fn total(&self) -> usize {
        self.jti + self.idempotency + self.pushed_requests + self.codes + self.revoked_tokens
    }
}
