//! The customer-facing pages (server TLS only): discovery and `/jwks`, the
//! authorization endpoint with the login page (the SCA stand-in), the
//! consent screen and the JARM response, and the customer's dashboard.
//!
//! The consent screen is rendered only from the validated pushed request
//! and the consent it names; every value on it is HTML-escaped. The
//! decision is written to the consent store (with its audit entry) before
//! any code is issued. Pages carry a strict CSP (no script, forms only to
//! the bank and to the request's registered redirect URI) and cannot be
//! framed; the session cookie is `Secure; HttpOnly; SameSite=Strict` and
//! every form carries the session's CSRF token.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Extension;
use axum::Router;
use fapi_consent::consent::{Actor, ConsentTerms};
use fapi_consent::store::{apply_event_audited, create_audited};
use fapi_consent::{Consent, ConsentEvent, EventKind};
use fapi_core::request_object::ValidatedAuthorizationRequest;
use fapi_core::ErrorCode;
use fapi_core::{ClientId, ConsentId};
use fapi_jarm::Rendered;
use fapi_par::RequestUri;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::oauth::Form;
use super::observe::{self, consent_event};
use super::{BankState, Session};
use fapi_core::code::CodeGrant;

const COOKIE: &str = "bank_session";
/// The login form's CSRF cookie: `__Host-` so no other origin (not even a
/// sibling subdomain) can set it; the form carries a value derived from it.
const LOGIN_COOKIE: &str = "__Host-bank_login";
const SESSION_SECS: i64 = 15 * 60;
const MAX_FORM: usize = 8 * 1024;

pub(crate) fn router(state: Arc<BankState>, request_timeout: std::time::Duration) -> Router {
    Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(super::oauth::discovery),
        )
        .route("/jwks", get(super::oauth::jwks))
        .route("/authorize", get(authorize))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/authorize/decision", post(decision))
        .route("/authorize/cancel", post(cancel))
        .route("/dashboard", get(dashboard))
        .route("/dashboard/revoke", post(revoke))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_FORM))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            observe::customer_rate_limit,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        .layer(axum::middleware::from_fn(shape))
        .layer(axum::middleware::from_fn(observe::observe))
        .with_state(state)
}

/// Answers the framework makes itself (oversized body, malformed query,
/// unknown path, wrong method, past the deadline) as the bank's error page.
async fn shape(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let response = next.run(req).await;
    if !super::errors::unshaped(&response) {
        return response;
    }
    let status = response.status();
    let mut page = error_page(status, super::errors::framework_message(status));
    if let Some(v) = response.headers().get(header::ALLOW) {
        page.headers_mut().insert(header::ALLOW, v.clone());
    }
    page
}

/// HTML-escapes text for element content and quoted attribute values.
fn esc(s: &str) -> String {
    fapi_jarm::html_escape(s)
}

/// A page with the bank's headers. `form_targets` are extra origins forms
/// may post or redirect to (the request's redirect URI).
fn page(status: StatusCode, title: &str, body: &str, form_targets: &[&str]) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title></head><body><h1>{}</h1>{body}</body></html>",
        esc(title),
        esc(title)
    );
    let mut csp = String::from("default-src 'none'; frame-ancestors 'none'; form-action 'self'");
    for t in form_targets {
        csp.push(' ');
        csp.push_str(t);
    }
    let mut r = (status, html).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    r
}

pub(crate) fn error_page(status: StatusCode, message: &str) -> Response {
    page(
        status,
        "The request cannot be completed",
        &format!("<p>{}</p>", esc(message)),
        &[],
    )
}

fn see_other(location: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The value of cookie `name` in the request.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn set_cookie(r: &mut Response, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}

impl BankState {
    fn session(&self, headers: &HeaderMap) -> Option<(String, Session)> {
        let token = cookie(headers, COOKIE)?;
        let now = self.now();
        let mut sessions = self.sessions.lock().ok()?;
        sessions.retain(|_, s| s.expires_at > now);
        sessions.get(&token).cloned().map(|s| (token, s))
    }

    fn new_session(&self, customer_id: &str) -> Option<String> {
        let token = fapi_core::random::token(32).ok()?;
        let session = Session {
            customer_id: customer_id.to_owned(),
            expires_at: self.now().saturating_add(SESSION_SECS),
        };
        self.sessions.lock().ok()?.insert(token.clone(), session);
        Some(token)
    }
}

/// The CSRF token of a session: derived from the session token, so it
/// needs no storage and differs per session.
fn csrf_of(session_token: &str) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(format!("csrf:{session_token}").as_bytes());
    base16ct::lower::encode_string(&d)
}

