//! The core-banking system behind the APIs (the reference design reaches it
//! over PrivateLink): a [`CoreBanking`] trait, an in-process ledger, and a
//! circuit breaker so a failing core gives a clean, fast 503 instead of a
//! pile-up of hung requests. Timeouts around each call belong to the server
//! (they need its async runtime); the breaker counts them as failures.
//!
//! The trait is asynchronous because a real core is a remote system: the API
//! layer awaits it within its timeout, on the async workers, without a
//! thread per call. An implementation must not block the calling thread.

use core::fmt;
use core::future::{ready, Future};
use core::pin::Pin;
use std::collections::BTreeMap;
use std::sync::Mutex;

use fapi_core::UnixTime;

/// An amount in minor units (pence), so arithmetic is exact.
pub type Minor = i64;

/// Parses a UK OB decimal amount (already validated by fapi-consent) into
/// minor units for a currency with two decimals.
pub fn to_minor(amount: &str) -> Option<Minor> {
    let (int, frac) = match amount.split_once('.') {
        // a point must be followed by one or two digits
        Some((int, frac)) if (1..=2).contains(&frac.len()) => (int, frac),
        Some(_) => return None,
        None => (amount, ""),
    };
    if frac.bytes().any(|b| !b.is_ascii_digit())
        || int.is_empty()
        || int.bytes().any(|b| !b.is_ascii_digit())
    {
        return None;
    }
    let int: Minor = int.parse().ok()?;
    let frac: Minor = format!("{frac:0<2}").parse().ok()?;
    int.checked_mul(100)?.checked_add(frac)
}

/// One booked transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transaction {
    /// Booking time.
    pub booked_at: UnixTime,
    /// Positive: credit; negative: debit.
    pub amount: Minor,
    /// Counterparty name.
    pub counterparty: String,
    /// Reference.
    pub reference: String,
}

/// Why the core refused or failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// No such account.
    #[error("account not found")]
    UnknownAccount,
    /// The debtor account cannot cover the payment.
    #[error("insufficient funds")]
    InsufficientFunds,
    /// The amount is not payable (zero, negative, more than two decimals).
    #[error("amount is not payable")]
    InvalidAmount,
    /// The core is unavailable (or the circuit is open): answer 503.
    /// Nothing was executed.
    #[error("core banking is unavailable")]
    Unavailable,
    /// No answer within the caller's timeout: whether a payment was booked
    /// is unknown until the core is asked ([`CoreBanking::booking`]).
    #[error("core banking did not answer in time")]
    Timeout,
}

/// A payment the core booked, found by its payment reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Booking {
    /// The payment reference it was booked under (at most one booking
    /// per reference).
    pub payment_ref: String,
    /// The debited account.
    pub debtor: String,
    /// The amount debited.
    pub amount: Minor,
    /// When it was booked.
    pub booked_at: UnixTime,
    /// The debtor's balance right after it.
    pub balance_after: Minor,
}

/// A core-banking answer still on its way.
pub type CoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, CoreError>> + Send + 'a>>;

/// The bank's ledger, as the API layer sees it.
pub trait CoreBanking: Send + Sync + fmt::Debug {
    /// The customer's accounts (id, name).
    fn accounts<'a>(&'a self, customer_id: &'a str) -> CoreFuture<'a, Vec<(String, String)>>;
    /// An account's balance.
    fn balance<'a>(&'a self, account: &'a str) -> CoreFuture<'a, Minor>;
    /// An account's transactions booked in `[from, to]` (inclusive).
    fn transactions<'a>(
        &'a self,
        account: &'a str,
        from: Option<UnixTime>,
        to: Option<UnixTime>,
    ) -> CoreFuture<'a, Vec<Transaction>>;
    /// Moves `amount` from `debtor` to the creditor (outside the bank here),
    /// atomically, at most once per `payment_ref`: a second call with a
    /// booked reference books nothing and answers the first booking.
    fn pay<'a>(
        &'a self,
        payment_ref: &'a str,
        debtor: &'a str,
        amount: Minor,
        creditor_name: &'a str,
        reference: &'a str,
        at: UnixTime,
    ) -> CoreFuture<'a, Booking>;
    /// What happened to the payment `payment_ref`: its booking, or `None`
    /// if it was never booked (reconciliation after a timeout or a crash).
    fn booking<'a>(&'a self, payment_ref: &'a str) -> CoreFuture<'a, Option<Booking>>;
}

