//! The audit trail at rest: signed checkpoints of the chain head, written
//! periodically and when the bank stops, and `bank verify-audit`, which
//! checks the whole chain and every checkpoint with the bank's public key.

use fapi_consent::audit::{sign_checkpoint, verify_chain, AuditLog};
use fapi_core::crypto::SigningKey;
use fapi_core::jwk::KeySet;
use fapi_core::store::StoreError;
use fapi_core::UnixTime;

use super::tables::CheckpointStore;
use super::{config_err, BankConfig, StartError};

/// Most entries read at once when verifying.
const PAGE: usize = 10_000;

/// Every audit entry in `log`, in order.
///
/// # Errors
/// [`StoreError`].
pub async fn all_entries(
    log: &dyn AuditLog,
) -> Result<Vec<fapi_consent::audit::AuditEntry>, StoreError> {
    let mut all = Vec::new();
    loop {
        let from = all.len() as u64 + 1;
        let page = log.entries(from, PAGE).await?;
        let done = page.len() < PAGE;
        all.extend(page);
        if done {
            return Ok(all);
        }
    }
}

/// Signs the current head of the chain and stores the checkpoint. Nothing
/// to do for an empty trail. Returns the head's sequence number.
///
/// # Errors
/// [`StoreError`] (a signing failure is reported as one).
pub async fn write_checkpoint(
    log: &dyn AuditLog,
    checkpoints: &dyn CheckpointStore,
    key: &dyn SigningKey,
    kid: &str,
    now: UnixTime,
) -> Result<Option<u64>, StoreError> {
    let entries = all_entries(log).await?;
    let Some(head) = entries.last() else {
        return Ok(None);
    };
    let jws = sign_checkpoint(key, kid, head, now)
        .await
        .map_err(StoreError::unavailable)?;
    checkpoints.put(head.seq, &jws).await?;
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
    let stores = crate::stores::open_for_command(config)?;
    let keys = super::keys::all_public_keys(config, &*stores.signing_keys).await?;
    verify_stores(&stores, &keys, profile).await
}

/// Verifies the audit chain and checkpoints held by `stores`.
///
/// # Errors
/// As [`verify_audit`].
pub async fn verify_stores(
    stores: &crate::stores::Stores,
    keys: &KeySet,
    profile: fapi_core::Profile,
) -> Result<(u64, usize), StartError> {
    let entries = all_entries(&*stores.audit).await.map_err(config_err)?;
    let checkpoints = stores.checkpoints.all().await.map_err(config_err)?;
    let n = verify_chain(&entries, &checkpoints, keys, profile.algorithms())
        .map_err(|e| StartError::Config(format!("audit trail does not verify: {e}")))?;
    Ok((n, checkpoints.len()))
}
