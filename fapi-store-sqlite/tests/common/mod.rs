//! Fixtures shared by the store tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;

use fapi_core::client::{AuthMethod, ClientMetadata};
use fapi_core::crypto::SigningKey;
use fapi_core::jwk::{Jwk, JwkSet};
use fapi_core::store::{BoxFuture, StoreError};
use fapi_core::Profile;
use fapi_core::UnixTime;
use fapi_core::{ClientId, RedirectUri};
use fapi_mtls_binding::registry::TppRegistry;
use fapi_par::CurrentRegistration;
use fapi_store_sqlite::{Dispatch, Options, SqliteDirectory, SqliteStore};

pub fn b<F: std::future::Future>(f: F) -> F::Output {
    futures_executor::block_on(f)
}

pub fn at(o: i64) -> UnixTime {
    UnixTime::from_secs(1_900_000_000 + o).unwrap()
}

/// A database file that is removed (with its WAL files) when dropped.
pub struct TempDb(pub PathBuf);

impl TempDb {
    pub fn new(name: &str) -> Self {
        let unique = format!(
            "fapi-store-{name}-{}-{}.db",
            std::process::id(),
            fapi_core::random::token(8).unwrap()
        );
        Self(std::env::temp_dir().join(unique))
    }

    /// A store with the default options (the store's own threads).
    pub fn open(&self) -> SqliteStore {
        SqliteStore::open(&self.0).unwrap()
    }

    /// A store with `dispatch`.
    pub fn open_with(&self, dispatch: Dispatch) -> SqliteStore {
        SqliteStore::open_with(&self.0, &Options::default().with_dispatch(dispatch)).unwrap()
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
        }
    }
}

pub const PROFILE: Profile = Profile::Fapi2MessageSigning;

/// A registration as these tests serialise it: the redirect URI and the
/// JWKS of a `private_key_jwt` client.
pub fn registration(id: &str, key: &dyn SigningKey) -> String {
    serde_json::json!({
        "redirect_uri": format!("https://{id}.example/cb"),
        "jwks": JwkSet::new(vec![Jwk::from_public_key(key.public_key().clone(), Some("k".into()))]).to_json(),
    })
    .to_string()
}

/// The registrations in a [`SqliteDirectory`], read live.
#[derive(Debug)]
pub struct Registrations(pub SqliteDirectory);

impl CurrentRegistration for Registrations {
    fn current<'a>(
        &'a self,
        client: &'a ClientId,
    ) -> BoxFuture<'a, Result<Option<Arc<ClientMetadata>>, StoreError>> {
        Box::pin(async move {
            let Some(row) = self.0.client(client).await?.filter(|c| !c.revoked) else {
                return Ok(None);
            };
            let v: serde_json::Value =
                serde_json::from_str(&row.registration).map_err(StoreError::unavailable)?;
            let redirect = v["redirect_uri"].as_str().unwrap_or_default();
            let jwks = JwkSet::from_json(v["jwks"].to_string().as_bytes())
                .map_err(|e| StoreError::unavailable(e.to_string()))?;
            let metadata = ClientMetadata::new(
                client.clone(),
                AuthMethod::PrivateKeyJwt,
                vec![RedirectUri::try_from(redirect).map_err(StoreError::unavailable)?],
                jwks,
                &*fapi_core::crypto::default_provider(),
                PROFILE,
            )
            .map_err(|e| StoreError::unavailable(e.to_string()))?;
            Ok(Some(Arc::new(metadata)))
        })
    }
}
