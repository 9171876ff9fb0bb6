//! Plain FAPI 2 authorization by scopes alone (`ConsentModel::Scopes` or
//! `Any`): a request without an `openbanking_intent_id` whose scope holds
//! `accounts` asks the customer for read access, with the bank's standard
//! permission set, to the accounts they choose, for [`ACCESS_DAYS`]. The
//! consent is a first-class object like an intent's: created (and audited)
//! when the customer decides, then authorised or rejected through the same
//! state machine, read live on every call, listed on the dashboard and
//! revocable there. A payment cannot be described by a scope: it needs an
//! intent (or, later, RAR `authorization_details`).

use fapi_consent::consent::AccountAccessRequest;
use fapi_consent::permission::Permission;
use fapi_consent::Consent;
use fapi_core::{ClientId, ConsentId, Scope, UnixTime};

/// How long access granted by scope lasts.
pub(crate) const ACCESS_DAYS: i64 = 90;

/// What the `accounts` scope asks for.
pub(crate) const ACCOUNTS_PERMISSIONS: [Permission; 5] = [
    Permission::ReadAccountsDetail,
    Permission::ReadBalances,
    Permission::ReadTransactionsDetail,
    Permission::ReadTransactionsCredits,
    Permission::ReadTransactionsDebits,
];

/// Why a scope-only request cannot be granted (a description for the TPP).
pub(crate) fn refusal(scope: Option<&Scope>, may_read_accounts: bool) -> Option<&'static str> {
    let asks = |s: &str| scope.is_some_and(|sc| sc.contains(s));
    if asks("payments") {
        return Some("a payment cannot be asked for by scope alone: name, in openbanking_intent_id, a payment consent created with a client_credentials token");
    }
    if !asks("accounts") {
        return Some("with scopes alone this bank grants the accounts scope (read access to the accounts the customer chooses)");
    }
    if !may_read_accounts {
        return Some(
            "the client's directory roles do not include AISP, which the accounts scope needs",
        );
    }
    None
}

/// The new consent a scope-only request asks for, not stored yet.
pub(crate) fn consent_for(client: &ClientId, now: UnixTime) -> Option<Consent> {
    let id = ConsentId::try_from(format!("aac-{}", fapi_core::random::uuid_v4().ok()?)).ok()?;
    let until = super::rfc3339(now.saturating_add(ACCESS_DAYS * 24 * 3600))?;
    Consent::account_access(
        id,
        client.clone(),
        &AccountAccessRequest {
            permissions: ACCOUNTS_PERMISSIONS.to_vec(),
            expiration: Some(until),
            transaction_from: None,
            transaction_to: None,
        },
        now,
    )
    .ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn scope(s: &str) -> Scope {
        Scope::try_from(s).unwrap()
    }

    #[test]
    fn only_the_accounts_scope_of_an_aisp_is_granted_by_scope_alone() {
        assert_eq!(refusal(Some(&scope("openid accounts")), true), None);
        assert_eq!(refusal(Some(&scope("accounts")), true), None);
        // the same request from a client without the AISP role
        assert!(refusal(Some(&scope("openid accounts")), false)
            .unwrap()
            .contains("AISP"));
        // a payment, alone or beside accounts
        for s in ["openid payments", "openid accounts payments"] {
            assert!(refusal(Some(&scope(s)), true)
                .unwrap()
                .contains("openbanking_intent_id"));
        }
        // nothing the bank grants
        assert!(refusal(Some(&scope("openid")), true).is_some());
        assert!(refusal(None, true).is_some());
    }

    #[test]
    fn a_scope_consent_asks_for_the_standard_read_set_for_ninety_days() {
        let now = UnixTime::from_secs(1_900_000_000).unwrap();
        let client = ClientId::try_from("tpp-a").unwrap();
        let c = consent_for(&client, now).unwrap();
        assert_eq!(c.client_id(), &client);
        assert_eq!(
            c.status(),
            fapi_consent::consent::ConsentStatus::AwaitingAuthorisation
        );
        let fapi_consent::consent::ConsentTerms::AccountAccess(t) = c.terms() else {
            panic!("not account access");
        };
        assert_eq!(t.expiration, Some(now.saturating_add(ACCESS_DAYS * 86_400)));
        for p in ACCOUNTS_PERMISSIONS {
            assert!(t.permissions.contains(p), "{p:?}");
        }
        // every new consent has its own id
        assert_ne!(consent_for(&client, now).unwrap().id(), c.id());
    }
}
