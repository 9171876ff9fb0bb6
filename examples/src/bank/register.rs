//! Dynamic client registration: RFC 7591 (`POST /register`) and RFC 7592
//! (`GET`, `PUT`, `DELETE /register/{client_id}` with the registration
//! access token), in the UK Open Banking DCR shape:
//!
//! - the request is a JWT (`Content-Type: application/jwt`) signed by the
//!   TPP with a key of its software statement's `software_jwks`, for this
//!   bank (`aud` the issuer), `iss` the statement's `software_id`, with
//!   `iat`, `exp` (at most an hour ahead) and a `jti` used once;
//! - `software_statement` is signed by the scheme directory (the key set
//!   and issuer name the bank is configured with; another issuer is
//!   `unapproved_software_statement`) and not expired;
//! - the request arrives over mTLS with a transport certificate of the
//!   scheme CA whose subject is the statement's: `CN` its `software_id`,
//!   `OU` its `org_id` (another TPP's certificate is refused);
//! - every `redirect_uris` entry is one of the statement's;
//! - `token_endpoint_auth_method` is `private_key_jwt` or
//!   `tls_client_auth` (with `tls_client_auth_subject_dn`, or the
//!   certificate's own subject), the signing algorithms are the profile's;
//! - the client's keys are the statement's: `software_jwks` by value, or
//!   fetched from its `software_jwks_endpoint` on an allow-listed directory
//!   host (`directory_jwks_hosts`; see [`crate::registry::JwksEndpoints`]).
//!
//! The registration is then onboarded exactly as `bank tpp onboard` does it
//! ([`crate::registry::onboard`]). The response carries a registration
//! access token (only its SHA-256 is kept, compared in constant time) and
//! the `registration_client_uri`. Reading, updating and deleting a
//! registration need that token over a connection whose certificate the
//! client holds. `DELETE` revokes the client: its calls are refused from
//! the next one on, and only the operator (`bank tpp reinstate`) brings it
//! back.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use fapi_consent::audit::{AuditAction, AuditEvent};
use fapi_core::claims::{Claims, TimeRules};
use fapi_core::client::AuthMethod;
use fapi_core::crypto::CryptoProvider;
use fapi_core::jose::{ExpectedType, JwsPolicy, UnverifiedJws};
use fapi_core::jwk::{JwkSet, KeySet};
use fapi_core::{ClientId, ErrorCode};
use fapi_mtls_binding::dn::{AttributeValue, DistinguishedName};
use fapi_mtls_binding::{ClientCertificate, PresentedCertificate};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::errors::OAuthFailure;
use super::observe::auth_failure;
use super::tls::ConnectionInfo;
use super::BankState;
use crate::registry::{onboard, verify_software_statement, OnboardingError, Registration};

/// Largest registration request (a JWT carrying a software statement).
pub(crate) const MAX_REGISTRATION_BODY: usize = 64 * 1024;

/// The longest a registration request may be valid for (its `jti` is
/// remembered that long).
const MAX_REQUEST_LIFETIME_SECS: i64 = 3600;

/// The scheme directory as dynamic registration reads it.
#[derive(Clone)]
pub(crate) struct Directory {
    /// The keys that sign software statements.
    pub(crate) keys: Arc<KeySet>,
    /// The statements' `iss`.
    pub(crate) issuer: String,
    /// The provider every key is parsed with.
    pub(crate) provider: Arc<dyn CryptoProvider>,
    /// Where the TPPs' keys may be fetched from, for statements that name
    /// them by `software_jwks_endpoint`.
    pub(crate) jwks_endpoints: Arc<crate::registry::JwksEndpoints>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

fn metadata_error(description: impl Into<String>) -> OAuthFailure {
    auth_failure("registration");
    OAuthFailure::new(ErrorCode::InvalidClientMetadata, description)
}

fn statement_error(description: impl Into<String>) -> OAuthFailure {
    auth_failure("registration");
    OAuthFailure::new(ErrorCode::InvalidSoftwareStatement, description)
}

fn store_failed() -> OAuthFailure {
    OAuthFailure::new(ErrorCode::ServerError, "client registry unavailable")
}

/// The connection's certificate, of the scheme CA.
fn transport_certificate<'a>(
    state: &BankState,
    info: &'a ConnectionInfo,
) -> Result<&'a PresentedCertificate, OAuthFailure> {
    let refused = |d: String| {
        auth_failure("registration_certificate");
        OAuthFailure::new(ErrorCode::InvalidClient, d)
    };
    let certificate = info
        .presented()
        .ok_or_else(|| refused("a transport certificate of the scheme CA is required".into()))?;
    if info.certificate().is_self_signed() {
        return Err(refused(
            "dynamic registration needs a transport certificate of the scheme CA, not a self-signed one"
                .into(),
        ));
    }
    info.check_trust(&state.trust, state.now())
        .map_err(|e| refused(format!("client certificate is not trusted: {e}")))?;
    Ok(certificate)
}

