//! The bank's own signing keys, and their rotation without downtime.
//!
//! Every key the bank has signed with is a row of the `signing_keys` table
//! (its public JWK, kept for good so `verify-audit` can check old
//! checkpoints) and a private key in the key source under its `kid`. A row
//! carries its schedule:
//!
//! - **published** from the moment it is written until `publish_until`
//!   (none: for as long as it signs): `/jwks` lists it, the resource server
//!   accepts tokens signed by it;
//! - **signing** from `activates_at` until the next key's `activates_at`.
//!
//! `bank keys rotate` writes the new key `publish_delay` ahead of its use,
//! so every instance (each re-reads the table every `refresh_ms`) and every
//! TPP that caches the JWKS has it before the first token it signs; the old
//! key stays published for [`MAX_SIGNED_LIFETIME_SECS`] plus the clock skew
//! after the switch, until everything it signed (access tokens, ID tokens,
//! JARM responses, `x-jws-signature` responses) has expired. Each instance
//! switches exactly at `activates_at` by its own clock: the schedule is
//! data, not a signal.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use fapi_core::access_token::{AccessTokenIssuer, AccessTokenVerifier};
use fapi_core::crypto::{Algorithm, CryptoProvider, SigningKey};
use fapi_core::jose::detached::ObJwsSigner;
use fapi_core::jwk::{Jwk, JwkSet, KeySet};
use fapi_core::Issuer;
use fapi_core::Profile;
use fapi_core::UnixTime;
use fapi_jarm::JarmSigner;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::tables::SigningKeyStore;
use super::{config_err, BankConfig, StartError};
use crate::pki::{FileKeySource, KeySource};

/// The longest a bank signature is relied on after it is made: access
/// tokens and ID tokens (300 s), JARM responses
/// ([`fapi_jarm::response::DEFAULT_LIFETIME_SECS`]) and the `x-jws-signature`
/// acceptance window a TPP applies (300 s).
pub const MAX_SIGNED_LIFETIME_SECS: i64 = 300;

/// Lifetime of the access and ID tokens the bank issues.
pub(crate) const TOKEN_LIFETIME_SECS: i64 = 300;

// a retired key is published for as long as anything it signed is relied on
const _: () = assert!(
    MAX_SIGNED_LIFETIME_SECS >= TOKEN_LIFETIME_SECS
        && MAX_SIGNED_LIFETIME_SECS >= fapi_jarm::response::DEFAULT_LIFETIME_SECS
);

/// How the bank's signing keys are refreshed and rotated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SigningKeysConfig {
    /// How often each instance re-reads the key schedule (milliseconds).
    pub refresh_ms: u64,
    /// How long a new key is published before it signs (seconds), unless
    /// `bank keys rotate --publish-delay` says otherwise: longer than any
    /// TPP caches the JWKS. Never below twice `refresh_ms`.
    pub publish_delay_secs: i64,
}

impl Default for SigningKeysConfig {
    fn default() -> Self {
        Self {
            refresh_ms: 5_000,
            publish_delay_secs: 3_600,
        }
    }
}

impl SigningKeysConfig {
    /// The shortest publish delay that still lets every instance read the
    /// new key before it signs: two refresh periods, in whole seconds.
    pub fn min_publish_delay_secs(&self) -> i64 {
        let ms = self.refresh_ms.saturating_mul(2);
        i64::try_from(ms.div_ceil(1000)).unwrap_or(i64::MAX).max(1)
    }
}

/// One of the bank's signing keys and its schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRecord {
    /// Its `kid`, also its name in the key source.
    pub kid: String,
    /// Its algorithm.
    pub alg: Algorithm,
    /// Its public JWK (with `kid`).
    pub public_jwk: Value,
    /// When it was written (and first published).
    pub created_at: UnixTime,
    /// When it starts signing.
    pub activates_at: UnixTime,
    /// When its successor starts signing, once one is scheduled.
    pub retires_at: Option<UnixTime>,
    /// When it stops being published, once a successor is scheduled.
    pub publish_until: Option<UnixTime>,
}

/// Which key signs and which are published at one moment, and until when
/// that holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// The `kid` that signs.
    pub signing: String,
    /// The `kid`s published, oldest first.
    pub published: Vec<String>,
    /// The next moment the answer changes (a key activates or stops being
    /// published), if one is scheduled.
    pub changes_at: Option<UnixTime>,
}

