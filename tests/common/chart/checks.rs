//! Checks every rendering of the chart must pass (hardening, no dangerous RBAC, objects in
//! the release namespace), `helm lint`, and the values that turn on every optional part.

use serde_json::{Value, json};

use super::*;

/// Renders `values`, validates the result and runs the checks that hold for every
/// configuration; returns the objects for scenario-specific assertions.
pub fn render_checked(values: &Value) -> Vec<Value> {
    let documents = render_documents(values);
    validate_builtin(&documents);
    let docs: Vec<Value> = documents.into_iter().map(|d| d.value).collect();
    assert_hardened(&docs);
    assert_no_dangerous_rbac(&docs);
    assert_namespaced_objects_placed(&docs);
    docs
}

pub fn assert_hardened(docs: &[Value]) {
    let pod = deployment(docs)
        .pointer("/spec/template/spec")
        .expect("the Deployment has a pod template");
    let psc = &pod["securityContext"];
    assert_eq!(psc["runAsNonRoot"], json!(true), "pod runAsNonRoot: {psc}");
    assert_eq!(psc["runAsUser"], json!(65532), "pod runAsUser: {psc}");
    assert_eq!(psc["runAsGroup"], json!(65532), "pod runAsGroup: {psc}");
    assert_eq!(psc["fsGroup"], json!(65532), "pod fsGroup: {psc}");
    assert_eq!(
        psc.pointer("/seccompProfile/type"),
        Some(&json!("RuntimeDefault")),
        "pod seccompProfile: {psc}"
    );
    let csc = &container(docs)["securityContext"];
    assert_eq!(
        csc["readOnlyRootFilesystem"],
        json!(true),
        "container: {csc}"
    );
    assert_eq!(
        csc["allowPrivilegeEscalation"],
        json!(false),
        "container: {csc}"
    );
    assert_eq!(
        csc.pointer("/capabilities/drop"),
        Some(&json!(["ALL"])),
        "container capabilities: {csc}"
    );
    assert!(
        csc.pointer("/capabilities/add").is_none(),
        "no capability may be added: {csc}"
    );
    // The ServiceAccount does not hand its token to every pod; the operator's pod asks.
    for sa in of_kind(docs, "ServiceAccount") {
        assert_eq!(
            sa["automountServiceAccountToken"],
            json!(false),
            "ServiceAccount {}",
            name(sa)
        );
    }
    assert_eq!(pod["automountServiceAccountToken"], json!(true));
    // The operator needs to know where and who it is.
    let env = container(docs)["env"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (var, field) in [
        ("POD_NAMESPACE", "metadata.namespace"),
        ("POD_NAME", "metadata.name"),
    ] {
        let entry = env
            .iter()
            .find(|e| e["name"] == json!(var))
            .unwrap_or_else(|| panic!("env {var} missing: {env:?}"));
        assert_eq!(
            entry.pointer("/valueFrom/fieldRef/fieldPath"),
            Some(&json!(field)),
            "env {var}"
        );
    }
}

pub fn assert_no_dangerous_rbac(docs: &[Value]) {
    for role in docs
        .iter()
        .filter(|d| matches!(kind(d), "ClusterRole" | "Role"))
    {
        for (_, group, resource, verb) in role_permissions(role, "") {
            assert!(
                !(group.is_empty() && resource == "secrets" && verb == "delete"),
                "{} {} may delete Secrets",
                kind(role),
                name(role)
            );
            assert!(
                verb != "*" && resource != "*" && group != "*",
                "{} {} uses a wildcard",
                kind(role),
                name(role)
            );
            assert!(
                !matches!(verb.as_str(), "escalate" | "bind" | "impersonate"),
                "{} {} grants {verb}",
                kind(role),
                name(role)
            );
        }
    }
}

pub fn assert_namespaced_objects_placed(docs: &[Value]) {
    for doc in docs {
        let cluster_scoped = matches!(
            kind(doc),
            "ClusterRole" | "ClusterRoleBinding" | "CustomResourceDefinition"
        );
        assert_eq!(
            namespace(doc).is_empty(),
            cluster_scoped,
            "{} {} has namespace {:?}",
            kind(doc),
            name(doc),
            namespace(doc)
        );
    }
}

pub fn fullname() -> String {
    format!("{RELEASE}-trackvia-operator")
}

/// Values turning on every optional part of the chart.
pub fn everything_enabled() -> Value {
    json!({
        "replicaCount": 2,
        "commonLabels": { "team": "platform" },
        "image": { "repository": "registry.example.com/trackvia-operator", "tag": "9.9.9", "pullPolicy": "Always" },
        "imagePullSecrets": ["registry-credentials", { "name": "more-credentials" }],
        "serviceAccount": { "annotations": { "example.com/role": "trackvia" } },
        "allowedHosts": ["*.trackvia.com", "trackvia.internal.example.com:8443"],
        "extraCA": { "secretName": "private-ca", "key": "bundle.pem" },
        "logLevel": "debug",
        "logFormat": "text",
        "rateLimit": 30,
        "concurrency": 4,
        "rolloutRestart": { "enabled": true },
        "extraEnv": [{ "name": "HTTPS_PROXY", "value": "http://proxy.example.com:3128" }],
        "metrics": {
            "port": 9090,
            "service": { "port": 9091, "annotations": { "example.com/scrape": "true" } },
            "serviceMonitor": {
                "enabled": true,
                "interval": "15s",
                "labels": { "release": "prometheus" },
                "relabelings": [{ "action": "labeldrop", "regex": "pod" }],
            },
        },
        "prometheusRule": {
            "enabled": true,
            "labels": { "release": "prometheus" },
            "additionalAlertLabels": { "team": "platform" },
            "expiringSoonDays": 7,
        },
        "networkPolicy": {
            "enabled": true,
            "dns": { "to": [{ "namespaceSelector": {}, "podSelector": { "matchLabels": { "k8s-app": "kube-dns" } } }] },
            "apiServer": { "cidrs": ["10.0.0.1/32"], "ports": [443, 6443] },
            "trackvia": { "cidrs": ["0.0.0.0/0"] },
            "metrics": { "from": [{ "namespaceSelector": { "matchLabels": { "name": "monitoring" } } }] },
        },
        "podDisruptionBudget": { "enabled": true },
        "podAnnotations": { "example.com/annotated": "yes" },
        "podLabels": { "example.com/labelled": "yes" },
        "nodeSelector": { "kubernetes.io/os": "linux" },
        "tolerations": [{ "key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule" }],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{ "matchExpressions": [{ "key": "kubernetes.io/arch", "operator": "In", "values": ["amd64", "arm64"] }] }]
                }
            }
        },
        "topologySpreadConstraints": [{
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": { "matchLabels": { "app.kubernetes.io/name": "trackvia-operator" } },
        }],
        "priorityClassName": "system-cluster-critical",
    })
}

// ---------------------------------------------------------------------------------------------
// Lint
// ---------------------------------------------------------------------------------------------

pub fn helm_lint(values: &Value) {
    let file = values_file(values);
    let chart = chart_dir();
    let out = run(
        &tool("helm"),
        &[
            "lint",
            "--strict",
            path_str(&chart),
            "--namespace",
            NAMESPACE,
            "--kube-version",
            KUBE_VERSION,
            "--values",
            path_str(&file),
        ],
        TOOL_TIMEOUT,
    )
    .expect_success();
    assert!(
        out.stdout.contains("0 chart(s) failed"),
        "helm lint did not report success:\n{}",
        out.stdout
    );
}