/// The login form's CSRF token, derived from its cookie (a double submit:
/// a cross-site form cannot read the cookie, and SameSite=Strict keeps it
/// from being sent with one).
fn login_csrf_of(login_token: &str) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(format!("login-csrf:{login_token}").as_bytes());
    base16ct::lower::encode_string(&d)
}

fn csrf_ok(session_token: &str, presented: Option<&str>) -> bool {
    let expected = csrf_of(session_token);
    presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(expected.as_bytes())))
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    client_id: Option<String>,
    request_uri: Option<String>,
}

/// Loads the pushed request `request_uri` for `client_id` (without using
/// it up: the page can be reloaded).
async fn pushed(
    state: &BankState,
    client_id: Option<&str>,
    request_uri: Option<&str>,
) -> Result<(ClientId, RequestUri, Arc<ValidatedAuthorizationRequest>), Response> {
    let client = client_id
        .and_then(|c| ClientId::try_from(c).ok())
        .ok_or_else(|| error_page(StatusCode::BAD_REQUEST, "client_id is missing or invalid"))?;
    tracing::Span::current().record("client_id", client.as_str());
    let Some(uri) = request_uri.and_then(RequestUri::parse) else {
        observe::auth_failure("request_uri");
        return Err(request_gone(
            state,
            &client,
            "request_uri is missing or is not one this bank issued",
        )
        .await);
    };
    match state.par.peek(&uri, &client, state.now()).await {
        Ok(found) => Ok((client, uri, found.request)),
        Err(fapi_par::LookupError::Store(_)) => Err(error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "authorization requests are unavailable; try again shortly",
        )),
        Err(e) => {
            observe::auth_failure("request_uri");
            Err(request_gone(state, &client, lookup_phrase(&e)).await)
        }
    }
}

/// The page for a consent change that did not happen: a conflict says
/// why (fixed phrases of fapi-consent); a store failure says only that,
/// its cause goes to the log, never to the customer.
fn change_failed(e: &fapi_consent::store::ApplyError) -> Response {
    match e {
        fapi_consent::store::ApplyError::Store(cause) => {
            tracing::error!(error = %fapi_core::store::ErrorChain(cause), "consent change failed in the store");
            error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "your consents cannot be changed right now; try again shortly",
            )
        }
        other => error_page(StatusCode::CONFLICT, &other.to_string()),
    }
}

/// A fixed phrase for a failed `request_uri` lookup.
fn lookup_phrase(e: &fapi_par::LookupError) -> &'static str {
    use fapi_par::LookupError as L;
    match e {
        L::Expired => "the request_uri has expired; push the authorization request again",
        L::AlreadyUsed => "the request_uri has already been used",
        L::WrongClient => "the request_uri was not issued to this client",
        L::NoLongerValid => "the pushed request no longer validates; push it again",
        _ => "the request_uri is unknown",
    }
}

/// The answer when the pushed request cannot be read (used, expired,
/// unknown) but `client` is an active registered client: RFC 6749
/// §4.1.2.1 sends the error back to the client, here a signed JARM
/// `invalid_request_uri` to its one registered redirect URI. Otherwise
/// (unknown client, several redirect URIs) the error page: no redirect
/// the bank cannot trust.
async fn request_gone(state: &BankState, client: &ClientId, phrase: &'static str) -> Response {
    let metadata = match state.registry.client(client).await {
        Ok(Some(c)) if !c.revoked => state.clients.metadata(&c.registration).ok(),
        _ => None,
    };
    let Some(m) = metadata else {
        return error_page(StatusCode::BAD_REQUEST, phrase);
    };
    let ring = state.ring();
    match ring
        .jarm
        .error_for_client(&m, ErrorCode::InvalidRequestUri, phrase, state.now())
        .await
    {
        Ok(Some(response)) => deliver(Ok(response), None),
        _ => error_page(StatusCode::BAD_REQUEST, phrase),
    }
}

/// Sends an authorization response to the client: a redirect, or the
/// self-posting form (whose CSP allows posting to `form_action`).
fn deliver(
    response: Result<fapi_jarm::AuthorizationResponse, fapi_jarm::JarmError>,
    form_action: Option<&str>,
) -> Response {
    match response.and_then(|r| r.render()) {
        Ok(Rendered::Redirect { location }) => see_other(&location),
        Ok(Rendered::FormPost { html }) => {
            let mut r = (StatusCode::OK, html).into_response();
            let csp = format!(
                "default-src 'none'; script-src {}; form-action {}; frame-ancestors 'none'",
                fapi_jarm::response::form_post_script_hash(),
                form_action.unwrap_or("'none'")
            );
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            if let Ok(v) = HeaderValue::from_str(&csp) {
                h.insert(header::CONTENT_SECURITY_POLICY, v);
            }
            r
        }
        Ok(_) | Err(_) => error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "response could not be signed",
        ),
    }
}