/// The UK OB rule: the transport certificate's subject carries the
/// statement's `software_id` as its one `CN` and `org_id` as its one `OU`
/// (exact text).
fn subject_is_the_statements(
    certificate: &ClientCertificate,
    software_id: &str,
    org_id: &str,
) -> bool {
    let dn = DistinguishedName::of_subject(certificate.certificate());
    let only = |name: &str| {
        let mut values = dn
            .rdns()
            .iter()
            .flat_map(|r| r.attributes())
            .filter(|a| a.attribute_type().name() == Some(name))
            .map(|a| a.value());
        match (values.next(), values.next()) {
            (Some(AttributeValue::Text(t)), None) => Some(t.clone()),
            _ => None,
        }
    };
    only("CN").as_deref() == Some(software_id) && only("OU").as_deref() == Some(org_id)
}

fn strings(claims: &Claims, name: &'static str) -> Result<Option<Vec<String>>, OAuthFailure> {
    let Some(v) = claims.get(name) else {
        return Ok(None);
    };
    let list = v
        .as_array()
        .ok_or_else(|| metadata_error(format!("{name} must be an array of strings")))?;
    list.iter()
        .map(|s| {
            s.as_str()
                .map(str::to_owned)
                .ok_or_else(|| metadata_error(format!("{name} must be an array of strings")))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn optional_string<'c>(
    claims: &'c Claims,
    name: &'static str,
) -> Result<Option<&'c str>, OAuthFailure> {
    claims
        .string(name)
        .map_err(|e| metadata_error(e.to_string()))
}

/// Verifies a registration request (see the module docs) and returns the
/// registration it asks for, with the transport certificate.
async fn verified_request(
    state: &BankState,
    info: &ConnectionInfo,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Registration, ClientCertificate), OAuthFailure> {
    let certificate = transport_certificate(state, info)?.certificate().clone();
    let mut types = headers.get_all(header::CONTENT_TYPE).iter();
    let is_jwt = match (types.next().and_then(|v| v.to_str().ok()), types.next()) {
        (Some(t), None) => t.trim().eq_ignore_ascii_case("application/jwt"),
        _ => false,
    };
    if !is_jwt {
        return Err(metadata_error(
            "the registration request must be a JWT signed by the TPP, sent as Content-Type: application/jwt",
        ));
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| metadata_error("the registration request is not text"))?
        .trim();
    let request = UnverifiedJws::parse(text)
        .map_err(|e| metadata_error(format!("the registration request is not a JWS: {e}")))?;
    let unverified = request
        .unverified_claims()
        .map_err(|e| metadata_error(format!("the registration request is not a JWS: {e}")))?;
    let statement = unverified
        .string("software_statement")
        .map_err(|e| metadata_error(e.to_string()))?
        .ok_or_else(|| metadata_error("software_statement is required"))?
        .to_owned();

    // the statement: from the scheme directory, signed by it, in force
    let directory = &state.scheme_directory;
    let statement_issuer = UnverifiedJws::parse(&statement)
        .and_then(|s| s.unverified_claims())
        .map_err(|e| statement_error(format!("software_statement is not a JWS: {e}")))?
        .string("iss")
        .ok()
        .flatten()
        .map(str::to_owned);
    if statement_issuer.as_deref() != Some(directory.issuer.as_str()) {
        auth_failure("registration");
        return Err(OAuthFailure::new(
            ErrorCode::UnapprovedSoftwareStatement,
            "software_statement is not issued by a directory this bank accepts",
        ));
    }
    let now = state.now();
    let mut registration = verify_software_statement(
        &statement,
        &directory.keys,
        &directory.issuer,
        state.profile,
        now,
    )
    .map_err(|e| statement_error(e.to_string()))?;
    directory
        .jwks_endpoints
        .resolve(&mut registration)
        .await
        .map_err(|e| statement_error(e.to_string()))?;
    let software_id = registration.software_id.clone().unwrap_or_default();
    let org_id = registration.org_id.clone().unwrap_or_default();

    // the request: signed by the TPP's statement key, for this bank, once
    let jwks = JwkSet::from_json(registration.jwks.to_string().as_bytes())
        .map_err(|e| statement_error(format!("software_jwks: {e}")))?;
    let tpp_keys = KeySet::from_jwks(&jwks, &*directory.provider, &state.profile.key_policy())
        .map_err(|e| statement_error(format!("software_jwks: {e}")))?;
    let verified = request
        .verify(
            &tpp_keys,
            &JwsPolicy::new(state.profile.algorithms(), ExpectedType::JwtOrAbsent),
        )
        .map_err(|e| {
            metadata_error(format!(
                "the registration request is not signed by a key of the software statement: {e}"
            ))
        })?;
    let claims = verified.claims();
    let times = claims
        .check_times(&TimeRules::issued_token(true), now)
        .map_err(|e| metadata_error(format!("the registration request: {e}")))?;
    let exp = times.exp;
    if exp.as_secs() - now.as_secs() > MAX_REQUEST_LIFETIME_SECS {
        return Err(metadata_error(
            "the registration request: exp must be within an hour",
        ));
    }
    if claims
        .required_string("iss")
        .map_err(|e| metadata_error(e.to_string()))?
        != software_id
    {
        return Err(metadata_error(
            "the registration request's iss must be the software statement's software_id",
        ));
    }
    let for_us = claims
        .audience()
        .map_err(|e| metadata_error(e.to_string()))?
        .is_some_and(|a| a.contains(state.issuer.as_str()));
    if !for_us {
        return Err(metadata_error(
            "the registration request's aud must be this bank's issuer",
        ));
    }
    let jti = claims
        .required_string("jti")
        .map_err(|e| metadata_error(e.to_string()))?;
    let first_use = state
        .replay
        .insert_if_absent(&format!("register:{software_id}"), jti, exp, now)
        .await
        .map_err(|_| store_failed())?;
    if !first_use {
        return Err(metadata_error(
            "the registration request's jti has been used before",
        ));
    }

    // the certificate is the statement's TPP's
    if !subject_is_the_statements(&certificate, &software_id, &org_id) {
        auth_failure("registration_certificate");
        return Err(metadata_error(
            "the transport certificate's subject is not the software statement's (CN must be its software_id, OU its org_id)",
        ));
    }

    // what the client asks for, within the statement
    let redirects = strings(claims, "redirect_uris")?
        .filter(|r| !r.is_empty())
        .ok_or_else(|| metadata_error("redirect_uris is required"))?;
    if let Some(stray) = redirects
        .iter()
        .find(|r| !registration.redirect_uris.contains(r))
    {
        auth_failure("registration");
        return Err(OAuthFailure::new(
            ErrorCode::InvalidRedirectUri,
            format!("redirect URI {stray:?} is not in the software statement"),
        ));
    }
    registration.redirect_uris = redirects;
    let method =
        optional_string(claims, "token_endpoint_auth_method")?.unwrap_or("private_key_jwt");
    match AuthMethod::from_name(method) {
        Some(AuthMethod::PrivateKeyJwt | AuthMethod::TlsClientAuth) => {}
        _ => {
            return Err(metadata_error(
                "token_endpoint_auth_method must be private_key_jwt or tls_client_auth",
            ))
        }
    }
    method.clone_into(&mut registration.token_endpoint_auth_method);
    registration.certificate_subject.tls_client_auth_subject_dn =
        optional_string(claims, "tls_client_auth_subject_dn")?.map(str::to_owned);
    let mut algorithms = Vec::new();
    for name in [
        "token_endpoint_auth_signing_alg",
        "request_object_signing_alg",
        "id_token_signed_response_alg",
    ] {
        if let Some(alg) = optional_string(claims, name)? {
            if !state
                .profile
                .algorithms()
                .iter()
                .any(|a| a.jose_name() == alg)
            {
                return Err(metadata_error(format!(
                    "{name} {alg:?} is not one this bank's profile allows"
                )));
            }
            if name != "id_token_signed_response_alg" && !algorithms.iter().any(|a| a == alg) {
                algorithms.push(alg.to_owned());
            }
        }
    }
    registration.signing_algorithms = algorithms;
    let allowed = |name: &'static str, supported: &[&str]| -> Result<(), OAuthFailure> {
        match strings(claims, name)? {
            Some(asked) => match asked.iter().find(|a| !supported.contains(&a.as_str())) {
                Some(other) => Err(metadata_error(format!("{name} {other:?} is not supported"))),
                None => Ok(()),
            },
            None => Ok(()),
        }
    };
    allowed(
        "grant_types",
        &["authorization_code", "client_credentials", "refresh_token"],
    )?;
    allowed("response_types", &["code"])?;
    if let Some(kind) = optional_string(claims, "application_type")? {
        if kind != "web" {
            return Err(metadata_error("application_type must be web"));
        }
    }
    Ok((registration, certificate))
}

