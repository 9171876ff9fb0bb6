//! Two `bank serve` processes on one PostgreSQL database, as a bank runs
//! them behind a load balancer: what one instance records (a payment, a
//! revoked TPP) is what the other enforces on the next call, with no cache
//! window, and the audit trail both wrote verifies as one chain.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::process::Command;

use common::{bank, init_bank, ok, serve, tpp, TempDir};
use fapi_examples::bank::{start_with_clock, BankConfig, RunningBank};
use fapi_examples::platform::Platform;
use fapi_examples::tpp::{PendingAuthorization, ScriptedCustomer};
use fapi_store_postgres::testing::TestDb;
use fapi_store_postgres::tokio_postgres::NoTls;
use serde_json::{json, Value};

const AISP: &str = "/open-banking/v3.1/aisp";

/// Instance A (the platform, tpp-a onboarded) on `db`, and instance B in
/// the same process on the same database under A's public URLs, as behind
/// a load balancer; `adjust` applies to both configurations.
async fn two_instances(
    db: &TestDb,
    dir: &TempDir,
    adjust: impl FnOnce(&mut BankConfig),
) -> (Platform, RunningBank) {
    let url = db.url();
    let p = Platform::start(&dir.0, &["tpp-a"], |c| {
        c.store.database = Some(url);
        adjust(c);
    })
    .await
    .unwrap();
    let mut config_b = p.config.clone();
    config_b.public_issuer = Some(p.bank.issuer.clone());
    config_b.public_api_base = Some(p.bank.api_base.clone());
    let b = start_with_clock(&config_b, p.clock.clone()).await.unwrap();
    (p, b)
}

/// An account-access consent of tpp-a for `permissions`, created and
/// pushed through instance A: its id and the pending authorization.
async fn pushed_consent(p: &Platform, permissions: Value) -> (String, PendingAuthorization) {
    pushed(
        p,
        "accounts",
        &format!("{AISP}/account-access-consents"),
        &json!({ "Data": { "Permissions": permissions }, "Risk": {} }),
        None,
    )
    .await
}

/// A consent of tpp-a created at `path` with `body` under a
/// client-credentials token of `scope` (with `idempotency_key`, signed as
/// payment calls are), and its authorization request for `openid {scope}`
/// pushed, all through instance A: its id and the pending authorization.
async fn pushed(
    p: &Platform,
    scope: &str,
    path: &str,
    body: &Value,
    idempotency_key: Option<&str>,
) -> (String, PendingAuthorization) {
    let tpp_a = &p.tpps[0];
    let cc = tpp_a.client_credentials(scope).await.unwrap();
    let created = tpp_a
        .post_json(
            &format!("{}{path}", p.bank.api_base),
            &cc,
            body,
            idempotency_key,
        )
        .await
        .unwrap();
    assert_eq!(created.status, 201);
    let consent = created.json()["Data"]["ConsentId"]
        .as_str()
        .unwrap()
        .to_owned();
    let pending = tpp_a
        .push_authorization(&consent, &format!("openid {scope}"))
        .await
        .unwrap();
    (consent, pending)
}

fn alice(p: &Platform) -> ScriptedCustomer<'_> {
    ScriptedCustomer {
        browser: &p.browser,
        username: "alice",
        password: "alice-password",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_bank_instances_on_one_database_enforce_each_others_writes() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    let url = db.url();
    let tmp = TempDir::new("pg-instances");
    let dir = tmp.0.to_str().unwrap().to_owned();
    let config = init_bank(&dir, Some(&url), &["tpp-a", "tpp-b"]);
    // two instances, one database
    let (mut a, discovery_a, _la) = serve(&config, &["--database", &url]);
    let (mut b, discovery_b, _lb) = serve(&config, &["--database", &url]);
    assert_ne!(discovery_a, discovery_b);

    // a payment through A is what B's account read shows
    let out = ok(&tpp(
        &dir,
        &discovery_a,
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
        &discovery_b,
        "tpp-a",
        &["accounts", "--account", "acc-1"],
    ));
    assert!(out.contains("balance 987.66 GBP"), "{out}");

    // a TPP revoked in the database: both instances refuse its next call
    assert!(ok(&tpp(&dir, &discovery_a, "tpp-b", &["accounts"])).contains("acc-1"));
    assert!(ok(&tpp(&dir, &discovery_b, "tpp-b", &["accounts"])).contains("acc-1"));
    ok(&bank(&[
        "tpp",
        "revoke",
        "--config",
        &config,
        "--database",
        &url,
        "--client",
        "tpp-b",
    ]));
    for discovery in [&discovery_a, &discovery_b] {
        let out = tpp(&dir, discovery, "tpp-b", &["accounts"]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("invalid_client"), "{err}");
    }
    // the twin: the other TPP is still served by both
    assert!(ok(&tpp(&dir, &discovery_b, "tpp-a", &["accounts"])).contains("acc-1"));

    for child in [&mut a, &mut b] {
        let pid = child.id().to_string();
        assert!(Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success());
        assert!(child.wait().unwrap().success());
    }
    // both instances appended to one chain; their final checkpoints verify
    let out = ok(&bank(&[
        "verify-audit",
        "--config",
        &config,
        "--database",
        &url,
    ]));
    assert!(out.contains("verified"), "{out}");
}

