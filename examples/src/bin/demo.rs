//! Run with `cargo run -p fapi-examples --bin demo [-- --data-dir DIR]`.
//!
//! An in-process walkthrough of the whole flow on the embedded SQLite
//! store: a generated scheme PKI, two onboarded TPPs, PAR with a signed
//! request object and `private_key_jwt`, the customer's consent, the JARM
//! response verified by the TPP, the token exchange with PKCE and a
//! certificate-bound token, account reads, a payment with
//! `x-idempotency-key` and `x-jws-signature`, the signed payment record,
//! revocation and the next call refused, TPP B presenting TPP A's token,
//! and the audit chain verified against a signed checkpoint.
//!
//! Every check is a crate call. What this program stands in for: the TLS
//! handshake (the TPP's certificate is presented as rustls would after
//! verifying it), HTTP, and the customer's browser. The networked bank and
//! TPP programs arrive with the rest of the examples issue.

use std::error::Error;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use fapi_consent::audit::{sign_checkpoint, verify_chain, AuditLog};
use fapi_consent::consent::{AccountAccessRequest, Actor, Amount, CreditorAccount, Initiation};
use fapi_consent::gate::PaymentSubmission;
use fapi_consent::idempotency::{
    body_hash, Begin, IdempotencyKey, IdempotencyStore, StoredResponse,
};
use fapi_consent::record::PaymentAuthorisationRecord;
use fapi_consent::store::{apply_event_audited, create_audited};
use fapi_consent::{Consent, ConsentEvent, ConsentGate, ConsentStore, EventKind, ResourceAccess};
use fapi_core::access_token::{AccessTokenClaims, AccessTokenIssuer};
use fapi_core::client::{AuthMethod, ClientMetadata};
use fapi_core::client_auth::{
    AssertionContext, Endpoint, UnverifiedClientAssertion, JWT_BEARER_ASSERTION_TYPE,
};
use fapi_core::crypto::{default_provider, CryptoProvider, SigningKey};
use fapi_core::jose::detached::{
    sign_ob_jws_signature, verify_ob_jws_signature, ObSignatureExpectations,
};
use fapi_core::jose::sign_compact;
use fapi_core::jwk::{Jwk, JwkSet, KeySet};
use fapi_core::time::{Clock, SystemClock, UnixTime};
use fapi_core::types::{ClientId, CodeVerifier, ConsentId, Issuer, RedirectUri, Scope, State};
use fapi_core::{random, AccessTokenVerifier, AuthenticatedClient, Profile};
use fapi_examples::codes::{AuthorizationCodeStore, CodeGrant, RedeemError, Redemption};
use fapi_examples::core_banking::{to_minor, CircuitBreaker, CoreBanking, MockLedger};
use fapi_examples::pki::{DevPki, FileKeySource, KeySource};
use fapi_examples::sqlite::SqliteDb;
use fapi_jarm::{JarmOutcome, JarmSigner, JarmVerifier, Rendered};
use fapi_mtls_binding::directory::{ensure_single_identity, InMemoryTppDirectory};
use fapi_mtls_binding::trust::{TrustBundle, TrustStore};
use fapi_mtls_binding::{ClientCertificate, PresentedCertificate};
use fapi_par::{
    push, InMemoryPushedRequestStore, ParConfig, PushedRequestForm, PushedRequestStore, RequestUri,
};
use futures_executor::block_on;
use serde_json::json;

type Res<T> = Result<T, Box<dyn Error>>;

const ISSUER: &str = "https://bank.localhost";
const API: &str = "https://api.bank.localhost";
const PROFILE: Profile = Profile::Fapi2MessageSigning;

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
    /// A step that must be refused: ok if `r` is an error.
    fn refused<T, E: std::fmt::Display>(&mut self, line: &str, r: Result<T, E>) {
        self.done += 1;
        match r {
            Err(e) => println!("[{:>2}] refused {line}: {e}", self.done),
            Ok(_) => {
                self.failed += 1;
                println!("[{:>2}] FAILED  {line}: it was accepted", self.done);
            }
        }
    }
}

