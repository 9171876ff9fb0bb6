//! TLS for the bank's listeners (rustls on aws-lc-rs) and the accept loop
//! that hands each request its connection's verified client certificate.
//!
//! - Versions and suites per FAPI: TLS 1.3, or TLS 1.2 with only the four
//!   ECDHE + AES-GCM suites the FAPI profiles allow.
//! - The TPP listener requires a client certificate and verifies it with
//!   `fapi-mtls-binding`'s [`TrustStoreClientVerifier`] over the scheme
//!   [`TrustStore`] (the CA bundle, the clientAuth EKU, CRLs when
//!   configured): the bundle in force is read at each handshake, so a
//!   rotated bundle applies to the next connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use fapi_mtls_binding::resource::CertificateConnection;
use fapi_mtls_binding::tls::{restrict_to_fapi, TrustStoreClientVerifier, FAPI_PROTOCOL_VERSIONS};
use fapi_mtls_binding::trust::TrustStore;
use fapi_mtls_binding::PresentedCertificate;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use rustls::crypto::CryptoProvider;
use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::listener::{AcceptBackoff, Admission, ListenerLimits, LogGate};

/// rustls on aws-lc-rs, restricted to TLS 1.3 and the FAPI TLS 1.2
/// suites (fapi-mtls-binding's policy; used by the bank and the TPP alike).
pub fn fapi_crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(restrict_to_fapi(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
}

/// What a request knows about its connection.
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    /// The client certificate (DER) the TLS layer verified, if any.
    pub peer_certificate: Option<Arc<Vec<u8>>>,
    /// The same certificate parsed once for the connection (not per
    /// request), with the trust-bundle version it was last checked
    /// against (fapi-mtls-binding's resource chain re-checks it when the
    /// bundle changes).
    certificate: Arc<CertificateConnection>,
    /// The peer's address.
    pub remote: SocketAddr,
    /// The metrics label of the client the certificate is registered to,
    /// read once per connection (a label, never an authorization).
    label: Arc<std::sync::OnceLock<String>>,
}

impl ConnectionInfo {
    /// A connection from `remote` that presented `peer_certificate`.
    pub fn new(peer_certificate: Option<Arc<Vec<u8>>>, remote: SocketAddr) -> Self {
        Self::with_intermediates(peer_certificate, &[], remote)
    }

    /// A connection from `remote` that presented `peer_certificate` and,
    /// after it in the handshake, `intermediates` (kept so the chain is
    /// re-validated the same way when the trust bundle changes). A
    /// self-issued certificate sent alone is marked self-signed
    /// ([`CertificateConnection::self_signed`]): it is not chain-checked,
    /// and is the client's only as one the directory says it holds (for a
    /// `self_signed_tls_client_auth` client, after its key matched the
    /// registered JWKS). Only a listener that allows self-signed
    /// certificates lets one through the handshake.
    pub fn with_intermediates(
        peer_certificate: Option<Arc<Vec<u8>>>,
        intermediates: &[&[u8]],
        remote: SocketAddr,
    ) -> Self {
        let presented = peer_certificate.as_deref().and_then(|der| {
            PresentedCertificate::from_verified_tls_peer_chain(der, intermediates).ok()
        });
        let certificate = match presented {
            Some(p) if p.certificate().is_self_issued() && intermediates.is_empty() => {
                CertificateConnection::self_signed(p)
            }
            p => CertificateConnection::new(p),
        };
        Self {
            peer_certificate,
            certificate: Arc::new(certificate),
            remote,
            label: Arc::default(),
        }
    }

    /// The connection's verified client certificate as the proof of
    /// possession its requests present.
    pub fn presented(&self) -> Option<&PresentedCertificate> {
        self.certificate.presented()
    }

    /// The metrics label of the certificate's client, once read for this
    /// connection.
    pub(crate) fn metrics_label(&self) -> Option<&str> {
        self.label.get().map(String::as_str)
    }

    /// Keeps `label` for the connection's later responses.
    pub(crate) fn keep_metrics_label(&self, label: String) {
        let _ = self.label.set(label);
    }

    /// The connection as the resource chain checks it.
    pub fn certificate(&self) -> &CertificateConnection {
        &self.certificate
    }

    /// Verifies the connection's certificate against the bundle now active
    /// in `trust`, once per bundle version (the token endpoint's check; the
    /// resource chain runs the same one).
    ///
    /// # Errors
    /// [`fapi_mtls_binding::trust::TrustError`].
    pub fn check_trust(
        &self,
        trust: &TrustStore,
        now: fapi_core::UnixTime,
    ) -> Result<(), fapi_mtls_binding::trust::TrustError> {
        self.certificate.check_trust(trust, now)
    }
}

fn server_builder(
) -> Result<rustls::ConfigBuilder<ServerConfig, rustls::WantsVerifier>, rustls::Error> {
    ServerConfig::builder_with_provider(fapi_crypto_provider())
        .with_protocol_versions(FAPI_PROTOCOL_VERSIONS)
}

