//! A model-based property test of the payment path (#15): the bank's own
//! submission code (`submit_payment`, reconciliation, start-up) over its
//! real SQLite store and ledger, with a scripted core in front of the
//! ledger. proptest draws sequences of steps: submissions of two consents
//! under a few idempotency keys (new keys and same-key retries, several in
//! flight at once), the core's answer to each call that reached it
//! (booked, refused, timeout, reply lost after booking, unavailable),
//! the core's reconciliation query failing, the consent store failing its
//! next change (before writing, or after writing with the acknowledgement
//! lost), time passing, the background reconciliation, and crashes at any
//! moment (every submission in flight cut off, the core having booked some
//! of them or not) followed by a restart from what the store holds.
//!
//! After every step: at most one booking per consent and the balance
//! moved once per booking; a `Consumed` consent has its booking and its
//! payment, an `Authorised` one neither, a `PaymentPending` one no payment
//! without a booking; an outcome once returned for a key never changes; a
//! `201` means booked; no answer is a `500` unless the store was made to
//! fail; the audit trail verifies. At
//! the end, time passes the reconciliation bound: no reservation is left
//! pending, and every key's retry gets a final outcome equal to any
//! earlier one.
//!
//! `PAYMENT_MODEL_CASES` sets the number of cases (default 2,048; the
//! longer run in the README uses 20,000).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use fapi_core::testing::TokenAuthority;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};

use axum::http::StatusCode;
use fapi_consent::audit::{AuditEvent, AuditLog};
use fapi_consent::consent::{Actor, Amount, CreditorAccount, Initiation};
use fapi_consent::gate::PaymentSubmission;
use fapi_consent::idempotency::{body_hash, IdempotencyKey};
use fapi_consent::store::{apply_event_audited, create_audited};
use fapi_consent::store::{CasError, CreateError};
use fapi_consent::{Consent, ConsentEvent, ConsentStatus, ConsentStore, EventKind};
use fapi_core::access_token::{AccessTokenClaims, Confirmation, PresentedKey, ProofOfPossession};
use fapi_core::crypto::{default_provider, Algorithm, SigningKey};
use fapi_core::store::{BoxFuture, StoreError};
use fapi_core::Clock;
use fapi_core::{BoundAccessToken, Profile};
use fapi_core::{CertificateThumbprint, ClientId, ConsentId, Issuer, Scope};
use proptest::prelude::*;
use tokio::sync::{mpsc, oneshot};

use super::{BankConfig, BankState, OffsetClock};
use crate::core_banking::{
    Booking, CoreBanking, CoreError, CoreFuture, FaultInjection, Minor, Transaction,
};

/// The core's deadline in the model: far beyond any real wait, so only
/// the model decides when a call times out.
const CORE_TIMEOUT_SECS: i64 = 60;
const CONSENTS: usize = 2;
const KEYS: usize = 3;
const AMOUNT: Minor = 1_050; // 10.50
const OPENING: Minor = 100_000; // acc-1 opens with 1000.00
const CLIENT: &str = "tpp-a";

/// What the core does with a payment that reached it.
#[derive(Clone, Copy, Debug)]
enum Reply {
    Book,
    Refuse,
    Timeout,
    /// Booked, and the answer never came back.
    BookedAnswerLost,
    Unavailable,
}