struct Tpp {
    id: ClientId,
    registration: ClientMetadata,
    signing: Arc<dyn SigningKey>,
    kid: String,
    cert: PresentedCertificate,
}

struct Bank {
    provider: Arc<dyn CryptoProvider>,
    issuer: Issuer,
    key: Arc<dyn SigningKey>,
    keys: Arc<KeySet>,
    db: Arc<SqliteDb>,
    par: InMemoryPushedRequestStore,
    directory: InMemoryTppDirectory,
}

fn read(p: &std::path::Path) -> Res<String> {
    Ok(std::fs::read_to_string(p)?)
}

impl Bank {
    /// `private_key_jwt` at an endpoint over the connection's certificate
    /// `presented`: parse, verify, record the jti, and refuse a certificate
    /// the directory registers to another client.
    fn authenticate(
        &self,
        tpp: &Tpp,
        presented: &PresentedCertificate,
        endpoint: Endpoint<'_>,
        now: UnixTime,
    ) -> Res<AuthenticatedClient> {
        let claims = json!({ "iss": tpp.id.as_str(), "sub": tpp.id.as_str(), "aud": ISSUER, "jti": random::token(16)?, "iat": now.as_secs(), "exp": now.as_secs() + 60 });
        let assertion = sign_compact(
            &*tpp.signing,
            Some(&tpp.kid),
            None,
            claims.as_object().ok_or("claims")?,
        )?;
        let ctx = AssertionContext {
            profile: PROFILE,
            issuer: &self.issuer,
            endpoint,
        };
        let pending = UnverifiedClientAssertion::parse(
            JWT_BEARER_ASSERTION_TYPE,
            &assertion,
            Some(tpp.id.as_str()),
        )?
        .verify(&tpp.registration, &ctx, now)?;
        let client = block_on(pending.record_jti(&*self.db, now))?;
        block_on(ensure_single_identity(
            client.client_id(),
            presented.certificate().thumbprint(),
            &self.directory,
        ))?;
        Ok(client)
    }
}

