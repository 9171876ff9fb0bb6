//! The consent gate: the last link of the resource-server chain
//! (`verify -> bind -> authorize`). It reads the consent live on every call,
//! so a revocation stops the very next request.

use std::sync::Arc;

use fapi_core::store::StoreError;
use fapi_core::BoundAccessToken;
use fapi_core::UnixTime;
use fapi_core::{ClientId, ConsentId};
use fapi_core::{ErrorCode, OAuthError};

use crate::consent::{
    Actor, Consent, ConsentEvent, ConsentStatus, ConsentTerms, EventKind, Initiation,
};
use crate::permission::Permission;
use crate::store::{apply_event, ApplyError, ConsentStore};

/// A UK OB account-information resource, and what the request asks of it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResourceAccess {
    /// `GET /accounts`
    Accounts,
    /// `GET /accounts/{id}`
    Account(String),
    /// `GET /accounts/{id}/balances`
    Balances(String),
    /// `GET /accounts/{id}/transactions?fromBookingDateTime&toBookingDateTime`
    Transactions {
        /// Account.
        account: String,
        /// Requested start (inclusive), if any.
        from: Option<UnixTime>,
        /// Requested end (inclusive), if any.
        to: Option<UnixTime>,
    },
    /// `GET /accounts/{id}/beneficiaries`
    Beneficiaries(String),
    /// `GET /accounts/{id}/direct-debits`
    DirectDebits(String),
    /// `GET /accounts/{id}/standing-orders`
    StandingOrders(String),
    /// `GET /accounts/{id}/scheduled-payments`
    ScheduledPayments(String),
    /// `GET /accounts/{id}/statements`
    Statements(String),
    /// `GET /accounts/{id}/product`
    Product(String),
    /// `GET /accounts/{id}/offers`
    Offers(String),
    /// `GET /accounts/{id}/party`
    Party(String),
}

impl ResourceAccess {
    /// The permissions of which at least one grants this resource.
    pub fn required(&self) -> &'static [Permission] {
        use Permission as P;
        match self {
            Self::Accounts | Self::Account(_) => &[P::ReadAccountsBasic, P::ReadAccountsDetail],
            Self::Balances(_) => &[P::ReadBalances],
            Self::Transactions { .. } => &[P::ReadTransactionsBasic, P::ReadTransactionsDetail],
            Self::Beneficiaries(_) => &[P::ReadBeneficiariesBasic, P::ReadBeneficiariesDetail],
            Self::DirectDebits(_) => &[P::ReadDirectDebits],
            Self::StandingOrders(_) => &[P::ReadStandingOrdersBasic, P::ReadStandingOrdersDetail],
            Self::ScheduledPayments(_) => &[
                P::ReadScheduledPaymentsBasic,
                P::ReadScheduledPaymentsDetail,
            ],
            Self::Statements(_) => &[P::ReadStatementsBasic, P::ReadStatementsDetail],
            Self::Product(_) => &[P::ReadProducts],
            Self::Offers(_) => &[P::ReadOffers],
            Self::Party(_) => &[P::ReadParty, P::ReadPartyPSU],
        }
    }

    /// The account the resource belongs to (`None` for the account list).
    pub fn account(&self) -> Option<&str> {
        match self {
            Self::Accounts => None,
            Self::Transactions { account, .. } => Some(account),
            Self::Account(a)
            | Self::Balances(a)
            | Self::Beneficiaries(a)
            | Self::DirectDebits(a)
            | Self::StandingOrders(a)
            | Self::ScheduledPayments(a)
            | Self::Statements(a)
            | Self::Product(a)
            | Self::Offers(a)
            | Self::Party(a) => Some(a),
        }
    }
}

