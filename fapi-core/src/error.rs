//! OAuth error codes and the RFC 6749 error body.
//!
//! Every error type in the `fapi-*` crates implements [`OAuthError`]: it maps
//! to one [`ErrorCode`] and a description a TPP developer can act on. A
//! description never echoes a secret, a token, or a value that came from the
//! request; signature failures stay opaque.

use core::fmt;

use serde::Serialize;

/// An OAuth 2.0 error code ([RFC 6749 §5.2], [RFC 6750 §3.1], [RFC 9101 §6],
/// [RFC 9126 §2.3]).
///
/// [RFC 6749 §5.2]: https://www.rfc-editor.org/rfc/rfc6749#section-5.2
/// [RFC 6750 §3.1]: https://www.rfc-editor.org/rfc/rfc6750#section-3.1
/// [RFC 9101 §6]: https://www.rfc-editor.org/rfc/rfc9101#section-6
/// [RFC 9126 §2.3]: https://www.rfc-editor.org/rfc/rfc9126#section-2.3
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `invalid_request`
    InvalidRequest,
    /// `invalid_request_object`
    InvalidRequestObject,
    /// `invalid_request_uri`
    InvalidRequestUri,
    /// `invalid_client`
    InvalidClient,
    /// `invalid_grant`
    InvalidGrant,
    /// `invalid_token`
    InvalidToken,
    /// `insufficient_scope`
    InsufficientScope,
    /// `unauthorized_client`
    UnauthorizedClient,
    /// `access_denied`
    AccessDenied,
    /// `unsupported_response_type`
    UnsupportedResponseType,
    /// `unsupported_grant_type` (token endpoint)
    UnsupportedGrantType,
    /// `invalid_scope`
    InvalidScope,
    /// `temporarily_unavailable`: a dependency is down; retry later (503).
    TemporarilyUnavailable,
    /// `server_error`: a store or provider failed; nothing about the request
    /// was wrong.
    ServerError,
    /// `invalid_redirect_uri` ([RFC 7591 §3.2.2]): a registered redirect URI
    /// is refused.
    ///
    /// [RFC 7591 §3.2.2]: https://www.rfc-editor.org/rfc/rfc7591#section-3.2.2
    InvalidRedirectUri,
    /// `invalid_client_metadata` (RFC 7591 §3.2.2).
    InvalidClientMetadata,
    /// `invalid_software_statement` (RFC 7591 §3.2.2): the statement does
    /// not verify.
    InvalidSoftwareStatement,
    /// `unapproved_software_statement` (RFC 7591 §3.2.2): the statement is
    /// not from a directory this server accepts.
    UnapprovedSoftwareStatement,
    /// `invalid_dpop_proof` ([RFC 9449 §7.1]): the DPoP proof is refused.
    ///
    /// [RFC 9449 §7.1]: https://www.rfc-editor.org/rfc/rfc9449#section-7.1
    InvalidDpopProof,
    /// `use_dpop_nonce` (RFC 9449 §8): retry with the server's nonce.
    UseDpopNonce,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidRequestObject => "invalid_request_object",
            Self::InvalidRequestUri => "invalid_request_uri",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::AccessDenied => "access_denied",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::ServerError => "server_error",
            Self::InvalidRedirectUri => "invalid_redirect_uri",
            Self::InvalidClientMetadata => "invalid_client_metadata",
            Self::InvalidSoftwareStatement => "invalid_software_statement",
            Self::UnapprovedSoftwareStatement => "unapproved_software_statement",
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::UseDpopNonce => "use_dpop_nonce",
        }
    }

    /// The HTTP status an endpoint answers with for this code.
    pub fn http_status(self) -> u16 {
        match self {
            Self::InvalidClient | Self::InvalidToken => 401,
            Self::InsufficientScope | Self::AccessDenied => 403,
            Self::ServerError => 500,
            Self::TemporarilyUnavailable => 503,
            _ => 400,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// An error that an OAuth endpoint reports to its client.
pub trait OAuthError: std::error::Error {
    /// The OAuth error code.
    fn error_code(&self) -> ErrorCode;

    /// A description for the client. Defaults to the error's `Display`,
    /// which in this crate family never contains a secret or request data.
    fn error_description(&self) -> String {
        self.to_string()
    }

    /// The RFC 6749 §5.2 body for this error.
    fn to_response(&self) -> ErrorResponse {
        ErrorResponse {
            error: self.error_code(),
            error_description: Some(self.error_description()),
        }
    }
}

/// The error body of [RFC 6749 §5.2](https://www.rfc-editor.org/rfc/rfc6749#section-5.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ErrorResponse {
    /// The error code.
    pub error: ErrorCode,
    /// A human-readable description (ASCII, no secrets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_serializes_exactly() {
        let body = ErrorResponse {
            error: ErrorCode::InvalidRequestObject,
            error_description: Some("request object has expired".into()),
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"error":"invalid_request_object","error_description":"request object has expired"}"#
        );
        let bare = ErrorResponse {
            error: ErrorCode::InvalidClient,
            error_description: None,
        };
        assert_eq!(
            serde_json::to_string(&bare).unwrap(),
            r#"{"error":"invalid_client"}"#
        );
    }

    #[test]
    fn status_codes() {
        assert_eq!(ErrorCode::InvalidToken.http_status(), 401);
        assert_eq!(ErrorCode::InvalidClient.http_status(), 401);
        assert_eq!(ErrorCode::AccessDenied.http_status(), 403);
        assert_eq!(ErrorCode::InvalidRequestUri.http_status(), 400);
        for (code, wire) in [
            (ErrorCode::InvalidRedirectUri, "invalid_redirect_uri"),
            (ErrorCode::InvalidClientMetadata, "invalid_client_metadata"),
            (
                ErrorCode::InvalidSoftwareStatement,
                "invalid_software_statement",
            ),
            (
                ErrorCode::UnapprovedSoftwareStatement,
                "unapproved_software_statement",
            ),
        ] {
            assert_eq!((code.as_str(), code.http_status()), (wire, 400));
        }
    }
}
