//! Strict base64url ([RFC 7515 §2](https://www.rfc-editor.org/rfc/rfc7515#section-2)):
//! no padding, no whitespace, canonical trailing bits, bounded length.
//!
//! Two decoders, one rule set:
//! - `b64url_decode` goes through `base64ct`, which is constant time: for
//!   anything that may be secret (key material in a JWK, thumbprints
//!   compared against stored ones).
//! - `b64url_decode_public` goes through the `base64` crate's
//!   general-purpose engine, configured to the same strictness (no padding,
//!   canonical trailing bits, URL-safe alphabet only): for the three
//!   segments of a JWS the verifier was handed. Their bytes are already
//!   known to whoever sent them, so the decoder's timing reveals nothing new,
//!   and it is 2.5-4 times faster, which matters on a path that runs
//!   on every API call (see BENCHMARKS.md). The two agree on every input
//!   (tested below).

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use base64ct::{Base64UrlUnpadded, Encoding};

/// base64url, no padding accepted or produced, canonical trailing bits.
const PUBLIC_URL_SAFE: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

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

/// Decodes strict base64url that is not secret (see the module docs),
/// refusing input longer than `max_encoded_len`.
pub(crate) fn b64url_decode_public(s: &str, max_encoded_len: usize) -> Result<Vec<u8>, B64Error> {
    if s.len() > max_encoded_len {
        return Err(B64Error::TooLong);
    }
    PUBLIC_URL_SAFE
        .decode(s.as_bytes())
        .map_err(|_| B64Error::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Both decoders, which must always agree.
    fn both(s: &str, max: usize) -> Result<Vec<u8>, B64Error> {
        let ct = b64url_decode(s, max);
        assert_eq!(
            ct,
            b64url_decode_public(s, max),
            "decoders disagree on {s:?}"
        );
        ct
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn decoders_agree_on_arbitrary_strings(s in "[A-Za-z0-9_=+/. \\n-]{0,12}") {
            let _ = both(&s, 100);
        }

        #[test]
        fn decoders_agree_on_encodings_and_their_mutations(
            bytes in proptest::collection::vec(any::<u8>(), 0..40),
            position in any::<usize>(),
            replacement in proptest::sample::select(b"AQgw_-+/=. ".to_vec()),
        ) {
            let enc = b64url_encode(&bytes);
            prop_assert_eq!(both(&enc, 100), Ok(bytes));
            if !enc.is_empty() {
                let mut m = enc.into_bytes();
                let i = position % m.len();
                m[i] = replacement;
                let _ = both(&String::from_utf8(m).unwrap(), 100);
            }
        }
    }

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
        assert_eq!(both("YQ", 10), Ok(b"a".to_vec()));
        assert_eq!(both("YQ==", 10), Err(B64Error::Malformed));
        assert_eq!(both("YQ=", 10), Err(B64Error::Malformed));
        assert_eq!(both("Y Q", 10), Err(B64Error::Malformed));
        assert_eq!(both("YQ\n", 10), Err(B64Error::Malformed));
        // '+' and '/' belong to the standard alphabet, not base64url.
        assert_eq!(both("-_8", 10), Ok(vec![0xfb, 0xff]));
        assert_eq!(both("+/8", 10), Err(B64Error::Malformed));
        // "YR" decodes to 'a' too if the low bits are ignored: non-canonical.
        assert_eq!(both("YR", 10), Err(B64Error::Malformed));
        assert_eq!(both("YWJ", 10), Err(B64Error::Malformed));
        // a single leftover character can never be valid
        assert_eq!(both("YWI", 10), Ok(b"ab".to_vec()));
        assert_eq!(both("Y", 10), Err(B64Error::Malformed));
        assert_eq!(both("", 10), Ok(Vec::new()));
    }

    #[test]
    fn rejects_over_limit_before_decoding() {
        assert_eq!(both("YWJj", 3), Err(B64Error::TooLong));
        assert_eq!(both("YWJj", 4), Ok(b"abc".to_vec()));
    }
}