#[derive(Debug, Default)]
struct Account {
    customer_id: String,
    name: String,
    transactions: Vec<Transaction>,
}

impl Account {
    fn balance(&self) -> Minor {
        self.transactions.iter().map(|t| t.amount).sum()
    }
}

/// An in-process ledger for the demo and tests.
#[derive(Debug, Default)]
pub struct MockLedger {
    accounts: Mutex<BTreeMap<String, Account>>,
    /// Every booked payment by its payment reference.
    bookings: Mutex<BTreeMap<String, Booking>>,
}

impl MockLedger {
    /// Opens an account with an opening credit.
    pub fn open(&self, account: &str, customer_id: &str, name: &str, opening: Minor, at: UnixTime) {
        if let Ok(mut m) = self.accounts.lock() {
            let tx = Transaction {
                booked_at: at,
                amount: opening,
                counterparty: "opening balance".into(),
                reference: "OPEN".into(),
            };
            m.insert(
                account.to_owned(),
                Account {
                    customer_id: customer_id.to_owned(),
                    name: name.to_owned(),
                    transactions: vec![tx],
                },
            );
        }
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut BTreeMap<String, Account>) -> Result<T, CoreError>,
    ) -> Result<T, CoreError> {
        let mut m = self.accounts.lock().map_err(|_| CoreError::Unavailable)?;
        f(&mut m)
    }
}

impl MockLedger {
    /// The customer's accounts (id, name), answered at once.
    ///
    /// # Errors
    /// [`CoreError::Unavailable`] if the ledger's lock is poisoned.
    pub fn accounts_now(&self, customer_id: &str) -> Result<Vec<(String, String)>, CoreError> {
        self.with(|m| {
            Ok(m.iter()
                .filter(|(_, a)| a.customer_id == customer_id)
                .map(|(id, a)| (id.clone(), a.name.clone()))
                .collect())
        })
    }
    /// An account's balance, answered at once.
    ///
    /// # Errors
    /// [`CoreError::UnknownAccount`].
    pub fn balance_now(&self, account: &str) -> Result<Minor, CoreError> {
        self.with(|m| {
            m.get(account)
                .map(Account::balance)
                .ok_or(CoreError::UnknownAccount)
        })
    }
    /// An account's transactions in `[from, to]`, answered at once.
    ///
    /// # Errors
    /// [`CoreError::UnknownAccount`].
    pub fn transactions_now(
        &self,
        account: &str,
        from: Option<UnixTime>,
        to: Option<UnixTime>,
    ) -> Result<Vec<Transaction>, CoreError> {
        self.with(|m| {
            let a = m.get(account).ok_or(CoreError::UnknownAccount)?;
            Ok(a.transactions
                .iter()
                .filter(|t| {
                    from.is_none_or(|f| t.booked_at >= f) && to.is_none_or(|e| t.booked_at <= e)
                })
                .cloned()
                .collect())
        })
    }
    /// Books a payment at once (see [`CoreBanking::pay`]).
    ///
    /// # Errors
    /// [`CoreError::InvalidAmount`], [`CoreError::UnknownAccount`],
    /// [`CoreError::InsufficientFunds`].
    pub fn pay_now(
        &self,
        payment_ref: &str,
        debtor: &str,
        amount: Minor,
        creditor_name: &str,
        reference: &str,
        at: UnixTime,
    ) -> Result<Booking, CoreError> {
        if amount <= 0 {
            return Err(CoreError::InvalidAmount);
        }
        // bookings, then accounts: the one lock order
        let mut bookings = self.bookings.lock().map_err(|_| CoreError::Unavailable)?;
        if let Some(b) = bookings.get(payment_ref) {
            return Ok(b.clone());
        }
        let booking = self.with(|m| {
            let a = m.get_mut(debtor).ok_or(CoreError::UnknownAccount)?;
            if a.balance() < amount {
                return Err(CoreError::InsufficientFunds);
            }
            a.transactions.push(Transaction {
                booked_at: at,
                amount: -amount,
                counterparty: creditor_name.to_owned(),
                reference: reference.to_owned(),
            });
            Ok(Booking {
                payment_ref: payment_ref.to_owned(),
                debtor: debtor.to_owned(),
                amount,
                booked_at: at,
                balance_after: a.balance(),
            })
        })?;
        bookings.insert(payment_ref.to_owned(), booking.clone());
        Ok(booking)
    }

