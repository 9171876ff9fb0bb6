//! Authorization requests: signed request objects ([RFC 9101], FAPI 1 Adv
//! §5.2.2, FAPI 2 MS §5.3) and, for FAPI 2 SP only, plain PAR parameters,
//! validated into a [`ValidatedAuthorizationRequest`].
//!
//! Only the parameters inside a signed request object are used. An outer
//! parameter that repeats an inner one with a different value is an error;
//! an outer parameter without an inner twin is ignored, never used.
//!
//! [RFC 9101]: https://www.rfc-editor.org/rfc/rfc9101

use core::fmt;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::claims::{ClaimError, Claims};
use crate::client::ClientMetadata;
use crate::error::{ErrorCode, OAuthError};
use crate::jose::{ExpectedType, JoseError, JwsPolicy, UnverifiedJws};
use crate::profile::Profile;
use crate::time::UnixTime;
use crate::types::{ClientId, CodeChallenge, Issuer, Nonce, RedirectUri, Scope, State};

/// The `typ` of a request object ([RFC 9101 §10.8]).
///
/// [RFC 9101 §10.8]: https://www.rfc-editor.org/rfc/rfc9101#section-10.8
pub const REQUEST_OBJECT_TYP: &str = "oauth-authz-req+jwt";

/// Most outer parameters accepted with one request.
pub const MAX_PARAMETERS: usize = 64;

/// The rule an authorization request broke.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestRule {
    /// The profile requires a signed request object and none was sent.
    SignedRequestObjectRequired,
    /// The request object's JWS failed a JOSE rule.
    Jose(JoseError),
    /// A claim failed (type, time window, issuer, audience).
    Claim(ClaimError),
    /// `client_id` inside differs from the authenticated client.
    ClientIdMismatch,
    /// `iss` is not the client id.
    IssuerNotClient,
    /// The request object carries `request` or `request_uri`.
    NestedRequestReference,
    /// A parameter appears twice in the outer request.
    RepeatedParameter,
    /// Too many outer parameters.
    TooManyParameters,
    /// An outer parameter contradicts the request object.
    ConflictingOuterParameter(&'static str),
    /// A required parameter is absent.
    Missing(&'static str),
    /// A parameter has the wrong type or form.
    Invalid(&'static str),
    /// `response_type` is not allowed by the profile.
    UnsupportedResponseType,
    /// `response_mode` is unknown or not allowed with the response type.
    UnsupportedResponseMode,
    /// `redirect_uri` is not registered for the client (exact match).
    UnregisteredRedirectUri,
    /// PKCE `code_challenge` is missing.
    PkceChallengeRequired,
    /// `code_challenge_method` is missing or not `S256` (`plain` rejected).
    PkceMethodNotS256,
    /// `nonce` is required (FAPI 1 with `openid` in scope).
    NonceRequired,
}

impl fmt::Display for RequestRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SignedRequestObjectRequired => {
                f.write_str("a signed request object is required by this profile")
            }
            Self::Jose(e) => write!(f, "request object rejected: {e}"),
            Self::Claim(e) => write!(f, "request object rejected: {e}"),
            Self::ClientIdMismatch => {
                f.write_str("client_id in the request object is not the authenticated client")
            }
            Self::IssuerNotClient => f.write_str("request object iss must be the client_id"),
            Self::NestedRequestReference => {
                f.write_str("request object must not contain request or request_uri")
            }
            Self::RepeatedParameter => f.write_str("a request parameter is repeated"),
            Self::TooManyParameters => f.write_str("too many request parameters"),
            Self::ConflictingOuterParameter(n) => write!(
                f,
                "parameter `{n}` outside the request object differs from the one inside"
            ),
            Self::Missing(n) => write!(f, "parameter `{n}` is required"),
            Self::Invalid(n) => write!(f, "parameter `{n}` is invalid"),
            Self::UnsupportedResponseType => {
                f.write_str("response_type is not allowed by this profile")
            }
            Self::UnsupportedResponseMode => {
                f.write_str("response_mode is not supported for this response_type")
            }
            Self::UnregisteredRedirectUri => {
                f.write_str("redirect_uri is not registered for this client")
            }
            Self::PkceChallengeRequired => f.write_str("code_challenge is required (PKCE)"),
            Self::PkceMethodNotS256 => f.write_str("code_challenge_method must be S256"),
            Self::NonceRequired => f.write_str("nonce is required when openid is in scope"),
        }
    }
}

