//! The bank's configuration: a JSON file (`bank --config FILE`) whose
//! values flags can override. Paths are relative to the data directory.
//! Keys are named, not given: they come through the key source.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use fapi_core::Profile;
use serde::{Deserialize, Serialize};

use super::StartError;

/// One test customer (the login page is the SCA stand-in).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerConfig {
    /// Login name.
    pub id: String,
    /// Password (a documented test credential, not a secret).
    pub password: String,
    /// Display name.
    pub name: String,
    /// The customer's accounts in the mock ledger.
    pub accounts: Vec<AccountConfig>,
}

/// One account in the mock ledger.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// Account id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Opening balance, e.g. `"1000.00"`.
    pub opening_balance: String,
}

/// Core-banking connection settings and fault injection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CoreConfig {
    /// Added latency per call (fault injection).
    pub latency_ms: u64,
    /// Fraction of calls that fail, 0.0..=1.0 (fault injection).
    pub fail_rate: f64,
    /// Per-call timeout; past it the API answers 504 (the outcome of a
    /// payment is then reconciled).
    pub timeout_ms: u64,
    /// Serve `GET`/`PUT /core/faults` on the admin listener, to change the
    /// injected faults while running (tests, game days). Off by default:
    /// never on in production.
    pub fault_control: bool,
}

impl Default for CoreConfig {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            fail_rate: 0.0,
            timeout_ms: 2_000,
            fault_control: false,
        }
    }
}

/// Concurrency budgets (bulkheads), so that a flood of one kind of call
/// cannot starve another: account information and payments each have
/// their own share of in-flight API requests and of the core's capacity
/// (the reference design reserves capacity for payment initiation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BulkheadConfig {
    /// Account-information requests (`/aisp`) in flight; one more is
    /// answered 503 at once.
    pub accounts_in_flight: usize,
    /// Payment-initiation requests (`/pisp`) in flight.
    pub payments_in_flight: usize,
    /// Core calls for account information (API and consent screen) at
    /// once; more wait, within the core timeout.
    pub core_accounts: usize,
    /// Core calls for payments at once.
    pub core_payments: usize,
}

impl Default for BulkheadConfig {
    fn default() -> Self {
        Self {
            accounts_in_flight: 64,
            payments_in_flight: 32,
            core_accounts: 16,
            core_payments: 8,
        }
    }
}

