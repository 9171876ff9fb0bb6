//! The RFC 4514 reader and RFC 4517 `distinguishedNameMatch` on their own:
//! what is accepted writes back to a string that reads the same; matching
//! is reflexive, blind to attribute order inside an RDN and to case and
//! insignificant spaces, and sees RDN order and grouping.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use fapi_mtls_binding::dn::{AttributeValue, DnError};
use fapi_mtls_binding::DistinguishedName;
use proptest::prelude::*;

fn dn(s: &str) -> DistinguishedName {
    DistinguishedName::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

#[test]
fn accessors_read_the_rdns_in_x501_order() {
    let d = dn("CN=Y+OU=X,O=Zed\\, Ltd,C=#13024742");
    let rdns = d.rdns();
    assert_eq!(rdns.len(), 3);
    // X.501 order: the last RDN of the string first
    let first = &rdns[0].attributes()[0];
    assert_eq!(first.attribute_type().name(), Some("C"));
    assert_eq!(first.attribute_type().arcs(), Some([2, 5, 4, 6].as_slice()));
    // a #hex PrintableString reads as its text
    assert_eq!(first.value(), &AttributeValue::Text("GB".into()));
    assert_eq!(
        rdns[1].attributes()[0].value(),
        &AttributeValue::Text("Zed, Ltd".into())
    );
    let last: Vec<_> = rdns[2]
        .attributes()
        .iter()
        .map(|a| a.attribute_type().to_string())
        .collect();
    assert_eq!(last, ["CN", "OU"]);
    assert!(rdns[2].attributes().iter().all(|a| a.is_matchable()));
    // and written back the RFC 4514 way
    assert_eq!(d.to_string(), "CN=Y+OU=X,O=Zed\\, Ltd,C=GB");
}

#[test]
fn unknown_types_are_numeric_and_compare_exactly() {
    let d = dn("1.3.6.1.4.1.311.60.2.1.3=GB,CN=a");
    assert_eq!(d.to_string(), "1.3.6.1.4.1.311.60.2.1.3=GB,CN=a");
    assert!(d.matches(&dn("1.3.6.1.4.1.311.60.2.1.3=GB,CN=A")));
    // caseExactMatch for a type this crate has no rule for
    assert!(!d.matches(&dn("1.3.6.1.4.1.311.60.2.1.3=gb,CN=a")));
    // a non-string DER value compares as octets
    let der = dn("1.2.3.4=#020101");
    assert_eq!(
        der.rdns()[0].attributes()[0].value(),
        &AttributeValue::Der(vec![2, 1, 1])
    );
    assert!(der.matches(&dn("1.2.3.4=#020101")));
    assert!(!der.matches(&dn("1.2.3.4=#020102")));
}

#[test]
fn errors_say_where_and_what() {
    assert_eq!(
        DistinguishedName::parse("CN=a,O=b;c").unwrap_err(),
        DnError::Syntax {
            at: 8,
            problem: "`\"`, `;`, `<` and `>` must be escaped in a value"
        }
    );
    assert_eq!(
        DistinguishedName::parse("CN=a,2.5.04.3=x").unwrap_err(),
        DnError::Oid {
            at: 5,
            problem: "an arc has a leading zero"
        }
    );
    assert_eq!(
        DistinguishedName::parse("CN=a,O=\\C3\\28").unwrap_err(),
        DnError::NotUtf8 { at: 7 }
    );
    assert_eq!(
        DistinguishedName::parse("CN=a+cn=b").unwrap_err(),
        DnError::DuplicateType { at: 5 }
    );
    assert_eq!(DistinguishedName::parse("Surname=x").unwrap(), dn("SN=x"));
    assert_eq!(
        DistinguishedName::parse("foo=x").unwrap_err(),
        DnError::UnknownAttributeType { at: 0 }
    );
}

/// Values: letters, digits, spaces and the characters that need escapes.
fn value() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 ,+;<>\"\\\\#=éß\u{00A0}]{1,12}".prop_filter("not only spaces", |v| {
        !v.chars().all(|c| c == ' ' || c == '\u{00A0}')
    })
}