/// Why the gate refused a request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GateError {
    /// The token carries no consent id.
    #[error("access token is not tied to a consent")]
    NoConsent,
    /// No consent has the token's id.
    #[error("consent does not exist")]
    UnknownConsent,
    /// The consent belongs to another TPP.
    #[error("consent was not granted to this client")]
    WrongClient,
    /// The consent is of the other kind (payment vs account access).
    #[error("consent does not cover this kind of request")]
    WrongKind,
    /// The consent is not `Authorised` (awaiting, rejected, revoked, expired,
    /// consumed).
    #[error("consent is {0}, not Authorised")]
    NotAuthorised(ConsentStatus),
    /// `ExpirationDateTime` has passed.
    #[error("consent has expired")]
    Expired,
    /// No granted permission covers the resource.
    #[error("consent does not grant the permission this resource needs")]
    MissingPermission,
    /// The account is not one the customer selected.
    #[error("account is not covered by the consent")]
    AccountNotSelected,
    /// The requested transaction window reaches outside the consent's.
    #[error("requested transaction period is outside the consented period")]
    OutsideTransactionWindow,
    /// The submission's consent is not the token's.
    #[error("payment refers to another consent than the access token")]
    ConsentMismatch,
    /// The payment differs from the authorised initiation.
    #[error("payment does not match the authorised consent ({0})")]
    InitiationMismatch(&'static str),
    /// The consent was used already (or concurrently).
    #[error("consent has already been used for a payment")]
    AlreadyConsumed,
    /// Another submission of this consent is at the core; its outcome
    /// decides (retry with the same `x-idempotency-key` to learn it).
    #[error("a payment of this consent is in progress")]
    PaymentInProgress,
    /// The consent is not reserved by a payment (settling it).
    #[error("consent is not reserved by a payment")]
    NotReserved,
    /// The store failed (fail closed).
    #[error("consent could not be read")]
    Store(String),
}

impl OAuthError for GateError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::MissingPermission => ErrorCode::InsufficientScope,
            Self::ConsentMismatch | Self::InitiationMismatch(_) => ErrorCode::InvalidRequest,
            Self::Store(_) => ErrorCode::ServerError,
            _ => ErrorCode::AccessDenied,
        }
    }
}

impl From<StoreError> for GateError {
    fn from(e: StoreError) -> Self {
        Self::Store(e.to_string())
    }
}

/// How much of a resource the caller may see (UK OB Basic vs Detail).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DetailLevel {
    /// Basic fields only.
    Basic,
    /// Basic and detail fields.
    Detail,
}

/// A request the live consent allows. Only [`ConsentGate::authorize`] makes
/// one.
#[derive(Clone, Debug)]
pub struct Authorized {
    consent: Consent,
    access: ResourceAccess,
    window: (Option<UnixTime>, Option<UnixTime>),
}

impl Authorized {
    /// The consent as read for this request.
    pub fn consent(&self) -> &Consent {
        &self.consent
    }
    /// The customer whose data it is.
    pub fn customer_id(&self) -> Option<&str> {
        self.consent.customer_id()
    }
    /// The accounts the customer selected.
    pub fn accounts(&self) -> &[String] {
        match self.consent.terms() {
            ConsentTerms::AccountAccess(t) => &t.accounts,
            _ => &[],
        }
    }
    /// Whether the caller may see detail fields of the resource
    /// (a `*Detail` permission), or basic ones only.
    pub fn detail_level(&self) -> DetailLevel {
        use Permission as P;
        let detail = match self.access {
            ResourceAccess::Accounts | ResourceAccess::Account(_) => P::ReadAccountsDetail,
            ResourceAccess::Transactions { .. } => P::ReadTransactionsDetail,
            ResourceAccess::Beneficiaries(_) => P::ReadBeneficiariesDetail,
            ResourceAccess::StandingOrders(_) => P::ReadStandingOrdersDetail,
            ResourceAccess::ScheduledPayments(_) => P::ReadScheduledPaymentsDetail,
            ResourceAccess::Statements(_) => P::ReadStatementsDetail,
            _ => return DetailLevel::Detail,
        };
        match self.consent.terms() {
            ConsentTerms::AccountAccess(t) if t.permissions.contains(detail) => DetailLevel::Detail,
            _ => DetailLevel::Basic,
        }
    }
    /// For transactions: the period the response may cover, inclusive. The
    /// request's period clamped to the consented one, so a request without
    /// dates still gets only the consented period (`None`: unbounded on that
    /// side).
    pub fn transaction_window(&self) -> (Option<UnixTime>, Option<UnixTime>) {
        self.window
    }