#[derive(Clone, Debug)]
enum Op {
    Submit {
        consent: usize,
        key: usize,
    },
    Answer {
        call: usize,
        reply: Reply,
    },
    /// The reconciliation query (`booking`) fails, or works again.
    BookingDown(bool),
    Advance {
        secs: i64,
    },
    /// The background reconciliation's pass.
    Sweep,
    /// The process dies with every call in flight; bit `i` of `booked`:
    /// the core had booked call `i` before it died. Then a restart.
    Crash {
        booked: u8,
    },
    /// The consent store fails its next change: before writing, or after
    /// writing with the acknowledgement lost.
    StoreFault {
        after_write: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let reply = prop_oneof![
        3 => Just(Reply::Book),
        1 => Just(Reply::Refuse),
        1 => Just(Reply::Timeout),
        1 => Just(Reply::BookedAnswerLost),
        1 => Just(Reply::Unavailable),
    ];
    prop_oneof![
        6 => (0..CONSENTS, 0..KEYS).prop_map(|(consent, key)| Op::Submit { consent, key }),
        5 => (0..4usize, reply).prop_map(|(call, reply)| Op::Answer { call, reply }),
        1 => any::<bool>().prop_map(Op::BookingDown),
        2 => prop_oneof![Just(1i64), Just(30), Just(CORE_TIMEOUT_SECS), Just(CORE_TIMEOUT_SECS + 1)]
            .prop_map(|secs| Op::Advance { secs }),
        2 => Just(Op::Sweep),
        1 => any::<u8>().prop_map(|booked| Op::Crash { booked }),
        1 => any::<bool>().prop_map(|after_write| Op::StoreFault { after_write }),
    ]
}

/// A payment that reached the core, waiting for the model's answer.
struct Call {
    /// The submission that made it.
    task: usize,
    consent: String,
    debtor: String,
    amount: Minor,
    entered: i64,
    answer: oneshot::Sender<Reply>,
}

tokio::task_local! {
    /// The model's number of the submission a task runs.
    static TASK: usize;
}

/// The core the handlers call: every payment waits for the model; the
/// reconciliation query asks the ledger (unless the model has it fail).
#[derive(Debug)]
struct ScriptedCore {
    ledger: Arc<FaultInjection<Arc<dyn CoreBanking>>>,
    calls: mpsc::UnboundedSender<Call>,
    clock: Arc<OffsetClock>,
    booking_down: Arc<AtomicBool>,
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("consent", &self.consent)
            .finish()
    }
}

impl CoreBanking for ScriptedCore {
    fn accounts<'a>(&'a self, customer_id: &'a str) -> CoreFuture<'a, Vec<(String, String)>> {
        self.ledger.accounts(customer_id)
    }
    fn balance<'a>(&'a self, account: &'a str) -> CoreFuture<'a, Minor> {
        self.ledger.balance(account)
    }
    fn transactions<'a>(
        &'a self,
        account: &'a str,
        from: Option<fapi_core::UnixTime>,
        to: Option<fapi_core::UnixTime>,
    ) -> CoreFuture<'a, Vec<Transaction>> {
        self.ledger.transactions(account, from, to)
    }
    fn pay<'a>(
        &'a self,
        payment_ref: &'a str,
        debtor: &'a str,
        amount: Minor,
        creditor_name: &'a str,
        reference: &'a str,
        at: fapi_core::UnixTime,
    ) -> CoreFuture<'a, Booking> {
        Box::pin(async move {
            let (tx, rx) = oneshot::channel();
            let Ok(task) = TASK.try_with(|t| *t) else {
                return Err(CoreError::Unavailable);
            };
            let call = Call {
                task,
                consent: payment_ref.to_owned(),
                debtor: debtor.to_owned(),
                amount,
                entered: self.clock.now().as_secs(),
                answer: tx,
            };
            if self.calls.send(call).is_err() {
                return Err(CoreError::Unavailable);
            }
            // no answer: the process is dying; the model aborts this task
            let Ok(reply) = rx.await else {
                return std::future::pending().await;
            };
            let book = || {
                self.ledger
                    .inner()
                    .pay(payment_ref, debtor, amount, creditor_name, reference, at)
            };
            match reply {
                Reply::Book => book().await,
                Reply::Refuse => Err(CoreError::InsufficientFunds),
                Reply::Timeout => Err(CoreError::Timeout),
                Reply::BookedAnswerLost => book().await.and(Err(CoreError::Timeout)),
                Reply::Unavailable => Err(CoreError::Unavailable),
            }
        })
    }
    fn booking<'a>(&'a self, payment_ref: &'a str) -> CoreFuture<'a, Option<Booking>> {
        if self.booking_down.load(Ordering::SeqCst) {
            return Box::pin(async { Err(CoreError::Unavailable) });
        }
        self.ledger.booking(payment_ref)
    }
}

/// No fault armed; fail before writing; fail after writing.
const NO_FAULT: u8 = 0;
const FAIL_BEFORE: u8 = 1;
const FAIL_AFTER: u8 = 2;

/// The bank's consent store with a one-shot fault on its next change
/// (what the gate's reserve and settle go through).
#[derive(Debug)]
struct FaultyConsents {
    inner: Arc<dyn ConsentStore>,
    armed: Arc<AtomicU8>,
}

fn injected() -> StoreError {
    StoreError::unavailable("injected store fault")
}

