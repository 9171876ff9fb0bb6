//! End to end over real sockets and TLS: the bank on loopback with its
//! SQLite store, two TPPs onboarded from software statements, the scripted
//! customer on the real consent pages. Each attack stands next to its happy
//! twin (the same call succeeding before the attack, or by the rightful
//! party).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::TempDir;
use fapi_consent::record::PaymentAuthorisationRecord;
use fapi_examples::bank::BankConfig;
use fapi_examples::platform::Platform;
use fapi_examples::tpp::{initiation, ScriptedCustomer, Tokens, Tpp};
use serde_json::{json, Value};

const AISP: &str = "/open-banking/v3.1/aisp";
const PISP: &str = "/open-banking/v3.1/pisp";

fn alice(p: &Platform) -> ScriptedCustomer<'_> {
    ScriptedCustomer {
        browser: &p.browser,
        username: "alice",
        password: "alice-password",
    }
}

async fn start_with(dir: &TempDir, adjust: impl FnOnce(&mut BankConfig)) -> Platform {
    Platform::start(&dir.0, &["tpp-a", "tpp-b"], adjust)
        .await
        .unwrap()
}

async fn start(dir: &TempDir) -> Platform {
    start_with(dir, |_| {}).await
}

fn url(p: &Platform, path: &str) -> String {
    format!("{}{path}", p.bank.api_base)
}

