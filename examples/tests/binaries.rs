//! The `bank` and `tpp` programs as an operator and a TPP developer use
//! them, as separate processes over real sockets: `bank init`, `bank tpp
//! onboard` from software statements, `bank serve`, `tpp accounts` and
//! `tpp pay` against it, `bank tpp revoke` seen by the running bank on the
//! next call, and `bank verify-audit` after the bank stops.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::process::{Command, Stdio};

use common::{bank, init_bank, ok, serve, tpp, TempDir};

#[test]
fn operator_and_tpp_programs_work_together() {
    let tmp = TempDir::new("binaries");
    let dir = tmp.0.to_str().unwrap().to_owned();
    let config = init_bank(&dir, None, &["tpp-a", "tpp-b"]);
    // a statement with one byte changed is refused
    let mut forged = std::fs::read_to_string(format!("{dir}/tpp-b.ssa.jwt")).unwrap();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    std::fs::write(format!("{dir}/forged.jwt"), forged).unwrap();
    let refused = bank(&[
        "tpp",
        "onboard",
        "--config",
        &config,
        "--software-statement",
        &format!("{dir}/forged.jwt"),
        "--certificate",
        &format!("{dir}/tpp-b.pem"),
    ]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("software statement rejected"));

    let (mut child, discovery, lines) = serve(&config, &[]);
    let out = ok(&tpp(
        &dir,
        &discovery,
        "tpp-a",
        &["accounts", "--account", "acc-1"],
    ));
    assert!(
        out.contains("acc-1") && out.contains("balance 1000.00 GBP"),
        "{out}"
    );
    let out = ok(&tpp(
        &dir,
        &discovery,
        "tpp-a",
        &[
            "pay",
            "--amount",
            "12.34",
            "--creditor",
            "ACME Ltd",
            "--creditor-account",
            "08080021325698",
        ],
    ));
    assert!(out.contains("AcceptedSettlementInProcess"), "{out}");
    let out = ok(&tpp(
        &dir,
        &discovery,
        "tpp-a",
        &["accounts", "--account", "acc-1"],
    ));
    assert!(out.contains("balance 987.66 GBP"), "{out}");

    // plain FAPI 2 mode: scopes alone, introspection, userinfo, resources
    let out = ok(&tpp(
        &dir,
        &discovery,
        "tpp-a",
        &["--mode", "fapi2", "accounts", "--account", "acc-1"],
    ));
    for line in [
        "plain FAPI 2",
        "introspection: active true",
        "userinfo: sub alice",
        "balance 987.66 GBP",
    ] {
        assert!(out.contains(line), "{line}: {out}");
    }
    let out = tpp(&dir, &discovery, "tpp-a", &["--mode", "fapi2", "pay"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("UK OB payment consent"), "{err}");

    // revoked while the bank runs: refused on the next call
    assert!(ok(&tpp(&dir, &discovery, "tpp-b", &["accounts"])).contains("acc-1"));
    ok(&bank(&[
        "tpp", "revoke", "--config", &config, "--client", "tpp-b",
    ]));
    let out = tpp(&dir, &discovery, "tpp-b", &["accounts"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid_client"), "{err}");
    assert!(ok(&bank(&["tpp", "list", "--config", &config])).contains("tpp-b\ttpp-b Ltd\trevoked"));

    // stop with SIGINT: the bank signs a final checkpoint
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(child.wait().unwrap().success());
    assert!(
        rest.iter().any(|l| l.contains("audit checkpoint signed")),
        "{rest:?}"
    );
    let out = ok(&bank(&["verify-audit", "--config", &config]));
    assert!(out.contains("audit trail verified"), "{out}");
}

#[test]
fn programs_refuse_unknown_arguments() {
    assert_eq!(bank(&["serve", "--bogus", "x"]).status.code(), Some(1));
    assert_eq!(bank(&["frobnicate"]).status.code(), Some(2));
    let out = Command::new(env!("CARGO_BIN_EXE_tpp"))
        .arg("accounts")
        .arg("--bogus")
        .arg("x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn loadgen_reports_flows_steps_and_the_route_ratio() {
    let tmp = TempDir::new("loadgen");
    let dir = tmp.0.to_str().unwrap().to_owned();
    let config = init_bank(&dir, None, &["tpp-a"]);
    // the per-client and per-address limits would otherwise be what
    // loadgen measures
    let (mut child, discovery, _lines) = serve(
        &config,
        &["--rate-limit", "0", "--customer-rate-limit", "0"],
    );
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "--discovery",
            &discovery,
            "--server-ca",
            &format!("{dir}/scheme-ca.pem"),
            "--client-id",
            "tpp-a",
            "--certificate",
            &format!("{dir}/tpp-a.pem"),
            "--key-dir",
            &dir,
            "--flows",
            "4",
            "--concurrency",
            "2",
            "--calls",
            "20",
            "--bank-pid",
            &child.id().to_string(),
        ])
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let text = ok(&out);
    for expected in [
        "flows/s",
        "authorize",
        "p95",
        "bank CPU per complete flow",
        "authenticated / control throughput",
    ] {
        assert!(text.contains(expected), "missing {expected:?}:\n{text}");
    }
}

/// A second `bank init` replaced the scheme CA and every key while the
/// database stayed, so onboarded TPPs no longer chained and the audit trail
/// no longer verified. It is refused now; `--force` replaces, says what,
/// and moves the database aside.
#[test]
fn init_refuses_an_existing_data_directory_unless_forced() {
    let tmp = TempDir::new("reinit");
    let dir = tmp.0.to_str().unwrap().to_owned();
    let config = init_bank(&dir, None, &["tpp-a"]);
    let ca = std::fs::read(format!("{dir}/scheme-ca.pem")).unwrap();
    let key = std::fs::read(format!("{dir}/bank-signing.key.pem")).unwrap();

    let again = bank(&["init", "--data-dir", &dir]);
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("already holds a bank") && err.contains("--force"),
        "{err}"
    );
    assert!(
        err.contains("bank.db") && err.contains("bank-signing.key.pem"),
        "{err}"
    );
    // nothing changed: same CA, same key, and the trail still verifies
    assert_eq!(std::fs::read(format!("{dir}/scheme-ca.pem")).unwrap(), ca);
    assert_eq!(
        std::fs::read(format!("{dir}/bank-signing.key.pem")).unwrap(),
        key
    );
    ok(&bank(&["verify-audit", "--config", &config]));

    let forced = ok(&bank(&["init", "--data-dir", &dir, "--force"]));
    assert!(
        forced.contains("--force: replacing") && forced.contains("bank.db"),
        "{forced}"
    );
    assert!(forced.contains("bank.db.replaced-"), "{forced}");
    assert_ne!(std::fs::read(format!("{dir}/scheme-ca.pem")).unwrap(), ca);
    let aside: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("bank.db.replaced-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(!std::path::Path::new(&format!("{dir}/bank.db")).exists());
    // a fresh directory needs no --force
    let fresh = TempDir::new("reinit-fresh");
    ok(&bank(&["init", "--data-dir", fresh.0.to_str().unwrap()]));
}

/// SIGTERM (systemd, Docker, Kubernetes) killed `serve` at once, without
/// the final signed checkpoint Ctrl-C writes. It stops the same way now.
#[test]
fn sigterm_stops_serve_like_ctrl_c_with_a_final_checkpoint() {
    let tmp = TempDir::new("sigterm");
    let dir = tmp.0.to_str().unwrap().to_owned();
    let config = init_bank(&dir, None, &["tpp-a"]);
    let (mut child, discovery, lines) = serve(&config, &[]);
    // one flow, so the trail has entries for the final checkpoint to cover
    ok(&tpp(&dir, &discovery, "tpp-a", &["accounts"]));
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?} {rest:?}");
    assert!(
        rest.iter().any(|l| l.starts_with("SIGTERM: stopping")),
        "{rest:?}"
    );
    let out = ok(&bank(&["verify-audit", "--config", &config]));
    // the final checkpoint covers the flow's entries
    assert!(
        out.contains("audit trail verified") && !out.contains(" 0 signed checkpoints"),
        "{out}"
    );
}

/// Re-onboarding a revoked TPP silently reinstated it. Reinstatement is its
/// own command now; onboarding a revoked client is an error saying so.
#[test]
fn a_revoked_tpp_is_reinstated_only_explicitly() {
    let tmp = TempDir::new("reinstate");
    let dir = tmp.0.to_str().unwrap().to_owned();
    ok(&bank(&["init", "--data-dir", &dir]));
    let config = format!("{dir}/bank.json");
    let onboard = || {
        bank(&[
            "tpp",
            "onboard",
            "--config",
            &config,
            "--software-statement",
            &format!("{dir}/tpp-b.ssa.jwt"),
            "--certificate",
            &format!("{dir}/tpp-b.pem"),
        ])
    };
    let first = ok(&onboard());
    assert!(
        first.contains("x-jws-signature http://openbanking.org.uk/iss: tpp-b-org/tpp-b-software"),
        "{first}"
    );
    ok(&bank(&[
        "tpp", "revoke", "--config", &config, "--client", "tpp-b",
    ]));
    let again = onboard();
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("revoked") && err.contains("bank tpp reinstate --client tpp-b"),
        "{err}"
    );
    assert!(ok(&bank(&["tpp", "list", "--config", &config])).contains("tpp-b\ttpp-b Ltd\trevoked"));
    let out = ok(&bank(&[
        "tpp",
        "reinstate",
        "--config",
        &config,
        "--client",
        "tpp-b",
    ]));
    assert!(out.contains("reinstated tpp-b"), "{out}");
    assert!(ok(&bank(&["tpp", "list", "--config", &config])).contains("tpp-b\ttpp-b Ltd\tactive"));
    // an active client may be onboarded again (new keys or certificate)
    ok(&onboard());
    assert!(!bank(&[
        "tpp",
        "reinstate",
        "--config",
        &config,
        "--client",
        "nobody"
    ])
    .status
    .success());
    // every change the operator made is in the audit trail, in order (the
    // refused ones are not changes), and the trail still verifies
    let conn = rusqlite::Connection::open(format!("{dir}/bank.db")).unwrap();
    let changes: Vec<String> = conn
        .prepare("SELECT event FROM audit ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .filter_map(|e| {
            let v: serde_json::Value = serde_json::from_str(&e).unwrap();
            (v["action"]["type"] == "registration_changed").then(|| {
                format!(
                    "{} {}",
                    v["action"]["change"].as_str().unwrap(),
                    v["client_id"].as_str().unwrap()
                )
            })
        })
        .collect();
    assert_eq!(
        changes,
        [
            "onboarded tpp-b",
            "revoked tpp-b",
            "reinstated tpp-b",
            "onboarded tpp-b"
        ]
    );
    ok(&bank(&["verify-audit", "--config", &config]));
}

