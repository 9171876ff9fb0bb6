//! Shared fixtures: keys made in code (once per test binary and provider),
//! a registered client, and signing helpers.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::{Arc, OnceLock};

use fapi_core::client::{AuthMethod, ClientMetadata};
use fapi_core::crypto::{Algorithm, CryptoProvider, SigningKey};
use fapi_core::jwk::{Jwk, JwkSet, KeySet};
use fapi_core::testing::all_providers;
use fapi_core::testing::{sign_raw_parts, sign_with_header};
use fapi_core::Profile;
use fapi_core::UnixTime;
use fapi_core::{ClientId, Issuer, RedirectUri};
use serde_json::{json, Map, Value};

pub const NOW: i64 = 1_900_000_000;
pub const ISSUER: &str = "https://bank.example";
pub const CLIENT: &str = "tpp-a";
pub const REDIRECT: &str = "https://tpp-a.example/cb";

pub fn now() -> UnixTime {
    UnixTime::from_secs(NOW).unwrap()
}

pub fn at(offset: i64) -> UnixTime {
    UnixTime::from_secs(NOW + offset).unwrap()
}

pub fn issuer() -> Issuer {
    Issuer::try_from(ISSUER).unwrap()
}

/// One signing key per (provider, algorithm), generated once.
pub struct Keys {
    pub provider: Arc<dyn CryptoProvider>,
    pub ps256: Arc<dyn SigningKey>,
    pub es256: Arc<dyn SigningKey>,
    pub eddsa: Arc<dyn SigningKey>,
}

impl Keys {
    pub fn key(&self, alg: Algorithm) -> &Arc<dyn SigningKey> {
        match alg {
            Algorithm::Ps256 => &self.ps256,
            Algorithm::Es256 => &self.es256,
            Algorithm::EdDsa => &self.eddsa,
            _ => unreachable!(),
        }
    }
    pub fn name(&self) -> &'static str {
        self.provider.name()
    }
}

pub fn providers() -> &'static [Keys] {
    static KEYS: OnceLock<Vec<Keys>> = OnceLock::new();
    KEYS.get_or_init(|| {
        all_providers()
            .into_iter()
            .map(|p| Keys {
                ps256: p.generate_signing_key(Algorithm::Ps256).unwrap(),
                es256: p.generate_signing_key(Algorithm::Es256).unwrap(),
                eddsa: p.generate_signing_key(Algorithm::EdDsa).unwrap(),
                provider: p,
            })
            .collect()
    })
}

/// The first provider's keys (the default provider).
pub fn keys() -> &'static Keys {
    &providers()[0]
}

/// A second, unrelated set of keys: an attacker's.
pub fn attacker() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let p = all_providers().remove(0);
        Keys {
            ps256: p.generate_signing_key(Algorithm::Ps256).unwrap(),
            es256: p.generate_signing_key(Algorithm::Es256).unwrap(),
            eddsa: p.generate_signing_key(Algorithm::EdDsa).unwrap(),
            provider: p,
        }
    })
}

pub fn kid(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::Ps256 => "ps",
        Algorithm::Es256 => "es",
        Algorithm::EdDsa => "ed",
        _ => unreachable!(),
    }
}

pub fn jwks(keys: &Keys) -> JwkSet {
    JwkSet::new(
        Algorithm::ALL
            .iter()
            .map(|a| Jwk::from_public_key(keys.key(*a).public_key().clone(), Some(kid(*a).into())))
            .collect(),
    )
}

pub fn key_set(keys: &Keys) -> KeySet {
    KeySet::from_jwks(
        &jwks(keys),
        &*keys.provider,
        &Profile::Fapi2Security.key_policy(),
    )
    .unwrap()
}

pub fn client_with(keys: &Keys, method: AuthMethod, profile: Profile) -> ClientMetadata {
    ClientMetadata::new(
        ClientId::try_from(CLIENT).unwrap(),
        method,
        vec![RedirectUri::try_from(REDIRECT).unwrap()],
        jwks(keys),
        &*keys.provider,
        profile,
    )
    .unwrap()
}

pub fn client(keys: &Keys, profile: Profile) -> ClientMetadata {
    client_with(keys, AuthMethod::PrivateKeyJwt, profile)
}

pub fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

/// Signs `claims` with the key for `alg`, header `{alg, kid, typ}` plus `extra`.
pub fn sign(keys: &Keys, alg: Algorithm, typ: Option<&str>, extra: Value, claims: Value) -> String {
    let mut h = obj(json!({ "alg": alg.jose_name(), "kid": kid(alg) }));
    if let Some(t) = typ {
        h.insert("typ".into(), json!(t));
    }
    h.extend(obj(extra));
    sign_with_header(&**keys.key(alg), &h, &obj(claims)).unwrap()
}

/// Signs raw header and payload text, for malformed-JSON cases.
pub fn sign_raw(keys: &Keys, alg: Algorithm, header: &str, payload: &str) -> String {
    sign_raw_parts(&**keys.key(alg), header.as_bytes(), payload.as_bytes()).unwrap()
}

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    futures_executor::block_on(f)
}