impl ConsentStore for FaultyConsents {
    fn create(&self, consent: Consent) -> BoxFuture<'_, Result<(), CreateError>> {
        self.inner.create(consent)
    }
    fn get<'a>(&'a self, id: &'a ConsentId) -> BoxFuture<'a, Result<Option<Consent>, StoreError>> {
        self.inner.get(id)
    }
    fn compare_and_swap(
        &self,
        expected_version: u64,
        next: Consent,
    ) -> BoxFuture<'_, Result<(), CasError>> {
        self.inner.compare_and_swap(expected_version, next)
    }
    fn pending_payments(&self) -> BoxFuture<'_, Result<Vec<ConsentId>, StoreError>> {
        self.inner.pending_payments()
    }
    fn list_for_customer<'a>(
        &'a self,
        customer_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Consent>, StoreError>> {
        self.inner.list_for_customer(customer_id)
    }
    fn compare_and_swap_audited<'a>(
        &'a self,
        audit: &'a dyn AuditLog,
        expected_version: u64,
        next: Consent,
        entry: AuditEvent,
    ) -> BoxFuture<'a, Result<(), CasError>> {
        Box::pin(async move {
            match self.armed.swap(NO_FAULT, Ordering::SeqCst) {
                FAIL_BEFORE => Err(CasError::Store(injected())),
                FAIL_AFTER => {
                    self.inner
                        .compare_and_swap_audited(audit, expected_version, next, entry)
                        .await?;
                    Err(CasError::Store(injected()))
                }
                _ => {
                    self.inner
                        .compare_and_swap_audited(audit, expected_version, next, entry)
                        .await
                }
            }
        })
    }
}

/// A data directory with the development PKI, made once per process; each
/// case copies it (without a database).
fn pki_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch("payment-model-pki");
        crate::pki::DevPki::generate_with(
            &dir,
            &*default_provider(),
            &[CLIENT],
            fapi_core::SystemClock.now(),
            Algorithm::Es256,
        )
        .unwrap();
        dir
    })
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "fapi-{name}-{}-{}",
        std::process::id(),
        fapi_core::random::token(8).unwrap()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

fn token_key() -> &'static Arc<dyn SigningKey> {
    static K: OnceLock<Arc<dyn SigningKey>> = OnceLock::new();
    K.get_or_init(|| {
        default_provider()
            .generate_signing_key(Algorithm::Es256)
            .unwrap()
    })
}

struct Cert(CertificateThumbprint);
impl ProofOfPossession for Cert {
    fn presented_key(&self) -> PresentedKey<'_> {
        PresentedKey::Certificate(&self.0)
    }
}

fn authority() -> &'static TokenAuthority {
    static A: OnceLock<TokenAuthority> = OnceLock::new();
    A.get_or_init(|| {
        TokenAuthority::new(
            token_key().clone(),
            Issuer::try_from("https://bank.example").unwrap(),
            fapi_core::TokenAudience::try_from("api").unwrap(),
            Profile::Fapi2Security,
            3600,
        )
        .unwrap()
    })
}

/// The TPP's token for `consent`, verified and bound the real way.
fn token(consent: &ConsentId, clock: &OffsetClock) -> BoundAccessToken {
    let cert = Cert(CertificateThumbprint::of_der(CLIENT.as_bytes()));
    let claims = AccessTokenClaims::new(
        "alice",
        ClientId::try_from(CLIENT).unwrap(),
        Scope::try_from("payments").unwrap(),
        Confirmation::CertificateThumbprint(cert.0),
    )
    .with_consent(Some(consent.clone()));
    futures_executor::block_on(authority().verified(&claims, clock.now()))
        .unwrap()
        .bind(&cert)
        .unwrap()
}

fn initiation(n: usize) -> Initiation {
    Initiation {
        instruction_identification: format!("instr-{n}"),
        end_to_end_identification: format!("e2e-{n}"),
        instructed_amount: Amount {
            amount: "10.50".into(),
            currency: "GBP".into(),
        },
        creditor_account: CreditorAccount {
            scheme_name: "UK.OBIE.SortCodeAccountNumber".into(),
            identification: "08080021325698".into(),
            name: "ACME Ltd".into(),
        },
        remittance_reference: Some(format!("INV-{n}")),
    }
}

