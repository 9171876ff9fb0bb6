//! Authorization codes (RFC 6749 §4.1.2, FAPI 2 SP §5.3.2.1): single use,
//! at most 60 s, bound to the client, the redirect URI and the PKCE
//! challenge. A second redemption fails and reports the tokens the first
//! one issued, so the authorization server can revoke them. A code is a
//! secret ([`AuthorizationCode`]): stores keep only its SHA-256.
//!
//! [`AuthorizationCodeStore`] is the store trait;
//! `fapi_core::testing::authorization_code_store_conformance` (feature
//! `testing`) checks an adapter keeps its guarantees.

use core::fmt;
use std::collections::HashMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::crypto::JwkThumbprint;
use crate::pkce::{verify_pkce, PkceError};
use crate::store::{ready, BoxFuture, StoreError};
use crate::time::UnixTime;
use crate::types::{
    ClientId, CodeChallenge, CodeVerifier, ConsentId, JwtId, Nonce, RedirectUri, Scope,
};

crate::secret::secret_token!(
    /// An authorization code: 32 bytes from the OS CSPRNG, base64url (43
    /// characters) when issued; a presented one is 1-128 base64url
    /// characters.
    ///
    /// A secret: `Debug` is redacted, it is not `Clone`, equality is
    /// constant time, it is wiped on drop, and stores see only
    /// [`Self::hash`].
    AuthorizationCode,
    "code"
);

/// The longest code accepted from a client.
pub const MAX_CODE_LEN: usize = crate::secret::MAX_LEN;

/// What a code stands for, checked and kept when the customer approved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeGrant {
    /// The client it was issued to.
    pub client_id: ClientId,
    /// The redirect URI of the authorization request.
    pub redirect_uri: RedirectUri,
    /// The PKCE S256 challenge of the authorization request.
    pub code_challenge: CodeChallenge,
    /// The consent approved.
    pub consent_id: ConsentId,
    /// The customer who approved.
    pub customer_id: String,
    /// Requested scope.
    pub scope: Option<Scope>,
    /// OpenID nonce, for the ID token.
    pub nonce: Option<Nonce>,
    /// When the code stops working.
    pub expires_at: UnixTime,
    /// The DPoP key the authorization request bound the code to
    /// (`dpop_jkt`, RFC 9449 §10): the code is redeemed only with a proof
    /// by that key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<JwkThumbprint>,
}

/// Why a code was not redeemed. All are `invalid_grant`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RedeemError {
    /// No such code.
    #[error("authorization code is unknown")]
    Unknown,
    /// The code has expired.
    #[error("authorization code has expired")]
    Expired,
    /// The code was issued to another client (nothing consumed).
    #[error("authorization code was issued to another client")]
    WrongClient,
    /// `redirect_uri` differs from the authorization request's (nothing consumed).
    #[error("redirect_uri does not match the authorization request")]
    WrongRedirectUri,
    /// PKCE failed (nothing consumed).
    #[error(transparent)]
    Pkce(#[from] PkceError),
    /// The code is bound to a DPoP key (`dpop_jkt`) and the token request
    /// proved another key, or none (nothing consumed).
    #[error(
        "authorization code is bound to another DPoP key (dpop_jkt): send a DPoP proof by that key"
    )]
    DpopKeyMismatch,
    /// The code was redeemed before: revoke these tokens.
    #[error("authorization code has already been used")]
    Replayed {
        /// The `jti`s issued from the first redemption.
        issued: Vec<JwtId>,
    },
    /// The store failed (fail closed).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl crate::error::OAuthError for RedeemError {
    fn error_code(&self) -> crate::error::ErrorCode {
        match self {
            Self::Store(_) => crate::error::ErrorCode::ServerError,
            _ => crate::error::ErrorCode::InvalidGrant,
        }
    }
}

/// A redemption request.
#[derive(Debug)]
pub struct Redemption<'a> {
    /// The code presented.
    pub code: &'a AuthorizationCode,
    /// The authenticated client.
    pub client_id: &'a ClientId,
    /// The `redirect_uri` parameter.
    pub redirect_uri: &'a str,
    /// The `code_verifier` parameter.
    pub code_verifier: Option<&'a CodeVerifier>,
    /// The key of the token request's verified DPoP proof, if it carried
    /// one.
    pub dpop_jkt: Option<&'a JwkThumbprint>,
    /// Now.
    pub now: UnixTime,
}

