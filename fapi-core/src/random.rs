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

/// A random (version 4) UUID in canonical lowercase text form, from the OS
/// CSPRNG: for `x-fapi-interaction-id` and resource ids.
///
/// # Errors
/// [`RandomError`] if the OS CSPRNG fails.
pub fn uuid_v4() -> Result<String, RandomError> {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b).map_err(|_| RandomError)?;
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 9562 variant
    let mut s = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push_str(&format!("{byte:02x}"));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    #[test]
    fn uuids_are_version_4_canonical_and_differ() {
        let u = super::uuid_v4().unwrap();
        assert_eq!(u.len(), 36);
        let parts: Vec<&str> = u.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'));
        assert!(matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'));
        assert!(u
            .bytes()
            .all(|c| c == b'-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(u, super::uuid_v4().unwrap());
    }

    #[test]
    fn tokens_have_at_least_128_bits_and_differ() {
        let a = super::token(1).unwrap();
        assert_eq!(a.len(), 22); // 16 bytes
        let b = super::token(32).unwrap();
        assert_eq!(b.len(), 43);
        assert_ne!(super::token(16).unwrap(), super::token(16).unwrap());
    }
}
