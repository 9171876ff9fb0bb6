//! The `request_uri` a pushed request is referenced by ([RFC 9126 §2.2]).
//!
//! [RFC 9126 §2.2]: https://www.rfc-editor.org/rfc/rfc9126#section-2.2

use core::fmt;

use fapi_core::random::{self, RandomError};

/// The URN prefix of every `request_uri` minted here.
pub const PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// A reference to a pushed request: the URN prefix and 256 bits from the OS
/// CSPRNG. It is a bearer reference for the browser leg, so it is bound to
/// the client that pushed it and single use.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RequestUri(String);

impl RequestUri {
    /// Mints a fresh reference.
    ///
    /// # Errors
    /// [`RandomError`] if the OS CSPRNG fails.
    pub fn generate() -> Result<Self, RandomError> {
        Ok(Self(format!("{PREFIX}{}", random::token(32)?)))
    }

    /// Reads a `request_uri` parameter: only the form minted here.
    pub fn parse(s: &str) -> Option<Self> {
        let id = s.strip_prefix(PREFIX)?;
        (id.len() == 43
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        .then(|| Self(s.to_owned()))
    }

    /// The URN.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RequestUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // enough to correlate in logs, not enough to use
        let tail = self
            .0
            .get(self.0.len().saturating_sub(6)..)
            .unwrap_or_default();
        write!(f, "RequestUri(…{tail})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_uris_parse_and_differ() {
        let a = RequestUri::generate().unwrap();
        assert!(a.as_str().starts_with(PREFIX));
        assert_eq!(RequestUri::parse(a.as_str()), Some(a.clone()));
        assert_ne!(a, RequestUri::generate().unwrap());
        assert!(!format!("{a:?}").contains(&a.as_str()[PREFIX.len()..]));
    }

    #[test]
    fn foreign_forms_rejected() {
        for s in [
            "",
            PREFIX,
            "urn:ietf:params:oauth:request_uri:short",
            "https://x.example/r",
            &format!("{PREFIX}{}", "a".repeat(42) + "+"),
        ] {
            assert!(RequestUri::parse(s).is_none(), "{s}");
        }
    }
}
