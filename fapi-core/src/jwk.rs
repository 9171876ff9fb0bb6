//! JSON Web Keys ([RFC 7517]) and the verification key sets built from them.
//!
//! Keys come only from a configured source: a client's registered JWKS, the
//! scheme directory's JWKS, or the bank's own keys. A [`KeySet`] parses each
//! usable key once through the [`CryptoProvider`] and caches the result.
//!
//! [RFC 7517]: https://www.rfc-editor.org/rfc/rfc7517

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::crypto::{
    Algorithm, CryptoProvider, JwkThumbprint, KeyError, KeyPolicy, PublicKeyMaterial, VerifyingKey,
};
use crate::encoding::b64url_decode;
use crate::json::parse_object;

/// Most keys accepted in one JWKS.
pub const MAX_KEYS: usize = 64;
/// Largest JWKS document accepted, in bytes.
pub const MAX_JWKS_LEN: usize = 256 * 1024;

/// Why a JWK or JWKS was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwkError {
    /// The document is not a strict JSON object.
    #[error("jwk set is not a valid JSON object")]
    Json,
    /// The JWKS document is too large.
    #[error("jwk set is larger than {max} bytes")]
    TooLarge {
        /// The limit.
        max: usize,
    },
    /// A required member is missing.
    #[error("jwk is missing the `{0}` member")]
    Missing(&'static str),
    /// A member has the wrong JSON type or is not strict base64url.
    #[error("jwk member `{0}` is malformed")]
    Malformed(&'static str),
    /// A public JWKS carries private key material (`d`, `p`, `q`, ... or `k`).
    #[error("jwk contains private key material; publish only public keys")]
    PrivateKeyMaterial,
    /// A coordinate or key is not the fixed size of its curve.
    #[error("jwk member `{0}` has the wrong length for its curve")]
    WrongLength(&'static str),
    /// An RSA integer is encoded with leading zero octets (RFC 7518 §6.3.1.1).
    #[error("jwk member `{0}` is not minimally encoded")]
    NonMinimal(&'static str),
    /// `alg` names an algorithm other than the one the key type implies.
    #[error("jwk `alg` does not match its key type")]
    AlgMismatch,
    /// More than [`MAX_KEYS`] keys.
    #[error("jwk set has more than {MAX_KEYS} keys")]
    TooManyKeys,
    /// The key is not acceptable (size policy or invalid key).
    #[error(transparent)]
    Key(#[from] KeyError),
    /// One key of a set failed: which one, and why. A set with one bad key
    /// is refused whole, whatever the other keys are.
    #[error("{}", named_key(*index, kid.as_deref(), reason))]
    InSet {
        /// Its position in the set's `keys` (0-based).
        index: usize,
        /// Its `kid`, if it has one (at most 64 characters are kept).
        kid: Option<String>,
        /// What is wrong with it.
        reason: Box<JwkError>,
    },
}

/// Longest `kid` an error repeats.
const MAX_KID_IN_ERROR: usize = 64;

fn named_key(index: usize, kid: Option<&str>, reason: &JwkError) -> String {
    match kid {
        Some(kid) => format!("jwk set key {index} (kid {kid:?}) is refused: {reason}"),
        None => format!("jwk set key {index} (no kid) is refused: {reason}"),
    }
}

impl JwkError {
    /// What is wrong, without the naming of [`JwkError::InSet`].
    pub fn reason(&self) -> &JwkError {
        match self {
            Self::InSet { reason, .. } => reason.reason(),
            other => other,
        }
    }

    /// `self`, as the fault of key `index` of a set, named by `kid`.
    fn in_set(self, index: usize, kid: Option<&str>) -> Self {
        Self::InSet {
            index,
            kid: kid.map(|k| k.chars().take(MAX_KID_IN_ERROR).collect()),
            reason: Box::new(self),
        }
    }
}

/// Intended use of a key (`use`, [RFC 7517 §4.2]).
///
/// [RFC 7517 §4.2]: https://www.rfc-editor.org/rfc/rfc7517#section-4.2
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyUse {
    /// `sig`
    Signature,
    /// `enc`
    Encryption,
    /// any other value: never used for signatures
    Other,
}

/// One public JWK of a type this crate uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Jwk {
    kid: Option<String>,
    key_use: Option<KeyUse>,
    key_ops: Option<Vec<String>>,
    alg: Option<Algorithm>,
    material: PublicKeyMaterial,
}

const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

fn get_str<'a>(m: &'a Map<String, Value>, name: &'static str) -> Result<Option<&'a str>, JwkError> {
    match m.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(JwkError::Malformed(name)),
    }
}

fn req_b64(m: &Map<String, Value>, name: &'static str) -> Result<Vec<u8>, JwkError> {
    let s = get_str(m, name)?.ok_or(JwkError::Missing(name))?;
    b64url_decode(s, 4 * 1024).map_err(|_| JwkError::Malformed(name))
}

fn fixed32(m: &Map<String, Value>, name: &'static str) -> Result<[u8; 32], JwkError> {
    req_b64(m, name)?
        .try_into()
        .map_err(|_| JwkError::WrongLength(name))
}

fn minimal(bytes: Vec<u8>, name: &'static str) -> Result<Vec<u8>, JwkError> {
    match bytes.first() {
        None => Err(JwkError::Malformed(name)),
        Some(0) => Err(JwkError::NonMinimal(name)),
        Some(_) => Ok(bytes),
    }
}

/// What parsing a member of a JWKS found.
enum Parsed {
    Key(Jwk),
    /// A key type or curve this crate does not use (kept out of key sets).
    Unsupported,
}

impl Jwk {
    /// A JWK for a public key, as the bank publishes it in `/jwks`.
    pub fn from_public_key(material: PublicKeyMaterial, kid: Option<String>) -> Self {
        Self {
            kid,
            key_use: Some(KeyUse::Signature),
            key_ops: None,
            alg: Some(material.algorithm()),
            material,
        }
    }

    /// Parses one JWK from a JSON object.
    ///
    /// # Errors
    /// [`JwkError`] for private material, malformed members, or an
    /// unsupported key type or curve ([`JwkError::Malformed`] on `kty`/`crv`).
    pub fn from_json_object(m: &Map<String, Value>) -> Result<Self, JwkError> {
        match Self::parse(m)? {
            Parsed::Key(k) => Ok(k),
            Parsed::Unsupported => Err(JwkError::Key(KeyError::Unsupported(
                "only RSA, EC P-256 and OKP Ed25519 keys are supported",
            ))),
        }
    }

    fn parse(m: &Map<String, Value>) -> Result<Parsed, JwkError> {
        if PRIVATE_MEMBERS.iter().any(|p| m.contains_key(*p)) {
            return Err(JwkError::PrivateKeyMaterial);
        }
        let kty = get_str(m, "kty")?.ok_or(JwkError::Missing("kty"))?;
        let material = match kty {
            "RSA" => PublicKeyMaterial::Rsa {
                n: minimal(req_b64(m, "n")?, "n")?,
                e: minimal(req_b64(m, "e")?, "e")?,
            },
            "EC" => match get_str(m, "crv")?.ok_or(JwkError::Missing("crv"))? {
                "P-256" => PublicKeyMaterial::P256 {
                    x: fixed32(m, "x")?,
                    y: fixed32(m, "y")?,
                },
                _ => return Ok(Parsed::Unsupported),
            },
            "OKP" => match get_str(m, "crv")?.ok_or(JwkError::Missing("crv"))? {
                "Ed25519" => PublicKeyMaterial::Ed25519 {
                    x: fixed32(m, "x")?,
                },
                _ => return Ok(Parsed::Unsupported),
            },
            _ => return Ok(Parsed::Unsupported),
        };
        let kid = get_str(m, "kid")?.map(str::to_owned);
        let key_use = get_str(m, "use")?.map(|u| match u {
            "sig" => KeyUse::Signature,
            "enc" => KeyUse::Encryption,
            _ => KeyUse::Other,
        });
        let key_ops = match m.get("key_ops") {
            None => None,
            Some(Value::Array(a)) => Some(
                a.iter()
                    .map(|v| v.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .ok_or(JwkError::Malformed("key_ops"))?,
            ),
            Some(_) => return Err(JwkError::Malformed("key_ops")),
        };
        let alg = match get_str(m, "alg")? {
            None => None,
            Some(a) => match Algorithm::from_jose_name(a) {
                Some(a) if a == material.algorithm() => Some(a),
                // An RSA key marked RS256 (or any other alg) is not a PS256
                // key: it is never used, rather than used for another alg.
                _ => return Err(JwkError::AlgMismatch),
            },
        };
        Ok(Parsed::Key(Self {
            kid,
            key_use,
            key_ops,
            alg,
            material,
        }))
    }

    /// The key id, an opaque lookup key.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The public key.
    pub fn material(&self) -> &PublicKeyMaterial {
        &self.material
    }

    /// The algorithm this key verifies (implied by its type).
    pub fn algorithm(&self) -> Algorithm {
        self.material.algorithm()
    }

    /// RFC 7638 thumbprint.
    pub fn thumbprint(&self) -> JwkThumbprint {
        self.material.thumbprint()
    }

    /// Whether `use` and `key_ops` allow verifying signatures with this key.
    pub fn usable_for_signatures(&self) -> bool {
        let use_ok = matches!(self.key_use, None | Some(KeyUse::Signature));
        let ops_ok = self
            .key_ops
            .as_ref()
            .is_none_or(|ops| ops.iter().any(|o| o == "verify"));
        use_ok && ops_ok
    }

    /// The JWK as a JSON object (public members only).
    pub fn to_json(&self) -> Value {
        let mut m = match serde_json::from_str::<Value>(&self.material.canonical_jwk_json()) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        if let Some(kid) = &self.kid {
            m.insert("kid".into(), Value::String(kid.clone()));
        }
        if let Some(u) = self.key_use {
            let u = match u {
                KeyUse::Signature => "sig",
                KeyUse::Encryption => "enc",
                KeyUse::Other => "other",
            };
            m.insert("use".into(), Value::String(u.into()));
        }
        if let Some(alg) = self.alg {
            m.insert("alg".into(), Value::String(alg.jose_name().into()));
        }
        Value::Object(m)
    }
}

/// A JWK Set ([RFC 7517 §5](https://www.rfc-editor.org/rfc/rfc7517#section-5)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JwkSet {
    keys: Vec<Jwk>,
}

impl JwkSet {
    /// A set of the given keys.
    pub fn new(keys: Vec<Jwk>) -> Self {
        Self { keys }
    }

    /// Parses `{"keys":[...]}` strictly. Keys of unsupported types or curves
    /// are skipped (a client may publish encryption keys); private material
    /// anywhere, a malformed supported key, or too many keys reject the set.
    ///
    /// # Errors
    /// [`JwkError`] as above; a fault of one key is [`JwkError::InSet`],
    /// naming it by its position in the document and its `kid`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, JwkError> {
        if bytes.len() > MAX_JWKS_LEN {
            return Err(JwkError::TooLarge { max: MAX_JWKS_LEN });
        }
        let doc = parse_object(bytes).map_err(|_| JwkError::Json)?;
        let Some(Value::Array(items)) = doc.get("keys") else {
            return Err(JwkError::Missing("keys"));
        };
        if items.len() > MAX_KEYS {
            return Err(JwkError::TooManyKeys);
        }
        let mut keys = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let Value::Object(m) = item else {
                return Err(JwkError::Malformed("keys").in_set(index, None));
            };
            let kid = m.get("kid").and_then(Value::as_str);
            if let Parsed::Key(k) = Jwk::parse(m).map_err(|e| e.in_set(index, kid))? {
                keys.push(k);
            }
        }
        Ok(Self { keys })
    }

    /// The keys.
    pub fn keys(&self) -> &[Jwk] {
        &self.keys
    }

    /// `{"keys":[...]}`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({ "keys": self.keys.iter().map(Jwk::to_json).collect::<Vec<_>>() })
    }
}

