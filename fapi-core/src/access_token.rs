//! JWT access tokens ([RFC 9068]) that are always sender-constrained, and the
//! first two links of the resource-server chain:
//!
//! ```text
//! &str (Authorization header)
//!   -> AccessTokenVerifier::verify -> VerifiedAccessToken  (alg, typ at+jwt, signature, iss, aud, exp, ...)
//!   -> VerifiedAccessToken::bind   -> BoundAccessToken     (cnf == presented proof, constant time)
//!   -> ConsentGate::authorize (fapi-consent)
//! ```
//!
//! [`BoundAccessToken`] has no public constructor: [`VerifiedAccessToken::bind`]
//! is the only way to make one, and a token without `cnf` cannot be bound.
//! There is no bearer fallback.
//!
//! [RFC 9068]: https://www.rfc-editor.org/rfc/rfc9068

use core::fmt;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{json, Map};
use sha2::{Digest, Sha256};

use crate::claims::{ClaimError, TimeRules, TimeRulesError, Times};
use crate::crypto::{shared_signer, Algorithm, AsyncSigningKey, JwkThumbprint, SigningError};
use crate::error::{ErrorCode, OAuthError};
use crate::jose::{sign_compact_async, ExpectedType, JoseError, JwsPolicy, Part, UnverifiedJws};
use crate::jwk::KeySet;
use crate::random::{self, RandomError};
use crate::time::UnixTime;
use crate::types::{
    CertificateThumbprint, ClientId, ConsentId, Issuer, JwtId, Scope, TokenAudience,
};

mod payload;

pub use crate::pop::{BindingError, Confirmation, PresentedKey, ProofOfPossession};

/// The `typ` of a JWT access token.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

impl Confirmation {
    /// From the `x5t#S256` and `jkt` members of a `cnf` object: exactly
    /// one, a string of a SHA-256 thumbprint.
    fn from_members(
        x5t_s256: &payload::Slot<Cow<'_, str>>,
        jkt: &payload::Slot<Cow<'_, str>>,
    ) -> Result<Self, AccessTokenError> {
        use payload::Slot;
        match (x5t_s256, jkt) {
            (Slot::Present(s), Slot::Absent) => CertificateThumbprint::from_b64url(s)
                .map(Self::CertificateThumbprint)
                .map_err(|_| AccessTokenError::MalformedConfirmation),
            (Slot::Absent, Slot::Present(s)) => {
                let t = CertificateThumbprint::from_b64url(s)
                    .map_err(|_| AccessTokenError::MalformedConfirmation)?;
                Ok(Self::JwkThumbprint(JwkThumbprint(*t.as_bytes())))
            }
            _ => Err(AccessTokenError::MalformedConfirmation),
        }
    }
}

/// The claims the authorization server puts into an access token
/// ([`AccessTokenClaims::new`]; claims may be added, e.g. RAR's
/// `authorization_details`).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct AccessTokenClaims {
    /// `sub`: the customer (or the client, for client credentials).
    pub subject: String,
    /// `client_id`.
    pub client_id: ClientId,
    /// `scope`.
    pub scope: Scope,
    /// The consent this token acts under.
    pub consent_id: Option<ConsentId>,
    /// `cnf`: required, there is no unbound token.
    pub confirmation: Confirmation,
}

impl AccessTokenClaims {
    /// A token for `subject` and `client_id` with `scope`, bound to
    /// `confirmation`, under no consent.
    pub fn new(
        subject: impl Into<String>,
        client_id: ClientId,
        scope: Scope,
        confirmation: Confirmation,
    ) -> Self {
        Self {
            subject: subject.into(),
            client_id,
            scope,
            consent_id: None,
            confirmation,
        }
    }

    /// The same claims, acting under `consent`.
    #[must_use]
    pub fn with_consent(mut self, consent: Option<ConsentId>) -> Self {
        self.consent_id = consent;
        self
    }
}

/// A freshly issued access token.
#[derive(Debug)]
pub struct IssuedAccessToken {
    /// The compact JWS to hand to the client.
    pub token: String,
    /// Its `jti`.
    pub jti: JwtId,
    /// Seconds until it expires.
    pub expires_in: i64,
}

