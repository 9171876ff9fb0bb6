//! Authorization codes as secrets, and the store conformance kit: the
//! in-memory store passes it, and stores that break one guarantee each
//! are caught by it (so the kit an adapter runs can fail).
#![cfg(feature = "testing")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use fapi_core::code::{
    AuthorizationCode, AuthorizationCodeStore, CodeGrant, InMemoryCodeStore, RedeemError,
    Redemption, MAX_CODE_LEN,
};
use fapi_core::store::{BoxFuture, StoreError};
use fapi_core::testing::authorization_code_store_conformance;
use fapi_core::JwtId;

fn b<F: std::future::Future>(f: F) -> F::Output {
    futures_executor::block_on(f)
}

#[test]
fn a_code_is_a_secret() {
    let code = AuthorizationCode::generate().unwrap();
    assert_eq!(code.secret().len(), 43);
    assert_eq!(format!("{code:?}"), "AuthorizationCode([redacted])");
    assert_ne!(code.hash().as_slice(), code.secret().as_bytes());
    let again = AuthorizationCode::try_from(code.secret()).unwrap();
    assert_eq!(again, code);
    assert_eq!(again.hash(), code.hash());
    assert_ne!(AuthorizationCode::generate().unwrap(), code);
}

#[test]
fn a_presented_code_is_bounded_base64url() {
    assert!(AuthorizationCode::try_from("a").is_ok());
    assert!(AuthorizationCode::try_from("A-z_09".repeat(21).as_str()).is_ok()); // 126
    assert!(AuthorizationCode::try_from("a".repeat(MAX_CODE_LEN).as_str()).is_ok());
    assert!(AuthorizationCode::try_from("a".repeat(MAX_CODE_LEN + 1).as_str()).is_err());
    assert!(AuthorizationCode::try_from("").is_err());
    for bad in ["a b", "a+b", "a/b", "a=", "a%20", "ä"] {
        assert!(AuthorizationCode::try_from(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn the_in_memory_store_passes_the_kit() {
    b(authorization_code_store_conformance(
        &InMemoryCodeStore::default(),
    ))
    .unwrap();
}

/// Breaks one guarantee of the in-memory store.
#[derive(Debug)]
enum Broken {
    /// A redemption never consumes the code.
    ReusableCode(InMemoryCodeStore),
    /// Recorded tokens are forgotten, so a replay revokes nothing.
    ForgetsTokens(InMemoryCodeStore),
}

impl Broken {
    fn inner(&self) -> &InMemoryCodeStore {
        match self {
            Self::ReusableCode(s) | Self::ForgetsTokens(s) => s,
        }
    }
}

impl AuthorizationCodeStore for Broken {
    fn issue<'a>(
        &'a self,
        code: &'a AuthorizationCode,
        grant: CodeGrant,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner().issue(code, grant)
    }
    fn redeem<'a>(
        &'a self,
        r: &'a Redemption<'a>,
    ) -> BoxFuture<'a, Result<CodeGrant, RedeemError>> {
        Box::pin(async move {
            let out = self.inner().redeem(r).await;
            if let (Self::ReusableCode(s), Ok(g)) = (self, &out) {
                // put it back as if never redeemed
                s.issue(r.code, g.clone()).await?;
            }
            out
        })
    }
    fn record_token<'a>(
        &'a self,
        code: &'a AuthorizationCode,
        jti: JwtId,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        match self {
            Self::ForgetsTokens(_) => fapi_core::store::ready(Ok(())),
            Self::ReusableCode(s) => s.record_token(code, jti),
        }
    }
}

#[test]
fn the_kit_catches_a_code_that_can_be_redeemed_twice() {
    let e = b(authorization_code_store_conformance(&Broken::ReusableCode(
        InMemoryCodeStore::default(),
    )))
    .unwrap_err();
    assert_eq!(e.case, "a replay is refused and names the tokens to revoke");
}

#[test]
fn the_kit_catches_a_store_that_forgets_the_tokens_to_revoke() {
    let e = b(authorization_code_store_conformance(
        &Broken::ForgetsTokens(InMemoryCodeStore::default()),
    ))
    .unwrap_err();
    assert_eq!(e.case, "a replay is refused and names the tokens to revoke");
}

mod threads {
    //! The in-memory store raced by real threads (the kit races futures on
    //! one executor).
    use super::*;
    use fapi_core::UnixTime;
    use fapi_core::{ClientId, CodeVerifier, ConsentId, RedirectUri};
    use std::sync::{Arc, Barrier};

    fn at(o: i64) -> UnixTime {
        UnixTime::from_secs(1_900_000_000 + o).unwrap()
    }

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
    fn concurrent_redemptions_exactly_one_wins_in_memory() {
        race(vec![Arc::new(InMemoryCodeStore::default())], 1000);
    }
}
