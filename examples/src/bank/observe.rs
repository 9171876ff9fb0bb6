//! Observability and traffic control around the handlers:
//!
//! - `x-fapi-interaction-id`: echoed when the TPP sent a UUID, minted
//!   otherwise; on every response and in the request's `tracing` span
//!   (with client id, consent id and outcome recorded by the handlers);
//! - Prometheus metrics on the admin listener: requests and latency per
//!   client and route, consent grants and revocations, authentication
//!   failures by reason (certificate-binding mismatches counted apart),
//!   payment outcomes;
//! - a per-client rate limit (governor) keyed by the TLS client
//!   certificate, answering 429 with `Retry-After`.

use std::num::NonZeroU32;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use governor::clock::{Clock as _, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing::Instrument;

use super::tls::ConnectionInfo;
use super::{BankState, StartError};

/// The interaction-id header.
pub(crate) const INTERACTION_ID: HeaderName = HeaderName::from_static("x-fapi-interaction-id");

/// The request's interaction id (a request extension).
#[derive(Clone, Debug)]
pub(crate) struct InteractionId(pub(crate) String);

/// The client a handler authenticated (a response extension, for metrics).
#[derive(Clone, Debug)]
pub(crate) struct ClientLabel(pub(crate) String);

/// The process's Prometheus recorder (one per process: banks started in
/// one test process share it).
#[derive(Clone, Debug)]
pub(crate) struct Metrics {
    handle: PrometheusHandle,
}

static RECORDER: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

/// The kind of an exported metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    /// A counter.
    Counter,
    /// A gauge.
    Gauge,
    /// A histogram.
    Histogram,
}

/// Every metric the bank exports, with its help text. Each is described
/// and registered when the recorder is installed, so dashboards and alert
/// rules (`examples/ops/`) find every one from the first scrape; a test
/// holds those files to this list.
pub const EXPORTED: &[(&str, MetricKind, &str)] = &[
    ("fapi_requests_total", MetricKind::Counter, "Requests by client, route and status."),
    ("fapi_request_duration_seconds", MetricKind::Histogram, "Request latency by client and route."),
    ("fapi_auth_failures_total", MetricKind::Counter, "Authentication and authorization failures by reason (cnf_mismatch: a token presented with another certificate)."),
    ("fapi_consent_events_total", MetricKind::Counter, "Consent lifecycle events: granted, rejected, revoked."),
    ("fapi_payments_total", MetricKind::Counter, "Payment outcomes: accepted, refused, core_unavailable."),
    ("fapi_login_attempts_total", MetricKind::Counter, "Customer logins by outcome: success, failure, throttled."),
    ("fapi_login_throttled_total", MetricKind::Counter, "Logins refused by throttling, by scope (customer, address)."),
    ("fapi_customer_rate_limited_total", MetricKind::Counter, "Customer-page requests refused by the per-address rate limit."),
    ("fapi_bulkhead_rejected_total", MetricKind::Counter, "Requests refused because their kind's in-flight budget was full."),
    ("fapi_core_lane_exhausted_total", MetricKind::Counter, "Core calls that found no share of their lane's capacity in time."),
    ("fapi_core_breaker_open", MetricKind::Gauge, "1 while the core-banking circuit breaker is open."),
    ("fapi_crl_next_update_timestamp_seconds", MetricKind::Gauge, "The soonest nextUpdate of the scheme CRLs in force (Unix seconds)."),
    ("fapi_connections_refused_total", MetricKind::Counter, "Connections closed on accept by listener and reason (listener_full, peer_share)."),
    ("fapi_accept_errors_total", MetricKind::Counter, "Failed accept() calls by listener (e.g. out of descriptors)."),
    ("fapi_open_connections", MetricKind::Gauge, "Connections open by listener."),
    ("fapi_store_swept_total", MetricKind::Counter, "Expired rows deleted by the background sweep, by table."),
];

