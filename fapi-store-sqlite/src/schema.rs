//! The tables of the crate family's state, created (idempotently) when a
//! store is opened, and the migrations from earlier layouts.

use rusqlite::Connection;

use crate::pool::unavailable;
use fapi_core::store::StoreError;

/// Every table the adapters use. An application keeps its own tables in
/// the same file ([`crate::SqliteStore::open_with`]); these names are
/// taken.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jti (
    scope TEXT NOT NULL, jti TEXT NOT NULL, expires_at INTEGER NOT NULL,
    PRIMARY KEY (scope, jti)
) STRICT;
CREATE TABLE IF NOT EXISTS idempotency (
    client_id TEXT NOT NULL, key TEXT NOT NULL, body_hash BLOB NOT NULL, expires_at INTEGER NOT NULL,
    status INTEGER, body BLOB,
    PRIMARY KEY (client_id, key)
) STRICT;
CREATE TABLE IF NOT EXISTS consents (
    id TEXT PRIMARY KEY, customer_id TEXT, created_at INTEGER NOT NULL, version INTEGER NOT NULL, body TEXT NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS consents_by_customer_newest ON consents (customer_id, created_at, id);
CREATE TABLE IF NOT EXISTS codes (
    hash BLOB PRIMARY KEY, body TEXT NOT NULL, expires_at INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE TABLE IF NOT EXISTS clients (
    client_id TEXT PRIMARY KEY, registration TEXT NOT NULL, certificate BLOB NOT NULL UNIQUE,
    revoked INTEGER NOT NULL, onboarded_at INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS client_certificates (
    thumbprint BLOB PRIMARY KEY, client_id TEXT NOT NULL, added_at INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS client_certificates_by_client ON client_certificates (client_id);
CREATE TABLE IF NOT EXISTS revoked_certificates (
    thumbprint BLOB PRIMARY KEY, revoked_at INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS refresh_tokens (
    hash BLOB PRIMARY KEY, id TEXT NOT NULL UNIQUE, body TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS revoked_tokens (
    jti TEXT PRIMARY KEY, revoked_at INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS payments (
    id TEXT PRIMARY KEY, client_id TEXT NOT NULL, consent_id TEXT NOT NULL UNIQUE, body TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS pushed_requests (
    uri_hash BLOB PRIMARY KEY, client_id TEXT NOT NULL, expires_at INTEGER NOT NULL,
    used INTEGER NOT NULL, source TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY, prev_hash TEXT NOT NULL, hash TEXT NOT NULL, event TEXT NOT NULL
) STRICT;
";

/// Indexes the background sweeps delete by (never read on a request path,
/// which looks rows up by their keys) and the pending-payment index;
/// created after the migrations, so an older database gains them too.
const LATE_INDEXES: &str = "
CREATE INDEX IF NOT EXISTS jti_by_expiry ON jti (expires_at);
CREATE INDEX IF NOT EXISTS idempotency_by_expiry ON idempotency (expires_at);
CREATE INDEX IF NOT EXISTS pushed_requests_by_expiry ON pushed_requests (expires_at);
CREATE INDEX IF NOT EXISTS codes_by_expiry ON codes (expires_at);
CREATE INDEX IF NOT EXISTS revoked_tokens_by_age ON revoked_tokens (revoked_at);
CREATE INDEX IF NOT EXISTS consents_payment_pending ON consents (id)
    WHERE json_extract(body, '$.status') = 'PaymentPending';
";

/// Creates what is missing and brings a database written by an earlier
/// version up to the schema: `client_certificates` (each client's
/// registered certificate), `codes.expires_at` (filled from each stored
/// code's own expiry), the consents' paging index.
pub(crate) fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let had_certificates: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'client_certificates')",
            [],
            |r| r.get(0),
        )
        .map_err(unavailable)?;
    conn.execute_batch(SCHEMA).map_err(unavailable)?;
    if !had_certificates {
        // before client_certificates, a client owned only the certificate
        // it was registered with (idempotent: another process opening the
        // file at the same time copies the same rows)
        conn.execute_batch(
            "INSERT OR IGNORE INTO client_certificates (thumbprint, client_id, added_at)
             SELECT certificate, client_id, onboarded_at FROM clients;",
        )
        .map_err(unavailable)?;
    }
    // the dashboard pages by (customer, created_at, id): the older index
    // without id is superseded
    conn.execute_batch("DROP INDEX IF EXISTS consents_by_customer;")
        .map_err(unavailable)?;
    let has_expiry: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM pragma_table_info('codes') WHERE name = 'expires_at')",
            [],
            |r| r.get(0),
        )
        .map_err(unavailable)?;
    if !has_expiry {
        conn.execute_batch(
            "BEGIN IMMEDIATE;
             ALTER TABLE codes ADD COLUMN expires_at INTEGER NOT NULL DEFAULT 0;
             UPDATE codes SET expires_at = COALESCE(json_extract(body, '$.grant.expires_at'), 0);
             COMMIT;",
        )
        .map_err(unavailable)?;
    }
    conn.execute_batch(LATE_INDEXES).map_err(unavailable)
}
