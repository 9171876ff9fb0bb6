//! Fixtures shared by the fuzz targets: fixed keys (generated once per
//! process), the registration and contexts the validators need, and a way
//! to turn fuzzer bytes into a token signed by the right key, so the
//! checks after the signature are reached.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::{Arc, OnceLock};

use fapi_core::client::{AuthMethod, ClientMetadata};
use fapi_core::crypto::aws_lc::AwsLcProvider;
use fapi_core::crypto::{Algorithm, CryptoProvider, SigningKey};
use fapi_core::jwk::{Jwk, JwkSet, KeySet};
use fapi_core::testing::sign_raw_parts;
use fapi_core::UnixTime;
use fapi_core::{ClientId, Issuer, RedirectUri};
use fapi_core::Profile;

pub const ISSUER: &str = "https://bank.example";
pub const CLIENT: &str = "tpp-a";
pub const NOW: i64 = 1_900_000_000;
pub const PROFILE: Profile = Profile::Fapi2MessageSigning;

pub fn now() -> UnixTime {
    UnixTime::from_secs(NOW).unwrap()
}

pub fn issuer() -> Issuer {
    Issuer::try_from(ISSUER).unwrap()
}

/// The TPP's key (ES256: fast to sign inside a fuzz iteration).
pub fn client_key() -> &'static Arc<dyn SigningKey> {
    static K: OnceLock<Arc<dyn SigningKey>> = OnceLock::new();
    K.get_or_init(|| {
        AwsLcProvider
            .generate_signing_key(Algorithm::Es256)
            .unwrap()
    })
}

/// The bank's key.
pub fn bank_key() -> &'static Arc<dyn SigningKey> {
    static K: OnceLock<Arc<dyn SigningKey>> = OnceLock::new();
    K.get_or_init(|| {
        AwsLcProvider
            .generate_signing_key(Algorithm::Es256)
            .unwrap()
    })
}

pub fn jwks(key: &dyn SigningKey, kid: &str) -> JwkSet {
    JwkSet::new(vec![Jwk::from_public_key(
        key.public_key().clone(),
        Some(kid.into()),
    )])
}

pub fn bank_keys() -> &'static Arc<KeySet> {
    static K: OnceLock<Arc<KeySet>> = OnceLock::new();
    K.get_or_init(|| {
        Arc::new(
            KeySet::from_jwks(
                &jwks(&**bank_key(), "bank"),
                &AwsLcProvider,
                &PROFILE.key_policy(),
            )
            .unwrap(),
        )
    })
}

pub fn registration() -> &'static Arc<ClientMetadata> {
    static R: OnceLock<Arc<ClientMetadata>> = OnceLock::new();
    R.get_or_init(|| {
        Arc::new(
            ClientMetadata::new(
                ClientId::try_from(CLIENT).unwrap(),
                AuthMethod::PrivateKeyJwt,
                vec![RedirectUri::try_from("https://tpp-a.example/cb").unwrap()],
                jwks(&**client_key(), "k"),
                &AwsLcProvider,
                PROFILE,
            )
            .unwrap(),
        )
    })
}

/// Splits fuzzer bytes into a protected header and a payload (at the first
/// NUL byte; without one, `default_header` and all the bytes), and signs
/// them with `key`: the result passes the signature check whatever the
/// bytes, so the parsing and rules after it are exercised.
pub fn signed(key: &dyn SigningKey, default_header: &[u8], data: &[u8]) -> String {
    let (header, payload) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (default_header, data),
    };
    sign_raw_parts(key, header, payload).unwrap()
}
