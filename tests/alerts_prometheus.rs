//! The chart's alerts and dashboard with a real Prometheus server that scrapes the operator
//! on the test bed, evaluates the shipped rules (broken connections only raise alerts) and
//! runs every dashboard query.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::Harness;
use common::alerts::*;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use trackvia_testsupport::fake::Behavior;
use trackvia_testsupport::fixtures::deployment;
use trackvia_testsupport::prometheus::Prometheus;
use trackvia_testsupport::time::{days_from_today, now_seconds, rfc3339_seconds};
use trackvia_testsupport::tools::{chart_dir, dashboard_queries, rendered_rule_file};

/// An expiry date far away.
const FAR: &str = "2099-01-01";

#[tokio::test]
async fn real_prometheus_raises_the_alerts_of_broken_connections_only() {
    let started = Instant::now();
    let mut h = Harness::start(
        "prom-live",
        &["--failure-threshold", "1", "--failure-grace", "0s"],
    )
    .await;
    let ns = h.ns.name().to_string();
    let cases = live_cases(&days_from_today(5));
    set_up_connections(&mut h, &cases).await;
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

    let prometheus = start_prometheus(&h).await;
    let p = &prometheus;
    interval_series_and_operator_down(p).await;
    let seen = watch_alerts(p, &ns, &expected).await;
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
    rules_are_healthy(p).await;
    let alerts_done = started.elapsed();

    dashboard_queries_return_series(p, &ns, &connections).await;
    println!(
        "alerts seen after {alerts_done:?}, dashboard checked after {:?}",
        started.elapsed()
    );
    drop(prometheus);
    h.finish().await;
}

/// Each connection, its Ready status and reason, and the alert it raises; `soon` is an
/// expiry date within the warning.
fn live_cases(soon: &str) -> Vec<Case> {
    vec![
        Case {
            name: "healthy",
            behavior: Behavior::Valid,
            spec: json!({"tokenExpiresOn": FAR,
                   "rolloutRestartTargets": [{"kind": "Deployment", "name": "consumer"}]}),
            status: "True",
            reason: "Verified",
            alert: None,
        },
        Case {
            name: "manual",
            behavior: Behavior::Valid,
            spec: json!({"tokenExpiresOn": FAR, "verifyInterval": "0"}),
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
            spec: json!({"tokenExpiresOn": FAR}),
            status: "False",
            reason: "Unauthorized",
            alert: Some(NOT_READY),
        },
    ]
}

/// The consumer Deployment, the connections of `cases` and one whose credentials Secret is
/// missing, each at its outcome; then new credentials for the healthy connection restart its
/// consumer, so the dashboard's restart panel has a series too.
async fn set_up_connections(h: &mut Harness, cases: &[Case]) {
    let deployments: Api<Deployment> = h.ns.api();
    deployments
        .create(&PostParams::default(), &deployment("consumer"))
        .await
        .expect("creating the consumer Deployment");
    for Case {
        name,
        behavior,
        spec,
        ..
    } in cases
    {
        h.connect(name, &format!("src-{name}"), behavior.clone(), spec.clone())
            .await;
    }
    h.apply_connection("missing", "no-such-secret", json!({"tokenExpiresOn": FAR}))
        .await
        .expect("applying");
    for Case {
        name,
        status,
        reason,
        ..
    } in cases
    {
        h.wait_ready(name, status, reason).await;
    }
    h.wait_ready("missing", "False", "CredentialsNotFound")
        .await;
    // New credentials for the healthy connection restart its consumer, so the dashboard's
    // restart panel has a series too.
    let (key, token) = h.credential(Behavior::Valid);
    h.rotate_source("src-healthy", &key, &token).await;
    let hr = &*h;
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
}

/// Prometheus scraping the operator and evaluating the rendered rules, with every alert's
/// `for:` set to [`FOR`]; returned once it scrapes the operator.
async fn start_prometheus(h: &Harness) -> Prometheus {
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
    prometheus
}

/// The series TrackViaVerificationStale leaves connections out by, and TrackViaOperatorDown
/// inactive once the operator is scraped.
async fn interval_series_and_operator_down(p: &Prometheus) {
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
}

/// Watches the alerts until every expected one fires, then a little longer: what was seen
/// of each (alert, connection). Every alert is an expected one, in this test's namespace.
async fn watch_alerts(
    p: &Prometheus,
    ns: &str,
    expected: &BTreeMap<String, &str>,
) -> BTreeMap<(String, String), Seen> {
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
            assert_eq!(labels["namespace"], ns, "{a}");
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
    seen
}

/// Every rule evaluates without error; the operator's own alert stays inactive.
async fn rules_are_healthy(p: &Prometheus) {
    let loaded = p.alerting_rules().await.expect("GET /api/v1/rules");
    let names: BTreeSet<&str> = loaded.iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(names, ALERTS.into_iter().collect::<BTreeSet<_>>());
    for rule in &loaded {
        assert_eq!(rule["health"], "ok", "{rule}");
        if rule["name"] == DOWN || rule["name"] == STALE {
            assert_eq!(rule["state"], "inactive", "{rule}");
        }
    }
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