/// An authorization request was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{rule}")]
pub struct AuthorizationRequestError {
    rule: RequestRule,
    in_request_object: bool,
}

impl AuthorizationRequestError {
    /// The rule that was broken.
    pub fn rule(&self) -> &RequestRule {
        &self.rule
    }
}

impl OAuthError for AuthorizationRequestError {
    fn error_code(&self) -> ErrorCode {
        match self.rule {
            RequestRule::UnsupportedResponseType => ErrorCode::UnsupportedResponseType,
            RequestRule::SignedRequestObjectRequired
            | RequestRule::RepeatedParameter
            | RequestRule::TooManyParameters
            | RequestRule::ConflictingOuterParameter(_)
            | RequestRule::UnregisteredRedirectUri => ErrorCode::InvalidRequest,
            _ if self.in_request_object => ErrorCode::InvalidRequestObject,
            _ => ErrorCode::InvalidRequest,
        }
    }
}

/// `response_type` values FAPI allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseType {
    /// `code`
    Code,
    /// `code id_token` (FAPI 1 Advanced hybrid flow)
    CodeIdToken,
}

/// `response_mode` values (OAuth 2.0 Multiple Response Types, Form Post, JARM).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseMode {
    /// `query`
    Query,
    /// `fragment`
    Fragment,
    /// `form_post`
    FormPost,
    /// `jwt` (JARM, default encoding for the response type)
    Jwt,
    /// `query.jwt`
    QueryJwt,
    /// `fragment.jwt`
    FragmentJwt,
    /// `form_post.jwt`
    FormPostJwt,
}

impl ResponseMode {
    fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "query" => Self::Query,
            "fragment" => Self::Fragment,
            "form_post" => Self::FormPost,
            "jwt" => Self::Jwt,
            "query.jwt" => Self::QueryJwt,
            "fragment.jwt" => Self::FragmentJwt,
            "form_post.jwt" => Self::FormPostJwt,
            _ => return None,
        })
    }
    /// Whether this is a JARM mode.
    pub fn is_jarm(self) -> bool {
        matches!(
            self,
            Self::Jwt | Self::QueryJwt | Self::FragmentJwt | Self::FormPostJwt
        )
    }
}

/// The authorization server's request validation, configured once (the
/// profile in force and the expected `aud`) and called for every request:
/// [`RequestValidator::request_object`] for a signed request object (by
/// value or pushed), [`RequestValidator::plain_parameters`] for unsigned PAR
/// parameters where the profile allows them.
#[derive(Clone, Debug)]
pub struct RequestValidator {
    profile: Profile,
    issuer: Issuer,
}

impl RequestValidator {
    /// Requests under `profile` to the authorization server `issuer`.
    pub fn new(profile: Profile, issuer: Issuer) -> Self {
        Self { profile, issuer }
    }

    /// The profile in force.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// The authorization server's issuer identifier (the expected `aud`).
    pub fn issuer(&self) -> &Issuer {
        &self.issuer
    }
}

/// An authorization request that passed every rule of its profile. Only the
/// validators in this module make one.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidatedAuthorizationRequest {
    profile: Profile,
    client_id: ClientId,
    response_type: ResponseType,
    response_mode: Option<ResponseMode>,
    redirect_uri: RedirectUri,
    scope: Option<Scope>,
    state: Option<State>,
    nonce: Option<Nonce>,
    code_challenge: CodeChallenge,
    claims: Option<Value>,
    authorization_details: Option<Value>,
    dpop_jkt: Option<crate::crypto::JwkThumbprint>,
    request_object_sha256: Option<[u8; 32]>,
    request_object_expires_at: Option<UnixTime>,
}

