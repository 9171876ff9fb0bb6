//! `bank prefill`: a database as it looks after many complete flows, for
//! measuring that the cost of a flow does not grow with stored data
//! (BENCHMARKS.md, #15, and on PostgreSQL #17).
//!
//! Each prefilled flow writes what a real account-access flow leaves
//! behind, through the same store code the bank uses: an authorised
//! consent (created and authorised with their audit entries, so the
//! chain stays verifiable), an authorization code, the three `jti`
//! entries (client assertions at `/token` twice, the request object), a
//! pushed request and a refresh grant. The consents belong to 10,000
//! synthetic customers and are spread over the past year. Codes, `jti`
//! entries and pushed requests expire a day after `now`, so the sweep
//! does not shrink the tables while a measurement runs; their rows are
//! never looked up (random keys). A pushed request's `source` is filler of
//! a real request's size: the row is never read back, so that one row is
//! written to the backend's table directly. On PostgreSQL several flows
//! are written at once (`workers`), as several bank instances would; on
//! SQLite, whose writes are serialised anyway, one at a time.

use fapi_consent::Permission;
use std::sync::atomic::{AtomicU64, Ordering};

use fapi_consent::consent::{AccountAccessRequest, Actor};
use fapi_consent::store::{apply_event_audited, create_audited};
use fapi_consent::{Consent, ConsentEvent, EventKind};
use fapi_core::replay::StoreError;
use fapi_core::UnixTime;
use fapi_core::{ClientId, CodeVerifier, ConsentId, RedirectUri, Scope};
use fapi_store_sqlite::rusqlite::params;
use sha2::{Digest, Sha256};

use crate::sqlite::unavailable;
use crate::stores::{Backend, Stores};
use fapi_core::code::CodeGrant;
use fapi_core::refresh::RefreshGrant;

/// Synthetic customers the prefilled consents belong to.
const CUSTOMERS: u64 = 10_000;
/// The past the prefilled consents are spread over.
const YEAR_SECS: u64 = 365 * 24 * 3600;

/// Writes `flows` flows' worth of rows for `client` into `stores`,
/// `workers` flows at a time (1 on SQLite), calling `progress` with the
/// number written every 10,000 flows.
///
/// # Errors
/// [`StoreError`] from the store, or when the OS CSPRNG fails.
pub async fn prefill(
    stores: &Stores,
    client: &ClientId,
    flows: u64,
    now: UnixTime,
    workers: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<(), StoreError> {
    let workers = match stores.backend {
        Backend::Sqlite(_) => 1,
        Backend::Postgres(_) => u64::try_from(workers.max(1)).unwrap_or(1),
    };
    let written = AtomicU64::new(0);
    let plan = Plan {
        stores,
        client,
        now,
        live_until: now.saturating_add(24 * 3600),
        redirect: RedirectUri::try_from("https://tpp.example/cb").map_err(unavailable)?,
        scope: Scope::try_from("openid accounts").map_err(unavailable)?,
        filler: "x".repeat(1_400),
        step: i64::try_from(YEAR_SECS / flows.max(1)).unwrap_or(1).max(1),
        flows,
    };
    let worker = |w: u64| {
        let (plan, written) = (&plan, &written);
        async move {
            let mut n = w;
            while n < flows {
                plan.flow(n).await?;
                let done = written.fetch_add(1, Ordering::Relaxed) + 1;
                if done % 10_000 == 0 {
                    progress(done);
                }
                n += workers;
            }
            Ok::<(), StoreError>(())
        }
    };
    futures_util::future::try_join_all((0..workers).map(worker)).await?;
    Ok(())
}

/// What every prefilled flow shares.
struct Plan<'a> {
    stores: &'a Stores,
    client: &'a ClientId,
    now: UnixTime,
    live_until: UnixTime,
    redirect: RedirectUri,
    scope: Scope,
    filler: String,
    step: i64,
    flows: u64,
}