/// Describes and registers every metric of [`EXPORTED`] (once per
/// process: banks started in one test process share the recorder).
fn describe_all() {
    static DESCRIBED: std::sync::Once = std::sync::Once::new();
    DESCRIBED.call_once(|| {
        for (name, kind, help) in EXPORTED {
            match kind {
                MetricKind::Counter => {
                    metrics::describe_counter!(*name, *help);
                    metrics::counter!(*name).increment(0);
                }
                MetricKind::Gauge => {
                    metrics::describe_gauge!(*name, *help);
                    metrics::gauge!(*name).increment(0.0);
                }
                MetricKind::Histogram => {
                    metrics::describe_histogram!(*name, *help);
                    let _registered = metrics::histogram!(*name);
                }
            }
        }
    });
}

impl Metrics {
    pub(crate) fn install() -> Result<Self, StartError> {
        let handle = RECORDER
            .get_or_init(|| {
                PrometheusBuilder::new()
                    .set_buckets(&[
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                    ])
                    .and_then(PrometheusBuilder::install_recorder)
                    .map_err(|e| e.to_string())
            })
            .clone()
            .map_err(StartError::Config)?;
        describe_all();
        Ok(Self { handle })
    }

    fn render(&self) -> String {
        self.handle.render()
    }
}

/// Counts an authentication or authorization failure by reason.
pub(crate) fn auth_failure(reason: &'static str) {
    metrics::counter!("fapi_auth_failures_total", "reason" => reason).increment(1);
}

/// Counts a consent lifecycle event (`granted`, `rejected`, `revoked`).
pub(crate) fn consent_event(kind: &'static str) {
    metrics::counter!("fapi_consent_events_total", "event" => kind).increment(1);
}

/// Counts a customer login attempt (`success`, `failure`, `throttled`).
pub(crate) fn login_attempt(outcome: &'static str) {
    metrics::counter!("fapi_login_attempts_total", "outcome" => outcome).increment(1);
}

/// Counts a payment outcome (`accepted`, `refused`, `core_unavailable`).
pub(crate) fn payment(outcome: &'static str) {
    metrics::counter!("fapi_payments_total", "outcome" => outcome).increment(1);
}

/// A rate limiter per key: the client certificate's thumbprint on the TPP
/// API, the peer address on the customer pages.
pub(crate) struct KeyedRateLimiter<K: std::hash::Hash + Eq + Clone> {
    limiter: Option<RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>>,
}

/// The TPP API's limiter, keyed by the client certificate's `x5t#S256`.
pub(crate) type ClientRateLimiter = KeyedRateLimiter<[u8; 32]>;

impl<K: std::hash::Hash + Eq + Clone> std::fmt::Debug for KeyedRateLimiter<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedRateLimiter")
            .field("enabled", &self.limiter.is_some())
            .finish()
    }
}

impl<K: std::hash::Hash + Eq + Clone> KeyedRateLimiter<K> {
    /// `per_second` requests per second per key with the same burst; 0
    /// disables the limit.
    pub(crate) fn new(per_second: u32) -> Self {
        Self {
            limiter: NonZeroU32::new(per_second).map(|n| RateLimiter::keyed(Quota::per_second(n))),
        }
    }

    /// `Ok` or the whole seconds to wait.
    fn check(&self, key: &K) -> Result<(), u64> {
        match &self.limiter {
            None => Ok(()),
            Some(l) => l.check_key(key).map_err(|not_until| {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
            }),
        }
    }

    /// Forgets keys whose limit has fully recovered, so a stream of new
    /// keys (addresses) cannot grow the table without bound.
    pub(crate) fn sweep(&self) {
        if let Some(l) = &self.limiter {
            l.retain_recent();
        }
    }
}

/// A `Retry-After` of `secs` (at least 1) on `r`.
fn retry_after(mut r: Response, secs: u64) -> Response {
    if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
        r.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
    }
    r
}

/// Mints an interaction id (a version-4 UUID).
fn mint_uuid() -> String {
    fapi_core::random::uuid_v4()
        .unwrap_or_else(|_| String::from("00000000-0000-4000-8000-000000000000"))
}

