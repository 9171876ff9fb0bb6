//! Building and rendering the authorization response, signed (JARM) or,
//! where the client asked for a plain mode, with `iss` (RFC 9207).

use std::sync::Arc;

use base64ct::{Base64, Encoding};
use fapi_core::client::ClientMetadata;
use fapi_core::crypto::{shared_signer, AsyncSigningKey};
use fapi_core::jose::sign_compact_async;
use fapi_core::request_object::{ResponseMode, ResponseType, ValidatedAuthorizationRequest};
use fapi_core::ErrorCode;
use fapi_core::Issuer;
use fapi_core::UnixTime;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::JarmError;

/// Default JARM lifetime (5 minutes).
pub const DEFAULT_LIFETIME_SECS: i64 = 300;

/// Signs authorization responses for one authorization server.
#[derive(Clone, Debug)]
pub struct JarmSigner {
    key: Arc<dyn AsyncSigningKey>,
    kid: String,
    issuer: Issuer,
    lifetime_secs: i64,
}

/// An authorization response ready to send to the client's registered
/// redirect URI. Made only from a [`ValidatedAuthorizationRequest`], or
/// from a registered client's one redirect URI
/// ([`JarmSigner::error_for_client`]): a request whose client or redirect
/// URI failed validation has no response to redirect, and the caller shows
/// its error instead (no open redirector).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorizationResponse {
    redirect_uri: String,
    mode: ResponseMode,
    params: Vec<(String, String)>,
}

/// How to deliver a response.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rendered {
    /// HTTP 303 to this `Location`.
    Redirect {
        /// The URL.
        location: String,
    },
    /// HTTP 200 with this HTML page, which posts the response to the client.
    /// Serve it with `Content-Security-Policy: default-src 'none';
    /// script-src <form_post_script_hash()>; form-action <redirect URI>`
    /// (see [`form_post_script_hash`]).
    FormPost {
        /// The page.
        html: String,
    },
}

/// The one inline script of the form-post page: submit the form.
const FORM_POST_SCRIPT: &str = "document.forms[0].submit();";

/// The CSP source expression allowing exactly the form-post page's one script
/// (`'sha256-…'`); computed, so it cannot drift from the script.
pub fn form_post_script_hash() -> String {
    format!(
        "'sha256-{}'",
        Base64::encode_string(&Sha256::digest(FORM_POST_SCRIPT.as_bytes()))
    )
}

/// HTML-escapes `s` for element content and quoted attribute values
/// (`&`, `<`, `>`, `"`, `'`): what the form-post page does with every value
/// it writes, offered to servers rendering their own pages.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            _ => out.push(c),
        }
    }
    out
}

