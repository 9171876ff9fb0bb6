//! Distinguished names: the strict [RFC 4514] reader for a registered
//! `tls_client_auth_subject_dn`, the view of a certificate's subject `Name`,
//! and [RFC 4517 §4.2.15] `distinguishedNameMatch` between the two
//! (FAPI-RULES "mTLS").
//!
//! # Matching
//! Two names match when they have the same number of RDNs, in the same
//! order, and each pair of RDNs holds the same set of attribute
//! type/value pairs, values compared with the attribute's matching rule.
//! RDN order and grouping are significant: a certificate with the
//! registered attributes in another order, or grouped into other
//! multi-valued RDNs, is a different subject.
//!
//! The matching rule of each attribute type:
//! - caseIgnoreMatch for the DirectoryString and PrintableString types
//!   this module names (CN, SN, serialNumber, C, L, ST, STREET, O, OU,
//!   title, GN, organizationIdentifier, UID), and caseIgnoreIA5Match for DC
//!   and emailAddress: both strings are prepared as below, with case
//!   folding, and compared for equality;
//! - any other (numeric) type: caseExactMatch on character strings (the
//!   same preparation without case folding), octet equality of the DER
//!   encoding for anything else.
//!
//! A value written `#hex` is read as the DER encoding it carries and then
//! compared by the same rule, so `CN=#0c0161` and `CN=a` are one value.
//!
//! # String preparation ([RFC 4518])
//! 1. Transcode: UTF8String, PrintableString, IA5String and BMPString are
//!    read as Unicode. A TeletexString is read as text only when every
//!    octet is in the PrintableString repertoire (where T.61 and ASCII
//!    agree); otherwise, and for UniversalString or any other type, the
//!    value is compared as DER.
//! 2. Map: space separators (Zs, Zl, Zp, e.g. NO-BREAK SPACE) become SPACE.
//!    **Stricter than RFC 4518 §2.2:** a value holding a character the RFC
//!    maps to nothing or to SPACE because it is a control or format
//!    character (controls including TAB, CR and LF, format characters such
//!    as ZERO WIDTH SPACE, SOFT HYPHEN, variation selectors, U+FFFC) cannot
//!    be matched at all, rather than matching the value without it: an
//!    invisible character is a look-alike, not an insignificant difference.
//!    A registration holding one is refused.
//! 3. Normalize: case folding by RFC 3454 Table B.2 (case-ignoring rules
//!    only), then Unicode NFKC.
//! 4. Prohibit: code points unassigned in Unicode 3.2 (RFC 3454 A.1),
//!    private use (C.3), non-characters (C.4), U+FFFD, characters that
//!    change display properties or are deprecated (C.8), tagging characters
//!    (C.9), and a combining mark as the first character: such a value
//!    cannot be matched, and a registration holding one is refused.
//! 5. Insignificant spaces: leading and trailing spaces are removed and
//!    each inner run of spaces counts as one (RFC 4518 §2.6.1).
//!
//! # The RFC 4514 reader
//! A registered DN is read by this module's own grammar (RFC 4514 §3)
//! before anything else parses it; no string reaches an ASN.1 library.
//! It accepts, beyond the RFC's ABNF, only optional spaces around `,`, `+`
//! and `=` (unambiguous, since no value starts or ends with an unescaped
//! space) and the `OID.` prefix on a numeric type. It refuses: an unknown
//! attribute name; an OID arc with a leading zero, above 2^32 - 1, a second
//! arc above 39, or more than [`MAX_OID_ARCS`] arcs; an unescaped `"`,
//! `;`, `<`, `>` or `\`; a `\` not followed by a special character or two
//! hex digits; escapes whose bytes are not UTF-8; NUL or any control
//! character (raw or escaped); a `#hex` value that is not exactly one DER
//! value; an empty value; a type repeated within one RDN; more than
//! [`MAX_RDNS`] RDNs, [`MAX_RDN_ATTRIBUTES`] attributes in one RDN or
//! [`MAX_DN_LEN`] bytes. What it accepts it can write back
//! ([`fmt::Display`]) as a string that reads to the same name.
//!
//! [RFC 4514]: https://www.rfc-editor.org/rfc/rfc4514
//! [RFC 4517 §4.2.15]: https://www.rfc-editor.org/rfc/rfc4517#section-4.2.15
//! [RFC 4518]: https://www.rfc-editor.org/rfc/rfc4518