/// Everything the bank needs to start.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BankConfig {
    /// Data directory: database, keys, certificates.
    pub data_dir: PathBuf,
    /// TPP API listener (mutual TLS).
    pub api_listen: SocketAddr,
    /// Customer pages listener (server TLS).
    pub customer_listen: SocketAddr,
    /// Admin listener (`/metrics`, plain HTTP; keep it on loopback).
    #[serde(default)]
    pub admin_listen: Option<SocketAddr>,
    /// Host name in the issuer and endpoint URLs (the server certificate's).
    pub public_host: String,
    /// The issuer URL clients use, when it is not this instance's own
    /// customer listener: instances behind a load balancer share one (the
    /// balancer's), so a token, code or `request_uri` one instance issued
    /// is accepted by every other. Absent: `https://{public_host}:{port}`.
    #[serde(default)]
    pub public_issuer: Option<String>,
    /// The TPP API's base URL clients use (the access tokens' audience),
    /// for the same reason. Absent: `https://{public_host}:{port}`.
    #[serde(default)]
    pub public_api_base: Option<String>,
    /// Scheme CA bundle (PEM), the trust anchors for client certificates.
    pub scheme_ca: PathBuf,
    /// The scheme CAs' CRLs (PEM). At least one: every client certificate
    /// must be covered by a current CRL of its issuer, and the bank does
    /// not start with a CRL past its nextUpdate.
    #[serde(default)]
    pub crls: Vec<PathBuf>,
    /// Server certificate chain (PEM).
    pub server_certificate: PathBuf,
    /// Key-source name of the server's TLS key.
    pub server_key: String,
    /// Key-source name of the bank's JWS signing key.
    pub signing_key: String,
    /// The directory's public JWKS (verifies software statements).
    pub directory_jwks: PathBuf,
    /// The directory's issuer name in software statements.
    pub directory_issuer: String,
    /// Hosts of the directory that publish TPPs' keys, for statements that
    /// name their keys by `software_jwks_endpoint` (UK OB): dynamic
    /// registration fetches from these only (HTTPS, exact host names).
    /// Empty: statements must carry their keys by value.
    #[serde(default)]
    pub directory_jwks_hosts: Vec<String>,
    /// The CA certificates (PEM) those hosts' TLS certificates chain to;
    /// absent: `scheme_ca`.
    #[serde(default)]
    pub directory_jwks_ca: Option<PathBuf>,
    /// `fapi1-advanced`, `fapi2-security` or `fapi2-message-signing`.
    pub profile: String,
    /// Test customers.
    pub customers: Vec<CustomerConfig>,
    /// Core banking.
    #[serde(default)]
    pub core: CoreConfig,
    /// Requests per second each client may make on the TPP API, keyed by
    /// its certificate (burst of the same size).
    pub rate_limit_per_second: u32,
    /// Requests per second each peer address may make on the customer
    /// pages (burst of the same size); 0 turns the limit off.
    #[serde(default = "default_customer_rate")]
    pub customer_rate_limit_per_second: u32,
    /// How many accepted access tokens the resource server remembers, so a
    /// token presented again skips the signature check (never the expiry,
    /// the certificate binding, the revocation list or the live consent
    /// read; see `fapi_core::AccessTokenVerifier::with_cache`). 0 turns it
    /// off.
    #[serde(default = "default_token_cache")]
    pub verified_token_cache: usize,
    /// Connection caps and deadlines of each listener, and the drain
    /// deadline on stop (see `bank::listener`).
    #[serde(default)]
    pub listeners: crate::bank::listener::ListenersConfig,
    /// Separate concurrency budgets for account information and payments.
    #[serde(default)]
    pub bulkheads: BulkheadConfig,
    /// How the bank's signing keys are refreshed and rotated
    /// (`bank keys rotate`).
    #[serde(default)]
    pub signing_keys: crate::bank::keys::SigningKeysConfig,
    /// OpenTelemetry traces over OTLP/HTTP; none are exported without it
    /// (see `bank::telemetry`).
    #[serde(default)]
    pub otlp: Option<crate::bank::telemetry::OtlpConfig>,
    /// Where the database's statements run (see [`StoreConfig`]).
    #[serde(default)]
    pub store: StoreConfig,
    /// What an authorization request must carry to say what the customer
    /// is asked for (`bank serve --consent-model` sets it too).
    #[serde(default)]
    pub consent_model: ConsentModel,
    /// Whether the TPP API's handshake also accepts a self-signed client
    /// certificate sent alone, for clients registered with
    /// `self_signed_tls_client_auth` (RFC 8705 §2.2; `bank serve
    /// --self-signed-clients` sets it too). Such a certificate is the
    /// client's only when its key is in the client's registered JWKS;
    /// off, every certificate outside the scheme CA is refused in the
    /// handshake.
    #[serde(default)]
    pub self_signed_clients: bool,
}

/// What an authorization request must carry to say what the customer is
/// asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConsentModel {
    /// Either of the two below (the default).
    #[default]
    Any,
    /// UK Open Banking: an `openbanking_intent_id` naming a consent the
    /// client created beforehand with a `client_credentials` token.
    OpenbankingIntent,
    /// Plain FAPI 2: scopes alone. `accounts` asks for read access to the
    /// accounts the customer chooses, with the bank's standard permission
    /// set, for 90 days (see the README); the consent is created when the
    /// customer decides. A payment needs an intent.
    Scopes,
}

impl ConsentModel {
    /// Whether a request naming an `openbanking_intent_id` is accepted.
    pub fn allows_intent(self) -> bool {
        matches!(self, Self::Any | Self::OpenbankingIntent)
    }

    /// Whether a request with scopes alone is accepted.
    pub fn allows_scopes(self) -> bool {
        matches!(self, Self::Any | Self::Scopes)
    }
}

impl std::str::FromStr for ConsentModel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "any" => Ok(Self::Any),
            "openbanking-intent" => Ok(Self::OpenbankingIntent),
            "scopes" => Ok(Self::Scopes),
            _ => Err(format!(
                "consent model {s:?} is not one of any, openbanking-intent, scopes"
            )),
        }
    }
}