impl JarmSigner {
    /// A signer with `key` (a file key or an HSM's, see
    /// [`AsyncSigningKey`]; published under `kid`) for `issuer`, responses
    /// valid [`DEFAULT_LIFETIME_SECS`].
    pub fn new<K: AsyncSigningKey + ?Sized + 'static>(
        key: Arc<K>,
        kid: String,
        issuer: Issuer,
    ) -> Self {
        Self {
            key: shared_signer(key),
            kid,
            issuer,
            lifetime_secs: DEFAULT_LIFETIME_SECS,
        }
    }

    /// Another lifetime, within JARM's bounds (10 s to 10 min); `None`
    /// outside them.
    pub fn with_lifetime(mut self, secs: i64) -> Option<Self> {
        (10..=600).contains(&secs).then(|| {
            self.lifetime_secs = secs;
            self
        })
    }

    /// The successful response carrying `code`.
    ///
    /// # Errors
    /// [`JarmError::Signing`].
    pub async fn success(
        &self,
        request: &ValidatedAuthorizationRequest,
        code: &str,
        now: UnixTime,
    ) -> Result<AuthorizationResponse, JarmError> {
        let mut m = Map::new();
        m.insert("code".into(), json!(code));
        self.respond(request, m, now).await
    }

    /// An error response (e.g. `access_denied` when the customer rejects).
    /// `description` must be a fixed phrase, never request data.
    ///
    /// # Errors
    /// [`JarmError::Signing`].
    pub async fn error(
        &self,
        request: &ValidatedAuthorizationRequest,
        error: ErrorCode,
        description: &str,
        now: UnixTime,
    ) -> Result<AuthorizationResponse, JarmError> {
        let mut m = Map::new();
        m.insert("error".into(), json!(error.as_str()));
        m.insert("error_description".into(), json!(description));
        self.respond(request, m, now).await
    }

    /// An error response for a client whose request cannot be read any
    /// more (its `request_uri` was used, has expired, or is unknown, but
    /// the `client_id` beside it is a registered client): RFC 6749
    /// §4.1.2.1 sends the error to the client once its redirect URI is
    /// trusted. With no request there is no `redirect_uri` parameter, so
    /// the registration decides: the client's one registered redirect URI,
    /// in `query.jwt` (JARM), without `state` (none is known). `None` when
    /// the client registered several redirect URIs: which one is meant is
    /// unknown, and the caller shows its error page instead.
    /// `description` must be a fixed phrase, never request data.
    ///
    /// # Errors
    /// [`JarmError::Signing`].
    pub async fn error_for_client(
        &self,
        client: &ClientMetadata,
        error: ErrorCode,
        description: &str,
        now: UnixTime,
    ) -> Result<Option<AuthorizationResponse>, JarmError> {
        let [redirect_uri] = client.redirect_uris() else {
            return Ok(None);
        };
        let mut m = Map::new();
        m.insert("error".into(), json!(error.as_str()));
        m.insert("error_description".into(), json!(description));
        m.insert("iss".into(), json!(self.issuer.as_str()));
        m.insert("aud".into(), json!(client.client_id().as_str()));
        m.insert(
            "exp".into(),
            json!(now.saturating_add(self.lifetime_secs).as_secs()),
        );
        Ok(Some(AuthorizationResponse {
            redirect_uri: redirect_uri.as_str().to_owned(),
            mode: ResponseMode::QueryJwt,
            params: vec![(
                "response".to_owned(),
                sign_compact_async(&*self.key, Some(&self.kid), None, &m).await?,
            )],
        }))
    }

    async fn respond(
        &self,
        request: &ValidatedAuthorizationRequest,
        mut m: Map<String, Value>,
        now: UnixTime,
    ) -> Result<AuthorizationResponse, JarmError> {
        if let Some(state) = request.state() {
            m.insert("state".into(), json!(state.as_str()));
        }
        let mode = resolve_mode(request);
        let params = if mode_is_jarm(mode) {
            m.insert("iss".into(), json!(self.issuer.as_str()));
            m.insert("aud".into(), json!(request.client_id().as_str()));
            m.insert(
                "exp".into(),
                json!(now.saturating_add(self.lifetime_secs).as_secs()),
            );
            vec![(
                "response".to_owned(),
                sign_compact_async(&*self.key, Some(&self.kid), None, &m).await?,
            )]
        } else {
            // RFC 9207: the issuer travels with a plain response too
            m.insert("iss".into(), json!(self.issuer.as_str()));
            m.into_iter()
                .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_owned()))
                .collect()
        };
        Ok(AuthorizationResponse {
            redirect_uri: request.redirect_uri().as_str().to_owned(),
            mode,
            params,
        })
    }
}

/// The concrete mode: `jwt` means `query.jwt` for `code` and
/// `fragment.jwt` for hybrid responses; no mode means the response type's
/// default.
fn resolve_mode(request: &ValidatedAuthorizationRequest) -> ResponseMode {
    let hybrid = request.response_type() == ResponseType::CodeIdToken;
    match request.response_mode() {
        Some(ResponseMode::Jwt) if hybrid => ResponseMode::FragmentJwt,
        Some(ResponseMode::Jwt) => ResponseMode::QueryJwt,
        Some(m) => m,
        None if hybrid => ResponseMode::Fragment,
        None => ResponseMode::Query,
    }
}

fn mode_is_jarm(mode: ResponseMode) -> bool {
    mode.is_jarm()
}

impl AuthorizationResponse {
    /// The mode the response is delivered in.
    pub fn mode(&self) -> ResponseMode {
        self.mode
    }

    /// The response parameters (for JARM, the single `response`).
    pub fn params(&self) -> &[(String, String)] {
        &self.params
    }

    /// Renders the response for its mode.
    ///
    /// # Errors
    /// [`JarmError::RedirectUri`] if the registered URI cannot be parsed
    /// (it was validated at registration, so this is a bank-side fault).
    pub fn render(&self) -> Result<Rendered, JarmError> {
        let mut url = url::Url::parse(&self.redirect_uri).map_err(|_| JarmError::RedirectUri)?;
        match self.mode {
            ResponseMode::Query | ResponseMode::QueryJwt => {
                {
                    let mut q = url.query_pairs_mut();
                    for (k, v) in &self.params {
                        q.append_pair(k, v);
                    }
                }
                Ok(Rendered::Redirect {
                    location: url.into(),
                })
            }
            ResponseMode::Fragment | ResponseMode::FragmentJwt => {
                let fragment = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(self.params.iter())
                    .finish();
                url.set_fragment(Some(&fragment));
                Ok(Rendered::Redirect {
                    location: url.into(),
                })
            }
            _ => {
                let inputs: String = self
                    .params
                    .iter()
                    .map(|(k, v)| {
                        format!(
                            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                            html_escape(k),
                            html_escape(v)
                        )
                    })
                    .collect();
                let html = format!(
                    "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Returning to the application</title></head>\
                     <body><form method=\"post\" action=\"{}\">{inputs}<noscript><p>Continue to the application.</p>\
                     <button type=\"submit\">Continue</button></noscript></form><script>{FORM_POST_SCRIPT}</script></body></html>",
                    html_escape(&self.redirect_uri)
                );
                Ok(Rendered::FormPost { html })
            }
        }
    }
}