/// `bank init` always wrote ports 8443/8444/9090.
#[test]
fn init_takes_the_listen_addresses() {
    let tmp = TempDir::new("init-ports");
    let dir = tmp.0.to_str().unwrap().to_owned();
    ok(&bank(&[
        "init",
        "--data-dir",
        &dir,
        "--api-listen",
        "127.0.0.1:18443",
        "--customer-listen",
        "0.0.0.0:18444",
        "--admin-listen",
        "127.0.0.1:19090",
    ]));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{dir}/bank.json")).unwrap())
            .unwrap();
    assert_eq!(config["api_listen"], "127.0.0.1:18443");
    assert_eq!(config["customer_listen"], "0.0.0.0:18444");
    assert_eq!(config["admin_listen"], "127.0.0.1:19090");
    let defaults = TempDir::new("init-ports-default");
    ok(&bank(&["init", "--data-dir", defaults.0.to_str().unwrap()]));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(defaults.0.join("bank.json")).unwrap())
            .unwrap();
    assert_eq!(config["api_listen"], "127.0.0.1:8443");
    assert!(
        !bank(&["init", "--data-dir", "/tmp/x", "--api-listen", "nope"])
            .status
            .success()
    );
}

/// The example registration file the README points to is a complete,
/// usable registration (every field documented there).
#[test]
fn the_registration_example_file_is_complete_and_usable() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/registration.example.json"
    ))
    .unwrap();
    let r: fapi_examples::registry::Registration = serde_json::from_str(&text).unwrap();
    r.metadata(
        &*fapi_core::crypto::default_provider(),
        fapi_core::Profile::Fapi2MessageSigning,
    )
    .unwrap();
    assert_eq!(r.signing_issuer(), "0015800001041RHAAY/acme-payments-app");
    assert!(r.has_role("PISP"));
}

