//! The revoked-token store kit: the in-memory store passes it, stores that
//! break a guarantee are caught, and forgetting old entries keeps recent
//! ones.
#![cfg(feature = "testing")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use fapi_core::revocation::{InMemoryRevokedTokens, RevokedTokenStore};
use fapi_core::store::{BoxFuture, StoreError};
use fapi_core::testing::revoked_token_store_conformance;
use fapi_core::JwtId;
use fapi_core::UnixTime;

fn b<F: std::future::Future>(f: F) -> F::Output {
    futures_executor::block_on(f)
}

#[test]
fn the_in_memory_store_passes_the_kit() {
    b(revoked_token_store_conformance(
        &InMemoryRevokedTokens::default(),
    ))
    .unwrap();
}

/// Revokes only the first id of a list.
#[derive(Debug, Default)]
struct FirstOnly(InMemoryRevokedTokens);

impl RevokedTokenStore for FirstOnly {
    fn revoke<'a>(
        &'a self,
        ids: &'a [JwtId],
        now: UnixTime,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.0.revoke(ids.get(..1).unwrap_or_default(), now)
    }
    fn is_revoked<'a>(&'a self, id: &'a JwtId) -> BoxFuture<'a, Result<bool, StoreError>> {
        self.0.is_revoked(id)
    }
}

/// Fails open: a store error reads as "not revoked".
#[derive(Debug, Default)]
struct FailsOpen;

impl RevokedTokenStore for FailsOpen {
    fn revoke<'a>(&'a self, _: &'a [JwtId], _: UnixTime) -> BoxFuture<'a, Result<(), StoreError>> {
        fapi_core::store::ready(Ok(()))
    }
    fn is_revoked<'a>(&'a self, _: &'a JwtId) -> BoxFuture<'a, Result<bool, StoreError>> {
        fapi_core::store::ready(Ok(false))
    }
}

#[test]
fn the_kit_catches_a_list_revoked_in_part() {
    let e = b(revoked_token_store_conformance(&FirstOnly::default())).unwrap_err();
    assert_eq!(e.case, "a list is revoked whole (second)");
}

#[test]
fn the_kit_catches_a_store_that_never_revokes() {
    let e = b(revoked_token_store_conformance(&FailsOpen)).unwrap_err();
    assert_eq!(e.case, "a revoked id is revoked");
}

#[test]
fn forgetting_drops_only_revocations_older_than_the_cutoff() {
    let store = InMemoryRevokedTokens::default();
    let t = UnixTime::from_secs(1_900_000_000).unwrap();
    let (old, new) = (
        JwtId::try_from("old").unwrap(),
        JwtId::try_from("new").unwrap(),
    );
    b(store.revoke(std::slice::from_ref(&old), t)).unwrap();
    b(store.revoke(std::slice::from_ref(&new), t.saturating_add(10))).unwrap();
    assert_eq!(store.forget_before(t.saturating_add(10)).unwrap(), 1);
    assert!(!b(store.is_revoked(&old)).unwrap());
    assert!(b(store.is_revoked(&new)).unwrap());
}