use core::fmt;

use stringprep::tables;
use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, GeneralCategoryGroup, UnicodeGeneralCategory};
use x509_cert::der::asn1::{
    BmpString, Ia5StringRef, ObjectIdentifier, PrintableStringRef, TeletexStringRef, Utf8StringRef,
};
use x509_cert::der::{Any, Decode, Encode, Tag, Tagged};
use x509_cert::name::Name;

/// Longest registered DN accepted, in bytes.
pub const MAX_DN_LEN: usize = 4096;
/// Most RDNs in a registered DN.
pub const MAX_RDNS: usize = 32;
/// Most attributes in one RDN of a registered DN.
pub const MAX_RDN_ATTRIBUTES: usize = 8;
/// Most arcs in a numeric attribute type.
pub const MAX_OID_ARCS: usize = 20;
/// Longest DER value a `#hex` value may carry, in bytes.
pub const MAX_HEX_VALUE_LEN: usize = 1024;

/// Why a registered DN string was refused. `at` is a byte offset into the
/// string.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DnError {
    /// The string is empty.
    #[error("distinguished name is empty")]
    Empty,
    /// Longer than [`MAX_DN_LEN`].
    #[error("distinguished name is longer than {max} bytes")]
    TooLong {
        /// The limit.
        max: usize,
    },
    /// More RDNs, or attributes in one RDN, than allowed.
    #[error("distinguished name has more than {max} {what}")]
    TooMany {
        /// What there are too many of.
        what: &'static str,
        /// The limit.
        max: usize,
    },
    /// Not RFC 4514 syntax.
    #[error("distinguished name is not valid RFC 4514 at byte {at}: {problem}")]
    Syntax {
        /// Byte offset.
        at: usize,
        /// What is wrong.
        problem: &'static str,
    },
    /// An attribute name this reader does not know.
    #[error("distinguished name has an unknown attribute type at byte {at}: use a short name (CN, L, ST, O, OU, C, STREET, DC, UID, SN, GN, serialNumber, title, organizationIdentifier, emailAddress) or a dotted OID")]
    UnknownAttributeType {
        /// Byte offset.
        at: usize,
    },
    /// A numeric attribute type that is not a valid OID.
    #[error("distinguished name has an invalid attribute type OID at byte {at}: {problem}")]
    Oid {
        /// Byte offset.
        at: usize,
        /// What is wrong.
        problem: &'static str,
    },
    /// The value's bytes, escapes decoded, are not UTF-8.
    #[error("distinguished name value at byte {at} is not UTF-8 once its escapes are decoded")]
    NotUtf8 {
        /// Byte offset of the value.
        at: usize,
    },
    /// The value holds a character no registration may hold.
    #[error("distinguished name value at byte {at} holds {problem}")]
    Character {
        /// Byte offset of the value.
        at: usize,
        /// Which kind of character.
        problem: &'static str,
    },
    /// The value is empty (or only spaces).
    #[error("distinguished name value at byte {at} is empty")]
    EmptyValue {
        /// Byte offset of the value.
        at: usize,
    },
    /// A `#hex` value that is not one DER value.
    #[error("distinguished name value at byte {at} is not one DER-encoded value: {problem}")]
    HexValue {
        /// Byte offset of the value.
        at: usize,
        /// What is wrong.
        problem: &'static str,
    },
    /// The same attribute type twice in one RDN.
    #[error("distinguished name repeats an attribute type within one RDN at byte {at}")]
    DuplicateType {
        /// Byte offset of the repeated type.
        at: usize,
    },
}

/// How values of an attribute type compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rule {
    /// caseIgnoreMatch / caseIgnoreIA5Match.
    CaseIgnore,
    /// caseExactMatch (types this module does not know).
    CaseExact,
}

/// An attribute type this module names: its names (the first is the one
/// written back) and its OID.
struct Known {
    names: &'static [&'static str],
    arcs: &'static [u32],
}