/// Where the SQLite store runs its statements (`fapi_store_sqlite::Dispatch`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The database: absent for the embedded SQLite file `bank.db` in the
    /// data directory (the default), or a `postgres://` URL for
    /// PostgreSQL, which several bank instances share (`bank serve
    /// --database URL` sets it too).
    #[serde(default)]
    pub database: Option<String>,
    /// PostgreSQL over TLS: a PEM file of the CA certificates the
    /// database's certificate must chain to (`bank serve --database-ca
    /// FILE` sets it too). With it every connection is TLS (rustls; chain
    /// and host name checked, never downgraded to plaintext); without it
    /// connections are plaintext, for a database on the same host or a
    /// private network, and a URL with `sslmode=require` is refused.
    #[serde(default)]
    pub database_ca: Option<std::path::PathBuf>,
    /// PostgreSQL: connections in this instance's pool.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// SQLite: `threads` (the store's own threads, the default), `blocking`
    /// (tokio's blocking pool) or `inline` (on the request's own runtime
    /// worker, which waits for SQLite: only to measure the other two
    /// against, see BENCHMARKS.md).
    #[serde(default = "default_dispatch")]
    pub dispatch: String,
    /// SQLite: read-only connections beside the writer.
    #[serde(default = "default_readers")]
    pub readers: usize,
}

fn default_dispatch() -> String {
    "threads".into()
}

fn default_pool_size() -> usize {
    16
}

fn default_readers() -> usize {
    2
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            database: None,
            database_ca: None,
            pool_size: default_pool_size(),
            dispatch: default_dispatch(),
            readers: default_readers(),
        }
    }
}

impl StoreConfig {
    /// The PostgreSQL URL, when the database is PostgreSQL.
    ///
    /// # Errors
    /// [`super::StartError::Config`] for a database that is neither, or a
    /// `database_ca` without a PostgreSQL database.
    pub fn postgres_url(&self) -> Result<Option<&str>, super::StartError> {
        match self.database.as_deref() {
            None if self.database_ca.is_some() => Err(super::StartError::Config(
                "store.database_ca is for a PostgreSQL database; give store.database (--database) too"
                    .into(),
            )),
            None => Ok(None),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(Some(url))
            }
            Some(_) => Err(super::StartError::Config(
                "store.database must be a postgres:// URL (or absent for SQLite)".into(),
            )),
        }
    }

    /// TLS to the PostgreSQL database, when `database_ca` names the CA
    /// file.
    ///
    /// # Errors
    /// [`super::StartError::Config`] if the file cannot be read or holds
    /// no usable CA certificate.
    pub fn database_tls(
        &self,
    ) -> Result<Option<fapi_store_postgres::DatabaseTls>, super::StartError> {
        let Some(path) = &self.database_ca else {
            return Ok(None);
        };
        let pem = std::fs::read(path).map_err(|e| {
            super::StartError::Config(format!("store.database_ca {}: {e}", path.display()))
        })?;
        fapi_store_postgres::DatabaseTls::from_ca_pem(&pem)
            .map(Some)
            .map_err(|e| {
                super::StartError::Config(format!("store.database_ca {}: {e}", path.display()))
            })
    }

    /// The store's options: `threads` gives one thread per connection.
    ///
    /// # Errors
    /// [`super::StartError::Config`] for an unknown dispatch.
    pub fn options(&self) -> Result<fapi_store_sqlite::Options, super::StartError> {
        let dispatch = match self.dispatch.as_str() {
            "threads" => fapi_store_sqlite::Dispatch::Threads(self.readers + 1),
            "blocking" => fapi_store_sqlite::Dispatch::Spawn(std::sync::Arc::new(|job| {
                drop(tokio::task::spawn_blocking(job));
            })),
            "inline" => fapi_store_sqlite::Dispatch::Inline,
            other => {
                return Err(super::StartError::Config(format!(
                    "store.dispatch is {other:?}; give \"threads\", \"blocking\" or \"inline\""
                )))
            }
        };
        Ok(fapi_store_sqlite::Options::default()
            .with_readers(self.readers)
            .with_dispatch(dispatch))
    }
}

fn default_token_cache() -> usize {
    10_000
}

fn default_customer_rate() -> u32 {
    50
}

