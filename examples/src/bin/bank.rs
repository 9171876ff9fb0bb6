//! The example bank.
//!
//! ```text
//! bank init          --data-dir DIR [--tpp NAME]... [--force] [--signing-alg PS256|ES256|EdDSA]
//!                    [--api-listen ADDR] [--customer-listen ADDR] [--admin-listen ADDR]
//!                    (the development PKI and bank.json)
//! bank serve         [--config FILE] [--data-dir DIR] [flags]
//! bank verify-audit  [--config FILE] [--data-dir DIR]
//! bank prefill       [--config FILE] [--data-dir DIR] --flows N [--client ID]
//!                    (N flows' worth of rows, for the growth benchmark)
//! bank tpp onboard   [--config FILE] (--software-statement FILE | --metadata FILE) --certificate FILE
//! bank tpp revoke    [--config FILE] (--client ID | --certificate FILE)
//! bank tpp reinstate [--config FILE] --client ID
//! bank tpp list      [--config FILE]
//! bank keys rotate   [--config FILE] [--data-dir DIR] [--alg PS256|ES256|EdDSA] [--publish-delay SECS]
//! bank keys list     [--config FILE] [--data-dir DIR]
//! ```
//!
//! `serve` flags override the configuration file: `--api-listen ADDR`,
//! `--customer-listen ADDR`, `--admin-listen ADDR`, `--public-host HOST`,
//! `--profile NAME`, `--core-latency-ms N`, `--core-fail-rate F`,
//! `--core-timeout-ms N`, `--rate-limit N`, `--customer-rate-limit N`,
//! `--otlp-endpoint URL` (OpenTelemetry traces, see `bank::telemetry`),
//! `--core-fault-control` (`PUT /core/faults` on the admin listener),
//! `--consent-model any|openbanking-intent|scopes` (what an authorization
//! request must carry; see `bank::config::ConsentModel`),
//! `--self-signed-clients` (the TPP API's handshake also takes self-signed
//! certificates, for `self_signed_tls_client_auth` clients). Without `--config`, the
//! development configuration for `--data-dir` is used. Logs go to stderr
//! (`RUST_LOG` filters); keys are never logged.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use fapi_core::crypto::{default_provider, Algorithm};
use fapi_core::ClientId;
use fapi_core::{Clock, SystemClock};
use fapi_examples::bank::{self, audit, BankConfig};
use fapi_examples::pki::DevPki;
use fapi_examples::registry::{onboard, verify_software_statement, Registration};
use fapi_mtls_binding::ClientCertificate;

use fapi_examples::cli::{Flags, Res};

