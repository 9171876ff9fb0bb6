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
    let Some(head) = log.head().await? else {
        return Ok(None);
    };
    let jws = sign_checkpoint(key, kid, &head, now)
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use fapi_consent::audit::{AuditAction, AuditEntry, AuditEvent, InMemoryAuditLog};
    use fapi_core::store::BoxFuture;

    use super::*;

    /// An in-memory log that counts the entries it hands out.
    #[derive(Debug, Default)]
    struct Counting {
        inner: InMemoryAuditLog,
        read: AtomicUsize,
    }

    impl AuditLog for Counting {
        fn append(&self, event: AuditEvent) -> BoxFuture<'_, Result<AuditEntry, StoreError>> {
            self.inner.append(event)
        }
        fn head(&self) -> BoxFuture<'_, Result<Option<AuditEntry>, StoreError>> {
            self.inner.head()
        }
        fn entries(
            &self,
            from_seq: u64,
            limit: usize,
        ) -> BoxFuture<'_, Result<Vec<AuditEntry>, StoreError>> {
            Box::pin(async move {
                let page = self.inner.entries(from_seq, limit).await?;
                self.read.fetch_add(page.len(), Ordering::Relaxed);
                Ok(page)
            })
        }
    }

    #[derive(Debug, Default)]
    struct Checkpoints(Mutex<Vec<(u64, String)>>);

    impl CheckpointStore for Checkpoints {
        fn put<'a>(&'a self, seq: u64, jws: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
            if let Ok(mut all) = self.0.lock() {
                all.push((seq, jws.to_owned()));
            }
            Box::pin(async { Ok(()) })
        }
        fn all(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
            let all = self
                .0
                .lock()
                .map(|all| all.iter().map(|(_, jws)| jws.clone()).collect())
                .map_err(|_| StoreError::unavailable("poisoned"));
            Box::pin(async move { all })
        }
    }

    /// The running bank signs a checkpoint every minute: its cost must not
    /// grow with the trail (a bank's trail holds millions of entries).
    #[test]
    #[allow(clippy::unwrap_used)]
    fn a_checkpoint_reads_the_head_not_the_whole_trail() {
        futures_executor::block_on(async {
            let log = Counting::default();
            let t0 = UnixTime::from_secs(1_900_000_000).unwrap();
            for _ in 0..25_000 {
                log.append(AuditEvent::new(AuditAction::ResourceAccessed, t0))
                    .await
                    .unwrap();
            }
            let key = fapi_core::crypto::default_provider()
                .generate_signing_key(fapi_core::crypto::Algorithm::Es256)
                .unwrap();
            let checkpoints = Checkpoints::default();
            let head = write_checkpoint(&log, &checkpoints, &*key, "k1", t0)
                .await
                .unwrap();
            assert_eq!(head, Some(25_000));
            assert!(
                log.read.load(Ordering::Relaxed) <= 1,
                "entries read for one checkpoint: {}",
                log.read.load(Ordering::Relaxed)
            );
            // the twin: the checkpoint is of the head and verifies with the chain
            assert_eq!(checkpoints.0.lock().unwrap()[0].0, 25_000);
            let entries = all_entries(&log).await.unwrap();
            let keys = KeySet::from_jwks(
                &fapi_core::jwk::JwkSet::new(vec![fapi_core::jwk::Jwk::from_public_key(
                    key.public_key().clone(),
                    Some("k1".into()),
                )]),
                &*fapi_core::crypto::default_provider(),
                &fapi_core::Profile::Fapi2Security.key_policy(),
            )
            .unwrap();
            let jws = checkpoints.all().await.unwrap();
            verify_chain(
                &entries,
                &jws,
                &keys,
                fapi_core::Profile::Fapi2Security.algorithms(),
            )
            .unwrap();
        });
    }
}
