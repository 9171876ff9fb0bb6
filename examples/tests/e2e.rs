//! End to end over real sockets and TLS: the bank on loopback with its
//! SQLite store, two TPPs onboarded from software statements, the scripted
//! customer on the consent pages. Each attack has its happy twin in the
//! same test or in `full_flow`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::TempDir;
use fapi_examples::platform::Platform;
use fapi_examples::tpp::{initiation, ScriptedCustomer, Tpp};
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

async fn start(dir: &TempDir) -> Platform {
    Platform::start(&dir.0, &["tpp-a", "tpp-b"], |_| {})
        .await
        .unwrap()
}

/// Creates an account-access consent and returns its id.
async fn account_consent(p: &Platform, tpp: &Tpp) -> String {
    let cc = tpp.client_credentials("accounts").await.unwrap();
    let r = tpp
        .post_json(
            &format!("{}{AISP}/account-access-consents", p.bank.api_base),
            &cc,
            &json!({ "Data": { "Permissions": ["ReadAccountsDetail", "ReadBalances", "ReadTransactionsDetail", "ReadTransactionsCredits", "ReadTransactionsDebits"] }, "Risk": {} }),
            None,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    r.json()["Data"]["ConsentId"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_flow() {
    let dir = TempDir::new("e2e-full");
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
    let tokens = a.complete(&pending, &location).await.unwrap();
    let r = a
        .get(
            &format!("{}{AISP}/accounts", p.bank.api_base),
            &tokens.access_token,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let accounts: Vec<Value> = r.json()["Data"]["Account"].as_array().unwrap().clone();
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0]["AccountId"], "acc-1");
    assert!(r.interaction_id().is_some());
}