    /// The booking of `payment_ref`, answered at once.
    ///
    /// # Errors
    /// [`CoreError::Unavailable`] if the ledger's lock is poisoned.
    pub fn booking_now(&self, payment_ref: &str) -> Result<Option<Booking>, CoreError> {
        let bookings = self.bookings.lock().map_err(|_| CoreError::Unavailable)?;
        Ok(bookings.get(payment_ref).cloned())
    }
}

impl CoreBanking for MockLedger {
    fn accounts<'a>(&'a self, customer_id: &'a str) -> CoreFuture<'a, Vec<(String, String)>> {
        Box::pin(ready(self.accounts_now(customer_id)))
    }
    fn balance<'a>(&'a self, account: &'a str) -> CoreFuture<'a, Minor> {
        Box::pin(ready(self.balance_now(account)))
    }
    fn transactions<'a>(
        &'a self,
        account: &'a str,
        from: Option<UnixTime>,
        to: Option<UnixTime>,
    ) -> CoreFuture<'a, Vec<Transaction>> {
        Box::pin(ready(self.transactions_now(account, from, to)))
    }
    fn pay<'a>(
        &'a self,
        payment_ref: &'a str,
        debtor: &'a str,
        amount: Minor,
        creditor_name: &'a str,
        reference: &'a str,
        at: UnixTime,
    ) -> CoreFuture<'a, Booking> {
        Box::pin(ready(self.pay_now(
            payment_ref,
            debtor,
            amount,
            creditor_name,
            reference,
            at,
        )))
    }
    fn booking<'a>(&'a self, payment_ref: &'a str) -> CoreFuture<'a, Option<Booking>> {
        Box::pin(ready(self.booking_now(payment_ref)))
    }
}

/// The breaker's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls fail fast until the cool-down has passed.
    Open {
        /// When a trial call is allowed again.
        until: UnixTime,
    },
    /// One trial call is allowed; its outcome closes or reopens the breaker.
    HalfOpen,
}

/// A shared core is a core (the bank holds `Arc<dyn CoreBanking>`).
impl<C: CoreBanking + ?Sized> CoreBanking for std::sync::Arc<C> {
    fn accounts<'a>(&'a self, customer_id: &'a str) -> CoreFuture<'a, Vec<(String, String)>> {
        (**self).accounts(customer_id)
    }
    fn balance<'a>(&'a self, account: &'a str) -> CoreFuture<'a, Minor> {
        (**self).balance(account)
    }
    fn transactions<'a>(
        &'a self,
        account: &'a str,
        from: Option<UnixTime>,
        to: Option<UnixTime>,
    ) -> CoreFuture<'a, Vec<Transaction>> {
        (**self).transactions(account, from, to)
    }
    fn pay<'a>(
        &'a self,
        payment_ref: &'a str,
        debtor: &'a str,
        amount: Minor,
        creditor_name: &'a str,
        reference: &'a str,
        at: UnixTime,
    ) -> CoreFuture<'a, Booking> {
        (**self).pay(payment_ref, debtor, amount, creditor_name, reference, at)
    }
    fn booking<'a>(&'a self, payment_ref: &'a str) -> CoreFuture<'a, Option<Booking>> {
        (**self).booking(payment_ref)
    }
}

