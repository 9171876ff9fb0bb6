//! Payments.

use fapi_consent::payment::{PaymentStore, StoredPayment};
use fapi_core::store::{BoxFuture, StoreError};
use fapi_core::{ClientId, ConsentId};
use rusqlite::{params, Connection, OptionalExtension};

use crate::pool::{unavailable, Role};
use crate::SqliteStore;

const PAYMENT_BY_ID: &str = "SELECT id, client_id, consent_id, body FROM payments WHERE id = ?1";
const PAYMENT_BY_CONSENT: &str =
    "SELECT id, client_id, consent_id, body FROM payments WHERE consent_id = ?1";

/// [`PaymentStore`] in the `payments` table, unique by consent: of a
/// reconciliation and a submission finishing one payment, the first
/// writer wins and both read back the stored one.
#[derive(Clone, Debug)]
pub struct SqlitePaymentStore {
    db: SqliteStore,
}

impl SqlitePaymentStore {
    pub(crate) fn new(db: SqliteStore) -> Self {
        Self { db }
    }
}

/// The payment `query` ([`PAYMENT_BY_ID`] or [`PAYMENT_BY_CONSENT`])
/// finds for `key`.
fn payment_where(
    conn: &Connection,
    query: &'static str,
    key: &str,
) -> Result<Option<StoredPayment>, StoreError> {
    let row: Option<(String, String, String, String)> = conn
        .prepare_cached(query)
        .map_err(unavailable)?
        .query_row(params![key], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()
        .map_err(unavailable)?;
    row.map(|(id, client, consent, body)| {
        Ok(StoredPayment {
            id,
            client_id: ClientId::try_from(client.as_str()).map_err(unavailable)?,
            consent_id: ConsentId::try_from(consent.as_str()).map_err(unavailable)?,
            body,
        })
    })
    .transpose()
}

impl PaymentStore for SqlitePaymentStore {
    fn save_once(
        &self,
        payment: StoredPayment,
    ) -> BoxFuture<'_, Result<StoredPayment, StoreError>> {
        self.db.run(Role::Write, move |conn| {
            conn.prepare_cached(
                "INSERT OR IGNORE INTO payments (id, client_id, consent_id, body) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    payment.id,
                    payment.client_id.as_str(),
                    payment.consent_id.as_str(),
                    payment.body
                ])
            })
            .map_err(unavailable)?;
            payment_where(conn, PAYMENT_BY_CONSENT, payment.consent_id.as_str())?
                .ok_or_else(|| unavailable("a saved payment cannot be read back"))
        })
    }

    fn by_id<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredPayment>, StoreError>> {
        let id = id.to_owned();
        self.db.run(Role::Read, move |conn| {
            payment_where(conn, PAYMENT_BY_ID, &id)
        })
    }

    fn by_consent<'a>(
        &'a self,
        consent: &'a ConsentId,
    ) -> BoxFuture<'a, Result<Option<StoredPayment>, StoreError>> {
        let consent = consent.as_str().to_owned();
        self.db.run(Role::Read, move |conn| {
            payment_where(conn, PAYMENT_BY_CONSENT, &consent)
        })
    }
}
