//! The Grafana dashboard on the real test bed: the chart renders it as a valid ConfigMap only
//! when asked, and its queries use only metrics the operator exports.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::Harness;
use common::cli::tempfile_dir;
use common::scrape::*;
use serde_json::{Value, json};
use trackvia_testsupport::fake::Behavior;
use trackvia_testsupport::tools::{chart_dir, dashboard_queries, tool};

const RELEASE: &str = "tvo";
const RELEASE_NAMESPACE: &str = "trackvia-system";

/// `helm template` of the chart with `--set` values, as parsed documents.
fn helm_template(sets: &[&str]) -> Vec<Value> {
    trackvia_testsupport::tools::helm_template(RELEASE, RELEASE_NAMESPACE, sets)
}

// ---------------------------------------------------------------------------------------------
// The Grafana dashboard
// ---------------------------------------------------------------------------------------------

/// `kubernetes-validate --strict` of one rendered object against Kubernetes 1.33.
fn validate_configmap(object: &Value) {
    let dir = tempfile_dir();
    let file = dir.join("configmap.yaml");
    std::fs::write(&file, serde_yaml_ng::to_string(object).expect("YAML")).expect("writing");
    let out = Command::new(tool("kubernetes-validate"))
        .args(["--strict", "-k", "1.33.0"])
        .arg(&file)
        .output()
        .expect("running kubernetes-validate");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(" passed "),
        "kubernetes-validate: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The metrics the design of record names (histograms by their family name).
const DESIGN_METRICS: [&str; 8] = [
    "trackvia_connection_token_expiration_timestamp_seconds",
    "trackvia_connection_ready",
    "trackvia_connection_last_success_timestamp_seconds",
    "trackvia_api_requests_total",
    "trackvia_verifications_total",
    "trackvia_rollout_restarts_total",
    "trackvia_api_request_duration_seconds",
    "trackvia_reconcile_duration_seconds",
];

#[tokio::test]
async fn dashboard_is_valid_and_queries_only_exported_metrics() {
    let dashboard = dashboard_with_its_panels();
    let queries = dashboard_queries(&dashboard);
    let metric = regex::Regex::new(r"\btrackvia_[a-z0-9_]+").expect("regex");
    let used: BTreeSet<String> = queries
        .iter()
        .flat_map(|q| metric.find_iter(q).map(|m| m.as_str().to_string()))
        .collect();
    assert!(
        used.len() >= 10,
        "the dashboard queries few metrics: {used:?}"
    );

    // Every metric it queries is on a live operator's /metrics.
    let mut h = Harness::start("obs-dashboard", &[]).await;
    queried_metrics_are_exported(&mut h, &used).await;
    chart_ships_it_opt_in(&dashboard);
    h.finish().await;
}

/// The dashboard file: valid JSON, its uid, distinct panels with their places, the panels
/// users look for.
fn dashboard_with_its_panels() -> Value {
    let file = chart_dir().join("dashboards/trackvia-operator.json");
    let text = std::fs::read_to_string(&file).expect("the dashboard file");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is valid JSON");
    assert_eq!(dashboard["uid"], "trackvia-operator");
    assert!(dashboard["schemaVersion"].as_i64().is_some());
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    for p in panels {
        assert!(
            ids.insert(p["id"].as_i64().expect("panel id")),
            "duplicate panel id"
        );
        assert!(p["gridPos"]["w"].as_i64().is_some(), "{}", p["title"]);
    }
    let titles: Vec<&str> = panels.iter().filter_map(|p| p["title"].as_str()).collect();
    for wanted in [
        "Connections by Ready reason",
        "Days until token expiry",
        "API calls by status code",
        "Verification outcomes",
        "Reconcile latency",
    ] {
        assert!(
            titles.contains(&wanted),
            "panel {wanted:?} missing: {titles:?}"
        );
    }
    dashboard
}

/// Every metric in `used` is on the /metrics of an operator with one verified connection, or
/// named by the design; and every metric the design names is there.
async fn queried_metrics_are_exported(h: &mut Harness, used: &BTreeSet<String>) {
    h.connect(
        "crm",
        "src",
        Behavior::Valid,
        json!({"tokenExpiresOn": "2099-03-31"}),
    )
    .await;
    h.wait_ready("crm", "True", "Verified").await;
    let m = scrape_until(h, "the connection's last success", |m| {
        !m.find("trackvia_connection_last_success_timestamp_seconds", &[])
            .is_empty()
    })
    .await;
    // A labelled counter shows up with its first increment (no restart happens here),
    // so a metric the design names counts as well.
    let in_design = |name: &str| {
        DESIGN_METRICS.iter().any(|d| {
            name == *d
                || ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|suffix| name.strip_suffix(suffix) == Some(*d))
        })
    };
    for name in used {
        assert!(
            m.knows(name) || in_design(name),
            "the dashboard queries {name}, which is neither on /metrics nor in the design"
        );
    }
    // And after one verification, the metrics the design names are on /metrics, except
    // rollout restarts, which appear with the first restart.
    for name in DESIGN_METRICS {
        if name != "trackvia_rollout_restarts_total" {
            assert!(m.knows(name), "/metrics lacks {name}");
        }
    }
}

/// The chart ships it, opt-in, in a ConfigMap the Grafana sidecar picks up.
fn chart_ships_it_opt_in(dashboard: &Value) {
    let off = helm_template(&[]);
    assert!(
        !off.iter().any(|d| d["kind"] == "ConfigMap"),
        "the dashboard is opt-in"
    );
    let on = helm_template(&["grafanaDashboard.enabled=true"]);
    let cm = on
        .iter()
        .find(|d| d["kind"] == "ConfigMap")
        .expect("the dashboard ConfigMap");
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(cm["metadata"]["namespace"], RELEASE_NAMESPACE);
    let embedded: Value = serde_json::from_str(
        cm["data"]["trackvia-operator.json"]
            .as_str()
            .expect("the dashboard key"),
    )
    .expect("the embedded dashboard is JSON");
    assert_eq!(&embedded, dashboard);
    validate_configmap(cm);
    let moved = helm_template(&[
        "grafanaDashboard.enabled=true",
        "grafanaDashboard.namespace=monitoring",
        "grafanaDashboard.sidecarLabel=dashboards",
        "grafanaDashboard.sidecarLabelValue=trackvia",
    ]);
    let cm = moved
        .iter()
        .find(|d| d["kind"] == "ConfigMap")
        .expect("the dashboard ConfigMap");
    assert_eq!(cm["metadata"]["namespace"], "monitoring");
    assert_eq!(cm["metadata"]["labels"]["dashboards"], "trackvia");
}
