//! Consents (UK Open Banking Read/Write API): account access and domestic
//! payments, created from validated requests, changed only through
//! [`Consent::apply`], which consumes the consent and returns the next one.

use core::fmt;

use fapi_core::UnixTime;
use fapi_core::{ClientId, ConsentId};
use serde::{Deserialize, Serialize};

use crate::permission::{Permission, PermissionError, Permissions};

/// A consent's status (UK OB `Status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum ConsentStatus {
    AwaitingAuthorisation,
    Authorised,
    Rejected,
    Revoked,
    Expired,
    Consumed,
    /// A payment consent reserved by one submission whose outcome at the
    /// core is not known yet: it ends `Consumed` (booked) or back in
    /// `Authorised` (refused, or never executed). Not a UK OB status: a
    /// TPP sees `Authorised` ([`ConsentStatus::ob_status`]).
    PaymentPending,
}

impl ConsentStatus {
    /// The UK OB `Status` a TPP sees.
    pub fn ob_status(self) -> &'static str {
        match self {
            Self::AwaitingAuthorisation => "AwaitingAuthorisation",
            Self::Authorised | Self::PaymentPending => "Authorised",
            Self::Rejected => "Rejected",
            Self::Revoked => "Revoked",
            Self::Expired => "Expired",
            Self::Consumed => "Consumed",
        }
    }
}

impl fmt::Display for ConsentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

/// Who caused an event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Actor {
    /// The bank's customer (PSU).
    Customer(String),
    /// The TPP.
    Tpp(String),
    /// The bank itself (operations, fraud).
    Bank,
    /// The passing of `ExpirationDateTime`.
    Expiry,
}

/// What happened to a consent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum EventKind {
    /// The customer authorised it, for these accounts (payments: the one
    /// debtor account).
    Authorise {
        /// The customer.
        customer_id: String,
        /// Selected accounts.
        accounts: Vec<String>,
    },
    /// The customer rejected it.
    Reject,
    /// Revoked (account access only).
    Revoke,
    /// Expired (account access only).
    Expire,
    /// Used by its one payment (payments only): from `Authorised` in one
    /// step, or from `PaymentPending` once the core booked it.
    Consume,
    /// Reserved by a payment submission before the core is asked
    /// (payments only).
    Reserve,
    /// A reservation ended without a booking (refused by the core, or
    /// never executed): the consent can be used again.
    Release,
}

impl EventKind {
    /// A short name for errors and the audit trail.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Authorise { .. } => "authorise",
            Self::Reject => "reject",
            Self::Revoke => "revoke",
            Self::Expire => "expire",
            Self::Consume => "consume",
            Self::Reserve => "reserve",
            Self::Release => "release",
        }
    }
}

/// An event with its actor, reason and time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentEvent {
    /// What.
    pub kind: EventKind,
    /// Who.
    pub actor: Actor,
    /// Why, in words for the audit trail.
    pub reason: String,
    /// When.
    pub at: UnixTime,
}

/// One step of a consent's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The event.
    pub event: ConsentEvent,
    /// Status before.
    pub from: ConsentStatus,
    /// Status after.
    pub to: ConsentStatus,
    /// Version after.
    pub version: u64,
}

/// An amount: ASCII digits with up to 5 decimals, and an ISO 4217 code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amount {
    /// `Amount`, e.g. `"10.50"`.
    pub amount: String,
    /// `Currency`, e.g. `"GBP"`.
    pub currency: String,
}

/// A creditor account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditorAccount {
    /// `SchemeName`, e.g. `UK.OBIE.SortCodeAccountNumber`.
    pub scheme_name: String,
    /// `Identification`.
    pub identification: String,
    /// `Name`.
    pub name: String,
}

/// A domestic payment's initiation: what the customer agrees to pay.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Initiation {
    /// `InstructionIdentification`.
    pub instruction_identification: String,
    /// `EndToEndIdentification`.
    pub end_to_end_identification: String,
    /// `InstructedAmount`.
    pub instructed_amount: Amount,
    /// `CreditorAccount`.
    pub creditor_account: CreditorAccount,
    /// `RemittanceInformation.Reference`.
    pub remittance_reference: Option<String>,
}