/// `bank init --signing-alg` and `bank keys rotate` / `list` as an
/// operator runs them; the bank signing with the rotated key is in
/// `tests/key_rotation.rs`.
#[test]
fn keys_rotate_and_list_from_the_command_line() {
    let tmp = TempDir::new("keys-cli");
    let dir = tmp.0.to_str().unwrap().to_owned();
    let refused = bank(&["init", "--data-dir", &dir, "--signing-alg", "RS256"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not PS256, ES256 or EdDSA"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let out = ok(&bank(&[
        "init",
        "--data-dir",
        &dir,
        "--signing-alg",
        "ES256",
    ]));
    assert!(out.contains("bank signing key: ES256"), "{out}");
    let list = ok(&bank(&["keys", "list", "--data-dir", &dir]));
    assert_eq!(list.trim(), "bank-signing\tES256\tsigning");

    let too_short = bank(&["keys", "rotate", "--data-dir", &dir, "--publish-delay", "5"]);
    assert!(!too_short.status.success());
    assert!(String::from_utf8_lossy(&too_short.stderr).contains("below the minimum of 10 s"));
    let out = ok(&bank(&[
        "keys",
        "rotate",
        "--data-dir",
        &dir,
        "--alg",
        "EdDSA",
        "--publish-delay",
        "600",
    ]));
    assert!(
        out.contains("(EdDSA) published now; it signs from"),
        "{out}"
    );
    let list = ok(&bank(&["keys", "list", "--data-dir", &dir]));
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert_eq!(lines[0], "bank-signing\tES256\tsigning");
    assert!(
        lines[1].starts_with("bank-signing-")
            && lines[1].contains("\tEdDSA\tpublished, signs from ")
    );
    let again = bank(&["keys", "rotate", "--data-dir", &dir]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("a rotation is already pending"));
}

