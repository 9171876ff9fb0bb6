//! The claims of an access token read in one strict pass, without building a
//! JSON tree: the members [`AccessTokenVerifier`](super::AccessTokenVerifier)
//! uses are taken as they are met (strings borrowed from the payload), every
//! other member is checked under the same rules as
//! [`parse_object`](crate::json::parse_object) (well-formed, no repeated
//! member name at any level, bounded depth) and dropped.
//!
//! A claim of the wrong JSON type is recorded, not refused here, so the
//! verifier reports it in the same order and with the same error as the
//! general [`Claims`](crate::claims::Claims) reader; the tests below hold
//! the two readers to the same answer on every document.

use core::fmt;
use std::borrow::Cow;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

pub(super) use crate::json::Slot;
use crate::json::{
    fail, read_object, take, wrong_types, CowStr, JsonError, ObjectReader, SeenNames,
    StrSlot as Str, Validate,
};

/// The `aud` claim's value.
#[derive(Debug, PartialEq)]
pub(super) enum Aud<'a> {
    Single(Cow<'a, str>),
    Many(Vec<Cow<'a, str>>),
}

/// The members of a `cnf` object this crate reads.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Cnf<'a> {
    pub(super) x5t_s256: Slot<Cow<'a, str>>,
    pub(super) jkt: Slot<Cow<'a, str>>,
}

/// The RFC 9068 claims of one payload.
#[derive(Default)]
pub(super) struct Payload<'a> {
    pub(super) iss: Slot<Cow<'a, str>>,
    pub(super) sub: Slot<Cow<'a, str>>,
    pub(super) aud: Slot<Aud<'a>>,
    pub(super) client_id: Slot<Cow<'a, str>>,
    pub(super) jti: Slot<Cow<'a, str>>,
    pub(super) scope: Slot<Cow<'a, str>>,
    pub(super) consent_id: Slot<Cow<'a, str>>,
    /// NumericDates: `Present` only for a JSON integer that fits an `i64`.
    pub(super) exp: Slot<i64>,
    pub(super) nbf: Slot<i64>,
    pub(super) iat: Slot<i64>,
    /// `WrongType` unless a JSON object.
    pub(super) cnf: Slot<Cnf<'a>>,
    /// The names of the members not read above.
    others: SeenNames<'a>,
}

/// Reads `bytes` as an access token payload.
///
/// # Errors
/// The [`JsonError`] [`parse_object`](crate::json::parse_object) gives for
/// the same bytes.
pub(super) fn read(bytes: &[u8]) -> Result<Payload<'_>, JsonError> {
    read_object(bytes)
}

impl<'de> ObjectReader<'de> for Payload<'de> {
    fn member<A: MapAccess<'de>>(
        &mut self,
        name: Cow<'de, str>,
        map: &mut A,
        child: Validate<'_>,
    ) -> Result<(), A::Error> {
        let kind = child.kind;
        match &*name {
            "iss" => take(map, &mut self.iss, Str(child), kind),
            "sub" => take(map, &mut self.sub, Str(child), kind),
            "aud" => take(map, &mut self.aud, AudSeed(child), kind),
            "client_id" => take(map, &mut self.client_id, Str(child), kind),
            "jti" => take(map, &mut self.jti, Str(child), kind),
            "scope" => take(map, &mut self.scope, Str(child), kind),
            "consent_id" => take(map, &mut self.consent_id, Str(child), kind),
            "exp" => take(map, &mut self.exp, Int(child), kind),
            "nbf" => take(map, &mut self.nbf, Int(child), kind),
            "iat" => take(map, &mut self.iat, Int(child), kind),
            "cnf" => take(map, &mut self.cnf, CnfSeed(child), kind),
            _ => {
                if !self.others.insert(name) {
                    return Err(fail(kind, JsonError::DuplicateMember));
                }
                map.next_value_seed(child)
            }
        }
    }
}

/// A NumericDate claim: a JSON integer (range checked by the verifier).
struct Int<'k>(Validate<'k>);

impl<'de> DeserializeSeed<'de> for Int<'_> {
    type Value = Slot<i64>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Int<'_> {
    type Value = Slot<i64>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Slot::Present(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(i64::try_from(v).map_or(Slot::WrongType, Slot::Present))
    }
    wrong_types!(bool, str, float, unit, seq, map);
}

/// `aud`: a string, or a non-empty array of strings.
struct AudSeed<'k>(Validate<'k>);

impl<'de> DeserializeSeed<'de> for AudSeed<'_> {
    type Value = Slot<Aud<'de>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AudSeed<'_> {
    type Value = Slot<Aud<'de>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Slot::Present(Aud::Single(Cow::Borrowed(v))))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Slot::Present(Aud::Single(Cow::Owned(v.to_owned()))))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Slot::Present(Aud::Single(Cow::Owned(v))))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let child = self.0.child()?;
        let mut all = Vec::new();
        let mut only_strings = true;
        while let Some(item) = seq.next_element_seed(Str(child))? {
            match item {
                Slot::Present(s) => all.push(s),
                _ => only_strings = false,
            }
        }
        Ok(if only_strings && !all.is_empty() {
            Slot::Present(Aud::Many(all))
        } else {
            Slot::WrongType
        })
    }
    wrong_types!(bool, ints, float, unit, map);
}

/// `cnf`: an object; `x5t#S256` and `jkt` are read, other members checked.
struct CnfSeed<'k>(Validate<'k>);

impl<'de> DeserializeSeed<'de> for CnfSeed<'_> {
    type Value = Slot<Cnf<'de>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for CnfSeed<'_> {
    type Value = Slot<Cnf<'de>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let kind = self.0.kind;
        let child = self.0.child()?;
        let mut cnf = Cnf::default();
        let mut others = SeenNames::default();
        while let Some(name) = map.next_key_seed(CowStr)? {
            match &*name {
                "x5t#S256" => take(&mut map, &mut cnf.x5t_s256, Str(child), kind)?,
                "jkt" => take(&mut map, &mut cnf.jkt, Str(child), kind)?,
                _ => {
                    if !others.insert(name) {
                        return Err(fail(kind, JsonError::DuplicateMember));
                    }
                    map.next_value_seed(child)?;
                }
            }
        }
        Ok(Slot::Present(cnf))
    }
    wrong_types!(bool, str, ints, float, unit, seq);
}
