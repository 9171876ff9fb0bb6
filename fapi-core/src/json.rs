//! A strict JSON reader for untrusted token parts.
//!
//! `serde_json` does the parsing; this module adds what JOSE needs on top
//! ([RFC 7515 §5.2](https://www.rfc-editor.org/rfc/rfc7515#section-5.2),
//! [RFC 8725 §3.14](https://www.rfc-editor.org/rfc/rfc8725)): duplicate member
//! names are an error (never "last one wins"), nesting depth is bounded, the
//! top level must be an object, and nothing may follow it.

use core::cell::Cell;
use core::fmt;
use core::marker::PhantomData;
use std::borrow::Cow;
use std::collections::HashSet;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Maximum number of nested objects/arrays (the top-level object counts as
/// one) in any JSON document read from a token.
pub const MAX_JSON_DEPTH: usize = 16;

/// Why a JSON document was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JsonError {
    /// Not well-formed JSON, or trailing data after it.
    #[error("not well-formed JSON")]
    Syntax,
    /// A member name appears twice in one object.
    #[error("a member name appears twice in one object")]
    DuplicateMember,
    /// Nested deeper than [`MAX_JSON_DEPTH`].
    #[error("nested deeper than {MAX_JSON_DEPTH} levels")]
    TooDeep,
    /// The document is not a JSON object.
    #[error("not a JSON object")]
    NotAnObject,
}

/// Parses `bytes` as one JSON object under the rules above (also useful for
/// request bodies that must be read as strictly as tokens).
///
/// # Errors
/// [`JsonError`].
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, JsonError> {
    let kind = Cell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Seed {
        depth: MAX_JSON_DEPTH,
        kind: &kind,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v))
    .map_err(|_| kind.get().unwrap_or(JsonError::Syntax))?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(JsonError::NotAnObject),
    }
}

#[derive(Clone, Copy)]
struct Seed<'k> {
    depth: usize,
    kind: &'k Cell<Option<JsonError>>,
}

impl Seed<'_> {
    fn fail<E: de::Error>(&self, kind: JsonError) -> E {
        self.kind.set(Some(kind));
        E::custom(match kind {
            JsonError::DuplicateMember => "duplicate member name",
            JsonError::TooDeep => "nested too deeply",
            _ => "invalid json",
        })
    }

    fn child<E: de::Error>(&self) -> Result<Self, E> {
        match self.depth.checked_sub(1) {
            Some(depth) => Ok(Seed {
                depth,
                kind: self.kind,
            }),
            _ => Err(self.fail(JsonError::TooDeep)),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| self.fail(JsonError::Syntax))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let child = self.child()?;
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(child)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let child = self.child()?;
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            // one lookup: find the slot, refuse it if taken
            match out.entry(key) {
                serde_json::map::Entry::Occupied(_) => {
                    return Err(self.fail(JsonError::DuplicateMember));
                }
                serde_json::map::Entry::Vacant(slot) => {
                    slot.insert(map.next_value_seed(child)?);
                }
            }
        }
        Ok(Value::Object(out))
    }
}

// ------------------------------------------------------------------------
// The same rules without building a tree: for typed readers of one kind of
// token, which take the members they know and only need the rest checked.

/// The error kind a strict reader records before failing, so the caller can
/// report it (serde's own error only says "custom").
pub(crate) type ErrorKind = Cell<Option<JsonError>>;

pub(crate) fn fail<E: de::Error>(kind: &ErrorKind, e: JsonError) -> E {
    kind.set(Some(e));
    E::custom("strict json")
}

/// Reads one whole document with `top`, the way [`parse_object`] does:
/// the value, then nothing but whitespace after it.
fn read_document<'de, T: DeserializeSeed<'de>>(
    bytes: &'de [u8],
    top: T,
    kind: &ErrorKind,
) -> Result<T::Value, JsonError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    top.deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|_| kind.get().unwrap_or(JsonError::Syntax))
}

/// A one-pass reader of the members of a top-level JSON object.
pub(crate) trait ObjectReader<'de>: Default {
    /// Reads the value of member `name` from `map` with `value` (the
    /// validator for this depth). Refusing a repeated name is the reader's
    /// job.
    fn member<A: MapAccess<'de>>(
        &mut self,
        name: Cow<'de, str>,
        map: &mut A,
        value: Validate<'_>,
    ) -> Result<(), A::Error>;
}

/// Reads `bytes` as one JSON object with `R`, under the rules of
/// [`parse_object`] and with its errors (a valid document that is not an
/// object is [`JsonError::NotAnObject`], after the trailing-data check).
pub(crate) fn read_object<'de, R: ObjectReader<'de>>(bytes: &'de [u8]) -> Result<R, JsonError> {
    let kind = ErrorKind::default();
    let top = ObjectTop {
        kind: &kind,
        reader: PhantomData::<R>,
    };
    read_document(bytes, top, &kind)?.ok_or(JsonError::NotAnObject)
}

