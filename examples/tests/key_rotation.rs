//! The bank's signing keys rotate without downtime (`bank keys rotate`):
//! the new key is published before it signs, the old one stays published
//! until everything it signed has expired, tokens signed by either verify
//! meanwhile, and TPP traffic running through the whole rotation sees no
//! failed call.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::TempDir;
use fapi_core::crypto::Algorithm;
use fapi_core::jose::UnverifiedJws;
use fapi_core::{Clock, UnixTime};
use fapi_examples::bank::keys::{
    rotate, schedule, KeyRecord, RotateError, MAX_SIGNED_LIFETIME_SECS,
};
use fapi_examples::platform::Platform;
use fapi_examples::tpp::{ScriptedCustomer, Tpp};
use serde_json::{json, Value};

const AISP: &str = "/open-banking/v3.1/aisp";
const PISP: &str = "/open-banking/v3.1/pisp";

fn kid_of(jwt: &str) -> String {
    UnverifiedJws::parse(jwt)
        .unwrap()
        .unverified_header()
        .kid()
        .unwrap()
        .to_owned()
}

fn alice(p: &Platform) -> ScriptedCustomer<'_> {
    ScriptedCustomer {
        browser: &p.browser,
        username: "alice",
        password: "alice-password",
    }
}

/// One whole account-information flow (consent, PAR, the customer's
/// approval, the JARM response, the token) and a balance read with the
/// token; then a payment consent whose signed response the TPP verifies.
/// Returns the access token. Any failure is the error.
async fn one_flow(p: &Platform, tpp: &Tpp) -> Result<String, String> {
    let api = &p.bank.api_base;
    let cc = tpp
        .client_credentials("accounts payments")
        .await
        .map_err(|e| format!("client_credentials: {e}"))?;
    let r = tpp
        .post_json(
            &format!("{api}{AISP}/account-access-consents"),
            &cc,
            &json!({ "Data": { "Permissions": ["ReadAccountsDetail", "ReadBalances"] }, "Risk": {} }),
            None,
        )
        .await
        .map_err(|e| format!("consent: {e}"))?;
    if r.status != 201 {
        return Err(format!("consent: {}", String::from_utf8_lossy(&r.body)));
    }
    let consent = r.json()["Data"]["ConsentId"]
        .as_str()
        .ok_or("consent id")?
        .to_owned();
    let pending = tpp
        .push_authorization(&consent, "openid accounts")
        .await
        .map_err(|e| format!("par: {e}"))?;
    let location = alice(p)
        .authorize(&pending.authorization_url, &["acc-1"], true)
        .await
        .map_err(|e| format!("authorize: {e}"))?;
    let tokens = tpp
        .complete(&pending, &location)
        .await
        .map_err(|e| format!("JARM and token: {e}"))?;
    let r = tpp
        .get(
            &format!("{api}{AISP}/accounts/acc-1/balances"),
            &tokens.access_token,
        )
        .await
        .map_err(|e| format!("balance: {e}"))?;
    if r.status != 200 {
        return Err(format!("balance: {}", String::from_utf8_lossy(&r.body)));
    }
    let instruction = fapi_core::random::uuid_v4().unwrap().replace('-', "")[..24].to_owned();
    let r = tpp
        .post_json(
            &format!("{api}{PISP}/domestic-payment-consents"),
            &cc,
            &json!({ "Data": { "Initiation": fapi_examples::tpp::initiation(&instruction, "1.00", "ACME Ltd", "08080021325698", "INV-1") }, "Risk": {} }),
            Some(&instruction),
        )
        .await
        .map_err(|e| format!("payment consent: {e}"))?;
    if r.status != 201 {
        return Err(format!(
            "payment consent: {}",
            String::from_utf8_lossy(&r.body)
        ));
    }
    tpp.verify_response_signature(&r)
        .await
        .map_err(|e| format!("payment consent signature: {e}"))?;
    Ok(tokens.access_token)
}

async fn published_kids(p: &Platform) -> Vec<String> {
    let body = p
        .browser
        .get(format!("{}/jwks", p.bank.issuer))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let jwks: Value = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&body)));
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits for `what`, failing the test if it has not happened in a minute.
async fn within_a_minute(what: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(std::time::Duration::from_secs(60), what)
        .await
        .expect("not within a minute");
}

