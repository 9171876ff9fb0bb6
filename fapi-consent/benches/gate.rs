//! `ConsentGate::authorize` with the in-memory store (the live consent read
//! on every resource call) next to one ES256 signature verify. Run with:
//!
//! ```sh
//! cargo bench -p fapi-consent --bench gate
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use fapi_consent::Permission;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use fapi_consent::consent::{AccountAccessRequest, Actor};
use fapi_consent::store::apply_event;
use fapi_consent::{
    Consent, ConsentEvent, ConsentGate, ConsentStore, EventKind, InMemoryConsentStore,
    ResourceAccess,
};
use fapi_core::access_token::{
    AccessTokenClaims, AccessTokenIssuer, Confirmation, PresentedKey, ProofOfPossession,
};
use fapi_core::crypto::{default_provider, Algorithm};
use fapi_core::jwk::{Jwk, JwkSet, KeySet};
use fapi_core::UnixTime;
use fapi_core::{AccessTokenVerifier, Profile};
use fapi_core::{CertificateThumbprint, ClientId, ConsentId, Issuer, Scope};
use futures_executor::block_on as b;

struct Cert(CertificateThumbprint);
impl ProofOfPossession for Cert {
    fn presented_key(&self) -> PresentedKey<'_> {
        PresentedKey::Certificate(&self.0)
    }
}

fn bench(c: &mut Criterion) {
    let now = UnixTime::from_secs(1_900_000_000).unwrap();
    let store = Arc::new(InMemoryConsentStore::new());
    // a realistic store: 10,000 consents, the one under test among them
    for i in 0..10_000 {
        let id = ConsentId::try_from(format!("aac-{i}").as_str()).unwrap();
        let consent = Consent::account_access(
            id.clone(),
            ClientId::try_from("tpp-a").unwrap(),
            &AccountAccessRequest {
                permissions: vec![Permission::ReadAccountsDetail, Permission::ReadBalances],
                ..Default::default()
            },
            now,
        )
        .unwrap();
        b(store.create(consent)).unwrap();
        let ev = ConsentEvent {
            kind: EventKind::Authorise {
                customer_id: "c".into(),
                accounts: vec!["acc-1".into()],
            },
            actor: Actor::Bank,
            reason: "bench".into(),
            at: now,
        };
        b(apply_event(&*store, &id, ev)).unwrap();
    }
    let gate = ConsentGate::new(store);
    let key = default_provider()
        .generate_signing_key(Algorithm::Es256)
        .unwrap();
    let cert = Cert(CertificateThumbprint::of_der(b"tpp-a"));
    let issuer = Issuer::try_from("https://bank.example").unwrap();
    let token = futures_executor::block_on(
        AccessTokenIssuer::new(
            key.clone(),
            "k".into(),
            issuer.clone(),
            fapi_core::TokenAudience::try_from("api").unwrap(),
            3600,
        )
        .issue(
            &AccessTokenClaims::new(
                "c",
                ClientId::try_from("tpp-a").unwrap(),
                Scope::try_from("accounts").unwrap(),
                Confirmation::CertificateThumbprint(cert.0),
            )
            .with_consent(Some(ConsentId::try_from("aac-4242").unwrap())),
            now,
        ),
    )
    .unwrap()
    .token;
    let jwks = JwkSet::new(vec![Jwk::from_public_key(
        key.public_key().clone(),
        Some("k".into()),
    )]);
    let keys = Arc::new(
        KeySet::from_jwks(
            &jwks,
            &*default_provider(),
            &Profile::Fapi2Security.key_policy(),
        )
        .unwrap(),
    );
    let verifier = AccessTokenVerifier::new(
        keys,
        issuer,
        fapi_core::TokenAudience::try_from("api").unwrap(),
        Profile::Fapi2Security.algorithms(),
    );
    let header = format!("Bearer {token}");
    let bound = verifier.verify(&header, now).unwrap().bind(&cert).unwrap();
    let access = ResourceAccess::Balances("acc-1".into());

    let mut g = c.benchmark_group("consent_gate");
    g.bench_function("authorize_live_read_in_memory", |bn| {
        bn.iter(|| b(gate.authorize(black_box(&bound), &access, now)).unwrap())
    });
    g.bench_function("verify_bind_authorize_es256", |bn| {
        bn.iter(|| {
            let t = verifier
                .verify(black_box(&header), now)
                .unwrap()
                .bind(&cert)
                .unwrap();
            b(gate.authorize(&t, &access, now)).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
