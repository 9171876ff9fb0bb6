//! The TPP's side: verify a JARM response before using its code.

use std::sync::Arc;

use fapi_core::claims::{ClaimError, TimeRules};
use fapi_core::crypto::Algorithm;
use fapi_core::jose::{ExpectedType, JwsPolicy, UnverifiedJws};
use fapi_core::jwk::KeySet;
use fapi_core::UnixTime;
use fapi_core::{ClientId, Issuer, State};
use subtle::ConstantTimeEq;

use crate::JarmError;

/// What a verified response says.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JarmOutcome {
    /// The authorization code, to redeem at the token endpoint.
    Code(String),
    /// The authorization server's error.
    Error {
        /// `error`
        error: String,
        /// `error_description`
        description: Option<String>,
    },
}

/// Verifies JARM responses from one authorization server for one client.
#[derive(Clone, Debug)]
pub struct JarmVerifier {
    keys: Arc<KeySet>,
    issuer: Issuer,
    client_id: ClientId,
    algorithms: Vec<Algorithm>,
}

impl JarmVerifier {
    /// A verifier trusting `keys` (the authorization server's JWKS) for
    /// responses from `issuer` to `client_id`.
    pub fn new(
        keys: Arc<KeySet>,
        issuer: Issuer,
        client_id: ClientId,
        algorithms: &[Algorithm],
    ) -> Self {
        Self {
            keys,
            issuer,
            client_id,
            algorithms: algorithms.to_vec(),
        }
    }

    /// Verifies the `response` JWT: signature by the server's key, `iss`,
    /// `aud` = this client, `exp`, and `state` equal (constant time) to the
    /// one this client sent (`None` if it sent none).
    ///
    /// # Errors
    /// [`JarmError`].
    pub fn verify(
        &self,
        response: &str,
        expected_state: Option<&State>,
        now: UnixTime,
    ) -> Result<JarmOutcome, JarmError> {
        let policy = JwsPolicy::new(&self.algorithms, ExpectedType::JwtOrAbsent);
        let (_, claims) = UnverifiedJws::parse(response)?
            .verify(&self.keys, &policy)?
            .into_parts();
        let rules = TimeRules::issued_token(false);
        claims.check_times(&rules, now)?;
        if claims.required_string("iss")? != self.issuer.as_str() {
            return Err(ClaimError::WrongIssuer.into());
        }
        match claims.audience()? {
            Some(aud) if aud.contains(self.client_id.as_str()) => {}
            Some(_) => return Err(ClaimError::WrongAudience.into()),
            None => return Err(ClaimError::Missing("aud").into()),
        }
        let state_ok = match (claims.string("state")?, expected_state) {
            (Some(got), Some(want)) => bool::from(got.as_bytes().ct_eq(want.as_str().as_bytes())),
            (None, None) => true,
            _ => false,
        };
        if !state_ok {
            return Err(JarmError::StateMismatch);
        }
        match (claims.string("code")?, claims.string("error")?) {
            (Some(code), None) if !code.is_empty() => Ok(JarmOutcome::Code(code.to_owned())),
            (None, Some(error)) if !error.is_empty() => Ok(JarmOutcome::Error {
                error: error.to_owned(),
                description: claims.string("error_description")?.map(str::to_owned),
            }),
            _ => Err(JarmError::Malformed),
        }
    }

    /// Reads the `response` parameter from the redirect the browser brought
    /// back (query, fragment, or a form-post body passed as `?body`) and
    /// verifies it.
    ///
    /// # Errors
    /// [`JarmError::MissingResponse`] unless exactly one `response`
    /// parameter is present; otherwise as [`JarmVerifier::verify`].
    pub fn verify_redirect(
        &self,
        redirect: &str,
        expected_state: Option<&State>,
        now: UnixTime,
    ) -> Result<JarmOutcome, JarmError> {
        let url = url::Url::parse(redirect).map_err(|_| JarmError::MissingResponse)?;
        let from = |s: &str| -> Vec<String> {
            url::form_urlencoded::parse(s.as_bytes())
                .filter(|(k, _)| k == "response")
                .map(|(_, v)| v.into_owned())
                .collect()
        };
        let mut found = from(url.query().unwrap_or_default());
        found.extend(from(url.fragment().unwrap_or_default()));
        match found.as_slice() {
            [one] => self.verify(one, expected_state, now),
            _ => Err(JarmError::MissingResponse),
        }
    }
}