impl ValidatedAuthorizationRequest {
    /// The profile it was validated under.
    pub fn profile(&self) -> Profile {
        self.profile
    }
    /// The client.
    pub fn client_id(&self) -> &ClientId {
        &self.client_id
    }
    /// `response_type`.
    pub fn response_type(&self) -> ResponseType {
        self.response_type
    }
    /// `response_mode`, if the client chose one.
    pub fn response_mode(&self) -> Option<ResponseMode> {
        self.response_mode
    }
    /// The registered redirect URI the response goes to.
    pub fn redirect_uri(&self) -> &RedirectUri {
        &self.redirect_uri
    }
    /// `scope`.
    pub fn scope(&self) -> Option<&Scope> {
        self.scope.as_ref()
    }
    /// `state`, returned verbatim.
    pub fn state(&self) -> Option<&State> {
        self.state.as_ref()
    }
    /// `nonce`.
    pub fn nonce(&self) -> Option<&Nonce> {
        self.nonce.as_ref()
    }
    /// The PKCE S256 challenge.
    pub fn code_challenge(&self) -> &CodeChallenge {
        &self.code_challenge
    }
    /// The OIDC `claims` request parameter.
    pub fn claims(&self) -> Option<&Value> {
        self.claims.as_ref()
    }
    /// RFC 9449 §10 `dpop_jkt`: the DPoP key the code is to be bound to
    /// (the code is then redeemed only with a proof by it).
    pub fn dpop_jkt(&self) -> Option<&crate::crypto::JwkThumbprint> {
        self.dpop_jkt.as_ref()
    }
    /// RFC 9396 `authorization_details`.
    pub fn authorization_details(&self) -> Option<&Value> {
        self.authorization_details.as_ref()
    }
    /// SHA-256 of the signed request object as received, for the payment
    /// authorisation record.
    pub fn request_object_sha256(&self) -> Option<&[u8; 32]> {
        self.request_object_sha256.as_ref()
    }
    /// The request object's `exp`.
    pub fn request_object_expires_at(&self) -> Option<UnixTime> {
        self.request_object_expires_at
    }
    /// The UK Open Banking intent (consent) id requested through
    /// `claims.id_token.openbanking_intent_id.value` (or `userinfo`).
    pub fn openbanking_intent_id(&self) -> Option<&str> {
        let claims = self.claims.as_ref()?;
        ["id_token", "userinfo"].iter().find_map(|member| {
            claims
                .get(member)?
                .get("openbanking_intent_id")?
                .get("value")?
                .as_str()
        })
    }
}

/// Where parameter values come from: JSON claims of a request object, or
/// form-encoded strings.
enum Params<'a> {
    Object(&'a Claims),
    Form(&'a [(String, String)]),
}

impl Params<'_> {
    fn string(&self, name: &'static str) -> Result<Option<&str>, RequestRule> {
        match self {
            Params::Object(c) => c.string(name).map_err(|_| RequestRule::Invalid(name)),
            Params::Form(f) => Ok(f.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())),
        }
    }
    fn json(&self, name: &'static str) -> Result<Option<Value>, RequestRule> {
        match self {
            Params::Object(c) => Ok(c.get(name).cloned()),
            Params::Form(f) => match f.iter().find(|(k, _)| k == name) {
                None => Ok(None),
                Some((_, v)) => serde_json::from_str(v)
                    .map(Some)
                    .map_err(|_| RequestRule::Invalid(name)),
            },
        }
    }
}

const KNOWN_PARAMETERS: [&str; 15] = [
    "dpop_jkt",
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "response_mode",
    "claims",
    "authorization_details",
    "max_age",
    "acr_values",
    "prompt",
];

fn check_outer(outer: &[(String, String)]) -> Result<(), RequestRule> {
    if outer.len() > MAX_PARAMETERS {
        return Err(RequestRule::TooManyParameters);
    }
    for (i, (k, _)) in outer.iter().enumerate() {
        if outer.iter().skip(i + 1).any(|(k2, _)| k2 == k) {
            return Err(RequestRule::RepeatedParameter);
        }
    }
    Ok(())
}

