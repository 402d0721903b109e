//! Single chart options (an extra CA, an image digest, scoped high availability, aggregated
//! roles) and the values schema refusing wrong types, unknown keys and contradictory values.

mod common;

use std::collections::BTreeSet;

use common::chart::*;
use serde_json::{Value, json};

#[test]
fn extra_ca_from_a_config_map_is_mounted_read_only() {
    let docs = render_checked(&json!({ "extraCA": { "configMapName": "ca-bundle" } }));
    let pod = &deployment(&docs)["spec"]["template"]["spec"];
    assert_eq!(
        pod.pointer("/volumes/0/configMap/name"),
        Some(&json!("ca-bundle"))
    );
    assert_eq!(
        pod.pointer("/volumes/0/configMap/items/0/key"),
        Some(&json!("ca.crt"))
    );
    assert_eq!(
        container(&docs).pointer("/volumeMounts/0/readOnly"),
        Some(&json!(true))
    );
    assert!(flag(&args(&docs), "--extra-ca-file").is_some());
}

#[test]
fn image_digest_wins_over_the_tag() {
    let digest = format!("sha256:{}", "ab".repeat(32));
    let docs = render(&json!({ "image": { "tag": "1.2.3", "digest": digest } }));
    assert_eq!(
        container(&docs)["image"],
        json!(format!("trackvia-operator@{digest}"))
    );
}

#[test]
fn scoped_high_availability_keeps_secrets_out_of_cluster_roles() {
    let docs = render_checked(&json!({
        "watchNamespaces": ["team-a", "team-b", "team-c"],
        "replicaCount": 2,
        "rolloutRestart": { "enabled": true },
        "leaderElection": { "namespace": "team-a", "leaseName": "tvo-leader" },
    }));
    let a = args(&docs);
    assert_eq!(
        flag(&a, "--namespaces").as_deref(),
        Some("team-a,team-b,team-c")
    );
    assert_eq!(
        flag(&a, "--leader-election-namespace").as_deref(),
        Some("team-a")
    );
    assert_eq!(
        flag(&a, "--leader-election-lease-name").as_deref(),
        Some("tvo-leader")
    );
    let mut expected = BTreeSet::new();
    for ns in ["team-a", "team-b", "team-c"] {
        expected.extend(base_permissions(ns));
        expected.extend(workload_permissions(ns));
    }
    expected.extend(lease_permissions("team-a"));
    assert_eq!(service_account_permissions(&docs, &fullname()), expected);
    assert!(of_kind(&docs, "ClusterRoleBinding").is_empty());
}

#[test]
fn aggregated_roles_extend_view_edit_and_admin() {
    let docs = render(&json!({}));
    let label = |role: &Value, key: &str| {
        role.pointer(&format!(
            "/metadata/labels/rbac.authorization.k8s.io~1{key}"
        ))
        .cloned()
    };
    let view = of_kind(&docs, "ClusterRole")
        .into_iter()
        .find(|r| label(r, "aggregate-to-view").is_some())
        .expect("a ClusterRole aggregated to view");
    assert_eq!(label(view, "aggregate-to-view"), Some(json!("true")));
    let view_verbs: BTreeSet<String> = role_permissions(view, "")
        .into_iter()
        .map(|(_, _, _, verb)| verb)
        .collect();
    assert_eq!(
        view_verbs,
        ["get", "list", "watch"]
            .map(String::from)
            .into_iter()
            .collect()
    );
    let edit = of_kind(&docs, "ClusterRole")
        .into_iter()
        .find(|r| label(r, "aggregate-to-edit").is_some())
        .expect("a ClusterRole aggregated to edit");
    assert_eq!(label(edit, "aggregate-to-admin"), Some(json!("true")));
    let edit_permissions = role_permissions(edit, "");
    for verb in [
        "create", "update", "patch", "delete", "get", "list", "watch",
    ] {
        assert!(
            edit_permissions.contains(&(
                String::new(),
                "trackvia.io".to_string(),
                "trackviaconnections".to_string(),
                verb.to_string()
            )),
            "edit lacks {verb}"
        );
    }
    for role in [view, edit] {
        assert!(
            role_permissions(role, "")
                .iter()
                .all(|(_, group, _, _)| group == "trackvia.io"),
            "{} grants more than TrackViaConnections",
            name(role)
        );
    }
    let none = render(&json!({ "rbac": { "aggregateToDefaultRoles": false } }));
    assert!(of_kind(&none, "ClusterRole").iter().all(
        |r| label(r, "aggregate-to-view").is_none() && label(r, "aggregate-to-edit").is_none()
    ));
}

// ---------------------------------------------------------------------------------------------
// The values schema
// ---------------------------------------------------------------------------------------------

#[test]
fn schema_refuses_wrong_types_naming_the_key() {
    for (values, key) in [
        (json!({ "replicaCount": "three" }), "replicaCount"),
        (json!({ "rbac": { "create": "yes" } }), "create"),
        (json!({ "watchNamespaces": "a,b" }), "watchNamespaces"),
        (json!({ "metrics": { "port": "http" } }), "port"),
        (json!({ "logFormat": "xml" }), "logFormat"),
        (json!({ "logLevel": "verbose" }), "logLevel"),
        (json!({ "rateLimit": 0 }), "rateLimit"),
        (
            json!({ "watchNamespaces": ["Not_A_Namespace"] }),
            "watchNamespaces",
        ),
    ] {
        let err = refused(&values);
        assert!(
            err.to_lowercase().contains("schema") && err.contains(key),
            "helm's error for {values} should come from the schema and name {key}:\n{err}"
        );
    }
}

#[test]
fn schema_refuses_unknown_keys_naming_them() {
    for (values, key) in [
        (json!({ "replicas": 2 }), "replicas"),
        (
            json!({ "metrics": { "serviceMonitor": { "intervall": "30s" } } }),
            "intervall",
        ),
        (json!({ "image": { "name": "x" } }), "name"),
        (
            json!({ "networkPolicy": { "apiServer": { "cidr": "10.0.0.0/8" } } }),
            "cidr",
        ),
    ] {
        let err = refused(&values);
        assert!(
            err.to_lowercase().contains("schema") && err.contains(key),
            "helm's error for {values} should come from the schema and name {key}:\n{err}"
        );
    }
}

#[test]
fn extra_ca_from_both_sources_is_refused() {
    let err = refused(&json!({ "extraCA": { "secretName": "a", "configMapName": "b" } }));
    assert!(err.contains("extraCA"), "{err}");
}