/// The consent a request asks the customer about.
struct Asked {
    consent: Consent,
    /// `false` for scopes alone: a new consent, stored (and audited) only
    /// when the customer decides.
    stored: bool,
}

/// The consent `request` asks for: the UK OB intent it names, or for
/// scopes alone a new one ([`super::scopes`]).
async fn consent_of(
    state: &BankState,
    request: &ValidatedAuthorizationRequest,
) -> Result<Asked, Response> {
    let Some(named) = request.openbanking_intent_id() else {
        // `/par` accepted it; the model may have changed since
        if !state.consent_model.allows_scopes()
            || super::scopes::refusal(request.scope(), true).is_some()
        {
            return Err(error_page(
                StatusCode::BAD_REQUEST,
                "the request asks for nothing this bank can grant",
            ));
        }
        let consent = super::scopes::consent_for(request.client_id(), state.now())
            .ok_or_else(|| error_page(StatusCode::SERVICE_UNAVAILABLE, "try again"))?;
        return Ok(Asked {
            consent,
            stored: false,
        });
    };
    if !state.consent_model.allows_intent() {
        return Err(error_page(
            StatusCode::BAD_REQUEST,
            "this bank does not take openbanking_intent_id consents",
        ));
    }
    let id = ConsentId::try_from(named).map_err(|_| {
        error_page(
            StatusCode::BAD_REQUEST,
            "the consent does not exist for this client",
        )
    })?;
    let consent = state
        .consents
        .get(&id)
        .await
        .map_err(|_| error_page(StatusCode::SERVICE_UNAVAILABLE, "consents are unavailable"))?
        .filter(|c| c.client_id() == request.client_id())
        .ok_or_else(|| {
            error_page(
                StatusCode::BAD_REQUEST,
                "the consent does not exist for this client",
            )
        })?;
    super::telemetry::join_flow(consent.id().as_str(), consent.client_id().as_str());
    Ok(Asked {
        consent,
        stored: true,
    })
}

fn login_page(client_id: &str, request_uri: &str, note: Option<&str>) -> Response {
    login_page_with(StatusCode::OK, client_id, request_uri, note)
}

/// The login form, with a fresh login CSRF token and its cookie.
fn login_page_with(
    status: StatusCode,
    client_id: &str,
    request_uri: &str,
    note: Option<&str>,
) -> Response {
    let Ok(login_token) = fapi_core::random::token(32) else {
        return error_page(StatusCode::SERVICE_UNAVAILABLE, "try again");
    };
    let note = note.map_or_else(String::new, |n| {
        format!("<p><strong>{}</strong></p>", esc(n))
    });
    let mut r = page(
        status,
        "Log in to your bank",
        &format!(
            "{note}<p>This login stands in for strong customer authentication. Test customers are listed in the README.</p>\
             <form method=\"post\" action=\"/login\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <input type=\"hidden\" name=\"client_id\" value=\"{}\">\
             <input type=\"hidden\" name=\"request_uri\" value=\"{}\">\
             <label>Customer id <input name=\"username\" autocomplete=\"username\"></label>\
             <label>Password <input type=\"password\" name=\"password\" autocomplete=\"current-password\"></label>\
             <button type=\"submit\">Log in</button></form>{}",
            esc(&login_csrf_of(&login_token)),
            esc(client_id),
            esc(request_uri),
            cancel_form(&login_csrf_of(&login_token), client_id, request_uri)
        ),
        &[],
    );
    set_cookie(
        &mut r,
        &format!(
            "{LOGIN_COOKIE}={login_token}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECS}"
        ),
    );
    r
}

/// For an authorization request: a form that cancels it.
fn cancel_form(csrf: &str, client_id: &str, request_uri: &str) -> String {
    if client_id.is_empty() {
        return String::new();
    }
    format!(
        "<form method=\"post\" action=\"/authorize/cancel\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <input type=\"hidden\" name=\"client_id\" value=\"{}\">\
         <input type=\"hidden\" name=\"request_uri\" value=\"{}\">\
         <button type=\"submit\">Cancel and return to the application</button></form>",
        esc(csrf),
        esc(client_id),
        esc(request_uri)
    )
}