/// Two bank instances in one process on one database, the second serving
/// under the first's public URLs (as behind a load balancer): a consent
/// the customer revokes on instance A's dashboard is refused on the very
/// next call to instance B, with no cache window; before that, B served
/// A's token.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_consent_revoked_on_one_instance_is_refused_on_the_other_at_once() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    let dir = TempDir::new("pg-revoke");
    let (p, b) = two_instances(&db, &dir, |_| {}).await;
    let b_api = format!("https://{}:{}", p.config.public_host, b.api_addr.port());
    assert_ne!(b_api, p.bank.api_base);

    // consent, PAR, login and approval, token: all through instance A
    let tpp_a = &p.tpps[0];
    let (consent, pending) =
        pushed_consent(&p, json!(["ReadAccountsDetail", "ReadBalances"])).await;
    let alice = alice(&p);
    let location = alice
        .authorize(&pending.authorization_url, &["acc-1"], true)
        .await
        .unwrap();
    let tokens = tpp_a.complete(&pending, &location).await.unwrap();

    // instance B serves A's token
    let on_b = tpp_a
        .get(&format!("{b_api}{AISP}/accounts"), &tokens.access_token)
        .await
        .unwrap();
    assert_eq!(on_b.status, 200, "{}", String::from_utf8_lossy(&on_b.body));

    // the TPP revokes a token at A's /revoke (RFC 7009): B refuses its
    // next use, and still serves the token that was not revoked
    let refreshed = tpp_a
        .refresh(tokens.refresh_token.as_deref().unwrap())
        .await
        .unwrap();
    let call = |token: String| {
        let url = format!("{b_api}{AISP}/accounts");
        async move { tpp_a.get(&url, &token).await.unwrap().status }
    };
    assert_eq!(call(refreshed.clone()).await, 200);
    tpp_a.revoke_token(&refreshed).await.unwrap();
    assert_eq!(call(refreshed).await, 401);
    assert_eq!(call(tokens.access_token.clone()).await, 200);

    // one tap on A's dashboard; the next call on B is refused
    alice
        .revoke_on_dashboard(p.customer_base(), &consent)
        .await
        .unwrap();
    let after = tpp_a
        .get(&format!("{b_api}{AISP}/accounts"), &tokens.access_token)
        .await
        .unwrap();
    assert_eq!(after.status, 403);
    assert_eq!(
        after.json()["Errors"][0]["ErrorCode"],
        "UK.OBIE.Resource.InvalidConsentStatus"
    );
    b.stop().await;
}

/// One authorization code redeemed concurrently through both instances
/// (300 requests, alternating): exactly one gets tokens, every other is
/// `invalid_grant`. Over HTTP the window is narrow: without the code row's
/// lock this caught two winners in one of two runs; the store's own kit
/// (1,000 racing redemptions) is what fails every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_code_redeemed_through_two_instances_gives_tokens_once() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    let dir = TempDir::new("pg-code-race");
    // the per-client rate limit would answer most of the race with 429
    let (p, b) = two_instances(&db, &dir, |c| {
        c.rate_limit_per_second = 0;
    })
    .await;
    let token_endpoints = [
        format!("{}/token", p.bank.api_base),
        format!(
            "https://{}:{}/token",
            p.config.public_host,
            b.api_addr.port()
        ),
    ];

    let tpp_a = &p.tpps[0];
    let (_, pending) = pushed_consent(&p, json!(["ReadAccountsDetail"])).await;
    let alice = alice(&p);
    let location = alice
        .authorize(&pending.authorization_url, &["acc-1"], true)
        .await
        .unwrap();
    let code = tpp_a.verify_response(&pending, &location).await.unwrap();

    let outcomes = futures_util::future::join_all(
        (0..300).map(|i| tpp_a.exchange_code_at(&token_endpoints[i % 2], &code, &pending.verifier)),
    )
    .await;
    let won: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
    assert_eq!(
        won.len(),
        1,
        "{} of {} redemptions won",
        won.len(),
        outcomes.len()
    );
    for e in outcomes.iter().filter_map(|o| o.as_ref().err()) {
        assert_eq!(e.error_code().as_deref(), Some("invalid_grant"), "{e:?}");
    }
    b.stop().await;
}

