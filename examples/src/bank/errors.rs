//! Error responses: RFC 6749 §5.2 bodies on the OAuth endpoints, UK Open
//! Banking `OBErrorResponse1` on the resources. Descriptions come from the
//! crates' error `Display`s, which never carry a secret or request data.
//!
//! Answers the framework makes itself (an oversized body, a body it cannot
//! read, an unknown path, a wrong method, a request past its deadline) are
//! given the same shapes by [`shape_api`] here and by the customer pages'
//! own shaper, with a fixed description per status (never the framework's
//! text, which can quote the request).

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use fapi_core::{ErrorCode, ErrorResponse, OAuthError};
use serde_json::json;

/// An OAuth endpoint's error (`/par`, `/token`).
#[derive(Debug)]
pub(crate) struct OAuthFailure {
    pub(crate) code: ErrorCode,
    pub(crate) description: String,
    /// The HTTP status, when not the one the code implies (413, 429, ...).
    status: Option<StatusCode>,
}

impl OAuthFailure {
    pub(crate) fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
            status: None,
        }
    }

    /// The same body under another HTTP status.
    pub(crate) fn with_status(mut self, status: StatusCode) -> Self {
        self.status = Some(status);
        self
    }

    /// From any crate error, with its code and description.
    pub(crate) fn from_error(e: &impl OAuthError) -> Self {
        Self::new(e.error_code(), e.error_description())
    }
}

impl IntoResponse for OAuthFailure {
    fn into_response(self) -> Response {
        let status = self.status.unwrap_or_else(|| {
            StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST)
        });
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

/// `Retry-After` of an answer that the core is unavailable or slow.
pub(crate) const CORE_RETRY_AFTER_SECS: u64 = 5;

/// A resource endpoint's error, as `OBErrorResponse1`.
#[derive(Debug)]
pub(crate) struct ObError {
    status: StatusCode,
    error_code: &'static str,
    message: String,
    /// `WWW-Authenticate: Bearer error="…"` for token failures (RFC 6750).
    bearer: Option<ErrorCode>,
    /// `Retry-After` (seconds).
    retry_after: Option<u64>,
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
            retry_after: None,
        }
    }

    /// The same error with `Retry-After: secs`.
    pub(crate) fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// The HTTP status.
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    /// The status and the `OBErrorResponse1` body, to store as the outcome
    /// of an idempotent request (a retry gets the same error back).
    pub(crate) fn to_stored(&self) -> (StatusCode, Vec<u8>) {
        (
            self.status,
            self.body(&fapi_core::random::uuid_v4().unwrap_or_default())
                .to_string()
                .into_bytes(),
        )
    }

    fn body(&self, id: &str) -> serde_json::Value {
        let error = json!({ "ErrorCode": self.error_code, "Message": self.message });
        json!({
            "Code": high_level_code(self.status),
            "Id": id,
            "Message": self.message,
            "Errors": [error],
        })
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
            retry_after: None,
        }
    }

    /// A refusal of the token itself, outside the crates' errors: `status`
    /// with `WWW-Authenticate: Bearer error="code"` (RFC 6750 §3.1).
    pub(crate) fn bearer(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            error_code: "UK.OBIE.Unauthorized",
            message: message.into(),
            bearer: Some(code),
            retry_after: None,
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
        .with_retry_after(CORE_RETRY_AFTER_SECS)
    }

    /// The core did not answer in time: the outcome is not known yet.
    pub(crate) fn core_timeout(what: &str) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "UK.OBIE.UnexpectedError",
            format!("the bank's core system did not answer in time; {what}"),
        )
        .with_retry_after(CORE_RETRY_AFTER_SECS)
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
        let mut r = (self.status, Json(self.body(&id))).into_response();
        if let Some(secs) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(code) = self.bearer {
            let challenge = format!("Bearer error=\"{}\"", code.as_str());
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
        }
        r
    }
}

/// Whether a response is an error the framework made (not JSON, not one
/// of the bank's pages), which needs the endpoint's shape.
pub(crate) fn unshaped(r: &Response) -> bool {
    (r.status().is_client_error() || r.status().is_server_error())
        && !r
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/json") || ct.starts_with("text/html"))
}

/// The fixed description of a framework answer.
pub(crate) fn framework_message(status: StatusCode) -> &'static str {
    match status.as_u16() {
        404 => "there is no such endpoint",
        405 => "this endpoint does not accept this method",
        408 => "the request was not completed in time",
        413 => "the request body is larger than this endpoint accepts",
        415 => "the request body does not have the content type this endpoint expects",
        422 => "the request body could not be read as this endpoint expects",
        s if s >= 500 => "the request could not be completed; retry later",
        _ => "the request is malformed: check its parameters and body",
    }
}

/// Keeps the headers a framework answer carries that still apply.
fn keep_headers(from: &Response, to: &mut Response) {
    for name in [header::ALLOW, header::RETRY_AFTER] {
        if let Some(v) = from.headers().get(&name) {
            to.headers_mut().insert(name, v.clone());
        }
    }
}

/// Whether `path` is one of the OAuth endpoints on the TPP listener, whose
/// errors are RFC 6749 §5.2 bodies rather than `OBErrorResponse1`.
pub(crate) fn is_oauth_endpoint(path: &str) -> bool {
    matches!(
        path,
        "/par" | "/token" | "/introspect" | "/revoke" | "/register"
    ) || path.starts_with("/register/")
}

/// The TPP API's shaper: RFC 6749 bodies on the OAuth endpoints
/// ([`is_oauth_endpoint`]: `invalid_request`, or `server_error` for 5xx),
/// `OBErrorResponse1` elsewhere.
pub(crate) async fn shape_api(req: Request, next: Next) -> Response {
    let oauth = is_oauth_endpoint(req.uri().path());
    let response = next.run(req).await;
    if !unshaped(&response) {
        return response;
    }
    let status = response.status();
    let message = framework_message(status);
    let mut shaped = if oauth {
        let code = if status.is_server_error() {
            ErrorCode::ServerError
        } else {
            ErrorCode::InvalidRequest
        };
        OAuthFailure::new(code, message)
            .with_status(status)
            .into_response()
    } else {
        let code = match status.as_u16() {
            404 => "UK.OBIE.Resource.NotFound",
            400 | 413 | 422 => "UK.OBIE.Resource.InvalidFormat",
            415 => "UK.OBIE.Header.Invalid",
            _ => "UK.OBIE.UnexpectedError",
        };
        ObError::new(status, code, message).into_response()
    };
    keep_headers(&response, &mut shaped);
    shaped
}
