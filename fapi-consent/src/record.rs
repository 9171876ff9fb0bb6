//! The payment-authorisation record: when a customer authorises a payment
//! consent, the bank signs what was agreed, by whom, how and when, so the
//! payment can be proven years later with nothing but the bank's public key
//! and the record.

use fapi_core::crypto::{Algorithm, AsyncSigningKey, SigningError};
use fapi_core::encoding::b64url_encode;
use fapi_core::jose::{sign_compact_async, ExpectedType, JoseError, JwsPolicy, UnverifiedJws};
use fapi_core::jwk::KeySet;
use fapi_core::UnixTime;
use serde::{Deserialize, Serialize};

use crate::consent::Initiation;

/// The `typ` of a payment-authorisation record.
pub const RECORD_TYP: &str = "payment-authorisation+jwt";

/// What the customer authorised.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentAuthorisationRecord {
    /// The consent.
    pub consent_id: String,
    /// The customer who authorised.
    pub customer_id: String,
    /// The TPP.
    pub client_id: String,
    /// The payment agreed to.
    pub initiation: Initiation,
    /// The debtor account chosen.
    pub debtor_account: String,
    /// How the customer authenticated (e.g. `urn:openbanking:psd2:sca`).
    pub authentication_method: String,
    /// When (Unix seconds).
    pub authorised_at: i64,
    /// SHA-256 (base64url) of the signed request object that asked for it.
    pub request_object_sha256: Option<String>,
}

/// Why a record does not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The JWS does not verify with the bank's keys (or is not a record).
    #[error("payment authorisation record signature is invalid: {0}")]
    Signature(#[from] JoseError),
    /// The claims are not a record.
    #[error("payment authorisation record is malformed")]
    Malformed,
}

impl PaymentAuthorisationRecord {
    /// Builds a record; `request_object_sha256` from
    /// `ValidatedAuthorizationRequest::request_object_sha256`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        consent_id: &str,
        customer_id: &str,
        client_id: &str,
        initiation: Initiation,
        debtor_account: &str,
        authentication_method: &str,
        authorised_at: UnixTime,
        request_object_sha256: Option<&[u8; 32]>,
    ) -> Self {
        Self {
            consent_id: consent_id.to_owned(),
            customer_id: customer_id.to_owned(),
            client_id: client_id.to_owned(),
            initiation,
            debtor_account: debtor_account.to_owned(),
            authentication_method: authentication_method.to_owned(),
            authorised_at: authorised_at.as_secs(),
            request_object_sha256: request_object_sha256.map(|h| b64url_encode(h)),
        }
    }

    /// Signs the record with the bank's key.
    ///
    /// # Errors
    /// [`SigningError`].
    pub async fn sign<K: AsyncSigningKey + ?Sized>(
        &self,
        key: &K,
        kid: &str,
    ) -> Result<String, SigningError> {
        let claims = match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => return Err(SigningError),
        };
        sign_compact_async(key, Some(kid), Some(RECORD_TYP), &claims).await
    }

    /// Verifies a record with only the bank's public keys. Records do not
    /// expire: there is no time check.
    ///
    /// # Errors
    /// [`RecordError`].
    pub fn verify(
        record: &str,
        bank_keys: &KeySet,
        algorithms: &[Algorithm],
    ) -> Result<Self, RecordError> {
        let policy = JwsPolicy::new(algorithms, ExpectedType::Exact(RECORD_TYP));
        let claims = UnverifiedJws::parse(record)?
            .verify(bank_keys, &policy)?
            .into_parts()
            .1;
        serde_json::from_value(serde_json::Value::Object(claims.into_map()))
            .map_err(|_| RecordError::Malformed)
    }
}