/// The schedule of `records` at `now`: the signing key is the one most
/// recently activated at or before `now`; a key is published from its
/// creation until its `publish_until` (exclusive). `None` if no key is
/// active yet.
pub fn schedule(records: &[KeyRecord], now: UnixTime) -> Option<Schedule> {
    let signing = records
        .iter()
        .filter(|r| r.activates_at <= now)
        .max_by_key(|r| (r.activates_at, r.created_at))?;
    let mut published: Vec<&KeyRecord> = records
        .iter()
        .filter(|r| r.created_at <= now && r.publish_until.is_none_or(|u| now < u))
        .collect();
    published.sort_by_key(|r| (r.activates_at, r.created_at));
    let changes_at = records
        .iter()
        .flat_map(|r| [Some(r.created_at), Some(r.activates_at), r.publish_until])
        .flatten()
        .filter(|t| *t > now)
        .min();
    Some(Schedule {
        signing: signing.kid.clone(),
        published: published.iter().map(|r| r.kid.clone()).collect(),
        changes_at,
    })
}

/// What signs and verifies with the bank's keys at one moment.
pub(crate) struct Keyring {
    pub(crate) key: Arc<dyn SigningKey>,
    pub(crate) kid: String,
    /// The published JWKS (`/jwks`).
    pub(crate) jwks: Value,
    pub(crate) tokens: AccessTokenIssuer,
    pub(crate) verifier: AccessTokenVerifier,
    pub(crate) jarm: JarmSigner,
    /// Signs the bank's responses (`x-jws-signature`).
    pub(crate) responses: ObJwsSigner,
    schedule: Schedule,
}

