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

/// A request pushed the real way, for the kit's `sample`: `client` (whose
/// registration holds the public key of `key` under `kid`, and registered
/// `redirect_uri`) authenticates with a signed client assertion and pushes
/// a request object signed by `key`, through `config`'s validation, into an
/// in-memory store it is taken back from. What a durable adapter then
/// stores is what a bank's PAR endpoint would hand it.
///
/// # Errors
/// A [`ConformanceFailure`] naming the step that failed (a registration
/// that does not hold the key, say).
pub async fn pushed_sample(
    config: &crate::ParConfig,
    client: &std::sync::Arc<fapi_core::client::ClientMetadata>,
    key: &dyn fapi_core::crypto::SigningKey,
    kid: &str,
    redirect_uri: &str,
    now: UnixTime,
) -> Result<PushedRequest, ConformanceFailure> {
    use fapi_core::client_auth::{Endpoint, UnverifiedClientAssertion, JWT_BEARER_ASSERTION_TYPE};
    let id = client.client_id().as_str();
    let issuer = config.issuer().as_str();
    let at = now.as_secs();
    let sign = |typ: Option<&str>, claims: serde_json::Value| {
        let claims = claims
            .as_object()
            .cloned()
            .ok_or_else(|| fail("sample", "claims"))?;
        fapi_core::jose::sign_compact(key, Some(kid), typ, &claims).map_err(|e| fail("sample", e))
    };
    let assertion = sign(
        None,
        serde_json::json!({ "iss": id, "sub": id, "aud": issuer, "jti": "sample", "iat": at, "exp": at + 60 }),
    )?;
    let ctx = fapi_core::AssertionContext::new(
        config.profile(),
        config.issuer(),
        Endpoint::PushedAuthorization("https://bank.example/par"),
    );
    let authenticated =
        UnverifiedClientAssertion::parse(JWT_BEARER_ASSERTION_TYPE, &assertion, Some(id))
            .and_then(|a| a.verify(client, &ctx, now))
            .map_err(|e| fail("sample: client assertion", e))?
            .record_jti(&fapi_core::replay::InMemoryReplayCache::new(1), now)
            .await
            .map_err(|e| fail("sample: client assertion", e))?;
    let verifier = fapi_core::CodeVerifier::generate().map_err(|e| fail("sample", e))?;
    let request = sign(
        Some("oauth-authz-req+jwt"),
        serde_json::json!({
            "iss": id, "aud": issuer, "client_id": id, "nbf": at, "exp": at + 300,
            "response_type": "code", "response_mode": "jwt", "redirect_uri": redirect_uri,
            "scope": "openid accounts", "state": "s", "nonce": "n",
            "code_challenge": verifier.challenge().as_str(), "code_challenge_method": "S256",
        }),
    )?;
    let mut body = String::from("client_id=");
    body.push_str(id);
    body.push_str("&request=");
    body.push_str(&request);
    let form = crate::PushedRequestForm::parse(body.as_bytes()).map_err(|e| fail("sample", e))?;
    let staging = crate::InMemoryPushedRequestStore::new(1);
    let pushed = config
        .push(&form, &authenticated, &staging, now)
        .await
        .map_err(|e| fail("sample: push", e))?;
    let uri =
        RequestUri::parse(&pushed.request_uri).ok_or_else(|| fail("sample", "request_uri"))?;
    staging
        .take(&uri, client.client_id(), now)
        .await
        .map_err(|e| fail("sample: take", e))
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