fn token_hash(token: &str) -> String {
    fapi_core::encoding::b64url_encode(&Sha256::digest(token.as_bytes()))
}

/// The registration as RFC 7591 §3.2.1 returns it.
fn client_information(state: &BankState, r: &Registration, token: Option<&str>) -> Value {
    let mut v = json!({
        "client_id": r.client_id,
        "client_name": r.client_name,
        "redirect_uris": r.redirect_uris,
        "token_endpoint_auth_method": r.token_endpoint_auth_method,
        "grant_types": ["authorization_code", "client_credentials", "refresh_token"],
        "response_types": ["code"],
        "application_type": "web",
        "jwks": r.jwks,
        "software_id": r.software_id,
        "org_id": r.org_id,
        "software_roles": r.software_roles,
        "registration_client_uri": state.endpoint(&format!("/register/{}", r.client_id)),
    });
    if let Some(obj) = v.as_object_mut() {
        for (name, value) in [
            (
                "tls_client_auth_subject_dn",
                &r.certificate_subject.tls_client_auth_subject_dn,
            ),
            (
                "tls_client_auth_san_dns",
                &r.certificate_subject.tls_client_auth_san_dns,
            ),
            (
                "tls_client_auth_san_uri",
                &r.certificate_subject.tls_client_auth_san_uri,
            ),
            (
                "tls_client_auth_san_ip",
                &r.certificate_subject.tls_client_auth_san_ip,
            ),
            (
                "tls_client_auth_san_email",
                &r.certificate_subject.tls_client_auth_san_email,
            ),
        ] {
            if let Some(value) = value {
                obj.insert(name.into(), json!(value));
            }
        }
        if let Some(alg) = r.signing_algorithms.first() {
            obj.insert("token_endpoint_auth_signing_alg".into(), json!(alg));
            obj.insert("request_object_signing_alg".into(), json!(alg));
        }
        if let Some(token) = token {
            obj.insert("registration_access_token".into(), json!(token));
        }
    }
    v
}

