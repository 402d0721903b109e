//! The `status` command on the real test bed: connections, their consumers (Deployments,
//! StatefulSets, DaemonSets), conditions and events, in each output format, and that it never
//! shows a credential.

mod common;

use std::path::Path;

use common::cli::{kubeconfig_with_namespace, run_cli, tempfile_dir};
use common::status::*;
use common::{Harness, OPERATOR};
use serde_json::{Value, json};

#[tokio::test]
async fn status_command_shows_connections_consumers_conditions_and_events() {
    let mut h = Harness::start("obs-status", &[]).await;
    let ns = h.ns.name().to_string();
    create_connections(&mut h).await;
    create_consumers(&h).await;
    wait_outcomes(&h).await;

    let dir = tempfile_dir();
    let mut printed = tables(&ns, &dir);
    printed.push(json_rows(&ns, &h.fake.host()));
    printed.push(detail(&ns).await);
    printed.push(revoked_with_its_event(&ns).await.to_string());
    mistakes_are_reported(&ns);

    // No credential in anything the command printed.
    for secret in &h.secrets {
        for t in &printed {
            assert!(
                !t.contains(secret.as_str()),
                "a credential in status output"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    h.finish().await;
}

/// The table, golden with times and the port masked, columns aligned; the same through the
/// kubectl plugin name and the kubeconfig's namespace; and across all namespaces. Their texts.
fn tables(ns: &str, dir: &Path) -> Vec<String> {
    // The table, golden with times and the port masked, columns aligned.
    let table = status_ok(&["status", "-n", ns]);
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
    let link = dir.join("kubectl-trackvia");
    std::os::unix::fs::symlink(OPERATOR, &link).expect("symlinking the plugin");
    let (code, plugin_table, err) = run_cli(&link, &["-n", ns], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(cells(&plugin_table), expected, "\n{plugin_table}");

    // The kubeconfig context's namespace is the default.
    let kubeconfig = kubeconfig_with_namespace(dir, ns);
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
    vec![table, plugin_table, default_ns_table, all]
}

/// JSON for scripts: every row and its fields. Its text.
fn json_rows(ns: &str, host: &str) -> String {
    let text = status_ok(&["status", "-n", ns, "-o", "json"]);
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
    assert_eq!(crm["namespace"], ns);
    assert_eq!(crm["ready"], "True");
    assert_eq!(crm["reason"], "Verified");
    assert_eq!(crm["host"], host);
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
    text
}

/// One connection in detail: spec, conditions, status fields and its events. Ready at its
/// first answer: no event (the status says it), and the command says there are none rather
/// than leaving the section out. Its text.
async fn detail(ns: &str) -> String {
    let detail = wait_for_output(
        &["status", "crm", "-n", ns],
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
    detail
}

/// A rejected connection in JSON, with its conditions, spec and Unauthorized event.
async fn revoked_with_its_event(ns: &str) -> Value {
    let revoked = wait_for_output(
        &["status", "revoked", "-n", ns, "-o", "json"],
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
    revoked
}

/// Mistakes are reported, not hidden.
fn mistakes_are_reported(ns: &str) {
    let (code, _, err) = run_cli(Path::new(OPERATOR), &["status", "nope", "-n", ns], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("not found"), "{err}");
    let (code, _, err) = run_cli(Path::new(OPERATOR), &["status", "crm", "-A"], &[]);
    assert_ne!(code, 0, "a NAME with -A is refused");
    assert!(err.contains("cannot be used with"), "{err}");
}
