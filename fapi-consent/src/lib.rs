#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod consent;
pub mod permission;

pub use consent::{Consent, ConsentEvent, ConsentStatus, EventKind, TransitionError};
pub use permission::Permission;