/// The keyring of a running bank, rebuilt when the schedule moves on.
pub(crate) struct SigningKeys {
    db: Arc<dyn SigningKeyStore>,
    source: FileKeySource,
    provider: Arc<dyn CryptoProvider>,
    profile: Profile,
    issuer: Issuer,
    api_base: String,
    token_cache: usize,
    records: Mutex<Vec<KeyRecord>>,
    /// Private keys loaded so far, by `kid`.
    loaded: Mutex<HashMap<String, Arc<dyn SigningKey>>>,
    current: RwLock<Arc<Keyring>>,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeys")
            .field("signing", &self.current().kid)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SigningKeys {
    /// Loads the schedule (seeding it with the configured key on a new
    /// database) and builds the keyring for `now`.
    pub(crate) fn open(
        config: &BankConfig,
        db: Arc<dyn SigningKeyStore>,
        provider: Arc<dyn CryptoProvider>,
        issuer: Issuer,
        api_base: String,
        now: UnixTime,
    ) -> Result<Self, StartError> {
        let profile = config.profile()?;
        let source = FileKeySource::new(&config.data_dir, provider.clone());
        // start-up, before the bank serves: waiting here blocks nothing
        let records = futures_executor::block_on(seeded(config, &*db, &source))?;
        let mut loaded = HashMap::new();
        let ring = build_ring(
            &records,
            now,
            &source,
            &mut loaded,
            &*provider,
            profile,
            &issuer,
            &api_base,
            config.verified_token_cache,
        )?;
        Ok(Self {
            db,
            source,
            provider,
            profile,
            issuer,
            api_base,
            token_cache: config.verified_token_cache,
            records: Mutex::new(records),
            loaded: Mutex::new(loaded),
            current: RwLock::new(Arc::new(ring)),
        })
    }

    /// The schedule's store.
    #[cfg(test)]
    pub(crate) fn store(&self) -> Arc<dyn SigningKeyStore> {
        self.db.clone()
    }

    /// The keyring as last built (see [`Self::at`]).
    pub(crate) fn current(&self) -> Arc<Keyring> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The keyring in force at `now`: rebuilt from the known schedule when
    /// `now` has passed one of its moments, so every instance switches at
    /// the scheduled second.
    pub(crate) fn at(&self, now: UnixTime) -> Arc<Keyring> {
        let ring = self.current();
        if ring.schedule.changes_at.is_none_or(|t| now < t) {
            return ring;
        }
        self.rebuild(now).unwrap_or(ring)
    }

    /// Re-reads the schedule from the database and rebuilds the keyring if
    /// it changed (a rotation by `bank keys rotate`, or on another
    /// instance).
    pub(crate) async fn refresh(&self, now: UnixTime) -> Result<(), StartError> {
        let records = self.db.keys().await.map_err(config_err)?;
        let changed = *lock(&self.records) != records;
        if changed {
            *lock(&self.records) = records;
            self.rebuild(now)?;
        } else {
            let _ring = self.at(now);
        }
        Ok(())
    }

    fn rebuild(&self, now: UnixTime) -> Result<Arc<Keyring>, StartError> {
        let records = lock(&self.records).clone();
        let current = self.current();
        if schedule(&records, now).as_ref() == Some(&current.schedule) {
            return Ok(current);
        }
        let ring = Arc::new(build_ring(
            &records,
            now,
            &self.source,
            &mut lock(&self.loaded),
            &*self.provider,
            self.profile,
            &self.issuer,
            &self.api_base,
            self.token_cache,
        )?);
        tracing::info!(
            signing = %ring.kid,
            published = ?ring.schedule.published,
            "bank signing keys in force"
        );
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = ring.clone();
        Ok(ring)
    }
}

/// The schedule from the database; on a database without one, the
/// configured key, signing from the start.
async fn seeded(
    config: &BankConfig,
    db: &dyn SigningKeyStore,
    source: &FileKeySource,
) -> Result<Vec<KeyRecord>, StartError> {
    let records = db.keys().await.map_err(config_err)?;
    if !records.is_empty() {
        return Ok(records);
    }
    let first = configured_key(config, source)?;
    db.seed(&first).await.map_err(config_err)?;
    db.keys().await.map_err(config_err)
}

/// The configured key (`signing_key`) as the first of the schedule,
/// signing from the epoch.
fn configured_key(config: &BankConfig, source: &FileKeySource) -> Result<KeyRecord, StartError> {
    let key = source
        .signing_key(&config.signing_key)
        .map_err(config_err)?;
    Ok(KeyRecord {
        kid: config.signing_key.clone(),
        alg: key.algorithm(),
        public_jwk: Jwk::from_public_key(
            key.public_key().clone(),
            Some(config.signing_key.clone()),
        )
        .to_json(),
        created_at: UnixTime::EPOCH,
        activates_at: UnixTime::EPOCH,
        retires_at: None,
        publish_until: None,
    })
}

#[allow(clippy::too_many_arguments)]
fn build_ring(
    records: &[KeyRecord],
    now: UnixTime,
    source: &FileKeySource,
    loaded: &mut HashMap<String, Arc<dyn SigningKey>>,
    provider: &dyn CryptoProvider,
    profile: Profile,
    issuer: &Issuer,
    api_base: &str,
    token_cache: usize,
) -> Result<Keyring, StartError> {
    let schedule = schedule(records, now)
        .ok_or_else(|| StartError::Config("no bank signing key is active yet".into()))?;
    let key = match loaded.get(&schedule.signing) {
        Some(k) => k.clone(),
        None => {
            let k = source.signing_key(&schedule.signing).map_err(config_err)?;
            loaded.insert(schedule.signing.clone(), k.clone());
            k
        }
    };
    let record = records
        .iter()
        .find(|r| r.kid == schedule.signing)
        .ok_or_else(|| StartError::Config("signing key missing from its schedule".into()))?;
    let published_key = Jwk::from_public_key(key.public_key().clone(), Some(record.kid.clone()));
    if published_key.to_json() != record.public_jwk {
        return Err(StartError::Config(format!(
            "key source's {} is not the key its schedule publishes",
            record.kid
        )));
    }
    let jwks = published_jwks(records, &schedule.published)?;
    let keys =
        Arc::new(KeySet::from_jwks(&jwks, provider, &profile.key_policy()).map_err(config_err)?);
    let kid = schedule.signing.clone();
    let audience = fapi_core::TokenAudience::try_from(api_base).map_err(config_err)?;
    Ok(Keyring {
        tokens: AccessTokenIssuer::new(
            key.clone(),
            kid.clone(),
            issuer.clone(),
            audience.clone(),
            TOKEN_LIFETIME_SECS,
        ),
        verifier: AccessTokenVerifier::new(keys, issuer.clone(), audience, profile.algorithms())
            .with_cache(token_cache),
        jarm: JarmSigner::new(key.clone(), kid.clone(), issuer.clone()),
        responses: ObJwsSigner::new(
            key.clone(),
            kid.clone(),
            issuer.as_str(),
            super::resources::TRUST_ANCHOR,
        ),
        jwks: jwks.to_json(),
        key,
        kid,
        schedule,
    })
}

fn published_jwks(records: &[KeyRecord], kids: &[String]) -> Result<JwkSet, StartError> {
    let mut keys = Vec::with_capacity(kids.len());
    for kid in kids {
        if let Some(r) = records.iter().find(|r| &r.kid == kid) {
            let Value::Object(m) = &r.public_jwk else {
                return Err(StartError::Config(format!(
                    "public key of {kid} is not a JWK"
                )));
            };
            keys.push(Jwk::from_json_object(m).map_err(config_err)?);
        }
    }
    Ok(JwkSet::new(keys))
}

/// Every public key the bank has ever signed with (by `kid`), for
/// verifying its old audit checkpoints; the configured key alone on a
/// database that never served.
///
/// # Errors
/// [`StartError::Config`].
pub async fn all_public_keys(
    config: &BankConfig,
    db: &dyn SigningKeyStore,
) -> Result<KeySet, StartError> {
    let provider = fapi_core::crypto::default_provider();
    let profile = config.profile()?;
    let mut records = db.keys().await.map_err(config_err)?;
    if records.is_empty() {
        let source = FileKeySource::new(&config.data_dir, provider.clone());
        records.push(configured_key(config, &source)?);
    }
    let kids: Vec<String> = records.iter().map(|r| r.kid.clone()).collect();
    let jwks = published_jwks(&records, &kids)?;
    KeySet::from_jwks(&jwks, &*provider, &profile.key_policy()).map_err(config_err)
}

/// What `bank keys rotate` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rotation {
    /// The new key's `kid`, published from now.
    pub new_kid: String,
    /// Its algorithm.
    pub alg: Algorithm,
    /// When it starts signing.
    pub activates_at: UnixTime,
    /// The key it replaces.
    pub old_kid: String,
    /// When the old key stops being published.
    pub old_published_until: UnixTime,
}

