//! Cost stays flat as stored data grows: no statement the request paths
//! run scans a table (every statement of real flows is recorded and its
//! `EXPLAIN QUERY PLAN` checked), and expired rows go in the background,
//! exactly at their edges, never consents or the audit trail.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use fapi_consent::Permission;
use std::collections::BTreeSet;
use std::sync::Mutex;

use common::TempDir;
use fapi_consent::idempotency::{
    Begin, IdempotencyKey, IdempotencyStore, StoredResponse, WINDOW_SECS,
};
use fapi_core::ClientId;
use fapi_core::{Clock, UnixTime};
use fapi_examples::platform::Platform;
use fapi_examples::sqlite::SqliteDb;
use fapi_examples::tpp::{initiation, ScriptedCustomer};
use fapi_store_sqlite::{CODE_MEMORY_SECS, PUSHED_REQUEST_MEMORY_SECS, REVOKED_TOKEN_MEMORY_SECS};
use rusqlite::{params, Connection};
use serde_json::json;

const AISP: &str = "/open-banking/v3.1/aisp";
const PISP: &str = "/open-banking/v3.1/pisp";

/// Tables whose size is bounded by configuration, not by traffic: a scan
/// of one costs the same after a million flows.
const SMALL_TABLES: &[&str] = &["signing_keys"];

static STATEMENTS: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

fn record(sql: &str) {
    STATEMENTS.lock().unwrap().insert(sql.trim().to_owned());
}

