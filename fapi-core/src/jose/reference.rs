//! The general header reader the one-pass reader is held to, for the
//! tests and the fuzz targets.

use super::*;

/// The header rules as they were before the one-pass reader
/// (`parse_object`, then the same rules in the same order), kept as the
/// reference the tests and the `claim_readers` fuzz target hold
/// [`Header::parse`] to: the common outcome, or both if they differ.
pub(crate) fn header_readers_agree(bytes: &[u8]) -> Result<String, String> {
    fn general(bytes: &[u8]) -> Result<String, JoseError> {
        let members = parse_object(bytes).map_err(JoseError::json(Part::Header))?;
        if let Some(name) = KEY_SOURCE_HEADERS
            .iter()
            .find(|n| members.contains_key(**n))
        {
            return Err(JoseError::EmbeddedKeySource(name));
        }
        let opt_str = |name: &'static str| match members.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(JoseError::HeaderType(name)),
        };
        let alg = opt_str("alg")?.ok_or(JoseError::MissingAlgorithm)?;
        let kid = opt_str("kid")?;
        let typ = opt_str("typ")?;
        let cty = opt_str("cty")?;
        let crit = match members.get("crit") {
            None => None,
            Some(Value::Array(items)) => {
                let mut names: Vec<String> = Vec::new();
                for item in items {
                    match item {
                        Value::String(s)
                            if !s.is_empty()
                                && !names.contains(s)
                                && members.contains_key(s.as_str()) =>
                        {
                            names.push(s.clone());
                        }
                        _ => return Err(JoseError::MalformedCritical),
                    }
                }
                if names.is_empty() {
                    return Err(JoseError::MalformedCritical);
                }
                Some(names)
            }
            Some(_) => return Err(JoseError::MalformedCritical),
        };
        Ok(format!(
            "{alg:?} {kid:?} {typ:?} {cty:?} {crit:?} {} {:?} {:?}",
            members.contains_key("b64"),
            members.get("b64"),
            members.get("http://openbanking.org.uk/iat")
        ))
    }
    fn one_pass(bytes: &[u8]) -> Result<String, JoseError> {
        let h = Header::parse(bytes.to_vec())?;
        Ok(format!(
            "{:?} {:?} {:?} {:?} {:?} {} {:?} {:?}",
            h.alg,
            h.kid,
            h.typ,
            h.cty,
            h.crit,
            h.has_b64,
            h.get("b64"),
            h.get("http://openbanking.org.uk/iat")
        ))
    }
    json::same_outcome(
        "header",
        bytes,
        format!("{:?}", one_pass(bytes)),
        format!("{:?}", general(bytes)),
    )
}
