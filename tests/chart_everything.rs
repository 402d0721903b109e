//! The Helm chart with every optional part turned on: each value is reflected in the
//! rendered objects, the PrometheusRule and the NetworkPolicy are checked structurally.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::chart::*;
use serde_json::{Value, json};

#[test]
fn everything_enabled_renders_and_reflects_the_values() {
    let values = everything_enabled();
    let docs = render_checked(&values);
    let full = fullname();

    let a = args(&docs);
    assert_eq!(flag(&a, "--metrics-addr").as_deref(), Some("0.0.0.0:9090"));
    assert_eq!(flag(&a, "--log-level").as_deref(), Some("debug"));
    assert_eq!(flag(&a, "--log-format").as_deref(), Some("text"));
    assert_eq!(flag(&a, "--rate-limit").as_deref(), Some("30"));
    assert_eq!(flag(&a, "--concurrency").as_deref(), Some("4"));
    assert_eq!(
        flag(&a, "--allowed-hosts").as_deref(),
        Some("*.trackvia.com,trackvia.internal.example.com:8443")
    );
    assert!(a.iter().any(|x| x == "--leader-election"));

    assert_extra_ca_is_mounted(&docs, &a);
    assert_image_placement_and_metadata(&docs, &values);
    assert_metrics_service_and_monitor(&docs, &values);
    assert_prometheus_rule(only(&docs, "PrometheusRule"), &full);
    assert_network_policy(only(&docs, "NetworkPolicy"), &docs);

    // RBAC: leases and workloads on top of the base.
    let mut expected = base_permissions("cluster");
    expected.extend(lease_permissions(NAMESPACE));
    expected.extend(workload_permissions("cluster"));
    assert_eq!(service_account_permissions(&docs, &full), expected);
    assert!(of_kind(&docs, "PodDisruptionBudget").len() == 1);
}

/// The extra CA: mounted read-only from the Secret, passed as a file inside the mount.
fn assert_extra_ca_is_mounted(docs: &[Value], a: &[String]) {
    let ca_file = flag(a, "--extra-ca-file").expect("--extra-ca-file");
    let c = container(docs);
    let mount = c["volumeMounts"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["name"] == json!("extra-ca")))
        .expect("the extra CA is mounted");
    assert_eq!(mount["readOnly"], json!(true));
    let mount_path = mount["mountPath"].as_str().expect("a mount path");
    assert!(
        ca_file.starts_with(&format!("{mount_path}/")),
        "{ca_file} is not under {mount_path}"
    );
    let pod = &deployment(docs)["spec"]["template"]["spec"];
    let volume = pod["volumes"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["name"] == json!("extra-ca")))
        .expect("an extra-ca volume");
    assert_eq!(
        volume.pointer("/secret/secretName"),
        Some(&json!("private-ca"))
    );
    assert_eq!(
        volume.pointer("/secret/items/0/key"),
        Some(&json!("bundle.pem"))
    );
    let item_path = str_at(volume, "/secret/items/0/path");
    assert_eq!(format!("{mount_path}/{item_path}"), ca_file);
}

/// Image, pod placement and metadata.
fn assert_image_placement_and_metadata(docs: &[Value], values: &Value) {
    let c = container(docs);
    let pod = &deployment(docs)["spec"]["template"]["spec"];
    assert_eq!(
        c["image"],
        json!("registry.example.com/trackvia-operator:9.9.9")
    );
    assert_eq!(c["imagePullPolicy"], json!("Always"));
    assert_eq!(
        pod["imagePullSecrets"],
        json!([{ "name": "registry-credentials" }, { "name": "more-credentials" }])
    );
    assert_eq!(pod["nodeSelector"], values["nodeSelector"]);
    assert_eq!(pod["tolerations"], values["tolerations"]);
    assert_eq!(pod["affinity"], values["affinity"]);
    assert_eq!(
        pod["topologySpreadConstraints"],
        values["topologySpreadConstraints"]
    );
    assert_eq!(pod["priorityClassName"], json!("system-cluster-critical"));
    let template_meta = &deployment(docs)["spec"]["template"]["metadata"];
    assert_eq!(
        template_meta.pointer("/annotations/example.com~1annotated"),
        Some(&json!("yes"))
    );
    assert_eq!(
        template_meta.pointer("/labels/example.com~1labelled"),
        Some(&json!("yes"))
    );
    assert!(c["env"].as_array().is_some_and(|e| {
        e.contains(&json!({ "name": "HTTPS_PROXY", "value": "http://proxy.example.com:3128" }))
    }));
    for doc in docs {
        assert_eq!(
            doc.pointer("/metadata/labels/team"),
            Some(&json!("platform")),
            "commonLabels on {} {}",
            kind(doc),
            name(doc)
        );
    }
    let sa = only(docs, "ServiceAccount");
    assert_eq!(
        sa.pointer("/metadata/annotations/example.com~1role"),
        Some(&json!("trackvia"))
    );
}

