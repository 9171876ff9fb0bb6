//! The networked example bank: axum on tokio behind rustls, on two
//! listeners (plus an optional plain-HTTP admin listener on loopback):
//!
//! - the **TPP API** (`api_listen`): mutual TLS, the client certificate
//!   required and verified against the scheme CA by `fapi-mtls-binding`
//!   ([`tls`]); `POST /par`, `POST /token`, and the UK Open Banking
//!   resources;
//! - the **customer pages** (`customer_listen`): server TLS only;
//!   discovery, `/jwks`, `GET /authorize` with the login and consent pages,
//!   and the customer's dashboard;
//! - the **admin listener** (`admin_listen`): Prometheus `/metrics`.
//!
//! Handlers are adapters: every security decision is a crate call, in the
//! order DESIGN.md gives (verify -> bind -> consent gate).

pub mod audit;
pub mod config;
pub(crate) mod customer;
mod errors;
pub mod keys;
pub mod listener;
pub mod live;
mod oauth;
mod observe;
#[cfg(test)]
mod payment_model;
mod pipeline;
pub mod prefill;
mod register;
mod resources;
mod scopes;
pub mod tables;
pub mod telemetry;
pub mod throttle;
pub mod tls;
mod tokens;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fapi_consent::ConsentGate;
use fapi_core::crypto::CryptoProvider;
use fapi_core::jwk::{JwkSet, KeySet};
use fapi_core::Issuer;
use fapi_core::Profile;
use fapi_core::{Clock, SystemClock, UnixTime};
use fapi_mtls_binding::trust::{TrustBundle, TrustStore};
use fapi_par::PushedRequestStore;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::{BankConfig, CustomerConfig};
pub use observe::{MetricKind, EXPORTED};

use crate::core_banking::{CircuitBreaker, CoreBanking, FaultInjection};
use crate::pki::{FileKeySource, KeySource};
use crate::registry::MetadataCache;
use crate::stores::Stores;

/// Why the bank could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A configured file is missing or unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

fn config_err(e: impl std::fmt::Display) -> StartError {
    StartError::Config(e.to_string())
}

/// A clock that follows the system clock plus an adjustable offset, so
/// end-to-end tests can move time forward (expiry) without sleeping.
#[derive(Debug, Default)]
pub struct OffsetClock {
    offset: AtomicI64,
}

