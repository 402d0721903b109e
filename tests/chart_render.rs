//! The Helm chart's lint and its main renderings: the default cluster-wide operator, scoped
//! mode, leader election with one or several replicas, and rollout restarts. Every rendering
//! is validated with `kubernetes-validate --strict` and passes the common hardening checks.

mod common;

use std::collections::BTreeSet;

use common::chart::*;
use serde_json::json;

#[test]
fn lint_strict_with_default_values() {
    helm_lint(&json!({}));
}

#[test]
fn lint_strict_with_every_toggle_on() {
    helm_lint(&everything_enabled());
    helm_lint(
        &json!({ "watchNamespaces": ["a", "b"], "replicaCount": 3, "rolloutRestart": { "enabled": true } }),
    );
}

// ---------------------------------------------------------------------------------------------
// Renderings
// ---------------------------------------------------------------------------------------------

#[test]
fn default_values_render_a_hardened_cluster_wide_operator() {
    let docs = render_checked(&json!({}));
    let kinds: BTreeSet<&str> = docs.iter().map(kind).collect();
    let expected: BTreeSet<&str> = [
        "CustomResourceDefinition",
        "Pod",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Service",
        "Deployment",
    ]
    .into_iter()
    .collect();
    assert_eq!(kinds, expected, "objects rendered with default values");

    let deploy = deployment(&docs);
    assert_eq!(deploy["spec"]["replicas"], json!(1));
    let pod = &deploy["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], json!(fullname()));
    let c = container(&docs);
    assert_eq!(
        c["image"],
        json!(format!("trackvia-operator:{}", chart_app_version()))
    );
    assert_eq!(c["imagePullPolicy"], json!("IfNotPresent"));
    assert_eq!(
        c.pointer("/resources/requests"),
        Some(&json!({ "cpu": "10m", "memory": "32Mi" }))
    );
    assert_eq!(c.pointer("/resources/limits/memory"), Some(&json!("128Mi")));
    assert!(pod.get("volumes").is_none(), "no volumes by default: {pod}");

    let a = args(&docs);
    assert_eq!(a.first().map(String::as_str), Some("run"), "args: {a:?}");
    assert_eq!(flag(&a, "--metrics-addr").as_deref(), Some("0.0.0.0:8080"));
    assert_eq!(flag(&a, "--log-level").as_deref(), Some("info"));
    assert_eq!(flag(&a, "--log-format").as_deref(), Some("json"));
    assert_eq!(flag(&a, "--rate-limit").as_deref(), Some("60"));
    assert_eq!(flag(&a, "--concurrency").as_deref(), Some("16"));
    for absent in ["--namespaces", "--allowed-hosts", "--extra-ca-file"] {
        assert_eq!(flag(&a, absent), None, "{absent} must not be passed: {a:?}");
    }
    // One replica elects itself too, so that a rolling update never runs two reconcilers.
    assert!(a.iter().any(|x| x == "--leader-election"), "args: {a:?}");

    // Probes on the metrics port.
    assert_eq!(c.pointer("/ports/0/name"), Some(&json!("metrics")));
    assert_eq!(c.pointer("/ports/0/containerPort"), Some(&json!(8080)));
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &c[probe]["httpGet"];
        assert_eq!(
            (&get["path"], &get["port"]),
            (&json!(path), &json!("metrics"))
        );
    }

    // Exactly the permissions the operator needs, cluster-wide, and its Lease; no workloads.
    let mut expected = base_permissions("cluster");
    expected.extend(lease_permissions(NAMESPACE));
    assert_eq!(service_account_permissions(&docs, &fullname()), expected);

    // The metrics Service selects the operator's pods.
    let service = only(&docs, "Service");
    assert_eq!(
        service.pointer("/spec/ports/0/targetPort"),
        Some(&json!("metrics"))
    );
    let pod_labels = &deploy["spec"]["template"]["metadata"]["labels"];
    for (key, value) in service["spec"]["selector"].as_object().expect("a selector") {
        assert_eq!(&pod_labels[key], value, "Service selector {key}");
    }
}

#[test]
fn scoped_mode_grants_roles_only_in_the_watched_namespaces() {
    let docs = render_checked(&json!({ "watchNamespaces": ["a", "b"] }));
    assert_eq!(flag(&args(&docs), "--namespaces").as_deref(), Some("a,b"));

    // No cluster-wide grant to the operator at all, and no ClusterRole with Secrets.
    assert!(of_kind(&docs, "ClusterRoleBinding").is_empty());
    for role in of_kind(&docs, "ClusterRole") {
        assert!(
            !role_permissions(role, "")
                .iter()
                .any(|(_, _, resource, _)| resource == "secrets"),
            "ClusterRole {} grants Secrets in scoped mode",
            name(role)
        );
    }
    // Roles and bindings only in the listed namespaces (and the Lease's).
    for doc in docs
        .iter()
        .filter(|d| matches!(kind(d), "Role" | "RoleBinding"))
        .filter(|d| !name(d).ends_with("-leader-election"))
    {
        assert!(
            ["a", "b"].contains(&namespace(doc)),
            "{} {} in namespace {}",
            kind(doc),
            name(doc),
            namespace(doc)
        );
    }
    let mut expected = base_permissions("a");
    expected.extend(base_permissions("b"));
    expected.extend(lease_permissions(NAMESPACE));
    assert_eq!(service_account_permissions(&docs, &fullname()), expected);
}

