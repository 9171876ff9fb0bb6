//! The AWS-LC provider (default).

use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, ParsedPublicKey, RsaKeyPair,
};
use zeroize::Zeroizing;

use super::{
    Algorithm, CryptoProvider, KeyError, PublicKeyMaterial, SignatureError, SigningError,
    SigningKey, VerifyingKey,
};

/// AWS-LC through `aws-lc-rs`: the library rustls uses by default, so TLS and
/// JOSE share one crypto stack; FIPS mode is available through aws-lc-rs.
#[derive(Clone, Copy, Debug, Default)]
pub struct AwsLcProvider;

#[derive(Debug)]
struct AwsVerifyingKey {
    algorithm: Algorithm,
    key: ParsedPublicKey,
}

impl VerifyingKey for AwsVerifyingKey {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
    fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        self.key
            .verify_sig(message, signature)
            .map_err(|_| SignatureError)
    }
}

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

struct AwsSigningKey {
    pair: Pair,
    public: PublicKeyMaterial,
}

impl core::fmt::Debug for AwsSigningKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "AwsSigningKey({:?}, [redacted])", self.public)
    }
}

impl SigningKey for AwsSigningKey {
    fn algorithm(&self) -> Algorithm {
        self.public.algorithm()
    }
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SigningError> {
        let rng = SystemRandom::new();
        match &self.pair {
            Pair::Rsa(k) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(&signature::RSA_PSS_SHA256, &rng, message, &mut sig)
                    .map_err(|_| SigningError)?;
                Ok(sig)
            }
            Pair::Ec(k) => k
                .sign(&rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| SigningError),
            Pair::Ed(k) => Ok(k.sign(message).as_ref().to_vec()),
        }
    }
    fn public_key(&self) -> &PublicKeyMaterial {
        &self.public
    }
    fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let der = match &self.pair {
            Pair::Rsa(k) => k.as_der().map(|d| d.as_ref().to_vec()),
            Pair::Ec(k) => k.to_pkcs8v1().map(|d| d.as_ref().to_vec()),
            Pair::Ed(k) => k.to_pkcs8v1().map(|d| d.as_ref().to_vec()),
        };
        der.map(Zeroizing::new).map_err(|_| KeyError::Provider)
    }
}

fn coords(point: &[u8]) -> Result<PublicKeyMaterial, KeyError> {
    // uncompressed SEC1: 0x04 || x || y
    match point {
        [0x04, rest @ ..] if rest.len() == 64 => {
            let (x, y) = rest.split_at(32);
            Ok(PublicKeyMaterial::P256 {
                x: x.try_into().map_err(|_| KeyError::Provider)?,
                y: y.try_into().map_err(|_| KeyError::Provider)?,
            })
        }
        _ => Err(KeyError::Provider),
    }
}

fn rsa_material(k: &RsaKeyPair) -> PublicKeyMaterial {
    let c = PublicKeyComponents::<Vec<u8>>::from(k.public_key());
    PublicKeyMaterial::Rsa { n: c.n, e: c.e }
}

fn wrap(pair: Pair) -> Result<Arc<dyn SigningKey>, KeyError> {
    let public = match &pair {
        Pair::Rsa(k) => {
            let material = rsa_material(k);
            if let PublicKeyMaterial::Rsa { e, .. } = &material {
                super::check_rsa_exponent(e)?;
            }
            material
        }
        Pair::Ec(k) => coords(k.public_key().as_ref())?,
        Pair::Ed(k) => PublicKeyMaterial::Ed25519 {
            x: k.public_key()
                .as_ref()
                .try_into()
                .map_err(|_| KeyError::Provider)?,
        },
    };
    Ok(Arc::new(AwsSigningKey { pair, public }))
}

impl CryptoProvider for AwsLcProvider {
    fn name(&self) -> &'static str {
        "aws-lc-rs"
    }

    fn verifying_key(&self, key: &PublicKeyMaterial) -> Result<Arc<dyn VerifyingKey>, KeyError> {
        let parsed = match key {
            PublicKeyMaterial::Rsa { n, e } => {
                super::check_rsa_exponent(e)?;
                PublicKeyComponents {
                    n: n.as_slice(),
                    e: e.as_slice(),
                }
                .to_parsed_public_key(&signature::RSA_PSS_2048_8192_SHA256)
            }
            PublicKeyMaterial::P256 { x, y } => {
                let mut point = Vec::with_capacity(65);
                point.push(0x04);
                point.extend_from_slice(x);
                point.extend_from_slice(y);
                ParsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
            }
            PublicKeyMaterial::Ed25519 { x } => ParsedPublicKey::new(&signature::ED25519, x),
        }
        .map_err(|_| KeyError::Malformed("not a valid public key"))?;
        Ok(Arc::new(AwsVerifyingKey {
            algorithm: key.algorithm(),
            key: parsed,
        }))
    }

    fn signing_key_from_pkcs8_der(&self, der: &[u8]) -> Result<Arc<dyn SigningKey>, KeyError> {
        // The PKCS#8 algorithm identifier decides the key type; try each.
        if let Ok(k) = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der) {
            return wrap(Pair::Ec(k));
        }
        if let Ok(k) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            return wrap(Pair::Ed(k));
        }
        match RsaKeyPair::from_pkcs8(der) {
            Ok(k) => wrap(Pair::Rsa(k)),
            Err(_) => Err(KeyError::Malformed(
                "not a PKCS#8 RSA, P-256 or Ed25519 private key",
            )),
        }
    }

    fn generate_signing_key(&self, algorithm: Algorithm) -> Result<Arc<dyn SigningKey>, KeyError> {
        let pair = match algorithm {
            Algorithm::Ps256 => {
                Pair::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Provider)?)
            }
            Algorithm::Es256 => Pair::Ec(
                EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(|_| KeyError::Provider)?,
            ),
            Algorithm::EdDsa => {
                Pair::Ed(Ed25519KeyPair::generate().map_err(|_| KeyError::Provider)?)
            }
        };
        wrap(pair)
    }
}