/// Why issuing failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// The signing key failed.
    #[error(transparent)]
    Signing(#[from] SigningError),
    /// The OS CSPRNG failed.
    #[error(transparent)]
    Random(#[from] RandomError),
}

impl OAuthError for IssueError {
    fn error_code(&self) -> ErrorCode {
        ErrorCode::ServerError
    }
}

/// Issues JWT access tokens for one issuer and one resource audience.
#[derive(Clone, Debug)]
pub struct AccessTokenIssuer {
    key: Arc<dyn AsyncSigningKey>,
    kid: String,
    issuer: Issuer,
    audience: TokenAudience,
    lifetime_secs: i64,
}

impl AccessTokenIssuer {
    /// An issuer signing with `key` (published under `kid`; a file key or
    /// an HSM's, see [`AsyncSigningKey`]), for tokens valid
    /// `lifetime_secs` at `audience`.
    pub fn new<K: AsyncSigningKey + ?Sized + 'static>(
        key: Arc<K>,
        kid: String,
        issuer: Issuer,
        audience: TokenAudience,
        lifetime_secs: i64,
    ) -> Self {
        Self {
            key: shared_signer(key),
            kid,
            issuer,
            audience,
            lifetime_secs: lifetime_secs.max(1),
        }
    }

    /// Issues a token at `now` with a fresh 128-bit `jti`.
    ///
    /// # Errors
    /// [`IssueError`] if signing or the CSPRNG fails.
    pub async fn issue(
        &self,
        claims: &AccessTokenClaims,
        now: UnixTime,
    ) -> Result<IssuedAccessToken, IssueError> {
        let jti = JwtId(random::token(16)?);
        let exp = now.saturating_add(self.lifetime_secs);
        let mut m = Map::new();
        m.insert("iss".into(), json!(self.issuer.as_str()));
        m.insert("sub".into(), json!(claims.subject));
        m.insert("aud".into(), json!(self.audience.as_str()));
        m.insert("client_id".into(), json!(claims.client_id.as_str()));
        m.insert("scope".into(), json!(claims.scope.to_string()));
        m.insert("iat".into(), json!(now.as_secs()));
        m.insert("exp".into(), json!(exp.as_secs()));
        m.insert("jti".into(), json!(jti.as_str()));
        m.insert("cnf".into(), claims.confirmation.to_json());
        if let Some(c) = &claims.consent_id {
            m.insert("consent_id".into(), json!(c.as_str()));
        }
        let token =
            sign_compact_async(&*self.key, Some(&self.kid), Some(ACCESS_TOKEN_TYP), &m).await?;
        Ok(IssuedAccessToken {
            token,
            jti,
            expires_in: exp.secs_since(now),
        })
    }
}