/// Metrics Service and ServiceMonitor agree with the container.
fn assert_metrics_service_and_monitor(docs: &[Value], values: &Value) {
    let c = container(docs);
    let service = only(docs, "Service");
    assert_eq!(service.pointer("/spec/ports/0/port"), Some(&json!(9091)));
    assert_eq!(c.pointer("/ports/0/containerPort"), Some(&json!(9090)));
    let monitor = only(docs, "ServiceMonitor");
    assert_eq!(namespace(monitor), NAMESPACE);
    assert_eq!(
        monitor.pointer("/metadata/labels/release"),
        Some(&json!("prometheus"))
    );
    let endpoint = monitor.pointer("/spec/endpoints/0").expect("an endpoint");
    assert_eq!(
        endpoint["port"],
        service
            .pointer("/spec/ports/0/name")
            .cloned()
            .unwrap_or_default()
    );
    assert_eq!(endpoint["path"], json!("/metrics"));
    assert_eq!(endpoint["interval"], json!("15s"));
    assert_eq!(
        endpoint["relabelings"],
        values["metrics"]["serviceMonitor"]["relabelings"]
    );
    let service_labels = &service["metadata"]["labels"];
    for (key, value) in monitor
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .expect("the ServiceMonitor selects by labels")
    {
        assert_eq!(&service_labels[key], value, "ServiceMonitor selector {key}");
    }
    assert_eq!(
        monitor.pointer("/spec/namespaceSelector/matchNames"),
        Some(&json!([NAMESPACE]))
    );
}

fn assert_prometheus_rule(rule: &Value, full: &str) {
    assert_eq!(namespace(rule), NAMESPACE);
    assert_eq!(
        rule.pointer("/metadata/labels/release"),
        Some(&json!("prometheus"))
    );
    let mut alerts = BTreeMap::new();
    for group in rule
        .pointer("/spec/groups")
        .and_then(Value::as_array)
        .expect("groups")
    {
        assert!(!str_at(group, "/name").is_empty(), "a group without a name");
        for r in group["rules"].as_array().expect("rules") {
            alerts.insert(str_at(r, "/alert").to_string(), r.clone());
        }
    }
    let names: Vec<&str> = alerts.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "TrackViaConnectionNotReady",
            "TrackViaOperatorDown",
            "TrackViaTokenExpired",
            "TrackViaTokenExpiringSoon",
            "TrackViaVerificationStale",
        ]
    );
    for (alert, r) in &alerts {
        assert_alert_is_complete(alert, r);
    }
    assert_alert_expressions(&alerts, full);
}

/// One alert: an expression, a duration, a severity, labels and annotations.
fn assert_alert_is_complete(alert: &str, r: &Value) {
    let duration = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_digit() || "smhdwy".contains(c))
            && s.starts_with(|c: char| c.is_ascii_digit())
    };
    let expr = str_at(r, "/expr");
    assert!(!expr.trim().is_empty(), "{alert} has no expression");
    assert_eq!(
        expr.matches('(').count(),
        expr.matches(')').count(),
        "{alert}: {expr}"
    );
    assert!(duration(str_at(r, "/for")), "{alert} for: {:?}", r["for"]);
    assert!(
        ["warning", "critical"].contains(&str_at(r, "/labels/severity")),
        "{alert} severity"
    );
    assert_eq!(
        r.pointer("/labels/team"),
        Some(&json!("platform")),
        "{alert} labels"
    );
    assert!(
        !str_at(r, "/annotations/summary").is_empty(),
        "{alert} summary"
    );
    let description = str_at(r, "/annotations/description");
    assert!(!description.is_empty(), "{alert} description");
    // Prometheus' own templating must survive Helm's.
    if alert != "TrackViaOperatorDown" {
        assert!(
            description.contains("{{ $labels.namespace }}"),
            "{alert}: {description}"
        );
    }
}

