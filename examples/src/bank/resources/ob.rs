//! The UK Open Banking request and response shapes the handlers read and
//! write.

#[allow(clippy::wildcard_imports)]
use super::*;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(super) struct ObReadConsent {
    pub(super) data: ObReadConsentData,
    #[serde(default)]
    #[allow(dead_code)]
    pub(super) risk: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(super) struct ObReadConsentData {
    pub(super) permissions: Vec<String>,
    pub(super) expiration_date_time: Option<String>,
    pub(super) transaction_from_date_time: Option<String>,
    pub(super) transaction_to_date_time: Option<String>,
}

/// OB `Initiation` for domestic payments (wire shape).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ObInitiation {
    /// `InstructionIdentification`.
    pub instruction_identification: String,
    /// `EndToEndIdentification`.
    pub end_to_end_identification: String,
    /// `InstructedAmount`.
    pub instructed_amount: ObAmount,
    /// `CreditorAccount`.
    pub creditor_account: ObAccount,
    /// `RemittanceInformation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remittance_information: Option<ObRemittance>,
}

/// OB `InstructedAmount`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ObAmount {
    /// `Amount`.
    pub amount: String,
    /// `Currency`.
    pub currency: String,
}

/// OB `CreditorAccount`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ObAccount {
    /// `SchemeName`.
    pub scheme_name: String,
    /// `Identification`.
    pub identification: String,
    /// `Name`.
    pub name: String,
}

/// OB `RemittanceInformation`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ObRemittance {
    /// `Reference`.
    pub reference: Option<String>,
}

impl From<ObInitiation> for Initiation {
    fn from(i: ObInitiation) -> Self {
        Self {
            instruction_identification: i.instruction_identification,
            end_to_end_identification: i.end_to_end_identification,
            instructed_amount: Amount {
                amount: i.instructed_amount.amount,
                currency: i.instructed_amount.currency,
            },
            creditor_account: CreditorAccount {
                scheme_name: i.creditor_account.scheme_name,
                identification: i.creditor_account.identification,
                name: i.creditor_account.name,
            },
            remittance_reference: i.remittance_information.and_then(|r| r.reference),
        }
    }
}

impl From<&Initiation> for ObInitiation {
    fn from(i: &Initiation) -> Self {
        Self {
            instruction_identification: i.instruction_identification.clone(),
            end_to_end_identification: i.end_to_end_identification.clone(),
            instructed_amount: ObAmount {
                amount: i.instructed_amount.amount.clone(),
                currency: i.instructed_amount.currency.clone(),
            },
            creditor_account: ObAccount {
                scheme_name: i.creditor_account.scheme_name.clone(),
                identification: i.creditor_account.identification.clone(),
                name: i.creditor_account.name.clone(),
            },
            remittance_information: i
                .remittance_reference
                .clone()
                .map(|r| ObRemittance { reference: Some(r) }),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(super) struct ObPaymentConsentRequest {
    pub(super) data: ObPaymentConsentData,
    #[serde(default)]
    #[allow(dead_code)]
    pub(super) risk: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(super) struct ObPaymentConsentData {
    pub(super) initiation: ObInitiation,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(super) struct ObPaymentRequest {
    pub(super) data: ObPaymentData,
    #[serde(default)]
    #[allow(dead_code)]
    pub(super) risk: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(super) struct ObPaymentData {
    pub(super) consent_id: String,
    pub(super) initiation: ObInitiation,
}

pub(super) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ObError> {
    // strict JSON first (duplicate members, depth), then the typed shape
    fapi_core::json::parse_object(body).map_err(|e| {
        ObError::bad_request(
            "UK.OBIE.Resource.InvalidFormat",
            format!("body is not valid JSON: {e}"),
        )
    })?;
    serde_json::from_slice(body).map_err(|e| {
        ObError::bad_request(
            "UK.OBIE.Field.Invalid",
            format!(
                "body does not have the expected shape: {}",
                e.to_string().chars().take(160).collect::<String>()
            ),
        )
    })
}