#[test]
fn several_replicas_elect_a_leader_with_a_lease_role_and_a_pdb() {
    let docs = render_checked(&json!({ "replicaCount": 3 }));
    assert_eq!(deployment(&docs)["spec"]["replicas"], json!(3));
    let a = args(&docs);
    assert!(a.iter().any(|x| x == "--leader-election"), "args: {a:?}");
    assert_eq!(
        flag(&a, "--leader-election-namespace").as_deref(),
        Some(NAMESPACE)
    );
    let lease = flag(&a, "--leader-election-lease-name").expect("a lease name");
    assert_eq!(lease, fullname());

    // Leases only in the Lease's namespace, with the named Lease for all but create.
    let mut expected = base_permissions("cluster");
    expected.extend(lease_permissions(NAMESPACE));
    assert_eq!(service_account_permissions(&docs, &fullname()), expected);
    for role in docs
        .iter()
        .filter(|d| matches!(kind(d), "Role" | "ClusterRole"))
    {
        for rule in role["rules"].as_array().into_iter().flatten() {
            if !strings(rule.get("resources")).contains(&"leases".to_string()) {
                continue;
            }
            assert_eq!(kind(role), "Role", "leases only in a Role");
            let verbs = strings(rule.get("verbs"));
            if verbs != ["create"] {
                assert_eq!(
                    strings(rule.get("resourceNames")),
                    vec![lease.clone()],
                    "Lease rule {rule} must name the Lease"
                );
            }
        }
    }

    let pdb = only(&docs, "PodDisruptionBudget");
    assert_eq!(pdb["apiVersion"], json!("policy/v1"));
    assert_eq!(pdb.pointer("/spec/maxUnavailable"), Some(&json!(1)));
    assert_eq!(
        pdb.pointer("/spec/selector/matchLabels"),
        deployment(&docs).pointer("/spec/selector/matchLabels")
    );
}

#[test]
fn one_replica_elects_itself_and_rolls_out_without_overlap() {
    for replicas in [0, 1] {
        let docs = render_checked(&json!({ "replicaCount": replicas }));
        assert!(of_kind(&docs, "PodDisruptionBudget").is_empty());
        let mut expected = base_permissions("cluster");
        expected.extend(lease_permissions(NAMESPACE));
        assert_eq!(service_account_permissions(&docs, &fullname()), expected);
        assert!(args(&docs).iter().any(|x| x == "--leader-election"));
        // The new pod starts as a standby before the old one stops: it takes the Lease the
        // old one hands back, never reconciling beside it.
        assert_eq!(
            deployment(&docs)["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}})
        );
    }
}

#[test]
fn without_leader_election_the_old_pod_stops_before_a_new_one_starts() {
    let docs = render_checked(&json!({ "leaderElection": { "enabled": false } }));
    assert_eq!(
        deployment(&docs)["spec"]["strategy"],
        json!({"type": "Recreate"})
    );
    assert!(
        !args(&docs)
            .iter()
            .any(|x| x.starts_with("--leader-election"))
    );
    assert_eq!(
        service_account_permissions(&docs, &fullname()),
        base_permissions("cluster")
    );
    let err = refused(&json!({ "replicaCount": 2, "leaderElection": { "enabled": false } }));
    assert!(err.contains("needs leaderElection.enabled"), "{err}");
}

#[test]
fn workloads_are_patched_only_with_rollout_restart_enabled() {
    let off = render(&json!({ "watchNamespaces": ["a"] }));
    assert!(
        !service_account_permissions(&off, &fullname())
            .iter()
            .any(|(_, group, _, _)| group == "apps"),
        "workload access without rolloutRestart.enabled"
    );
    let on =
        render_checked(&json!({ "watchNamespaces": ["a"], "rolloutRestart": { "enabled": true } }));
    let mut expected = base_permissions("a");
    expected.extend(workload_permissions("a"));
    expected.extend(lease_permissions(NAMESPACE));
    assert_eq!(service_account_permissions(&on, &fullname()), expected);

    let cluster = render(&json!({ "rolloutRestart": { "enabled": true } }));
    let mut expected = base_permissions("cluster");
    expected.extend(workload_permissions("cluster"));
    expected.extend(lease_permissions(NAMESPACE));
    assert_eq!(service_account_permissions(&cluster, &fullname()), expected);
}
