//! Golden files for what a user sees and a rewrite must not change: the chart as
//! `helm template` renders it (default values, and every optional feature on, for a current
//! and an old Kubernetes), and the metric families on `/metrics` (names, types, units, help
//! and label names; not values). The CRD has its own test (tests/chart_crds.rs).
//!
//! Regenerate after a deliberate change with
//! `UPDATE_GOLDEN=1 cargo test --test golden` (the metrics case needs the test bed) and
//! review `git diff tests/golden`.

mod common;

use std::time::Duration;

use common::Harness;
use serde_json::json;
use trackvia_testsupport::fake::Behavior;
use trackvia_testsupport::golden;
use trackvia_testsupport::metrics::Scrape;
use trackvia_testsupport::tools::{MONITORING_API, helm_template_text};

/// The rendered chart for `kube_version`, with the values file `values` (under tests/golden)
/// when given.
fn rendered(kube_version: &str, values: Option<&str>) -> String {
    let mut args: Vec<String> = vec![
        "--kube-version".into(),
        kube_version.into(),
        "--api-versions".into(),
        MONITORING_API.into(),
    ];
    if let Some(values) = values {
        args.extend([
            "--values".into(),
            golden::path(values).display().to_string(),
        ]);
    }
    helm_template_text("tvo", "trackvia-system", &args)
        .unwrap_or_else(|e| panic!("helm template failed: {e}"))
}

#[test]
fn chart_renders_as_before() {
    let cases = [
        ("chart-default.yaml", "1.33.0", None),
        (
            "chart-all-features.yaml",
            "1.33.0",
            Some("chart-all-features.values.yaml"),
        ),
        (
            "chart-all-features-k8s-1.20.yaml",
            "1.20.2",
            Some("chart-all-features.values.yaml"),
        ),
    ];
    for (golden_file, kube_version, values) in cases {
        golden::check(golden_file, &rendered(kube_version, values));
    }
}

#[tokio::test]
async fn metric_families_are_as_before() {
    let mut h = Harness::start("golden-metrics", &[]).await;
    h.connect(
        "conn",
        "src",
        Behavior::Valid,
        json!({"tokenExpiresOn": "2099-03-31", "expiryWarning": "48h"}),
    )
    .await;
    h.wait_ready("conn", "True", "Verified").await;
    // The per-connection series follow the reflector store, a moment behind the API server.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let scrape = loop {
        let text = h.metrics().await;
        assert!(
            text.trim_end().ends_with("# EOF"),
            "not OpenMetrics:\n{text}"
        );
        let scrape = Scrape::parse(&text);
        let labels = [("namespace", h.ns.name()), ("name", "conn")];
        if !scrape
            .find(
                "trackvia_connection_last_success_timestamp_seconds",
                &labels,
            )
            .is_empty()
            && !scrape.find("trackvia_connection_ready", &labels).is_empty()
        {
            break scrape;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the connection's series never appeared:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    golden::check("metrics.txt", &scrape.shape());
    h.finish().await;
}
