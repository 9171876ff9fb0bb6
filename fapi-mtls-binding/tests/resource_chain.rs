//! `resource::ResourceChain`: the resource server's whole per-call chain
//! as one call. Each step's refusal beside the happy call, and the trust
//! re-check following a bundle rotation on an open connection.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use fapi_core::testing::TokenAuthority;
use std::sync::{Arc, OnceLock};

use common::{crl, leaf, now, root, Ca};
use fapi_core::access_token::{AccessTokenClaims, BindingError, Confirmation};
use fapi_core::crypto::{default_provider, Algorithm, SigningKey};
use fapi_core::store::{BoxFuture, StoreError};
use fapi_core::{AccessTokenVerifier, ErrorCode, OAuthError, Profile, VerifiedAccessToken};
use fapi_core::{CertificateThumbprint, ClientId, Issuer, Scope};
use fapi_mtls_binding::directory::{CertificateStatus, Standing};
use fapi_mtls_binding::resource::{
    CallError, CertificateConnection, LiveRead, LiveState, ResourceChain,
};
use fapi_mtls_binding::trust::{TrustBundle, TrustError, TrustStore};
use fapi_mtls_binding::PresentedCertificate;
use futures_executor::block_on;

const AUD: &str = "https://api.bank.example";

struct Pki {
    ca: Ca,
    tpp_a: Vec<u8>,
    tpp_b: Vec<u8>,
}

fn pki() -> &'static Pki {
    static P: OnceLock<Pki> = OnceLock::new();
    P.get_or_init(|| {
        let ca = root("Scheme CA");
        let tpp_a = leaf("tpp-a", 1, &ca);
        let tpp_b = leaf("tpp-b", 2, &ca);
        Pki { ca, tpp_a, tpp_b }
    })
}

fn bundle(version: u64, ca: &Ca) -> TrustBundle {
    TrustBundle::builder(version)
        .anchors(&[&ca.der])
        .crls(&[&crl(ca, (2028, 1, 1), &[])])
        .build(now())
        .unwrap()
}

fn key() -> &'static Arc<dyn SigningKey> {
    static K: OnceLock<Arc<dyn SigningKey>> = OnceLock::new();
    K.get_or_init(|| {
        default_provider()
            .generate_signing_key(Algorithm::Es256)
            .unwrap()
    })
}

fn issuer() -> Issuer {
    Issuer::try_from("https://bank.example").unwrap()
}

fn authority() -> &'static TokenAuthority {
    static A: OnceLock<TokenAuthority> = OnceLock::new();
    A.get_or_init(|| {
        TokenAuthority::new(
            key().clone(),
            issuer(),
            fapi_core::TokenAudience::try_from(AUD).unwrap(),
            Profile::Fapi2Security,
            300,
        )
        .unwrap()
    })
}

fn verifier() -> AccessTokenVerifier {
    authority().verifier().clone()
}

/// A `Bearer` header for tpp-a's token bound to `cnf`.
fn token(cnf: Confirmation) -> String {
    let claims = AccessTokenClaims::new(
        "alice",
        ClientId::try_from("tpp-a").unwrap(),
        Scope::try_from("accounts").unwrap(),
        cnf,
    );
    block_on(authority().bearer(&claims, now())).unwrap()
}

fn connection(der: &[u8]) -> CertificateConnection {
    CertificateConnection::new(Some(
        PresentedCertificate::from_verified_tls_peer(der).unwrap(),
    ))
}

/// The store's answer for the call, fixed by the test.
struct Live {
    revoked: bool,
    status: CertificateStatus,
    owner: Option<&'static str>,
    down: bool,
}

const GOOD: Live = Live {
    revoked: false,
    status: CertificateStatus::Active,
    owner: Some("tpp-a"),
    down: false,
};

impl LiveState<&'static str> for Live {
    fn read<'a>(
        &'a self,
        _token: &'a VerifiedAccessToken,
        _certificate: &'a CertificateThumbprint,
    ) -> BoxFuture<'a, Result<LiveRead<&'static str>, StoreError>> {
        let r = if self.down {
            Err(StoreError::unavailable("the database is down"))
        } else {
            Ok(LiveRead {
                revoked: self.revoked,
                standing: Standing {
                    status: self.status,
                    owner: self.owner.map(|o| ClientId::try_from(o).unwrap()),
                },
                extra: "consent read with it",
            })
        };
        Box::pin(async move { r })
    }
}

fn call(
    header: &str,
    conn: &CertificateConnection,
    trust: &TrustStore,
    live: &Live,
) -> Result<(fapi_core::BoundAccessToken, &'static str), CallError> {
    let v = verifier();
    block_on(ResourceChain::new(&v, trust).authorize(header, conn, live, now()))
}

#[test]
fn the_happy_call_returns_the_bound_token_and_what_was_read_with_it() {
    let trust = TrustStore::new(bundle(1, &pki().ca));
    let conn = connection(&pki().tpp_a);
    let header = token(conn.presented().unwrap().confirmation());
    let (bound, extra) = call(&header, &conn, &trust, &GOOD).unwrap();
    assert_eq!(bound.client_id().as_str(), "tpp-a");
    assert_eq!(extra, "consent read with it");
}

