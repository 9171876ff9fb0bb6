//! Payments.

use fapi_consent::payment::{PaymentStore, StoredPayment};
use fapi_core::store::{BoxFuture, StoreError};
use fapi_core::{ClientId, ConsentId};

use crate::{unavailable, PostgresStore};

const PAYMENT_BY_ID: &str =
    "SELECT id, client_id, consent_id, body FROM fapi_payments WHERE id = $1";
const PAYMENT_BY_CONSENT: &str =
    "SELECT id, client_id, consent_id, body FROM fapi_payments WHERE consent_id = $1";

/// [`PaymentStore`] in `fapi_payments`, unique by consent: of a
/// reconciliation and a submission finishing one payment (on any
/// instance), the first insert wins (`ON CONFLICT DO NOTHING`) and both
/// read back the stored one.
#[derive(Clone, Debug)]
pub struct PostgresPaymentStore {
    db: PostgresStore,
}

impl PostgresPaymentStore {
    pub(crate) fn new(db: PostgresStore) -> Self {
        Self { db }
    }

    /// The payment `query` ([`PAYMENT_BY_ID`] or [`PAYMENT_BY_CONSENT`])
    /// finds for `key`.
    async fn payment_where(
        &self,
        query: &'static str,
        key: &str,
    ) -> Result<Option<StoredPayment>, StoreError> {
        let db = self.db.client().await?;
        let st = db.prepare_cached(query).await.map_err(unavailable)?;
        let row = db.query_opt(&st, &[&key]).await.map_err(unavailable)?;
        row.map(|r| {
            let client: &str = r.try_get(1).map_err(unavailable)?;
            let consent: &str = r.try_get(2).map_err(unavailable)?;
            Ok(StoredPayment {
                id: r.try_get(0).map_err(unavailable)?,
                client_id: ClientId::try_from(client).map_err(unavailable)?,
                consent_id: ConsentId::try_from(consent).map_err(unavailable)?,
                body: r.try_get(3).map_err(unavailable)?,
            })
        })
        .transpose()
    }
}

impl PaymentStore for PostgresPaymentStore {
    fn save_once(
        &self,
        payment: StoredPayment,
    ) -> BoxFuture<'_, Result<StoredPayment, StoreError>> {
        Box::pin(async move {
            {
                let db = self.db.client().await?;
                db.execute(
                    "INSERT INTO fapi_payments (id, client_id, consent_id, body)
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    &[
                        &payment.id,
                        &payment.client_id.as_str(),
                        &payment.consent_id.as_str(),
                        &payment.body,
                    ],
                )
                .await
                .map_err(unavailable)?;
            }
            self.payment_where(PAYMENT_BY_CONSENT, payment.consent_id.as_str())
                .await?
                .ok_or_else(|| unavailable("a saved payment cannot be read back"))
        })
    }

    fn by_id<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredPayment>, StoreError>> {
        Box::pin(self.payment_where(PAYMENT_BY_ID, id))
    }

    fn by_consent<'a>(
        &'a self,
        consent: &'a ConsentId,
    ) -> BoxFuture<'a, Result<Option<StoredPayment>, StoreError>> {
        Box::pin(self.payment_where(PAYMENT_BY_CONSENT, consent.as_str()))
    }
}
