//! Authorization codes in SQLite: fapi-core's conformance kit, only the
//! hash at rest, and a race of real threads across two stores on one file.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
use common::{at, b, TempDb};

use std::sync::{Arc, Barrier};

use fapi_core::code::{
    AuthorizationCode, AuthorizationCodeStore, CodeGrant, RedeemError, Redemption,
};
use fapi_core::testing::authorization_code_store_conformance;
use fapi_core::UnixTime;
use fapi_core::{ClientId, CodeVerifier, ConsentId, RedirectUri};

const REDIRECT: &str = "https://tpp-a.example/cb";

fn grant(verifier: &CodeVerifier) -> CodeGrant {
    CodeGrant {
        client_id: ClientId::try_from("tpp-a").unwrap(),
        redirect_uri: RedirectUri::try_from(REDIRECT).unwrap(),
        code_challenge: verifier.challenge(),
        consent_id: ConsentId::try_from("aac-1").unwrap(),
        customer_id: "alice".into(),
        scope: None,
        nonce: None,
        expires_at: at(60),
        dpop_jkt: None,
    }
}

fn redeem(
    store: &dyn AuthorizationCodeStore,
    code: &AuthorizationCode,
    client: &str,
    redirect: &str,
    v: Option<&CodeVerifier>,
    now: UnixTime,
) -> Result<CodeGrant, RedeemError> {
    let client = ClientId::try_from(client).unwrap();
    let r = Redemption {
        code,
        client_id: &client,
        redirect_uri: redirect,
        code_verifier: v,
        dpop_jkt: None,
        now,
    };
    b(store.redeem(&r))
}

#[test]
fn sqlite_store_keeps_every_rule() {
    let db = TempDb::new("codes");
    b(authorization_code_store_conformance(&db.open().codes())).unwrap();
}

#[test]
fn sqlite_stores_only_the_hash_of_a_code() {
    let db = TempDb::new("codes");
    let store = db.open().codes();
    let v = CodeVerifier::generate().unwrap();
    let code = AuthorizationCode::generate().unwrap();
    b(store.issue(&code, grant(&v))).unwrap();
    drop(store);
    let code = code.secret();
    let mut bytes = std::fs::read(&db.0).unwrap();
    bytes.extend(std::fs::read(format!("{}-wal", db.0.display())).unwrap_or_default());
    assert!(
        !bytes.windows(code.len()).any(|w| w == code.as_bytes()),
        "the code itself reached the database"
    );
}

fn race(stores: Vec<Arc<dyn AuthorizationCodeStore>>, threads: usize) {
    let v = Arc::new(CodeVerifier::generate().unwrap());
    let code = Arc::new(AuthorizationCode::generate().unwrap());
    b(stores[0].issue(&code, grant(&v))).unwrap();
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let (store, v, code, barrier) = (
                stores[i % stores.len()].clone(),
                v.clone(),
                code.clone(),
                barrier.clone(),
            );
            std::thread::spawn(move || {
                barrier.wait();
                redeem(&*store, &code, "tpp-a", REDIRECT, Some(&v), at(1))
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(results
        .iter()
        .all(|r| r.is_ok() || matches!(r, Err(RedeemError::Replayed { .. }))));
}

#[test]
fn concurrent_redemptions_exactly_one_wins_across_two_sqlite_handles() {
    let db = TempDb::new("codes");
    race(
        vec![Arc::new(db.open().codes()), Arc::new(db.open().codes())],
        200,
    );
}
