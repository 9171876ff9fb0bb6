//! A command-line TPP built on the crates.
//!
//! ```text
//! tpp --discovery URL --server-ca FILE --client-id ID --certificate FILE --key-dir DIR
//!     [--certificate-key NAME] [--signing-key NAME] [--redirect-uri URI]
//!     [--signing-issuer ORG/SOFTWARE] [--profile NAME] [--mode uk-ob|fapi2] [--scope SCOPE]
//!     [--auth-method private_key_jwt|tls_client_auth|self_signed_tls_client_auth]
//!     accounts [--customer USER --password PASS] [--account ID]...
//!     pay --amount 10.00 --creditor NAME --creditor-account SORTCODEACCOUNT
//!         [--reference TEXT] [--customer USER --password PASS] [--account ID]
//!     register --software-statement FILE
//! ```
//!
//! `register` registers the TPP with the server (RFC 7591 in the UK OB DCR
//! shape: a request JWT signed with its signing key, carrying the
//! statement the scheme directory signed, over its transport certificate)
//! and prints the answer, with the registration access token.
//!
//! `accounts` creates an account-access consent, pushes the authorization
//! request, has the customer authorize it, verifies the JARM response,
//! exchanges the code and reads the accounts and their balances. In plain
//! FAPI 2 mode (`--mode fapi2`, chosen by itself when discovery does not
//! advertise UK OB intents) there is no consent to create: the request
//! asks by `--scope` alone (default `openid accounts`), and after the token
//! exchange the token is introspected and userinfo read where the server
//! advertises them, then the accounts read where it advertises
//! `openbanking.aisp`. `--mode uk-ob` forces the UK OB flow. `pay`
//! does the same for one domestic payment, signed with `x-jws-signature`
//! and sent with an `x-idempotency-key`, and verifies the bank's signed
//! response. With `--customer`, the customer is scripted against the
//! example bank's pages; without it, the authorization URL is printed and
//! the redirect URL the browser ends on is read from standard input, which
//! works against any FAPI authorization server.
//!
//! `--auth-method` is the client's registered `token_endpoint_auth_method`
//! (default `private_key_jwt`); with `tls_client_auth` or
//! `self_signed_tls_client_auth` the transport certificate authenticates
//! the client and no assertion is sent.
//!
//! Keys come from `--key-dir` (`<name>.key.pem`, owner-only).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use fapi_core::client::AuthMethod;
use fapi_core::crypto::default_provider;
use fapi_core::SystemClock;

use fapi_examples::cli::{profile_named, Flags, Res};
use fapi_examples::pki::FileKeySource;
use fapi_examples::tpp::{initiation, PendingAuthorization, ScriptedCustomer, Tpp, TppConfig};
use serde_json::{json, Value};

const USAGE: &str =
    "usage: tpp --discovery URL --server-ca FILE --client-id ID --certificate FILE --key-dir DIR
           [--certificate-key NAME] [--signing-key NAME] [--redirect-uri URI]
           [--signing-issuer ORG/SOFTWARE] [--profile NAME] [--mode uk-ob|fapi2] [--scope SCOPE]
           [--auth-method private_key_jwt|tls_client_auth|self_signed_tls_client_auth]
           (accounts | pay --amount A --creditor NAME --creditor-account ID [--reference R]
            | register --software-statement FILE)
           [--customer USER --password PASS] [--account ID]...";

const COMMON: [&str; 17] = [
    "auth-method",
    "mode",
    "scope",
    "discovery",
    "server-ca",
    "client-id",
    "certificate",
    "key-dir",
    "certificate-key",
    "signing-key",
    "redirect-uri",
    "signing-issuer",
    "profile",
    "customer",
    "password",
    "account",
    "reference",
];

async fn connect(flags: &Flags) -> Res<Tpp> {
    let need = |n: &str| flags.get(n).ok_or_else(|| format!("--{n} is required"));
    let id = need("client-id")?.to_owned();
    let profile_name = flags.get("profile").unwrap_or("fapi2-message-signing");
    let profile =
        profile_named(profile_name).ok_or_else(|| format!("unknown profile {profile_name:?}"))?;
    let mut config = TppConfig::development(
        &id,
        need("discovery")?.to_owned(),
        PathBuf::from(need("server-ca")?),
        PathBuf::from(need("certificate")?),
        profile,
    );
    let overrides = [
        ("certificate-key", &mut config.certificate_key),
        ("signing-key", &mut config.signing_key),
        ("redirect-uri", &mut config.redirect_uri),
        ("signing-issuer", &mut config.signing_issuer),
    ];
    for (flag, field) in overrides {
        if let Some(v) = flags.get(flag) {
            *field = v.to_owned();
        }
    }
    if let Some(method) = flags.get("auth-method") {
        config.auth_method = AuthMethod::from_name(method).ok_or_else(|| {
            format!("--auth-method {method:?} is not private_key_jwt, tls_client_auth or self_signed_tls_client_auth")
        })?;
    }
    let provider = default_provider();
    let keys = FileKeySource::new(&PathBuf::from(need("key-dir")?), provider.clone());
    Ok(Tpp::connect(config, &keys, provider.clone(), Arc::new(SystemClock)).await?)
}

