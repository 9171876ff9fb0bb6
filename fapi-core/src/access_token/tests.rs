//! The one-pass claim reader against the general one (see
//! [`reference`]): the same outcome on every document.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;

fn agree(payload: &[u8]) -> String {
    match super::reference::readers_agree(payload) {
        Ok(outcome) => outcome,
        Err(disagreement) => panic!("{disagreement}"),
    }
}

const GOOD: &str = r#"{"iss":"https://bank.example","sub":"alice","aud":"https://api.bank.example","client_id":"tpp-a","scope":"accounts","iat":1900000000,"exp":1900000300,"jti":"j-1","cnf":{"x5t#S256":"2Bd1GiFqtFGJ3AZ-AgjMRYSTSFq8Kdrtl7ocmyqu2kY"},"consent_id":"aac-1"}"#;

#[test]
fn a_genuine_payload_reads_the_same() {
    assert!(agree(GOOD.as_bytes()).starts_with("Ok("));
}

/// Documents chosen to reach each rule of either reader.
#[test]
fn hand_picked_documents_read_the_same() {
    let docs = [
        "",
        "{}",
        "[]",
        "[1] x",
        "\"x\"",
        "1",
        "null",
        "{\"a\":1}x",
        r#"[{"a":1,"a":2}]"#,
        r#"{"iss":"a","iss":"b"}"#,
        r#"{"iss":"a","i\u0073s":"b"}"#,
        r#"{"x":1,"x":2}"#,
        r#"{"cnf":{"jkt":"a","jkt":"b"}}"#,
        r#"{"cnf":{"o":{"p":1,"p":2}}}"#,
        r#"{"aud":["a",{"b":1,"b":2}]}"#,
        r#"{"exp":"1900000300"}"#,
        r#"{"exp":1900000300.0}"#,
        r#"{"exp":1e9}"#,
        r#"{"exp":-1}"#,
        r#"{"exp":18446744073709551615}"#,
        r#"{"exp":253402300800}"#,
        r#"{"exp":1900000300,"iat":"x"}"#,
        r#"{"exp":1900000300,"iat":1900000000,"iss":5}"#,
        r#"{"exp":1900000300,"iat":1900000000,"iss":"https://bank.example","aud":[]}"#,
        r#"{"exp":1900000300,"iat":1900000000,"iss":"https://bank.example","aud":["x","https://api.bank.example"],"sub":"s","client_id":"c","jti":"j"}"#,
        r#"{"exp":1900000300,"iat":1900000000,"iss":"https://bank.example","aud":"https://api.bank.example","sub":"s","client_id":"c","jti":"j","cnf":[]}"#,
        r#"{"exp":1900000300,"iat":1900000000,"iss":"https://bank.example","aud":"https://api.bank.example","sub":"s","client_id":"c","jti":"j","cnf":{"jkt":"2Bd1GiFqtFGJ3AZ-AgjMRYSTSFq8Kdrtl7ocmyqu2kY"}}"#,
        r#"{"exp":1900000300,"iat":1900000000,"iss":"https://bank.example","aud":"https://api.bank.example","sub":"s","client_id":"c","jti":"j","cnf":{"jkt":5}}"#,
        r#"{"exp":1900000300,"iat":1900000000,"iss":"https://bank.example","aud":"https://api.bank.example","sub":"s","client_id":"c","jti":"j","scope":7}"#,
        r#"{"exp":1900000300,"iat":1900000000,"iss":"https://bank.example","aud":"https://api.bank.example","sub":"s","client_id":"","jti":"j"}"#,
        r#"{"a":[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]}"#,
        r#"{"a":[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]}"#,
        r#"{"cnf":{"a":[[[[[[[[[[[[[[1]]]]]]]]]]]]]]}}"#,
        r#"{"cnf":{"a":[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]}}"#,
        "{\"sub\":\"\\ud800\"}",
        "{\"sub\":\"\u{e9}\\n\"}",
    ];
    for d in docs {
        agree(d.as_bytes());
    }
    // a member name repeated past the short list (the hash set takes over)
    let many: Vec<String> = (0..40).map(|i| format!("\"m{i}\":{i}")).collect();
    agree(format!("{{{}}}", many.join(",")).as_bytes());
    agree(format!("{{{},\"m3\":0}}", many.join(",")).as_bytes());
    agree(format!("{{{},\"m39\":0}}", many.join(",")).as_bytes());
}

fn member_name() -> impl Strategy<Value = String> {
    proptest::sample::select(vec![
        "iss",
        "sub",
        "aud",
        "client_id",
        "jti",
        "scope",
        "consent_id",
        "exp",
        "nbf",
        "iat",
        "cnf",
        "x5t#S256",
        "jkt",
        "other",
        "i\\u0073s",
    ])
    .prop_map(str::to_owned)
}

fn json_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("\"https://bank.example\"".to_owned()),
        Just("\"https://api.bank.example\"".to_owned()),
        Just("\"2Bd1GiFqtFGJ3AZ-AgjMRYSTSFq8Kdrtl7ocmyqu2kY\"".to_owned()),
        Just("\"accounts payments\"".to_owned()),
        "[a-z ]{0,6}".prop_map(|s| format!("\"{s}\"")),
        (1_899_999_000i64..1_900_001_000).prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        Just("1.5".to_owned()),
        Just("true".to_owned()),
        Just("null".to_owned()),
    ];
    leaf.prop_recursive(18, 64, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4)
                .prop_map(|v| format!("[{}]", v.join(","))),
            proptest::collection::vec((member_name(), inner), 0..4).prop_map(|m| {
                let members: Vec<String> =
                    m.into_iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Arbitrary documents over the claim names, any types, repeats and
    /// nesting beyond the depth limit.
    #[test]
    fn readers_agree_on_generated_documents(
        members in proptest::collection::vec((member_name(), json_value()), 0..14)
    ) {
        let members: Vec<String> =
            members.into_iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        agree(format!("{{{}}}", members.join(",")).as_bytes());
    }

    /// The genuine payload with one member replaced or one byte changed.
    #[test]
    fn readers_agree_on_mutations_of_a_genuine_payload(
        name in member_name(),
        value in json_value(),
        position in 0usize..400,
        byte in any::<u8>(),
    ) {
        let replaced = GOOD.replacen(
            &format!("\"{name}\":"),
            &format!("\"{name}\":{value},\"_{name}\":"),
            1,
        );
        agree(replaced.as_bytes());
        let mut bytes = GOOD.as_bytes().to_vec();
        let i = position % bytes.len();
        bytes[i] = byte;
        agree(&bytes);
    }
}
