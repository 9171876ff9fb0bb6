//! The tables, as numbered migrations applied by `PostgresStore::migrate`.

use fapi_core::store::StoreError;

use crate::unavailable;

/// Every migration, in order: `(version, SQL)`. Tables are prefixed
/// `fapi_`, so an application keeps its own tables in the same database.
/// A migration is never edited once released; a change is a new one.
pub const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
    "
CREATE TABLE fapi_jti (
    scope TEXT NOT NULL, jti TEXT NOT NULL, expires_at BIGINT NOT NULL,
    PRIMARY KEY (scope, jti)
);
CREATE INDEX fapi_jti_by_expiry ON fapi_jti (expires_at);
CREATE TABLE fapi_codes (
    hash BYTEA PRIMARY KEY, body JSONB NOT NULL, expires_at BIGINT NOT NULL
);
CREATE INDEX fapi_codes_by_expiry ON fapi_codes (expires_at);
CREATE TABLE fapi_refresh_tokens (
    hash BYTEA PRIMARY KEY, id TEXT NOT NULL UNIQUE, body JSONB NOT NULL
);
CREATE TABLE fapi_revoked_tokens (
    jti TEXT PRIMARY KEY, revoked_at BIGINT NOT NULL
);
CREATE INDEX fapi_revoked_tokens_by_age ON fapi_revoked_tokens (revoked_at);
CREATE TABLE fapi_consents (
    id TEXT PRIMARY KEY, customer_id TEXT, created_at BIGINT NOT NULL, version BIGINT NOT NULL,
    status TEXT NOT NULL, body TEXT NOT NULL
);
CREATE INDEX fapi_consents_by_customer_newest ON fapi_consents (customer_id, created_at, id);
CREATE INDEX fapi_consents_payment_pending ON fapi_consents (id) WHERE status = 'PaymentPending';
CREATE TABLE fapi_audit (
    seq BIGINT PRIMARY KEY, prev_hash TEXT NOT NULL, hash TEXT NOT NULL, event TEXT NOT NULL
);
CREATE TABLE fapi_audit_head (
    one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one), seq BIGINT NOT NULL
);
INSERT INTO fapi_audit_head (seq) VALUES (0);
CREATE TABLE fapi_idempotency (
    client_id TEXT NOT NULL, key TEXT NOT NULL, body_hash BYTEA NOT NULL, expires_at BIGINT NOT NULL,
    status INTEGER, body BYTEA,
    PRIMARY KEY (client_id, key)
);
CREATE INDEX fapi_idempotency_by_expiry ON fapi_idempotency (expires_at);
CREATE TABLE fapi_payments (
    id TEXT PRIMARY KEY, client_id TEXT NOT NULL, consent_id TEXT NOT NULL UNIQUE, body TEXT NOT NULL
);
CREATE TABLE fapi_pushed_requests (
    uri_hash BYTEA PRIMARY KEY, client_id TEXT NOT NULL, expires_at BIGINT NOT NULL,
    used BOOLEAN NOT NULL, source TEXT NOT NULL
);
CREATE INDEX fapi_pushed_requests_by_expiry ON fapi_pushed_requests (expires_at);
CREATE TABLE fapi_clients (
    client_id TEXT PRIMARY KEY, registration TEXT NOT NULL, certificate BYTEA NOT NULL UNIQUE,
    revoked BOOLEAN NOT NULL, onboarded_at BIGINT NOT NULL
);
CREATE TABLE fapi_revoked_certificates (
    thumbprint BYTEA PRIMARY KEY, revoked_at BIGINT NOT NULL
);
",
    ),
    (
        2,
        // the head row is a lock only (`SELECT … FOR UPDATE`): appends no
        // longer rewrite it, so its table stays one page; the table is
        // emptied and refilled to give back what rewrites had grown it to
        "
ALTER TABLE fapi_audit_head DROP COLUMN seq;
TRUNCATE fapi_audit_head;
INSERT INTO fapi_audit_head DEFAULT VALUES;
",
    ),
    (
        3,
        // a client holds the certificate it was registered with and those
        // added since (a transport certificate rotated under a
        // registration that trusts certificates by subject); until now it
        // held only the first
        "
CREATE TABLE fapi_client_certificates (
    thumbprint BYTEA PRIMARY KEY, client_id TEXT NOT NULL, added_at BIGINT NOT NULL
);
CREATE INDEX fapi_client_certificates_by_client ON fapi_client_certificates (client_id);
INSERT INTO fapi_client_certificates (thumbprint, client_id, added_at)
    SELECT certificate, client_id, onboarded_at FROM fapi_clients;
",
    ),
];

/// Whether `CREATE TABLE IF NOT EXISTS` failed only because another
/// session created the table at the same moment (the check is not atomic
/// with the creation): the catalog's unique index, the table's name, or
/// its row type's name (`type … already exists`) taken by the winner.
/// The table exists then.
fn lost_creation_race(code: &tokio_postgres::error::SqlState) -> bool {
    use tokio_postgres::error::SqlState;
    [
        SqlState::UNIQUE_VIOLATION,
        SqlState::DUPLICATE_TABLE,
        SqlState::DUPLICATE_OBJECT,
    ]
    .contains(code)
}

/// Applies what is missing of `component`'s `migrations`. The version
/// table is created if absent and locked for the whole run (`LOCK TABLE …
/// EXCLUSIVE`), so instances starting together apply each migration once,
/// in order.
pub(crate) async fn migrate(
    client: &mut deadpool_postgres::Object,
    component: &str,
    migrations: &[(i32, &str)],
) -> Result<(), StoreError> {
    let created = client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS fapi_schema_migrations (
                component TEXT NOT NULL,
                version INTEGER NOT NULL,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                PRIMARY KEY (component, version)
            )",
        )
        .await;
    if let Err(e) = created {
        if !e.code().is_some_and(lost_creation_race) {
            return Err(unavailable(e));
        }
    }
    let tx = client.transaction().await.map_err(unavailable)?;
    tx.batch_execute("LOCK TABLE fapi_schema_migrations IN EXCLUSIVE MODE")
        .await
        .map_err(unavailable)?;
    let applied: Vec<i32> = tx
        .query(
            "SELECT version FROM fapi_schema_migrations WHERE component = $1",
            &[&component],
        )
        .await
        .map_err(unavailable)?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()
        .map_err(unavailable)?;
    for (version, sql) in migrations {
        if applied.contains(version) {
            continue;
        }
        tx.batch_execute(sql).await.map_err(unavailable)?;
        tx.execute(
            "INSERT INTO fapi_schema_migrations (component, version) VALUES ($1, $2)",
            &[&component, version],
        )
        .await
        .map_err(unavailable)?;
    }
    tx.commit().await.map_err(unavailable)
}

#[cfg(test)]
mod tests {
    use tokio_postgres::error::SqlState;

    #[test]
    fn only_a_lost_creation_race_is_forgiven() {
        for raced in [
            SqlState::UNIQUE_VIOLATION,
            SqlState::DUPLICATE_TABLE,
            SqlState::DUPLICATE_OBJECT,
        ] {
            assert!(super::lost_creation_race(&raced), "{raced:?}");
        }
        for other in [
            SqlState::INSUFFICIENT_PRIVILEGE,
            SqlState::SYNTAX_ERROR,
            SqlState::READ_ONLY_SQL_TRANSACTION,
        ] {
            assert!(!super::lost_creation_race(&other), "{other:?}");
        }
    }
}
