//! Verifying: the `Authorization` header to a [`VerifiedAccessToken`]
//! (with the verified-token cache), then [`VerifiedAccessToken::bind`] to a
//! [`BoundAccessToken`].

use super::*;

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
    /// A token bound to a DPoP key (`cnf.jkt`) sent with the `Bearer`
    /// scheme (RFC 9449 §7.2).
    #[error("this access token is DPoP-bound: send it with the DPoP scheme and a DPoP proof")]
    DpopBoundAsBearer,
    /// A token sent with the `DPoP` scheme that is not bound to a DPoP key.
    #[error("this access token is not DPoP-bound: send it with the Bearer scheme")]
    NotDpopBound,
    /// The `Authorization` header is not `DPoP <token>` (the scheme compared
    /// without case, RFC 9449 §7.1).
    #[error("authorization header must be `DPoP` followed by one space and the token")]
    MalformedDpopAuthorization,
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
    pub(super) issuer: Issuer,
    pub(super) audience: TokenAudience,
    algorithms: Vec<Algorithm>,
    rules: TimeRules,
    cache: Option<Arc<VerifiedTokenCache>>,
}

/// What a cache entry remembers about an accepted token.
#[derive(Clone, Debug)]
pub(super) struct Remembered {
    pub(super) token: VerifiedAccessToken,
    pub(super) times: Times,
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
    ///
    /// A token bound to a DPoP key is refused here
    /// ([`AccessTokenError::DpopBoundAsBearer`]): it comes with the `DPoP`
    /// scheme ([`Self::verify_dpop`]).
    pub fn verify(
        &self,
        authorization: &str,
        now: UnixTime,
    ) -> Result<VerifiedAccessToken, AccessTokenError> {
        let token = self.verify_value(bearer_token(authorization)?, now)?;
        if matches!(token.confirmation, Some(Confirmation::JwkThumbprint(_))) {
            return Err(AccessTokenError::DpopBoundAsBearer);
        }
        Ok(token)
    }

    /// Verifies the value of an `Authorization` header with the `DPoP`
    /// scheme (RFC 9449 §7.1; the scheme compared without case): the
    /// token must be bound to a DPoP key (`cnf.jkt`), which the request's
    /// proof then proves ([`VerifiedAccessToken::bind`] with a
    /// `fapi_core::dpop::DpopProof`).
    ///
    /// # Errors
    /// [`AccessTokenError`] ([`AccessTokenError::NotDpopBound`] for a token
    /// bound otherwise, or not at all); all map to `invalid_token`.
    pub fn verify_dpop(
        &self,
        authorization: &str,
        now: UnixTime,
    ) -> Result<VerifiedAccessToken, AccessTokenError> {
        let (scheme, token) = authorization
            .split_once(' ')
            .ok_or(AccessTokenError::MalformedDpopAuthorization)?;
        if !scheme.eq_ignore_ascii_case("dpop") {
            return Err(AccessTokenError::MalformedDpopAuthorization);
        }
        let token = self.verify_value(b64token(token)?, now)?;
        if !matches!(token.confirmation, Some(Confirmation::JwkThumbprint(_))) {
            return Err(AccessTokenError::NotDpopBound);
        }
        Ok(token)
    }

    /// Verifies a bare access token (no `Bearer ` scheme): what the
    /// token introspection and revocation endpoints receive in their
    /// `token` parameter. The same checks, and the same cache, as
    /// [`Self::verify`].
    ///
    /// # Errors
    /// [`AccessTokenError`]; all map to `invalid_token`.
    pub fn verify_value(
        &self,
        token: &str,
        now: UnixTime,
    ) -> Result<VerifiedAccessToken, AccessTokenError> {
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
    pub(super) fn check_claims(
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
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AccessTokenError::MalformedAuthorization);
    }
    b64token(token)
}

/// The token after the scheme: an RFC 6750 `b64token` (a JWS uses only its
/// base64url subset and '.').
fn b64token(token: &str) -> Result<&str, AccessTokenError> {
    if token.is_empty() {
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
    pub(super) subject: String,
    pub(super) client_id: ClientId,
    pub(super) jti: JwtId,
    pub(super) scope: Option<Scope>,
    pub(super) consent_id: Option<ConsentId>,
    pub(super) confirmation: Option<Confirmation>,
    pub(super) expires_at: UnixTime,
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
