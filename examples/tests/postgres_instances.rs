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

use common::{bank, ok, serve, tpp, TempDir};
use fapi_store_postgres::testing::TestDb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_bank_instances_on_one_database_enforce_each_others_writes() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    let url = db.url();
    let tmp = TempDir::new("pg-instances");
    let dir = tmp.0.to_str().unwrap().to_owned();
    ok(&bank(&["init", "--data-dir", &dir]));
    let config = format!("{dir}/bank.json");
    for t in ["tpp-a", "tpp-b"] {
        let out = ok(&bank(&[
            "tpp",
            "onboard",
            "--config",
            &config,
            "--database",
            &url,
            "--software-statement",
            &format!("{dir}/{t}.ssa.jwt"),
            "--certificate",
            &format!("{dir}/{t}.pem"),
        ]));
        assert!(out.contains(&format!("onboarded {t}")), "{out}");
    }
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
