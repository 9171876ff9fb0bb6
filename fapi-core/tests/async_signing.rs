//! Signing through `AsyncSigningKey`: a key that answers later (an HSM, a
//! KMS) signs access tokens and detached signatures that verify like a file
//! key's, and a signer that fails makes issuing fail instead of producing
//! anything.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use fapi_core::access_token::{AccessTokenClaims, AccessTokenIssuer, Confirmation, IssueError};
use fapi_core::crypto::{Algorithm, AsyncSigningKey, PublicKeyMaterial, SigningError, SigningKey};
use fapi_core::jose::detached::{sign_detached, verify_detached};
use fapi_core::jose::{ExpectedType, JwsPolicy};
use fapi_core::store::BoxFuture;
use fapi_core::{AccessTokenVerifier, Profile};
use fapi_core::{CertificateThumbprint, ClientId, Scope};
use futures_executor::block_on;
use serde_json::json;

const AUD: &str = "https://api.bank.example";

/// A key held elsewhere: every signature waits for one round trip (the
/// future is pending once), and `up` says whether the signer answers.
#[derive(Debug)]
struct RemoteKey {
    inner: Arc<dyn SigningKey>,
    up: bool,
    calls: AtomicUsize,
}

impl AsyncSigningKey for RemoteKey {
    fn algorithm(&self) -> Algorithm {
        self.inner.algorithm()
    }

    fn public_key(&self) -> &PublicKeyMaterial {
        self.inner.public_key()
    }

    fn sign_async<'a>(&'a self, message: &'a [u8]) -> BoxFuture<'a, Result<Vec<u8>, SigningError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            let mut waited = false;
            std::future::poll_fn(|cx| {
                if waited {
                    std::task::Poll::Ready(())
                } else {
                    waited = true;
                    cx.waker().wake_by_ref();
                    std::task::Poll::Pending
                }
            })
            .await;
            if self.up {
                self.inner.sign(message)
            } else {
                Err(SigningError)
            }
        })
    }
}

fn remote(alg: Algorithm, up: bool) -> Arc<RemoteKey> {
    Arc::new(RemoteKey {
        inner: keys().key(alg).clone(),
        up,
        calls: AtomicUsize::new(0),
    })
}

fn claims() -> AccessTokenClaims {
    AccessTokenClaims::new(
        "alice",
        ClientId::try_from(CLIENT).unwrap(),
        Scope::try_from("accounts").unwrap(),
        Confirmation::CertificateThumbprint(CertificateThumbprint::of_der(b"c")),
    )
}

#[test]
fn a_remote_key_issues_tokens_that_verify_like_a_file_keys() {
    let verifier = AccessTokenVerifier::new(
        Arc::new(key_set(keys())),
        issuer(),
        fapi_core::TokenAudience::try_from(AUD).unwrap(),
        Profile::Fapi2Security.algorithms(),
    );
    for alg in Algorithm::ALL {
        let key = remote(alg, true);
        let remote_issuer = AccessTokenIssuer::new(
            key.clone(),
            kid(alg).into(),
            issuer(),
            fapi_core::TokenAudience::try_from(AUD).unwrap(),
            300,
        );
        let issued = block_on(remote_issuer.issue(&claims(), now())).unwrap();
        assert_eq!(key.calls.load(Ordering::SeqCst), 1, "{alg:?}");
        let verified = verifier
            .verify(&format!("Bearer {}", issued.token), now())
            .unwrap();
        assert_eq!(verified.jti(), &issued.jti);
        // the twin: the same issuer over the file key
        let file = AccessTokenIssuer::new(
            keys().key(alg).clone(),
            kid(alg).into(),
            issuer(),
            fapi_core::TokenAudience::try_from(AUD).unwrap(),
            300,
        );
        let t = block_on(file.issue(&claims(), now())).unwrap().token;
        assert!(verifier.verify(&format!("Bearer {t}"), now()).is_ok());
    }
}

#[test]
fn a_signer_that_fails_issues_nothing() {
    let key = remote(Algorithm::Es256, false);
    let issuer = AccessTokenIssuer::new(
        key.clone(),
        kid(Algorithm::Es256).into(),
        issuer(),
        fapi_core::TokenAudience::try_from(AUD).unwrap(),
        300,
    );
    assert!(matches!(
        block_on(issuer.issue(&claims(), now())),
        Err(IssueError::Signing(SigningError))
    ));
    assert_eq!(key.calls.load(Ordering::SeqCst), 1);
    let header = json!({ "alg": "ES256", "kid": kid(Algorithm::Es256) });
    assert_eq!(
        block_on(sign_detached(&*key, header.as_object().unwrap(), b"{}")),
        Err(SigningError)
    );
}

#[test]
fn a_remote_key_signs_detached_signatures_that_verify() {
    let key = remote(Algorithm::Ps256, true);
    let header = json!({ "alg": "PS256", "kid": kid(Algorithm::Ps256) });
    let body = br#"{"Data":{}}"#;
    let sig = block_on(sign_detached(&*key, header.as_object().unwrap(), body)).unwrap();
    let policy = JwsPolicy::new(
        Profile::Fapi2Security.algorithms(),
        ExpectedType::JoseOrAbsent,
    );
    assert!(verify_detached(&sig, body, &key_set(keys()), &policy).is_ok());
    // a changed body does not verify
    assert!(verify_detached(&sig, br#"{"Data":{"x":1}}"#, &key_set(keys()), &policy).is_err());
}
