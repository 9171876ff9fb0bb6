//! The example bank platform's building blocks, composed from the `fapi-*`
//! crates. Nothing here implements a security rule: every check is a crate
//! call; this crate supplies storage, transport and programs.
//!
//! - [`bank`]: the networked bank (axum + tokio + rustls): the TPP API over
//!   mutual TLS, the customer pages, the admin listener;
//! - [`tpp`]: a TPP client, and the scripted customer;
//! - [`platform`]: the whole platform on loopback (demo, tests, load);
//! - [`stores`]: start-up opens the configured store and hands the bank
//!   one `Arc<dyn Trait>` per kind of state; [`sqlite`]: the SQLite
//!   backend (the crate family's state through `fapi-store-sqlite`, the
//!   bank's own tables of [`bank::tables`]); [`ledger`]: the mock core's
//!   ledger in it; [`registry`]: onboarding TPPs into a
//!   `TppRegistry`;
//! - [`pki`]: the development PKI and the key source;
//! - [`core_banking`]: the core-banking trait, a mock ledger, fault
//!   injection and a circuit breaker;
//! - [`cli`]: flag parsing for the programs.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bank;
pub mod cli;
pub mod core_banking;
pub mod ledger;
pub mod pki;
pub mod platform;
pub mod postgres;
pub mod registry;
pub mod sqlite;
pub mod stores;
pub mod tpp;