const KNOWN: [Known; 15] = [
    Known {
        names: &["CN", "commonName"],
        arcs: &[2, 5, 4, 3],
    },
    Known {
        names: &["SN", "surname"],
        arcs: &[2, 5, 4, 4],
    },
    Known {
        names: &["serialNumber"],
        arcs: &[2, 5, 4, 5],
    },
    Known {
        names: &["C", "countryName"],
        arcs: &[2, 5, 4, 6],
    },
    Known {
        names: &["L", "localityName"],
        arcs: &[2, 5, 4, 7],
    },
    Known {
        names: &["ST", "stateOrProvinceName"],
        arcs: &[2, 5, 4, 8],
    },
    Known {
        names: &["STREET", "streetAddress"],
        arcs: &[2, 5, 4, 9],
    },
    Known {
        names: &["O", "organizationName"],
        arcs: &[2, 5, 4, 10],
    },
    Known {
        names: &["OU", "organizationalUnitName"],
        arcs: &[2, 5, 4, 11],
    },
    Known {
        names: &["title"],
        arcs: &[2, 5, 4, 12],
    },
    Known {
        names: &["GN", "givenName"],
        arcs: &[2, 5, 4, 42],
    },
    Known {
        names: &["organizationIdentifier"],
        arcs: &[2, 5, 4, 97],
    },
    Known {
        names: &["DC", "domainComponent"],
        arcs: &[0, 9, 2342, 19200300, 100, 1, 25],
    },
    Known {
        names: &["UID", "userId"],
        arcs: &[0, 9, 2342, 19200300, 100, 1, 1],
    },
    Known {
        names: &["emailAddress"],
        arcs: &[1, 2, 840, 113549, 1, 9, 1],
    },
];

fn known_by_name(name: &str) -> Option<&'static Known> {
    KNOWN
        .iter()
        .find(|k| k.names.iter().any(|n| n.eq_ignore_ascii_case(name)))
}

/// An attribute type.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AttributeType(TypeRepr);

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum TypeRepr {
    /// The arcs of the OID.
    Arcs(Vec<u32>),
    /// A certificate's OID whose encoding is not the one DER encoding of
    /// its arcs (a non-minimal or oversized subidentifier): its content
    /// octets. Never matches anything.
    Noncanonical(Vec<u8>),
}

impl AttributeType {
    /// The OID's arcs; `None` for a certificate OID that is not canonical
    /// DER (such an attribute never matches).
    pub fn arcs(&self) -> Option<&[u32]> {
        match &self.0 {
            TypeRepr::Arcs(a) => Some(a),
            TypeRepr::Noncanonical(_) => None,
        }
    }

    /// The short name this module writes for the type, if it knows one.
    pub fn name(&self) -> Option<&'static str> {
        self.known().and_then(|k| k.names.first().copied())
    }

    fn known(&self) -> Option<&'static Known> {
        let arcs = self.arcs()?;
        KNOWN.iter().find(|k| k.arcs == arcs)
    }

    fn rule(&self) -> Rule {
        if self.known().is_some() {
            Rule::CaseIgnore
        } else {
            Rule::CaseExact
        }
    }

    /// The type of a certificate attribute. The OID's content octets must
    /// be the one DER encoding of its arcs: const-oid 0.9 reads a
    /// non-minimal subidentifier (`80 03`) as the minimal one (`03`) and
    /// silently truncates a five-octet arc above 2^32 - 1, so two different
    /// encodings could read as one type (2.5.4.3, say).
    fn of_oid(oid: &ObjectIdentifier) -> Self {
        let bytes = oid.as_bytes();
        if canonical_oid(bytes) {
            Self(TypeRepr::Arcs(oid.arcs().collect()))
        } else {
            Self(TypeRepr::Noncanonical(bytes.to_vec()))
        }
    }
}