/// Creates an account-access consent and returns its id.
async fn account_consent(p: &Platform, tpp: &Tpp) -> String {
    let cc = tpp.client_credentials("accounts").await.unwrap();
    let r = tpp
        .post_json(
            &url(p, &format!("{AISP}/account-access-consents")),
            &cc,
            &json!({ "Data": { "Permissions": ["ReadAccountsDetail", "ReadBalances", "ReadTransactionsDetail", "ReadTransactionsCredits", "ReadTransactionsDebits"] }, "Risk": {} }),
            None,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    r.json()["Data"]["ConsentId"].as_str().unwrap().to_owned()
}

/// Account access for alice's acc-1: consent, PAR, consent page, JARM, token.
async fn account_tokens(p: &Platform, tpp: &Tpp) -> (String, Tokens) {
    let consent = account_consent(p, tpp).await;
    let pending = tpp
        .push_authorization(&consent, "openid accounts")
        .await
        .unwrap();
    let location = alice(p)
        .authorize(&pending.authorization_url, &["acc-1"], true)
        .await
        .unwrap();
    (consent, tpp.complete(&pending, &location).await.unwrap())
}

fn payment_body(instruction: &str) -> Value {
    initiation(instruction, "25.00", "ACME Ltd", "08080021325698", "INV-42")
}

/// A payment consent authorised by alice from acc-1, and the token for it.
async fn payment_token(p: &Platform, tpp: &Tpp, instruction: &str) -> (String, String) {
    let cc = tpp.client_credentials("payments").await.unwrap();
    let r = tpp
        .post_json(
            &url(p, &format!("{PISP}/domestic-payment-consents")),
            &cc,
            &json!({ "Data": { "Initiation": payment_body(instruction) }, "Risk": {} }),
            Some(&format!("consent-{instruction}")),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    tpp.verify_response_signature(&r).await.unwrap();
    let consent = r.json()["Data"]["ConsentId"].as_str().unwrap().to_owned();
    let pending = tpp
        .push_authorization(&consent, "openid payments")
        .await
        .unwrap();
    let location = alice(p)
        .authorize(&pending.authorization_url, &["acc-1"], true)
        .await
        .unwrap();
    let tokens = tpp.complete(&pending, &location).await.unwrap();
    (consent, tokens.access_token)
}

async fn balance(p: &Platform, tpp: &Tpp, token: &str) -> String {
    let r = tpp
        .get(&url(p, &format!("{AISP}/accounts/acc-1/balances")), token)
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()["Data"]["Balance"][0]["Amount"]["Amount"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_flow_refresh_and_revocation_on_the_dashboard() {
    let dir = TempDir::new("e2e-aisp");
    let p = start(&dir).await;
    let a = &p.tpps[0];
    let (consent, tokens) = account_tokens(&p, a).await;
    assert!(tokens.id_token.is_some());

    let r = a
        .get(&url(&p, &format!("{AISP}/accounts")), &tokens.access_token)
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let accounts = r.json()["Data"]["Account"].as_array().unwrap().clone();
    assert_eq!(accounts.len(), 1, "only the account alice selected");
    assert_eq!(accounts[0]["AccountId"], "acc-1");
    assert_eq!(balance(&p, a, &tokens.access_token).await, "1000.00");
    let tx = a
        .get(
            &url(&p, &format!("{AISP}/accounts/acc-1/transactions")),
            &tokens.access_token,
        )
        .await
        .unwrap();
    assert_eq!(tx.status, 200);
    assert_eq!(
        tx.json()["Data"]["Transaction"].as_array().unwrap().len(),
        1
    );
    // an account alice did not select
    let other = a
        .get(
            &url(&p, &format!("{AISP}/accounts/acc-2/balances")),
            &tokens.access_token,
        )
        .await
        .unwrap();
    assert_eq!(
        other.status,
        403,
        "{}",
        String::from_utf8_lossy(&other.body)
    );

    // refresh works while the consent is authorised (not rotated)
    let refresh = tokens.refresh_token.clone().unwrap();
    let fresh = a.refresh(&refresh).await.unwrap();
    assert_eq!(balance(&p, a, &fresh).await, "1000.00");

    // revoked from the dashboard: the next call and the next refresh fail
    alice(&p)
        .revoke_on_dashboard(p.customer_base(), &consent)
        .await
        .unwrap();
    let after = a
        .get(&url(&p, &format!("{AISP}/accounts")), &fresh)
        .await
        .unwrap();
    assert_eq!(after.status, 403);
    assert_eq!(
        after.json()["Errors"][0]["ErrorCode"],
        "UK.OBIE.Resource.InvalidConsentStatus"
    );
    let e = a.refresh(&refresh).await.unwrap_err();
    assert_eq!(e.error_code().as_deref(), Some("invalid_grant"));
    // the TPP sees the status
    let cc = a.client_credentials("accounts").await.unwrap();
    let c = a
        .get(
            &url(&p, &format!("{AISP}/account-access-consents/{consent}")),
            &cc,
        )
        .await
        .unwrap();
    assert_eq!(c.json()["Data"]["Status"], "Revoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpp_deletes_its_consent_and_the_token_stops_working() {
    let dir = TempDir::new("e2e-delete");
    let p = start(&dir).await;
    let (a, b) = (&p.tpps[0], &p.tpps[1]);
    let (consent, tokens) = account_tokens(&p, a).await;
    let accounts = url(&p, &format!("{AISP}/accounts"));
    assert_eq!(
        a.get(&accounts, &tokens.access_token).await.unwrap().status,
        200
    );
    let path = url(&p, &format!("{AISP}/account-access-consents/{consent}"));
    // another TPP cannot see or delete it
    let cc_b = b.client_credentials("accounts").await.unwrap();
    assert_eq!(b.get(&path, &cc_b).await.unwrap().status, 404);
    assert_eq!(b.delete(&path, &cc_b).await.unwrap().status, 404);
    assert_eq!(
        a.get(&accounts, &tokens.access_token).await.unwrap().status,
        200
    );
    let cc = a.client_credentials("accounts").await.unwrap();
    assert_eq!(a.delete(&path, &cc).await.unwrap().status, 204);
    assert_eq!(
        a.get(&path, &cc).await.unwrap().json()["Data"]["Status"],
        "Revoked"
    );
    assert_eq!(
        a.get(&accounts, &tokens.access_token).await.unwrap().status,
        403
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stolen_token_with_another_tpps_certificate_is_refused() {
    let dir = TempDir::new("e2e-stolen");
    let p = start(&dir).await;
    let (a, b) = (&p.tpps[0], &p.tpps[1]);
    let (_, tokens) = account_tokens(&p, a).await;
    let accounts = url(&p, &format!("{AISP}/accounts"));
    assert_eq!(
        a.get(&accounts, &tokens.access_token).await.unwrap().status,
        200
    );
    let stolen = b.get(&accounts, &tokens.access_token).await.unwrap();
    assert_eq!(stolen.status, 401);
    let challenge = stolen
        .headers
        .get("www-authenticate")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(challenge.contains("invalid_token"), "{challenge}");
    // and B's refresh with A's refresh token
    let e = b
        .refresh(tokens.refresh_token.as_deref().unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.error_code().as_deref(), Some("invalid_grant"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_code_is_refused_and_revokes_what_it_issued() {
    let dir = TempDir::new("e2e-replay");
    let p = start(&dir).await;
    let a = &p.tpps[0];
    let consent = account_consent(&p, a).await;
    let pending = a
        .push_authorization(&consent, "openid accounts")
        .await
        .unwrap();
    let location = alice(&p)
        .authorize(&pending.authorization_url, &["acc-1"], true)
        .await
        .unwrap();
    let code = a.verify_response(&pending, &location).await.unwrap();
    let tokens = a.exchange_code(&code, &pending.verifier).await.unwrap();
    let accounts = url(&p, &format!("{AISP}/accounts"));
    assert_eq!(
        a.get(&accounts, &tokens.access_token).await.unwrap().status,
        200
    );

    let e = a.exchange_code(&code, &pending.verifier).await.unwrap_err();
    assert_eq!(e.error_code().as_deref(), Some("invalid_grant"));
    assert_eq!(
        a.get(&accounts, &tokens.access_token).await.unwrap().status,
        401
    );
    let e = a
        .refresh(tokens.refresh_token.as_deref().unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.error_code().as_deref(), Some("invalid_grant"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_request_expires_at_its_lifetime() {
    let dir = TempDir::new("e2e-par-expiry");
    let p = start(&dir).await;
    let a = &p.tpps[0];
    let consent = account_consent(&p, a).await;
    let pending = a
        .push_authorization(&consent, "openid accounts")
        .await
        .unwrap();
    let page = |url: String| {
        let browser = p.browser.clone();
        async move {
            let r = browser.get(url).send().await.unwrap();
            let location = r
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_owned());
            (r.status().as_u16(), location)
        }
    };
    p.clock.advance(59);
    assert_eq!(page(pending.authorization_url.clone()).await.0, 200);
    p.clock.advance(1);
    // expired: the TPP hears it, signed, at its registered redirect URI
    let (status, location) = page(pending.authorization_url.clone()).await;
    assert_eq!(status, 303);
    assert_eq!(
        a.verify_stateless_response(&location.unwrap())
            .await
            .unwrap(),
        fapi_jarm::JarmOutcome::Error {
            error: "invalid_request_uri".into(),
            description: Some(
                "the request_uri has expired; push the authorization request again".into()
            )
        }
    );
}

/// Errors at the authorization endpoint were an HTML page even when the
/// client and its redirect URI were known. A reused `request_uri` beside a
/// valid `client_id` now comes back to the TPP as a signed JARM error; an
/// unknown client still gets the page (no redirect the bank cannot trust).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_used_request_uri_comes_back_to_the_tpp_as_a_signed_error() {
    let dir = TempDir::new("e2e-reused-uri");
    let p = start(&dir).await;
    let a = &p.tpps[0];
    let consent = account_consent(&p, a).await;
    let pending = a
        .push_authorization(&consent, "openid accounts")
        .await
        .unwrap();
    let location = alice(&p)
        .authorize(&pending.authorization_url, &["acc-1"], true)
        .await
        .unwrap();
    a.complete(&pending, &location).await.unwrap();
    let again = p
        .browser
        .get(&pending.authorization_url)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 303);
    let back = again.headers()["location"].to_str().unwrap().to_owned();
    assert!(back.starts_with("https://tpp-a.example/cb"), "{back}");
    assert_eq!(
        a.verify_stateless_response(&back).await.unwrap(),
        fapi_jarm::JarmOutcome::Error {
            error: "invalid_request_uri".into(),
            description: Some("the request_uri has already been used".into())
        }
    );
    // the same request_uri under an unknown client id: the error page
    let unknown = pending
        .authorization_url
        .replace("client_id=tpp-a", "client_id=nobody");
    let r = p.browser.get(&unknown).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
}

/// The login page had no way to cancel: the customer could only leave,
/// and the TPP never heard back. Cancelling now sends it a signed
/// `access_denied` carrying its state, and uses the request up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_customer_cancels_at_login_and_the_tpp_hears_access_denied() {
    let dir = TempDir::new("e2e-cancel");
    let p = start(&dir).await;
    let a = &p.tpps[0];
    let consent = account_consent(&p, a).await;
    let pending = a
        .push_authorization(&consent, "openid accounts")
        .await
        .unwrap();
    let login = p
        .browser
        .get(&pending.authorization_url)
        .send()
        .await
        .unwrap();
    let cookie = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("__Host-bank_login="))
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_owned();
    let html = login.text().await.unwrap();
    let cancel_at = html
        .find("action=\"/authorize/cancel\"")
        .expect("a cancel form");
    let field = |name: &str| {
        let marker = format!("name=\"{name}\" value=\"");
        let start = html[cancel_at..].find(&marker).unwrap() + cancel_at + marker.len();
        html[start..start + html[start..].find('"').unwrap()].to_owned()
    };
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("csrf", &field("csrf"))
        .append_pair("client_id", &field("client_id"))
        .append_pair("request_uri", &field("request_uri"))
        .finish();
    let cancel = |cookie: Option<String>, body: String| {
        let mut req = p
            .browser
            .post(format!("{}/authorize/cancel", p.customer_base()))
            .header("content-type", "application/x-www-form-urlencoded");
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        req.body(body).send()
    };
    // without the page's cookie (a cross-site post): refused
    assert_eq!(cancel(None, form.clone()).await.unwrap().status(), 403);
    let r = cancel(Some(cookie.clone()), form.clone()).await.unwrap();
    assert_eq!(r.status(), 303);
    let back = r.headers()["location"].to_str().unwrap().to_owned();
    let refused = a.complete(&pending, &back).await.unwrap_err();
    assert!(refused.to_string().contains("access_denied"), "{refused}");
    // used up: cancelling again is a (stateless) invalid_request_uri
    let r = cancel(Some(cookie), form).await.unwrap();
    assert_eq!(r.status(), 303);
    let again = a
        .verify_stateless_response(r.headers()["location"].to_str().unwrap())
        .await
        .unwrap();
    assert!(
        matches!(again, fapi_jarm::JarmOutcome::Error { error, .. } if error == "invalid_request_uri")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_tpp_and_revoked_certificate_are_refused_on_the_next_call() {
    let dir = TempDir::new("e2e-tpp-revoked");
    let p = start(&dir).await;
    let (a, b) = (&p.tpps[0], &p.tpps[1]);
    let (_, tokens) = account_tokens(&p, a).await;
    let accounts = url(&p, &format!("{AISP}/accounts"));
    assert_eq!(
        a.get(&accounts, &tokens.access_token).await.unwrap().status,
        200
    );
    assert!(b.client_credentials("accounts").await.is_ok());

    p.bank
        .registry()
        .revoke_client(&fapi_core::ClientId::try_from("tpp-a").unwrap())
        .await
        .unwrap();
    assert_eq!(
        a.get(&accounts, &tokens.access_token).await.unwrap().status,
        401
    );
    let e = a.client_credentials("accounts").await.unwrap_err();
    assert_eq!(e.error_code().as_deref(), Some("invalid_client"));

    let cert = fapi_mtls_binding::ClientCertificate::from_pem(
        &std::fs::read_to_string(&p.pki.tpps[1].certificate).unwrap(),
    )
    .unwrap();
    p.bank
        .registry()
        .revoke_certificate(cert.thumbprint(), fapi_core::Clock::now(&*p.clock))
        .await
        .unwrap();
    let e = b.client_credentials("accounts").await.unwrap_err();
    assert_eq!(e.error_code().as_deref(), Some("invalid_client"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_with_signed_record_and_idempotent_retry() {
    let dir = TempDir::new("e2e-payment");
    let p = start(&dir).await;
    let a = &p.tpps[0];
    let (_, ais) = account_tokens(&p, a).await;
    let (consent, token) = payment_token(&p, a, "instr-1").await;
    let body = json!({ "Data": { "ConsentId": consent, "Initiation": payment_body("instr-1") }, "Risk": {} });
    let payments = url(&p, &format!("{PISP}/domestic-payments"));
    let first = a
        .post_json(&payments, &token, &body, Some("pay-1"))
        .await
        .unwrap();
    assert_eq!(
        first.status,
        201,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    a.verify_response_signature(&first).await.unwrap();
    assert_eq!(balance(&p, a, &ais.access_token).await, "975.00");

    // the same key and body: the same payment back, nothing moves twice
    let retry = a
        .post_json(&payments, &token, &body, Some("pay-1"))
        .await
        .unwrap();
    assert_eq!(retry.status, 201);
    assert_eq!(retry.body, first.body);
    a.verify_response_signature(&retry).await.unwrap();
    assert_eq!(balance(&p, a, &ais.access_token).await, "975.00");
    // the same key with another body is refused
    let other = json!({ "Data": { "ConsentId": consent, "Initiation": payment_body("instr-2") }, "Risk": {} });
    let r = a
        .post_json(&payments, &token, &other, Some("pay-1"))
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    // a new key on the consumed consent is refused
    let r = a
        .post_json(&payments, &token, &body, Some("pay-2"))
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));

    let id = first.json()["Data"]["DomesticPaymentId"]
        .as_str()
        .unwrap()
        .to_owned();
    let got = a.get(&format!("{payments}/{id}"), &token).await.unwrap();
    assert_eq!(got.status, 200);
    a.verify_response_signature(&got).await.unwrap();
    let record = a
        .get(&format!("{payments}/{id}/authorisation-record"), &token)
        .await
        .unwrap();
    let record = String::from_utf8(record.body).unwrap();
    let verified = PaymentAuthorisationRecord::verify(
        &record,
        &a.server_keys(),
        fapi_core::Profile::Fapi2MessageSigning.algorithms(),
    )
    .unwrap();
    assert_eq!(verified.consent_id, consent);
    // another TPP cannot read it
    let b = &p.tpps[1];
    assert_eq!(
        b.get(&format!("{payments}/{id}"), &token)
            .await
            .unwrap()
            .status,
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_payment_submissions_pay_exactly_once() {
    let dir = TempDir::new("e2e-race");
    let p = start(&dir).await;
    let a = &p.tpps[0];
    let (_, ais) = account_tokens(&p, a).await;
    let (consent, token) = payment_token(&p, a, "instr-race").await;
    let body = json!({ "Data": { "ConsentId": consent, "Initiation": payment_body("instr-race") }, "Risk": {} });
    let payments = url(&p, &format!("{PISP}/domestic-payments"));
    let attempts = (0..16).map(|i| {
        let (payments, token, body) = (payments.clone(), token.clone(), body.clone());
        async move {
            a.post_json(&payments, &token, &body, Some(&format!("race-{i}")))
                .await
                .unwrap()
                .status
        }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 403 || *s == 409),
        "{statuses:?}"
    );
    assert_eq!(balance(&p, a, &ais.access_token).await, "975.00");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_rejection_comes_back_as_a_signed_access_denied() {
    let dir = TempDir::new("e2e-reject");
    let p = start(&dir).await;
    let a = &p.tpps[0];
    let consent = account_consent(&p, a).await;
    let pending = a
        .push_authorization(&consent, "openid accounts")
        .await
        .unwrap();
    let location = alice(&p)
        .authorize(&pending.authorization_url, &[], false)
        .await
        .unwrap();
    let e = a.verify_response(&pending, &location).await.unwrap_err();
    assert!(e.to_string().contains("access_denied"), "{e}");
    let cc = a.client_credentials("accounts").await.unwrap();
    let c = a
        .get(
            &url(&p, &format!("{AISP}/account-access-consents/{consent}")),
            &cc,
        )
        .await
        .unwrap();
    assert_eq!(c.json()["Data"]["Status"], "Rejected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_core_is_a_clean_503() {
    let dir = TempDir::new("e2e-core-down");
    let p = start(&dir).await;
    let a = &p.tpps[0];
    let (_, tokens) = account_tokens(&p, a).await;
    assert_eq!(balance(&p, a, &tokens.access_token).await, "1000.00");
    p.bank.faults().set_fail_rate(1.0);
    let r = a
        .get(
            &url(&p, &format!("{AISP}/accounts/acc-1/balances")),
            &tokens.access_token,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(
        r.json()["Errors"][0]["ErrorCode"],
        "UK.OBIE.UnexpectedError"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_core_is_a_504_at_the_timeout_not_a_hang() {
    let dir = TempDir::new("e2e-core-slow");
    let p = start_with(&dir, |c| c.core.timeout_ms = 200).await;
    let a = &p.tpps[0];
    let (_, tokens) = account_tokens(&p, a).await;
    assert_eq!(balance(&p, a, &tokens.access_token).await, "1000.00");
    // the core now answers after 2 s; the bank's 200 ms timeout answers
    // first (the blocked call finishes in the background)
    p.bank
        .faults()
        .set_latency(std::time::Duration::from_secs(2));
    let r = a
        .get(
            &url(&p, &format!("{AISP}/accounts/acc-1/balances")),
            &tokens.access_token,
        )
        .await
        .unwrap();
    // a core that does not answer in time is a gateway timeout (#15),
    // an unavailable one a 503
    assert_eq!(r.status, 504);
    assert!(r.headers.get("retry-after").is_some());
    p.bank.faults().set_latency(std::time::Duration::ZERO);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_trail_verifies_after_the_run_and_fails_after_an_edit() {
    let dir = TempDir::new("e2e-audit");
    let p = start(&dir).await;
    let a = &p.tpps[0];
    let (consent, _) = account_tokens(&p, a).await;
    alice(&p)
        .revoke_on_dashboard(p.customer_base(), &consent)
        .await
        .unwrap();
    let config = p.config.clone();
    p.bank.stop().await; // signs a final checkpoint
    let (entries, checkpoints) = fapi_examples::bank::audit::verify_audit(&config)
        .await
        .unwrap();
    assert!(entries >= 3, "created, authorised, revoked: {entries}");
    assert!(checkpoints >= 1);

    let conn = rusqlite::Connection::open(dir.0.join("bank.db")).unwrap();
    let changed = conn
        .execute(
            "UPDATE audit SET event = replace(event, 'alice', 'mallory') WHERE seq = 2",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(conn);
    let e = fapi_examples::bank::audit::verify_audit(&config)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("does not verify"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_answers_429_with_retry_after() {
    let dir = TempDir::new("e2e-rate");
    let p = start_with(&dir, |c| c.rate_limit_per_second = 3).await;
    let a = &p.tpps[0];
    let jwks = url(&p, "/jwks");
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..10 {
        let r = a.get(&jwks, "none").await.unwrap();
        if r.status == 429 {
            retry_after = r.headers.get("retry-after").cloned();
        }
        statuses.push(r.status);
    }
    assert_eq!(statuses[0], 200);
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(retry_after.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpp_api_refuses_a_connection_without_a_client_certificate() {
    let dir = TempDir::new("e2e-no-cert");
    let p = start(&dir).await;
    // the customer pages answer the same browser
    let ok = p
        .browser
        .get(format!("{}/jwks", p.customer_base()))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert!(p.browser.get(url(&p, "/jwks")).send().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interaction_id_is_echoed_or_minted_and_metrics_count_requests() {
    let dir = TempDir::new("e2e-observe");
    let p = start(&dir).await;
    let a = &p.tpps[0];
    let r = a.get(&url(&p, "/jwks"), "none").await.unwrap();
    let minted = r.interaction_id().unwrap().to_owned();
    assert_eq!(minted.len(), 36);
    let sent = "6e1c3a3e-27f4-4c0b-9d3c-0a1f5c0e2b71";
    let echoed = p
        .browser
        .get(format!("{}/jwks", p.customer_base()))
        .header("x-fapi-interaction-id", sent)
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-fapi-interaction-id"], sent);
    let admin = p.bank.admin_addr.unwrap();
    let metrics = p
        .browser
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("fapi_requests_total"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_crl_refuses_the_revoked_certificate_on_its_next_call_and_handshake() {
    let dir = TempDir::new("e2e-crl");
    let p = start(&dir).await;
    let (a, b) = (&p.tpps[0], &p.tpps[1]);
    let (_, tokens) = account_tokens(&p, b).await;
    let accounts = url(&p, &format!("{AISP}/accounts"));
    assert_eq!(
        b.get(&accounts, &tokens.access_token).await.unwrap().status,
        200
    );

    // the scheme publishes a CRL revoking tpp-b; the bank activates it
    let now = fapi_core::Clock::now(&*p.clock);
    let crl = fapi_examples::pki::DevPki::write_crl(
        &dir.0,
        "scheme.crl.pem",
        &[&p.pki.tpps[1].certificate],
        now,
    )
    .unwrap();
    let ca = fapi_mtls_binding::ClientCertificate::from_pem(
        &std::fs::read_to_string(&p.pki.scheme_ca).unwrap(),
    )
    .unwrap();
    let crl_der = {
        use rustls_pki_types::pem::PemObject;
        rustls_pki_types::CertificateRevocationListDer::from_pem_slice(
            std::fs::read_to_string(&crl).unwrap().as_bytes(),
        )
        .unwrap()
    };
    let bundle = fapi_mtls_binding::trust::TrustBundle::builder(2)
        .anchors(&[ca.der()])
        .crls(&[crl_der.as_ref()])
        .build(now)
        .unwrap();
    let known_good = fapi_mtls_binding::ClientCertificate::from_pem(
        &std::fs::read_to_string(&p.pki.tpps[0].certificate).unwrap(),
    )
    .unwrap();
    p.bank.trust.activate(bundle, &[known_good], now).unwrap();

    // tpp-b's open connection: refused on the next call
    let r = b.get(&accounts, &tokens.access_token).await.unwrap();
    assert_eq!(r.status, 401, "{}", String::from_utf8_lossy(&r.body));
    // a new connection of tpp-b: refused in the handshake
    let fresh = Tpp::connect(
        fapi_examples::platform::tpp_config(
            &p.bank,
            &p.pki,
            &p.pki.tpps[1],
            p.config.profile().unwrap(),
        ),
        &fapi_examples::pki::FileKeySource::new(&dir.0, p.provider()),
        p.provider(),
        p.clock.clone(),
    )
    .await
    .unwrap();
    let e = fresh.client_credentials("accounts").await.unwrap_err();
    assert!(
        matches!(e, fapi_examples::tpp::TppError::Transport(_)),
        "{e}"
    );
    // tpp-a, covered by the same CRL and not on it, goes on working
    let (_, a_tokens) = account_tokens(&p, a).await;
    assert_eq!(
        a.get(&accounts, &a_tokens.access_token)
            .await
            .unwrap()
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outside_tpp_with_its_own_keys_onboards_from_a_metadata_file() {
    outside_tpp(fapi_core::client::AuthMethod::PrivateKeyJwt).await;
}

/// The same outside TPP registered for `tls_client_auth` (RFC 8705 §2.1):
/// over real TLS, PAR, the token exchange and introspection authenticate
/// it by its certificate alone, no assertion sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outside_tpp_authenticating_by_tls_client_auth_completes_the_flow() {
    outside_tpp(fapi_core::client::AuthMethod::TlsClientAuth).await;
}

/// The same outside TPP registered for `self_signed_tls_client_auth`
/// (RFC 8705 §2.2), at a bank whose handshake takes self-signed
/// certificates: its certificate is its own, signed by the key its JWKS
/// registers, and the whole flow runs over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outside_tpp_with_a_self_signed_certificate_completes_the_flow() {
    outside_tpp(fapi_core::client::AuthMethod::SelfSignedTlsClientAuth).await;
}

/// A TPP the operator never onboarded registers itself over real TLS
/// (RFC 7591, UK OB DCR: its statement from the scheme directory, its
/// request signed with its own key), completes the flow, and deletes its
/// registration (RFC 7592), after which it is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tpp_registers_itself_completes_the_flow_and_deletes_its_registration() {
    let dir = TempDir::new("e2e-dcr");
    let p = start(&dir).await;
    let provider = p.provider();
    let files = fapi_examples::pki::DevPki::issue_tpp(
        &dir.0,
        "tpp-c",
        provider.clone(),
        fapi_core::Clock::now(&*p.clock),
    )
    .unwrap();
    let tpp = Tpp::connect(
        fapi_examples::platform::tpp_config(&p.bank, &p.pki, &files, p.config.profile().unwrap()),
        &fapi_examples::pki::FileKeySource::new(&dir.0, provider.clone()),
        provider.clone(),
        p.clock.clone(),
    )
    .await
    .unwrap();
    let e = tpp.client_credentials("accounts").await.unwrap_err();
    assert_eq!(e.error_code().as_deref(), Some("invalid_client"));
    let statement = std::fs::read_to_string(&files.software_statement).unwrap();
    let registered = tpp.register(&statement).await.unwrap();
    assert_eq!(registered["client_id"], "tpp-c", "{registered}");
    let (_, tokens) = account_tokens(&p, &tpp).await;
    let r = tpp
        .get(&url(&p, &format!("{AISP}/accounts")), &tokens.access_token)
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let uri = registered["registration_client_uri"].as_str().unwrap();
    let token = registered["registration_access_token"].as_str().unwrap();
    let read = tpp.read_registration(uri, token).await.unwrap();
    assert_eq!(read.status, 200);
    tpp.delete_registration(uri, token).await.unwrap();
    let e = tpp.client_credentials("accounts").await.unwrap_err();
    assert_eq!(e.error_code().as_deref(), Some("invalid_client"));
    let r = tpp
        .get(&url(&p, &format!("{AISP}/accounts")), &tokens.access_token)
        .await
        .unwrap();
    assert_eq!(r.status, 401, "{}", String::from_utf8_lossy(&r.body));
}

/// Writes `<id>.pem`, a self-signed certificate of `key`, and
/// `<id>.key.pem`, the key (0600), over what `dir` held for `id`.
fn write_self_signed(dir: &TempDir, id: &str, key: &dyn fapi_core::crypto::SigningKey) {
    use std::os::unix::fs::PermissionsExt;
    let pem = fapi_core::crypto::signing_key_to_pkcs8_pem(key).unwrap();
    let pair = rcgen::KeyPair::from_pem(&pem).unwrap();
    let cert = rcgen::CertificateParams::new(vec![format!("{id}.example")])
        .unwrap()
        .self_signed(&pair)
        .unwrap();
    std::fs::write(dir.0.join(format!("{id}.pem")), cert.pem()).unwrap();
    let tls_key = dir.0.join(format!("{id}.key.pem"));
    std::fs::write(&tls_key, &*pem).unwrap();
    std::fs::set_permissions(&tls_key, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Without `self_signed_clients` the TPP API's handshake refuses a
/// self-signed certificate: the call never reaches the bank.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_certificate_is_refused_in_the_handshake_by_default() {
    let dir = TempDir::new("e2e-self-signed-refused");
    let p = start(&dir).await;
    let provider = p.provider();
    let key = provider
        .generate_signing_key(fapi_core::crypto::Algorithm::Es256)
        .unwrap();
    write_self_signed(&dir, "tpp-a", &*key);
    let mut config = p.tpps[0].config().clone();
    config.certificate = dir.0.join("tpp-a.pem");
    let tpp = Tpp::connect(
        config,
        &fapi_examples::pki::FileKeySource::new(&dir.0, provider.clone()),
        provider.clone(),
        p.clock.clone(),
    )
    .await
    .unwrap();
    let e = tpp.client_credentials("accounts").await.unwrap_err();
    assert!(
        matches!(e, fapi_examples::tpp::TppError::Transport(_)),
        "{e:?}"
    );
    // the twin: tpp-a's scheme certificate is served
    p.tpps[0].client_credentials("accounts").await.unwrap();
}

async fn outside_tpp(method: fapi_core::client::AuthMethod) {
    use fapi_core::client::AuthMethod;
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("e2e-outside");
    let self_signed = method == AuthMethod::SelfSignedTlsClientAuth;
    let p = start_with(&dir, |c| c.self_signed_clients = self_signed).await;
    let discovered = p.tpps[0].discovery();
    assert_eq!(
        discovered
            .token_endpoint_auth_methods_supported
            .iter()
            .any(|m| m == "self_signed_tls_client_auth"),
        self_signed
    );
    // its transport certificate from the scheme CA, its own ES256 signing key
    fapi_examples::pki::DevPki::issue_client_certificate(&dir.0, "tpp-x").unwrap();
    let provider = p.provider();
    let key = provider
        .generate_signing_key(fapi_core::crypto::Algorithm::Es256)
        .unwrap();
    let key_path = dir.0.join("tpp-x-es256.key.pem");
    std::fs::write(
        &key_path,
        fapi_core::crypto::signing_key_to_pkcs8_pem(&*key).unwrap(),
    )
    .unwrap();
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    if self_signed {
        // its transport certificate is its own: self-signed with its
        // registered key, which is also its TLS key
        write_self_signed(&dir, "tpp-x", &*key);
    }
    let metadata = json!({
        "client_id": "tpp-x",
        "client_name": "Outside TPP Ltd",
        "redirect_uris": ["https://tpp-x.example/cb"],
        "jwks": fapi_core::jwk::JwkSet::new(vec![fapi_core::jwk::Jwk::from_public_key(key.public_key().clone(), Some("tpp-x-es256".into()))]).to_json(),
        "token_endpoint_auth_method": method.name(),
        "software_roles": ["AISP"],
    });
    let registration: fapi_examples::registry::Registration =
        serde_json::from_value(metadata).unwrap();
    let cert = fapi_mtls_binding::ClientCertificate::from_pem(
        &std::fs::read_to_string(dir.0.join("tpp-x.pem")).unwrap(),
    )
    .unwrap();
    let profile = p.config.profile().unwrap();
    fapi_examples::registry::onboard(
        &p.bank.registry(),
        &registration,
        &cert,
        &p.bank.trust,
        &*provider,
        profile,
        fapi_core::Clock::now(&*p.clock),
    )
    .await
    .unwrap();
    let x = Tpp::connect(
        fapi_examples::tpp::TppConfig {
            discovery_url: format!("{}/.well-known/openid-configuration", p.bank.issuer),
            server_ca: p.pki.scheme_ca.clone(),
            client_id: "tpp-x".into(),
            certificate: dir.0.join("tpp-x.pem"),
            certificate_key: "tpp-x".into(),
            signing_key: "tpp-x-es256".into(),
            redirect_uri: "https://tpp-x.example/cb".into(),
            signing_issuer: "tpp-x/tpp-x".into(),
            profile,
            auth_method: method,
        },
        &fapi_examples::pki::FileKeySource::new(&dir.0, provider.clone()),
        provider.clone(),
        p.clock.clone(),
    )
    .await
    .unwrap();
    let (_, tokens) = account_tokens(&p, &x).await;
    let r = x
        .get(&url(&p, &format!("{AISP}/accounts")), &tokens.access_token)
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let introspected = x.introspect(&tokens.access_token).await.unwrap();
    assert_eq!(introspected["active"], true, "{introspected}");
    assert_eq!(introspected["client_id"], "tpp-x", "{introspected}");
    // its roles are what it registered: no payments
    let e = x.client_credentials("payments").await.unwrap_err();
    assert_eq!(e.error_code().as_deref(), Some("invalid_scope"));
}

/// Stopping the bank (what SIGTERM and Ctrl-C do) stops accepting
/// connections at once and lets a request in flight finish before the
/// final checkpoint. It used to end the accept loops only: `main` then
/// returned and the request died with the process. The bank runs here on a
/// runtime of its own that is shut down the moment `stop` returns, as the
/// process exits.
#[tokio::test(flavor = "multi_thread")]
async fn stopping_drains_requests_in_flight() {
    let dir = TempDir::new("e2e-drain");
    let bank_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let data_dir = dir.0.clone();
    let p = bank_runtime
        .spawn(async move {
            Platform::start(&data_dir, &["tpp-a"], |c| {
                c.core.timeout_ms = 10_000;
                c.listeners.drain_timeout_ms = 10_000;
            })
            .await
            .unwrap()
        })
        .await
        .unwrap();
    let (_, tokens) = account_tokens(&p, &p.tpps[0]).await;
    let balances = url(&p, &format!("{AISP}/accounts/acc-1/balances"));
    let api = p.bank.api_addr;
    let Platform { bank, tpps, .. } = p;
    let mut entered = bank.faults().calls_entered();
    let before = *entered.borrow();
    bank.faults()
        .set_latency(std::time::Duration::from_millis(1_500));
    let request = tpps[0].get(&balances, &tokens.access_token);
    let stop_and_exit = async {
        // the request is inside the (slow) core when the stop begins
        entered.wait_for(|n| *n > before).await.unwrap();
        bank_runtime.spawn(bank.stop()).await.unwrap();
        bank_runtime.shutdown_background();
    };
    let (response, ()) = tokio::join!(request, stop_and_exit);
    let response = response.unwrap();
    assert_eq!(
        response.status,
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    assert!(tokio::net::TcpStream::connect(api).await.is_err());
}

/// A flood of account reads must not starve payments (the reference
/// design reserves capacity for payment initiation): account information
/// and payments each have their own budget of requests in flight and of
/// the core's capacity. The flood goes past its budget (the excess is
/// refused at once); the payment is served meanwhile, while the admitted
/// reads are still queued for their lane.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_account_reads_cannot_starve_payments() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = TempDir::new("e2e-bulkheads");
    let p = start_with(&dir, |c| {
        c.rate_limit_per_second = 0;
        c.core.timeout_ms = 3_000;
        c.bulkheads.accounts_in_flight = 12;
        c.bulkheads.core_accounts = 2;
        c.bulkheads.core_payments = 2;
    })
    .await;
    let a = &p.tpps[0];
    let (_, ais) = account_tokens(&p, a).await;
    let (consent, pis) = payment_token(&p, a, "instr-flood").await;
    let mut entered = p.bank.faults().calls_entered();
    let before = *entered.borrow();
    p.bank
        .faults()
        .set_latency(std::time::Duration::from_millis(800));

    let balances = url(&p, &format!("{AISP}/accounts/acc-1/balances"));
    let done = AtomicUsize::new(0);
    let flood = futures_util::future::join_all((0..16).map(|_| async {
        let r = a.get(&balances, &ais.access_token).await.unwrap();
        if !String::from_utf8_lossy(&r.body).contains("busy with other requests") {
            done.fetch_add(1, Ordering::SeqCst);
        }
        r
    }));
    let payment = async {
        // the flood holds the accounts lane of the core
        entered.wait_for(|n| *n >= before + 2).await.unwrap();
        let body = json!({ "Data": { "ConsentId": consent, "Initiation": payment_body("instr-flood") }, "Risk": {} });
        let r = a
            .post_json(
                &url(&p, &format!("{PISP}/domestic-payments")),
                &pis,
                &body,
                Some("flood-1"),
            )
            .await
            .unwrap();
        (r, done.load(Ordering::SeqCst))
    };
    let (reads, (paid, reads_done_when_paid)) = tokio::join!(flood, payment);
    assert_eq!(paid.status, 201, "{}", String::from_utf8_lossy(&paid.body));
    let busy = reads
        .iter()
        .filter(|r| {
            r.status == 503 && String::from_utf8_lossy(&r.body).contains("busy with other requests")
        })
        .count();
    // 16 reads against a budget of 12: 4 refused at once
    assert_eq!(
        busy,
        4,
        "{:?}",
        reads.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    // the payment was served while admitted reads were still waiting
    assert!(
        reads_done_when_paid < 12,
        "all {reads_done_when_paid} admitted reads had finished"
    );
}

/// The metrics the reference design names, from one bank after real
/// traffic: consent grants and revocations, authentication failures with
/// `cnf_mismatch`, payment outcomes, per-TPP volume and errors, and the
/// latency histogram per API that p95 is computed from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_design_metrics_are_exported_after_traffic() {
    let dir = TempDir::new("e2e-metrics");
    let p = start(&dir).await;
    let (a, b) = (&p.tpps[0], &p.tpps[1]);
    let (consent, tokens) = account_tokens(&p, a).await;
    // tpp-b presents tpp-a's token: refused, counted as cnf_mismatch
    let accounts = url(&p, &format!("{AISP}/accounts"));
    assert_eq!(
        b.get(&accounts, &tokens.access_token).await.unwrap().status,
        401
    );
    let (pay_consent, token) = payment_token(&p, a, "instr-m").await;
    let body = json!({ "Data": { "ConsentId": pay_consent, "Initiation": payment_body("instr-m") }, "Risk": {} });
    let paid = a
        .post_json(
            &url(&p, &format!("{PISP}/domestic-payments")),
            &token,
            &body,
            Some("pay-m"),
        )
        .await
        .unwrap();
    assert_eq!(paid.status, 201, "{}", String::from_utf8_lossy(&paid.body));
    let revoked = a
        .delete(
            &url(&p, &format!("{AISP}/account-access-consents/{consent}")),
            &a.client_credentials("accounts").await.unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        revoked.status,
        204,
        "{}",
        String::from_utf8_lossy(&revoked.body)
    );

    let admin = p.bank.admin_addr.unwrap();
    let text = reqwest::Client::builder()
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
        .unwrap()
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{series} not exported:\n{text}"))
    };
    assert!(value(r#"fapi_consent_events_total{event="granted"}"#) >= 2.0);
    assert!(value(r#"fapi_consent_events_total{event="revoked"}"#) >= 1.0);
    assert!(value(r#"fapi_auth_failures_total{reason="cnf_mismatch"}"#) >= 1.0);
    assert!(value(r#"fapi_payments_total{outcome="accepted"}"#) >= 1.0);
    // per-TPP volume and errors
    assert!(value(r#"fapi_requests_total{client="tpp-a",route="/token",status="200"}"#) >= 3.0);
    assert!(
        value(
            r#"fapi_requests_total{client="tpp-b",route="/open-banking/v3.1/aisp/accounts",status="401"}"#
        ) >= 1.0
    );
    // p95 per API comes from this histogram (examples/ops)
    assert!(
        value(
            r#"fapi_request_duration_seconds_count{client="tpp-a",route="/open-banking/v3.1/pisp/domestic-payments"}"#
        ) >= 1.0
    );
    assert!(
        text.contains(r#"fapi_request_duration_seconds_bucket{client="tpp-a",route="/par",le="#)
    );
}

/// The `x5t#S256` of a TPP's transport certificate.
fn certificate_thumbprint(p: &Platform, tpp: usize) -> String {
    let pem = std::fs::read_to_string(&p.pki.tpps[tpp].certificate).unwrap();
    fapi_mtls_binding::ClientCertificate::from_pem(&pem)
        .unwrap()
        .thumbprint()
        .to_b64url()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_describes_the_clients_own_live_tokens_only() {
    let dir = TempDir::new("e2e-introspect");
    let p = start(&dir).await;
    let (a, b) = (&p.tpps[0], &p.tpps[1]);
    let (consent, tokens) = account_tokens(&p, a).await;
    let refresh = tokens.refresh_token.clone().unwrap();

    let own = a.introspect(&tokens.access_token).await.unwrap();
    assert_eq!(own["active"], true, "{own}");
    assert_eq!(own["client_id"], "tpp-a");
    assert_eq!(own["sub"], "alice");
    assert_eq!(own["token_type"], "Bearer");
    assert_eq!(own["openbanking_intent_id"], consent.as_str());
    assert!(own["scope"].as_str().unwrap().contains("accounts"));
    assert_eq!(own["cnf"]["x5t#S256"], certificate_thumbprint(&p, 0));
    assert_ne!(own["cnf"]["x5t#S256"], certificate_thumbprint(&p, 1));
    assert!(own["exp"].as_i64().unwrap() > fapi_core::Clock::now(&*p.clock).as_secs());
    // another client learns nothing about A's tokens
    let theirs = b.introspect(&tokens.access_token).await.unwrap();
    assert_eq!(theirs, json!({ "active": false }));
    assert_eq!(
        b.introspect(&refresh).await.unwrap(),
        json!({ "active": false })
    );
    // the refresh token, to its own client
    let r = a.introspect(&refresh).await.unwrap();
    assert_eq!(r["active"], true, "{r}");
    assert_eq!(r["token_type"], "refresh_token");
    assert_eq!(r["cnf"]["x5t#S256"], certificate_thumbprint(&p, 0));
    // not a token at all, or a forged one
    assert_eq!(
        a.introspect("not-a-token").await.unwrap(),
        json!({ "active": false })
    );
    let mut forged = tokens.access_token.clone();
    forged.pop();
    forged.push(if tokens.access_token.ends_with('A') {
        'B'
    } else {
        'A'
    });
    assert_eq!(
        a.introspect(&forged).await.unwrap(),
        json!({ "active": false })
    );

    // RFC 9701: the signed answer verifies with the bank's keys
    let signed = a.introspect_signed(&tokens.access_token).await.unwrap();
    assert_eq!(signed["active"], true, "{signed}");
    assert_eq!(signed["client_id"], "tpp-a");
    let signed_b = b.introspect_signed(&tokens.access_token).await.unwrap();
    assert_eq!(signed_b, json!({ "active": false }));

    // the consent revoked: both tokens are inactive from the next request
    alice(&p)
        .revoke_on_dashboard(p.customer_base(), &consent)
        .await
        .unwrap();
    assert_eq!(
        a.introspect(&tokens.access_token).await.unwrap(),
        json!({ "active": false })
    );
    assert_eq!(
        a.introspect(&refresh).await.unwrap(),
        json!({ "active": false })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_stops_the_next_use_and_only_the_owner_may_revoke() {
    let dir = TempDir::new("e2e-revoke");
    let p = start(&dir).await;
    let (a, b) = (&p.tpps[0], &p.tpps[1]);
    let (_, tokens) = account_tokens(&p, a).await;
    let refresh = tokens.refresh_token.clone().unwrap();

    // B cannot revoke A's tokens, which keep working
    let e = b.revoke_token(&tokens.access_token).await.unwrap_err();
    assert_eq!(e.status(), Some(400));
    assert_eq!(e.error_code().as_deref(), Some("unauthorized_client"));
    let e = b.revoke_token(&refresh).await.unwrap_err();
    assert_eq!(e.error_code().as_deref(), Some("unauthorized_client"));
    assert_eq!(balance(&p, a, &tokens.access_token).await, "1000.00");

    // A revokes its access token: the next call is refused
    a.revoke_token(&tokens.access_token).await.unwrap();
    let after = a
        .get(
            &url(&p, &format!("{AISP}/accounts/acc-1/balances")),
            &tokens.access_token,
        )
        .await
        .unwrap();
    assert_eq!(
        after.status,
        401,
        "{}",
        String::from_utf8_lossy(&after.body)
    );
    assert_eq!(
        a.introspect(&tokens.access_token).await.unwrap()["active"],
        false
    );
    // again, and an unknown token: nothing left to revoke, still 200
    a.revoke_token(&tokens.access_token).await.unwrap();
    a.revoke_token("not-a-token").await.unwrap();

    // the refresh token was not revoked with it
    let fresh = a.refresh(&refresh).await.unwrap();
    assert_eq!(balance(&p, a, &fresh).await, "1000.00");
    // now it is: the next refresh fails
    a.revoke_token(&refresh).await.unwrap();
    let e = a.refresh(&refresh).await.unwrap_err();
    assert_eq!(e.error_code().as_deref(), Some("invalid_grant"));

    // each revocation is in the audit trail, by id, never the token
    let config = p.config.clone();
    p.bank.stop().await;
    let conn = rusqlite::Connection::open(dir.0.join("bank.db")).unwrap();
    let events: Vec<String> = conn
        .prepare("SELECT event FROM audit ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .filter(|e: &String| e.contains("token_revoked"))
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(events[0].contains("access_token") && events[1].contains("refresh_token"));
    assert!(events
        .iter()
        .all(|e| !e.contains(&tokens.access_token) && !e.contains(&refresh)));
    drop(conn);
    fapi_examples::bank::audit::verify_audit(&config)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn userinfo_needs_the_bound_openid_token_of_a_consent_in_force() {
    let dir = TempDir::new("e2e-userinfo");
    let p = start(&dir).await;
    let (a, b) = (&p.tpps[0], &p.tpps[1]);
    let (consent, tokens) = account_tokens(&p, a).await;
    let r = a.userinfo(&tokens.access_token).await.unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json(), json!({ "sub": "alice" }));
    assert_eq!(r.headers["cache-control"], "no-store");
    // over another TPP's certificate: not bound to it
    let stolen = b.userinfo(&tokens.access_token).await.unwrap();
    assert_eq!(stolen.status, 401);
    assert!(stolen.headers["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("invalid_token"));
    // a client-credentials token has no customer and no openid scope
    let cc = a.client_credentials("accounts").await.unwrap();
    let r = a.userinfo(&cc).await.unwrap();
    assert_eq!(r.status, 403);
    assert!(r.headers["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("insufficient_scope"));
    // revoked token
    a.revoke_token(&tokens.access_token).await.unwrap();
    assert_eq!(a.userinfo(&tokens.access_token).await.unwrap().status, 401);
    // a fresh token works until the consent is revoked
    let fresh = a
        .refresh(tokens.refresh_token.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(a.userinfo(&fresh).await.unwrap().status, 200);
    let cc = a.client_credentials("accounts").await.unwrap();
    let path = url(&p, &format!("{AISP}/account-access-consents/{consent}"));
    assert_eq!(a.delete(&path, &cc).await.unwrap().status, 204);
    assert_eq!(a.userinfo(&fresh).await.unwrap().status, 401);
}

/// Account access for alice's acc-1 by scopes alone (no UK OB intent).
async fn scope_tokens(p: &Platform, tpp: &Tpp) -> Tokens {
    let pending = tpp
        .push_authorization_by_scope("openid accounts")
        .await
        .unwrap();
    let location = alice(p)
        .authorize(&pending.authorization_url, &["acc-1"], true)
        .await
        .unwrap();
    tpp.complete(&pending, &location).await.unwrap()
}

/// A plain FAPI 2 request (no UK OB intent): scopes alone ask for account
/// access; the consent is made when the customer decides and is then the
/// same first-class object as an intent's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_fapi2_client_gets_account_access_by_scope_alone() {
    let dir = TempDir::new("e2e-scopes");
    let p = start(&dir).await;
    let a = &p.tpps[0];
    let tokens = scope_tokens(&p, a).await;
    assert!(tokens.id_token.is_some());
    assert_eq!(balance(&p, a, &tokens.access_token).await, "1000.00");
    let other = a
        .get(
            &url(&p, &format!("{AISP}/accounts/acc-2/balances")),
            &tokens.access_token,
        )
        .await
        .unwrap();
    assert_eq!(other.status, 403, "only the account alice chose");
    // the consent the decision made: the TPP reads it, alice revokes it
    let consent = a.introspect(&tokens.access_token).await.unwrap()["openbanking_intent_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let cc = a.client_credentials("accounts").await.unwrap();
    let view = a
        .get(
            &url(&p, &format!("{AISP}/account-access-consents/{consent}")),
            &cc,
        )
        .await
        .unwrap();
    assert_eq!(view.json()["Data"]["Status"], "Authorised");
    alice(&p)
        .revoke_on_dashboard(p.customer_base(), &consent)
        .await
        .unwrap();
    let after = a
        .get(&url(&p, &format!("{AISP}/accounts")), &tokens.access_token)
        .await
        .unwrap();
    assert_eq!(after.status, 403);

    // refused at the push, before the customer logs in: a payment or
    // nothing grantable by scope alone
    for scope in ["openid payments", "openid"] {
        let e = a.push_authorization_by_scope(scope).await.unwrap_err();
        assert_eq!(e.status(), Some(400), "{scope}");
        assert_eq!(
            e.error_code().as_deref(),
            Some("invalid_request_object"),
            "{scope}"
        );
    }

    // the customer rejects: the TPP hears access_denied
    let pending = a
        .push_authorization_by_scope("openid accounts")
        .await
        .unwrap();
    let location = alice(&p)
        .authorize(&pending.authorization_url, &["acc-1"], false)
        .await
        .unwrap();
    let e = a.complete(&pending, &location).await.unwrap_err();
    assert!(e.to_string().contains("access_denied"), "{e}");
}

/// `consent_model` selects what a request must carry; discovery says which.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consent_model_selects_what_a_request_must_carry() {
    use fapi_examples::bank::config::ConsentModel;
    let discovery = |p: &Platform| {
        let issuer = p.bank.issuer.clone();
        let browser = p.browser.clone();
        async move {
            browser
                .get(format!("{issuer}/.well-known/openid-configuration"))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .map(|b| serde_json::from_slice::<Value>(&b).unwrap())
                .unwrap()
        }
    };

    let dir = TempDir::new("e2e-model-intent");
    let p = start_with(&dir, |c| c.consent_model = ConsentModel::OpenbankingIntent).await;
    let a = &p.tpps[0];
    assert_eq!(
        discovery(&p).await["consent_models_supported"],
        json!(["openbanking_intent"])
    );
    let e = a
        .push_authorization_by_scope("openid accounts")
        .await
        .unwrap_err();
    assert_eq!(e.error_code().as_deref(), Some("invalid_request_object"));
    assert!(e.to_string().contains("openbanking_intent_id"), "{e}");
    let (_, tokens) = account_tokens(&p, a).await;
    assert_eq!(balance(&p, a, &tokens.access_token).await, "1000.00");
    p.bank.stop().await;

    let dir = TempDir::new("e2e-model-scopes");
    let p = start_with(&dir, |c| c.consent_model = ConsentModel::Scopes).await;
    let a = &p.tpps[0];
    let d = discovery(&p).await;
    assert_eq!(d["consent_models_supported"], json!(["scopes"]));
    assert_eq!(d["scopes_supported"], json!(["openid", "accounts"]));
    let consent = account_consent(&p, a).await;
    let e = a
        .push_authorization(&consent, "openid accounts")
        .await
        .unwrap_err();
    assert_eq!(e.error_code().as_deref(), Some("invalid_request_object"));
    let tokens = scope_tokens(&p, a).await;
    assert_eq!(balance(&p, a, &tokens.access_token).await, "1000.00");
}
