//! The pushed request body: `application/x-www-form-urlencoded`
//! ([RFC 9126 §2.1]), read strictly.
//!
//! [RFC 9126 §2.1]: https://www.rfc-editor.org/rfc/rfc9126#section-2.1

/// Largest pushed request body accepted, in bytes (a 64 KiB request object
/// plus a client assertion and parameters).
pub const MAX_BODY_LEN: usize = 160 * 1024;
/// Most parameters accepted.
pub const MAX_PARAMETERS: usize = 64;

/// Parameters that authenticate the client rather than describe the
/// authorization request.
pub const CLIENT_AUTH_PARAMETERS: [&str; 2] = ["client_assertion", "client_assertion_type"];

/// Why a pushed request body was rejected (`invalid_request`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormError {
    /// Larger than [`MAX_BODY_LEN`].
    #[error("pushed request body is larger than {MAX_BODY_LEN} bytes")]
    TooLarge,
    /// More than [`MAX_PARAMETERS`] parameters.
    #[error("pushed request has more than {MAX_PARAMETERS} parameters")]
    TooManyParameters,
    /// A parameter appears twice (RFC 6749 §3.1).
    #[error("pushed request repeats the parameter `{0}`")]
    RepeatedParameter(String),
    /// A `request_uri` inside a pushed request (RFC 9126 §2.1).
    #[error("request_uri must not be used in a pushed authorization request")]
    RequestUriNotAllowed,
    /// A parameter name is empty or not printable ASCII.
    #[error("pushed request has an invalid parameter name")]
    InvalidParameterName,
}

/// The parameters of a pushed request, each at most once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushedRequestForm {
    params: Vec<(String, String)>,
}

impl PushedRequestForm {
    /// Parses a form-encoded body.
    ///
    /// # Errors
    /// [`FormError`].
    pub fn parse(body: &[u8]) -> Result<Self, FormError> {
        if body.len() > MAX_BODY_LEN {
            return Err(FormError::TooLarge);
        }
        let mut params: Vec<(String, String)> = Vec::new();
        for (k, v) in url::form_urlencoded::parse(body) {
            if params.len() >= MAX_PARAMETERS {
                return Err(FormError::TooManyParameters);
            }
            if k.is_empty() || !k.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
                return Err(FormError::InvalidParameterName);
            }
            if params.iter().any(|(p, _)| *p == k) {
                // names are printable ASCII and at most a body long: safe to echo
                return Err(FormError::RepeatedParameter(k.chars().take(64).collect()));
            }
            params.push((k.into_owned(), v.into_owned()));
        }
        if params.iter().any(|(k, _)| k == "request_uri") {
            return Err(FormError::RequestUriNotAllowed);
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

    /// The authorization-request parameters (client authentication removed).
    pub fn authorization_parameters(&self) -> Vec<(String, String)> {
        self.params
            .iter()
            .filter(|(k, _)| !CLIENT_AUTH_PARAMETERS.contains(&k.as_str()))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            FormError::RepeatedParameter("scope".into())
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
            FormError::TooManyParameters
        );
        assert_eq!(
            PushedRequestForm::parse(&vec![b'a'; MAX_BODY_LEN + 1]).unwrap_err(),
            FormError::TooLarge
        );
        assert_eq!(
            PushedRequestForm::parse(b"=v").unwrap_err(),
            FormError::InvalidParameterName
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