/// Whether an OID's content octets (already accepted by const-oid) are the
/// DER encoding that const-oid reads back exactly: the first two arcs in
/// one octet; then no subidentifier starting with the octet 0x80
/// (X.690 §8.19.2) and none longer than five octets, a five-octet one
/// starting at most with 0x8F (so the arc fits 32 bits).
fn canonical_oid(bytes: &[u8]) -> bool {
    let Some((first, rest)) = bytes.split_first() else {
        return false;
    };
    if *first >= 0x80 {
        return false;
    }
    let mut at_start = true;
    let mut lead = 0u8;
    let mut len = 0usize;
    for &b in rest {
        if at_start {
            if b == 0x80 {
                return false;
            }
            lead = b;
            len = 0;
        }
        len += 1;
        if len > 5 || (len == 5 && lead > 0x8F) {
            return false;
        }
        at_start = b & 0x80 == 0;
    }
    at_start
}

impl fmt::Display for AttributeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = self.name() {
            return f.write_str(name);
        }
        match &self.0 {
            TypeRepr::Arcs(arcs) => {
                for (i, arc) in arcs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    write!(f, "{arc}")?;
                }
                Ok(())
            }
            TypeRepr::Noncanonical(bytes) => {
                f.write_str("noncanonical-oid-")?;
                bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
        }
    }
}

/// An attribute value as it was written or encoded (before preparation).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttributeValue {
    /// A character string.
    Text(String),
    /// Anything else: the value's DER encoding (tag, length, contents).
    Der(Vec<u8>),
}

/// What two values are compared by: the prepared string, or DER octets.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum MatchKey {
    Text(String),
    Der(Vec<u8>),
}

/// One attribute type and value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attribute {
    attribute_type: AttributeType,
    value: AttributeValue,
    /// `None`: this value cannot be matched (see the module docs).
    key: Option<MatchKey>,
}

impl Attribute {
    /// The attribute type.
    pub fn attribute_type(&self) -> &AttributeType {
        &self.attribute_type
    }

    /// The value as written or encoded.
    pub fn value(&self) -> &AttributeValue {
        &self.value
    }

    /// Whether the value can take part in a match (its type is canonical
    /// and its string survives preparation).
    pub fn is_matchable(&self) -> bool {
        self.key.is_some() && self.attribute_type.arcs().is_some()
    }

    /// A comparable `(type, key)`, if both are matchable.
    fn comparable(&self) -> Option<(&[u32], &MatchKey)> {
        Some((self.attribute_type.arcs()?, self.key.as_ref()?))
    }
}

/// A relative distinguished name: a set of attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rdn {
    attributes: Vec<Attribute>,
}

impl Rdn {
    /// The attributes, in the order written or encoded.
    pub fn attributes(&self) -> &[Attribute] {
        &self.attributes
    }

    /// RFC 4517 RDN equality: the same set of matchable (type, value).
    fn matches(&self, other: &Rdn) -> bool {
        if self.attributes.len() != other.attributes.len() {
            return false;
        }
        fn sorted(rdn: &Rdn) -> Option<Vec<(&[u32], &MatchKey)>> {
            let mut v = rdn
                .attributes
                .iter()
                .map(Attribute::comparable)
                .collect::<Option<Vec<_>>>()?;
            v.sort();
            Some(v)
        }
        match (sorted(self), sorted(other)) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        }
    }
}

/// A distinguished name: its RDNs in X.501 order (the first is the most
/// significant, e.g. `C=GB`; the RFC 4514 string lists them the other way
/// round).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DistinguishedName {
    rdns: Vec<Rdn>,
}

impl DistinguishedName {
    /// Reads an RFC 4514 string strictly (see the module docs), as a
    /// registered `tls_client_auth_subject_dn` is read.
    ///
    /// # Errors
    /// [`DnError`] saying what is wrong and where.
    pub fn parse(rfc4514: &str) -> Result<Self, DnError> {
        if rfc4514.is_empty() {
            return Err(DnError::Empty);
        }
        if rfc4514.len() > MAX_DN_LEN {
            return Err(DnError::TooLong { max: MAX_DN_LEN });
        }
        let mut reader = Reader { s: rfc4514, pos: 0 };
        let mut rdns = Vec::new();
        loop {
            if rdns.len() == MAX_RDNS {
                return Err(DnError::TooMany {
                    what: "RDNs",
                    max: MAX_RDNS,
                });
            }
            let (rdn, more) = reader.rdn()?;
            rdns.push(rdn);
            if !more {
                break;
            }
        }
        // the string lists the last RDN of the sequence first
        rdns.reverse();
        Ok(Self { rdns })
    }

