//! The protected header: read strictly in one pass, checked against a
//! [`JwsPolicy`] (algorithm, `typ`, `crit`) before any cryptography runs.

use super::*;

/// Whether a header may carry its signing key as `jwk`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EmbeddedKey {
    /// Never (every token but a DPoP proof).
    Refused,
    /// `jwk` only: the DPoP proof's own key (RFC 9449 §4.2).
    JwkAllowed,
}

/// The `typ` a kind of token must carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectedType {
    /// Exactly this media type (compared per RFC 7515 §4.1.9: case-insensitive,
    /// with or without the `application/` prefix).
    Exact(&'static str),
    /// Absent or `JWT`: for tokens whose profile defines no explicit type
    /// (client assertions, ID tokens, JARM). Any other explicit type, such as
    /// `at+jwt`, is rejected so one kind of token never passes as another.
    JwtOrAbsent,
    /// Absent or `JOSE` (UK OB `x-jws-signature`).
    JoseOrAbsent,
}

fn media_type_eq(value: &str, expected: &str) -> bool {
    let v = match value.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => {
            value.get(12..).unwrap_or("")
        }
        _ => value,
    };
    v.eq_ignore_ascii_case(expected)
}

impl ExpectedType {
    fn check(self, typ: Option<&str>) -> Result<(), JoseError> {
        match (self, typ) {
            (Self::Exact(e), None) => Err(JoseError::MissingType { expected: e }),
            (Self::Exact(e), Some(t)) if media_type_eq(t, e) => Ok(()),
            (Self::Exact(e), Some(_)) => Err(JoseError::WrongType { expected: e }),
            (Self::JwtOrAbsent, None) => Ok(()),
            (Self::JwtOrAbsent, Some(t)) if media_type_eq(t, "JWT") => Ok(()),
            (Self::JwtOrAbsent, Some(_)) => Err(JoseError::WrongType { expected: "JWT" }),
            (Self::JoseOrAbsent, None) => Ok(()),
            (Self::JoseOrAbsent, Some(t)) if media_type_eq(t, "JOSE") => Ok(()),
            (Self::JoseOrAbsent, Some(_)) => Err(JoseError::WrongType { expected: "JOSE" }),
        }
    }
}

/// What a verifier accepts for one kind of token. Built with
/// [`JwsPolicy::new`] (fields may be added, e.g. for DPoP's header `jwk`).
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct JwsPolicy<'a> {
    /// Algorithms allowed (normally the profile's).
    pub algorithms: &'a [Algorithm],
    /// The `typ` this kind of token carries.
    pub typ: ExpectedType,
    /// `crit` extension names this verifier understands and checks itself.
    pub understood_critical: &'a [&'a str],
}

impl<'a> JwsPolicy<'a> {
    /// Tokens of `typ` signed with one of `algorithms`, no `crit`
    /// extension understood.
    pub const fn new(algorithms: &'a [Algorithm], typ: ExpectedType) -> Self {
        Self {
            algorithms,
            typ,
            understood_critical: &[],
        }
    }

    /// The same policy, understanding the `crit` extensions `names` (the
    /// caller checks them itself).
    #[must_use]
    pub const fn understanding(mut self, names: &'a [&'a str]) -> Self {
        self.understood_critical = names;
        self
    }
}

/// The protected header of a JWS.
#[derive(Clone, Debug)]
pub struct Header {
    pub(super) alg: String,
    pub(super) kid: Option<String>,
    pub(super) typ: Option<String>,
    pub(super) cty: Option<String>,
    pub(super) crit: Option<Vec<String>>,
    pub(super) has_b64: bool,
    /// The decoded header, for [`Header::get`] (already checked).
    bytes: Vec<u8>,
    members: OnceLock<Map<String, Value>>,
}

/// The header members the verifier reads, as found in one strict pass,
/// and the names of all members.
#[derive(Default)]
struct HeaderMembers<'a> {
    alg: Slot<Cow<'a, str>>,
    kid: Slot<Cow<'a, str>>,
    typ: Slot<Cow<'a, str>>,
    cty: Slot<Cow<'a, str>>,
    crit: Slot<Vec<Slot<Cow<'a, str>>>>,
    names: SeenNames<'a>,
}

impl<'de> ObjectReader<'de> for HeaderMembers<'de> {
    fn member<A: MapAccess<'de>>(
        &mut self,
        name: Cow<'de, str>,
        map: &mut A,
        child: Validate<'_>,
    ) -> Result<(), A::Error> {
        let kind = child.kind;
        if !self.names.insert(name.clone()) {
            return Err(json::fail(kind, JsonError::DuplicateMember));
        }
        match &*name {
            "alg" => take(map, &mut self.alg, StrSlot(child), kind),
            "kid" => take(map, &mut self.kid, StrSlot(child), kind),
            "typ" => take(map, &mut self.typ, StrSlot(child), kind),
            "cty" => take(map, &mut self.cty, StrSlot(child), kind),
            "crit" => take(map, &mut self.crit, StrList(child), kind),
            _ => map.next_value_seed(child),
        }
    }
}