/// Why a rotation was refused.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// The delay is shorter than the instances need to read the new key.
    #[error("--publish-delay {given} s is below the minimum of {min} s (twice signing_keys.refresh_ms): instances could sign with a key some of them do not publish yet")]
    DelayTooShort {
        /// The delay asked for.
        given: i64,
        /// The minimum.
        min: i64,
    },
    /// A rotation is already scheduled and has not taken effect.
    #[error("a rotation is already pending: {kid} starts signing at {activates_at}; rotate again after that")]
    Pending {
        /// The pending key.
        kid: String,
        /// When it activates.
        activates_at: UnixTime,
    },
    /// The algorithm is not one the profile allows.
    #[error("{0} is not allowed by the bank's profile")]
    Algorithm(Algorithm),
    /// Configuration, key source or database.
    #[error(transparent)]
    Start(#[from] StartError),
}

/// `bank keys rotate`: generates a new signing key of `alg` (default: the
/// current key's) in the key source, publishes it from `now` and schedules
/// it to sign after `publish_delay_secs` (default: the configured one);
/// the current key keeps signing until then and stays published
/// [`MAX_SIGNED_LIFETIME_SECS`] plus the clock skew after.
///
/// # Errors
/// [`RotateError`].
pub fn rotate(
    config: &BankConfig,
    alg: Option<Algorithm>,
    publish_delay_secs: Option<i64>,
    now: UnixTime,
) -> Result<Rotation, RotateError> {
    let min = config.signing_keys.min_publish_delay_secs();
    let delay = publish_delay_secs.unwrap_or(config.signing_keys.publish_delay_secs);
    if delay < min {
        return Err(RotateError::DelayTooShort { given: delay, min });
    }
    let provider = fapi_core::crypto::default_provider();
    let profile = config.profile()?;
    let stores = crate::stores::open_for_command(config)?;
    let db = &*stores.signing_keys;
    let source = FileKeySource::new(&config.data_dir, provider.clone());
    let records = futures_executor::block_on(seeded(config, db, &source))?;
    if let Some(p) = records.iter().find(|r| r.activates_at > now) {
        return Err(RotateError::Pending {
            kid: p.kid.clone(),
            activates_at: p.activates_at,
        });
    }
    let current = schedule(&records, now)
        .ok_or_else(|| StartError::Config("no bank signing key is active".into()))?;
    let current_alg = records
        .iter()
        .find(|r| r.kid == current.signing)
        .map(|r| r.alg)
        .unwrap_or(Algorithm::Ps256);
    let alg = alg.unwrap_or(current_alg);
    if !profile.algorithms().contains(&alg) {
        return Err(RotateError::Algorithm(alg));
    }
    let new_kid = format!("{}-{}", config.signing_key, now.as_secs());
    let key = source
        .generate_signing_key(&new_kid, alg)
        .map_err(config_err)?;
    let activates_at = now.saturating_add(delay);
    let old_published_until =
        activates_at.saturating_add(MAX_SIGNED_LIFETIME_SECS + fapi_core::MAX_CLOCK_SKEW_SECS);
    let record = KeyRecord {
        kid: new_kid.clone(),
        alg,
        public_jwk: Jwk::from_public_key(key.public_key().clone(), Some(new_kid.clone())).to_json(),
        created_at: now,
        activates_at,
        retires_at: None,
        publish_until: None,
    };
    futures_executor::block_on(db.schedule(&record, &current.signing, old_published_until))
        .map_err(config_err)?;
    Ok(Rotation {
        new_kid,
        alg,
        activates_at,
        old_kid: current.signing,
        old_published_until,
    })
}

/// `bank keys list`: every key with its schedule, oldest first.
///
/// # Errors
/// [`StartError::Config`].
pub fn list(config: &BankConfig) -> Result<Vec<KeyRecord>, StartError> {
    let stores = crate::stores::open_for_command(config)?;
    let source = FileKeySource::new(&config.data_dir, fapi_core::crypto::default_provider());
    futures_executor::block_on(seeded(config, &*stores.signing_keys, &source))
}
