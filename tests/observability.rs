//! Observability on the real test bed: the per-connection series and counters on
//! `/metrics` for each outcome, the `status` command's output, and the Grafana dashboard.
//! The chart's alert rules and the dashboard's queries are checked with real Prometheus
//! tools in tests/alerts.rs.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::cli::{kubeconfig_with_namespace, run_cli, tempfile_dir};
use common::{Harness, OPERATOR};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};
use trackvia_testsupport::fake::Behavior;
use trackvia_testsupport::fixtures::merged;
use trackvia_testsupport::kube::wait_for_absent;
use trackvia_testsupport::metrics::Scrape;
use trackvia_testsupport::time::{days_from_today, now_seconds};
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
// (c) The status command
// ---------------------------------------------------------------------------------------------

/// Runs the binary (as `program`) with `args`: (exit code, stdout, stderr).
fn status_ok(args: &[&str]) -> String {
    let (code, out, err) = run_cli(Path::new(OPERATOR), args, &[]);
    assert_eq!(code, 0, "status {args:?} failed: {err}\n{out}");
    out
}

/// Times, ages and the fake's port masked.
fn mask(text: &str) -> String {
    let host = regex::Regex::new(r"localhost:\d+").expect("regex");
    let span = regex::Regex::new(r"\b(\d+d( \d+h)?|\d+h( \d+m)?|\d+m|\d+s)\b").expect("regex");
    let text = host.replace_all(text, "<host>");
    span.replace_all(&text, "<t>").into_owned()
}

/// Each line's cells (separated by two or more spaces), masked, joined by ` | `;
/// and every cell starts in its header's column.
fn cells(table: &str) -> String {
    let sep = regex::Regex::new(r" {2,}").expect("regex");
    let lines: Vec<&str> = table.lines().collect();
    let starts = |line: &str| -> Vec<usize> {
        let mut v = vec![0];
        v.extend(sep.find_iter(line).map(|m| m.end()));
        v
    };
    let header = starts(lines[0]);
    for line in &lines[1..] {
        assert_eq!(
            starts(line),
            header,
            "columns not aligned with the header:\n{table}"
        );
    }
    lines
        .iter()
        .map(|l| sep.split(&mask(l)).collect::<Vec<_>>().join(" | "))
        .collect::<Vec<_>>()
        .join("\n")
}

fn workload_template(name: &str, pod: Value) -> Value {
    json!({
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod},
        },
    })
}

