#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod claims;
pub mod crypto;
pub mod encoding;
pub mod error;
pub mod jose;
mod json;
pub mod jwk;
pub mod time;