impl RequestValidator {
    /// Validates a signed request object (by value or from PAR) sent by
    /// `client`, with the outer request parameters `outer` (`request` itself
    /// may be among them and is skipped).
    ///
    /// # Errors
    /// [`AuthorizationRequestError`] naming the rule broken.
    pub fn request_object(
        &self,
        request_object: &str,
        outer: &[(String, String)],
        client: &ClientMetadata,
        now: UnixTime,
    ) -> Result<ValidatedAuthorizationRequest, AuthorizationRequestError> {
        let in_object = |rule| AuthorizationRequestError {
            rule,
            in_request_object: true,
        };
        check_outer(outer).map_err(in_object)?;
        let algorithms = client.algorithms(self.profile);
        let policy = JwsPolicy {
            algorithms: &algorithms,
            typ: ExpectedType::Exact(REQUEST_OBJECT_TYP),
            understood_critical: &[],
        };
        let verified = UnverifiedJws::parse(request_object)
            .and_then(|jws| jws.verify(client.keys(), &policy))
            .map_err(|e| in_object(RequestRule::Jose(e)))?;
        let claims = verified.claims();
        let claim = |e: ClaimError| in_object(RequestRule::Claim(e));
        let times = claims
            .check_times(&self.profile.request_object_times(), now)
            .map_err(claim)?;
        if claims.required_string("iss").map_err(claim)? != client.client_id().as_str() {
            return Err(in_object(RequestRule::IssuerNotClient));
        }
        let aud = claims
            .audience()
            .map_err(claim)?
            .ok_or(ClaimError::Missing("aud"))
            .map_err(claim)?;
        let aud_ok = if self.profile.audience_array_allowed() {
            aud.contains(self.issuer.as_str())
        } else {
            aud.is_exactly(self.issuer.as_str())
        };
        if !aud_ok {
            return Err(claim(ClaimError::WrongAudience));
        }
        if claims.get("request").is_some() || claims.get("request_uri").is_some() {
            return Err(in_object(RequestRule::NestedRequestReference));
        }
        // outer duplicates must agree with the signed values
        for (name, value) in outer {
            if name == "request" {
                continue;
            }
            let Some(inner) = claims.get(name) else {
                continue; // outer-only: ignored, never used
            };
            let same = match inner {
                Value::String(s) => s == value,
                other => serde_json::from_str::<Value>(value).is_ok_and(|v| &v == other),
            };
            if !same {
                let known = KNOWN_PARAMETERS
                    .iter()
                    .find(|k| *k == name)
                    .copied()
                    .unwrap_or("parameter");
                return Err(AuthorizationRequestError {
                    rule: RequestRule::ConflictingOuterParameter(known),
                    in_request_object: true,
                });
            }
        }
        let mut validated = validate_parameters(&Params::Object(claims), client, self.profile)
            .map_err(in_object)?;
        validated.request_object_sha256 = Some(Sha256::digest(request_object.as_bytes()).into());
        validated.request_object_expires_at = Some(times.exp);
        Ok(validated)
    }

    /// Validates plain (unsigned) authorization parameters pushed through PAR.
    /// Allowed only where the profile does not require a signed request object
    /// (FAPI 2 Security Profile).
    ///
    /// # Errors
    /// [`AuthorizationRequestError`] naming the rule broken.
    pub fn plain_parameters(
        &self,
        params: &[(String, String)],
        client: &ClientMetadata,
    ) -> Result<ValidatedAuthorizationRequest, AuthorizationRequestError> {
        let err = |rule| AuthorizationRequestError {
            rule,
            in_request_object: false,
        };
        if self.profile.requires_signed_request_object() {
            return Err(err(RequestRule::SignedRequestObjectRequired));
        }
        check_outer(params).map_err(err)?;
        if params
            .iter()
            .any(|(k, _)| k == "request" || k == "request_uri")
        {
            return Err(err(RequestRule::NestedRequestReference));
        }
        validate_parameters(&Params::Form(params), client, self.profile).map_err(err)
    }
}

