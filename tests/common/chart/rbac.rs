//! What the chart grants the operator's ServiceAccount, as sets of permissions, and the sets
//! the operator needs.

use std::collections::BTreeSet;

use serde_json::Value;

use super::*;

/// One permission: where ("cluster" or a namespace), API group, resource, verb.
pub type Permission = (String, String, String, String);

/// Every permission granted by one role's rules, at `scope`.
pub fn role_permissions(role: &Value, scope: &str) -> BTreeSet<Permission> {
    let mut out = BTreeSet::new();
    for rule in role
        .get("rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for group in strings(rule.get("apiGroups")) {
            for resource in strings(rule.get("resources")) {
                for verb in strings(rule.get("verbs")) {
                    out.insert((scope.to_string(), group.clone(), resource.clone(), verb));
                }
            }
        }
    }
    out
}

/// What the operator's ServiceAccount is granted by the bindings in `docs`.
pub fn service_account_permissions(docs: &[Value], service_account: &str) -> BTreeSet<Permission> {
    let mut out = BTreeSet::new();
    for binding in docs
        .iter()
        .filter(|d| matches!(kind(d), "ClusterRoleBinding" | "RoleBinding"))
    {
        let binds_operator = binding
            .get("subjects")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|s| {
                str_at(s, "/kind") == "ServiceAccount"
                    && str_at(s, "/name") == service_account
                    && str_at(s, "/namespace") == NAMESPACE
            });
        if !binds_operator {
            continue;
        }
        let scope = if kind(binding) == "ClusterRoleBinding" {
            "cluster".to_string()
        } else {
            namespace(binding).to_string()
        };
        let role_kind = str_at(binding, "/roleRef/kind");
        let role_name = str_at(binding, "/roleRef/name");
        let role = docs
            .iter()
            .find(|d| {
                kind(d) == role_kind
                    && name(d) == role_name
                    && (role_kind == "ClusterRole" || namespace(d) == namespace(binding))
            })
            .unwrap_or_else(|| {
                panic!(
                    "{} {} binds a {role_kind} {role_name} the chart does not render",
                    kind(binding),
                    name(binding)
                )
            });
        out.extend(role_permissions(role, &scope));
    }
    out
}

/// The permissions the operator needs wherever it watches connections.
pub fn base_permissions(scope: &str) -> BTreeSet<Permission> {
    let mut out = BTreeSet::new();
    let mut add = |group: &str, resource: &str, verbs: &[&str]| {
        for verb in verbs {
            out.insert((
                scope.to_string(),
                group.to_string(),
                resource.to_string(),
                verb.to_string(),
            ));
        }
    };
    add(
        "trackvia.io",
        "trackviaconnections",
        &["get", "list", "watch", "patch"],
    );
    add("trackvia.io", "trackviaconnections/status", &["patch"]);
    add("", "secrets", &["get", "list", "watch", "create", "patch"]);
    add("events.k8s.io", "events", &["create", "patch"]);
    out
}

pub fn workload_permissions(scope: &str) -> BTreeSet<Permission> {
    let mut out = BTreeSet::new();
    for resource in ["deployments", "statefulsets", "daemonsets"] {
        for verb in ["get", "patch"] {
            out.insert((
                scope.to_string(),
                "apps".to_string(),
                resource.to_string(),
                verb.to_string(),
            ));
        }
    }
    out
}

pub fn lease_permissions(scope: &str) -> BTreeSet<Permission> {
    ["get", "create", "update", "patch"]
        .into_iter()
        .map(|verb| {
            (
                scope.to_string(),
                "coordination.k8s.io".to_string(),
                "leases".to_string(),
                verb.to_string(),
            )
        })
        .collect()
}
