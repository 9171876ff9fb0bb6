//! Fixtures shared by the examples' tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

use fapi_core::crypto::SigningKey;
use fapi_core::jwk::{Jwk, JwkSet};
use fapi_examples::registry::Registration;
use fapi_examples::sqlite::SqliteDb;

/// A database file that is removed (with its WAL files) when dropped.
pub struct TempDb(pub PathBuf);

impl TempDb {
    pub fn new(name: &str) -> Self {
        let unique = format!(
            "fapi-{name}-{}-{}.db",
            std::process::id(),
            fapi_core::random::token(8).unwrap()
        );
        Self(std::env::temp_dir().join(unique))
    }
    pub fn open(&self) -> SqliteDb {
        SqliteDb::open(&self.0).unwrap()
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
        }
    }
}

/// A data directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let unique = format!(
            "fapi-{name}-{}-{}",
            std::process::id(),
            fapi_core::random::token(8).unwrap()
        );
        Self(std::env::temp_dir().join(unique))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `private_key_jwt` AISP registration for `id` with `key` (kid `k`).
pub fn registration(id: &str, key: &dyn SigningKey) -> Registration {
    Registration {
        client_id: id.into(),
        client_name: format!("{id} Ltd"),
        redirect_uris: vec![format!("https://{id}.example/cb")],
        jwks: JwkSet::new(vec![Jwk::from_public_key(
            key.public_key().clone(),
            Some("k".into()),
        )])
        .to_json(),
        token_endpoint_auth_method: "private_key_jwt".into(),
        certificate_subject: Default::default(),
        registration_access_token_sha256: None,
        software_jwks_endpoint: None,
        signing_algorithms: Vec::new(),
        software_roles: vec!["AISP".into()],
        software_id: None,
        org_id: None,
    }
}

/// Runs `bank` with `args` to completion.
pub fn bank(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bank"))
        .args(args)
        .output()
        .unwrap()
}

/// The stdout of a successful run (else the test fails with both outputs).
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The rest of a program's stdout.
pub type Lines = std::io::Lines<BufReader<std::process::ChildStdout>>;

/// Starts `bank serve` on ephemeral ports and reads the URLs it prints;
/// the rest of its output stays readable.
pub fn serve(config: &str, extra: &[&str]) -> (Child, String, Lines) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bank"))
        .args([
            "serve",
            "--config",
            config,
            "--api-listen",
            "127.0.0.1:0",
            "--customer-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut discovery = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(url) = line.trim().strip_prefix("discovery: ") {
            discovery = Some(url.to_owned());
        }
        if line.contains("dashboard:") {
            break;
        }
    }
    (
        child,
        discovery.expect("bank serve printed its discovery URL"),
        lines,
    )
}

/// Runs the `tpp` program as `client` (keys and certificate from `dir`)
/// against `discovery`, as the customer alice.
pub fn tpp(dir: &str, discovery: &str, client: &str, command: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tpp"))
        .args([
            "--discovery",
            discovery,
            "--server-ca",
            &format!("{dir}/scheme-ca.pem"),
            "--client-id",
            client,
            "--certificate",
            &format!("{dir}/{client}.pem"),
            "--key-dir",
            dir,
        ])
        .args(command)
        .args(["--customer", "alice", "--password", "alice-password"])
        .output()
        .unwrap()
}

/// `bank init` in `dir`, then `bank tpp onboard` of each of `tpps` from
/// its software statement (into `database` when given); returns the
/// configuration file's path.
pub fn init_bank(dir: &str, database: Option<&str>, tpps: &[&str]) -> String {
    ok(&bank(&["init", "--data-dir", dir]));
    let config = format!("{dir}/bank.json");
    for t in tpps {
        let (statement, certificate) = (format!("{dir}/{t}.ssa.jwt"), format!("{dir}/{t}.pem"));
        let mut args = vec!["tpp", "onboard", "--config", &config];
        if let Some(url) = database {
            args.extend(["--database", url]);
        }
        args.extend([
            "--software-statement",
            &statement,
            "--certificate",
            &certificate,
        ]);
        let out = ok(&bank(&args));
        assert!(out.contains(&format!("onboarded {t}")), "{out}");
    }
    config
}
