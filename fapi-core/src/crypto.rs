//! The crypto provider: signing and verifying bytes for the three JOSE
//! algorithms FAPI allows, as a value chosen at run time ([rustls
//! `CryptoProvider`] style), never a compile-time fork of the protocol code.
//!
//! Only `PS256`, `ES256` and `EdDSA` (Ed25519) exist here. There is no
//! `RS256`, no `HS*` and no `none` anywhere in a provider, so no header can
//! talk a verifier into them.
//!
//! Public keys are parsed once, into a [`VerifyingKey`] that is cached in a
//! [`KeySet`](crate::jwk::KeySet); verifying a token never re-parses a key.
//!
//! Two providers ship:
//! - [`aws_lc::AwsLcProvider`] (feature `aws-lc-rs`, default): AWS-LC, the
//!   library rustls uses by default, with a FIPS mode.
//! - [`rustcrypto::RustCryptoProvider`] (feature `rustcrypto`): pure Rust
//!   (`p256`, `rsa`, `ed25519-dalek`).
//!
//! # Security
//! The `rsa` crate is affected by RUSTSEC-2023-0071 (Marvin: a timing side
//! channel in private-key operations) in every release. With the
//! `rustcrypto` provider, verifying PS256 is unaffected, but **signing PS256
//! is not for production keys**: use the `aws-lc-rs` provider, or ES256 /
//! EdDSA keys, wherever the bank signs with RSA.
//!
//! [rustls `CryptoProvider`]: https://docs.rs/rustls/latest/rustls/crypto/struct.CryptoProvider.html

use core::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::encoding::b64url_encode;

#[cfg(feature = "aws-lc-rs")]
pub mod aws_lc;
#[cfg(feature = "rustcrypto")]
pub mod rustcrypto;

/// A JWS algorithm this crate family can use
/// ([RFC 7518 §3.1](https://www.rfc-editor.org/rfc/rfc7518#section-3.1),
/// [RFC 8037 §3.1](https://www.rfc-editor.org/rfc/rfc8037#section-3.1)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// RSASSA-PSS with SHA-256, MGF1 with SHA-256, salt length 32.
    Ps256,
    /// ECDSA on P-256 with SHA-256, signature as 64-byte `r || s`.
    Es256,
    /// EdDSA on Ed25519.
    EdDsa,
}

impl Algorithm {
    /// Every algorithm, for iteration in tests.
    #[doc(hidden)]
    pub const ALL: [Algorithm; 3] = [Algorithm::Ps256, Algorithm::Es256, Algorithm::EdDsa];

    /// Looks up an `alg` header value. Exact, case-sensitive match
    /// ([RFC 7515 §4.1.1]): `none`, `None`, `HS256`, `RS256`, `ps256`, ... all
    /// give `None`.
    ///
    /// [RFC 7515 §4.1.1]: https://www.rfc-editor.org/rfc/rfc7515#section-4.1.1
    pub fn from_jose_name(name: &str) -> Option<Self> {
        match name {
            "PS256" => Some(Self::Ps256),
            "ES256" => Some(Self::Es256),
            "EdDSA" => Some(Self::EdDsa),
            _ => None,
        }
    }

    /// The `alg` header value.
    pub fn jose_name(self) -> &'static str {
        match self {
            Self::Ps256 => "PS256",
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.jose_name())
    }
}

/// The public part of a key, in the form JWK carries it.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublicKeyMaterial {
    /// RSA: modulus and public exponent, big-endian without leading zeros.
    Rsa {
        /// Modulus.
        n: Vec<u8>,
        /// Public exponent.
        e: Vec<u8>,
    },
    /// EC P-256: affine coordinates, 32 bytes each.
    P256 {
        /// x coordinate.
        x: [u8; 32],
        /// y coordinate.
        y: [u8; 32],
    },
    /// Ed25519 public key, 32 bytes.
    Ed25519 {
        /// The encoded point.
        x: [u8; 32],
    },
}

