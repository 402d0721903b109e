//! Tests of the status views and rendering.

use super::*;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, PodSpec};

use crate::crd::TrackViaConnection;
use serde_json::json;

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn connection(value: serde_json::Value) -> TrackViaConnection {
    serde_json::from_value(value).unwrap()
}

fn base(name: &str, status: serde_json::Value) -> TrackViaConnection {
    connection(json!({
        "apiVersion": "trackvia.io/v1alpha1",
        "kind": "TrackViaConnection",
        "metadata": {"name": name, "namespace": "apps", "generation": 2, "uid": "u-1"},
        "spec": {
            "host": "acme.trackvia.com",
            "credentialsSecretRef": {"name": "api-user"},
            "tokenExpiresOn": "2030-01-15",
            "target": {"name": format!("{name}-out")},
        },
        "status": status,
    }))
}

fn ready_status(status: &str, reason: &str) -> serde_json::Value {
    json!({
        "observedGeneration": 2,
        "conditions": [
            {"type": "Ready", "status": status, "reason": reason, "message": "m",
             "lastTransitionTime": "2030-01-01T00:00:00Z", "observedGeneration": 2},
            {"type": "Expiring", "status": "True", "reason": "ExpiresSoon", "message": "soon",
             "lastTransitionTime": "2030-01-01T00:00:00Z", "observedGeneration": 2},
        ],
        "tokenExpiresAt": "2030-01-15T00:00:00Z",
        "expiryWarningAt": "2030-01-01T00:00:00Z",
        "lastVerifiedTime": "2030-01-02T23:55:00Z",
        "secretName": "crm-out",
        "publishedHash": "h1",
        "consecutiveFailures": 0,
    })
}

#[test]
fn spans_keep_two_units() {
    assert_eq!(span(0), "0s");
    assert_eq!(span(59), "59s");
    assert_eq!(span(60), "1m");
    assert_eq!(span(3 * 3600), "3h");
    assert_eq!(span(3 * 3600 + 20 * 60 + 5), "3h 20m");
    assert_eq!(span(12 * 86400 + 4 * 3600 + 59 * 60), "12d 4h");
    assert_eq!(span(2 * 86400), "2d");
}

#[test]
fn expiry_countdown() {
    let now = ts("2030-01-03T00:00:00Z");
    assert_eq!(expires_in(None, now), "-");
    assert_eq!(expires_in(Some(ts("2030-01-15T04:30:00Z")), now), "12d 4h");
    assert_eq!(expires_in(Some(ts("2030-01-03T03:00:00Z")), now), "3h");
    assert_eq!(
        expires_in(Some(ts("2030-01-01T00:00:00Z")), now),
        "expired 2d ago"
    );
    assert_eq!(expires_in(Some(now), now), "expired 0s ago");
    assert_eq!(relative(Some("2030-01-02T23:55:00Z"), now), "5m ago");
    assert_eq!(relative(Some("2030-01-03T01:00:00Z"), now), "in 1h");
    assert_eq!(relative(None, now), "-");
    assert_eq!(relative(Some("not a time"), now), "-");
}

#[test]
fn secrets_are_found_in_every_place_a_pod_template_uses_them() {
    let spec: PodSpec = serde_json::from_value(json!({
        "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "from-init"}}]}],
        "ephemeralContainers": [{"name": "e", "env": [
            {"name": "D", "valueFrom": {"secretKeyRef": {"name": "from-debug", "key": "k"}}},
        ]}],
        "containers": [{
            "name": "c",
            "env": [
                {"name": "A", "valueFrom": {"secretKeyRef": {"name": "env-ref", "key": "k"}}},
                {"name": "B", "value": "plain"},
                {"name": "C", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}},
            ],
            "envFrom": [{"secretRef": {"name": "env-from"}}, {"configMapRef": {"name": "cm2"}}],
        }],
        "volumes": [
            {"name": "v1", "secret": {"secretName": "volume"}},
            {"name": "v2", "projected": {"sources": [
                {"secret": {"name": "projected"}},
                {"configMap": {"name": "cm3"}},
            ]}},
            {"name": "v3", "configMap": {"name": "cm4"}},
        ],
    }))
    .unwrap();
    let found: Vec<String> = secrets_in_pod_spec(&spec).into_iter().collect();
    assert_eq!(
        found,
        [
            "env-from",
            "env-ref",
            "from-debug",
            "from-init",
            "projected",
            "volume"
        ]
    );
}

#[test]
fn consumers_are_matched_by_namespace_and_secret() {
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "crm-sync", "namespace": "apps"},
        "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "c"}],
            "volumes": [{"name": "v", "secret": {"secretName": "crm-out"}}]}}},
    }))
    .unwrap();
    let elsewhere: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "other", "namespace": "else"},
        "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "c"}],
            "volumes": [{"name": "v", "secret": {"secretName": "crm-out"}}]}}},
    }))
    .unwrap();
    let workloads = vec![from_deployment(&d), from_deployment(&elsewhere)];
    assert_eq!(
        consumers_of(&workloads, "apps", "crm-out"),
        vec![WorkloadRef {
            kind: "Deployment".into(),
            name: "crm-sync".into()
        }]
    );
    assert!(consumers_of(&workloads, "apps", "nope").is_empty());
}

