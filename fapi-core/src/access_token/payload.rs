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

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

pub(super) use crate::json::Slot;
use crate::json::{
    fail, read_document, take, wrong_types, CowStr, ErrorKind, JsonError, SeenNames,
    StrSlot as Str, Validate, MAX_JSON_DEPTH,
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
#[derive(Debug, Default, PartialEq)]
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
}

/// Reads `bytes` as an access token payload.
///
/// # Errors
/// The [`JsonError`] [`parse_object`](crate::json::parse_object) gives for
/// the same bytes.
pub(super) fn read(bytes: &[u8]) -> Result<Payload<'_>, JsonError> {
    let kind = ErrorKind::default();
    read_document(bytes, Top { kind: &kind }, &kind)?.ok_or(JsonError::NotAnObject)
}

/// The whole document: `Some` for an object, `None` for any other (valid)
/// value, which the caller refuses only after the trailing-data check, as
/// `parse_object` does.
struct Top<'k> {
    kind: &'k ErrorKind,
}

impl<'k> Top<'k> {
    fn validate(&self) -> Validate<'k> {
        Validate {
            depth: MAX_JSON_DEPTH,
            kind: self.kind,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Top<'_> {
    type Value = Option<Payload<'de>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Top<'_> {
    type Value = Option<Payload<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        self.validate().visit_f64(v).map(|()| None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.validate().visit_seq(seq).map(|()| None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let kind = self.kind;
        let child = self.validate().child()?;
        let mut p = Payload::default();
        let mut others = SeenNames::default();
        while let Some(name) = map.next_key_seed(CowStr)? {
            match &*name {
                "iss" => take(&mut map, &mut p.iss, Str(child), kind)?,
                "sub" => take(&mut map, &mut p.sub, Str(child), kind)?,
                "aud" => take(&mut map, &mut p.aud, AudSeed(child), kind)?,
                "client_id" => take(&mut map, &mut p.client_id, Str(child), kind)?,
                "jti" => take(&mut map, &mut p.jti, Str(child), kind)?,
                "scope" => take(&mut map, &mut p.scope, Str(child), kind)?,
                "consent_id" => take(&mut map, &mut p.consent_id, Str(child), kind)?,
                "exp" => take(&mut map, &mut p.exp, Int(child), kind)?,
                "nbf" => take(&mut map, &mut p.nbf, Int(child), kind)?,
                "iat" => take(&mut map, &mut p.iat, Int(child), kind)?,
                "cnf" => take(&mut map, &mut p.cnf, CnfSeed(child), kind)?,
                _ => {
                    if !others.insert(name) {
                        return Err(fail(kind, JsonError::DuplicateMember));
                    }
                    map.next_value_seed(child)?;
                }
            }
        }
        Ok(Some(p))
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