    /// For transactions: which of credits and debits may be shown.
    pub fn transaction_directions(&self) -> (bool, bool) {
        match self.consent.terms() {
            ConsentTerms::AccountAccess(t) => (
                t.permissions.contains(Permission::ReadTransactionsCredits),
                t.permissions.contains(Permission::ReadTransactionsDebits),
            ),
            _ => (false, false),
        }
    }
}

/// A payment the TPP submits against a payment consent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentSubmission {
    /// `ConsentId` of the submission.
    pub consent_id: ConsentId,
    /// `Initiation` of the submission; must equal the consent's.
    pub initiation: Initiation,
}

/// A payment consent consumed (or reserved) by exactly one submission.
#[derive(Clone, Debug)]
pub struct ConsumedPayment {
    /// The consent, now `Consumed` (or `PaymentPending`).
    pub consent: Consent,
    /// The account to debit.
    pub debtor_account: String,
}

/// How a reserved payment ended at the core.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Settlement {
    /// The core booked it: the consent is used.
    Booked,
    /// The core refused it, or it was never executed (the reason, a fixed
    /// phrase for the audit trail): the consent can be used again.
    NotBooked(String),
}

/// Reads consents live and decides each request.
#[derive(Clone, Debug)]
pub struct ConsentGate {
    store: Arc<dyn ConsentStore>,
    audit: Option<Arc<dyn crate::audit::AuditLog>>,
}

fn mismatch(consented: &Initiation, submitted: &Initiation) -> Option<&'static str> {
    if consented.instructed_amount.amount != submitted.instructed_amount.amount {
        Some("InstructedAmount.Amount")
    } else if consented.instructed_amount.currency != submitted.instructed_amount.currency {
        Some("InstructedAmount.Currency")
    } else if consented.creditor_account != submitted.creditor_account {
        Some("CreditorAccount")
    } else if consented.remittance_reference != submitted.remittance_reference {
        Some("RemittanceInformation.Reference")
    } else if consented.instruction_identification != submitted.instruction_identification {
        Some("InstructionIdentification")
    } else if consented.end_to_end_identification != submitted.end_to_end_identification {
        Some("EndToEndIdentification")
    } else {
        None
    }
}

impl ConsentGate {
    /// A gate over `store`.
    pub fn new(store: Arc<dyn ConsentStore>) -> Self {
        Self { store, audit: None }
    }

    /// Writes every state change to `audit` before it takes effect.
    pub fn with_audit(mut self, audit: Arc<dyn crate::audit::AuditLog>) -> Self {
        self.audit = Some(audit);
        self
    }

    async fn live(&self, token: &BoundAccessToken) -> Result<Consent, GateError> {
        let id = token.consent_id().ok_or(GateError::NoConsent)?;
        Self::own(token, self.store.get(id).await?)
    }

    /// `read` (the token's consent as read live) if it is the token's
    /// consent and belongs to the token's client.
    fn own(token: &BoundAccessToken, read: Option<Consent>) -> Result<Consent, GateError> {
        let id = token.consent_id().ok_or(GateError::NoConsent)?;
        let consent = read.ok_or(GateError::UnknownConsent)?;
        if consent.id() != id {
            return Err(GateError::ConsentMismatch);
        }
        if consent.client_id() != token.client_id() {
            return Err(GateError::WrongClient);
        }
        Ok(consent)
    }

    /// Decides whether a grant tied to consent `id` (a refresh token, under
    /// FAPI 2 not rotated) may still be used by `client` at `now`: the
    /// consent exists, is the client's, is `Authorised`, and (account
    /// access) its `ExpirationDateTime` has not passed. Read live, so a
    /// revocation stops the next refresh.
    ///
    /// # Errors
    /// [`GateError`].
    pub async fn check_grant(
        &self,
        id: &ConsentId,
        client: &ClientId,
        now: UnixTime,
    ) -> Result<Consent, GateError> {
        let consent = self.store.get(id).await?.ok_or(GateError::UnknownConsent)?;
        if consent.client_id() != client {
            return Err(GateError::WrongClient);
        }
        if consent.status() != ConsentStatus::Authorised {
            return Err(GateError::NotAuthorised(consent.status()));
        }
        if let ConsentTerms::AccountAccess(terms) = consent.terms() {
            if terms.expiration.is_some_and(|e| now >= e) {
                return Err(GateError::Expired);
            }
        }
        Ok(consent)
    }

