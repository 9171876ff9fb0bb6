//! Conformance kits for store adapters, and helpers for tests that need
//! what production code must not offer: tokens signed under any header,
//! every compiled provider (feature `testing`).
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

pub use crate::crypto::all_providers;

/// An access-token issuer and the verifier that trusts it, over one key:
/// what every resource-server test needs to get a real
/// [`VerifiedAccessToken`](crate::VerifiedAccessToken) (issued, signed,
/// verified; nothing skipped).
#[derive(Clone, Debug)]
pub struct TokenAuthority {
    issuer: crate::AccessTokenIssuer,
    verifier: crate::AccessTokenVerifier,
}

impl TokenAuthority {
    /// Tokens signed by `key` (published under `kid` "k") from `issuer`
    /// to `audience`, living `lifetime_secs`, verified under `profile`.
    ///
    /// # Errors
    /// [`JwkError`](crate::jwk::JwkError) if the profile refuses the key.
    pub fn new(
        key: std::sync::Arc<dyn crate::crypto::SigningKey>,
        issuer: crate::Issuer,
        audience: crate::TokenAudience,
        profile: crate::Profile,
        lifetime_secs: i64,
    ) -> Result<Self, crate::jwk::JwkError> {
        let jwks = crate::jwk::JwkSet::new(vec![crate::jwk::Jwk::from_public_key(
            key.public_key().clone(),
            Some("k".into()),
        )]);
        let keys = crate::jwk::KeySet::from_jwks(
            &jwks,
            &*crate::crypto::default_provider(),
            &profile.key_policy(),
        )?;
        Ok(Self {
            verifier: crate::AccessTokenVerifier::new(
                std::sync::Arc::new(keys),
                issuer.clone(),
                audience.clone(),
                profile.algorithms(),
            ),
            issuer: crate::AccessTokenIssuer::new(key, "k".into(), issuer, audience, lifetime_secs),
        })
    }

    /// An `Authorization` header value (`Bearer <token>`) for `claims`.
    ///
    /// # Errors
    /// [`IssueError`](crate::access_token::IssueError).
    pub async fn bearer(
        &self,
        claims: &crate::AccessTokenClaims,
        now: UnixTime,
    ) -> Result<String, crate::access_token::IssueError> {
        Ok(format!(
            "Bearer {}",
            self.issuer.issue(claims, now).await?.token
        ))
    }

    /// A token for `claims`, issued and verified as it is presented: with
    /// the `DPoP` scheme when bound to a DPoP key, `Bearer` otherwise.
    ///
    /// # Errors
    /// A description of the step that failed.
    pub async fn verified(
        &self,
        claims: &crate::AccessTokenClaims,
        now: UnixTime,
    ) -> Result<crate::VerifiedAccessToken, String> {
        let token = self
            .issuer
            .issue(claims, now)
            .await
            .map_err(|e| e.to_string())?
            .token;
        match claims.confirmation {
            crate::Confirmation::JwkThumbprint(_) => {
                self.verifier.verify_dpop(&format!("DPoP {token}"), now)
            }
            _ => self.verifier.verify(&format!("Bearer {token}"), now),
        }
        .map_err(|e| e.to_string())
    }

    /// The issuer.
    pub fn issuer(&self) -> &crate::AccessTokenIssuer {
        &self.issuer
    }

    /// The verifier that trusts the issuer's key.
    pub fn verifier(&self) -> &crate::AccessTokenVerifier {
        &self.verifier
    }
}

/// Signs `claims` under a caller-built header (which must carry `alg`
/// matching the key): for tests of verifiers, which need tokens no issuer
/// of this crate would produce.
///
/// # Errors
/// [`SigningError`](crate::crypto::SigningError) if the provider fails or
/// the header cannot be encoded.
pub fn sign_with_header(
    key: &dyn crate::crypto::SigningKey,
    header: &serde_json::Map<String, serde_json::Value>,
    claims: &serde_json::Map<String, serde_json::Value>,
) -> Result<String, crate::crypto::SigningError> {
    crate::jose::sign_with_header(key, header, claims)
}

