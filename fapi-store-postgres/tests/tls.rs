//! TLS to the database: the chain and the host name are checked, and a
//! connection is never downgraded to plaintext.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
use common::{at, TestDb};

use fapi_core::replay::ReplayCache;
use fapi_core::store::{ErrorChain, StoreError};
use fapi_store_postgres::tokio_postgres::config::SslMode;
use fapi_store_postgres::{DatabaseTls, PostgresStore};

/// Whether this connection of `store`'s pool is TLS, and its version.
async fn ssl_of(store: &PostgresStore) -> (bool, Option<String>) {
    let client = store.pool().get().await.unwrap();
    let row = client
        .query_one(
            "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

/// The chain of a failed first operation, for the assertion message.
async fn first_failure(store: &PostgresStore) -> String {
    match store.migrate().await {
        Ok(()) => panic!("the connection was accepted"),
        Err(e) => ErrorChain(&e).to_string(),
    }
}

/// A CA of its own, which signed nothing the server holds.
fn stranger_ca() -> DatabaseTls {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    DatabaseTls::from_ca_pem(cert.pem().as_bytes()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_works_over_tls_checked_against_the_servers_ca() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    let Some(tls) = db.tls().await else { return };
    let store = PostgresStore::connect_tls(
        tls.config.clone(),
        4,
        &DatabaseTls::from_ca_pem(&tls.ca_pem).unwrap(),
    )
    .unwrap();
    store.migrate().await.unwrap();
    let replay = store.replay_cache();
    assert!(replay
        .insert_if_absent("tpp-a", "j-1", at(60), at(0))
        .await
        .unwrap());
    assert!(!replay
        .insert_if_absent("tpp-a", "j-1", at(60), at(1))
        .await
        .unwrap());
    let (ssl, version) = ssl_of(&store).await;
    assert!(ssl, "the connection is TLS");
    assert!(
        matches!(version.as_deref(), Some("TLSv1.3" | "TLSv1.2")),
        "{version:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_certificate_from_another_ca_is_refused() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    let Some(tls) = db.tls().await else { return };
    let store = PostgresStore::connect_tls(tls.config, 1, &stranger_ca()).unwrap();
    let chain = first_failure(&store).await;
    assert!(chain.contains("UnknownIssuer"), "{chain}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_certificate_for_another_host_is_refused() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    let Some(tls) = db.tls().await else { return };
    // the right CA, the right address, another name than the certificate's
    let right = &tls.config;
    let mut config = fapi_store_postgres::tokio_postgres::Config::new();
    config
        .user(right.get_user().unwrap())
        .dbname(right.get_dbname().unwrap())
        .port(right.get_ports()[0])
        .host("db.not-the-certificates-name.example")
        .hostaddr(right.get_hostaddrs()[0]);
    let store =
        PostgresStore::connect_tls(config, 1, &DatabaseTls::from_ca_pem(&tls.ca_pem).unwrap())
            .unwrap();
    let chain = first_failure(&store).await;
    assert!(chain.contains("not valid for name"), "{chain}");
}

/// A server that answers the client's TLS request with "no" and records
/// whatever the client sends next.
async fn refusing_server() -> (u16, tokio::task::JoinHandle<Vec<u8>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        // SSLRequest: length 8, code 80877103
        let mut request = [0u8; 8];
        socket.read_exact(&mut request).await.unwrap();
        assert_eq!(request, [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
        socket.write_all(b"N").await.unwrap();
        // the client either closes (nothing more) or sends its startup
        // message in plaintext (a length, then the rest)
        let mut length = [0u8; 4];
        if socket.read_exact(&mut length).await.is_err() {
            return Vec::new();
        }
        let mut rest = vec![0u8; (u32::from_be_bytes(length) as usize).saturating_sub(4)];
        socket.read_exact(&mut rest).await.unwrap();
        rest
    });
    (port, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_refusing_tls_gets_no_plaintext_connection() {
    let (port, seen) = refusing_server().await;
    let mut config = fapi_store_postgres::tokio_postgres::Config::new();
    config
        .user("bank")
        .dbname("bank")
        .host("localhost")
        .hostaddr(std::net::Ipv4Addr::LOCALHOST.into())
        .port(port);
    // the URL's default, `prefer`, would fall back to plaintext
    assert_eq!(config.get_ssl_mode(), SslMode::Prefer);
    let store = PostgresStore::connect_tls(config, 1, &stranger_ca()).unwrap();
    let chain = first_failure(&store).await;
    assert!(chain.contains("server does not support TLS"), "{chain}");
    drop(store);
    assert_eq!(seen.await.unwrap(), b"", "nothing sent after the refusal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_tls_the_startup_message_follows_the_refusal() {
    // the twin: the same server, a plaintext pool with `prefer`, and the
    // client goes on in plaintext (what connect_tls must never do)
    let (port, seen) = refusing_server().await;
    let mut config = fapi_store_postgres::tokio_postgres::Config::new();
    config
        .user("bank")
        .dbname("bank")
        .host("127.0.0.1")
        .port(port);
    // a connector that can do TLS, so `prefer` asks for it first
    let attempt = tokio::spawn(async move {
        let _ = config.connect(tokio_postgres_rustls_connector()).await;
    });
    let rest = seen.await.unwrap();
    assert!(
        rest.windows(4).any(|w| w == b"user"),
        "the startup message goes out in plaintext: {rest:?}"
    );
    attempt.await.unwrap();
}

fn tokio_postgres_rustls_connector() -> tokio_postgres_rustls::MakeRustlsConnect {
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    tokio_postgres_rustls::MakeRustlsConnect::new(config)
}

#[test]
fn tls_with_sslmode_disable_is_refused() {
    let config: fapi_store_postgres::tokio_postgres::Config =
        "postgres://bank@db.example/bank?sslmode=disable"
            .parse()
            .unwrap();
    let e = PostgresStore::connect_tls(config, 1, &stranger_ca()).unwrap_err();
    assert!(matches!(e, StoreError::Unavailable(_)));
    assert!(ErrorChain(&e).to_string().contains("sslmode=disable"));
    // the twin: the same URL with require is accepted (connections are
    // made on first use)
    let config = "postgres://bank@db.example/bank?sslmode=require"
        .parse()
        .unwrap();
    assert!(PostgresStore::connect_tls(config, 1, &stranger_ca()).is_ok());
}

#[test]
fn sslmode_require_without_tls_is_refused() {
    let config: fapi_store_postgres::tokio_postgres::Config =
        "postgres://bank@db.example/bank?sslmode=require"
            .parse()
            .unwrap();
    let e = PostgresStore::connect(config, 1).unwrap_err();
    assert!(ErrorChain(&e).to_string().contains("connect_tls"));
    let config = "postgres://bank@db.example/bank".parse().unwrap();
    assert!(PostgresStore::connect(config, 1).is_ok());
}

#[test]
fn a_ca_file_without_a_certificate_is_refused() {
    for pem in [
        &b""[..],
        b"not a pem file",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    ] {
        let e = DatabaseTls::from_ca_pem(pem).unwrap_err();
        assert!(matches!(e, StoreError::Unavailable(_)));
    }
    let garbled = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    assert!(DatabaseTls::from_ca_pem(garbled).is_err());
}