/// The whole document for [`read_object`]: `Some` for an object, `None`
/// for any other (checked) value.
struct ObjectTop<'k, R> {
    kind: &'k ErrorKind,
    reader: PhantomData<R>,
}

impl<'k, R> ObjectTop<'k, R> {
    fn validate(&self) -> Validate<'k> {
        Validate {
            depth: MAX_JSON_DEPTH,
            kind: self.kind,
        }
    }
}

impl<'de, R: ObjectReader<'de>> DeserializeSeed<'de> for ObjectTop<'_, R> {
    type Value = Option<R>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, R: ObjectReader<'de>> Visitor<'de> for ObjectTop<'_, R> {
    type Value = Option<R>;

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
        let child = self.validate().child()?;
        let mut reader = R::default();
        while let Some(name) = map.next_key_seed(CowStr)? {
            reader.member(name, &mut map, child)?;
        }
        Ok(Some(reader))
    }
}

/// A string (or member name), borrowed from the input unless it had
/// escapes.
pub(crate) struct CowStr;

impl<'de> DeserializeSeed<'de> for CowStr {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for CowStr {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// The member names seen in one object, to refuse a repeated one: a short
/// list for the usual handful, a hash set past it (a token may carry
/// thousands of members; the check must not be quadratic).
#[derive(Default)]
pub(crate) struct SeenNames<'de> {
    few: Vec<Cow<'de, str>>,
    many: Option<HashSet<Cow<'de, str>>>,
}

impl<'de> SeenNames<'de> {
    const FEW: usize = 16;

    /// Whether `name` was recorded.
    pub(crate) fn contains(&self, name: &str) -> bool {
        match &self.many {
            Some(many) => many.contains(name),
            None => self.few.iter().any(|n| n == name),
        }
    }

    /// Records `name`; `false` if it was already there.
    pub(crate) fn insert(&mut self, name: Cow<'de, str>) -> bool {
        if let Some(many) = &mut self.many {
            return many.insert(name);
        }
        if self.few.contains(&name) {
            return false;
        }
        if self.few.len() < Self::FEW {
            self.few.push(name);
        } else {
            let mut many: HashSet<Cow<'de, str>> = self.few.drain(..).collect();
            many.insert(name);
            self.many = Some(many);
        }
        true
    }
}

/// Checks one value under the strict rules (depth, duplicate member names,
/// well-formedness) without building it. `depth` is what is left for this
/// value, as in [`parse_object`]: the enclosing objects already count.
#[derive(Clone, Copy)]
pub(crate) struct Validate<'k> {
    pub(crate) depth: usize,
    pub(crate) kind: &'k ErrorKind,
}

impl<'k> Validate<'k> {
    /// The seed for the values inside a container at this level.
    pub(crate) fn child<E: de::Error>(self) -> Result<Self, E> {
        match self.depth.checked_sub(1) {
            Some(depth) => Ok(Self {
                depth,
                kind: self.kind,
            }),
            None => Err(fail(self.kind, JsonError::TooDeep)),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Validate<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Validate<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        if v.is_finite() {
            Ok(())
        } else {
            Err(fail(self.kind, JsonError::Syntax))
        }
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let child = self.child()?;
        while seq.next_element_seed(child)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let child = self.child()?;
        let mut seen = SeenNames::default();
        while let Some(name) = map.next_key_seed(CowStr)? {
            if !seen.insert(name) {
                return Err(fail(self.kind, JsonError::DuplicateMember));
            }
            map.next_value_seed(child)?;
        }
        Ok(())
    }
}

/// One member of interest as found in an object.
#[derive(Debug, Default, PartialEq)]
pub(crate) enum Slot<T> {
    /// Not in the object.
    #[default]
    Absent,
    /// Present with the JSON type the member has.
    Present(T),
    /// Present with another JSON type.
    WrongType,
}

/// Fills `slot` from the map's next value, unless the member name was
/// already seen (then [`JsonError::DuplicateMember`]).
pub(crate) fn take<'de, A, T, S>(
    map: &mut A,
    slot: &mut Slot<T>,
    seed: S,
    kind: &ErrorKind,
) -> Result<(), A::Error>
where
    A: MapAccess<'de>,
    S: DeserializeSeed<'de, Value = Slot<T>>,
{
    if !matches!(slot, Slot::Absent) {
        return Err(fail(kind, JsonError::DuplicateMember));
    }
    *slot = map.next_value_seed(seed)?;
    Ok(())
}

