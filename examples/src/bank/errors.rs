//! Error responses: RFC 6749 §5.2 bodies on the OAuth endpoints, UK Open
//! Banking `OBErrorResponse1` on the resources. Descriptions come from the
//! crates' error `Display`s, which never carry a secret or request data.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use fapi_core::error::{ErrorCode, ErrorResponse, OAuthError};
use serde_json::json;

/// An OAuth endpoint's error (`/par`, `/token`).
#[derive(Debug)]
pub(crate) struct OAuthFailure {
    pub(crate) code: ErrorCode,
    pub(crate) description: String,
}

impl OAuthFailure {
    pub(crate) fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
        }
    }

    /// From any crate error, with its code and description.
    pub(crate) fn from_error(e: &impl OAuthError) -> Self {
        Self::new(e.error_code(), e.error_description())
    }
}

impl IntoResponse for OAuthFailure {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        tracing::info!(error = %self.code, description = %self.description, "oauth request refused");
        let mut r = (
            status,
            Json(ErrorResponse {
                error: self.code,
                error_description: Some(self.description),
            }),
        )
            .into_response();
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r
    }
}

/// A resource endpoint's error, as `OBErrorResponse1`.
#[derive(Debug)]
pub(crate) struct ObError {
    status: StatusCode,
    error_code: &'static str,
    message: String,
    /// `WWW-Authenticate: Bearer error="…"` for token failures (RFC 6750).
    bearer: Option<ErrorCode>,
}

impl ObError {
    pub(crate) fn new(
        status: StatusCode,
        error_code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            error_code,
            message: message.into(),
            bearer: None,
        }
    }

    /// A refused access token (401 `invalid_token`, or 403 for scope).
    pub(crate) fn token(e: &impl OAuthError) -> Self {
        let code = e.error_code();
        let status = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::UNAUTHORIZED);
        Self {
            status,
            error_code: if status == StatusCode::FORBIDDEN {
                "UK.OBIE.Resource.InvalidConsentStatus"
            } else {
                "UK.OBIE.Unauthorized"
            },
            message: e.error_description(),
            bearer: Some(code),
        }
    }

    pub(crate) fn bad_request(error_code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error_code, message)
    }

    pub(crate) fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "UK.OBIE.Resource.NotFound",
            "no such resource for this client",
        )
    }

    pub(crate) fn core_unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "UK.OBIE.UnexpectedError",
            "the bank's core system is unavailable; retry later",
        )
    }

    pub(crate) fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UK.OBIE.UnexpectedError",
            "the request could not be completed",
        )
    }
}

fn high_level_code(status: StatusCode) -> String {
    format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    )
}

impl IntoResponse for ObError {
    fn into_response(self) -> Response {
        let id = fapi_core::random::uuid_v4().unwrap_or_default();
        tracing::info!(status = self.status.as_u16(), error_code = self.error_code, message = %self.message, error_id = %id, "resource request refused");
        let error = json!({ "ErrorCode": self.error_code, "Message": self.message });
        let body = json!({
            "Code": high_level_code(self.status),
            "Id": id,
            "Message": self.message,
            "Errors": [error],
        });
        let mut r = (self.status, Json(body)).into_response();
        if let Some(code) = self.bearer {
            let challenge = format!("Bearer error=\"{}\"", code.as_str());
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
        }
        r
    }
}