#[test]
fn each_step_refuses_with_its_own_error() {
    let trust = TrustStore::new(bundle(1, &pki().ca));
    let conn = connection(&pki().tpp_a);
    let header = token(conn.presented().unwrap().confirmation());

    // 1. the token itself
    assert!(matches!(
        call("Bearer not.a.token", &conn, &trust, &GOOD),
        Err(CallError::Token(_))
    ));
    // 2. no client certificate on the connection
    assert_eq!(
        call(&header, &CertificateConnection::new(None), &trust, &GOOD).unwrap_err(),
        CallError::NoCertificate
    );
    // 3. the live read failed: fail closed, a server error
    let e = call(&header, &conn, &trust, &Live { down: true, ..GOOD }).unwrap_err();
    assert!(matches!(e, CallError::Store(_)));
    assert_eq!(e.error_code(), ErrorCode::ServerError);
    // 4. revoked token
    let e = call(
        &header,
        &conn,
        &trust,
        &Live {
            revoked: true,
            ..GOOD
        },
    )
    .unwrap_err();
    assert_eq!(e, CallError::Revoked);
    assert_eq!(e.error_code(), ErrorCode::InvalidToken);
    // 5. a certificate the bundle in force does not trust
    let other_scheme = TrustStore::new(bundle(1, &root("Look-alike CA")));
    assert_eq!(
        call(&header, &connection(&pki().tpp_a), &other_scheme, &GOOD).unwrap_err(),
        CallError::Untrusted(TrustError::UnknownIssuer)
    );
    // 6. the token bound to another certificate (stolen and replayed)
    let b = connection(&pki().tpp_b);
    assert!(matches!(
        call(
            &header,
            &b,
            &trust,
            &Live {
                owner: Some("tpp-b"),
                ..GOOD
            }
        )
        .unwrap_err(),
        CallError::Binding(BindingError::KeyMismatch)
    ));
    // 7. the directory: revoked TPP, revoked certificate, not registered
    for live in [
        Live {
            status: CertificateStatus::TppRevoked,
            ..GOOD
        },
        Live {
            status: CertificateStatus::CertificateRevoked,
            ..GOOD
        },
        Live {
            owner: None,
            ..GOOD
        },
        Live {
            owner: Some("tpp-b"),
            ..GOOD
        },
    ] {
        assert!(matches!(
            call(&header, &conn, &trust, &live).unwrap_err(),
            CallError::Directory(_)
        ));
    }
    // and the happy twin on the same fixtures
    assert!(call(&header, &conn, &trust, &GOOD).is_ok());
}

#[test]
fn a_bundle_rotated_under_an_open_connection_applies_to_its_next_call() {
    let trust = TrustStore::new(bundle(1, &pki().ca));
    let conn = connection(&pki().tpp_a);
    let header = token(conn.presented().unwrap().confirmation());
    assert!(call(&header, &conn, &trust, &GOOD).is_ok());
    // the scheme moves to another CA; the open connection is re-checked
    let new_ca = root("New scheme CA");
    trust.activate(bundle(2, &new_ca), &[], now()).unwrap();
    assert_eq!(
        call(&header, &conn, &trust, &GOOD).unwrap_err(),
        CallError::Untrusted(TrustError::UnknownIssuer)
    );
}

/// A connection the TLS layer accepted as self-signed is not chain-checked:
/// the directory's standing (the token's client holds the certificate)
/// decides. The same certificate on an ordinary connection is untrusted,
/// and a self-signed connection whose certificate the client does not hold
/// is refused.
#[test]
fn a_self_signed_connection_is_trusted_only_as_a_certificate_the_client_holds() {
    let trust = TrustStore::new(bundle(1, &pki().ca));
    let key = rcgen::KeyPair::generate().unwrap();
    let der = common::leaf_params("tpp-a", 9)
        .self_signed(&key)
        .unwrap()
        .der()
        .to_vec();
    let presented = || PresentedCertificate::from_verified_tls_peer(&der).unwrap();
    let conn = CertificateConnection::self_signed(presented());
    assert!(conn.is_self_signed());
    let header = token(presented().confirmation());
    let (bound, _) = call(&header, &conn, &trust, &GOOD).unwrap();
    assert_eq!(bound.client_id().as_str(), "tpp-a");

    let ordinary = CertificateConnection::new(Some(presented()));
    assert!(matches!(
        call(&header, &ordinary, &trust, &GOOD).unwrap_err(),
        CallError::Untrusted(_)
    ));
    let unregistered = Live {
        owner: None,
        ..GOOD
    };
    assert!(matches!(
        call(&header, &conn, &trust, &unregistered).unwrap_err(),
        CallError::Directory(_)
    ));
    // a scheme certificate is never marked self-signed: it is chain-checked
    let scheme = CertificateConnection::self_signed(
        PresentedCertificate::from_verified_tls_peer(&pki().tpp_b).unwrap(),
    );
    assert!(!scheme.is_self_signed());
}