/// Signs raw header and payload bytes (already serialized, possibly
/// malformed JSON): for tests and fuzz targets of the framing rules.
///
/// # Errors
/// [`SigningError`](crate::crypto::SigningError) if the provider fails.
pub fn sign_raw_parts(
    key: &dyn crate::crypto::SigningKey,
    header: &[u8],
    payload: &[u8],
) -> Result<String, crate::crypto::SigningError> {
    crate::jose::sign_raw_parts(key, header, payload)
}

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

async fn redeem_with<'a>(
    store: &'a dyn crate::code::AuthorizationCodeStore,
    code: &'a crate::code::AuthorizationCode,
    client_id: &'a crate::types::ClientId,
    redirect_uri: &'a str,
    code_verifier: Option<&'a crate::types::CodeVerifier>,
    now: UnixTime,
) -> Result<crate::code::CodeGrant, crate::code::RedeemError> {
    redeem_proving(
        store,
        code,
        client_id,
        redirect_uri,
        code_verifier,
        None,
        now,
    )
    .await
}

async fn redeem_proving<'a>(
    store: &'a dyn crate::code::AuthorizationCodeStore,
    code: &'a crate::code::AuthorizationCode,
    client_id: &'a crate::types::ClientId,
    redirect_uri: &'a str,
    code_verifier: Option<&'a crate::types::CodeVerifier>,
    dpop_jkt: Option<&'a crate::crypto::JwkThumbprint>,
    now: UnixTime,
) -> Result<crate::code::CodeGrant, crate::code::RedeemError> {
    let r = crate::code::Redemption {
        code,
        client_id,
        redirect_uri,
        code_verifier,
        dpop_jkt,
        now,
    };
    store.redeem(&r).await
}

