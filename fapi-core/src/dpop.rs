//! DPoP (RFC 9449): a proof of possession sent as a JWT in the `DPoP`
//! header, signed by a key whose public part it carries. A token bound to
//! that key (`cnf.jkt`, its RFC 7638 thumbprint) is accepted only with a
//! fresh proof by the same key, for this request.
//!
//! [`DpopVerifier::verify`] checks, in order, failing closed at the first
//! refusal:
//! 1. framing: a compact JWS of at most [`MAX_PROOF_LEN`], `typ` exactly
//!    `dpop+jwt`, `alg` one of PS256, ES256 and EdDSA that the profile
//!    allows, a `jwk` header holding a **public** key of the profile's key
//!    policy (private members refused), no other key source (`jku`, `x5u`,
//!    `x5c`);
//! 2. the signature, by that key only;
//! 3. claims: `jti` (at most 256 characters), `htm` equal to the request's
//!    method (exactly: `post` is not `POST`), `htu` equal to the request's
//!    URL under [`same_htu`], `iat` no older than the verifier's window and
//!    no further ahead than the profile's clock skew;
//! 4. `ath`: at a resource server, required and equal to
//!    base64url(SHA-256(access token)) (constant time); at the token
//!    endpoint, refused if present;
//! 5. `nonce`, when the server demands one ([`DpopNonces`]): one it issued
//!    in the current or the previous period, else `use_dpop_nonce`.
//!
//! Then [`PendingDpopProof::record_jti`] records the `jti` in a
//! [`ReplayCache`] (scope per server), so a proof is used once; only then is
//! it a [`DpopProof`], the [`ProofOfPossession`] a token is bound with
//! (`VerifiedAccessToken::bind`): a `jkt`-bound token binds only to a
//! DPoP proof of its key, never to a certificate, and the reverse.

use std::sync::Arc;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::crypto::{Algorithm, CryptoProvider, JwkThumbprint, SigningError, SigningKey};
use crate::encoding::b64url_encode;
use crate::error::{ErrorCode, OAuthError};
use crate::jose::{ExpectedType, JoseError, JwsPolicy, UnverifiedJws};
use crate::jwk::{Jwk, JwkError, JwkSet, KeySet};
use crate::pop::{PresentedKey, ProofOfPossession};
use crate::profile::Profile;
use crate::replay::ReplayCache;
use crate::store::StoreError;
use crate::time::UnixTime;

/// The algorithms a DPoP proof may use (RFC 9449 leaves them to the
/// server; FAPI 2.0 allows these), further narrowed to the profile's.
pub const DPOP_ALGORITHMS: [Algorithm; 3] = [Algorithm::Ps256, Algorithm::Es256, Algorithm::EdDsa];

/// The longest proof accepted (a proof carrying a 4096-bit RSA key is
/// about 2 KiB).
pub const MAX_PROOF_LEN: usize = 8 * 1024;

/// The longest `jti` accepted.
pub const MAX_JTI_LEN: usize = 256;

/// How old a proof's `iat` may be by default (seconds).
pub const DEFAULT_MAX_AGE_SECS: i64 = 60;

/// Why a DPoP proof was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DpopError {
    /// No `DPoP` header, or more than one.
    #[error("a single DPoP proof is required (the DPoP header)")]
    Missing,
    /// Framing, header, algorithm or type rules.
    #[error("DPoP proof rejected: {0}")]
    Jose(#[from] JoseError),
    /// No `jwk` header, or one that is not an object.
    #[error("DPoP proof has no jwk header with the public key that signs it")]
    MissingKey,
    /// The `jwk` header is not a usable public key (private members, an
    /// unsupported type, too small).
    #[error("DPoP proof jwk is unusable: {0}")]
    Key(#[from] JwkError),
    /// A claim is missing or has the wrong type.
    #[error("DPoP proof claim {0} is missing or malformed")]
    Claim(&'static str),
    /// `htm` is not the request's method.
    #[error("DPoP proof htm is not the method of this request")]
    MethodMismatch,
    /// `htu` is not the request's URL.
    #[error("DPoP proof htu is not the URL of this request")]
    UrlMismatch,
    /// `iat` is older than the verifier's window.
    #[error("DPoP proof is too old: make a new proof for each request")]
    TooOld,
    /// `iat` is ahead of the server's clock by more than the allowed skew.
    #[error("DPoP proof iat is in the future")]
    IssuedInTheFuture,
    /// `ath` is required (a resource request) and missing.
    #[error("DPoP proof ath is required with an access token")]
    MissingAccessTokenHash,
    /// `ath` does not hash the access token presented.
    #[error("DPoP proof ath does not match the access token")]
    AccessTokenHashMismatch,
    /// `ath` where no access token is presented (the token endpoint).
    #[error("DPoP proof ath is not allowed without an access token")]
    UnexpectedAccessTokenHash,
    /// The server demands a nonce and the proof has none, or an old or
    /// unknown one: retry with the nonce of the `DPoP-Nonce` header.
    #[error("DPoP proof must carry the nonce the server provided (DPoP-Nonce)")]
    UseNonce,
    /// The proof's `jti` has been used before.
    #[error("DPoP proof has been used before")]
    Replay,
    /// The replay cache could not answer (fail closed).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl OAuthError for DpopError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::UseNonce => ErrorCode::UseDpopNonce,
            Self::Store(_) => ErrorCode::ServerError,
            _ => ErrorCode::InvalidDpopProof,
        }
    }
}

