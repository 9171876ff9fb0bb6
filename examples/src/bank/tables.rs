//! The bank's own state, beside the crate family's: one trait per kind, so
//! the handlers and background tasks hold `Arc<dyn Trait>` and never name
//! the database. [`crate::stores`] opens the configured backend at
//! start-up; [`crate::sqlite`] is the SQLite implementation.
//!
//! # What each implementation must guarantee
//! - [`LoginAttemptStore::record_failure`] reads the count and writes the
//!   new one atomically: failures racing on one key (many instances, many
//!   requests) are all counted.
//! - [`SigningKeyStore::seed`] writes the first key only into an empty
//!   schedule, and [`SigningKeyStore::schedule`] adds a key and retires the
//!   one in force atomically, refusing when another rotation is pending or
//!   the named key is not the one in force: two operators rotating at once
//!   leave one schedule.
//! - Checkpoints are kept by the chain's sequence number (writing one
//!   again replaces it) and are never swept.
//! - [`Housekeeping::sweep_expired`] deletes only rows past their expiry,
//!   in bounded batches, and never consents, payments or the audit trail.

use core::fmt;

use fapi_core::store::{BoxFuture, StoreError};
use fapi_core::time::UnixTime;

use super::keys::KeyRecord;
use super::throttle::{Attempts, Rule};

/// Failed logins on the customer pages, counted per key within a scope
/// (`customer` or `address`; see [`super::throttle`]).
pub trait LoginAttemptStore: Send + Sync + fmt::Debug {
    /// What is remembered of `key`'s failed logins in `scope` (the default
    /// when nothing is).
    fn attempts<'a>(
        &'a self,
        scope: &'static str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Attempts, StoreError>>;

    /// Counts one failed login for `key` in `scope` under `rule` at `now`
    /// (read and write atomically) and returns the new count.
    fn record_failure<'a>(
        &'a self,
        scope: &'static str,
        key: &'a str,
        rule: Rule,
        now: UnixTime,
    ) -> BoxFuture<'a, Result<Attempts, StoreError>>;

    /// Forgets `key`'s failed logins in `scope` (a successful login).
    fn clear<'a>(
        &'a self,
        scope: &'static str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Forgets keys idle for a day (no lock, no failure since); run in the
    /// background, never on a login. Returns how many were forgotten.
    fn sweep(&self, now: UnixTime) -> BoxFuture<'_, Result<usize, StoreError>>;
}

/// The schedule of the bank's signing keys (public parts and times; the
/// private keys stay in the key source).
pub trait SigningKeyStore: Send + Sync + fmt::Debug {
    /// Every key, oldest first.
    fn keys(&self) -> BoxFuture<'_, Result<Vec<KeyRecord>, StoreError>>;

    /// Writes `first` as the first key, unless the schedule holds one
    /// (another instance seeded it).
    fn seed<'a>(&'a self, first: &'a KeyRecord) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Adds `new` and retires `old` at `new`'s activation, published until
    /// `old_published_until`, atomically; refused (nothing written) if a
    /// rotation is pending or `old` is not the key in force.
    fn schedule<'a>(
        &'a self,
        new: &'a KeyRecord,
        old: &'a str,
        old_published_until: UnixTime,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// Signed checkpoints of the audit chain's head.
pub trait CheckpointStore: Send + Sync + fmt::Debug {
    /// Keeps `jws`, the checkpoint of the entry `seq` (replacing one of the
    /// same entry).
    fn put<'a>(&'a self, seq: u64, jws: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Every checkpoint, oldest first.
    fn all(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>>;
}

/// Rows deleted by one sweep, by table.
pub type Swept = Vec<(&'static str, usize)>;

/// Deletes the crate family's expired rows (replay entries, idempotency
/// keys, pushed requests, used codes, revoked token ids) off the request
/// path.
pub trait Housekeeping: Send + Sync + fmt::Debug {
    /// At most `rounds` statements of `batch` rows per table, for rows
    /// expired at `now`.
    fn sweep_expired(
        &self,
        now: UnixTime,
        batch: u32,
        rounds: u32,
    ) -> BoxFuture<'_, Result<Swept, StoreError>>;
}