/// The status of every payment consent in the data directory's database,
/// read beside the running bank (WAL).
fn payment_consent_statuses(conn: &rusqlite::Connection) -> Vec<String> {
    let mut st = conn
        .prepare("SELECT json_extract(body, '$.status') FROM consents WHERE id LIKE 'pdc-%'")
        .unwrap();
    st.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// kill -9 of the bank while a payment is at the core (reserved, not
/// booked): after a restart the reservation is reconciled in the
/// background and the consent is usable again; no money moved.
#[test]
fn a_bank_killed_between_reserve_and_booking_releases_the_consent_after_restart() {
    let tmp = TempDir::new("kill9");
    let dir = tmp.0.to_str().unwrap().to_owned();
    let config = init_bank(&dir, None, &["tpp-a"]);
    let (mut child, discovery, _lines) = serve(
        &config,
        &["--core-latency-ms", "3000", "--core-timeout-ms", "30000"],
    );
    let mut pay = Command::new(env!("CARGO_BIN_EXE_tpp"))
        .args([
            "--discovery",
            &discovery,
            "--server-ca",
            &format!("{dir}/scheme-ca.pem"),
            "--client-id",
            "tpp-a",
            "--certificate",
            &format!("{dir}/tpp-a.pem"),
            "--key-dir",
            &dir,
            "pay",
            "--amount",
            "25.00",
            "--creditor",
            "ACME Ltd",
            "--creditor-account",
            "08080021325698",
            "--customer",
            "alice",
            "--password",
            "alice-password",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // wait until the submission has reserved the consent (its core call
    // sleeps 3 s), then kill the bank without a chance to clean up
    let db = rusqlite::Connection::open(format!("{dir}/bank.db")).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !payment_consent_statuses(&db).contains(&"PaymentPending".to_owned()) {
        assert!(std::time::Instant::now() < deadline, "no reservation seen");
        std::thread::yield_now();
    }
    assert!(Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    child.wait().unwrap();
    let _ = pay.wait();
    assert_eq!(
        payment_consent_statuses(&db),
        vec!["PaymentPending".to_owned()]
    );

    // up again, a prompt core: the background reconciliation asks it
    let (mut child, _, _lines) = serve(&config, &["--core-timeout-ms", "1000"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while payment_consent_statuses(&db) != vec!["Authorised".to_owned()] {
        assert!(
            std::time::Instant::now() < deadline,
            "not reconciled: {:?}",
            payment_consent_statuses(&db)
        );
        std::thread::yield_now();
    }
    let conn = rusqlite::Connection::open(format!("{dir}/bank.db")).unwrap();
    let (balance, booked): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT balance FROM core_accounts WHERE id = 'acc-1'),
                    (SELECT COUNT(*) FROM core_transactions WHERE payment_ref IS NOT NULL)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((balance, booked), (100_000, 0), "no money moved");
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    assert!(child.wait().unwrap().success());
    ok(&bank(&["verify-audit", "--config", &config]));
}

/// Against a server that takes scopes alone, `tpp` chooses plain FAPI 2
/// by itself from discovery; `--mode uk-ob` forces the intent flow, which
/// that server refuses at the push.
#[test]
fn tpp_runs_plain_fapi2_where_discovery_offers_no_uk_ob_intents() {
    let tmp = TempDir::new("binaries-fapi2");
    let dir = tmp.0.to_str().unwrap().to_owned();
    let config = init_bank(&dir, None, &["tpp-a"]);
    let (mut child, discovery, _lines) = serve(&config, &["--consent-model", "scopes"]);
    let out = ok(&tpp(
        &dir,
        &discovery,
        "tpp-a",
        &["accounts", "--account", "acc-1"],
    ));
    assert!(out.contains("plain FAPI 2"), "{out}");
    assert!(out.contains("userinfo: sub alice"), "{out}");
    assert!(out.contains("balance 1000.00 GBP"), "{out}");
    let forced = tpp(&dir, &discovery, "tpp-a", &["--mode", "uk-ob", "accounts"]);
    assert!(!forced.status.success());
    let err = String::from_utf8_lossy(&forced.stderr);
    assert!(err.contains("invalid_request_object"), "{err}");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// An outside TPP's onboarding without the operator: the development
/// scheme issues it (`bank tpp issue`), it registers itself (`tpp
/// register`, RFC 7591) and runs a flow; registering twice is refused.
#[test]
fn a_tpp_issued_by_the_scheme_registers_itself_from_the_command_line() {
    let tmp = TempDir::new("binaries-dcr");
    let dir = tmp.0.to_str().unwrap().to_owned();
    let config = init_bank(&dir, None, &["tpp-a"]);
    let out = ok(&bank(&[
        "tpp", "issue", "--config", &config, "--client", "tpp-c",
    ]));
    assert!(out.contains("tpp-c.ssa.jwt"), "{out}");
    let (mut child, discovery, _lines) = serve(&config, &[]);
    let not_yet = tpp(&dir, &discovery, "tpp-c", &["accounts"]);
    assert!(!not_yet.status.success());
    let statement = format!("{dir}/tpp-c.ssa.jwt");
    let out = ok(&tpp(
        &dir,
        &discovery,
        "tpp-c",
        &["register", "--software-statement", &statement],
    ));
    let answer: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(answer["client_id"], "tpp-c", "{out}");
    assert!(answer["registration_access_token"].is_string(), "{out}");
    let out = ok(&tpp(
        &dir,
        &discovery,
        "tpp-c",
        &["accounts", "--account", "acc-1"],
    ));
    assert!(out.contains("acc-1"), "{out}");
    let again = tpp(
        &dir,
        &discovery,
        "tpp-c",
        &["register", "--software-statement", &statement],
    );
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("already registered"), "{err}");
    child.kill().unwrap();
    child.wait().unwrap();
}
