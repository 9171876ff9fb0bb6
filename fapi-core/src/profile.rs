//! The security profile in force, as a value carrying the numbers table of
//! FAPI-RULES.md. Where a rule differs between profiles, the code asks the
//! profile; it never forks.

use crate::claims::TimeRules;
use crate::crypto::{Algorithm, KeyPolicy};

/// A FAPI security profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Profile {
    /// [FAPI 1.0 Part 2: Advanced](https://openid.net/specs/openid-financial-api-part-2-1_0.html) (Final).
    Fapi1Advanced,
    /// [FAPI 2.0 Security Profile](https://openid.net/specs/fapi-security-profile-2_0-final.html) (Final).
    Fapi2Security,
    /// FAPI 2.0 Security Profile with [FAPI 2.0 Message Signing](https://openid.net/specs/fapi-2_0-message-signing.html).
    Fapi2MessageSigning,
}

/// How far ahead of the server's clock `iat`/`nbf` may be (FAPI 2.0 SP §5.3.2.1:
/// accept 10 s, reject beyond 60 s; this crate accepts exactly 10 s).
pub const MAX_FUTURE_SKEW_SECS: i64 = 10;
/// The largest clock allowance a verifier may be configured with, for
/// `iat`/`nbf` in the future or past `exp` (FAPI 2.0 SP §5.3.2.1: reject
/// beyond 60 s).
pub const MAX_CLOCK_SKEW_SECS: i64 = 60;
/// Longest request object validity, `exp - nbf` (FAPI 1 Adv §5.2.2-13).
pub const MAX_REQUEST_OBJECT_LIFETIME_SECS: i64 = 3600;
/// Oldest acceptable request object `nbf` (FAPI 1 Adv §5.2.2-17).
pub const MAX_REQUEST_OBJECT_NBF_AGE_SECS: i64 = 3600;
/// Longest client assertion validity accepted; bounds how long a `jti` must
/// be remembered.
pub const MAX_CLIENT_ASSERTION_LIFETIME_SECS: i64 = 3600;

impl Profile {
    /// JWS algorithms allowed (FAPI 1 Adv §8.6; FAPI 2 SP §5.4.1).
    pub fn algorithms(self) -> &'static [Algorithm] {
        match self {
            Self::Fapi1Advanced => &[Algorithm::Ps256, Algorithm::Es256],
            Self::Fapi2Security | Self::Fapi2MessageSigning => {
                &[Algorithm::Ps256, Algorithm::Es256, Algorithm::EdDsa]
            }
        }
    }

    /// Minimum key sizes (FAPI 1 Adv §5.2.2-5/6: RSA 2048, EC 160; FAPI 2 SP
    /// §5.4.1: RSA 2048, EC 224).
    pub fn key_policy(self) -> KeyPolicy {
        match self {
            Self::Fapi1Advanced => KeyPolicy {
                min_rsa_bits: 2048,
                min_ec_bits: 160,
            },
            Self::Fapi2Security | Self::Fapi2MessageSigning => KeyPolicy {
                min_rsa_bits: 2048,
                min_ec_bits: 224,
            },
        }
    }

    /// Whether an authorization request must be a signed request object
    /// (FAPI 1 Adv: yes; FAPI 2 SP: no, plain PAR parameters; FAPI 2 MS: yes).
    pub fn requires_signed_request_object(self) -> bool {
        !matches!(self, Self::Fapi2Security)
    }

    /// Whether the request must arrive through PAR (FAPI 2: yes).
    pub fn requires_par(self) -> bool {
        !matches!(self, Self::Fapi1Advanced)
    }

    /// Whether `nonce` is required when `openid` is in scope (FAPI 1 Adv §5.2.2.2).
    pub fn requires_nonce_with_openid(self) -> bool {
        matches!(self, Self::Fapi1Advanced)
    }

    /// Whether a client assertion's or request object's `aud` may be an
    /// array (FAPI 1: yes, containing the issuer; FAPI 2: the issuer as a
    /// plain string only, FAPI 2 SP §5.3.2.1-8).
    pub fn audience_array_allowed(self) -> bool {
        matches!(self, Self::Fapi1Advanced)
    }

    /// Time rules for request objects (FAPI 1 Adv §5.2.2-13/17, FAPI 2 MS §5.3.1).
    pub fn request_object_times(self) -> TimeRules {
        TimeRules {
            require_nbf: true,
            require_iat: false,
            max_future_skew_secs: MAX_FUTURE_SKEW_SECS,
            exp_leeway_secs: 0,
            max_nbf_age_secs: Some(MAX_REQUEST_OBJECT_NBF_AGE_SECS),
            max_lifetime_secs: Some(MAX_REQUEST_OBJECT_LIFETIME_SECS),
        }
    }

    /// Time rules for client assertions (RFC 7523 §3; skew per profile).
    pub fn client_assertion_times(self) -> TimeRules {
        TimeRules {
            require_nbf: false,
            require_iat: false,
            max_future_skew_secs: MAX_FUTURE_SKEW_SECS,
            exp_leeway_secs: 0,
            max_nbf_age_secs: None,
            max_lifetime_secs: Some(MAX_CLIENT_ASSERTION_LIFETIME_SECS),
        }
    }

    /// Time rules for JWT access tokens at the resource server: `exp` and
    /// `iat` required, `iat`/`nbf` up to [`MAX_FUTURE_SKEW_SECS`] ahead, no
    /// leeway after `exp`. The same for every profile today; change them
    /// with [`crate::AccessTokenVerifier::with_time_rules`].
    pub fn access_token_times(self) -> TimeRules {
        TimeRules::issued_token(true)
    }

    /// Default PAR `expires_in` (60 s) and the exclusive maximum (600 s).
    pub fn par_expires_in(self) -> (i64, i64) {
        (60, 600)
    }

    /// Authorization code lifetime, at most 60 s (FAPI 2 SP §5.3.2.1-10).
    pub fn authorization_code_lifetime_secs(self) -> i64 {
        60
    }

    /// JARM `exp` bounds: at least 10 s, at most 10 min.
    pub fn jarm_lifetime_bounds_secs(self) -> (i64, i64) {
        (10, 600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eddsa_only_in_fapi2() {
        assert!(!Profile::Fapi1Advanced
            .algorithms()
            .contains(&Algorithm::EdDsa));
        assert!(Profile::Fapi2Security
            .algorithms()
            .contains(&Algorithm::EdDsa));
        assert!(Profile::Fapi2MessageSigning
            .algorithms()
            .contains(&Algorithm::EdDsa));
    }

    #[test]
    fn signed_request_objects() {
        assert!(Profile::Fapi1Advanced.requires_signed_request_object());
        assert!(!Profile::Fapi2Security.requires_signed_request_object());
        assert!(Profile::Fapi2MessageSigning.requires_signed_request_object());
    }
}
