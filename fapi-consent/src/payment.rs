//! Payments made with payment consents: at most one per consent, kept for
//! good (never swept), readable by id and by consent.
//!
//! The body is the bank's own record of the payment (what it answered the
//! TPP and the signed authorisation record); this crate stores it, it does
//! not read it. [`PaymentStore`] is the trait;
//! `fapi_consent::testing::payment_store_conformance` (feature `testing`)
//! checks an adapter keeps its guarantees.

use core::fmt;
use std::collections::HashMap;
use std::sync::Mutex;

use fapi_core::store::{ready, BoxFuture, StoreError};
use fapi_core::{ClientId, ConsentId};

/// A stored payment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredPayment {
    /// The payment's id (`DomesticPaymentId`).
    pub id: String,
    /// The client that made it.
    pub client_id: ClientId,
    /// The consent it used.
    pub consent_id: ConsentId,
    /// The bank's record of it.
    pub body: String,
}

/// Stores payments.
///
/// # Guarantees an implementation must give
/// - `save_once` is first-writer-wins per consent, atomically: of any
///   number of concurrent saves for one consent (a submission and a
///   reconciliation may both finish a payment), exactly one payment is
///   stored, and every call returns that one.
/// - Payments are never removed.
/// - On any failure it returns `Err`.
pub trait PaymentStore: Send + Sync + fmt::Debug {
    /// Stores `payment` unless its consent has one; returns the stored one.
    fn save_once(&self, payment: StoredPayment)
        -> BoxFuture<'_, Result<StoredPayment, StoreError>>;
    /// The payment with `id`.
    fn by_id<'a>(&'a self, id: &'a str)
        -> BoxFuture<'a, Result<Option<StoredPayment>, StoreError>>;
    /// The payment made with `consent`.
    fn by_consent<'a>(
        &'a self,
        consent: &'a ConsentId,
    ) -> BoxFuture<'a, Result<Option<StoredPayment>, StoreError>>;
}

/// An in-memory [`PaymentStore`].
#[derive(Default)]
pub struct InMemoryPaymentStore {
    by_consent: Mutex<HashMap<String, StoredPayment>>,
}

impl fmt::Debug for InMemoryPaymentStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryPaymentStore")
            .finish_non_exhaustive()
    }
}

impl InMemoryPaymentStore {
    fn with<T>(
        &self,
        f: impl FnOnce(&mut HashMap<String, StoredPayment>) -> T,
    ) -> Result<T, StoreError> {
        let mut m = self
            .by_consent
            .lock()
            .map_err(|_| StoreError::unavailable("payment store lock poisoned"))?;
        Ok(f(&mut m))
    }
}

impl PaymentStore for InMemoryPaymentStore {
    fn save_once(
        &self,
        payment: StoredPayment,
    ) -> BoxFuture<'_, Result<StoredPayment, StoreError>> {
        ready(self.with(|m| {
            m.entry(payment.consent_id.as_str().to_owned())
                .or_insert(payment)
                .clone()
        }))
    }
    fn by_id<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredPayment>, StoreError>> {
        ready(self.with(|m| m.values().find(|p| p.id == id).cloned()))
    }
    fn by_consent<'a>(
        &'a self,
        consent: &'a ConsentId,
    ) -> BoxFuture<'a, Result<Option<StoredPayment>, StoreError>> {
        ready(self.with(|m| m.get(consent.as_str()).cloned()))
    }
}