/// `register`: dynamic client registration with the TPP's software
/// statement (RFC 7591, UK OB DCR); prints the server's answer, which holds
/// the registration access token and URI to keep.
async fn register(flags: &Flags) -> Res<()> {
    let path = flags
        .get("software-statement")
        .ok_or("--software-statement is required")?;
    let statement = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let tpp = connect(flags).await?;
    let answer = tpp.register(&statement).await?;
    println!("{}", serde_json::to_string_pretty(&answer)?);
    Ok(())
}

/// The customer's part: scripted against the example bank, or by hand.
async fn authorize(tpp: &Tpp, flags: &Flags, pending: &PendingAuthorization) -> Res<String> {
    let accounts = flags.all("account");
    match (flags.get("customer"), flags.get("password")) {
        (Some(user), Some(pass)) => {
            let customer = ScriptedCustomer {
                browser: tpp.public_client(),
                username: user,
                password: pass,
            };
            let chosen = if accounts.is_empty() {
                vec!["acc-1"]
            } else {
                accounts
            };
            println!("customer {user} authorizes on the bank's pages");
            Ok(customer
                .authorize(&pending.authorization_url, &chosen, true)
                .await?)
        }
        (None, None) => {
            println!("open this URL in a browser and complete the authorization:");
            println!("  {}", pending.authorization_url);
            println!("then paste the URL the browser was redirected to:");
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            Ok(line.trim().to_owned())
        }
        _ => Err("give both --customer and --password, or neither".into()),
    }
}

fn base(tpp: &Tpp, kind: &str) -> Res<String> {
    let d = tpp.discovery();
    match kind {
        "aisp" => d.aisp.clone(),
        _ => d.pisp.clone(),
    }
    .ok_or_else(|| {
        format!("the server's discovery document does not advertise openbanking.{kind}").into()
    })
}

fn check(r: &fapi_examples::tpp::ApiResponse, what: &str) -> Res<Value> {
    if (200..300).contains(&r.status) {
        Ok(r.json())
    } else {
        Err(format!("{what}: {} {}", r.status, String::from_utf8_lossy(&r.body)).into())
    }
}

/// Whether to run the UK OB flow (`--mode`, or what discovery says).
fn uk_ob(tpp: &Tpp, flags: &Flags) -> Res<bool> {
    match flags.get("mode") {
        Some("uk-ob") => Ok(true),
        Some("fapi2") => Ok(false),
        Some(other) => Err(format!("--mode {other:?} is not uk-ob or fapi2").into()),
        None => Ok(tpp.discovery().takes_uk_ob_intents()),
    }
}

/// Plain FAPI 2: PAR by scope alone, the customer, JARM, the code with
/// PKCE for a certificate-bound token, then what the server advertises.
async fn plain_fapi2(tpp: &Tpp, flags: &Flags) -> Res<()> {
    let scope = flags.get("scope").unwrap_or("openid accounts");
    let pending = tpp.push_authorization_by_scope(scope).await?;
    println!(
        "plain FAPI 2; pushed authorization request for {scope:?}: {}",
        pending.request_uri
    );
    let location = authorize(tpp, flags, &pending).await?;
    let tokens = tpp.complete(&pending, &location).await?;
    println!("JARM response verified; certificate-bound access token received");
    let d = tpp.discovery();
    if d.introspection_endpoint.is_some() {
        let v = tpp.introspect(&tokens.access_token).await?;
        println!(
            "introspection: active {}, bound to certificate {}",
            v.get("active").unwrap_or(&Value::Null),
            v.pointer("/cnf/x5t#S256")
                .and_then(Value::as_str)
                .unwrap_or("-")
        );
    }
    if d.userinfo_endpoint.is_some() {
        let v = check(&tpp.userinfo(&tokens.access_token).await?, "userinfo")?;
        println!(
            "userinfo: sub {}",
            v.get("sub").and_then(Value::as_str).unwrap_or("?")
        );
    }
    if let Some(aisp) = d.aisp.clone() {
        list_accounts(tpp, &aisp, &tokens.access_token).await?;
    }
    Ok(())
}