/// The TPP listener's TLS: client certificate required, verified against
/// `trust`; with `self_signed`, a self-signed certificate sent alone passes
/// too (for `self_signed_tls_client_auth` clients; the connection is
/// marked so, see [`ConnectionInfo::with_intermediates`]).
///
/// # Errors
/// A rustls configuration error (e.g. the key does not match).
pub fn api_server_config(
    chain: Vec<Vec<u8>>,
    key: PrivateKeyDer<'static>,
    trust: Arc<TrustStore>,
    self_signed: bool,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let mut verifier = TrustStoreClientVerifier::new(
        trust,
        fapi_crypto_provider().signature_verification_algorithms,
    )
    .on_refusal(Arc::new(|e| {
        tracing::info!(reason = %e, "client certificate refused in the handshake");
    }));
    if self_signed {
        verifier = verifier.allow_self_signed();
    }
    let mut config = server_builder()?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(chain.into_iter().map(CertificateDer::from).collect(), key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The customer listener's TLS: server authentication only.
///
/// # Errors
/// A rustls configuration error.
pub fn customer_server_config(
    chain: Vec<Vec<u8>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let mut config = server_builder()?
        .with_no_client_auth()
        .with_single_cert(chain.into_iter().map(CertificateDer::from).collect(), key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts connections on `listener` (TLS with `tls`, plain TCP without)
/// and serves `app` over HTTP/1.1 until `shutdown` turns true, within the
/// listener's [`ListenerLimits`] (see [`super::listener`]): at most
/// `max_connections` open (and `max_per_peer` from one address), deadlines
/// for the handshake and the headers (each router applies the whole-request
/// deadline itself, so its 408 has the router's error shape), and a
/// backoff when `accept()` fails for want of descriptors. Each request
/// carries a [`ConnectionInfo`] extension. On shutdown it stops accepting,
/// lets requests in flight finish for up to `drain`, then returns.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    app: Router,
    limits: ListenerLimits,
    name: &'static str,
    drain: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = tls.map(TlsAcceptor::from);
    let admission = Admission::new(&limits);
    let graceful = GracefulShutdown::new();
    let mut backoff = AcceptBackoff::new();
    let mut accept_log = LogGate::new(Duration::from_secs(5));
    let mut refusal_log = LogGate::new(Duration::from_secs(5));
    loop {
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => {
                    backoff.reset();
                    a
                }
                Err(e) => {
                    metrics::counter!("fapi_accept_errors_total", "listener" => name).increment(1);
                    let wait = backoff.after(&e);
                    if let Some(held_back) = accept_log.pass(Instant::now()) {
                        tracing::warn!(
                            listener = name,
                            error = %e,
                            held_back,
                            retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                            "accept failed"
                        );
                    }
                    if !wait.is_zero() {
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = shutdown.changed() => break,
                        }
                    }
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let slot = match admission.admit(remote.ip()) {
            Ok(slot) => slot,
            Err(refusal) => {
                metrics::counter!(
                    "fapi_connections_refused_total",
                    "listener" => name,
                    "reason" => refusal.label()
                )
                .increment(1);
                if let Some(held_back) = refusal_log.pass(Instant::now()) {
                    tracing::warn!(
                        listener = name,
                        reason = refusal.label(),
                        held_back,
                        "connection refused: limit reached"
                    );
                }
                drop(tcp);
                continue;
            }
        };
        metrics::gauge!("fapi_open_connections", "listener" => name).set(admission.open() as f64);
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        let app = app.clone();
        let admission = admission.clone();
        tokio::spawn(async move {
            match acceptor {
                Some(acceptor) => {
                    let stream = match tokio::time::timeout(
                        limits.handshake_timeout(),
                        acceptor.accept(tcp),
                    )
                    .await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%remote, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                    let chain = stream.get_ref().1.peer_certificates().unwrap_or_default();
                    let peer_certificate = chain.first().map(|c| Arc::new(c.to_vec()));
                    let intermediates: Vec<&[u8]> =
                        chain.iter().skip(1).map(|c| c.as_ref()).collect();
                    let info = ConnectionInfo::with_intermediates(
                        peer_certificate,
                        &intermediates,
                        remote,
                    );
                    serve_connection(stream, info, app, &limits, watcher).await;
                }
                None => {
                    let info = ConnectionInfo::new(None, remote);
                    serve_connection(tcp, info, app, &limits, watcher).await;
                }
            }
            drop(slot);
            metrics::gauge!("fapi_open_connections", "listener" => name)
                .set(admission.open() as f64);
        });
    }
    let in_flight = graceful.count();
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            listener = name,
            connections = in_flight,
            "drain deadline passed; closing the connections still open"
        );
    }
}

/// Serves one connection's requests; ends early (after the request in
/// flight) when the listener drains.
async fn serve_connection<I>(
    io: I,
    info: ConnectionInfo,
    app: Router,
    limits: &ListenerLimits,
    watcher: Watcher,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let remote = info.remote;
    let service = app.map_request(
        move |mut req: axum::extract::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(info.clone());
            req
        },
    );
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout())
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(%remote, error = %e, "connection ended with an error");
    }
}
