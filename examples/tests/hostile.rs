//! The bank under hostile traffic (#14 "Denial of service"): slow bodies
//! against the customer listener, and a process out of file descriptors.
//! Caps and deadlines are set small by configuration, so each attack takes
//! seconds, not the machine.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::TempDir;
use fapi_examples::bank::listener::ListenerLimits;
use fapi_examples::platform::Platform;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A TLS client for the customer listener, trusting the scheme CA.
fn connector(ca_pem: &str) -> tokio_rustls::TlsConnector {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(
        fapi_examples::bank::tls::fapi_crypto_provider(),
    )
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// What one slow client saw.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// Closed before or during the TLS handshake: refused on accept.
    Refused,
    /// The bank answered (the status line).
    Answered(String),
    /// The connection ended without an answer.
    Closed,
}

/// A client from `source` (a loopback address of its own) that starts a
/// `POST /login` announcing 1,000 bytes of body and sends one byte every
/// 200 ms: the attack that used to hold a descriptor for as long as it
/// liked.
async fn slow_client(
    connector: tokio_rustls::TlsConnector,
    source: std::net::IpAddr,
    bank: SocketAddr,
) -> Seen {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    let tcp = socket.connect(bank).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let Ok(mut tls) = connector.connect(name, tcp).await else {
        return Seen::Refused;
    };
    let head = "POST /login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n";
    if tls.write_all(head.as_bytes()).await.is_err() {
        return Seen::Refused;
    }
    let mut answer = Vec::new();
    for _ in 0..100 {
        tokio::select! {
            read = tls.read_buf(&mut answer) => {
                return match read {
                    Ok(n) if n > 0 => {
                        let text = String::from_utf8_lossy(&answer);
                        Seen::Answered(text.lines().next().unwrap_or_default().to_owned())
                    }
                    _ => Seen::Closed,
                };
            }
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                if tls.write_all(b"a").await.is_err() {
                    return Seen::Closed;
                }
            }
        }
    }
    Seen::Closed
}

/// 12 slow clients from one address against a customer listener of 8
/// connections with a share of 4 per address: 8 are refused on accept,
/// the 4 admitted get 408 when the 1.5 s request deadline passes, and a
/// customer from another address is served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_bodies_cannot_take_the_customer_listener() {
    let dir = TempDir::new("hostile-slow");
    let p = Platform::start(&dir.0, &["tpp-a"], |c| {
        c.listeners.customer = ListenerLimits {
            max_connections: 8,
            max_per_peer: Some(4),
            handshake_timeout_ms: 5_000,
            header_timeout_ms: 5_000,
            request_timeout_ms: 1_500,
        };
    })
    .await
    .unwrap();
    let ca = std::fs::read_to_string(&p.pki.scheme_ca).unwrap();
    let attacker: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    let clients: Vec<_> = (0..12)
        .map(|_| tokio::spawn(slow_client(connector(&ca), attacker, p.bank.customer_addr)))
        .collect();

    // a customer elsewhere is served while the attack goes on
    let discovery = format!("{}/.well-known/openid-configuration", p.customer_base());
    let served = p.browser.get(&discovery).send().await.unwrap();
    assert_eq!(served.status(), 200);

    let mut seen = Vec::new();
    for c in clients {
        seen.push(c.await.unwrap());
    }
    let refused = seen.iter().filter(|s| **s == Seen::Refused).count();
    let timed_out = seen
        .iter()
        .filter(|s| matches!(s, Seen::Answered(line) if line.contains(" 408 ")))
        .count();
    assert_eq!(refused, 8, "{seen:?}");
    assert_eq!(timed_out, 4, "{seen:?}");

    // the slots are free again, and the refusals were counted
    assert_eq!(
        p.browser.get(&discovery).send().await.unwrap().status(),
        200
    );
    let admin = p.bank.admin_addr.unwrap();
    let metrics = tokio::task::spawn_blocking(move || plain_get(admin, "/metrics"))
        .await
        .unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with(
            "fapi_connections_refused_total{listener=\"customer\",reason=\"peer_share\"}"
        )),
        "{metrics}"
    );
    p.bank.stop().await;
}