#[test]
fn summary_and_table() {
    let now = ts("2030-01-03T00:00:00Z");
    let crm = base("crm", ready_status("True", "Verified"));
    let pending = connection(json!({
        "apiVersion": "trackvia.io/v1alpha1",
        "kind": "TrackViaConnection",
        "metadata": {"name": "new", "namespace": "apps"},
        "spec": {"host": "go.trackvia.com", "credentialsSecretRef": {"name": "s"}},
    }));
    let workloads = vec![Workload {
        namespace: "apps".into(),
        workload: WorkloadRef {
            kind: "Deployment".into(),
            name: "crm-sync".into(),
        },
        secrets: ["crm-out".to_string()].into(),
    }];
    let mut unpublished = ready_status("False", "Unauthorized");
    unpublished["publishedHash"] = serde_json::Value::Null;
    unpublished["secretName"] = json!("revoked-out");
    let revoked = base("revoked", unpublished);
    let rows = vec![
        summarize(&crm, Some(&workloads), now),
        summarize(&pending, Some(&workloads), now),
        summarize(&revoked, Some(&workloads), now),
    ];
    assert!(rows[0].expiring && !rows[0].expired);
    assert_eq!(rows[0].expires_in_seconds, Some(12 * 86400));
    assert_eq!(rows[1].ready, None);
    assert_eq!(rows[1].secret_name, "new");
    assert!(rows[0].published && !rows[1].published && !rows[2].published);
    let table = render_table(&rows, false, now, false);
    let expected = "\
NAME     READY  REASON        HOST               EXPIRES IN  LAST VERIFIED  SECRET   CONSUMERS
crm      True   Verified      acme.trackvia.com  12d         5m ago         crm-out  deploy/crm-sync
new      -      -             go.trackvia.com    -           -              -        -
revoked  False  Unauthorized  acme.trackvia.com  12d         5m ago         -        -
";
    assert_eq!(table, expected);
    let coloured = render_table(&rows, true, now, true);
    assert!(coloured.contains("\x1b[32mTrue\x1b[0m"));
    assert!(coloured.starts_with("\x1b[1mNAMESPACE\x1b[0m  "));
    let stripped = coloured
        .replace(GREEN, "")
        .replace(RED, "")
        .replace(YELLOW, "")
        .replace(BOLD, "")
        .replace(RESET, "");
    assert_eq!(stripped, render_table(&rows, true, now, false));
    assert!(!table.contains('\x1b'));
}

#[test]
fn json_field_names_are_stable() {
    let now = ts("2030-01-03T00:00:00Z");
    let row = summarize(
        &base("crm", ready_status("False", "Unauthorized")),
        None,
        now,
    );
    let value = serde_json::to_value(&row).unwrap();
    for key in [
        "namespace",
        "name",
        "ready",
        "reason",
        "host",
        "tokenExpiresAt",
        "expiresInSeconds",
        "expired",
        "expiring",
        "lastVerifiedTime",
        "secretName",
        "consumers",
    ] {
        assert!(value.get(key).is_some(), "{key} missing in {value}");
    }
    assert_eq!(value["consumers"], serde_json::Value::Null);
    assert_eq!(value["ready"], "False");
}

#[test]
fn detail_shows_conditions_and_events_of_this_object_only() {
    let now = ts("2030-01-03T00:00:00Z");
    let tvc = base("crm", ready_status("False", "Forbidden"));
    let event = |name: &str, uid: &str, reason: &str, at: &str| -> Event {
        serde_json::from_value(json!({
            "metadata": {"name": format!("{name}.{reason}"), "namespace": "apps"},
            "involvedObject": {"kind": "TrackViaConnection", "name": name, "uid": uid},
            "reason": reason, "message": format!("{reason} happened"), "type": "Warning",
            "eventTime": at,
        }))
        .unwrap()
    };
    let events = vec![
        event("crm", "u-1", "Forbidden", "2030-01-02T12:00:00.000000Z"),
        event("crm", "u-1", "Verified", "2030-01-01T12:00:00.000000Z"),
        event(
            "crm",
            "old-uid",
            "Unauthorized",
            "2029-01-01T12:00:00.000000Z",
        ),
        event("other", "u-2", "Expired", "2030-01-01T12:00:00.000000Z"),
    ];
    let d = detail(&tvc, Some(&[]), Some(&events), now);
    let reasons: Vec<&str> = d
        .events
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| e.reason.as_str())
        .collect();
    assert_eq!(reasons, ["Verified", "Forbidden"]);
    let text = render_detail(&d, now, false);
    for needle in [
        "Name:",
        "False (Forbidden)",
        "Conditions:",
        "Ready     False",
        "Expiring  True",
        "Events:",
        "Forbidden happened",
        "12h ago",
        "Secret api-user (keys apiKey, authToken)",
        "crm-out (deletion policy Delete)",
    ] {
        assert!(text.contains(needle), "{needle:?} missing:\n{text}");
    }
    let none = detail(&tvc, None, None, now);
    let text = render_detail(&none, now, false);
    assert!(text.contains("events could not be listed"), "{text}");
    assert!(text.contains("workloads could not be listed"), "{text}");
}

#[test]
fn invoked_as_kubectl_plugin() {
    let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
    assert_eq!(
        plugin_args(args(&["/home/me/bin/kubectl-trackvia", "-A"])),
        args(&["/home/me/bin/kubectl-trackvia", "status", "-A"])
    );
    assert_eq!(
        plugin_args(args(&["kubectl-trackvia"])),
        args(&["kubectl-trackvia", "status"])
    );
    assert_eq!(
        plugin_args(args(&["/usr/bin/trackvia-operator", "run"])),
        args(&["/usr/bin/trackvia-operator", "run"])
    );
    assert!(plugin_args(Vec::new()).is_empty());
}