/// Why an access token was refused. Every variant maps to `invalid_token`
/// (HTTP 401).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccessTokenError {
    /// The `Authorization` header is not `Bearer <token>` with an RFC 6750
    /// `b64token`. (A header of that shape whose token is not a compact JWS
    /// reports the framing fault instead, as [`AccessTokenError::Jose`].)
    #[error("authorization header must be `Bearer` followed by one space and the token")]
    MalformedAuthorization,
    /// The JWS failed a JOSE rule.
    #[error(transparent)]
    Jose(#[from] JoseError),
    /// A claim failed.
    #[error(transparent)]
    Claim(#[from] ClaimError),
    /// `cnf` is present but malformed.
    #[error("access token cnf is malformed")]
    MalformedConfirmation,
    /// A claim value is not a valid protocol value.
    #[error("access token claim `{0}` is invalid")]
    InvalidClaim(&'static str),
}

impl OAuthError for AccessTokenError {
    fn error_code(&self) -> ErrorCode {
        ErrorCode::InvalidToken
    }
}

/// Verifies access tokens issued by one authorization server for one
/// resource audience.
///
/// # Remembering verified tokens
/// A client presents the same access token on every call for its lifetime.
/// [`AccessTokenVerifier::with_cache`] lets the verifier remember, for a
/// bounded number of tokens, that a token was *accepted*, so the next
/// presentation of exactly the same token skips the parse and the signature
/// check. This is sound because everything skipped is a pure function of the
/// token's bytes and of this verifier's fixed configuration (key set,
/// issuer, audience, algorithms), which never change after construction:
///
/// - the key is the SHA-256 of the exact token string, so a token that
///   differs in any byte (another signature, another claim) is a miss and is
///   verified in full;
/// - only accepted tokens are remembered; a rejection is never cached, so
///   junk cannot fill the cache and a token refused for a time reason is
///   judged afresh at the next `now`;
/// - the time rules (`exp`, `nbf`, `iat` skew) are re-applied to the
///   remembered values at every call, with the same code and the same
///   errors as a full verification, so a remembered token expires exactly
///   at its `exp`;
/// - what follows verification is never skipped: [`VerifiedAccessToken::bind`]
///   to the request's proof of possession, the live consent read, and any
///   revocation list the caller checks by `jti`.
///
/// The cache is shared by clones of the verifier and dies with it: a new key
/// set means a new verifier and an empty cache.
#[derive(Clone, Debug)]
pub struct AccessTokenVerifier {
    keys: Arc<KeySet>,
    issuer: Issuer,
    audience: TokenAudience,
    algorithms: Vec<Algorithm>,
    rules: TimeRules,
    cache: Option<Arc<VerifiedTokenCache>>,
}

/// What a cache entry remembers about an accepted token.
#[derive(Clone, Debug)]
struct Remembered {
    token: VerifiedAccessToken,
    times: Times,
}

/// The verifier's memory of accepted tokens (see [`AccessTokenVerifier`]).
struct VerifiedTokenCache {
    capacity: usize,
    inner: Mutex<CacheEntries>,
}

#[derive(Default)]
struct CacheEntries {
    by_digest: HashMap<[u8; 32], Remembered>,
    /// When expired entries were last swept out (at most once per second).
    last_sweep: Option<UnixTime>,
}

impl fmt::Debug for VerifiedTokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedTokenCache")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl VerifiedTokenCache {
    /// The lock, or `None` if a thread panicked while holding it: the cache
    /// is then bypassed (every token verified in full), never trusted.
    fn entries(&self) -> Option<MutexGuard<'_, CacheEntries>> {
        self.inner.lock().ok()
    }

    fn get(&self, digest: &[u8; 32]) -> Option<Remembered> {
        self.entries()?.by_digest.get(digest).cloned()
    }

    fn remember(&self, digest: [u8; 32], remembered: Remembered, rules: &TimeRules, now: UnixTime) {
        let Some(mut entries) = self.entries() else {
            return;
        };
        if entries.by_digest.len() >= self.capacity && entries.last_sweep != Some(now) {
            entries
                .by_digest
                .retain(|_, r| r.times.exp.saturating_add(rules.exp_leeway_secs) > now);
            entries.last_sweep = Some(now);
        }
        // full of live tokens: verify the newcomer in full each time until
        // entries expire, rather than evicting (the bound is what matters)
        if entries.by_digest.len() < self.capacity {
            entries.by_digest.insert(digest, remembered);
        }
    }

    fn len(&self) -> usize {
        self.entries().map_or(0, |e| e.by_digest.len())
    }
}

impl AccessTokenVerifier {
    /// A verifier trusting `keys` (the authorization server's own JWKS) for
    /// tokens from `issuer` to `audience`, signed with one of `algorithms`,
    /// under the default time rules ([`Profile::access_token_times`]:
    /// `iat`/`nbf` up to 10 s ahead, expired exactly at `exp`).
    ///
    /// [`Profile::access_token_times`]: crate::Profile::access_token_times
    pub fn new(
        keys: Arc<KeySet>,
        issuer: Issuer,
        audience: TokenAudience,
        algorithms: &[Algorithm],
    ) -> Self {
        Self {
            keys,
            issuer,
            audience,
            algorithms: algorithms.to_vec(),
            rules: TimeRules::issued_token(true),
            cache: None,
        }
    }