/// Whether `s` is a UUID in canonical text form (what the TPP may send).
fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// The injected faults, as `/core/faults` reads and writes them.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Faults {
    #[serde(default)]
    latency_ms: Option<u64>,
    #[serde(default)]
    fail_rate: Option<f64>,
    /// Book the next payment but lose its answer (write only).
    #[serde(default, skip_serializing)]
    lose_next_payment_reply: bool,
}

fn current_faults(s: &BankState) -> axum::Json<Faults> {
    axum::Json(Faults {
        latency_ms: Some(u64::try_from(s.faults.latency().as_millis()).unwrap_or(u64::MAX)),
        fail_rate: Some(s.faults.fail_rate()),
        lose_next_payment_reply: false,
    })
}

async fn get_faults(State(s): State<Arc<BankState>>) -> axum::Json<Faults> {
    current_faults(&s)
}

/// `PUT /core/faults` (only with `core.fault_control`): changes the
/// injected faults now; absent fields stay as they are.
async fn put_faults(
    State(s): State<Arc<BankState>>,
    axum::Json(f): axum::Json<Faults>,
) -> axum::Json<Faults> {
    if let Some(ms) = f.latency_ms {
        s.faults.set_latency(std::time::Duration::from_millis(ms));
    }
    if let Some(rate) = f.fail_rate {
        s.faults.set_fail_rate(rate);
    }
    if f.lose_next_payment_reply {
        s.faults.lose_next_payment_reply();
    }
    tracing::warn!(latency_ms = ?f.latency_ms, fail_rate = ?f.fail_rate, lose_next_payment_reply = f.lose_next_payment_reply, "core faults changed through the admin listener");
    current_faults(&s)
}

/// Counts what a background sweep deleted.
pub(crate) fn swept(swept: &super::tables::Swept) {
    for (table, n) in swept {
        metrics::counter!("fapi_store_swept_total", "table" => *table).increment(*n as u64);
    }
}

/// Interaction id, tracing span, per-client metrics: wraps every route.
pub(crate) async fn observe(mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = req
        .headers()
        .get(&INTERACTION_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_uuid(v))
        .map_or_else(mint_uuid, str::to_owned);
    req.extensions_mut().insert(InteractionId(id.clone()));
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let span = tracing::info_span!(
        "request",
        interaction_id = %id,
        method = %req.method(),
        route = %route,
        client_id = tracing::field::Empty,
        consent_id = tracing::field::Empty,
        outcome = tracing::field::Empty,
    );
    let mut response = next.run(req).instrument(span.clone()).await;
    let status = response.status();
    span.record("outcome", i64::from(status.as_u16()));
    let client = response
        .extensions()
        .get::<ClientLabel>()
        .map_or_else(|| "-".to_owned(), |c| c.0.clone());
    metrics::counter!("fapi_requests_total", "client" => client.clone(), "route" => route.clone(), "status" => status.as_u16().to_string()).increment(1);
    metrics::histogram!("fapi_request_duration_seconds", "client" => client, "route" => route)
        .record(started.elapsed().as_secs_f64());
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(INTERACTION_ID, v);
    }
    span.in_scope(|| tracing::info!(status = status.as_u16(), "done"));
    response
}

/// The per-client rate limit on the TPP listener, keyed by the TLS client
/// certificate (present on every connection there).
pub(crate) async fn rate_limit(
    State(state): State<Arc<BankState>>,
    req: Request,
    next: Next,
) -> Response {
    // the certificate's x5t#S256, computed once per connection
    let key = req
        .extensions()
        .get::<ConnectionInfo>()
        .and_then(|c| {
            c.presented()
                .map(|p| *p.certificate().thumbprint())
                .or_else(|| {
                    c.peer_certificate
                        .as_deref()
                        .map(|der| fapi_core::CertificateThumbprint::of_der(der))
                })
        })
        .map(|t| *t.as_bytes());
    if let Some(key) = key {
        if let Err(wait) = state.limiter.check(&key) {
            auth_failure("rate_limited");
            let message = "too many requests from this client; retry after the Retry-After delay";
            let r = if super::errors::is_oauth_endpoint(req.uri().path()) {
                super::errors::OAuthFailure::new(
                    fapi_core::ErrorCode::TemporarilyUnavailable,
                    message,
                )
                .with_status(StatusCode::TOO_MANY_REQUESTS)
                .into_response()
            } else {
                super::errors::ObError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "UK.OBIE.UnexpectedError",
                    message,
                )
                .into_response()
            };
            let conn = req.extensions().get::<ConnectionInfo>().cloned();
            return labelled_by_certificate(&state, retry_after(r, wait), &key, conn.as_ref())
                .await;
        }
    }
    let conn = req.extensions().get::<ConnectionInfo>().cloned();
    let response = next.run(req).await;
    match key {
        Some(key) => labelled_by_certificate(&state, response, &key, conn.as_ref()).await,
        None => response,
    }
}

