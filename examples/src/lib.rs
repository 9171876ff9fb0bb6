//! The example bank platform's building blocks, composed from the `fapi-*`
//! crates. Nothing here implements a security rule: every check is a crate
//! call; this crate supplies storage, transport and programs.
//!
//! **Status:** the embedded SQLite store ([`sqlite`]) for the replay cache,
//! idempotency and the audit trail. The bank, TPP and demo programs arrive
//! with the rest of the examples issue.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod sqlite;
