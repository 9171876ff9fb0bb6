//! Fixtures shared by the consent tests.
#![allow(dead_code, unreachable_pub)]

use fapi_consent::consent::{Amount, CreditorAccount, Initiation};

/// The one payment the payment tests agree to.
pub fn initiation() -> Initiation {
    Initiation {
        instruction_identification: "instr-1".into(),
        end_to_end_identification: "e2e-1".into(),
        instructed_amount: Amount {
            amount: "10.50".into(),
            currency: "GBP".into(),
        },
        creditor_account: CreditorAccount {
            scheme_name: "UK.OBIE.SortCodeAccountNumber".into(),
            identification: "08080021325698".into(),
            name: "ACME Ltd".into(),
        },
        remittance_reference: Some("INV-42".into()),
    }
}