/// Implements the visitor methods of a member reader (whose `.0` is the
/// [`Validate`] for its value) for the JSON types the member does not
/// have: each value is checked like any other, then [`Slot::WrongType`].
macro_rules! wrong_types {
    ($($skip:ident),*) => {
        $crate::json::wrong_types!(@each $($skip),*);
    };
    (@each) => {};
    (@each bool $(, $rest:ident)*) => {
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok($crate::json::Slot::WrongType)
        }
        $crate::json::wrong_types!(@each $($rest),*);
    };
    (@each str $(, $rest:ident)*) => {
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok($crate::json::Slot::WrongType)
        }
        $crate::json::wrong_types!(@each $($rest),*);
    };
    (@each ints $(, $rest:ident)*) => {
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok($crate::json::Slot::WrongType)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok($crate::json::Slot::WrongType)
        }
        $crate::json::wrong_types!(@each $($rest),*);
    };
    (@each float $(, $rest:ident)*) => {
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
            serde::de::Visitor::visit_f64(self.0, v).map(|()| $crate::json::Slot::WrongType)
        }
        $crate::json::wrong_types!(@each $($rest),*);
    };
    (@each unit $(, $rest:ident)*) => {
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok($crate::json::Slot::WrongType)
        }
        $crate::json::wrong_types!(@each $($rest),*);
    };
    (@each seq $(, $rest:ident)*) => {
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            serde::de::Visitor::visit_seq(self.0, seq).map(|()| $crate::json::Slot::WrongType)
        }
        $crate::json::wrong_types!(@each $($rest),*);
    };
    (@each map $(, $rest:ident)*) => {
        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            serde::de::Visitor::visit_map(self.0, map).map(|()| $crate::json::Slot::WrongType)
        }
        $crate::json::wrong_types!(@each $($rest),*);
    };
}
pub(crate) use wrong_types;

/// A string member.
#[derive(Clone, Copy)]
pub(crate) struct StrSlot<'k>(pub(crate) Validate<'k>);

impl<'de> DeserializeSeed<'de> for StrSlot<'_> {
    type Value = Slot<Cow<'de, str>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrSlot<'_> {
    type Value = Slot<Cow<'de, str>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Slot::Present(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Slot::Present(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Slot::Present(Cow::Owned(v)))
    }
    wrong_types!(bool, ints, float, unit, seq, map);
}

/// An array member, each element read as a string member.
pub(crate) struct StrList<'k>(pub(crate) Validate<'k>);

impl<'de> DeserializeSeed<'de> for StrList<'_> {
    type Value = Slot<Vec<Slot<Cow<'de, str>>>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrList<'_> {
    type Value = Slot<Vec<Slot<Cow<'de, str>>>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let child = self.0.child()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(StrSlot(child))? {
            items.push(item);
        }
        Ok(Slot::Present(items))
    }
    wrong_types!(bool, str, ints, float, unit, map);
}

/// The verdict of a differential check between two readers of `bytes`:
/// their common outcome, or both outcomes if they differ.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn same_outcome(
    readers: &str,
    bytes: &[u8],
    one_pass: String,
    general: String,
) -> Result<String, String> {
    if one_pass == general {
        Ok(general)
    } else {
        Err(format!(
            "{readers} readers disagree on {:?}: one pass {one_pass}, general {general}",
            String::from_utf8_lossy(bytes)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_object() {
        let m = parse_object(br#"{"a":1,"b":[true,null,"x"],"c":{"d":1.5}}"#).unwrap();
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn duplicate_member_names_rejected() {
        assert_eq!(
            parse_object(br#"{"alg":"ES256","alg":"none"}"#),
            Err(JsonError::DuplicateMember)
        );
        assert_eq!(
            parse_object(br#"{"a":{"x":1,"x":2}}"#),
            Err(JsonError::DuplicateMember)
        );
        // the same name in different objects is fine
        assert!(parse_object(br#"{"a":{"x":1},"b":{"x":2}}"#).is_ok());
    }

    #[test]
    fn depth_is_bounded() {
        let ok = format!(
            "{}{}",
            "[".repeat(MAX_JSON_DEPTH - 1),
            "]".repeat(MAX_JSON_DEPTH - 1)
        );
        assert!(parse_object(format!(r#"{{"a":{ok}}}"#).as_bytes()).is_ok());
        let deep = format!(
            "{}{}",
            "[".repeat(MAX_JSON_DEPTH),
            "]".repeat(MAX_JSON_DEPTH)
        );
        assert_eq!(
            parse_object(format!(r#"{{"a":{deep}}}"#).as_bytes()),
            Err(JsonError::TooDeep)
        );
    }

    #[test]
    fn non_object_and_trailing_data_rejected() {
        assert_eq!(parse_object(b"[1]"), Err(JsonError::NotAnObject));
        assert_eq!(parse_object(b"\"x\""), Err(JsonError::NotAnObject));
        assert_eq!(parse_object(br#"{"a":1}x"#), Err(JsonError::Syntax));
        assert_eq!(parse_object(br#"{"a":1}{"b":2}"#), Err(JsonError::Syntax));
        assert_eq!(parse_object(b"{\"a\":\"\xff\"}"), Err(JsonError::Syntax));
        assert!(parse_object(b" {\"a\":1} \n").is_ok());
    }
}