    /// Decides an account-information request: the token's consent exists,
    /// belongs to the token's client, is `Authorised` and unexpired at
    /// `now`, grants a permission for the resource, covers the account, and
    /// the requested transaction period lies inside the consented one.
    ///
    /// # Errors
    /// [`GateError`]; nothing is cached, so a revocation is seen at once.
    pub async fn authorize(
        &self,
        token: &BoundAccessToken,
        access: &ResourceAccess,
        now: UnixTime,
    ) -> Result<Authorized, GateError> {
        let consent = self.live(token).await?;
        Self::decide(consent, access, now)
    }

    /// [`Self::authorize`] on a consent the caller read live itself, in the
    /// same round trip as its other per-call reads (the revoked-token check
    /// and the directory standing): `read` is what the store holds for the
    /// token's consent id right now (`None`: no such consent). A consent
    /// with another id than the token's is refused
    /// ([`GateError::ConsentMismatch`]), so a read of the wrong row can
    /// never authorize.
    ///
    /// # Errors
    /// [`GateError`], as [`Self::authorize`].
    pub fn authorize_read(
        &self,
        token: &BoundAccessToken,
        read: Option<Consent>,
        access: &ResourceAccess,
        now: UnixTime,
    ) -> Result<Authorized, GateError> {
        Self::decide(Self::own(token, read)?, access, now)
    }

    fn decide(
        consent: Consent,
        access: &ResourceAccess,
        now: UnixTime,
    ) -> Result<Authorized, GateError> {
        let ConsentTerms::AccountAccess(terms) = consent.terms() else {
            return Err(GateError::WrongKind);
        };
        if consent.status() != ConsentStatus::Authorised {
            return Err(GateError::NotAuthorised(consent.status()));
        }
        if terms.expiration.is_some_and(|e| now >= e) {
            return Err(GateError::Expired);
        }
        if !access
            .required()
            .iter()
            .any(|p| terms.permissions.contains(*p))
        {
            return Err(GateError::MissingPermission);
        }
        if let Some(account) = access.account() {
            if !terms.accounts.iter().any(|a| a == account) {
                return Err(GateError::AccountNotSelected);
            }
        }
        let mut window = (None, None);
        if let ResourceAccess::Transactions { from, to, .. } = access {
            let from_ok = match (terms.transaction_from, from) {
                (Some(min), Some(f)) => *f >= min,
                _ => true, // no requested start: the consented one applies
            };
            let to_ok = match (terms.transaction_to, to) {
                (Some(max), Some(t)) => *t <= max,
                _ => true,
            };
            let ordered = !matches!((from, to), (Some(f), Some(t)) if f > t);
            if !(from_ok && to_ok && ordered) {
                return Err(GateError::OutsideTransactionWindow);
            }
            window = (from.or(terms.transaction_from), to.or(terms.transaction_to));
        }
        let access = access.clone();
        Ok(Authorized {
            consent,
            access,
            window,
        })
    }

    /// Consumes a payment consent for `submission`: the consent is the
    /// token's, belongs to its client, is `Authorised`, and the submission
    /// matches its initiation exactly; then it moves `Authorised ->
    /// Consumed` by compare-and-swap. Of concurrent submissions exactly one
    /// passes; a mismatch moves nothing.
    ///
    /// # Errors
    /// [`GateError`].
    pub async fn consume_payment(
        &self,
        token: &BoundAccessToken,
        submission: &PaymentSubmission,
        now: UnixTime,
    ) -> Result<ConsumedPayment, GateError> {
        self.take_payment(
            token,
            submission,
            EventKind::Consume,
            "domestic payment submitted",
            now,
        )
        .await
    }

    /// Reserves a payment consent for `submission` before the core is
    /// asked: the checks of [`Self::consume_payment`], then `Authorised ->
    /// PaymentPending` by compare-and-swap (audited). Of concurrent
    /// submissions exactly one passes; the others get
    /// [`GateError::PaymentInProgress`] while it is pending. The holder
    /// ends the reservation with [`Self::settle_payment`].
    ///
    /// # Errors
    /// [`GateError`].
    pub async fn reserve_payment(
        &self,
        token: &BoundAccessToken,
        submission: &PaymentSubmission,
        now: UnixTime,
    ) -> Result<ConsumedPayment, GateError> {
        self.take_payment(
            token,
            submission,
            EventKind::Reserve,
            "domestic payment sent to the core",
            now,
        )
        .await
    }