/// A response no handler labelled (a refused call: bad token, another
/// client's token, rate-limited) counts against the client registered
/// with the connection's certificate, so per-TPP errors are per TPP;
/// an unregistered certificate counts as `unregistered`. Read only on
/// that path, and once per connection (`conn` keeps it: a metrics label
/// needs no live read, and a database round trip per unlabelled call would
/// be most of the cost of a call to `/jwks`); the label is always a
/// registered client id or a constant.
async fn labelled_by_certificate(
    state: &BankState,
    mut response: Response,
    thumbprint: &[u8; 32],
    conn: Option<&ConnectionInfo>,
) -> Response {
    if response.extensions().get::<ClientLabel>().is_none() {
        let label = match conn.and_then(ConnectionInfo::metrics_label) {
            Some(kept) => kept.to_owned(),
            None => {
                let certificate = fapi_core::CertificateThumbprint::from_bytes(*thumbprint);
                let read = state.registry.client_id_by_certificate(&certificate).await;
                let label = match &read {
                    Ok(Some(id)) => id.as_str().to_owned(),
                    Ok(None) => "unregistered".to_owned(),
                    Err(_) => "-".to_owned(),
                };
                // a failed read is tried again on the next response
                if let (Ok(_), Some(conn)) = (read, conn) {
                    conn.keep_metrics_label(label.clone());
                }
                label
            }
        };
        response.extensions_mut().insert(ClientLabel(label));
    }
    response
}

/// A bulkhead: at most its permits' worth of requests of one kind in
/// flight; one more is answered 503 at once (UK OB body, `Retry-After`),
/// so a flood of one kind of call cannot starve another.
pub(crate) async fn bulkhead(
    State((permits, name)): State<(Arc<tokio::sync::Semaphore>, &'static str)>,
    req: Request,
    next: Next,
) -> Response {
    let Ok(_slot) = permits.try_acquire_owned() else {
        metrics::counter!("fapi_bulkhead_rejected_total", "bulkhead" => name).increment(1);
        let r = super::errors::ObError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "UK.OBIE.UnexpectedError",
            "the bank is busy with other requests of this kind; retry shortly",
        )
        .into_response();
        return retry_after(r, 1);
    };
    next.run(req).await
}

/// The customer pages' rate limit, per peer address: 429 with an HTML
/// page and `Retry-After`.
pub(crate) async fn customer_rate_limit(
    State(state): State<Arc<BankState>>,
    req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectionInfo>()
        .map(|c| c.remote.ip());
    if let Some(peer) = peer {
        if let Err(wait) = state.customer_limiter.check(&peer) {
            metrics::counter!("fapi_customer_rate_limited_total").increment(1);
            let page = super::customer::error_page(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests from your network. Wait a moment, then try again.",
            );
            return retry_after(page, wait);
        }
    }
    next.run(req).await
}

/// The admin router: `/metrics` in the Prometheus text format.
pub(crate) fn admin_router(
    state: Arc<BankState>,
    request_timeout: std::time::Duration,
    fault_control: bool,
) -> Router {
    let mut router = Router::new().route(
        "/metrics",
        get(|State(s): State<Arc<BankState>>| async move { s.metrics.render() }),
    );
    if fault_control {
        router = router.route("/core/faults", get(get_faults).put(put_faults));
    }
    router
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        .with_state(state)
}