impl fmt::Debug for PublicKeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PublicKeyMaterial({}, {})",
            self.algorithm(),
            self.thumbprint()
        )
    }
}

impl PublicKeyMaterial {
    /// The one algorithm this key is used with. An RSA key verifies only
    /// PS256, a P-256 key only ES256, an Ed25519 key only EdDSA: the
    /// algorithm comes from the key, never from a token header alone.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Self::Rsa { .. } => Algorithm::Ps256,
            Self::P256 { .. } => Algorithm::Es256,
            Self::Ed25519 { .. } => Algorithm::EdDsa,
        }
    }

    /// Key size in bits: the modulus length for RSA, the curve size otherwise.
    pub fn bits(&self) -> usize {
        match self {
            Self::Rsa { n, .. } => {
                let lead = n.iter().position(|b| *b != 0).unwrap_or(n.len());
                let rest = n.get(lead..).unwrap_or_default();
                match rest.first() {
                    Some(top) => (rest.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
                    None => 0,
                }
            }
            Self::P256 { .. } | Self::Ed25519 { .. } => 256,
        }
    }

    /// The RFC 7638 JWK thumbprint (SHA-256 over the required members in
    /// lexicographic order, [RFC 7638 §3](https://www.rfc-editor.org/rfc/rfc7638#section-3)).
    pub fn thumbprint(&self) -> JwkThumbprint {
        let canonical = self.canonical_jwk_json();
        JwkThumbprint(Sha256::digest(canonical.as_bytes()).into())
    }

    /// The required JWK members in RFC 7638 canonical order, as JSON.
    pub(crate) fn canonical_jwk_json(&self) -> String {
        match self {
            Self::Rsa { n, e } => format!(
                r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                b64url_encode(e),
                b64url_encode(n)
            ),
            Self::P256 { x, y } => format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                b64url_encode(x),
                b64url_encode(y)
            ),
            Self::Ed25519 { x } => {
                format!(
                    r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
                    b64url_encode(x)
                )
            }
        }
    }

    /// Checks the key-size policy.
    ///
    /// # Errors
    /// [`KeyError::TooSmall`] when the key is below the policy's minimum.
    pub fn check_policy(&self, policy: &KeyPolicy) -> Result<(), KeyError> {
        let (bits, min) = match self {
            Self::Rsa { .. } => (self.bits(), policy.min_rsa_bits),
            Self::P256 { .. } => (self.bits(), policy.min_ec_bits),
            Self::Ed25519 { .. } => return Ok(()),
        };
        if bits < min {
            return Err(KeyError::TooSmall { bits, min });
        }
        if let Self::Rsa { .. } = self {
            if bits > MAX_RSA_BITS {
                return Err(KeyError::TooLarge {
                    bits,
                    max: MAX_RSA_BITS,
                });
            }
        }
        Ok(())
    }
}

/// The largest RSA modulus accepted, bounding the cost of one verification.
pub const MAX_RSA_BITS: usize = 8192;

/// The least RSA public exponent either provider loads (NIST SP 800-56B,
/// FIPS 186-5: e > 2^16).
pub const MIN_RSA_EXPONENT: u64 = 65_537;
/// The largest RSA public exponent either provider loads: 2^33 - 1, the
/// most both AWS-LC and the `rsa` crate accept.
pub const MAX_RSA_EXPONENT: u64 = (1 << 33) - 1;

