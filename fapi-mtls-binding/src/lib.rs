#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod binding;
pub mod certificate;
pub mod client_auth;
pub mod directory;
pub mod dn;
pub mod forwarded;
#[doc = include_str!("../MANUAL.md")]
pub mod manual {}
pub mod registry;
pub mod resource;
#[cfg(feature = "testing")]
pub mod testing;
#[cfg(feature = "rustls")]
pub mod tls;
pub mod trust;

pub use binding::PresentedCertificate;
pub use certificate::{CertificateError, ClientCertificate, DerFault};
pub use client_auth::RegisteredSubject;
pub use dn::DistinguishedName;
pub use forwarded::{ForwardedError, ForwardedFormat, TrustedForwarder};
