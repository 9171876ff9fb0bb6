//! What an operator loads as is (`examples/ops/`): the Prometheus alerting
//! rules and the Grafana dashboard name only metrics the bank exports, and
//! the bank exports (and describes) every metric its code emits, from the
//! first scrape. (`promtool check rules` and `promtool test rules` run in
//! CI.)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use common::TempDir;
use fapi_core::{Clock, SystemClock};
use fapi_examples::bank::{build, BankConfig, MetricKind, EXPORTED};
use fapi_examples::pki::DevPki;
use tower::ServiceExt;

/// Every `fapi_…` name in `text`.
fn names_in(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("fapi_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out
}

/// `/metrics` of a freshly built bank, as the admin listener serves it.
async fn scrape() -> String {
    let dir = TempDir::new("ops");
    let provider = fapi_core::crypto::default_provider();
    DevPki::generate(&dir.0, &*provider, &["tpp-a"], SystemClock.now()).unwrap();
    let config = BankConfig::development(&dir.0);
    let apps = build(
        &config,
        Arc::new(SystemClock),
        "https://localhost:1",
        "https://localhost:2",
    )
    .unwrap();
    let r = apps
        .admin
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    String::from_utf8(
        axum::body::to_bytes(r.into_body(), 1 << 22)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap()
}

/// `(name, kind)` of every `# TYPE` line.
fn typed(scrape: &str) -> BTreeSet<(String, String)> {
    scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(n, k)| (n.to_owned(), k.to_owned()))
        .collect()
}

#[tokio::test]
async fn every_declared_metric_is_exported_with_help_from_the_first_scrape() {
    let text = scrape().await;
    let types = typed(&text);
    for (name, kind, _) in EXPORTED {
        let kind = match kind {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        };
        assert!(
            types.contains(&((*name).to_owned(), kind.to_owned())),
            "{name} ({kind}) missing:\n{text}"
        );
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} has no help"
        );
    }
}

#[tokio::test]
async fn the_alert_rules_and_the_dashboard_name_only_exported_metrics() {
    let text = scrape().await;
    let exported: BTreeSet<String> = typed(&text).into_iter().map(|(n, _)| n).collect();
    let histograms: BTreeSet<String> = typed(&text)
        .into_iter()
        .filter(|(_, k)| k == "histogram")
        .map(|(n, _)| n)
        .collect();
    let ops = concat!(env!("CARGO_MANIFEST_DIR"), "/ops");
    for file in [
        "prometheus/fapi-alerts.yml",
        "prometheus/fapi-alerts.test.yml",
        "grafana/fapi-bank.json",
    ] {
        let named = names_in(&std::fs::read_to_string(format!("{ops}/{file}")).unwrap());
        assert!(!named.is_empty(), "{file} names no metric");
        for name in named {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|b| histograms.contains(*b)))
                .unwrap_or(&name);
            assert!(
                exported.contains(base),
                "{file} names {name}, which the bank does not export"
            );
        }
    }
}

/// The twin of the table: every metric name the bank's code emits is in
/// it (so it is described and present from the first scrape).
#[test]
fn every_metric_the_code_emits_is_declared() {
    let declared: BTreeSet<&str> = EXPORTED.iter().map(|(n, _, _)| *n).collect();
    // every source file of the bank, its submodule directories included
    let mut dirs = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/bank"
    ))];
    let mut files = Vec::new();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    assert!(
        files.iter().any(|f| f.ends_with("resources/payments.rs")),
        "the walk reaches the submodules: {files:?}"
    );
    let mut emitted = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(file).unwrap();
        for name in names_in(&text) {
            if text.contains(&format!("\"{name}\"")) {
                emitted.insert(name);
            }
        }
    }
    assert!(emitted.len() >= 10, "{emitted:?}");
    for name in &emitted {
        assert!(
            declared.contains(name.as_str()),
            "{name} is emitted but not in EXPORTED"
        );
    }
}
