//! The performance evidence in one place (issue: fuzz, differential
//! testing and performance). Run with:
//!
//! ```sh
//! cargo bench -p fapi-examples --features rustcrypto --bench fapi -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! - `chain/<provider>/<alg>/raw_verify`: the provider's signature verify
//!   over a real access token's signing input (key already parsed);
//! - `chain/<provider>/<alg>/verify_bind_gate`: the whole resource
//!   authorizer: `AccessTokenVerifier::verify` -> `bind` to the presented
//!   certificate -> `ConsentGate::authorize` (in-memory store, 10,000
//!   consents);
//! - `chain/<provider>/<alg>/verify_bind_gate_repeat_token`: the same with
//!   the verifier's cache of accepted tokens (as the bank runs it), for a
//!   token presented before;
//! - request-object and client-assertion validation, JARM signing, PAR
//!   put/take, consent compare-and-swap, audit append (in memory).
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
use fapi_consent::audit::{AuditAction, AuditEvent, AuditLog, InMemoryAuditLog};
use fapi_consent::consent::{AccountAccessRequest, Actor};
use fapi_consent::store::apply_event;
use fapi_consent::{
    Consent, ConsentEvent, ConsentGate, ConsentStore, EventKind, InMemoryConsentStore,
    ResourceAccess,
};
use fapi_core::access_token::{
    AccessTokenClaims, AccessTokenIssuer, Confirmation, PresentedKey, ProofOfPossession,
};
use fapi_core::client::{AuthMethod, ClientMetadata};
use fapi_core::client_auth::{
    AssertionContext, Endpoint, UnverifiedClientAssertion, JWT_BEARER_ASSERTION_TYPE,
};
use fapi_core::crypto::aws_lc::AwsLcProvider;
use fapi_core::crypto::{Algorithm, CryptoProvider, SigningKey};
use fapi_core::jose::sign_compact;
use fapi_core::jwk::{Jwk, JwkSet, KeySet};
use fapi_core::request_object::RequestValidator;
use fapi_core::UnixTime;
use fapi_core::{AccessTokenVerifier, Profile};
use fapi_core::{
    CertificateThumbprint, ClientId, CodeVerifier, ConsentId, Issuer, RedirectUri, Scope,
};
use fapi_jarm::JarmSigner;
use fapi_par::{
    InMemoryPushedRequestStore, PushSource, PushedRequest, PushedRequestStore, RequestUri,
};
use futures_executor::block_on as b;
use serde_json::json;

const PROFILE: Profile = Profile::Fapi2MessageSigning;
const ISSUER: &str = "https://bank.example";

fn now() -> UnixTime {
    UnixTime::from_secs(1_900_000_000).unwrap()
}

struct Cert(CertificateThumbprint);
impl ProofOfPossession for Cert {
    fn presented_key(&self) -> PresentedKey<'_> {
        PresentedKey::Certificate(&self.0)
    }
}

fn jwks(key: &dyn SigningKey) -> JwkSet {
    JwkSet::new(vec![Jwk::from_public_key(
        key.public_key().clone(),
        Some("k".into()),
    )])
}

fn registration(key: &dyn SigningKey) -> ClientMetadata {
    ClientMetadata::new(
        ClientId::try_from("tpp-a").unwrap(),
        AuthMethod::PrivateKeyJwt,
        vec![RedirectUri::try_from("https://tpp-a.example/cb").unwrap()],
        jwks(key),
        &AwsLcProvider,
        PROFILE,
    )
    .unwrap()
}

/// 10,000 authorised consents; "aac-0" is the one under test.
fn gate() -> ConsentGate {
    let store = Arc::new(InMemoryConsentStore::new());
    for i in 0..10_000 {
        let id = ConsentId::try_from(format!("aac-{i}").as_str()).unwrap();
        let consent = Consent::account_access(
            id.clone(),
            ClientId::try_from("tpp-a").unwrap(),
            &AccountAccessRequest {
                permissions: vec![Permission::ReadAccountsDetail, Permission::ReadBalances],
                ..Default::default()
            },
            now(),
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
            at: now(),
        };
        b(apply_event(&*store, &id, ev)).unwrap();
    }
    ConsentGate::new(store)
}

