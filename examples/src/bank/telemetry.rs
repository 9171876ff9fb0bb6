//! Logs to stderr, and OpenTelemetry traces over OTLP/HTTP when configured
//! (`otlp` in the configuration, or `bank serve --otlp-endpoint URL`; off
//! otherwise), so an operator's collector (the OpenTelemetry Collector,
//! Datadog, Dynatrace, Grafana Tempo...) receives the bank's spans.
//!
//! **One trace per flow.** Every request span carries the interaction id,
//! route, TPP (`client_id`), `consent_id` and `outcome` (the HTTP status).
//! Once a handler knows the consent a request belongs to (consent
//! creation, PAR, the authorization pages, the token exchange, each
//! resource call), the span joins that consent's trace: its parent is the
//! flow context derived from the consent id (trace id: the first 16 bytes
//! of SHA-256(`"fapi-flow-trace:" || consent_id`), parent span id: the next
//! 8). Any instance derives the same ids, so a flow served by several
//! instances is still one trace, with nothing shared between them; the
//! consent id is not a secret (the TPP holds it), and neither is a hash
//! of it. A request that names no consent (discovery, a refused token) is
//! a trace of its own.

use std::time::Duration;

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider,
};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// Where the bank sends its traces.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// The collector's OTLP/HTTP traces URL, e.g.
    /// `http://127.0.0.1:4318/v1/traces` (binary protobuf).
    pub endpoint: String,
    /// `service.name` of the bank's spans.
    #[serde(default = "default_service")]
    pub service_name: String,
    /// CA bundle (PEM) for an `https` endpoint.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// Deadline of one export (milliseconds).
    #[serde(default = "default_export_timeout")]
    pub timeout_ms: u64,
}

fn default_service() -> String {
    "fapi-bank".into()
}

fn default_export_timeout() -> u64 {
    10_000
}

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP configuration is unusable.
    #[error("otlp: {0}")]
    Config(String),
    /// A global subscriber is already installed.
    #[error("a tracing subscriber is already installed")]
    AlreadyInstalled,
}

/// The installed telemetry: flush or shut it down before the process ends
/// so the last spans reach the collector.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether traces are exported.
    pub fn exports_traces(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports every finished span now (blocks; call it off the async
    /// runtime's worker threads, e.g. in `spawn_blocking`).
    pub fn flush(&self) {
        if let Some(p) = &self.provider {
            if let Err(e) = p.force_flush() {
                tracing::warn!(error = %e, "otlp: spans could not be flushed");
            }
        }
    }

    /// Flushes and stops the exporter (blocks, as [`Self::flush`]).
    pub fn shutdown(self) {
        if let Some(p) = self.provider {
            if let Err(e) = p.shutdown() {
                tracing::warn!(error = %e, "otlp: exporter did not shut down cleanly");
            }
        }
    }
}

/// Installs the process's tracing subscriber: logs to stderr filtered by
/// `RUST_LOG` (default `info`), and, with `otlp`, spans exported over
/// OTLP/HTTP by a batch exporter. Call it inside the Tokio runtime that
/// serves the bank: exports run on it.
///
/// # Errors
/// [`TelemetryError`].
pub fn install(otlp: Option<&OtlpConfig>) -> Result<Telemetry, TelemetryError> {
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
    };
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(filter());
    let Some(otlp) = otlp else {
        tracing_subscriber::registry()
            .with(fmt)
            .try_init()
            .map_err(|_| TelemetryError::AlreadyInstalled)?;
        return Ok(Telemetry { provider: None });
    };
    let provider = tracer_provider(otlp)?;
    let otel = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("fapi-bank"))
        // spans are not started when entered, so a handler can still put
        // its request span into the flow's trace once it knows the consent
        .with_context_activation(false)
        // the bank's own spans only: not those of the HTTP stack, nor of
        // the exporter's own requests
        .with_filter(tracing_subscriber::filter::filter_fn(|m| {
            m.is_span() && m.target().starts_with(env!("CARGO_CRATE_NAME"))
        }));
    tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init()
        .map_err(|_| TelemetryError::AlreadyInstalled)?;
    Ok(Telemetry {
        provider: Some(provider),
    })
}