    /// Replaces the time rules (clock skew for `iat`/`nbf`, leeway after
    /// `exp`), e.g. `Profile::access_token_times()` adjusted to the bank's
    /// clock discipline. `exp` and `iat` stay required whatever `rules`
    /// says. A remembered token is judged by the same rules.
    ///
    /// # Errors
    /// [`TimeRulesError`] when an allowance is negative or above 60 s
    /// ([`TimeRules::validate`]).
    pub fn with_time_rules(mut self, rules: TimeRules) -> Result<Self, TimeRulesError> {
        rules.validate()?;
        self.rules = TimeRules {
            require_iat: true,
            ..rules
        };
        Ok(self)
    }

    /// The time rules in force.
    pub fn time_rules(&self) -> &TimeRules {
        &self.rules
    }

    /// Remembers up to `capacity` accepted tokens so that presenting the
    /// same token again skips the parse and the signature check, never the
    /// time rules (see [Remembering verified tokens](Self#remembering-verified-tokens)).
    /// `capacity` 0 turns the cache off. Entries take a few hundred bytes;
    /// expired ones are swept out when the cache is full.
    #[must_use]
    pub fn with_cache(mut self, capacity: usize) -> Self {
        self.cache = (capacity > 0).then(|| {
            Arc::new(VerifiedTokenCache {
                capacity,
                inner: Mutex::new(CacheEntries::default()),
            })
        });
        self
    }

    /// How many accepted tokens the cache holds now (0 without a cache).
    pub fn cached_tokens(&self) -> usize {
        self.cache.as_ref().map_or(0, |c| c.len())
    }

    /// Verifies the value of an `Authorization` header.
    ///
    /// # Errors
    /// [`AccessTokenError`]; all map to `invalid_token`.
    pub fn verify(
        &self,
        authorization: &str,
        now: UnixTime,
    ) -> Result<VerifiedAccessToken, AccessTokenError> {
        let token = bearer_token(authorization)?;
        let rules = self.rules;
        let Some(cache) = &self.cache else {
            return self.verify_token(token, &rules, now).map(|r| r.token);
        };
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(hit) = cache.get(&digest) {
            let t = hit.times;
            rules.check(Some(t.exp), t.nbf, t.iat, now)?;
            return Ok(hit.token);
        }
        let remembered = self.verify_token(token, &rules, now)?;
        cache.remember(digest, remembered.clone(), &rules, now);
        Ok(remembered.token)
    }

    /// The full verification of one token.
    fn verify_token(
        &self,
        token: &str,
        rules: &TimeRules,
        now: UnixTime,
    ) -> Result<Remembered, AccessTokenError> {
        let policy = JwsPolicy::new(&self.algorithms, ExpectedType::Exact(ACCESS_TOKEN_TYP));
        let (_, payload, _) = UnverifiedJws::parse(token)?.verify_signature(&self.keys, &policy)?;
        let claims = payload::read(&payload).map_err(|e| JoseError::Json {
            part: Part::Payload,
            problem: e,
        })?;
        self.check_claims(claims, rules, now)
    }

