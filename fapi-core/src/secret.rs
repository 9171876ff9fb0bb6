//! The shape every opaque secret the server hands out shares (authorization
//! codes, refresh tokens): made from the OS CSPRNG, shown to its holder
//! once, kept by stores only as its SHA-256, checked with a bound when
//! presented back, never printed, compared in constant time, wiped on drop.

/// The longest opaque secret accepted from a client.
pub(crate) const MAX_LEN: usize = 128;

/// Defines an opaque secret type `$name` for the request parameter
/// `$param`.
macro_rules! secret_token {
    ($(#[$doc:meta])* $name:ident, $param:literal) => {
        $(#[$doc])*
        #[derive(zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
        pub struct $name(String);

        impl $name {
            /// A fresh value: 32 bytes from the OS CSPRNG, base64url (43
            /// characters).
            ///
            /// # Errors
            /// [`crate::random::RandomError`] if the OS CSPRNG fails.
            pub fn generate() -> Result<Self, crate::random::RandomError> {
                crate::random::token(32).map(Self)
            }

            /// The secret value, for the response that hands it out.
            pub fn secret(&self) -> &str {
                &self.0
            }

            /// The lookup key a store keeps: SHA-256 of the value.
            pub fn hash(&self) -> [u8; 32] {
                <sha2::Sha256 as sha2::Digest>::digest(self.0.as_bytes()).into()
            }
        }

        impl TryFrom<&str> for $name {
            type Error = crate::types::InvalidValue;
            /// Checks a presented value: 1-128 base64url characters.
            fn try_from(s: &str) -> Result<Self, crate::types::InvalidValue> {
                if s.is_empty() || s.len() > crate::secret::MAX_LEN {
                    return Err(crate::types::InvalidValue {
                        what: $param,
                        why: "must be 1 to 128 characters",
                    });
                }
                if !s
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    return Err(crate::types::InvalidValue {
                        what: $param,
                        why: "may contain only base64url characters",
                    });
                }
                Ok(Self(s.to_owned()))
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                subtle::ConstantTimeEq::ct_eq(self.0.as_bytes(), other.0.as_bytes()).into()
            }
        }
        impl Eq for $name {}
    };
}

pub(crate) use secret_token;
