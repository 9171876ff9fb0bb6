//! Fixtures shared by the examples' tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::path::PathBuf;

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