    /// The RFC 9068 claim checks, in a fixed order (times, `iss`, `aud`,
    /// `sub`, `client_id`, `jti`, `scope`, `consent_id`, `cnf`): a token
    /// with several faults always reports the first.
    fn check_claims(
        &self,
        c: payload::Payload<'_>,
        rules: &TimeRules,
        now: UnixTime,
    ) -> Result<Remembered, AccessTokenError> {
        use payload::{Aud, Slot};
        fn date(slot: &Slot<i64>, name: &'static str) -> Result<Option<UnixTime>, ClaimError> {
            match slot {
                Slot::Absent => Ok(None),
                Slot::Present(secs) => UnixTime::from_secs(*secs)
                    .map(Some)
                    .ok_or(ClaimError::NotNumericDate(name)),
                Slot::WrongType => Err(ClaimError::NotNumericDate(name)),
            }
        }
        fn string<'s>(
            slot: &'s Slot<Cow<'_, str>>,
            name: &'static str,
        ) -> Result<Option<&'s str>, ClaimError> {
            match slot {
                Slot::Absent => Ok(None),
                Slot::Present(s) => Ok(Some(s)),
                Slot::WrongType => Err(ClaimError::WrongType(name)),
            }
        }
        fn required<'s>(
            slot: &'s Slot<Cow<'_, str>>,
            name: &'static str,
        ) -> Result<&'s str, ClaimError> {
            string(slot, name)?.ok_or(ClaimError::Missing(name))
        }
        let exp = date(&c.exp, "exp")?;
        let nbf = date(&c.nbf, "nbf")?;
        let iat = date(&c.iat, "iat")?;
        let times = rules.check(exp, nbf, iat, now)?;
        if required(&c.iss, "iss")? != self.issuer.as_str() {
            return Err(ClaimError::WrongIssuer.into());
        }
        let audience_ok = match &c.aud {
            Slot::Absent => return Err(ClaimError::Missing("aud").into()),
            Slot::WrongType => return Err(ClaimError::WrongType("aud").into()),
            Slot::Present(Aud::Single(a)) => *a == self.audience.as_str(),
            Slot::Present(Aud::Many(all)) => all.iter().any(|a| *a == self.audience.as_str()),
        };
        if !audience_ok {
            return Err(ClaimError::WrongAudience.into());
        }
        let subject = required(&c.sub, "sub")?.to_owned();
        let client_id = ClientId::try_from(required(&c.client_id, "client_id")?)
            .map_err(|_| AccessTokenError::InvalidClaim("client_id"))?;
        let jti = JwtId::try_from(required(&c.jti, "jti")?)
            .map_err(|_| AccessTokenError::InvalidClaim("jti"))?;
        let scope = match string(&c.scope, "scope")? {
            Some(s) => {
                Some(Scope::try_from(s).map_err(|_| AccessTokenError::InvalidClaim("scope"))?)
            }
            None => None,
        };
        let consent_id = match string(&c.consent_id, "consent_id")? {
            Some(s) => Some(
                ConsentId::try_from(s).map_err(|_| AccessTokenError::InvalidClaim("consent_id"))?,
            ),
            None => None,
        };
        let confirmation = match &c.cnf {
            Slot::Absent => None,
            Slot::WrongType => return Err(AccessTokenError::MalformedConfirmation),
            Slot::Present(cnf) => Some(Confirmation::from_members(&cnf.x5t_s256, &cnf.jkt)?),
        };
        Ok(Remembered {
            token: VerifiedAccessToken {
                subject,
                client_id,
                jti,
                scope,
                consent_id,
                confirmation,
                expires_at: times.exp,
            },
            times,
        })
    }
}

fn bearer_token(authorization: &str) -> Result<&str, AccessTokenError> {
    let (scheme, token) = authorization
        .split_once(' ')
        .ok_or(AccessTokenError::MalformedAuthorization)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(AccessTokenError::MalformedAuthorization);
    }
    // b64token (RFC 6750 §2.1); a JWS uses only its base64url subset and '.'
    // (a fold without early exit, so the compiler checks many bytes at once;
    // this runs over every token on every call)
    let b64token = token.bytes().fold(true, |ok, b| {
        ok & (b.is_ascii_alphanumeric() | (b == b'-') | (b == b'_') | (b == b'.'))
    });
    if !b64token {
        // the right shape (an RFC 6750 b64token after `Bearer `) but not a
        // compact JWS: say which segment is at fault rather than "malformed"
        if is_rfc6750_b64token(token) {
            UnverifiedJws::parse(token)?;
        }
        return Err(AccessTokenError::MalformedAuthorization);
    }
    Ok(token)
}

/// RFC 6750 §2.1 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" /
/// "+" / "/" ) *"="`.
fn is_rfc6750_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// An access token whose signature and claims are verified, but which is not
/// yet tied to the request that presented it.
#[derive(Clone, Debug)]
pub struct VerifiedAccessToken {
    subject: String,
    client_id: ClientId,
    jti: JwtId,
    scope: Option<Scope>,
    consent_id: Option<ConsentId>,
    confirmation: Option<Confirmation>,
    expires_at: UnixTime,
}

impl VerifiedAccessToken {
    /// Binds the token to the proof of possession of the request that
    /// presented it: the `cnf` thumbprint must equal the presented one
    /// (constant-time comparison).
    ///
    /// # Errors
    /// [`BindingError`]; there is no fallback to bearer semantics.
    pub fn bind(self, proof: &impl ProofOfPossession) -> Result<BoundAccessToken, BindingError> {
        self.confirmation
            .as_ref()
            .ok_or(BindingError::NoConfirmation)?
            .check(proof)?;
        Ok(BoundAccessToken(self))
    }

