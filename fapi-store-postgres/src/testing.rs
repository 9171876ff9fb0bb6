//! A PostgreSQL schema of its own for each test, dropped afterwards
//! (feature `testing`): the harness this crate's tests use, for an
//! application's tests on the same server.
//!
//! The server comes from `FAPI_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). Where none answers, a test
//! prints one line saying it was skipped and why, and passes; with
//! `FAPI_REQUIRE_POSTGRES=1` (CI) a missing server fails the test.

use tokio_postgres::NoTls;

use crate::PostgresStore;

/// The server when `FAPI_POSTGRES_URL` is not set: the one every machine
/// of this project runs.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A fresh schema (`fapi_test_<uuid>`) and stores whose connections use
/// it; the schema is dropped when this is dropped, also after a panic.
/// Needs a Tokio runtime.
#[derive(Debug)]
pub struct TestDb {
    url: String,
    config: tokio_postgres::Config,
    schema: String,
}

impl TestDb {
    /// `None` (with the line saying why) when no server answers and CI did
    /// not require one.
    pub async fn new() -> Option<Self> {
        let url = std::env::var("FAPI_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
        let config: tokio_postgres::Config = match url.parse() {
            Ok(c) => c,
            Err(e) => return Self::absent(&url, &e),
        };
        let client = match config.connect(NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(connection);
                client
            }
            Err(e) => return Self::absent(&url, &e),
        };
        let schema = match fapi_core::random::uuid_v4() {
            Ok(id) => format!("fapi_test_{}", id.replace('-', "_")),
            Err(e) => return Self::absent(&url, &e),
        };
        if let Err(e) = client
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
        {
            return Self::absent(&url, &e);
        }
        Some(Self {
            url,
            config,
            schema,
        })
    }

    /// No usable server: one line saying why, or a panic where CI
    /// requires the server (`FAPI_REQUIRE_POSTGRES=1`).
    #[allow(clippy::panic)] // a test harness: the test fails with the reason
    fn absent(url: &str, e: &dyn std::fmt::Display) -> Option<Self> {
        if std::env::var("FAPI_REQUIRE_POSTGRES").as_deref() == Ok("1") {
            panic!("FAPI_REQUIRE_POSTGRES=1 but PostgreSQL at {url} is not usable: {e}");
        }
        eprintln!("skipped: PostgreSQL at {url} is not usable ({e}); set FAPI_POSTGRES_URL");
        None
    }

    /// The connection settings with this schema first on the search path.
    pub fn config(&self) -> tokio_postgres::Config {
        let mut c = self.config.clone();
        c.options(format!("-c search_path={}", self.schema));
        c
    }

    /// A `postgres://` URL that reaches this schema (the search path set in
    /// the URL's `options`), for a program under test, such as a bank
    /// started with `--database`.
    pub fn url(&self) -> String {
        let sep = if self.url.contains('?') { '&' } else { '?' };
        format!(
            "{}{sep}options=-c%20search_path%3D{}",
            self.url, self.schema
        )
    }

    /// The schema's name (connections reach it through the search path
    /// [`TestDb::config`] sets).
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// A store (its own pool of `max_size`) on this schema, not migrated.
    ///
    /// # Panics
    /// If the pool cannot be built (a test harness: the test fails).
    #[allow(clippy::expect_used)]
    pub fn store_unmigrated(&self, max_size: usize) -> PostgresStore {
        PostgresStore::connect(self.config(), max_size).expect("a pool on the test schema")
    }

    /// A migrated store with its own pool of 16 connections, as one more
    /// bank instance would have.
    ///
    /// # Panics
    /// If the migrations fail (the test fails).
    #[allow(clippy::expect_used)]
    pub async fn store(&self) -> PostgresStore {
        let store = self.store_unmigrated(16);
        store.migrate().await.expect("the migrations apply");
        store
    }
}

impl Drop for TestDb {
    #[allow(clippy::unwrap_used, clippy::panic)] // a failed drop fails the test
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