fn chain(c: &mut Criterion) {
    let gate = gate();
    let cert = Cert(CertificateThumbprint::of_der(b"tpp-a certificate"));
    let issuer = Issuer::try_from(ISSUER).unwrap();
    #[allow(unused_mut)]
    let mut providers: Vec<(&str, &dyn CryptoProvider)> = vec![("aws-lc-rs", &AwsLcProvider)];
    #[cfg(feature = "rustcrypto")]
    providers.push((
        "rustcrypto",
        &fapi_core::crypto::rustcrypto::RustCryptoProvider,
    ));
    for (pname, provider) in providers {
        for alg in [Algorithm::Ps256, Algorithm::Es256, Algorithm::EdDsa] {
            let key = provider.generate_signing_key(alg).unwrap();
            let token = futures_executor::block_on(
                AccessTokenIssuer::new(
                    key.clone(),
                    "k".into(),
                    issuer.clone(),
                    fapi_core::TokenAudience::try_from("https://api.bank.example").unwrap(),
                    3600,
                )
                .issue(
                    &AccessTokenClaims::new(
                        "c",
                        ClientId::try_from("tpp-a").unwrap(),
                        Scope::try_from("accounts").unwrap(),
                        Confirmation::CertificateThumbprint(cert.0),
                    )
                    .with_consent(Some(ConsentId::try_from("aac-0").unwrap())),
                    now(),
                ),
            )
            .unwrap()
            .token;
            let keys =
                Arc::new(KeySet::from_jwks(&jwks(&*key), provider, &PROFILE.key_policy()).unwrap());
            let verifier = AccessTokenVerifier::new(
                keys,
                issuer.clone(),
                fapi_core::TokenAudience::try_from("https://api.bank.example").unwrap(),
                PROFILE.algorithms(),
            );
            let header = format!("Bearer {token}");
            let raw = provider.verifying_key(key.public_key()).unwrap();
            let (input, _) = token.rsplit_once('.').unwrap();
            let sig = key.sign(input.as_bytes()).unwrap();
            let mut g = c.benchmark_group(format!("chain/{pname}/{alg}"));
            g.bench_function("raw_verify", |bch| {
                bch.iter(|| {
                    raw.verify(black_box(input.as_bytes()), black_box(&sig))
                        .unwrap()
                })
            });
            // verify -> bind -> gate with `v`, as a resource call runs it
            let chain = |v: &AccessTokenVerifier| {
                let bound = v
                    .verify(black_box(&header), now())
                    .unwrap()
                    .bind(&cert)
                    .unwrap();
                b(gate.authorize(&bound, &ResourceAccess::Balances("acc-1".into()), now())).unwrap()
            };
            g.bench_function("verify_bind_gate", |bch| bch.iter(|| chain(&verifier)));
            // the same chain as the bank runs it, for a token presented
            // before: the verifier's cache skips parse and signature (the
            // time rules, bind and the live consent read still run)
            let cached = verifier.clone().with_cache(1_000);
            g.bench_function("verify_bind_gate_repeat_token", |bch| {
                bch.iter(|| chain(&cached))
            });
            g.finish();
        }
    }
}