/// Whether two `htu` values name the same resource (RFC 9449 §4.3): both
/// parsed as absolute `https` URLs (the URL Standard's parsing, as the `url`
/// crate does it: scheme and host compared without case, the default port
/// implied, `.` and `..` segments resolved), userinfo refused, then scheme,
/// host, port and path compared exactly; query and fragment ignored.
pub fn same_htu(proof: &str, request: &str) -> bool {
    fn parts(u: &str) -> Option<(String, String, u16, String)> {
        let url = url::Url::parse(u).ok()?;
        if url.scheme() != "https" || !url.username().is_empty() || url.password().is_some() {
            return None;
        }
        Some((
            url.scheme().to_owned(),
            url.host_str()?.to_owned(),
            url.port_or_known_default()?,
            url.path().to_owned(),
        ))
    }
    match (parts(proof), parts(request)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// base64url(SHA-256(`access_token`)), a proof's `ath`.
pub fn access_token_hash(access_token: &str) -> String {
    b64url_encode(&Sha256::digest(access_token.as_bytes()))
}

/// The request a proof must be for.
#[derive(Clone, Copy, Debug)]
pub struct DpopRequest<'a> {
    /// The HTTP method (`POST`, `GET`, ...).
    pub method: &'a str,
    /// The URL the client addressed (the server's own name for the
    /// endpoint, e.g. its published token endpoint).
    pub url: &'a str,
    /// The access token presented with it (a resource request), if any.
    pub access_token: Option<&'a str>,
    /// The server's nonces, if it demands one.
    pub nonces: Option<&'a DpopNonces>,
}

/// Verifies DPoP proofs (see the module docs).
#[derive(Clone)]
pub struct DpopVerifier {
    provider: Arc<dyn CryptoProvider>,
    profile: Profile,
    algorithms: Vec<Algorithm>,
    max_age_secs: i64,
}

impl core::fmt::Debug for DpopVerifier {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DpopVerifier")
            .field("profile", &self.profile)
            .field("max_age_secs", &self.max_age_secs)
            .finish_non_exhaustive()
    }
}

impl DpopVerifier {
    /// A verifier under `profile` (its algorithms among
    /// [`DPOP_ALGORITHMS`], its key policy), parsing keys with `provider`,
    /// accepting proofs up to [`DEFAULT_MAX_AGE_SECS`] old.
    pub fn new(provider: Arc<dyn CryptoProvider>, profile: Profile) -> Self {
        let algorithms = DPOP_ALGORITHMS
            .iter()
            .copied()
            .filter(|a| profile.algorithms().contains(a))
            .collect();
        Self {
            provider,
            profile,
            algorithms,
            max_age_secs: DEFAULT_MAX_AGE_SECS,
        }
    }

    /// Accepts proofs up to `secs` old (their `iat`); at least 1.
    #[must_use]
    pub fn with_max_age(mut self, secs: i64) -> Self {
        self.max_age_secs = secs.max(1);
        self
    }

    /// How old a proof may be.
    pub fn max_age_secs(&self) -> i64 {
        self.max_age_secs
    }

