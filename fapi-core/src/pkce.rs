//! PKCE ([RFC 7636]) verification at the token endpoint, `S256` only.
//!
//! [RFC 7636]: https://www.rfc-editor.org/rfc/rfc7636

use subtle::ConstantTimeEq;

use crate::error::{ErrorCode, OAuthError};
use crate::types::{CodeChallenge, CodeVerifier};

/// Why PKCE verification failed (`invalid_grant`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PkceError {
    /// The authorization had a challenge but the token request has no verifier.
    #[error("code_verifier is required")]
    MissingVerifier,
    /// A verifier was sent but the authorization had no challenge: a
    /// downgrade attempt (RFC 9700 §2.1.1).
    #[error("code_verifier sent but the authorization request had no code_challenge")]
    UnexpectedVerifier,
    /// The verifier does not match the challenge.
    #[error("code_verifier does not match the code_challenge")]
    Mismatch,
}

impl OAuthError for PkceError {
    fn error_code(&self) -> ErrorCode {
        ErrorCode::InvalidGrant
    }
}

/// Checks the `code_verifier` of a token request against the challenge
/// stored with the authorization code. In FAPI every authorization has a
/// challenge, so `challenge` is `None` only for a request that must fail.
///
/// # Errors
/// [`PkceError`].
pub fn verify_pkce(
    challenge: Option<&CodeChallenge>,
    verifier: Option<&CodeVerifier>,
) -> Result<(), PkceError> {
    match (challenge, verifier) {
        (Some(c), Some(v)) => {
            let computed = v.challenge();
            if bool::from(computed.as_str().as_bytes().ct_eq(c.as_str().as_bytes())) {
                Ok(())
            } else {
                Err(PkceError::Mismatch)
            }
        }
        (Some(_), None) => Err(PkceError::MissingVerifier),
        (None, Some(_)) => Err(PkceError::UnexpectedVerifier),
        (None, None) => Err(PkceError::MissingVerifier),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7636 Appendix B.
    #[test]
    fn rfc7636_appendix_b_vector() {
        let v = CodeVerifier::try_from("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".to_owned())
            .unwrap();
        let c = CodeChallenge::try_from("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM").unwrap();
        assert_eq!(v.challenge(), c);
        assert_eq!(verify_pkce(Some(&c), Some(&v)), Ok(()));
    }

    #[test]
    fn pkce_mismatch_rejected() {
        let c = CodeVerifier::generate().unwrap().challenge();
        let other = CodeVerifier::generate().unwrap();
        assert_eq!(
            verify_pkce(Some(&c), Some(&other)),
            Err(PkceError::Mismatch)
        );
    }

    #[test]
    fn pkce_missing_verifier_rejected() {
        let c = CodeVerifier::generate().unwrap().challenge();
        assert_eq!(verify_pkce(Some(&c), None), Err(PkceError::MissingVerifier));
    }

    #[test]
    fn pkce_downgrade_verifier_without_challenge_rejected() {
        let v = CodeVerifier::generate().unwrap();
        assert_eq!(
            verify_pkce(None, Some(&v)),
            Err(PkceError::UnexpectedVerifier)
        );
        assert_eq!(verify_pkce(None, None), Err(PkceError::MissingVerifier));
    }
}