/// Whether `presented` is the login form token of this browser's login
/// cookie.
fn login_form_fresh(headers: &HeaderMap, presented: Option<&str>) -> bool {
    cookie(headers, LOGIN_COOKIE).is_some_and(|t| {
        presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(login_csrf_of(&t).as_bytes())))
    })
}

/// A form that logs the session out.
fn logout_form(session_token: &str) -> String {
    format!(
        "<form method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\">Log out</button></form>",
        esc(&csrf_of(session_token))
    )
}

/// `GET /authorize?client_id&request_uri`: the login page, or for a
/// logged-in customer the consent screen.
async fn authorize(
    State(state): State<Arc<BankState>>,
    headers: HeaderMap,
    Query(q): Query<AuthorizeQuery>,
) -> Response {
    let (client, uri, request) =
        match pushed(&state, q.client_id.as_deref(), q.request_uri.as_deref()).await {
            Ok(p) => p,
            Err(r) => return r,
        };
    let Some((token, session)) = state.session(&headers) else {
        return login_page(client.as_str(), uri.as_str(), None);
    };
    let asked = match consent_of(&state, &request).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    consent_screen(
        &state,
        &token,
        &session,
        &client,
        &uri,
        &request,
        &asked.consent,
    )
    .await
}

async fn client_name(state: &BankState, client: &ClientId) -> String {
    state
        .registry
        .client(client)
        .await
        .ok()
        .flatten()
        .map_or_else(
            || client.as_str().to_owned(),
            |c| c.registration.client_name,
        )
}

/// The customer's accounts from the core (timeout and breaker apply).
async fn customer_accounts(
    state: &Arc<BankState>,
    customer: &str,
) -> Result<Vec<(String, String)>, Response> {
    state
        .core_call(super::Lane::Accounts, |c| c.accounts(customer))
        .await
        .map_err(|_| {
            error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "your accounts cannot be listed right now; try again shortly",
            )
        })
}

fn date(t: fapi_core::UnixTime) -> String {
    super::rfc3339(t).unwrap_or_else(|| t.as_secs().to_string())
}

#[allow(clippy::too_many_arguments)]
async fn consent_screen(
    state: &Arc<BankState>,
    session_token: &str,
    session: &Session,
    client: &ClientId,
    uri: &RequestUri,
    request: &ValidatedAuthorizationRequest,
    consent: &Consent,
) -> Response {
    let who = esc(&client_name(state, client).await);
    let accounts = match customer_accounts(state, &session.customer_id).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let (what, input_type) = match consent.terms() {
        ConsentTerms::AccountAccess(t) => {
            let items: String = t
                .permissions
                .iter()
                .map(|p| format!("<li>{}</li>", esc(p.plain_words())))
                .collect();
            let until = t.expiration.map_or_else(
                || "until you revoke it".to_owned(),
                |e| format!("until {}", date(e)),
            );
            let window = match (t.transaction_from, t.transaction_to) {
                (None, None) => String::new(),
                (f, to) => format!(
                    "<p>Transactions from {} to {}.</p>",
                    f.map_or_else(|| "the start".into(), date),
                    to.map_or_else(|| "now".into(), date)
                ),
            };
            (
                format!("<p><strong>{who}</strong> asks to see, {}:</p><ul>{items}</ul>{window}<p>Choose the accounts it may see:</p>", esc(&until)),
                "checkbox",
            )
        }
        ConsentTerms::DomesticPayment(t) => {
            let i = &t.initiation;
            (
                format!(
                    "<p><strong>{who}</strong> asks to make <strong>one payment</strong> of <strong>{} {}</strong> to <strong>{}</strong> ({} {}){}.</p><p>Choose the account to pay from:</p>",
                    esc(&i.instructed_amount.amount),
                    esc(&i.instructed_amount.currency),
                    esc(&i.creditor_account.name),
                    esc(&i.creditor_account.scheme_name),
                    esc(&i.creditor_account.identification),
                    i.remittance_reference.as_ref().map_or_else(String::new, |r| format!(", reference {}", esc(r)))
                ),
                "radio",
            )
        }
        _ => return error_page(StatusCode::BAD_REQUEST, "unsupported consent kind"),
    };
    let choices: String = accounts
        .iter()
        .map(|(id, name)| {
            let field = if input_type == "radio" {
                format!("name=\"account\" value=\"{}\"", esc(id))
            } else {
                format!("name=\"account-{}\" value=\"on\"", esc(id))
            };
            format!(
                "<label><input type=\"{input_type}\" {field}> {} ({})</label><br>",
                esc(name),
                esc(id)
            )
        })
        .collect();
    let hidden = format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"client_id\" value=\"{}\"><input type=\"hidden\" name=\"request_uri\" value=\"{}\">",
        esc(&csrf_of(session_token)),
        esc(client.as_str()),
        esc(uri.as_str())
    );
    let body = format!(
        "<p>Logged in as {}.</p>{what}<form method=\"post\" action=\"/authorize/decision\">{hidden}{choices}\
         <button type=\"submit\" name=\"decision\" value=\"approve\">Approve</button> \
         <button type=\"submit\" name=\"decision\" value=\"reject\">Reject</button></form>{}",
        esc(&session.customer_id),
        logout_form(session_token)
    );
    page(
        StatusCode::OK,
        "Do you consent?",
        &body,
        &[request.redirect_uri().as_str()],
    )
}

