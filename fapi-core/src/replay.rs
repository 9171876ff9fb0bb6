//! Single use of `jti` values: the [`ReplayCache`] store trait and an
//! in-memory implementation.

use core::fmt;
use std::collections::HashMap;
use std::sync::Mutex;

use crate::time::UnixTime;

pub use crate::store::{BoxFuture, StoreError};

/// Remembers which `jti` values were used, until they expire.
///
/// # Guarantees an implementation must give
/// - `insert_if_absent` is atomic: of any number of concurrent calls with the
///   same `(scope, jti)`, exactly one returns `Ok(true)` while the entry is
///   unexpired.
/// - An entry is kept at least until `expires_at`; after that it may be
///   forgotten (the token it guards is expired and refused anyway).
/// - On any failure it returns `Err`, never `Ok(true)`.
///
/// `fapi_core::testing::replay_cache_conformance` (feature `testing`) checks
/// these for any adapter.
pub trait ReplayCache: Send + Sync + fmt::Debug {
    /// Records `jti` within `scope` (e.g. the client id) until `expires_at`.
    /// Returns `Ok(true)` if it was not present (first use), `Ok(false)` if
    /// it was (replay).
    fn insert_if_absent<'a>(
        &'a self,
        scope: &'a str,
        jti: &'a str,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
}

/// An in-memory [`ReplayCache`] with a capacity bound and expiry sweeping.
pub struct InMemoryReplayCache {
    entries: Mutex<HashMap<(String, String), UnixTime>>,
    capacity: usize,
}

impl fmt::Debug for InMemoryReplayCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryReplayCache")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl InMemoryReplayCache {
    /// A cache holding at most `capacity` unexpired entries.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    fn insert_now(
        &self,
        scope: &str,
        jti: &str,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let mut map = self
            .entries
            .lock()
            .map_err(|_| StoreError::unavailable("replay cache lock poisoned"))?;
        let key = (scope.to_owned(), jti.to_owned());
        if let Some(exp) = map.get(&key) {
            if *exp > now {
                return Ok(false);
            }
        }
        if map.len() >= self.capacity {
            map.retain(|_, exp| *exp > now);
            if map.len() >= self.capacity {
                return Err(StoreError::CapacityExceeded);
            }
        }
        map.insert(key, expires_at);
        Ok(true)
    }
}

impl ReplayCache for InMemoryReplayCache {
    fn insert_if_absent<'a>(
        &'a self,
        scope: &'a str,
        jti: &'a str,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let result = self.insert_now(scope, jti, expires_at, now);
        Box::pin(core::future::ready(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_memory_cache_passes_the_conformance_kit() {
        futures_executor::block_on(crate::testing::replay_cache_conformance(
            &InMemoryReplayCache::new(10_000),
        ))
        .unwrap();
    }

    /// 1,000 real threads, one jti: exactly one insert wins.
    #[test]
    fn in_memory_cache_race_on_real_threads() {
        use std::sync::{Arc, Barrier};
        let cache = Arc::new(InMemoryReplayCache::new(10));
        let t = UnixTime::from_secs(100).unwrap();
        let barrier = Arc::new(Barrier::new(1000));
        let handles: Vec<_> = (0..1000)
            .map(|_| {
                let (cache, barrier) = (cache.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    futures_executor::block_on(cache.insert_if_absent(
                        "c",
                        "j",
                        t.saturating_add(60),
                        t,
                    ))
                    .unwrap()
                })
            })
            .collect();
        let wins = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|w| *w)
            .count();
        assert_eq!(wins, 1);
    }

    #[test]
    fn expired_entries_are_swept_when_full() {
        let cache = InMemoryReplayCache::new(2);
        let t = UnixTime::from_secs(100).unwrap();
        let b = |f| futures_executor::block_on(f);
        assert_eq!(
            b(cache.insert_if_absent("c", "1", t.saturating_add(10), t)),
            Ok(true)
        );
        assert_eq!(
            b(cache.insert_if_absent("c", "2", t.saturating_add(10), t)),
            Ok(true)
        );
        assert_eq!(
            b(cache.insert_if_absent("c", "3", t.saturating_add(10), t)),
            Err(StoreError::CapacityExceeded)
        );
        let later = t.saturating_add(10);
        assert_eq!(
            b(cache.insert_if_absent("c", "3", later.saturating_add(10), later)),
            Ok(true)
        );
    }
}
