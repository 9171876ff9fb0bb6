//! Issuing: the claims the authorization server puts into a token and the
//! issuer that signs them.

use super::*;

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
