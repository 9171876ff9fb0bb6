//! The audit trail at rest: signed checkpoints of the chain head, written
//! periodically and when the bank stops, and `bank verify-audit`, which
//! checks the whole chain and every checkpoint with the bank's public key.

use std::path::Path;
use std::sync::Arc;

use fapi_consent::audit::{sign_checkpoint, verify_chain, AuditLog};
use fapi_core::crypto::SigningKey;
use fapi_core::jwk::KeySet;
use fapi_core::store::StoreError;
use fapi_core::time::UnixTime;
use fapi_store_sqlite::rusqlite::params;

use super::{config_err, BankConfig, StartError};
use crate::sqlite::{unavailable, SqliteDb};

/// Most entries read at once when verifying.
const PAGE: usize = 10_000;

impl SqliteDb {
    /// Every audit entry, in order.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn all_audit_entries(
        &self,
    ) -> Result<Vec<fapi_consent::audit::AuditEntry>, StoreError> {
        let mut all = Vec::new();
        loop {
            let from = all.len() as u64 + 1;
            let page = self.store().audit_log().entries(from, PAGE).await?;
            let done = page.len() < PAGE;
            all.extend(page);
            if done {
                return Ok(all);
            }
        }
    }

    /// The stored checkpoints, oldest first.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn checkpoints(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare("SELECT jws FROM checkpoints ORDER BY seq")
            .map_err(unavailable)?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(unavailable)?;
        rows.map(|r| r.map_err(unavailable)).collect()
    }

    fn put_checkpoint(&self, seq: u64, jws: &str) -> Result<(), StoreError> {
        let seq = i64::try_from(seq).map_err(unavailable)?;
        self.conn()?
            .execute(
                "INSERT OR REPLACE INTO checkpoints (seq, jws) VALUES (?1, ?2)",
                params![seq, jws],
            )
            .map_err(unavailable)?;
        Ok(())
    }
}

/// Signs the current head of the chain and stores the checkpoint. Nothing
/// to do for an empty trail. Returns the head's sequence number.
///
/// # Errors
/// [`StoreError`] (a signing failure is reported as one).
pub async fn write_checkpoint(
    db: &SqliteDb,
    key: &dyn SigningKey,
    kid: &str,
    now: UnixTime,
) -> Result<Option<u64>, StoreError> {
    let entries = db.all_audit_entries().await?;
    let Some(head) = entries.last() else {
        return Ok(None);
    };
    let jws = sign_checkpoint(key, kid, head, now).map_err(unavailable)?;
    db.put_checkpoint(head.seq, &jws)?;
    Ok(Some(head.seq))
}

/// `bank verify-audit`: verifies the chain in the configured database from
/// its first entry, and every stored checkpoint, with the bank's public
/// key. Returns (entries, checkpoints) verified.
///
/// # Errors
/// A description of the first problem: which entry changed, was removed,
/// inserted or reordered, or which checkpoint does not match.
pub async fn verify_audit(config: &BankConfig) -> Result<(u64, usize), StartError> {
    let profile = config.profile()?;
    // every key the bank ever signed with: old checkpoints keep verifying
    // after a rotation
    let db = SqliteDb::open(&config.data_dir.join("bank.db")).map_err(config_err)?;
    let keys = super::keys::all_public_keys(config, &db)?;
    drop(db);
    verify_database(&config.data_dir.join("bank.db"), &keys, profile).await
}

/// Verifies the audit chain and checkpoints of the database at `path`.
///
/// # Errors
/// As [`verify_audit`].
pub async fn verify_database(
    path: &Path,
    keys: &KeySet,
    profile: fapi_core::Profile,
) -> Result<(u64, usize), StartError> {
    let db = Arc::new(SqliteDb::open(path).map_err(config_err)?);
    let entries = db.all_audit_entries().await.map_err(config_err)?;
    let checkpoints = db.checkpoints().map_err(config_err)?;
    let n = verify_chain(&entries, &checkpoints, keys, profile.algorithms())
        .map_err(|e| StartError::Config(format!("audit trail does not verify: {e}")))?;
    Ok((n, checkpoints.len()))
}
