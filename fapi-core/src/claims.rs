//! JWT claims ([RFC 7519 §4.1]) read strictly: a claim of the wrong JSON type
//! is an error, never "absent". NumericDates must be JSON integers in range;
//! a string, a float or a negative `exp` is rejected.
//!
//! [RFC 7519 §4.1]: https://www.rfc-editor.org/rfc/rfc7519#section-4.1

use serde_json::{Map, Value};

use crate::time::UnixTime;

/// Why a claim was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClaimError {
    /// A required claim is absent.
    #[error("claim `{0}` is required")]
    Missing(&'static str),
    /// A claim has the wrong JSON type.
    #[error("claim `{0}` has the wrong type")]
    WrongType(&'static str),
    /// A NumericDate claim is not a JSON integer between 0 and year 9999.
    #[error("claim `{0}` must be a JSON integer NumericDate")]
    NotNumericDate(&'static str),
    /// `exp` is at or before now.
    #[error("token expired at {exp} (now {now})")]
    Expired {
        /// Current time.
        now: UnixTime,
        /// The `exp` claim.
        exp: UnixTime,
    },
    /// `nbf` is later than now plus the allowed skew.
    #[error("token is not valid before {nbf} (now {now})")]
    NotYetValid {
        /// Current time.
        now: UnixTime,
        /// The `nbf` claim.
        nbf: UnixTime,
    },
    /// `iat` is later than now plus the allowed skew.
    #[error("token was issued in the future at {iat} (now {now})")]
    IssuedInFuture {
        /// Current time.
        now: UnixTime,
        /// The `iat` claim.
        iat: UnixTime,
    },
    /// `nbf` is further in the past than the profile allows.
    #[error("token nbf is more than {max_secs} s in the past")]
    NotBeforeTooOld {
        /// The limit.
        max_secs: i64,
    },
    /// The validity window (`exp` - `nbf`, or `exp` - `iat`) is too long.
    #[error("token lifetime of {secs} s exceeds the maximum of {max_secs} s")]
    LifetimeTooLong {
        /// The lifetime found.
        secs: i64,
        /// The limit.
        max_secs: i64,
    },
    /// `exp` is before `nbf`/`iat`.
    #[error("token exp is before its nbf or iat")]
    InvertedWindow,
    /// `iss` is not the expected issuer.
    #[error("claim `iss` is not the expected issuer")]
    WrongIssuer,
    /// `aud` does not name this party (or is an array where a string is
    /// required).
    #[error("claim `aud` does not name this recipient in the required form")]
    WrongAudience,
}

/// The `aud` claim: a string or an array of strings
/// ([RFC 7519 §4.1.3](https://www.rfc-editor.org/rfc/rfc7519#section-4.1.3)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience<'a> {
    /// A single string.
    Single(&'a str),
    /// An array of strings.
    Many(&'a [Value]),
}

impl Audience<'_> {
    /// Whether the audience is exactly `expected` as a plain string.
    pub fn is_exactly(&self, expected: &str) -> bool {
        matches!(self, Audience::Single(s) if *s == expected)
    }
    /// Whether `expected` is the string or is in the array (exact compare).
    pub fn contains(&self, expected: &str) -> bool {
        match self {
            Audience::Single(s) => *s == expected,
            Audience::Many(a) => a.iter().any(|v| v.as_str() == Some(expected)),
        }
    }
}

/// The claims of a JWT.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Claims(Map<String, Value>);

impl Claims {
    /// Wraps a JSON object.
    pub fn new(map: Map<String, Value>) -> Self {
        Self(map)
    }

    /// The raw object.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// Unwraps the JSON object.
    pub fn into_map(self) -> Map<String, Value> {
        self.0
    }

    /// Any claim, raw.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    /// A string claim; absent is `None`, another type is an error.
    ///
    /// # Errors
    /// [`ClaimError::WrongType`].
    pub fn string(&self, name: &'static str) -> Result<Option<&str>, ClaimError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ClaimError::WrongType(name)),
        }
    }

    /// A required string claim.
    ///
    /// # Errors
    /// [`ClaimError::Missing`] or [`ClaimError::WrongType`].
    pub fn required_string(&self, name: &'static str) -> Result<&str, ClaimError> {
        self.string(name)?.ok_or(ClaimError::Missing(name))
    }

    /// A NumericDate claim: a JSON integer in `0..=253402300799`.
    ///
    /// # Errors
    /// [`ClaimError::NotNumericDate`] for a string, float, negative or
    /// out-of-range value.
    pub fn numeric_date(&self, name: &'static str) -> Result<Option<UnixTime>, ClaimError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .and_then(UnixTime::from_secs)
                .map(Some)
                .ok_or(ClaimError::NotNumericDate(name)),
            Some(_) => Err(ClaimError::NotNumericDate(name)),
        }
    }

    /// The `aud` claim.
    ///
    /// # Errors
    /// [`ClaimError::WrongType`] unless a string or a non-empty array of
    /// strings.
    pub fn audience(&self) -> Result<Option<Audience<'_>>, ClaimError> {
        match self.0.get("aud") {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(Audience::Single(s))),
            Some(Value::Array(a)) if !a.is_empty() && a.iter().all(Value::is_string) => {
                Ok(Some(Audience::Many(a)))
            }
            Some(_) => Err(ClaimError::WrongType("aud")),
        }
    }

    /// Checks `exp`, `nbf` and `iat` against `now` and `rules`.
    ///
    /// # Errors
    /// The first [`ClaimError`] found.
    pub fn check_times(&self, rules: &TimeRules, now: UnixTime) -> Result<Times, ClaimError> {
        let exp = self.numeric_date("exp")?;
        let nbf = self.numeric_date("nbf")?;
        let iat = self.numeric_date("iat")?;
        rules.check(exp, nbf, iat, now)
    }
}