/// `loadgen` given both instances' discovery URLs spreads whole flows over
/// them and sums their CPU.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_spreads_flows_over_two_instances() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    let url = db.url();
    let tmp = TempDir::new("pg-loadgen");
    let dir = tmp.0.to_str().unwrap().to_owned();
    let config = init_bank(&dir, Some(&url), &["tpp-a"]);
    let flags = [
        "--database",
        url.as_str(),
        "--rate-limit",
        "0",
        "--customer-rate-limit",
        "0",
    ];
    let (mut a, discovery_a, _la) = serve(&config, &flags);
    let (mut b, discovery_b, _lb) = serve(&config, &flags);
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "--discovery",
            &discovery_a,
            "--discovery",
            &discovery_b,
            "--server-ca",
            &format!("{dir}/scheme-ca.pem"),
            "--client-id",
            "tpp-a",
            "--certificate",
            &format!("{dir}/tpp-a.pem"),
            "--key-dir",
            &dir,
            "--flows",
            "6",
            "--concurrency",
            "2",
            "--calls",
            "20",
            "--bank-pid",
            &a.id().to_string(),
            "--bank-pid",
            &b.id().to_string(),
        ])
        .output()
        .unwrap();
    for child in [&mut a, &mut b] {
        let _ = child.kill();
        let _ = child.wait();
    }
    let text = ok(&out);
    for expected in [
        "across 2 bank instance(s)",
        &format!("3 flows completed on {discovery_a}"),
        &format!("3 flows completed on {discovery_b}"),
        "bank CPU per complete flow",
    ] {
        assert!(text.contains(expected), "missing {expected:?}:\n{text}");
    }
}