    /// `sub`.
    pub fn subject(&self) -> &str {
        &self.subject
    }
    /// `client_id`.
    pub fn client_id(&self) -> &ClientId {
        &self.client_id
    }
    /// `jti`.
    pub fn jti(&self) -> &JwtId {
        &self.jti
    }
    /// `scope`.
    pub fn scope(&self) -> Option<&Scope> {
        self.scope.as_ref()
    }
    /// The consent id.
    pub fn consent_id(&self) -> Option<&ConsentId> {
        self.consent_id.as_ref()
    }
    /// `cnf`.
    pub fn confirmation(&self) -> Option<&Confirmation> {
        self.confirmation.as_ref()
    }
    /// `exp`.
    pub fn expires_at(&self) -> UnixTime {
        self.expires_at
    }
}

/// An access token verified *and* bound to the request's proof of
/// possession. Only [`VerifiedAccessToken::bind`] makes one.
#[derive(Clone, Debug)]
pub struct BoundAccessToken(VerifiedAccessToken);

impl BoundAccessToken {
    /// The verified token's claims.
    pub fn token(&self) -> &VerifiedAccessToken {
        &self.0
    }
    /// `client_id`.
    pub fn client_id(&self) -> &ClientId {
        &self.0.client_id
    }
    /// The consent id.
    pub fn consent_id(&self) -> Option<&ConsentId> {
        self.0.consent_id.as_ref()
    }
    /// `sub`.
    pub fn subject(&self) -> &str {
        &self.0.subject
    }
    /// `scope`.
    pub fn scope(&self) -> Option<&Scope> {
        self.0.scope.as_ref()
    }
}

#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod reference {
    //! The claim checks as they were before the one-pass reader
    //! (`parse_object` + [`Claims`], same checks, same order), kept as the
    //! reference the tests and the `claim_readers` fuzz target hold
    //! [`payload::read`] + [`AccessTokenVerifier::check_claims`] to.

    use super::*;
    use crate::claims::Claims;
    use crate::jwk::{JwkSet, KeySet};
    use crate::Profile;

    pub(crate) const ISS: &str = "https://bank.example";
    pub(crate) const AUD: &str = "https://api.bank.example";
    pub(crate) const NOW: i64 = 1_900_000_000;

    fn verifier() -> Result<AccessTokenVerifier, String> {
        let keys = KeySet::from_jwks(
            &JwkSet::new(Vec::new()),
            &*crate::crypto::default_provider(),
            &Profile::Fapi2Security.key_policy(),
        )
        .map_err(|e| e.to_string())?;
        Ok(AccessTokenVerifier::new(
            Arc::new(keys),
            Issuer::try_from(ISS).map_err(|e| e.to_string())?,
            TokenAudience::try_from(AUD).map_err(|e| e.to_string())?,
            Profile::Fapi2Security.algorithms(),
        ))
    }

    fn payload_error(e: crate::json::JsonError) -> AccessTokenError {
        JoseError::Json {
            part: Part::Payload,
            problem: e,
        }
        .into()
    }

    fn general(
        v: &AccessTokenVerifier,
        payload: &[u8],
        now: UnixTime,
    ) -> Result<Remembered, AccessTokenError> {
        let claims = Claims::new(crate::json::parse_object(payload).map_err(payload_error)?);
        let times = claims.check_times(&TimeRules::issued_token(true), now)?;
        if claims.required_string("iss")? != v.issuer.as_str() {
            return Err(ClaimError::WrongIssuer.into());
        }
        match claims.audience()? {
            Some(aud) if aud.contains(v.audience.as_str()) => {}
            Some(_) => return Err(ClaimError::WrongAudience.into()),
            None => return Err(ClaimError::Missing("aud").into()),
        }
        let subject = claims.required_string("sub")?.to_owned();
        let client_id = ClientId::try_from(claims.required_string("client_id")?)
            .map_err(|_| AccessTokenError::InvalidClaim("client_id"))?;
        let jti = JwtId::try_from(claims.required_string("jti")?)
            .map_err(|_| AccessTokenError::InvalidClaim("jti"))?;
        let scope = match claims.string("scope")? {
            Some(s) => {
                Some(Scope::try_from(s).map_err(|_| AccessTokenError::InvalidClaim("scope"))?)
            }
            None => None,
        };
        let consent_id = match claims.string("consent_id")? {
            Some(s) => Some(
                ConsentId::try_from(s).map_err(|_| AccessTokenError::InvalidClaim("consent_id"))?,
            ),
            None => None,
        };
        let confirmation = claims.get("cnf").map(Confirmation::from_json).transpose()?;
        Ok(Remembered {
            token: VerifiedAccessToken {
                subject,
                client_id,
                jti,
                scope,
                consent_id,
                confirmation,
                expires_at: times.exp,
            },
            times,
        })
    }

    fn one_pass(
        v: &AccessTokenVerifier,
        payload: &[u8],
        now: UnixTime,
    ) -> Result<Remembered, AccessTokenError> {
        let claims = payload::read(payload).map_err(payload_error)?;
        v.check_claims(claims, &TimeRules::issued_token(true), now)
    }

    /// Both readers on `payload` at [`NOW`]: the common outcome, or both
    /// outcomes if they differ.
    pub(crate) fn readers_agree(payload: &[u8]) -> Result<String, String> {
        let v = verifier()?;
        let now = UnixTime::from_secs(NOW).ok_or("NOW out of range")?;
        let outcome = |r: Result<Remembered, AccessTokenError>| {
            format!("{:?}", r.map(|r| (r.token, r.times)))
        };
        crate::json::same_outcome(
            "access token claim",
            payload,
            outcome(one_pass(&v, payload, now)),
            outcome(general(&v, payload, now)),
        )
    }
}