const USAGE: &str = "usage:
  bank init          --data-dir DIR [--tpp NAME]... [--force] [--signing-alg PS256|ES256|EdDSA]
                     [--api-listen ADDR] [--customer-listen ADDR] [--admin-listen ADDR]
  bank serve         [--config FILE] [--data-dir DIR] [--database postgres://URL [--database-ca FILE]]
                     [--api-listen ADDR] [--customer-listen ADDR]
                     [--admin-listen ADDR] [--public-host HOST] [--profile NAME]
                     [--core-latency-ms N] [--core-fail-rate F] [--core-timeout-ms N] [--rate-limit N]
                     [--customer-rate-limit N] [--otlp-endpoint URL] [--core-fault-control]
                     [--consent-model any|openbanking-intent|scopes] [--self-signed-clients]
  bank verify-audit  [--config FILE] [--data-dir DIR] [--database URL [--database-ca FILE]]
  bank prefill       [--config FILE] [--data-dir DIR] [--database URL] --flows N [--client ID] [--workers N]
  bank tpp onboard   [--config FILE] [--data-dir DIR] (--software-statement FILE | --metadata FILE) --certificate FILE
  bank tpp revoke    [--config FILE] [--data-dir DIR] (--client ID | --certificate FILE)
  bank tpp reinstate [--config FILE] [--data-dir DIR] --client ID
  bank tpp list      [--config FILE] [--data-dir DIR]
  bank tpp issue     [--config FILE] [--data-dir DIR] --client ID
  bank keys rotate   [--config FILE] [--data-dir DIR] [--alg PS256|ES256|EdDSA] [--publish-delay SECS]
  bank keys list     [--config FILE] [--data-dir DIR]
(tpp and keys take --database URL [--database-ca FILE] too: the database of the instances they manage;
 --database-ca FILE: TLS to PostgreSQL, the server's certificate must chain to the CA certificates in FILE)";

/// The bank's configuration from the flags: the file, or the
/// development one for the data directory; `--data-dir` overrides the
/// file's, `--database` the store's database, `--database-ca` the CA
/// file for TLS to it.
fn config(flags: &Flags) -> Res<BankConfig> {
    let mut config = match (flags.get("config"), flags.get("data-dir")) {
        (Some(file), _) => BankConfig::from_file(&PathBuf::from(file))?,
        (None, Some(dir)) => BankConfig::development(&PathBuf::from(dir)),
        (None, None) => return Err("give --config FILE or --data-dir DIR".into()),
    };
    if let (Some(_), Some(dir)) = (flags.get("config"), flags.get("data-dir")) {
        config.data_dir = PathBuf::from(dir);
    }
    if let Some(url) = flags.get("database") {
        config.store.database = Some(url.to_owned());
    }
    if let Some(ca) = flags.get("database-ca") {
        config.store.database_ca = Some(PathBuf::from(ca));
    }
    Ok(config)
}

/// What `bank init` would replace in `dir`: the database, the
/// configuration and every key or certificate a previous init wrote.
fn existing_bank(dir: &std::path::Path) -> Res<Vec<String>> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(found);
    };
    for entry in entries {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let ours = name == "bank.db"
            || name == "bank.json"
            || name.ends_with(".key.pem")
            || name == "scheme-ca.pem";
        if ours {
            found.push(name);
        }
    }
    found.sort();
    Ok(found)
}

fn init(flags: &Flags) -> Res<()> {
    flags.only(&[
        "data-dir",
        "tpp",
        "force",
        "signing-alg",
        "api-listen",
        "customer-listen",
        "admin-listen",
    ])?;
    let dir = PathBuf::from(flags.get("data-dir").ok_or("--data-dir is required")?);
    let signing_alg = algorithm(flags, "signing-alg")?.unwrap_or(Algorithm::Ps256);
    let mut tpps = flags.all("tpp");
    if tpps.is_empty() {
        tpps = vec!["tpp-a", "tpp-b"];
    }
    // A second init would replace the scheme CA and every key while the
    // database stays: onboarded TPPs would no longer chain and the audit
    // trail would no longer verify. Only --force does that, and says so.
    let existing = existing_bank(&dir)?;
    if !existing.is_empty() {
        if !flags.switch("force") {
            return Err(format!(
                "{} already holds a bank ({}); nothing was changed. To start over, \
                 re-run with --force: it replaces the scheme CA, every key and certificate \
                 and bank.json, and moves bank.db aside",
                dir.display(),
                existing.join(", ")
            )
            .into());
        }
        println!("--force: replacing {}", existing.join(", "));
        let db = dir.join("bank.db");
        if db.exists() {
            let aside = dir.join(format!("bank.db.replaced-{}", SystemClock.now().as_secs()));
            for suffix in ["", "-wal", "-shm"] {
                let from = PathBuf::from(format!("{}{suffix}", db.display()));
                if from.exists() {
                    std::fs::rename(&from, format!("{}{suffix}", aside.display()))?;
                }
            }
            println!(
                "--force: the database (its audit trail was signed by the replaced keys) is now {}",
                aside.display()
            );
        }
    }
    let pki = DevPki::generate_with(
        &dir,
        &*default_provider(),
        &tpps,
        SystemClock.now(),
        signing_alg,
    )?;
    let mut config = BankConfig::development(&dir);
    config.api_listen = flags
        .parsed("api-listen")?
        .unwrap_or(([127, 0, 0, 1], 8443).into());
    config.customer_listen = flags
        .parsed("customer-listen")?
        .unwrap_or(([127, 0, 0, 1], 8444).into());
    config.admin_listen = Some(
        flags
            .parsed("admin-listen")?
            .unwrap_or(([127, 0, 0, 1], 9090).into()),
    );
    let path = dir.join("bank.json");
    std::fs::write(&path, serde_json::to_string_pretty(&config)?)?;
    println!(
        "development PKI and configuration written to {}",
        dir.display()
    );
    println!("  configuration: {}", path.display());
    for t in &pki.tpps {
        println!(
            "  {}: certificate {}, software statement {}",
            t.client_id,
            t.certificate.display(),
            t.software_statement.display()
        );
    }
    println!("  bank signing key: {signing_alg}");
    println!("next: bank serve --config {}", path.display());
    Ok(())
}

