//! OpenID Connect ID tokens ([OIDC Core §2], §3.3.2.11) as FAPI 1 Advanced
//! uses them: issued by the bank, and verified by a TPP, including the
//! `c_hash` / `s_hash` / `at_hash` that bind a hybrid-flow ID token to its
//! code, state and access token (FAPI 1 Adv §5.2.2.1).
//!
//! [OIDC Core §2]: https://openid.net/specs/openid-connect-core-1_0.html#IDToken

use std::sync::Arc;

use serde_json::{json, Map};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

use crate::claims::{ClaimError, TimeRules};
use crate::crypto::{shared_signer, Algorithm, AsyncSigningKey, SigningError};
use crate::encoding::b64url_encode;
use crate::error::{ErrorCode, OAuthError};
use crate::jose::{sign_compact_async, ExpectedType, JoseError, JwsPolicy, UnverifiedJws};
use crate::jwk::KeySet;
use crate::time::UnixTime;
use crate::types::{ClientId, Issuer, Nonce};

/// The OIDC half-hash of `value` for `alg`: the left half of the digest of
/// the ASCII value, base64url (§3.3.2.11). SHA-256 for PS256/ES256; SHA-512
/// for EdDSA with Ed25519.
pub fn half_hash(alg: Algorithm, value: &str) -> String {
    match alg {
        Algorithm::EdDsa => {
            let d = Sha512::digest(value.as_bytes());
            b64url_encode(d.get(..32).unwrap_or_default())
        }
        _ => {
            let d = Sha256::digest(value.as_bytes());
            b64url_encode(d.get(..16).unwrap_or_default())
        }
    }
}

/// What the bank puts in an ID token ([`IdTokenContent::new`] and the
/// `with_*` methods).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct IdTokenContent<'a> {
    /// `sub`: the customer's pairwise or public identifier.
    pub subject: &'a str,
    /// `aud`: the client.
    pub client_id: &'a ClientId,
    /// `nonce` from the authorization request.
    pub nonce: Option<&'a Nonce>,
    /// `auth_time`: when the customer authenticated.
    pub auth_time: UnixTime,
    /// `acr`: the authentication context class reached.
    pub acr: Option<&'a str>,
    /// The authorization code, for `c_hash`.
    pub code: Option<&'a str>,
    /// The state, for `s_hash`.
    pub state: Option<&'a str>,
    /// The access token, for `at_hash`.
    pub access_token: Option<&'a str>,
    /// Extra claims (e.g. `openbanking_intent_id`).
    pub extra: Map<String, serde_json::Value>,
}

impl<'a> IdTokenContent<'a> {
    /// An ID token for `subject`, to `client_id`, who authenticated at
    /// `auth_time`; nothing else.
    pub fn new(subject: &'a str, client_id: &'a ClientId, auth_time: UnixTime) -> Self {
        Self {
            subject,
            client_id,
            nonce: None,
            auth_time,
            acr: None,
            code: None,
            state: None,
            access_token: None,
            extra: Map::new(),
        }
    }

    /// With the request's `nonce`.
    #[must_use]
    pub fn with_nonce(mut self, nonce: Option<&'a Nonce>) -> Self {
        self.nonce = nonce;
        self
    }

    /// With the authentication context class reached.
    #[must_use]
    pub fn with_acr(mut self, acr: &'a str) -> Self {
        self.acr = Some(acr);
        self
    }

    /// With `c_hash` of `code`.
    #[must_use]
    pub fn with_code(mut self, code: Option<&'a str>) -> Self {
        self.code = code;
        self
    }

    /// With `s_hash` of `state`.
    #[must_use]
    pub fn with_state(mut self, state: Option<&'a str>) -> Self {
        self.state = state;
        self
    }

    /// With `at_hash` of `access_token`.
    #[must_use]
    pub fn with_access_token(mut self, access_token: Option<&'a str>) -> Self {
        self.access_token = access_token;
        self
    }

    /// With extra claims.
    #[must_use]
    pub fn with_extra(mut self, extra: Map<String, serde_json::Value>) -> Self {
        self.extra = extra;
        self
    }
}

/// Issues ID tokens for one issuer.
#[derive(Clone, Debug)]
pub struct IdTokenIssuer {
    key: Arc<dyn AsyncSigningKey>,
    kid: String,
    issuer: Issuer,
    lifetime_secs: i64,
}

impl IdTokenIssuer {
    /// An issuer signing with `key` (a file key or an HSM's, see
    /// [`AsyncSigningKey`]) published under `kid`.
    pub fn new<K: AsyncSigningKey + ?Sized + 'static>(
        key: Arc<K>,
        kid: String,
        issuer: Issuer,
        lifetime_secs: i64,
    ) -> Self {
        Self {
            key: shared_signer(key),
            kid,
            issuer,
            lifetime_secs: lifetime_secs.max(1),
        }
    }

    /// Issues an ID token at `now`.
    ///
    /// # Errors
    /// [`SigningError`] if the provider fails.
    pub async fn issue(
        &self,
        content: &IdTokenContent<'_>,
        now: UnixTime,
    ) -> Result<String, SigningError> {
        let alg = self.key.algorithm();
        let mut m = content.extra.clone();
        m.insert("iss".into(), json!(self.issuer.as_str()));
        m.insert("sub".into(), json!(content.subject));
        m.insert("aud".into(), json!(content.client_id.as_str()));
        m.insert("iat".into(), json!(now.as_secs()));
        m.insert(
            "exp".into(),
            json!(now.saturating_add(self.lifetime_secs).as_secs()),
        );
        m.insert("auth_time".into(), json!(content.auth_time.as_secs()));
        if let Some(n) = content.nonce {
            m.insert("nonce".into(), json!(n.as_str()));
        }
        if let Some(acr) = content.acr {
            m.insert("acr".into(), json!(acr));
        }
        for (name, value) in [
            ("c_hash", content.code),
            ("s_hash", content.state),
            ("at_hash", content.access_token),
        ] {
            if let Some(v) = value {
                m.insert(name.into(), json!(half_hash(alg, v)));
            }
        }
        sign_compact_async(&*self.key, Some(&self.kid), None, &m).await
    }
}

