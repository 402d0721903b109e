//! The chart's alerts and dashboard with the real Prometheus tools: `promtool check rules` of
//! the rendered PrometheusRule, `promtool test rules` unit tests (tests/prometheus/) with the
//! chart's thresholds and `for:` durations, and a real Prometheus server that scrapes the
//! operator on the test bed, evaluates the shipped rules and runs every dashboard query.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::Harness;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use trackvia_testsupport::fake::Behavior;
use trackvia_testsupport::prometheus::{Prometheus, check_rules};
use trackvia_testsupport::time::{days_from_today, now_seconds, rfc3339_seconds};
use trackvia_testsupport::tools::{
    chart_dir, dashboard_queries, rendered_rule_file, repo_root, run_ok, tool,
};

const RELEASE: &str = "tvo";
const RELEASE_NAMESPACE: &str = "trackvia-system";

const EXPIRING: &str = "TrackViaTokenExpiringSoon";
const EXPIRED: &str = "TrackViaTokenExpired";
const NOT_READY: &str = "TrackViaConnectionNotReady";
const STALE: &str = "TrackViaVerificationStale";
const DOWN: &str = "TrackViaOperatorDown";
const ALERTS: [&str; 5] = [EXPIRED, EXPIRING, NOT_READY, STALE, DOWN];

/// A temporary directory holding `rules.yaml`, the rules rendered with `sets`.
fn rendered_rules(sets: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("trackvia-rules-")
        .tempdir()
        .expect("a temporary directory");
    let rules = rendered_rule_file(RELEASE, RELEASE_NAMESPACE, sets);
    std::fs::write(
        dir.path().join("rules.yaml"),
        serde_yaml_ng::to_string(&rules).expect("YAML"),
    )
    .expect("writing rules.yaml");
    dir
}

