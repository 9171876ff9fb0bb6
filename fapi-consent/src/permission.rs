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

    /// Parses the codes of a request (exact, case-sensitive), in order,
    /// without the set rules ([`Permissions::new`] checks those).
    ///
    /// # Errors
    /// [`PermissionError::Unknown`] for a code that is not one of the 21.
    pub fn parse_codes<I, S>(codes: I) -> Result<Vec<Self>, PermissionError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        codes
            .into_iter()
            .map(|c| Self::from_code(c.as_ref()).ok_or(PermissionError::Unknown))
            .collect()
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

/// A set of account-access permissions that satisfies the UK OB rules: not
/// empty, no code twice, an accounts permission, transactions only with a
/// direction and the reverse. Only [`Permissions::new`] and
/// [`Permissions::from_codes`] make one (deserializing applies the same
/// rules), so a consent's terms can never hold a set the API would refuse.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<Permission>", into = "Vec<Permission>")]
pub struct Permissions(BTreeSet<Permission>);

impl Permissions {
    /// Checks `requested` against the UK OB rules.
    ///
    /// # Errors
    /// [`PermissionError`] naming the rule broken.
    pub fn new(requested: &[Permission]) -> Result<Self, PermissionError> {
        if requested.is_empty() {
            return Err(PermissionError::Empty);
        }
        let mut set = BTreeSet::new();
        for p in requested {
            if !set.insert(*p) {
                return Err(PermissionError::Repeated);
            }
        }
        use Permission as P;
        if !set.contains(&P::ReadAccountsBasic) && !set.contains(&P::ReadAccountsDetail) {
            return Err(PermissionError::NoAccountsPermission);
        }
        let tx =
            set.contains(&P::ReadTransactionsBasic) || set.contains(&P::ReadTransactionsDetail);
        let dir =
            set.contains(&P::ReadTransactionsCredits) || set.contains(&P::ReadTransactionsDebits);
        match (tx, dir) {
            (true, false) => Err(PermissionError::TransactionsWithoutDirection),
            (false, true) => Err(PermissionError::DirectionWithoutTransactions),
            _ => Ok(Self(set)),
        }
    }

    /// Parses the codes as written in a request (exact, case-sensitive) and
    /// checks the set.
    ///
    /// # Errors
    /// [`PermissionError::Unknown`] for a code that is not one of the 21,
    /// otherwise as [`Permissions::new`].
    pub fn from_codes<I, S>(codes: I) -> Result<Self, PermissionError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self::new(&Permission::parse_codes(codes)?)
    }

    /// Whether `permission` was granted.
    pub fn contains(&self, permission: Permission) -> bool {
        self.0.contains(&permission)
    }

    /// The granted permissions, in code order.
    pub fn iter(&self) -> impl Iterator<Item = Permission> + '_ {
        self.0.iter().copied()
    }

    /// How many permissions were granted (at least one).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always `false`: an empty set is refused at construction.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl TryFrom<Vec<Permission>> for Permissions {
    type Error = PermissionError;
    fn try_from(requested: Vec<Permission>) -> Result<Self, PermissionError> {
        Self::new(&requested)
    }
}

impl From<Permissions> for Vec<Permission> {
    fn from(p: Permissions) -> Self {
        p.0.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(codes: &[&str]) -> Result<Permissions, PermissionError> {
        Permissions::from_codes(codes)
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

    /// Stored terms are read back through the same rules: a set the API
    /// would refuse does not deserialize; a valid one round-trips as the
    /// sorted array of codes it was stored as before the newtype.
    #[test]
    fn deserializing_applies_the_rules() {
        let ok = v(&["ReadBalances", "ReadAccountsBasic"]).unwrap();
        let json = serde_json::to_string(&ok).unwrap();
        assert_eq!(json, r#"["ReadAccountsBasic","ReadBalances"]"#);
        assert_eq!(serde_json::from_str::<Permissions>(&json).unwrap(), ok);
        for bad in [
            r#"[]"#,
            r#"["ReadBalances"]"#,
            r#"["ReadAccountsBasic","ReadAccountsBasic"]"#,
            r#"["ReadAccountsBasic","ReadTransactionsBasic"]"#,
        ] {
            assert!(serde_json::from_str::<Permissions>(bad).is_err(), "{bad}");
        }
    }
}