impl OffsetClock {
    /// Moves this clock `secs` forward.
    pub fn advance(&self, secs: i64) {
        self.offset.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> UnixTime {
        SystemClock
            .now()
            .saturating_add(self.offset.load(Ordering::SeqCst))
    }
}

/// A customer's login session on the customer pages.
#[derive(Clone, Debug)]
struct Session {
    customer_id: String,
    expires_at: UnixTime,
}

/// Everything the handlers share.
pub(crate) struct BankState {
    pub(crate) profile: Profile,
    /// What an authorization request must carry (intent, scopes, either).
    pub(crate) consent_model: config::ConsentModel,
    /// Whether self-signed client certificates pass the handshake
    /// (`self_signed_tls_client_auth` offered).
    pub(crate) self_signed_clients: bool,
    /// The scheme directory's keys and issuer name: what dynamic
    /// registration verifies software statements with.
    pub(crate) scheme_directory: register::Directory,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) issuer: Issuer,
    /// Base URL of the TPP API listener (`aud` of access tokens).
    pub(crate) api_base: String,
    /// The bank's signing keys and their schedule.
    pub(crate) keys: keys::SigningKeys,
    /// Failed logins on the customer pages.
    pub(crate) login_attempts: Arc<dyn tables::LoginAttemptStore>,
    /// Signed checkpoints of the audit chain.
    pub(crate) checkpoints: Arc<dyn tables::CheckpointStore>,
    /// The background expiry sweep.
    pub(crate) housekeeping: Arc<dyn tables::Housekeeping>,
    pub(crate) par: Arc<dyn PushedRequestStore>,
    /// The PAR endpoint's settings (profile, issuer, lifetime).
    pub(crate) par_config: fapi_par::ParConfig,
    pub(crate) consents: Arc<dyn fapi_consent::ConsentStore>,
    pub(crate) audit: Arc<dyn fapi_consent::audit::AuditLog>,
    pub(crate) idempotency: Arc<dyn fapi_consent::idempotency::IdempotencyStore>,
    pub(crate) replay: Arc<dyn fapi_core::replay::ReplayCache>,
    pub(crate) directory: Arc<dyn fapi_mtls_binding::directory::TppDirectory>,
    /// The TPP registry (registrations; onboarding and revocation).
    pub(crate) registry: crate::registry::Registry,
    pub(crate) codes: Arc<dyn fapi_core::code::AuthorizationCodeStore>,
    pub(crate) revoked: Arc<dyn fapi_core::revocation::RevokedTokenStore>,
    pub(crate) refreshes: Arc<dyn fapi_core::refresh::RefreshGrantStore>,
    pub(crate) payments: Arc<dyn fapi_consent::payment::PaymentStore>,
    pub(crate) live: Arc<dyn live::LiveReads>,
    pub(crate) trust: Arc<TrustStore>,
    /// Each client's metadata (keys parsed once per registration).
    pub(crate) clients: Arc<MetadataCache>,
    pub(crate) gate: ConsentGate,
    pub(crate) core: Arc<dyn CoreBanking>,
    pub(crate) faults: Arc<FaultInjection<Arc<dyn CoreBanking>>>,
    pub(crate) breaker: CircuitBreaker,
    pub(crate) core_timeout: Duration,
    /// The core's capacity for account information, and for payments.
    pub(crate) core_lanes: CoreLanes,
    /// In-flight budgets of the `/aisp` and `/pisp` endpoints.
    pub(crate) aisp_bulkhead: Arc<tokio::sync::Semaphore>,
    pub(crate) pisp_bulkhead: Arc<tokio::sync::Semaphore>,
    pub(crate) customers: Vec<CustomerConfig>,
    sessions: Mutex<HashMap<String, Session>>,
    pub(crate) limiter: observe::ClientRateLimiter,
    pub(crate) customer_limiter: observe::KeyedRateLimiter<std::net::IpAddr>,
    pub(crate) metrics: observe::Metrics,
}

impl std::fmt::Debug for BankState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BankState")
            .field("issuer", &self.issuer)
            .field("api_base", &self.api_base)
            .finish_non_exhaustive()
    }
}

impl BankState {
    pub(crate) fn now(&self) -> UnixTime {
        self.clock.now()
    }

    /// The keys that sign and verify now.
    pub(crate) fn ring(&self) -> Arc<keys::Keyring> {
        self.keys.at(self.now())
    }

    /// Calls the core within the timeout, through the circuit breaker and
    /// within `lane`'s share of the core's capacity (waiting for a share
    /// counts against the timeout). No answer in time counts as a failure:
    /// the caller answers 503, never hangs, and the abandoned call is
    /// cancelled.
    pub(crate) async fn core_call<'a, T>(
        &'a self,
        lane: Lane,
        f: impl FnOnce(&'a dyn CoreBanking) -> crate::core_banking::CoreFuture<'a, T>,
    ) -> Result<T, crate::core_banking::CoreError> {
        use crate::core_banking::CoreError;
        let now = self.now();
        self.breaker.admit(now)?;
        let started = std::time::Instant::now();
        // waiting for the lane's share is not the core failing: a flood of
        // one lane must not open the breaker both lanes go through
        let Ok(Ok(_share)) =
            tokio::time::timeout(self.core_timeout, self.core_lanes.of(lane).acquire()).await
        else {
            metrics::counter!("fapi_core_lane_exhausted_total", "lane" => lane.label())
                .increment(1);
            return Err(CoreError::Unavailable);
        };
        let remaining = self.core_timeout.saturating_sub(started.elapsed());
        let result = tokio::time::timeout(remaining, f(&*self.core))
            .await
            .unwrap_or(Err(CoreError::Timeout));
        let failed = matches!(result, Err(CoreError::Unavailable | CoreError::Timeout));
        self.breaker.record(now, failed);
        let open = matches!(
            self.breaker.state(now),
            crate::core_banking::BreakerState::Open { .. }
        );
        metrics::gauge!("fapi_core_breaker_open").set(if open { 1.0 } else { 0.0 });
        if failed {
            tracing::warn!("core banking unavailable or too slow");
        }
        result
    }