/// Runs every [`AuthorizationCodeStore`](crate::code::AuthorizationCodeStore)
/// guarantee against `store`: a failed check consumes nothing (wrong
/// client, redirect URI, missing or wrong PKCE verifier, a DPoP-bound code
/// without a proof by its key), the happy
/// redemption one second before expiry, a replay refused naming the
/// tokens recorded for the code, expiry exactly at `expires_at`, an
/// unknown code, and [`RACERS`] concurrent redemptions of one code of
/// which exactly one wins (the rest see a replay), polled on the caller's
/// executor.
///
/// # Errors
/// The first [`ConformanceFailure`].
pub async fn authorization_code_store_conformance(
    store: &dyn crate::code::AuthorizationCodeStore,
) -> Result<(), ConformanceFailure> {
    use crate::code::{AuthorizationCode, CodeGrant, RedeemError};
    use crate::pkce::PkceError;
    use crate::types::{ClientId, CodeVerifier, ConsentId, JwtId, RedirectUri};

    let setup = |e: &dyn core::fmt::Display| fail("setup", e.to_string());
    let t0 = UnixTime::from_secs(1_900_000_000).ok_or_else(|| fail("setup", "time"))?;
    let at = |o: i64| t0.saturating_add(o);
    let redirect = "https://tpp-a.example/cb";
    let client_a = ClientId::try_from("tpp-a").map_err(|e| setup(&e))?;
    let client_b = ClientId::try_from("tpp-b").map_err(|e| setup(&e))?;
    let v = CodeVerifier::generate().map_err(|e| setup(&e))?;
    let other = CodeVerifier::generate().map_err(|e| setup(&e))?;
    let grant = CodeGrant {
        client_id: client_a.clone(),
        redirect_uri: RedirectUri::try_from(redirect).map_err(|e| setup(&e))?,
        code_challenge: v.challenge(),
        consent_id: ConsentId::try_from("aac-1").map_err(|e| setup(&e))?,
        customer_id: "alice".into(),
        scope: None,
        nonce: None,
        expires_at: at(60),
        dpop_jkt: None,
    };
    let new_code = || AuthorizationCode::generate().map_err(|e| setup(&e));
    let expect =
        |case: &'static str, got: Result<CodeGrant, RedeemError>, want: RedeemError| match got {
            Err(e) if e == want => Ok(()),
            other => Err(fail(case, format!("{other:?}, wanted {want:?}"))),
        };

    let code = new_code()?;
    store
        .issue(&code, grant.clone())
        .await
        .map_err(|e| fail("issue", e.to_string()))?;
    expect(
        "another client's redemption is refused and consumes nothing",
        redeem_with(store, &code, &client_b, redirect, Some(&v), at(1)).await,
        RedeemError::WrongClient,
    )?;
    expect(
        "another redirect_uri is refused and consumes nothing",
        redeem_with(
            store,
            &code,
            &client_a,
            "https://tpp-a.example/cb/",
            Some(&v),
            at(1),
        )
        .await,
        RedeemError::WrongRedirectUri,
    )?;
    expect(
        "a missing code_verifier is refused and consumes nothing",
        redeem_with(store, &code, &client_a, redirect, None, at(1)).await,
        RedeemError::Pkce(PkceError::MissingVerifier),
    )?;
    expect(
        "a wrong code_verifier is refused and consumes nothing",
        redeem_with(store, &code, &client_a, redirect, Some(&other), at(1)).await,
        RedeemError::Pkce(PkceError::Mismatch),
    )?;
    match redeem_with(store, &code, &client_a, redirect, Some(&v), at(59)).await {
        Ok(g) if g == grant => {}
        other => {
            return Err(fail(
                "the right redemption one second before expiry returns the grant",
                format!("{other:?}"),
            ))
        }
    }
    let jti = JwtId::try_from("at-1").map_err(|e| setup(&e))?;
    store
        .record_token(&code, jti.clone())
        .await
        .map_err(|e| fail("record_token", e.to_string()))?;
    expect(
        "a replay is refused and names the tokens to revoke",
        redeem_with(store, &code, &client_a, redirect, Some(&v), at(59)).await,
        RedeemError::Replayed { issued: vec![jti] },
    )?;

    let late = new_code()?;
    store
        .issue(&late, grant.clone())
        .await
        .map_err(|e| fail("issue", e.to_string()))?;
    expect(
        "a code expires exactly at expires_at",
        redeem_with(store, &late, &client_a, redirect, Some(&v), at(60)).await,
        RedeemError::Expired,
    )?;
    expect(
        "a code never issued is unknown",
        redeem_with(store, &new_code()?, &client_a, redirect, Some(&v), at(1)).await,
        RedeemError::Unknown,
    )?;

    // a code bound to a DPoP key (dpop_jkt): only a proof by that key
    // redeems it, and a refusal consumes nothing
    let key = |b: u8| crate::crypto::JwkThumbprint([b; 32]);
    let (bound_key, other_key) = (key(1), key(2));
    let bound_grant = CodeGrant {
        dpop_jkt: Some(bound_key),
        ..grant.clone()
    };
    let bound = new_code()?;
    store
        .issue(&bound, bound_grant.clone())
        .await
        .map_err(|e| fail("issue", e.to_string()))?;
    expect(
        "a DPoP-bound code without a proof is refused and consumes nothing",
        redeem_proving(store, &bound, &client_a, redirect, Some(&v), None, at(1)).await,
        RedeemError::DpopKeyMismatch,
    )?;
    expect(
        "a DPoP-bound code with another key's proof is refused and consumes nothing",
        redeem_proving(
            store,
            &bound,
            &client_a,
            redirect,
            Some(&v),
            Some(&other_key),
            at(1),
        )
        .await,
        RedeemError::DpopKeyMismatch,
    )?;
    match redeem_proving(
        store,
        &bound,
        &client_a,
        redirect,
        Some(&v),
        Some(&bound_key),
        at(1),
    )
    .await
    {
        Ok(g) if g == bound_grant => {}
        other => {
            return Err(fail(
                "a DPoP-bound code is redeemed with a proof by its key and keeps the binding",
                format!("{other:?}"),
            ))
        }
    }

    let raced = new_code()?;
    store
        .issue(&raced, grant)
        .await
        .map_err(|e| fail("issue", e.to_string()))?;
    let results = join_all(
        (0..RACERS).map(|_| redeem_with(store, &raced, &client_a, redirect, Some(&v), at(1))),
    )
    .await;
    let wins = results.iter().filter(|r| r.is_ok()).count();
    let replays = results
        .iter()
        .filter(|r| matches!(r, Err(RedeemError::Replayed { .. })))
        .count();
    if wins != 1 || replays != RACERS - 1 {
        return Err(fail(
            "exactly one of many concurrent redemptions wins",
            format!(
                "{wins} won, {replays} replays, {} other outcomes",
                RACERS - wins - replays
            ),
        ));
    }
    Ok(())
}