    /// A certificate's subject.
    pub fn of_subject(cert: &x509_cert::Certificate) -> Self {
        Self::from_name(&cert.tbs_certificate.subject)
    }

    /// An X.501 `Name` from a certificate.
    pub fn from_name(name: &Name) -> Self {
        let rdns = name
            .0
            .iter()
            .map(|rdn| Rdn {
                attributes: rdn
                    .0
                    .iter()
                    .map(|atv| {
                        let attribute_type = AttributeType::of_oid(&atv.oid);
                        let (value, key) = read_value(&atv.value, attribute_type.rule());
                        Attribute {
                            attribute_type,
                            value,
                            key,
                        }
                    })
                    .collect(),
            })
            .collect();
        Self { rdns }
    }

    /// The RDNs in X.501 order (most significant first).
    pub fn rdns(&self) -> &[Rdn] {
        &self.rdns
    }

    /// RFC 4517 `distinguishedNameMatch`: the same number of RDNs, in the
    /// same order, each the same set of attributes under their matching
    /// rules. An unmatchable attribute on either side means no match.
    pub fn matches(&self, other: &DistinguishedName) -> bool {
        self.rdns.len() == other.rdns.len()
            && self.rdns.iter().zip(&other.rdns).all(|(a, b)| a.matches(b))
    }

    /// Whether `self` with its RDNs in the opposite order matches
    /// `other`: the diagnosis for a DN registered in OpenSSL's one-line
    /// order.
    pub(crate) fn matches_reversed(&self, other: &DistinguishedName) -> bool {
        self.rdns.len() == other.rdns.len()
            && self
                .rdns
                .iter()
                .rev()
                .zip(&other.rdns)
                .all(|(a, b)| a.matches(b))
    }
}

/// The RFC 4514 string (most specific RDN first). Characters that need it
/// are escaped, control characters as `\XX` hex, so the string is safe to
/// log; a DER value is written `#hex`.
impl fmt::Display for DistinguishedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, rdn) in self.rdns.iter().rev().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            for (j, a) in rdn.attributes.iter().enumerate() {
                if j > 0 {
                    f.write_str("+")?;
                }
                write!(f, "{}=", a.attribute_type)?;
                match &a.value {
                    AttributeValue::Text(t) => write_escaped(f, t)?,
                    AttributeValue::Der(der) => {
                        f.write_str("#")?;
                        der.iter().try_for_each(|b| write!(f, "{b:02x}"))?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn write_escaped(f: &mut fmt::Formatter<'_>, value: &str) -> fmt::Result {
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => write!(f, "\\{c}")?,
            '#' if i == 0 => f.write_str("\\#")?,
            ' ' if i == 0 || i == last => f.write_str("\\ ")?,
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    write!(f, "\\{b:02X}")?;
                }
            }
            c => write!(f, "{c}")?,
        }
    }
    Ok(())
}

/// A certificate attribute value: its text (transcoded per the module
/// docs) or its DER, and the key it is compared by.
fn read_value(any: &Any, rule: Rule) -> (AttributeValue, Option<MatchKey>) {
    let text = match any.tag() {
        Tag::Utf8String => any
            .decode_as::<Utf8StringRef<'_>>()
            .ok()
            .map(|s| s.as_str().to_owned()),
        Tag::PrintableString => any
            .decode_as::<PrintableStringRef<'_>>()
            .ok()
            .map(|s| s.as_str().to_owned()),
        Tag::Ia5String => any
            .decode_as::<Ia5StringRef<'_>>()
            .ok()
            .map(|s| s.as_str().to_owned()),
        Tag::TeletexString => any
            .decode_as::<TeletexStringRef<'_>>()
            .ok()
            .map(|s| s.as_str().to_owned())
            .filter(|s| s.chars().all(printable_string_char)),
        Tag::BmpString => any.decode_as::<BmpString>().ok().map(|s| s.to_string()),
        _ => None,
    };
    match text {
        Some(t) => {
            let key = prepare(&t, rule).map(MatchKey::Text);
            (AttributeValue::Text(t), key)
        }
        None => match any.to_der() {
            Ok(der) => (AttributeValue::Der(der.clone()), Some(MatchKey::Der(der))),
            Err(_) => (AttributeValue::Der(Vec::new()), None),
        },
    }
}