/// Returns once the traffic has completed `n` flows.
async fn flows_done(done: &AtomicUsize, n: usize) {
    let mut poll = tokio::time::interval(std::time::Duration::from_millis(5));
    while done.load(Ordering::SeqCst) < n {
        poll.tick().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signing_key_rotates_under_traffic_with_no_failed_call() {
    let dir = TempDir::new("rotate");
    let p = Arc::new(
        Platform::start(&dir.0, &["tpp-a", "tpp-b"], |c| {
            c.signing_keys.refresh_ms = 50;
            // traffic as fast as the machine goes: the rate limits are not
            // what this test is about
            c.customer_rate_limit_per_second = 0;
            c.rate_limit_per_second = 100_000;
        })
        .await
        .unwrap(),
    );
    let first = one_flow(&p, &p.tpps[0]).await.unwrap();
    let old_kid = kid_of(&first);
    assert_eq!(old_kid, "bank-signing");
    assert_eq!(published_kids(&p).await, vec![old_kid.clone()]);
    p.bank.checkpoint().await; // signed by the old key

    // traffic from both TPPs for the whole rotation
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let kids_seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut traffic = Vec::new();
    for t in 0..2 {
        let (p, stop, done, kids) = (p.clone(), stop.clone(), done.clone(), kids_seen.clone());
        traffic.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                match one_flow(&p, &p.tpps[t]).await {
                    Ok(token) => {
                        kids.lock().unwrap().push(kid_of(&token));
                        done.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(e) => failures.push(e),
                }
            }
            failures
        }));
    }

    // rotate to an ES256 key, published ahead of use
    let delay = 30;
    let rotation = rotate(
        &p.config,
        Some(Algorithm::Es256),
        Some(delay),
        p.clock.now(),
    )
    .unwrap();
    assert_eq!(rotation.old_kid, old_kid);
    // a second rotation while one is pending is refused
    assert!(matches!(
        rotate(&p.config, None, Some(delay), p.clock.now()),
        Err(RotateError::Pending { .. })
    ));
    // the bank publishes the new key (within its refresh period) but still
    // signs with the old one
    let expected = vec![old_kid.clone(), rotation.new_kid.clone()];
    within_a_minute(async {
        let mut poll = tokio::time::interval(std::time::Duration::from_millis(20));
        while published_kids(&p).await != expected {
            poll.tick().await;
        }
    })
    .await;
    // traffic goes on through the publication phase
    let published_at = done.load(Ordering::SeqCst);
    within_a_minute(flows_done(&done, published_at + 2)).await;
    let before = one_flow(&p, &p.tpps[0]).await.unwrap();
    assert_eq!(
        kid_of(&before),
        old_kid,
        "the new key must not sign before its time"
    );

    // the activation moment passes: the new key signs from that second
    p.clock.advance(delay);
    let after = one_flow(&p, &p.tpps[0]).await.unwrap();
    assert_eq!(kid_of(&after), rotation.new_kid);
    // tokens the old key signed still verify while both are published
    let r = p.tpps[0]
        .get(
            &format!("{}{AISP}/accounts/acc-1/balances", p.bank.api_base),
            &before,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // and through the switch
    let switched_at = done.load(Ordering::SeqCst);
    within_a_minute(flows_done(&done, switched_at + 2)).await;
    p.bank.checkpoint().await; // signed by the new key

    stop.store(true, Ordering::SeqCst);
    for t in traffic {
        let failures = t.await.unwrap();
        assert!(
            failures.is_empty(),
            "calls failed during the rotation: {failures:?}"
        );
    }
    let kids = kids_seen.lock().unwrap().clone();
    assert!(
        kids.contains(&old_kid),
        "traffic before the switch: {kids:?}"
    );
    assert!(
        kids.contains(&rotation.new_kid),
        "traffic after the switch: {kids:?}"
    );

    // the old key is published until everything it signed has expired ...
    let until = rotation.old_published_until;
    p.clock.advance(until.secs_since(p.clock.now()) - 1);
    assert_eq!(
        published_kids(&p).await,
        vec![old_kid.clone(), rotation.new_kid.clone()]
    );
    // ... and not a second longer
    p.clock.advance(1);
    assert_eq!(published_kids(&p).await, vec![rotation.new_kid.clone()]);
    assert!(
        until.secs_since(rotation.activates_at)
            >= MAX_SIGNED_LIFETIME_SECS + fapi_core::MAX_CLOCK_SKEW_SECS
    );

    // the audit trail verifies with checkpoints signed by both keys
    let config = p.config.clone();
    let p = Arc::into_inner(p).unwrap();
    p.bank.stop().await;
    let (entries, checkpoints) = fapi_examples::bank::audit::verify_audit(&config)
        .await
        .unwrap();
    assert!(entries > 0 && checkpoints >= 2, "{entries} {checkpoints}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_signing_alg_chooses_the_bank_key_and_a_rotation_keeps_it() {
    for alg in [Algorithm::Es256, Algorithm::EdDsa] {
        let dir = TempDir::new("rotate-alg");
        let provider = fapi_core::crypto::default_provider();
        let clock = fapi_core::SystemClock;
        fapi_examples::pki::DevPki::generate_with(&dir.0, &*provider, &["tpp-a"], clock.now(), alg)
            .unwrap();
        let config = fapi_examples::bank::BankConfig::development(&dir.0);
        let r = rotate(&config, None, None, clock.now()).unwrap();
        assert_eq!(r.alg, alg, "a rotation keeps the algorithm unless told");
        let records = fapi_examples::bank::keys::list(&config).unwrap();
        assert_eq!(records.len(), 2);
        assert!(records.iter().all(|k| k.alg == alg));
        // the new private key is owner-only
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.0.join(format!("{}.key.pem", r.new_kid)))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o077, 0);
    }
}

