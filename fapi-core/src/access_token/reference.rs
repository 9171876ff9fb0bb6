//! The claim checks as they were before the one-pass reader
//! (`parse_object` + [`Claims`], same checks, same order), kept as the
//! reference the tests and the `claim_readers` fuzz target hold
//! [`payload::read`] + [`AccessTokenVerifier::check_claims`] to.

use super::verify::Remembered;
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
        Some(s) => Some(Scope::try_from(s).map_err(|_| AccessTokenError::InvalidClaim("scope"))?),
        None => None,
    };
    let consent_id = match claims.string("consent_id")? {
        Some(s) => {
            Some(ConsentId::try_from(s).map_err(|_| AccessTokenError::InvalidClaim("consent_id"))?)
        }
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
    let outcome =
        |r: Result<Remembered, AccessTokenError>| format!("{:?}", r.map(|r| (r.token, r.times)));
    crate::json::same_outcome(
        "access token claim",
        payload,
        outcome(one_pass(&v, payload, now)),
        outcome(general(&v, payload, now)),
    )
}