/// Why a consent-creation request was refused (UK OB `UK.OBIE.Field.Invalid`
/// and friends; OAuth `invalid_request`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConsentRequestError {
    /// A permission rule.
    #[error(transparent)]
    Permissions(#[from] PermissionError),
    /// A date-time is not RFC 3339 / ISO 8601 with an offset.
    #[error("{0} must be an ISO 8601 date-time with a time zone")]
    DateTime(&'static str),
    /// `ExpirationDateTime` is not in the future.
    #[error("ExpirationDateTime must be in the future")]
    ExpirationInPast,
    /// `TransactionFromDateTime` is after `TransactionToDateTime`.
    #[error("TransactionFromDateTime must not be after TransactionToDateTime")]
    InvertedWindow,
    /// `Amount` is not 1-13 digits with up to 5 decimals, or is zero.
    #[error("InstructedAmount.Amount must be a positive decimal with ASCII digits (up to 13 digits and 5 decimals)")]
    Amount,
    /// `Currency` is not an ISO 4217 code.
    #[error("InstructedAmount.Currency must be an ISO 4217 code")]
    Currency,
    /// A text field is empty or too long.
    #[error("{0} must be 1 to {1} characters")]
    Text(&'static str, usize),
}

/// A request to create an account-access consent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountAccessRequest {
    /// `Permissions`, as requested (parse the codes with
    /// [`Permission::from_code`] or [`Permission::parse_codes`]); the rules
    /// on the set are checked by [`Consent::account_access`].
    pub permissions: Vec<Permission>,
    /// `ExpirationDateTime`.
    pub expiration: Option<String>,
    /// `TransactionFromDateTime`.
    pub transaction_from: Option<String>,
    /// `TransactionToDateTime`.
    pub transaction_to: Option<String>,
}

/// Parses an ISO 8601 / RFC 3339 date-time into Unix seconds.
///
/// # Errors
/// [`ConsentRequestError::DateTime`].
pub fn parse_date_time(field: &'static str, s: &str) -> Result<UnixTime, ConsentRequestError> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|_| ConsentRequestError::DateTime(field))?;
    UnixTime::from_secs(t.unix_timestamp()).ok_or(ConsentRequestError::DateTime(field))
}

fn text(field: &'static str, s: &str, max: usize) -> Result<(), ConsentRequestError> {
    if s.trim().is_empty() || s.chars().count() > max || s.chars().any(char::is_control) {
        Err(ConsentRequestError::Text(field, max))
    } else {
        Ok(())
    }
}

/// Validates an initiation per UK OB (amount format, currency, lengths).
///
/// # Errors
/// [`ConsentRequestError`].
pub fn validate_initiation(i: &Initiation) -> Result<(), ConsentRequestError> {
    text(
        "InstructionIdentification",
        &i.instruction_identification,
        35,
    )?;
    text("EndToEndIdentification", &i.end_to_end_identification, 35)?;
    let a = &i.instructed_amount.amount;
    let (int, frac) = match a.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (a.as_str(), None),
    };
    let digits =
        |s: &str, max: usize| (1..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int, 13)
        || frac.is_some_and(|f| !digits(f, 5))
        || !a.bytes().any(|b| (b'1'..=b'9').contains(&b))
    {
        return Err(ConsentRequestError::Amount);
    }
    let c = &i.instructed_amount.currency;
    if c.len() != 3 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(ConsentRequestError::Currency);
    }
    text(
        "CreditorAccount.SchemeName",
        &i.creditor_account.scheme_name,
        40,
    )?;
    text(
        "CreditorAccount.Identification",
        &i.creditor_account.identification,
        256,
    )?;
    text("CreditorAccount.Name", &i.creditor_account.name, 350)?;
    if let Some(r) = &i.remittance_reference {
        text("RemittanceInformation.Reference", r, 35)?;
    }
    Ok(())
}

/// The terms of an account-access consent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountAccessTerms {
    /// Granted permissions.
    pub permissions: Permissions,
    /// `ExpirationDateTime`.
    pub expiration: Option<UnixTime>,
    /// `TransactionFromDateTime`.
    pub transaction_from: Option<UnixTime>,
    /// `TransactionToDateTime`.
    pub transaction_to: Option<UnixTime>,
    /// Accounts the customer selected (set at authorisation).
    pub accounts: Vec<String>,
}

/// The terms of a domestic payment consent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentTerms {
    /// The one payment agreed to.
    pub initiation: Initiation,
    /// The account it is paid from (set at authorisation).
    pub debtor_account: Option<String>,
}

/// The kind of consent and its terms.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ConsentTerms {
    /// Account access (AISP).
    AccountAccess(AccountAccessTerms),
    /// A domestic payment (PISP).
    DomesticPayment(PaymentTerms),
}

/// A consent: terms, status, version, and the history of events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    id: ConsentId,
    client_id: ClientId,
    created_at: UnixTime,
    status: ConsentStatus,
    version: u64,
    customer_id: Option<String>,
    terms: ConsentTerms,
    history: Vec<HistoryEntry>,
}

/// A transition the state machine does not allow. Nothing changes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a consent in status {from} cannot {event}")]
pub struct TransitionError {
    /// The status it was in.
    pub from: ConsentStatus,
    /// The refused event.
    pub event: &'static str,
}

