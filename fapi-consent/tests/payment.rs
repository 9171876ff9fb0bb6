//! The payment store kit: the in-memory store passes it, a store where the
//! last save wins is caught by it.
#![cfg(feature = "testing")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashMap;
use std::sync::Mutex;

use fapi_consent::payment::{InMemoryPaymentStore, PaymentStore, StoredPayment};
use fapi_consent::testing::payment_store_conformance;
use fapi_core::store::{ready, BoxFuture, StoreError};
use fapi_core::ConsentId;

fn b<F: std::future::Future>(f: F) -> F::Output {
    futures_executor::block_on(f)
}

#[test]
fn the_in_memory_store_passes_the_kit() {
    b(payment_store_conformance(&InMemoryPaymentStore::default())).unwrap();
}

/// Overwrites: the last save for a consent wins.
#[derive(Debug, Default)]
struct LastWins(Mutex<HashMap<String, StoredPayment>>);

impl PaymentStore for LastWins {
    fn save_once(&self, p: StoredPayment) -> BoxFuture<'_, Result<StoredPayment, StoreError>> {
        let mut m = self.0.lock().unwrap();
        m.insert(p.consent_id.as_str().to_owned(), p.clone());
        ready(Ok(p))
    }
    fn by_id<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredPayment>, StoreError>> {
        let m = self.0.lock().unwrap();
        ready(Ok(m.values().find(|p| p.id == id).cloned()))
    }
    fn by_consent<'a>(
        &'a self,
        consent: &'a ConsentId,
    ) -> BoxFuture<'a, Result<Option<StoredPayment>, StoreError>> {
        let m = self.0.lock().unwrap();
        ready(Ok(m.get(consent.as_str()).cloned()))
    }
}

#[test]
fn the_kit_catches_a_store_where_the_last_save_wins() {
    let e = b(payment_store_conformance(&LastWins::default())).unwrap_err();
    assert_eq!(e.case, "a second save for a consent keeps the first");
}
