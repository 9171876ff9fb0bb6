//! Compact framing: [`UnverifiedJws::parse`] (three strict base64url
//! segments, bounded size, a strict header) and [`UnverifiedJws::verify`]
//! to a [`VerifiedJws`].

use super::*;

/// A compact JWS whose signature has not been checked.
///
/// Nothing in it may be trusted; the accessors say so in their names.
#[derive(Clone)]
pub struct UnverifiedJws<'a> {
    signing_input: &'a str,
    header: Header,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

impl fmt::Debug for UnverifiedJws<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnverifiedJws")
            .field("alg", &self.header.alg)
            .field("kid", &self.header.kid)
            .finish_non_exhaustive()
    }
}

impl<'a> UnverifiedJws<'a> {
    /// Frames a compact JWS strictly (see the module docs).
    ///
    /// # Errors
    /// [`JoseError`] for any framing or header rule.
    pub fn parse(token: &'a str) -> Result<Self, JoseError> {
        Self::parse_with(token, header::EmbeddedKey::Refused)
    }

    /// [`UnverifiedJws::parse`] for a DPoP proof: its header may carry
    /// `jwk` (and nothing else may). Only the DPoP verifier calls it, and it
    /// verifies the signature with that key alone.
    pub(crate) fn parse_dpop(token: &'a str) -> Result<Self, JoseError> {
        Self::parse_with(token, header::EmbeddedKey::JwkAllowed)
    }

    fn parse_with(token: &'a str, embedded: header::EmbeddedKey) -> Result<Self, JoseError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(JoseError::TooLarge { max: MAX_TOKEN_LEN });
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JoseError::SegmentCount);
        };
        let header_bytes =
            b64url_decode_public(h, MAX_TOKEN_LEN).map_err(JoseError::b64(Part::Header))?;
        let header = Header::parse_with(header_bytes, embedded)?;
        let payload =
            b64url_decode_public(p, MAX_TOKEN_LEN).map_err(JoseError::b64(Part::Payload))?;
        let signature =
            b64url_decode_public(s, MAX_TOKEN_LEN).map_err(JoseError::b64(Part::Signature))?;
        let signing_input = token
            .get(..h.len() + 1 + p.len())
            .ok_or(JoseError::SegmentCount)?;
        Ok(Self {
            signing_input,
            header,
            payload,
            signature,
        })
    }

    /// The unverified header.
    pub fn unverified_header(&self) -> &Header {
        &self.header
    }

    /// The unverified payload parsed as claims, e.g. to find `iss` and look up
    /// the party whose keys must verify the token.
    ///
    /// # Errors
    /// [`JoseError::Json`] if the payload is not a strict JSON object.
    pub fn unverified_claims(&self) -> Result<Claims, JoseError> {
        parse_object(&self.payload)
            .map(Claims::new)
            .map_err(JoseError::json(Part::Payload))
    }

    /// Checks the policy, then the signature with the one matching key from
    /// `keys`, then parses the payload.
    ///
    /// # Errors
    /// [`JoseError`]; a bad signature is the opaque [`JoseError::BadSignature`].
    pub fn verify(self, keys: &KeySet, policy: &JwsPolicy<'_>) -> Result<VerifiedJws, JoseError> {
        let (header, payload, key_thumbprint) = self.verify_signature(keys, policy)?;
        let claims = parse_object(&payload).map_err(JoseError::json(Part::Payload))?;
        Ok(VerifiedJws {
            header,
            claims: Claims::new(claims),
            key_thumbprint,
        })
    }

    /// [`UnverifiedJws::verify`] up to the signature: the payload bytes are
    /// returned unparsed, for a reader of one kind of token that applies the
    /// same JSON rules itself.
    pub(crate) fn verify_signature(
        self,
        keys: &KeySet,
        policy: &JwsPolicy<'_>,
    ) -> Result<(Header, Vec<u8>, crate::crypto::JwkThumbprint), JoseError> {
        let alg = self.header.check(policy, false)?;
        let entry = keys.select(alg, self.header.kid())?;
        entry
            .key()
            .verify(self.signing_input.as_bytes(), &self.signature)
            .map_err(|_| JoseError::BadSignature)?;
        Ok((self.header, self.payload, entry.thumbprint()))
    }
}

/// A JWS whose algorithm, type and signature have been checked. Its claims
/// still need the checks of the token kind (time, issuer, audience, ...).
#[derive(Clone, Debug)]
pub struct VerifiedJws {
    header: Header,
    claims: Claims,
    key_thumbprint: crate::crypto::JwkThumbprint,
}

impl VerifiedJws {
    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }
    /// The claims.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }
    /// The thumbprint of the key that verified the signature.
    pub fn key_thumbprint(&self) -> crate::crypto::JwkThumbprint {
        self.key_thumbprint
    }
    /// Splits into header and claims.
    pub fn into_parts(self) -> (Header, Claims) {
        (self.header, self.claims)
    }
}