#[cfg(test)]
mod reader_equivalence {
    //! The one-pass claim reader against the general one (see
    //! [`reference`]): the same outcome on every document.
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use proptest::prelude::*;

    fn agree(payload: &[u8]) -> String {
        match super::reference::readers_agree(payload) {
            Ok(outcome) => outcome,
            Err(disagreement) => panic!("{disagreement}"),
        }
    }

    const GOOD: &str = r#"{"iss":"https://bank.example","sub":"alice","aud":"https://api.bank.example","client_id":"tpp-a","scope":"accounts","iat":1900000000,"exp":1900000300,"jti":"j-1","cnf":{"x5t#S256":"2Bd1GiFqtFGJ3AZ-AgjMRYSTSFq8Kdrtl7ocmyqu2kY"},"consent_id":"aac-1"}"#;

    #[test]
    fn a_genuine_payload_reads_the_same() {
        assert!(agree(GOOD.as_bytes()).starts_with("Ok("));
    }

    /// Documents chosen to reach each rule of either reader.
    #[test]
    fn hand_picked_documents_read_the_same() {
        let docs = [
            "",
            "{}",
            "[]",
            "[1] x",
            "\"x\"",
            "1",
            "null",
            "{\"a\":1}x",
            r#"[{"a":1,"a":2}]"#,
            r#"{"iss":"a","iss":"b"}"#,
            r#"{"iss":"a","i\u0073s":"b"}"#,
            r#"{"x":1,"x":2}"#,
            r#"{"cnf":{"jkt":"a","jkt":"b"}}"#,
            r#"{"cnf":{"o":{"p":1,"p":2}}}"#,
            r#"{"aud":["a",{"b":1,"b":2}]}"#,
            r#"{"exp":"1900000300"}"#,
            r#"{"exp":1900000300.0}"#,
            r#"{"exp":1e9}"#,
            r#"{"exp":-1}"#,
            r#"{"exp":18446744073709551615}"#,
            r#"{"exp":253402300800}"#,
            r#"{"exp":1900000300,"iat":"x"}"#,
            r#"{"exp":1900000300,"iat":1900000000,"iss":5}"#,
            r#"{"exp":1900000300,"iat":1900000000,"iss":"https://bank.example","aud":[]}"#,
            r#"{"exp":1900000300,"iat":1900000000,"iss":"https://bank.example","aud":["x","https://api.bank.example"],"sub":"s","client_id":"c","jti":"j"}"#,
            r#"{"exp":1900000300,"iat":1900000000,"iss":"https://bank.example","aud":"https://api.bank.example","sub":"s","client_id":"c","jti":"j","cnf":[]}"#,
            r#"{"exp":1900000300,"iat":1900000000,"iss":"https://bank.example","aud":"https://api.bank.example","sub":"s","client_id":"c","jti":"j","cnf":{"jkt":"2Bd1GiFqtFGJ3AZ-AgjMRYSTSFq8Kdrtl7ocmyqu2kY"}}"#,
            r#"{"exp":1900000300,"iat":1900000000,"iss":"https://bank.example","aud":"https://api.bank.example","sub":"s","client_id":"c","jti":"j","cnf":{"jkt":5}}"#,
            r#"{"exp":1900000300,"iat":1900000000,"iss":"https://bank.example","aud":"https://api.bank.example","sub":"s","client_id":"c","jti":"j","scope":7}"#,
            r#"{"exp":1900000300,"iat":1900000000,"iss":"https://bank.example","aud":"https://api.bank.example","sub":"s","client_id":"","jti":"j"}"#,
            r#"{"a":[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]}"#,
            r#"{"a":[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]}"#,
            r#"{"cnf":{"a":[[[[[[[[[[[[[[1]]]]]]]]]]]]]]}}"#,
            r#"{"cnf":{"a":[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]}}"#,
            "{\"sub\":\"\\ud800\"}",
            "{\"sub\":\"\u{e9}\\n\"}",
        ];
        for d in docs {
            agree(d.as_bytes());
        }
        // a member name repeated past the short list (the hash set takes over)
        let many: Vec<String> = (0..40).map(|i| format!("\"m{i}\":{i}")).collect();
        agree(format!("{{{}}}", many.join(",")).as_bytes());
        agree(format!("{{{},\"m3\":0}}", many.join(",")).as_bytes());
        agree(format!("{{{},\"m39\":0}}", many.join(",")).as_bytes());
    }