impl Plan<'_> {
    /// The `n`th flow's rows, `flows - n` steps in the past.
    async fn flow(&self, n: u64) -> Result<(), StoreError> {
        let (stores, client, live_until) = (self.stores, self.client, self.live_until);
        let ago = i64::try_from(self.flows - n)
            .unwrap_or(i64::MAX)
            .saturating_mul(self.step);
        let at =
            UnixTime::from_secs(self.now.as_secs().saturating_sub(ago)).unwrap_or(UnixTime::EPOCH);
        let customer = format!("prefill-customer-{}", n % CUSTOMERS);
        let random = || fapi_core::random::token(16).map_err(unavailable);

        let id = ConsentId::try_from(format!(
            "aac-{}",
            fapi_core::random::uuid_v4().map_err(unavailable)?
        ))
        .map_err(unavailable)?;
        let request = AccountAccessRequest {
            permissions: vec![Permission::ReadAccountsDetail, Permission::ReadBalances],
            ..AccountAccessRequest::default()
        };
        let consent = Consent::account_access(id.clone(), client.clone(), &request, at)
            .map_err(unavailable)?;
        create_audited(&*stores.consents, &*stores.audit, consent, None, None)
            .await
            .map_err(unavailable)?;
        let authorise = ConsentEvent {
            kind: EventKind::Authorise {
                customer_id: customer.clone(),
                accounts: vec!["acc-1".into()],
            },
            actor: Actor::Customer(customer.clone()),
            reason: "approved on the consent screen".into(),
            at,
        };
        apply_event_audited(&*stores.consents, &*stores.audit, &id, authorise, None)
            .await
            .map_err(unavailable)?;

        let code = fapi_core::code::AuthorizationCode::generate().map_err(unavailable)?;
        let grant = CodeGrant {
            client_id: client.clone(),
            redirect_uri: self.redirect.clone(),
            code_challenge: CodeVerifier::generate().map_err(unavailable)?.challenge(),
            consent_id: id.clone(),
            customer_id: customer.clone(),
            scope: Some(self.scope.clone()),
            nonce: None,
            expires_at: live_until,
            dpop_jkt: None,
        };
        stores.codes.issue(&code, grant).await?;
        for _ in 0..3 {
            stores
                .replay
                .insert_if_absent(client.as_str(), &random()?, live_until, self.now)
                .await?;
        }
        let uri_hash: [u8; 32] = Sha256::digest(random()?.as_bytes()).into();
        self.used_pushed_request(&uri_hash).await?;
        let refresh = fapi_core::refresh::RefreshToken::generate().map_err(unavailable)?;
        let rt_id = format!("rt-{}", random()?);
        stores
            .refreshes
            .store(
                &refresh,
                RefreshGrant {
                    id: fapi_core::JwtId::try_from(rt_id.as_str()).map_err(unavailable)?,
                    client_id: client.clone(),
                    confirmation: fapi_core::access_token::Confirmation::CertificateThumbprint(
                        fapi_core::CertificateThumbprint::of_der(random()?.as_bytes()),
                    ),
                    consent_id: id,
                    customer_id: customer,
                    scope: self.scope.clone(),
                },
            )
            .await
    }

    /// A used pushed request's row, written to the backend's table.
    async fn used_pushed_request(&self, uri_hash: &[u8; 32]) -> Result<(), StoreError> {
        let (client, expires_at) = (self.client.as_str(), self.live_until.as_secs());
        match &self.stores.backend {
            Backend::Sqlite(db) => db
                .conn()?
                .prepare_cached(
                    "INSERT INTO pushed_requests (uri_hash, client_id, expires_at, used, source)
                     VALUES (?1, ?2, ?3, 1, ?4)",
                )
                .and_then(|mut st| {
                    st.execute(params![&uri_hash[..], client, expires_at, self.filler])
                })
                .map(drop)
                .map_err(unavailable),
            Backend::Postgres(db) => {
                let pg = db.store().pool().get().await.map_err(unavailable)?;
                let statement = pg
                    .prepare_cached(
                        "INSERT INTO fapi_pushed_requests (uri_hash, client_id, expires_at, used, source)
                         VALUES ($1, $2, $3, TRUE, $4)",
                    )
                    .await
                    .map_err(unavailable)?;
                pg.execute(
                    &statement,
                    &[&&uri_hash[..], &client, &expires_at, &self.filler],
                )
                .await
                .map(drop)
                .map_err(unavailable)
            }
        }
    }
}
