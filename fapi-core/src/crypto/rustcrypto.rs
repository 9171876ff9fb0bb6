//! The pure-Rust provider (feature `rustcrypto`): `p256`, `rsa` + `sha2`,
//! `ed25519-dalek`.
//!
//! # Security
//! RUSTSEC-2023-0071 (Marvin attack: timing side channel in RSA private-key
//! operations) is open for every `rsa` release. Signing uses blinding, but
//! **PS256 signing with this provider is not for production keys**. RSA
//! verification uses only the public key and is not affected. ES256 and EdDSA
//! are unaffected.

use std::sync::Arc;

use p256::ecdsa::signature::{RandomizedSigner as _, Signer as _, Verifier as _};
use rand_core::OsRng;
use rsa::traits::PublicKeyParts as _;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{
    Algorithm, CryptoProvider, KeyError, PublicKeyMaterial, SignatureError, SigningError,
    SigningKey, VerifyingKey, MAX_RSA_BITS,
};

/// Pure-Rust crypto from the RustCrypto and dalek projects.
#[derive(Clone, Copy, Debug, Default)]
pub struct RustCryptoProvider;

enum Verifier {
    Rsa(rsa::pss::VerifyingKey<Sha256>),
    P256(p256::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

struct RcVerifyingKey(Verifier);

impl core::fmt::Debug for RcVerifyingKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "RustCryptoVerifyingKey({})", self.algorithm())
    }
}

impl VerifyingKey for RcVerifyingKey {
    fn algorithm(&self) -> Algorithm {
        match self.0 {
            Verifier::Rsa(_) => Algorithm::Ps256,
            Verifier::P256(_) => Algorithm::Es256,
            Verifier::Ed25519(_) => Algorithm::EdDsa,
        }
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        match &self.0 {
            Verifier::Rsa(k) => {
                let sig = rsa::pss::Signature::try_from(signature).map_err(|_| SignatureError)?;
                k.verify(message, &sig).map_err(|_| SignatureError)
            }
            Verifier::P256(k) => {
                // from_slice requires exactly 64 bytes and r, s in 1..n
                // (CVE-2022-21449): zero or out-of-range scalars never verify.
                let sig =
                    p256::ecdsa::Signature::from_slice(signature).map_err(|_| SignatureError)?;
                k.verify(message, &sig).map_err(|_| SignatureError)
            }
            Verifier::Ed25519(k) => {
                let sig =
                    ed25519_dalek::Signature::from_slice(signature).map_err(|_| SignatureError)?;
                // strict: rejects non-canonical S and small-order keys/points
                k.verify_strict(message, &sig).map_err(|_| SignatureError)
            }
        }
    }
}

enum Signer {
    Rsa(Box<rsa::RsaPrivateKey>),
    P256(p256::ecdsa::SigningKey),
    Ed25519(ed25519_dalek::SigningKey),
}

struct RcSigningKey {
    signer: Signer,
    public: PublicKeyMaterial,
}

impl core::fmt::Debug for RcSigningKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "RustCryptoSigningKey({:?}, [redacted])", self.public)
    }
}

impl SigningKey for RcSigningKey {
    fn algorithm(&self) -> Algorithm {
        self.public.algorithm()
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SigningError> {
        match &self.signer {
            Signer::Rsa(k) => {
                let key = rsa::pss::BlindedSigningKey::<Sha256>::new((**k).clone());
                let sig = key
                    .try_sign_with_rng(&mut OsRng, message)
                    .map_err(|_| SigningError)?;
                Ok(Box::<[u8]>::from(sig).into_vec())
            }
            Signer::P256(k) => {
                let sig: p256::ecdsa::Signature = k.try_sign(message).map_err(|_| SigningError)?;
                Ok(sig.to_bytes().to_vec())
            }
            Signer::Ed25519(k) => Ok(k.sign(message).to_bytes().to_vec()),
        }
    }

    fn public_key(&self) -> &PublicKeyMaterial {
        &self.public
    }

    fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        use rsa::pkcs8::EncodePrivateKey as _;
        let doc = match &self.signer {
            Signer::Rsa(k) => k.to_pkcs8_der(),
            Signer::P256(k) => k.to_pkcs8_der(),
            // PKCS#8 v1 (seed only), the form `openssl genpkey` writes: the
            // v2 form dalek emits by default is refused by some readers.
            Signer::Ed25519(k) => ed25519_dalek::pkcs8::KeypairBytes {
                secret_key: k.to_bytes(),
                public_key: None,
            }
            .to_pkcs8_der(),
        }
        .map_err(|_| KeyError::Provider)?;
        Ok(Zeroizing::new(doc.as_bytes().to_vec()))
    }
}