    /// Checks `proof` for `request` at `now` (every step but the `jti`'s
    /// single use; see the module docs).
    ///
    /// # Errors
    /// [`DpopError`].
    pub fn verify(
        &self,
        proof: &str,
        request: &DpopRequest<'_>,
        now: UnixTime,
    ) -> Result<PendingDpopProof, DpopError> {
        if proof.len() > MAX_PROOF_LEN {
            return Err(JoseError::TooLarge { max: MAX_PROOF_LEN }.into());
        }
        let jws = UnverifiedJws::parse_dpop(proof)?;
        let jwk = match jws.unverified_header().get("jwk") {
            Some(Value::Object(m)) => Jwk::from_json_object(m)?,
            _ => return Err(DpopError::MissingKey),
        };
        let jkt = jwk.thumbprint();
        // the key set of that one key, named as the header names it, so the
        // signature is checked with it and nothing else
        let kid = jws.unverified_header().kid().map(str::to_owned);
        let one = JwkSet::new(vec![Jwk::from_public_key(jwk.material().clone(), kid)]);
        let keys = KeySet::from_jwks(&one, &*self.provider, &self.profile.key_policy())?;
        let policy = JwsPolicy::new(&self.algorithms, ExpectedType::Exact("dpop+jwt"));
        let verified = jws.verify(&keys, &policy)?;
        let claims = verified.claims();
        let text = |name: &'static str| -> Result<&str, DpopError> {
            claims
                .string(name)
                .ok()
                .flatten()
                .filter(|s| !s.is_empty())
                .ok_or(DpopError::Claim(name))
        };
        let jti = text("jti")?;
        if jti.len() > MAX_JTI_LEN {
            return Err(DpopError::Claim("jti"));
        }
        if text("htm")? != request.method {
            return Err(DpopError::MethodMismatch);
        }
        if !same_htu(text("htu")?, request.url) {
            return Err(DpopError::UrlMismatch);
        }
        let iat = claims
            .numeric_date("iat")
            .ok()
            .flatten()
            .ok_or(DpopError::Claim("iat"))?;
        if iat.as_secs() < now.as_secs().saturating_sub(self.max_age_secs) {
            return Err(DpopError::TooOld);
        }
        if iat.as_secs()
            > now
                .as_secs()
                .saturating_add(crate::profile::MAX_FUTURE_SKEW_SECS)
        {
            return Err(DpopError::IssuedInTheFuture);
        }
        match (request.access_token, claims.get("ath")) {
            (Some(token), Some(Value::String(ath))) => {
                let expected = access_token_hash(token);
                if !bool::from(expected.as_bytes().ct_eq(ath.as_bytes())) {
                    return Err(DpopError::AccessTokenHashMismatch);
                }
            }
            (Some(_), None) => return Err(DpopError::MissingAccessTokenHash),
            (Some(_), Some(_)) => return Err(DpopError::Claim("ath")),
            (None, Some(_)) => return Err(DpopError::UnexpectedAccessTokenHash),
            (None, None) => {}
        }
        if let Some(nonces) = request.nonces {
            match claims.get("nonce") {
                Some(Value::String(n)) if nonces.accepts(n, now) => {}
                _ => return Err(DpopError::UseNonce),
            }
        }
        Ok(PendingDpopProof {
            jti: jti.to_owned(),
            // remembered for as long as the proof could still be accepted
            remember_until: iat
                .saturating_add(self.max_age_secs)
                .saturating_add(crate::profile::MAX_FUTURE_SKEW_SECS),
            jkt,
        })
    }
}

/// A proof that passed every check but the single use of its `jti`.
#[derive(Debug)]
#[must_use = "a DPoP proof proves nothing until its jti is recorded"]
pub struct PendingDpopProof {
    jti: String,
    remember_until: UnixTime,
    jkt: JwkThumbprint,
}

impl PendingDpopProof {
    /// Records the `jti` in `cache` under `scope` (one per server: the
    /// token endpoint and a resource server may share a cache), refusing a
    /// proof seen before.
    ///
    /// # Errors
    /// [`DpopError::Replay`], [`DpopError::Store`].
    pub async fn record_jti(
        self,
        cache: &dyn ReplayCache,
        scope: &str,
        now: UnixTime,
    ) -> Result<DpopProof, DpopError> {
        let scope = format!("dpop:{scope}");
        if cache
            .insert_if_absent(&scope, &self.jti, self.remember_until, now)
            .await?
        {
            Ok(DpopProof { jkt: self.jkt })
        } else {
            Err(DpopError::Replay)
        }
    }
}