/// Time rules for one kind of token: normally the profile's
/// (`Profile::request_object_times`, `client_assertion_times`,
/// `access_token_times`), adjusted with the `with_*` methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TimeRules {
    /// `nbf` must be present.
    pub require_nbf: bool,
    /// `iat` must be present.
    pub require_iat: bool,
    /// How far in the future `nbf`/`iat` may be (clock skew): accepted up
    /// to exactly `now + max_future_skew_secs`.
    pub max_future_skew_secs: i64,
    /// How long after `exp` the token is still accepted (clock skew the
    /// other way): accepted while `now < exp + exp_leeway_secs`. 0 (the
    /// default everywhere in this crate) means expired at `exp` exactly.
    pub exp_leeway_secs: i64,
    /// How far in the past `nbf` may be.
    pub max_nbf_age_secs: Option<i64>,
    /// Longest allowed `exp` - `nbf` (or - `iat`, or - now).
    pub max_lifetime_secs: Option<i64>,
}

impl TimeRules {
    /// These rules accepting `nbf`/`iat` up to `secs` ahead.
    #[must_use]
    pub const fn with_max_future_skew(mut self, secs: i64) -> Self {
        self.max_future_skew_secs = secs;
        self
    }

    /// These rules with `iat` required or not.
    #[must_use]
    pub const fn with_iat_required(mut self, required: bool) -> Self {
        self.require_iat = required;
        self
    }

    /// These rules accepting a token until `secs` after its `exp`.
    #[must_use]
    pub const fn with_exp_leeway(mut self, secs: i64) -> Self {
        self.exp_leeway_secs = secs;
        self
    }