fn p256_material(k: &p256::ecdsa::SigningKey) -> Result<PublicKeyMaterial, KeyError> {
    let point = k.verifying_key().to_encoded_point(false);
    match (point.x(), point.y()) {
        (Some(x), Some(y)) => Ok(PublicKeyMaterial::P256 {
            x: (*x).into(),
            y: (*y).into(),
        }),
        _ => Err(KeyError::Provider),
    }
}

fn wrap(signer: Signer) -> Result<Arc<dyn SigningKey>, KeyError> {
    let public = match &signer {
        Signer::Rsa(k) => {
            let e = k.e().to_bytes_be();
            super::check_rsa_exponent(&e)?;
            PublicKeyMaterial::Rsa {
                n: k.n().to_bytes_be(),
                e,
            }
        }
        Signer::P256(k) => p256_material(k)?,
        Signer::Ed25519(k) => PublicKeyMaterial::Ed25519 {
            x: k.verifying_key().to_bytes(),
        },
    };
    Ok(Arc::new(RcSigningKey { signer, public }))
}

impl CryptoProvider for RustCryptoProvider {
    fn name(&self) -> &'static str {
        "rustcrypto"
    }

    fn verifying_key(&self, key: &PublicKeyMaterial) -> Result<Arc<dyn VerifyingKey>, KeyError> {
        let malformed = |_| KeyError::Malformed("not a valid public key");
        let v = match key {
            PublicKeyMaterial::Rsa { n, e } => {
                super::check_rsa_exponent(e)?;
                let pk = rsa::RsaPublicKey::new_with_max_size(
                    rsa::BigUint::from_bytes_be(n),
                    rsa::BigUint::from_bytes_be(e),
                    MAX_RSA_BITS,
                )
                .map_err(|_| KeyError::Malformed("not a valid RSA public key"))?;
                Verifier::Rsa(rsa::pss::VerifyingKey::new(pk))
            }
            PublicKeyMaterial::P256 { x, y } => {
                let point =
                    p256::EncodedPoint::from_affine_coordinates(&(*x).into(), &(*y).into(), false);
                Verifier::P256(
                    p256::ecdsa::VerifyingKey::from_encoded_point(&point)
                        .map_err(|_| KeyError::Malformed("point is not on P-256"))?,
                )
            }
            PublicKeyMaterial::Ed25519 { x } => {
                Verifier::Ed25519(ed25519_dalek::VerifyingKey::from_bytes(x).map_err(malformed)?)
            }
        };
        Ok(Arc::new(RcVerifyingKey(v)))
    }

    fn signing_key_from_pkcs8_der(&self, der: &[u8]) -> Result<Arc<dyn SigningKey>, KeyError> {
        use rsa::pkcs8::DecodePrivateKey as _;
        if let Ok(k) = p256::ecdsa::SigningKey::from_pkcs8_der(der) {
            return wrap(Signer::P256(k));
        }
        if let Ok(k) = ed25519_dalek::SigningKey::from_pkcs8_der(der) {
            return wrap(Signer::Ed25519(k));
        }
        match rsa::RsaPrivateKey::from_pkcs8_der(der) {
            Ok(k) => wrap(Signer::Rsa(Box::new(k))),
            Err(_) => Err(KeyError::Malformed(
                "not a PKCS#8 RSA, P-256 or Ed25519 private key",
            )),
        }
    }

    fn generate_signing_key(&self, algorithm: Algorithm) -> Result<Arc<dyn SigningKey>, KeyError> {
        let signer = match algorithm {
            Algorithm::Ps256 => Signer::Rsa(Box::new(
                rsa::RsaPrivateKey::new(&mut OsRng, 2048).map_err(|_| KeyError::Provider)?,
            )),
            Algorithm::Es256 => Signer::P256(p256::ecdsa::SigningKey::random(&mut OsRng)),
            Algorithm::EdDsa => {
                let mut seed = Zeroizing::new([0u8; 32]);
                getrandom::getrandom(seed.as_mut_slice()).map_err(|_| KeyError::Provider)?;
                Signer::Ed25519(ed25519_dalek::SigningKey::from_bytes(&seed))
            }
        };
        wrap(signer)
    }
}