/// `--name` as a JWS algorithm name, exactly as JOSE spells it.
fn algorithm(flags: &Flags, name: &str) -> Res<Option<Algorithm>> {
    flags
        .get(name)
        .map(|v| {
            Algorithm::from_jose_name(v)
                .ok_or_else(|| format!("--{name}: {v:?} is not PS256, ES256 or EdDSA").into())
        })
        .transpose()
}

/// `bank prefill`: `--flows` flows' worth of rows for `--client`
/// (default `tpp-a`) in the bank's database, written through the store
/// code, `--workers` flows at a time on PostgreSQL (default 8); a stopped
/// bank's database, or a running one's.
async fn prefill(flags: &Flags) -> Res<()> {
    flags.only(&[
        "config",
        "data-dir",
        "database",
        "database-ca",
        "flows",
        "client",
        "workers",
    ])?;
    let config = config(&flags.subset(&["config", "data-dir", "database", "database-ca"]))?;
    let flows: u64 = flags.parsed("flows")?.ok_or("give --flows N")?;
    let workers: usize = flags.parsed("workers")?.unwrap_or(8);
    let client = ClientId::try_from(flags.get("client").unwrap_or("tpp-a"))?;
    // a server's pool (store.pool_size), for the workers
    let stores = fapi_examples::stores::open(&config)?;
    let started = std::time::Instant::now();
    let progress = |n: u64| {
        eprintln!(
            "{n} flows written ({:.0} s)",
            started.elapsed().as_secs_f64()
        );
    };
    bank::prefill::prefill(
        &stores,
        &client,
        flows,
        SystemClock.now(),
        workers,
        &progress,
    )
    .await?;
    println!(
        "{flows} flows' worth of rows written in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `bank keys rotate` and `bank keys list`.
fn keys(sub: &str, flags: &Flags) -> Res<()> {
    let config = {
        let f = flags.subset(&["config", "data-dir", "database", "database-ca"]);
        config(&f)?
    };
    let now = SystemClock.now();
    match sub {
        "rotate" => {
            flags.only(&[
                "config",
                "data-dir",
                "database",
                "database-ca",
                "alg",
                "publish-delay",
            ])?;
            let r = bank::keys::rotate(
                &config,
                algorithm(flags, "alg")?,
                flags.parsed("publish-delay")?,
                now,
            )?;
            println!(
                "new signing key {} ({}) published now; it signs from {} ({} s from now)",
                r.new_kid,
                r.alg,
                r.activates_at,
                r.activates_at.secs_since(now)
            );
            println!(
                "  {} signs until then and stays published until {}, when everything it signed has expired",
                r.old_kid, r.old_published_until
            );
            println!("  running instances pick the schedule up within signing_keys.refresh_ms");
        }
        "list" => {
            flags.only(&["config", "data-dir", "database", "database-ca"])?;
            let records = bank::keys::list(&config)?;
            let signing = bank::keys::schedule(&records, now).map(|s| s.signing);
            for r in records {
                let state = if signing.as_deref() == Some(r.kid.as_str()) {
                    "signing".to_owned()
                } else if r.activates_at > now {
                    format!("published, signs from {}", r.activates_at)
                } else if r.publish_until.is_some_and(|u| now < u) {
                    format!(
                        "retired, published until {}",
                        r.publish_until.map(|u| u.as_secs()).unwrap_or_default()
                    )
                } else {
                    "retired".to_owned()
                };
                println!("{}\t{}\t{state}", r.kid, r.alg);
            }
        }
        other => return Err(format!("unknown keys command {other:?}").into()),
    }
    Ok(())
}

async fn serve(flags: &Flags) -> Res<()> {
    flags.only(&[
        "config",
        "data-dir",
        "database",
        "database-ca",
        "api-listen",
        "customer-listen",
        "admin-listen",
        "public-host",
        "profile",
        "core-latency-ms",
        "core-fail-rate",
        "core-timeout-ms",
        "core-fault-control",
        "rate-limit",
        "customer-rate-limit",
        "otlp-endpoint",
        "consent-model",
        "self-signed-clients",
    ])?;
    let mut config = config(flags)?;
    if let Some(m) = flags.parsed("consent-model")? {
        config.consent_model = m;
    }
    if flags.switch("self-signed-clients") {
        config.self_signed_clients = true;
    }
    if let Some(endpoint) = flags.get("otlp-endpoint") {
        let mut otlp = config.otlp.take().unwrap_or(bank::telemetry::OtlpConfig {
            endpoint: String::new(),
            service_name: "fapi-bank".into(),
            ca_file: None,
            timeout_ms: 10_000,
        });
        endpoint.clone_into(&mut otlp.endpoint);
        config.otlp = Some(otlp);
    }
    let telemetry = bank::telemetry::install(config.otlp.as_ref())?;
    if let Some(otlp) = &config.otlp {
        tracing::info!(endpoint = %otlp.endpoint, "exporting traces over OTLP");
    }
    if let Some(a) = flags.parsed("api-listen")? {
        config.api_listen = a;
    }
    if let Some(a) = flags.parsed("customer-listen")? {
        config.customer_listen = a;
    }
    if let Some(a) = flags.parsed("admin-listen")? {
        config.admin_listen = Some(a);
    }
    if let Some(h) = flags.get("public-host") {
        config.public_host = h.to_owned();
    }
    if let Some(p) = flags.get("profile") {
        config.profile = p.to_owned();
    }
    if let Some(v) = flags.parsed("core-latency-ms")? {
        config.core.latency_ms = v;
    }
    if let Some(v) = flags.parsed("core-fail-rate")? {
        config.core.fail_rate = v;
    }
    if let Some(v) = flags.parsed("core-timeout-ms")? {
        config.core.timeout_ms = v;
    }
    if flags.switch("core-fault-control") {
        config.core.fault_control = true;
    }
    if let Some(v) = flags.parsed("customer-rate-limit")? {
        config.customer_rate_limit_per_second = v;
    }
    if let Some(v) = flags.parsed("rate-limit")? {
        config.rate_limit_per_second = v;
    }
    let running = bank::start(&config).await?;
    println!("bank running");
    println!("  issuer / customer pages: {}", running.issuer);
    println!(
        "  discovery: {}/.well-known/openid-configuration",
        running.issuer
    );
    println!("  TPP API (mutual TLS): {}", running.api_base);
    if let Some(a) = running.admin_addr {
        println!("  metrics: http://{a}/metrics");
    }
    println!("  dashboard: {}/dashboard", running.issuer);
    let signal = stop_signal().await?;
    println!("{signal}: stopping (no new connections; draining requests in flight)");
    running.stop().await;
    println!("stopped; audit checkpoint signed");
    // the last spans reach the collector before the process ends
    tokio::task::spawn_blocking(move || telemetry.shutdown()).await?;
    Ok(())
}

/// Waits for SIGTERM (what systemd, Docker and Kubernetes send) or SIGINT
/// (Ctrl-C), and names the one that came: both stop the bank the same way.
async fn stop_signal() -> Res<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

/// `bank tpp issue`: the development scheme (its CA and directory, in the
/// data directory) issues a TPP what a real scheme would: a transport
/// certificate, a signing key and JWKS, a software statement. The TPP is not
/// onboarded: it registers itself (`tpp register`) or the operator runs
/// `bank tpp onboard`.
fn issue_tpp(flags: &Flags) -> Res<()> {
    flags.only(&["config", "data-dir", "client"])?;
    let config = config(&flags.subset(&["config", "data-dir"]))?;
    let id = flags.get("client").ok_or("--client is required")?;
    fapi_core::ClientId::try_from(id)?;
    let files = fapi_examples::pki::DevPki::issue_tpp(
        &config.data_dir,
        id,
        default_provider(),
        SystemClock.now(),
    )?;
    println!("issued {id} by the development scheme:");
    println!("  transport certificate {}", files.certificate.display());
    println!("  signing key           {}", files.signing_key);
    println!(
        "  software statement    {}",
        files.software_statement.display()
    );
    Ok(())
}

async fn verify(flags: &Flags) -> Res<()> {
    flags.only(&["config", "data-dir", "database", "database-ca"])?;
    let (entries, checkpoints) = audit::verify_audit(&config(flags)?).await?;
    println!("audit trail verified: {entries} entries, {checkpoints} signed checkpoints");
    Ok(())
}

fn tpp(sub: &str, flags: &Flags) -> Res<()> {
    if sub == "issue" {
        return issue_tpp(flags);
    }
    let config = {
        let f = flags.subset(&["config", "data-dir", "database", "database-ca"]);
        config(&f)?
    };
    // a command, not a server: the statements run on this thread
    let stores = fapi_examples::stores::open_for_command(&config)?;
    let registry = fapi_examples::registry::Registry::new(stores.registry.clone());
    use futures_executor::block_on as b;
    let provider = default_provider();
    let profile = config.profile()?;
    let now = SystemClock.now();
    let read = |p: &str| std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"));
    // each change the operator makes is in the audit trail beside the
    // TPPs' own (dynamic registration)
    let audit = |client: Option<ClientId>, change: &str| -> Res<()> {
        let mut event = fapi_consent::audit::AuditEvent::new(
            fapi_consent::audit::AuditAction::RegistrationChanged {
                change: change.to_owned(),
            },
            now,
        );
        event.client_id = client;
        b(stores.audit.append(event))?;
        Ok(())
    };
    match sub {
        "onboard" => {
            flags.only(&[
                "config",
                "data-dir",
                "database",
                "database-ca",
                "software-statement",
                "metadata",
                "certificate",
            ])?;
            let registration: Registration =
                match (flags.get("software-statement"), flags.get("metadata")) {
                    (Some(ssa), None) => verify_software_statement(
                        &read(ssa)?,
                        &config.directory_keys(&*provider)?,
                        &config.directory_issuer,
                        profile,
                        now,
                    )?,
                    (None, Some(meta)) => serde_json::from_str(&read(meta)?)?,
                    _ => return Err("give --software-statement FILE or --metadata FILE".into()),
                };
            let cert = ClientCertificate::from_pem(&read(
                flags
                    .get("certificate")
                    .ok_or("--certificate is required")?,
            )?)?;
            let trust = config.scheme_trust(now)?;
            let registration = b(onboard(
                &registry,
                &registration,
                &cert,
                &trust,
                &*provider,
                profile,
                now,
            ))?;
            audit(
                Some(ClientId::try_from(registration.client_id.as_str())?),
                "onboarded",
            )?;
            println!(
                "onboarded {} ({}, {}), certificate x5t#S256 {}",
                registration.client_id,
                registration.client_name,
                registration.token_endpoint_auth_method,
                cert.thumbprint().to_b64url()
            );
            let subject = &registration.certificate_subject;
            if let Some(dn) = &subject.tls_client_auth_subject_dn {
                println!("  its transport certificates: the scheme CA's with subject {dn}");
            } else if subject.is_set() {
                println!("  its transport certificates: the scheme CA's with its registered subjectAltName");
            }
            println!(
                "  its x-jws-signature http://openbanking.org.uk/iss: {}",
                registration.signing_issuer()
            );
        }
        "reinstate" => {
            flags.only(&["config", "data-dir", "database", "database-ca", "client"])?;
            let id = flags.get("client").ok_or("--client is required")?;
            let client = ClientId::try_from(id)?;
            if !b(registry.reinstate_client(&client))? {
                return Err(format!("{id} is not registered").into());
            }
            audit(Some(client), "reinstated")?;
            println!("reinstated {id}: its calls are served again");
        }
        "revoke" => {
            flags.only(&[
                "config",
                "data-dir",
                "database",
                "database-ca",
                "client",
                "certificate",
            ])?;
            match (flags.get("client"), flags.get("certificate")) {
                (Some(id), None) => {
                    let client = ClientId::try_from(id)?;
                    if !b(registry.revoke_client(&client))? {
                        return Err(format!("{id} is not registered").into());
                    }
                    audit(Some(client), "revoked")?;
                    println!("revoked {id}: its next call is refused");
                }
                (None, Some(path)) => {
                    let cert = ClientCertificate::from_pem(&read(path)?)?;
                    b(registry.revoke_certificate(cert.thumbprint(), now))?;
                    let owner = b(registry.client_id_by_certificate(cert.thumbprint()))?;
                    audit(owner, "certificate revoked")?;
                    println!(
                        "revoked certificate {}: its next call is refused",
                        cert.thumbprint().to_b64url()
                    );
                }
                _ => return Err("give --client ID or --certificate FILE".into()),
            }
        }
        "list" => {
            flags.only(&["config", "data-dir", "database", "database-ca"])?;
            for id in b(registry.client_ids())? {
                let c = b(registry.client(&id))?;
                let id = id.as_str();
                if let Some(c) = c {
                    println!(
                        "{id}\t{}\t{}\t{}",
                        c.registration.client_name,
                        if c.revoked { "revoked" } else { "active" },
                        c.registration.software_roles.join(",")
                    );
                }
            }
        }
        other => return Err(format!("unknown tpp command {other:?}").into()),
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `serve` installs its own subscriber, with OTLP export when configured
    if args.first().map(String::as_str) != Some("serve") {
        if let Err(e) = bank::telemetry::install(None) {
            eprintln!("bank: {e}");
            return ExitCode::FAILURE;
        }
    }
    let result = match args.split_first() {
        Some((cmd, rest)) => {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(r) => Arc::new(r),
                Err(e) => {
                    eprintln!("bank: {e}");
                    return ExitCode::FAILURE;
                }
            };
            // the synchronous commands reach a PostgreSQL store through
            // this runtime's workers (its connections are tasks of it)
            let entered = || runtime.enter();
            match (cmd.as_str(), rest) {
                ("tpp", [sub, rest @ ..]) => {
                    let _in_runtime = entered();
                    Flags::parse(rest).and_then(|f| tpp(sub, &f))
                }
                ("keys", [sub, rest @ ..]) => {
                    let _in_runtime = entered();
                    Flags::parse(rest).and_then(|f| keys(sub, &f))
                }
                ("init", rest) => Flags::parse(rest).and_then(|f| init(&f)),
                ("prefill", rest) => Flags::parse(rest).and_then(|f| runtime.block_on(prefill(&f))),
                ("serve", rest) => Flags::parse(rest).and_then(|f| runtime.block_on(serve(&f))),
                ("verify-audit", rest) => {
                    Flags::parse(rest).and_then(|f| runtime.block_on(verify(&f)))
                }
                _ => {
                    eprintln!("{USAGE}");
                    return ExitCode::from(2);
                }
            }
        }
        None => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bank: {e}");
            ExitCode::FAILURE
        }
    }
}
