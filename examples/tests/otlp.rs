//! OpenTelemetry export (`otlp` in the configuration): an in-process OTLP
//! receiver gets the bank's spans over OTLP/HTTP, and the spans of one
//! flow, from PAR through the customer's authorization and the token to
//! each resource call, are one trace carrying the consent id, the TPP and
//! the outcome; another flow is another trace. (Its own test binary: the
//! tracing subscriber is global to the process.)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::routing::post;
use common::TempDir;
use fapi_examples::bank::telemetry::{install, OtlpConfig};
use fapi_examples::platform::Platform;
use fapi_examples::tpp::{ScriptedCustomer, Tpp};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::json;
use sha2::{Digest, Sha256};

const AISP: &str = "/open-banking/v3.1/aisp";

/// An OTLP/HTTP traces receiver on loopback; returns its URL and what it
/// received.
async fn receiver() -> (String, Arc<Mutex<Vec<Span>>>) {
    let spans = Arc::new(Mutex::new(Vec::new()));
    let store = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let store = store.clone();
            async move {
                let request = ExportTraceServiceRequest::decode(body).unwrap();
                for rs in request.resource_spans {
                    let service = rs
                        .resource
                        .iter()
                        .flat_map(|r| &r.attributes)
                        .find(|a| a.key == "service.name")
                        .and_then(|a| a.value.as_ref()?.value.clone());
                    assert_eq!(service, Some(Any::StringValue("fapi-bank-test".into())));
                    for ss in rs.scope_spans {
                        store.lock().unwrap().extend(ss.spans);
                    }
                }
                (
                    [("content-type", "application/x-protobuf")],
                    ExportTraceServiceResponse::default().encode_to_vec(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/v1/traces"), spans)
}

fn attribute(span: &Span, key: &str) -> Option<Any> {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref()?.value.clone())
}

fn text(span: &Span, key: &str) -> Option<String> {
    match attribute(span, key)? {
        Any::StringValue(s) => Some(s),
        _ => None,
    }
}

/// A complete account-information flow of `tpp` for alice; returns the
/// consent id.
async fn flow(p: &Platform, tpp: &Tpp) -> String {
    let api = &p.bank.api_base;
    let cc = tpp.client_credentials("accounts").await.unwrap();
    let r = tpp
        .post_json(
            &format!("{api}{AISP}/account-access-consents"),
            &cc,
            &json!({ "Data": { "Permissions": ["ReadAccountsDetail", "ReadBalances"] }, "Risk": {} }),
            None,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201);
    let consent = r.json()["Data"]["ConsentId"].as_str().unwrap().to_owned();
    let pending = tpp
        .push_authorization(&consent, "openid accounts")
        .await
        .unwrap();
    let location = ScriptedCustomer {
        browser: &p.browser,
        username: "alice",
        password: "alice-password",
    }
    .authorize(&pending.authorization_url, &["acc-1"], true)
    .await
    .unwrap();
    let tokens = tpp.complete(&pending, &location).await.unwrap();
    for path in ["/accounts", "/accounts/acc-1/balances"] {
        let r = tpp
            .get(&format!("{api}{AISP}{path}"), &tokens.access_token)
            .await
            .unwrap();
        assert_eq!(r.status, 200);
    }
    consent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_flow_is_one_trace_with_consent_tpp_and_outcome_on_each_span() {
    let (endpoint, received) = receiver().await;
    // unusable configurations are refused before anything is installed
    for (bad, why) in [
        ("https://collector.example/v1/traces", "needs ca_file"),
        ("ftp://collector.example/v1/traces", "is not http or https"),
        ("not a url", "relative URL"),
    ] {
        let e = install(Some(&OtlpConfig {
            endpoint: bad.into(),
            service_name: "fapi-bank-test".into(),
            ca_file: None,
            timeout_ms: 5_000,
        }))
        .unwrap_err();
        assert!(e.to_string().contains(why), "{bad}: {e}");
    }
    let telemetry = install(Some(&OtlpConfig {
        endpoint,
        service_name: "fapi-bank-test".into(),
        ca_file: None,
        timeout_ms: 5_000,
    }))
    .unwrap();
    assert!(telemetry.exports_traces());

    let dir = TempDir::new("otlp");
    let p = Platform::start(&dir.0, &["tpp-a", "tpp-b"], |_| {})
        .await
        .unwrap();
    let first = flow(&p, &p.tpps[0]).await;
    let second = flow(&p, &p.tpps[1]).await;
    let telemetry = Arc::new(telemetry);
    let t = telemetry.clone();
    tokio::task::spawn_blocking(move || t.flush())
        .await
        .unwrap();

    let spans = received.lock().unwrap().clone();
    let of = |consent: &str| -> Vec<Span> {
        spans
            .iter()
            .filter(|s| text(s, "consent_id").as_deref() == Some(consent))
            .cloned()
            .collect()
    };
    for (consent, tpp) in [(&first, "tpp-a"), (&second, "tpp-b")] {
        let flow = of(consent);
        let routes: BTreeSet<String> = flow.iter().filter_map(|s| text(s, "route")).collect();
        for expected in [
            "/open-banking/v3.1/aisp/account-access-consents",
            "/par",
            "/authorize",
            "/token",
            "/open-banking/v3.1/aisp/accounts",
            "/open-banking/v3.1/aisp/accounts/{id}/balances",
        ] {
            assert!(
                routes.contains(expected),
                "{expected} missing from {routes:?}"
            );
        }
        // one trace, the one derived from the consent id, under the flow's
        // parent
        let digest = Sha256::new()
            .chain_update(b"fapi-flow-trace:")
            .chain_update(consent.as_bytes())
            .finalize();
        let traces: BTreeMap<Vec<u8>, usize> = flow.iter().fold(BTreeMap::new(), |mut m, s| {
            *m.entry(s.trace_id.clone()).or_default() += 1;
            m
        });
        assert_eq!(traces.len(), 1, "{consent}: {traces:?}");
        assert_eq!(flow[0].trace_id, digest[..16].to_vec());
        for s in &flow {
            assert_eq!(s.parent_span_id, digest[16..24].to_vec(), "{}", s.name);
            assert_eq!(
                text(s, "client_id").as_deref(),
                Some(tpp),
                "{:?}",
                text(s, "route")
            );
            assert!(
                matches!(attribute(s, "outcome"), Some(Any::IntValue(200..=399))),
                "{:?}: {:?}",
                text(s, "route"),
                attribute(s, "outcome")
            );
        }
    }
    // the other flow is another trace
    assert_ne!(of(&first)[0].trace_id, of(&second)[0].trace_id);
    // a request without a consent (discovery) is a trace of its own
    let discovery: Vec<&Span> = spans
        .iter()
        .filter(|s| text(s, "route").as_deref() == Some("/.well-known/openid-configuration"))
        .collect();
    assert!(!discovery.is_empty());
    assert!(discovery
        .iter()
        .all(|d| d.parent_span_id.is_empty() && d.trace_id != of(&first)[0].trace_id));

    p.bank.stop().await;
    tokio::task::spawn_blocking(move || Arc::into_inner(telemetry).unwrap().shutdown())
        .await
        .unwrap();
}