/// A verified, single-use DPoP proof: the key the request proved it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DpopProof {
    jkt: JwkThumbprint,
}

impl DpopProof {
    /// The RFC 7638 thumbprint of the proof's key: a token issued with it
    /// is bound by `cnf.jkt`.
    pub fn jkt(&self) -> &JwkThumbprint {
        &self.jkt
    }
}

impl ProofOfPossession for DpopProof {
    fn presented_key(&self) -> PresentedKey<'_> {
        PresentedKey::DpopKey(&self.jkt)
    }
}

/// Signs a DPoP proof with `key` for `method` and `url`, with `ath` for
/// `access_token` and the server's `nonce` when given (what a client
/// sends).
///
/// # Errors
/// [`SigningError`]; the `jti` needs the OS random source.
pub fn sign_dpop_proof(
    key: &dyn SigningKey,
    method: &str,
    url: &str,
    access_token: Option<&str>,
    nonce: Option<&str>,
    now: UnixTime,
) -> Result<String, SigningError> {
    let mut claims = Map::new();
    claims.insert(
        "jti".into(),
        json!(crate::random::token(16).map_err(|_| SigningError)?),
    );
    claims.insert("htm".into(), json!(method));
    claims.insert("htu".into(), json!(url));
    claims.insert("iat".into(), json!(now.as_secs()));
    if let Some(token) = access_token {
        claims.insert("ath".into(), json!(access_token_hash(token)));
    }
    if let Some(nonce) = nonce {
        claims.insert("nonce".into(), json!(nonce));
    }
    crate::jose::sign_dpop(key, &claims)
}

/// Server nonces for DPoP (RFC 9449 §8), stateless so that every instance
/// sharing the secret issues and accepts the same ones: a nonce is the
/// period number and an HMAC-SHA-256 of it under the secret. One issued in
/// the current or the previous period is accepted (so a nonce handed out
/// just before a rotation still works once), anything else is not.
#[derive(Clone)]
pub struct DpopNonces {
    secret: zeroize::Zeroizing<[u8; 32]>,
    period_secs: i64,
}

impl core::fmt::Debug for DpopNonces {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DpopNonces")
            .field("period_secs", &self.period_secs)
            .finish_non_exhaustive()
    }
}

type HmacSha256 = hmac::Hmac<Sha256>;

impl DpopNonces {
    /// Nonces under `secret` (shared by every instance; from the OS
    /// random source), each period `period_secs` long (at least 1).
    pub fn new(secret: [u8; 32], period_secs: i64) -> Self {
        Self {
            secret: zeroize::Zeroizing::new(secret),
            period_secs: period_secs.max(1),
        }
    }

    fn period(&self, now: UnixTime) -> i64 {
        now.as_secs().div_euclid(self.period_secs)
    }

    /// The HMAC of `period`; `None` if the MAC cannot be built (it always
    /// can: HMAC takes a key of any length), and then nothing is accepted.
    fn mac(&self, period: i64) -> Option<[u8; 32]> {
        use hmac::Mac;
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&*self.secret).ok()?;
        mac.update(b"fapi dpop nonce");
        mac.update(&period.to_be_bytes());
        Some(mac.finalize().into_bytes().into())
    }

    /// The nonce of the current period (if the MAC could not be built, a
    /// random string no instance accepts).
    pub fn issue(&self, now: UnixTime) -> String {
        let period = self.period(now);
        match self.mac(period) {
            Some(mac) => {
                let mut bytes = period.to_be_bytes().to_vec();
                bytes.extend_from_slice(&mac);
                b64url_encode(&bytes)
            }
            None => crate::random::token(32).unwrap_or_default(),
        }
    }

    /// Whether `nonce` was issued in the current or the previous period
    /// (its HMAC compared in constant time).
    pub fn accepts(&self, nonce: &str, now: UnixTime) -> bool {
        let Ok(bytes) = crate::encoding::b64url_decode_public(nonce, 64) else {
            return false;
        };
        let (Some(period), Some(mac)) = (bytes.get(..8), bytes.get(8..)) else {
            return false;
        };
        let Ok(period) = <[u8; 8]>::try_from(period).map(i64::from_be_bytes) else {
            return false;
        };
        let current = self.period(now);
        if period != current && period != current.saturating_sub(1) {
            return false;
        }
        self.mac(period)
            .is_some_and(|expected| bool::from(expected.ct_eq(mac)))
    }
}