/// `POST /login`: checks a test customer's password (constant time), opens
/// a session, and returns to the authorization request or the dashboard.
/// Seconds either throttling rule still locks `customer` or `address`,
/// and which (see [`super::throttle`]).
async fn login_locked(
    state: &BankState,
    customer: &str,
    address: &str,
) -> Option<(&'static str, i64)> {
    use super::throttle::{PER_ADDRESS, PER_CUSTOMER};
    let now = state.now().as_secs();
    for (scope, key, rule) in [
        ("address", address, &PER_ADDRESS),
        ("customer", customer, &PER_CUSTOMER),
    ] {
        // fail closed: a store that cannot answer throttles everyone
        let locked = match state.login_attempts.attempts(scope, key).await {
            Ok(a) => rule.locked(&a, now).map(|w| (scope, w)),
            Err(_) => Some((scope, 60)),
        };
        if locked.is_some() {
            return locked;
        }
    }
    None
}

/// The login page saying logging in is paused, with 429 and `Retry-After`.
fn throttled_page(
    client_id: &str,
    request_uri: &str,
    scope: &'static str,
    wait_secs: i64,
) -> Response {
    observe::login_attempt("throttled");
    metrics::counter!("fapi_login_throttled_total", "scope" => scope).increment(1);
    let minutes = (wait_secs + 59) / 60;
    let note = format!(
        "Too many attempts. For your security, logging in is paused; try again in {minutes} minute{}.",
        if minutes == 1 { "" } else { "s" }
    );
    let mut r = login_page_with(
        StatusCode::TOO_MANY_REQUESTS,
        client_id,
        request_uri,
        Some(&note),
    );
    if let Ok(v) = HeaderValue::from_str(&wait_secs.max(1).to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

async fn login(
    State(state): State<Arc<BankState>>,
    Extension(info): Extension<super::tls::ConnectionInfo>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(form) = Form::parse(&body, MAX_FORM) else {
        return error_page(StatusCode::BAD_REQUEST, "malformed form");
    };
    // login CSRF: the form must be the one this browser was given
    if !login_form_fresh(&headers, form.get("csrf")) {
        observe::auth_failure("login_csrf");
        return login_page_with(
            StatusCode::FORBIDDEN,
            form.get("client_id").unwrap_or_default(),
            form.get("request_uri").unwrap_or_default(),
            Some("The login form expired or did not come from this bank. Log in again."),
        );
    }
    let username = form.get("username").unwrap_or_default();
    let password = form.get("password").unwrap_or_default();
    let client_id = form.get("client_id").unwrap_or_default();
    let request_uri = form.get("request_uri").unwrap_or_default();
    let address = info.remote.ip().to_string();
    // throttled: refused before the password is even looked at
    if let Some((scope, wait)) = login_locked(&state, username, &address).await {
        return throttled_page(client_id, request_uri, scope, wait);
    }
    let known = state.customers.iter().find(|c| c.id == username);
    // compare against a dummy for unknown users so timing does not tell
    let expected = known.map_or("\u{0}unknown", |c| c.password.as_str());
    let ok = bool::from(password.as_bytes().ct_eq(expected.as_bytes())) && known.is_some();
    if !ok {
        observe::auth_failure("customer_login");
        observe::login_attempt("failure");
        let now = state.now();
        let mut counted = Vec::with_capacity(2);
        for (scope, key, rule) in [
            ("customer", username, super::throttle::PER_CUSTOMER),
            ("address", address.as_str(), super::throttle::PER_ADDRESS),
        ] {
            counted.push(
                state
                    .login_attempts
                    .record_failure(scope, key, rule, now)
                    .await
                    .map(|a| rule.locked(&a, now.as_secs()).map(|w| (scope, w))),
            );
        }
        // this failure locked the id or the address: say so at once
        if let Some((scope, wait)) = counted
            .iter()
            .find_map(|c| c.as_ref().ok().copied().flatten())
        {
            return throttled_page(client_id, request_uri, scope, wait);
        }
        return login_page(
            client_id,
            request_uri,
            Some("Customer id or password is wrong."),
        );
    }
    observe::login_attempt("success");
    if let Err(e) = state.login_attempts.clear("customer", username).await {
        tracing::warn!(error = %fapi_core::store::ErrorChain(&e), "login attempts could not be cleared");
    }
    let Some(token) = state.new_session(username) else {
        return error_page(StatusCode::SERVICE_UNAVAILABLE, "sessions are unavailable");
    };
    let target = if client_id.is_empty() {
        "/dashboard".to_owned()
    } else {
        let q = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", client_id)
            .append_pair("request_uri", request_uri)
            .finish();
        format!("/authorize?{q}")
    };
    let mut r = see_other(&target);
    set_cookie(
        &mut r,
        &format!(
            "{COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECS}"
        ),
    );
    set_cookie(
        &mut r,
        &format!("{LOGIN_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    r
}

/// `POST /logout`: ends the session (with its CSRF token).
async fn logout(State(state): State<Arc<BankState>>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(form) = Form::parse(&body, MAX_FORM) else {
        return error_page(StatusCode::BAD_REQUEST, "malformed form");
    };
    let Some((token, session)) = state.session(&headers) else {
        return dashboard_login(Some("You are not logged in."));
    };
    if !csrf_ok(&token, form.get("csrf")) {
        observe::auth_failure("csrf");
        return error_page(StatusCode::FORBIDDEN, "the form is stale; reload the page");
    }
    if let Ok(mut sessions) = state.sessions.lock() {
        sessions.remove(&token);
    }
    tracing::info!(customer = %session.customer_id, "customer logged out");
    let mut r = page(
        StatusCode::OK,
        "You are logged out",
        "<p>Your session has ended. <a href=\"/dashboard\">Log in again</a>.</p>",
        &[],
    );
    set_cookie(
        &mut r,
        &format!("{COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    r
}

/// `POST /authorize/decision`: approve (with the accounts chosen) or
/// reject; the pushed request is used up, the decision recorded, then the
/// JARM response goes back to the TPP.
async fn decision(
    State(state): State<Arc<BankState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(form) = Form::parse(&body, MAX_FORM) else {
        return error_page(StatusCode::BAD_REQUEST, "malformed form");
    };
    let Some((token, session)) = state.session(&headers) else {
        return error_page(StatusCode::UNAUTHORIZED, "please log in again");
    };
    if !csrf_ok(&token, form.get("csrf")) {
        observe::auth_failure("csrf");
        return error_page(StatusCode::FORBIDDEN, "the form is stale; reload the page");
    }
    let (client, uri, request) =
        match pushed(&state, form.get("client_id"), form.get("request_uri")).await {
            Ok(p) => p,
            Err(r) => return r,
        };
    let Asked { consent, stored } = match consent_of(&state, &request).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let now = state.now();
    let owned: Vec<String> = match customer_accounts(&state, &session.customer_id).await {
        Ok(a) => a.into_iter().map(|(id, _)| id).collect(),
        Err(r) => return r,
    };
    let approve = form.get("decision") == Some("approve");
    let selected: Vec<String> = match consent.terms() {
        ConsentTerms::DomesticPayment(_) => {
            form.get("account").map(str::to_owned).into_iter().collect()
        }
        _ => owned
            .iter()
            .filter(|id| form.get(&format!("account-{id}")) == Some("on"))
            .cloned()
            .collect(),
    };
    if approve && (selected.is_empty() || !selected.iter().all(|a| owned.contains(a))) {
        return error_page(
            StatusCode::BAD_REQUEST,
            "choose at least one of your accounts (one for a payment)",
        );
    }
    // single use: of two concurrent decisions only one gets the request
    let taken = match state.par.take(&uri, &client, now).await {
        Ok(t) => t,
        Err(e) => return request_gone(&state, &client, lookup_phrase(&e)).await,
    };
    let kind = if approve {
        EventKind::Authorise {
            customer_id: session.customer_id.clone(),
            accounts: selected,
        }
    } else {
        EventKind::Reject
    };
    if !stored {
        // scopes alone: the consent exists from the customer's decision on
        // (one per request_uri: the take above is single use)
        if create_audited(&*state.consents, &*state.audit, consent.clone(), None, None)
            .await
            .is_err()
        {
            return error_page(StatusCode::SERVICE_UNAVAILABLE, "try again");
        }
    }
    let event = ConsentEvent {
        kind,
        actor: Actor::Customer(session.customer_id.clone()),
        reason: if approve {
            "approved on the consent screen".into()
        } else {
            "rejected on the consent screen".into()
        },
        at: now,
    };
    if let Err(e) =
        apply_event_audited(&*state.consents, &*state.audit, consent.id(), event, None).await
    {
        return change_failed(&e);
    }
    consent_event(if approve { "granted" } else { "rejected" });
    let response = if approve {
        let Ok(code) = fapi_core::code::AuthorizationCode::generate() else {
            return error_page(StatusCode::SERVICE_UNAVAILABLE, "try again");
        };
        let grant = CodeGrant {
            client_id: client.clone(),
            redirect_uri: taken.request.redirect_uri().clone(),
            code_challenge: taken.request.code_challenge().clone(),
            consent_id: consent.id().clone(),
            customer_id: session.customer_id.clone(),
            scope: taken.request.scope().cloned(),
            nonce: taken.request.nonce().cloned(),
            expires_at: now.saturating_add(state.profile.authorization_code_lifetime_secs()),
            dpop_jkt: taken.request.dpop_jkt().copied(),
        };
        if state.codes.issue(&code, grant).await.is_err() {
            return error_page(StatusCode::SERVICE_UNAVAILABLE, "try again");
        }
        state
            .ring()
            .jarm
            .success(&taken.request, code.secret(), now)
            .await
    } else {
        state
            .ring()
            .jarm
            .error(
                &taken.request,
                ErrorCode::AccessDenied,
                "the customer rejected the request",
                now,
            )
            .await
    };
    deliver(response, Some(taken.request.redirect_uri().as_str()))
}

/// `POST /authorize/cancel`: the customer cancels at the login page; the
/// TPP gets a signed `access_denied` and the pushed request is used up.
async fn cancel(State(state): State<Arc<BankState>>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(form) = Form::parse(&body, MAX_FORM) else {
        return error_page(StatusCode::BAD_REQUEST, "malformed form");
    };
    if !login_form_fresh(&headers, form.get("csrf")) {
        observe::auth_failure("login_csrf");
        return error_page(StatusCode::FORBIDDEN, "the form is stale; reload the page");
    }
    let (client, uri, _) =
        match pushed(&state, form.get("client_id"), form.get("request_uri")).await {
            Ok(p) => p,
            Err(r) => return r,
        };
    let now = state.now();
    let taken = match state.par.take(&uri, &client, now).await {
        Ok(t) => t,
        Err(e) => return request_gone(&state, &client, lookup_phrase(&e)).await,
    };
    tracing::info!("the customer cancelled the authorization");
    let response = state
        .ring()
        .jarm
        .error(
            &taken.request,
            ErrorCode::AccessDenied,
            "the customer cancelled the authorization",
            now,
        )
        .await;
    deliver(response, Some(taken.request.redirect_uri().as_str()))
}

fn dashboard_login(note: Option<&str>) -> Response {
    login_page("", "", note)
}

/// Consents on one dashboard page.
pub(crate) const DASHBOARD_PAGE: usize = 20;

/// The `after` cursor of a dashboard link: `<created_at>.<consent id>`.
fn parse_cursor(v: &str) -> Option<fapi_consent::store::PageCursor> {
    let (secs, id) = v.split_once('.')?;
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(fapi_consent::store::PageCursor {
        created_at: fapi_core::UnixTime::from_secs(secs.parse().ok()?)?,
        id: ConsentId::try_from(id).ok()?,
    })
}

/// `GET /dashboard[?after=CURSOR]`: the customer's consents, newest first,
/// [`DASHBOARD_PAGE`] a page (read through the store's paging index, so a
/// customer with thousands of consents costs one page), what each grants,
/// and a one-click revoke for the active account-access ones.
async fn dashboard(
    State(state): State<Arc<BankState>>,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    let Some((token, session)) = state.session(&headers) else {
        return dashboard_login(None);
    };
    let after = match query.as_deref().filter(|q| !q.is_empty()) {
        None => None,
        Some(q) => {
            let cursor = Form::parse(q.as_bytes(), MAX_FORM)
                .ok()
                .filter(|f| f.names().all(|n| n == "after"))
                .and_then(|f| f.get("after").and_then(parse_cursor));
            match cursor {
                Some(c) => Some(c),
                None => return error_page(StatusCode::BAD_REQUEST, "this page link is not valid"),
            }
        }
    };
    let mut consents = match state
        .consents
        .page_for_customer(&session.customer_id, after.as_ref(), DASHBOARD_PAGE + 1)
        .await
    {
        Ok(c) => c,
        Err(_) => return error_page(StatusCode::SERVICE_UNAVAILABLE, "consents are unavailable"),
    };
    let older = consents.len() > DASHBOARD_PAGE;
    consents.truncate(DASHBOARD_PAGE);
    let next = if older {
        consents.last().map(|c| {
            format!(
                "<p><a href=\"/dashboard?after={}.{}\">Older consents</a></p>",
                c.created_at().as_secs(),
                esc(c.id().as_str())
            )
        })
    } else {
        None
    }
    .unwrap_or_default();
    let newest = if after.is_some() {
        "<p><a href=\"/dashboard\">Newest consents</a></p>"
    } else {
        ""
    };
    let mut rows = String::new();
    for c in &consents {
        let who = esc(&client_name(&state, c.client_id()).await);
        let grants = match c.terms() {
            ConsentTerms::AccountAccess(t) => format!(
                "sees {} on {}",
                esc(&t
                    .permissions
                    .iter()
                    .map(|p| p.plain_words())
                    .collect::<Vec<_>>()
                    .join(", ")),
                esc(&t.accounts.join(", "))
            ),
            ConsentTerms::DomesticPayment(t) => format!(
                "one payment of {} {} to {}",
                esc(&t.initiation.instructed_amount.amount),
                esc(&t.initiation.instructed_amount.currency),
                esc(&t.initiation.creditor_account.name)
            ),
            _ => String::new(),
        };
        let action = if c.status() == fapi_consent::consent::ConsentStatus::Authorised
            && matches!(c.terms(), ConsentTerms::AccountAccess(_))
        {
            format!(
                "<form method=\"post\" action=\"/dashboard/revoke\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"consent_id\" value=\"{}\"><button type=\"submit\">Revoke</button></form>",
                esc(&csrf_of(&token)),
                esc(c.id().as_str())
            )
        } else {
            String::new()
        };
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{who}</td><td>{grants}</td><td>{}</td><td>{action}</td></tr>",
            esc(c.id().as_str()),
            esc(&c.status().to_string())
        ));
    }
    page(
        StatusCode::OK,
        "Your connected apps",
        &format!(
            "<p>Logged in as {}.</p>{}<table><tr><th>Consent</th><th>Provider</th><th>What it allows</th><th>Status</th><th></th></tr>{rows}</table>{newest}{next}",
            esc(&session.customer_id),
            logout_form(&token)
        ),
        &[],
    )
}

/// `POST /dashboard/revoke`: the customer revokes one of their consents.
async fn revoke(State(state): State<Arc<BankState>>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(form) = Form::parse(&body, MAX_FORM) else {
        return error_page(StatusCode::BAD_REQUEST, "malformed form");
    };
    let Some((token, session)) = state.session(&headers) else {
        return dashboard_login(None);
    };
    if !csrf_ok(&token, form.get("csrf")) {
        observe::auth_failure("csrf");
        return error_page(StatusCode::FORBIDDEN, "the form is stale; reload the page");
    }
    let Some(id) = form
        .get("consent_id")
        .and_then(|i| ConsentId::try_from(i).ok())
    else {
        return error_page(StatusCode::BAD_REQUEST, "no consent named");
    };
    // only the customer's own consent
    match state.consents.get(&id).await {
        Ok(Some(c)) if c.customer_id() == Some(session.customer_id.as_str()) => {}
        _ => return error_page(StatusCode::NOT_FOUND, "no such consent"),
    }
    let event = ConsentEvent {
        kind: EventKind::Revoke,
        actor: Actor::Customer(session.customer_id.clone()),
        reason: "revoked on the dashboard".into(),
        at: state.now(),
    };
    if let Err(e) = apply_event_audited(&*state.consents, &*state.audit, &id, event, None).await {
        return change_failed(&e);
    }
    consent_event("revoked");
    tracing::info!(consent_id = %id.as_str(), customer = %session.customer_id, "consent revoked by the customer");
    see_other("/dashboard")
}
