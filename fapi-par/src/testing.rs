//! Conformance kit for [`PushedRequestStore`] adapters (feature `testing`).

use fapi_core::ClientId;
use fapi_core::UnixTime;
use futures_util::future::join_all;

use crate::{LookupError, PushedRequest, PushedRequestStore, RequestUri};

pub use fapi_core::testing::ConformanceFailure;

/// How many concurrent `take`s race in the kit.
pub const RACERS: usize = 1000;

fn fail(case: &'static str, detail: impl core::fmt::Debug) -> ConformanceFailure {
    ConformanceFailure {
        case,
        detail: format!("{detail:?}"),
    }
}

/// Runs every [`PushedRequestStore`] guarantee against `store`, with
/// `sample`, a request pushed by client `sample.client_id()` (as [`ParConfig::push`](crate::ParConfig::push)
/// stored it; the kit stores copies under new references and lifetimes),
/// and `other`, a different client id. The race polls [`RACERS`] `take`s
/// concurrently on the caller's executor.
///
/// # Errors
/// The first [`ConformanceFailure`].
pub async fn pushed_request_store_conformance(
    store: &dyn PushedRequestStore,
    sample: PushedRequest,
    other: &ClientId,
) -> Result<(), ConformanceFailure> {
    let t0 = UnixTime::from_secs(1_900_000_000).ok_or_else(|| fail("setup", "time"))?;
    let client = sample.client_id().clone();
    let new = |lifetime: i64| -> Result<PushedRequest, ConformanceFailure> {
        Ok(PushedRequest {
            request_uri: RequestUri::generate().map_err(|e| fail("setup", e))?,
            expires_at: t0.saturating_add(lifetime),
            ..sample.clone()
        })
    };

    // peek survives a reload; another client is refused without consuming
    let p = new(60)?;
    let uri = p.request_uri.clone();
    store.put(p, t0).await.map_err(|e| fail("put", e))?;
    for _ in 0..3 {
        store
            .peek(&uri, &client, t0)
            .await
            .map_err(|e| fail("peek survives reloads", e))?;
    }
    match store.peek(&uri, other, t0).await {
        Err(LookupError::WrongClient) => {}
        r => return Err(fail("peek by another client is refused", r.map(|_| ()))),
    }
    match store.take(&uri, other, t0).await {
        Err(LookupError::WrongClient) => {}
        r => return Err(fail("take by another client is refused", r.map(|_| ()))),
    }
    store
        .take(&uri, &client, t0)
        .await
        .map_err(|e| fail("take by its client after a foreign attempt", e))?;
    match store.take(&uri, &client, t0).await {
        Err(LookupError::AlreadyUsed) => {}
        r => {
            return Err(fail(
                "second take is refused as already used",
                r.map(|_| ()),
            ))
        }
    }
    match store.peek(&uri, &client, t0).await {
        Err(LookupError::AlreadyUsed) => {}
        r => return Err(fail("peek after take is refused", r.map(|_| ()))),
    }

    // expiry exactly at the edge
    let p = new(60)?;
    let uri = p.request_uri.clone();
    store.put(p, t0).await.map_err(|e| fail("put", e))?;
    store
        .peek(&uri, &client, t0.saturating_add(59))
        .await
        .map_err(|e| fail("usable one second before expiry", e))?;
    match store.take(&uri, &client, t0.saturating_add(60)).await {
        Err(LookupError::Expired | LookupError::Unknown) => {}
        r => return Err(fail("unusable at expiry", r.map(|_| ()))),
    }

    // unknown reference
    let unknown = RequestUri::generate().map_err(|e| fail("setup", e))?;
    match store.peek(&unknown, &client, t0).await {
        Err(LookupError::Unknown) => {}
        r => return Err(fail("unknown reference", r.map(|_| ()))),
    }

    // the race
    let p = new(60)?;
    let uri = p.request_uri.clone();
    store.put(p, t0).await.map_err(|e| fail("put", e))?;
    let results = join_all((0..RACERS).map(|_| store.take(&uri, &client, t0))).await;
    let wins = results.iter().filter(|r| r.is_ok()).count();
    let used = results
        .iter()
        .filter(|r| matches!(r, Err(LookupError::AlreadyUsed)))
        .count();
    if wins != 1 || used != RACERS - 1 {
        return Err(fail(
            "exactly one of many concurrent takes wins",
            (wins, used),
        ));
    }
    Ok(())
}