/// Runs every [`RevokedTokenStore`](crate::revocation::RevokedTokenStore)
/// guarantee against `store`, which must start empty: a revoked id is
/// revoked and another is not, revoking twice changes nothing, a list is
/// revoked whole, and [`RACERS`] concurrent checks racing one revocation
/// never see it undone once it returned.
///
/// # Errors
/// The first [`ConformanceFailure`].
pub async fn revoked_token_store_conformance(
    store: &dyn crate::revocation::RevokedTokenStore,
) -> Result<(), ConformanceFailure> {
    use crate::types::JwtId;
    let id = |s: &str| JwtId::try_from(s).map_err(|e| fail("setup", e.to_string()));
    let t0 = UnixTime::from_secs(1_900_000_000).ok_or_else(|| fail("setup", "time"))?;
    let (a, b, c, never) = (id("jti-a")?, id("jti-b")?, id("jti-c")?, id("jti-never")?);
    let check =
        |case: &'static str, got: Result<bool, crate::store::StoreError>, want: bool| match got {
            Ok(v) if v == want => Ok(()),
            other => Err(fail(case, format!("{other:?}, wanted Ok({want})"))),
        };

    check(
        "an id never revoked is not revoked",
        store.is_revoked(&never).await,
        false,
    )?;
    store
        .revoke(core::slice::from_ref(&a), t0)
        .await
        .map_err(|e| fail("revoke", e.to_string()))?;
    check("a revoked id is revoked", store.is_revoked(&a).await, true)?;
    check(
        "revoking one id leaves others",
        store.is_revoked(&b).await,
        false,
    )?;
    store
        .revoke(core::slice::from_ref(&a), t0.saturating_add(5))
        .await
        .map_err(|e| fail("revoking twice is accepted", e.to_string()))?;
    check(
        "revoking twice keeps it revoked",
        store.is_revoked(&a).await,
        true,
    )?;
    store
        .revoke(&[b.clone(), c.clone()], t0)
        .await
        .map_err(|e| fail("revoke a list", e.to_string()))?;
    check(
        "a list is revoked whole (first)",
        store.is_revoked(&b).await,
        true,
    )?;
    check(
        "a list is revoked whole (second)",
        store.is_revoked(&c).await,
        true,
    )?;
    store
        .revoke(&[], t0)
        .await
        .map_err(|e| fail("an empty list is accepted", e.to_string()))?;

    let raced = id("jti-raced")?;
    let revoke = store.revoke(core::slice::from_ref(&raced), t0);
    let checks = join_all((0..RACERS).map(|_| store.is_revoked(&raced)));
    let (revoked, seen) = futures_util::future::join(revoke, checks).await;
    revoked.map_err(|e| fail("revoke while checks race", e.to_string()))?;
    if let Some(e) = seen.iter().find_map(|r| r.as_ref().err()) {
        return Err(fail("checks racing a revocation answer", e.to_string()));
    }
    check(
        "a revocation is seen by the next check",
        store.is_revoked(&raced).await,
        true,
    )?;
    Ok(())
}

