//! The example bank platform's building blocks, composed from the `fapi-*`
//! crates. Nothing here implements a security rule: every check is a crate
//! call; this crate supplies storage, transport and programs.
//!
//! **Status:** the embedded SQLite store ([`sqlite`]) for the replay cache,
//! consents, idempotency and the audit trail; the development PKI and the
//! key source ([`pki`]). The bank, TPP and demo programs, and the pushed
//! request and authorization-code stores, arrive with the rest of the
//! examples issue.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod pki;
pub mod sqlite;
