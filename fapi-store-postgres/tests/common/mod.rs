//! A PostgreSQL schema of its own for each test, dropped afterwards.
//!
//! The server comes from `FAPI_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). Where none answers, a test
//! prints one line saying it was skipped and why, and passes; with
//! `FAPI_REQUIRE_POSTGRES=1` (CI) a missing server fails the test.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use fapi_store_postgres::tokio_postgres::{self, NoTls};
use fapi_store_postgres::PostgresStore;

pub(crate) const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A fresh schema (`fapi_test_<uuid>`) and a store whose connections use
/// it; the schema is dropped when this is dropped, also after a panic.
pub(crate) struct TestDb {
    config: tokio_postgres::Config,
    schema: String,
}

impl TestDb {
    /// `None` (with the line saying why) when no server answers and CI did
    /// not require one.
    pub(crate) async fn new() -> Option<Self> {
        let url = std::env::var("FAPI_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
        let config: tokio_postgres::Config = url.parse().expect("FAPI_POSTGRES_URL");
        let client = match config.connect(NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(connection);
                client
            }
            Err(e) => {
                if std::env::var("FAPI_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                    panic!("FAPI_REQUIRE_POSTGRES=1 but no PostgreSQL answers at {url}: {e}");
                }
                eprintln!("skipped: no PostgreSQL answers at {url} ({e}); set FAPI_POSTGRES_URL");
                return None;
            }
        };
        let schema = format!(
            "fapi_test_{}",
            fapi_core::random::uuid_v4().unwrap().replace('-', "_")
        );
        client
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .unwrap();
        Some(Self { config, schema })
    }

    /// The connection settings with this schema first on the search path.
    pub(crate) fn config(&self) -> tokio_postgres::Config {
        let mut c = self.config.clone();
        c.options(format!("-c search_path={}", self.schema));
        c
    }

    /// A store (its own pool of `max_size`) on this schema, not migrated.
    pub(crate) fn store_unmigrated(&self, max_size: usize) -> PostgresStore {
        PostgresStore::connect(self.config(), max_size).unwrap()
    }

    /// A migrated store with its own pool of 16 connections, as one more
    /// bank instance would have.
    pub(crate) async fn store(&self) -> PostgresStore {
        let store = self.store_unmigrated(16);
        store.migrate().await.unwrap();
        store
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (config, schema) = (self.config.clone(), self.schema.clone());
        // a runtime of its own: Drop cannot await, and the test's runtime
        // may be shutting down
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let (client, connection) = config.connect(NoTls).await.unwrap();
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
                    .await
                    .unwrap();
            });
        })
        .join();
        if dropped.is_err() && !std::thread::panicking() {
            panic!("test schema {} was not dropped", self.schema);
        }
    }
}

pub(crate) fn at(secs: i64) -> fapi_core::UnixTime {
    fapi_core::UnixTime::from_secs(1_900_000_000 + secs).unwrap()
}

/// The profile the tests' registrations are made for.
pub(crate) const PROFILE: fapi_core::Profile = fapi_core::Profile::Fapi2MessageSigning;

/// A registration document as the example bank stores it: the redirect
/// URI and the JWKS holding `key`'s public key under kid `k`.
pub(crate) fn registration(id: &str, key: &dyn fapi_core::SigningKey) -> String {
    use fapi_core::jwk::{Jwk, JwkSet};
    serde_json::json!({
        "redirect_uri": format!("https://{id}.example/cb"),
        "jwks": JwkSet::new(vec![Jwk::from_public_key(key.public_key().clone(), Some("k".into()))]).to_json(),
    })
    .to_string()
}

/// The registrations in a [`fapi_store_postgres::PostgresDirectory`], read
/// live (a revoked TPP has none).
#[derive(Debug)]
pub(crate) struct Registrations(pub(crate) fapi_store_postgres::PostgresDirectory);

impl fapi_par::CurrentRegistration for Registrations {
    fn current<'a>(
        &'a self,
        client: &'a fapi_core::ClientId,
    ) -> fapi_core::BoxFuture<
        'a,
        Result<Option<std::sync::Arc<fapi_core::ClientMetadata>>, fapi_core::StoreError>,
    > {
        use fapi_core::client::AuthMethod;
        use fapi_core::jwk::JwkSet;
        use fapi_core::StoreError;
        use fapi_mtls_binding::registry::TppRegistry;
        Box::pin(async move {
            let Some(row) = self.0.client(client).await?.filter(|c| !c.revoked) else {
                return Ok(None);
            };
            let v: serde_json::Value =
                serde_json::from_str(&row.registration).map_err(StoreError::unavailable)?;
            let redirect = v["redirect_uri"].as_str().unwrap_or_default();
            let jwks = JwkSet::from_json(v["jwks"].to_string().as_bytes())
                .map_err(|e| StoreError::unavailable(e.to_string()))?;
            let metadata = fapi_core::ClientMetadata::new(
                client.clone(),
                AuthMethod::PrivateKeyJwt,
                vec![fapi_core::RedirectUri::try_from(redirect).map_err(StoreError::unavailable)?],
                jwks,
                &*fapi_core::crypto::default_provider(),
                PROFILE,
            )
            .map_err(|e| StoreError::unavailable(e.to_string()))?;
            Ok(Some(std::sync::Arc::new(metadata)))
        })
    }
}