/// What each alert's expression reads.
fn assert_alert_expressions(alerts: &BTreeMap<String, Value>, full: &str) {
    let expiry = "trackvia_connection_token_expiration_timestamp_seconds";
    let ready = "trackvia_connection_ready";
    let expr = |alert: &str| str_at(&alerts[alert], "/expr").to_string();
    assert!(expr("TrackViaTokenExpired").contains(expiry));
    let soon = expr("TrackViaTokenExpiringSoon");
    assert!(soon.contains(expiry) && soon.contains(ready), "{soon}");
    assert!(
        soon.contains(&(7 * 86400).to_string()),
        "expiringSoonDays: 7 → {soon}"
    );
    let not_ready = expr("TrackViaConnectionNotReady");
    assert!(
        not_ready.contains(ready) && not_ready.contains(expiry),
        "{not_ready}"
    );
    assert!(
        not_ready.contains("unless"),
        "NotReady excludes expired tokens: {not_ready}"
    );
    let stale = expr("TrackViaVerificationStale");
    assert!(
        stale.contains("trackvia_connection_last_success_timestamp_seconds")
            && stale.contains(ready)
            && stale.contains(&(6 * 3600).to_string()),
        "{stale}"
    );
    assert!(
        stale.contains("unless") && stale.contains(&(7 * 86400).to_string()),
        "VerificationStale yields to the expiry alerts: {stale}"
    );
    let down = expr("TrackViaOperatorDown");
    assert!(down.contains(&format!("job=\"{full}-metrics\"")), "{down}");
    assert!(down.contains("up{"), "{down}");
}

fn assert_network_policy(policy: &Value, docs: &[Value]) {
    let pod_labels = &deployment(docs)["spec"]["template"]["metadata"]["labels"];
    for (key, value) in policy
        .pointer("/spec/podSelector/matchLabels")
        .and_then(Value::as_object)
        .expect("a pod selector")
    {
        assert_eq!(&pod_labels[key], value, "NetworkPolicy selector {key}");
    }
    assert_eq!(
        policy.pointer("/spec/policyTypes"),
        Some(&json!(["Ingress", "Egress"]))
    );
    // Ingress: the metrics port only.
    let ingress = policy
        .pointer("/spec/ingress")
        .and_then(Value::as_array)
        .expect("ingress");
    assert_eq!(ingress.len(), 1);
    assert_eq!(
        ingress[0]["ports"],
        json!([{ "port": 9090, "protocol": "TCP" }])
    );
    assert!(ingress[0]["from"].is_array(), "metrics.from is applied");
    // Egress: DNS, the API server and TrackVia; every rule names its ports.
    let egress = policy
        .pointer("/spec/egress")
        .and_then(Value::as_array)
        .expect("egress");
    let mut ports = BTreeSet::new();
    for rule in egress {
        let rule_ports = rule["ports"]
            .as_array()
            .expect("every egress rule limits ports");
        for p in rule_ports {
            ports.insert((
                p["port"].as_i64().expect("a numeric port"),
                str_at(p, "/protocol").to_string(),
            ));
        }
    }
    let expected: BTreeSet<(i64, String)> = [(53, "UDP"), (53, "TCP"), (443, "TCP"), (6443, "TCP")]
        .into_iter()
        .map(|(p, proto)| (p, proto.to_string()))
        .collect();
    assert_eq!(ports, expected, "egress ports");
    let api_rule = egress
        .iter()
        .find(|r| r["to"] == json!([{ "ipBlock": { "cidr": "10.0.0.1/32" } }]))
        .expect("an API server rule with the configured CIDR");
    assert_eq!(
        api_rule["ports"],
        json!([{ "port": 443, "protocol": "TCP" }, { "port": 6443, "protocol": "TCP" }])
    );
    let trackvia_rule = egress
        .iter()
        .find(|r| r["to"] == json!([{ "ipBlock": { "cidr": "0.0.0.0/0" } }]))
        .expect("a TrackVia rule");
    assert_eq!(
        trackvia_rule["ports"],
        json!([{ "port": 443, "protocol": "TCP" }])
    );
}