/// A verification key, parsed once.
#[derive(Clone, Debug)]
pub struct KeyEntry {
    kid: Option<String>,
    thumbprint: JwkThumbprint,
    key: Arc<dyn VerifyingKey>,
}

impl KeyEntry {
    /// The key id.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }
    /// RFC 7638 thumbprint of the key.
    pub fn thumbprint(&self) -> JwkThumbprint {
        self.thumbprint
    }
    /// The parsed key.
    pub fn key(&self) -> &dyn VerifyingKey {
        &*self.key
    }
}

/// Why no single key could be chosen for a JWS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeySelectionError {
    /// No key has the `kid` and algorithm of the token.
    #[error("no registered key matches the token's kid and algorithm")]
    NotFound,
    /// More than one key fits and the token does not say which.
    #[error("more than one registered key matches; the token must carry a distinguishing kid")]
    Ambiguous,
}

/// The signature keys of one party, parsed through a provider and checked
/// against a key-size policy once, when the set is built.
#[derive(Clone, Debug, Default)]
pub struct KeySet {
    entries: Vec<KeyEntry>,
}

impl KeySet {
    /// Builds the verification set from a JWKS: keys whose `use`/`key_ops`
    /// forbid signature verification are left out; every other key must pass
    /// `policy` and parse.
    ///
    /// # Errors
    /// [`JwkError::InSet`] naming the first signature key that is too
    /// small or invalid (its index in `jwks` and its `kid`), with the
    /// [`JwkError::Key`] reason.
    pub fn from_jwks(
        jwks: &JwkSet,
        provider: &dyn CryptoProvider,
        policy: &KeyPolicy,
    ) -> Result<Self, JwkError> {
        let mut entries = Vec::new();
        for (index, jwk) in jwks.keys().iter().enumerate() {
            if !jwk.usable_for_signatures() {
                continue;
            }
            let named = |e: KeyError| JwkError::Key(e).in_set(index, jwk.kid());
            jwk.material.check_policy(policy).map_err(named)?;
            entries.push(KeyEntry {
                kid: jwk.kid.clone(),
                thumbprint: jwk.thumbprint(),
                key: provider.verifying_key(&jwk.material).map_err(named)?,
            });
        }
        Ok(Self { entries })
    }

    /// The keys.
    pub fn entries(&self) -> &[KeyEntry] {
        &self.entries
    }

    /// Chooses the one key for a token with `alg` and optional `kid`
    /// (FAPI-RULES "Key selection"): by `kid` first (exact, opaque), then by
    /// the algorithm the key type implies. Zero or several candidates is an
    /// error.
    ///
    /// # Errors
    /// [`KeySelectionError`].
    pub fn select(
        &self,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> Result<&KeyEntry, KeySelectionError> {
        let mut found = self.entries.iter().filter(|e| {
            e.key.algorithm() == alg && kid.is_none_or(|k| e.kid.as_deref() == Some(k))
        });
        match (found.next(), found.next()) {
            (Some(e), None) => Ok(e),
            (Some(_), Some(_)) => Err(KeySelectionError::Ambiguous),
            (None, _) => Err(KeySelectionError::NotFound),
        }
    }
}