/// A circuit breaker: after `threshold` consecutive failures it opens for
/// `cooldown_secs`; then one trial call decides. Time is injected.
#[derive(Debug)]
pub struct CircuitBreaker {
    threshold: u32,
    cooldown_secs: i64,
    state: Mutex<(BreakerState, u32)>,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(threshold: u32, cooldown_secs: i64) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown_secs,
            state: Mutex::new((BreakerState::Closed, 0)),
        }
    }

    /// The current state at `now`.
    pub fn state(&self, now: UnixTime) -> BreakerState {
        match self.state.lock() {
            Ok(mut s) => {
                if let BreakerState::Open { until } = s.0 {
                    if now >= until {
                        s.0 = BreakerState::HalfOpen;
                    }
                }
                s.0
            }
            Err(_) => BreakerState::Open { until: now },
        }
    }

    /// Whether a call may go through at `now`.
    ///
    /// # Errors
    /// [`CoreError::Unavailable`] while open.
    pub fn admit(&self, now: UnixTime) -> Result<(), CoreError> {
        match self.state(now) {
            BreakerState::Open { .. } => Err(CoreError::Unavailable),
            _ => Ok(()),
        }
    }

    /// Records the outcome of an admitted call started at `now`: `failed`
    /// means the core was unavailable (an error, or no answer within the
    /// caller's timeout).
    pub fn record(&self, now: UnixTime, failed: bool) {
        if let Ok(mut s) = self.state.lock() {
            if failed {
                s.1 += 1;
                if s.0 == BreakerState::HalfOpen || s.1 >= self.threshold {
                    *s = (
                        BreakerState::Open {
                            until: now.saturating_add(self.cooldown_secs),
                        },
                        0,
                    );
                }
            } else {
                *s = (BreakerState::Closed, 0);
            }
        }
    }

    /// Runs `call` unless the breaker is open (then [`CoreError::Unavailable`]
    /// at once), and records its outcome. Only [`CoreError::Unavailable`]
    /// counts as a failure: a refused payment is the core working.
    ///
    /// # Errors
    /// The call's error, or [`CoreError::Unavailable`] while open.
    pub fn call<T>(
        &self,
        now: UnixTime,
        call: impl FnOnce() -> Result<T, CoreError>,
    ) -> Result<T, CoreError> {
        self.admit(now)?;
        let result = call();
        self.record(now, matches!(result, Err(CoreError::Unavailable)));
        result
    }
}

/// Wraps a core with injected faults (`--core-latency-ms`,
/// `--core-fail-rate`, adjustable while running): every call waits the
/// latency first, and a `fail_rate` share of calls answer
/// [`CoreError::Unavailable`], deterministically spread (rate 0.25 fails
/// every fourth call) so tests know which calls fail.
#[derive(Debug)]
pub struct FaultInjection<C> {
    inner: C,
    latency_ms: std::sync::atomic::AtomicU64,
    /// Failure rate in millionths.
    rate_ppm: std::sync::atomic::AtomicU64,
    calls: std::sync::atomic::AtomicU64,
    /// How many calls have begun (before their delay), for tests that act
    /// while a call is in flight.
    entered: tokio::sync::watch::Sender<u64>,
    /// The next payment is booked but its answer lost (once).
    lose_replies: std::sync::atomic::AtomicBool,
}

fn rate_ppm(fail_rate: f64) -> u64 {
    let rate = if fail_rate.is_finite() {
        fail_rate.clamp(0.0, 1.0)
    } else {
        1.0
    };
    // clamped to [0, 1] above, so the product fits
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let ppm = (rate * 1_000_000.0).round() as u64;
    ppm
}