/// `kill -9` of one instance while both serve payments: the other keeps
/// serving every one of its payments; the killed one restarts on the same
/// database and serves again; every acknowledged payment is booked once;
/// the audit trail both wrote (and the restarted one continued) verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_killed_under_load_loses_nothing_acknowledged() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    let url = db.url();
    let tmp = TempDir::new("pg-kill9");
    let dir = tmp.0.to_str().unwrap().to_owned();
    let config = init_bank(&dir, Some(&url), &["tpp-a"]);
    let flags = [
        "--database",
        url.as_str(),
        "--rate-limit",
        "0",
        "--customer-rate-limit",
        "0",
    ];
    let (mut a, discovery_a, _la) = serve(&config, &flags);
    let (mut b, discovery_b, _lb) = serve(&config, &flags);

    // payers: two against A, two against B, four payments each; a payer
    // on A reports each acknowledged payment
    let pay = |dir: String, discovery: String, acks: Option<std::sync::mpsc::Sender<()>>| {
        move || {
            (0..4)
                .map(|_| {
                    let out = tpp(
                        &dir,
                        &discovery,
                        "tpp-a",
                        &[
                            "pay",
                            "--amount",
                            "1.00",
                            "--creditor",
                            "ACME Ltd",
                            "--creditor-account",
                            "08080021325698",
                        ],
                    );
                    let acked = out.status.success()
                        && String::from_utf8_lossy(&out.stdout)
                            .contains("AcceptedSettlementInProcess");
                    if let (true, Some(tx)) = (acked, &acks) {
                        let _ = tx.send(());
                    }
                    acked
                })
                .collect::<Vec<bool>>()
        }
    };
    let (acks_a, first_on_a) = std::sync::mpsc::channel::<()>();
    let on_a: Vec<_> = (0..2)
        .map(|_| std::thread::spawn(pay(dir.clone(), discovery_a.clone(), Some(acks_a.clone()))))
        .collect();
    let on_b: Vec<_> = (0..2)
        .map(|_| std::thread::spawn(pay(dir.clone(), discovery_b.clone(), None)))
        .collect();
    // kill A at its first acknowledged payment: the other payer's payment
    // and the rest of this one's are in flight or still to come
    first_on_a.recv().unwrap();
    assert!(Command::new("kill")
        .args(["-9", &a.id().to_string()])
        .status()
        .unwrap()
        .success());
    let _ = a.wait();
    let mut acknowledged = 0;
    for t in on_a {
        acknowledged += t.join().unwrap().into_iter().filter(|ok| *ok).count();
    }
    for t in on_b {
        let results = t.join().unwrap();
        // the surviving instance served every payment sent to it
        assert!(results.iter().all(|ok| *ok), "{results:?}");
        acknowledged += results.len();
    }

    // A restarts on the same database and serves again
    let (mut a2, discovery_a2, _la2) = serve(&config, &flags);
    assert!(ok(&tpp(&dir, &discovery_a2, "tpp-a", &["accounts"])).contains("acc-1"));

    // a submission A was killed in may have booked at the core without
    // recording its payment: its reservation is settled by reconciliation
    // (no later than the core timeout plus one sweep period, 10 s), so
    // the count below waits for no reservation to be pending, up to a
    // generous deadline; without the wait the counts raced it
    let store = db.store().await;
    let client = store.pool().get().await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let pending: i64 = client
            .query_one(
                "SELECT count(*) FROM fapi_consents WHERE status = 'PaymentPending'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if pending == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{pending} payment reservations still pending after 60 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    // every acknowledged payment is booked, each once
    let booked: i64 = client
        .query_one(
            "SELECT count(*) FROM core_transactions WHERE payment_ref IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let payments: i64 = client
        .query_one("SELECT count(*) FROM fapi_payments", &[])
        .await
        .unwrap()
        .get(0);
    let acknowledged = i64::try_from(acknowledged).unwrap();
    assert!(
        booked >= acknowledged,
        "{booked} booked, {acknowledged} acknowledged"
    );
    assert_eq!(booked, payments);

    for child in [&mut a2, &mut b] {
        assert!(Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap()
            .success());
        assert!(child.wait().unwrap().success());
    }
    let out = ok(&bank(&[
        "verify-audit",
        "--config",
        &config,
        "--database",
        &url,
    ]));
    assert!(out.contains("verified"), "{out}");
}

/// One pushed request approved concurrently through both instances' consent
/// pages (16 customer sessions, alternating): the `request_uri` is taken
/// once, so exactly one approval yields a code. An end-to-end check: the
/// decisions arrive spread out, so what fails when the store's take loses
/// its guards (row lock and conditional update) is the store test with 200
/// simultaneous takes (fapi-store-postgres `tests/directory.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_request_uri_approved_through_two_instances_yields_one_code() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    let dir = TempDir::new("pg-par-race");
    let (p, b) = two_instances(&db, &dir, |c| {
        c.customer_rate_limit_per_second = 0;
    })
    .await;
    let b_customer = format!(
        "https://{}:{}",
        p.config.public_host,
        b.customer_addr.port()
    );

    let tpp_a = &p.tpps[0];
    let (_, pending) = pushed_consent(&p, json!(["ReadAccountsDetail"])).await;
    // the same authorization URL on instance B's customer listener
    let on_b = pending
        .authorization_url
        .replacen(&p.bank.issuer, &b_customer, 1);
    assert_ne!(on_b, pending.authorization_url);
    let alice = alice(&p);
    let attempts = futures_util::future::join_all((0..16).map(|i| {
        let url = if i % 2 == 0 {
            pending.authorization_url.clone()
        } else {
            on_b.clone()
        };
        let alice = &alice;
        async move { alice.authorize(&url, &["acc-1"], true).await }
    }))
    .await;
    let mut codes = 0;
    for location in attempts.iter().filter_map(|a| a.as_ref().ok()) {
        if tpp_a.verify_response(&pending, location).await.is_ok() {
            codes += 1;
        }
    }
    assert_eq!(codes, 1, "{attempts:?}");
    // both instances took part: each answered the decisions it received
    // (with the code, or with an error for a request already taken)
    for side in [0, 1] {
        let answered = attempts
            .iter()
            .enumerate()
            .filter(|(i, a)| i % 2 == side && a.is_ok())
            .count();
        assert!(answered >= 1, "instance {side} answered no decision");
    }
    b.stop().await;
}

