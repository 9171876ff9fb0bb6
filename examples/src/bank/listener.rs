//! What keeps each listener standing under hostile traffic: a cap on open
//! connections (and, on the customer listener, a share per peer address),
//! deadlines for the TLS handshake, the request headers and the whole
//! request including its body, an accept loop that backs off when the
//! process runs out of descriptors, and a drain of requests in flight
//! when the bank stops.
//!
//! An attacker trickling 1,100 `POST /login` bodies a byte every 5 s used
//! to fill every descriptor; `accept()` then failed at once, forever, and
//! the loop spun at 100-200 % CPU logging each failure, so every listener
//! stopped answering. Now the connection cap keeps descriptors free, the
//! request deadline frees a slow connection's slot, the per-peer share
//! keeps one address from taking the customer listener's slots, and a
//! failing `accept()` sleeps (10 ms doubling to 1 s) with one log line per
//! 5 s saying how many failures it stands for.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Limits of one listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerLimits {
    /// Most connections open at once; one more is closed on accept.
    pub max_connections: usize,
    /// Most connections open at once from one peer address (`None`: no
    /// share; the TPP API's clients are authenticated by certificate and
    /// rate-limited per client instead).
    #[serde(default)]
    pub max_per_peer: Option<usize>,
    /// Deadline for the TLS handshake, in milliseconds.
    pub handshake_timeout_ms: u64,
    /// Deadline for a request's headers, in milliseconds.
    pub header_timeout_ms: u64,
    /// Deadline for a whole request, headers to response, its body
    /// included (408 past it), in milliseconds.
    pub request_timeout_ms: u64,
}

impl ListenerLimits {
    /// The TPP API: TPPs are few, authenticated and rate-limited.
    pub const fn api() -> Self {
        Self {
            max_connections: 384,
            max_per_peer: None,
            handshake_timeout_ms: 10_000,
            header_timeout_ms: 10_000,
            request_timeout_ms: 30_000,
        }
    }

    /// The customer pages: anyone on the internet can connect.
    pub const fn customer() -> Self {
        Self {
            max_connections: 384,
            max_per_peer: Some(32),
            handshake_timeout_ms: 10_000,
            header_timeout_ms: 10_000,
            request_timeout_ms: 30_000,
        }
    }

    /// The admin listener (`/metrics`, loopback).
    pub const fn admin() -> Self {
        Self {
            max_connections: 16,
            max_per_peer: None,
            handshake_timeout_ms: 10_000,
            header_timeout_ms: 5_000,
            request_timeout_ms: 10_000,
        }
    }

    pub(crate) fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.handshake_timeout_ms)
    }

    pub(crate) fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.header_timeout_ms)
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

/// The limits of every listener, and how long a stopping bank waits for
/// requests in flight. The defaults keep the three listeners' connections
/// (784) under the common 1,024-descriptor limit; raise both together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenersConfig {
    /// The TPP API listener.
    pub api: ListenerLimits,
    /// The customer pages listener.
    pub customer: ListenerLimits,
    /// The admin listener.
    pub admin: ListenerLimits,
    /// How long `stop` waits for requests in flight, in milliseconds.
    pub drain_timeout_ms: u64,
}

impl Default for ListenersConfig {
    fn default() -> Self {
        Self {
            api: ListenerLimits::api(),
            customer: ListenerLimits::customer(),
            admin: ListenerLimits::admin(),
            drain_timeout_ms: 10_000,
        }
    }
}

/// Why a connection was closed on accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The listener is at `max_connections`.
    Full,
    /// This peer address is at `max_per_peer`.
    PeerShare,
}

impl Refusal {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Full => "listener_full",
            Self::PeerShare => "peer_share",
        }
    }
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_peer: HashMap<IpAddr, usize>,
}

/// Counts a listener's open connections, in total and per peer.
#[derive(Debug)]
pub(crate) struct Admission {
    max_total: usize,
    max_per_peer: Option<usize>,
    open: Mutex<Open>,
}

/// One admitted connection; dropping it frees its slot.
#[derive(Debug)]
pub(crate) struct Admitted {
    admission: Arc<Admission>,
    peer: IpAddr,
}

impl Admission {
    pub(crate) fn new(limits: &ListenerLimits) -> Arc<Self> {
        Arc::new(Self {
            max_total: limits.max_connections,
            max_per_peer: limits.max_per_peer,
            open: Mutex::new(Open::default()),
        })
    }

    // a holder only adds and subtracts, so a poisoned lock is consistent
    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for a connection from `peer`, or why there is none.
    pub(crate) fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Admitted, Refusal> {
        let mut open = self.lock();
        if open.total >= self.max_total {
            return Err(Refusal::Full);
        }
        let mine = open.by_peer.get(&peer).copied().unwrap_or(0);
        if self.max_per_peer.is_some_and(|max| mine >= max) {
            return Err(Refusal::PeerShare);
        }
        open.total += 1;
        open.by_peer.insert(peer, mine + 1);
        Ok(Admitted {
            admission: self.clone(),
            peer,
        })
    }

    /// Connections open now.
    pub(crate) fn open(&self) -> usize {
        self.lock().total
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self.admission.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_peer.get_mut(&self.peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.by_peer.remove(&self.peer);
            }
        }
    }
}

