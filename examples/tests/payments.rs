//! A payment neither loses its consent nor strands it: a refusal or an
//! outage leaves the consent usable, a client that gives up does not cancel
//! the payment, an answer lost after the core booked it is reconciled, and
//! every retry with the same `x-idempotency-key` gets the outcome. Each
//! test next to the happy path it departs from.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::Duration;

use common::TempDir;
use fapi_consent::audit::AuditAction;
use fapi_examples::platform::Platform;
use fapi_examples::tpp::{initiation, ApiResponse, ScriptedCustomer, Tpp};
use serde_json::{json, Value};

const PISP: &str = "/open-banking/v3.1/pisp";

async fn start(dir: &TempDir) -> Platform {
    Platform::start(&dir.0, &["tpp-a"], |c| {
        // the core's deadline, short so a lost answer is reconcilable soon
        c.core.timeout_ms = 1_000;
    })
    .await
    .unwrap()
}

fn ids(v: Vec<fapi_core::ConsentId>) -> Vec<String> {
    v.iter().map(|c| c.as_str().to_owned()).collect()
}

fn url(p: &Platform, path: &str) -> String {
    format!("{}{path}", p.bank.api_base)
}

/// A payment consent for `amount` from alice's acc-1, authorised; returns
/// (consent id, access token, the submission body).
async fn authorised_payment(
    p: &Platform,
    a: &Tpp,
    instruction: &str,
    amount: &str,
) -> (String, String, Value) {
    let cc = a.client_credentials("payments").await.unwrap();
    let init = initiation(instruction, amount, "ACME Ltd", "08080021325698", "INV-7");
    let r = a
        .post_json(
            &url(p, &format!("{PISP}/domestic-payment-consents")),
            &cc,
            &json!({ "Data": { "Initiation": init }, "Risk": {} }),
            Some(&format!("consent-{instruction}")),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let consent = r.json()["Data"]["ConsentId"].as_str().unwrap().to_owned();
    let pending = a
        .push_authorization(&consent, "openid payments")
        .await
        .unwrap();
    let location = ScriptedCustomer {
        browser: &p.browser,
        username: "alice",
        password: "alice-password",
    }
    .authorize(&pending.authorization_url, &["acc-1"], true)
    .await
    .unwrap();
    let tokens = a.complete(&pending, &location).await.unwrap();
    let body = json!({ "Data": { "ConsentId": consent, "Initiation": init }, "Risk": {} });
    (consent, tokens.access_token, body)
}

async fn submit(p: &Platform, a: &Tpp, token: &str, body: &Value, key: &str) -> ApiResponse {
    a.post_json(
        &url(p, &format!("{PISP}/domestic-payments")),
        token,
        body,
        Some(key),
    )
    .await
    .unwrap()
}

/// The consent's status as the TPP sees it.
async fn consent_status(p: &Platform, a: &Tpp, consent: &str) -> String {
    let cc = a.client_credentials("payments").await.unwrap();
    let r = a
        .get(
            &url(p, &format!("{PISP}/domestic-payment-consents/{consent}")),
            &cc,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    r.json()["Data"]["Status"].as_str().unwrap().to_owned()
}

/// Alice's acc-1 balance, read by the core directly.
fn balance(p: &Platform) -> i64 {
    futures_executor::block_on(p.bank.faults().inner().balance("acc-1")).unwrap()
}

fn error_code(r: &ApiResponse) -> String {
    r.json()["Errors"][0]["ErrorCode"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn audit_actions(p: &Platform) -> Vec<AuditAction> {
    fapi_examples::bank::audit::all_entries(&*p.bank.stores.audit)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event.action)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_payment_leaves_its_consent_authorised_and_a_retry_gets_the_same_refusal() {
    let dir = TempDir::new("pay-refused");
    let p = start(&dir).await;
    let a = &p.tpps[0];
    // happy twin: a payment the account covers
    let (consent, token, body) = authorised_payment(&p, a, "ok-1", "25.00").await;
    let r = submit(&p, a, &token, &body, "ok-key").await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(consent_status(&p, a, &consent).await, "Consumed");
    assert_eq!(balance(&p), 97_500);

    // more than the account holds
    let (consent, token, body) = authorised_payment(&p, a, "big-1", "2000.00").await;
    let r = submit(&p, a, &token, &body, "big-key").await;
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(error_code(&r), "UK.OBIE.Rules.InsufficientFunds");
    assert_eq!(
        consent_status(&p, a, &consent).await,
        "Authorised",
        "the consent is not used up"
    );
    assert_eq!(balance(&p), 97_500);
    // the same key: the same refusal, nothing executed again
    let again = submit(&p, a, &token, &body, "big-key").await;
    assert_eq!(again.status, 400);
    assert_eq!(again.json(), r.json());
    // the trail shows the reservation and its release
    let actions = audit_actions(&p).await;
    assert!(actions.contains(&AuditAction::ConsentReserved));
    assert!(actions.contains(&AuditAction::ConsentReleased));
    p.bank.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_503_with_retry_after_and_the_same_key_pays_once_the_core_is_back() {
    let dir = TempDir::new("pay-outage");
    let p = start(&dir).await;
    let a = &p.tpps[0];
    let (consent, token, body) = authorised_payment(&p, a, "out-1", "25.00").await;
    p.bank.faults().set_fail_rate(1.0);
    let r = submit(&p, a, &token, &body, "out-key").await;
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.headers.get("retry-after").is_some());
    assert_eq!(consent_status(&p, a, &consent).await, "Authorised");
    assert_eq!(balance(&p), 100_000);
    p.bank.faults().set_fail_rate(0.0);
    let paid = submit(&p, a, &token, &body, "out-key").await;
    assert_eq!(paid.status, 201, "{}", String::from_utf8_lossy(&paid.body));
    a.verify_response_signature(&paid).await.unwrap();
    // and again: the same payment back, booked once
    let replay = submit(&p, a, &token, &body, "out-key").await;
    assert_eq!(replay.status, 201);
    assert_eq!(
        replay.json()["Data"]["DomesticPaymentId"],
        paid.json()["Data"]["DomesticPaymentId"]
    );
    assert_eq!(consent_status(&p, a, &consent).await, "Consumed");
    assert_eq!(balance(&p), 97_500);
    p.bank.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_gives_up_does_not_cancel_the_payment() {
    let dir = TempDir::new("pay-gives-up");
    let p = start(&dir).await;
    let a = &p.tpps[0];
    let (consent, token, body) = authorised_payment(&p, a, "slow-1", "25.00").await;
    p.bank.faults().set_latency(Duration::from_millis(400));
    let mut entered = p.bank.faults().calls_entered();
    let before = *entered.borrow();
    let submission = submit(&p, a, &token, &body, "slow-key");
    // the client gives up while the core is working
    tokio::select! {
        _ = submission => panic!("the core answered before the client gave up"),
        _ = entered.wait_for(|n| *n > before) => {}
    }
    // the payment completes without it
    let mut poll = tokio::time::interval(Duration::from_millis(20));
    tokio::time::timeout(Duration::from_secs(30), async {
        while consent_status(&p, a, &consent).await != "Consumed" {
            poll.tick().await;
        }
    })
    .await
    .expect("the payment did not complete without its client");
    p.bank.faults().set_latency(Duration::ZERO);
    let r = submit(&p, a, &token, &body, "slow-key").await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(balance(&p), 97_500);
    p.bank.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_lost_after_booking_is_reconciled_not_paid_twice() {
    let dir = TempDir::new("pay-lost");
    let p = start(&dir).await;
    let a = &p.tpps[0];
    let (consent, token, body) = authorised_payment(&p, a, "lost-1", "25.00").await;
    p.bank.faults().lose_next_payment_reply();
    let r = submit(&p, a, &token, &body, "lost-key").await;
    assert_eq!(r.status, 504, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.headers.get("retry-after").is_some());
    assert_eq!(balance(&p), 97_500, "the core booked it");
    // within the core's deadline the outcome is in flight: 409, for this
    // key and for another
    assert_eq!(submit(&p, a, &token, &body, "lost-key").await.status, 409);
    assert_eq!(submit(&p, a, &token, &body, "other-key").await.status, 409);
    // past it, the retry asks the core and gets the booked payment
    p.clock.advance(2);
    let paid = submit(&p, a, &token, &body, "lost-key").await;
    assert_eq!(paid.status, 201, "{}", String::from_utf8_lossy(&paid.body));
    assert_eq!(consent_status(&p, a, &consent).await, "Consumed");
    assert_eq!(balance(&p), 97_500, "booked once");
    let other = submit(&p, a, &token, &body, "other-key").await;
    assert_eq!(
        other.status,
        403,
        "{}",
        String::from_utf8_lossy(&other.body)
    );
    p.bank.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_nobody_retries_is_resolved_in_the_background() {
    let dir = TempDir::new("pay-background");
    let p = start(&dir).await;
    let a = &p.tpps[0];
    // booked, answer lost, the TPP never comes back
    let (booked, token, body) = authorised_payment(&p, a, "bg-1", "25.00").await;
    p.bank.faults().lose_next_payment_reply();
    assert_eq!(submit(&p, a, &token, &body, "bg-key").await.status, 504);
    p.bank.reconcile_payments().await;
    // not yet: its deadline has not passed
    assert_eq!(
        ids(p.bank.stores.consents.pending_payments().await.unwrap()),
        vec![booked.clone()]
    );
    p.clock.advance(2);
    p.bank.reconcile_payments().await;
    assert!(p
        .bank
        .stores
        .consents
        .pending_payments()
        .await
        .unwrap()
        .is_empty());
    assert_eq!(consent_status(&p, a, &booked).await, "Consumed");
    let r = submit(&p, a, &token, &body, "bg-key").await;
    assert_eq!(r.status, 201, "the key's outcome is the reconciled payment");
    p.bank.stop().await;
}

/// The core's ledger is in the bank's store: a restart neither gives paid
/// money back nor forgets a booking, and a payment whose answer was lost
/// before the restart is reconciled from what the store holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balances_and_bookings_survive_a_restart_and_a_lost_answer_is_reconciled_after_it() {
    let dir = TempDir::new("pay-restart");
    let p = start(&dir).await;
    let a = &p.tpps[0];
    let (_, token, body) = authorised_payment(&p, a, "rs-1", "25.00").await;
    assert_eq!(submit(&p, a, &token, &body, "rs-key").await.status, 201);
    let (lost, token, body) = authorised_payment(&p, a, "rs-2", "10.00").await;
    p.bank.faults().lose_next_payment_reply();
    assert_eq!(submit(&p, a, &token, &body, "rs-lost").await.status, 504);
    assert_eq!(balance(&p), 96_500);

    // down before it learns the outcome, then up again on the same store
    let fapi_examples::platform::Platform {
        bank,
        config,
        clock,
        ..
    } = p;
    bank.stop().await;
    let bank = fapi_examples::bank::start_with_clock(&config, clock.clone())
        .await
        .unwrap();
    assert_eq!(
        futures_executor::block_on(bank.faults().inner().balance("acc-1")).unwrap(),
        96_500,
        "paid money does not come back"
    );
    let lost = fapi_core::ConsentId::try_from(lost.as_str()).unwrap();
    assert_eq!(
        ids(bank.stores.consents.pending_payments().await.unwrap()),
        vec![lost.as_str().to_owned()]
    );
    clock.advance(2);
    bank.reconcile_payments().await;
    assert!(bank
        .stores
        .consents
        .pending_payments()
        .await
        .unwrap()
        .is_empty());
    let consent = bank.stores.consents.get(&lost).await.unwrap().unwrap();
    assert_eq!(consent.status(), fapi_consent::ConsentStatus::Consumed);
    assert_eq!(
        futures_executor::block_on(bank.faults().inner().balance("acc-1")).unwrap(),
        96_500,
        "booked once"
    );
    bank.stop().await;
}

async fn admin(p: &Platform, method: reqwest::Method, body: Option<Value>) -> (u16, Value) {
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(
            rustls::ClientConfig::builder_with_provider(
                fapi_examples::bank::tls::fapi_crypto_provider(),
            )
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
        )
        .build()
        .unwrap();
    let mut req = client.request(
        method,
        format!("http://{}/core/faults", p.bank.admin_addr.unwrap()),
    );
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let bytes = r.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// With `core.fault_control`, the admin listener opens and heals the
/// circuit breaker in one running bank; without it, there is no such route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_listener_injects_faults_that_open_and_then_heal_the_breaker() {
    let dir = TempDir::new("pay-admin");
    let p = Platform::start(&dir.0, &["tpp-a"], |c| c.core.fault_control = true)
        .await
        .unwrap();
    let a = &p.tpps[0];
    let (_, token, body) = authorised_payment(&p, a, "adm-1", "25.00").await;
    let (status, now) = admin(&p, reqwest::Method::PUT, Some(json!({ "fail_rate": 1.0 }))).await;
    assert_eq!((status, now["fail_rate"].as_f64()), (200, Some(1.0)));
    // five failures open the breaker; then it fails fast without the core
    for i in 0..5 {
        let r = submit(&p, a, &token, &body, &format!("adm-{i}")).await;
        assert_eq!(r.status, 503, "{i}");
    }
    let calls = *p.bank.faults().calls_entered().borrow();
    assert_eq!(
        admin(&p, reqwest::Method::PUT, Some(json!({ "fail_rate": 0.0 })))
            .await
            .0,
        200
    );
    let r = submit(&p, a, &token, &body, "adm-open").await;
    assert_eq!(r.status, 503, "the breaker is open");
    assert_eq!(
        *p.bank.faults().calls_entered().borrow(),
        calls,
        "the core was not called"
    );
    // after the cool-down one trial goes through and closes it
    p.clock.advance(31);
    let paid = submit(&p, a, &token, &body, "adm-healed").await;
    assert_eq!(paid.status, 201, "{}", String::from_utf8_lossy(&paid.body));
    assert_eq!(
        admin(&p, reqwest::Method::GET, None).await.1["fail_rate"],
        0.0
    );
    p.bank.stop().await;

    // the twin: off by default
    let dir = TempDir::new("pay-admin-off");
    let p = start(&dir).await;
    assert_eq!(
        admin(&p, reqwest::Method::PUT, Some(json!({ "fail_rate": 1.0 })))
            .await
            .0,
        404
    );
    assert_eq!(p.bank.faults().fail_rate(), 0.0);
    p.bank.stop().await;
}

/// 1,000 concurrent submissions of one consent under ten idempotency keys,
/// with a fifth of the core's calls failing: at most one booking; every
/// 201 is that booking; once reconciled, the consent is `Consumed` if and
/// only if the core booked it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_racing_submissions_book_at_most_once() {
    let dir = TempDir::new("pay-race");
    let p = Platform::start(&dir.0, &["tpp-a"], |c| {
        c.core.timeout_ms = 1_000;
        c.rate_limit_per_second = 1_000_000;
        c.bulkheads.payments_in_flight = 64;
        // every submission on its own connection at once
        c.listeners.api.max_connections = 2_000;
        c.listeners.api.max_per_peer = None;
    })
    .await
    .unwrap();
    let a = &p.tpps[0];
    let (consent, token, body) = authorised_payment(&p, a, "race-1", "25.00").await;
    p.bank.faults().set_fail_rate(0.2);
    let submissions = (0..1000).map(|i| {
        let (token, body) = (token.clone(), body.clone());
        let p = &p;
        async move { submit(p, a, &token, &body, &format!("race-key-{}", i % 10)).await }
    });
    let responses = futures_util::future::join_all(submissions).await;
    p.bank.faults().set_fail_rate(0.0);
    // settle whatever is still pending
    p.clock.advance(31);
    p.bank.reconcile_payments().await;

    let booked = p.bank.faults().inner().booking(&consent).await.unwrap();
    let mut by_status = std::collections::BTreeMap::new();
    for r in &responses {
        *by_status.entry(r.status).or_insert(0) += 1;
    }
    eprintln!("race outcomes: {by_status:?}, booked: {}", booked.is_some());
    let paid: Vec<&ApiResponse> = responses.iter().filter(|r| r.status == 201).collect();
    let ids: std::collections::BTreeSet<String> = paid
        .iter()
        .map(|r| {
            r.json()["Data"]["DomesticPaymentId"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(ids.len() <= 1, "several payments for one consent: {ids:?}");
    for r in &responses {
        assert!(
            matches!(r.status, 201 | 403 | 409 | 503 | 504),
            "{}: {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
    }
    let status = consent_status(&p, a, &consent).await;
    match &booked {
        Some(b) => {
            assert_eq!(status, "Consumed");
            assert_eq!(b.amount, 2_500);
            assert_eq!(balance(&p), 97_500, "debited once");
        }
        None => {
            assert_eq!(status, "Authorised");
            assert!(paid.is_empty());
            assert_eq!(balance(&p), 100_000);
        }
    }
    assert!(p
        .bank
        .stores
        .consents
        .pending_payments()
        .await
        .unwrap()
        .is_empty());
    // the audit trail verifies after the race
    let config = p.config.clone();
    p.bank.stop().await;
    fapi_examples::bank::audit::verify_audit(&config)
        .await
        .unwrap();
}