type Answer = (StatusCode, Vec<u8>);

/// A submission in flight.
struct Running {
    who: (usize, usize),
    handle: tokio::task::AbortHandle,
}

/// One bank process: its state, the calls its core is holding and the
/// submissions in flight.
struct Process {
    state: Arc<BankState>,
    calls: mpsc::UnboundedReceiver<Call>,
    waiting: Vec<Call>,
    running: HashMap<usize, Running>,
}

struct World {
    config: BankConfig,
    clock: Arc<OffsetClock>,
    booking_down: Arc<AtomicBool>,
    store_fault: Arc<AtomicU8>,
    /// Whether a store fault was ever armed (a `500` is then an honest
    /// answer: the store failed, the bank failed closed).
    faulted: bool,
    consents: Vec<ConsentId>,
    process: Process,
    /// Every submission's end (its answer, or why it has none), by task.
    done_tx: mpsc::UnboundedSender<(usize, Result<Answer, String>)>,
    done: mpsc::UnboundedReceiver<(usize, Result<Answer, String>)>,
    next_task: usize,
    /// The final outcome each (consent, key) got, once it got one.
    outcomes: HashMap<(usize, usize), Answer>,
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.config.data_dir);
    }
}

fn start(
    config: &BankConfig,
    clock: &Arc<OffsetClock>,
    down: &Arc<AtomicBool>,
    fault: &Arc<AtomicU8>,
) -> Process {
    let (tx, calls) = mpsc::unbounded_channel();
    let (clock2, down, armed) = (clock.clone(), down.clone(), fault.clone());
    let apps = super::build_with_core(
        config,
        clock.clone(),
        "https://bank.example",
        "https://api.bank.example",
        move |ledger| {
            Arc::new(ScriptedCore {
                ledger,
                calls: tx,
                clock: clock2,
                booking_down: down,
            })
        },
        move |inner| Arc::new(FaultyConsents { inner, armed }),
    )
    .unwrap();
    Process {
        state: apps.state,
        calls,
        waiting: Vec::new(),
        running: HashMap::new(),
    }
}

/// A final outcome: what the key answers from now on.
fn is_final(status: StatusCode) -> bool {
    status == StatusCode::CREATED
        || (status.is_client_error()
            && status != StatusCode::CONFLICT
            && status != StatusCode::TOO_MANY_REQUESTS)
}

impl World {
    async fn new() -> Self {
        let dir = scratch("payment-model");
        copy_dir(pki_dir(), &dir);
        let mut config = BankConfig::development(&dir);
        config.core.timeout_ms = u64::try_from(CORE_TIMEOUT_SECS).unwrap() * 1_000;
        let clock = Arc::new(OffsetClock::default());
        let booking_down = Arc::new(AtomicBool::new(false));
        let store_fault = Arc::new(AtomicU8::new(NO_FAULT));
        let process = start(&config, &clock, &booking_down, &store_fault);
        let mut consents = Vec::new();
        for n in 0..CONSENTS {
            let (store, audit) = (&*process.state.consents, &*process.state.audit);
            let id = ConsentId::try_from(format!("pdc-model-{n}")).unwrap();
            let c = Consent::domestic_payment(
                id.clone(),
                ClientId::try_from(CLIENT).unwrap(),
                initiation(n),
                clock.now(),
            )
            .unwrap();
            create_audited(store, audit, c, None, None).await.unwrap();
            let event = ConsentEvent {
                kind: EventKind::Authorise {
                    customer_id: "alice".into(),
                    accounts: vec!["acc-1".into()],
                },
                actor: Actor::Customer("alice".into()),
                reason: "approved on the consent screen".into(),
                at: clock.now(),
            };
            apply_event_audited(store, audit, &id, event, None)
                .await
                .unwrap();
            consents.push(id);
        }
        let (done_tx, done) = mpsc::unbounded_channel();
        Self {
            config,
            clock,
            booking_down,
            store_fault,
            faulted: false,
            consents,
            process,
            done_tx,
            done,
            next_task: 0,
            outcomes: HashMap::new(),
        }
    }

