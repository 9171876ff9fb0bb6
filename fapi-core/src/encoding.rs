//! Strict base64url ([RFC 7515 §2](https://www.rfc-editor.org/rfc/rfc7515#section-2)):
//! no padding, no whitespace, canonical trailing bits, bounded length.
//!
//! Decoding goes through `base64ct`, which is constant time and rejects
//! non-canonical encodings.

use base64ct::{Base64UrlUnpadded, Encoding};

/// Encodes `bytes` as base64url without padding.
pub fn b64url_encode(bytes: &[u8]) -> String {
    Base64UrlUnpadded::encode_string(bytes)
}

/// Why a base64url string was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum B64Error {
    /// Longer than the caller's limit.
    TooLong,
    /// Not canonical unpadded base64url.
    Malformed,
}

/// Decodes strict base64url, refusing input longer than `max_encoded_len`.
pub(crate) fn b64url_decode(s: &str, max_encoded_len: usize) -> Result<Vec<u8>, B64Error> {
    if s.len() > max_encoded_len {
        return Err(B64Error::TooLong);
    }
    Base64UrlUnpadded::decode_vec(s).map_err(|_| B64Error::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for len in 0..40 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37) as u8).collect();
            let enc = b64url_encode(&bytes);
            assert_eq!(b64url_decode(&enc, 1000).unwrap(), bytes);
        }
    }

    #[test]
    fn rejects_padding_whitespace_std_alphabet_and_noncanonical_bits() {
        assert_eq!(b64url_decode("YQ", 10), Ok(b"a".to_vec()));
        assert_eq!(b64url_decode("YQ==", 10), Err(B64Error::Malformed));
        assert_eq!(b64url_decode("Y Q", 10), Err(B64Error::Malformed));
        assert_eq!(b64url_decode("YQ\n", 10), Err(B64Error::Malformed));
        // '+' and '/' belong to the standard alphabet, not base64url.
        assert_eq!(b64url_decode("-_8", 10), Ok(vec![0xfb, 0xff]));
        assert_eq!(b64url_decode("+/8", 10), Err(B64Error::Malformed));
        // "YR" decodes to 'a' too if the low bits are ignored: non-canonical.
        assert_eq!(b64url_decode("YR", 10), Err(B64Error::Malformed));
        // a single leftover character can never be valid
        assert_eq!(b64url_decode("YWI", 10), Ok(b"ab".to_vec()));
        assert_eq!(b64url_decode("Y", 10), Err(B64Error::Malformed));
    }

    #[test]
    fn rejects_over_limit_before_decoding() {
        assert_eq!(b64url_decode("YWJj", 3), Err(B64Error::TooLong));
        assert_eq!(b64url_decode("YWJj", 4), Ok(b"abc".to_vec()));
    }
}