impl Consent {
    /// A new account-access consent, `AwaitingAuthorisation`.
    ///
    /// # Errors
    /// [`ConsentRequestError`].
    pub fn account_access(
        id: ConsentId,
        client_id: ClientId,
        req: &AccountAccessRequest,
        now: UnixTime,
    ) -> Result<Self, ConsentRequestError> {
        let permissions = Permissions::new(&req.permissions)?;
        let date = |f, v: &Option<String>| v.as_deref().map(|s| parse_date_time(f, s)).transpose();
        let expiration = date("ExpirationDateTime", &req.expiration)?;
        let transaction_from = date("TransactionFromDateTime", &req.transaction_from)?;
        let transaction_to = date("TransactionToDateTime", &req.transaction_to)?;
        if expiration.is_some_and(|e| e <= now) {
            return Err(ConsentRequestError::ExpirationInPast);
        }
        if let (Some(f), Some(t)) = (transaction_from, transaction_to) {
            if f > t {
                return Err(ConsentRequestError::InvertedWindow);
            }
        }
        Ok(Self::new(
            id,
            client_id,
            now,
            ConsentTerms::AccountAccess(AccountAccessTerms {
                permissions,
                expiration,
                transaction_from,
                transaction_to,
                accounts: Vec::new(),
            }),
        ))
    }

    /// A new domestic payment consent, `AwaitingAuthorisation`.
    ///
    /// # Errors
    /// [`ConsentRequestError`].
    pub fn domestic_payment(
        id: ConsentId,
        client_id: ClientId,
        initiation: Initiation,
        now: UnixTime,
    ) -> Result<Self, ConsentRequestError> {
        validate_initiation(&initiation)?;
        Ok(Self::new(
            id,
            client_id,
            now,
            ConsentTerms::DomesticPayment(PaymentTerms {
                initiation,
                debtor_account: None,
            }),
        ))
    }

    fn new(id: ConsentId, client_id: ClientId, now: UnixTime, terms: ConsentTerms) -> Self {
        Self {
            id,
            client_id,
            created_at: now,
            status: ConsentStatus::AwaitingAuthorisation,
            version: 1,
            customer_id: None,
            terms,
            history: Vec::new(),
        }
    }

    /// Applies `event`, consuming the consent: the next consent, with its
    /// version incremented and the event appended to its history.
    ///
    /// Account access: `AwaitingAuthorisation -> Authorised | Rejected`,
    /// `Authorised -> Revoked | Expired`. Payments:
    /// `AwaitingAuthorisation -> Authorised | Rejected`,
    /// `Authorised -> Consumed`. Authorising needs at least one account
    /// (payments: exactly one debtor account).
    ///
    /// # Errors
    /// [`TransitionError`] for any other transition; nothing changes.
    pub fn apply(self, event: ConsentEvent) -> Result<Self, TransitionError> {
        use ConsentStatus as S;
        let refuse = TransitionError {
            from: self.status,
            event: event.kind.name(),
        };
        let payment = matches!(self.terms, ConsentTerms::DomesticPayment(_));
        let to = match (&event.kind, self.status, payment) {
            (EventKind::Authorise { accounts, .. }, S::AwaitingAuthorisation, false)
                if !accounts.is_empty() =>
            {
                S::Authorised
            }
            (EventKind::Authorise { accounts, .. }, S::AwaitingAuthorisation, true)
                if accounts.len() == 1 =>
            {
                S::Authorised
            }
            (EventKind::Reject, S::AwaitingAuthorisation, _) => S::Rejected,
            (EventKind::Revoke, S::Authorised, false) => S::Revoked,
            (EventKind::Expire, S::Authorised, false) => S::Expired,
            (EventKind::Consume, S::Authorised | S::PaymentPending, true) => S::Consumed,
            (EventKind::Reserve, S::Authorised, true) => S::PaymentPending,
            (EventKind::Release, S::PaymentPending, true) => S::Authorised,
            _ => return Err(refuse),
        };
        let mut next = self;
        if let EventKind::Authorise {
            customer_id,
            accounts,
        } = &event.kind
        {
            next.customer_id = Some(customer_id.clone());
            match &mut next.terms {
                ConsentTerms::AccountAccess(t) => t.accounts = accounts.clone(),
                ConsentTerms::DomesticPayment(t) => t.debtor_account = accounts.first().cloned(),
            }
        }
        let from = next.status;
        next.status = to;
        next.version += 1;
        next.history.push(HistoryEntry {
            event,
            from,
            to,
            version: next.version,
        });
        Ok(next)
    }

    /// The id.
    pub fn id(&self) -> &ConsentId {
        &self.id
    }
    /// The TPP it was created by.
    pub fn client_id(&self) -> &ClientId {
        &self.client_id
    }
    /// When it was created.
    pub fn created_at(&self) -> UnixTime {
        self.created_at
    }
    /// The status.
    pub fn status(&self) -> ConsentStatus {
        self.status
    }
    /// The version (1 when created, +1 per event).
    pub fn version(&self) -> u64 {
        self.version
    }
    /// The customer, once authorised.
    pub fn customer_id(&self) -> Option<&str> {
        self.customer_id.as_deref()
    }
    /// The terms.
    pub fn terms(&self) -> &ConsentTerms {
        &self.terms
    }
    /// The ordered history.
    pub fn history(&self) -> &[HistoryEntry] {
        &self.history
    }
}
