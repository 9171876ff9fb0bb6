//! UK OB `x-idempotency-key`: replay, body mismatch, scope, window edges,
//! and exactly one `New` among 1,000 racing threads.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::{Arc, Barrier};

use fapi_consent::idempotency::{
    body_hash, Begin, IdempotencyError, IdempotencyKey, IdempotencyStore, InMemoryIdempotencyStore,
    StoredResponse, WINDOW_SECS,
};
use fapi_core::ClientId;
use fapi_core::UnixTime;

fn at(o: i64) -> UnixTime {
    UnixTime::from_secs(1_900_000_000 + o).unwrap()
}
fn b<F: std::future::Future>(f: F) -> F::Output {
    futures_executor::block_on(f)
}
fn c(s: &str) -> ClientId {
    ClientId::try_from(s).unwrap()
}
fn key(s: &str) -> IdempotencyKey {
    IdempotencyKey::parse(s).unwrap()
}
fn resp() -> StoredResponse {
    StoredResponse {
        status: 201,
        body: br#"{"Data":{"DomesticPaymentId":"p-1"}}"#.to_vec(),
    }
}

#[test]
fn key_format() {
    assert!(IdempotencyKey::parse(&"k".repeat(40)).is_ok());
    for bad in ["", " k", "k ", "k\n", &"k".repeat(41)] {
        assert_eq!(
            IdempotencyKey::parse(bad).unwrap_err(),
            IdempotencyError::InvalidKey,
            "{bad:?}"
        );
    }
}

#[test]
fn retry_with_same_body_returns_the_first_result() {
    let s = InMemoryIdempotencyStore::new();
    let h = body_hash(b"payment");
    assert_eq!(
        b(s.begin(&c("tpp-a"), &key("k1"), h, at(0))).unwrap(),
        Begin::New
    );
    assert_eq!(
        b(s.begin(&c("tpp-a"), &key("k1"), h, at(1))).unwrap_err(),
        IdempotencyError::InProgress
    );
    b(s.complete(&c("tpp-a"), &key("k1"), resp())).unwrap();
    assert_eq!(
        b(s.begin(&c("tpp-a"), &key("k1"), h, at(2))).unwrap(),
        Begin::Replay(resp())
    );
}

#[test]
fn same_key_with_another_body_rejected() {
    let s = InMemoryIdempotencyStore::new();
    b(s.begin(&c("tpp-a"), &key("k1"), body_hash(b"pay 10"), at(0))).unwrap();
    b(s.complete(&c("tpp-a"), &key("k1"), resp())).unwrap();
    assert_eq!(
        b(s.begin(&c("tpp-a"), &key("k1"), body_hash(b"pay 11"), at(1))).unwrap_err(),
        IdempotencyError::BodyMismatch
    );
}

#[test]
fn keys_are_scoped_per_client() {
    let s = InMemoryIdempotencyStore::new();
    let h = body_hash(b"x");
    assert_eq!(
        b(s.begin(&c("tpp-a"), &key("k1"), h, at(0))).unwrap(),
        Begin::New
    );
    assert_eq!(
        b(s.begin(&c("tpp-b"), &key("k1"), h, at(0))).unwrap(),
        Begin::New
    );
}

#[test]
fn window_edge_24_hours() {
    let s = InMemoryIdempotencyStore::new();
    let h = body_hash(b"x");
    b(s.begin(&c("tpp-a"), &key("k1"), h, at(0))).unwrap();
    b(s.complete(&c("tpp-a"), &key("k1"), resp())).unwrap();
    assert_eq!(
        b(s.begin(&c("tpp-a"), &key("k1"), h, at(WINDOW_SECS - 1))).unwrap(),
        Begin::Replay(resp())
    );
    assert_eq!(
        b(s.begin(&c("tpp-a"), &key("k1"), h, at(WINDOW_SECS))).unwrap(),
        Begin::New
    );
}

#[test]
fn abandoned_request_can_be_retried_but_completed_cannot_be_abandoned() {
    let s = InMemoryIdempotencyStore::new();
    let h = body_hash(b"x");
    b(s.begin(&c("tpp-a"), &key("k1"), h, at(0))).unwrap();
    b(s.abandon(&c("tpp-a"), &key("k1"))).unwrap();
    assert_eq!(
        b(s.begin(&c("tpp-a"), &key("k1"), h, at(1))).unwrap(),
        Begin::New
    );
    b(s.complete(&c("tpp-a"), &key("k1"), resp())).unwrap();
    b(s.abandon(&c("tpp-a"), &key("k1"))).unwrap();
    assert_eq!(
        b(s.begin(&c("tpp-a"), &key("k1"), h, at(2))).unwrap(),
        Begin::Replay(resp())
    );
}

#[test]
fn concurrent_first_requests_exactly_one_acts() {
    let s = Arc::new(InMemoryIdempotencyStore::new());
    let barrier = Arc::new(Barrier::new(1000));
    let handles: Vec<_> = (0..1000)
        .map(|_| {
            let (s, barrier) = (s.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                b(s.begin(&c("tpp-a"), &key("race"), body_hash(b"x"), at(0)))
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(
        results
            .iter()
            .filter(|r| matches!(r, Ok(Begin::New)))
            .count(),
        1
    );
    assert_eq!(
        results
            .iter()
            .filter(|r| matches!(r, Err(IdempotencyError::InProgress)))
            .count(),
        999
    );
}

#[test]
fn in_memory_store_passes_the_conformance_kit() {
    b(fapi_consent::testing::idempotency_store_conformance(
        &InMemoryIdempotencyStore::new(),
    ))
    .unwrap();
}