/// Alert names in a rendered rule file.
fn alert_names(rules: &Value) -> BTreeSet<String> {
    rules["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| r["alert"].as_str().map(str::to_string))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// promtool
// ---------------------------------------------------------------------------------------------

#[test]
fn promtool_accepts_the_rendered_rules() {
    let variants: [&[&str]; 3] = [
        &[],
        &[
            "prometheusRule.verificationStaleHours=0",
            "prometheusRule.expiringSoonDays=30",
        ],
        &[
            "prometheusRule.additionalAlertLabels.team=payments",
            "prometheusRule.notReadyFor=1h",
            "prometheusRule.expiredFor=0s",
            "prometheusRule.expiringSoonFor=2h",
            "prometheusRule.verificationStaleFor=1h30m",
            "prometheusRule.operatorDownFor=10m",
        ],
    ];
    for sets in variants {
        let dir = rendered_rules(sets);
        let expected = if sets.contains(&"prometheusRule.verificationStaleHours=0") {
            4
        } else {
            5
        };
        let out = check_rules(&dir.path().join("rules.yaml"));
        assert!(
            out.contains(&format!("SUCCESS: {expected} rules found")),
            "promtool check rules with {sets:?}:\n{out}"
        );
    }
}

/// The promtool unit test files shipped in tests/prometheus.
fn promtool_test_files() -> Vec<PathBuf> {
    let dir = repo_root().join("tests/prometheus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".test.yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *.test.yaml in {}", dir.display());
    files
}

/// Alert name → (has a case where it fires, has a case where it stays silent), over the
/// `alert_rule_test` entries of `files`.
fn coverage(files: &[PathBuf]) -> BTreeMap<String, (bool, bool)> {
    let mut seen: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    for file in files {
        let text = std::fs::read_to_string(file).expect("reading a promtool test");
        let doc: Value = serde_yaml_ng::from_str(&text).expect("a promtool test is YAML");
        for test in doc["tests"].as_array().into_iter().flatten() {
            for case in test["alert_rule_test"].as_array().into_iter().flatten() {
                let name = case["alertname"].as_str().expect("alertname").to_string();
                let fires = case["exp_alerts"].as_array().is_some_and(|a| !a.is_empty());
                let entry = seen.entry(name).or_default();
                entry.0 |= fires;
                entry.1 |= !fires;
            }
        }
    }
    seen
}

#[test]
fn promtool_unit_tests_of_every_alert_pass() {
    let dir = rendered_rules(&[]);
    let rules: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(dir.path().join("rules.yaml")).expect("rules.yaml"),
    )
    .expect("YAML");
    let shipped = alert_names(&rules);
    assert_eq!(
        shipped,
        ALERTS
            .iter()
            .map(|a| a.to_string())
            .collect::<BTreeSet<_>>()
    );
    let files = promtool_test_files();
    let covered = coverage(&files);
    for alert in &shipped {
        assert_eq!(
            covered.get(alert),
            Some(&(true, true)),
            "{alert} needs a promtool case where it fires and one where it stays silent"
        );
    }
    // The test files name `rules.yaml` beside them: run copies next to the rendered rules.
    let mut args: Vec<PathBuf> = Vec::new();
    for file in &files {
        let copy = dir.path().join(file.file_name().expect("a file name"));
        std::fs::copy(file, &copy).expect("copying a promtool test");
        args.push(copy);
    }
    let mut argv: Vec<&OsStr> = vec![OsStr::new("test"), OsStr::new("rules")];
    argv.extend(args.iter().map(|p| p.as_os_str()));
    let started = Instant::now();
    let out = run_ok(&tool("promtool"), &argv);
    println!("promtool test rules ({:?}):\n{out}", started.elapsed());
    assert_eq!(out.matches("SUCCESS").count(), files.len(), "{out}");
}

/// `prometheusRule.expiringSoonDays` is a floor besides each connection's own warning instant.
#[test]
fn promtool_expiring_soon_floor() {
    let dir = rendered_rules(&["prometheusRule.expiringSoonDays=14"]);
    let copy = dir.path().join("expiring-floor.test.yaml");
    std::fs::copy(
        repo_root().join("tests/prometheus/floor/expiring-floor.test.yaml"),
        &copy,
    )
    .expect("copying the promtool test");
    let out = run_ok(
        &tool("promtool"),
        &[OsStr::new("test"), OsStr::new("rules"), copy.as_os_str()],
    );
    assert_eq!(out.matches("SUCCESS").count(), 1, "{out}");
}

// ---------------------------------------------------------------------------------------------
// A real Prometheus scraping the operator
// ---------------------------------------------------------------------------------------------

/// `for:` of the alerts in the live test: long enough to see them pending first.
const FOR: Duration = Duration::from_secs(8);

/// Prometheus's configuration: the operator's metrics endpoint scraped every second the way
/// the chart's ServiceMonitor does (its job name, `honor_labels`, the release namespace as
/// the target's namespace), and the rendered rules evaluated every second.
fn prometheus_config(metrics_port: u16) -> String {
    let job = format!("{RELEASE}-trackvia-operator-metrics");
    format!(
        r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - rules.yaml
scrape_configs:
  - job_name: {job}
    honor_labels: true
    static_configs:
      - targets: ["127.0.0.1:{metrics_port}"]
        labels:
          namespace: {RELEASE_NAMESPACE}
          pod: {RELEASE}-trackvia-operator-0
"#
    )
}

/// A Deployment the healthy connection restarts when its credentials change.
fn consumer() -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": "consumer"},
        "spec": {
            "selector": {"matchLabels": {"app": "consumer"}},
            "template": {
                "metadata": {"labels": {"app": "consumer"}},
                "spec": {"containers": [{"name": "app", "image": "example.invalid/app:1"}]}
            }
        }
    }))
    .expect("deployment literal")
}

/// Polls `probe` until it gives a value, for at most `timeout`.
async fn eventually<T, F: Future<Output = Option<T>>>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what} within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What the test saw of one alert on one connection.
#[derive(Debug, Default)]
struct Seen {
    pending: bool,
    firing: bool,
    /// Seconds from `activeAt` to the first poll that saw it firing.
    firing_after: Option<f64>,
}

/// A connection of the live test: how the fake answers for it, its spec, the Ready status
/// and reason it reaches, and the alert it raises.
struct Case {
    name: &'static str,
    behavior: Behavior,
    spec: Value,
    status: &'static str,
    reason: &'static str,
    alert: Option<&'static str>,
}