impl<C: CoreBanking> FaultInjection<C> {
    /// Wraps `inner`; `fail_rate` is clamped to `0.0..=1.0`.
    pub fn new(inner: C, latency: std::time::Duration, fail_rate: f64) -> Self {
        Self {
            inner,
            latency_ms: std::sync::atomic::AtomicU64::new(
                u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
            ),
            rate_ppm: std::sync::atomic::AtomicU64::new(rate_ppm(fail_rate)),
            calls: std::sync::atomic::AtomicU64::new(0),
            entered: tokio::sync::watch::Sender::new(0),
            lose_replies: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The number of calls that have begun, as a watch: a test waits on it
    /// (`wait_for`) to act while a call is inside the core.
    pub fn calls_entered(&self) -> tokio::sync::watch::Receiver<u64> {
        self.entered.subscribe()
    }

    /// The wrapped core.
    pub fn inner(&self) -> &C {
        &self.inner
    }

    /// Sets the latency added to every call from now on.
    pub fn set_latency(&self, latency: std::time::Duration) {
        self.latency_ms.store(
            u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
            std::sync::atomic::Ordering::SeqCst,
        );
    }

    /// The latency added to every call.
    pub fn latency(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.latency_ms.load(std::sync::atomic::Ordering::SeqCst))
    }

    /// The failure rate.
    pub fn fail_rate(&self) -> f64 {
        // millionths: exact in an f64
        #[allow(clippy::cast_precision_loss)]
        let rate = self.rate_ppm.load(std::sync::atomic::Ordering::SeqCst) as f64 / 1_000_000.0;
        rate
    }

    /// Books the next payment but loses its answer (the caller sees
    /// [`CoreError::Timeout`]): the "reply lost after booking" fault.
    pub fn lose_next_payment_reply(&self) {
        self.lose_replies
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Sets the failure rate from now on (clamped to `0.0..=1.0`).
    pub fn set_fail_rate(&self, fail_rate: f64) {
        self.rate_ppm
            .store(rate_ppm(fail_rate), std::sync::atomic::Ordering::SeqCst);
    }

    /// The injected delay, then the injected failure (if this call is one
    /// of the failing share). The delay is an async sleep: a slow core
    /// holds no thread, and a caller's timeout cancels it.
    async fn fault(&self) -> Result<(), CoreError> {
        use std::sync::atomic::Ordering::SeqCst;
        self.entered.send_modify(|n| *n += 1);
        let latency = self.latency_ms.load(SeqCst);
        if latency > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(latency)).await;
        }
        let rate = self.rate_ppm.load(SeqCst);
        let n = self.calls.fetch_add(1, SeqCst);
        // call n fails when the running total of the rate crosses an integer
        let before = n.saturating_mul(rate) / 1_000_000;
        let after = n.saturating_add(1).saturating_mul(rate) / 1_000_000;
        if after > before {
            Err(CoreError::Unavailable)
        } else {
            Ok(())
        }
    }
}

impl<C: CoreBanking> CoreBanking for FaultInjection<C> {
    fn accounts<'a>(&'a self, customer_id: &'a str) -> CoreFuture<'a, Vec<(String, String)>> {
        Box::pin(async move {
            self.fault().await?;
            self.inner.accounts(customer_id).await
        })
    }
    fn balance<'a>(&'a self, account: &'a str) -> CoreFuture<'a, Minor> {
        Box::pin(async move {
            self.fault().await?;
            self.inner.balance(account).await
        })
    }
    fn transactions<'a>(
        &'a self,
        account: &'a str,
        from: Option<UnixTime>,
        to: Option<UnixTime>,
    ) -> CoreFuture<'a, Vec<Transaction>> {
        Box::pin(async move {
            self.fault().await?;
            self.inner.transactions(account, from, to).await
        })
    }
    fn pay<'a>(
        &'a self,
        payment_ref: &'a str,
        debtor: &'a str,
        amount: Minor,
        creditor_name: &'a str,
        reference: &'a str,
        at: UnixTime,
    ) -> CoreFuture<'a, Booking> {
        Box::pin(async move {
            self.fault().await?;
            let booked = self
                .inner
                .pay(payment_ref, debtor, amount, creditor_name, reference, at)
                .await?;
            if self
                .lose_replies
                .swap(false, std::sync::atomic::Ordering::SeqCst)
            {
                // booked, but the answer never arrives
                return Err(CoreError::Timeout);
            }
            Ok(booked)
        })
    }
    fn booking<'a>(&'a self, payment_ref: &'a str) -> CoreFuture<'a, Option<Booking>> {
        Box::pin(async move {
            self.fault().await?;
            self.inner.booking(payment_ref).await
        })
    }
}