    pub(crate) fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.api_base)
    }
}

/// Which share of the core's capacity a call draws on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lane {
    /// Accounts, balances, transactions (the API and the consent screen).
    Accounts,
    /// Payments.
    Payments,
}

impl Lane {
    fn label(self) -> &'static str {
        match self {
            Self::Accounts => "accounts",
            Self::Payments => "payments",
        }
    }
}

/// The core's capacity, split by lane.
#[derive(Debug)]
pub(crate) struct CoreLanes {
    accounts: tokio::sync::Semaphore,
    payments: tokio::sync::Semaphore,
}

impl CoreLanes {
    fn new(config: &config::BulkheadConfig) -> Self {
        Self {
            accounts: tokio::sync::Semaphore::new(config.core_accounts.max(1)),
            payments: tokio::sync::Semaphore::new(config.core_payments.max(1)),
        }
    }

    fn of(&self, lane: Lane) -> &tokio::sync::Semaphore {
        match lane {
            Lane::Accounts => &self.accounts,
            Lane::Payments => &self.payments,
        }
    }
}

/// A running bank: its addresses, and a handle that stops it.
#[derive(Debug)]
pub struct RunningBank {
    /// The TPP API (mutual TLS).
    pub api_addr: SocketAddr,
    /// The customer pages (server TLS).
    pub customer_addr: SocketAddr,
    /// The admin listener (`/metrics`), if configured.
    pub admin_addr: Option<SocketAddr>,
    /// The issuer (the customer listener's base URL).
    pub issuer: String,
    /// The TPP API's base URL.
    pub api_base: String,
    /// The bank's stores (for administration and tests).
    pub stores: Stores,
    /// The scheme trust store the TPP listener verifies against.
    pub trust: Arc<TrustStore>,
    state: Arc<BankState>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningBank {
    /// Stops accepting connections, lets requests in flight finish (up to
    /// the configured drain deadline), and signs a final checkpoint of the
    /// audit chain.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        self.state.checkpoint().await;
    }

    /// The TPP registry (onboarding, revocation).
    pub fn registry(&self) -> crate::registry::Registry {
        self.state.registry.clone()
    }

    /// The core's fault injection (latency, failure rate), adjustable
    /// while the bank runs.
    pub fn faults(&self) -> &FaultInjection<Arc<dyn CoreBanking>> {
        &self.state.faults
    }

    /// Signs a checkpoint of the audit chain now.
    pub async fn checkpoint(&self) {
        self.state.checkpoint().await;
    }

    /// Resolves now the payment reservations whose submissions can no
    /// longer be running (the background task does it every 10 s).
    pub async fn reconcile_payments(&self) {
        reconcile_pending(&self.state).await;
    }
}

/// Starts the bank from `config` with the system clock.
///
/// # Errors
/// [`StartError`].
pub async fn start(config: &BankConfig) -> Result<RunningBank, StartError> {
    start_with_clock(config, Arc::new(SystemClock)).await
}