async fn accounts(flags: &Flags) -> Res<()> {
    let tpp = connect(flags).await?;
    if !uk_ob(&tpp, flags)? {
        return plain_fapi2(&tpp, flags).await;
    }
    let aisp = base(&tpp, "aisp")?;
    let cc = tpp.client_credentials("accounts").await?;
    let consent = check(
        &tpp.post_json(
            &format!("{aisp}/account-access-consents"),
            &cc,
            &json!({ "Data": { "Permissions": ["ReadAccountsDetail", "ReadBalances", "ReadTransactionsDetail", "ReadTransactionsCredits", "ReadTransactionsDebits"] }, "Risk": {} }),
            None,
        )
        .await?,
        "account-access consent",
    )?;
    let id = consent
        .pointer("/Data/ConsentId")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    println!("consent {id} created");
    let pending = tpp.push_authorization(&id, "openid accounts").await?;
    println!("pushed authorization request: {}", pending.request_uri);
    let location = authorize(&tpp, flags, &pending).await?;
    let tokens = tpp.complete(&pending, &location).await?;
    println!("JARM response verified; certificate-bound access token received");
    list_accounts(&tpp, &aisp, &tokens.access_token).await
}

/// Reads the accounts and their balances with `token` and prints them.
async fn list_accounts(tpp: &Tpp, aisp: &str, token: &str) -> Res<()> {
    let list = check(
        &tpp.get(&format!("{aisp}/accounts"), token).await?,
        "accounts",
    )?;
    for a in list
        .pointer("/Data/Account")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
    {
        let acc = a
            .pointer("/AccountId")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let bal = check(
            &tpp.get(&format!("{aisp}/accounts/{acc}/balances"), token)
                .await?,
            "balances",
        )?;
        println!(
            "  {acc}  {}  balance {} {}",
            a.pointer("/Nickname")
                .and_then(Value::as_str)
                .unwrap_or_default(),
            bal.pointer("/Data/Balance/0/Amount/Amount")
                .and_then(Value::as_str)
                .unwrap_or("?"),
            bal.pointer("/Data/Balance/0/Amount/Currency")
                .and_then(Value::as_str)
                .unwrap_or("")
        );
    }
    Ok(())
}

async fn pay(flags: &Flags) -> Res<()> {
    let need = |n: &str| flags.get(n).ok_or_else(|| format!("--{n} is required"));
    let tpp = connect(flags).await?;
    if !uk_ob(&tpp, flags)? {
        return Err("a payment is asked for with a UK OB payment consent (openbanking_intent_id): this server does not take them, or --mode fapi2 was given".into());
    }
    let pisp = base(&tpp, "pisp")?;
    let instruction = fapi_core::random::token(12)?;
    let init = initiation(
        &instruction,
        need("amount")?,
        need("creditor")?,
        need("creditor-account")?,
        flags.get("reference").unwrap_or("tpp cli"),
    );
    let cc = tpp.client_credentials("payments").await?;
    let created = tpp
        .post_json(
            &format!("{pisp}/domestic-payment-consents"),
            &cc,
            &json!({ "Data": { "Initiation": init }, "Risk": {} }),
            Some(&format!("c-{instruction}")),
        )
        .await?;
    let consent = check(&created, "payment consent")?;
    tpp.verify_response_signature(&created).await?;
    let id = consent
        .pointer("/Data/ConsentId")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    println!("payment consent {id} created (bank signature verified)");
    let pending = tpp.push_authorization(&id, "openid payments").await?;
    let location = authorize(&tpp, flags, &pending).await?;
    let token = tpp.complete(&pending, &location).await?.access_token;
    let paid = tpp
        .post_json(
            &format!("{pisp}/domestic-payments"),
            &token,
            &json!({ "Data": { "ConsentId": id, "Initiation": init }, "Risk": {} }),
            Some(&format!("p-{instruction}")),
        )
        .await?;
    let body = check(&paid, "payment")?;
    tpp.verify_response_signature(&paid).await?;
    println!(
        "payment {} {} (bank signature verified)",
        body.pointer("/Data/DomesticPaymentId")
            .and_then(Value::as_str)
            .unwrap_or_default(),
        body.pointer("/Data/Status")
            .and_then(Value::as_str)
            .unwrap_or_default()
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // the command is the first word that is not a flag or a flag's value
    let mut i = 0;
    let mut command = None;
    while let Some(a) = args.get(i) {
        if a.starts_with("--") {
            i += 2;
        } else {
            command = Some(i);
            break;
        }
    }
    let Some(at) = command else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let mut rest = args.clone();
    let cmd = rest.remove(at);
    let flags = match Flags::parse(&rest) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("tpp: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let allowed: Vec<&str> = COMMON
        .iter()
        .copied()
        .chain([
            "amount",
            "creditor",
            "creditor-account",
            "software-statement",
        ])
        .collect();
    if let Err(e) = flags.only(&allowed) {
        eprintln!("tpp: {e}\n{USAGE}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tpp: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cmd.as_str() {
        "accounts" => runtime.block_on(accounts(&flags)),
        "pay" => runtime.block_on(pay(&flags)),
        "register" => runtime.block_on(register(&flags)),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tpp: {e}");
            ExitCode::FAILURE
        }
    }
}
