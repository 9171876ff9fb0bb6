//! Refresh grants: the checks of every refresh, each negative next to its
//! twin; the refresh token as a secret; the store kit passing on the
//! in-memory store and failing on a store that does not revoke.
#![cfg(feature = "testing")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use fapi_core::access_token::{BindingError, Confirmation, PresentedKey, ProofOfPossession};
use fapi_core::refresh::{
    InMemoryRefreshGrants, RefreshError, RefreshGrant, RefreshGrantStore, RefreshToken,
};
use fapi_core::store::{BoxFuture, StoreError};
use fapi_core::testing::refresh_grant_store_conformance;
use fapi_core::{CertificateThumbprint, ClientId, ConsentId, JwtId, Scope};

fn b<F: std::future::Future>(f: F) -> F::Output {
    futures_executor::block_on(f)
}

struct Cert(CertificateThumbprint);
impl ProofOfPossession for Cert {
    fn presented_key(&self) -> PresentedKey<'_> {
        PresentedKey::Certificate(&self.0)
    }
}

fn grant(confirmation: Confirmation) -> RefreshGrant {
    RefreshGrant {
        id: JwtId::try_from("rt-1").unwrap(),
        client_id: ClientId::try_from("tpp-a").unwrap(),
        confirmation,
        consent_id: ConsentId::try_from("aac-1").unwrap(),
        customer_id: "alice".into(),
        scope: Scope::try_from("openid accounts").unwrap(),
    }
}

fn cert(der: &[u8]) -> CertificateThumbprint {
    CertificateThumbprint::of_der(der)
}

#[test]
fn a_refresh_by_its_client_over_its_certificate_passes() {
    let g = grant(Confirmation::CertificateThumbprint(cert(b"cert-a")));
    g.check(
        &ClientId::try_from("tpp-a").unwrap(),
        &Cert(cert(b"cert-a")),
    )
    .unwrap();
}

#[test]
fn a_refresh_by_another_client_is_refused() {
    let g = grant(Confirmation::CertificateThumbprint(cert(b"cert-a")));
    assert_eq!(
        g.check(
            &ClientId::try_from("tpp-b").unwrap(),
            &Cert(cert(b"cert-a"))
        ),
        Err(RefreshError::WrongClient)
    );
}

#[test]
fn a_refresh_over_another_certificate_of_the_client_is_refused() {
    let g = grant(Confirmation::CertificateThumbprint(cert(b"cert-a")));
    assert_eq!(
        g.check(
            &ClientId::try_from("tpp-a").unwrap(),
            &Cert(cert(b"cert-a2"))
        ),
        Err(RefreshError::Binding(BindingError::KeyMismatch))
    );
}

#[test]
fn a_key_bound_grant_never_binds_to_a_certificate() {
    let key = fapi_core::crypto::default_provider()
        .generate_signing_key(fapi_core::crypto::Algorithm::Es256)
        .unwrap();
    let g = grant(Confirmation::JwkThumbprint(key.public_key().thumbprint()));
    assert_eq!(
        g.check(&ClientId::try_from("tpp-a").unwrap(), &Cert(cert(b"k"))),
        Err(RefreshError::Binding(BindingError::MethodMismatch))
    );
}

#[test]
fn a_refresh_token_is_a_secret() {
    let t = RefreshToken::generate().unwrap();
    assert_eq!(format!("{t:?}"), "RefreshToken([redacted])");
    assert_eq!(RefreshToken::try_from(t.secret()).unwrap(), t);
    assert!(RefreshToken::try_from("a".repeat(129).as_str()).is_err());
    assert!(RefreshToken::try_from("a b").is_err());
    assert!(RefreshToken::try_from("").is_err());
}

#[test]
fn the_in_memory_store_passes_the_kit() {
    b(refresh_grant_store_conformance(
        &InMemoryRefreshGrants::default(),
    ))
    .unwrap();
}

/// Never forgets a grant.
#[derive(Debug, Default)]
struct NeverRevokes(InMemoryRefreshGrants);

impl RefreshGrantStore for NeverRevokes {
    fn store<'a>(
        &'a self,
        token: &'a RefreshToken,
        grant: RefreshGrant,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.0.store(token, grant)
    }
    fn grant<'a>(
        &'a self,
        token: &'a RefreshToken,
    ) -> BoxFuture<'a, Result<Option<RefreshGrant>, StoreError>> {
        self.0.grant(token)
    }
    fn revoke<'a>(&'a self, _: &'a [JwtId]) -> BoxFuture<'a, Result<(), StoreError>> {
        fapi_core::store::ready(Ok(()))
    }
}

#[test]
fn the_kit_catches_a_store_that_does_not_revoke() {
    let e = b(refresh_grant_store_conformance(&NeverRevokes::default())).unwrap_err();
    assert_eq!(e.case, "a revoked grant is not found");
}