/// Runs every [`RefreshGrantStore`](crate::refresh::RefreshGrantStore)
/// guarantee against `store`: a stored grant is found by its token with
/// its binding intact, another token finds nothing, revoking an id removes
/// exactly the grants of that id (also while [`RACERS`] reads race it),
/// and revoking again or an unknown id is accepted.
///
/// # Errors
/// The first [`ConformanceFailure`].
pub async fn refresh_grant_store_conformance(
    store: &dyn crate::refresh::RefreshGrantStore,
) -> Result<(), ConformanceFailure> {
    use crate::access_token::Confirmation;
    use crate::refresh::{RefreshGrant, RefreshToken};
    use crate::types::{CertificateThumbprint, ClientId, ConsentId, JwtId, Scope};

    let setup = |e: &dyn core::fmt::Display| fail("setup", e.to_string());
    let grant = |id: &str| -> Result<RefreshGrant, ConformanceFailure> {
        Ok(RefreshGrant {
            id: JwtId::try_from(id).map_err(|e| setup(&e))?,
            client_id: ClientId::try_from("tpp-a").map_err(|e| setup(&e))?,
            confirmation: Confirmation::CertificateThumbprint(CertificateThumbprint::of_der(
                id.as_bytes(),
            )),
            consent_id: ConsentId::try_from("aac-1").map_err(|e| setup(&e))?,
            customer_id: "alice".into(),
            scope: Scope::try_from("openid accounts").map_err(|e| setup(&e))?,
        })
    };
    let token = || RefreshToken::generate().map_err(|e| setup(&e));
    let found = |case: &'static str,
                 got: Result<Option<RefreshGrant>, crate::store::StoreError>,
                 want: Option<&RefreshGrant>| match got {
        Ok(g) if g.as_ref() == want => Ok(()),
        other => Err(fail(case, format!("{other:?}, wanted {want:?}"))),
    };

    let (t1, t2, t3) = (token()?, token()?, token()?);
    let (g1, g2) = (grant("rt-1")?, grant("rt-2")?);
    for (t, g) in [(&t1, &g1), (&t2, &g2)] {
        store
            .store(t, g.clone())
            .await
            .map_err(|e| fail("store", e.to_string()))?;
    }
    found(
        "a stored grant is found by its token, binding intact",
        store.grant(&t1).await,
        Some(&g1),
    )?;
    found(
        "a token never stored finds nothing",
        store.grant(&t3).await,
        None,
    )?;
    store
        .revoke(core::slice::from_ref(&g1.id))
        .await
        .map_err(|e| fail("revoke", e.to_string()))?;
    found("a revoked grant is not found", store.grant(&t1).await, None)?;
    found(
        "revoking one id leaves other grants",
        store.grant(&t2).await,
        Some(&g2),
    )?;
    let unknown = JwtId::try_from("rt-unknown").map_err(|e| setup(&e))?;
    store
        .revoke(&[g1.id.clone(), unknown])
        .await
        .map_err(|e| fail("revoking again or an unknown id is accepted", e.to_string()))?;

    let reads = join_all((0..RACERS).map(|_| store.grant(&t2)));
    let revoke = store.revoke(core::slice::from_ref(&g2.id));
    let (seen, revoked) = futures_util::future::join(reads, revoke).await;
    revoked.map_err(|e| fail("revoke while reads race", e.to_string()))?;
    if let Some(e) = seen.iter().find_map(|r| r.as_ref().err()) {
        return Err(fail("reads racing a revocation answer", e.to_string()));
    }
    found(
        "a revocation is seen by the next read",
        store.grant(&t2).await,
        None,
    )?;
    Ok(())
}
