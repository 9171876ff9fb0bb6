//! A PostgreSQL schema of its own for each test, dropped afterwards
//! (feature `testing`): the harness this crate's tests use, for an
//! application's tests on the same server.
//!
//! The server comes from `FAPI_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). Where none answers, a test
//! prints one line saying it was skipped and why, and passes; with
//! `FAPI_REQUIRE_POSTGRES=1` (CI) a missing server fails the test.
//!
//! TLS tests ([`TestDb::tls`]) reach the same server by the name its
//! certificate carries (`FAPI_POSTGRES_TLS_HOST`, default `localhost`) at
//! the URL's address, and trust the CA certificates in `FAPI_POSTGRES_CA`,
//! by default the server's own certificate file (`ssl_cert_file`, a
//! self-signed certificate on a development server, readable because the
//! server runs on this machine).

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

/// The test schema reached over TLS: see [`TestDb::tls`].
#[derive(Debug)]
pub struct TestTls {
    /// The CA certificates (PEM) the server's certificate chains to.
    pub ca_pem: Vec<u8>,
    /// The settings: `host` the certificate's name, `hostaddr` the
    /// server's address, the test schema on the search path, `sslmode`
    /// left at the default (`prefer`).
    pub config: tokio_postgres::Config,
    /// The same as a `postgres://` URL (without a password: the test
    /// server trusts local connections), for a program under test.
    pub url: String,
}

impl TestDb {
    /// The test schema over TLS, or `None` (with the line saying why, or a
    /// panic under `FAPI_REQUIRE_POSTGRES=1`) when the server has TLS off
    /// or its CA cannot be read.
    pub async fn tls(&self) -> Option<TestTls> {
        match self.tls_settings().await {
            Ok(tls) => Some(tls),
            Err(e) => {
                // None, or the panic CI asks for
                let _none = Self::absent(&self.url, &format!("no TLS to test with: {e}"));
                None
            }
        }
    }

    async fn tls_settings(&self) -> Result<TestTls, String> {
        let (client, connection) = self
            .config
            .connect(NoTls)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let show = |name: &'static str| {
            let client = &client;
            async move {
                client
                    .query_one(&format!("SHOW {name}"), &[])
                    .await
                    .and_then(|row| row.try_get::<_, String>(0))
                    .map_err(|e| format!("SHOW {name}: {e}"))
            }
        };
        if show("ssl").await? != "on" {
            return Err("the server runs with ssl = off".into());
        }
        let ca_path = match std::env::var("FAPI_POSTGRES_CA") {
            Ok(path) => path,
            Err(_) => show("ssl_cert_file").await?,
        };
        let ca_pem = std::fs::read(&ca_path).map_err(|e| format!("{ca_path}: {e}"))?;
        let name = std::env::var("FAPI_POSTGRES_TLS_HOST").unwrap_or_else(|_| "localhost".into());

        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        let address = match self.config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => {
                tokio::net::lookup_host((host.as_str(), port))
                    .await
                    .map_err(|e| format!("{host}: {e}"))?
                    .next()
                    .ok_or_else(|| format!("{host} has no address"))?
                    .ip()
            }
            _ => return Err("the server is not reached over TCP".into()),
        };
        let user = self.config.get_user().unwrap_or("postgres").to_owned();
        let dbname = self.config.get_dbname().unwrap_or(&user).to_owned();
        let mut config = tokio_postgres::Config::new();
        config
            .user(&user)
            .dbname(&dbname)
            .host(&name)
            .hostaddr(address)
            .port(port)
            .options(format!("-c search_path={}", self.schema));
        if let Some(password) = self.config.get_password() {
            config.password(password);
        }
        let url = format!(
            "postgres://{user}@{name}:{port}/{dbname}?hostaddr={address}&options=-c%20search_path%3D{}",
            self.schema
        );
        Ok(TestTls {
            ca_pem,
            config,
            url,
        })
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