/// `GET path` over plain HTTP/1.1 (the admin listener), the whole answer.
fn plain_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
}

/// CPU time (user + system) of process `pid` so far, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // the fields after the command name, which is in parentheses
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn ticks_per_second() -> u64 {
    let out = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// With its descriptors used up, `accept()` fails at once, every time: the
/// accept loop used to retry immediately (100-200 % CPU, hundreds of
/// thousands of log lines a second) and no listener answered. The bank
/// runs here with 96 descriptors (`prlimit`) and caps high enough that the
/// descriptors, not the caps, run out first: while they are exhausted it
/// must idle and log a line per 5 s, and once they free up it must answer
/// again.
#[test]
fn descriptor_exhaustion_does_not_spin_the_accept_loop() {
    let tmp = TempDir::new("hostile-fds");
    let dir = tmp.0.to_str().unwrap().to_owned();
    let init = Command::new(env!("CARGO_BIN_EXE_bank"))
        .args(["init", "--data-dir", &dir])
        .output()
        .unwrap();
    assert!(init.status.success());
    let config_path = format!("{dir}/bank.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    let wide = serde_json::json!({
        "max_connections": 100_000, "handshake_timeout_ms": 60_000,
        "header_timeout_ms": 60_000, "request_timeout_ms": 60_000
    });
    config["listeners"] = serde_json::json!({
        "api": wide, "customer": wide, "admin": wide, "drain_timeout_ms": 1_000
    });
    std::fs::write(&config_path, config.to_string()).unwrap();

    let mut child = Command::new("prlimit")
        .args(["--nofile=96:96", "--"])
        .arg(env!("CARGO_BIN_EXE_bank"))
        .args([
            "serve",
            "--config",
            &config_path,
            "--api-listen",
            "127.0.0.1:0",
            "--customer-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut customer, mut metrics) = (None, None);
    for line in stdout.by_ref() {
        let line = line.unwrap();
        if let Some(url) = line
            .trim()
            .strip_prefix("issuer / customer pages: https://localhost:")
        {
            customer = Some(format!("127.0.0.1:{url}"));
        }
        if let Some(url) = line.trim().strip_prefix("metrics: http://") {
            metrics = url.strip_suffix("/metrics").map(str::to_owned);
        }
        if line.contains("dashboard:") {
            break;
        }
    }
    let customer: SocketAddr = customer.unwrap().parse().unwrap();
    let metrics: SocketAddr = metrics.unwrap().parse().unwrap();
    // stderr, line by line, on a thread: the accept-failure lines
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });

    // the attack: more connections than the bank has descriptors; the
    // kernel completes each handshake, so the backlog never empties
    let held: Vec<TcpStream> = (0..200)
        .filter_map(|_| TcpStream::connect(customer).ok())
        .collect();
    assert!(held.len() > 150);
    // the first accept failure is logged at once
    let first = lines_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the bank logs the accept failure");
    assert!(first.contains("accept failed"), "{first}");

    // a 3 s window with the descriptors exhausted: the process idles
    let hz = ticks_per_second();
    let before = cpu_ticks(child.id());
    std::thread::sleep(Duration::from_secs(3));
    let used = cpu_ticks(child.id()) - before;
    assert!(
        used * 100 < 3 * hz * 20,
        "the bank used {used} ticks of CPU ({hz}/s) in 3 s while out of descriptors"
    );
    let logged: Vec<String> = lines_rx.try_iter().collect();
    assert!(
        logged
            .iter()
            .filter(|l| l.contains("accept failed"))
            .count()
            <= 1,
        "{logged:?}"
    );

    // descriptors free again: the bank answers within its backoff
    drop(held);
    let answer = plain_get(metrics, "/metrics");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:.200}");
    assert!(answer.contains("fapi_accept_errors_total"), "{answer:.200}");

    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(child.wait().unwrap().success());
}