/// Starts the bank from `config` reading time from `clock`: binds the
/// listeners (their ports go into the issuer and API URLs unless the
/// configuration gives the public ones), builds the
/// application and serves it.
///
/// # Errors
/// [`StartError`].
pub async fn start_with_clock(
    config: &BankConfig,
    clock: Arc<dyn Clock>,
) -> Result<RunningBank, StartError> {
    let api = bind(config.api_listen).await?;
    let customer = bind(config.customer_listen).await?;
    let admin = match config.admin_listen {
        Some(a) => Some(bind(a).await?),
        None => None,
    };
    let api_addr = api.local_addr().map_err(config_err)?;
    let customer_addr = customer.local_addr().map_err(config_err)?;
    let admin_addr = admin
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()
        .map_err(config_err)?;
    let issuer = config
        .public_issuer
        .clone()
        .unwrap_or_else(|| format!("https://{}:{}", config.public_host, customer_addr.port()));
    let api_base = config
        .public_api_base
        .clone()
        .unwrap_or_else(|| format!("https://{}:{}", config.public_host, api_addr.port()));
    let apps = build(config, clock, &issuer, &api_base)?;

    let (shutdown, rx) = watch::channel(false);
    let limits = config.listeners;
    let drain = Duration::from_millis(limits.drain_timeout_ms);
    let mut tasks = vec![
        tokio::spawn(tls::serve(
            api,
            Some(apps.api_tls),
            apps.api,
            limits.api,
            "api",
            drain,
            rx.clone(),
        )),
        tokio::spawn(tls::serve(
            customer,
            Some(apps.customer_tls),
            apps.customer,
            limits.customer,
            "customer",
            drain,
            rx.clone(),
        )),
    ];
    if let Some(admin) = admin {
        tasks.push(tokio::spawn(tls::serve(
            admin,
            None,
            apps.admin,
            limits.admin,
            "admin",
            drain,
            rx.clone(),
        )));
    }
    apps.state.publish_crl_next_update();
    tasks.push(tokio::spawn(refresh_keys(
        apps.state.clone(),
        Duration::from_millis(config.signing_keys.refresh_ms.max(10)),
        rx.clone(),
    )));
    tasks.push(tokio::spawn(sweeps(apps.state.clone(), rx.clone())));
    tasks.push(tokio::spawn(checkpoints(apps.state.clone(), rx)));
    tracing::info!(%api_addr, %customer_addr, %issuer, "bank started");
    Ok(RunningBank {
        api_addr,
        customer_addr,
        admin_addr,
        issuer,
        api_base,
        stores: apps.stores,
        trust: apps.trust,
        state: apps.state,
        shutdown,
        tasks,
    })
}

/// How often the running bank signs a checkpoint of the audit chain.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(60);

