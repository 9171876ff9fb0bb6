//! Failed-login throttling on the customer pages: 300 wrong passwords for
//! one customer at 40/s used to get a normal page each, and then the right
//! password logged in.
//!
//! Two rules, each counted in the database (so every instance of the bank
//! sees the same counts, and a restart forgets nothing):
//!
//! - **Per customer id**: 5 failed logins within 15 minutes lock the id for
//!   1 minute; each further lockout doubles that, up to 15 minutes. A
//!   successful login clears the count; a day without a lockout forgets the
//!   doubling.
//! - **Per peer address**: 20 failed logins within 10 minutes (whatever the
//!   ids: credential stuffing) lock the address for 10 minutes.
//!
//! While either is locked, a login is refused before the password is
//! checked, right or wrong, with 429, `Retry-After` and the page a UK Open
//! Banking customer expects ("too many attempts"). Unknown ids are counted
//! like known ones, so the answers do not tell which ids exist. Each
//! failure and each refusal is counted in `/metrics`
//! (`fapi_login_attempts_total{outcome}`, `fapi_login_throttled_total{scope}`).

/// One throttling rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Failures within `window_secs` that lock.
    pub max_failures: u32,
    /// How long failures are remembered.
    pub window_secs: i64,
    /// The first lock.
    pub first_lock_secs: i64,
    /// The longest lock (each lockout doubles the previous one).
    pub max_lock_secs: i64,
}

/// The rule per customer id.
pub const PER_CUSTOMER: Rule = Rule {
    max_failures: 5,
    window_secs: 15 * 60,
    first_lock_secs: 60,
    max_lock_secs: 15 * 60,
};

/// The rule per peer address.
pub const PER_ADDRESS: Rule = Rule {
    max_failures: 20,
    window_secs: 10 * 60,
    first_lock_secs: 10 * 60,
    max_lock_secs: 10 * 60,
};

/// A quiet day forgets earlier lockouts.
const LOCKOUTS_FORGOTTEN_AFTER_SECS: i64 = 24 * 60 * 60;

/// What is remembered of one key's failed logins (seconds since the
/// epoch).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attempts {
    /// Failures in the current window.
    pub failures: u32,
    /// When the current window began.
    pub window_start: i64,
    /// Until when the key is locked (0: never locked).
    pub locked_until: i64,
    /// Lockouts so far (the next lock doubles this many times).
    pub lockouts: u32,
}

impl Rule {
    /// Seconds the key is still locked at `now`, if it is.
    pub fn locked(&self, a: &Attempts, now: i64) -> Option<i64> {
        (a.locked_until > now).then(|| a.locked_until - now)
    }

    /// The attempts after one more failure at `now`.
    pub fn failed(&self, mut a: Attempts, now: i64) -> Attempts {
        if a.lockouts > 0 && now - a.locked_until >= LOCKOUTS_FORGOTTEN_AFTER_SECS {
            a.lockouts = 0;
        }
        if a.failures == 0 || now - a.window_start >= self.window_secs {
            a.failures = 0;
            a.window_start = now;
        }
        a.failures += 1;
        if a.failures >= self.max_failures {
            let lock = self
                .first_lock_secs
                .saturating_mul(1_i64 << a.lockouts.min(16))
                .min(self.max_lock_secs);
            a.locked_until = now.saturating_add(lock);
            a.lockouts += 1;
            a.failures = 0;
        }
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail_n(rule: &Rule, mut a: Attempts, n: u32, at: i64) -> Attempts {
        for _ in 0..n {
            a = rule.failed(a, at);
        }
        a
    }

    #[test]
    fn five_failures_lock_a_customer_for_a_minute_exactly() {
        let r = PER_CUSTOMER;
        let a = fail_n(&r, Attempts::default(), 4, 1_000);
        assert_eq!(r.locked(&a, 1_000), None);
        let a = r.failed(a, 1_000);
        assert_eq!(r.locked(&a, 1_000), Some(60));
        assert_eq!(r.locked(&a, 1_059), Some(1));
        assert_eq!(r.locked(&a, 1_060), None);
    }

    #[test]
    fn each_further_lockout_doubles_up_to_fifteen_minutes() {
        let r = PER_CUSTOMER;
        let mut a = Attempts::default();
        let mut now = 10_000;
        let mut locks = Vec::new();
        for _ in 0..6 {
            a = fail_n(&r, a, 5, now);
            locks.push(a.locked_until - now);
            now = a.locked_until;
        }
        assert_eq!(locks, [60, 120, 240, 480, 900, 900]);
        // a quiet day forgets the doubling
        let a = fail_n(&r, a, 5, now + LOCKOUTS_FORGOTTEN_AFTER_SECS);
        assert_eq!(r.locked(&a, now + LOCKOUTS_FORGOTTEN_AFTER_SECS), Some(60));
    }

    #[test]
    fn failures_outside_the_window_start_over() {
        let r = PER_CUSTOMER;
        let a = fail_n(&r, Attempts::default(), 4, 0);
        // the fifth comes when the window has passed: a new count of one
        let a = r.failed(a, r.window_secs);
        assert_eq!(r.locked(&a, r.window_secs), None);
        assert_eq!(a.failures, 1);
        // inside the window it would have locked
        let b = r.failed(fail_n(&r, Attempts::default(), 4, 0), r.window_secs - 1);
        assert!(r.locked(&b, r.window_secs - 1).is_some());
    }

    #[test]
    fn an_address_is_locked_after_twenty_failures() {
        let r = PER_ADDRESS;
        let a = fail_n(&r, Attempts::default(), 19, 500);
        assert_eq!(r.locked(&a, 500), None);
        let a = r.failed(a, 500);
        assert_eq!(r.locked(&a, 500), Some(600));
    }
}