fn components(c: &mut Criterion) {
    let key = AwsLcProvider
        .generate_signing_key(Algorithm::Ps256)
        .unwrap();
    let client = Arc::new(registration(&*key));
    let issuer = Issuer::try_from(ISSUER).unwrap();
    let mut g = c.benchmark_group("components/aws-lc-rs/PS256");

    let verifier = CodeVerifier::generate().unwrap();
    let request = sign_compact(
        &*key,
        Some("k"),
        Some("oauth-authz-req+jwt"),
        json!({
            "iss": "tpp-a", "aud": ISSUER, "client_id": "tpp-a", "nbf": now().as_secs(), "exp": now().as_secs() + 300,
            "response_type": "code", "response_mode": "jwt", "redirect_uri": "https://tpp-a.example/cb",
            "scope": "openid accounts", "state": "s", "nonce": "n",
            "code_challenge": verifier.challenge().as_str(), "code_challenge_method": "S256",
        })
        .as_object()
        .unwrap(),
    )
    .unwrap();
    let outer = vec![("client_id".to_owned(), "tpp-a".to_owned())];
    let ctx = RequestValidator::new(PROFILE, issuer.clone());
    g.bench_function("request_object_validation", |bch| {
        bch.iter(|| {
            ctx.request_object(black_box(&request), &outer, &client, now())
                .unwrap()
        })
    });
    let validated = Arc::new(
        ctx.request_object(&request, &outer, &client, now())
            .unwrap(),
    );

    let assertion = sign_compact(
        &*key,
        Some("k"),
        None,
        json!({ "iss": "tpp-a", "sub": "tpp-a", "aud": ISSUER, "jti": "j", "iat": now().as_secs(), "exp": now().as_secs() + 60 })
            .as_object()
            .unwrap(),
    )
    .unwrap();
    let actx = AssertionContext::new(
        PROFILE,
        &issuer,
        Endpoint::Token("https://bank.example/token"),
    );
    g.bench_function("client_assertion_validation", |bch| {
        bch.iter(|| {
            UnverifiedClientAssertion::parse(
                JWT_BEARER_ASSERTION_TYPE,
                black_box(&assertion),
                Some("tpp-a"),
            )
            .unwrap()
            .verify(&client, &actx, now())
            .unwrap()
        })
    });

    let jarm = JarmSigner::new(key.clone(), "k".into(), issuer.clone());
    g.bench_function("jarm_signing", |bch| {
        bch.iter(|| {
            futures_executor::block_on(jarm.success(&validated, black_box("code"), now()))
                .unwrap()
                .render()
                .unwrap()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("components/in-memory");
    let store = InMemoryPushedRequestStore::new(1_000_000);
    let client_id = ClientId::try_from("tpp-a").unwrap();
    let source = Arc::new(PushSource {
        parameters: outer.clone(),
        pushed_at: now(),
    });
    // each round at a later time, so the taken entries kept for reuse
    // reporting have expired when the bounded store sweeps
    let round = std::cell::Cell::new(0i64);
    g.bench_function("par_put_take", |bch| {
        bch.iter(|| {
            let t = now().saturating_add(round.replace(round.get() + 61));
            let uri = RequestUri::generate().unwrap();
            b(store.put(
                PushedRequest {
                    request_uri: uri.clone(),
                    request: validated.clone(),
                    expires_at: t.saturating_add(60),
                    source: source.clone(),
                },
                t,
            ))
            .unwrap();
            b(store.take(&uri, &client_id, t)).unwrap()
        })
    });

    // read, apply an event, compare-and-swap (a fresh consent each time)
    g.bench_function("consent_read_apply_cas", |bch| {
        bch.iter_batched(
            || {
                let consents = InMemoryConsentStore::new();
                let id = ConsentId::try_from("aac-cas").unwrap();
                let request = AccountAccessRequest {
                    permissions: vec![Permission::ReadAccountsDetail, Permission::ReadBalances],
                    ..Default::default()
                };
                b(consents.create(
                    Consent::account_access(id.clone(), client_id.clone(), &request, now())
                        .unwrap(),
                ))
                .unwrap();
                (consents, id)
            },
            |(consents, id)| {
                let current = b(consents.get(&id)).unwrap().unwrap();
                let version = current.version();
                let next = current
                    .apply(ConsentEvent {
                        kind: EventKind::Authorise {
                            customer_id: "c".into(),
                            accounts: vec!["acc-1".into()],
                        },
                        actor: Actor::Customer("c".into()),
                        reason: "bench".into(),
                        at: now(),
                    })
                    .unwrap();
                b(consents.compare_and_swap(version, next)).unwrap()
            },
            criterion::BatchSize::SmallInput,
        )
    });

    let audit = InMemoryAuditLog::new();
    g.bench_function("audit_append", |bch| {
        bch.iter(|| {
            let mut e = AuditEvent::new(AuditAction::ConsentCreated, now());
            e.consent_id = Some(fapi_core::ConsentId::try_from("aac-1").unwrap());
            b(audit.append(e)).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, chain, components);
criterion_main!(benches);