/// Records a registration change the TPP made, with the hash of the
/// request that made it. The change has taken effect: if it cannot be
/// recorded, the TPP is told to retry (`server_error`).
async fn audit_change(
    state: &BankState,
    client: &ClientId,
    change: &str,
    request: Option<&[u8]>,
) -> Result<(), OAuthFailure> {
    let mut event = AuditEvent::new(
        AuditAction::RegistrationChanged {
            change: change.to_owned(),
        },
        state.now(),
    );
    event.client_id = Some(client.clone());
    event.request_sha256 = request.map(|r| fapi_core::encoding::b64url_encode(&Sha256::digest(r)));
    super::oauth::append_audit(state, event).await
}

/// Onboards a verified registration as `bank tpp onboard` does, and
/// audits it as `change` (`registered` or `updated`) with the hash of the
/// request `body` that made it; the registration as stored.
async fn store(
    state: &BankState,
    registration: &Registration,
    certificate: &ClientCertificate,
    change: &str,
    body: &[u8],
) -> Result<Registration, OAuthFailure> {
    let stored = onboard(
        &state.registry,
        registration,
        certificate,
        &state.trust,
        &*state.scheme_directory.provider,
        state.profile,
        state.now(),
    )
    .await
    .map_err(onboarding_failed)?;
    tracing::info!(client_id = %stored.client_id, change, "client registration changed");
    let id = ClientId::try_from(stored.client_id.as_str()).map_err(|_| store_failed())?;
    audit_change(state, &id, change, Some(body)).await?;
    Ok(stored)
}

fn onboarding_failed(e: OnboardingError) -> OAuthFailure {
    match e {
        OnboardingError::Store(_) => store_failed(),
        e => metadata_error(e.to_string()),
    }
}

fn answer(status: StatusCode, body: Value) -> Response {
    super::oauth::no_store((status, Json(body)).into_response())
}

