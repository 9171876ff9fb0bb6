//! `bank prefill`: a database as it looks after many complete flows, for
//! measuring that the cost of a flow does not grow with stored data
//! (BENCHMARKS.md, #15).
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
//! a real request's size: the row is never read back. A bulk loader, it
//! writes the SQLite backend directly (`bank prefill` refuses another).

use fapi_consent::Permission;
use std::sync::Arc;

use fapi_consent::consent::{AccountAccessRequest, Actor};
use fapi_consent::store::{apply_event_audited, create_audited};
use fapi_consent::{Consent, ConsentEvent, EventKind};
use fapi_core::replay::{ReplayCache, StoreError};
use fapi_core::UnixTime;
use fapi_core::{ClientId, CodeVerifier, ConsentId, RedirectUri, Scope};
use fapi_store_sqlite::rusqlite::params;
use sha2::{Digest, Sha256};

use crate::sqlite::{unavailable, SqliteDb};
use fapi_core::code::{AuthorizationCodeStore, CodeGrant};
use fapi_core::refresh::{RefreshGrant, RefreshGrantStore};

/// Synthetic customers the prefilled consents belong to.
const CUSTOMERS: u64 = 10_000;
/// The past the prefilled consents are spread over.
const YEAR_SECS: u64 = 365 * 24 * 3600;

/// Writes `flows` flows' worth of rows for `client` into `db`, calling
/// `progress` with the number written every 10,000 flows.
///
/// # Errors
/// [`StoreError`] from the store, or when the OS CSPRNG fails.
pub fn prefill(
    db: &Arc<SqliteDb>,
    client: &ClientId,
    flows: u64,
    now: UnixTime,
    mut progress: impl FnMut(u64),
) -> Result<(), StoreError> {
    let live_until = now.saturating_add(24 * 3600);
    let store = db.store();
    let (consents, audit, codes, replay, refreshes) = (
        store.consents(),
        store.audit_log(),
        store.codes(),
        store.replay_cache(),
        store.refresh_grants(),
    );
    let redirect = RedirectUri::try_from("https://tpp.example/cb").map_err(unavailable)?;
    let scope = Scope::try_from("openid accounts").map_err(unavailable)?;
    let filler = "x".repeat(1_400);
    let step = i64::try_from(YEAR_SECS / flows.max(1)).unwrap_or(1).max(1);
    for n in 0..flows {
        let ago = i64::try_from(flows - n)
            .unwrap_or(i64::MAX)
            .saturating_mul(step);
        let at = UnixTime::from_secs(now.as_secs().saturating_sub(ago)).unwrap_or(UnixTime::EPOCH);
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
        futures_executor::block_on(create_audited(&consents, &audit, consent, None, None))
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
        futures_executor::block_on(apply_event_audited(&consents, &audit, &id, authorise, None))
            .map_err(unavailable)?;

        let code = fapi_core::code::AuthorizationCode::generate().map_err(unavailable)?;
        let grant = CodeGrant {
            client_id: client.clone(),
            redirect_uri: redirect.clone(),
            code_challenge: CodeVerifier::generate().map_err(unavailable)?.challenge(),
            consent_id: id.clone(),
            customer_id: customer.clone(),
            scope: Some(scope.clone()),
            nonce: None,
            expires_at: live_until,
        };
        futures_executor::block_on(codes.issue(&code, grant))?;
        for _ in 0..3 {
            futures_executor::block_on(replay.insert_if_absent(
                client.as_str(),
                &random()?,
                live_until,
                now,
            ))?;
        }
        let uri_hash: [u8; 32] = Sha256::digest(random()?.as_bytes()).into();
        db.conn()?
            .prepare_cached(
                "INSERT INTO pushed_requests (uri_hash, client_id, expires_at, used, source)
                 VALUES (?1, ?2, ?3, 1, ?4)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    &uri_hash[..],
                    client.as_str(),
                    live_until.as_secs(),
                    filler
                ])
            })
            .map_err(unavailable)?;
        let refresh = fapi_core::refresh::RefreshToken::generate().map_err(unavailable)?;
        let rt_id = format!("rt-{}", random()?);
        futures_executor::block_on(refreshes.store(
            &refresh,
            RefreshGrant {
                id: fapi_core::JwtId::try_from(rt_id.as_str()).map_err(unavailable)?,
                client_id: client.clone(),
                confirmation: fapi_core::access_token::Confirmation::CertificateThumbprint(
                    fapi_core::CertificateThumbprint::of_der(random()?.as_bytes()),
                ),
                consent_id: id,
                customer_id: customer,
                scope: scope.clone(),
            },
        ))?;
        if (n + 1) % 10_000 == 0 {
            progress(n + 1);
        }
    }
    Ok(())
}