#[test]
fn a_rotation_shorter_than_the_refresh_period_is_refused() {
    let dir = TempDir::new("rotate-short");
    let provider = fapi_core::crypto::default_provider();
    let now = fapi_core::SystemClock.now();
    fapi_examples::pki::DevPki::generate(&dir.0, &*provider, &["tpp-a"], now).unwrap();
    let mut config = fapi_examples::bank::BankConfig::development(&dir.0);
    config.signing_keys.refresh_ms = 5_000;
    // twice the refresh period, rounded up to seconds
    assert!(matches!(
        rotate(&config, None, Some(9), now),
        Err(RotateError::DelayTooShort { given: 9, min: 10 })
    ));
    // the happy twin at the minimum
    rotate(&config, None, Some(10), now).unwrap();
    // an algorithm the profile does not allow is never reached: the CLI
    // only parses PS256, ES256 and EdDSA; all three are allowed here
}

fn record(kid: &str, created: i64, activates: i64, until: Option<i64>) -> KeyRecord {
    let t = |s| UnixTime::from_secs(s).unwrap();
    KeyRecord {
        kid: kid.into(),
        alg: Algorithm::Es256,
        public_jwk: json!({}),
        created_at: t(created),
        activates_at: t(activates),
        retires_at: until.map(|_| t(activates)),
        publish_until: until.map(t),
    }
}

#[test]
fn the_schedule_switches_exactly_at_its_edges() {
    let t = |s| UnixTime::from_secs(s).unwrap();
    // old signs from 0; new written at 100, signs from 200; old published
    // until 560
    let records = [
        record("old", 0, 0, Some(560)),
        record("new", 100, 200, None),
    ];
    let at = |s| schedule(&records, t(s)).unwrap();
    assert_eq!(
        at(99).published,
        ["old"],
        "not published before it is written"
    );
    assert_eq!(at(100).published, ["old", "new"]);
    assert_eq!(at(199).signing, "old");
    assert_eq!(at(199).changes_at, Some(t(200)));
    assert_eq!(at(200).signing, "new");
    assert_eq!(at(559).published, ["old", "new"]);
    assert_eq!(at(559).changes_at, Some(t(560)));
    assert_eq!(at(560).published, ["new"]);
    assert_eq!(at(560).changes_at, None);
    // nothing active yet
    assert!(schedule(&[record("k", 10, 10, None)], t(9)).is_none());
}
