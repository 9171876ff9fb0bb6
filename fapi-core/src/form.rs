//! Strict `application/x-www-form-urlencoded` bodies, as OAuth endpoints
//! read them ([RFC 6749 §3.1, §3.2]): every parameter at most once, the
//! body and the parameter count bounded, names printable ASCII. One
//! parser for every endpoint (PAR, token, the customer pages), so the
//! rules cannot drift apart.
//!
//! ```
//! use fapi_core::form::{FormError, FormLimits, StrictForm};
//! let limits = FormLimits::new(1024, 8);
//! let form = StrictForm::parse(b"grant_type=authorization_code&code=abc", limits).unwrap();
//! assert_eq!(form.get("code"), Some("abc"));
//! assert_eq!(
//!     StrictForm::parse(b"code=a&code=b", limits).unwrap_err(),
//!     FormError::RepeatedParameter("code".into())
//! );
//! ```
//!
//! [RFC 6749 §3.1, §3.2]: https://www.rfc-editor.org/rfc/rfc6749#section-3.1

/// How large a body, and how many parameters, an endpoint accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FormLimits {
    max_len: usize,
    max_parameters: usize,
}

impl FormLimits {
    /// At most `max_len` bytes and `max_parameters` parameters.
    pub const fn new(max_len: usize, max_parameters: usize) -> Self {
        Self {
            max_len,
            max_parameters,
        }
    }

    /// The largest body accepted, in bytes.
    pub const fn max_len(&self) -> usize {
        self.max_len
    }

    /// The most parameters accepted.
    pub const fn max_parameters(&self) -> usize {
        self.max_parameters
    }
}

/// Why a form body was rejected (`invalid_request`). The description
/// names at most a parameter's (printable, bounded) name, never a value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormError {
    /// Larger than the limit.
    #[error("the request body is larger than {max} bytes")]
    TooLarge {
        /// The limit.
        max: usize,
    },
    /// More parameters than the limit.
    #[error("the request has more than {max} parameters")]
    TooManyParameters {
        /// The limit.
        max: usize,
    },
    /// A parameter appears twice (RFC 6749 §3.1).
    #[error("the request repeats the parameter `{0}`")]
    RepeatedParameter(String),
    /// A parameter name is empty or not printable ASCII.
    #[error("the request has an invalid parameter name")]
    InvalidParameterName,
}

/// Longest parameter name echoed in [`FormError::RepeatedParameter`].
const MAX_ECHOED_NAME: usize = 64;

/// A form body whose parameters each appear once, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StrictForm {
    params: Vec<(String, String)>,
}

impl StrictForm {
    /// Parses `body` under `limits`.
    ///
    /// # Errors
    /// [`FormError`].
    pub fn parse(body: &[u8], limits: FormLimits) -> Result<Self, FormError> {
        if body.len() > limits.max_len {
            return Err(FormError::TooLarge {
                max: limits.max_len,
            });
        }
        let mut params: Vec<(String, String)> = Vec::new();
        for (k, v) in url::form_urlencoded::parse(body) {
            if params.len() >= limits.max_parameters {
                return Err(FormError::TooManyParameters {
                    max: limits.max_parameters,
                });
            }
            if k.is_empty() || !k.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
                return Err(FormError::InvalidParameterName);
            }
            if params.iter().any(|(p, _)| *p == k) {
                // printable ASCII, bounded: safe to echo
                return Err(FormError::RepeatedParameter(
                    k.chars().take(MAX_ECHOED_NAME).collect(),
                ));
            }
            params.push((k.into_owned(), v.into_owned()));
        }
        Ok(Self { params })
    }

    /// A parameter's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The parameter names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.params.iter().map(|(k, _)| k.as_str())
    }

    /// The parameters, in order.
    pub fn params(&self) -> &[(String, String)] {
        &self.params
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: FormLimits = FormLimits::new(64, 3);

    #[test]
    fn decodes_each_parameter_once() {
        let f = StrictForm::parse(b"a=1&b=x%20y&c=z+w", LIMITS).unwrap();
        assert_eq!(f.get("b"), Some("x y"));
        assert_eq!(f.get("c"), Some("z w"));
        assert_eq!(f.names().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(f.get("d"), None);
    }

    #[test]
    fn a_repeated_parameter_is_refused() {
        assert_eq!(
            StrictForm::parse(b"a=1&a=1", LIMITS).unwrap_err(),
            FormError::RepeatedParameter("a".into())
        );
        // also when the repetition is hidden by percent-encoding
        assert_eq!(
            StrictForm::parse(b"a=1&%61=2", LIMITS).unwrap_err(),
            FormError::RepeatedParameter("a".into())
        );
    }

    #[test]
    fn size_and_count_are_bounded_at_the_limit() {
        assert!(StrictForm::parse(&[b'a'; 64], LIMITS).is_ok());
        assert_eq!(
            StrictForm::parse(&[b'a'; 65], LIMITS).unwrap_err(),
            FormError::TooLarge { max: 64 }
        );
        assert!(StrictForm::parse(b"a=1&b=2&c=3", LIMITS).is_ok());
        assert_eq!(
            StrictForm::parse(b"a=1&b=2&c=3&d=4", LIMITS).unwrap_err(),
            FormError::TooManyParameters { max: 3 }
        );
    }

    #[test]
    fn names_are_printable_ascii() {
        for bad in [&b"=v"[..], b"a%20b=v", b"%00=v", b"%C3%A9=v"] {
            assert_eq!(
                StrictForm::parse(bad, LIMITS).unwrap_err(),
                FormError::InvalidParameterName,
                "{bad:?}"
            );
        }
        assert!(StrictForm::parse(b"a_b-c.d~=v", LIMITS).is_ok());
    }

    #[test]
    fn a_long_repeated_name_is_echoed_bounded() {
        let name = "n".repeat(100);
        let body = format!("{name}=1&{name}=2");
        let e = StrictForm::parse(body.as_bytes(), FormLimits::new(1024, 8)).unwrap_err();
        assert_eq!(e, FormError::RepeatedParameter("n".repeat(64)));
    }
}
