//! Run with `cargo run -p fapi-examples --bin demo [-- --data-dir DIR]`.
//!
//! The whole flow over real TLS and real sockets on loopback: a generated
//! scheme PKI, the bank (its SQLite database in the data directory), two
//! TPPs onboarded through signed software statements, and TPP A going
//! through PAR, the customer's login and consent (a scripted customer on
//! the bank's real pages), the JARM response, the token exchange, account
//! reads, a payment with `x-idempotency-key` and `x-jws-signature`, the
//! signed payment-authorisation record, revocation from the customer's
//! dashboard and the next call refused; TPP B presenting TPP A's token is
//! refused too. The audit trail is verified at the end. Each step prints
//! one line; the exit code is 0 only if every step behaved.

use std::path::PathBuf;
use std::process::ExitCode;

use fapi_consent::record::PaymentAuthorisationRecord;
use fapi_examples::bank::audit::verify_audit;
use fapi_examples::pki::FileKeySource;
use fapi_examples::platform::{tpp_config, BoxError, Platform};
use fapi_examples::tpp::{initiation, ApiResponse, ScriptedCustomer, Tpp, TppError};
use serde_json::json;

const AISP: &str = "/open-banking/v3.1/aisp";
const PISP: &str = "/open-banking/v3.1/pisp";

/// Counts the steps and prints one line each.
#[derive(Default)]
struct Steps {
    done: usize,
    failed: usize,
}

impl Steps {
    fn ok(&mut self, line: &str) {
        self.done += 1;
        println!("[{:>2}] ok      {line}", self.done);
    }

    fn fail(&mut self, line: &str, why: &str) {
        self.done += 1;
        self.failed += 1;
        println!("[{:>2}] FAILED  {line}: {why}", self.done);
    }

    /// A call that must succeed with `status`.
    fn expect(&mut self, line: &str, r: &ApiResponse, status: u16) -> bool {
        if r.status == status {
            self.ok(line);
            true
        } else {
            self.fail(
                line,
                &format!(
                    "status {} ({})",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                        .chars()
                        .take(200)
                        .collect::<String>()
                ),
            );
            false
        }
    }

    /// A call that must be refused with `status`; prints the bank's reason.
    fn refused(&mut self, line: &str, r: &ApiResponse, status: u16) {
        self.done += 1;
        let reason = r
            .json()
            .pointer("/Errors/0/Message")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if r.status == status {
            println!("[{:>2}] refused {line}: {} {reason}", self.done, r.status);
        } else {
            self.failed += 1;
            println!(
                "[{:>2}] FAILED  {line}: expected {status}, got {}",
                self.done, r.status
            );
        }
    }

    /// A TPP-side call that must fail with OAuth `code`.
    fn refused_oauth<T>(&mut self, line: &str, r: Result<T, TppError>, code: &str) {
        self.done += 1;
        match r {
            Err(e) if e.error_code().as_deref() == Some(code) => {
                println!("[{:>2}] refused {line}: {code}", self.done);
            }
            Err(e) => {
                self.failed += 1;
                println!(
                    "[{:>2}] FAILED  {line}: refused for another reason: {e}",
                    self.done
                );
            }
            Ok(_) => {
                self.failed += 1;
                println!("[{:>2}] FAILED  {line}: it was accepted", self.done);
            }
        }
    }
}