/// The PrintableString repertoire (X.680 §41.4).
fn printable_string_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || " '()+,-./:=?".contains(c)
}

/// Characters RFC 4518 §2.2 maps to nothing or (for TAB, LF, VT, FF, CR,
/// NEL) to SPACE because they are controls or format characters; here
/// they make a value unmatchable (see the module docs).
fn invisible(c: char) -> bool {
    c.is_control()
        || c.general_category() == GeneralCategory::Format
        || tables::commonly_mapped_to_nothing(c)
        || c == '\u{FFFC}'
}

/// Code points RFC 4518 §2.4 prohibits.
fn prohibited(c: char) -> bool {
    tables::unassigned_code_point(c)
        || tables::private_use(c)
        || tables::non_character_code_point(c)
        || tables::surrogate_code(c)
        || tables::change_display_properties_or_deprecated(c)
        || tables::tagging_character(c)
        || c == '\u{FFFD}'
}

/// RFC 4518 preparation (see the module docs); `None` if the value cannot
/// be matched.
fn prepare(value: &str, rule: Rule) -> Option<String> {
    if value.chars().any(invisible) {
        return None;
    }
    let mapped = value.chars().map(|c| {
        if c.general_category_group() == GeneralCategoryGroup::Separator {
            ' '
        } else {
            c
        }
    });
    let normalized: String = match rule {
        Rule::CaseIgnore => mapped.flat_map(tables::case_fold_for_nfkc).nfkc().collect(),
        Rule::CaseExact => mapped.nfkc().collect(),
    };
    if normalized.chars().any(|c| prohibited(c) || invisible(c)) {
        return None;
    }
    let spaced = normalized
        .split(' ')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    match spaced.chars().next() {
        Some(c) if c.general_category_group() == GeneralCategoryGroup::Mark => None,
        _ => Some(spaced),
    }
}

