//! The pushed request body: `application/x-www-form-urlencoded`
//! ([RFC 9126 §2.1]), read strictly.
//!
//! [RFC 9126 §2.1]: https://www.rfc-editor.org/rfc/rfc9126#section-2.1

use fapi_core::form::{FormLimits, StrictForm};

/// Largest pushed request body accepted, in bytes (a 64 KiB request object
/// plus a client assertion and parameters).
pub const MAX_BODY_LEN: usize = 160 * 1024;
/// Most parameters accepted.
pub const MAX_PARAMETERS: usize = 64;

/// Parameters that authenticate the client rather than describe the
/// authorization request.
pub const CLIENT_AUTH_PARAMETERS: [&str; 2] = ["client_assertion", "client_assertion_type"];

/// The limits of a pushed request body.
pub const LIMITS: FormLimits = FormLimits::new(MAX_BODY_LEN, MAX_PARAMETERS);

/// Why a pushed request body was rejected (`invalid_request`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormError {
    /// The body breaks the strict form rules every endpoint shares
    /// (size, count, repeated or invalid parameter names).
    #[error("pushed request: {0}")]
    Form(#[from] fapi_core::form::FormError),
    /// A `request_uri` inside a pushed request (RFC 9126 §2.1).
    #[error("request_uri must not be used in a pushed authorization request")]
    RequestUriNotAllowed,
}

/// The parameters of a pushed request, each at most once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushedRequestForm {
    form: StrictForm,
}

impl PushedRequestForm {
    /// Parses a form-encoded body under [`LIMITS`].
    ///
    /// # Errors
    /// [`FormError`].
    pub fn parse(body: &[u8]) -> Result<Self, FormError> {
        let form = StrictForm::parse(body, LIMITS)?;
        if form.get("request_uri").is_some() {
            return Err(FormError::RequestUriNotAllowed);
        }
        Ok(Self { form })
    }

    /// A parameter's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.form.get(name)
    }

    /// The authorization-request parameters (client authentication removed).
    pub fn authorization_parameters(&self) -> Vec<(String, String)> {
        self.form
            .params()
            .iter()
            .filter(|(k, _)| !CLIENT_AUTH_PARAMETERS.contains(&k.as_str()))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fapi_core::form::FormError as CoreError;

    #[test]
    fn parses_and_decodes() {
        let f = PushedRequestForm::parse(
            b"response_type=code&redirect_uri=https%3A%2F%2Fa.example%2Fcb&scope=openid+accounts",
        )
        .unwrap();
        assert_eq!(f.get("redirect_uri"), Some("https://a.example/cb"));
        assert_eq!(f.get("scope"), Some("openid accounts"));
    }

    #[test]
    fn repeated_parameter_rejected() {
        assert_eq!(
            PushedRequestForm::parse(b"scope=a&scope=b").unwrap_err(),
            FormError::Form(CoreError::RepeatedParameter("scope".into()))
        );
    }

    #[test]
    fn request_uri_rejected() {
        assert_eq!(
            PushedRequestForm::parse(b"request_uri=urn%3Ax&client_id=a").unwrap_err(),
            FormError::RequestUriNotAllowed
        );
    }

    #[test]
    fn bounds() {
        let many: String = (0..65).map(|i| format!("p{i}=v&")).collect();
        assert_eq!(
            PushedRequestForm::parse(many.as_bytes()).unwrap_err(),
            FormError::Form(CoreError::TooManyParameters {
                max: MAX_PARAMETERS
            })
        );
        assert_eq!(
            PushedRequestForm::parse(&vec![b'a'; MAX_BODY_LEN + 1]).unwrap_err(),
            FormError::Form(CoreError::TooLarge { max: MAX_BODY_LEN })
        );
        assert_eq!(
            PushedRequestForm::parse(b"=v").unwrap_err(),
            FormError::Form(CoreError::InvalidParameterName)
        );
    }

    #[test]
    fn client_auth_parameters_are_not_authorization_parameters() {
        let f = PushedRequestForm::parse(b"client_assertion=x&client_assertion_type=y&client_id=a")
            .unwrap();
        assert_eq!(
            f.authorization_parameters(),
            vec![("client_id".to_string(), "a".to_string())]
        );
    }
}
