//! Fixtures shared by the examples' tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::path::PathBuf;

use fapi_core::crypto::SigningKey;
use fapi_core::jwk::{Jwk, JwkSet};
use fapi_examples::registry::Registration;
use fapi_examples::sqlite::SqliteDb;

/// A database file that is removed (with its WAL files) when dropped.
pub struct TempDb(pub PathBuf);

impl TempDb {
    pub fn new(name: &str) -> Self {
        let unique = format!(
            "fapi-{name}-{}-{}.db",
            std::process::id(),
            fapi_core::random::token(8).unwrap()
        );
        Self(std::env::temp_dir().join(unique))
    }
    pub fn open(&self) -> SqliteDb {
        SqliteDb::open(&self.0).unwrap()
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
        }
    }
}

/// A data directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let unique = format!(
            "fapi-{name}-{}-{}",
            std::process::id(),
            fapi_core::random::token(8).unwrap()
        );
        Self(std::env::temp_dir().join(unique))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `private_key_jwt` AISP registration for `id` with `key` (kid `k`).
pub fn registration(id: &str, key: &dyn SigningKey) -> Registration {
    Registration {
        client_id: id.into(),
        client_name: format!("{id} Ltd"),
        redirect_uris: vec![format!("https://{id}.example/cb")],
        jwks: JwkSet::new(vec![Jwk::from_public_key(
            key.public_key().clone(),
            Some("k".into()),
        )])
        .to_json(),
        token_endpoint_auth_method: "private_key_jwt".into(),
        software_roles: vec!["AISP".into()],
        software_id: None,
        org_id: None,
    }
}