fn header_string(
    slot: &Slot<Cow<'_, str>>,
    name: &'static str,
) -> Result<Option<String>, JoseError> {
    match slot {
        Slot::Absent => Ok(None),
        Slot::Present(s) => Ok(Some(s.to_string())),
        Slot::WrongType => Err(JoseError::HeaderType(name)),
    }
}

impl Header {
    /// Reads the header in one strict pass (the rules of `parse_object`,
    /// without building the object), then applies the header rules.
    pub(crate) fn parse(bytes: Vec<u8>) -> Result<Self, JoseError> {
        Self::parse_with(bytes, EmbeddedKey::Refused)
    }

    /// [`Header::parse`], with `jwk` allowed when `embedded` says so (a
    /// DPoP proof carries the key that signs it; `jku`, `x5u` and `x5c`
    /// stay refused everywhere).
    pub(crate) fn parse_with(bytes: Vec<u8>, embedded: EmbeddedKey) -> Result<Self, JoseError> {
        let h: HeaderMembers<'_> =
            json::read_object(&bytes).map_err(JoseError::json(Part::Header))?;
        if let Some(name) = KEY_SOURCE_HEADERS
            .iter()
            .find(|n| h.names.contains(n) && !(embedded == EmbeddedKey::JwkAllowed && **n == "jwk"))
        {
            return Err(JoseError::EmbeddedKeySource(name));
        }
        let alg = header_string(&h.alg, "alg")?.ok_or(JoseError::MissingAlgorithm)?;
        let kid = header_string(&h.kid, "kid")?;
        let typ = header_string(&h.typ, "typ")?;
        let cty = header_string(&h.cty, "cty")?;
        let crit = match &h.crit {
            Slot::Absent => None,
            Slot::WrongType => return Err(JoseError::MalformedCritical),
            Slot::Present(items) => {
                let mut names: Vec<String> = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Slot::Present(s)
                            if !s.is_empty()
                                && !names.iter().any(|n| n == s)
                                && h.names.contains(s) =>
                        {
                            names.push(s.to_string());
                        }
                        _ => return Err(JoseError::MalformedCritical),
                    }
                }
                if names.is_empty() {
                    return Err(JoseError::MalformedCritical);
                }
                Some(names)
            }
        };
        let has_b64 = h.names.contains("b64");
        drop(h);
        Ok(Self {
            alg,
            kid,
            typ,
            cty,
            crit,
            has_b64,
            bytes,
            members: OnceLock::new(),
        })
    }

    /// `alg` as written.
    pub fn alg(&self) -> &str {
        &self.alg
    }
    /// `kid`.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }
    /// `typ`.
    pub fn typ(&self) -> Option<&str> {
        self.typ.as_deref()
    }
    /// `cty`.
    pub fn cty(&self) -> Option<&str> {
        self.cty.as_deref()
    }
    /// `crit` names.
    pub fn crit(&self) -> &[String] {
        self.crit.as_deref().unwrap_or_default()
    }
    /// Any member (the header's JSON object is built on first use).
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.members
            // the bytes passed the same strict rules in `parse`, so this
            // cannot fail; an empty map would only hide members, never add
            .get_or_init(|| parse_object(&self.bytes).unwrap_or_default())
            .get(name)
    }

    /// The policy checks that run before any cryptography. Returns the
    /// algorithm to verify with.
    pub(crate) fn check(
        &self,
        policy: &JwsPolicy<'_>,
        detached: bool,
    ) -> Result<Algorithm, JoseError> {
        let alg = Algorithm::from_jose_name(&self.alg).ok_or(JoseError::AlgorithmNotPermitted)?;
        if !policy.algorithms.contains(&alg) {
            return Err(JoseError::AlgorithmNotAllowed(alg));
        }
        policy.typ.check(self.typ())?;
        if self.cty().is_some_and(|c| media_type_eq(c, "JWT")) {
            return Err(JoseError::NestedJwt);
        }
        for name in self.crit() {
            let understood =
                policy.understood_critical.contains(&name.as_str()) || (detached && name == "b64");
            if !understood {
                return Err(JoseError::UnknownCritical);
            }
        }
        if self.has_b64 && !detached {
            return Err(JoseError::UnencodedPayloadNotAllowed);
        }
        Ok(alg)
    }
}
