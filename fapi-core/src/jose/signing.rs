//! Producing compact JWS: with a synchronous or an asynchronous (HSM,
//! KMS) key.

use super::*;

/// Signs `claims` as a compact JWS with `alg` from the key, and `kid`/`typ`
/// when given.
///
/// # Errors
/// [`SigningError`] if the provider fails.
pub fn sign_compact(
    key: &dyn SigningKey,
    kid: Option<&str>,
    typ: Option<&str>,
    claims: &Map<String, Value>,
) -> Result<String, SigningError> {
    let input = compact_signing_input(key.algorithm(), kid, typ, claims)?;
    let sig = key.sign(input.as_bytes())?;
    Ok(compact_with_signature(input, &sig))
}

/// [`sign_compact`] with a key that may answer later (an HSM, a KMS): what
/// every signer of the family uses.
///
/// # Errors
/// [`SigningError`] if the signer fails.
pub async fn sign_compact_async<K: AsyncSigningKey + ?Sized>(
    key: &K,
    kid: Option<&str>,
    typ: Option<&str>,
    claims: &Map<String, Value>,
) -> Result<String, SigningError> {
    let input = compact_signing_input(key.algorithm(), kid, typ, claims)?;
    let sig = key.sign_async(input.as_bytes()).await?;
    Ok(compact_with_signature(input, &sig))
}

/// `header.payload` of a compact JWS of `claims` under `alg`, `kid`, `typ`.
fn compact_signing_input(
    alg: Algorithm,
    kid: Option<&str>,
    typ: Option<&str>,
    claims: &Map<String, Value>,
) -> Result<String, SigningError> {
    let mut header = Map::new();
    header.insert("alg".into(), Value::String(alg.jose_name().into()));
    if let Some(kid) = kid {
        header.insert("kid".into(), Value::String(kid.into()));
    }
    if let Some(typ) = typ {
        header.insert("typ".into(), Value::String(typ.into()));
    }
    let h = serde_json::to_vec(&header).map_err(|_| SigningError)?;
    let p = serde_json::to_vec(claims).map_err(|_| SigningError)?;
    let mut out = b64url_encode(&h);
    out.push('.');
    out.push_str(&b64url_encode(&p));
    Ok(out)
}

/// Signs `claims` as a DPoP proof: header `typ` `dpop+jwt`, `alg` of the
/// key, and `jwk` the key's public JWK (RFC 9449 §4.2).
pub(crate) fn sign_dpop(
    key: &dyn SigningKey,
    claims: &Map<String, Value>,
) -> Result<String, SigningError> {
    let mut header = Map::new();
    header.insert("typ".into(), Value::String("dpop+jwt".into()));
    header.insert(
        "alg".into(),
        Value::String(key.algorithm().jose_name().into()),
    );
    let jwk = crate::jwk::Jwk::from_public_key(key.public_key().clone(), None).to_json();
    header.insert("jwk".into(), jwk);
    let h = serde_json::to_vec(&header).map_err(|_| SigningError)?;
    let p = serde_json::to_vec(claims).map_err(|_| SigningError)?;
    let input = format!("{}.{}", b64url_encode(&h), b64url_encode(&p));
    let sig = key.sign(input.as_bytes())?;
    Ok(compact_with_signature(input, &sig))
}

/// The signing input with its signature appended.
fn compact_with_signature(mut input: String, sig: &[u8]) -> String {
    input.push('.');
    input.push_str(&b64url_encode(sig));
    input
}

/// Signs `claims` under a caller-built header (which must carry `alg`
/// matching the key). Public only through `testing::sign_with_header`.
#[cfg(feature = "testing")]
pub(crate) fn sign_with_header(
    key: &dyn SigningKey,
    header: &Map<String, Value>,
    claims: &Map<String, Value>,
) -> Result<String, SigningError> {
    let h = serde_json::to_vec(header).map_err(|_| SigningError)?;
    let p = serde_json::to_vec(claims).map_err(|_| SigningError)?;
    sign_raw_parts(key, &h, &p)
}

/// Signs raw header and payload bytes (already serialized JSON). Public
/// only through `testing::sign_raw_parts`.
#[cfg(feature = "testing")]
pub(crate) fn sign_raw_parts(
    key: &dyn SigningKey,
    header: &[u8],
    payload: &[u8],
) -> Result<String, SigningError> {
    let mut input = b64url_encode(header);
    input.push('.');
    input.push_str(&b64url_encode(payload));
    let sig = key.sign(input.as_bytes())?;
    Ok(compact_with_signature(input, &sig))
}