/// Re-reads the signing-key schedule every `every`, so a rotation made by
/// `bank keys rotate` (or on another instance) is published here before
/// its key signs.
async fn refresh_keys(state: Arc<BankState>, every: Duration, mut shutdown: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(every);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {
                if let Err(e) = state.keys.refresh(state.now()).await {
                    tracing::error!(error = %e, "signing-key schedule could not be read; keeping the keys in force");
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// How often expired rows are swept, and how much per table and sweep
/// (500-row statements, at most 50 per table: 25,000 rows a table every
/// 10 s, far above what the flows write).
const SWEEP_EVERY: Duration = Duration::from_secs(10);
const SWEEP_BATCH: u32 = 500;
const SWEEP_ROUNDS: u32 = 50;

/// Deletes expired rows in the background (on the store's threads), so no
/// request path ever deletes by expiry.
async fn sweeps(state: Arc<BankState>, mut shutdown: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {
                match state.housekeeping.sweep_expired(state.now(), SWEEP_BATCH, SWEEP_ROUNDS).await {
                    Ok(swept) => observe::swept(&swept),
                    Err(e) => tracing::warn!(error = %fapi_core::store::ErrorChain(&e), "expired rows could not be swept"),
                }
                reconcile_pending(&state).await;
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// Resolves every payment reservation whose submission can no longer be
/// running (at start-up: those a crash left; later: those whose client
/// went away during a core timeout), so none stays pending longer than
/// the core timeout plus one sweep period.
async fn reconcile_pending(state: &BankState) {
    let pending = match state.consents.pending_payments().await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %fapi_core::store::ErrorChain(&e), "pending payments could not be listed");
            return;
        }
    };
    for id in pending {
        match resources::reconcile(state, &id).await {
            Ok(true) => tracing::info!(consent_id = %id.as_str(), "pending payment reconciled"),
            Ok(false) => {}
            Err(_) => {
                tracing::warn!(consent_id = %id.as_str(), "pending payment could not be reconciled")
            }
        }
    }
}

async fn checkpoints(state: Arc<BankState>, mut shutdown: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(CHECKPOINT_EVERY);
    every.tick().await; // the first tick is immediate
    loop {
        tokio::select! {
            _ = every.tick() => {
                state.checkpoint().await;
                state.publish_crl_next_update();
                state.limiter.sweep();
                state.customer_limiter.sweep();
                if let Err(e) = state.login_attempts.sweep(state.now()).await {
                    tracing::warn!(error = %fapi_core::store::ErrorChain(&e), "login attempts could not be swept");
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

impl BankState {
    /// Exports the soonest nextUpdate of the CRLs in force (refreshed each
    /// minute, so an activated bundle shows up).
    fn publish_crl_next_update(&self) {
        if let Some(next) = self.trust.current().crl_next_update() {
            // seconds since the epoch fit an f64 exactly for any real date
            #[allow(clippy::cast_precision_loss)]
            let secs = next.as_secs() as f64;
            metrics::gauge!("fapi_crl_next_update_timestamp_seconds").set(secs);
        }
    }

    async fn checkpoint(&self) {
        let ring = self.ring();
        match audit::write_checkpoint(
            &*self.audit,
            &*self.checkpoints,
            &*ring.key,
            &ring.kid,
            self.now(),
        )
        .await
        {
            Ok(Some(seq)) => tracing::info!(seq, "audit checkpoint signed"),
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "audit checkpoint failed"),
        }
    }
}

/// The bank's applications, ready to serve (or to call in-process with
/// `tower::ServiceExt::oneshot`, adding a
/// [`ConnectionInfo`](tls::ConnectionInfo) extension as the TLS accept
/// loop does).
#[derive(Debug)]
pub struct BankApps {
    /// The TPP API router.
    pub api: axum::Router,
    /// The customer pages router.
    pub customer: axum::Router,
    /// The admin router (`/metrics`).
    pub admin: axum::Router,
    /// The TPP listener's TLS (client certificate required).
    pub api_tls: Arc<rustls::ServerConfig>,
    /// The customer listener's TLS.
    pub customer_tls: Arc<rustls::ServerConfig>,
    /// The stores.
    pub stores: Stores,
    /// The scheme trust store.
    pub trust: Arc<TrustStore>,
    state: Arc<BankState>,
}

impl BankApps {
    /// The TPP registry (onboarding, revocation).
    pub fn registry(&self) -> crate::registry::Registry {
        self.state.registry.clone()
    }
}

/// Builds the bank for `issuer` (the customer pages' base URL) and
/// `api_base` (the TPP API's base URL).
///
/// # Errors
/// [`StartError::Config`].
pub fn build(
    config: &BankConfig,
    clock: Arc<dyn Clock>,
    issuer_url: &str,
    api_base: &str,
) -> Result<BankApps, StartError> {
    build_with_core(
        config,
        clock,
        issuer_url,
        api_base,
        |ledger| ledger,
        |consents| consents,
    )
}

/// [`build`], with the core the handlers call made from the ledger (with
/// its fault flags) by `core_of`, and the consent store the gate and the
/// handlers use made from the database by `consents_of`: a model test puts
/// a scripted core and a store that fails on demand in front of them.
pub(crate) fn build_with_core(
    config: &BankConfig,
    clock: Arc<dyn Clock>,
    issuer_url: &str,
    api_base: &str,
    core_of: impl FnOnce(Arc<FaultInjection<Arc<dyn CoreBanking>>>) -> Arc<dyn CoreBanking>,
    consents_of: impl FnOnce(Arc<dyn fapi_consent::ConsentStore>) -> Arc<dyn fapi_consent::ConsentStore>,
) -> Result<BankApps, StartError> {
    let provider = fapi_core::crypto::default_provider();
    let dir = &config.data_dir;
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(dir.join(p))
            .map_err(|e| StartError::Config(format!("{}: {e}", dir.join(p).display())))
    };
    let profile = config.profile()?;

    let trust = Arc::new(config.scheme_trust(clock.now())?);

    let issuer = Issuer::try_from(issuer_url).map_err(config_err)?;
    let api_base = api_base.to_owned();
    // the store chosen by configuration, one trait object per kind of
    // state (the only place the bank opens it)
    let stores = crate::stores::open(config)?;
    // the core's ledger lives in the store: balances and bookings survive
    // a restart; a configured account is opened once
    stores.open_accounts(&config.customers, clock.now())?;
    let faults = Arc::new(FaultInjection::new(
        stores.ledger.clone(),
        Duration::from_millis(config.core.latency_ms),
        config.core.fail_rate,
    ));
    let core = core_of(faults.clone());
    let consents = consents_of(stores.consents.clone());
    let audit = stores.audit.clone();
    let registry = crate::registry::Registry::new(stores.registry.clone());
    let clients = Arc::new(MetadataCache::new(provider.clone(), profile));
    // keys (through the key source; never logged), on the schedule the
    // store holds
    let signing_keys = keys::SigningKeys::open(
        config,
        stores.signing_keys.clone(),
        provider.clone(),
        issuer.clone(),
        api_base.clone(),
        clock.now(),
    )?;
    let state = Arc::new(BankState {
        profile,
        consent_model: config.consent_model,
        self_signed_clients: config.self_signed_clients,
        scheme_directory: register::Directory {
            keys: Arc::new(config.directory_keys(&*provider)?),
            issuer: config.directory_issuer.clone(),
            provider: provider.clone(),
            jwks_endpoints: Arc::new(config.jwks_endpoints()?),
        },
        clock,
        issuer: issuer.clone(),
        api_base: api_base.clone(),
        keys: signing_keys,
        login_attempts: stores.login_attempts.clone(),
        checkpoints: stores.checkpoints.clone(),
        housekeeping: stores.housekeeping.clone(),
        par_config: fapi_par::ParConfig::new(profile, issuer.clone()),
        par: stores.pushed_requests(
            fapi_par::ParConfig::new(profile, issuer.clone()),
            Arc::new(crate::registry::CurrentRegistrations {
                registry: registry.clone(),
                metadata: clients.clone(),
            }),
        ),
        consents: consents.clone(),
        audit: audit.clone(),
        idempotency: stores.idempotency.clone(),
        replay: stores.replay.clone(),
        directory: stores.registry.clone(),
        codes: stores.codes.clone(),
        revoked: stores.revoked.clone(),
        refreshes: stores.refreshes.clone(),
        payments: stores.payments.clone(),
        live: stores.live.clone(),
        registry,
        trust: trust.clone(),
        clients,
        gate: ConsentGate::new(consents).with_audit(audit),
        core,
        faults,
        breaker: CircuitBreaker::new(5, 30),
        core_timeout: Duration::from_millis(config.core.timeout_ms),
        core_lanes: CoreLanes::new(&config.bulkheads),
        aisp_bulkhead: Arc::new(tokio::sync::Semaphore::new(
            config.bulkheads.accounts_in_flight.max(1),
        )),
        pisp_bulkhead: Arc::new(tokio::sync::Semaphore::new(
            config.bulkheads.payments_in_flight.max(1),
        )),
        customers: config.customers.clone(),
        sessions: Mutex::new(HashMap::new()),
        limiter: observe::ClientRateLimiter::new(config.rate_limit_per_second),
        customer_limiter: observe::KeyedRateLimiter::new(config.customer_rate_limit_per_second),
        metrics: observe::Metrics::install()?,
    });

    let server_certs = pem_certificates(&read(&config.server_certificate)?)?;
    let server_key = FileKeySource::new(dir, provider.clone())
        .tls_private_key(&config.server_key)
        .map_err(config_err)?;
    let api_tls = tls::api_server_config(
        server_certs.clone(),
        server_key.clone_key(),
        trust.clone(),
        config.self_signed_clients,
    )
    .map_err(config_err)?;
    let customer_tls = tls::customer_server_config(server_certs, server_key).map_err(config_err)?;

    Ok(BankApps {
        api: resources::api_router(state.clone(), config.listeners.api.request_timeout()),
        customer: customer::router(state.clone(), config.listeners.customer.request_timeout()),
        admin: observe::admin_router(
            state.clone(),
            config.listeners.admin.request_timeout(),
            config.core.fault_control,
        ),
        api_tls,
        customer_tls,
        stores,
        trust,
        state,
    })
}

impl BankConfig {
    fn read(&self, p: &std::path::Path) -> Result<String, StartError> {
        let path = self.data_dir.join(p);
        std::fs::read_to_string(&path)
            .map_err(|e| StartError::Config(format!("{}: {e}", path.display())))
    }

    /// The scheme trust store: the CA bundle and CRLs of this
    /// configuration, checked at `now` under fapi-mtls-binding's default
    /// chain and revocation policies (every client certificate covered by
    /// a current CRL of its issuer; the bank never runs without revocation
    /// checking).
    ///
    /// # Errors
    /// [`StartError::Config`], e.g. when no CRL is configured, a CRL is past
    /// its nextUpdate or a CA certificate is outside its validity.
    pub fn scheme_trust(&self, now: UnixTime) -> Result<TrustStore, StartError> {
        let anchors = pem_certificates(&self.read(&self.scheme_ca)?)?;
        let crls = self
            .crls
            .iter()
            .map(|p| pem_crl(&self.read(p)?))
            .collect::<Result<Vec<_>, _>>()?;
        let anchor_refs: Vec<&[u8]> = anchors.iter().map(Vec::as_slice).collect();
        let crl_refs: Vec<&[u8]> = crls.iter().map(Vec::as_slice).collect();
        Ok(TrustStore::new(
            TrustBundle::builder(1)
                .anchors(&anchor_refs)
                .crls(&crl_refs)
                .build(now)
                .map_err(config_err)?,
        ))
    }

    /// Where dynamic registration may fetch TPPs' keys from
    /// (`directory_jwks_hosts`, trusting `directory_jwks_ca` or the scheme
    /// CA).
    ///
    /// # Errors
    /// [`StartError::Config`].
    pub fn jwks_endpoints(&self) -> Result<crate::registry::JwksEndpoints, StartError> {
        if self.directory_jwks_hosts.is_empty() {
            return Ok(crate::registry::JwksEndpoints::none());
        }
        let ca = self.read(self.directory_jwks_ca.as_ref().unwrap_or(&self.scheme_ca))?;
        crate::registry::JwksEndpoints::new(self.directory_jwks_hosts.clone(), &ca)
            .map_err(config_err)
    }

    /// The directory's keys, which sign software statements.
    ///
    /// # Errors
    /// [`StartError::Config`].
    pub fn directory_keys(&self, provider: &dyn CryptoProvider) -> Result<KeySet, StartError> {
        let jwks =
            JwkSet::from_json(self.read(&self.directory_jwks)?.as_bytes()).map_err(config_err)?;
        KeySet::from_jwks(&jwks, provider, &self.profile()?.key_policy()).map_err(config_err)
    }
}

/// `t` as an RFC 3339 date-time (UTC), as UK OB and the pages show times.
pub(crate) fn rfc3339(t: UnixTime) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp(t.as_secs())
        .ok()?
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen { addr, source })
}

/// The DER certificates in a PEM bundle (at least one).
///
/// # Errors
/// [`StartError::Config`].
pub fn pem_certificates(pem: &str) -> Result<Vec<Vec<u8>>, StartError> {
    use rustls_pki_types::pem::PemObject;
    let certs = rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(config_err)?;
    if certs.is_empty() {
        return Err(StartError::Config("no certificate in PEM file".into()));
    }
    Ok(certs)
}

fn pem_crl(pem: &str) -> Result<Vec<u8>, StartError> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateRevocationListDer::from_pem_slice(pem.as_bytes())
        .map(|c| c.to_vec())
        .map_err(config_err)
}
