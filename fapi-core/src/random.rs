//! Identifiers and secrets from the OS CSPRNG (FAPI-RULES: at least 128 bits
//! for codes, `request_uri`, tokens and ids).

/// The OS CSPRNG failed; nothing was produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the operating system's random number generator failed")]
pub struct RandomError;

/// The fewest random bytes any identifier or secret here uses (128 bits).
pub const MIN_ENTROPY_BYTES: usize = 16;

/// `bytes` random bytes (at least [`MIN_ENTROPY_BYTES`]) from the OS CSPRNG,
/// base64url-encoded.
///
/// # Errors
/// [`RandomError`] if the OS CSPRNG fails.
pub fn token(bytes: usize) -> Result<String, RandomError> {
    let mut buf = zeroize::Zeroizing::new(vec![0u8; bytes.max(MIN_ENTROPY_BYTES)]);
    getrandom::getrandom(&mut buf).map_err(|_| RandomError)?;
    Ok(crate::encoding::b64url_encode(&buf))
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_have_at_least_128_bits_and_differ() {
        let a = super::token(1).unwrap();
        assert_eq!(a.len(), 22); // 16 bytes
        let b = super::token(32).unwrap();
        assert_eq!(b.len(), 43);
        assert_ne!(super::token(16).unwrap(), super::token(16).unwrap());
    }
}