    /// Submits consent `consent`'s payment under key `key`, as the
    /// handler's spawned task does.
    fn submit(&mut self, consent: usize, key: usize) {
        let st = self.process.state.clone();
        let id = self.consents[consent].clone();
        let tok = token(&id, &self.clock);
        let submission = PaymentSubmission {
            consent_id: id,
            initiation: initiation(consent),
        };
        // the same body for every key of a consent, as a TPP retries it
        let hash = body_hash(format!("payment of consent {consent}").as_bytes());
        let idem = IdempotencyKey::parse(&format!("key-{consent}-{key}")).unwrap();
        let task = self.next_task;
        self.next_task += 1;
        let inner = tokio::spawn(TASK.scope(task, async move {
            match super::resources::submit_payment(&st, &tok, &submission, &idem, hash).await {
                Ok(a) => a,
                Err(e) => e.to_stored(),
            }
        }));
        let handle = inner.abort_handle();
        let done = self.done_tx.clone();
        tokio::spawn(async move {
            let _ = done.send((task, inner.await.map_err(|e| e.to_string())));
        });
        self.process.running.insert(
            task,
            Running {
                who: (consent, key),
                handle,
            },
        );
    }

    /// Runs every submission in flight until it ends or waits at the core.
    async fn settle(&mut self) -> Result<(), TestCaseError> {
        loop {
            let waiting = &self.process.waiting;
            if self
                .process
                .running
                .keys()
                .all(|t| waiting.iter().any(|c| c.task == *t))
            {
                return Ok(());
            }
            tokio::select! {
                Some(call) = self.process.calls.recv() => self.process.waiting.push(call),
                Some((task, end)) = self.done.recv() => {
                    let Some(r) = self.process.running.remove(&task) else { continue };
                    let answer = end.map_err(|e| TestCaseError::fail(format!("submission died: {e}")))?;
                    self.answered(r.who, answer)?;
                }
            }
        }
    }

    fn answered(
        &mut self,
        who: (usize, usize),
        (status, body): Answer,
    ) -> Result<(), TestCaseError> {
        if !self.faulted {
            prop_assert_ne!(
                status,
                StatusCode::INTERNAL_SERVER_ERROR,
                "{}",
                String::from_utf8_lossy(&body)
            );
        }
        if is_final(status) {
            if let Some(first) = self.outcomes.get(&who) {
                prop_assert_eq!(
                    first,
                    &(status, body.clone()),
                    "the outcome of {:?} changed",
                    who
                );
            }
            self.outcomes.insert(who, (status, body));
        }
        Ok(())
    }

