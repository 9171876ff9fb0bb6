//! The 21 UK Open Banking account-access permission codes and their
//! combination rules (Account and Transaction API, "Permissions").

use core::fmt;
use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// A UK OB account-access permission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[allow(missing_docs)] // the variants are the UK OB codes themselves
pub enum Permission {
    ReadAccountsBasic,
    ReadAccountsDetail,
    ReadBalances,
    ReadBeneficiariesBasic,
    ReadBeneficiariesDetail,
    ReadDirectDebits,
    ReadOffers,
    ReadPAN,
    ReadParty,
    ReadPartyPSU,
    ReadProducts,
    ReadScheduledPaymentsBasic,
    ReadScheduledPaymentsDetail,
    ReadStandingOrdersBasic,
    ReadStandingOrdersDetail,
    ReadStatementsBasic,
    ReadStatementsDetail,
    ReadTransactionsBasic,
    ReadTransactionsCredits,
    ReadTransactionsDebits,
    ReadTransactionsDetail,
}

impl Permission {
    /// All 21 codes.
    pub const ALL: [Permission; 21] = [
        Self::ReadAccountsBasic,
        Self::ReadAccountsDetail,
        Self::ReadBalances,
        Self::ReadBeneficiariesBasic,
        Self::ReadBeneficiariesDetail,
        Self::ReadDirectDebits,
        Self::ReadOffers,
        Self::ReadPAN,
        Self::ReadParty,
        Self::ReadPartyPSU,
        Self::ReadProducts,
        Self::ReadScheduledPaymentsBasic,
        Self::ReadScheduledPaymentsDetail,
        Self::ReadStandingOrdersBasic,
        Self::ReadStandingOrdersDetail,
        Self::ReadStatementsBasic,
        Self::ReadStatementsDetail,
        Self::ReadTransactionsBasic,
        Self::ReadTransactionsCredits,
        Self::ReadTransactionsDebits,
        Self::ReadTransactionsDetail,
    ];

    /// The code as written in the API.
    pub fn code(self) -> String {
        format!("{self:?}")
    }

    /// Parses a code (exact, case-sensitive).
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.code() == code)
    }

    /// What the customer is asked to agree to, in plain words.
    pub fn plain_words(self) -> &'static str {
        match self {
            Self::ReadAccountsBasic => "your account names and types",
            Self::ReadAccountsDetail => "your account names, types, numbers and sort codes",
            Self::ReadBalances => "your balances",
            Self::ReadBeneficiariesBasic => "the names of people you pay",
            Self::ReadBeneficiariesDetail => "the names and account details of people you pay",
            Self::ReadDirectDebits => "your direct debits",
            Self::ReadOffers => "offers on your accounts",
            Self::ReadPAN => "your full card numbers",
            Self::ReadParty => "the account holders' names and contact details",
            Self::ReadPartyPSU => "your own name and contact details",
            Self::ReadProducts => "the products your accounts are",
            Self::ReadScheduledPaymentsBasic => "your scheduled payments",
            Self::ReadScheduledPaymentsDetail => {
                "your scheduled payments, with payee account details"
            }
            Self::ReadStandingOrdersBasic => "your standing orders",
            Self::ReadStandingOrdersDetail => "your standing orders, with payee account details",
            Self::ReadStatementsBasic => "your statements",
            Self::ReadStatementsDetail => "your statements, with amounts and details",
            Self::ReadTransactionsBasic => "your transactions",
            Self::ReadTransactionsCredits => "money coming in",
            Self::ReadTransactionsDebits => "money going out",
            Self::ReadTransactionsDetail => "your transactions, with counterparty details",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

/// Why a permission set is not acceptable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PermissionError {
    /// No permissions.
    #[error("Permissions must not be empty")]
    Empty,
    /// A code is not one of the 21 UK OB codes.
    #[error("Permissions contains an unknown code")]
    Unknown,
    /// A code appears twice.
    #[error("Permissions repeats a code")]
    Repeated,
    /// Neither `ReadAccountsBasic` nor `ReadAccountsDetail`.
    #[error("Permissions must include ReadAccountsBasic or ReadAccountsDetail")]
    NoAccountsPermission,
    /// `ReadTransactionsBasic`/`Detail` without `Credits` or `Debits`.
    #[error("ReadTransactionsBasic or ReadTransactionsDetail requires ReadTransactionsCredits or ReadTransactionsDebits")]
    TransactionsWithoutDirection,
    /// `ReadTransactionsCredits`/`Debits` without `Basic` or `Detail`.
    #[error("ReadTransactionsCredits or ReadTransactionsDebits requires ReadTransactionsBasic or ReadTransactionsDetail")]
    DirectionWithoutTransactions,
}

/// Validates a requested permission list per UK OB.
///
/// # Errors
/// [`PermissionError`].
pub fn validate_permissions(codes: &[String]) -> Result<BTreeSet<Permission>, PermissionError> {
    if codes.is_empty() {
        return Err(PermissionError::Empty);
    }
    let mut set = BTreeSet::new();
    for c in codes {
        let p = Permission::from_code(c).ok_or(PermissionError::Unknown)?;
        if !set.insert(p) {
            return Err(PermissionError::Repeated);
        }
    }
    use Permission as P;
    if !set.contains(&P::ReadAccountsBasic) && !set.contains(&P::ReadAccountsDetail) {
        return Err(PermissionError::NoAccountsPermission);
    }
    let tx = set.contains(&P::ReadTransactionsBasic) || set.contains(&P::ReadTransactionsDetail);
    let dir = set.contains(&P::ReadTransactionsCredits) || set.contains(&P::ReadTransactionsDebits);
    match (tx, dir) {
        (true, false) => Err(PermissionError::TransactionsWithoutDirection),
        (false, true) => Err(PermissionError::DirectionWithoutTransactions),
        _ => Ok(set),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(codes: &[&str]) -> Result<BTreeSet<Permission>, PermissionError> {
        validate_permissions(&codes.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn twenty_one_codes_round_trip() {
        assert_eq!(Permission::ALL.len(), 21);
        for p in Permission::ALL {
            assert_eq!(Permission::from_code(&p.code()), Some(p));
        }
        assert_eq!(Permission::from_code("readbalances"), None);
    }

    #[test]
    fn permission_rules() {
        assert!(v(&["ReadAccountsBasic", "ReadBalances"]).is_ok());
        assert!(v(&[
            "ReadAccountsDetail",
            "ReadTransactionsDetail",
            "ReadTransactionsCredits"
        ])
        .is_ok());
        assert_eq!(v(&[]).unwrap_err(), PermissionError::Empty);
        assert_eq!(
            v(&["ReadBalances"]).unwrap_err(),
            PermissionError::NoAccountsPermission
        );
        assert_eq!(
            v(&["ReadAccountsBasic", "ReadTransactionsBasic"]).unwrap_err(),
            PermissionError::TransactionsWithoutDirection
        );
        assert_eq!(
            v(&["ReadAccountsBasic", "ReadTransactionsDebits"]).unwrap_err(),
            PermissionError::DirectionWithoutTransactions
        );
        assert_eq!(
            v(&["ReadAccountsBasic", "ReadAccountsBasic"]).unwrap_err(),
            PermissionError::Repeated
        );
        assert_eq!(
            v(&["ReadAccountsBasic", "ReadEverything"]).unwrap_err(),
            PermissionError::Unknown
        );
    }
}