/// The one RSA public-exponent rule both providers apply when they load a
/// key (public or private): minimally encoded, odd, and between
/// [`MIN_RSA_EXPONENT`] and [`MAX_RSA_EXPONENT`]. AWS-LC on its own loads `e = 1` (every message is
/// then its own signature) while the `rsa` crate refuses it; this makes the
/// two agree, with the same error.
///
/// # Errors
/// [`KeyError::RsaExponent`].
pub fn check_rsa_exponent(e: &[u8]) -> Result<(), KeyError> {
    // minimal big-endian (as JWK requires, and as AWS-LC reads it): no
    // leading zero octet
    if e.first().is_none_or(|b| *b == 0) || e.len() > 8 {
        return Err(KeyError::RsaExponent);
    }
    let value = e.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    if value % 2 == 1 && (MIN_RSA_EXPONENT..=MAX_RSA_EXPONENT).contains(&value) {
        Ok(())
    } else {
        Err(KeyError::RsaExponent)
    }
}

/// Minimum key sizes (FAPI 1.0 Part 2 §8.6, FAPI 2.0 Security Profile
/// §5.4); normally `Profile::key_policy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyPolicy {
    /// Minimum RSA modulus size in bits.
    pub min_rsa_bits: usize,
    /// Minimum elliptic-curve size in bits.
    pub min_ec_bits: usize,
}

impl KeyPolicy {
    /// RSA keys of at least `min_rsa_bits`, EC keys of at least
    /// `min_ec_bits`.
    pub const fn new(min_rsa_bits: usize, min_ec_bits: usize) -> Self {
        Self {
            min_rsa_bits,
            min_ec_bits,
        }
    }
}

/// An RFC 7638 JWK thumbprint (SHA-256).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct JwkThumbprint(pub(crate) [u8; 32]);

impl JwkThumbprint {
    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
    /// A thumbprint as `cnf.jkt` and `dpop_jkt` carry it: unpadded base64url
    /// of exactly 32 bytes (43 characters), nothing else accepted.
    pub fn from_b64url(s: &str) -> Option<Self> {
        if s.len() != 43 {
            return None;
        }
        let bytes = crate::encoding::b64url_decode_public(s, 43).ok()?;
        bytes.try_into().ok().map(Self)
    }
    /// base64url without padding, as in `cnf.jkt`.
    pub fn to_b64url(&self) -> String {
        b64url_encode(&self.0)
    }
}

/// Serialized as its base64url text (how a store keeps a `dpop_jkt`).
impl serde::Serialize for JwkThumbprint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_b64url())
    }
}

impl<'de> serde::Deserialize<'de> for JwkThumbprint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::from_b64url(&text)
            .ok_or_else(|| serde::de::Error::custom("not a base64url SHA-256 JWK thumbprint"))
    }
}

impl fmt::Debug for JwkThumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JwkThumbprint({})", self.to_b64url())
    }
}

impl fmt::Display for JwkThumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_b64url())
    }
}

/// Why a key was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key is smaller than the policy allows.
    #[error("key of {bits} bits is below the minimum of {min} bits")]
    TooSmall {
        /// The key's size.
        bits: usize,
        /// The policy minimum.
        min: usize,
    },
    /// The key is larger than this crate verifies.
    #[error("key of {bits} bits is above the maximum of {max} bits")]
    TooLarge {
        /// The key's size.
        bits: usize,
        /// The maximum.
        max: usize,
    },
    /// The key's encoding is malformed or the key is not valid for its type.
    #[error("key is malformed: {0}")]
    Malformed(&'static str),
    /// An RSA public exponent that is even, below 65537, above 2^33 - 1 or
    /// not minimally encoded ([`check_rsa_exponent`]).
    #[error("RSA public exponent must be odd and between 65537 and 2^33 - 1")]
    RsaExponent,
    /// The key type or curve is not one this crate uses.
    #[error("key type is not supported: {0}")]
    Unsupported(&'static str),
    /// The provider could not generate or encode a key.
    #[error("key operation failed in the crypto provider")]
    Provider,
}

/// A signature did not verify. Deliberately carries no detail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("signature verification failed")]
pub struct SignatureError;

/// Signing failed inside the provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("signing failed in the crypto provider")]
pub struct SigningError;

/// A public key, parsed once, that verifies signatures of one algorithm.
pub trait VerifyingKey: Send + Sync + fmt::Debug {
    /// The only algorithm this key verifies.
    fn algorithm(&self) -> Algorithm;
    /// Verifies `signature` over `message`. ES256 signatures must be the
    /// 64-byte `r || s` form (not DER) with `r` and `s` in `1..n`.
    ///
    /// # Errors
    /// [`SignatureError`] for any invalid signature, of any cause.
    fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), SignatureError>;
}

