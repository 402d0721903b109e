//! Observability on the real test bed: the per-connection series and counters on
//! `/metrics` for each outcome, and the Grafana dashboard. The `status` command is tested in
//! tests/status_command.rs.
//! The chart's alert rules and the dashboard's queries are checked with real Prometheus
//! tools in tests/alerts.rs.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use common::Harness;
use common::cli::tempfile_dir;
use kube::api::DeleteParams;
use serde_json::{Value, json};
use trackvia_testsupport::fake::Behavior;
use trackvia_testsupport::kube::wait_for_absent;
use trackvia_testsupport::metrics::Scrape;
use trackvia_testsupport::time::now_seconds;
use trackvia_testsupport::tools::{chart_dir, dashboard_queries, tool};

// ---------------------------------------------------------------------------------------------
// Scraping
// ---------------------------------------------------------------------------------------------

async fn scrape(h: &Harness) -> Scrape {
    let text = h.metrics().await;
    assert!(
        text.trim_end().ends_with("# EOF"),
        "not OpenMetrics:\n{text}"
    );
    Scrape::parse(&text)
}

/// Scrape until `pred` holds (the per-connection series follow the reflector store,
/// which lags the API server by a moment).
async fn scrape_until(h: &Harness, what: &str, pred: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let s = scrape(h).await;
        if pred(&s) {
            return s;
        }
        if std::time::Instant::now() > deadline {
            panic!(
                "metrics never showed {what}; last scrape:\n{}",
                h.metrics().await
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Midnight UTC of `date` in Unix seconds.
fn midnight(date: &str) -> f64 {
    let day: jiff::civil::Date = date.parse().expect("a date");
    day.to_zoned(jiff::tz::TimeZone::UTC)
        .expect("a UTC day")
        .timestamp()
        .as_second() as f64
}

// ---------------------------------------------------------------------------------------------
// (a) Series and values per outcome
// ---------------------------------------------------------------------------------------------

const CONNECTION_FAMILIES: [&str; 5] = [
    "trackvia_connection_ready",
    "trackvia_connection_verify_interval_seconds",
    "trackvia_connection_token_expiration_timestamp_seconds",
    "trackvia_connection_expiry_warning_timestamp_seconds",
    "trackvia_connection_last_success_timestamp_seconds",
];

#[tokio::test]
async fn metrics_follow_each_outcome_and_vanish_with_the_connection() {
    let mut h = Harness::start("obs-metrics", &[]).await;
    let ns = h.ns.name().to_string();
    let cases = [
        ("valid", Behavior::Valid, "True", "Verified"),
        ("revoked", Behavior::Revoked, "False", "Unauthorized"),
        ("forbidden", Behavior::Forbidden, "False", "Forbidden"),
        // 401 with TrackVia's "Access token expired" before the date in the spec.
        ("expired", Behavior::Expired, "False", "Expired"),
    ];
    let mut keys: BTreeMap<&str, String> = BTreeMap::new();
    for (name, behavior, _, _) in &cases {
        let (key, token) = h.credential(behavior.clone());
        keys.insert(name, key.clone());
        h.put_source(&format!("src-{name}"), &key, &token).await;
        h.apply_connection(
            name,
            &format!("src-{name}"),
            json!({"tokenExpiresOn": "2099-03-31", "expiryWarning": "48h"}),
        )
        .await
        .expect("applying");
    }
    for (name, _, status, reason) in &cases {
        h.wait_ready(name, status, reason).await;
    }
    let m = scrape_until(&h, "a ready series for every connection", |m| {
        cases.iter().all(|(name, _, _, reason)| {
            m.find(
                "trackvia_connection_ready",
                &[("name", name), ("reason", reason)],
            )
            .len()
                == 1
        })
    })
    .await;

    // Readiness: one series per connection, labelled with Ready's reason.
    for (name, _, status, reason) in &cases {
        let series = m.find(
            "trackvia_connection_ready",
            &[("namespace", &ns), ("name", name)],
        );
        assert_eq!(series.len(), 1, "{name}: {series:?}");
        assert_eq!(series[0].label("reason"), *reason, "{name}");
        let keys: Vec<&str> = series[0].labels.keys().map(String::as_str).collect();
        assert_eq!(keys, ["name", "namespace", "reason"], "{name}");
        let expected = if *status == "True" { 1.0 } else { 0.0 };
        assert_eq!(series[0].value, expected, "{name}");
    }

    // Expiry: 00:00 UTC on tokenExpiresOn, the warning 48 h before, for every connection.
    let expiry = midnight("2099-03-31");
    for (name, ..) in &cases {
        let labels = [("namespace", ns.as_str()), ("name", *name)];
        assert_eq!(
            m.value(
                "trackvia_connection_token_expiration_timestamp_seconds",
                &labels
            ),
            expiry,
            "{name}"
        );
        assert_eq!(
            m.value(
                "trackvia_connection_expiry_warning_timestamp_seconds",
                &labels
            ),
            expiry - 48.0 * 3600.0,
            "{name}"
        );
    }

    // The verify interval: the default 1 h for every connection.
    for (name, ..) in &cases {
        let labels = [("namespace", ns.as_str()), ("name", *name)];
        assert_eq!(
            m.value("trackvia_connection_verify_interval_seconds", &labels),
            3600.0,
            "{name}"
        );
    }

    // Last success: only where TrackVia said yes, and recent.
    let last = m.value(
        "trackvia_connection_last_success_timestamp_seconds",
        &[("name", "valid")],
    );
    assert!(
        (now_seconds() - last).abs() < 120.0,
        "last success {last} is not recent"
    );
    for name in ["revoked", "forbidden", "expired"] {
        assert!(
            m.find(
                "trackvia_connection_last_success_timestamp_seconds",
                &[("name", name)]
            )
            .is_empty(),
            "{name} never succeeded"
        );
    }

    // Counters agree with what the fake TrackVia received.
    let m = scrape_until(&h, "counters matching the fake's requests", |m| {
        counters_match(m, &h)
    })
    .await;
    let requests = h.fake.requests();
    let count = |code: u16| requests.iter().filter(|r| r.status == Some(code)).count() as f64;
    // One call per connection: 200 for valid, 401 for revoked and expired, 403 for forbidden.
    assert_eq!((count(200), count(401), count(403)), (1.0, 2.0, 1.0));
    assert_eq!(requests.len(), 4);
    for code in [200, 401, 403] {
        let code_text = code.to_string();
        assert_eq!(
            m.value("trackvia_api_requests_total", &[("code", &code_text)]),
            count(code),
            "code {code}"
        );
    }
    // Each call's outcome, as the fake answered it.
    let calls_of = |name: &str| -> f64 {
        requests
            .iter()
            .filter(|r| r.api_key.as_deref() == Some(keys[name].as_str()))
            .count() as f64
    };
    for (name, result) in [
        ("valid", "verified"),
        ("revoked", "unauthorized"),
        ("expired", "expired"),
        ("forbidden", "forbidden"),
    ] {
        assert_eq!(
            m.value("trackvia_verifications_total", &[("result", result)]),
            calls_of(name),
            "result {result}"
        );
    }
    assert_eq!(
        m.value("trackvia_api_request_duration_seconds_count", &[]),
        requests.len() as f64
    );
    assert!(m.value("trackvia_reconcile_duration_seconds_count", &[]) >= 3.0);
    assert!(m.value("trackvia_status_writes_total", &[]) >= 3.0);
    assert!(m.value("trackvia_secret_writes_total", &[]) >= 1.0);
    assert_eq!(m.value("trackvia_operator_leader", &[]), 1.0);
    assert_eq!(
        m.value(
            "trackvia_operator_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );

    // No credential anywhere: not in a metric name, a label value or the raw text.
    let raw = h.metrics().await;
    for secret in &h.secrets {
        assert!(!raw.contains(secret.as_str()), "a credential in /metrics");
        for s in &m.samples {
            assert!(!s.name.contains(secret.as_str()));
            for v in s.labels.values() {
                assert!(
                    !v.contains(secret.as_str()),
                    "a credential in a label of {s:?}"
                );
            }
        }
    }
    // Label values are bounded: nothing but names, reasons, codes, results and the version.
    for s in &m.samples {
        for (k, v) in &s.labels {
            assert!(
                v.len() <= 253 && !v.contains(' '),
                "free text in label {k}={v:?} of {}",
                s.name
            );
        }
    }

    // Deleting a connection removes its series at once; the others stay.
    h.connections()
        .delete("revoked", &DeleteParams::default())
        .await
        .expect("deleting");
    wait_for_absent(
        &h.connections(),
        "revoked",
        Duration::from_secs(30),
        "revoked deleted",
    )
    .await;
    let m = scrape_until(&h, "no series of the deleted connection", |m| {
        m.samples.iter().all(|s| s.label("name") != "revoked")
    })
    .await;
    for family in CONNECTION_FAMILIES {
        if family == "trackvia_connection_last_success_timestamp_seconds" {
            continue;
        }
        for name in ["valid", "forbidden", "expired"] {
            assert_eq!(
                m.find(family, &[("name", name)]).len(),
                1,
                "{family} {name}"
            );
        }
    }
    h.finish().await;
}

/// Counters equal the fake's request counts, per code and per result.
fn counters_match(m: &Scrape, h: &Harness) -> bool {
    let requests = h.fake.requests();
    let mut by_code: BTreeMap<String, f64> = BTreeMap::new();
    for r in &requests {
        let code = r
            .status
            .map(|c| c.to_string())
            .unwrap_or_else(|| "none".into());
        *by_code.entry(code).or_default() += 1.0;
    }
    let scraped: BTreeMap<String, f64> = m
        .find("trackvia_api_requests_total", &[])
        .iter()
        .map(|s| (s.label("code").to_string(), s.value))
        .collect();
    let verifications: f64 = m
        .find("trackvia_verifications_total", &[])
        .iter()
        .map(|s| s.value)
        .sum();
    scraped == by_code && verifications == requests.len() as f64
}

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
    h.connect(
        "crm",
        "src",
        Behavior::Valid,
        json!({"tokenExpiresOn": "2099-03-31"}),
    )
    .await;
    h.wait_ready("crm", "True", "Verified").await;
    let m = scrape_until(&h, "the connection's last success", |m| {
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
    for name in &used {
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

    // The chart ships it, opt-in, in a ConfigMap the Grafana sidecar picks up.
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
    assert_eq!(embedded, dashboard);
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
    h.finish().await;
}
