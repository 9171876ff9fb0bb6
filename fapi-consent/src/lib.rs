#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod audit;
pub mod consent;
pub mod gate;
pub mod idempotency;
#[doc = include_str!("../MANUAL.md")]
pub mod manual {}
pub mod payment;
pub mod permission;
pub mod record;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use consent::{Consent, ConsentEvent, ConsentStatus, EventKind, TransitionError};
pub use gate::{Authorized, ConsentGate, GateError, ResourceAccess};
pub use permission::{Permission, Permissions};
pub use store::{ConsentStore, InMemoryConsentStore};
