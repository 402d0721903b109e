//! The `status` command on the real test bed: connections, their consumers (Deployments,
//! StatefulSets, DaemonSets), conditions and events, in each output format, and that it never
//! shows a credential.

mod common;

use std::path::Path;
use std::time::Duration;

use common::cli::{kubeconfig_with_namespace, run_cli, tempfile_dir};
use common::{Harness, OPERATOR};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use trackvia_testsupport::fake::Behavior;
use trackvia_testsupport::fixtures::merged;
use trackvia_testsupport::time::days_from_today;

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