/// How long the accept loop waits after `accept()` failed.
#[derive(Debug)]
pub(crate) struct AcceptBackoff {
    next: Duration,
}

/// The first wait after a resource error.
pub(crate) const BACKOFF_FIRST: Duration = Duration::from_millis(10);
/// The longest wait.
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(1);

impl AcceptBackoff {
    pub(crate) fn new() -> Self {
        Self {
            next: BACKOFF_FIRST,
        }
    }

    /// The wait after `error`: for a shortage of descriptors or memory
    /// (EMFILE, ENFILE, ENOBUFS, ENOMEM), which will not clear by retrying
    /// at once, 10 ms doubling up to 1 s; for an error about one
    /// connection (the peer gave up before we accepted it), none.
    pub(crate) fn after(&mut self, error: &std::io::Error) -> Duration {
        const ENFILE: i32 = 23;
        const EMFILE: i32 = 24;
        const ENOBUFS: i32 = 105;
        const ENOMEM: i32 = 12;
        match error.raw_os_error() {
            Some(EMFILE | ENFILE | ENOBUFS | ENOMEM) => {
                let wait = self.next;
                self.next = (self.next * 2).min(BACKOFF_MAX);
                wait
            }
            _ => Duration::ZERO,
        }
    }

    /// An accept succeeded: the next shortage starts over at 10 ms.
    pub(crate) fn reset(&mut self) {
        self.next = BACKOFF_FIRST;
    }
}

/// Lets one log line through per `every`, counting the ones it held back.
#[derive(Debug)]
pub(crate) struct LogGate {
    every: Duration,
    last: Option<Instant>,
    held: u64,
}

impl LogGate {
    pub(crate) fn new(every: Duration) -> Self {
        Self {
            every,
            last: None,
            held: 0,
        }
    }

    /// `Some(n)`: log now, standing for this event and `n` held back since
    /// the last line; `None`: held back.
    pub(crate) fn pass(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.every => {
                self.held += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.held))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn io(code: i32) -> std::io::Error {
        std::io::Error::from_raw_os_error(code)
    }

    #[test]
    fn accept_backs_off_on_descriptor_exhaustion_and_starts_over_after_success() {
        let mut b = AcceptBackoff::new();
        let waits: Vec<_> = (0..10).map(|_| b.after(&io(24))).collect();
        assert_eq!(waits[0], Duration::from_millis(10));
        assert_eq!(waits[1], Duration::from_millis(20));
        assert_eq!(waits[6], Duration::from_millis(640));
        assert_eq!(waits[7], Duration::from_secs(1));
        assert_eq!(waits[9], Duration::from_secs(1));
        // ENFILE, ENOBUFS and ENOMEM are the same shortage
        for code in [23, 105, 12] {
            assert_eq!(b.after(&io(code)), Duration::from_secs(1));
        }
        b.reset();
        assert_eq!(b.after(&io(24)), Duration::from_millis(10));
        // an error about one connection (ECONNABORTED) is not waited on,
        // and does not advance the shortage backoff
        assert_eq!(b.after(&io(103)), Duration::ZERO);
        assert_eq!(b.after(&io(24)), Duration::from_millis(20));
    }

    #[test]
    fn log_gate_lets_one_line_through_per_period_and_counts_the_rest() {
        let mut g = LogGate::new(Duration::from_secs(5));
        let t0 = Instant::now();
        assert_eq!(g.pass(t0), Some(0));
        for ms in [1, 100, 4_999] {
            assert_eq!(g.pass(t0 + Duration::from_millis(ms)), None);
        }
        assert_eq!(g.pass(t0 + Duration::from_secs(5)), Some(3));
        assert_eq!(g.pass(t0 + Duration::from_secs(6)), None);
        assert_eq!(g.pass(t0 + Duration::from_secs(10)), Some(1));
    }

    #[test]
    fn admission_caps_the_listener_and_each_peer() {
        let limits = ListenerLimits {
            max_connections: 3,
            max_per_peer: Some(2),
            ..ListenerLimits::customer()
        };
        let a = Admission::new(&limits);
        let p: IpAddr = "192.0.2.1".parse().unwrap();
        let q: IpAddr = "192.0.2.2".parse().unwrap();
        let first = a.admit(p).unwrap();
        let second = a.admit(p).unwrap();
        assert_eq!(a.admit(p).unwrap_err(), Refusal::PeerShare);
        let third = a.admit(q).unwrap();
        assert_eq!(a.admit(q).unwrap_err(), Refusal::Full);
        assert_eq!(a.open(), 3);
        drop(first);
        assert_eq!(a.open(), 2);
        let again = a.admit(p).unwrap();
        drop((second, third, again));
        assert_eq!(a.open(), 0);
        // without a share, one peer may take every slot
        let open = Admission::new(&ListenerLimits {
            max_connections: 2,
            ..ListenerLimits::api()
        });
        let _x = open.admit(p).unwrap();
        let _y = open.admit(p).unwrap();
        assert_eq!(open.admit(q).unwrap_err(), Refusal::Full);
    }
}