/// `bank serve --database-ca`: every connection of the instance is TLS
/// (the server's own statistics say so) and a flow completes over them;
/// `verify-audit` with a CA that did not sign the server's certificate is
/// refused before any statement, beside its twin with the right CA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bank_instance_reaches_its_database_over_tls() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    let Some(tls) = db.tls().await else {
        return;
    };
    let tmp = TempDir::new("pg-tls");
    let dir = tmp.0.to_str().unwrap().to_owned();
    // onboarding over plaintext, serving over TLS: one database
    let config = init_bank(&dir, Some(&db.url()), &["tpp-a"]);
    let ca = format!("{dir}/database-ca.pem");
    std::fs::write(&ca, &tls.ca_pem).unwrap();
    let app = format!("fapi-tls-{}", db.schema());
    let tls_url = format!("{}&application_name={app}", tls.url);
    let (mut child, discovery, _lines) =
        serve(&config, &["--database", &tls_url, "--database-ca", &ca]);
    let out = ok(&tpp(&dir, &discovery, "tpp-a", &["accounts"]));
    assert!(out.contains("acc-1"), "{out}");

    let (client, connection) = db.config().connect(NoTls).await.unwrap();
    tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE s.ssl) \
             FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
             WHERE a.application_name = $1",
            &[&app],
        )
        .await
        .unwrap();
    let (all, encrypted): (i64, i64) = (row.get(0), row.get(1));
    assert!(all > 0, "the instance holds connections");
    assert_eq!(all, encrypted, "every connection of the instance is TLS");
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    assert!(child.wait().unwrap().success());

    let verify = |ca: &str| {
        bank(&[
            "verify-audit",
            "--config",
            &config,
            "--database",
            &tls.url,
            "--database-ca",
            ca,
        ])
    };
    assert!(ok(&verify(&ca)).contains("verified"));
    // another CA: the handshake fails, the message says why
    let stranger = format!("{dir}/scheme-ca.pem");
    let out = verify(&stranger);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid peer certificate"), "{err}");
}

/// One authorised payment consent submitted concurrently through both
/// instances (64 submissions, alternating, each with its own idempotency
/// key): the consent's reservation is taken once, so exactly one payment
/// is booked and the account is debited once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_payment_consent_submitted_through_two_instances_pays_once() {
    const PISP: &str = "/open-banking/v3.1/pisp";
    let Some(db) = TestDb::new().await else {
        return;
    };
    let dir = TempDir::new("pg-pay-race");
    let (p, b) = two_instances(&db, &dir, |c| c.rate_limit_per_second = 0).await;
    let b_api = format!("https://{}:{}", p.config.public_host, b.api_addr.port());
    let tpp_a = &p.tpps[0];
    let initiation =
        fapi_examples::tpp::initiation("instr-2i", "25.00", "ACME Ltd", "08080021325698", "INV-2I");
    let (consent, pending) = pushed(
        &p,
        "payments",
        &format!("{PISP}/domestic-payment-consents"),
        &json!({ "Data": { "Initiation": initiation }, "Risk": {} }),
        Some("consent-2i"),
    )
    .await;
    let location = alice(&p)
        .authorize(&pending.authorization_url, &["acc-1"], true)
        .await
        .unwrap();
    let token = tpp_a
        .complete(&pending, &location)
        .await
        .unwrap()
        .access_token;

    let body = json!({ "Data": { "ConsentId": consent, "Initiation": initiation }, "Risk": {} });
    let statuses = futures_util::future::join_all((0..64).map(|i| {
        let base = if i % 2 == 0 { &p.bank.api_base } else { &b_api };
        let url = format!("{base}{PISP}/domestic-payments");
        let (token, body) = (&token, &body);
        async move {
            tpp_a
                .post_json(&url, token, body, Some(&format!("race-2i-{i}")))
                .await
                .unwrap()
                .status
        }
    }))
    .await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [201, 403, 409].contains(s)),
        "{statuses:?}"
    );
    // one debit, seen from both instances
    let (_, ais) = pushed_consent(&p, json!(["ReadAccountsDetail", "ReadBalances"])).await;
    let location = alice(&p)
        .authorize(&ais.authorization_url, &["acc-1"], true)
        .await
        .unwrap();
    let read = tpp_a.complete(&ais, &location).await.unwrap().access_token;
    for base in [&p.bank.api_base, &b_api] {
        let r = tpp_a
            .get(&format!("{base}{AISP}/accounts/acc-1/balances"), &read)
            .await
            .unwrap();
        assert_eq!(
            r.json()["Data"]["Balance"][0]["Amount"]["Amount"],
            "975.00",
            "{base}"
        );
    }
    b.stop().await;
}