/// The state of a stored code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCode {
    /// The grant.
    pub grant: CodeGrant,
    /// `None` until redeemed; then the tokens issued from it.
    pub redeemed: Option<Vec<JwtId>>,
}

/// Decides a redemption of `stored`; on success returns the grant and the
/// stored state to write back (marked redeemed). Shared by every store, so
/// the rules live in one place.
///
/// # Errors
/// [`RedeemError`].
pub fn decide(
    stored: Option<StoredCode>,
    r: &Redemption<'_>,
) -> Result<(CodeGrant, StoredCode), RedeemError> {
    let stored = stored.ok_or(RedeemError::Unknown)?;
    if let Some(issued) = stored.redeemed {
        return Err(RedeemError::Replayed { issued });
    }
    if r.now >= stored.grant.expires_at {
        return Err(RedeemError::Expired);
    }
    if &stored.grant.client_id != r.client_id {
        return Err(RedeemError::WrongClient);
    }
    if stored.grant.redirect_uri.as_str() != r.redirect_uri {
        return Err(RedeemError::WrongRedirectUri);
    }
    verify_pkce(Some(&stored.grant.code_challenge), r.code_verifier)?;
    if let Some(bound) = &stored.grant.dpop_jkt {
        let proved = r.dpop_jkt.is_some_and(|p| {
            bool::from(subtle::ConstantTimeEq::ct_eq(
                &p.as_bytes()[..],
                &bound.as_bytes()[..],
            ))
        });
        if !proved {
            return Err(RedeemError::DpopKeyMismatch);
        }
    }
    let grant = stored.grant.clone();
    Ok((
        grant,
        StoredCode {
            grant: stored.grant,
            redeemed: Some(Vec::new()),
        },
    ))
}

/// Stores authorization codes.
///
/// # Guarantees an implementation must give
/// - `redeem` is atomic: of concurrent redemptions of one code, at most one
///   succeeds; later ones get [`RedeemError::Replayed`] with the tokens
///   recorded for it.
/// - A redemption that fails a check consumes nothing.
/// - Only the code's hash is stored.
pub trait AuthorizationCodeStore: Send + Sync + fmt::Debug {
    /// Stores a new code's grant.
    fn issue<'a>(
        &'a self,
        code: &'a AuthorizationCode,
        grant: CodeGrant,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Redeems a code (see [`decide`]).
    fn redeem<'a>(&'a self, r: &'a Redemption<'a>)
        -> BoxFuture<'a, Result<CodeGrant, RedeemError>>;
    /// Records a token issued from a redeemed code.
    fn record_token<'a>(
        &'a self,
        code: &'a AuthorizationCode,
        jti: JwtId,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// An in-memory [`AuthorizationCodeStore`].
#[derive(Default)]
pub struct InMemoryCodeStore {
    codes: Mutex<HashMap<[u8; 32], StoredCode>>,
}

impl fmt::Debug for InMemoryCodeStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryCodeStore").finish_non_exhaustive()
    }
}

impl InMemoryCodeStore {
    fn with<T>(
        &self,
        f: impl FnOnce(&mut HashMap<[u8; 32], StoredCode>) -> T,
    ) -> Result<T, StoreError> {
        let mut m = self
            .codes
            .lock()
            .map_err(|_| StoreError::unavailable("code store lock poisoned"))?;
        Ok(f(&mut m))
    }
}

impl AuthorizationCodeStore for InMemoryCodeStore {
    fn issue<'a>(
        &'a self,
        code: &'a AuthorizationCode,
        grant: CodeGrant,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let r = self.with(|m| {
            m.insert(
                code.hash(),
                StoredCode {
                    grant,
                    redeemed: None,
                },
            );
        });
        ready(r)
    }
    fn redeem<'a>(
        &'a self,
        r: &'a Redemption<'a>,
    ) -> BoxFuture<'a, Result<CodeGrant, RedeemError>> {
        let out = self
            .with(|m| -> Result<CodeGrant, RedeemError> {
                let key = r.code.hash();
                let (grant, next) = decide(m.get(&key).cloned(), r)?;
                m.insert(key, next);
                Ok(grant)
            })
            .map_err(RedeemError::from)
            .and_then(|r| r);
        ready(out)
    }
    fn record_token<'a>(
        &'a self,
        code: &'a AuthorizationCode,
        jti: JwtId,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let r = self.with(|m| {
            if let Some(StoredCode {
                redeemed: Some(issued),
                ..
            }) = m.get_mut(&code.hash())
            {
                issued.push(jti);
            }
        });
        ready(r)
    }
}
