//! The connections and consumers of the `status` command's test, and running the command:
//! its output, masked times and ports, table cells checked for alignment, and waiting for
//! what arrives a little later (events).

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use trackvia_testsupport::fake::Behavior;
use trackvia_testsupport::fixtures::merged;
use trackvia_testsupport::time::days_from_today;

use super::cli::run_cli;
use super::{Harness, OPERATOR};

/// Runs the binary (as `program`) with `args`: (exit code, stdout, stderr).
pub fn status_ok(args: &[&str]) -> String {
    let (code, out, err) = run_cli(Path::new(OPERATOR), args, &[]);
    assert_eq!(code, 0, "status {args:?} failed: {err}\n{out}");
    out
}

/// Times, ages and the fake's port masked.
pub fn mask(text: &str) -> String {
    let host = regex::Regex::new(r"localhost:\d+").expect("regex");
    let span = regex::Regex::new(r"\b(\d+d( \d+h)?|\d+h( \d+m)?|\d+m|\d+s)\b").expect("regex");
    let text = host.replace_all(text, "<host>");
    span.replace_all(&text, "<t>").into_owned()
}

/// Each line's cells (separated by two or more spaces), masked, joined by ` | `;
/// and every cell starts in its header's column.
pub fn cells(table: &str) -> String {
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

pub fn workload_template(name: &str, pod: Value) -> Value {
    json!({
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod},
        },
    })
}

/// Connections of each outcome: verified (one with a target, informational fields and
/// consumers), expired, without a date, revoked, expiring soon, and one whose credentials
/// Secret does not exist.
pub async fn create_connections(h: &mut Harness) {
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
}

/// Consumers of crm-out in three ways, of nodate's Secret through envFrom, and a workload
/// using something else. No pod runs on the bed; templates are enough.
pub async fn create_consumers(h: &Harness) {
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
}

/// Waits until every connection reached its outcome.
pub async fn wait_outcomes(h: &Harness) {
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
}

/// Run `status` until its output satisfies `pred` (events arrive a little after
/// the status they describe).
pub async fn wait_for_output(args: &[&str], what: &str, pred: impl Fn(&str) -> bool) -> String {
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