/// The `SCAN` steps of `sql`'s query plan over tables that grow.
fn scans(conn: &Connection, sql: &str) -> Vec<String> {
    let mut st = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    // the plan does not depend on the values: every parameter NULL
    let nulls = vec![rusqlite::types::Null; st.parameter_count()];
    let details: Vec<String> = st
        .query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    details
        .into_iter()
        .filter(|d| {
            d.strip_prefix("SCAN ").is_some_and(|rest| {
                let table = rest.split_whitespace().next().unwrap_or_default();
                table != "CONSTANT" && !SMALL_TABLES.contains(&table)
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_statement_on_a_request_path_scans_a_growing_table() {
    let dir = TempDir::new("plans");
    let p = Platform::start(&dir.0, &["tpp-a"], |_| {}).await.unwrap();
    let a = &p.tpps[0];
    let api = &p.bank.api_base;
    p.bank
        .stores
        .sqlite()
        .unwrap()
        .store()
        .trace_statements(Some(record));

    // account information: consent, PAR, login and consent pages, JARM,
    // token, reads, refresh, the dashboard's revoke
    let cc = a.client_credentials("accounts").await.unwrap();
    let r = a
        .post_json(
            &format!("{api}{AISP}/account-access-consents"),
            &cc,
            &json!({ "Data": { "Permissions": ["ReadAccountsDetail", "ReadBalances", "ReadTransactionsDetail", "ReadTransactionsCredits", "ReadTransactionsDebits"] }, "Risk": {} }),
            None,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201);
    let consent = r.json()["Data"]["ConsentId"].as_str().unwrap().to_owned();
    let alice = ScriptedCustomer {
        browser: &p.browser,
        username: "alice",
        password: "alice-password",
    };
    let pending = a
        .push_authorization(&consent, "openid accounts")
        .await
        .unwrap();
    let location = alice
        .authorize(&pending.authorization_url, &["acc-1"], true)
        .await
        .unwrap();
    let tokens = a.complete(&pending, &location).await.unwrap();
    for path in [
        "/accounts",
        "/accounts/acc-1",
        "/accounts/acc-1/balances",
        "/accounts/acc-1/transactions",
    ] {
        let r = a
            .get(&format!("{api}{AISP}{path}"), &tokens.access_token)
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{path}");
    }
    let r = a
        .get(
            &format!("{api}{AISP}/account-access-consents/{consent}"),
            &cc,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    a.refresh(tokens.refresh_token.as_deref().unwrap())
        .await
        .unwrap();

    // a payment: consent, authorisation, submission, reads
    let cc = a.client_credentials("payments").await.unwrap();
    let body = initiation("plan-1", "5.00", "ACME Ltd", "08080021325698", "INV-9");
    let r = a
        .post_json(
            &format!("{api}{PISP}/domestic-payment-consents"),
            &cc,
            &json!({ "Data": { "Initiation": body }, "Risk": {} }),
            Some("plan-consent"),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201);
    let pay_consent = r.json()["Data"]["ConsentId"].as_str().unwrap().to_owned();
    let pending = a
        .push_authorization(&pay_consent, "openid payments")
        .await
        .unwrap();
    let location = alice
        .authorize(&pending.authorization_url, &["acc-1"], true)
        .await
        .unwrap();
    let pay = a.complete(&pending, &location).await.unwrap();
    let r = a
        .post_json(
            &format!("{api}{PISP}/domestic-payments"),
            &pay.access_token,
            &json!({ "Data": { "ConsentId": pay_consent, "Initiation": body }, "Risk": {} }),
            Some("plan-pay"),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let id = r.json()["Data"]["DomesticPaymentId"]
        .as_str()
        .unwrap()
        .to_owned();
    for path in [
        format!("/domestic-payments/{id}"),
        format!("/domestic-payments/{id}/authorisation-record"),
    ] {
        let r = a
            .get(&format!("{api}{PISP}{path}"), &pay.access_token)
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{path}");
    }
    alice
        .revoke_on_dashboard(&p.bank.issuer, &consent)
        .await
        .unwrap();
    // and the checkpoint the running bank signs every minute
    p.bank.checkpoint().await;
    p.bank
        .stores
        .sqlite()
        .unwrap()
        .store()
        .trace_statements(None);

    let statements = STATEMENTS.lock().unwrap().clone();
    let plans = Connection::open(dir.0.join("bank.db")).unwrap();
    let tables_seen: BTreeSet<&str> = [
        "jti",
        "idempotency",
        "consents",
        "codes",
        "clients",
        "refresh_tokens",
        "revoked_tokens",
        "payments",
        "pushed_requests",
        "audit",
        "login_attempts",
    ]
    .into_iter()
    .filter(|t| statements.iter().any(|s| s.contains(t)))
    .collect();
    // the flows reached every kind of state the bank keeps per request
    assert_eq!(tables_seen.len(), 11, "{statements:#?}");
    let mut offending = Vec::new();
    for sql in &statements {
        let upper = sql.to_ascii_uppercase();
        if !(upper.starts_with("SELECT")
            || upper.starts_with("INSERT")
            || upper.starts_with("UPDATE")
            || upper.starts_with("DELETE"))
        {
            continue; // BEGIN, COMMIT, PRAGMA
        }
        let found = scans(&plans, sql);
        if !found.is_empty() {
            offending.push(format!("{sql}\n    -> {found:?}"));
        }
    }
    assert!(
        offending.is_empty(),
        "statements that scan a growing table:\n{}",
        offending.join("\n")
    );
    p.bank.stop().await;
}

/// The twin: the check finds a scan where there is one.
#[test]
fn the_plan_check_sees_a_scan() {
    let dir = TempDir::new("plans-twin");
    std::fs::create_dir_all(&dir.0).unwrap();
    let _db = SqliteDb::open(&dir.0.join("bank.db")).unwrap();
    let conn = Connection::open(dir.0.join("bank.db")).unwrap();
    assert_eq!(
        scans(&conn, "SELECT body FROM consents WHERE body LIKE ?1").len(),
        1
    );
    assert!(scans(&conn, "SELECT body FROM consents WHERE id = ?1").is_empty());
}

#[test]
fn the_sweep_deletes_expired_rows_exactly_at_their_edges_and_nothing_else() {
    let dir = TempDir::new("sweep");
    std::fs::create_dir_all(&dir.0).unwrap();
    let db = SqliteDb::open(&dir.0.join("bank.db")).unwrap();
    let now = 1_800_000_000;
    let conn = Connection::open(dir.0.join("bank.db")).unwrap();
    // for each table: one row at the edge (swept), one a second later (kept)
    for (i, (at, next)) in [(now, now + 1)].iter().enumerate() {
        conn.execute_batch(&format!(
            "INSERT INTO jti VALUES ('s', 'a{i}', {at}), ('s', 'b{i}', {next});
             INSERT INTO idempotency (client_id, key, body_hash, expires_at) VALUES ('c', 'a{i}', x'00', {at}), ('c', 'b{i}', x'00', {next});
             INSERT INTO pushed_requests VALUES (x'01', 'c', {p}, 0, '{{}}'), (x'02', 'c', {pn}, 0, '{{}}');
             INSERT INTO codes VALUES (x'01', '{{}}', {c}), (x'02', '{{}}', {cn});
             INSERT INTO revoked_tokens VALUES ('a{i}', {r}), ('b{i}', {rn});
             INSERT INTO consents VALUES ('old', 'alice', 0, 1, '{{}}');
             INSERT INTO audit VALUES (1, 'x', 'y', '{{}}');",
            p = at - PUSHED_REQUEST_MEMORY_SECS,
            pn = next - PUSHED_REQUEST_MEMORY_SECS,
            c = at - CODE_MEMORY_SECS,
            cn = next - CODE_MEMORY_SECS,
            r = at - REVOKED_TOKEN_MEMORY_SECS,
            rn = next - REVOKED_TOKEN_MEMORY_SECS,
        ))
        .unwrap();
    }
    let swept = futures_executor::block_on(db.store().sweep_expired(
        UnixTime::from_secs(now).unwrap(),
        500,
        10,
    ))
    .unwrap();
    assert_eq!(
        (
            swept.jti,
            swept.idempotency,
            swept.pushed_requests,
            swept.codes,
            swept.revoked_tokens
        ),
        (1, 1, 1, 1, 1)
    );
    for table in [
        "jti",
        "idempotency",
        "pushed_requests",
        "codes",
        "revoked_tokens",
    ] {
        let left: i64 = conn
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 1, "{table}: the row a second short of its edge stays");
    }
    for table in ["consents", "audit"] {
        let left: i64 = conn
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 1, "{table} is never swept");
    }
    // each sweep statement goes through its expiry index
    for (table, column) in [
        ("jti", "expires_at"),
        ("idempotency", "expires_at"),
        ("pushed_requests", "expires_at"),
        ("codes", "expires_at"),
        ("revoked_tokens", "revoked_at"),
    ] {
        let sql = format!(
            "DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} WHERE {column} <= ?1 LIMIT ?2)"
        );
        assert!(scans(&conn, &sql).is_empty(), "{sql}");
    }
    // a second later the rest goes; batches are bounded
    let swept = futures_executor::block_on(db.store().sweep_expired(
        UnixTime::from_secs(now + 1).unwrap(),
        1,
        1,
    ))
    .unwrap();
    assert_eq!(swept.total(), 5);
}

#[test]
fn a_batch_bound_leaves_the_rest_for_the_next_sweep() {
    let dir = TempDir::new("sweep-batch");
    std::fs::create_dir_all(&dir.0).unwrap();
    let db = SqliteDb::open(&dir.0.join("bank.db")).unwrap();
    let conn = Connection::open(dir.0.join("bank.db")).unwrap();
    for i in 0..25 {
        conn.execute(
            "INSERT INTO jti VALUES ('s', ?1, 10)",
            params![format!("j{i}")],
        )
        .unwrap();
    }
    let at = UnixTime::from_secs(100).unwrap();
    assert_eq!(
        futures_executor::block_on(db.store().sweep_expired(at, 10, 2))
            .unwrap()
            .jti,
        20
    );
    assert_eq!(
        futures_executor::block_on(db.store().sweep_expired(at, 10, 2))
            .unwrap()
            .jti,
        5
    );
    assert_eq!(
        futures_executor::block_on(db.store().sweep_expired(at, 10, 2))
            .unwrap()
            .jti,
        0
    );
}

#[tokio::test]
async fn a_key_past_its_window_is_new_without_a_sweep() {
    let dir = TempDir::new("idem-window");
    std::fs::create_dir_all(&dir.0).unwrap();
    let db = SqliteDb::open(&dir.0.join("bank.db")).unwrap();
    let db = db.store().idempotency();
    let client = ClientId::try_from("tpp-a").unwrap();
    let key = IdempotencyKey::parse("k-1").unwrap();
    let t0 = fapi_core::SystemClock.now();
    assert!(matches!(
        db.begin(&client, &key, [1; 32], t0).await.unwrap(),
        Begin::New
    ));
    db.complete(
        &client,
        &key,
        StoredResponse {
            status: 201,
            body: b"{}".to_vec(),
        },
    )
    .await
    .unwrap();
    // within the window: the same response back
    let last = t0.saturating_add(WINDOW_SECS - 1);
    assert!(matches!(
        db.begin(&client, &key, [1; 32], last).await.unwrap(),
        Begin::Replay(_)
    ));
    // at its end: a new request, although no sweep has run
    let end = t0.saturating_add(WINDOW_SECS);
    assert!(matches!(
        db.begin(&client, &key, [2; 32], end).await.unwrap(),
        Begin::New
    ));
}

/// A customer with thousands of consents: the dashboard shows them newest
/// first, 20 a page, each page read through the paging index, and the
/// links walk all of them once; a forged link is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_pages_thousands_of_consents_newest_first() {
    use fapi_consent::consent::{AccountAccessRequest, Actor};
    use fapi_consent::{Consent, ConsentEvent, EventKind};
    let dir = TempDir::new("dash-pages");
    let p = Platform::start(&dir.0, &["tpp-a"], |c| c.customer_rate_limit_per_second = 0)
        .await
        .unwrap();
    let now = p.clock.now();
    let client = ClientId::try_from("tpp-a").unwrap();
    let total = 2_000;
    for i in 0..total {
        // two consents per second: ties on created_at are ordered by id
        let at = now.saturating_sub(i64::from(total - i) / 2 + 10);
        let id = fapi_core::ConsentId::try_from(format!("aac-page-{i:05}")).unwrap();
        let c = Consent::account_access(
            id,
            client.clone(),
            &AccountAccessRequest {
                permissions: vec![Permission::ReadAccountsBasic],
                ..Default::default()
            },
            at,
        )
        .unwrap()
        .apply(ConsentEvent {
            kind: EventKind::Authorise {
                customer_id: "alice".into(),
                accounts: vec!["acc-1".into()],
            },
            actor: Actor::Customer("alice".into()),
            reason: "test".into(),
            at,
        })
        .unwrap();
        p.bank.stores.consents.create(c).await.unwrap();
    }
    let alice = ScriptedCustomer {
        browser: &p.browser,
        username: "alice",
        password: "alice-password",
    };
    p.bank
        .stores
        .sqlite()
        .unwrap()
        .store()
        .trace_statements(Some(record));
    let (cookie, pages) = alice.dashboard_pages(&p.bank.issuer, 1_000).await.unwrap();
    p.bank
        .stores
        .sqlite()
        .unwrap()
        .store()
        .trace_statements(None);
    // every page, the first and those after a cursor, seeks the index
    let plans = Connection::open(dir.0.join("bank.db")).unwrap();
    let paging: Vec<String> = STATEMENTS
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.contains("FROM consents WHERE customer_id"))
        .cloned()
        .collect();
    assert!(
        paging.iter().any(|s| s.contains("(created_at, id) <")),
        "{paging:?}"
    );
    for sql in &paging {
        assert!(scans(&plans, sql).is_empty(), "{sql}");
    }
    assert_eq!(pages.len(), total as usize / 20);
    // each id in the order the pages show it (it also appears in forms)
    let mut listed: Vec<String> = Vec::new();
    for page in &pages {
        for (i, _) in page.match_indices("<tr><td>aac-page-") {
            listed.push(page.get(i + 8..i + 22).unwrap().to_owned());
        }
    }
    assert_eq!(
        listed.len(),
        total as usize,
        "each consent on exactly one page"
    );
    let expected: Vec<String> = (0..total)
        .rev()
        .map(|i| format!("aac-page-{i:05}"))
        .collect();
    let first_difference = listed.iter().zip(&expected).position(|(a, b)| a != b);
    assert_eq!(first_difference, None, "newest first");
    assert!(pages[0].contains("Older consents") && !pages[0].contains("Newest consents"));
    assert!(!pages.last().unwrap().contains("Older consents"));
    // a forged or malformed cursor is refused, not interpreted
    for bad in [
        "after=x",
        "after=12.",
        "after=1.a&after=2.b",
        "page=2",
        "after=-1.aac-1",
    ] {
        let r = p
            .browser
            .get(format!("{}/dashboard?{bad}", p.bank.issuer))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
    p.bank.stop().await;
}

/// `bank prefill` (the growth benchmark's store) writes each flow's rows
/// through the store code: every table gains one flow's worth per flow,
/// the consents read back authorised, and the audit chain still verifies.
#[test]
fn prefill_writes_a_flows_rows_per_flow_and_keeps_the_chain() {
    let dir = TempDir::new("prefill");
    std::fs::create_dir_all(&dir.0).unwrap();
    let db = SqliteDb::open(&dir.0.join("bank.db")).unwrap();
    let now = UnixTime::from_secs(1_900_000_000).unwrap();
    let client = ClientId::try_from("tpp-a").unwrap();
    let reported = Mutex::new(Vec::new());
    let stores = fapi_examples::stores::Stores::of_sqlite(db.clone());
    futures_executor::block_on(fapi_examples::bank::prefill::prefill(
        &stores,
        &client,
        25,
        now,
        8,
        &|n| reported.lock().unwrap().push(n),
    ))
    .unwrap();
    assert!(
        reported.lock().unwrap().is_empty(),
        "progress only every 10,000 flows"
    );
    let conn = Connection::open(dir.0.join("bank.db")).unwrap();
    let count = |table: &str| -> i64 {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(count("consents"), 25);
    assert_eq!(count("audit"), 50, "created and authorised, each audited");
    assert_eq!(count("codes"), 25);
    assert_eq!(count("jti"), 75);
    assert_eq!(count("pushed_requests"), 25);
    assert_eq!(count("refresh_tokens"), 25);
    let authorised: i64 = conn
        .query_row(
            "SELECT count(*) FROM consents WHERE json_extract(body, '$.status') = 'Authorised'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(authorised, 25);
    // nothing expires while a measurement runs
    let swept =
        futures_executor::block_on(db.store().sweep_expired(now.saturating_add(3_600), 500, 10))
            .unwrap();
    assert_eq!(swept.jti + swept.codes + swept.pushed_requests, 0);
    let entries = futures_executor::block_on(fapi_examples::bank::audit::all_entries(
        &db.store().audit_log(),
    ))
    .unwrap();
    let keys = fapi_core::jwk::KeySet::from_jwks(
        &fapi_core::jwk::JwkSet::new(vec![]),
        &*fapi_core::crypto::default_provider(),
        &fapi_core::Profile::Fapi2Security.key_policy(),
    )
    .unwrap();
    let verified = fapi_consent::audit::verify_chain(
        &entries,
        &[],
        &keys,
        fapi_core::Profile::Fapi2Security.algorithms(),
    )
    .unwrap();
    assert_eq!(verified, 50);
}
