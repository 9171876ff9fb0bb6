//! The mock core and the circuit breaker: exact amounts, no overdraft even
//! under racing payments, refused payments move nothing, and the breaker
//! fails fast while open and recovers through one trial call, with the
//! cool-down probed at its edge.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use fapi_core::UnixTime;
use std::time::Duration;

use fapi_examples::core_banking::{
    to_minor, BreakerState, CircuitBreaker, CoreBanking, CoreError, FaultInjection, MockLedger,
};

fn at(o: i64) -> UnixTime {
    UnixTime::from_secs(1_900_000_000 + o).unwrap()
}

#[test]
fn amounts_convert_exactly() {
    assert_eq!(to_minor("10.50"), Some(1050));
    assert_eq!(to_minor("10"), Some(1000));
    assert_eq!(to_minor("0.5"), Some(50));
    for bad in [
        "",
        "1.234",
        "-1",
        "1e3",
        ".5",
        "1.",
        "1.x",
        "99999999999999999999",
    ] {
        assert_eq!(to_minor(bad), None, "{bad}");
    }
}

fn ledger() -> MockLedger {
    let l = MockLedger::default();
    l.open("acc-1", "alice", "Current", 10_000, at(0));
    l.open("acc-2", "bob", "Current", 500, at(0));
    l
}

#[test]
fn payment_debits_exactly_once() {
    let l = ledger();
    assert_eq!(
        l.pay_now("p-1", "acc-1", 2_500, "ACME Ltd", "INV-42", at(10))
            .unwrap()
            .balance_after,
        7_500
    );
    assert_eq!(l.balance_now("acc-1").unwrap(), 7_500);
    let tx = l
        .transactions_now("acc-1", Some(at(10)), Some(at(10)))
        .unwrap();
    assert_eq!(tx.len(), 1);
    assert_eq!(
        (tx[0].amount, tx[0].counterparty.as_str()),
        (-2_500, "ACME Ltd")
    );
    assert_eq!(
        l.transactions_now("acc-1", Some(at(11)), None)
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        l.accounts_now("alice").unwrap(),
        vec![("acc-1".to_string(), "Current".to_string())]
    );
}

#[test]
fn refused_payments_move_nothing() {
    let l = ledger();
    assert_eq!(
        l.pay_now("p-1", "acc-2", 501, "x", "r", at(1)).unwrap_err(),
        CoreError::InsufficientFunds
    );
    assert_eq!(
        l.pay_now("p-2", "acc-2", 0, "x", "r", at(1)).unwrap_err(),
        CoreError::InvalidAmount
    );
    assert_eq!(
        l.pay_now("p-3", "acc-9", 1, "x", "r", at(1)).unwrap_err(),
        CoreError::UnknownAccount
    );
    assert_eq!(l.balance_now("acc-2").unwrap(), 500);
    // a refused reference books nothing, so it can be paid later
    assert_eq!(l.booking_now("p-1").unwrap(), None);
    assert_eq!(
        l.pay_now("p-1", "acc-2", 500, "x", "r", at(1))
            .unwrap()
            .balance_after,
        0
    );
}

/// One booking per payment reference: a retry of a booked reference,
/// even with other terms, answers the first booking and moves nothing.
#[test]
fn a_payment_reference_books_at_most_once() {
    let l = ledger();
    let first = l
        .pay_now("pdc-1", "acc-1", 2_500, "ACME Ltd", "INV-1", at(10))
        .unwrap();
    let again = l
        .pay_now("pdc-1", "acc-1", 2_500, "ACME Ltd", "INV-1", at(11))
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(l.balance_now("acc-1").unwrap(), 7_500);
    assert_eq!(l.booking_now("pdc-1").unwrap(), Some(first));
    // the twin: another reference is another payment
    l.pay_now("pdc-2", "acc-1", 2_500, "ACME Ltd", "INV-2", at(12))
        .unwrap();
    assert_eq!(l.balance_now("acc-1").unwrap(), 5_000);
}

/// 100 threads pay one reference at once: one booking.
#[test]
fn racing_retries_of_one_reference_book_once() {
    let l = Arc::new(ledger());
    let barrier = Arc::new(Barrier::new(100));
    let handles: Vec<_> = (0..100)
        .map(|_| {
            let (l, barrier) = (l.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                l.pay_now("pdc-race", "acc-1", 100, "x", "r", at(1))
                    .unwrap()
            })
        })
        .collect();
    let bookings: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(bookings.iter().all(|b| *b == bookings[0]));
    assert_eq!(l.balance_now("acc-1").unwrap(), 9_900);
}