impl BankConfig {
    /// The configuration the development PKI (`DevPki`) in `data_dir`
    /// matches, on loopback with ephemeral ports unless given, and the
    /// documented test customers `alice` (password `alice-password`) and
    /// `bob` (`bob-password`).
    pub fn development(data_dir: &Path) -> Self {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Self {
            data_dir: data_dir.to_owned(),
            api_listen: any,
            customer_listen: any,
            admin_listen: Some(any),
            public_host: "localhost".into(),
            public_issuer: None,
            public_api_base: None,
            scheme_ca: "scheme-ca.pem".into(),
            crls: vec![crate::pki::DEV_CRL.into()],
            server_certificate: "bank-server.pem".into(),
            server_key: "bank-server".into(),
            signing_key: "bank-signing".into(),
            directory_jwks: "directory.jwks.json".into(),
            directory_issuer: crate::registry::DEV_DIRECTORY_ISSUER.into(),
            directory_jwks_hosts: Vec::new(),
            directory_jwks_ca: None,
            profile: "fapi2-message-signing".into(),
            customers: vec![
                CustomerConfig {
                    id: "alice".into(),
                    password: "alice-password".into(),
                    name: "Alice".into(),
                    accounts: vec![
                        AccountConfig {
                            id: "acc-1".into(),
                            name: "Alice's current account".into(),
                            opening_balance: "1000.00".into(),
                        },
                        AccountConfig {
                            id: "acc-2".into(),
                            name: "Alice's savings".into(),
                            opening_balance: "5000.00".into(),
                        },
                    ],
                },
                CustomerConfig {
                    id: "bob".into(),
                    password: "bob-password".into(),
                    name: "Bob".into(),
                    accounts: vec![AccountConfig {
                        id: "acc-3".into(),
                        name: "Bob's current account".into(),
                        opening_balance: "250.00".into(),
                    }],
                },
            ],
            core: CoreConfig::default(),
            rate_limit_per_second: 50,
            customer_rate_limit_per_second: default_customer_rate(),
            verified_token_cache: default_token_cache(),
            consent_model: ConsentModel::default(),
            self_signed_clients: false,
            listeners: crate::bank::listener::ListenersConfig::default(),
            bulkheads: BulkheadConfig::default(),
            signing_keys: crate::bank::keys::SigningKeysConfig::default(),
            store: StoreConfig::default(),
            otlp: None,
        }
    }

    /// Reads a configuration file (JSON; unknown fields are an error).
    ///
    /// # Errors
    /// [`StartError::Config`].
    pub fn from_file(path: &Path) -> Result<Self, StartError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| StartError::Config(format!("{}: {e}", path.display())))?;
        serde_json::from_str(&text)
            .map_err(|e| StartError::Config(format!("{}: {e}", path.display())))
    }

    /// The profile named in the configuration.
    ///
    /// # Errors
    /// [`StartError::Config`] for an unknown name.
    pub fn profile(&self) -> Result<Profile, StartError> {
        crate::cli::profile_named(&self.profile).ok_or_else(|| {
            StartError::Config(format!(
                "unknown profile {:?} (fapi1-advanced, fapi2-security, fapi2-message-signing)",
                self.profile
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_ca_needs_a_postgres_database_and_a_readable_certificate() {
        let mut store = StoreConfig {
            database_ca: Some("/nonexistent/ca.pem".into()),
            ..StoreConfig::default()
        };
        // a CA for SQLite is a mistake, said rather than ignored
        assert!(store.postgres_url().is_err());
        store.database = Some("postgres://bank@db.example/bank".into());
        assert_eq!(
            store.postgres_url().unwrap(),
            Some("postgres://bank@db.example/bank")
        );
        let e = store.database_tls().unwrap_err().to_string();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
        // the twin: no CA, no TLS, SQLite by default
        assert!(StoreConfig::default().database_tls().unwrap().is_none());
        assert_eq!(StoreConfig::default().postgres_url().unwrap(), None);
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn the_consent_model_is_named_in_the_configuration_and_on_the_command_line() {
        let dir = std::path::Path::new("/tmp/fapi-config-test");
        let mut v = serde_json::to_value(BankConfig::development(dir)).unwrap();
        // absent: either model
        let c: BankConfig = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(c.consent_model, ConsentModel::Any);
        assert!(c.consent_model.allows_intent() && c.consent_model.allows_scopes());
        v["consent_model"] = "scopes".into();
        let c: BankConfig = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(c.consent_model, ConsentModel::Scopes);
        assert!(!c.consent_model.allows_intent());
        v["consent_model"] = "openbanking-intent".into();
        let c: BankConfig = serde_json::from_value(v.clone()).unwrap();
        assert!(!c.consent_model.allows_scopes());
        v["consent_model"] = "intent".into();
        assert!(serde_json::from_value::<BankConfig>(v).is_err());
        assert_eq!("scopes".parse(), Ok(ConsentModel::Scopes));
        assert!("Scopes".parse::<ConsentModel>().is_err());
    }
}
