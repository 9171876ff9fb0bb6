//! The one-pass header reader against the reader it replaced (see
//! [`header_readers_agree`]): same header or same error on every
//! document.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;

fn agree(bytes: &[u8]) {
    if let Err(disagreement) = super::header_readers_agree(bytes) {
        panic!("{disagreement}");
    }
}

#[test]
fn hand_picked_headers_read_the_same() {
    for h in [
        r#"{"alg":"PS256","kid":"k","typ":"at+jwt"}"#,
        r#"{"alg":"PS256","b64":false,"crit":["b64"],"http://openbanking.org.uk/iat":1}"#,
        r#"{"alg":"PS256","crit":["b64"]}"#,
        r#"{"alg":"PS256","crit":[]}"#,
        r#"{"alg":"PS256","crit":"b64","b64":false}"#,
        r#"{"alg":"PS256","crit":["x","x"],"x":1}"#,
        r#"{"alg":"PS256","crit":[""],"":1}"#,
        r#"{"alg":"PS256","crit":[1]}"#,
        r#"{"alg":"PS256","crit":["crit"]}"#,
        r#"{"alg":"PS256","alg":"none"}"#,
        r#"{"alg":"PS256","\u0061lg":"none"}"#,
        r#"{"alg":5}"#,
        r#"{"kid":"k"}"#,
        r#"{"alg":"PS256","kid":7}"#,
        r#"{"alg":"PS256","typ":null}"#,
        r#"{"alg":"PS256","cty":"JWT"}"#,
        r#"{"alg":"PS256","cty":7}"#,
        r#"{"alg":"PS256","cty":"json","cty":"JWT"}"#,
        r#"{"alg":"PS256","x5c":["a"],"jwk":{}}"#,
        r#"{"jku":"https://x","alg":7}"#,
        r#"{"alg":"PS256","x":{"y":1,"y":2}}"#,
        r#"{"alg":"PS256","x":[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]}"#,
        r#"{"alg":"PS256","x":[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]}"#,
        r#"{"alg":"PS256","crit":[[[[[[[[[[[[[[["x"]]]]]]]]]]]]]]]}"#,
        "[]",
        "[{\"a\":1,\"a\":1}]",
        "{} x",
        "",
        "{\"alg\":\"PS\\u0032\"}",
    ] {
        agree(h.as_bytes());
    }
    let many: Vec<String> = (0..40).map(|i| format!("\"m{i}\":{i}")).collect();
    agree(format!("{{\"alg\":\"ES256\",{}}}", many.join(",")).as_bytes());
    agree(format!("{{\"alg\":\"ES256\",{},\"m7\":1}}", many.join(",")).as_bytes());
    agree(
        format!(
            "{{\"alg\":\"ES256\",\"crit\":[\"m39\"],{}}}",
            many.join(",")
        )
        .as_bytes(),
    );
}

fn name() -> impl Strategy<Value = String> {
    proptest::sample::select(vec![
        "alg",
        "kid",
        "typ",
        "cty",
        "crit",
        "b64",
        "jwk",
        "x5c",
        "http://openbanking.org.uk/iat",
        "x",
        "",
    ])
    .prop_map(str::to_owned)
}

fn value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("\"PS256\"".to_owned()),
        Just("\"b64\"".to_owned()),
        Just("\"x\"".to_owned()),
        Just("\"\"".to_owned()),
        Just("false".to_owned()),
        Just("1".to_owned()),
        Just("null".to_owned()),
    ];
    leaf.prop_recursive(17, 64, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4)
                .prop_map(|v| format!("[{}]", v.join(","))),
            proptest::collection::vec((name(), inner), 0..3).prop_map(|m| {
                let m: Vec<String> = m.into_iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                format!("{{{}}}", m.join(","))
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn readers_agree_on_generated_headers(
        members in proptest::collection::vec((name(), value()), 0..8)
    ) {
        let m: Vec<String> = members.into_iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        agree(format!("{{{}}}", m.join(",")).as_bytes());
    }
}