fn validate_parameters(
    p: &Params<'_>,
    client: &ClientMetadata,
    profile: Profile,
) -> Result<ValidatedAuthorizationRequest, RequestRule> {
    let client_id = p
        .string("client_id")?
        .ok_or(RequestRule::Missing("client_id"))?;
    if client_id != client.client_id().as_str() {
        return Err(RequestRule::ClientIdMismatch);
    }
    let response_mode = match p.string("response_mode")? {
        None => None,
        Some(m) => Some(ResponseMode::from_name(m).ok_or(RequestRule::UnsupportedResponseMode)?),
    };
    let response_type = match (p.string("response_type")?, profile) {
        (None, _) => return Err(RequestRule::Missing("response_type")),
        (Some("code"), Profile::Fapi1Advanced) => {
            // FAPI 1 Adv §5.2.2-2: `code` only together with JARM
            if !response_mode.is_some_and(ResponseMode::is_jarm) {
                return Err(RequestRule::UnsupportedResponseType);
            }
            ResponseType::Code
        }
        (Some("code id_token"), Profile::Fapi1Advanced) => ResponseType::CodeIdToken,
        (Some("code"), _) => ResponseType::Code,
        (Some(_), _) => return Err(RequestRule::UnsupportedResponseType),
    };
    if response_type == ResponseType::CodeIdToken
        && matches!(
            response_mode,
            Some(ResponseMode::Query | ResponseMode::QueryJwt)
        )
    {
        // tokens never travel in a query string
        return Err(RequestRule::UnsupportedResponseMode);
    }
    let redirect_uri = p
        .string("redirect_uri")?
        .ok_or(RequestRule::Missing("redirect_uri"))?;
    if !client.has_redirect_uri(redirect_uri) {
        return Err(RequestRule::UnregisteredRedirectUri);
    }
    let redirect_uri =
        RedirectUri::try_from(redirect_uri).map_err(|_| RequestRule::Invalid("redirect_uri"))?;
    let scope = p
        .string("scope")?
        .map(Scope::try_from)
        .transpose()
        .map_err(|_| RequestRule::Invalid("scope"))?;
    let state = p
        .string("state")?
        .map(State::try_from)
        .transpose()
        .map_err(|_| RequestRule::Invalid("state"))?;
    let nonce = p
        .string("nonce")?
        .map(Nonce::try_from)
        .transpose()
        .map_err(|_| RequestRule::Invalid("nonce"))?;
    let openid = scope.as_ref().is_some_and(|s| s.contains("openid"));
    if nonce.is_none()
        && (response_type == ResponseType::CodeIdToken
            || (openid && profile.requires_nonce_with_openid()))
    {
        return Err(RequestRule::NonceRequired);
    }
    let code_challenge = p
        .string("code_challenge")?
        .ok_or(RequestRule::PkceChallengeRequired)?;
    if p.string("code_challenge_method")? != Some("S256") {
        return Err(RequestRule::PkceMethodNotS256);
    }
    let code_challenge = CodeChallenge::try_from(code_challenge)
        .map_err(|_| RequestRule::Invalid("code_challenge"))?;
    let claims = p.json("claims")?;
    if claims.as_ref().is_some_and(|c| !c.is_object()) {
        return Err(RequestRule::Invalid("claims"));
    }
    let authorization_details = p.json("authorization_details")?;
    if authorization_details
        .as_ref()
        .is_some_and(|c| !c.is_array())
    {
        return Err(RequestRule::Invalid("authorization_details"));
    }
    let dpop_jkt = p
        .string("dpop_jkt")?
        .map(|t| {
            crate::crypto::JwkThumbprint::from_b64url(t).ok_or(RequestRule::Invalid("dpop_jkt"))
        })
        .transpose()?;
    Ok(ValidatedAuthorizationRequest {
        profile,
        client_id: client.client_id().clone(),
        response_type,
        response_mode,
        redirect_uri,
        scope,
        state,
        nonce,
        code_challenge,
        claims,
        authorization_details,
        dpop_jkt,
        request_object_sha256: None,
        request_object_expires_at: None,
    })
}