fn tracer_provider(otlp: &OtlpConfig) -> Result<SdkTracerProvider, TelemetryError> {
    let bad = |e: &dyn std::fmt::Display| TelemetryError::Config(e.to_string());
    let url = url::Url::parse(&otlp.endpoint).map_err(|e| bad(&e))?;
    let timeout = Duration::from_millis(otlp.timeout_ms.max(1));
    let client = match (url.scheme(), &otlp.ca_file) {
        ("http", None) => reqwest::Client::builder()
            .use_preconfigured_tls(tls_config(None)?)
            .timeout(timeout)
            .build(),
        ("https", Some(ca)) => reqwest::Client::builder()
            .use_preconfigured_tls(tls_config(Some(ca))?)
            .https_only(true)
            .timeout(timeout)
            .build(),
        ("https", None) => {
            return Err(TelemetryError::Config(
                "an https endpoint needs ca_file (the collector's CA)".into(),
            ))
        }
        (scheme, _) => {
            return Err(TelemetryError::Config(format!(
                "endpoint scheme {scheme:?} is not http or https"
            )))
        }
    }
    .map_err(|e| bad(&e))?;
    let runtime = tokio::runtime::Handle::try_current().map_err(|e| bad(&e))?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(otlp.endpoint.clone())
        .with_timeout(timeout)
        .with_http_client(OnRuntime { client, runtime })
        .build()
        .map_err(|e| bad(&e))?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(otlp.service_name.clone())
                .build(),
        )
        .build())
}

fn tls_config(ca: Option<&std::path::Path>) -> Result<rustls::ClientConfig, TelemetryError> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    if let Some(ca) = ca {
        let pem = std::fs::read(ca)
            .map_err(|e| TelemetryError::Config(format!("{}: {e}", ca.display())))?;
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
            let cert =
                cert.map_err(|e| TelemetryError::Config(format!("{}: {e}", ca.display())))?;
            roots
                .add(cert)
                .map_err(|e| TelemetryError::Config(format!("{}: {e}", ca.display())))?;
        }
    }
    rustls::ClientConfig::builder_with_provider(super::tls::fapi_crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TelemetryError::Config(e.to_string()))
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
}

/// The OTLP exporter's HTTP client: the batch exporter runs on its own
/// thread, the request runs on the bank's runtime (reqwest needs one).
#[derive(Debug)]
struct OnRuntime {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for OnRuntime {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let client = self.client.clone();
        let (parts, body) = request.into_parts();
        self.runtime
            .spawn(async move {
                let response = client
                    .request(parts.method, parts.uri.to_string())
                    .headers(parts.headers)
                    .body(body)
                    .send()
                    .await?;
                let mut out = http::Response::builder().status(response.status());
                if let Some(h) = out.headers_mut() {
                    *h = response.headers().clone();
                }
                // the collector's answer is small; never read more than 64 KiB
                let body = response.bytes().await?;
                let body = body.slice(..body.len().min(64 * 1024));
                Ok(out.body(body)?)
            })
            .await?
    }
}

/// The trace context of the flow of `consent_id` (see the module docs).
pub(crate) fn flow_context(consent_id: &str) -> opentelemetry::Context {
    let digest = Sha256::new()
        .chain_update(b"fapi-flow-trace:")
        .chain_update(consent_id.as_bytes())
        .finalize();
    let mut trace = [0u8; 16];
    let mut span = [0u8; 8];
    trace.copy_from_slice(digest.get(..16).unwrap_or(&[1; 16]));
    span.copy_from_slice(digest.get(16..24).unwrap_or(&[1; 8]));
    let cx = SpanContext::new(
        TraceId::from_bytes(trace),
        SpanId::from_bytes(span),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    opentelemetry::Context::new().with_remote_span_context(cx)
}

/// Records `consent_id` and its TPP on the current request span and puts
/// the span into that consent's trace. Without the OpenTelemetry layer
/// (traces off) only the fields are recorded.
pub(crate) fn join_flow(consent_id: &str, client_id: &str) {
    let span = tracing::Span::current();
    span.record("consent_id", consent_id);
    span.record("client_id", client_id);
    // fails only when traces are off, or the span was already exported
    let _unjoined = span.set_parent(flow_context(consent_id));
}