    /// Ends the reservation of `consent_id` by what the core did:
    /// `PaymentPending -> Consumed` when booked, `-> Authorised` (with the
    /// reason) when not. Settling twice the same way cannot happen: the
    /// second finds the consent no longer pending
    /// ([`GateError::NotReserved`]).
    ///
    /// # Errors
    /// [`GateError`].
    pub async fn settle_payment(
        &self,
        consent_id: &ConsentId,
        actor: Actor,
        settlement: Settlement,
        now: UnixTime,
    ) -> Result<Consent, GateError> {
        let (kind, reason) = match settlement {
            Settlement::Booked => (EventKind::Consume, "booked by the core".to_owned()),
            Settlement::NotBooked(why) => (EventKind::Release, why),
        };
        let current = self
            .store
            .get(consent_id)
            .await?
            .ok_or(GateError::UnknownConsent)?;
        if current.status() != ConsentStatus::PaymentPending {
            return Err(GateError::NotReserved);
        }
        let event = ConsentEvent {
            kind,
            actor,
            reason,
            at: now,
        };
        match self.apply(consent_id, event).await {
            Ok(c) => Ok(c),
            Err(ApplyError::Transition(_)) | Err(ApplyError::Contended) => {
                Err(GateError::NotReserved)
            }
            Err(ApplyError::NotFound) => Err(GateError::UnknownConsent),
            Err(ApplyError::Store(e)) => Err(e.into()),
        }
    }

    async fn apply(&self, id: &ConsentId, event: ConsentEvent) -> Result<Consent, ApplyError> {
        match &self.audit {
            Some(audit) => {
                crate::store::apply_event_audited(&*self.store, &**audit, id, event, None).await
            }
            None => apply_event(&*self.store, id, event).await,
        }
    }

    async fn take_payment(
        &self,
        token: &BoundAccessToken,
        submission: &PaymentSubmission,
        kind: EventKind,
        reason: &str,
        now: UnixTime,
    ) -> Result<ConsumedPayment, GateError> {
        if token.consent_id() != Some(&submission.consent_id) {
            return Err(GateError::ConsentMismatch);
        }
        let consent = self.live(token).await?;
        let ConsentTerms::DomesticPayment(terms) = consent.terms() else {
            return Err(GateError::WrongKind);
        };
        match consent.status() {
            ConsentStatus::Authorised => {}
            ConsentStatus::Consumed => return Err(GateError::AlreadyConsumed),
            ConsentStatus::PaymentPending => return Err(GateError::PaymentInProgress),
            other => return Err(GateError::NotAuthorised(other)),
        }
        if let Some(field) = mismatch(&terms.initiation, &submission.initiation) {
            return Err(GateError::InitiationMismatch(field));
        }
        let event = ConsentEvent {
            kind,
            actor: Actor::Tpp(token.client_id().as_str().to_owned()),
            reason: reason.into(),
            at: now,
        };
        let taken = match self.apply(&submission.consent_id, event).await {
            Ok(c) => c,
            // a concurrent submission won the compare-and-swap
            Err(ApplyError::Transition(_)) | Err(ApplyError::Contended) => {
                return Err(match self.store.get(&submission.consent_id).await? {
                    Some(c) if c.status() == ConsentStatus::PaymentPending => {
                        GateError::PaymentInProgress
                    }
                    _ => GateError::AlreadyConsumed,
                })
            }
            Err(ApplyError::NotFound) => return Err(GateError::UnknownConsent),
            Err(ApplyError::Store(e)) => return Err(e.into()),
        };
        let debtor_account = match taken.terms() {
            ConsentTerms::DomesticPayment(t) => t.debtor_account.clone().unwrap_or_default(),
            _ => String::new(),
        };
        Ok(ConsumedPayment {
            consent: taken,
            debtor_account,
        })
    }
}