/// PAR -> consent screen -> JARM -> token, for one consent. Returns the
/// access token.
fn obtain_token(
    steps: &mut Steps,
    bank: &mut Bank,
    tpp: &Tpp,
    consent_id: &ConsentId,
    accounts: &[&str],
    now: UnixTime,
) -> Res<String> {
    // TPP: signed request object, pushed with private_key_jwt
    let verifier = CodeVerifier::generate()?;
    let state = State::try_from(random::token(16)?)?;
    let claims = json!({
        "iss": tpp.id.as_str(), "aud": ISSUER, "client_id": tpp.id.as_str(), "nbf": now.as_secs(), "exp": now.as_secs() + 300,
        "response_type": "code", "response_mode": "jwt", "redirect_uri": format!("https://{}.example/cb", tpp.id),
        "scope": "openid accounts payments", "state": state.as_str(), "nonce": random::token(16)?,
        "code_challenge": verifier.challenge().as_str(), "code_challenge_method": "S256",
        "claims": { "id_token": { "openbanking_intent_id": { "value": consent_id.as_str(), "essential": true } } },
    });
    let request = sign_compact(
        &*tpp.signing,
        Some(&tpp.kid),
        Some("oauth-authz-req+jwt"),
        claims.as_object().ok_or("claims")?,
    )?;
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", tpp.id.as_str())
        .append_pair("request", &request)
        .finish();
    let client = bank.authenticate(
        tpp,
        &tpp.cert,
        Endpoint::PushedAuthorization("https://bank.localhost/par"),
        now,
    )?;
    let form = PushedRequestForm::parse(body.as_bytes())?;
    let pushed = block_on(push(
        &form,
        &client,
        &tpp.registration,
        &ParConfig::new(PROFILE, bank.issuer.clone()),
        &bank.par,
        now,
    ))?;
    steps.ok(&format!(
        "{}: PAR with a signed request object and private_key_jwt -> 201, expires_in {}",
        tpp.id, pushed.expires_in
    ));

    // customer: the consent page (reloadable), then approval
    let uri = RequestUri::parse(&pushed.request_uri).ok_or("request_uri")?;
    let shown = block_on(bank.par.peek(&uri, &tpp.id, now))?;
    block_on(bank.par.peek(&uri, &tpp.id, now))?; // a reload still works
    let intent = shown
        .request
        .openbanking_intent_id()
        .ok_or("no intent id")?;
    let consent = block_on(bank.db.get(&ConsentId::try_from(intent)?))?.ok_or("no consent")?;
    let what = match consent.terms() {
        fapi_consent::consent::ConsentTerms::AccountAccess(t) => t
            .permissions
            .iter()
            .map(|p| p.plain_words())
            .collect::<Vec<_>>()
            .join(", "),
        fapi_consent::consent::ConsentTerms::DomesticPayment(t) => format!(
            "pay {} {} to {}",
            t.initiation.instructed_amount.amount,
            t.initiation.instructed_amount.currency,
            t.initiation.creditor_account.name
        ),
        _ => String::new(),
    };
    let event = ConsentEvent {
        kind: EventKind::Authorise {
            customer_id: "alice".into(),
            accounts: accounts.iter().map(|a| a.to_string()).collect(),
        },
        actor: Actor::Customer("alice".into()),
        reason: "approved on the consent screen".into(),
        at: now,
    };
    block_on(apply_event_audited(
        &*bank.db,
        &*bank.db,
        consent.id(),
        event,
        None,
    ))?;
    let taken = block_on(bank.par.take(&uri, &tpp.id, now))?;
    steps.ok(&format!(
        "customer alice logged in, saw \"{what}\" for {}, approved",
        tpp.id
    ));
    steps.refused(
        "the same request_uri used again after the authorization completed",
        block_on(bank.par.take(&uri, &tpp.id, now)),
    );

    // bank: JARM response; TPP: verify it
    let code = random::token(32)?;
    let grant = CodeGrant {
        client_id: tpp.id.clone(),
        redirect_uri: taken.request.redirect_uri().clone(),
        code_challenge: taken.request.code_challenge().clone(),
        consent_id: consent.id().clone(),
        customer_id: "alice".into(),
        scope: taken.request.scope().cloned(),
        nonce: taken.request.nonce().cloned(),
        expires_at: now.saturating_add(PROFILE.authorization_code_lifetime_secs()),
    };
    block_on(bank.db.issue(&code, grant))?;
    let response = JarmSigner::new(bank.key.clone(), "bank-signing".into(), bank.issuer.clone())
        .success(&taken.request, &code, now)?;
    let Rendered::Redirect { location } = response.render()? else {
        return Err("expected a redirect".into());
    };
    let jarm = JarmVerifier::new(
        bank.keys.clone(),
        bank.issuer.clone(),
        tpp.id.clone(),
        PROFILE.algorithms(),
    );
    let JarmOutcome::Code(received) = jarm.verify_redirect(&location, Some(&state), now)? else {
        return Err("expected a code".into());
    };
    steps.ok(&format!(
        "{}: JARM response verified (signature, iss, aud, exp, state)",
        tpp.id
    ));

    // token endpoint: private_key_jwt, single-use code, PKCE, certificate binding
    let client = bank.authenticate(
        tpp,
        &tpp.cert,
        Endpoint::Token("https://bank.localhost/token"),
        now,
    )?;
    let redirect_uri = format!("https://{}.example/cb", tpp.id);
    let redemption = Redemption {
        code: &received,
        client_id: client.client_id(),
        redirect_uri: &redirect_uri,
        code_verifier: Some(&verifier),
        now,
    };
    let grant = block_on(bank.db.redeem(&redemption))?;
    let claims = AccessTokenClaims {
        subject: grant.customer_id,
        client_id: client.client_id().clone(),
        scope: Scope::try_from("accounts payments")?,
        consent_id: Some(grant.consent_id),
        confirmation: tpp.cert.confirmation(),
    };
    let token = AccessTokenIssuer::new(
        bank.key.clone(),
        "bank-signing".into(),
        bank.issuer.clone(),
        API.into(),
        300,
    )
    .issue(&claims, now)?;
    block_on(bank.db.record_token(&received, token.jti.clone()))?;
    steps.ok(&format!(
        "{}: token exchange (PKCE S256, code single use) -> access token bound to its certificate",
        tpp.id
    ));
    let replay = block_on(bank.db.redeem(&redemption));
    let names_token = matches!(&replay, Err(RedeemError::Replayed { issued }) if issued.as_slice() == [token.jti.clone()]);
    steps.refused("the same authorization code redeemed twice", replay);
    if !names_token {
        steps.failed += 1;
        println!("       FAILED  the replay did not name the token issued from the code");
    }
    Ok(token.token)
}