/// Why an ID token was rejected (TPP side).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdTokenError {
    /// A JOSE rule failed.
    #[error("id token rejected: {0}")]
    Jose(#[from] JoseError),
    /// A claim failed.
    #[error("id token rejected: {0}")]
    Claim(#[from] ClaimError),
    /// `aud` has several values and `azp` is not this client.
    #[error("id token azp is not this client")]
    WrongAuthorizedParty,
    /// `nonce` differs from the one sent (or is missing).
    #[error("id token nonce does not match the request")]
    NonceMismatch,
    /// A `*_hash` claim is missing or does not match its value.
    #[error("id token `{0}` does not match")]
    HashMismatch(&'static str),
}

impl OAuthError for IdTokenError {
    fn error_code(&self) -> ErrorCode {
        ErrorCode::InvalidGrant
    }
}

/// What a TPP expects of an ID token.
#[derive(Clone, Copy, Debug)]
pub struct IdTokenExpectations<'a> {
    /// The authorization server's issuer.
    pub issuer: &'a Issuer,
    /// This client.
    pub client_id: &'a ClientId,
    /// Allowed algorithms (the profile's).
    pub algorithms: &'a [Algorithm],
    /// The nonce sent with the request, if any.
    pub nonce: Option<&'a Nonce>,
    /// The code received, whose `c_hash` must be present and match.
    pub code: Option<&'a str>,
    /// The state received, whose `s_hash` must be present and match.
    pub state: Option<&'a str>,
    /// The access token received, whose `at_hash` must match when present.
    pub access_token: Option<&'a str>,
}

/// A verified ID token.
#[derive(Clone, Debug)]
pub struct VerifiedIdToken {
    subject: String,
    auth_time: Option<UnixTime>,
    acr: Option<String>,
    claims: crate::claims::Claims,
}

impl VerifiedIdToken {
    /// `sub`.
    pub fn subject(&self) -> &str {
        &self.subject
    }
    /// `auth_time`.
    pub fn auth_time(&self) -> Option<UnixTime> {
        self.auth_time
    }
    /// `acr`.
    pub fn acr(&self) -> Option<&str> {
        self.acr.as_deref()
    }
    /// All claims.
    pub fn claims(&self) -> &crate::claims::Claims {
        &self.claims
    }
}

fn hash_matches(
    claims: &crate::claims::Claims,
    name: &'static str,
    alg: Algorithm,
    value: &str,
) -> Result<(), IdTokenError> {
    let got = claims
        .string(name)?
        .ok_or(IdTokenError::HashMismatch(name))?;
    let want = half_hash(alg, value);
    if bool::from(got.as_bytes().ct_eq(want.as_bytes())) {
        Ok(())
    } else {
        Err(IdTokenError::HashMismatch(name))
    }
}

/// Verifies an ID token with the authorization server's keys.
///
/// # Errors
/// [`IdTokenError`].
pub fn verify_id_token(
    token: &str,
    keys: &KeySet,
    expect: &IdTokenExpectations<'_>,
    now: UnixTime,
) -> Result<VerifiedIdToken, IdTokenError> {
    let policy = JwsPolicy::new(expect.algorithms, ExpectedType::JwtOrAbsent);
    let verified = UnverifiedJws::parse(token)?.verify(keys, &policy)?;
    let alg = Algorithm::from_jose_name(verified.header().alg())
        .ok_or(JoseError::AlgorithmNotPermitted)?;
    let (_, claims) = verified.into_parts();
    let rules = TimeRules::issued_token(true);
    claims.check_times(&rules, now)?;
    if claims.required_string("iss")? != expect.issuer.as_str() {
        return Err(ClaimError::WrongIssuer.into());
    }
    let aud = claims.audience()?.ok_or(ClaimError::Missing("aud"))?;
    if !aud.contains(expect.client_id.as_str()) {
        return Err(ClaimError::WrongAudience.into());
    }
    if !aud.is_exactly(expect.client_id.as_str())
        && claims.string("azp")? != Some(expect.client_id.as_str())
    {
        return Err(IdTokenError::WrongAuthorizedParty);
    }
    let subject = claims.required_string("sub")?.to_owned();
    if let Some(n) = expect.nonce {
        let got = claims.string("nonce")?.ok_or(IdTokenError::NonceMismatch)?;
        if !bool::from(got.as_bytes().ct_eq(n.as_str().as_bytes())) {
            return Err(IdTokenError::NonceMismatch);
        }
    }
    if let Some(code) = expect.code {
        hash_matches(&claims, "c_hash", alg, code)?;
    }
    if let Some(state) = expect.state {
        hash_matches(&claims, "s_hash", alg, state)?;
    }
    if let Some(at) = expect.access_token {
        if claims.get("at_hash").is_some() {
            hash_matches(&claims, "at_hash", alg, at)?;
        }
    }
    let auth_time = claims.numeric_date("auth_time")?;
    let acr = claims.string("acr")?.map(str::to_owned);
    Ok(VerifiedIdToken {
        subject,
        auth_time,
        acr,
        claims,
    })
}