#[tokio::test]
async fn status_command_shows_connections_consumers_conditions_and_events() {
    let mut h = Harness::start("obs-status", &[]).await;
    let ns = h.ns.name().to_string();
    let soon_date = days_from_today(5);
    let cases: Vec<(&str, Behavior, Value)> = vec![
        (
            "crm",
            Behavior::Valid,
            json!({"tokenExpiresOn": "2099-03-31", "target": {"name": "crm-out"},
                   "tokenName": "workato-prod", "apiUser": "svc-crm@example.com"}),
        ),
        (
            "expired",
            Behavior::Valid,
            json!({"tokenExpiresOn": "2020-01-01"}),
        ),
        ("nodate", Behavior::Valid, json!({})),
        (
            "revoked",
            Behavior::Revoked,
            json!({"tokenExpiresOn": "2099-03-31"}),
        ),
        (
            "soon",
            Behavior::Valid,
            json!({"tokenExpiresOn": soon_date}),
        ),
    ];
    for (name, behavior, spec) in &cases {
        h.connect(name, &format!("src-{name}"), behavior.clone(), spec.clone())
            .await;
    }
    h.apply_connection(
        "missing",
        "no-such-secret",
        json!({"tokenExpiresOn": "2099-03-31"}),
    )
    .await
    .expect("applying");

    // Consumers of crm-out in three ways, of nodate's Secret through envFrom, and a
    // workload using something else. No pod runs on the bed; templates are enough.
    let container = |extra: Value| {
        merged(
            json!({"name": "app", "image": "example.invalid/app:1"}),
            &extra,
        )
    };
    let deployments: Api<Deployment> = h.ns.api();
    let stateful_sets: Api<StatefulSet> = h.ns.api();
    let daemon_sets: Api<DaemonSet> = h.ns.api();
    let pp = PostParams::default();
    for (name, pod) in [
        (
            "crm-sync",
            json!({"containers": [container(json!({}))],
                   "volumes": [{"name": "tv", "secret": {"secretName": "crm-out"}}]}),
        ),
        (
            "reporting",
            json!({"containers": [container(json!({"envFrom": [{"secretRef": {"name": "nodate"}}]}))]}),
        ),
        (
            "unrelated",
            json!({"containers": [container(json!({"envFrom": [{"secretRef": {"name": "src-crm"}}]}))]}),
        ),
    ] {
        deployments
            .create(
                &pp,
                &serde_json::from_value(workload_template(name, pod)).expect("a Deployment"),
            )
            .await
            .unwrap_or_else(|e| panic!("creating {name}: {e}"));
    }
    stateful_sets
        .create(&pp, &{
            let mut v = workload_template(
                "crm-batch",
                json!({"containers": [container(json!({"env": [{"name": "TV_TOKEN",
                    "valueFrom": {"secretKeyRef": {"name": "crm-out", "key": "authToken"}}}]}))]}),
            );
            v["spec"]["serviceName"] = json!("crm-batch");
            serde_json::from_value(v).expect("a StatefulSet")
        })
        .await
        .expect("creating crm-batch");
    daemon_sets
        .create(
            &pp,
            &serde_json::from_value(workload_template(
                "crm-agent",
                json!({"containers": [container(json!({}))],
                       "volumes": [{"name": "tv", "projected": {"sources": [{"secret": {"name": "crm-out"}}]}}]}),
            ))
            .expect("a DaemonSet"),
        )
        .await
        .expect("creating crm-agent");

    for (name, status, reason) in [
        ("crm", "True", "Verified"),
        ("expired", "False", "Expired"),
        ("nodate", "True", "Verified"),
        ("revoked", "False", "Unauthorized"),
        ("soon", "True", "Verified"),
        ("missing", "False", "CredentialsNotFound"),
    ] {
        h.wait_ready(name, status, reason).await;
    }

    // The table, golden with times and the port masked, columns aligned.
    let table = status_ok(&["status", "-n", &ns]);
    assert!(!table.contains('\x1b'), "colour on a pipe:\n{table}");
    let expected = "\
NAME | READY | REASON | HOST | EXPIRES IN | LAST VERIFIED | SECRET | CONSUMERS
crm | True | Verified | <host> | <t> | <t> ago | crm-out | ds/crm-agent, deploy/crm-sync, sts/crm-batch
expired | False | Expired | <host> | expired <t> ago | - | - | -
missing | False | CredentialsNotFound | <host> | <t> | - | - | -
nodate | True | Verified | <host> | - | <t> ago | nodate | deploy/reporting
revoked | False | Unauthorized | <host> | <t> | <t> ago | - | -
soon | True | Verified | <host> | <t> | <t> ago | soon | -";
    assert_eq!(cells(&table), expected, "\n{table}");
    let soon_line = table
        .lines()
        .find(|l| l.starts_with("soon "))
        .expect("soon's row");
    assert!(
        regex::Regex::new(r"  [345]d( \d+h)?  ")
            .expect("regex")
            .is_match(soon_line),
        "expires in 4-5 days: {soon_line}"
    );

    // The kubectl plugin name gives the same table.
    let dir = tempfile_dir();
    let link = dir.join("kubectl-trackvia");
    std::os::unix::fs::symlink(OPERATOR, &link).expect("symlinking the plugin");
    let (code, plugin_table, err) = run_cli(&link, &["-n", &ns], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(cells(&plugin_table), expected, "\n{plugin_table}");

    // The kubeconfig context's namespace is the default.
    let kubeconfig = kubeconfig_with_namespace(&dir, &ns);
    let (code, default_ns_table, err) = run_cli(
        Path::new(OPERATOR),
        &["status"],
        &[("KUBECONFIG", kubeconfig.to_str().expect("a UTF-8 path"))],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(cells(&default_ns_table), expected, "\n{default_ns_table}");

    // All namespaces: a NAMESPACE column.
    let all = status_ok(&["status", "-A"]);
    assert!(all.starts_with("NAMESPACE "), "{all}");
    let ours: Vec<&str> = all
        .lines()
        .filter(|l| l.starts_with(&format!("{ns} ")))
        .collect();
    assert_eq!(ours.len(), 6, "{all}");

    // JSON for scripts.
    let text = status_ok(&["status", "-n", &ns, "-o", "json"]);
    let doc: Value = serde_json::from_str(&text).expect("status -o json is JSON");
    let rows = doc["connections"].as_array().expect("connections");
    let names: Vec<&str> = rows
        .iter()
        .map(|r| r["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        names,
        ["crm", "expired", "missing", "nodate", "revoked", "soon"]
    );
    let row = |name: &str| rows.iter().find(|r| r["name"] == name).expect("a row");
    let crm = row("crm");
    assert_eq!(crm["namespace"], ns.as_str());
    assert_eq!(crm["ready"], "True");
    assert_eq!(crm["reason"], "Verified");
    assert_eq!(crm["host"], h.fake.host().as_str());
    assert_eq!(crm["secretName"], "crm-out");
    assert_eq!(crm["published"], true);
    assert_eq!(row("revoked")["secretName"], "revoked");
    assert_eq!(row("revoked")["published"], false);
    assert_eq!(crm["tokenExpiresAt"], "2099-03-31T00:00:00Z");
    assert_eq!(crm["tokenName"], "workato-prod");
    assert_eq!(crm["apiUser"], "svc-crm@example.com");
    assert_eq!(crm["lastHttpStatus"], 200);
    assert_eq!(crm["expired"], false);
    assert!(crm["expiresInSeconds"].as_i64().expect("seconds") > 0);
    assert!(crm["lastVerifiedTime"].is_string());
    assert_eq!(
        crm["consumers"],
        json!([
            {"kind": "DaemonSet", "name": "crm-agent"},
            {"kind": "Deployment", "name": "crm-sync"},
            {"kind": "StatefulSet", "name": "crm-batch"},
        ])
    );
    assert_eq!(row("expired")["expired"], true);
    assert!(
        row("expired")["expiresInSeconds"]
            .as_i64()
            .expect("seconds")
            < 0
    );
    assert_eq!(row("soon")["expiring"], true);
    assert_eq!(row("soon")["expired"], false);
    assert_eq!(row("nodate")["tokenExpiresAt"], Value::Null);
    assert_eq!(row("nodate")["expiresInSeconds"], Value::Null);
    assert_eq!(row("revoked")["reason"], "Unauthorized");
    assert_eq!(row("revoked")["lastHttpStatus"], 401);
    assert_eq!(row("missing")["reason"], "CredentialsNotFound");
    assert_eq!(row("missing")["consumers"], json!([]));

    // One connection in detail: spec, conditions, status fields and its events.
    // Ready at its first answer: no event (the status says it), and the
    // command says there are none rather than leaving the section out.
    let detail = wait_for_output(
        &["status", "crm", "-n", &ns],
        "an empty Events section",
        |t| {
            t.lines()
                .skip_while(|l| !l.starts_with("Events:"))
                .any(|l| l.trim() == "<none>")
        },
    )
    .await;
    for needle in [
        "Name:",
        "crm",
        "True (Verified)",
        "Secret src-crm (keys apiKey, authToken)",
        "workato-prod",
        "svc-crm@example.com",
        "2099-03-31T00:00:00Z",
        "crm-out (deletion policy Delete)",
        "ds/crm-agent, deploy/crm-sync, sts/crm-batch",
        "Status:",
        "Last HTTP status:",
        "Conditions:",
        "Events:",
    ] {
        assert!(detail.contains(needle), "{needle:?} missing:\n{detail}");
    }
    let conditions: Vec<&str> = detail
        .lines()
        .skip_while(|l| !l.starts_with("Conditions:"))
        .take_while(|l| !l.starts_with("Events:"))
        .collect();
    for type_ in ["Ready", "Verified", "SecretSynced", "Expiring"] {
        assert!(
            conditions.iter().any(|l| l.trim_start().starts_with(type_)),
            "condition {type_} missing:\n{detail}"
        );
    }
    let revoked = wait_for_output(
        &["status", "revoked", "-n", &ns, "-o", "json"],
        "Unauthorized event",
        |t| {
            serde_json::from_str::<Value>(t).is_ok_and(|d| {
                d["events"]
                    .as_array()
                    .is_some_and(|e| e.iter().any(|e| e["reason"] == "Unauthorized"))
            })
        },
    )
    .await;
    let revoked: Value = serde_json::from_str(&revoked).expect("JSON");
    assert_eq!(revoked["name"], "revoked");
    let ready = revoked["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .find(|c| c["type"] == "Ready")
        .expect("Ready");
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "Unauthorized");
    assert!(ready["lastTransitionTime"].is_string());
    assert_eq!(revoked["spec"]["credentialsSecret"], "src-revoked");
    let event = revoked["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["reason"] == "Unauthorized")
        .expect("the Unauthorized event");
    assert_eq!(event["type"], "Warning");
    assert!(event["count"].as_i64().expect("count") >= 1);

    // Mistakes are reported, not hidden.
    let (code, _, err) = run_cli(Path::new(OPERATOR), &["status", "nope", "-n", &ns], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("not found"), "{err}");
    let (code, _, err) = run_cli(Path::new(OPERATOR), &["status", "crm", "-A"], &[]);
    assert_ne!(code, 0, "a NAME with -A is refused");
    assert!(err.contains("cannot be used with"), "{err}");

    // No credential in anything the command printed.
    let texts = [
        &table,
        &plugin_table,
        &default_ns_table,
        &all,
        &text,
        &detail,
        &revoked.to_string(),
    ];
    for secret in &h.secrets {
        for t in texts {
            assert!(
                !t.contains(secret.as_str()),
                "a credential in status output"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    h.finish().await;
}

/// Run `status` until its output satisfies `pred` (events arrive a little after
/// the status they describe).
async fn wait_for_output(args: &[&str], what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let out = status_ok(args);
        if pred(&out) {
            return out;
        }
        if std::time::Instant::now() > deadline {
            panic!("status {args:?} never showed {what}:\n{out}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
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
