//! Conformance kits for store adapters (feature `testing`).
//!
//! An adapter (SQLite, PostgreSQL, ...) proves it keeps the guarantees its
//! trait documents by running the kit against itself in its own tests:
//!
//! ```
//! # futures_executor::block_on(async {
//! use fapi_core::replay::InMemoryReplayCache;
//! fapi_core::testing::replay_cache_conformance(&InMemoryReplayCache::new(10_000)).await.unwrap();
//! # });
//! ```

use futures_util::future::join_all;

use crate::replay::ReplayCache;
use crate::time::UnixTime;

/// A guarantee the adapter under test broke.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("conformance case `{case}` failed: {detail}")]
pub struct ConformanceFailure {
    /// The case.
    pub case: &'static str,
    /// What happened.
    pub detail: String,
}

fn fail(case: &'static str, detail: impl Into<String>) -> ConformanceFailure {
    ConformanceFailure {
        case,
        detail: detail.into(),
    }
}

/// How many concurrent callers race on one `jti` in the kit.
pub const RACERS: usize = 1000;

/// Runs every [`ReplayCache`] guarantee against `cache`, which must start
/// empty and hold at least `RACERS + 10` entries. The race case polls
/// [`RACERS`] calls concurrently on the caller's executor; an adapter over a
/// real database therefore races real transactions.
///
/// # Errors
/// The first [`ConformanceFailure`].
pub async fn replay_cache_conformance(cache: &dyn ReplayCache) -> Result<(), ConformanceFailure> {
    let t0 = UnixTime::from_secs(1_900_000_000).ok_or_else(|| fail("setup", "time"))?;
    let exp = t0.saturating_add(60);
    let insert = |scope: &'static str, jti: &'static str, now: UnixTime| {
        cache.insert_if_absent(scope, jti, exp, now)
    };

    match insert("client-a", "j1", t0).await {
        Ok(true) => {}
        other => return Err(fail("first use is accepted", format!("{other:?}"))),
    }
    match insert("client-a", "j1", t0).await {
        Ok(false) => {}
        other => return Err(fail("second use is refused", format!("{other:?}"))),
    }
    match insert("client-a", "j1", t0.saturating_add(59)).await {
        Ok(false) => {}
        other => return Err(fail("entry kept until it expires", format!("{other:?}"))),
    }
    match insert("client-b", "j1", t0).await {
        Ok(true) => {}
        other => return Err(fail("jti is scoped per client", format!("{other:?}"))),
    }
    let results = join_all((0..RACERS).map(|_| insert("client-a", "raced", t0))).await;
    let wins = results.iter().filter(|r| matches!(r, Ok(true))).count();
    let refusals = results.iter().filter(|r| matches!(r, Ok(false))).count();
    if wins != 1 || refusals != RACERS - 1 {
        return Err(fail(
            "exactly one of many concurrent uses wins",
            format!(
                "{wins} accepted, {refusals} refused, {} errors",
                RACERS - wins - refusals
            ),
        ));
    }
    Ok(())
}