/// The string at `pointer` in a response's JSON body ("" if absent).
fn field(r: &ApiResponse, pointer: &str) -> String {
    r.json()
        .pointer(pointer)
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn url(p: &Platform, path: &str) -> String {
    format!("{}{path}", p.bank.api_base)
}

async fn run(data_dir: PathBuf) -> Result<bool, BoxError> {
    let mut steps = Steps::default();
    let p = Platform::start(&data_dir, &["tpp-a", "tpp-b"], |_| {}).await?;
    steps.ok(&format!(
        "development PKI in {} (scheme CA, bank server certificate, 2 TPP certificates and keys, directory key; keys 0600)",
        data_dir.display()
    ));
    steps.ok(&format!(
        "bank listening: TPP API {} (mutual TLS), customer pages {} (TLS), metrics http://{}",
        p.bank.api_base,
        p.bank.issuer,
        p.bank.admin_addr.map(|a| a.to_string()).unwrap_or_default()
    ));
    steps.ok("tpp-a and tpp-b onboarded from directory-signed software statements; certificates chain to the scheme CA");
    let ((a, b), (files_a, files_b)) = match (p.tpps.as_slice(), p.pki.tpps.as_slice()) {
        ([a, b], [fa, fb]) => ((a, b), (fa, fb)),
        _ => return Err("two TPPs expected".into()),
    };

    // a TPP that signs as tpp-b but connects with tpp-a's certificate
    let provider = p.provider();
    let mut mixed_config = tpp_config(&p.bank, &p.pki, files_b, p.config.profile()?);
    mixed_config.certificate = files_a.certificate.clone();
    mixed_config.certificate_key = "tpp-a".into();
    let mixed = Tpp::connect(
        mixed_config,
        &FileKeySource::new(&data_dir, provider.clone()),
        provider.clone(),
        p.clock.clone(),
    )
    .await?;
    steps.refused_oauth(
        "tpp-b's client assertion over tpp-a's certificate at /token",
        mixed.client_credentials("accounts").await,
        "invalid_client",
    );

    // account access
    let cc = a.client_credentials("accounts").await?;
    let created = a
        .post_json(
            &url(&p, &format!("{AISP}/account-access-consents")),
            &cc,
            &json!({ "Data": { "Permissions": ["ReadAccountsDetail", "ReadBalances", "ReadTransactionsDetail", "ReadTransactionsCredits", "ReadTransactionsDebits"] }, "Risk": {} }),
            None,
        )
        .await?;
    let aac = field(&created, "/Data/ConsentId");
    if !steps.expect(
        &format!("tpp-a: client_credentials token, account-access consent {aac} created"),
        &created,
        201,
    ) {
        return Ok(false);
    }
    let pending = a.push_authorization(&aac, "openid accounts").await?;
    steps
        .ok("tpp-a: PAR over mTLS with a signed request object and private_key_jwt -> request_uri");
    let alice = ScriptedCustomer {
        browser: &p.browser,
        username: "alice",
        password: "alice-password",
    };
    let location = alice
        .authorize(&pending.authorization_url, &["acc-1"], true)
        .await?;
    steps.ok(
        "alice logged in, read the consent screen (data in plain words), chose acc-1 and approved",
    );
    let tokens = a.complete(&pending, &location).await?;
    steps.ok("tpp-a: JARM response verified (signature, iss, aud, exp, state); code exchanged with PKCE for a certificate-bound token");

    let accounts = a
        .get(&url(&p, &format!("{AISP}/accounts")), &tokens.access_token)
        .await?;
    steps.expect(
        "tpp-a read /accounts (verify -> bind -> consent gate -> core)",
        &accounts,
        200,
    );
    let tx = a
        .get(
            &url(&p, &format!("{AISP}/accounts/acc-1/transactions")),
            &tokens.access_token,
        )
        .await?;
    steps.expect("tpp-a read /accounts/acc-1/transactions", &tx, 200);
    let not_selected = a
        .get(
            &url(&p, &format!("{AISP}/accounts/acc-2/balances")),
            &tokens.access_token,
        )
        .await?;
    steps.refused(
        "tpp-a reading acc-2, which alice did not select",
        &not_selected,
        403,
    );
    let stolen = b
        .get(&url(&p, &format!("{AISP}/accounts")), &tokens.access_token)
        .await?;
    steps.refused(
        "tpp-b presenting tpp-a's token over its own certificate",
        &stolen,
        401,
    );

    // payment
    let pay_cc = a.client_credentials("payments").await?;
    let init = initiation(
        "demo-instr-1",
        "25.00",
        "ACME Ltd",
        "08080021325698",
        "INV-2026-42",
    );
    let created = a
        .post_json(
            &url(&p, &format!("{PISP}/domestic-payment-consents")),
            &pay_cc,
            &json!({ "Data": { "Initiation": init }, "Risk": {} }),
            Some("demo-consent-1"),
        )
        .await?;
    let pdc = field(&created, "/Data/ConsentId");
    if !steps.expect(
        &format!("tpp-a created payment consent {pdc} for 25.00 GBP to ACME Ltd (x-jws-signature verified by the bank)"),
        &created,
        201,
    ) {
        return Ok(false);
    }
    let pending = a.push_authorization(&pdc, "openid payments").await?;
    let location = alice
        .authorize(&pending.authorization_url, &["acc-1"], true)
        .await?;
    let pay_token = a.complete(&pending, &location).await?.access_token;
    steps.ok("alice approved the one payment from acc-1; tpp-a holds a token for it");
    let body = json!({ "Data": { "ConsentId": pdc, "Initiation": init }, "Risk": {} });
    let payments = url(&p, &format!("{PISP}/domestic-payments"));
    let paid = a
        .post_json(&payments, &pay_token, &body, Some("demo-payment-1"))
        .await?;
    if steps.expect(
        "tpp-a submitted the payment (x-idempotency-key, x-jws-signature) -> 201",
        &paid,
        201,
    ) {
        match a.verify_response_signature(&paid).await {
            Ok(()) => steps.ok("the bank's x-jws-signature on the payment response verified"),
            Err(e) => steps.fail("the bank's response signature", &e.to_string()),
        }
    }
    let retry = a
        .post_json(&payments, &pay_token, &body, Some("demo-payment-1"))
        .await?;
    if retry.status == 201 && retry.body == paid.body {
        steps.ok("retry with the same x-idempotency-key: the same payment came back, nothing moved twice");
    } else {
        steps.fail("idempotent retry", "a different answer came back");
    }
    let second = a
        .post_json(&payments, &pay_token, &body, Some("demo-payment-2"))
        .await?;
    steps.refused("a second payment on the consumed consent", &second, 403);
    let payment_id = field(&paid, "/Data/DomesticPaymentId");
    let record = a
        .get(
            &format!("{payments}/{payment_id}/authorisation-record"),
            &pay_token,
        )
        .await?;
    match PaymentAuthorisationRecord::verify(
        &String::from_utf8_lossy(&record.body),
        &a.server_keys(),
        p.config.profile()?.algorithms(),
    ) {
        Ok(r) => steps.ok(&format!(
            "signed payment-authorisation record verified with the bank's public key alone ({} paid from {} for {})",
            r.customer_id, r.debtor_account, r.client_id
        )),
        Err(e) => steps.fail("payment-authorisation record", &e.to_string()),
    }
    let balance = a
        .get(
            &url(&p, &format!("{AISP}/accounts/acc-1/balances")),
            &tokens.access_token,
        )
        .await?;
    let amount = field(&balance, "/Data/Balance/0/Amount/Amount");
    if amount == "975.00" {
        steps.ok("acc-1 balance read by tpp-a: 975.00 (debited once)");
    } else {
        steps.fail("acc-1 balance", &format!("{amount}, expected 975.00"));
    }

    // revocation
    alice.revoke_on_dashboard(p.customer_base(), &aac).await?;
    steps.ok(&format!(
        "alice's dashboard listed her consents; she revoked {aac} with one click"
    ));
    let after = a
        .get(&url(&p, &format!("{AISP}/accounts")), &tokens.access_token)
        .await?;
    steps.refused("tpp-a's next account read", &after, 403);
    if let Some(refresh) = &tokens.refresh_token {
        steps.refused_oauth(
            "tpp-a refreshing its token after the revocation",
            a.refresh(refresh).await,
            "invalid_grant",
        );
    }

    let config = p.config.clone();
    p.bank.stop().await;
    match verify_audit(&config).await {
        Ok((n, c)) => steps.ok(&format!(
            "audit trail: {n} hash-chained entries in bank.db verified against {c} signed checkpoint(s)"
        )),
        Err(e) => steps.fail("audit trail", &e.to_string()),
    }

    println!(
        "\n{} steps, {} behaved as they must; data in {}",
        steps.done,
        steps.done - steps.failed,
        data_dir.display()
    );
    Ok(steps.failed == 0)
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut data_dir = std::env::temp_dir().join(format!("fapi-demo-{}", std::process::id()));
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--data-dir", Some(d)) => data_dir = PathBuf::from(d),
            _ => {
                eprintln!("usage: demo [--data-dir DIR]");
                return ExitCode::from(2);
            }
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("demo stopped: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(data_dir)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("demo stopped: {e}");
            ExitCode::FAILURE
        }
    }
}