    fn member_name() -> impl Strategy<Value = String> {
        proptest::sample::select(vec![
            "iss",
            "sub",
            "aud",
            "client_id",
            "jti",
            "scope",
            "consent_id",
            "exp",
            "nbf",
            "iat",
            "cnf",
            "x5t#S256",
            "jkt",
            "other",
            "i\\u0073s",
        ])
        .prop_map(str::to_owned)
    }

    fn json_value() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("\"https://bank.example\"".to_owned()),
            Just("\"https://api.bank.example\"".to_owned()),
            Just("\"2Bd1GiFqtFGJ3AZ-AgjMRYSTSFq8Kdrtl7ocmyqu2kY\"".to_owned()),
            Just("\"accounts payments\"".to_owned()),
            "[a-z ]{0,6}".prop_map(|s| format!("\"{s}\"")),
            (1_899_999_000i64..1_900_001_000).prop_map(|n| n.to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            Just("1.5".to_owned()),
            Just("true".to_owned()),
            Just("null".to_owned()),
        ];
        leaf.prop_recursive(18, 64, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                proptest::collection::vec((member_name(), inner), 0..4).prop_map(|m| {
                    let members: Vec<String> =
                        m.into_iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                    format!("{{{}}}", members.join(","))
                }),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// Arbitrary documents over the claim names, any types, repeats and
        /// nesting beyond the depth limit.
        #[test]
        fn readers_agree_on_generated_documents(
            members in proptest::collection::vec((member_name(), json_value()), 0..14)
        ) {
            let members: Vec<String> =
                members.into_iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            agree(format!("{{{}}}", members.join(",")).as_bytes());
        }

        /// The genuine payload with one member replaced or one byte changed.
        #[test]
        fn readers_agree_on_mutations_of_a_genuine_payload(
            name in member_name(),
            value in json_value(),
            position in 0usize..400,
            byte in any::<u8>(),
        ) {
            let replaced = GOOD.replacen(
                &format!("\"{name}\":"),
                &format!("\"{name}\":{value},\"_{name}\":"),
                1,
            );
            agree(replaced.as_bytes());
            let mut bytes = GOOD.as_bytes().to_vec();
            let i = position % bytes.len();
            bytes[i] = byte;
            agree(&bytes);
        }
    }
}