fn run(data_dir: PathBuf) -> Res<bool> {
    let mut steps = Steps::default();
    let now = SystemClock.now();
    let provider = default_provider();
    let pki = DevPki::generate(&data_dir, &*provider, &["tpp-a", "tpp-b"], now)?;
    steps.ok(&format!(
        "development PKI generated in {} (scheme CA, bank server certificate, 2 TPPs; keys 0600)",
        data_dir.display()
    ));

    let key_source = FileKeySource::new(&data_dir, provider.clone());
    let key = key_source.signing_key("bank-signing")?;
    let issuer = Issuer::try_from(ISSUER)?;
    let jwks = JwkSet::new(vec![Jwk::from_public_key(
        key.public_key().clone(),
        Some("bank-signing".into()),
    )]);
    let keys = Arc::new(KeySet::from_jwks(&jwks, &*provider, &PROFILE.key_policy())?);
    let db = Arc::new(SqliteDb::open(&data_dir.join("bank.db"))?);
    let mut bank = Bank {
        provider: provider.clone(),
        issuer,
        key,
        keys,
        db,
        par: InMemoryPushedRequestStore::new(10_000),
        directory: InMemoryTppDirectory::new(),
    };

    // onboarding: certificate from the scheme CA, JWKS registered
    let ca = ClientCertificate::from_pem(&read(&pki.scheme_ca)?)?;
    let trust = TrustStore::new(TrustBundle::new(1, &[ca.der()], &[], &[])?);
    let mut tpps = Vec::new();
    for files in &pki.tpps {
        let id = ClientId::try_from(files.client_id.as_str())?;
        let jwks = JwkSet::from_json(read(&files.jwks)?.as_bytes())?;
        let redirect = RedirectUri::try_from(format!("https://{}.example/cb", files.client_id))?;
        let registration = ClientMetadata::new(
            id.clone(),
            AuthMethod::PrivateKeyJwt,
            vec![redirect],
            jwks,
            &*bank.provider,
            PROFILE,
        )?;
        let cert = PresentedCertificate::from_verified_tls_peer(
            ClientCertificate::from_pem(&read(&files.certificate)?)?.der(),
        )?;
        trust.current().verify(cert.certificate(), &[], now)?;
        bank.directory
            .register(id.clone(), cert.certificate().thumbprint());
        let signing = key_source.signing_key(&files.signing_key)?;
        tpps.push(Tpp {
            id,
            registration,
            signing,
            kid: files.signing_key.clone(),
            cert,
        });
    }
    let [tpp_a, tpp_b] = tpps.as_slice() else {
        return Err("two TPPs expected".into());
    };
    steps.ok("onboarded tpp-a and tpp-b: certificates chain to the scheme CA (clientAuth), JWKS registered");
    steps.refused(
        "tpp-b authenticating with its own assertion over tpp-a's certificate",
        bank.authenticate(
            tpp_b,
            &tpp_a.cert,
            Endpoint::Token("https://bank.localhost/token"),
            now,
        ),
    );

    // account access
    let aac = ConsentId::try_from(format!("aac-{}", random::token(12)?))?;
    let request = AccountAccessRequest {
        permissions: [
            "ReadAccountsDetail",
            "ReadBalances",
            "ReadTransactionsDetail",
            "ReadTransactionsCredits",
            "ReadTransactionsDebits",
        ]
        .map(String::from)
        .to_vec(),
        expiration: None,
        transaction_from: None,
        transaction_to: None,
    };
    block_on(create_audited(
        &*bank.db,
        &*bank.db,
        Consent::account_access(aac.clone(), tpp_a.id.clone(), &request, now)?,
        Some("demo-1"),
        None,
    ))?;
    steps.ok(&format!("tpp-a created account-access consent {aac}"));
    let token = obtain_token(&mut steps, &mut bank, tpp_a, &aac, &["acc-1"], now)?;

    let gate = ConsentGate::new(bank.db.clone()).with_audit(bank.db.clone());
    let core = MockLedger::default();
    core.open("acc-1", "alice", "Alice's current account", 100_000, now);
    let breaker = CircuitBreaker::new(5, 30);
    let verifier = AccessTokenVerifier::new(
        bank.keys.clone(),
        bank.issuer.clone(),
        API.into(),
        PROFILE.algorithms(),
    );
    let header = format!("Bearer {token}");
    let bound = verifier.verify(&header, now)?.bind(&tpp_a.cert)?;
    block_on(gate.authorize(&bound, &ResourceAccess::Accounts, now))?;
    let tx = block_on(gate.authorize(
        &bound,
        &ResourceAccess::Transactions {
            account: "acc-1".into(),
            from: None,
            to: None,
        },
        now,
    ))?;
    steps.ok(&format!("tpp-a read /accounts and /accounts/acc-1/transactions (verify -> bind -> consent gate; {:?} fields)", tx.detail_level()));
    steps.refused(
        "tpp-a reading an account the customer did not select",
        block_on(gate.authorize(&bound, &ResourceAccess::Balances("acc-9".into()), now)),
    );
    steps.refused(
        "tpp-b presenting tpp-a's token with its own certificate",
        verifier.verify(&header, now)?.bind(&tpp_b.cert),
    );

    // payment
    let pdc = ConsentId::try_from(format!("pdc-{}", random::token(12)?))?;
    let initiation = Initiation {
        instruction_identification: "demo-instr-1".into(),
        end_to_end_identification: "demo-e2e-1".into(),
        instructed_amount: Amount {
            amount: "25.00".into(),
            currency: "GBP".into(),
        },
        creditor_account: CreditorAccount {
            scheme_name: "UK.OBIE.SortCodeAccountNumber".into(),
            identification: "08080021325698".into(),
            name: "ACME Ltd".into(),
        },
        remittance_reference: Some("INV-2026-42".into()),
    };
    block_on(create_audited(
        &*bank.db,
        &*bank.db,
        Consent::domestic_payment(pdc.clone(), tpp_a.id.clone(), initiation.clone(), now)?,
        Some("demo-2"),
        None,
    ))?;
    steps.ok(&format!(
        "tpp-a created domestic-payment consent {pdc} for 25.00 GBP to ACME Ltd"
    ));
    let pay_token = obtain_token(&mut steps, &mut bank, tpp_a, &pdc, &["acc-1"], now)?;

    let body =
        json!({ "Data": { "ConsentId": pdc.as_str(), "Initiation": initiation }, "Risk": {} })
            .to_string();
    let signature = sign_ob_jws_signature(
        &*tpp_a.signing,
        &tpp_a.kid,
        "tpp-a-org/tpp-a-software",
        "openbanking.org.uk",
        now,
        body.as_bytes(),
        false,
    )?;
    let idem_key = IdempotencyKey::parse("demo-payment-1")?;
    let submit = |bank: &Bank| -> Res<String> {
        verify_ob_jws_signature(
            &signature,
            body.as_bytes(),
            tpp_a.registration.keys(),
            &[fapi_core::crypto::Algorithm::Ps256],
            &ObSignatureExpectations {
                issuer: "tpp-a-org/tpp-a-software",
                trust_anchor: "openbanking.org.uk",
                max_future_skew_secs: 10,
                max_age_secs: 300,
            },
            now,
        )?;
        match block_on(
            bank.db
                .begin(&tpp_a.id, &idem_key, body_hash(body.as_bytes()), now),
        )? {
            Begin::Replay(r) => Ok(String::from_utf8(r.body)?),
            _ => {
                let bound = verifier
                    .verify(&format!("Bearer {pay_token}"), now)?
                    .bind(&tpp_a.cert)?;
                let paid = block_on(gate.consume_payment(
                    &bound,
                    &PaymentSubmission {
                        consent_id: pdc.clone(),
                        initiation: initiation.clone(),
                    },
                    now,
                ))?;
                // the consent is consumed first (the exactly-once guard); then the core moves the money
                let amount = to_minor(&initiation.instructed_amount.amount).ok_or("amount")?;
                let reference = initiation.remittance_reference.clone().unwrap_or_default();
                let balance = breaker.call(now, || {
                    core.pay(
                        &paid.debtor_account,
                        amount,
                        &initiation.creditor_account.name,
                        &reference,
                        now,
                    )
                })?;
                let response = json!({ "Data": { "DomesticPaymentId": format!("dp-{}", random::token(12)?), "ConsentId": pdc.as_str(), "Status": "AcceptedSettlementInProcess", "DebtorAccount": paid.debtor_account, "DebtorBalanceMinor": balance } }).to_string();
                block_on(bank.db.complete(
                    &tpp_a.id,
                    &idem_key,
                    StoredResponse {
                        status: 201,
                        body: response.clone().into_bytes(),
                    },
                ))?;
                Ok(response)
            }
        }
    };
    let first = submit(&bank)?;
    let balance = core.balance("acc-1")?;
    if balance != 97_500 {
        return Err(format!("expected acc-1 at 975.00 after the payment, found {balance}").into());
    }
    steps.ok("tpp-a submitted the payment (x-jws-signature verified, x-idempotency-key new, consent consumed once); acc-1 debited to 975.00");
    let retry = submit(&bank)?;
    if retry != first {
        return Err("idempotent retry returned a different result".into());
    }
    if core.balance("acc-1")? != 97_500 {
        return Err("the idempotent retry moved money".into());
    }
    steps.ok("tpp-a retried with the same x-idempotency-key: the same payment came back, nothing moved twice");
    let other = verifier
        .verify(&format!("Bearer {pay_token}"), now)?
        .bind(&tpp_a.cert)?;
    steps.refused(
        "a second payment on the consumed consent",
        block_on(gate.consume_payment(
            &other,
            &PaymentSubmission {
                consent_id: pdc.clone(),
                initiation: initiation.clone(),
            },
            now,
        )),
    );

    let record = PaymentAuthorisationRecord::new(
        pdc.as_str(),
        "alice",
        tpp_a.id.as_str(),
        initiation,
        "acc-1",
        "urn:openbanking:psd2:sca",
        now,
        None,
    )
    .sign(&*bank.key, "bank-signing")?;
    PaymentAuthorisationRecord::verify(&record, &bank.keys, PROFILE.algorithms())?;
    steps.ok("signed payment-authorisation record verified with the bank's public key alone");

    // revocation from the customer's dashboard
    let listed = block_on(bank.db.list_for_customer("alice"))?;
    let revoke = ConsentEvent {
        kind: EventKind::Revoke,
        actor: Actor::Customer("alice".into()),
        reason: "revoked on the dashboard".into(),
        at: now,
    };
    block_on(apply_event_audited(
        &*bank.db,
        &*bank.db,
        &aac,
        revoke,
        Some("demo-3"),
    ))?;
    steps.ok(&format!(
        "alice's dashboard listed {} consents; she revoked {aac}",
        listed.len()
    ));
    steps.refused(
        "tpp-a's next account read after the revocation",
        block_on(gate.authorize(&bound, &ResourceAccess::Accounts, now)),
    );

    // the audit trail, from the database
    let entries = block_on(bank.db.entries(1, 100_000))?;
    let head = entries.last().ok_or("empty audit trail")?;
    let checkpoint = sign_checkpoint(&*bank.key, "bank-signing", head, now)?;
    let n = verify_chain(&entries, &[checkpoint], &bank.keys, PROFILE.algorithms())?;
    steps.ok(&format!(
        "audit trail: {n} entries hash-chained in bank.db, verified against a signed checkpoint"
    ));

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
    match run(data_dir) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("demo stopped: {e}");
            ExitCode::FAILURE
        }
    }
}