/// The RFC 4514 reader over one string.
struct Reader<'a> {
    s: &'a str,
    pos: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
    }

    fn syntax(&self, problem: &'static str) -> DnError {
        DnError::Syntax {
            at: self.pos,
            problem,
        }
    }

    /// One RDN; `true` if a `,` follows it.
    fn rdn(&mut self) -> Result<(Rdn, bool), DnError> {
        let mut attributes: Vec<Attribute> = Vec::new();
        loop {
            self.skip_spaces();
            let type_at = self.pos;
            let attribute_type = self.attribute_type()?;
            self.skip_spaces();
            if self.peek() != Some(b'=') {
                return Err(self.syntax("expected `=` after the attribute type"));
            }
            self.pos += 1;
            self.skip_spaces();
            let (value, key) = self.value(attribute_type.rule())?;
            if attributes
                .iter()
                .any(|a| a.attribute_type == attribute_type)
            {
                return Err(DnError::DuplicateType { at: type_at });
            }
            if attributes.len() == MAX_RDN_ATTRIBUTES {
                return Err(DnError::TooMany {
                    what: "attributes in one RDN",
                    max: MAX_RDN_ATTRIBUTES,
                });
            }
            attributes.push(Attribute {
                attribute_type,
                value,
                key: Some(key),
            });
            self.skip_spaces();
            match self.peek() {
                Some(b'+') => self.pos += 1,
                Some(b',') => {
                    self.pos += 1;
                    return Ok((Rdn { attributes }, true));
                }
                None => return Ok((Rdn { attributes }, false)),
                Some(_) => return Err(self.syntax("expected `,`, `+` or the end after a value")),
            }
        }
    }

    /// `descr`, `numericoid` or `OID.numericoid`.
    fn attribute_type(&mut self) -> Result<AttributeType, DnError> {
        let at = self.pos;
        match self.peek() {
            Some(b) if b.is_ascii_alphabetic() => {
                let start = self.pos;
                while self
                    .peek()
                    .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'-')
                {
                    self.pos += 1;
                }
                let name = self.s.get(start..self.pos).unwrap_or_default();
                if name.eq_ignore_ascii_case("oid") && self.peek() == Some(b'.') {
                    self.pos += 1;
                    return self.numeric_oid();
                }
                known_by_name(name)
                    .map(|k| AttributeType(TypeRepr::Arcs(k.arcs.to_vec())))
                    .ok_or(DnError::UnknownAttributeType { at })
            }
            Some(b) if b.is_ascii_digit() => self.numeric_oid(),
            _ => Err(self.syntax("expected an attribute type")),
        }
    }

    fn numeric_oid(&mut self) -> Result<AttributeType, DnError> {
        let at = self.pos;
        let oid = |problem| DnError::Oid { at, problem };
        let mut arcs: Vec<u32> = Vec::new();
        loop {
            let start = self.pos;
            let mut arc: u32 = 0;
            while let Some(d) = self.peek().filter(u8::is_ascii_digit) {
                arc = arc
                    .checked_mul(10)
                    .and_then(|a| a.checked_add(u32::from(d - b'0')))
                    .ok_or(oid("an arc is larger than 4294967295"))?;
                self.pos += 1;
            }
            match self.pos - start {
                0 => return Err(oid("an arc is empty")),
                1 => {}
                _ if self.s.as_bytes().get(start) == Some(&b'0') => {
                    return Err(oid("an arc has a leading zero"))
                }
                _ => {}
            }
            if arcs.len() == MAX_OID_ARCS {
                return Err(oid("it has more than 20 arcs"));
            }
            arcs.push(arc);
            if self.peek() == Some(b'.') {
                self.pos += 1;
            } else {
                break;
            }
        }
        match arcs.as_slice() {
            [] | [_] => Err(oid("an OID has at least two arcs")),
            [first, ..] if *first > 2 => Err(oid("the first arc must be 0, 1 or 2")),
            [_, second, ..] if *second > 39 => {
                Err(oid("a second arc above 39 cannot appear in a certificate"))
            }
            _ => Ok(AttributeType(TypeRepr::Arcs(arcs))),
        }
    }

    /// A value up to the next unescaped `,` or `+` (or the end), without
    /// insignificant spaces, with the key it is compared by.
    fn value(&mut self, rule: Rule) -> Result<(AttributeValue, MatchKey), DnError> {
        let at = self.pos;
        if self.peek() == Some(b'#') {
            return self.hex_value(rule);
        }
        let mut bytes: Vec<u8> = Vec::new();
        // length of `bytes` up to its last significant (non-space or
        // escaped) byte: unescaped trailing spaces are insignificant
        let mut significant = 0;
        loop {
            match self.peek() {
                None | Some(b',') | Some(b'+') => break,
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(
                            c @ (b'\\' | b'"' | b'+' | b',' | b';' | b'<' | b'>' | b' ' | b'#'
                            | b'='),
                        ) => {
                            bytes.push(c);
                            self.pos += 1;
                        }
                        Some(h) if h.is_ascii_hexdigit() => {
                            let pair = self
                                .s
                                .get(self.pos..self.pos + 2)
                                .filter(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
                                .ok_or(self.syntax("`\\` must be followed by two hex digits or a special character"))?;
                            let byte = u8::from_str_radix(pair, 16)
                                .map_err(|_| self.syntax("invalid hex escape"))?;
                            bytes.push(byte);
                            self.pos += 2;
                        }
                        _ => {
                            return Err(self.syntax(
                                "`\\` must be followed by two hex digits or a special character",
                            ))
                        }
                    }
                    significant = bytes.len();
                }
                Some(b'"' | b';' | b'<' | b'>') => {
                    return Err(self.syntax("`\"`, `;`, `<` and `>` must be escaped in a value"))
                }
                Some(b) => {
                    bytes.push(b);
                    self.pos += 1;
                    if b != b' ' {
                        significant = bytes.len();
                    }
                }
            }
        }
        bytes.truncate(significant);
        let text = String::from_utf8(bytes).map_err(|_| DnError::NotUtf8 { at })?;
        if text.contains('\0') {
            return Err(DnError::Character {
                at,
                problem: "a NUL character",
            });
        }
        if text.chars().any(char::is_control) {
            return Err(DnError::Character {
                at,
                problem: "a control character",
            });
        }
        let key = prepared(&text, rule, at)?;
        Ok((AttributeValue::Text(text), key))
    }

    /// `#` followed by the hex of one DER value.
    fn hex_value(&mut self, rule: Rule) -> Result<(AttributeValue, MatchKey), DnError> {
        let at = self.pos;
        self.pos += 1;
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_hexdigit()) {
            self.pos += 1;
        }
        let hex = self.s.get(start..self.pos).unwrap_or_default();
        let hex_error = |problem| DnError::HexValue { at, problem };
        if hex.is_empty() || !hex.len().is_multiple_of(2) {
            return Err(hex_error(
                "`#` starts a value of hex digit pairs; escape a leading `#` as `\\#`",
            ));
        }
        if hex.len() > 2 * MAX_HEX_VALUE_LEN {
            return Err(hex_error("the value is longer than 1024 bytes"));
        }
        let der = base16ct::mixed::decode_vec(hex).map_err(|_| hex_error("invalid hex digits"))?;
        let any = Any::from_der(&der).map_err(|_| hex_error("not exactly one DER value"))?;
        match read_value(&any, rule) {
            (AttributeValue::Text(t), _) => {
                if t.chars().any(char::is_control) {
                    return Err(DnError::Character {
                        at,
                        problem: "a control character",
                    });
                }
                prepared(&t, rule, at).map(|key| (AttributeValue::Text(t), key))
            }
            (value @ AttributeValue::Der(_), Some(key)) => Ok((value, key)),
            (AttributeValue::Der(_), None) => Err(hex_error("not exactly one DER value")),
        }
    }
}