/// A private key that signs with one algorithm.
pub trait SigningKey: Send + Sync + fmt::Debug {
    /// The algorithm this key signs with.
    fn algorithm(&self) -> Algorithm;
    /// Signs `message`, randomised from the OS CSPRNG where the algorithm
    /// needs randomness (PS256 salt).
    ///
    /// # Errors
    /// [`SigningError`] if the provider fails.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SigningError>;
    /// The public half.
    fn public_key(&self) -> &PublicKeyMaterial;
    /// The key as PKCS#8 DER, wiped from memory when dropped.
    ///
    /// # Errors
    /// [`KeyError::Provider`] if the provider cannot encode it.
    fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, KeyError>;
}

/// A signing key that may answer later: a key in an HSM, a cloud KMS or a
/// remote signing service. Every signer of the family (access and ID
/// tokens, JARM responses, detached signatures, audit checkpoints, payment
/// records) signs through this trait, so a bank can keep its keys out of
/// process. Every synchronous [`SigningKey`] is one (a blanket
/// implementation answers at once), so file keys need no change.
pub trait AsyncSigningKey: Send + Sync + fmt::Debug {
    /// The algorithm this key signs with.
    fn algorithm(&self) -> Algorithm;
    /// The public half.
    fn public_key(&self) -> &PublicKeyMaterial;
    /// Signs `message` (the JWS signing input).
    ///
    /// # Errors
    /// [`SigningError`] if the signer fails or does not answer.
    fn sign_async<'a>(
        &'a self,
        message: &'a [u8],
    ) -> crate::store::BoxFuture<'a, Result<Vec<u8>, SigningError>>;
}

impl<K: SigningKey + ?Sized> AsyncSigningKey for K {
    fn algorithm(&self) -> Algorithm {
        SigningKey::algorithm(self)
    }

    fn public_key(&self) -> &PublicKeyMaterial {
        SigningKey::public_key(self)
    }

    fn sign_async<'a>(
        &'a self,
        message: &'a [u8],
    ) -> crate::store::BoxFuture<'a, Result<Vec<u8>, SigningError>> {
        crate::store::ready(self.sign(message))
    }
}

/// A shared key, held as the `Arc<dyn AsyncSigningKey>` the signers keep:
/// any `Arc` of a synchronous key (`Arc<dyn SigningKey>`) or of an
/// asynchronous one.
pub fn shared_signer<K: AsyncSigningKey + ?Sized + 'static>(
    key: Arc<K>,
) -> Arc<dyn AsyncSigningKey> {
    Arc::new(Shared(key))
}

struct Shared<K: ?Sized>(Arc<K>);

impl<K: AsyncSigningKey + ?Sized> fmt::Debug for Shared<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl<K: AsyncSigningKey + ?Sized> AsyncSigningKey for Shared<K> {
    fn algorithm(&self) -> Algorithm {
        self.0.algorithm()
    }

    fn public_key(&self) -> &PublicKeyMaterial {
        self.0.public_key()
    }

    fn sign_async<'a>(
        &'a self,
        message: &'a [u8],
    ) -> crate::store::BoxFuture<'a, Result<Vec<u8>, SigningError>> {
        self.0.sign_async(message)
    }
}

/// A source of signing and verification primitives.
pub trait CryptoProvider: Send + Sync + fmt::Debug {
    /// A short name for logs and test output.
    fn name(&self) -> &'static str;

