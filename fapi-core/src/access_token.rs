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
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::claims::{ClaimError, TimeRules, Times};
use crate::crypto::{Algorithm, JwkThumbprint, SigningError, SigningKey};
use crate::error::{ErrorCode, OAuthError};
use crate::jose::{sign_compact, ExpectedType, JoseError, JwsPolicy, UnverifiedJws};
use crate::jwk::KeySet;
use crate::random::{self, RandomError};
use crate::time::UnixTime;
use crate::types::{CertificateThumbprint, ClientId, ConsentId, Issuer, JwtId, Scope};

/// The `typ` of a JWT access token.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// A token's confirmation claim (`cnf`): the key the token is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Confirmation {
    /// `x5t#S256`: bound to a client certificate ([RFC 8705 §3.1]).
    ///
    /// [RFC 8705 §3.1]: https://www.rfc-editor.org/rfc/rfc8705#section-3.1
    CertificateThumbprint(CertificateThumbprint),
    /// `jkt`: bound to a DPoP key ([RFC 9449 §6.1]).
    ///
    /// [RFC 9449 §6.1]: https://www.rfc-editor.org/rfc/rfc9449#section-6.1
    JwkThumbprint(JwkThumbprint),
}

impl Confirmation {
    /// The `cnf` claim value.
    pub fn to_json(&self) -> Value {
        match self {
            Self::CertificateThumbprint(t) => json!({ "x5t#S256": t.to_b64url() }),
            Self::JwkThumbprint(t) => json!({ "jkt": t.to_b64url() }),
        }
    }

    fn from_json(v: &Value) -> Result<Self, AccessTokenError> {
        let Value::Object(m) = v else {
            return Err(AccessTokenError::MalformedConfirmation);
        };
        match (m.get("x5t#S256"), m.get("jkt")) {
            (Some(Value::String(s)), None) => CertificateThumbprint::from_b64url(s)
                .map(Self::CertificateThumbprint)
                .map_err(|_| AccessTokenError::MalformedConfirmation),
            (None, Some(Value::String(s))) => {
                let t = CertificateThumbprint::from_b64url(s)
                    .map_err(|_| AccessTokenError::MalformedConfirmation)?;
                Ok(Self::JwkThumbprint(JwkThumbprint(*t.as_bytes())))
            }
            _ => Err(AccessTokenError::MalformedConfirmation),
        }
    }
}

/// What a request proves it holds: the certificate of its mTLS connection,
/// or the key of its DPoP proof.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum PresentedKey<'a> {
    /// The thumbprint of the client certificate this request came with.
    Certificate(&'a CertificateThumbprint),
    /// The thumbprint of the key that signed this request's DPoP proof.
    DpopKey(&'a JwkThumbprint),
}

/// Proof of possession presented with a request: implemented by
/// `fapi-mtls-binding` for the verified client certificate of the TLS
/// connection, and later by a DPoP proof verifier.
///
/// # Security
/// An implementation must report only a key the request *proved* it holds
/// (the certificate the TLS handshake verified, never a header a client sent).
pub trait ProofOfPossession {
    /// The key presented with this request.
    fn presented_key(&self) -> PresentedKey<'_>;
}

/// The claims the authorization server puts into an access token.
#[derive(Clone, Debug)]
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
    key: Arc<dyn SigningKey>,
    kid: String,
    issuer: Issuer,
    audience: String,
    lifetime_secs: i64,
}