/// The key of a registered text value, or why it cannot be registered.
fn prepared(text: &str, rule: Rule, at: usize) -> Result<MatchKey, DnError> {
    match prepare(text, rule) {
        Some(p) if p.is_empty() => Err(DnError::EmptyValue { at }),
        Some(p) => Ok(MatchKey::Text(p)),
        None => Err(DnError::Character {
            at,
            problem: "a character RFC 4518 does not let a value hold (a format or invisible character, one unassigned in Unicode 3.2, private use, or a leading combining mark)",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_oid_encodings() {
        // 2.5.4.3
        assert!(canonical_oid(&[0x55, 0x04, 0x03]));
        // 1.2.840.113549.1.9.1
        assert!(canonical_oid(&[
            0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01
        ]));
        // the largest arc that fits 32 bits, and one more
        assert!(canonical_oid(&[0x55, 0x04, 0x8f, 0xff, 0xff, 0xff, 0x7f]));
        assert!(!canonical_oid(&[0x55, 0x04, 0x90, 0x80, 0x80, 0x80, 0x03]));
        // non-minimal subidentifier, truncated subidentifier, long first
        assert!(!canonical_oid(&[0x55, 0x04, 0x80, 0x03]));
        assert!(!canonical_oid(&[0x55, 0x04, 0x83]));
        assert!(!canonical_oid(&[0x88, 0x37, 0x03]));
        assert!(!canonical_oid(&[]));
    }

    #[test]
    fn preparation() {
        let ci = |s| prepare(s, Rule::CaseIgnore);
        assert_eq!(ci("  Open   Banking "), Some("open banking".into()));
        assert_eq!(ci("OPEN\u{00A0}BANKING"), Some("open banking".into()));
        assert_eq!(ci("\u{FF21}bc"), Some("abc".into()));
        assert_eq!(ci("Stra\u{00DF}e"), Some("strasse".into()));
        assert_eq!(prepare("ABC", Rule::CaseExact), Some("ABC".into()));
        for invisible in ["a\u{200B}b", "a\u{00AD}b", "a\tb", "a\nb", "a\u{FEFF}"] {
            assert_eq!(ci(invisible), None, "{invisible:?}");
        }
        assert_eq!(ci("\u{0301}a"), None);
        assert_eq!(ci("\u{E000}"), None);
    }
}