    async fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Submit { consent, key } => self.submit(consent, key),
            Op::Answer { call, reply } => {
                if !self.process.waiting.is_empty() {
                    let call = self
                        .process
                        .waiting
                        .remove(call % self.process.waiting.len());
                    let _ = call.answer.send(reply);
                }
            }
            Op::BookingDown(down) => self.booking_down.store(down, Ordering::SeqCst),
            Op::Advance { secs } => {
                self.clock.advance(secs);
                // what the core's deadline does to a call that waited past
                // it (the model's core timeout stands in for the real one)
                let now = self.clock.now().as_secs();
                let (late, on_time) = std::mem::take(&mut self.process.waiting)
                    .into_iter()
                    .partition(|c| now - c.entered >= CORE_TIMEOUT_SECS);
                self.process.waiting = on_time;
                for c in late {
                    let _ = c.answer.send(Reply::Timeout);
                }
            }
            Op::Sweep => super::reconcile_pending(&self.process.state).await,
            Op::Crash { booked } => self.crash(booked).await,
            Op::StoreFault { after_write } => {
                self.faulted = true;
                let mode = if after_write { FAIL_AFTER } else { FAIL_BEFORE };
                self.store_fault.store(mode, Ordering::SeqCst);
            }
        }
        self.settle().await?;
        self.check()
    }

    async fn crash(&mut self, booked: u8) {
        for (i, call) in std::mem::take(&mut self.process.waiting)
            .into_iter()
            .enumerate()
        {
            if i < 8 && booked & (1 << i) != 0 {
                let _ = self
                    .process
                    .state
                    .faults
                    .inner()
                    .pay(
                        &call.consent,
                        &call.debtor,
                        call.amount,
                        "ACME Ltd",
                        "",
                        self.clock.now(),
                    )
                    .await;
            }
            drop(call); // the process never hears back
        }
        // every submission of the dead process is gone before the restart
        let running = std::mem::take(&mut self.process.running);
        for r in running.values() {
            r.handle.abort();
        }
        let mut left = running.len();
        while left > 0 {
            match self.done.recv().await {
                Some((task, _)) if running.contains_key(&task) => left -= 1,
                Some(_) => {}
                None => break,
            }
        }
        self.process = start(
            &self.config,
            &self.clock,
            &self.booking_down,
            &self.store_fault,
        );
        // what a start does (the background task's first pass)
        super::reconcile_pending(&self.process.state).await;
    }

    /// The invariants, read from the store and the ledger.
    fn check(&self) -> Result<(), TestCaseError> {
        let st = &self.process.state;
        let ledger = st.faults.inner();
        let mut bookings = 0;
        for (n, id) in self.consents.iter().enumerate() {
            let consent = futures_executor::block_on(st.consents.get(id))
                .unwrap()
                .unwrap();
            let booked = futures_executor::block_on(ledger.booking(id.as_str()))
                .unwrap()
                .is_some();
            let payment = futures_executor::block_on(st.payments.by_consent(id))
                .unwrap()
                .is_some();
            bookings += i64::from(booked);
            match consent.status() {
                ConsentStatus::Consumed => prop_assert!(
                    booked && payment,
                    "consent {} Consumed: booked {}, payment {}",
                    n,
                    booked,
                    payment
                ),
                ConsentStatus::Authorised => prop_assert!(
                    !booked && !payment,
                    "consent {} Authorised: booked {}, payment {}",
                    n,
                    booked,
                    payment
                ),
                // booked and stored, not yet marked used (a store failure
                // in between): reconciliation finishes it
                ConsentStatus::PaymentPending => {
                    prop_assert!(
                        !payment || booked,
                        "consent {} pending with a payment but no booking",
                        n
                    )
                }
                other => prop_assert!(false, "consent {} is {:?}", n, other),
            }
            for key in 0..KEYS {
                if let Some((status, _)) = self.outcomes.get(&(n, key)) {
                    if *status == StatusCode::CREATED {
                        prop_assert!(booked, "201 for consent {} without a booking", n);
                    }
                }
            }
        }
        prop_assert_eq!(
            futures_executor::block_on(ledger.balance("acc-1")).unwrap(),
            OPENING - bookings * AMOUNT,
            "money moved other than once per booking"
        );
        let keys = futures_executor::block_on(super::keys::all_public_keys(
            &self.config,
            &*st.keys.store(),
        ))
        .unwrap();
        let entries = futures_executor::block_on(super::audit::all_entries(&*st.audit)).unwrap();
        fapi_consent::audit::verify_chain(
            &entries,
            &[],
            &keys,
            Profile::Fapi2Security.algorithms(),
        )
        .map_err(|e| TestCaseError::fail(format!("audit trail: {e}")))?;
        Ok(())
    }

    /// Time passes the reconciliation bound with a healthy core: nothing
    /// stays pending, every key gets a final outcome, the same as before.
    async fn finish(&mut self) -> Result<(), TestCaseError> {
        self.booking_down.store(false, Ordering::SeqCst);
        self.store_fault.store(NO_FAULT, Ordering::SeqCst);
        self.step(&Op::Advance {
            secs: CORE_TIMEOUT_SECS + 2,
        })
        .await?;
        self.step(&Op::Sweep).await?;
        for id in &self.consents {
            let c = self.process.state.consents.get(id).await.unwrap().unwrap();
            prop_assert_ne!(
                c.status(),
                ConsentStatus::PaymentPending,
                "a reservation outlived the reconciliation bound"
            );
        }
        for consent in 0..CONSENTS {
            for key in 0..KEYS {
                self.submit(consent, key);
                self.settle().await?;
                // a retry that reaches the core is booked
                while let Some(call) = self.process.waiting.pop() {
                    let _ = call.answer.send(Reply::Book);
                    self.settle().await?;
                }
                prop_assert!(
                    self.outcomes.contains_key(&(consent, key)),
                    "consent {} key {}: no final outcome after the bound",
                    consent,
                    key
                );
                self.check()?;
            }
        }
        Ok(())
    }
}

fn cases() -> u32 {
    std::env::var("PAYMENT_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_048)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn payments_never_lose_money_consent_or_an_outcome(ops in proptest::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut world = World::new().await;
            world.check()?;
            for op in &ops {
                world.step(op).await?;
            }
            world.finish().await
        })?;
    }
}