/// `POST /register` (RFC 7591).
pub(crate) async fn register(
    State(state): State<Arc<BankState>>,
    Extension(info): Extension<ConnectionInfo>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthFailure> {
    let (mut registration, certificate) = verified_request(&state, &info, &headers, &body).await?;
    let id = ClientId::try_from(registration.client_id.as_str())
        .map_err(|e| statement_error(e.to_string()))?;
    if state
        .registry
        .client(&id)
        .await
        .map_err(|_| store_failed())?
        .is_some()
    {
        return Err(metadata_error(format!(
            "{} is already registered: update it with PUT on its registration_client_uri",
            registration.client_id
        )));
    }
    let token = fapi_core::random::token(32).map_err(|_| store_failed())?;
    registration.registration_access_token_sha256 = Some(token_hash(&token));
    let stored = store(&state, &registration, &certificate, "registered", &body).await?;
    let mut body = client_information(&state, &stored, Some(&token));
    if let Some(obj) = body.as_object_mut() {
        obj.insert("client_id_issued_at".into(), json!(state.now().as_secs()));
    }
    Ok(super::oauth::labelled(
        answer(StatusCode::CREATED, body),
        &id,
    ))
}

/// The registration `client_id` names, for a request carrying its
/// registration access token over a connection whose certificate the
/// client holds (RFC 7592 §2). Any failure of the token is the same
/// `invalid_token`, whether the client exists or not.
async fn managed(
    state: &BankState,
    info: &ConnectionInfo,
    client_id: &str,
    headers: &HeaderMap,
) -> Result<Registration, OAuthFailure> {
    let invalid = || {
        auth_failure("registration_access_token");
        OAuthFailure::new(
            ErrorCode::InvalidToken,
            "the registration access token is not valid for this client",
        )
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .ok_or_else(invalid)?;
    let id = ClientId::try_from(client_id).map_err(|_| invalid())?;
    let registered = state
        .registry
        .client(&id)
        .await
        .map_err(|_| store_failed())?
        .filter(|c| !c.revoked)
        .ok_or_else(invalid)?;
    let stored = registered
        .registration
        .registration_access_token_sha256
        .as_deref()
        .ok_or_else(invalid)?;
    if !bool::from(token_hash(token).as_bytes().ct_eq(stored.as_bytes())) {
        return Err(invalid());
    }
    let certificate = transport_certificate(state, info)?;
    let metadata = state
        .clients
        .metadata(&registered.registration)
        .map_err(|_| store_failed())?;
    super::oauth::hold_certificate(
        state,
        certificate,
        &metadata,
        "registration_certificate",
        state.now(),
    )
    .await?;
    Ok(registered.registration)
}

/// `GET /register/{client_id}` (RFC 7592 §2.1).
pub(crate) async fn read(
    State(state): State<Arc<BankState>>,
    Extension(info): Extension<ConnectionInfo>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, OAuthFailure> {
    let registration = managed(&state, &info, &client_id, &headers).await?;
    Ok(answer(
        StatusCode::OK,
        client_information(&state, &registration, None),
    ))
}

/// `PUT /register/{client_id}` (RFC 7592 §2.2): a new signed request, as
/// for `POST`, for the same client; the registration access token stays.
pub(crate) async fn update(
    State(state): State<Arc<BankState>>,
    Extension(info): Extension<ConnectionInfo>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthFailure> {
    let current = managed(&state, &info, &client_id, &headers).await?;
    let (mut registration, certificate) = verified_request(&state, &info, &headers, &body).await?;
    if registration.client_id != current.client_id {
        return Err(metadata_error(
            "the software statement is for another client than this registration",
        ));
    }
    registration.registration_access_token_sha256 = current.registration_access_token_sha256;
    let stored = store(&state, &registration, &certificate, "updated", &body).await?;
    Ok(answer(
        StatusCode::OK,
        client_information(&state, &stored, None),
    ))
}

/// `DELETE /register/{client_id}` (RFC 7592 §2.3): the client is revoked.
pub(crate) async fn delete(
    State(state): State<Arc<BankState>>,
    Extension(info): Extension<ConnectionInfo>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, OAuthFailure> {
    let registration = managed(&state, &info, &client_id, &headers).await?;
    let id = ClientId::try_from(registration.client_id.as_str()).map_err(|_| store_failed())?;
    state
        .registry
        .revoke_client(&id)
        .await
        .map_err(|_| store_failed())?;
    tracing::info!(client_id = %id.as_str(), "client deleted its registration");
    audit_change(&state, &id, "deleted", None).await?;
    Ok(super::oauth::no_store(
        StatusCode::NO_CONTENT.into_response(),
    ))
}