fn escape(v: &str) -> String {
    let mut out = String::new();
    let n = v.chars().count();
    for (i, c) in v.chars().enumerate() {
        match c {
            ',' | '+' | ';' | '<' | '>' | '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == n - 1 => out.push_str("\\ "),
            c => out.push(c),
        }
    }
    out
}

fn attribute_type() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "CN",
        "cn",
        "O",
        "OU",
        "C",
        "L",
        "ST",
        "DC",
        "UID",
        "serialNumber",
        "organizationIdentifier",
        "2.5.4.3",
        "OID.2.5.4.10",
        "1.2.3.4",
    ])
}

/// RDNs of distinct types, each with an escaped value.
fn rdns() -> impl Strategy<Value = Vec<Vec<(&'static str, String)>>> {
    prop::collection::vec(
        prop::collection::vec((attribute_type(), value()), 1..3).prop_filter(
            "distinct types in one RDN",
            |rdn| {
                let mut seen: Vec<String> = Vec::new();
                rdn.iter().all(|(t, _)| {
                    let canonical = dn(&format!("{t}=x")).rdns()[0].attributes()[0]
                        .attribute_type()
                        .to_string();
                    let fresh = !seen.contains(&canonical);
                    seen.push(canonical);
                    fresh
                })
            },
        ),
        1..5,
    )
}

fn write(rdns: &[Vec<(&str, String)>], sep: &str) -> String {
    rdns.iter()
        .map(|rdn| {
            rdn.iter()
                .map(|(t, v)| format!("{t}={}", escape(v)))
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect::<Vec<_>>()
        .join(sep)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// What the reader accepts, it writes back as a string that reads to
    /// the same name, which matches the original.
    #[test]
    fn accepted_dns_round_trip(rdns in rdns()) {
        let s = write(&rdns, ",");
        let parsed = DistinguishedName::parse(&s);
        prop_assume!(parsed.is_ok());
        let parsed = parsed.unwrap();
        let again = DistinguishedName::parse(&parsed.to_string()).unwrap();
        prop_assert_eq!(&again, &parsed);
        prop_assert!(again.matches(&parsed));
        // spaces around separators are insignificant
        prop_assert_eq!(DistinguishedName::parse(&write(&rdns, " , ")).unwrap(), parsed);
    }

    /// Any string: never a panic, and every accepted one round-trips.
    #[test]
    fn any_accepted_string_round_trips(s in "[a-zA-Z0-9=,+ .\\\\#\"<>;éA-F]{0,40}") {
        if let Ok(parsed) = DistinguishedName::parse(&s) {
            prop_assert_eq!(DistinguishedName::parse(&parsed.to_string()).unwrap(), parsed);
        }
    }

    #[test]
    fn matching_is_symmetric_and_blind_to_attribute_order_within_an_rdn(rdns in rdns()) {
        let s = write(&rdns, ",");
        prop_assume!(DistinguishedName::parse(&s).is_ok());
        let original = dn(&s);
        let shuffled: Vec<Vec<(&str, String)>> =
            rdns.iter().map(|rdn| rdn.iter().rev().cloned().collect()).collect();
        prop_assert!(dn(&write(&shuffled, ",")).matches(&original));
        let reversed: Vec<Vec<(&str, String)>> = rdns.iter().rev().cloned().collect();
        let r = dn(&write(&reversed, ","));
        prop_assert_eq!(r.matches(&original), original.matches(&r));
    }

    #[test]
    fn case_and_insignificant_spaces_do_not_change_a_known_value(v in "[a-zA-Z0-9]{1,8}( [a-zA-Z0-9]{1,8}){0,3}") {
        let a = dn(&format!("CN={v},O=x"));
        let upper = dn(&format!("CN={},O=x", v.to_uppercase()));
        let spaced = dn(&format!("CN= {}  ,O=x", v.replace(' ', "   ")));
        prop_assert!(a.matches(&upper));
        prop_assert!(a.matches(&spaced));
    }
}

#[test]
fn grouping_is_significant() {
    let split = dn("CN=a,OU=b,O=c");
    let grouped = dn("CN=a+OU=b,O=c");
    assert!(!split.matches(&grouped));
    assert!(!grouped.matches(&split));
    assert!(grouped.matches(&dn("OU=b+CN=a,O=c")));
    let merged_other = dn("CN=a,OU=b+O=c");
    assert!(!split.matches(&merged_other));
}