/// A lost answer: the core booked it, the caller sees a timeout, and the
/// booking is found by its reference.
#[tokio::test]
async fn a_lost_reply_is_a_timeout_and_the_booking_is_found_by_reference() {
    let core = FaultInjection::new(ledger(), Duration::ZERO, 0.0);
    core.lose_next_payment_reply();
    assert_eq!(
        core.pay("pdc-9", "acc-1", 100, "x", "r", at(1))
            .await
            .unwrap_err(),
        CoreError::Timeout
    );
    let found = core.booking("pdc-9").await.unwrap().unwrap();
    assert_eq!((found.amount, found.balance_after), (100, 9_900));
    // the next call answers again
    assert!(core
        .pay("pdc-10", "acc-1", 100, "x", "r", at(1))
        .await
        .is_ok());
    assert_eq!(core.booking("pdc-11").await.unwrap(), None);
}

#[test]
fn racing_payments_never_overdraw() {
    let l = Arc::new(MockLedger::default());
    l.open("acc-1", "alice", "Current", 5_000, at(0));
    let barrier = Arc::new(Barrier::new(100));
    let handles: Vec<_> = (0..100)
        .map(|i| {
            let (l, barrier) = (l.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                l.pay_now(&format!("p-{i}"), "acc-1", 100, "x", "r", at(1))
                    .is_ok()
            })
        })
        .collect();
    let paid = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|ok| *ok)
        .count();
    assert_eq!(paid, 50);
    assert_eq!(l.balance_now("acc-1").unwrap(), 0);
}

#[test]
fn breaker_opens_fails_fast_and_recovers_through_one_trial() {
    let b = CircuitBreaker::new(3, 30);
    let calls = AtomicUsize::new(0);
    let failing = || {
        calls.fetch_add(1, Ordering::SeqCst);
        Err::<(), _>(CoreError::Unavailable)
    };
    for _ in 0..3 {
        assert_eq!(b.call(at(0), failing).unwrap_err(), CoreError::Unavailable);
    }
    assert_eq!(b.state(at(0)), BreakerState::Open { until: at(30) });
    // while open: refused at once, the core is not called
    assert_eq!(b.call(at(29), failing).unwrap_err(), CoreError::Unavailable);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // at the end of the cool-down: one trial; a failure reopens
    assert_eq!(b.state(at(30)), BreakerState::HalfOpen);
    assert!(b.call(at(30), failing).is_err());
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert_eq!(b.state(at(30)), BreakerState::Open { until: at(60) });
    // a successful trial closes it
    assert_eq!(b.call(at(60), || Ok::<_, CoreError>(7)).unwrap(), 7);
    assert_eq!(b.state(at(60)), BreakerState::Closed);
}

#[test]
fn business_refusals_do_not_trip_the_breaker() {
    let b = CircuitBreaker::new(2, 30);
    for _ in 0..10 {
        assert_eq!(
            b.call(at(0), || Err::<(), _>(CoreError::InsufficientFunds))
                .unwrap_err(),
            CoreError::InsufficientFunds
        );
    }
    assert_eq!(b.state(at(0)), BreakerState::Closed);
    // and a success resets the count of failures
    assert!(b
        .call(at(0), || Err::<(), _>(CoreError::Unavailable))
        .is_err());
    assert!(b.call(at(0), || Ok::<(), CoreError>(())).is_ok());
    assert!(b
        .call(at(0), || Err::<(), _>(CoreError::Unavailable))
        .is_err());
    assert_eq!(b.state(at(0)), BreakerState::Closed);
}

#[tokio::test]
async fn a_core_call_abandoned_at_the_timeout_books_nothing() {
    // the injected latency is far beyond the caller's timeout
    let core = FaultInjection::new(ledger(), Duration::from_secs(3600), 0.0);
    let abandoned = tokio::time::timeout(
        Duration::from_millis(1),
        core.pay("p-late", "acc-1", 100, "ACME Ltd", "late", at(1)),
    )
    .await;
    assert!(abandoned.is_err(), "the timeout fired first");
    core.set_latency(Duration::ZERO);
    assert_eq!(core.balance("acc-1").await.unwrap(), 10_000);
    // twin: the same payment with a prompt core books once
    assert_eq!(
        core.pay("p-late", "acc-1", 100, "ACME Ltd", "prompt", at(1))
            .await
            .unwrap()
            .balance_after,
        9_900
    );
}

#[tokio::test]
async fn injected_failures_follow_the_rate_through_the_async_core() {
    let core = FaultInjection::new(ledger(), Duration::ZERO, 0.25);
    let mut failures = 0;
    for _ in 0..8 {
        match core.balance("acc-1").await {
            Err(CoreError::Unavailable) => failures += 1,
            other => assert_eq!(other, Ok(10_000)),
        }
    }
    assert_eq!(failures, 2);
}