    /// Checks already-read `exp`, `nbf` and `iat` values against `now`:
    /// the time rules of [`Claims::check_times`] without the JSON. A
    /// verifier that remembers a token's [`Times`] re-applies them here at
    /// every later `now`.
    ///
    /// # Errors
    /// The first [`ClaimError`] found.
    pub fn check(
        &self,
        exp: Option<UnixTime>,
        nbf: Option<UnixTime>,
        iat: Option<UnixTime>,
        now: UnixTime,
    ) -> Result<Times, ClaimError> {
        let Some(exp) = exp else {
            return Err(ClaimError::Missing("exp"));
        };
        if self.require_nbf && nbf.is_none() {
            return Err(ClaimError::Missing("nbf"));
        }
        if self.require_iat && iat.is_none() {
            return Err(ClaimError::Missing("iat"));
        }
        if now >= exp.saturating_add(self.exp_leeway_secs) {
            return Err(ClaimError::Expired { now, exp });
        }
        let latest_start = now.saturating_add(self.max_future_skew_secs);
        if let Some(nbf) = nbf {
            if nbf > latest_start {
                return Err(ClaimError::NotYetValid { now, nbf });
            }
            if let Some(max) = self.max_nbf_age_secs {
                if now.secs_since(nbf) > max {
                    return Err(ClaimError::NotBeforeTooOld { max_secs: max });
                }
            }
        }
        if let Some(iat) = iat {
            if iat > latest_start {
                return Err(ClaimError::IssuedInFuture { now, iat });
            }
        }
        if let Some(max) = self.max_lifetime_secs {
            // the window runs from nbf, else iat, else now
            let start = nbf.or(iat).unwrap_or(now);
            let secs = exp.secs_since(start);
            if secs < 0 {
                return Err(ClaimError::InvertedWindow);
            }
            if secs > max {
                return Err(ClaimError::LifetimeTooLong {
                    secs,
                    max_secs: max,
                });
            }
        }
        Ok(Times { exp, nbf, iat })
    }

    /// The rules for a token the authorization server issued (access
    /// tokens, ID tokens, JARM responses): `exp` required, `iat` required
    /// or not, the profile skew for `iat`/`nbf` in the future, no lifetime
    /// cap beyond `exp`.
    pub const fn issued_token(require_iat: bool) -> Self {
        Self {
            require_nbf: false,
            require_iat,
            max_future_skew_secs: crate::profile::MAX_FUTURE_SKEW_SECS,
            exp_leeway_secs: 0,
            max_nbf_age_secs: None,
            max_lifetime_secs: None,
        }
    }

    /// Checks that the clock allowances are within what FAPI permits:
    /// `max_future_skew_secs` and `exp_leeway_secs` each between 0 and
    /// [`MAX_CLOCK_SKEW_SECS`](crate::profile::MAX_CLOCK_SKEW_SECS) (FAPI 2.0
    /// SP §5.3.2.1: reject `iat`/`nbf` more than 60 s ahead).
    ///
    /// # Errors
    /// [`TimeRulesError`] naming the allowance out of range.
    pub fn validate(&self) -> Result<(), TimeRulesError> {
        let max = crate::profile::MAX_CLOCK_SKEW_SECS;
        if !(0..=max).contains(&self.max_future_skew_secs) {
            return Err(TimeRulesError::FutureSkew {
                secs: self.max_future_skew_secs,
                max,
            });
        }
        if !(0..=max).contains(&self.exp_leeway_secs) {
            return Err(TimeRulesError::ExpLeeway {
                secs: self.exp_leeway_secs,
                max,
            });
        }
        Ok(())
    }
}

/// Why a set of time rules was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimeRulesError {
    /// The allowed future skew for `iat`/`nbf` is negative or too large.
    #[error("future clock skew of {secs} s is outside 0 to {max} s")]
    FutureSkew {
        /// The value given.
        secs: i64,
        /// The limit.
        max: i64,
    },
    /// The `exp` leeway is negative or too large.
    #[error("exp leeway of {secs} s is outside 0 to {max} s")]
    ExpLeeway {
        /// The value given.
        secs: i64,
        /// The limit.
        max: i64,
    },
}

/// The checked time claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Times {
    /// `exp`
    pub exp: UnixTime,
    /// `nbf`
    pub nbf: Option<UnixTime>,
    /// `iat`
    pub iat: Option<UnixTime>,
}
