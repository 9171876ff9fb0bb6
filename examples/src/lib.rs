//! The example bank platform's building blocks, composed from the `fapi-*`
//! crates. Nothing here implements a security rule: every check is a crate
//! call; this crate supplies storage, transport and programs.
//!
//! **Status:** the embedded SQLite store ([`sqlite`]) for the replay cache,
//! consents, idempotency, the audit trail and authorization codes
//! ([`codes`]); the development PKI and the key source ([`pki`]); the
//! core-banking trait, a mock ledger and a circuit breaker
//! ([`core_banking`]); the in-process `demo`. The networked bank and TPP programs, and pushed
//! requests in SQLite, arrive with the rest of the examples issue.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bank;
pub mod codes;
pub mod core_banking;
pub mod pki;
pub mod platform;
pub mod registry;
pub mod sqlite;
pub mod tpp;