    /// Parses public key material into a verifier. The caller checks the
    /// key-size policy first; the provider checks the key is well-formed.
    ///
    /// # Errors
    /// [`KeyError::Malformed`] when the key is not a valid key of its type.
    fn verifying_key(&self, key: &PublicKeyMaterial) -> Result<Arc<dyn VerifyingKey>, KeyError>;

    /// Loads a private key from PKCS#8 DER (v1 or v2).
    ///
    /// # Errors
    /// [`KeyError`] when the DER is not a PKCS#8 key of a supported type.
    fn signing_key_from_pkcs8_der(&self, der: &[u8]) -> Result<Arc<dyn SigningKey>, KeyError>;

    /// Generates a fresh private key from the OS CSPRNG (RSA: 2048 bits).
    ///
    /// # Errors
    /// [`KeyError::Provider`] if generation fails.
    fn generate_signing_key(&self, algorithm: Algorithm) -> Result<Arc<dyn SigningKey>, KeyError>;
}

/// Loads a private key from a PKCS#8 PEM document (`-----BEGIN PRIVATE KEY-----`,
/// [RFC 7468 §10](https://www.rfc-editor.org/rfc/rfc7468#section-10)).
///
/// # Errors
/// [`KeyError::Malformed`] for a PEM document that is not strictly encoded or
/// carries another label; otherwise as
/// [`CryptoProvider::signing_key_from_pkcs8_der`].
pub fn signing_key_from_pkcs8_pem(
    provider: &dyn CryptoProvider,
    pem: &str,
) -> Result<Arc<dyn SigningKey>, KeyError> {
    let (label, der) = pem_rfc7468::decode_vec(pem.as_bytes())
        .map_err(|_| KeyError::Malformed("not a strict PEM document"))?;
    let der = Zeroizing::new(der);
    if label != "PRIVATE KEY" {
        return Err(KeyError::Malformed("PEM label is not PRIVATE KEY"));
    }
    provider.signing_key_from_pkcs8_der(&der)
}

/// Encodes a PKCS#8 DER private key as PEM.
///
/// # Errors
/// [`KeyError::Provider`] if encoding fails.
pub fn signing_key_to_pkcs8_pem(key: &dyn SigningKey) -> Result<Zeroizing<String>, KeyError> {
    let der = key.to_pkcs8_der()?;
    pem_rfc7468::encode_string("PRIVATE KEY", pem_rfc7468::LineEnding::LF, &der)
        .map(Zeroizing::new)
        .map_err(|_| KeyError::Provider)
}

/// The default provider: AWS-LC when the `aws-lc-rs` feature is on,
/// otherwise the pure-Rust provider.
pub fn default_provider() -> Arc<dyn CryptoProvider> {
    #[cfg(feature = "aws-lc-rs")]
    {
        Arc::new(aws_lc::AwsLcProvider)
    }
    #[cfg(all(not(feature = "aws-lc-rs"), feature = "rustcrypto"))]
    {
        Arc::new(rustcrypto::RustCryptoProvider)
    }
}

#[cfg(not(any(feature = "aws-lc-rs", feature = "rustcrypto")))]
compile_error!("fapi-core needs a crypto provider: enable feature `aws-lc-rs` or `rustcrypto`");

/// Every provider compiled into this build, for tests that must hold for
/// all (feature `testing`; also `testing::all_providers`).
#[cfg(feature = "testing")]
#[doc(hidden)]
pub fn all_providers() -> Vec<Arc<dyn CryptoProvider>> {
    [
        #[cfg(feature = "aws-lc-rs")]
        Some(Arc::new(aws_lc::AwsLcProvider) as Arc<dyn CryptoProvider>),
        #[cfg(feature = "rustcrypto")]
        Some(Arc::new(rustcrypto::RustCryptoProvider) as Arc<dyn CryptoProvider>),
    ]
    .into_iter()
    .flatten()
    .collect()
}