#[tokio::test]
async fn real_prometheus_raises_the_alerts_of_broken_connections_only() {
    let started = Instant::now();
    let mut h = Harness::start(
        "prom-live",
        &["--failure-threshold", "1", "--failure-grace", "0s"],
    )
    .await;
    let ns = h.ns.name().to_string();
    let deployments: Api<Deployment> = h.ns.api();
    deployments
        .create(&PostParams::default(), &consumer())
        .await
        .expect("creating the consumer Deployment");

    // Each connection, its Ready status and reason, and the alert it raises.
    let soon = days_from_today(5);
    let far = "2099-01-01";
    let cases = [
        Case {
            name: "healthy",
            behavior: Behavior::Valid,
            spec: json!({"tokenExpiresOn": far,
                   "rolloutRestartTargets": [{"kind": "Deployment", "name": "consumer"}]}),
            status: "True",
            reason: "Verified",
            alert: None,
        },
        Case {
            name: "manual",
            behavior: Behavior::Valid,
            spec: json!({"tokenExpiresOn": far, "verifyInterval": "0"}),
            status: "True",
            reason: "Verified",
            alert: None,
        },
        Case {
            name: "nodate",
            behavior: Behavior::Valid,
            spec: json!({}),
            status: "True",
            reason: "Verified",
            alert: None,
        },
        Case {
            name: "soon",
            behavior: Behavior::Valid,
            spec: json!({"tokenExpiresOn": soon}),
            status: "True",
            reason: "Verified",
            alert: Some(EXPIRING),
        },
        Case {
            name: "expired",
            behavior: Behavior::Valid,
            spec: json!({"tokenExpiresOn": "2020-01-01"}),
            status: "False",
            reason: "Expired",
            alert: Some(EXPIRED),
        },
        Case {
            name: "revoked",
            behavior: Behavior::Revoked,
            spec: json!({"tokenExpiresOn": far}),
            status: "False",
            reason: "Unauthorized",
            alert: Some(NOT_READY),
        },
    ];
    for Case {
        name,
        behavior,
        spec,
        ..
    } in &cases
    {
        h.connect(name, &format!("src-{name}"), behavior.clone(), spec.clone())
            .await;
    }
    h.apply_connection("missing", "no-such-secret", json!({"tokenExpiresOn": far}))
        .await
        .expect("applying");
    for Case {
        name,
        status,
        reason,
        ..
    } in &cases
    {
        h.wait_ready(name, status, reason).await;
    }
    h.wait_ready("missing", "False", "CredentialsNotFound")
        .await;
    // New credentials for the healthy connection restart its consumer, so the dashboard's
    // restart panel has a series too.
    let (key, token) = h.credential(Behavior::Valid);
    h.rotate_source("src-healthy", &key, &token).await;
    let hr = &h;
    eventually(
        "a rollout restart on /metrics",
        Duration::from_secs(30),
        || async move {
            hr.metrics()
                .await
                .contains("trackvia_rollout_restarts_total{")
                .then_some(())
        },
    )
    .await;
    let mut expected: BTreeMap<String, &str> = cases
        .iter()
        .filter_map(|c| c.alert.map(|alert| (c.name.to_string(), alert)))
        .collect();
    expected.insert("missing".into(), NOT_READY);
    let connections: BTreeSet<String> = cases
        .iter()
        .map(|c| c.name.to_string())
        .chain(["missing".to_string()])
        .collect();

    let for_ = format!("{}s", FOR.as_secs());
    let sets: Vec<String> = [
        "expiredFor",
        "expiringSoonFor",
        "notReadyFor",
        "verificationStaleFor",
        "operatorDownFor",
    ]
    .iter()
    .map(|v| format!("prometheusRule.{v}={for_}"))
    .collect();
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let rules = rendered_rule_file(RELEASE, RELEASE_NAMESPACE, &sets);
    let prometheus = Prometheus::start(
        &prometheus_config(h.metrics_port),
        &[(
            "rules.yaml",
            serde_yaml_ng::to_string(&rules).expect("YAML"),
        )],
    )
    .await;
    let p = &prometheus;
    let up = format!("up{{job=\"{RELEASE}-trackvia-operator-metrics\"}} == 1");
    let up = up.as_str();
    eventually(
        "Prometheus scraping the operator",
        Duration::from_secs(30),
        || async move {
            let up = p.query(up).await.ok()?;
            (!up.is_empty()).then_some(())
        },
    )
    .await;

    // The series TrackViaVerificationStale leaves connections out by: 0 for `verifyInterval: 0`.
    for (name, seconds) in [("manual", "0"), ("healthy", "3600")] {
        let expr = format!("trackvia_connection_verify_interval_seconds{{name=\"{name}\"}}");
        let result = p.query(&expr).await.expect("querying the verify interval");
        assert_eq!(result.len(), 1, "{expr}: {result:?}");
        assert_eq!(result[0]["value"][1], seconds, "{expr}: {result:?}");
    }
    // Before its first scrape Prometheus has no `up` series: TrackViaOperatorDown may go
    // pending then, and must be inactive from the next evaluation on.
    eventually(
        "TrackViaOperatorDown inactive once the operator is scraped",
        Duration::from_secs(10),
        || async move {
            let rules = p.alerting_rules().await.ok()?;
            rules
                .iter()
                .any(|r| r["name"] == DOWN && r["state"] == "inactive")
                .then_some(())
        },
    )
    .await;

    // Watch the alerts until every expected one fires, then a little longer.
    let mut seen: BTreeMap<(String, String), Seen> = BTreeMap::new();
    let deadline = Instant::now() + FOR * 4 + Duration::from_secs(20);
    let mut all_firing_at: Option<Instant> = None;
    loop {
        let alerts = p.alerts().await.expect("GET /api/v1/alerts");
        let now = now_seconds();
        for a in alerts {
            let labels = &a["labels"];
            let alert = labels["alertname"].as_str().unwrap_or_default().to_string();
            let name = labels["name"].as_str().unwrap_or_default().to_string();
            assert!(
                expected.get(&name) == Some(&alert.as_str()),
                "unexpected alert {alert} for {name:?}: {a}"
            );
            assert_eq!(labels["namespace"], ns.as_str(), "{a}");
            let entry = seen.entry((alert, name)).or_default();
            match a["state"].as_str() {
                Some("pending") => entry.pending = true,
                Some("firing") if !entry.firing => {
                    entry.firing = true;
                    entry.firing_after =
                        Some(now - rfc3339_seconds(a["activeAt"].as_str().expect("activeAt")));
                }
                _ => {}
            }
        }
        let all_firing = expected.iter().all(|(n, a)| {
            seen.get(&(a.to_string(), n.clone()))
                .is_some_and(|s| s.firing)
        });
        match (all_firing, all_firing_at) {
            (true, None) => all_firing_at = Some(Instant::now()),
            (true, Some(at)) if at.elapsed() > Duration::from_secs(3) => break,
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "not every expected alert fired: {seen:?}\nexpected {expected:?}\nPrometheus log:\n{}",
            p.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (name, alert) in &expected {
        let s = &seen[&(alert.to_string(), name.clone())];
        assert!(
            s.pending,
            "{alert} for {name} was never seen pending: {s:?}"
        );
        let after = s.firing_after.expect("firing");
        assert!(
            after >= FOR.as_secs_f64() - 1.0,
            "{alert} for {name} fired {after:.1} s after it became active, before its for: {FOR:?}"
        );
    }
    // Every rule evaluates without error; the operator's own alert stays inactive.
    let loaded = p.alerting_rules().await.expect("GET /api/v1/rules");
    let names: BTreeSet<&str> = loaded.iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(names, ALERTS.into_iter().collect::<BTreeSet<_>>());
    for rule in &loaded {
        assert_eq!(rule["health"], "ok", "{rule}");
        if rule["name"] == DOWN || rule["name"] == STALE {
            assert_eq!(rule["state"], "inactive", "{rule}");
        }
    }
    let alerts_done = started.elapsed();

    dashboard_queries_return_series(p, &ns, &connections).await;
    println!(
        "alerts seen after {alerts_done:?}, dashboard checked after {:?}",
        started.elapsed()
    );
    drop(prometheus);
    h.finish().await;
}

/// Every query of the Grafana dashboard, with its variables set for this test's namespace,
/// runs without error and returns series, naming only this test's connections.
async fn dashboard_queries_return_series(p: &Prometheus, ns: &str, connections: &BTreeSet<String>) {
    let file = chart_dir().join("dashboards/trackvia-operator.json");
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("the dashboard file"))
            .expect("the dashboard is JSON");
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() >= 10, "few dashboard queries: {queries:?}");
    for query in &queries {
        // Grafana's label_values(metric, label) is the label values API, not PromQL.
        if let Some(args) = query
            .strip_prefix("label_values(")
            .and_then(|r| r.strip_suffix(')'))
        {
            let (metric, label) = args.split_once(',').expect("label_values(metric, label)");
            let values = p
                .api(
                    &format!("label/{}/values", label.trim()),
                    &[("match[]", metric.trim())],
                )
                .await
                .unwrap_or_else(|e| panic!("{query}: {e}"));
            assert!(
                values.as_array().is_some_and(|v| v.iter().any(|v| v == ns)),
                "{query} lacks {ns}: {values}"
            );
            continue;
        }
        let expr = substitute(query, ns);
        let result = p
            .query(&expr)
            .await
            .unwrap_or_else(|e| panic!("dashboard query {expr}: {e}"));
        assert!(
            !result.is_empty(),
            "dashboard query {expr} returned nothing"
        );
        for sample in &result {
            if let Some(name) = sample["metric"]["name"].as_str() {
                assert!(connections.contains(name), "{expr} names {name}: {sample}");
            }
        }
    }
}

/// A dashboard query with Grafana's variables replaced: `$namespace` by `ns` (a namespace
/// name is a valid regular expression matching itself), `$__rate_interval` by a window
/// holding several scrapes.
fn substitute(query: &str, ns: &str) -> String {
    query
        .replace("$__rate_interval", "30s")
        .replace("$namespace", ns)
}