impl AccessTokenIssuer {
    /// An issuer signing with `key` (published under `kid`), for tokens
    /// valid `lifetime_secs` at `audience`.
    pub fn new(
        key: Arc<dyn SigningKey>,
        kid: String,
        issuer: Issuer,
        audience: String,
        lifetime_secs: i64,
    ) -> Self {
        Self {
            key,
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
    pub fn issue(
        &self,
        claims: &AccessTokenClaims,
        now: UnixTime,
    ) -> Result<IssuedAccessToken, IssueError> {
        let jti = JwtId(random::token(16)?);
        let exp = now.saturating_add(self.lifetime_secs);
        let mut m = Map::new();
        m.insert("iss".into(), json!(self.issuer.as_str()));
        m.insert("sub".into(), json!(claims.subject));
        m.insert("aud".into(), json!(self.audience));
        m.insert("client_id".into(), json!(claims.client_id.as_str()));
        m.insert("scope".into(), json!(claims.scope.to_string()));
        m.insert("iat".into(), json!(now.as_secs()));
        m.insert("exp".into(), json!(exp.as_secs()));
        m.insert("jti".into(), json!(jti.as_str()));
        m.insert("cnf".into(), claims.confirmation.to_json());
        if let Some(c) = &claims.consent_id {
            m.insert("consent_id".into(), json!(c.as_str()));
        }
        let token = sign_compact(&*self.key, Some(&self.kid), Some(ACCESS_TOKEN_TYP), &m)?;
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
    /// The `Authorization` header is not `Bearer <token>`.
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
    audience: String,
    algorithms: Vec<Algorithm>,
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

    fn remember(&self, digest: [u8; 32], remembered: Remembered, now: UnixTime) {
        let Some(mut entries) = self.entries() else {
            return;
        };
        if entries.by_digest.len() >= self.capacity && entries.last_sweep != Some(now) {
            entries.by_digest.retain(|_, r| r.times.exp > now);
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
    /// tokens from `issuer` to `audience`, signed with one of `algorithms`.
    pub fn new(
        keys: Arc<KeySet>,
        issuer: Issuer,
        audience: String,
        algorithms: &[Algorithm],
    ) -> Self {
        Self {
            keys,
            issuer,
            audience,
            algorithms: algorithms.to_vec(),
            cache: None,
        }
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
        let rules = TimeRules::issued_token(true);
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
        cache.remember(digest, remembered.clone(), now);
        Ok(remembered.token)
    }

    /// The full verification of one token.
    fn verify_token(
        &self,
        token: &str,
        rules: &TimeRules,
        now: UnixTime,
    ) -> Result<Remembered, AccessTokenError> {
        let policy = JwsPolicy {
            algorithms: &self.algorithms,
            typ: ExpectedType::Exact(ACCESS_TOKEN_TYP),
            understood_critical: &[],
        };
        let verified = UnverifiedJws::parse(token)?.verify(&self.keys, &policy)?;
        let (_, claims) = verified.into_parts();
        let times = claims.check_times(rules, now)?;
        if claims.required_string("iss")? != self.issuer.as_str() {
            return Err(ClaimError::WrongIssuer.into());
        }
        match claims.audience()? {
            Some(aud) if aud.contains(&self.audience) => {}
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
}

fn bearer_token(authorization: &str) -> Result<&str, AccessTokenError> {
    let (scheme, token) = authorization
        .split_once(' ')
        .ok_or(AccessTokenError::MalformedAuthorization)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(AccessTokenError::MalformedAuthorization);
    }
    // b64token (RFC 6750 §2.1); a JWS uses only its base64url subset and '.'
    if !token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(AccessTokenError::MalformedAuthorization);
    }
    Ok(token)
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

/// Why a verified token could not be bound to the request. Every variant
/// maps to `invalid_token` (HTTP 401).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BindingError {
    /// The token has no `cnf`: it is a bearer token, and bearer tokens are
    /// never accepted.
    #[error("access token is not sender-constrained (no cnf)")]
    NoConfirmation,
    /// The token is bound by another method than the one presented (e.g.
    /// `jkt` while the request presented a certificate).
    #[error(
        "access token is bound by a different proof-of-possession method than the one presented"
    )]
    MethodMismatch,
    /// The presented key is not the one the token is bound to.
    #[error("access token is bound to a different key than the one presented")]
    KeyMismatch,
}

impl OAuthError for BindingError {
    fn error_code(&self) -> ErrorCode {
        ErrorCode::InvalidToken
    }
}

impl VerifiedAccessToken {
    /// Binds the token to the proof of possession of the request that
    /// presented it: the `cnf` thumbprint must equal the presented one
    /// (constant-time comparison).
    ///
    /// # Errors
    /// [`BindingError`]; there is no fallback to bearer semantics.
    pub fn bind(self, proof: &impl ProofOfPossession) -> Result<BoundAccessToken, BindingError> {
        let matches = match (&self.confirmation, proof.presented_key()) {
            (None, _) => return Err(BindingError::NoConfirmation),
            (
                Some(Confirmation::CertificateThumbprint(bound)),
                PresentedKey::Certificate(shown),
            ) => bound == shown,
            (Some(Confirmation::JwkThumbprint(bound)), PresentedKey::DpopKey(shown)) => {
                subtle::ConstantTimeEq::ct_eq(&bound.0[..], &shown.0[..]).into()
            }
            (Some(_), _) => return Err(BindingError::MethodMismatch),
        };
        if matches {
            Ok(BoundAccessToken(self))
        } else {
            Err(BindingError::KeyMismatch)
        }
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
